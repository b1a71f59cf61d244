"""How far the inverse-dynamics labels are from the truth, per action dimension, as the video moves further
from the demonstrations: one model trained on the labelled demonstrations, then scored on the same scenes
recorded (with their actions kept) in each video recipe's look.

    python experiments/video_pretraining/label_error_looks.py [--seed 1]   # vp_video and vp_video_far, ~6 min

Stores go to --work as looks_*.zarr (collected once, resumable); the table is printed and written as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from embodied.data.collect import collect
from embodied.data.recipes import load_recipe
from embodied.errors import cli
from embodied.video.idm import label_error, train_idm

HERE = Path(__file__).resolve().parent


@dataclass
class Args:
    looks: list[Path] = field(default_factory=lambda: [HERE / "vp_video.yaml", HERE / "vp_video_far.yaml"])
    """Video recipes whose look (camera, light, table, arm) the labels are scored in."""
    labelled: Path = HERE / "vp_labelled.yaml"
    episodes_per_family: int = 10
    """Scenes per family scored in every look (their actions kept)."""
    seed_start: int = 250_000
    """First scene seed of the scored episodes (none of the recipes' own)."""
    steps: int = 1500
    seed: int = 0
    calibrate: bool = True
    work: Path = Path("datasets")
    """Where the stores go (looks_*.zarr)."""
    out: Path | None = None
    """Default: label_error_looks_seed<seed>.json beside this script."""


def main(args: Args) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    labelled = collect(load_recipe(args.labelled), args.work / "looks_labelled.zarr")
    model, fit = train_idm(labelled.path, steps=args.steps, seed=args.seed, calibrate=args.calibrate)
    mean = labelled.stats()["action"]["mean"]
    report = {"labelled": str(args.labelled), "steps": args.steps, "seed": args.seed, "fit": fit, "looks": {}}
    for look in args.looks:
        recipe = dataclasses.replace(load_recipe(look), drop_actions=False, seed_start=args.seed_start,
                                     episodes_per_family=args.episodes_per_family, name=f"{look.stem}_scored")
        store = collect(recipe, args.work / f"looks_{recipe.name}.zarr")
        report["looks"][look.stem] = label_error(model, store.path, range(store.num_episodes), mean)
    out = args.out or HERE / f"label_error_looks_seed{args.seed}.json"
    out.write_text(json.dumps(report, indent=1, default=float))
    dims = list(next(iter(report["looks"].values()))["per_dimension"])
    print("| look | " + " | ".join(f"{d} error (truth std)" for d in dims) + " | all | mean predictor |")
    print("|---|" + "---|" * (len(dims) + 2))
    for name, r in report["looks"].items():
        cells = [f"{v['labels_error']:.3f} ({v['true_std']:.3f})" for v in r["per_dimension"].values()]
        print(f"| {name} ({r['episodes']} episodes) | " + " | ".join(cells) +
              f" | {r['idm_error']:.4f} | {r['mean_error']:.3f} |")
    print(f"wrote {out}; spread of labels / truth per dimension in it")


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
