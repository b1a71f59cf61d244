"""Does action-free video help? Few-demonstration success on tasks the labelled demonstrations never show
(open_drawer, close_drawer, press_button), N in {10, 25} demonstrations each, after:

    none      no pretraining (a fresh model trained on the N demonstrations)
    labelled  pretraining on labelled demonstrations of 4 other families (vp_labelled)
    idm       + action-free video of all 7 families (vp_video: another camera placement and light, no
              actions or states) labelled by an inverse-dynamics model trained on vp_labelled
    latent    + the same video with latent-action codes from a VQ model trained on all the video

then full fine-tuning on the N demonstrations (vp_fewshot), the same steps for every cell. Success on fixed
evaluation seeds per family with 95% Wilson intervals; results.json, results.md, results.png in --out.

    python experiments/video_pretraining/video_pretraining_experiment.py    # CPU setting (~90 min, 2 cores)
    python experiments/video_pretraining/video_pretraining_experiment.py --preset small \\
        --pretrain-steps 20000 --finetune-steps 3000 --model-steps 6000 --episodes 100 \\
        --out policies/runs/video_pretraining_gpu                                 # GPU setting

Finished steps (labelled stores, pretrained bases, cells) are kept, so an interrupted run continues.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from embodied.errors import UserError, cli
from embodied.paths import repo_root

METHODS = ("none", "labelled", "idm", "latent")


@dataclass
class Args:
    ns: tuple[int, ...] = (10, 25)
    """Demonstrations per held-out task."""
    methods: tuple[str, ...] = METHODS
    preset: str = "tiny"
    labelled: str = str(Path(__file__).resolve().parent / "vp_labelled.yaml")
    """Recipe (name or YAML path) of the labelled demonstrations (no held-out task)."""
    video: str = str(Path(__file__).resolve().parent / "vp_video.yaml")
    """Recipe of the action-free video."""
    fewshot: str = str(Path(__file__).resolve().parent / "vp_fewshot.yaml")
    """Recipe of the held-out tasks' demonstrations."""
    check_episodes: int = 10
    """Episodes per family of video like the recipe's but with actions, to measure the IDM's labels there."""
    stores: Path | None = None
    """Where the recipes' stores are (default: datasets/)."""
    model_steps: int = 1500
    """Training steps of the inverse-dynamics and latent-action models."""
    calibrate: bool = False
    """Calibrate the inverse-dynamics labels' spread per dimension on held-out demonstrations."""
    labelled_share: float = 0.0
    """Share of the latent-action model's training episodes whose actions supervise its codes (LAOM: 0.025)."""
    pretrain_steps: int = 1000
    finetune_steps: int = 400
    batch_size: int = 64
    """Pretraining batch (fine-tuning uses half)."""
    video_fraction: float = 0.5
    """Share of every pretraining batch from the video (idm, latent)."""
    video_weight: float = 0.5
    """Loss weight of video samples."""
    episodes: int = 30
    """Evaluation seeds per held-out task and cell."""
    out: Path = Path("policies/runs/video_pretraining")


def main(args: Args) -> None:
    from embodied.data.recipes import recipes_dir

    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        raise UserError(f"unknown methods {unknown}; choose from {METHODS}")
    out = args.out if args.out.is_absolute() else repo_root() / args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if results.get("settings") != settings(args):
        results = {"settings": settings(args), "cells": {}, "video_models": {}}
    save = lambda: results_path.write_text(json.dumps(results, indent=2))  # noqa: E731
    folder = args.stores or recipes_dir()
    if "idm" in args.methods and args.check_episodes < 1:
        raise UserError("--check-episodes must be >= 1: they measure the inverse-dynamics labels on the video")
    stores = {name: ensure_store(name, folder) for name in (args.labelled, args.video, args.fewshot)}
    labelled = {"idm": out / "video_idm.zarr", "latent": out / "video_latent.zarr"}
    for kind in (m for m in ("idm", "latent") if m in args.methods):
        model_json = out / kind / "model.json"
        report = json.loads(model_json.read_text())["report"] if model_json.exists() else {}
        if labelled[kind].exists() and report.get("settings") == label_settings(args):  # labelled earlier
            results["video_models"][kind] = report
            continue
        shutil.rmtree(labelled[kind], ignore_errors=True)  # none yet, or from other settings
        if kind == "idm":
            check = ensure_store(args.video, folder, check=args.check_episodes)
            results["video_models"][kind] = label_idm(args, stores, check, labelled[kind], out)
        else:
            results["video_models"][kind] = label_latent(args, stores, labelled[kind], out)
        save()
    for method in (m for m in args.methods if m != "none"):
        if f"pretrain/{method}" not in results:
            results[f"pretrain/{method}"] = pretrain(args, stores, labelled.get(method), method, out)
            save()
    for n in args.ns:
        for method in args.methods:
            key = f"{method}/{n}"
            if key not in results["cells"]:
                results["cells"][key] = finetune(args, stores, method, n, out)
                save()
            print(f"{key}: {summary(results['cells'][key])}")
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "results.png")
    print((out / "results.md").read_text())
    print(f"wrote {results_path}, results.md, results.png")


