"""Data pipeline speed: image codecs, collection episodes/s (1 and 2 workers), store bytes per frame,
training-window samples/s through a DataLoader (0 and 2 workers; T_o = 1 and 2; two 96x96 cameras; H = 16),
and the store layouts side by side on one store: the previous one (format 2: a file per frame, read and
written by a hand-written Blosc path, kept here only as the baseline) against shards through zarr's API
(format 3): files per 1,000 episodes, bytes, frames written per second, training windows read per second.

    python scripts/bench_data.py [--episodes-per-family 8] [--json bench_data.json]
    python scripts/bench_data.py --layouts-only --store datasets/pretrain_small.zarr   # the main job's store
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import torch
import tyro
import zarr
from rich.console import Console
from rich.table import Table
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from embodied.data.collect import collect
from embodied.data.recipes import Recipe
from embodied.data.report import disk_usage
from embodied.data.store import IMAGE_CODEC, EpisodeStore
from embodied.data.windows import WindowDataset
from embodied.errors import UserError, cli

CODECS = {
    "none": None,
    "blosc-lz4": BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),
    "blosc-zstd-3 (chosen)": IMAGE_CODEC,
    "blosc-zstd-3 bitshuffle": BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
    "zstd-3": ZstdCodec(level=3),
    "gzip-6": GzipCodec(level=6),
}


@dataclass
class Args:
    episodes_per_family: int = 20
    """Episodes per family (reach, pick, place, open_drawer) for the collection runs."""
    batches: int = 40
    """Batches of 64 timed per DataLoader setting."""
    json: Path | None = None
    """Also write the figures here."""
    store: Path | None = None
    """The store the layouts are compared on (its first --layout-episodes episodes); default: the collected one."""
    layout_episodes: int = 400
    """Episodes copied into each layout."""
    layouts_only: bool = False
    """Only the layout comparison (needs --store)."""


def table(title: str, header: list[str], rows: list[list]) -> None:
    t = Table(title=title)
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[f"{x:,.1f}" if isinstance(x, float) else str(x) for x in r])
    Console().print(t)


def bench_collect(args: Args, tmp: Path) -> tuple[dict, Path]:
    out = {}
    for workers in (1, 2):
        recipe = Recipe(name="bench", families=["reach", "pick", "place", "open_drawer"],
                        episodes_per_family=args.episodes_per_family)
        path = tmp / f"collect_{workers}.zarr"
        start = time.perf_counter()
        store = collect(recipe, path, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        out[workers] = {"episodes_per_s": store.num_episodes / seconds, "frames_per_s": store.num_frames / seconds}
    return out, path


def bench_codecs(store: EpisodeStore, tmp: Path) -> dict:
    frames = np.concatenate([store.frames(c, np.arange(min(store.num_frames, 400))) for c in store.cameras])
    out = {}
    for name, codec in CODECS.items():
        path = tmp / f"codec_{len(out)}"
        arr = zarr.create_array(store=path, shape=frames.shape, chunks=(1, *frames.shape[1:]), dtype="uint8",
                                compressors=[codec] if codec else None)
        start = time.perf_counter()
        arr[:] = frames
        write = (time.perf_counter() - start) / len(frames)
        idx = np.random.default_rng(0).permutation(len(frames))[:200]
        start = time.perf_counter()
        for i in idx:
            arr[int(i)]
        read = (time.perf_counter() - start) / len(idx)
        content, _ = disk_usage(path)
        out[name] = {"bytes_per_image": content / len(frames), "ratio": frames[0].nbytes * len(frames) / content,
                     "write_ms": 1e3 * write, "zarr_read_ms": 1e3 * read}
    return out


def bench_windows(args: Args, path: Path) -> dict:
    out = {}
    for t_o in (1, 2):
        ds = WindowDataset(path, obs_horizon=t_o, action_horizon=16)
        for workers in (0, 2):
            loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                                 persistent_workers=workers > 0)
            it = iter(loader)
            next(it)  # start-up excluded
            start, n = time.perf_counter(), 0
            for _ in range(args.batches):
                try:
                    n += len(next(it)["action"])
                except StopIteration:
                    it = iter(loader)
            out[f"T_o={t_o}, workers={workers}"] = n / (time.perf_counter() - start)
    return out


class PreviousLayout:
    """Format 2 as it was written and read before format 3: a file per frame named c.<frame>.0.0.0, Blosc-zstd
    + crc32c bytes written and read by hand (temp file + rename), here only as the benchmark's baseline."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.shape = path, shape
        path.mkdir(parents=True)

    def write(self, start: int, frames: np.ndarray) -> None:
        for k, frame in enumerate(frames):
            raw = numcodecs.blosc.compress(np.ascontiguousarray(frame), b"zstd", IMAGE_CODEC.clevel, 0)
            raw += np.uint32(google_crc32c.value(raw)).astype("<u4").tobytes()
            target = self.path / f"c.{start + k}.0.0.0"
            tmp = target.with_suffix(f".{os.getpid()}.partial")
            tmp.write_bytes(raw)
            tmp.replace(target)

    def frames(self, index: np.ndarray) -> np.ndarray:
        out = np.zeros((len(index), *self.shape), np.uint8)
        for k, i in enumerate(index):
            raw = (self.path / f"c.{int(i)}.0.0.0").read_bytes()
            if np.frombuffer(raw[-4:], "<u4")[0] != google_crc32c.value(raw[:-4]):
                raise ValueError(f"frame {i}: checksum")
            out[k] = np.frombuffer(numcodecs.blosc.decompress(raw[:-4]), np.uint8).reshape(self.shape)
        return out


