"""Evaluation fanned out on a Ray cluster: `scripts/evaluate.py --ray ADDRESS`.

The episodes of each family are cut into parts of whole waves (`num_envs` episodes each, as the local run plays
them); each part is a Ray task that loads the policy and plays its seeds; the parts' episodes are put back in
order and summarized as one local run would. A deterministic policy (the regression head, the experts) gives
the same per-seed results as the local path. Ray comes through embodied.cluster.
"""

from __future__ import annotations

import time


def evaluate_on_ray(address: str, policy: str, families: list[str], episodes: int, seed_start: int, *,
                    part: int = 8, num_envs: int = 4, adapter=None, precision: str = "fp32", cpus: int | None = None,
                    **kwargs) -> tuple[dict, dict]:
    """The result of rollouts.evaluate(policy, families, episodes, seed_start, num_envs, **kwargs), played in
    parts of `part` episodes (rounded up to whole waves) by Ray tasks. address: 'local' starts Ray on this
    machine (with `cpus` CPUs), anything else is passed to ray.init (e.g. 'auto', 'ray://head:10001').
    Returns (results, {"tasks", "seconds", "episodes_per_minute"})."""
    from embodied.cluster import ray_session
    from embodied.evaluation.rollouts import mean_over, summary

    waves = -(-max(part, 1) // num_envs) * num_envs  # whole waves
    jobs = [(f, first, min(waves, episodes - first)) for f in families for first in range(0, episodes, waves)]
    with ray_session(address, cpus) as ray:
        play = ray.remote(num_cpus=1)(_play)
        start = time.perf_counter()
        parts = ray.get([play.remote(policy, adapter, precision, f, n, seed_start, num_envs, first, kwargs)
                         for f, first, n in jobs])
        seconds = time.perf_counter() - start
    results: dict = {}
    for family in families:
        runs = [r for (f, _, _), p in zip(jobs, parts, strict=True) if f == family for r in p[family]["runs"]]
        results[family] = summary(runs)
    results["mean"] = mean_over(results, families)
    return results, {"tasks": len(jobs), "seconds": seconds, "episodes_per_minute": 60 * episodes * len(families)
                     / seconds}


def _play(policy: str, adapter, precision: str, family: str, episodes: int, seed_start: int, num_envs: int,
          first: int, kwargs: dict) -> dict:
    from embodied.evaluation.rollouts import RandomPolicy, evaluate
    from embodied.evaluation.suite import load_policy

    runner, _ = load_policy(policy, adapter, precision)
    return evaluate(RandomPolicy() if runner == "random" else runner, [family], episodes, seed_start, num_envs,
                    progress=False, first=first, **kwargs)
