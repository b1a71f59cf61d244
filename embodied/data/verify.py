"""Read every file of an episode store and name what is damaged: `embodied data verify STORE`.

Checks, in order: each zarr.json parses and matches its checksum (format version 2 on); the store opens
and validates; every file the committed rows need is there; every chunk of the state, action and
per-episode arrays decodes (crc32c); every frame of every camera decodes and matches its checksum, and
so does the index of every shard (version 3). Version 1 stores carry no checksums: their chunks are only
checked to decode.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embodied.data.places import location, raw_store, read_key
from embodied.data.store import (
    ATTRS_CRC,
    EpisodeStore,
    StoreError,
    attrs_checksum,
    checksum_of,
    damage_reason,
    node_names,
    read_spans,
)

BLOCK = 256  # frames read at once; a block that fails is read again frame by frame


@dataclass
class Damage:
    """One thing wrong: a file, or a run of frames of one camera in one episode."""

    file: str  # relative to the store
    why: str
    episode: int | None = None
    camera: str | None = None
    steps: str | None = None  # e.g. "3" or "3-7": steps within the episode


@dataclass
class Report:
    store: str
    format_version: int | None
    episodes: int
    frames: int
    damage: list[Damage]

    @property
    def whole(self) -> bool:
        return not self.damage

    def to_json(self) -> dict:
        return {**asdict(self), "whole": self.whole}


def verify(path: str | Path, progress: bool = True) -> Report:
    """A store at a folder or a URL (s3://...)."""
    path = location(path)
    damage = _check_metadata(path)
    try:
        store = EpisodeStore.open(path, check_files=False)
    except StoreError as e:
        return Report(str(path), None, 0, 0, damage or [Damage("zarr.json", str(e))])
    damage += _check_tails(store)
    missing = store.missing_files()
    damage += [Damage(key, f"missing ({_episodes(store, lo, hi, name.startswith('data/'))})")
               for name, key, lo, hi in missing]
    damage += _check_small_arrays(store, {m[1] for m in missing})
    damage += _check_frames(store, {m[1] for m in missing}, progress)
    return Report(str(path), store.version, store.num_episodes, store.num_frames, damage)


def _check_metadata(path: Path | str) -> list[Damage]:
    """Every zarr.json parses; in version 2 on, each matches the checksum kept in the root attributes."""
    store = raw_store(path)
    root = read_key(store, "zarr.json")
    if root is None:
        return [Damage("zarr.json", "missing: this is not an episode store")]
    try:
        attrs = json.loads(root).get("attributes", {})
    except (ValueError, UnicodeDecodeError) as e:
        return [Damage("zarr.json", f"not valid JSON ({e})")]
    if attrs.get("format_version", 1) < 2:
        return []
    damage = []
    if attrs.get(ATTRS_CRC) != attrs_checksum(attrs):
        damage.append(Damage("zarr.json", "the root attributes do not match their checksum"))
    for node, expected in attrs.get("checksums", {}).items():
        file = f"{node}/zarr.json"
        raw = read_key(store, file)
        if raw is None:
            damage.append(Damage(file, "missing"))
            continue
        try:
            ok = checksum_of(raw) == expected
        except (ValueError, UnicodeDecodeError, TypeError, KeyError) as e:
            damage.append(Damage(file, f"not valid array metadata ({e})"))
            continue
        if not ok:
            damage.append(Damage(file, "does not match its checksum"))
    if set(attrs.get("checksums", {})) != set(node_names(attrs.get("cameras", []))):
        damage.append(Damage("zarr.json", "the list of checksummed arrays does not match the cameras"))
    return damage


def _check_tails(store: EpisodeStore) -> list[Damage]:
    """Rows past the commit point: an append that was interrupted (opening with mode='a' drops them)."""
    want = {**{f"data/images/{c}": store.num_frames for c in store.cameras},
            **{name: store.num_frames for name in store.per_frame},
            **{f"meta/{k}": store.num_episodes for k in store._meta}}
    out = []
    for name, n in want.items():
        rows = store.group[name].shape[0]
        if rows > n:
            out.append(Damage(f"{name}/zarr.json", f"{rows - n} rows past the last committed episode: an interrupted "
                              "append (or a damaged length); opening the store for appending drops them"))
    return out


def _check_small_arrays(store: EpisodeStore, missing: set[str]) -> list[Damage]:
    """State, action and per-episode arrays, chunk by chunk: decodable."""
    arrays = {**store.per_frame, **{f"meta/{k}": a for k, a in store._meta.items()}}
    out = []
    for name, arr in arrays.items():
        per_frame = name.startswith("data/")
        n = store.num_frames if per_frame else store.num_episodes
        step = arr.chunks[0]
        for c in range(math.ceil(n / step)):
            lo, hi = c * step, min(n, (c + 1) * step)
            where = f"{name}/{arr.metadata.encode_chunk_key((c, *([0] * (arr.ndim - 1))))}"
            if where in missing:
                continue
            try:
                arr[lo:hi]
            except Exception as e:  # noqa: BLE001 - checksum and codec errors come as many kinds
                out.append(Damage(where, f"{damage_reason(e)} ({_episodes(store, lo, hi, per_frame)})"))
    return out


def _episodes(store: EpisodeStore, lo: int, hi: int, per_frame: bool) -> str:
    if not per_frame:
        return f"episodes {lo}-{hi - 1}"
    ends = store.episode_ends
    first, last = np.searchsorted(ends, lo, side="right"), np.searchsorted(ends, hi - 1, side="right")
    return f"episodes {first}-{last}"


def _check_frames(store: EpisodeStore, missing: set[str], progress: bool) -> list[Damage]:
    """Every frame of every camera, a block at a time (frame by frame where a block fails); runs of bad
    frames of one episode are reported as one line."""
    bad: dict[tuple[str, int], list[tuple[int, str, str]]] = {}  # (camera, episode) -> [(step, file, why)]
    ends = store.episode_ends
    n = store.num_frames
    with tqdm(total=n * len(store.cameras), desc="verify frames", unit="frame", disable=not progress,
              leave=False) as bar:
        for cam in store.cameras:
            arr = store._images[cam]
            step = (arr.shards or arr.chunks)[0]

            def file_of(i: int, arr=arr, step=step) -> str:
                return f"{arr.path}/{arr.metadata.encode_chunk_key((i // step, 0, 0, 0))}"

            for lo in range(0, n, BLOCK):
                rows = [i for i in range(lo, min(n, lo + BLOCK)) if file_of(i) not in missing]
                try:
                    read_spans(arr, [(i, i + 1) for i in rows])
                    rows = []
                except Exception:  # noqa: BLE001 - find which frames
                    pass
                for i in rows:
                    try:
                        read_spans(arr, [(i, i + 1)])
                    except Exception as e:  # noqa: BLE001
                        ep = int(np.searchsorted(ends, i, side="right"))
                        start = int(ends[ep - 1]) if ep else 0
                        bad.setdefault((cam, ep), []).append((i - start, file_of(i), damage_reason(e)))
                bar.update(min(n, lo + BLOCK) - lo)
    out = []
    for (cam, ep), rows in bad.items():
        steps = [r[0] for r in rows]
        span = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]} ({len(steps)} frames)"
        out.append(Damage(rows[0][1], rows[0][2], episode=ep, camera=cam, steps=span))
    return out
