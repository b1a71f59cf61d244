"""Per-family success bars with 95% intervals from `evaluate.py --json` results, several policies side by side.

    python scripts/plot_results.py tiny.json small.json --labels tiny small --out docs/metaworld.png

A results file's random-policy column is drawn too when it has one (`--random-baseline`); a run folder's
`eval.json` (written by train_vla.py / finetune.py) is read as well.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import tyro

from embodied.errors import UserError, cli


@dataclass
class Args:
    results: tyro.conf.Positional[tuple[Path, ...]]
    """evaluate.py --json files (or runs' eval.json)."""
    labels: tuple[str, ...] = ()
    """One name per file (default: the file names)."""
    out: Path = Path("results.png")
    title: str = ""


def load(path: Path) -> tuple[dict, dict | None]:
    """(rollouts, random rollouts or None) from an evaluate.py JSON or a run's eval.json."""
    if not path.is_file():
        raise UserError(f"no results file {path}: expected the JSON written by evaluate.py --json or a run's eval.json")
    data = json.loads(path.read_text())
    if "results" in data:
        return data["results"], data.get("random")
    if "vla" in data:
        return data["vla"]["rollouts"], (data.get("random") or {}).get("rollouts")
    raise UserError(f"{path} holds neither evaluate.py results nor a run's eval.json (keys: {sorted(data)})")


def main(args: Args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if args.labels and len(args.labels) != len(args.results):
        raise UserError(f"{len(args.labels)} labels for {len(args.results)} results files: give one per file")
    columns = {}
    for path, label in zip(args.results, args.labels or [p.stem for p in args.results], strict=True):
        rollouts, random = load(path)
        columns[label] = rollouts
        if random and "random policy" not in columns:
            columns["random policy"] = random
    families = [f for f in next(iter(columns.values())) if f != "mean"]
    x = np.arange(len(families) + 1)
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(x) + 2), 3.6))
    for k, (label, rollouts) in enumerate(columns.items()):
        rows = [rollouts.get(f) for f in [*families, "mean"]]  # evaluate() pools every episode in "mean"
        values = [100 * r["success"] if r else np.nan for r in rows]
        low = [100 * (r["success"] - r["ci95"][0]) if r else 0 for r in rows]
        high = [100 * (r["ci95"][1] - r["success"]) if r else 0 for r in rows]
        episodes = {r["episodes"] for r in rows[:-1] if r}
        ax.bar(x + (k - (len(columns) - 1) / 2) * width, values, width, yerr=[low, high], capsize=2,
               label=f"{label} ({'/'.join(map(str, sorted(episodes)))} episodes per task)")
    ax.set_xticks(x, [f.removesuffix("-v3") for f in families] + ["mean"], rotation=30, ha="right")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.set_title(args.title or "success per task [95% Wilson interval]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
