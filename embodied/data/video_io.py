"""Episodes from video files (mp4 per camera, optional actions/states), and episodes to mp4."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embodied.data.store import Episode, EpisodeStore, StoreError
from embodied.evaluation.video import caption, read_video, side_by_side, write_mp4


def load_array(path: str | Path) -> np.ndarray:
    """A float32 (T, D) array from .npy or .csv (comma-separated, no header)."""
    path = Path(path)
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif path.suffix == ".csv":
        arr = np.loadtxt(path, delimiter=",", ndmin=2)
    else:
        raise StoreError(f"{path}: expected a .npy or .csv file")
    if arr.ndim != 2:
        raise StoreError(f"{path}: expected a 2-D array (frames, dims), got shape {arr.shape}")
    return arr.astype(np.float32)


def import_episode(store: EpisodeStore, videos: dict[str, str | Path], instruction: str,
                   family: str = "imported", actions: str | Path | None = None,
                   states: str | Path | None = None) -> int:
    """Append one episode read from an mp4 per camera. Everything is read and checked before the
    store is touched, so a bad input leaves it unchanged. Returns the episode index."""
    if set(videos) != set(store.cameras):
        raise StoreError(f"videos given for cameras {sorted(videos)}; the store has {store.cameras}")
    try:
        images = {cam: read_video(p) for cam, p in videos.items()}
    except (FileNotFoundError, ValueError) as e:
        raise StoreError(str(e)) from e
    counts = {cam: len(v) for cam, v in images.items()}
    if len(set(counts.values())) != 1:
        raise StoreError(f"cameras have different frame counts {counts}; they must match")
    t = next(iter(counts.values()))
    h, w = store.attrs["image_size"]
    for cam, v in images.items():
        if v.shape[1:3] != (h, w):
            raise StoreError(f"video for {cam!r} is {v.shape[2]}x{v.shape[1]} (WxH); the store holds "
                             f"{w}x{h} frames: resize it first")
    arrays = {name: load_array(p) if p is not None else None for name, p in (("action", actions), ("state", states))}
    for name, arr in arrays.items():
        if arr is not None and len(arr) != t:
            raise StoreError(f"{name}s have {len(arr)} rows but the videos have {t} frames")
    ep = Episode(images=images, state=arrays["state"], action=arrays["action"], instruction=instruction,
                 family=family, success=True, seed=-1)
    return store.append(ep)  # append() checks dims and finiteness before writing


def export_episode(store: EpisodeStore, index: int, path: str | Path, scale: int = 2) -> Path:
    """An mp4 of one episode: all cameras side by side, the instruction as caption."""
    ep = store.episode(index)
    text = f"#{index} {ep.family}: {ep.instruction}"
    frames = [caption(side_by_side({c: ep.images[c][t] for c in store.cameras}, scale), text, lines=2)
              for t in range(len(ep))]
    return write_mp4(path, frames, fps=int(round(store.attrs["control_rate"])))
