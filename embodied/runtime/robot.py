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

import math
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


MAX_MESSAGE = 64 << 20  # bytes: a larger message is dropped by the socket before it is read (ZMQ_MAXMSGSIZE)
DTYPES = {"float32", "float64", "uint8"}  # the only dtypes the protocol sends
OBS_FIELDS = {"type", "tick", "time", "instruction", "state", "images", "episode", "done", "committed"}
CHUNK_FIELDS = {"type", "tick", "episode", "chunk"}


def _array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.tobytes()}


def _from(d, what: str) -> np.ndarray:
    """An encoded array back, every field checked: a map of exactly dtype (one the protocol sends), shape
    (non-negative ints) and data (bytes of exactly that size)."""
    if not isinstance(d, dict) or set(d) != {"dtype", "shape", "data"}:
        raise MessageError(f"{what}: not an encoded array (a map of dtype, shape and data), got {_short(d)}")
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise MessageError(f"{what}: dtype must be one of {sorted(DTYPES)}, got {_short(dtype)}")
    if not isinstance(shape, list) or len(shape) > 4 or not all(_is_count(n) for n in shape):
        raise MessageError(f"{what}: shape must be a list of at most 4 non-negative ints, got {_short(shape)}")
    size = np.dtype(dtype).itemsize * math.prod(shape)  # Python ints: a huge shape cannot wrap around to match
    if not isinstance(data, bytes) or len(data) != size:
        raise MessageError(f"{what}: data must be {size} bytes for "
                           f"{dtype} {shape}, got {_short(data) if not isinstance(data, bytes) else len(data)}")
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)


