"""What a store holds, in a table and in a picture."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from embodied.data.store import EpisodeStore
from embodied.errors import UserError
from embodied.media import caption, contact_sheet, save_png, side_by_side


def disk_usage(path: Path | str) -> tuple[int, int]:
    """(bytes in files, bytes of disk blocks allocated) under a folder; for a URL, its objects' bytes twice."""
    if isinstance(path, str) and "://" in path:
        import fsspec

        fs, root = fsspec.core.url_to_fs(path)
        size = int(fs.du(root))
        return size, size
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), sum(p.stat().st_blocks * 512 for p in files)


def summary(store: EpisodeStore) -> dict:
    n = store.num_frames
    content, on_disk = disk_usage(store.path)
    families = store.meta("family")
    success = store.meta("success")
    per_family = {f: {"episodes": int(c), "success": float(success[families == f].mean())}
                  for f, c in sorted(Counter(families.tolist()).items())}
    return {
        "path": str(store.path), "episodes": store.num_episodes, "frames": n,
        "cameras": store.cameras, "image_size": store.attrs["image_size"],
        "control_rate": store.attrs["control_rate"], "format_version": store.attrs["format_version"],
        "episodes_without_actions": int((~store.meta("has_actions").astype(bool)).sum()),
        "success": float(success.mean()) if len(success) else float("nan"),
        "bytes": content, "bytes_on_disk": on_disk,
        "bytes_per_frame": content / max(n, 1), "bytes_on_disk_per_frame": on_disk / max(n, 1),
        "families": per_family,
    }


def print_summary(store: EpisodeStore) -> dict:
    s = summary(store)
    table = Table(title=f"{s['path']}  (format v{s['format_version']})", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("episodes", f"{s['episodes']:,}"), ("frames", f"{s['frames']:,}"),
        ("cameras", f"{', '.join(s['cameras'])} at {s['image_size'][1]}x{s['image_size'][0]}"),
        ("control rate", f"{s['control_rate']:g} Hz"), ("success", f"{100 * s['success']:.1f}%"),
        ("episodes without actions", str(s["episodes_without_actions"])),
        ("size (content / on disk)", f"{s['bytes'] / 1e6:.1f} MB / {s['bytes_on_disk'] / 1e6:.1f} MB"),
        ("bytes per frame (all cameras)", f"{s['bytes_per_frame']:,.0f} / {s['bytes_on_disk_per_frame']:,.0f}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    tasks = Table(title="episodes per task family")
    tasks.add_column("family")
    tasks.add_column("episodes", justify="right")
    tasks.add_column("success", justify="right")
    for family, r in s["families"].items():
        tasks.add_row(family, str(r["episodes"]), f"{100 * r['success']:.0f}%")
    console = Console()
    console.print(table)
    console.print(tasks)
    return s


def show(store: EpisodeStore, out: str | Path, max_episodes: int = 16, scale: int = 2, seed: int = 0) -> Path:
    """A contact sheet PNG: the first frame of up to max_episodes episodes (spread over the
    families), all cameras side by side, captioned with the instruction."""
    families = store.meta("family")
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    pools = {f: list(rng.permutation(np.flatnonzero(families == f))) for f in dict.fromkeys(families.tolist())}
    while len(picks) < min(max_episodes, store.num_episodes):
        for pool in pools.values():
            if pool and len(picks) < max_episodes:
                picks.append(int(pool.pop()))
    tiles = []
    for i in sorted(picks):
        start, _ = store.episode_range(i)
        frame = {c: store.frames(c, [start])[0] for c in store.cameras}
        text = f"#{i} {families[i]}: {store.meta('instruction')[i]}"
        tiles.append(caption(side_by_side(frame, scale), text, lines=2))
    if not tiles:
        raise UserError(f"{store.path} has no episodes to show")
    return save_png(out, contact_sheet(tiles, cols=4 if len(tiles) > 8 else 2))


def print_verify(report) -> None:
    """A verify report (embodied.data.verify.Report): one line when whole, else a table of the damage."""
    console = Console()
    checked = f"{report.episodes:,} episodes, {report.frames:,} frames, format v{report.format_version}"
    if report.whole:
        console.print(f"[green]whole[/green]: {report.store} ({checked})")
        if report.format_version == 1:
            console.print("format v1 stores carry no checksums: chunks were checked to decode, not to be unchanged")
        return
    table = Table(title=f"{report.store}: {len(report.damage)} damaged ({checked})")
    for col in ("episode", "camera", "steps", "file", "what is wrong"):
        table.add_column(col, overflow="fold")
    for d in report.damage:
        table.add_row("" if d.episode is None else str(d.episode), d.camera or "", d.steps or "", d.file, d.why)
    console.print(table)
