"""Collect a recipe's expert demonstrations into a zarr store (resumable: rerun to fill gaps).

    python scripts/collect_demos.py pretrain_small            # -> datasets/pretrain_small.zarr
    python scripts/collect_demos.py datasets/my.yaml --out /tmp/my.zarr --workers 2
    python scripts/collect_demos.py pretrain_small --out s3://bucket/small.zarr --ray auto --workers 64
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import tyro

from embodied.data.collect import collect
from embodied.data.recipes import load_recipe, recipes_dir
from embodied.errors import UserError, cli


@dataclass
class Args:
    recipe: Annotated[str, tyro.conf.Positional]
    """Recipe name (datasets/<name>.yaml) or path to a recipe file."""
    out: str | None = None
    """Store path or URL, e.g. s3://bucket/name.zarr (default: datasets/<recipe name>.zarr)."""
    workers: int = 2
    """Parallel worker processes (with --ray: Ray actors, a CPU each)."""
    ray: str | None = None
    """Play the episodes on Ray: 'local' (Ray started here with --workers CPUs), 'auto' (the cluster this
    machine belongs to) or ray://HOST:PORT. This process writes the store."""


def main(args: Args) -> None:
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    recipe = load_recipe(args.recipe)
    store = collect(recipe, args.out or recipes_dir() / f"{recipe.name}.zarr", workers=args.workers, ray=args.ray)
    print(store)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
