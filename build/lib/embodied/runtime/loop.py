"""The policy process: newest observation -> chunk -> robot, as fast as inference allows, never blocking
the robot's control loop (it runs in the robot process at its own rate)."""

from __future__ import annotations

import time

import numpy as np


def drive(robot, policy, replan_every: int = 1, idle_timeout: float = 5.0, episodes: int | None = None) -> dict:
    """Plan on an observation at most every `replan_every` ticks (1: on every one that arrives); stop when
    the robot has been quiet for `idle_timeout` seconds or after `episodes` episodes ended. Returns
    inference latency percentiles (ms) and how many plans were sent."""
    latencies, episode, last_tick, ended = [], None, None, 0
    while episodes is None or ended < episodes:
        obs = robot.get_observation(timeout=idle_timeout)
        if obs is None:
            break
        if obs.get("episode") != episode:  # a new episode: no history carried over
            policy.reset()
            episode, last_tick = obs.get("episode"), None
        if obs.get("done"):
            ended += 1
            continue
        if last_tick is not None and obs["tick"] - last_tick < replan_every:
            continue
        start = time.perf_counter()
        chunk = policy.act(obs)
        latencies.append(time.perf_counter() - start)
        robot.send_action(chunk, obs["tick"])
        last_tick = obs["tick"]
    ms = np.asarray(latencies) * 1e3 if latencies else np.zeros(1)
    return {"plans": len(latencies), "latency_ms": {p: float(np.percentile(ms, q))
                                                   for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}}
