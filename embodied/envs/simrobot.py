"""The simulated robot as its own process, behaving like hardware: a fixed-rate control loop advancing
MuJoCo in real time, observations published late (latency) and noisy, action chunks applied late (delay)
and aligned to the tick they were computed for, the safety layer on every action, and a watchdog that
holds position when no fresh plan arrived within the timeout (never replaying a stale one).

    python -m embodied.envs.simrobot '{"rate": 20, "family": "press_button", "seeds": [1000000]}'

It serves the wire format of embodied.runtime.robot; `rehearse` (below; scripts/run_robot_loop.py) starts it
and drives it from the calling process. At the end it
writes a JSON report (per episode: success, ticks, holds, watchdog trips, deadline misses, jitter) and,
when asked, an mp4 and the episodes as an .npz (`record`; the caller turns it into a store with
embodied.data.collect.store_recorded: the simulator does not write stores).
"""

from __future__ import annotations

import heapq
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from embodied.errors import UserError
from embodied.runtime.accounting import deadlines, seams
from embodied.runtime.chunks import CATCH_UP_RATE, ChunkExecutor
from embodied.runtime.keys import Guard
from embodied.runtime.robot import MessageError, decode_chunk, encode_observation
from embodied.runtime.safety import SafetyConfig, SafetyLayer

COMMITTED = 16  # actions ahead each observation carries: what the arm will do unless a new plan comes


@dataclass
class SimRobotConfig:
    observations: str = "tcp://127.0.0.1:5555"
    actions: str = "tcp://127.0.0.1:5556"
    rate: float = 20.0
    """Control rate (Hz); the env steps 1/rate of physics per tick."""
    family: str = "suite"
    seeds: list[int] = field(default_factory=lambda: [1_000_000])
    instruction: str | None = None
    split: str = "train"
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    image_size: list[int] = field(default_factory=lambda: [96, 96])
    latency_ms: float = 0.0
    """Observation latency: an observation is published this long after it was captured."""
    action_delay_ms: float = 0.0
    """A chunk is applied no earlier than this long after it arrived."""
    state_noise: float = 0.0
    """Std of Gaussian noise on the published state."""
    timeout_ms: float = 250.0
    """Watchdog: hold when the newest plan arrived longer ago than this."""
    max_ticks: int | None = None
    """Ticks per episode (default: the family's step limit)."""
    start_timeout_s: float = 60.0
    """Give up if no plan arrives this long after the episode starts (the policy never came)."""
    stop_on_success: bool = True
    """End the episode when the task succeeds (False: run all max_ticks, e.g. for fault injection)."""
    safety: bool = True
    max_change: float = 0.5
    ramp: int = 8
    """Soft start: actions over which motion blends in after a hold (SafetyConfig.ramp; 1 = off)."""
    commit_gripper: bool = True
    """A plan that switches the gripper runs through the switch; plans arriving meanwhile are dropped
    (ChunkExecutor.committed). False: the newest plan always wins."""
    catch_up: bool = True
    """Receding, ee_delta actions: each action adds the motion its plan had made by now and the arm has not
    (a late plan's skipped head, a hold, the safety layer's cuts; ChunkExecutor.catch_up). False: the plan's
    actions as they are."""
    catch_up_rate: float = CATCH_UP_RATE
    """Share of what is owed added per action (below 1: spread over several)."""
    mode: str = "receding"
    """How plans become actions (ChunkExecutor): 'receding' (the newest plan) or 'ensemble' (temporal
    ensembling of every live plan)."""
    keys: str | None = None
    """A directory from `embodied keys` (robot.key_secret, policy.key): both sockets CURVE-encrypted, plans
    accepted only from the policy's key. Without keys, only loopback addresses are served."""
    report: str | None = None
    video: str | None = None
    record: str | None = None
    """Write the episodes (frames, states, the actions sent) to this .npz."""


