"""Success and seams against the injected delay, from `run_robot_loop.py --delay-steps ... --json` files
(one per family, execution mode and training seed), with markdown tables of the figures.

    python experiments/robot_link/plot.py experiments/robot_link/report/*/*.json --out experiments/robot_link/report.png

Each file is named <family>_<run>.json; <run> labels its curve (receding, ensemble, rtc, ...). Files of one
<family>_<run> in several folders (seed0/, seed1/: one training seed each) are one curve: the mean over the
seeds, the range as error bars, and a table of the mean (range) beside each seed's figure with its interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from embodied.errors import cli
from embodied.evaluation.rollouts import wilson


@dataclass
class Args:
    sweeps: tyro.conf.Positional[list[Path]]
    out: Path = Path("experiments/robot_link/report.png")


def rows(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    out = []
    for run in data["runs"]:
        config, eps = run["robot"]["config"], run["robot"]["episodes"]
        wins = sum(e["success"] for e in eps)
        ratio = pooled_ratio(eps)
        first = [e["first_plan_jump"] for e in eps if e["first_plan_jump"] is not None]
        sent = [e["first_sent_jump"] for e in eps if e.get("first_sent_jump") is not None]
        out.append({"family": config["family"], "mode": path.stem.removeprefix(config["family"] + "_"),
                    "seed": path.parent.name, "d": run["delay_steps"],
                    "ms": 1e3 * run["delay_steps"] / config["rate"], "n": len(eps), "wins": wins,
                    "ci": wilson(wins, len(eps)), "seam_ratio": ratio,
                    "first_jump": float(np.mean(first)) if first else float("nan"),
                    "first_sent": float(np.mean(sent)) if sent else float("nan"),
                    "within": float(np.mean([e["within_plan_jump"] for e in eps if e["within_plan_jump"] is not None])),
                    "age_p95": float(np.mean([e["plan_age_ms"]["p95"] for e in eps])),
                    "held": int(sum(sum(e["held"].values()) for e in eps)), "ticks": int(sum(e["ticks"] for e in eps)),
                    "jerk_p95": float(np.mean([e["jerk"]["p95"] for e in eps]))})
    return out


def pooled_ratio(eps: list[dict]) -> float:
    """Mean seam jump over mean within-plan jump, pooled over every episode's steps."""
    seams = sum(e["seams"] for e in eps if e["seam_jump"] is not None)
    steps = sum(e.get("within_steps", 0) for e in eps if e["within_plan_jump"] is not None)
    if not seams or not steps:
        return float("nan")
    seam = sum(e["seam_jump"] * e["seams"] for e in eps if e["seam_jump"] is not None) / seams
    within = sum(e["within_plan_jump"] * e["within_steps"] for e in eps if e["within_plan_jump"] is not None) / steps
    return seam / within if within > 0 else float("nan")


def cell(r: dict) -> str:
    """Mean success over seeds with its range; one seed: its share."""
    lo, hi = r["rate_range"]
    return f"{100 * r['rate']:.0f}%" + (f" ({100 * lo:.0f}-{100 * hi:.0f})" if len(r["seeds"]) > 1 else "")


def mean_over_seeds(table: list[dict]) -> list[dict]:
    """One row per (family, mode, d): success and seam ratio as the mean over seeds and their range."""
    out = []
    for key in sorted({(r["family"], r["mode"], r["d"]) for r in table}):
        rs = sorted((r for r in table if (r["family"], r["mode"], r["d"]) == key), key=lambda r: r["seed"])
        rates, seams = [r["wins"] / r["n"] for r in rs], [r["seam_ratio"] for r in rs]
        out.append({"family": key[0], "mode": key[1], "d": key[2], "seeds": rs, "rate": float(np.mean(rates)),
                    "rate_range": (min(rates), max(rates)), "seam": float(np.mean(seams)),
                    "seam_range": (min(seams), max(seams))})
    return out


def main(args: Args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = [r for path in args.sweeps for r in rows(path)]
    means = mean_over_seeds(table)
    families = sorted({r["family"] for r in means})
    fig, axes = plt.subplots(len(families), 2, figsize=(10, 3.6 * len(families)), squeeze=False)
    for (left, right), family in zip(axes, families, strict=True):
        for mode in sorted({r["mode"] for r in means if r["family"] == family}):
            rs = [r for r in means if (r["family"], r["mode"]) == (family, mode)]
            d, label = [r["d"] for r in rs], f"{mode} ({len(rs[0]['seeds'])} seeds)"
            p = np.array([100 * r["rate"] for r in rs])
            lo, hi = (np.array([100 * r["rate_range"][i] for r in rs]) for i in (0, 1))
            left.errorbar(d, p, yerr=np.stack([p - lo, hi - p]), marker="o", capsize=3, label=label)
            s = np.array([r["seam"] for r in rs])
            s_lo, s_hi = (np.array([r["seam_range"][i] for r in rs]) for i in (0, 1))
            right.errorbar(d, s, yerr=np.stack([s - s_lo, s_hi - s]), marker="o", capsize=3, label=label)
        left.set(title=f"{family}: success", ylabel="success %, mean over seeds (range)", ylim=(-5, 105))
        right.axhline(1.5, color="grey", linestyle=":", label="target 1.5x")
        right.set(title=f"{family}: seams", ylabel="seam jump / within-plan jump")
        for ax in (left, right):
            ax.set(xlabel="inference delay (control steps at 20 Hz)", xticks=sorted({r["d"] for r in table}))
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    delays = sorted({r["d"] for r in means})
    print("| family | run | " + " | ".join(f"d = {d}" for d in delays) + " |")
    print("|---|---|" + "---|" * len(delays))
    for family, mode in sorted({(r["family"], r["mode"]) for r in means}):
        cells = {r["d"]: r for r in means if (r["family"], r["mode"]) == (family, mode)}
        print(f"| {family} | {mode} | " + " | ".join(cell(cells[d]) if d in cells else "" for d in delays) + " |")
    print()
    print("| family | run | delay | success, mean (range) | per seed [95%] | seam ratio, mean (range) |")
    print("|---|---|---|---|---|---|")
    for r in means:
        per_seed = ", ".join(f"{s['seed']} {s['wins']}/{s['n']} [{100 * s['ci'][0]:.0f}-{100 * s['ci'][1]:.0f}]"
                             for s in r["seeds"])
        print(f"| {r['family']} | {r['mode']} | {r['d']} | {100 * r['rate']:.0f}% ({100 * r['rate_range'][0]:.0f}-"
              f"{100 * r['rate_range'][1]:.0f}) | {per_seed} | {r['seam']:.2f}x ({r['seam_range'][0]:.2f}-"
              f"{r['seam_range'][1]:.2f}) |")
    print("\n| family | run | seed | delay | success | seam ratio | first-plan jump planned / sent / within-plan | "
          "plan age p95 | held / ticks | jerk p95 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['family']} | {r['mode']} | {r['seed']} | {r['d']} ({r['ms']:.0f} ms) | "
              f"{100 * r['wins'] / r['n']:.0f}% [{100 * r['ci'][0]:.0f}-{100 * r['ci'][1]:.0f}] of {r['n']} | "
              f"{r['seam_ratio']:.2f}x | {r['first_jump']:.2f} / {r['first_sent']:.2f} / {r['within']:.2f} | "
              f"{r['age_p95']:.0f} ms | {r['held']} / {r['ticks']} | "
              f"{r['jerk_p95']:.1f} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
