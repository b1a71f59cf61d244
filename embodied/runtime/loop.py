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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rehearse(policy, robot_config: dict, replan_every: int = 1, episodes: int = 1) -> tuple[dict, dict]:
    """Start the simulated robot in its own process (embodied.runtime.simrobot, `robot_config` are its
    SimRobotConfig fields), drive it from this process with `policy` over local sockets, and return
    (the robot's report, the policy side's latency figures)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from embodied.errors import UserError
    from embodied.runtime.robot import ZmqRobot

    addresses = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    handle, name = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    report = Path(name)
    config = {**robot_config, "observations": addresses[0], "actions": addresses[1], "report": str(report)}
    process = subprocess.Popen([sys.executable, "-m", "embodied.runtime.simrobot", json.dumps(config)],
                               stdout=subprocess.DEVNULL)
    robot = ZmqRobot(*addresses)
    robot.connect()
    try:
        stats = drive(robot, policy, replan_every, idle_timeout=60.0, episodes=episodes,
                      alive=lambda: process.poll() is None)
        process.wait(timeout=120)
    finally:
        robot.disconnect()
        if process.poll() is None:  # the policy side failed, or the robot hangs: do not leave it running
            process.terminate()
            process.wait(timeout=10)
        result = json.loads(report.read_text()) if report.stat().st_size else None
        report.unlink(missing_ok=True)
    if process.returncode != 0 or result is None:
        raise UserError(f"the simulated robot exited with code {process.returncode}")
    return result, stats
