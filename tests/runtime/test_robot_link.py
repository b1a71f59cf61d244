"""The robot link: the wire decoders refuse anything malformed with a MessageError (fuzzed, both
directions) and neither side stops for one; CURVE keys keep a rogue process on the same machine from
reading observations or moving the arm; the deadline and seam accounting."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from embodied.envs.simrobot import free_port
from embodied.errors import UserError
from embodied.runtime.accounting import deadlines, seams
from embodied.runtime.keys import Guard, is_loopback, load_keys, make_keys
from embodied.runtime.loop import drive
from embodied.runtime.robot import (
    MessageError,
    ZmqRobot,
    decode_chunk,
    decode_observation,
    encode_chunk,
    encode_observation,
)

ROOT = Path(__file__).resolve().parents[2]
OBS = {"images": {"front": np.zeros((4, 4, 3), np.uint8)}, "state": np.zeros(3, np.float32), "instruction": "x"}
VALID = {"obs": msgpack.unpackb(encode_observation(OBS, 3, 1.5, np.zeros((2, 5)), episode=0, done=False)),
         "chunk": msgpack.unpackb(encode_chunk(np.zeros((16, 5), np.float32), 7))}
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8)
           | st.binary(max_size=64))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def decode(kind, raw):
    return decode_observation(raw) if kind == "obs" else decode_chunk(raw, 16, 5)


def paths(msg, prefix=()):
    for key, value in msg.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths(value, (*prefix, key))


@st.composite
def mutated(draw, kind):
    """A valid message with one field, at any depth (an array's dtype, an image's data), replaced, removed,
    or given an unknown sibling."""
    msg = msgpack.unpackb(msgpack.packb(VALID[kind]))  # a deep copy
    path = draw(st.sampled_from(sorted(paths(msg))))
    parent = msg
    for key in path[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["replace", "remove", "add"]))
    if how == "remove":
        del parent[path[-1]]
    else:
        parent[path[-1] if how == "replace" else "extra"] = draw(values)
    return msgpack.packb(msg)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["obs", "chunk"]), data=st.data())
def test_decoders_refuse_any_malformed_message_with_a_message_error(kind, data):
    raw = data.draw(st.one_of(st.binary(max_size=200), values.map(msgpack.packb), mutated(kind)))
    try:
        out = decode(kind, raw)
    except MessageError:
        return
    if kind == "chunk":  # what passes is exactly what the protocol says
        chunk, tick, episode = out
        assert chunk.dtype == np.float32 and chunk.shape[1] == 5 and 1 <= len(chunk) <= 16
        assert type(tick) is int and type(episode) is int and tick >= 0 and episode >= 0
    else:
        assert out["state"].ndim == 1 and all(i.dtype == np.uint8 and i.shape[2] == 3 for i in out["images"].values())
        assert type(out["tick"]) is int and out["tick"] >= 0 and isinstance(out["instruction"], str)


def array(shape, dtype="float32", data=None):
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return {"dtype": dtype, "shape": list(shape), "data": b"\0" * n if data is None else data}


@pytest.mark.parametrize("msg, message", [
    ({"type": "chunk", "tick": 1}, "missing fields \\['chunk', 'episode'\\]"),  # a KeyError escaped here before
    ({"type": "chunk", "tick": True, "episode": 0, "chunk": array((1, 5))}, "'tick' must be a non-negative int"),
    ({"type": "chunk", "tick": -1, "episode": 0, "chunk": array((1, 5))}, "'tick' must be a non-negative int"),
    ({"type": "chunk", "tick": 1, "episode": "0", "chunk": array((1, 5))}, "'episode' must be a non-negative int"),
    ({"type": "chunk", "tick": 1, "episode": 0, "chunk": array((1, 5)), "x": 1}, "unknown fields \\['x'\\]"),
    ({"type": "chunk", "tick": 1, "episode": 0, "chunk": array((1, 5), "object")}, "dtype must be one of"),
    ({"type": "chunk", "tick": 1, "episode": 0, "chunk": array((1, 5), data=b"\0" * 7)}, "data must be 20 bytes"),
    ({"type": "chunk", "tick": 1, "episode": 0, "chunk": array((1, -5))}, "shape must be a list"),
    ({"type": "chunk", "tick": 1, "episode": 0, "chunk": {"dtype": "float32", "shape": [2**30] * 4, "data": b""}},
     "data must be 5316911983139663491615228241121378304 bytes"),  # its size wraps to 0 in int64
    ({"type": "chunk", "tick": 1, "episode": 0, "chunk": array((0, 5))}, "1 <= H <= 16"),
    ({"type": "chunk", "tick": 1, "episode": 0, "chunk": [1, 2]}, "not an encoded array"),
])
def test_chunk_fields_are_each_checked(msg, message):
    with pytest.raises(MessageError, match=message):
        decode_chunk(msgpack.packb(msg), 16, 5)


@pytest.mark.parametrize("change, message", [
    ({"time": float("nan")}, "'time' must be a finite number"),
    ({"instruction": 3}, "'instruction' must be a string"),
    ({"done": 1}, "'done' must be true or false"),
    ({"images": {"front": array((4, 4, 3))}}, "image 'front' must be uint8"),
    ({"images": {}}, "'images' must be a map"),
    ({"state": array((3,), "uint8")}, "state must be a float vector"),
    ({"tick": False}, "'tick' must be a non-negative int"),
])
def test_observation_fields_are_each_checked(change, message):
    with pytest.raises(MessageError, match=message):
        decode_observation(msgpack.packb({**VALID["obs"], **change}))


class FakeRobot:
    """Serves a scripted sequence: a MessageError, an observation the policy refuses, then good ones."""

    def __init__(self, items):
        self.items, self.sent = list(items), []

    def get_observation(self, timeout=1.0):
        item = self.items.pop(0) if self.items else None
        if isinstance(item, Exception):
            raise item
        return item

    def send_action(self, chunk, tick, episode=0):
        self.sent.append(tick)


class PickyPolicy:
    def reset(self):
        pass

    def act(self, obs):
        if obs["instruction"] == "bad":
            raise UserError("state: expected float (13,)")
        return np.zeros((4, 5), np.float32)


def test_the_policy_side_goes_on_after_a_bad_message_or_a_refused_observation():
    good = [{**OBS, "tick": t, "episode": 0, "done": False} for t in range(3)]
    robot = FakeRobot([MessageError("garbage"), {**good[0], "instruction": "bad"}, *good[1:]])
    stats = drive(robot, PickyPolicy(), idle_timeout=0.5)
    assert robot.sent == [1, 2] and stats["bad_messages"] == 1 and stats["refused_observations"] == 1
    with pytest.raises(UserError, match="refused 100 observations in a row"):
        drive(FakeRobot([{**good[0], "instruction": "bad"}] * 100), PickyPolicy(), idle_timeout=0.5)


def test_delay_holds_each_plan_back():
    robot = FakeRobot([{**OBS, "tick": t, "episode": 0, "done": False} for t in range(3)])
    stats = drive(robot, PickyPolicy(), idle_timeout=0.5, delay=0.05)
    assert stats["plans"] == 3 and stats["turnaround_ms"]["p50"] >= 50 > stats["latency_ms"]["max"]


def test_keys_are_owner_only_never_overwritten_and_checked(tmp_path):
    made = make_keys(tmp_path / "k")
    assert {p.name for p in made.values()} == {"robot.key", "robot.key_secret", "policy.key", "policy.key_secret"}
    assert all(made[f"{r}_secret"].stat().st_mode & 0o077 == 0 for r in ("robot", "policy"))
    public, secret, peer = load_keys(tmp_path / "k", "robot")
    assert peer == load_keys(tmp_path / "k", "policy")[0] and public != peer
    before = made["robot_secret"].read_bytes()
    with pytest.raises(FileExistsError, match="never overwritten"):
        make_keys(tmp_path / "k")
    assert made["robot_secret"].read_bytes() == before
    made["robot_secret"].chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_keys(tmp_path / "k", "robot")
    with pytest.raises(FileNotFoundError, match="embodied keys"):
        load_keys(tmp_path / "none", "policy")


def test_without_keys_only_loopback_is_served():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("ipc:///tmp/x") and not is_loopback("tcp://*:5555")
    ctx = zmq.Context()
    try:
        Guard(ctx, None, ("tcp://127.0.0.1:5555", "tcp://localhost:5556"))
        for exposed in ("tcp://0.0.0.0:5556", "tcp://*:5556", "tcp://192.168.1.4:5556"):
            with pytest.raises(UserError, match="give keys"):
                Guard(ctx, None, ("tcp://127.0.0.1:5555", exposed))
    finally:
        ctx.term()


def test_deadline_and_seam_accounting():
    # plan 0 runs ticks 1-2, plan 3 takes over at tick 3 with a jump of 0.5 where plan 0 would have moved 0.1
    # plan 0's first action 0.1 went out as 0.05 (the soft start)
    def tick(t, plan, action, held=False, why=None, continued=None, sent=None):
        return {"tick": t, "plan": plan, "held": held, "why": why, "action": sent or action, "ee": [0.01 * t, 0, 0],
                "planned": None if held else action, "continued": continued}

    ticks = [tick(0, None, [0, 0, -1], True, "no plan yet"), tick(1, 0, [0.1, 0, -1], sent=[0.05, 0, -1]),
             tick(2, 0, [0.2, 0, -1]),
             tick(3, 3, [0.7, 0, 1], continued=[0.3, 0, -1]), tick(4, 3, [0.8, 0, 1]),
             tick(5, None, [0, 0, 1], True, "policy silent")]
    s = seams(ticks, gripper=2, period=0.05)
    assert s["seams"] == 1 and s["seam_jump"] == pytest.approx(0.5) and s["within_plan_jump"] == pytest.approx(0.1)
    assert s["seam_ratio"] == pytest.approx(5.0) and s["first_plan_jump"] == pytest.approx(0.1)
    assert s["first_sent_jump"] == pytest.approx(0.05)
    assert s["jerk"]["max"] == pytest.approx(0.0, abs=1e-6)  # the end effector moved at constant speed
    d = deadlines(ticks, [0.05, 0.1], period=0.05, timeout=0.06)
    assert d["plan_age_ms"]["max"] == pytest.approx(100) and d["plan_age_ms"]["p50"] == pytest.approx(50)
    assert d["held"] == {"no plan yet": 1, "plan ran out": 0, "policy silent": 1} and d["stale_ticks"] == 1


ROGUE = """
import json, sys, time
import numpy as np, zmq, zmq.auth
from embodied.runtime.robot import encode_chunk
obs_address, act_address, wrong = sys.argv[1:4]
ctx = zmq.Context()
pushes, subs = [], []
for key in (None, wrong):  # no key at all, and a key pair the robot does not know
    push, sub = ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB)
    for s in (push, sub):
        if key:
            public, secret = zmq.auth.load_certificate(key + "/policy.key_secret")
            robot, _ = zmq.auth.load_certificate(sys.argv[4])  # the robot's real public key
            s.curve_secretkey, s.curve_publickey, s.curve_serverkey = secret, public, robot
        s.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    push.setsockopt(zmq.SNDTIMEO, 0)
    push.connect(act_address)
    sub.connect(obs_address)
    pushes.append(push)
    subs.append(sub)