def bench_layouts(args: Args, source: Path, tmp: Path) -> dict:
    """Both layouts of the same episodes: files, bytes, write frames/s (appends of 8 episodes, as collection
    commits), window samples/s (batch 64, T_o = 1, in this process, so that both pay the same)."""
    src = EpisodeStore.open(source)
    n_ep = min(args.layout_episodes, src.num_episodes)
    eps = [src.episode(i) for i in range(n_ep)]
    frames = {c: np.concatenate([ep.images[c] for ep in eps]) for c in src.cameras}
    n = len(next(iter(frames.values())))
    out: dict = {"episodes": n_ep, "frames": n}

    old = {c: PreviousLayout(tmp / "previous" / c, frames[c].shape[1:]) for c in src.cameras}
    ends = np.cumsum([len(ep) for ep in eps])
    start = time.perf_counter()
    for b in range(0, n_ep, 8):
        lo, hi = (int(ends[b - 1]) if b else 0), int(ends[min(n_ep, b + 8) - 1])
        for c in src.cameras:
            old[c].write(lo, frames[c][lo:hi])
    old_write = time.perf_counter() - start

    keep = {k: v for k, v in src.attrs.items() if k not in ("format_version", "num_episodes", "checksums",
                                                           "attrs_crc32c", "cameras", "image_size", "stats")}
    new = EpisodeStore.create(tmp / "sharded.zarr", cameras=src.cameras, image_size=tuple(src.attrs["image_size"]),
                              state_dim=src._state.shape[1], action_dim=src._action.shape[1], **keep)
    start = time.perf_counter()
    for b in range(0, n_ep, 8):
        new.append_many(eps[b:b + 8])
    new_write = time.perf_counter() - start

    rng = np.random.default_rng(0)
    ds = WindowDataset(new.path, obs_horizon=1, action_horizon=16)
    windows = [rng.integers(0, len(ds), 64) for _ in range(args.batches)]
    previous = WindowDataset(new.path, obs_horizon=1, action_horizon=16)
    previous.store.frames = lambda camera, index: old[camera].frames(index)  # the same windows, frames read as before
    old_read = _timed(lambda idx: previous.__getitems__(idx.tolist()), windows)
    new_read = _timed(lambda idx: ds.__getitems__(idx.tolist()), windows)
    cached = WindowDataset(new.path, obs_horizon=1, action_horizon=16, frame_cache_mb=1 << 20)
    epoch = np.array_split(rng.permutation(len(cached)), max(1, len(cached) // 64))  # from an empty cache
    start = time.perf_counter()
    for idx in epoch:
        cached.__getitems__(idx.tolist())
    first_epoch = len(cached) / (time.perf_counter() - start)
    new_cached = _timed(lambda idx: cached.__getitems__(idx.tolist()), windows)

    files_old = sum(1 for _ in (tmp / "previous" / src.cameras[0]).iterdir())
    files_new = sum(1 for p in (new.path / "data/images" / src.cameras[0]).rglob("*") if p.is_file()) - 1
    out["previous (format 2, hand-written)"] = {
        "files_per_1000_episodes": 1000 * files_old / n_ep, "bytes": disk_usage(tmp / "previous")[1],
        "write_frames_per_s": n * len(src.cameras) / old_write, "window_samples_per_s": old_read}
    out["shards through zarr (format 3)"] = {
        "files_per_1000_episodes": 1000 * files_new / n_ep,
        "bytes": sum(disk_usage(new.path / "data/images" / c)[1] for c in src.cameras),
        "write_frames_per_s": n * len(src.cameras) / new_write, "window_samples_per_s": new_read,
        "window_samples_per_s_first_epoch": first_epoch, "window_samples_per_s_cached": new_cached}
    return out


def _timed(read, batches) -> float:
    read(batches[0])  # start-up excluded
    start = time.perf_counter()
    for idx in batches:
        read(idx)
    return 64 * len(batches) / (time.perf_counter() - start)


def print_layouts(layouts: dict) -> None:
    rows = []
    for name, v in layouts.items():
        if isinstance(v, dict):
            rows.append([name, f"{v['files_per_1000_episodes']:,.0f}", f"{v['bytes'] / 2**20:,.0f}",
                         f"{v['write_frames_per_s']:,.0f}", f"{v['window_samples_per_s']:,.0f}",
                         *(f"{v[k]:,.0f}" if k in v else "-" for k in ("window_samples_per_s_first_epoch",
                                                                        "window_samples_per_s_cached"))])
    table(f"Store layouts ({layouts['episodes']:,} episodes, {layouts['frames']:,} frames a camera)",
          ["layout", "files / 1,000 ep (a camera)", "MiB on disk (images)", "frames written/s",
           "windows read/s", "an epoch with the frame cache", "windows read/s, cached"], rows)
    old, new = (layouts[k] for k in list(layouts)[2:4])
    print(f"write {new['write_frames_per_s'] / old['write_frames_per_s']:.2f}x, "
          f"read {new['window_samples_per_s'] / old['window_samples_per_s']:.2f}x "
          f"({new['window_samples_per_s_first_epoch'] / old['window_samples_per_s']:.2f}x over a first epoch "
          f"with the frame cache, {new['window_samples_per_s_cached'] / old['window_samples_per_s']:.2f}x once "
          "cached) "
          "of the previous layout")


def main(args: Args) -> None:
    if args.layouts_only:
        if args.store is None:
            raise UserError("--layouts-only compares the layouts on an existing store: give --store PATH")
        with tempfile.TemporaryDirectory() as tmp:
            layouts = bench_layouts(args, args.store, Path(tmp))
        print_layouts(layouts)
        if args.json:
            args.json.write_text(json.dumps({"layouts": layouts}, indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        collected, path = bench_collect(args, tmp)
        store = EpisodeStore.open(path)
        content, on_disk = disk_usage(path)
        per_frame = {"content": content / store.num_frames, "on_disk": on_disk / store.num_frames}
        codecs = bench_codecs(store, tmp)
        windows = bench_windows(args, path)
        layouts = bench_layouts(args, args.store or path, tmp)
    table("Collection (expert, 2 cameras 96x96)", ["workers", "episodes/s", "frames/s"],
          [[w, r["episodes_per_s"], r["frames_per_s"]] for w, r in collected.items()])
    table("Image codecs (one 96x96 frame per chunk)", ["codec", "bytes/image", "ratio", "write ms", "zarr read ms"],
          [[k, v["bytes_per_image"], v["ratio"], v["write_ms"], v["zarr_read_ms"]] for k, v in codecs.items()])
    print(f"store: {per_frame['content']:,.0f} bytes per frame (2 cameras + state + action), "
          f"{per_frame['on_disk']:,.0f} on disk (4 KiB blocks)")
    table("Training windows through a DataLoader (batch 64, H=16, 2 cameras)", ["setting", "samples/s"],
          [[k, v] for k, v in windows.items()])
    best = min(v for k, v in windows.items() if "workers=2" in k)
    print(f"target >= 1,500 samples/s with 2 workers: {'met' if best >= 1500 else 'NOT met'} (slowest: {best:,.0f})")
    print_layouts(layouts)
    if args.json:
        args.json.write_text(json.dumps({"collect": collected, "codecs": codecs, "bytes_per_frame": per_frame,
                                         "windows_samples_per_s": windows, "layouts": layouts}, indent=2))


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
