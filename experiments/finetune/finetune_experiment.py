"""Does a pretrained VLA make a new task cheap? For the held-out families of `finetune_heldout` (stack, put in
drawer, place next to, press then pick: none in any pretraining set) and N demonstrations per family, every
method trains one model (or adapter) on the four families together, through scripts/finetune.py's loop:

    scratch      a fresh model of the base's architecture
    full         every weight of the main job's base
    lora         LoRA on the frozen base's backbone, rank 8 (the default before this study)
    lora_vision  LoRA on every stage (vision convolutions, FiLM, keypoints, language and state projections,
                 backbone), rank 4: the default since (chosen on the selection block, README)

Budget rule: the same optimizer steps and batch (so the same passes over the demonstrations) for every method
at a given N. Each cell is trained once per training seed; seed k fine-tunes the k-th base (the main job's
training seeds) with fine-tuning seed k. Success on `--episodes` scenes per family of the report block (seeds no
tuning looked at), training wordings, world v1, with 95% Wilson intervals; per cell the mean and range over the
training seeds, trainable share, adapter size and wall time, and success on some of the cell's own
demonstrations' scenes. Then the LoRA cell at the largest N on the base's own families, adapter off and on
(forgetting). Writes results.json, results.md and results.png under --out.

    python experiments/finetune/finetune_experiment.py                     # the report grid (18 cells, ~3 h on 2 cores)
    OMP_NUM_THREADS=1 python experiments/finetune/finetune_experiment.py --seeds 0 &   # the same in ~95 min:
    OMP_NUM_THREADS=1 python experiments/finetune/finetune_experiment.py --seeds 1     # one process per seed
    python experiments/finetune/finetune_experiment.py --block selection --ns 10 --seeds 0 --methods full \\
        --lr full 3e-4 --out policies/runs/tsel/full_3e-4                  # choosing settings

Cells already in results.json (with the same settings) are kept: an interrupted experiment continues. Two
processes may share --out when they run different seeds (each re-reads results.json before adding a cell).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from embodied.errors import UserError, cli
from embodied.paths import repo_root
from embodied.policies.config import LORA_EVERY_STAGE

METHODS = {
    "scratch": {"adapter": "scratch"},
    "full": {"adapter": "full"},
    "lora": {"adapter": "lora", "rank": 8, "targets": ("attn.qkv", "attn.out", "mlp.fc1", "mlp.fc2")},
    "lora_vision": {"adapter": "lora", "rank": 4, "targets": LORA_EVERY_STAGE},
}


@dataclass
class Args:
    bases: tuple[Path, ...] = (Path("policies/runs/loop_A"), Path("policies/runs/loop_B"))
    """The pretrained runs, one per training seed (the main job: scripts/train_vla.py --name loop_A --seed 0, loop_B
    --seed 1); seed k uses bases[k % len(bases)]."""
    dataset: str = "finetune_heldout"
    ns: tuple[int, ...] = (10, 25, 50)
    """Demonstrations per family."""
    methods: tuple[str, ...] = ("scratch", "full", "lora_vision")
    """Among METHODS (lora, the backbone alone, was measured on the first bases: README)."""
    seeds: tuple[int, ...] = (0, 1)
    """Training seeds per cell."""
    steps: int = 1000
    """Optimizer steps per cell, the same for every method."""
    batch_size: int = 32
    lr: dict[str, float] = field(default_factory=lambda: {"full": 1e-3, "lora_vision": 3e-3})
    """Per-method learning rate, e.g. --lr full 3e-4 (chosen on the selection block, README; a method not named
    here takes scripts/finetune.py's: 1e-3, 1e-4 for full)."""
    rank: dict[str, int] = field(default_factory=dict)
    """Per-method LoRA rank instead of METHODS', e.g. --rank lora_vision 8 (a rank sweep on the selection block)."""
    episodes: int = 30
    """Evaluation scenes per family and cell."""
    block: str = "report"
    """Evaluation seed block: report (the table) or selection (choosing settings)."""
    demo_scenes: int = 5
    """Also play each cell's first this many demonstrations' own scenes per family: fitting them and failing new
    scenes is memorizing; failing them too, the fine-tune has not learned the family at all (0 = skip)."""
    forget_episodes: int = 10
    """Scenes per base family for the adapter off/on comparison (0 = skip)."""
    out: Path = Path("policies/runs/transfer")


def main(args: Args) -> None:
    from embodied.data.collect import collect
    from embodied.data.recipes import load_recipe, store_path
    from embodied.evaluation.rollouts import SEED_BLOCKS
    from embodied.policies.checkpoint import resolve_checkpoint
    from embodied.training.run import complete

    unknown = sorted(set(args.methods) - set(METHODS))
    unknown += sorted(m for m in args.rank if METHODS.get(m, {}).get("adapter") != "lora")
    if unknown or args.block not in SEED_BLOCKS:
        raise UserError(f"methods must be among {list(METHODS)}, --rank only for the lora ones (got {unknown}); block "
                        f"among {list(SEED_BLOCKS)}")
    for base in args.bases:  # fails early, with the fix, when the main job has not been run
        resolve_checkpoint(base, "--bases")
    out = args.out if args.out.is_absolute() else repo_root() / args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"cells": {}}
    results["settings"] = json.loads(json.dumps(vars(args), default=str))
    store = store_path(args.dataset)
    if not complete(store, args.dataset):
        collect(load_recipe(args.dataset), store, workers=2)
    for n in args.ns:
        for method in args.methods:
            for seed in args.seeds:
                key = f"{method}/{n}/{seed}"
                if results["cells"].get(key, {}).get("settings") != cell_settings(args, method, seed):
                    results["cells"][key] = run_cell(args, method, n, seed, out)
                    save(results_path, results, key)
                cell, k = results["cells"][key], args.demo_scenes
                if k and cell.get("demo_scenes", {}).get("mean", {}).get("episodes") != k * (len(cell["rollouts"]) - 1):
                    policy = load_cell(out / run_name(method, n, seed))
                    cell["demo_scenes"] = evaluate_cell(policy, args.dataset, k, args.block, demo_seeds(store, n, k))
                    save(results_path, results, key)
                print(f"{key}: mean {100 * results['cells'][key]['rollouts']['mean']['success']:.0f}%")
    lora = next((m for m in ("lora_vision", "lora") if m in args.methods), None)
    if args.forget_episodes and lora:
        key = f"{lora}/{max(args.ns)}/{args.seeds[0]}"
        if results.get("forgetting", {}).get("cell") != key:
            results["forgetting"] = forgetting(out / run_name(*key.split("/")), args.dataset, args.forget_episodes,
                                               args.block)
            results["forgetting"]["cell"] = key
            save(results_path, results)
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "results.png")
    print((out / "results.md").read_text())
    print(f"wrote {results_path}, results.md, results.png")


