"""Policy rollouts in the simulated tabletop (or Meta-World): success rate per task family (or task)."""

from __future__ import annotations

import math
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embodied.runtime.chunks import REPLAN_EVERY, ChunkExecutor

# Evaluation seeds, far from every recipe's: `selection` is the block settings may be chosen on, `report` the
# block only final tables read. Family k of the suite plays seeds start + k * FAMILY_STRIDE + i, so each family
# gets its own scenes (a seed draws the scene before the task).
SEED_BLOCKS = {"selection": 1_000_000, "report": 5_000_000}
EVAL_SEED_START = SEED_BLOCKS["selection"]
FAMILY_STRIDE = 100_000


def scene_seeds(seed_start: int, family: str, episodes: int) -> list[int]:
    """The seeds a family's episodes play: its own range of the block (Meta-World tasks: the block itself)."""
    from embodied.envs import FAMILIES

    offset = FAMILIES.index(family) * FAMILY_STRIDE if family in FAMILIES else 0
    return list(range(seed_start + offset, seed_start + offset + episodes))


def block_of(seed_start: int) -> str:
    """'report', 'selection' or 'seeds from N': which block a figure is on, for tables and eval.json."""
    return next((name for name, start in SEED_BLOCKS.items() if start == seed_start), f"seeds from {seed_start:,}")


class RandomPolicy:
    """Uniform random chunks: the baseline every success table is read against. `evaluate` sizes its
    actions to each env's action space (the tabletop's 5, Meta-World's 4)."""

    def __init__(self, action_dim: int = 5, horizon: int = 16, seed: int = 0):
        self.action_dim, self.horizon = action_dim, horizon
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, observation: dict) -> np.ndarray:
        return self.act_batch([observation])[0]

    def act_batch(self, observations: list[dict]) -> np.ndarray:
        return self.rng.uniform(-1, 1, (len(observations), self.horizon, self.action_dim)).astype(np.float32)


def evaluate(policy, families: list[str], episodes: int, seed_start: int = EVAL_SEED_START, num_envs: int = 4,
             replan_every: int = REPLAN_EVERY, env_config: dict | None = None, progress: bool = True,
             video_dir: Path | None = None, videos_per_family: int = 3, commit_gripper: bool = True,
             first: int = 0, scenes: dict[str, list[int]] | None = None) -> dict:
    """Run `episodes` per family, `num_envs` at a time in an AsyncVectorEnv; the policy acts on the batch
    (`act_batch`) and a ChunkExecutor per env turns chunks into actions. policy="expert" runs each family's
    scripted expert instead: it plans from the simulator's state, so in this process, one env, cameras off.
    Returns {family: {"success": rate, "episodes": n, "ci95": [lo, hi], "failures": {why: count},
              "disturbed": episodes that moved an object the task does not name,
              "runs": [{"seed", "instruction", "success", "failure", "disturbed"} per episode]},
     "mean": {the same over families, without runs}}. With `video_dir`, the first failed episodes of each family are
    written there as mp4 (cameras side by side, the instruction and why it failed as caption). With
    env_config {"instruction": "swap"}, each family also has "swap": the swapped goal's rate (and each run its
    "swap_success" and the "task" it was given), the original goal staying in "success".
    commit_gripper: plans that switch the gripper run through the switch (ChunkExecutor).
    first: skip each family's first episodes (a part of a fanned-out evaluation, embodied.evaluation.fanout: with
    `first` a multiple of num_envs, its waves, and so its episodes, are those of the whole run).
    scenes: {family: `episodes` seeds} to play instead of the block's (a demonstration's own scene, for one)."""
    import gymnasium as gym

    from embodied.envs import expert_for, gym_id, make_vector_env

    results = {}
    expert = isinstance(policy, str) and policy == "expert"
    bar = tqdm(total=episodes * len(families), desc=f"eval{' expert' if expert else ''}", unit="ep",
               disable=not progress, leave=False)
    for family in families:
        n_envs = 1 if expert else min(num_envs, episodes)
        if expert:
            config = {**(env_config or {}), "cameras": ()}
            venv = gym.vector.SyncVectorEnv([partial(gym.make, gym_id(family, config.get("version")), **config)],
                                            autoreset_mode=gym.vector.AutoresetMode.DISABLED)
            actor = _Expert(expert_for(venv.envs[0]))
        else:
            venv = make_vector_env(family, n_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED,
                                   **(env_config or {}))
            actor = policy
        if isinstance(actor, RandomPolicy):
            actor.action_dim = venv.single_action_space.shape[0]
        runs, filmed = [], 0
        if scenes:
            if len(scenes.get(family, ())) != episodes:
                raise ValueError(f"scenes[{family!r}] holds {len(scenes.get(family, ()))} seeds; expected {episodes}")
            family_seeds = [*scenes[family], *[scenes[family][-1]] * n_envs]  # a last wave runs full
        else:
            family_seeds = scene_seeds(seed_start, family, first + episodes + n_envs)[first:]
        for wave in range(0, episodes, n_envs):
            seeds = family_seeds[wave:wave + n_envs]
            keep = min(n_envs, episodes - wave)
            film = video_dir is not None and filmed < videos_per_family and not expert  # its cameras are off
            for ep in _run_wave(venv, actor, seeds, replan_every, film, commit_gripper)[:keep]:
                runs.append({k: ep[k] for k in ("seed", "instruction", "success", "failure", "disturbed", "task",
                                                "swap_success") if k in ep})
                if film and not ep["success"] and filmed < videos_per_family:
                    _write_failure(Path(video_dir), family, ep)
                    filmed += 1
            bar.update(keep)
        venv.close()
        results[family] = summary(runs)
    bar.close()
    results["mean"] = mean_over(results, families)
    return results