def serve(cfg: SimRobotConfig) -> dict:
    import gymnasium as gym
    import zmq

    import embodied.envs as envs
    from embodied.envs.arm import WORKSPACE

    if cfg.rate <= 0:
        raise UserError(f"rate must be > 0 Hz, got {cfg.rate}")
    period = 1.0 / cfg.rate
    env = gym.make(envs.ENV_IDS[cfg.family], cameras=tuple(cfg.cameras), image_size=tuple(cfg.image_size),
                   split=cfg.split, ctrl_dt=round(period, 6))
    spec = env.unwrapped.action_spec
    safety = SafetyLayer(SafetyConfig(-np.ones(len(spec.names)), np.ones(len(spec.names)), cfg.max_change,
                                      WORKSPACE[:, 0], WORKSPACE[:, 1], np.asarray(spec.scale[:3]),
                                      list(spec.names).index("gripper"), ramp=cfg.ramp))
    ctx = zmq.Context()
    guard = Guard(ctx, cfg.keys, (cfg.observations, cfg.actions))  # before anything binds
    pub, pull = ctx.socket(zmq.PUB), ctx.socket(zmq.PULL)
    for socket in (pub, pull):
        guard.serve(socket)
    pub.setsockopt(zmq.LINGER, 500)  # the final observations still go out on close
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.MAXMSGSIZE, 1 << 20)  # a plan is a few kB: a larger message is dropped unread
    pub.bind(cfg.observations)
    pull.bind(cfg.actions)
    publisher = DelayedPublisher(pub, cfg.latency_ms / 1e3)
    rng = np.random.default_rng(0)
    episodes, frames, recorded = [], [], []
    try:
        for episode, seed in enumerate(cfg.seeds):
            options = {"instruction": cfg.instruction} if cfg.instruction else None
            obs, info = env.reset(seed=seed, options=options)
            limit = cfg.max_ticks or env.spec.max_episode_steps
            result = run_episode(env, obs, info, pull, publisher, safety, cfg, period, limit, episode, rng,
                                 frames if cfg.video else None, recorded if cfg.record else None)
            episodes.append({"seed": seed, **result})
            summary = {k: v for k, v in episodes[-1].items() if k != "log"}
            print(json.dumps({"episode": episode, **summary}), flush=True)
    finally:
        publisher.close()
        pub.close()
        pull.close()
        guard.stop()
        ctx.term()
        env.close()
    report = {"config": asdict(cfg), "episodes": episodes, "bad_messages": sum(e["bad_messages"] for e in episodes),
              "refused_keys": guard.refused}
    if cfg.video and frames:
        from embodied.media import write_mp4

        write_mp4(cfg.video, frames, fps=int(round(cfg.rate)))
    if cfg.record and recorded:
        _record(cfg.record, recorded)
    if cfg.report:
        Path(cfg.report).write_text(json.dumps(report, indent=2))
    return report


