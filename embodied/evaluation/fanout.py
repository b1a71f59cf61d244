"""Evaluation fanned out on a Ray cluster: `scripts/evaluate.py --ray ADDRESS`.

The episodes of each family are cut into parts of whole waves (`num_envs` episodes each, as the local run plays
them); the parts are played by one Ray actor per CPU of the cluster, each loading the policy once; the parts'
episodes are put back in order and summarized as one local run would. A deterministic policy (the regression
head, the experts) gives the same per-seed results as the local path; one that samples gives the same results
from run to run. Ray comes through embodied.cluster.
"""

from __future__ import annotations

import time
import zlib


def evaluate_on_ray(address: str, policy: str, families: list[str], episodes: int, seed_start: int, *,
                    part: int = 8, num_envs: int = 4, adapter=None, precision: str = "fp32", cpus: int | None = None,
                    **kwargs) -> tuple[dict, dict]:
    """The result of rollouts.evaluate(policy, families, episodes, seed_start, num_envs, **kwargs), played in
    parts of `part` episodes (rounded up to whole waves) by Ray actors. address: 'local' starts Ray on this
    machine (with `cpus` CPUs), anything else is passed to ray.init (e.g. 'auto', 'ray://head:10001').
    Returns (results, {"tasks", "workers", "seconds", "episodes_per_minute"})."""
    from embodied.cluster import ray_session
    from embodied.evaluation.rollouts import mean_over, summary

    waves = -(-max(part, 1) // num_envs) * num_envs  # whole waves
    jobs = [(f, first, min(waves, episodes - first)) for f in families for first in range(0, episodes, waves)]
    with ray_session(address, cpus) as ray:
        from ray.util import ActorPool

        start = time.perf_counter()
        workers = max(1, min(len(jobs), int(ray.available_resources().get("CPU", 1))))
        actors = ActorPool([ray.remote(num_cpus=1)(_Player).remote(policy, adapter, precision)
                            for _ in range(workers)])
        parts = list(actors.map(lambda actor, job: actor.play.remote(*job, seed_start, num_envs, kwargs), jobs))
        seconds = time.perf_counter() - start
    results: dict = {}
    for family in families:
        runs = [r for (f, _, _), p in zip(jobs, parts, strict=True) if f == family for r in p[family]["runs"]]
        results[family] = summary(runs)
    results["mean"] = mean_over(results, families)
    return results, {"tasks": len(jobs), "workers": workers, "seconds": seconds,
                     "episodes_per_minute": 60 * episodes * len(families) / seconds}


class _Player:
    """A Ray actor: loads the policy once, then plays the parts it is given."""

    def __init__(self, policy: str, adapter, precision: str):
        from embodied.evaluation.rollouts import RandomPolicy
        from embodied.evaluation.suite import load_policy

        runner, _ = load_policy(policy, adapter, precision)
        self.runner = RandomPolicy() if runner == "random" else runner

    def play(self, family: str, first: int, episodes: int, seed_start: int, num_envs: int, kwargs: dict) -> dict:
        """One part. A policy that samples (a random policy, a flow head) is reseeded from the part itself,
        so which actor plays which part does not change the results."""
        import numpy as np
        import torch

        from embodied.evaluation.rollouts import evaluate

        seed = zlib.crc32(f"{seed_start}/{family}/{first}".encode())
        torch.manual_seed(seed)
        if isinstance(getattr(self.runner, "rng", None), np.random.Generator):
            self.runner.rng = np.random.default_rng(seed)
        return evaluate(self.runner, [family], episodes, seed_start, num_envs, progress=False, first=first, **kwargs)