def summary(runs: list[dict]) -> dict:
    """One family's result from its episodes: success rate, interval, failures by reason, the runs."""
    wins = sum(r["success"] for r in runs)
    failures = Counter(r["failure"] for r in runs if not r["success"])
    out = {"success": wins / len(runs), "episodes": len(runs), "ci95": wilson(wins, len(runs)),
           "failures": dict(failures), "disturbed": sum(r.get("disturbed", False) for r in runs), "runs": runs}
    if any("swap_success" in r for r in runs):
        swapped = sum(r.get("swap_success", False) for r in runs)
        out["swap"] = {"success": swapped / len(runs), "episodes": len(runs), "ci95": wilson(swapped, len(runs))}
    return out


def mean_over(results: dict, families: list[str]) -> dict:
    """The mean over families; with equal episodes per family it is the pooled rate, whose interval this is."""
    wins = sum(round(results[f]["success"] * results[f]["episodes"]) for f in families)
    total = sum(results[f]["episodes"] for f in families)
    out = {"success": float(np.mean([results[f]["success"] for f in families])), "episodes": total,
           "ci95": wilson(wins, total), "disturbed": sum(results[f].get("disturbed", 0) for f in families),
           "failures": dict(sum((Counter(results[f]["failures"]) for f in families), Counter()))}
    if all("swap" in results[f] for f in families):
        swapped = sum(round(results[f]["swap"]["success"] * results[f]["episodes"]) for f in families)
        out["swap"] = {"success": float(np.mean([results[f]["swap"]["success"] for f in families])),
                       "episodes": total, "ci95": wilson(swapped, total)}
    return out


class _Expert:
    """A scripted expert as a one-env batch policy: `act_batch` of one observation."""

    def __init__(self, expert):
        self.expert = expert

    def reset(self) -> None:
        self.expert.reset()

    def act_batch(self, observations: list[dict]) -> np.ndarray:
        return self.expert.act(observations[0])[None]


def wilson(successes: int, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of a success rate: honest at 0% and 100% and for few episodes."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def sign_test(a: list[bool], b: list[bool]) -> dict:
    """Exact two-sided sign test of paired episodes (a[i] and b[i] played the same scene): of the pairs where
    one succeeded and the other did not, how many went each way, and the chance of a split at least that
    uneven if neither were better."""
    if len(a) != len(b):
        raise ValueError(f"paired episodes must match one to one: {len(a)} against {len(b)}")
    a_only = sum(x and not y for x, y in zip(a, b, strict=True))
    b_only = sum(y and not x for x, y in zip(a, b, strict=True))
    n, k = a_only + b_only, min(a_only, b_only)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"pairs": len(a), "a_only": a_only, "b_only": b_only, "p": p}


