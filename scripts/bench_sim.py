"""Simulation speed on one core: raw mj_step, physics-only control steps, full env steps with 0, 1 and
2 cameras at 96x96.

    python scripts/bench_sim.py [--steps 600] [--json bench_sim.json]

Pins itself to one CPU core and one software-rendering thread before MuJoCo loads.
"""

from __future__ import annotations

import os

os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe (OSMesa) render threads
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import tyro  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import embodied.envs as envs  # noqa: E402
from embodied.envs.experts import ScriptedExpert  # noqa: E402
from embodied.envs.rendering import mujoco  # noqa: E402
from embodied.errors import cli


@dataclass
class Args:
    steps: int = 600
    """Control steps per measurement."""
    family: str = "place"
    """Task family driven by its scripted expert (contacts and grasps included)."""
    json: Path | None = None
    """Also write the figures here."""


def env_rate(args: Args, cameras: tuple[str, ...]) -> float:
    """Env steps/s, expert actions, resetting when episodes end; expert time excluded."""
    env = gym.make(envs.ENV_IDS[args.family], cameras=cameras)
    expert = ScriptedExpert(env)
    obs, _ = env.reset(seed=0)
    spent, seed = 0.0, 0
    for _ in range(args.steps):
        action = expert.act(obs)[0]
        start = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        spent += time.perf_counter() - start
        if terminated or truncated:
            seed += 1
            obs, _ = env.reset(seed=seed)
            expert.reset()
    env.close()
    return args.steps / spent


def raw_mj_step_rate(args: Args) -> tuple[float, int]:
    """mj_step calls/s of the same model in the same kind of scene (objects on the table)."""
    env = gym.make(envs.ENV_IDS[args.family], cameras=())
    env.reset(seed=0)
    base = env.unwrapped
    m, d, n = base.world.model, base.world.data, base.substeps
    start = time.perf_counter()
    mujoco.mj_step(m, d, args.steps * n)
    rate = args.steps * n / (time.perf_counter() - start)
    env.close()
    return rate, n


def main(args: Args) -> None:
    raw, substeps = raw_mj_step_rate(args)
    rows = {
        "raw mj_step (control-step equivalent)": raw / substeps,
        "physics only (controller + IK + substeps + success)": env_rate(args, ()),
        "env, 1 camera 96x96": env_rate(args, ("front",)),
        "env, 2 cameras 96x96": env_rate(args, ("front", "wrist")),
    }
    table = Table(title=f"Simulation speed, one core, {args.family} expert, {substeps} substeps/step")
    table.add_column("what")
    table.add_column("steps/s", justify="right")
    table.add_column("vs raw mj_step", justify="right")
    for name, rate in rows.items():
        table.add_row(name, f"{rate:,.0f}", f"{rate / rows['raw mj_step (control-step equivalent)']:.0%}")
    Console().print(table)
    print(f"raw mj_step: {raw:,.0f} calls/s; target: >= 150 env steps/s with 2 cameras "
          f"({'met' if rows['env, 2 cameras 96x96'] >= 150 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps({"substeps": substeps, "mj_step_per_s": raw,
                                         "steps_per_s": rows}, indent=2))


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
