"""Read every file of an episode store and name what is damaged: `embodied data verify STORE`.

Checks, in order: each zarr.json parses and matches its checksum (format version 2); the store opens
and validates; every chunk of the state, action and per-episode arrays exists and decodes (crc32c);
every frame of every camera exists, matches its checksum and decompresses to a whole frame. Version 1
stores carry no checksums: their chunks are only checked to decode.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embodied.data.store import (
    ATTRS_CRC,
    EpisodeStore,
    StoreError,
    attrs_checksum,
    decode_frame,
    metadata_checksum,
    node_names,
)


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
    path = Path(path)
    damage = _check_metadata(path)
    try:
        store = EpisodeStore.open(path)
    except StoreError as e:
        return Report(str(path), None, 0, 0, damage or [Damage("zarr.json", str(e))])
    damage += _check_tails(store)
    damage += _check_small_arrays(store)
    damage += _check_frames(store, progress)
    return Report(str(path), store.version, store.num_episodes, store.num_frames, damage)


def _check_metadata(path: Path) -> list[Damage]:
    """Every zarr.json parses; in version 2, each matches the checksum kept in the root attributes."""
    root = path / "zarr.json"
    if not root.is_file():
        return [Damage("zarr.json", "missing: this is not an episode store")]
    try:
        attrs = json.loads(root.read_bytes()).get("attributes", {})
    except (ValueError, UnicodeDecodeError) as e:
        return [Damage("zarr.json", f"not valid JSON ({e})")]
    if attrs.get("format_version", 1) < 2:
        return []
    damage = []
    if attrs.get(ATTRS_CRC) != attrs_checksum(attrs):
        damage.append(Damage("zarr.json", "the root attributes do not match their checksum"))
    for node, expected in attrs.get("checksums", {}).items():
        file = f"{node}/zarr.json"
        try:
            ok = metadata_checksum(path / file) == expected
        except FileNotFoundError:
            damage.append(Damage(file, "missing"))
            continue
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


def _check_small_arrays(store: EpisodeStore) -> list[Damage]:
    """State, action and per-episode arrays, chunk by chunk: present and decodable."""
    arrays = {**store.per_frame, **{f"meta/{k}": a for k, a in store._meta.items()}}
    out = []
    for name, arr in arrays.items():
        per_frame = name.startswith("data/")
        n = store.num_frames if per_frame else store.num_episodes
        step = arr.chunks[0]
        for c in range(math.ceil(n / step)):
            lo, hi = c * step, min(n, (c + 1) * step)
            key = arr.metadata.encode_chunk_key((c, *([0] * (arr.ndim - 1))))
            where = f"{name}/{key}"
            if not (store.path / where).is_file():
                out.append(Damage(where, f"missing ({_episodes(store, lo, hi, per_frame)})"))
                continue
            try:
                arr[lo:hi]
            except Exception as e:  # noqa: BLE001 - checksum and codec errors come as many kinds
                why = "its checksum does not match" if "checksum" in str(e) else f"it cannot be decoded ({e})"
                out.append(Damage(where, f"{why} ({_episodes(store, lo, hi, per_frame)})"))
    return out


def _episodes(store: EpisodeStore, lo: int, hi: int, per_frame: bool) -> str:
    if not per_frame:
        return f"episodes {lo}-{hi - 1}"
    ends = store.episode_ends
    first, last = np.searchsorted(ends, lo, side="right"), np.searchsorted(ends, hi - 1, side="right")
    return f"episodes {first}-{last}"


def _check_frames(store: EpisodeStore, progress: bool) -> list[Damage]:
    """Every frame of every camera; runs of bad frames of one episode are reported as one line."""
    bad: dict[tuple[str, int], list[tuple[int, str, str]]] = {}  # (camera, episode) -> [(step, file, why)]
    ends = store.episode_ends
    total = store.num_frames * len(store.cameras)
    with tqdm(total=total, desc="verify frames", unit="frame", disable=not progress, leave=False) as bar:
        for cam in store.cameras:
            arr = store._images[cam]
            folder = store.path / arr.path
            for i in range(store.num_frames):
                file = arr.metadata.encode_chunk_key((i, 0, 0, 0))
                why = None
                try:
                    decode_frame((folder / file).read_bytes(), store._crc, arr.shape[1:])
                except FileNotFoundError:
                    why = "missing"
                except ValueError as e:
                    why = str(e)
                if why:
                    ep = int(np.searchsorted(ends, i, side="right"))
                    start = int(ends[ep - 1]) if ep else 0
                    bad.setdefault((cam, ep), []).append((i - start, f"{arr.path}/{file}", why))
                bar.update()
    out = []
    for (cam, ep), rows in bad.items():
        steps = [r[0] for r in rows]
        span = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]} ({len(steps)} frames)"
        out.append(Damage(rows[0][1], rows[0][2], episode=ep, camera=cam, steps=span))
    return out
