"""The episode store: one zarr group per dataset, flat per-key arrays over all episodes.

    data/images/<camera>  uint8   (N, H, W, 3)   chunks of FRAMES_PER_CHUNK frames (Blosc-zstd), FRAMES_PER_SHARD
                                                 frames to a file (zarr v3 sharding; version 3)
    data/state            float32 (N, S)         NaN rows for episodes without states
    data/action           float32 (N, A)         NaN rows for episodes without actions (and, in a store of
                                                 pseudo-labels filtered by confidence, NaN for a label
                                                 left out: `unknown_actions`)
    data/focus            float32 (N, 3)         where the named thing is relative to the gripper (m), from
                                                 the simulator: an auxiliary training target (NaN where
                                                 unknown; absent from version 1 stores)
    meta/episode_ends     int64   (E,)           frame index one past each episode's last frame
    meta/instruction, meta/family (str), meta/success, meta/has_actions, meta/has_states (bool),
    meta/seed (int64, -1 when not from a seeded env)

Root attributes: format_version, cameras, image_size, control_rate, action_spec, state_spec, the recipe,
and, for simulated stores, camera_projections ({"world": {camera: (3, 4) world-to-pixel matrix} for
cameras that never move, "ee": {camera: (3, 4) matrix from the state's end-effector frame to pixels} for
cameras on the hand}): with data/focus they say where the named thing appears in each image.

Everything is read and written through zarr's own API (its local store writes every file atomically).

Integrity (format version 2 on): every chunk ends in a crc32c checksum (zarr's crc32c codec), so does
every shard's index, the root attributes hold a crc32c of every other zarr.json (`checksums`) and of
themselves (`attrs_crc32c`), so `embodied data verify` finds any damaged file and a bad frame read
during training names the store, camera and episode. A store is opened only when every file its
committed episodes need is there. Version 1 (no checksums) and 2 (a file per frame) stores are still
read; `embodied data rewrite` copies one into the current format.

Crash safety: zarr's local store writes every file atomically (temp file + rename); an append rewrites
the last, partly filled shard as a whole file. An append writes the frames, then the per-episode rows,
and commits last by setting the group attribute `num_episodes`. Anything past the committed count is
ignored by readers and cut off by the next writer, so a process killed at any moment loses at most the
episodes of the append in progress.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from tqdm import tqdm
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.core.sync import sync

from embodied.data.places import exists, location, read_key
from embodied.errors import UserError

FORMAT_VERSION = 3  # 3: frames in shards; 2 added checksums; 1 and 2 are still read
IMAGE_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle")  # see scripts/bench_data.py
FRAMES_PER_CHUNK = 16  # zarr costs ~0.5 ms per chunk read: 16 frames a chunk read 4x faster; scripts/bench_data.py
FRAMES_PER_SHARD = 512  # ~76 files per 1,000 main-job episodes and camera; see scripts/bench_data.py
ATTRS_CRC = "attrs_crc32c"
META = {"instruction": str, "family": str, "success": bool, "seed": "int64", "has_actions": bool,
        "has_states": bool}


class StoreError(UserError):
    """A store that is missing, malformed, or does not fit what is written to it."""


@dataclass
class Episode:
    """One episode in memory. T frames; state/action may be None (e.g. imported video)."""

    images: dict[str, np.ndarray]  # camera -> uint8 (T, H, W, 3)
    state: np.ndarray | None  # float32 (T, S)
    action: np.ndarray | None  # float32 (T, A): the action taken after each frame
    instruction: str
    family: str
    success: bool = True
    seed: int = -1
    info: dict = field(default_factory=dict)  # not stored; e.g. steps, for progress reports
    focus: np.ndarray | None = None  # float32 (T, 3): privileged, see data/focus

    def __len__(self) -> int:
        return len(next(iter(self.images.values())))


class EpisodeStore:
    """Create with `EpisodeStore.create(...)`, open with `EpisodeStore.open(path, mode)`."""

    def __init__(self, group: zarr.Group, path: Path | str, writable: bool):
        self.group, self.path, self.writable = group, path, writable
        self.attrs = dict(group.attrs)
        self.version = int(self.attrs["format_version"])
        self.cameras: list[str] = list(self.attrs["cameras"])
        # every chunk written, even one equal to the fill value, so a missing chunk file means damage
        arrays = {name: group[name].with_config({"write_empty_chunks": True}) for name in array_names(self.cameras)
                  if name in group}
        self._images = {c: arrays[f"data/images/{c}"] for c in self.cameras}
        self._state, self._action = arrays["data/state"], arrays["data/action"]
        self._focus = arrays.get("data/focus")
        # per-frame arrays besides images, by name; data/focus is absent from version 1 stores
        self.per_frame = {n: a for n, a in arrays.items() if n.startswith("data/") and "/images/" not in n}
        self._meta = {k: arrays[f"meta/{k}"] for k in ["episode_ends", *META]}
        self._ends: np.ndarray | None = None

    # ---- create / open ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, cameras: list[str], image_size: tuple[int, int], state_dim: int,
               action_dim: int, control_rate: float, robot: str, action_spec: dict | None = None,
               state_spec: dict | None = None, **attrs) -> EpisodeStore:
        path = location(path)
        if path.exists() if isinstance(path, Path) else exists(path):
            raise StoreError(f"{path} already exists; open it with EpisodeStore.open(path, mode='a')")
        group = zarr.open_group(path, mode="w-")
        h, w = image_size
        other = [ZstdCodec(), Crc32cCodec()]
        for cam in cameras:  # each shard's index carries a crc32c too (zarr's default index codecs)
            group.create_array(f"data/images/{cam}", shape=(0, h, w, 3), chunks=(FRAMES_PER_CHUNK, h, w, 3),
                               dtype="uint8", shards=(FRAMES_PER_SHARD, h, w, 3),
                               compressors=[IMAGE_CODEC, Crc32cCodec()])
        group.create_array("data/state", shape=(0, state_dim), chunks=(4096, state_dim), dtype="float32",
                           fill_value=np.nan, compressors=other)
        group.create_array("data/action", shape=(0, action_dim), chunks=(4096, action_dim), dtype="float32",
                           fill_value=np.nan, compressors=other)
        group.create_array("data/focus", shape=(0, 3), chunks=(4096, 3), dtype="float32", fill_value=np.nan,
                           compressors=other)
        group.create_array("meta/episode_ends", shape=(0,), chunks=(4096,), dtype="int64", compressors=other)
        for key, dtype in META.items():
            group.create_array(f"meta/{key}", shape=(0,), chunks=(4096,), dtype=dtype, compressors=other)
        checksums = {node: checksum_of(read_key(group.store, f"{node}/zarr.json")) for node in node_names(cameras)}
        attrs = {"format_version": FORMAT_VERSION, "cameras": list(cameras), "image_size": [h, w],
                 "control_rate": control_rate, "robot": robot, "action_spec": action_spec or {},
                 "state_spec": state_spec or {}, "num_episodes": 0, **attrs, "checksums": checksums}
        group.attrs.update({**attrs, ATTRS_CRC: attrs_checksum(attrs)})
        return cls(group, path, writable=True)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r", check_files: bool = True) -> EpisodeStore:
        """Open and validate; mode 'a' also cuts off an episode left half-written by a crash.
        check_files=False opens a store with missing files (`verify` does, to name each of them)."""
        path = location(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if isinstance(path, Path) and not path.exists():
            raise StoreError(f"no store at {path}")
        if not exists(path):
            raise StoreError(f"{path} is not an episode store (no zarr.json there)")
        try:
            group = zarr.open_group(path, mode="r+" if mode == "a" else "r")
            _check_header(path, dict(group.attrs), group)
            store = cls(group, path, writable=mode == "a")
            store.validate()
            if check_files:
                store.check_files()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - damaged metadata or chunks surface as many kinds
            raise StoreError(f"{path}: cannot read the store ({type(e).__name__}: {e}); "
                             f"`embodied data verify {path}` names each damaged file") from e
        if mode == "a":
            store._cut_uncommitted()
        return store

    # ---- reading ------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return int(self.attrs["num_episodes"])

    @property
    def episode_ends(self) -> np.ndarray:  # int64 (E,), read-only; read from zarr once per committed count
        if self._ends is None or len(self._ends) != self.num_episodes:
            self._ends = self._meta["episode_ends"][: self.num_episodes]
            self._ends.flags.writeable = False
        return self._ends

    @property
    def frames_per_chunk(self) -> int:
        """Frames under one checksum: a read decodes the whole chunk (1 in version 1 and 2 stores)."""
        return int(self._images[self.cameras[0]].chunks[0])

    @property
    def num_frames(self) -> int:
        ends = self.episode_ends
        return int(ends[-1]) if len(ends) else 0

    def meta(self, key: str) -> np.ndarray:  # (E,) per-episode column
        return self._meta[key][: self.num_episodes]

    def episode_range(self, i: int) -> tuple[int, int]:
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range; the store has {self.num_episodes}")
        ends = self.episode_ends
        return (int(ends[i - 1]) if i else 0), int(ends[i])

    def states(self) -> np.ndarray:  # float32 (N, S), all committed frames
        return self._state[: self.num_frames]

    def actions(self) -> np.ndarray:  # float32 (N, A)
        return self._action[: self.num_frames]

    def focus(self) -> np.ndarray | None:  # float32 (N, 3), or None in stores without it
        return None if self._focus is None else self._focus[: self.num_frames]

    def frames(self, camera: str, index: np.ndarray) -> np.ndarray:  # uint8 (n, H, W, 3)
        """Frames by global index, in one concurrent read of their runs of consecutive frames."""
        arr = self._images[camera]
        index = np.asarray(index, dtype=np.int64)
        if len(index) == 0:
            return np.zeros((0, *arr.shape[1:]), np.uint8)
        if index.min() < 0 or index.max() >= self.num_frames:
            raise IndexError(f"frames {index.min()}..{index.max()} asked; the store has {self.num_frames}")
        unique, inverse = np.unique(index, return_inverse=True)
        runs = np.split(unique, np.flatnonzero(np.diff(unique) != 1) + 1)
        try:
            return read_spans(arr, [(int(r[0]), int(r[-1]) + 1) for r in runs])[inverse]
        except Exception:  # noqa: BLE001 - checksum and codec errors come as many kinds: find the frame
            for i in unique:
                try:
                    read_spans(arr, [(int(i), int(i) + 1)])
                except Exception as e:  # noqa: BLE001
                    raise self.damaged(camera, int(i), damage_reason(e)) from None
            raise

    def damaged(self, camera: str, frame: int, why: str) -> StoreError:
        """An error naming the store, camera, episode and step of a frame that cannot be read."""
        ep = int(np.searchsorted(self.episode_ends, frame, side="right"))
        start = self.episode_range(ep)[0] if ep < self.num_episodes else 0
        return StoreError(f"{self.path}: camera {camera!r}, episode {ep}, step {frame - start} (frame {frame}): "
                          f"{why}. `embodied data verify {self.path}` lists every damaged frame")

    def episode(self, i: int) -> Episode:
        """Episode i; focus is None unless every frame of it has one (as an episode is appended)."""
        start, end = self.episode_range(i)
        focus = None if self._focus is None else self._focus[start:end]
        has_a, has_s = bool(self.meta("has_actions")[i]), bool(self.meta("has_states")[i])
        return Episode(
            images={c: self.frames(c, np.arange(start, end)) for c in self.cameras},
            state=self._state[start:end] if has_s else None,
            action=self._action[start:end] if has_a else None,
            instruction=str(self.meta("instruction")[i]), family=str(self.meta("family")[i]),
            success=bool(self.meta("success")[i]), seed=int(self.meta("seed")[i]),
            focus=focus if focus is not None and np.isfinite(focus).all() else None,
        )

    @property
    def unknown_actions(self) -> bool:
        """Whether an action of a recorded episode may be NaN, not known: inverse-dynamics pseudo-labels
        filtered by confidence (embodied.video.idm.label_store's keep); training masks those out."""
        return "keep" in (self.attrs.get("pseudo_labels") or {})

    # ---- writing ------------------------------------------------------------------------------
    def append(self, ep: Episode) -> int:
        """Append one episode; returns its index. Validates before writing anything."""
        return self.append_many([ep])[0]

    def append_many(self, eps: list[Episode]) -> list[int]:
        """Append episodes with one commit (each zarr write costs milliseconds, so batches write several
        times faster); returns their indices. Validates all before writing anything."""
        if not self.writable:
            raise StoreError(f"{self.path} is open read-only; open it with mode='a' to append")
        for ep in eps:
            self.check_episode(ep)
        if not eps:
            return []
        n, frames = self.num_episodes, self.num_frames
        for cam in self.cameras:
            self._images[cam].append(np.concatenate([ep.images[cam] for ep in eps]))
        for arr, key, dim in ((self._state, "state", self._state.shape[1]),
                              (self._action, "action", self._action.shape[1]), (self._focus, "focus", 3)):
            if arr is not None:
                arr.append(np.concatenate([_or_nan(getattr(ep, key), (len(ep), dim)) for ep in eps]))
        rows = {"episode_ends": frames + np.cumsum([len(ep) for ep in eps]),
                "instruction": [ep.instruction for ep in eps], "family": [ep.family for ep in eps],
                "success": [ep.success for ep in eps], "seed": [ep.seed for ep in eps],
                "has_actions": [ep.action is not None for ep in eps],
                "has_states": [ep.state is not None for ep in eps]}
        for key, values in rows.items():
            arr = self._meta[key]
            arr.append(np.array(values, dtype=object if arr.dtype.kind == "T" else arr.dtype))
        self._write_attrs({"num_episodes": n + len(eps)})  # the commit
        return list(range(n, n + len(eps)))

    def check_episode(self, ep: Episode) -> None:
        """Raise StoreError if an episode does not fit this store."""
        t = len(ep)
        h, w = self.attrs["image_size"]
        if set(ep.images) != set(self.cameras):
            raise StoreError(f"episode has cameras {sorted(ep.images)}; the store has {self.cameras}")
        for cam, img in ep.images.items():
            if img.dtype != np.uint8 or img.shape != (t, h, w, 3):
                raise StoreError(f"camera {cam!r}: got {img.dtype} {img.shape}; expected uint8 ({t}, {h}, {w}, 3)")
        for name, arr, dim in (("state", ep.state, self._state.shape[1]), ("action", ep.action, self._action.shape[1]),
                               ("focus", ep.focus, 3)):
            if arr is None:
                continue
            if arr.shape != (t, dim):
                raise StoreError(f"{name} has shape {arr.shape}; expected ({t}, {dim}) to match {t} frames")
            if not np.all(np.isfinite(arr)) and not (name == "action" and self.unknown_actions):
                raise StoreError(f"{name} contains NaN or inf")
        if t == 0:
            raise StoreError("episode has no frames")

    def stats(self) -> dict:
        """Normalization statistics per action and state dimension over the committed frames:
        {"action": {"mean", "std", "min", "max", "q01", "q99"}, "state": {...}}. Computed once and
        saved in the store's attributes (when writable); recomputed if episodes were added since."""
        cached = self.attrs.get("stats")
        if cached and cached.get("num_episodes") == self.num_episodes:
            return cached
        ends = self.episode_ends
        lengths = np.diff(np.concatenate([[0], ends]))
        out: dict = {"num_episodes": self.num_episodes}
        for name, values, flag in (("action", self.actions(), "has_actions"), ("state", self.states(), "has_states")):
            rows = values[np.repeat(self.meta(flag).astype(bool), lengths)]
            if len(rows) == 0:
                out[name] = None
                continue
            q01, q99 = np.nanquantile(rows, [0.01, 0.99], axis=0)  # NaN: a value not known (a filtered label)
            out[name] = {"mean": np.nanmean(rows, 0), "std": np.nanstd(rows, 0), "min": np.nanmin(rows, 0),
                         "max": np.nanmax(rows, 0), "q01": q01, "q99": q99}
            out[name] = {k: [float(x) for x in v] for k, v in out[name].items()}
        if self.writable:
            self.set_attrs(stats=out)
        return out

    def set_attrs(self, **attrs) -> None:
        if not self.writable:
            raise StoreError(f"{self.path} is open read-only")
        reserved = {"format_version", "num_episodes", "checksums", ATTRS_CRC} & set(attrs)
        if reserved:
            raise StoreError(f"attributes {sorted(reserved)} are kept by the store itself")
        self._write_attrs(attrs)

    def _write_attrs(self, updates: dict) -> None:
        """One atomic write of the root zarr.json, with the attributes' own checksum (version 2)."""
        attrs = {k: v for k, v in {**self.attrs, **updates}.items() if k != ATTRS_CRC}
        if self.version >= 2:
            attrs[ATTRS_CRC] = attrs_checksum(attrs)
        self.group.attrs.update(attrs)
        self.attrs = attrs

    # ---- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Lengths, dtypes and finite actions of the committed part; raises StoreError."""
        n_ep, where = self.num_episodes, str(self.path)
        for key, arr in self._meta.items():
            if arr.shape[0] < n_ep:
                raise StoreError(f"{where}: meta/{key} has {arr.shape[0]} rows but {n_ep} episodes are committed")
        ends = self.episode_ends
        if n_ep and (ends[0] <= 0 or np.any(np.diff(ends) <= 0)):
            raise StoreError(f"{where}: meta/episode_ends is not strictly increasing from above 0")
        n = self.num_frames
        h, w = self.attrs["image_size"]
        for name, arr in [*((f"data/images/{c}", a) for c, a in self._images.items()), *self.per_frame.items()]:
            if arr.shape[0] < n:
                raise StoreError(f"{where}: {name} has {arr.shape[0]} frames but episodes end at {n}")
        for cam, arr in self._images.items():
            if arr.dtype != np.uint8 or arr.shape[1:] != (h, w, 3):
                raise StoreError(f"{where}: camera {cam!r} is {arr.dtype} {arr.shape[1:]}; "
                                 f"expected uint8 ({h}, {w}, 3)")
        for name, arr in (("state", self._state), ("action", self._action)):
            if arr.dtype != np.float32:
                raise StoreError(f"{where}: data/{name} is {arr.dtype}; expected float32")
        has = self.meta("has_actions").astype(bool)
        if has.any():
            rows = self.actions()[np.repeat(has, np.diff(np.concatenate([[0], ends])))]
            bad = (np.isinf(rows) if self.unknown_actions else ~np.isfinite(rows)).any(axis=1)
            if bad.any():
                raise StoreError(f"{where}: {bad.sum()} action rows of recorded episodes are NaN or inf")

    def missing_files(self) -> list[tuple[str, str, int, int]]:
        """(array, file key, first row, end row) of every file the committed rows need that is not there
        (zarr reads a missing file as the fill value, so it would otherwise pass unnoticed)."""
        rows = {**{f"data/images/{c}": (a, self.num_frames) for c, a in self._images.items()},
                **{name: (a, self.num_frames) for name, a in self.per_frame.items()},
                **{f"meta/{k}": (a, self.num_episodes) for k, a in self._meta.items()}}
        out = []
        for name, (arr, n) in rows.items():
            if math.prod(arr.shape[1:]) == 0:  # e.g. data/state of a store without states: no files at all
                continue
            stored = set(sync(_keys(self.group.store, f"{arr.path}/")))
            step = (arr.shards or arr.chunks)[0]
            for k in range(math.ceil(n / step)):
                key = f"{arr.path}/{arr.metadata.encode_chunk_key((k, *[0] * (arr.ndim - 1)))}"
                if key not in stored:
                    out.append((name, key, k * step, min(n, (k + 1) * step)))
        return out

    def check_files(self) -> None:
        missing = self.missing_files()
        if missing:
            names = ", ".join(m[1] for m in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise StoreError(f"{self.path}: {len(missing)} files are missing ({names}); "
                             f"`embodied data verify {self.path}` names the episodes they hold")

    def _cut_uncommitted(self) -> None:
        """Drop rows past the commit point (an append that was killed midway)."""
        n = self.num_frames
        for arr in [*self._images.values(), *self.per_frame.values()]:
            if arr.shape[0] > n:
                arr.resize((n, *arr.shape[1:]))
        for arr in self._meta.values():
            if arr.shape[0] > self.num_episodes:
                arr.resize((self.num_episodes,))

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.path)!r}, episodes={self.num_episodes}, frames={self.num_frames})"