def run_episode(env, obs, info, pull, publisher, safety, cfg, period, limit, episode, rng, frames, recorded) -> dict:
    import zmq

    from embodied.envs.arm import gripper_command

    spec = env.unwrapped.action_spec
    relative = [i for i, n in enumerate(spec.names) if n != "gripper"] if spec.kind == "ee_delta" else []
    executor = ChunkExecutor(cfg.mode, gripper=list(spec.names).index("gripper") if cfg.commit_gripper else None,
                             catch_up=relative if cfg.catch_up and cfg.mode == "receding" else None,
                             catch_up_rate=cfg.catch_up_rate)
    # the arm starts with the gripper as the reset left it: holds before the first plan keep it so
    safety.reset(gripper=gripper_command(obs["state"][5]))  # STATE_SPEC: 5 joints, then the gripper opening
    ticks: list[dict] = []
    fresh_at: float | None = None  # when the newest usable plan arrived
    pending: list[tuple[float, int, int, np.ndarray]] = []  # (usable from, arrival no., tick, chunk): the delay
    bad, stale, trips, holding, first_plan, arrivals, newest = 0, 0, 0, True, None, 0, -1
    arrival_age: list[float] = []  # the tick a plan was computed for -> the plan usable on the robot (s)
    plans: dict[int, np.ndarray] = {}  # accepted plans by the tick they were computed for (the seam metric)
    previous = None  # the plan the last executed action came from
    steps: dict[str, list] = {"images": [], "state": [], "action": []}
    publisher.send(_observe(obs, cfg, rng), 0, episode)
    start = time.perf_counter()
    for tick in range(limit):
        scheduled = start + tick * period
        _sleep_until(scheduled)
        now = time.perf_counter()
        while pull.poll(0):
            raw = pull.recv(zmq.NOBLOCK)
            try:
                chunk, at, plan_episode = decode_chunk(raw, action_dim=len(spec.names))
            except MessageError as e:  # counted, never fatal: the loop goes on holding or on the last plan
                bad += 1
                if bad <= 3:
                    print(f"simrobot: refused a message{' (more are only counted)' * (bad == 3)}: {e}",
                          file=sys.stderr, flush=True)
                continue
            if plan_episode != episode:  # a late plan for the previous episode
                stale += 1
                continue
            arrivals += 1
            heapq.heappush(pending, (now + cfg.action_delay_ms / 1e3, arrivals, at, chunk))
        expected = executor.upcoming(1)  # what the current plan runs now if no new one takes over (the seams)
        while pending and pending[0][0] <= now:
            usable, _, at, chunk = heapq.heappop(pending)
            if at > tick:  # a plan can only be for an observation already published
                bad += 1
            elif at <= newest or (tick - at) * period > cfg.timeout_ms / 1e3:  # replayed, overtaken, or too old
                stale += 1
            else:
                executor.add(chunk, at)
                fresh_at, newest, plans[at] = usable, at, chunk
                arrival_age.append(now - (start + at * period))
                first_plan = first_plan if first_plan is not None else now - start
        hold = fresh_at is None or now - fresh_at > cfg.timeout_ms / 1e3 or not executor.covered()
        source = None if hold else executor.source()
        planned = continued = None
        if hold:
            trips += int(not holding and fresh_at is not None)
            holding = True
            executor.skip()
            sent = safety.hold()  # exactly "no motion": never rate-limited toward the last command
        else:
            holding = False
            action = planned = executor.next()
            if cfg.mode == "receding" and previous is not None and source != previous and len(expected):
                continued = expected[0]  # a seam: what the plan it replaces would have run now
            ee = obs["state"][6:9]  # STATE_SPEC: 5 joints, gripper opening, then ee_x, ee_y, ee_z
            sent = safety.filter(action, ee) if cfg.safety else np.asarray(action, np.float32)
            executor.sent(safety.unwalled if cfg.safety else sent)  # a wall's cut is not owed
        if recorded is not None:
            for k, v in (("images", obs["images"]), ("state", obs["state"]), ("action", sent)):
                steps[k].append(v)
        obs, _, terminated, truncated, info = env.step(sent)
        if frames is not None:
            from embodied.media import side_by_side

            frames.append(side_by_side(obs["images"], scale=2))
        done_at = time.perf_counter()
        ticks.append({"tick": tick, "jitter": now - scheduled, "late": done_at - scheduled > period, "held": hold,
                      "why": None if not hold else "no plan yet" if fresh_at is None else
                      "plan ran out" if now - fresh_at <= cfg.timeout_ms / 1e3 else "policy silent",
                      "stamp": now, "plan_age": None if fresh_at is None else now - fresh_at,
                      "plan": source, "action": _list(sent), "planned": _list(planned), "continued": _list(continued),
                      "ee": _list(obs["state"][6:9])})
        previous = source if not hold else previous
        plans.pop(tick - 64, None)  # long past any plan that can still be executed
        last = (terminated and cfg.stop_on_success) or tick == limit - 1
        publisher.send(_observe(obs, cfg, rng), tick + 1, episode, done=bool(last),
                       committed=executor.upcoming(COMMITTED))
        if terminated and cfg.stop_on_success:
            break
        if fresh_at is None and now - start > cfg.start_timeout_s:
            raise UserError(f"no plan arrived within {cfg.start_timeout_s} s: is the policy process running?")
    if recorded is not None and steps["state"]:
        recorded.append((steps, info))
    jitter = np.abs([t["jitter"] for t in ticks]) * 1e3
    return {"success": bool(info["success"]), "ticks": len(ticks), "instruction": info["instruction"],
            "held_ticks": sum(t["held"] for t in ticks), "watchdog_trips": trips,
            "deadline_misses": sum(t["late"] for t in ticks), "jitter_ms_p50": float(np.percentile(jitter, 50)),
            "jitter_ms_p99": float(np.percentile(jitter, 99)), "jitter_ms_max": float(jitter.max()),
            "first_plan_s": first_plan, "bad_messages": bad, "stale_plans_dropped": stale,
            "safety": dict(safety.events), **deadlines(ticks, arrival_age, period, cfg.timeout_ms / 1e3),
            **seams(ticks, list(spec.names).index("gripper"), period), "log": ticks}


