"""Collect a recipe's expert demonstrations into a zarr store (resumable: rerun to fill gaps).

    python scripts/collect_demos.py pretrain_small            # -> datasets/pretrain_small.zarr
    python scripts/collect_demos.py datasets/my.yaml --out /tmp/my.zarr --workers 2
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from embodied.data.collect import collect
from embodied.data.recipes import load_recipe, recipes_dir
from embodied.errors import cli


@dataclass
class Args:
    recipe: Annotated[str, tyro.conf.Positional]
    """Recipe name (datasets/<name>.yaml) or path to a recipe file."""
    out: Path | None = None
    """Store path (default: datasets/<recipe name>.zarr)."""
    workers: int = 2
    """Parallel worker processes."""


def main(args: Args) -> None:
    recipe = load_recipe(args.recipe)
    store = collect(recipe, args.out or recipes_dir() / f"{recipe.name}.zarr", workers=args.workers)
    print(store)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
