"""Pretrain the VLA. With no arguments: the main job on a 2-core CPU machine (~20 minutes): build the
default demonstration store if missing, pretrain the tiny preset, evaluate on held-out seeds, and print
success per task family next to a random policy.

    python scripts/train_vla.py
    python scripts/train_vla.py --preset small --head flow --dataset pretrain_full --name small_flow
    torchrun --nproc_per_node=8 scripts/train_vla.py --preset base --dataset pretrain_full --name base
"""

from __future__ import annotations

import json
import os

import tyro
from rich.console import Console
from rich.table import Table

from embodied.data.recipes import load_recipe, recipes_dir
from embodied.errors import cli
from embodied.paths import repo_root
from embodied.training.config import TrainConfig


def main(cfg: TrainConfig) -> None:
    from embodied.evaluation.rollouts import RandomPolicy, evaluate, failure_table, rate
    from embodied.training.loop import train

    rank = int(os.environ.get("RANK", 0))
    store = cfg.store or recipes_dir() / f"{cfg.dataset}.zarr"
    if cfg.store is None and rank == 0 and not _complete(store, cfg.dataset):
        from embodied.data.collect import collect

        collect(load_recipe(cfg.dataset), store, workers=2)
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        _wait_for_store(store)
    runs = cfg.out or repo_root() / "policies" / "runs"
    result = train(cfg, store, runs)
    if rank != 0 or "rollouts" not in result:
        return
    families = [f for f in result["rollouts"] if f != "mean"]
    # the random policy sees nothing, so its envs render nothing (several times faster)
    baseline = evaluate(RandomPolicy(), families, cfg.final_eval_episodes, progress=False,
                        env_config={"cameras": ()})
    table = Table(title=f"{cfg.name}: success over {cfg.final_eval_episodes} held-out seeds per family, "
                        f"[95% interval] (step {result['step']}, val loss {result.get('val_loss', float('nan')):.4f})")
    for col in ("family", "VLA", "random policy"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for f in [*families, "mean"]:
        table.add_row(f, rate(result["rollouts"][f]), rate(baseline[f]))
    console = Console()
    console.print(table)
    console.print(failure_table(result["rollouts"], families))
    out = runs / cfg.name / "eval.json"
    out.write_text(json.dumps({"vla": result, "random": baseline}, indent=2))
    print(f"run: {runs / cfg.name}  (checkpoints/, metrics.csv, curves.png, eval.json, failures/*.mp4)")


def _complete(store, dataset: str) -> bool:
    """Whether the recipe's store holds all its episodes; a store of another recipe version is not
    complete (collect() then says how it differs)."""
    from embodied.data.collect import recipe_signature
    from embodied.data.store import EpisodeStore

    if not store.exists():
        return False
    recipe, have = load_recipe(dataset), EpisodeStore.open(store)
    if recipe_signature(have.attrs.get("recipe", {})) != recipe_signature(vars(recipe)):
        return False
    return have.num_episodes >= recipe.episodes_per_family * len(recipe.families)


def _wait_for_store(store) -> None:
    import torch.distributed as dist

    from embodied.training import distributed

    distributed.setup()
    dist.barrier()  # rank 0 has built the store


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(TrainConfig)))
