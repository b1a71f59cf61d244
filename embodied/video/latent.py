"""Latent actions (as in LAPA): a small model learns, from video alone, a discrete code for what changes
between frames t and t+k. An encoder sees both frames and picks codes from a VQ codebook; a decoder must
predict frame t+k from frame t and the codes, so the codes carry the motion. The VLA then pretrains to
predict the codes of action-free video (PolicyConfig.latent_codes), and fine-tuning on a few labelled
demonstrations maps to robot actions.

    model, report = train_latent(["datasets/vp_labelled.zarr", "datasets/vp_video.zarr"])
    label_store(model, "datasets/vp_video.zarr", "datasets/vp_video_latent.zarr")
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from embodied.data.store import EpisodeStore
from embodied.data.windows import split_episodes
from embodied.errors import UserError
from embodied.video.pairs import FramePairs, PairEncoder, batches, check_fits, pair_input, write_labelled

DECODE = 48  # the decoder predicts frames at 48x48: enough to see the arm move, 4x cheaper than 96x96


class LatentActionModel(nn.Module):
    """encode(before, after) -> codes (B, G) of a K-entry codebook; decode(before, codes) -> after at 48x48."""

    def __init__(self, cameras: list[str], image_size: tuple[int, int], stride: int, codes: int = 16,
                 groups: int = 2, dim: int = 16, width: int = 32, action_dim: int = 0,
                 action_low: list[float] | None = None, action_high: list[float] | None = None):
        """action_dim > 0: a linear head predicts the pair's k actions from its quantized codes, trained on the
        few pairs whose actions are known (train_latent's labelled_share), so the codes carry the action."""
        super().__init__()
        self.meta = {"kind": "latent", "cameras": list(cameras), "image_size": list(image_size), "stride": stride,
                     "codes": codes, "groups": groups, "dim": dim, "width": width}
        if action_dim:
            self.meta |= {"action_dim": action_dim, "action_low": list(action_low), "action_high": list(action_high)}
            self.action_head = nn.Linear(groups * dim, stride * action_dim)
        self.stride, self.codes, self.groups, self.dim, self.cams = stride, codes, groups, dim, len(cameras)
        self.encoder = PairEncoder(len(cameras), groups * dim, width)
        # standardized over the batch: most pairs look alike (small moves), and without this their
        # encodings point the same way and land on one code
        self.spread = nn.BatchNorm1d(groups * dim, affine=False)
        self.codebook = nn.Parameter(torch.randn(codes, dim))
        w = width // 2  # the decoder: narrower, it runs at 48x48
        self.down = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1), nn.GELU(), nn.Conv2d(w, 2 * w, 3, 2, 1),
                                  nn.GELU())  # 48 -> 12
        self.film = nn.Linear(groups * dim + len(cameras), 4 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 4, 2, 1)  # 12 -> 24
        self.up2 = nn.ConvTranspose2d(2 * w, w, 4, 2, 1)  # 24 -> 48, with the skip at 24
        self.skip = nn.Conv2d(3, w, 3, 2, 1)
        self.out = nn.Conv2d(w + 3, 3, 3, 1, 1)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z: (B, G, D) -> (codes (B, G), quantized with straight-through gradients, VQ loss). Cosine
        distance on unit vectors, and a term that rewards spreading the batch over the codebook (the entropy
        of the mean soft assignment), both of which keep codes from collapsing onto a few."""
        z = F.normalize(z, dim=-1)
        book = F.normalize(self.codebook, dim=-1)
        sim = z @ book.T  # (B, G, K)
        idx = sim.argmax(-1)  # (B, G)
        q = book[idx]
        spread = torch.softmax(sim / 0.1, -1).mean(0)  # (G, K): how the batch uses each group's codes
        entropy = -(spread * torch.log(spread + 1e-9)).sum(-1).mean()
        vq = F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach()) + 0.1 * (math.log(self.codes) - entropy)
        return idx, z + (q - z).detach(), vq

    def encode(self, before, after, generator=None, augment: bool = False) -> torch.Tensor:
        z = self.spread(self.encoder(pair_input(before, after, generator, augment)))
        return z.unflatten(-1, (self.groups, self.dim))

    def decode(self, before: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """before: uint8 (B, C, H, W, 3); q: (B, G, D) -> predicted after, float (B*C, 3, 48, 48) in [0, 1]."""
        x = small(before)  # (B*C, 3, 48, 48)
        cam = torch.eye(self.cams).repeat(before.shape[0], 1)  # (B*C, C): which camera
        cond = torch.cat([q.flatten(1).repeat_interleave(self.cams, 0), cam], 1)
        gamma, beta = self.film(cond).chunk(2, -1)  # (B*C, width) each
        h = self.down(x) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        h = F.gelu(self.up1(h))
        h = F.gelu(self.up2(torch.cat([h, self.skip(x)], 1)))
        return (x + self.out(torch.cat([h, x], 1))).clamp(0, 1)

    def loss(self, before, after, generator=None, action: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, codes). action (B, k, A), NaN where unknown: with an action head, the L1 error of the actions
        it predicts from the codes, on the pairs whose actions are known, joins the loss."""
        idx, q, vq = self.quantize(self.encode(before, after, generator, augment=True))
        pred = self.decode(before, q)
        target, start = small(after), small(before)
        moved = 1 + 10 * (target - start).abs().amax(1, keepdim=True)  # weigh pixels that change: the arm
        loss = ((pred - target) ** 2 * moved).mean() + vq
        if "action_dim" in self.meta and action is not None:
            known = torch.isfinite(action).flatten(1).all(1)
            if known.any():
                low, high = (torch.tensor(self.meta[k], dtype=torch.float32) for k in ("action_low", "action_high"))
                truth = (2 * (action[known] - low) / (high - low).clamp(min=1e-6) - 1).clamp(-1, 1)
                guess = torch.tanh(self.action_head(q[known].flatten(1))).unflatten(-1, truth.shape[1:])
                loss = loss + (guess - truth).abs().mean()
        return loss, idx

    @torch.no_grad()
    def codes_of(self, before, after) -> torch.Tensor:
        return self.quantize(self.encode(before, after))[0]


