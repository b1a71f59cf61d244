"""Episodes from video files (mp4 per camera, optional actions/states), and episodes to mp4."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from embodied.data.store import Episode, EpisodeStore, StoreError
from embodied.media import caption, read_video, side_by_side, write_mp4


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


def create_store_for_videos(path: str | Path, videos: dict[str, str | Path], action_dim: int | None = None,
                            state_dim: int | None = None) -> EpisodeStore:
    """A new store shaped by the videos: their cameras, frame size and frame rate (as control rate).
    Without actions or states to size them, the tabletop arm's specs are assumed."""
    from embodied.envs.arm import STATE_SPEC, action_spec
    from embodied.envs.tabletop import default_config

    missing = [str(p) for p in videos.values() if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no video file {missing[0]}")
    shapes, rates = {}, {}
    for cam, p in videos.items():
        with av.open(str(p)) as container:
            stream = container.streams.video[0]
            shapes[cam], rates[cam] = (stream.height, stream.width), float(stream.average_rate or 20)
    if len(set(shapes.values())) != 1:
        raise StoreError(f"the videos have different sizes {shapes} (HxW); one store holds one size")
    cfg = default_config()
    arm = action_spec("ee_delta", cfg.max_step, cfg.max_yaw_step, None)
    tabletop = (action_dim in (None, len(arm.names))) and (state_dim in (None, len(STATE_SPEC.names)))
    return EpisodeStore.create(
        path, cameras=list(videos), image_size=next(iter(shapes.values())), control_rate=next(iter(rates.values())),
        state_dim=state_dim or len(STATE_SPEC.names), action_dim=action_dim or len(arm.names),
        robot="tabletop" if tabletop else "imported", action_spec=arm.to_dict() if tabletop else None,
        state_spec=STATE_SPEC.to_dict() if tabletop else None)


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