def _check_header(path: Path | str, attrs: dict, group: zarr.Group) -> None:
    version = attrs.get("format_version")
    if version is None:
        raise StoreError(f"{path}: no format_version attribute; not an episode store")
    if version > FORMAT_VERSION:
        raise StoreError(f"{path} was written in format version {version}, newer than this embodied "
                         f"(reads up to {FORMAT_VERSION}); upgrade embodied to read it")
    missing = [k for k in ("cameras", "image_size", "num_episodes", "control_rate") if k not in attrs]
    missing += [k for k in ("data/state", "data/action", "meta/episode_ends", *(f"meta/{m}" for m in META))
                if k not in group]
    missing += [f"data/images/{c}" for c in attrs.get("cameras", []) if f"data/images/{c}" not in group]
    if missing:
        raise StoreError(f"{path}: store is missing {missing}")


def read_spans(arr: zarr.Array, spans: list[tuple[int, int]]) -> np.ndarray:
    """Rows [a, b) of each span, concatenated: one concurrent read through zarr's async API (a read per
    span; an orthogonal selection of the same rows costs about 8x more in zarr 3.1)."""
    async def gather():
        return await asyncio.gather(*(arr.async_array.getitem((slice(a, b),)) for a, b in spans))
    return np.concatenate(sync(gather()))


