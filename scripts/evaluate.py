"""Evaluate any policy on the tabletop suite (or Meta-World tasks, in the env that has metaworld): success
per task family on fixed seeds with 95% (Wilson)
intervals next to the random policy, why episodes failed, episodes per minute, videos of failures, and
a JSON with the seeds and the versions that matter (code commit, MuJoCo, the model's sha256).

    python scripts/evaluate.py policies/runs/tiny_pretrain_small                  # the families it learned
    python scripts/evaluate.py policies/runs/tiny_pretrain_small --block report --episodes 30   # final tables
    python scripts/evaluate.py policies/runs/tiny_pretrain_small --split heldout --episodes 20
    python scripts/evaluate.py policies/runs/tiny_pretrain_small --instruction swap   # does it follow the words?
    python scripts/evaluate.py policies/runs/stack_lora --families stack          # a LoRA fine-tune
    python scripts/evaluate.py policies/runs/tiny_pretrain_small --adapter policies/runs/stack_lora
    python scripts/evaluate.py bundles/tiny --precision int8                      # an exported bundle
    python scripts/evaluate.py expert --episodes 50                              # the scripted experts
    python scripts/evaluate.py RUN --probe 10 --videos failures/ --json eval.json  # + language probe
    .venv-metaworld/bin/python scripts/evaluate.py policies/runs/mt10                # Meta-World: its tasks
    .venv-metaworld/bin/python scripts/evaluate.py expert --families reach-v3 push-v3
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro
from rich.console import Console

from embodied.errors import UserError, cli
from embodied.runtime.chunks import REPLAN_EVERY


@dataclass
class Args:
    policy: Annotated[str, tyro.conf.Positional]
    """A run folder (its latest checkpoint), a checkpoint folder, an exported bundle, 'expert' or 'random'."""
    adapter: Path | None = None
    """A LoRA adapter (a fine-tune run or adapter folder) to put on the policy."""
    precision: str = "fp32"
    """For a bundle: fp32 or int8."""
    split: str = "train"
    """Instructions (tabletop only): 'train' (the training phrasings and targets), 'heldout' (a held-out wording or
    a held-out target, told apart in a table), 'heldout_wording', 'heldout_target' or 'all'."""
    instruction: str = "given"
    """Controls: 'given' (the task's instruction), 'blank' (an empty one: how far the scene alone gets) or 'swap'
    (another valid instruction of the family for the same scene, the drawer's other direction: success at the
    original goal and at the swapped one)."""
    ray: str | None = None
    """Fan the episodes out on Ray: 'local' (a Ray on this machine) or a cluster's address ('auto',
    'ray://head:10001'). Parts of --ray-part episodes per family are Ray tasks; no failure videos."""
    ray_part: int = 8
    """Episodes per Ray task (rounded up to whole waves of --num-envs)."""
    ray_cpus: int | None = None
    """CPUs of a local Ray (default: all)."""
    world: int | None = None
    """Tabletop world version (default: the one the policy's training store was collected in, else the newest)."""
    episodes: int = 20
    """Scenes per family; family k of the suite plays seeds start + k * 100,000 + i, i < episodes."""
    block: str = "selection"
    """Seed block: 'selection' (from 1,000,000: choose settings here) or 'report' (from 5,000,000: final tables
    only). Both are far from every recipe's seeds."""
    seed_start: int | None = None
    """Another first seed instead of a block's."""
    families: tuple[str, ...] = ()
    """Families, or Meta-World tasks such as reach-v3 (default: those the policy was trained on; for a bundle
    the 7 pretraining families; every family for expert and random)."""
    num_envs: int = 4
    """Environments stepped in parallel (processes)."""
    replan_every: int = REPLAN_EVERY
    """Actions used from each chunk before re-planning."""
    commit_gripper: bool = True
    """Run a plan that switches the gripper through the switch before re-planning (--no-commit-gripper:
    plain receding horizon, the ablation)."""
    probe: int = 0
    """Language probe: scenes per family (press_button, reach, pick), each played once per candidate."""
    random_baseline: bool = True
    """Also evaluate the random policy on the same seeds."""
    videos: Path | None = None
    """Write the first failed episodes of each family here as mp4."""
    json: Path | None = None
    """Also write every figure here."""


def main(args: Args) -> None:
    from embodied.envs import FAMILIES, METAWORLD_IDS, available
    from embodied.envs.tabletop import INSTRUCTION_CONTROLS
    from embodied.envs.tasks import SPLITS, world_versions
    from embodied.evaluation.probe import PROBES, language_probe
    from embodied.evaluation.rollouts import SEED_BLOCKS, RandomPolicy, block_of, evaluate, failure_table, scene_seeds
    from embodied.evaluation.suite import load_policy, results_table, versions

    if args.split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}; got {args.split!r}")
    if args.instruction not in INSTRUCTION_CONTROLS:
        raise UserError(f"--instruction must be one of {', '.join(INSTRUCTION_CONTROLS)}; got {args.instruction!r}")
    if args.block not in SEED_BLOCKS:
        raise UserError(f"--block must be one of {', '.join(SEED_BLOCKS)}; got {args.block!r}")
    if args.world is not None and args.world not in world_versions():
        raise UserError(f"--world must be one of {world_versions()}; got {args.world}")
    seed_start = SEED_BLOCKS[args.block] if args.seed_start is None else args.seed_start
    if args.episodes < 1 or args.probe < 0:
        raise UserError(f"--episodes must be >= 1 and --probe >= 0, got {args.episodes} and {args.probe}")
    policy, info = load_policy(args.policy, args.adapter, args.precision)
    families = list(args.families) or trained_families(info) or list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES and f not in METAWORLD_IDS]
    if unknown:
        raise UserError(f"unknown families {unknown}; {available(unknown[0])}")
    suite = "metaworld" if families[0] in METAWORLD_IDS else "tabletop"
    if len({f in METAWORLD_IDS for f in families}) > 1:
        raise UserError(f"--families mixes tabletop families and Meta-World tasks {families}; evaluate each apart")
    if suite == "metaworld" and (args.split != "train" or args.instruction != "given" or args.world is not None):
        raise UserError("--split, --instruction and --world apply to the tabletop; a Meta-World task has one "
                        "instruction")
    world = trained_world(info) if args.world is None else args.world
    if args.split == "heldout_target":
        from embodied.envs.tasks import target_families

        skipped = [f for f in families if f not in target_families()]
        families = [f for f in families if f in target_families()]
        if skipped:
            print(f"--split heldout_target: leaving out {skipped}: they name no object or plate")
        if not families:
            raise UserError(f"--split heldout_target needs a family that names objects or plates: {target_families()}")
    env_config = {"split": args.split, "version": world, "instruction": args.instruction} if suite == "tabletop" else {}
    if not isinstance(policy, str):
        env_config |= {"image_size": tuple(policy.spec["image_size"]), "cameras": tuple(policy.spec["cameras"])}
    start = time.perf_counter()
    runner = RandomPolicy() if policy == "random" else policy
    config = env_config if policy != "random" else env_config | {"cameras": ()}
    if args.ray:
        from embodied.evaluation.fanout import evaluate_on_ray

        main_result, fanned = evaluate_on_ray(args.ray, args.policy, families, args.episodes, seed_start,
                                              part=args.ray_part, num_envs=args.num_envs, adapter=args.adapter,
                                              precision=args.precision, cpus=args.ray_cpus,
                                              replan_every=args.replan_every, env_config=config,
                                              commit_gripper=args.commit_gripper)
        print(f"ray: {fanned['tasks']} parts on {fanned['workers']} actors, "
              f"{fanned['episodes_per_minute']:.1f} episodes/min")
    else:
        main_result = evaluate(runner, families, args.episodes, seed_start, args.num_envs, args.replan_every,
                               config, video_dir=args.videos, commit_gripper=args.commit_gripper)
    seconds = time.perf_counter() - start
    per_minute = args.episodes * len(families) / seconds * 60
    columns = {args.policy if policy in ("expert", "random") else "policy": main_result}
    if args.random_baseline and policy != "random":
        columns["random policy"] = evaluate(RandomPolicy(), families, args.episodes, seed_start, args.num_envs,
                                            progress=False, env_config={**env_config, "cameras": ()})
    if args.instruction == "swap":  # the same episodes graded at the goal the words named
        columns = {f"{k}: {goal}": goals(v, goal) for k, v in columns.items()
                   for goal in ("original goal", "swapped goal")}
    console = Console()
    where = (f"world v{world}, {args.split} split, instruction {args.instruction}, " if suite == "tabletop"
             else "Meta-World, ")
    console.print(results_table(f"{args.policy}: {where}{args.episodes} scenes per family, {block_of(seed_start)} "
                                f"block [95% interval]", columns, families))
    console.print(failure_table(main_result, families))
    console.print(f"{args.episodes * len(families)} episodes in {seconds:.0f} s: {per_minute:.1f} episodes/min "
                  f"({'in this process' if policy == 'expert' else f'{args.num_envs} envs'})")
    result = {"policy": info, "suite": suite, "split": args.split if suite == "tabletop" else None,
              "world": world if suite == "tabletop" else None, "instruction": args.instruction,
              "families": families, "block": block_of(seed_start),
              "seeds": {f: scene_seeds(seed_start, f, args.episodes) for f in families},
              "replan_every": args.replan_every,
              "commit_gripper": args.commit_gripper, "results": main_result,
              "random": columns.get("random policy"), "episodes_per_minute": per_minute, "versions": versions()}
    if args.split == "heldout" and suite == "tabletop":
        result["heldout_kinds"] = heldout_kinds(main_result, families)
        console.print(heldout_table(result["heldout_kinds"]))
    if args.probe:
        if isinstance(policy, str):
            raise UserError("--probe measures a trained policy's use of the instruction")
        result["probe"] = language_probe(policy, [f for f in PROBES if f in families], args.probe, env_config,
                                         args.replan_every, commit_gripper=args.commit_gripper)
        console.print(probe_table(result["probe"], args.probe))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")


