"""Frame pairs (t, t+k) from episode stores: what the inverse-dynamics and latent-action models learn
from. Shared pieces: the conv encoder of a pair, photometric augmentation, and writing a labelled copy
of a video store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from embodied.data.places import location
from embodied.data.store import EpisodeStore
from embodied.data.windows import StoreDataset
from embodied.errors import UserError
from embodied.policies.model import random_shift


class TooShort(UserError):
    """An episode with no pair of frames k apart."""


class FramePairs(StoreDataset):
    """Item i: frame t of an episode and frame t+k of the same episode (t + k inside it).

    before, after  uint8 (C, H, W, 3)   the store's cameras, in store order
    action         float32 (k, A)       actions t .. t+k-1 (NaN in episodes without actions)
    """

    def __init__(self, path: str | Path, stride: int, episodes: np.ndarray | None = None,
                 require_actions: bool = False, cameras: list[str] | None = None, frame_cache_mb: int = 0,
                 hide_actions: bool = False):
        """hide_actions: every item's action is NaN, as in video without actions. frame_cache_mb: decoded
        frames kept (StoreDataset.read_frames); `batches` turns it on in its loader process."""
        store = EpisodeStore.open(path)
        self.path, self.stride, self._store = location(path), stride, store
        self.cameras = list(cameras or store.cameras)
        self.start_cache(self.cameras, frame_cache_mb)
        if stride < 1:
            raise UserError(f"stride must be >= 1, got {stride}")
        episodes = np.arange(store.num_episodes) if episodes is None else np.asarray(episodes, np.int64)
        if require_actions:
            episodes = episodes[store.meta("has_actions")[episodes].astype(bool)]
        starts = [store.episode_range(int(e))[0] for e in episodes]
        ends = [store.episode_range(int(e))[1] for e in episodes]
        self.frames = np.concatenate([np.arange(s, e - stride) for s, e in zip(starts, ends, strict=True)]
                                     + [np.zeros(0, np.int64)]).astype(np.int64)
        if len(self.frames) == 0:
            raise UserError(f"{path}: no episode longer than {stride} frames among the {len(episodes)} chosen")
        self.actions = np.full_like(store.actions(), np.nan) if hide_actions else store.actions()
        self.episodes = episodes
        self.shape = (*store.attrs["image_size"], 3)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """Items of a batch (a DataLoader passes a batch's indices): each camera's frames in one read."""
        t = self.frames[indices]
        pairs = np.stack([self.read_frames(c, np.concatenate([t, t + self.stride])).reshape(2, len(t), *self.shape)
                          for c in self.cameras], 2)  # (2, n, C, H, W, 3)
        return [{"before": pairs[0, k], "after": pairs[1, k], "action": self.actions[s: s + self.stride]}
                for k, s in enumerate(t.tolist())]


SIZE = 48  # pairs are seen at 48x48: a 4-frame move of the arm is still several pixels, at 1/4 of the cost


def pair_input(before: torch.Tensor, after: torch.Tensor, generator: torch.Generator | None = None,
               augment: bool = False) -> torch.Tensor:
    """uint8 (B, C, H, W, 3) twice -> float (B*C, 9, 48, 48): before, after and their difference per camera.
    augment: the same random color scale (0.6-1.3 per channel) and shift (up to 4 px) for both frames of
    a pair, so the models learn motion, not the light or the exact framing."""
    b, c = before.shape[:2]
    x = torch.stack([before, after], 1).flatten(0, 2).permute(0, 3, 1, 2).float() / 255.0  # (B*2*C, 3, H, W)
    x = F.interpolate(x, size=(SIZE, SIZE), mode="area").unflatten(0, (b, 2, c))
    if augment:
        scale = 0.6 + 0.7 * torch.rand((b, 1, c, 3, 1, 1), generator=generator)
        x = random_shift((x * scale).clamp(0, 1).flatten(1, 3), 2, generator)[0].unflatten(1, (2, c, 3))
    before_f, after_f = x[:, 0] - 0.5, x[:, 1] - 0.5  # (B, C, 3, 48, 48)
    return torch.cat([before_f, after_f, after_f - before_f], 2).flatten(0, 1)  # (B*C, 9, 48, 48)


class PairEncoder(nn.Module):
    """(B*C, 9, 48, 48) -> (B, out): stride-2 convs per camera (shared weights, a camera embedding), then an
    MLP over the cameras' features."""

    def __init__(self, cameras: int, out: int, width: int = 32):
        super().__init__()
        chans = [width, 2 * width, 4 * width, 4 * width]
        layers, c_in = [], 9
        for c in chans:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.GELU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.cameras = cameras
        self.mlp = nn.Sequential(nn.Linear(cameras * c_in * (SIZE // 16) ** 2, 512), nn.GELU(), nn.Linear(512, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.convs(x).flatten(1)  # (B*C, c*h*w)
        return self.mlp(feats.unflatten(0, (-1, self.cameras)).flatten(1))


TRAIN_CACHE_MB = 2048  # decoded frames a training loader keeps: it draws the same pairs again and again


def batches(data: Dataset, batch: int, steps: int, seed: int):
    """`steps` random batches (seeded), read by one worker process that keeps the frames it decoded."""
    sampler = torch.utils.data.RandomSampler(data, replacement=True, num_samples=batch * steps,
                                             generator=torch.Generator().manual_seed(seed))
    return torch.utils.data.DataLoader(data, batch_size=batch, sampler=sampler, num_workers=1,
                                       persistent_workers=False, worker_init_fn=_cache_frames)


def _cache_frames(_worker: int) -> None:
    data = torch.utils.data.get_worker_info().dataset
    for part in getattr(data, "datasets", [data]):  # a ConcatDataset of FramePairs, or one
        part.start_cache(part.cameras, TRAIN_CACHE_MB // len(getattr(data, "datasets", [data])))


def write_labelled(video: EpisodeStore, out: Path, labels, action_dim: int, action_spec: dict, attrs: dict,
                   desc: str) -> EpisodeStore:
    """A copy of a video store whose every episode carries actions from `labels(i, episode) -> (T, A)`;
    an episode `labels` cannot label (it raises TooShort) is left out, and the count is reported.
    Written to OUT.partial and renamed when complete, so OUT is never half a store."""
    if out.exists():
        raise UserError(f"{out} already exists; delete it or choose another --out")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    a = video.attrs
    store = EpisodeStore.create(partial, cameras=list(video.cameras), image_size=tuple(a["image_size"]),
                                state_dim=video.states().shape[1], action_dim=action_dim,
                                control_rate=a["control_rate"], robot=a.get("robot", ""), action_spec=action_spec,
                                state_spec=a.get("state_spec"), recipe=a.get("recipe", {}),
                                source_store=str(video.path), **attrs)
    skipped = []
    for i in tqdm(range(video.num_episodes), desc=desc, unit="ep"):
        ep = video.episode(i)
        try:
            ep.action = np.asarray(labels(i, ep), np.float32)
        except TooShort:
            skipped.append(i)
            continue
        if ep.focus is not None and not np.isfinite(ep.focus).all():  # video: not known
            ep.focus = None
        store.append(ep)
    if skipped:
        more = " ..." if len(skipped) > 10 else ""
        print(f"left out {len(skipped)} episodes too short to label: {skipped[:10]}{more}")
    store.set_attrs(skipped_episodes=skipped)
    store.stats()
    del store
    partial.rename(out)
    return EpisodeStore.open(out)


def check_fits(meta: dict, store: EpisodeStore, path) -> None:
    """A video store must have the cameras and image size the model was trained on."""
    if not set(meta["cameras"]) <= set(store.cameras) or list(store.attrs["image_size"]) != meta["image_size"]:
        raise UserError(f"{path} has cameras {store.cameras} at {store.attrs['image_size']}; the model was trained "
                        f"on {meta['cameras']} at {meta['image_size']}")
