"""Does the policy push the object straight? On push evaluation scenes, where the gripper is across the
push direction from the object's centre when the object first moves (the lateral offset at contact), how
far the object went, and whether the gripper ended past the object: a push that meets the object a few
centimetres off its centre line turns it aside and slides past it instead of driving it 8 cm ('went
past' in the failure breakdown).

    python experiments/push/diagnose_push.py policies/runs/tiny_pretrain_small --episodes 20
    python experiments/push/diagnose_push.py expert          # the scripted expert on the same scenes, for scale
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import tyro

from embodied.errors import UserError, cli
from embodied.evaluation.rollouts import EVAL_SEED_START
from embodied.runtime.chunks import REPLAN_EVERY

MOVED = 0.005  # the object counts as touched once it moved this far (m)


@dataclass
class Args:
    policy: Annotated[str, tyro.conf.Positional]
    """A run or checkpoint folder, an exported bundle, or 'expert'."""
    episodes: int = 20
    """Push scenes (seeds from --seed-start; the main job's evaluation uses the first 20)."""
    seed_start: int = EVAL_SEED_START
    replan_every: int = REPLAN_EVERY
    """Steps executed per plan (the evaluation's default)."""
    noise: float = 0.0
    """For 'expert': its action noise (the demonstrations are collected at 0.3)."""


def push_episode(env, policy, seed: int, replan_every: int = REPLAN_EVERY) -> dict:
    """One push episode: success, the direction, the lateral offset at first contact (m, None if the
    object never moved), how far it went along the direction, and the failure breakdown's diagnosis
    (embodied/envs/diagnosis.py: 'went past' when the gripper ended beyond the object's centre)."""
    from embodied.envs.tasks import DIRECTIONS
    from embodied.runtime.chunks import ChunkExecutor

    obs, info = env.reset(seed=seed)
    world, task = env.unwrapped.world, env.unwrapped.task
    along = DIRECTIONS[task.direction]
    across = np.array([-along[1], along[0]])
    policy.reset()
    executor = ChunkExecutor.for_policy(policy, replan_every)
    offset, done = None, False
    while not done:
        if executor.needs_plan():
            executor.add(policy.act(obs))
        obs, _, terminated, truncated, info = env.step(executor.next())
        done = terminated or truncated
        if offset is None and np.linalg.norm((world.pos(task.obj) - task.start)[:2]) > MOVED:
            offset = float((world.grasp_pos - world.pos(task.obj))[:2] @ across)
    return {"seed": seed, "direction": task.direction, "success": bool(info["success"]), "offset": offset,
            "moved": float((world.pos(task.obj) - task.start)[:2] @ along), "failure": str(info["failure"])}


def main(args: Args) -> None:
    import gymnasium as gym
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from embodied.envs import ENV_IDS, expert_for
    from embodied.evaluation.rollouts import rate, wilson
    from embodied.evaluation.suite import load_policy

    if args.episodes < 1 or args.replan_every < 1 or args.noise < 0:
        raise UserError(f"--episodes and --replan-every must be >= 1 and --noise >= 0, got {args.episodes}, "
                        f"{args.replan_every} and {args.noise}")
    expert = args.policy == "expert"
    if args.noise and not expert:
        raise UserError("--noise applies to 'expert' only")
    env = gym.make(ENV_IDS["push"], **({"cameras": ()} if expert else {}))
    policy = expert_for(env, noise=args.noise, seed=0) if expert else load_policy(args.policy)[0]
    if policy == "random":
        raise UserError("a random policy does not push; pass a run, a bundle or 'expert'")
    runs = [push_episode(env, policy, seed, args.replan_every)
            for seed in tqdm(range(args.seed_start, args.seed_start + args.episodes), desc="push", unit="ep")]
    env.close()

    def cm(values):
        return f"{100 * np.median(np.abs(values)):.1f} cm ({len(values)})" if len(values) else "-"

    table = Table(title=f"{args.policy}: push, seeds {args.seed_start}-{args.seed_start + args.episodes - 1}")
    for col in ("direction", "success [95%]", "offset at contact, median (n): successes", "failures",
                "failures that went past"):
        table.add_column(col, justify="left" if col == "direction" else "right")
    for direction in sorted({r["direction"] for r in runs}) + ["all"]:
        rows = [r for r in runs if direction in ("all", r["direction"])]
        wins = sum(r["success"] for r in rows)
        lost = [r for r in rows if not r["success"]]
        table.add_row(direction, f"{wins}/{len(rows)}: " + rate({"success": wins / len(rows),
                                                                 "ci95": wilson(wins, len(rows))}),
                      cm([r["offset"] for r in rows if r["success"] and r["offset"] is not None]),
                      cm([r["offset"] for r in lost if r["offset"] is not None]),
                      f"{sum(r['failure'] == 'went past' for r in lost)}/{len(lost)}")
    Console().print(table)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
