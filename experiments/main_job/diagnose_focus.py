"""Does the policy know which object it is told about? On the first frame of fresh scenes (seeds from
1,000,000, the evaluation scenes), read the model's own estimates of where the named thing is, and say
how often the object nearest that estimate is the named one:

- `focus`: the auxiliary head's estimate (relative to the gripper; needs focus_loss > 0);
- `keypoint`: where the front camera's first keypoint looks, cast from the image onto the table top
  (needs keypoint_loss > 0 and a store with camera projections).

The first frame is the same state the demonstrations start from, so a wrong choice here is a grounding
error, not covariate shift. Privileged state gives the truth.

Then, for place (an instruction that names an object and a plate): which words the vision FiLM reads,
on the first frame and once the scripted expert has lifted the object. With `film_pool: state` the
reading can move from the object's words to the plate's; with `mean` it cannot.

    python experiments/main_job/diagnose_focus.py policies/runs/tiny_pretrain_small --scenes 30
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import tyro

from embodied.errors import UserError, cli


@dataclass
class Args:
    policy: Annotated[str, tyro.conf.Positional]
    """A run folder or checkpoint folder."""
    families: tuple[str, ...] = ("reach", "pick", "push", "place")
    """Families whose instruction names an object (or a button: press_button)."""
    scenes: int = 30
    """Scenes per family."""


def main(args: Args) -> None:
    import gymnasium as gym
    import torch
    from rich.console import Console
    from rich.table import Table

    from embodied.envs import ENV_IDS
    from embodied.envs.rendering import pixel_to_plane
    from embodied.envs.tasks import SLOTS
    from embodied.evaluation.rollouts import EVAL_SEED_START
    from embodied.evaluation.suite import load_policy
    from embodied.policies.model import FOCUS_SCALE

    named = [f for f, slots in SLOTS.items() if "obj" in slots]
    if bad := [f for f in args.families if f not in named]:
        raise UserError(f"--families {' '.join(bad)}: not a family whose instruction names an object or a "
                        f"button; expected some of {', '.join(named)}")
    policy, _ = load_policy(args.policy)
    model, spec = policy.model, policy.spec
    table = Table(title=f"{args.policy}: first-frame estimate nearest the named object, {args.scenes} scenes "
                        "per family [95%] (median distance from the named object)")
    for col in ("family", "focus head", "front keypoint"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for family in args.families:
        env = gym.make(ENV_IDS[family], cameras=tuple(model.cameras), image_size=tuple(spec["image_size"]))
        projection = env.unwrapped.camera_projections()["world"].get("front")
        hits = {"focus": [], "keypoint": []}
        for seed in range(EVAL_SEED_START, EVAL_SEED_START + args.scenes):
            obs, _ = env.reset(seed=seed)
            world, task = env.unwrapped.world, env.unwrapped.task
            images = {c: torch.from_numpy(obs["images"][c][None, None]) for c in model.cameras}
            state = model.normalize_state(torch.from_numpy(obs["state"][None, None]).float())
            lang, mask = policy.language.encode([obs["instruction"]])
            use_points = model.cfg.keypoint_loss > 0 and projection is not None and "front" in model.cameras
            with torch.no_grad():
                out = model.outputs(images, state, lang, mask, with_focus=model.cfg.focus_loss > 0,
                                    with_points=use_points)
            candidates = [t for t in world.things if t.kind == task.obj.kind]  # the objects, or the buttons
            guesses = {}
            if out["focus"] is not None:
                guesses["focus"] = world.grasp_pos[:2] + out["focus"][0, :2].numpy() * FOCUS_SCALE
            if use_points:
                h, w = spec["image_size"]
                xy = (out["points"]["front"][0, 0].numpy() + 1) / 2 * [w, h]
                guesses["keypoint"] = pixel_to_plane(projection, xy, world.pos(task.obj)[2])
            for name, guess in guesses.items():
                dist = {t.name: float(np.linalg.norm(world.pos(t)[:2] - guess)) for t in candidates}
                hits[name].append((min(dist, key=dist.get) == task.obj.name, dist[task.obj.name]))
        env.close()
        table.add_row(family, *(_cell(hits[k]) for k in ("focus", "keypoint")))
    Console().print(table)
    if "place" in args.families:
        Console().print(_film_reading(policy, args.scenes))


def _film_reading(policy, scenes: int):
    """Share of FiLM's weight on the object's words and on the plate's words, first frame / object held."""
    import gymnasium as gym
    import torch
    from rich.table import Table

    from embodied.envs import ENV_IDS
    from embodied.envs.experts import ScriptedExpert
    from embodied.evaluation.rollouts import EVAL_SEED_START

    model, spec = policy.model, policy.spec
    env = gym.make(ENV_IDS["place"], cameras=(), image_size=tuple(spec["image_size"]))
    tokenizer, shares = policy.language.tokenizer, {"first frame": [], "object held": []}
    for seed in range(EVAL_SEED_START, EVAL_SEED_START + scenes):
        obs, _ = env.reset(seed=seed)
        world, task, expert = env.unwrapped.world, env.unwrapped.task, ScriptedExpert(env)
        text = obs["instruction"]
        enc = tokenizer(text, truncation=True, max_length=policy.language.max_tokens)
        words = [None if w is None else text[slice(*enc.word_to_chars(w))].lower() for w in enc.word_ids()]
        groups = {"object": task.obj.words - task.target.words, "plate": task.target.words - task.obj.words}
        lang, mask = policy.language.encode([text])
        for phase in shares:
            if phase == "object held":
                for _ in range(200):
                    if world.grasped(task.obj) and world.pos(task.obj)[2] > task.obj.half + 0.03:
                        break
                    obs, *_ = env.step(expert.act(obs)[0])
                else:
                    break  # the expert never lifted it: skip the scene
            state = model.normalize_state(torch.from_numpy(obs["state"][None, None]).float())
            with torch.no_grad():
                weights = model.film_weights(state, lang, mask)[0, 0, : len(words)].numpy()
            shares[phase].append([sum(wt for wt, w in zip(weights, words, strict=True) if w in groups[g])
                                  for g in ("object", "plate")])
    env.close()
    table = Table(title=f"place, {scenes} scenes: share of FiLM's reading of the instruction (film_pool: "
                        f"{model.cfg.film_pool})")
    for col in ("gripper", "object's words", "plate's words"):
        table.add_column(col, justify="left" if col == "gripper" else "right")
    for phase, rows in shares.items():
        mean = np.mean(rows, axis=0) if rows else [np.nan, np.nan]
        table.add_row(f"{phase} ({len(rows)} scenes)", *(f"{100 * m:.0f}%" for m in mean))
    return table


def _cell(hits: list) -> str:
    if not hits:
        return "-"
    from embodied.evaluation.rollouts import wilson

    right = sum(ok for ok, _ in hits)
    lo, hi = wilson(right, len(hits))
    median = 100 * np.median([d for _, d in hits])
    return f"{100 * right / len(hits):.0f}% [{100 * lo:.0f}-{100 * hi:.0f}] ({median:.1f} cm)"


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