seen, tried, end = 0, 0, time.time() + float(sys.argv[5])
while time.time() < end:
    for tick in range(0, 200, 7):  # fresh ticks, and a replay of the first plan's message (tick 0)
        for push in pushes:
            for t in (tick, 0):
                try:
                    push.send(encode_chunk(np.ones((16, 5), np.float32), t))
                    tried += 1
                except zmq.Again:
                    pass
    for sub in subs:
        while sub.poll(0):
            sub.recv()
            seen += 1
    time.sleep(0.02)
print(json.dumps({"observations_seen": seen, "sends_tried": tried}))
"""


class ConstantPolicy:
    def reset(self):
        pass

    def act(self, obs):
        chunk = np.full((16, 5), 0.05, np.float32)
        chunk[:, -1] = -1
        return chunk


@pytest.mark.slow
def test_a_rogue_process_cannot_read_observations_or_move_the_arm(tmp_path):
    make_keys(tmp_path / "keys")
    make_keys(tmp_path / "wrong")
    addresses = [f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"]
    config = {"observations": addresses[0], "actions": addresses[1], "rate": 20, "family": "reach",
              "cameras": ["front", "wrist"], "image_size": [32, 32], "max_ticks": 50, "stop_on_success": False,
              "safety": False, "keys": str(tmp_path / "keys"), "report": str(tmp_path / "report.json"),
              "record": str(tmp_path / "episodes.npz")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    robot = subprocess.Popen([sys.executable, "-m", "embodied.envs.simrobot", json.dumps(config)], cwd=ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rogue = subprocess.Popen([sys.executable, "-c", ROGUE, *addresses, str(tmp_path / "wrong"),
                              str(tmp_path / "keys/robot.key"), "5"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    link = ZmqRobot(*addresses, keys=str(tmp_path / "keys"))
    link.connect()
    stats = {}
    driver = threading.Thread(target=lambda: stats.update(drive(link, ConstantPolicy(), idle_timeout=20, episodes=1,
                                                                alive=lambda: robot.poll() is None)))
    driver.start()
    try:
        assert robot.wait(timeout=90) == 0, robot.stderr.read().decode()[-2000:]
        driver.join(timeout=30)
        out, err = rogue.communicate(timeout=30)
    finally:
        link.disconnect()
        for p in (robot, rogue):
            if p.poll() is None:
                p.kill()
    rogue_side = json.loads(out.strip().splitlines()[-1])
    report = json.loads((tmp_path / "report.json").read_text())
    sent = np.load(tmp_path / "episodes.npz")["ep0_action"]
    assert rogue_side["sends_tried"] > 100 and rogue_side["observations_seen"] == 0  # encrypted, and refused
    assert report["refused_keys"] >= 1 and report["bad_messages"] == 0
    moved = sent[np.abs(sent[:, :4]).sum(1) > 0]
    assert len(moved) > 30 and np.allclose(moved, ConstantPolicy().act(None)[0])  # only the policy's plans ran
    assert stats["plans"] > 30
