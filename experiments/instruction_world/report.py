"""Does the policy do what it is told? Every trained run of the main job evaluated on world v1's report block under
each condition the instruction issue names, and the figures across runs (mean and range, each with its interval):

    python experiments/instruction_world/report.py policies/runs/A policies/runs/B --episodes 30

Conditions: the training split with the given words (and the random policy), held-out wordings, held-out targets
(the families that name objects or plates), the swap control and the blank control. Each is one
`scripts/evaluate.py ... --json` call, kept in `<out>/<run name>/<condition>.json`; a rerun reuses what is there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[2]
CONDITIONS = {  # name -> evaluate.py flags
    "train": ["--split", "train"],
    "heldout_wording": ["--split", "heldout_wording", "--no-random-baseline"],
    "heldout_target": ["--split", "heldout_target", "--no-random-baseline"],
    "swap": ["--instruction", "swap", "--no-random-baseline"],
    "blank": ["--instruction", "blank", "--no-random-baseline"],
}


@dataclass
class Args:
    runs: Annotated[list[Path], tyro.conf.Positional]
    """Trained runs (or checkpoints) of the same recipe, one per training seed."""
    episodes: int = 30
    """Scenes per family."""
    block: str = "report"
    """Seed block (scripts/evaluate.py --block)."""
    out: Path = Path("experiments/instruction_world/results")
    """Where the evaluation JSONs go."""
    conditions: list[str] = field(default_factory=lambda: list(CONDITIONS))
    """Which conditions to run."""


def evaluate(run: Path, condition: str, args: Args) -> dict:
    path = args.out / run.name / f"{condition}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), str(run), "--episodes", str(args.episodes),
               "--block", args.block, "--json", str(path), *CONDITIONS[condition]]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(path.read_text())


def pooled(result: dict, families: list[str], key: str | None = None) -> tuple[float, list[float], int]:
    """Success over `families` pooled (equal episodes each), its Wilson interval and the episode count; key='swap'
    reads the swapped goal."""
    from embodied.evaluation.rollouts import wilson

    entries = [result[f][key] if key else result[f] for f in families]
    wins = sum(round(e["success"] * e["episodes"]) for e in entries)
    n = sum(e["episodes"] for e in entries)
    return wins / n, wilson(wins, n), n


def cell(values: list[tuple[float, list[float], int]]) -> str:
    """'76% (74-79)' over runs, then each run's rate [interval]."""
    rates = [100 * v[0] for v in values]
    runs = ", ".join(f"{100 * r:.0f}% [{100 * lo:.0f}-{100 * hi:.0f}]" for r, (lo, hi), _ in values)
    return f"**{np.mean(rates):.0f}%** ({min(rates):.0f}-{max(rates):.0f}): {runs}"


def main(args: Args) -> None:
    results = {run.name: {c: evaluate(run, c, args) for c in args.conditions} for run in args.runs}
    first = next(iter(results.values()))
    families = first["train"]["families"]
    targets = first["heldout_target"]["families"] if "heldout_target" in first else []
    rows = {
        "train split (given words)": [pooled(r["train"]["results"], families) for r in results.values()],
        "random policy": [pooled(r["train"]["random"], families) for r in results.values()],
    }
    if "heldout_wording" in first:
        rows["held-out wording"] = [pooled(r["heldout_wording"]["results"], families) for r in results.values()]
    if targets:
        rows[f"train split, the {len(targets)} families with targets"] = [
            pooled(r["train"]["results"], targets) for r in results.values()]
        rows["held-out targets (same families)"] = [pooled(r["heldout_target"]["results"], targets)
                                                    for r in results.values()]
    if "swap" in first:
        rows["swap: original goal"] = [pooled(r["swap"]["results"], families) for r in results.values()]
        rows["swap: swapped goal"] = [pooled(r["swap"]["results"], families, "swap") for r in results.values()]
    if "blank" in first:
        rows["blank instruction"] = [pooled(r["blank"]["results"], families) for r in results.values()]
    n = args.episodes
    print(f"\n{len(results)} runs ({', '.join(results)}), {n} scenes per family, {args.block} block, world "
          f"v{first['train']['world']}: mean (range) over runs, then each run [95% interval]\n")
    print("| condition | success |\n|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {cell(values)} |")
    print("\n| family | " + " | ".join(c for c in args.conditions) + " | swapped goal |")
    print("|---" * (len(args.conditions) + 2) + "|")
    for f in families:
        cells = []
        for c in args.conditions:
            rates = [100 * r[c]["results"][f]["success"] for r in results.values() if f in r[c]["results"]]
            cells.append(f"{np.mean(rates):.0f}% ({min(rates):.0f}-{max(rates):.0f})" if rates else "-")
        swapped = ([100 * r["swap"]["results"][f]["swap"]["success"] for r in results.values()]
                   if "swap" in first else [])
        cells.append(f"{np.mean(swapped):.0f}%" if swapped else "-")
        print(f"| {f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(tyro.cli(Args))
