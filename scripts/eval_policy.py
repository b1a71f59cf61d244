"""Evaluate a trained run: success per family with 95% intervals next to the random policy, on the
train or held-out split, why episodes failed, and how well the policy follows the instruction when a
scene holds two candidates.

    python scripts/eval_policy.py policies/runs/tiny_pretrain_small
    python scripts/eval_policy.py policies/runs/tiny_pretrain_small --split heldout --episodes 20
    python scripts/eval_policy.py policies/runs/tiny_pretrain_small --probe 10 --json eval_heldout.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro
from rich.console import Console
from rich.table import Table

from embodied.errors import UserError, cli


@dataclass
class Args:
    run: Annotated[Path, tyro.conf.Positional]
    """A run folder (its latest checkpoint is used), a checkpoint folder, or an exported bundle."""
    precision: str = "fp32"
    """For a bundle: fp32 or int8."""
    split: str = "train"
    """Instructions: 'train' (the training phrasings and targets), 'heldout' or 'all'."""
    episodes: int = 20
    """Episodes per family (seeds from 1,000,000, never used by a recipe)."""
    families: tuple[str, ...] = ()
    """Families to evaluate (default: those the run was trained on)."""
    replan_every: int = 8
    """Actions used from each chunk before re-planning."""
    probe: int = 0
    """Language probe: scenes per family (press_button, reach, pick), each played once per candidate."""
    random_baseline: bool = True
    """Also evaluate the random policy on the same seeds."""
    videos: Path | None = None
    """Write the first failed episodes of each family here as mp4."""
    json: Path | None = None
    """Also write every figure here."""


def main(args: Args) -> None:
    from embodied.evaluation.probe import PROBES, language_probe
    from embodied.evaluation.rollouts import RandomPolicy, evaluate, failure_table, rate
    from embodied.policies.policy import VLAPolicy
    from embodied.training.checkpoint import latest_checkpoint

    if (args.run / "policy_spec.json").is_file():  # an exported bundle, run by the torch-free runtime
        from embodied.envs import FAMILIES
        from embodied.runtime.bundle import OnnxPolicy

        ckpt, policy = args.run, OnnxPolicy(args.run, precision=args.precision)
        families = list(args.families) or [f for f in FAMILIES if f != "stack"]
    else:
        ckpt = args.run if (args.run / "policy.json").is_file() else latest_checkpoint(args.run)
        if ckpt is None:
            raise UserError(f"{args.run} holds no checkpoint (expected policy.json, checkpoints/step_*/, or an "
                            "exported bundle's policy_spec.json)")
        policy = VLAPolicy.load(ckpt)
        families = list(args.families) or _trained_families(ckpt)
    spec = policy.spec
    env_config = {"image_size": tuple(spec["image_size"]), "cameras": tuple(spec["cameras"]), "split": args.split}
    result = {"checkpoint": str(ckpt), "split": args.split,
              "vla": evaluate(policy, families, args.episodes, replan_every=args.replan_every, env_config=env_config,
                              video_dir=args.videos)}
    if args.random_baseline:
        result["random"] = evaluate(RandomPolicy(), families, args.episodes, progress=False,
                                    env_config={"cameras": (), "split": args.split})
    console = Console()
    table = Table(title=f"{ckpt}: {args.split} split, {args.episodes} seeds per family [95% interval]")
    for col in ("family", "VLA", *(["random policy"] if args.random_baseline else [])):
        table.add_column(col, justify="left" if col == "family" else "right")
    for f in [*families, "mean"]:
        table.add_row(f, rate(result["vla"][f]), *([rate(result["random"][f])] if args.random_baseline else []))
    console.print(table)
    console.print(failure_table(result["vla"], families))
    if args.probe:
        probe = [f for f in PROBES if f in families]
        result["probe"] = language_probe(policy, probe, args.probe, env_config, args.replan_every)
        table = Table(title=f"language probe: {args.probe} scenes per family, each played naming each of two "
                            "candidates")
        for col in ("family", "success", "went to the other one", "both right in a scene"):
            table.add_column(col, justify="left" if col == "family" else "right")
        for f, r in result["probe"].items():
            table.add_row(f, rate(r), f"{100 * r['wrong_target']:.0f}%", f"{100 * r['both_right']:.0f}%")
        console.print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def _trained_families(ckpt: Path) -> list[str]:
    from embodied.data.store import EpisodeStore

    trainer = ckpt / "trainer.json"
    config = json.loads(trainer.read_text()).get("config", {}) if trainer.is_file() else {}
    store = config.get("store") or None
    if store is None:
        from embodied.data.recipes import recipes_dir

        store = recipes_dir() / f"{config.get('dataset', 'pretrain_small')}.zarr"
    return sorted(set(EpisodeStore.open(store).meta("family").tolist()))


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
