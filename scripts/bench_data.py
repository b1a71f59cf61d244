"""Data pipeline speed: image codecs, collection episodes/s (1 and 2 workers), store bytes per frame,
training-window samples/s through a DataLoader (0 and 2 workers; T_o = 1 and 2; two 96x96 cameras; H = 16).

    python scripts/bench_data.py [--episodes-per-family 8] [--json bench_data.json]
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
from embodied.errors import cli

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


def main(args: Args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        collected, path = bench_collect(args, tmp)
        store = EpisodeStore.open(path)
        content, on_disk = disk_usage(path)
        per_frame = {"content": content / store.num_frames, "on_disk": on_disk / store.num_frames}
        codecs = bench_codecs(store, tmp)
        windows = bench_windows(args, path)
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
    if args.json:
        args.json.write_text(json.dumps({"collect": collected, "codecs": codecs, "bytes_per_frame": per_frame,
                                         "windows_samples_per_s": windows}, indent=2))


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
