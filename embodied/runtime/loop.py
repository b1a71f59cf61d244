"""The policy process: newest observation -> chunk -> robot, as fast as inference allows, never blocking
the robot's control loop (it runs in the robot process at its own rate)."""

from __future__ import annotations

import time

import numpy as np


def drive(robot, policy, replan_every: int = 1, idle_timeout: float = 5.0, episodes: int | None = None,
          alive=None) -> dict:
    """Plan on an observation at most every `replan_every` ticks (1: on every one that arrives); stop after
    `episodes` episodes ended, when `alive()` turns false (the robot process exited), or when the robot
    has been quiet for `idle_timeout` seconds. Returns inference latency percentiles (ms) and how many
    plans were sent."""
    latencies, episode, last_tick, ended, quiet, done_seen = [], None, None, 0, 0.0, False
    while episodes is None or ended < episodes:
        obs = robot.get_observation(timeout=0.5)
        if obs is None:
            quiet += 0.5
            if quiet >= idle_timeout or (alive is not None and not alive()):
                break
            continue
        quiet = 0.0
        if obs.get("episode") != episode:  # a new episode: no history carried over
            ended += episode is not None and not done_seen  # its final observation was conflated away
            policy.reset()
            episode, last_tick, done_seen = obs.get("episode"), None, False
        if obs.get("done"):
            ended += not done_seen
            done_seen = True
            continue
        if last_tick is not None and obs["tick"] - last_tick < replan_every:
            continue
        start = time.perf_counter()
        chunk = policy.act(obs)
        latencies.append(time.perf_counter() - start)
        robot.send_action(chunk, obs["tick"], obs.get("episode", 0))
        last_tick = obs["tick"]
    ms = np.asarray(latencies) * 1e3 if latencies else np.zeros(1)
    return {"plans": len(latencies), "latency_ms": {p: float(np.percentile(ms, q))
                                                   for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}}