def save(path: Path, results: dict, *keys: str) -> None:
    """Write results.json with the cells `keys` new or changed, keeping every other cell as it is on disk: two
    processes running other seeds or methods into the same --out keep each other's cells."""
    on_disk = json.loads(path.read_text())["cells"] if path.exists() else {}
    results["cells"] = {**results["cells"], **on_disk, **{k: results["cells"][k] for k in keys}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)


def run_name(method: str, n, seed) -> str:
    return f"{method}_{n}_s{seed}"


def cell_settings(args: Args, method: str, seed: int) -> dict:
    """What makes two runs of a cell the same experiment."""
    return {"base": str(args.bases[seed % len(args.bases)]), "dataset": args.dataset, "steps": args.steps,
            "batch_size": args.batch_size, "lr": args.lr.get(method), "episodes": args.episodes, "block": args.block,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in method_config(args, method).items()}}


def method_config(args: Args, method: str) -> dict:
    """The method's FinetuneConfig fields, with --rank's override."""
    return METHODS[method] | ({"rank": args.rank[method]} if method in args.rank else {})


def run_cell(args: Args, method: str, n: int, seed: int, out: Path) -> dict:
    from embodied.training.config import FinetuneConfig
    from embodied.training.run import run

    name, base = run_name(method, n, seed), args.bases[seed % len(args.bases)]
    cfg = FinetuneConfig(name=name, base=base, dataset=args.dataset, episodes_per_family=n, steps=args.steps,
                         batch_size=args.batch_size, seed=seed, lr=args.lr.get(method), final_eval_episodes=0,
                         random_baseline=False, out=out, fresh=True, ckpt_every=args.steps,
                         **method_config(args, method))
    start = time.perf_counter()
    run(cfg)
    wall = time.perf_counter() - start
    ckpt = out / name / "checkpoints" / f"step_{args.steps:06d}"
    policy = load_cell(out / name)
    cell = {"method": method, "n": n, "seed": seed, "wall_s": round(wall, 1),
            "settings": cell_settings(args, method, seed),
            "rollouts": evaluate_cell(policy, args.dataset, args.episodes, args.block)}
    if METHODS[method]["adapter"] == "lora":
        meta = json.loads((ckpt / "adapter" / "adapter.json").read_text())
        cell |= {"trainable": meta["trainable"], "share": meta["share"], "adapter_bytes": meta["size_bytes"]}
    else:
        total = sum(p.numel() for p in policy.model.parameters())
        cell |= {"trainable": total, "share": 1.0, "adapter_bytes": None}
    return cell


def load_cell(run: Path):
    """The cell's policy: its own weights, or for a LoRA cell the base it names with the adapter on."""
    from embodied.policies.checkpoint import resolve_checkpoint
    from embodied.policies.policy import VLAPolicy

    return VLAPolicy.load(resolve_checkpoint(run, "cell"))


