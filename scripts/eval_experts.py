"""Success rate of the scripted experts: N seeds per task family, with and without action noise.

    python scripts/eval_experts.py                      # 50 seeds per family, noise 0 and 0.2
    python scripts/eval_experts.py --seeds 10 --noise 0.1 --json expert_success.json
    python scripts/eval_experts.py --families stack put_in_drawer place_next_to press_then_pick --noise 0 0.3
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

import embodied.envs as envs
from embodied.envs.experts import run_expert_episode
from embodied.errors import UserError, cli


@dataclass
class Args:
    seeds: int = 50
    """Episodes per family (seeds 0..N-1)."""
    noise: list[float] = field(default_factory=lambda: [0.0, 0.2])
    """Std of the Gaussian action noise; one column per value."""
    split: str = "train"
    """Instruction split: train, heldout, heldout_wording, heldout_target or all."""
    world: int = envs.WORLD_VERSION
    """World version (0: the original world)."""
    families: list[str] = field(default_factory=lambda: list(envs.FAMILIES))
    """Families to run (default: every one)."""
    json: Path | None = None
    """Also write the figures here."""


def main(args: Args) -> None:
    results: dict[str, dict[str, dict]] = {}
    unknown = sorted(set(args.families) - set(envs.FAMILIES))
    if unknown:
        raise UserError(f"unknown families {unknown}; {envs.available()}")
    jobs = [(f, n) for f in args.families for n in args.noise]
    for family, noise in tqdm(jobs, desc="families x noise"):
        env = gym.make(envs.env_id(family, args.world), cameras=(), split=args.split)  # state only: fast
        runs = [run_expert_episode(env, seed, noise=noise) for seed in range(args.seeds)]
        env.close()
        results.setdefault(family, {})[str(noise)] = {
            "success": float(np.mean([r["success"] for r in runs])),
            "mean_steps": float(np.mean([r["steps"] for r in runs])),
            "failed_seeds": [s for s, r in enumerate(runs) if not r["success"]],
            "disturbed": float(np.mean([r["disturbed"] for r in runs])),
        }
    table = Table(title=f"Scripted-expert success over {args.seeds} seeds per family (world v{args.world}, "
                        f"{args.split} split; moved another: episodes that moved an object the task does not name)")
    table.add_column("family")
    for n in args.noise:
        table.add_column(f"noise {n}: success", justify="right")
        table.add_column("steps", justify="right")
        table.add_column("moved another", justify="right")
    for family, cols in results.items():
        cells = []
        for n in args.noise:
            r = cols[str(n)]
            cells += [f"{100 * r['success']:.0f}%", f"{r['mean_steps']:.0f}", f"{100 * r['disturbed']:.0f}%"]
        table.add_row(family, *cells)
    Console().print(table)
    if args.json:
        figures = {"seeds": args.seeds, "world": args.world, "split": args.split, "results": results}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