def damage_reason(e: Exception) -> str:
    text = str(e)
    return "its checksum does not match (the file is damaged)" if "checksum" in text.lower() else \
        f"it cannot be decoded ({type(e).__name__}: {text})"


async def _keys(store, prefix: str) -> list[str]:
    return [k async for k in store.list_prefix(prefix)]


def rewrite(source: str | Path, out: str | Path, batch: int = 64, progress: bool = True) -> EpisodeStore:
    """A copy of a store in the current format (e.g. a version 2 store, a file per frame, into shards)."""
    src = EpisodeStore.open(source)
    keep = {k: v for k, v in src.attrs.items()
            if k not in ("format_version", "num_episodes", "checksums", ATTRS_CRC, "cameras", "image_size")}
    dst = EpisodeStore.create(out, cameras=src.cameras, image_size=tuple(src.attrs["image_size"]),
                              state_dim=src._state.shape[1], action_dim=src._action.shape[1], **keep)
    name = str(source).rstrip("/").split("/")[-1]
    for first in tqdm(range(0, src.num_episodes, batch), desc=f"rewrite {name}", unit="batch",
                      disable=not progress):
        dst.append_many([src.episode(i) for i in range(first, min(src.num_episodes, first + batch))])
    return dst


def array_names(cameras: list[str]) -> list[str]:
    """Every array of a version 2 store (version 1 lacks data/focus)."""
    return [*(f"data/images/{c}" for c in cameras), "data/state", "data/action", "data/focus", "meta/episode_ends",
            *(f"meta/{k}" for k in META)]


def node_names(cameras: list[str]) -> list[str]:
    """Every group and array below the root: each has a zarr.json."""
    return ["data", "data/images", "meta", *array_names(cameras)]


def canonical_metadata(meta: dict) -> bytes:
    """A node's zarr.json as checksummed: the length of an array's first axis is left out (it grows with
    every append, and is checked against the committed episodes instead)."""
    meta = dict(meta)
    if meta.get("node_type") == "array":
        meta["shape"] = meta["shape"][1:]
    return json.dumps(meta, sort_keys=True).encode()


def checksum_of(raw: bytes) -> int:
    """The checksum of a node's zarr.json as stored (see canonical_metadata)."""
    return google_crc32c.value(canonical_metadata(json.loads(raw)))


def attrs_checksum(attrs: dict) -> int:
    return google_crc32c.value(json.dumps({k: v for k, v in attrs.items() if k != ATTRS_CRC},
                                          sort_keys=True).encode())


def _or_nan(arr: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    return np.full(shape, math.nan, np.float32) if arr is None else arr.astype(np.float32)
