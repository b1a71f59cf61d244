"""The policy process: newest observation -> chunk -> robot, as fast as inference allows, never blocking
the robot's control loop (it runs in the robot process at its own rate)."""

from __future__ import annotations

import sys
import time

import numpy as np

from embodied.errors import UserError
from embodied.runtime.robot import MessageError

REFUSED_IN_A_ROW = 100  # observations the policy refuses in a row before the loop gives up: a misconfiguration


def drive(robot, policy, replan_every: int = 1, idle_timeout: float = 5.0, episodes: int | None = None,
          alive=None, delay: float = 0.0) -> dict:
    """Plan on an observation at most every `replan_every` ticks (1: on every one that arrives); stop after
    `episodes` episodes ended, when `alive()` turns false (the robot process exited), or when the robot
    has been quiet for `idle_timeout` seconds. `delay` (s) holds each plan back until that long after its
    observation arrived (an injected inference delay: a slower model, a GPU across a network).

    A message that is not an observation, or an observation the policy refuses (wrong cameras or shapes),
    is counted and skipped; only REFUSED_IN_A_ROW of them in a row stop the loop, with the reason.
    A policy trained for real-time chunking (`continues_prefix`) gets, as its observation's "prefix", the
    first k of the actions the robot has committed to (the observation's "committed"), k the ticks its plan
    is expected to take to arrive: the recent observation-in -> plan-out time over the robot's tick period
    (both measured; the network's latency before the observation arrived is not seen from here).

    Returns planning latency percentiles (ms: inference alone, and observation in to plan out), how many
    plans were sent, the refused messages, the first plan's latency (the cold start), and the prefix
    lengths used."""
    latencies, turnaround, episode, last_tick, ended, quiet, done_seen = [], [], None, None, 0, 0.0, False
    bad, refused, in_a_row, prefixes, last_seen, period = 0, 0, 0, [], None, None
    continues = getattr(policy, "continues_prefix", False)
    while episodes is None or ended < episodes:
        try:
            obs = robot.get_observation(timeout=0.5)
        except MessageError as e:  # counted, never fatal; the first few are shown (a flood is not printed)
            bad += 1
            if bad <= 3:
                print(f"policy: refused a message{' (more are only counted)' * (bad == 3)}: {e}", file=sys.stderr,
                      flush=True)
            continue
        received = time.perf_counter()
        if obs is None:
            quiet += 0.5
            if quiet >= idle_timeout or (alive is not None and not alive()):
                break
            continue
        quiet = 0.0
        if obs.get("episode", 0) != episode:  # a new episode: no history carried over
            ended += episode is not None and not done_seen  # its final observation was conflated away
            policy.reset()
            episode, last_tick, done_seen = obs.get("episode", 0), None, False
        if obs.get("done"):
            ended += not done_seen
            done_seen = True
            continue
        if "time" in obs:
            if last_seen is not None and obs["tick"] > last_seen[0]:  # the robot's period, on its own clock
                period = (obs["time"] - last_seen[1]) / (obs["tick"] - last_seen[0])
            last_seen = (obs["tick"], obs["time"])
        if last_tick is not None and obs["tick"] - last_tick < replan_every:
            continue
        if continues and obs.get("committed") is not None:
            expected = float(np.median(turnaround[-10:])) if turnaround else delay
            k = int(np.floor(expected / period + 0.5)) if period else 0
            obs = {**obs, "prefix": obs["committed"][:k]}
            prefixes.append(len(obs["prefix"]))
        start = time.perf_counter()
        try:
            chunk = policy.act(obs)
        except UserError as e:
            refused, in_a_row = refused + 1, in_a_row + 1
            if in_a_row >= REFUSED_IN_A_ROW:
                raise UserError(f"the policy refused {in_a_row} observations in a row, the last: {e}") from e
            continue
        in_a_row = 0
        latencies.append(time.perf_counter() - start)
        if delay > 0:
            time.sleep(max(0.0, received + delay - time.perf_counter()))
        robot.send_action(chunk, obs["tick"], episode)
        turnaround.append(time.perf_counter() - received)
        last_tick = obs["tick"]
    return {"plans": len(latencies), "latency_ms": percentiles(latencies), "turnaround_ms": percentiles(turnaround),
            "first_plan_ms": 1e3 * turnaround[0] if turnaround else None, "delay_ms": 1e3 * delay,
            "bad_messages": bad, "refused_observations": refused,
            "prefix_steps": {"mean": float(np.mean(prefixes)), "max": int(max(prefixes))} if prefixes else None}


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3 if seconds else np.zeros(1)
    return {p: float(np.percentile(ms, q)) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))} | \
        {"max": float(ms.max())}
