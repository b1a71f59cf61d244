"""Training windows over an episode store: observation history + the next H actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from embodied.data.places import location
from embodied.data.store import EpisodeStore
from embodied.errors import UserError


def split_episodes(num_episodes: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation episode indices: a seeded random split by episode (never by frame)."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(num_episodes)
    n_val = int(round(val_fraction * num_episodes))
    if val_fraction > 0 and num_episodes > 1:
        n_val = max(1, n_val)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class StoreDataset(Dataset):
    """A dataset reading frames from the store at `self.path`; DataLoader workers reopen it themselves.

    Frames come through `read_frames`, which keeps decoded frames in each reading process up to
    `frame_cache_mb` (first read first kept): a zarr read costs about 1 ms on a slow CPU and decodes a whole
    chunk of frames, all of which are kept, so an epoch reads each chunk once."""

    path: Path | str  # a folder, or a URL (s3://...)
    _store: EpisodeStore | None

    def __getstate__(self):
        return {**self.__dict__, "_store": None}

    @property
    def store(self) -> EpisodeStore:
        if self._store is None:  # a DataLoader worker: the constructor has checked the store's files
            self._store = EpisodeStore.open(self.path, check_files=False)
        return self._store

    def start_cache(self, cameras: list[str], frame_cache_mb: int) -> None:
        self._cache: dict[str, dict[int, np.ndarray]] = {c: {} for c in cameras}
        self._cache_left = frame_cache_mb * 2**20

    def read_frames(self, camera: str, index: np.ndarray) -> np.ndarray:  # uint8 (n, H, W, 3)
        cache = self._cache[camera]
        todo = np.unique([i for i in index.tolist() if i not in cache])
        if len(todo) and self._cache_left > 0:  # a read decodes a whole chunk: keep all of its frames
            k = self.store.frames_per_chunk
            todo = np.unique(todo[:, None] // k * k + np.arange(k))
            todo = todo[todo < self.store.num_frames]
        read = dict(zip(todo.tolist(), self.store.frames(camera, todo), strict=True))
        for i, frame in read.items():
            if i in cache:
                continue
            if self._cache_left < frame.nbytes:
                break
            cache[i] = frame
            self._cache_left -= frame.nbytes
        return np.stack([cache[i] if i in cache else read[i] for i in index.tolist()])


class WindowDataset(StoreDataset):
    """Item i is frame t of the chosen episodes:

    images       {camera: uint8 (T_o, H, W, 3)}  frames t-T_o+1 .. t (the first frame repeats before
                                                  the episode starts)
    state        float32 (T_o, S)
    action       float32 (H, A)   actions t .. t+H-1 (past the episode end: the last action repeats)
    action_mask  bool (H, A)      False where the target is padding past the end (with keep_gripper, True
                                  for the gripper of a successful episode, which keeps its last command) and
                                  where the store's action is unknown (NaN; it reads 0 in `action`)
    focus        float32 (3,)     the named thing relative to the gripper at frame t (m; NaN if unknown)
    focus_px     {camera: float32 (2,)}  where the named thing appears in frame t's image, (x, y) in
                                  [-1, 1] of the width and height (left/top edge = -1); NaN where unknown:
                                  no projection (moving camera, real data), no focus, or out of frame
    instruction, family (str); episode, frame (int)
    """

    def __init__(self, path: str | Path, obs_horizon: int = 1, action_horizon: int = 16,
                 episodes: np.ndarray | None = None, cameras: list[str] | None = None,
                 require_actions: bool = True, keep_gripper: bool = True, frame_cache_mb: int = 0):
        """keep_gripper: past the end of a successful episode the gripper's target is its last command (the
        motions stay masked). A place demonstration ends on the first frame the gripper opens, so without
        it a chunk holds that release in one position only and the policy never lets go.
        frame_cache_mb: decoded frames each reading process keeps (StoreDataset.read_frames)."""
        if obs_horizon < 1 or action_horizon < 1:
            raise UserError(f"horizons must be >= 1, got obs {obs_horizon}, action {action_horizon}")
        self.path, self.obs_horizon, self.action_horizon = location(path), obs_horizon, action_horizon
        store = EpisodeStore.open(self.path)
        self.cameras = list(cameras or store.cameras)
        missing = sorted(set(self.cameras) - set(store.cameras))
        if missing:
            raise UserError(f"cameras {missing} are not in {path}; it has {store.cameras}")
        episodes = np.arange(store.num_episodes) if episodes is None else np.asarray(episodes, np.int64)
        if require_actions:
            episodes = episodes[store.meta("has_actions")[episodes].astype(bool)]
        ends = store.episode_ends
        starts = np.concatenate([[0], ends[:-1]])
        self.episodes = episodes
        self.instructions = store.meta("instruction")
        self.families = store.meta("family")
        self.states, self.actions = store.states(), store.actions()  # small: kept in memory
        focus = store.focus()
        self.focus = np.full((len(self.states), 3), np.nan, np.float32) if focus is None else focus
        self.focus_px = focus_pixels(store.attrs, self.states, self.focus, self.cameras)
        lengths = ends[episodes] - starts[episodes]
        self._frame = np.concatenate([np.arange(starts[e], ends[e]) for e in episodes]) if len(episodes) else \
            np.zeros(0, np.int64)
        self._episode = np.repeat(episodes, lengths)
        self._start, self._end = np.repeat(starts[episodes], lengths), np.repeat(ends[episodes], lengths)
        self.stats = store.stats()
        self._success = store.meta("success").astype(bool)
        spec = store.attrs.get("action_spec")
        self._gripper = list(spec["names"]).index("gripper") if spec and "gripper" in spec["names"] else None
        has_grip = keep_gripper and self._gripper is not None
        self._grip = np.arange(len(spec["names"])) == self._gripper if has_grip else None  # its column mask
        self._store: EpisodeStore | None = store
        self.start_cache(self.cameras, frame_cache_mb)

    def __len__(self) -> int:
        return len(self._frame)

    @property
    def sample_families(self) -> np.ndarray:  # (len,) task family of every sample
        return self.families[self._episode]

    def near_start(self, window: int) -> np.ndarray:
        """(len,) bool: the sample is one of its episode's first `window` frames, where the robot state is the
        same in every episode and only the images and the instruction tell where to go."""
        return self._frame - self._start < window

    def release_ahead(self, window: int) -> np.ndarray:
        """(len,) bool: one of the sample's next `window` actions opens the gripper after a closed one
        (> 0 closes): the release that ends a place, a decision a policy copying its own gripper state
        gets wrong. All False without a gripper action."""
        if self._gripper is None or window < 1:
            return np.zeros(len(self), bool)
        closed = self.actions[:, self._gripper] > 0
        opens = np.zeros(len(closed), bool)  # opens[g]: action g opens what action g-1 of its episode closed
        opens[1:] = closed[:-1] & ~closed[1:]
        opens[self._start] = False
        ahead = np.zeros(len(self), bool)
        for k in range(window):
            g = self._frame + k
            ahead |= (g < self._end) & opens[np.minimum(g, len(opens) - 1)]
        return ahead

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """Items of a batch (a DataLoader passes a batch's indices): each camera's frames in one read."""
        obs = [np.clip(np.arange(t - self.obs_horizon + 1, t + 1), start, end - 1)
               for t, start, end in zip(self._frame[indices], self._start[indices], self._end[indices], strict=True)]
        flat = np.concatenate(obs) if obs else np.zeros(0, np.int64)
        images = {c: self.read_frames(c, flat).reshape(len(obs), self.obs_horizon, *self.store.attrs["image_size"], 3)
                  for c in self.cameras}
        return [self._item(int(i), o, {c: v[k] for c, v in images.items()}) for k, (i, o) in
                enumerate(zip(indices, obs, strict=True))]

    def _item(self, i: int, obs: np.ndarray, images: dict[str, np.ndarray]) -> dict:
        t, start, end = self._frame[i], self._start[i], self._end[i]
        act = np.arange(t, t + self.action_horizon)
        mask = act < end
        act = np.minimum(act, end - 1)
        ep = int(self._episode[i])
        actions = self.actions[act]
        mask = np.repeat(mask[:, None], actions.shape[1], 1)  # (H, A)
        if self._success[ep] and self._grip is not None and not mask.all():
            mask[:, self._grip] = True  # the last action repeats: the gripper keeps its command
        known = np.isfinite(actions)
        if not known.all():  # an unknown action (NaN: a pseudo-label filtered out) is no target
            mask &= known
            actions = np.where(known, actions, 0).astype(np.float32)
        return {
            "images": images,
            "state": self.states[obs],
            "action": actions,
            "action_mask": mask,
            "focus": self.focus[t],
            "focus_px": {c: v[t] for c, v in self.focus_px.items()},
            "instruction": str(self.instructions[ep]),
            "family": str(self.families[ep]),
            "episode": ep,
            "frame": int(t - start),
        }


class VideoMix(Dataset):
    """Demonstration windows, then windows of a video store made trainable by scripts/label_video.py.

    Items gain `weight` (1 for demonstrations, `video_weight` for video). With latent-action codes (the
    video store's action spec has kind 'latent'), every item also has `latent` int64 (H, G): a video item's
    codes (-1 past its end) with its action masked out; a demonstration's all -1.
    """

    def __init__(self, demos: WindowDataset, video: WindowDataset, video_weight: float, action_dim: int):
        self.demos, self.video, self.video_weight, self.action_dim = demos, video, video_weight, action_dim
        spec = video.store.attrs.get("action_spec") or {}
        self.latent = spec.get("kind") == "latent"
        self.groups = int(spec.get("groups", 0))
        self.stats = demos.stats

    def __len__(self) -> int:
        return len(self.demos) + len(self.video)

    def sample_groups(self, video_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """(label per sample, probability per label in np.unique order): families are drawn equally within
        each source, and video gets `video_fraction` of the draws."""
        labels = np.array([f"demo:{f}" for f in self.demos.sample_families]
                          + [f"video:{f}" for f in self.video.sample_families])
        names = np.unique(labels)
        is_video = np.array([n.startswith("video:") for n in names])
        prob = np.where(is_video, video_fraction / is_video.sum(), (1 - video_fraction) / (~is_video).sum())
        return labels, prob

    def near_start(self, window: int) -> np.ndarray:  # (len,) bool, as WindowDataset.near_start
        return np.concatenate([self.demos.near_start(window), self.video.near_start(window)])

    def release_ahead(self, window: int) -> np.ndarray:  # (len,) bool: the demonstrations' releases
        return np.concatenate([self.demos.release_ahead(window), np.zeros(len(self.video), bool)])

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """Items of a batch: the demonstrations' and the video's each read at once, returned in order."""
        n, h = len(self.demos), self.demos.action_horizon
        demo = [i for i in indices if i < n]
        video = [i - n for i in indices if i >= n]
        demo_items = iter(self.demos.__getitems__(demo) if demo else [])
        video_items = iter(self.video.__getitems__(video) if video else [])
        out = []
        for i in indices:
            if i < n:
                item = next(demo_items) | {"weight": np.float32(1.0)}
                if self.latent:
                    item["latent"] = np.full((h, self.groups), -1, np.int64)
            else:
                item = next(video_items) | {"weight": np.float32(self.video_weight)}
                if self.latent:
                    codes = np.where(item["action_mask"], item["action"], -1).astype(np.int64)  # (H, G)
                    item |= {"latent": codes, "action": np.zeros((h, self.action_dim), np.float32),
                             "action_mask": np.zeros((h, self.action_dim), bool)}
            out.append(item)
        return out


def focus_pixels(attrs: dict, states: np.ndarray, focus: np.ndarray, cameras: list[str]) -> dict[str, np.ndarray]:
    """{camera: float32 (N, 2)}: where each frame's named thing (at focus from the gripper) appears in the
    camera's image, from the store's camera_projections (static cameras: world to pixels; cameras on the
    hand: the ee frame to pixels, with the ee pose from the state); NaN where that cannot be told."""
    out = {c: np.full((len(states), 2), np.nan, np.float32) for c in cameras}
    names = list((attrs.get("state_spec") or {}).get("names", []))
    projections = attrs.get("camera_projections") or {}
    pose = ("ee_x", "ee_y", "ee_z", "ee_qw", "ee_qx", "ee_qy", "ee_qz")
    if not set(pose) <= set(names):
        return out
    ee = states[:, [names.index(n) for n in pose]].astype(np.float64)  # (N, 7)
    points = {"world": ee[:, :3] + focus,  # (N, 3)
              "ee": np.einsum("nji,nj->ni", _rotations(ee[:, 3:]), focus)}  # focus in the ee frame: R^T focus
    h, w = attrs["image_size"]
    for frame, matrices in projections.items():
        for cam in set(cameras) & set(matrices):
            p = np.c_[points[frame], np.ones(len(states))] @ np.asarray(matrices[cam]).T  # (N, 3): (u, v, 1) * depth
            with np.errstate(invalid="ignore", divide="ignore"):
                xy = 2 * p[:, :2] / p[:, 2:] / [w, h] - 1
                seen = (p[:, 2] > 0) & (np.abs(xy) <= 1).all(1)
            out[cam][seen] = xy[seen]
    return out


def _rotations(quat: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions (w, x, y, z) -> (N, 3, 3) rotation matrices."""
    w, x, y, z = quat.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], 1)