def heldout_kinds(results: dict, families: list[str]) -> dict:
    """{family: {"wording": [successes, episodes], "target": [...]}}: the held-out split's episodes told apart
    by what is new in them, a held-out wording or a held-out target named in a training wording."""
    from embodied.envs.scene import load_suite
    from embodied.envs.tasks import in_heldout_wording

    out = {}
    for f in families:
        kinds = {"wording": [0, 0], "target": [0, 0]}
        for run in results[f]["runs"]:
            kind = kinds["wording" if in_heldout_wording(run["instruction"], f, load_suite()) else "target"]
            kind[0] += int(run["success"])
            kind[1] += 1
        out[f] = kinds
    return out


def heldout_table(kinds: dict):
    from rich.table import Table

    from embodied.evaluation.rollouts import wilson

    def cell(wins: int, n: int) -> str:
        if not n:
            return "-"
        lo, hi = wilson(wins, n)
        return f"{wins}/{n}: {100 * wins / n:.0f}% [{100 * lo:.0f}-{100 * hi:.0f}]"

    table = Table(title="held-out split: what is new in the instruction")
    for name in ("family", "held-out wording", "held-out target, training wording"):
        table.add_column(name, justify="left" if name == "family" else "right")
    for f, k in kinds.items():
        table.add_row(f, cell(*k["wording"]), cell(*k["target"]))
    total = {w: [sum(k[w][i] for k in kinds.values()) for i in (0, 1)] for w in ("wording", "target")}
    table.add_row("all", cell(*total["wording"]), cell(*total["target"]))
    return table


