"""Rehearse an exported bundle against the simulated robot running as its own process, at a fixed
control rate, over real sockets: the policy runs here (numpy + onnxruntime, no torch), the robot there.

    python scripts/run_robot_loop.py --bundle bundles/tiny --instruction "press the red button" --rate 10
    python scripts/run_robot_loop.py --bundle bundles/tiny --family press_button --episodes 20 --rate 20 \\
        --latency-ms 30 --action-delay-ms 20 --state-noise 0.001 --video loop.mp4 --store loop.zarr

Prints success, inference latency p50/p95/p99, loop jitter, deadline misses and watchdog trips.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from embodied.errors import UserError, cli


@dataclass
class Args:
    bundle: Path
    """An exported bundle (scripts/export_policy.py)."""
    instruction: str | None = None
    """A typed instruction (one episode in the full tabletop suite)."""
    family: str | None = None
    """Or: episodes of this task family on the evaluation seeds (from 1,000,000, as in evaluate.py)."""
    episodes: int = 1
    rate: float = 10.0
    """Control rate (Hz)."""
    latency_ms: float = 0.0
    action_delay_ms: float = 0.0
    state_noise: float = 0.0
    timeout_ms: float = 250.0
    """Watchdog timeout."""
    replan_every: int = 1
    """Plan on every k-th observation (1: on every one; the robot always executes the newest plan). Keep
    k / rate below --timeout-ms, or the watchdog holds between plans."""
    commit_gripper: bool = True
    """The robot runs a plan that switches the gripper through the switch, dropping plans that arrive
    meanwhile (--no-commit-gripper: the newest plan always wins)."""
    precision: str = "fp32"
    """fp32 or int8 (if the bundle has it)."""
    split: str = "train"
    video: Path | None = None
    store: Path | None = None
    json: Path | None = None


def main(args: Args) -> dict:
    from embodied.envs.simrobot import rehearse
    from embodied.runtime.bundle import OnnxPolicy

    if (args.instruction is None) == (args.family is None):
        raise UserError("give --instruction TEXT (one episode) or --family NAME (--episodes N on eval seeds)")
    policy = OnnxPolicy(args.bundle, precision=args.precision)  # refuses a damaged bundle before anything moves
    episodes = 1 if args.instruction else args.episodes
    config = {"rate": args.rate, "family": args.family or "suite", "seeds": [1_000_000 + i for i in range(episodes)],
              "instruction": args.instruction, "split": args.split, "cameras": policy.cameras,
              "image_size": list(policy.spec["image_size"]), "latency_ms": args.latency_ms,
              "action_delay_ms": args.action_delay_ms, "state_noise": args.state_noise, "timeout_ms": args.timeout_ms,
              "commit_gripper": args.commit_gripper,
              "video": str(args.video) if args.video else None}
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "episodes.npz"
        result, stats = rehearse(policy, config | {"record": str(record) if args.store else None},
                                 args.replan_every, episodes)
        if args.store and record.exists():
            store_loop_episodes(args.store, record, config)
    summarize(result, stats, args)
    if args.json:
        args.json.write_text(json.dumps({"robot": result, "policy": stats}, indent=2))
    return {"robot": result, "policy": stats}


def store_loop_episodes(store: Path, record: Path, config: dict) -> None:
    """The robot's recorded episodes into a store with the env's specs (created if missing)."""
    import gymnasium as gym

    import embodied.envs as envs
    from embodied.data.collect import store_recorded

    env = gym.make(envs.ENV_IDS[config["family"]], cameras=tuple(config["cameras"]),
                   image_size=tuple(config["image_size"]), split=config["split"], ctrl_dt=round(1 / config["rate"], 6))
    store_recorded(store, record, env)
    env.close()


def summarize(result: dict, stats: dict, args: Args) -> None:
    from rich.console import Console
    from rich.table import Table

    from embodied.evaluation.rollouts import rate, wilson

    eps = result["episodes"]
    wins = sum(e["success"] for e in eps)
    table = Table(title=f"{args.bundle} through the simulated-hardware loop at {args.rate:g} Hz")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("success", rate({"success": wins / len(eps), "ci95": wilson(wins, len(eps))}) + f" of {len(eps)}"),
        ("inference p50 / p95 / p99", " / ".join(f"{stats['latency_ms'][p]:.1f}" for p in ("p50", "p95", "p99"))
         + " ms"),
        ("loop jitter p50 / p99 / max", " / ".join(f"{np.mean([e[f'jitter_ms_{p}'] for e in eps]):.2f}"
                                                   for p in ("p50", "p99", "max")) + " ms"),
        ("ticks", str(sum(e["ticks"] for e in eps))),
        ("deadline misses", str(sum(e["deadline_misses"] for e in eps))),
        ("watchdog trips / held ticks",
         f"{sum(e['watchdog_trips'] for e in eps)} / {sum(e['held_ticks'] for e in eps)}"),
        ("safety: clamped / rate-limited / workspace / non-finite",
         " / ".join(str(sum(e["safety"][k] for e in eps))
                    for k in ("clamped", "rate_limited", "workspace", "non_finite"))),
        ("refused messages", str(result["bad_messages"])),
    ]
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
