"""DAgger rounds on a pretrained run: the policy drives on fresh scenes, the scripted expert labels every
state it visits, the episodes join a copy of the run's demonstrations, and training continues through
the one loop (every weight, from the run's weights), then the final table.

    python experiments/dagger/dagger.py --base policies/runs/tiny_pretrain_small --name tiny_dagger
    python experiments/dagger/dagger.py --base ... --rounds 2 --episodes-per-family 40 --steps 1000

Round r lands in policies/runs/<name>_r<r>/; the aggregated store is policies/runs/<name>_data.zarr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tyro

from embodied.errors import UserError, cli


@dataclass
class Args:
    base: Path
    """The pretrained run (or checkpoint folder) to start from."""
    name: str = "dagger"
    rounds: int = 1
    """Collect-then-train rounds; each starts from the previous round's weights."""
    episodes_per_family: int = 40
    """Policy-driven episodes per family and round."""
    beta: float = 0.0
    """Probability that a step executes the expert's action instead of the policy's."""
    steps: int = 1000
    """Optimizer steps per round."""
    lr: float = 3e-4
    """Peak learning rate per round (warmup, then cosine)."""
    batch_size: int = 64
    seed_start: int = 100_000
    """Scenes of the policy-driven episodes (far from the recipes' and the evaluation's seeds)."""
    final_eval_episodes: int = 20
    out: Path | None = None
    """Runs folder (default: policies/runs)."""


def main(args: Args) -> None:
    from onpolicy import collect_on_policy, copy_store

    from embodied.data.recipes import load_recipe, recipes_dir
    from embodied.data.store import EpisodeStore
    from embodied.paths import repo_root
    from embodied.policies.checkpoint import resolve_checkpoint
    from embodied.policies.policy import VLAPolicy
    from embodied.training.config import FinetuneConfig
    from embodied.training.run import run

    runs = args.out or repo_root() / "policies" / "runs"
    ckpt = resolve_checkpoint(args.base, "--base")
    config = json.loads((ckpt.parent.parent / "config.json").read_text())
    source = Path(config["store"]) if config.get("store") else recipes_dir() / f"{config['dataset']}.zarr"
    if not source.exists():
        raise UserError(f"the base's demonstrations {source} are missing; collect them again first")
    recipe = load_recipe(config["dataset"]) if not config.get("store") else None
    data = runs / f"{args.name}_data.zarr"
    if not data.exists():
        copy_store(source, data)
    families = sorted(set(EpisodeStore.open(source).meta("family").tolist()))
    env_config = recipe.env_config() if recipe else {}
    current = ckpt
    for r in range(1, args.rounds + 1):
        name = f"{args.name}_r{r}"
        if not (runs / name / "eval.json").exists():
            store = EpisodeStore.open(data, mode="a")
            policy = VLAPolicy.load(current)
            rates = collect_on_policy(policy, store, families, args.episodes_per_family,
                                      args.seed_start + (r - 1) * args.episodes_per_family, args.beta,
                                      env_config=env_config)
            store.stats()
            print(f"round {r}: the policy's own success while collecting: "
                  + ", ".join(f"{f} {100 * v:.0f}%" for f, v in rates.items()))
            run(FinetuneConfig(name=name, base=current, adapter="full", dataset=config["dataset"], store=data,
                               steps=args.steps, lr=args.lr, batch_size=args.batch_size, warmup=50,
                               final_eval_episodes=args.final_eval_episodes, ckpt_every=args.steps,
                               out=args.out))
        current = resolve_checkpoint(runs / name)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
