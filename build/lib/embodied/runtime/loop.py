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
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from embodied.errors import UserError
    from embodied.runtime.robot import ZmqRobot

    addresses = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    config = {**robot_config, "observations": addresses[0], "actions": addresses[1], "report": str(report)}
    process = subprocess.Popen([sys.executable, "-m", "embodied.runtime.simrobot", json.dumps(config)],
                               stdout=subprocess.DEVNULL)
    robot = ZmqRobot(*addresses)
    robot.connect()
    try:
        stats = drive(robot, policy, replan_every, idle_timeout=60.0, episodes=episodes)
    finally:
        robot.disconnect()
        if process.poll() is None:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
    if process.returncode != 0:
        raise UserError(f"the simulated robot exited with code {process.returncode}")
    result = json.loads(report.read_text())
    report.unlink()
    return result, stats