def _is_count(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields(msg: dict, kind: str, allowed: set, required: set) -> None:
    if unknown := sorted(map(str, set(msg) - allowed)):
        raise MessageError(f"{kind}: unknown fields {unknown}; a {kind!r} message has {sorted(allowed)}")
    if missing := sorted(required - set(msg)):
        raise MessageError(f"{kind}: missing fields {missing}")
    for key in ("tick", "episode"):
        if key in msg and not _is_count(msg[key]):
            raise MessageError(f"{kind}: {key!r} must be a non-negative int, got {_short(msg[key])}")


def encode_observation(obs: dict, tick: int, stamp: float, committed: np.ndarray | None = None, **extra) -> bytes:
    """`committed`: (k, A) float32, the actions the robot will execute from this tick on if no new plan comes."""
    if committed is not None:
        extra["committed"] = _array(np.asarray(committed, np.float32))
    return msgpack.packb({"type": "obs", "tick": tick, "time": stamp, "instruction": obs["instruction"],
                          "state": _array(obs["state"]), "images": {c: _array(v) for c, v in obs["images"].items()},
                          **extra})


def decode_observation(raw: bytes) -> dict:
    """-> {"images": {camera: uint8 (H, W, 3)}, "state": float (S,), "instruction", "tick", "time", "episode",
    "done"}; anything else raises MessageError naming the field."""
    msg = _unpack(raw, "obs")
    _fields(msg, "obs", OBS_FIELDS, {"type", "tick", "time", "instruction", "state", "images"})
    if not isinstance(msg["time"], (int, float)) or isinstance(msg["time"], bool) or not np.isfinite(msg["time"]):
        raise MessageError(f"obs: 'time' must be a finite number, got {_short(msg['time'])}")
    if not isinstance(msg["instruction"], str) or len(msg["instruction"]) > 1000:
        raise MessageError(f"obs: 'instruction' must be a string of at most 1000 characters, "
                           f"got {_short(msg['instruction'])}")
    if not isinstance(msg.get("done", False), bool):
        raise MessageError(f"obs: 'done' must be true or false, got {_short(msg['done'])}")
    state = _from(msg["state"], "state")
    if state.ndim != 1 or state.dtype == np.uint8:
        raise MessageError(f"obs: state must be a float vector, got {state.dtype} {state.shape}")
    images = msg["images"]
    if not isinstance(images, dict) or not images or not all(isinstance(c, str) for c in images):
        raise MessageError(f"obs: 'images' must be a map of camera name to image, got {_short(images)}")
    images = {c: _from(v, f"image {c!r}") for c, v in images.items()}
    for c, image in images.items():
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise MessageError(f"obs: image {c!r} must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    out = {"episode": 0, "done": False, **msg, "state": state, "images": images}
    if "committed" in msg:  # the actions the robot will run from this tick on unless a new plan comes
        out["committed"] = _from(msg["committed"], "committed")
        if out["committed"].ndim != 2 or out["committed"].dtype != np.float32:
            raise MessageError(f"obs: committed must be float32 (k, A), got {out['committed'].dtype} "
                               f"{out['committed'].shape}")
    return out


def encode_chunk(chunk: np.ndarray, tick: int, episode: int = 0) -> bytes:
    return msgpack.packb({"type": "chunk", "tick": int(tick), "episode": int(episode),
                          "chunk": _array(np.asarray(chunk, np.float32))})


def decode_chunk(raw: bytes, horizon: int | None = None, action_dim: int | None = None) -> tuple[np.ndarray, int, int]:
    """-> (chunk (H, A) float32, the observation tick it was computed for, its episode); anything else
    raises MessageError naming the field."""
    msg = _unpack(raw, "chunk")
    _fields(msg, "chunk", CHUNK_FIELDS, CHUNK_FIELDS)
    chunk = _from(msg["chunk"], "chunk")
    if chunk.ndim != 2 or (action_dim is not None and chunk.shape[1] != action_dim) or \
            not 1 <= chunk.shape[0] <= (horizon or 1024) or chunk.dtype != np.float32:
        raise MessageError(f"chunk: expected float32 (H, A) with 1 <= H <= {horizon or 1024}"
                           f"{f' and A = {action_dim}' if action_dim else ''}, got {chunk.dtype} {chunk.shape}")
    return chunk, msg["tick"], msg["episode"]


def _unpack(raw: bytes, kind: str) -> dict:
    try:
        msg = msgpack.unpackb(raw, strict_map_key=False)
    except Exception as e:  # msgpack raises several kinds for garbage
        raise MessageError(f"a message that is not msgpack ({len(raw)} bytes): {type(e).__name__}") from e
    if not isinstance(msg, dict) or msg.get("type") != kind:
        got = msg.get("type") if isinstance(msg, dict) else type(msg).__name__
        raise MessageError(f"expected a {kind!r} message, got type {_short(got)}")
    return msg


class ZmqRobot:
    """The Robot interface over a robot process's sockets (the simulated robot, or a real one serving
    the same wire format). With `keys` (a directory from `embodied keys`: policy.key_secret and robot.key),
    both sockets are CURVE-encrypted and the robot admits this process by its key."""

    def __init__(self, observations: str, actions: str, spec: dict | None = None, keys: str | None = None):
        self.addresses, self.keys = (observations, actions), keys
        self.observation_spec = self.action_spec = spec or {}
        self._ctx = self._sub = self._push = None

    def connect(self) -> None:
        import zmq

        from embodied.runtime.keys import secure_client

        self._ctx = zmq.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._push = self._ctx.socket(zmq.PUSH)
        for socket in (self._sub, self._push):
            secure_client(socket, self.keys)
        self._sub.setsockopt(zmq.CONFLATE, 1)  # only the newest observation matters
        self._sub.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.connect(self.addresses[0])
        self._push.setsockopt(zmq.SNDHWM, 4)
        self._push.setsockopt(zmq.LINGER, 0)
        self._push.connect(self.addresses[1])

    def get_observation(self, timeout: float = 1.0) -> dict | None:
        """The newest observation, or None if none came within `timeout` seconds; MessageError for one
        that is not a valid observation (the caller counts it and goes on)."""
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