def rate(entry: dict) -> str:
    """'55% [34-74]': a success rate with its 95% interval, for tables."""
    lo, hi = entry["ci95"]
    return f"{100 * entry['success']:.0f}% [{100 * lo:.0f}-{100 * hi:.0f}]"


def _run_wave(venv, policy, seeds: list[int], replan_every: int, film: bool = False,
              commit_gripper: bool = True) -> list[dict]:
    """One episode per env: [{"success", "failure", "seed", "instruction", "frames"}] in env order."""
    obs, info = venv.reset(seed=seeds)
    n = len(seeds)
    policy.reset()
    executors = [ChunkExecutor.for_policy(policy, replan_every, commit_gripper) for _ in range(n)]
    done = np.zeros(n, bool)
    eps = [{"success": False, "failure": "", "seed": int(s), "instruction": str(obs["instruction"][i]), "frames": []}
           for i, s in enumerate(seeds)]
    for i, ep in enumerate(eps):
        # a control: the words shown differ from the task graded
        if "instruction" in info and info["instruction"][i] != ep["instruction"]:
            ep["task"] = str(info["instruction"][i])
    while not done.all():
        per_env = [_index(obs, i) for i in range(n)]
        if film:
            for i in np.flatnonzero(~done):
                eps[i]["frames"].append(per_env[i]["images"])
        if any(ex.needs_plan() for ex in executors):
            chunks = policy.act_batch(per_env)  # every env plans together; extra plans are dropped
            for ex, chunk in zip(executors, chunks, strict=True):
                if ex.needs_plan():
                    ex.add(chunk)
        actions = np.stack([ex.next() for ex in executors])
        obs, _, terminated, truncated, info = venv.step(actions)
        for i in np.flatnonzero(~done & (terminated | truncated)):
            eps[i]["success"], eps[i]["failure"] = bool(info["success"][i]), str(info["failure"][i])
            eps[i]["disturbed"] = bool(info.get("disturbed", np.zeros(n, bool))[i])
            if "swap_success" in info and info["_swap_success"][i]:
                eps[i]["swap_success"] = bool(info["swap_success"][i])
            done[i] = True
    return eps


def _write_failure(folder: Path, family: str, ep: dict) -> None:
    from embodied.media import caption, side_by_side, write_mp4

    text = f"{family} seed {ep['seed']}: {ep['instruction']} -- failed: {ep['failure']}"
    frames = [caption(side_by_side(f, 2), text, lines=2) for f in ep["frames"]]
    write_mp4(folder / f"{family}_seed{ep['seed']}.mp4", frames, fps=20)


def _index(obs: dict, i: int) -> dict:
    return {"images": {c: v[i] for c, v in obs.get("images", {}).items()}, "state": obs["state"][i],
            "instruction": obs["instruction"][i]}


def failure_table(rollouts: dict, families: list[str]):
    """A rich Table: per family, how many episodes failed for each reason (diagnosis.FAILURES); one line
    when none failed."""
    from rich.table import Table

    from embodied.envs.diagnosis import FAILURES

    if not any(rollouts[f].get("failures") for f in families):
        return "no episode failed"

    table = Table(title="why episodes failed (privileged state at the end of each failed episode); moved another: "
                        "episodes, failed or not, that moved an object the task does not name")
    table.add_column("family", no_wrap=True)
    for why in (*FAILURES, "moved another"):
        table.add_column(why, justify="right")
    for f in [*families, "mean"]:
        counts = rollouts[f].get("failures", {})
        table.add_row("all" if f == "mean" else f, *(str(counts.get(why, "")) for why in FAILURES),
                      str(rollouts[f].get("disturbed", "") or ""))
    return table
