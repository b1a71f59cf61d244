"""Inverse dynamics (as in VPT): frames t and t+k -> the k actions between, learned on episodes that have
actions, then used to label action-free video so the VLA can pretrain on it.

    model, report = train_idm("datasets/vp_labelled.zarr")
    models.save(model, "policies/runs/idm")         # embodied.video.models: model.safetensors + model.json
    label_store(model, "datasets/vp_video.zarr", "datasets/vp_video_idm.zarr")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from embodied.data.store import EpisodeStore
from embodied.data.windows import split_episodes
from embodied.errors import UserError
from embodied.video.pairs import FramePairs, PairEncoder, TooShort, batches, check_fits, pair_input, write_labelled


class InverseDynamics(nn.Module):
    """(before, after) uint8 (B, C, H, W, 3) each -> normalized actions (B, k, A) in [-1, 1]."""

    def __init__(self, cameras: list[str], image_size: tuple[int, int], stride: int, action_dim: int,
                 action_low: list[float], action_high: list[float], width: int = 32, action_spec: dict | None = None,
                 calibration: dict | None = None):
        super().__init__()
        self.meta = {"kind": "idm", "cameras": list(cameras), "image_size": list(image_size), "stride": stride,
                     "action_dim": action_dim, "action_low": list(action_low), "action_high": list(action_high),
                     "width": width, "action_spec": action_spec or {}, "calibration": calibration}
        self.stride, self.action_dim = stride, action_dim
        self.encoder = PairEncoder(len(cameras), stride * action_dim, width)
        self.register_buffer("low", torch.tensor(action_low, dtype=torch.float32))
        self.register_buffer("high", torch.tensor(action_high, dtype=torch.float32))

    def forward(self, before, after, generator=None, augment: bool = False) -> torch.Tensor:
        x = pair_input(before, after, generator, augment)
        return torch.tanh(self.encoder(x)).unflatten(-1, (self.stride, self.action_dim))  # (B, k, A)

    def normalize(self, action: torch.Tensor) -> torch.Tensor:
        return 2 * (action - self.low) / (self.high - self.low).clamp(min=1e-6) - 1

    def denormalize(self, action: torch.Tensor) -> torch.Tensor:
        return self.low + (action + 1) / 2 * (self.high - self.low)

    def calibrate(self, store_path: str | Path, episodes) -> dict:
        """Fit, per action dimension, the affine map that gives the labels the mean and spread of the true
        actions (at most 4x the spread; a dimension whose labels do not vary is left as it is), on episodes
        with actions the model did not train on. An L1-trained model answers ambiguous
        motion with its middle, so its labels are smaller moves than the true ones, and a policy pretrained
        on them learns small moves. label_episode applies the map (then clips to the action bounds)."""
        labels, true, _ = labels_and_actions(self, store_path, episodes, calibrated=False)
        if len(true) < 2:
            raise UserError(f"{store_path}: calibration needs labelled frames; the {len(episodes)} episodes have "
                            f"{len(true)}")
        spread = labels.std(0)
        # at most 4x wider: a dimension the model barely moves would otherwise swing between the bounds
        scale = np.where(spread > 1e-3, np.minimum(true.std(0) / np.maximum(spread, 1e-3), 4.0), 1.0)
        shift = true.mean(0) - scale * labels.mean(0)
        self.meta["calibration"] = {"scale": scale.tolist(), "shift": shift.tolist(), "frames": len(true)}
        return self.meta["calibration"]


def train_idm(store_path: str | Path, stride: int = 4, steps: int = 1500, batch: int = 64, lr: float = 1e-3,
              val_fraction: float = 0.1, seed: int = 0, progress: bool = True,
              calibrate: bool = False) -> tuple[InverseDynamics, dict]:
    """Train on a store's episodes with actions (a seeded split by episode holds some out); the report
    holds the held-out label error against a mean predictor's. calibrate: fit the labels' scale on the
    held-out episodes (InverseDynamics.calibrate; the held-out figures are then in-sample for it)."""
    store = EpisodeStore.open(store_path)
    has = np.flatnonzero(store.meta("has_actions").astype(bool))
    if len(has) < 2:
        raise UserError(f"{store_path}: inverse dynamics learns from episodes with actions; it has {len(has)}")
    train_idx, val_idx = split_episodes(len(has), val_fraction, seed)
    train_eps, val_eps = has[train_idx], has[val_idx]
    stats = store.stats()["action"]
    torch.manual_seed(seed)
    model = InverseDynamics(store.cameras, tuple(store.attrs["image_size"]), stride, store.actions().shape[1],
                            stats["min"], stats["max"], action_spec=store.attrs.get("action_spec"))
    data = FramePairs(store_path, stride, train_eps)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(batches(data, batch, steps, seed), total=steps, desc="train inverse dynamics", unit="step",
               disable=not progress)
    model.train()
    for step, b in enumerate(bar):
        pred = model(b["before"], b["after"], gen, augment=True)
        loss = (pred - model.normalize(b["action"])).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(l1=f"{float(loss.detach()):.4f}")
    model.eval()
    report = {"train_episodes": len(train_eps), "steps": steps,
              "mean_action": [float(v) for v in store.actions()[data.frames].mean(0)]}
    if calibrate:
        if not len(val_eps):
            raise UserError("calibrating the labels needs held-out episodes: val_fraction > 0")
        report["calibration"] = model.calibrate(store_path, val_eps)
    if len(val_eps):
        report["heldout"] = label_error(model, store_path, val_eps, report["mean_action"])
    return model, report


@torch.no_grad()
def predict_episode(model: InverseDynamics, images: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(labels (T, A) before any calibration, spread (T,)) for one episode's frames {camera: uint8 (T, H, W, 3)}.
    Every frame's label is the mean of the predictions of all k-frame pairs that span it; the last label repeats
    the one before. spread says how much those k predictions disagree: the mean over dimensions of their
    standard deviation, in the model's normalized units ([-1, 1] spans an action's range); NaN where fewer than
    two pairs span the frame (an episode's first frames)."""
    cams = model.meta["cameras"]
    frames = torch.from_numpy(np.stack([images[c] for c in cams], 1))  # (T, C, H, W, 3)
    t, k = len(frames), model.stride
    total, total_sq = np.zeros((t, model.action_dim)), np.zeros((t, model.action_dim))
    count = np.zeros(t)
    if t > k:
        pred = np.concatenate([model(frames[lo: min(lo + 256, t - k)], frames[lo + k: min(lo + 256, t - k) + k]).numpy()
                               for lo in range(0, t - k, 256)])  # (T-k, k, A): pair s predicts actions s .. s+k-1
        for j in range(k):
            total[j: j + len(pred)] += pred[:, j]
            total_sq[j: j + len(pred)] += pred[:, j] ** 2
            count[j: j + len(pred)] += 1
    known = count > 0
    if not known.any():
        raise TooShort(f"an episode of {t} frames is too short for inverse dynamics over {k} frames")
    mean = total / np.maximum(count, 1)[:, None]
    spread = np.sqrt(np.maximum(total_sq / np.maximum(count, 1)[:, None] - mean ** 2, 0)).mean(1)
    spread[count < 2] = np.nan
    last = np.flatnonzero(known)[-1]
    mean[last + 1:], spread[last + 1:] = mean[last], spread[last]
    labels = model.denormalize(torch.from_numpy(mean).float()).numpy()
    return labels, spread