def small(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W, 3) -> float (B*C, 3, 48, 48) in [0, 1]."""
    x = frames.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(DECODE, DECODE), mode="area")


def train_latent(stores: list[str | Path], stride: int = 4, codes: int = 16, groups: int = 2, steps: int = 1500,
                 batch: int = 64, lr: float = 1e-3, seed: int = 0, progress: bool = True,
                 labelled_share: float = 0.0) -> tuple[LatentActionModel, dict]:
    """Train on frame pairs of every episode of the stores; unused codes are restarted from the batch every 50
    steps. Actions are unused, but with labelled_share > 0 (as in LAOM, Nikulin et al. 2025): that share of
    all training episodes, drawn from the first store's, keep their actions, and an action head learns them
    from the codes. The report holds held-out code usage and how much the codes say about the true actions
    (on the first store's held-out episodes that have them)."""
    if not 0.0 <= labelled_share < 1.0:
        raise UserError(f"labelled_share must be in [0, 1), got {labelled_share}")
    if not stores:
        raise UserError("train_latent needs at least one store of video")
    opened = [EpisodeStore.open(s) for s in stores]
    first = opened[0]
    for s, path in zip(opened[1:], stores[1:], strict=True):
        if s.cameras != first.cameras or s.attrs["image_size"] != first.attrs["image_size"]:
            raise UserError(f"{path} has cameras {s.cameras} at {s.attrs['image_size']}; {stores[0]} has "
                            f"{first.cameras} at {first.attrs['image_size']}")
    splits = [split_episodes(s.num_episodes, 0.1, seed) for s in opened]
    pairs = [FramePairs(p, stride, tr, hide_actions=True) for p, (tr, _) in zip(stores, splits, strict=True)]
    head = {}
    if labelled_share > 0:
        has = splits[0][0][first.meta("has_actions")[splits[0][0]].astype(bool)]
        n = max(1, round(labelled_share * sum(len(tr) for tr, _ in splits)))
        if len(has) < n:
            raise UserError(f"labelled_share {labelled_share} asks for {n} episodes with actions; {stores[0]} has "
                            f"{len(has)} among its training episodes")
        chosen = np.sort(np.random.default_rng(seed).choice(has, n, replace=False))
        rest = np.setdiff1d(splits[0][0], chosen)
        pairs = pairs[1:] if not len(rest) else [FramePairs(stores[0], stride, rest, hide_actions=True), *pairs[1:]]
        pairs.append(FramePairs(stores[0], stride, chosen))
        stats = first.stats()["action"]
        head = {"action_dim": first.actions().shape[1], "action_low": stats["min"], "action_high": stats["max"]}
    data = torch.utils.data.ConcatDataset(pairs)
    torch.manual_seed(seed)
    model = LatentActionModel(first.cameras, tuple(first.attrs["image_size"]), stride, codes, groups, **head)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    used = torch.zeros(codes)
    bar = tqdm(batches(data, batch, steps, seed), total=steps, desc="train latent actions", unit="step",
               disable=not progress)
    model.train()
    for step, b in enumerate(bar):
        loss, idx = model.loss(b["before"], b["after"], gen, b["action"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        used += torch.bincount(idx.flatten(), minlength=codes)
        if (step + 1) % 50 == 0 and step + 1 < steps:
            _restart_dead(model, used, b, gen)
            used.zero_()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    _calibrate(model, data, gen)
    val = [FramePairs(p, stride, va) for p, (_, va) in zip(stores, splits, strict=True) if len(va)]
    report = {"steps": steps, "codes": codes, "groups": groups, "labelled_share": labelled_share,
              "labelled_episodes": len(pairs[-1].episodes) if labelled_share > 0 else 0}
    if val:
        report["heldout"] = code_report(model, torch.utils.data.ConcatDataset(val))
        probe = [(p, tr, va) for p, s, (tr, va) in zip(stores, opened, splits, strict=True)
                 if len(va) and s.meta("has_actions")[va].all() and s.meta("has_actions")[tr].any()]
        if probe:
            report["action_probe"] = action_probe(model, *probe[0])
    return model, report


@torch.no_grad()
def _calibrate(model: LatentActionModel, data, gen: torch.Generator, pairs: int = 5120) -> None:
    """Re-estimate the batch-norm statistics on (up to `pairs`) clean training pairs, as labelling sees them: the
    running averages were taken on augmented pairs while the encoder moved, and on held-out pairs they
    crowded the encodings onto a few codes (8 codes used in training mode, 3 with the running averages)."""
    model.eval()
    model.spread.reset_running_stats()
    model.spread.momentum = None  # a plain average over the pass
    model.spread.train()
    loader = torch.utils.data.DataLoader(data, batch_size=256, shuffle=True, generator=gen, num_workers=0)
    for _, b in zip(range(math.ceil(pairs / 256)), loader, strict=False):  # stops at the shorter
        model.encode(b["before"], b["after"])
    model.spread.momentum = 0.1
    model.spread.eval()


@torch.no_grad()
def _restart_dead(model: LatentActionModel, used: torch.Tensor, batch: dict, gen: torch.Generator) -> None:
    """Move codes no pair chose since the last check onto encodings from the batch, so none stays dead."""
    dead = torch.nonzero(used == 0).flatten()
    if len(dead) == 0:
        return
    z = F.normalize(model.encode(batch["before"], batch["after"]).flatten(0, 1), dim=-1)  # (B*G, D)
    pick = torch.randint(0, len(z), (len(dead),), generator=gen)
    model.codebook.data[dead] = z[pick] + 0.01 * torch.randn(len(dead), model.dim, generator=gen)


@torch.no_grad()
def code_report(model: LatentActionModel, data) -> dict:
    """Usage of the codebook on held-out pairs: codes used, perplexity per group (K = all used equally)."""
    counts = torch.zeros(model.groups, model.codes)
    loader = torch.utils.data.DataLoader(data, batch_size=256, num_workers=0)
    for b in loader:
        idx = model.codes_of(b["before"], b["after"])  # (B, G)
        for g in range(model.groups):
            counts[g] += torch.bincount(idx[:, g], minlength=model.codes)
    p = counts / counts.sum(1, keepdim=True)
    perplexity = torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum(1))
    share = (p > 0.01).float().sum(1)  # codes taking at least 1% of the pairs
    return {"pairs": int(counts[0].sum()), "perplexity": [round(float(v), 2) for v in perplexity],
            "codes_over_1pct": [int(v) for v in share], "codes": model.codes}


@torch.no_grad()
def action_probe(model: LatentActionModel, path, train_eps, val_eps) -> dict:
    """How much the codes say about the actions: predict a pair's mean action as the mean over training
    pairs with the same codes; held-out error against always predicting the overall mean (env units)."""
    def codes_and_actions(eps):
        data = FramePairs(path, model.stride, eps, require_actions=True)
        keys, acts = [], []
        for b in torch.utils.data.DataLoader(data, batch_size=256, num_workers=0):
            keys += [tuple(r) for r in model.codes_of(b["before"], b["after"]).tolist()]
            acts.append(b["action"].mean(1).numpy())
        return keys, np.concatenate(acts)

    keys, acts = codes_and_actions(train_eps)
    mean = acts.mean(0)
    table = {k: acts[[i for i, kk in enumerate(keys) if kk == k]].mean(0) for k in set(keys)}
    vkeys, vacts = codes_and_actions(val_eps)
    pred = np.stack([table.get(k, mean) for k in vkeys])
    return {"pairs": len(vkeys), "codes_error": float(np.abs(pred - vacts).mean()),
            "mean_error": float(np.abs(mean - vacts).mean())}


@torch.no_grad()
def label_episode(model: LatentActionModel, images: dict[str, np.ndarray]) -> np.ndarray:
    """Codes (T, G) as floats: frame t's are those of the pair (t, t+k); -1 for the last k frames."""
    frames = torch.from_numpy(np.stack([images[c] for c in model.meta["cameras"]], 1))  # (T, C, H, W, 3)
    t, k = len(frames), model.stride
    out = np.full((t, model.groups), -1.0, np.float32)
    for lo in range(0, max(0, t - k), 256):
        hi = min(lo + 256, t - k)
        out[lo:hi] = model.codes_of(frames[lo:hi], frames[lo + k: hi + k]).numpy()
    return out


def label_store(model: LatentActionModel, video: str | Path, out: str | Path, source: str = "") -> EpisodeStore:
    """A copy of the video store whose `action` column holds latent-action codes (G per frame, -1 unknown);
    its action spec (kind 'latent') says so, so nothing takes them for robot actions."""
    store = EpisodeStore.open(video)
    check_fits(model.meta, store, video)
    spec = {"kind": "latent", "codes": model.codes, "groups": model.groups, "stride": model.stride,
            "names": [f"code{g}" for g in range(model.groups)], "model": source}
    return write_labelled(store, Path(out), lambda i, ep: label_episode(model, ep.images), model.groups, spec,
                          {"latent_actions": spec}, desc="label video (latent actions)")
