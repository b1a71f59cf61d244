"""Does pretraining + LoRA teach new tasks from few demonstrations? For N demonstrations per family of
the held-out set (stack, absent from pretraining; held-out phrasings and targets of pick and place):
(a) from scratch, (b) full fine-tuning, (c) LoRA on the frozen base, each through scripts/finetune.py's
loop with the same steps. Reports success per family on fixed seeds with 95% intervals, the action error
on held-out demonstrations of the same families (in env units: a continuous measure when success is
near 0), trainable parameters, adapter size and wall time; then the LoRA model on the pretraining
families with its adapter on and off (forgetting). Writes results.json, results.md and results.png.

    python experiments/finetune/finetune_experiment.py                    # CPU setting (~45 min on 2 cores)
    python experiments/finetune/finetune_experiment.py --ns 10 25 50 --episodes 100 --steps 3000 \\
        --base policies/runs/small_pretrain_full --out policies/runs/finetune_experiment_gpu   # GPU setting

Cells already in results.json are kept, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from embodied.errors import UserError, cli
from embodied.paths import repo_root

METHODS = ("scratch", "full", "lora")


@dataclass
class Args:
    base: Path = Path("policies/runs/tiny_pretrain_small")
    """The pretrained run (the main job's, by default)."""
    dataset: str = "finetune_heldout"
    """The held-out recipe (50 demonstrations per family)."""
    ns: tuple[int, ...] = (10, 25, 50)
    """Demonstrations per family."""
    methods: tuple[str, ...] = METHODS
    """Any of scratch, full, lora."""
    steps: int = 600
    """Optimizer steps per cell (the same for every method)."""
    batch_size: int = 32
    rank: int = 8
    """LoRA rank."""
    episodes: int = 30
    """Evaluation seeds per family and cell."""
    forget_episodes: int = 10
    """Seeds per pretraining family for the adapter on/off comparison (0 = skip)."""
    out: Path = Path("policies/runs/finetune_experiment")
    """Where the cells' runs and the results go."""


def main(args: Args) -> None:
    from embodied.data.collect import collect
    from embodied.data.recipes import load_recipe, recipes_dir
    from embodied.policies.checkpoint import resolve_checkpoint
    from embodied.training.run import complete

    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        raise UserError(f"unknown methods {unknown}; choose from {METHODS}")
    base = resolve_checkpoint(args.base, "--base")  # fails early, with the fix, when the main job has not been run
    out = args.out if args.out.is_absolute() else repo_root() / args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"cells": {}}
    results["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    store = recipes_dir() / f"{args.dataset}.zarr"
    if not complete(store, args.dataset):  # before any cell: the test demonstrations must exist
        collect(load_recipe(args.dataset), store, workers=2)
    test = test_episodes(args.dataset, max(args.ns))
    for n in args.ns:
        for method in args.methods:
            key = f"{method}/{n}"
            cell = results["cells"].get(key)
            if cell is None or cell.get("settings") != cell_settings(args):  # a cell of other settings: redo
                cell = results["cells"][key] = run_cell(args, method, n, out)
            if cell.get("test_episodes") != test.tolist():
                ckpt = out / f"{method}_{n}" / "checkpoints" / f"step_{args.steps:06d}"
                cell["action_error"], cell["test_episodes"] = action_error(ckpt, args.dataset, test), test.tolist()
            results_path.write_text(json.dumps(results, indent=2))
            print(f"{key}: {summary(results['cells'][key])}")
    if args.forget_episodes and "lora" in args.methods:
        key = f"lora/{max(args.ns)}"
        if "forgetting" not in results or results["forgetting"].get("cell") != key:
            results["forgetting"] = forgetting(base, out / key.replace("/", "_"), args.forget_episodes)
            results["forgetting"]["cell"] = key
            results_path.write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "results.png")
    print((out / "results.md").read_text())
    print(f"wrote {results_path}, results.md, results.png")


def run_cell(args: Args, method: str, n: int, out: Path) -> dict:
    from embodied.training.config import FinetuneConfig
    from embodied.training.run import run

    name = f"{method}_{n}"
    cfg = FinetuneConfig(name=name, base=args.base, adapter=method,  # scratch: the base's architecture, fresh
                         dataset=args.dataset, episodes_per_family=n, steps=args.steps, batch_size=args.batch_size,
                         rank=args.rank, final_eval_episodes=args.episodes, random_baseline=False, out=out,
                         fresh=True, ckpt_every=args.steps)
    start = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - start
    ckpt = out / name / "checkpoints" / f"step_{args.steps:06d}"
    cell = {"method": method, "n": n, "wall_s": round(wall, 1), "rollouts": result["rollouts"],
            "val_loss": result.get("val_loss"), "settings": cell_settings(args)}
    if method == "lora":
        meta = json.loads((ckpt / "adapter" / "adapter.json").read_text())
        cell |= {"trainable": meta["trainable"], "share": meta["share"],
                 "adapter_bytes": (ckpt / "adapter" / "adapter.safetensors").stat().st_size}
    else:
        from safetensors import safe_open

        with safe_open(ckpt / "model.safetensors", "pt") as f:
            total = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys()
                        if k.split(".")[-1] not in ("state_mean", "state_std", "action_low", "action_high"))
        cell |= {"trainable": total, "share": 1.0, "adapter_bytes": None}
    return cell


def cell_settings(args: Args) -> dict:
    """What makes two runs of a cell the same experiment."""
    return {"base": str(args.base), "dataset": args.dataset, "steps": args.steps, "batch_size": args.batch_size,
            "rank": args.rank, "episodes": args.episodes}


