"""Does action-free video help? Few-demonstration success on tasks the labelled demonstrations never show
(open_drawer, close_drawer, press_button), N in {10, 25} demonstrations each, after:

    none      no pretraining (a fresh model trained on the N demonstrations)
    labelled  pretraining on labelled demonstrations of 4 other families (vp_labelled)
    idm       + action-free video of all 7 families (vp_video: another camera placement and light, no
              actions or states) labelled by an inverse-dynamics model trained on vp_labelled
    latent    + the same video with latent-action codes from a VQ model trained on all the video

then full fine-tuning on the N demonstrations (vp_fewshot), the same passes over them for every cell. Each training seed
(`--seeds`: the video models, the bases, the fine-tunes) works in --out/seed<k>/ with its own results.json.
Success on --episodes scenes per family of an evaluation block (the report block by default), the same scenes
for every cell, so every method is compared with labelled-only pretraining episode by episode (a paired sign
test over all seeds' scenes). results.md and results.png in --out cover every seed folder there.

    python experiments/video_pretraining/video_pretraining_experiment.py    # CPU setting (~90 min a seed, 2 cores)
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
    idm_keep: float = 1.0
    """Share of the inverse-dynamics labels kept, those whose overlapping predictions agree most (the rest are
    masked out in pretraining); 1 keeps all."""
    pretrain_steps: int = 1000
    finetune_steps: int = 400
    """Fine-tuning steps at N = 10; every N gets as many in proportion, so every cell makes the same passes over
    its demonstrations."""
    finetune_lr: float | None = None
    """Learning rate of the pretrained bases' full fine-tuning (default: finetune.py's, 1e-4). A fresh model
    always trains at 1e-3."""
    batch_size: int = 64
    """Pretraining batch (fine-tuning uses half)."""
    video_fraction: float = 0.5
    """Share of every pretraining batch from the video (idm, latent)."""
    video_weight: float = 0.5
    """Loss weight of video samples."""
    video_on_top: bool = False
    """Video bases add the video on top of a whole labelled batch (batch_size / (1 - video_fraction) samples), so
    every base sees the same labelled samples; without it the video takes its share of the same batch."""
    episodes: int = 30
    """Evaluation scenes per held-out task and cell."""
    block: str = "report"
    """Evaluation seed block: report (tables) or selection (choosing settings)."""
    seeds: tuple[int, ...] = (0,)
    """Training seeds; each runs in --out/seed<k>."""
    out: Path = Path("policies/runs/video_pretraining")


def main(args: Args) -> None:
    from embodied.data.recipes import recipes_dir
    from embodied.evaluation.rollouts import SEED_BLOCKS

    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown or args.block not in SEED_BLOCKS:
        raise UserError(f"methods must be among {list(METHODS)} (got {unknown}); block among {list(SEED_BLOCKS)}")
    if "idm" in args.methods and args.check_episodes < 1:
        raise UserError("--check-episodes must be >= 1: they measure the inverse-dynamics labels on the video")
    out = args.out if args.out.is_absolute() else repo_root() / args.out
    folder = args.stores or recipes_dir()
    stores = {name: ensure_store(name, folder) for name in (args.labelled, args.video, args.fewshot)}
    for seed in args.seeds:
        run_seed(args, seed, stores, folder, out / f"seed{seed}")
    done = [json.loads(p.read_text()) for p in sorted(out.glob("seed*/results.json"))]
    (out / "results.md").write_text(markdown(done))
    plot(done, out / "results.png")
    print((out / "results.md").read_text())
    print(f"wrote {out}/seed*/results.json, results.md, results.png")


def run_seed(args: Args, seed: int, stores: dict, folder: Path, out: Path) -> None:
    """One training seed's video models, bases and cells in `out`; what is already there with the same
    settings is kept."""
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if results.get("settings") != settings(args, seed):
        results = {"settings": settings(args, seed), "cells": {}, "video_models": {}}
    save = lambda: results_path.write_text(json.dumps(results, indent=2))  # noqa: E731
    labelled = {"idm": out / "video_idm.zarr", "latent": out / "video_latent.zarr"}
    for kind in (m for m in ("idm", "latent") if m in args.methods):
        model_json = out / kind / "model.json"
        report = json.loads(model_json.read_text())["report"] if model_json.exists() else {}
        if labelled[kind].exists() and report.get("settings") == label_settings(args, seed):  # labelled earlier
            results["video_models"][kind] = report
            continue
        shutil.rmtree(labelled[kind], ignore_errors=True)  # none yet, or from other settings
        if kind == "idm":
            check = ensure_store(args.video, folder, check=args.check_episodes)
            results["video_models"][kind] = label_idm(args, seed, stores, check, labelled[kind], out)
        else:
            results["video_models"][kind] = label_latent(args, seed, stores, labelled[kind], out)
        save()
    for method in (m for m in args.methods if m != "none"):
        if f"pretrain/{method}" not in results:
            results[f"pretrain/{method}"] = pretrain(args, seed, stores, labelled.get(method), method, out)
            save()
    for n in args.ns:
        for method in args.methods:
            key = f"{method}/{n}"
            if key not in results["cells"]:
                results["cells"][key] = finetune(args, seed, stores, method, n, out)
                save()
            print(f"seed {seed}, {key}: {summary(results['cells'][key])}")


# Options added after runs were made: at these values they are left out of the settings, so those runs resume.
LATER = {"video_on_top": False, "idm_keep": 1.0}


def label_settings(args: Args, seed: int) -> dict:
    """What makes two labellings of the video the same."""
    keys = ("labelled", "video", "model_steps", "batch_size", "check_episodes", "calibrate", "labelled_share",
            "idm_keep")
    return {k: getattr(args, k) for k in keys if not later_default(k, getattr(args, k))} | {"seed": seed}


def settings(args: Args, seed: int) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
            if k not in ("ns", "methods", "seeds", "out") and not later_default(k, v)} | {"seed": seed}


def later_default(key: str, value) -> bool:
    return key in LATER and LATER[key] == value


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


def label_idm(args: Args, seed: int, stores: dict, check: Path, dest: Path, out: Path) -> dict:
    from embodied.data.store import EpisodeStore
    from embodied.video import idm, models

    start, saved = time.perf_counter(), out / "idm" / "model.json"
    report = json.loads(saved.read_text())["report"] if saved.exists() else {}
    model_settings = lambda s: {k: v for k, v in s.items() if k != "idm_keep"}  # noqa: E731
    reuse = model_settings(report.get("settings", {})) == model_settings(label_settings(args, seed))
    if reuse:
        model = models.load(out / "idm")  # the same model: only which labels are kept changes
    else:
        model, report = idm.train_idm(stores[args.labelled], steps=args.model_steps, batch=args.batch_size,
                                      calibrate=args.calibrate, seed=seed)
        report["wall_s"] = round(time.perf_counter() - start, 1)
    report["video_domain"] = idm.label_error(model, check, range(EpisodeStore.open(check).num_episodes),
                                             report["mean_action"])
    report["settings"] = label_settings(args, seed)
    if reuse:  # its weights stay as they are
        saved.write_text(json.dumps({**model.meta, "report": report}, indent=2))
    else:
        models.save(model, out / "idm", report)
    idm.label_store(model, stores[args.video], dest, source=str(out / "idm"), keep=args.idm_keep)
    print(f"inverse dynamics: {json.dumps({k: v for k, v in report.items() if k != 'mean_action'})}")
    return report


def label_latent(args: Args, seed: int, stores: dict, dest: Path, out: Path) -> dict:
    from embodied.video import latent, models

    start = time.perf_counter()
    model, report = latent.train_latent([stores[args.labelled], stores[args.video]], steps=args.model_steps,
                                        batch=args.batch_size, labelled_share=args.labelled_share, seed=seed)
    report |= {"wall_s": round(time.perf_counter() - start, 1), "settings": label_settings(args, seed)}
    folder = models.save(model, out / "latent", report)
    latent.label_store(model, stores[args.video], dest, source=str(folder))
    print(f"latent actions: {json.dumps(report)}")
    return report


def pretrain(args: Args, seed: int, stores: dict, video: Path | None, method: str, out: Path) -> dict:
    from embodied.training.config import TrainConfig
    from embodied.training.run import run

    batch = on_top_batch(args.batch_size, args.video_fraction) if video and args.video_on_top else args.batch_size
    cfg = TrainConfig(name=f"pretrain_{method}", preset=args.preset, dataset=args.labelled, store=stores[args.labelled],
                      steps=args.pretrain_steps, batch_size=batch, video_store=video,
                      video_fraction=args.video_fraction,
                      video_weight=args.video_weight, eval_every=0, final_eval_episodes=0, random_baseline=False,
                      ckpt_every=args.pretrain_steps, out=out, fresh=True, seed=seed,
                      start_boost=1, release_boost=1)  # as measured (README); the main job's boosts came later
    start = time.perf_counter()
    run(cfg)
    return {"wall_s": round(time.perf_counter() - start, 1), "batch_size": batch}


def on_top_batch(batch_size: int, video_fraction: float) -> int:
    """A --video-on-top base's batch: `batch_size` demonstration windows (on average) plus its video share."""
    return round(batch_size / (1 - video_fraction))


