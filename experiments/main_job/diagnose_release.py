"""Does the policy plan to let go? On place demonstrations of the store it was trained on, at the recorded
release (the frame the expert opens the gripper) and k frames before it, ask the policy for a plan and
say how often the plan opens the gripper and how many steps ahead. A policy that never plans the open
on these frames, which it was trained on, carries the object to the plate and hovers there (place 0%);
the executor's gripper commit can only run through a release that the plan contains.

    python experiments/main_job/diagnose_release.py policies/runs/tiny_pretrain_small --episodes 30
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from embodied.errors import UserError, cli


@dataclass
class Args:
    policy: Annotated[str, tyro.conf.Positional]
    """A run folder or checkpoint folder."""
    store: Path | None = None
    """The demonstrations (default: the store the policy was trained on)."""
    episodes: int = 30
    """Place demonstrations to probe (the first ones of the store)."""
    before: tuple[int, ...] = (0, 2, 4, 8, 12)
    """Frames before the release to probe."""


def release_frames(actions: np.ndarray, gripper: int) -> int | None:
    """The first frame that opens the gripper after it was closed (None if it never lets go)."""
    closed = actions[:, gripper] > 0
    if not closed.any():
        return None
    opened = np.flatnonzero(~closed[np.argmax(closed):])
    return int(np.argmax(closed) + opened[0]) if len(opened) else None


def main(args: Args) -> None:
    from rich.console import Console
    from rich.table import Table

    from embodied.data.recipes import training_store
    from embodied.data.store import EpisodeStore
    from embodied.evaluation.rollouts import wilson
    from embodied.evaluation.suite import load_policy

    if args.episodes < 1 or min(args.before, default=0) < 0:
        raise UserError(f"--episodes must be >= 1 and --before >= 0, got {args.episodes} and {args.before}")
    policy, info = load_policy(args.policy)
    if info.get("kind") != "checkpoint":
        raise UserError(f"{args.policy!r} is not a trained run or checkpoint folder")
    path = args.store or training_store(info["checkpoint"])
    store = EpisodeStore.open(path)
    names = list(store.attrs.get("action_spec", {}).get("names", []))
    if "gripper" not in names:
        raise UserError(f"{path} has no action named 'gripper' (actions: {names})")
    gripper = names.index("gripper")
    ends = store.episode_ends
    starts = np.concatenate([[0], ends[:-1]])
    actions, states, instructions = store.actions(), store.states(), store.meta("instruction")
    places = np.flatnonzero(store.meta("family") == "place")[: args.episodes]
    if not len(places):
        raise UserError(f"{path} has no place demonstrations")
    ahead: dict[int, list[int]] = {k: [] for k in args.before}  # steps until the planned open, -1: none
    for ep in places:
        release = release_frames(actions[starts[ep]:ends[ep]], gripper)
        if release is None:
            continue
        for k in (k for k in args.before if k <= release):
            t = starts[ep] + release - k
            obs = {"images": {c: store.frames(c, np.array([t]))[0] for c in policy.spec["cameras"]},
                   "state": states[t], "instruction": str(instructions[ep])}
            opens = np.flatnonzero(policy.act(obs)[:, gripper] <= 0)
            ahead[k].append(int(opens[0]) if len(opens) else -1)
    table = Table(title=f"{args.policy}: its plans on {len(places)} place demonstrations of {path}")
    for col in ("frames before the release", "plan opens the gripper [95%]", "planned open: steps ahead (median)"):
        table.add_column(col, justify="right")
    for k, steps in ahead.items():
        steps = np.array(steps)
        hit = steps >= 0
        lo, hi = wilson(int(hit.sum()), len(steps))
        table.add_row(str(k), f"{hit.mean():.0%} [{lo:.0%}-{hi:.0%}]",
                      f"{np.median(steps[hit]):.0f} (recorded: {k})" if hit.any() else "-")
    Console().print(table)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