def world(dataset: str) -> dict:
    """The env settings besides cameras the dataset's demonstrations were made in (tabletop: world version and
    instruction split; Meta-World: none)."""
    from embodied.data.recipes import load_recipe

    return {k: v for k, v in load_recipe(dataset).env_config().items() if k not in ("image_size", "cameras")}


def evaluate_cell(policy, dataset: str, episodes: int, block: str, scenes: dict[str, list[int]] | None = None) -> dict:
    """The dataset's families (tabletop families or Meta-World tasks) in its world, with the policy's cameras."""
    from embodied.data.recipes import load_recipe
    from embodied.evaluation.rollouts import SEED_BLOCKS, evaluate

    env_config = {"image_size": tuple(policy.spec["image_size"]), "cameras": tuple(policy.spec["cameras"])}
    return evaluate(policy, load_recipe(dataset).families, episodes, seed_start=SEED_BLOCKS[block],
                    env_config=env_config | world(dataset), scenes=scenes)


def demo_seeds(store_path: Path, n: int, k: int) -> dict[str, list[int]]:
    """The scenes of the first k of the n demonstrations per family a cell trained on."""
    from embodied.data.store import EpisodeStore
    from embodied.training.finetune import few_episodes

    store = EpisodeStore.open(store_path)
    train = few_episodes(store, n)[0]
    families, seeds = store.meta("family")[train], store.meta("seed")[train]
    return {f: [int(s) for s in seeds[families == f][:k]] for f in sorted(set(families.tolist()))}


def forgetting(run: Path, dataset: str, episodes: int, block: str) -> dict:
    """The base's own (pretraining) families with the adapter off (the bare base) and on, on the same scenes."""
    from embodied.evaluation.rollouts import SEED_BLOCKS
    from embodied.training.finetune import compare_with_base

    compared = compare_with_base(run, [], episodes, world(dataset), SEED_BLOCKS[block])
    off, on = compared["columns"].values()
    return {"adapter_off": off, "adapter_on": on}


def grid(results: dict) -> dict[tuple[str, int], list[dict]]:
    """(method, N) -> the cells of its training seeds, in seed order."""
    out: dict[tuple[str, int], list[dict]] = {}
    for c in results["cells"].values():
        out.setdefault((c["method"], c["n"]), []).append(c)
    return {k: sorted(cs, key=lambda c: c["seed"])
            for k, cs in sorted(out.items(), key=lambda kv: (kv[0][1], list(METHODS).index(kv[0][0])))}


def markdown(results: dict) -> str:
    from embodied.evaluation.rollouts import rate

    cells = grid(results)
    if not cells:
        return "no cells yet\n"
    families = [f for f in next(iter(cells.values()))[0]["rollouts"] if f != "mean"]
    head = ["N", "method", *families, "mean (range over seeds)", "per seed [95%]", "demo scenes", "trainable",
            "adapter", "wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (method, n), cs in cells.items():
        per_family = [" / ".join(f"{100 * c['rollouts'][f]['success']:.0f}%" for c in cs) for f in families]
        means = [c["rollouts"]["mean"]["success"] for c in cs]
        size = f"{cs[0]['adapter_bytes'] / 1e3:.0f} kB" if cs[0]["adapter_bytes"] else "-"
        lines.append("| " + " | ".join([str(n), method, *per_family,
                                        f"**{100 * np.mean(means):.0f}%** "
                                        f"({100 * min(means):.0f}-{100 * max(means):.0f})",
                                        ", ".join(rate(c["rollouts"]["mean"]) for c in cs),
                                        " / ".join(f"{100 * c['demo_scenes']['mean']['success']:.0f}%"
                                                   for c in cs if "demo_scenes" in c) or "-",
                                        f"{cs[0]['trainable']:,} ({100 * cs[0]['share']:.1f}%)", size,
                                        f"{np.mean([c['wall_s'] for c in cs]) / 60:.1f} min"]) + " |")
    if "forgetting" in results:
        f = results["forgetting"]
        fams = [k for k in f["adapter_off"] if k != "mean"]
        lines += ["", f"Forgetting ({f['cell']}): the base's families, adapter off (the base) and on", "",
                  "| adapter | " + " | ".join([*fams, "mean"]) + " |", "|" + "---|" * (len(fams) + 2)]
        for label in ("adapter_off", "adapter_on"):
            lines.append(f"| {label.split('_')[1]} | " + " | ".join(rate(f[label][k]) for k in [*fams, "mean"]) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in METHODS:
        points = sorted((n, [c["rollouts"]["mean"]["success"] for c in cs]) for (m, n), cs in grid(results).items()
                        if m == method)
        if not points:
            continue
        ns = [n for n, _ in points]
        mean = np.array([100 * np.mean(s) for _, s in points])
        lo, hi = (np.array([100 * f(s) for _, s in points]) for f in (np.min, np.max))
        ax.errorbar(ns, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=method)
    ax.set(title=f"{results['settings']['dataset']}: success (mean, range over training seeds)",
           xlabel="demonstrations per family", ylabel="success %", ylim=(-3, 103))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