def _list(a) -> list | None:
    return None if a is None else [round(float(x), 5) for x in a]


def _observe(obs: dict, cfg: SimRobotConfig, rng) -> dict:
    state = obs["state"] + (rng.normal(0, cfg.state_noise, obs["state"].shape) if cfg.state_noise else 0)
    return {**obs, "state": np.asarray(state, np.float32)}


def _sleep_until(t: float) -> None:
    while True:
        left = t - time.perf_counter()
        if left <= 0:
            return
        time.sleep(left - 0.0015 if left > 0.002 else 0)  # sleep coarse, spin the last 1.5 ms


class DelayedPublisher:
    """Publishes each observation `latency` seconds after it was captured, from its own thread, so a slow
    link never stalls the control loop."""

    def __init__(self, socket, latency: float):
        self.socket, self.latency = socket, latency
        self.queue: list = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def send(self, obs: dict, tick: int, episode: int, done: bool = False, committed=None) -> None:
        stamp = time.perf_counter()
        raw = encode_observation(obs, tick, stamp, committed, episode=episode, done=done)
        with self.cond:
            heapq.heappush(self.queue, (stamp + self.latency, tick, raw))
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.closed and (not self.queue or self.queue[0][0] > time.perf_counter()):
                    wait = self.queue[0][0] - time.perf_counter() if self.queue else None
                    self.cond.wait(wait)
                if self.closed:
                    return
                _, _, raw = heapq.heappop(self.queue)
            self.socket.send(raw)

    def close(self) -> None:
        """Stop the thread, then send what is still queued (the last episode's final observation)."""
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.thread.join(timeout=1)
        for _, _, raw in sorted(self.queue):
            self.socket.send(raw)


def _record(path: str, recorded: list) -> None:
    """Episodes as arrays: ep<i>_images_<camera> (T, H, W, 3), ep<i>_state, ep<i>_action, and `meta` (JSON)."""
    arrays, meta = {}, []
    for i, (steps, info) in enumerate(recorded):
        for camera in steps["images"][0]:
            arrays[f"ep{i}_images_{camera}"] = np.stack([s[camera] for s in steps["images"]])
        arrays[f"ep{i}_state"] = np.stack(steps["state"]).astype(np.float32)
        arrays[f"ep{i}_action"] = np.stack(steps["action"]).astype(np.float32)
        meta.append({"instruction": info["instruction"], "family": info["task"], "success": bool(info["success"])})
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rehearse(policy, robot_config: dict, replan_every: int = 1, episodes: int = 1,
             delay: float = 0.0) -> tuple[dict, dict]:
    """Start the simulated robot in its own process (this module, `robot_config` are its
    SimRobotConfig fields), drive it from this process with `policy` over local sockets (with the robot's
    keys, if it has them; each plan held back `delay` s), and return (the robot's report, the policy side's
    figures)."""
    import os
    import subprocess
    import tempfile

    from embodied.runtime.loop import drive
    from embodied.runtime.robot import ZmqRobot

    addresses = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    handle, name = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    report = Path(name)
    config = {**robot_config, "observations": addresses[0], "actions": addresses[1], "report": str(report)}
    process = subprocess.Popen([sys.executable, "-m", "embodied.envs.simrobot", json.dumps(config)],
                               stdout=subprocess.DEVNULL)
    robot = ZmqRobot(*addresses, keys=robot_config.get("keys"))
    robot.connect()
    try:
        stats = drive(robot, policy, replan_every, idle_timeout=60.0, episodes=episodes,
                      alive=lambda: process.poll() is None, delay=delay)
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


if __name__ == "__main__":
    from embodied.errors import cli

    cli(lambda: serve(SimRobotConfig(**json.loads(sys.argv[1]))))