def probe_table(probe: dict, scenes: int):
    from rich.table import Table

    from embodied.evaluation.rollouts import rate

    table = Table(title=f"language probe: {scenes} scenes per family, each played naming each of two candidates")
    for col in ("family", "success", "went to the other one", "both right in a scene"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for f, r in probe.items():
        table.add_row(f, rate(r), f"{100 * r['wrong_target']:.0f}%", f"{100 * r['both_right']:.0f}%")
    return table


def goals(result: dict, goal: str) -> dict:
    """A swap control's result read at one goal: the original task's ('success') or the swapped one's."""
    if goal == "original goal":
        return result
    return {f: r["swap"] for f, r in result.items()}


def trained_world(info: dict) -> int:
    """The world version the policy's training store was collected in (v0 for a store from before versions);
    the newest for experts, random, bundles and a missing store."""
    from embodied.envs import WORLD_VERSION

    store = _training_store(info, "--world")
    return WORLD_VERSION if store is None else store.attrs.get("recipe", {}).get("world", 0)


def trained_families(info: dict) -> list[str]:
    """The families a policy was trained on ([] when unknown: expert, random, a missing store)."""
    from embodied.envs import FAMILIES

    if info["kind"] == "bundle":
        return [f for f in FAMILIES if f != "stack"]  # stack is held out of pretraining
    store = _training_store(info, "--families")
    return [] if store is None else sorted(set(store.meta("family").tolist()))


def _training_store(info: dict, flag: str):
    """The store a checkpoint was trained on, opened; None for anything else or a store that is gone."""
    from embodied.data.places import exists
    from embodied.data.recipes import training_store
    from embodied.data.store import EpisodeStore

    if info.get("kind") != "checkpoint":
        return None
    path = training_store(info["checkpoint"])
    try:
        return EpisodeStore.open(path) if exists(path) else None
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a URL that cannot be reached: credentials, network
        raise UserError(f"cannot read {path}, the store the policy was trained on ({type(e).__name__}: {e}); "
                        f"give {flag} to evaluate without it") from None


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