def label_settings(args: Args) -> dict:
    """What makes two labellings of the video the same."""
    return {k: getattr(args, k) for k in ("labelled", "video", "model_steps", "batch_size", "check_episodes",
                                          "calibrate", "labelled_share")}


def settings(args: Args) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("ns", "methods")}


def ensure_store(name: str, folder: Path, check: int = 0) -> Path:
    """The recipe's store in `folder`, collected if missing. check > 0: that many episodes per family like the
    recipe's but with their actions kept and other seeds, to measure inverse-dynamics labels where they
    are used."""
    from embodied.data.collect import collect
    from embodied.data.recipes import load_recipe

    recipe = load_recipe(name)
    if check:
        recipe = dataclasses.replace(recipe, name=f"{recipe.name}_check", drop_actions=False,
                                     episodes_per_family=check, seed_start=recipe.seed_start + 50000)
    path = folder / f"{recipe.name}.zarr"
    collect(recipe, path, workers=2)  # appends only what is missing
    return path


def label_idm(args: Args, stores: dict, check: Path, dest: Path, out: Path) -> dict:
    from embodied.data.store import EpisodeStore
    from embodied.video import idm, models

    start = time.perf_counter()
    model, report = idm.train_idm(stores[args.labelled], steps=args.model_steps, batch=args.batch_size,
                                  calibrate=args.calibrate)
    report["video_domain"] = idm.label_error(model, check, range(EpisodeStore.open(check).num_episodes),
                                             report["mean_action"])
    report |= {"wall_s": round(time.perf_counter() - start, 1), "settings": label_settings(args)}
    folder = models.save(model, out / "idm", report)
    idm.label_store(model, stores[args.video], dest, source=str(folder))
    print(f"inverse dynamics: {json.dumps({k: v for k, v in report.items() if k != 'mean_action'})}")
    return report


def label_latent(args: Args, stores: dict, dest: Path, out: Path) -> dict:
    from embodied.video import latent, models

    start = time.perf_counter()
    model, report = latent.train_latent([stores[args.labelled], stores[args.video]], steps=args.model_steps,
                                        batch=args.batch_size, labelled_share=args.labelled_share)
    report |= {"wall_s": round(time.perf_counter() - start, 1), "settings": label_settings(args)}
    folder = models.save(model, out / "latent", report)
    latent.label_store(model, stores[args.video], dest, source=str(folder))
    print(f"latent actions: {json.dumps(report)}")
    return report


def pretrain(args: Args, stores: dict, video: Path | None, method: str, out: Path) -> dict:
    from embodied.training.config import TrainConfig
    from embodied.training.run import run

    cfg = TrainConfig(name=f"pretrain_{method}", preset=args.preset, dataset=args.labelled, store=stores[args.labelled],
                      steps=args.pretrain_steps, batch_size=args.batch_size, video_store=video,
                      video_fraction=args.video_fraction,
                      video_weight=args.video_weight, eval_every=0, final_eval_episodes=0, random_baseline=False,
                      ckpt_every=args.pretrain_steps, out=out, fresh=True,
                      start_boost=1, release_boost=1)  # as measured (README); the main job's boosts came later
    start = time.perf_counter()
    run(cfg)
    return {"wall_s": round(time.perf_counter() - start, 1)}