def test_episodes(dataset: str, largest_n: int, per_family: int = 10) -> np.ndarray:
    """The last `per_family` demonstrations of each family: no cell trains on them (N <= the rest)."""
    from embodied.data.recipes import recipes_dir
    from embodied.data.store import EpisodeStore

    store = EpisodeStore.open(recipes_dir() / f"{dataset}.zarr")
    families = store.meta("family")
    test = []
    for f in sorted(set(families.tolist())):
        eps = np.flatnonzero(families == f)
        if len(eps) < largest_n + per_family:
            raise UserError(f"{dataset} holds {len(eps)} demonstrations of {f!r}: N={largest_n} for training and "
                            f"{per_family} for testing need {largest_n + per_family}")
        test += eps[-per_family:].tolist()
    return np.array(sorted(test))


def action_error(ckpt: Path, dataset: str, test: np.ndarray, batches: int = 16) -> float:
    """Mean |predicted - demonstrated| action (env units, over the chunk) on the test demonstrations (the
    last 10 of each family, never trained on): how well a cell imitates the new tasks."""
    import torch

    from embodied.data.recipes import recipes_dir
    from embodied.data.windows import WindowDataset
    from embodied.policies.policy import VLAPolicy
    store_path = recipes_dir() / f"{dataset}.zarr"
    policy = VLAPolicy.load(ckpt)
    cfg = policy.model.cfg
    data = WindowDataset(store_path, cfg.obs_horizon, cfg.action_horizon, episodes=test, keep_gripper=False)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    errors, weights = [], []
    with torch.no_grad():
        for batch, _ in zip(loader, range(batches), strict=False):
            lang, mask = policy.language.encode(list(batch["instruction"]))
            chunk = policy.model.sample(batch["images"], policy.model.normalize_state(batch["state"].float()),
                                        lang, mask, generator=torch.Generator().manual_seed(0))
            err = (policy.model.denormalize_action(chunk) - batch["action"].float()).abs()  # (B, H, A)
            errors.append(float((err * batch["action_mask"]).sum()))
            weights.append(float(batch["action_mask"].sum()))
    return sum(errors) / sum(weights)


def forgetting(base: Path, run: Path, episodes: int) -> dict:
    """The pretraining families with the LoRA adapter on and off (the bare base), on the same seeds."""
    from embodied.evaluation.rollouts import evaluate
    from embodied.policies.policy import VLAPolicy

    policy = VLAPolicy.load(base)
    name = policy.load_adapter(run)
    families = ["reach", "pick", "push", "place", "open_drawer", "close_drawer", "press_button"]
    env_config = {"image_size": tuple(policy.spec["image_size"]), "cameras": tuple(policy.spec["cameras"])}
    result = {}
    for label, adapter in (("adapter_off", None), ("adapter_on", name)):
        policy.set_adapter(adapter)
        result[label] = evaluate(policy, families, episodes, env_config=env_config)
    return result


def summary(cell: dict) -> str:
    from embodied.evaluation.rollouts import rate

    return f"success {rate(cell['rollouts']['mean'])}, action error {cell['action_error']:.3f}, {cell['wall_s']:.0f} s"


def markdown(results: dict) -> str:
    from embodied.evaluation.rollouts import rate

    cells = sorted(results["cells"].values(), key=lambda c: (c["n"], METHODS.index(c["method"])))
    families = [f for f in cells[0]["rollouts"] if f != "mean"] if cells else []
    head = ["N", "method", *families, "mean", "action error", "trainable", "adapter", "wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        size = f"{c['adapter_bytes'] / 1e3:.0f} kB" if c["adapter_bytes"] else "-"
        lines.append("| " + " | ".join([str(c["n"]), c["method"], *[rate(c["rollouts"][f]) for f in families],
                                        rate(c["rollouts"]["mean"]), f"{c['action_error']:.3f}",
                                        f"{c['trainable']:,} ({100 * c['share']:.1f}%)", size,
                                        f"{c['wall_s'] / 60:.1f} min"]) + " |")
    if "forgetting" in results:
        f = results["forgetting"]
        fams = [k for k in f["adapter_off"] if k != "mean"]
        lines += ["", f"Forgetting ({f['cell']}): pretraining families, adapter off (the base) and on", "",
                  "| adapter | " + " | ".join([*fams, "mean"]) + " |", "|" + "---|" * (len(fams) + 2)]
        for label in ("adapter_off", "adapter_on"):
            lines.append(f"| {label.split('_')[1]} | " + " | ".join(rate(f[label][k]) for k in [*fams, "mean"]) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for method in METHODS:
        cells = sorted((c for c in results["cells"].values() if c["method"] == method), key=lambda c: c["n"])
        if not cells:
            continue
        ns = [c["n"] for c in cells]
        succ = np.array([c["rollouts"]["mean"]["success"] for c in cells])
        ci = np.array([c["rollouts"]["mean"]["ci95"] for c in cells])
        axes[0].errorbar(ns, 100 * succ, yerr=100 * np.abs(ci.T - succ), marker="o", capsize=3, label=method)
        axes[1].plot(ns, [c["action_error"] for c in cells], marker="o", label=method)
    axes[0].set(title="success on the held-out set [95% interval]", xlabel="demonstrations per family",
                ylabel="%", ylim=(-3, 103))
    axes[1].set(title="action error on unseen demonstrations", xlabel="demonstrations per family",
                ylabel="mean |a - a*| (env units)")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
