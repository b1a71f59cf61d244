"""A training job as the scripts run it: build the store if missing, train (or fine-tune), then the final
table of success per family with 95% intervals next to a random policy, and why episodes failed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.console import Console

from embodied.data.places import location
from embodied.data.recipes import load_recipe, store_path
from embodied.paths import repo_root
from embodied.training.config import FinetuneConfig, TrainConfig


def run(cfg: TrainConfig) -> dict:
    """Returns the final evaluation ({} on other ranks or when stopped early)."""
    from embodied.evaluation.rollouts import EVAL_SEED_START, RandomPolicy, evaluate, failure_table
    from embodied.evaluation.suite import results_table, versions
    from embodied.training.loop import train

    rank = int(os.environ.get("RANK", 0))
    store = location(cfg.store) if cfg.store else store_path(cfg.dataset)
    if cfg.store is None and rank == 0 and not complete(store, cfg.dataset):
        from embodied.data.collect import collect

        # a worker per core but two (the writing process, the rest): on a 16-core GPU machine pretrain_full's 3,500
        # episodes took 82 s with 14 workers (43 episodes/s); 2 cores keep 2 workers
        collect(load_recipe(cfg.dataset), store, workers=max(2, (os.cpu_count() or 2) - 2))
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        _wait_for_store(store)
    runs = cfg.out or repo_root() / "policies" / "runs"
    result = train(cfg, store, runs)
    if rank != 0 or "rollouts" not in result:
        return {}
    families = [f for f in result["rollouts"] if f != "mean"]
    split = result.get("split")  # None: not the tabletop (Meta-World has one instruction per task)
    world = {"split": split, "version": result["world"]} if split else {}
    columns = {"VLA": result["rollouts"]}
    if cfg.random_baseline:  # the random policy sees nothing, so its envs render nothing (several times faster)
        columns["random policy"] = evaluate(RandomPolicy(), families, cfg.final_eval_episodes, progress=False,
                                            env_config={"cameras": ()} | world)
    console = Console()
    phrasing = f"world v{result['world']}, {split} instructions, " if split else ""
    console.print(results_table(f"{cfg.name}: success over {cfg.final_eval_episodes} scenes per family of the "
                                f"selection block (seeds from {EVAL_SEED_START:,}; the README's table reads the "
                                f"report block with scripts/evaluate.py --block report), {phrasing}[95% interval] "
                                f"(step {result['step']}, val loss "
                                f"{result.get('val_loss', float('nan')):.4f})", columns, families))
    console.print(failure_table(result["rollouts"], families))
    compared = None
    if isinstance(cfg, FinetuneConfig) and cfg.adapter == "lora" and cfg.compare_episodes > 0:
        from embodied.training.finetune import compare_with_base

        compared = compare_with_base(runs / cfg.name, families, cfg.compare_episodes, world)
        console.print(results_table(f"{cfg.name}: the new families and the base's own, adapter off and on "
                                    f"({cfg.compare_episodes} scenes per family, selection block)",
                                    compared["columns"], compared["families"]))
    out = runs / cfg.name / "eval.json"
    out.write_text(json.dumps({"vla": result, "random": columns.get("random policy"), "versions": versions(),
                               "compared_with_base": compared}, indent=2))
    print(f"run: {runs / cfg.name}  (checkpoints/, metrics.csv, curves.png, eval.json, failures/*.mp4)")
    return result


def complete(store: Path, dataset: str) -> bool:
    """Whether the recipe's store holds all its episodes; a store of another recipe version is not
    complete (collect() then says how it differs)."""
    from embodied.data.collect import collected_as, recipe_signature
    from embodied.data.store import EpisodeStore

    if not store.exists():
        return False
    recipe, have = load_recipe(dataset), EpisodeStore.open(store)
    if recipe_signature(have.attrs.get("recipe", {})) != recipe_signature(collected_as(recipe)):
        return False
    return have.num_episodes >= recipe.episodes_per_family * len(recipe.families)


def _wait_for_store(store: Path) -> None:
    import torch.distributed as dist

    from embodied.training import distributed

    distributed.setup()
    dist.barrier()  # rank 0 has built the store
