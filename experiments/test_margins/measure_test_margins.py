"""The spread of the suite's torch-dependent thresholds over seeds and thread counts, so each threshold
can sit far from where a working implementation lands (see the comments at each assert).

    python experiments/test_margins/measure_test_margins.py [--seeds 5] [--json margins.json]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from rich.console import Console
from rich.table import Table

from embodied.errors import cli
from embodied.paths import repo_root

sys.path.insert(0, str(repo_root()))  # the tests package lives in the clone, not in the installed library
from tests.policies.test_model import chunk_means, overfit_two_instructions  # noqa: E402


@dataclass
class Args:
    seeds: int = 5
    """Seeds per thread count."""
    threads: tuple[int, ...] = (1, 2)
    """torch thread counts to run under."""
    json: Path | None = None
    """Also write the figures here."""


def main(args: Args) -> None:
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for seed in range(args.seeds):
            model, x, losses, enc = overfit_two_instructions(seed)
            first, second = chunk_means(model, x, enc)
            rows.append({"threads": threads, "seed": seed, "loss_start": losses[0], "loss_end": losses[-1],
                         "mean_first": first, "mean_second": second})
    table = Table(title="overfit test: loss after 150 steps (threshold < 0.25); chunk means (> 0.2, < -0.2)")
    for col in rows[0]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()))
    Console().print(table)
    ends = [r["loss_end"] for r in rows]
    print(f"loss_end range {min(ends):.4f}-{max(ends):.4f}; "
          f"|chunk mean| min {min(min(r['mean_first'], -r['mean_second']) for r in rows):.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