def finetune(args: Args, seed: int, stores: dict, method: str, n: int, out: Path) -> dict:
    from embodied.data.recipes import load_recipe
    from embodied.evaluation.rollouts import SEED_BLOCKS, evaluate
    from embodied.policies.checkpoint import resolve_checkpoint
    from embodied.policies.policy import VLAPolicy
    from embodied.training.config import FinetuneConfig
    from embodied.training.run import run

    base = None if method == "none" else out / f"pretrain_{method}"
    steps = max(1, round(args.finetune_steps * n / 10))
    cfg = FinetuneConfig(name=f"{method}_{n}", base=base, preset=args.preset, adapter="full" if base else "scratch",
                         lr=args.finetune_lr if base else None,
                         dataset=args.fewshot, store=stores[args.fewshot], episodes_per_family=n,
                         steps=steps, batch_size=max(1, args.batch_size // 2), seed=seed,
                         final_eval_episodes=0, random_baseline=False, ckpt_every=steps, out=out,
                         fresh=True)
    start = time.perf_counter()
    run(cfg)
    wall = time.perf_counter() - start
    recipe = load_recipe(args.fewshot)
    policy = VLAPolicy.load(resolve_checkpoint(out / cfg.name, "cell"))
    rollouts = evaluate(policy, recipe.families, args.episodes, seed_start=SEED_BLOCKS[args.block],
                        env_config=recipe.env_config())
    return {"method": method, "n": n, "seed": seed, "steps": steps, "block": args.block, "rollouts": rollouts,
            "wall_s": round(wall, 1)}


def summary(cell: dict) -> str:
    from embodied.evaluation.rollouts import rate

    return f"success {rate(cell['rollouts']['mean'])}, {cell['wall_s']:.0f} s"


def markdown(seeds: list[dict]) -> str:
    """One row per N and method: each family's success per training seed, the mean over seeds (range), each
    seed's rate over all families [95%], and the paired comparison with labelled-only pretraining."""
    from embodied.evaluation.rollouts import rate

    cells = by_cell(seeds)
    if not cells:
        return "No cell has finished yet.\n"
    families = [f for f in next(iter(cells.values()))[0]["rollouts"] if f != "mean"]
    head = ["N", "pretraining", *families, "mean (range over seeds)", "per seed [95%]",
            "against labelled, same scenes", "fine-tune wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, method in sorted(cells, key=lambda k: (k[0], METHODS.index(k[1]))):
        row = cells[n, method]
        means = [100 * c["rollouts"]["mean"]["success"] for c in row]
        lines.append("| " + " | ".join([
            str(n), method,
            *[" / ".join(f"{100 * c['rollouts'][f]['success']:.0f}%" for c in row) for f in families],
            f"**{np.mean(means):.0f}%** ({min(means):.0f}-{max(means):.0f})",
            ", ".join(rate(c["rollouts"]["mean"]) for c in row),
            paired(row, cells.get((n, "labelled"), [])) if method != "labelled" else "-",
            f"{np.mean([c['wall_s'] for c in row]) / 60:.1f} min"]) + " |")
    for r in seeds:
        models, seed = r.get("video_models", {}), r["settings"]["seed"]
        if "idm" in models:
            m = models["idm"]
            lines += ["", f"Seed {seed}, inverse dynamics, mean |label - action| (env units): held-out demonstrations "
                          f"{m['heldout']['idm_error']:.3f} (mean predictor {m['heldout']['mean_error']:.3f}); the "
                          f"video's look {m['video_domain']['idm_error']:.3f} (mean predictor "
                          f"{m['video_domain']['mean_error']:.3f}); {m['wall_s'] / 60:.1f} min"]
            if "error_by_spread" in m["video_domain"]:
                keep = m["settings"].get("idm_keep", 1.0)
                lines[-1] += ("; the video's error by quarter of the pair predictions' spread, agreeing most to least: "
                              + " / ".join(f"{e:.3f}" for e in m["video_domain"]["error_by_spread"])
                              + f"; labels kept {keep:.0%}")
        if "latent" in models:
            m = models["latent"]
            h, p = m["heldout"], m.get("action_probe", {"codes_error": float("nan"), "mean_error": float("nan")})
            lines += ["", f"Seed {seed}, latent actions: {m['groups']} codes of {m['codes']} per frame pair; held-out "
                          f"perplexity {h['perplexity']}, codes over 1% of pairs {h['codes_over_1pct']}; action error "
                          f"from the codes {p['codes_error']:.3f} (mean predictor {p['mean_error']:.3f}); "
                          f"{m['wall_s'] / 60:.1f} min"]
    s, walls = seeds[0]["settings"], {}
    for r in seeds:
        for k, v in r.items():
            if k.startswith("pretrain/"):
                walls.setdefault(k.split("/")[1], []).append(v["wall_s"])
    if walls:
        video = (f"a video base's batch grows to {on_top_batch(s['batch_size'], s['video_fraction'])}, its "
                 f"{s['video_fraction']:.0%} video (weight {s['video_weight']}) on top of the same demonstration "
                 "samples"
                 if s.get("video_on_top") else
                 f"with video, {s['video_fraction']:.0%} of each batch is video (weight {s['video_weight']}), so those "
                 "bases see fewer demonstration samples")
        lines += ["", f"Pretraining: {s['pretrain_steps']} steps of {s['batch_size']} demonstration windows for every "
                      f"base; {video}. Wall time (mean over seeds): "
                      + ", ".join(f"{k} {np.mean(v) / 60:.1f} min" for k, v in walls.items())]
    lines += ["", f"Evaluation: {s['episodes']} scenes per family of the {s['block']} block, the same scenes for "
                  "every cell; training seeds " + ", ".join(str(r["settings"]["seed"]) for r in seeds) + "."]
    return "\n".join(lines) + "\n"


def by_cell(seeds: list[dict]) -> dict:
    """{(n, method): [the cell of each training seed, in seed order]}."""
    cells = {}
    for r in sorted(seeds, key=lambda r: r["settings"]["seed"]):
        for c in r["cells"].values():
            cells.setdefault((c["n"], c["method"]), []).append(c)
    return cells


def paired(row: list[dict], reference: list[dict]) -> str:
    """A method's episodes against the reference's on the same training seeds and scenes: the difference in
    points, the pairs only one of them won, and the sign test's p."""
    from embodied.evaluation.rollouts import sign_test

    ref = {c["seed"]: c for c in reference}
    a, b = [], []
    for c in (c for c in row if c["seed"] in ref):
        for family, entry in c["rollouts"].items():
            if family == "mean":
                continue
            theirs = {run["seed"]: run["success"] for run in ref[c["seed"]]["rollouts"][family]["runs"]}
            for run in (r for r in entry["runs"] if r["seed"] in theirs):
                a.append(run["success"])
                b.append(theirs[run["seed"]])
    if not a:
        return "-"
    t = sign_test(a, b)
    return (f"{100 * (np.mean(a) - np.mean(b)):+.0f} points; won {t['a_only']}, lost {t['b_only']} of {t['pairs']}; "
            f"p = {t['p']:.2g}")


def plot(seeds: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = by_cell(seeds)
    ns = sorted({n for n, _ in cells})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(METHODS)
    for k, method in enumerate(METHODS):
        xs = [i + (k - (len(METHODS) - 1) / 2) * width for i, n in enumerate(ns) if (n, method) in cells]
        rates = [[100 * c["rollouts"]["mean"]["success"] for c in cells[n, method]] for n in ns if (n, method) in cells]
        if not xs:
            continue
        ax.bar(xs, [np.mean(r) for r in rates], width, label=method, alpha=0.85)
        for x, r in zip(xs, rates, strict=True):
            ax.plot([x] * len(r), r, "k.", ms=5)
    ax.set_xticks(range(len(ns)), [f"N = {n}" for n in ns])
    ax.set(ylabel="success on held-out tasks (%)", ylim=(0, 100),
           title="few-demonstration success by pretraining (bar: mean; dots: training seeds)")
    ax.legend(fontsize=8, ncols=4)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
