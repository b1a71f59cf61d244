"""Language sensitivity: in one scene with two candidate targets, does the policy go to the one it is told?

Each probe scene (a seed) is played once per candidate, with the instruction naming that candidate and
everything else identical. A policy that ignores the instruction succeeds about half the time on each
and goes to the other candidate the rest; one that listens succeeds on both.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from embodied.evaluation.rollouts import EVAL_SEED_START, wilson
from embodied.runtime.chunks import REPLAN_EVERY, ChunkExecutor

PROBES = {  # family -> (kind of candidate, template with {obj})
    "press_button": ("button", "press the {obj}"),
    "reach": ("object", "move the gripper to the {obj}"),
    "pick": ("object", "pick up the {obj}"),
}


def language_probe(policy, families: list[str], scenes: int, env_config: dict | None = None,
                   replan_every: int = REPLAN_EVERY, seed_start: int = EVAL_SEED_START + 500_000,
                   commit_gripper: bool = True, progress: bool = True) -> dict:
    """{family: {"runs", "success", "ci95", "wrong_target", "both_right"}} over `scenes` scenes x 2 candidates."""
    from embodied.envs import ENV_IDS
    from embodied.envs.tasks import describe

    out = {}
    bar = tqdm(total=2 * scenes * len(families), desc="language probe", unit="ep", disable=not progress, leave=False)
    for family in families:
        kind, template = PROBES[family]
        env = gym.make(ENV_IDS[family], **(env_config or {}))
        runs = []  # (scene, success, failure)
        for scene in range(scenes):
            seed = seed_start + scene
            env.reset(seed=seed)
            things = env.unwrapped.world.things
            pool = [t for t in things if t.kind == kind][:2]
            for target in pool:
                text = template.format(obj=describe(target, things))
                runs.append((scene, *_episode(env, policy, seed, text, replan_every, commit_gripper)))
                bar.update(1)
        env.close()
        wins = [r[1] for r in runs]
        per_scene = {}
        for scene, ok, _ in runs:
            per_scene.setdefault(scene, []).append(ok)
        out[family] = {"runs": len(runs), "success": float(np.mean(wins)), "ci95": wilson(sum(wins), len(wins)),
                       "wrong_target": float(np.mean([f == "wrong object" for _, _, f in runs])),
                       "both_right": float(np.mean([all(v) for v in per_scene.values()]))}
    bar.close()
    return out


def _episode(env, policy, seed: int, instruction: str, replan_every: int, commit: bool) -> tuple[bool, str]:
    obs, info = env.reset(seed=seed, options={"instruction": instruction})
    policy.reset()
    executor = ChunkExecutor.for_policy(policy, replan_every, commit)
    done = False
    while not done:
        if executor.needs_plan():
            executor.add(policy.act(obs))
        obs, _, terminated, truncated, info = env.step(executor.next())
        done = terminated or truncated
    return bool(info["success"]), str(info["failure"])