def label_episode(model: InverseDynamics, images: dict[str, np.ndarray], calibrated: bool = True) -> np.ndarray:
    """Actions (T, A) for one episode's frames (predict_episode's labels). With a calibration
    (InverseDynamics.calibrate) and `calibrated`, it is applied and the labels clipped to the action bounds."""
    labels = predict_episode(model, images)[0]
    return (calibrate_labels(model, labels) if calibrated else labels).astype(np.float32)


def calibrate_labels(model: InverseDynamics, labels: np.ndarray) -> np.ndarray:
    """Labels (N, A) through the model's calibration, clipped to the action bounds (as they are without one)."""
    calibration = model.meta.get("calibration")
    if not calibration:
        return labels
    return np.clip(labels * calibration["scale"] + calibration["shift"], model.meta["action_low"],
                   model.meta["action_high"]).astype(labels.dtype)


def labels_and_actions(model: InverseDynamics, store_path: str | Path, episodes,
                       calibrated: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (N, A), true actions (N, A), spread (N,)) over the episodes' frames (predict_episode); episodes
    too short to label are left out."""
    store = EpisodeStore.open(store_path)
    labels, true, spread = [], [], []
    for e in episodes:
        ep = store.episode(int(e))
        if ep.action is None:
            raise UserError(f"{store_path}: episode {e} has no actions to compare labels with")
        if len(ep) > model.stride:
            raw, s = predict_episode(model, ep.images)
            labels.append(calibrate_labels(model, raw) if calibrated else raw)
            true.append(ep.action)
            spread.append(s)
    a = model.action_dim
    if not labels:
        return np.zeros((0, a), np.float32), np.zeros((0, a), np.float32), np.zeros(0)
    return np.concatenate(labels).astype(np.float32), np.concatenate(true), np.concatenate(spread)


def label_error(model: InverseDynamics, store_path: str | Path, episodes, mean_action) -> dict:
    """How the labels compare with the true actions over the episodes' frames (env units): mean |label -
    true| over all dimensions for the labels (`idm_error`, calibrated if the model is) and for a predictor
    that always answers the mean training action (`mean_error`); per dimension, the same and the spread of
    labels and truth (std), for the labels as written and, with a calibration, as the model gives them; and
    `error_by_spread`: the labels' error over the frames in each quarter of the spread (predict_episode), from
    the quarter where the k predictions agree most to the one where they agree least: whether the spread tells
    good labels from bad (label_store's keep)."""
    names = list((model.meta.get("action_spec") or {}).get("names") or range(model.action_dim))
    raw, true, spread = labels_and_actions(model, store_path, episodes, calibrated=False)  # the model runs once
    labels = calibrate_labels(model, raw)
    if not len(true):
        raise UserError(f"{store_path}: none of the {len(episodes)} episodes is longer than {model.stride} frames; "
                        "no label to compare")
    mean = np.abs(np.asarray(mean_action) - true)
    report = {"episodes": len(episodes), "frames": len(true), "idm_error": float(np.abs(labels - true).mean()),
              "mean_error": float(mean.mean())}
    kinds = {"labels": labels}
    if model.meta.get("calibration"):
        kinds["uncalibrated"] = raw
        report["uncalibrated_error"] = float(np.abs(kinds["uncalibrated"] - true).mean())
    report["per_dimension"] = {
        str(n): {"true_std": float(true[:, d].std()), "mean_error": float(mean[:, d].mean()),
                 **{f"{k}_error": float(np.abs(v[:, d] - true[:, d]).mean()) for k, v in kinds.items()},
                 **{f"{k}_std": float(v[:, d].std()) for k, v in kinds.items()}}
        for d, n in enumerate(names)}
    error, known = np.abs(labels - true).mean(1), np.isfinite(spread)
    if known.sum() >= 4:
        quarter = np.digitize(spread[known], np.quantile(spread[known], [0.25, 0.5, 0.75]))
        report["error_by_spread"] = [float(error[known][quarter == q].mean()) for q in range(4)]
    return report


def label_store(model: InverseDynamics, video: str | Path, out: str | Path, source: str = "",
                keep: float = 1.0) -> EpisodeStore:
    """A copy of the video store with inverse-dynamics actions in every episode (pseudo-labels: the store's
    `pseudo_labels` attribute says so and where they came from). keep < 1 keeps that share of the frames'
    labels, those whose k pair predictions agree most (the lowest spread, predict_episode); the others are
    written as unknown (NaN), and training masks them out. A frame fewer than two pairs span keeps its label."""
    if not 0 < keep <= 1:
        raise UserError(f"keep is the share of labels kept, in (0, 1]; got {keep}")
    store = EpisodeStore.open(video)
    check_fits(model.meta, store, video)
    predicted, threshold = {}, None
    if keep < 1:  # the threshold needs every frame's spread first
        for i in tqdm(range(store.num_episodes), desc="label video (inverse dynamics)", unit="ep"):
            try:
                predicted[i] = predict_episode(model, store.episode(i).images)
            except TooShort:
                continue
        threshold = float(np.nanquantile(np.concatenate([s for _, s in predicted.values()]), keep))

    def labels(i: int, ep) -> np.ndarray:  # an episode too short to predict raises TooShort here again
        raw, spread = predicted.pop(i) if i in predicted else predict_episode(model, ep.images)
        out = calibrate_labels(model, raw)
        if threshold is not None:
            out[spread > threshold] = np.nan  # NaN spread (too few pairs): kept
        return out

    attrs = {"model": source or "inverse dynamics", "stride": model.stride}
    if threshold is not None:
        attrs |= {"keep": keep, "spread_threshold": threshold}
    return write_labelled(store, Path(out), labels, model.action_dim, model.meta["action_spec"],
                          {"pseudo_labels": attrs}, desc="write labelled video" if keep < 1 else
                          "label video (inverse dynamics)")