def finetune(args: Args, stores: dict, method: str, n: int, out: Path) -> dict:
    from embodied.training.config import FinetuneConfig
    from embodied.training.run import run

    base = None if method == "none" else out / f"pretrain_{method}"
    cfg = FinetuneConfig(name=f"{method}_{n}", base=base, preset=args.preset, adapter="full" if base else "scratch",
                         dataset=args.fewshot, store=stores[args.fewshot], episodes_per_family=n,
                         steps=args.finetune_steps, batch_size=max(1, args.batch_size // 2),
                         final_eval_episodes=args.episodes, random_baseline=False,
                         ckpt_every=args.finetune_steps, out=out, fresh=True)
    start = time.perf_counter()
    result = run(cfg)
    return {"method": method, "n": n, "rollouts": result["rollouts"], "val_loss": result.get("val_loss"),
            "wall_s": round(time.perf_counter() - start, 1)}


def summary(cell: dict) -> str:
    from embodied.evaluation.rollouts import rate

    return f"success {rate(cell['rollouts']['mean'])}, {cell['wall_s']:.0f} s"


def markdown(results: dict) -> str:
    from embodied.evaluation.rollouts import rate

    cells = sorted(results["cells"].values(), key=lambda c: (c["n"], METHODS.index(c["method"])))
    families = [f for f in cells[0]["rollouts"] if f != "mean"] if cells else []
    head = ["N", "pretraining", *families, "mean", "fine-tune wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        lines.append("| " + " | ".join([str(c["n"]), c["method"], *[rate(c["rollouts"][f]) for f in families],
                                        rate(c["rollouts"]["mean"]), f"{c['wall_s'] / 60:.1f} min"]) + " |")
    models = results.get("video_models", {})
    if "idm" in models:
        m = models["idm"]
        lines += ["", f"Inverse dynamics, mean |label - action| (env units): held-out demonstrations "
                      f"{m['heldout']['idm_error']:.3f} (mean predictor {m['heldout']['mean_error']:.3f}); the video's "
                      f"camera and light {m['video_domain']['idm_error']:.3f} (mean predictor "
                      f"{m['video_domain']['mean_error']:.3f}); {m['wall_s'] / 60:.1f} min"]
    if "latent" in models:
        m = models["latent"]
        h, p = m["heldout"], m.get("action_probe", {"codes_error": float("nan"), "mean_error": float("nan")})
        lines += ["", f"Latent actions: {m['groups']} codes of {m['codes']} per frame pair; held-out perplexity "
                      f"{h['perplexity']}, codes over 1% of pairs {h['codes_over_1pct']}; action error from the codes "
                      f"{p['codes_error']:.3f} (mean predictor {p['mean_error']:.3f}); "
                      f"{m['wall_s'] / 60:.1f} min"]
    walls = {k.split("/")[1]: v["wall_s"] for k, v in results.items() if k.startswith("pretrain/")}
    if walls:
        s = results["settings"]
        lines += ["", f"Pretraining: {s['pretrain_steps']} steps of {s['batch_size']} for every base; with video, "
                      f"{s['video_fraction']:.0%} of each batch is video (weight {s['video_weight']}), so those bases "
                      "see fewer demonstration samples. Wall time: "
                      + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items())]
    return "\n".join(lines) + "\n"


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = results["cells"]
    ns = sorted({c["n"] for c in cells.values()})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(METHODS)
    for k, method in enumerate(METHODS):
        row = [cells.get(f"{method}/{n}") for n in ns]
        xs = [i + (k - (len(METHODS) - 1) / 2) * width for i, c in enumerate(row) if c]
        succ = np.array([c["rollouts"]["mean"]["success"] for c in row if c])
        if not len(succ):
            continue
        ci = np.array([c["rollouts"]["mean"]["ci95"] for c in row if c])
        ax.bar(xs, 100 * succ, width, yerr=100 * np.abs(ci.T - succ), capsize=3, label=method)
    ax.set_xticks(range(len(ns)), [f"N = {n}" for n in ns])
    ax.set(ylabel="success on held-out tasks (%)", ylim=(0, 100),
           title="few-demonstration success by pretraining [95% interval]")
    ax.legend(fontsize=8, ncols=4)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
