"""One scene's end-effector path through the loop, one line per sweep file and delay: where the gripper went
and where it closed. Needs the per-tick logs, which `run_robot_loop.py --json` writes (report/ keeps them
stripped):

    python experiments/robot_link/paths.py sweep/pick_receding.json:0,4 sweep/pick_catchup.json:4 \
        --episode 0 --out experiments/robot_link/paths.png
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from embodied.errors import UserError, cli


@dataclass
class Args:
    curves: tyro.conf.Positional[list[str]]
    """FILE.json:D[,D...]: a sweep file and the delays (control steps) to draw from it."""
    episode: int = 0
    """Which scene (the same index plays the same scene in every file of one family and block)."""
    out: Path = Path("experiments/robot_link/paths.png")


def episodes(curve: str, episode: int) -> list[tuple[str, dict]]:
    path, _, delays = curve.rpartition(":")
    if not path or not delays:
        raise UserError(f"expected FILE.json:D[,D...], got {curve!r}")
    runs = {run["delay_steps"]: run for run in json.loads(Path(path).read_text())["runs"]}
    out = []
    for d in (int(x) for x in delays.split(",")):
        if d not in runs:
            raise UserError(f"{path} has no run at delay {d}; it has {sorted(runs)}")
        eps = runs[d]["robot"]["episodes"]
        if not 0 <= episode < len(eps) or "log" not in eps[episode]:
            raise UserError(f"{path}: no per-tick log for episode {episode} (rerun with --json; report/ strips them)")
        out.append((f"{Path(path).stem}, d = {d}", eps[episode]))
    return out


def main(args: Args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, side) = plt.subplots(1, 2, figsize=(11, 4.5))
    for curve in args.curves:
        for label, ep in episodes(curve, args.episode):
            ee = np.array([t["ee"] for t in ep["log"]])
            closed = [i for i, t in enumerate(ep["log"]) if t["action"][-1] > 0]
            label = f"{label}: {'success' if ep['success'] else 'failure'}"
            line, = top.plot(ee[:, 0], ee[:, 1], label=label)
            side.plot(np.arange(len(ee)) * 0.05, ee[:, 2], color=line.get_color())
            if closed:
                top.plot(*ee[closed[0], :2], "o", color=line.get_color())
                side.plot(closed[0] * 0.05, ee[closed[0], 2], "o", color=line.get_color())
    top.set(xlabel="x (m)", ylabel="y (m)", title="end effector from above (dot: the gripper closes)")
    top.set_aspect("equal", adjustable="datalim")
    side.set(xlabel="time (s, 20 Hz ticks)", ylabel="z (m)", title="height")
    top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
