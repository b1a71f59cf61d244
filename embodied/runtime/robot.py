"""The Robot interface, its wire format, and a client that drives a robot over ZeroMQ sockets.

A robot process publishes observations (PUB) and takes action chunks (PULL); each chunk names the
observation tick it was computed for, so the robot's executor aligns it to its own clock. Messages are
msgpack maps with a "type"; anything else is refused with an error that names it.

    robot = ZmqRobot("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556")
    robot.connect()
    obs = robot.get_observation()            # the newest one: {"images", "state", "instruction", "tick", ...}
    robot.send_action(policy.act(obs), obs["tick"], obs["episode"])
    robot.disconnect()

A real robot implements the same four methods (and declares its specs) over its own driver, or serves
this wire format so that the policy process is unchanged.
"""

from __future__ import annotations

from typing import Protocol

import msgpack
import numpy as np

from embodied.errors import UserError


class Robot(Protocol):
    observation_spec: dict  # {"cameras": [...], "image_size": [H, W], "state_dim": S}
    action_spec: dict  # {"action_dim": A, "names": [...], "limits": {"low", "high"}}

    def connect(self) -> None: ...

    def get_observation(self, timeout: float = 1.0) -> dict | None: ...

    def send_action(self, chunk: np.ndarray, tick: int, episode: int = 0) -> None: ...

    def disconnect(self) -> None: ...


class MessageError(UserError):
    """A message on the socket that is not what the protocol says."""


def _array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.tobytes()}


def _from(d: dict, what: str) -> np.ndarray:
    try:
        return np.frombuffer(d["data"], dtype=np.dtype(d["dtype"])).reshape(d["shape"])
    except (KeyError, TypeError, ValueError) as e:
        raise MessageError(f"{what}: not an encoded array ({e})") from e


def encode_observation(obs: dict, tick: int, stamp: float, **extra) -> bytes:
    return msgpack.packb({"type": "obs", "tick": tick, "time": stamp, "instruction": obs["instruction"],
                          "state": _array(obs["state"]), "images": {c: _array(v) for c, v in obs["images"].items()},
                          **extra})


def decode_observation(raw: bytes) -> dict:
    msg = _unpack(raw, "obs")
    return {**msg, "state": _from(msg["state"], "state"),
            "images": {c: _from(v, f"image {c!r}") for c, v in msg["images"].items()}}


def encode_chunk(chunk: np.ndarray, tick: int, episode: int = 0) -> bytes:
    return msgpack.packb({"type": "chunk", "tick": int(tick), "episode": int(episode),
                          "chunk": _array(np.asarray(chunk, np.float32))})


def decode_chunk(raw: bytes, horizon: int | None = None, action_dim: int | None = None) -> tuple[np.ndarray, int, int]:
    """-> (chunk (H, A) float32, the observation tick it was computed for, its episode)."""
    msg = _unpack(raw, "chunk")
    chunk = _from(msg["chunk"], "chunk")
    if chunk.ndim != 2 or (action_dim is not None and chunk.shape[1] != action_dim) or \
            (horizon is not None and not 1 <= chunk.shape[0] <= horizon) or chunk.dtype != np.float32:
        raise MessageError(f"chunk: expected float32 (H<={horizon}, {action_dim}), got {chunk.dtype} {chunk.shape}")
    if not isinstance(msg.get("tick"), int) or not isinstance(msg.get("episode", 0), int):
        raise MessageError(f"chunk: 'tick' and 'episode' must be ints, got {msg.get('tick')!r}, {msg.get('episode')!r}")
    return chunk, msg["tick"], msg.get("episode", 0)


def _unpack(raw: bytes, kind: str) -> dict:
    try:
        msg = msgpack.unpackb(raw)
    except Exception as e:  # msgpack raises several kinds for garbage
        raise MessageError(f"a message that is not msgpack ({len(raw)} bytes): {e}") from e
    if not isinstance(msg, dict) or msg.get("type") != kind:
        got = msg.get("type") if isinstance(msg, dict) else type(msg).__name__
        raise MessageError(f"expected a {kind!r} message, got type {got!r}")
    return msg


class ZmqRobot:
    """The Robot interface over a robot process's sockets (the simulated robot, or a real one serving
    the same wire format)."""

    def __init__(self, observations: str, actions: str, spec: dict | None = None):
        self.addresses = (observations, actions)
        self.observation_spec = self.action_spec = spec or {}
        self._ctx = self._sub = self._push = None

    def connect(self) -> None:
        import zmq

        self._ctx = zmq.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.CONFLATE, 1)  # only the newest observation matters
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.connect(self.addresses[0])
        self._push = self._ctx.socket(zmq.PUSH)
        self._push.setsockopt(zmq.SNDHWM, 4)
        self._push.setsockopt(zmq.LINGER, 0)
        self._push.connect(self.addresses[1])

    def get_observation(self, timeout: float = 1.0) -> dict | None:
        """The newest observation, or None if none came within `timeout` seconds."""
        if not self._sub.poll(int(timeout * 1000)):
            return None
        return decode_observation(self._sub.recv())

    def send_action(self, chunk: np.ndarray, tick: int, episode: int = 0) -> None:
        import zmq

        try:
            self._push.send(encode_chunk(chunk, tick, episode), zmq.NOBLOCK)
        except zmq.Again:  # the robot is not reading: its watchdog holds; never queue stale plans
            pass

    def disconnect(self) -> None:
        for s in (self._sub, self._push):
            if s is not None:
                s.close(linger=0)
        if self._ctx is not None:
            self._ctx.term()
        self._ctx = self._sub = self._push = None
