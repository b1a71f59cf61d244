"""Building a training run from its config, each mode resolved once: pretraining, a fine-tune (LoRA on
the frozen base, every weight, or a fresh model of the base's shape), with or without action-free video.
`train()` (loop.py) gets a `Run` and only trains it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from embodied.adapters import Adapters
from embodied.data.store import EpisodeStore
from embodied.data.windows import VideoMix, WindowDataset, split_episodes
from embodied.errors import UserError
from embodied.policies.config import PolicyConfig, config_from_spec, load_preset
from embodied.policies.language import LanguageEncoder
from embodied.policies.model import VLA
from embodied.policies.policy import build_spec
from embodied.training import finetune
from embodied.training.config import FinetuneConfig, TrainConfig
from embodied.training.finetune import Base

RELEASE_WINDOW = 8  # --release-boost draws more often the frames whose next 8 actions open the gripper
START_WINDOW = 3  # --start-boost draws more often each demonstration's first 3 frames


@dataclass
class Sampling:
    """How batches are drawn (StepBatches): a group per sample drawn equally often (or by `group_prob`),
    and how many times each sample sits in its group's pool."""

    groups: np.ndarray | None
    group_prob: np.ndarray | None
    repeats: np.ndarray | None


@dataclass
class Run:
    """What one training run trains: data, model, its spec, and for a fine-tune its base and adapters."""

    cfg: TrainConfig
    store: EpisodeStore
    data: WindowDataset | VideoMix
    val: WindowDataset | None
    language: LanguageEncoder
    families: list[str]
    model: VLA
    spec: dict
    sampling: Sampling
    base: Base | None = None
    adapters: Adapters | None = None
    """LoRA adapters on the frozen base (a lora fine-tune only)."""

    @property
    def tune(self) -> FinetuneConfig | None:
        return self.cfg if isinstance(self.cfg, FinetuneConfig) else None


def check(cfg: TrainConfig) -> TrainConfig:
    """The config with a fine-tune's flags checked and defaults filled; bad values named."""
    if isinstance(cfg, FinetuneConfig):
        cfg = finetune.resolve(cfg)
    for flag in ("release_boost", "start_boost"):
        if getattr(cfg, flag) < 1:
            raise UserError(f"{flag} must be >= 1 (1 = off), got {getattr(cfg, flag)}")
    if cfg.frame_cache_mb < 0:
        raise UserError(f"frame_cache_mb must be >= 0 (0 = no cache), got {cfg.frame_cache_mb}")
    if cfg.failure_videos < 0:
        raise UserError(f"failure_videos must be >= 0 (0 = none), got {cfg.failure_videos}")
    if cfg.video_store and not (0 < cfg.video_fraction < 1 and cfg.video_weight >= 0):
        raise UserError(f"video_fraction must be in (0, 1) and video_weight >= 0; got {cfg.video_fraction}, "
                        f"{cfg.video_weight}")
    return cfg


def build_run(cfg: TrainConfig, store_path: Path | str, device: torch.device) -> Run:
    """Data, then the model (torch's seed set by the caller: the order of construction is the init)."""
    store = EpisodeStore.open(store_path)
    tune = cfg if isinstance(cfg, FinetuneConfig) else None
    base = finetune.load_base(tune.base, tune.model.rtc) if tune and tune.base else None
    if base:
        finetune.check_fits(base.spec, store)
        pcfg = config_from_spec(base.spec["config"])
    else:
        pcfg = load_preset(cfg.preset, **cfg.model.given())
    if tune and tune.episodes_per_family:
        train_eps, val_eps = finetune.few_episodes(store, tune.episodes_per_family)
    else:
        train_eps, val_eps = split_episodes(store.num_episodes, cfg.val_fraction, cfg.seed)
    data = WindowDataset(store_path, pcfg.obs_horizon, pcfg.action_horizon, episodes=train_eps,
                         frame_cache_mb=cfg.frame_cache_mb)
    val = WindowDataset(store_path, pcfg.obs_horizon, pcfg.action_horizon, episodes=val_eps) if len(val_eps) else None
    language = LanguageEncoder(pcfg.lang_tokens, pcfg.language_model, device=device)
    families = sorted(set(store.meta("family").tolist()))
    if cfg.video_store:  # action-free video, pseudo-labelled or with latent-action codes, in every batch
        data = VideoMix(data, video_windows(cfg.video_store, store, pcfg), cfg.video_weight, store.actions().shape[1])
        if data.latent:
            pcfg = latent_config(pcfg, data.video.store.attrs["action_spec"], from_base=base is not None)
    model, spec, adapters = build_model(cfg, pcfg, store, data, base)
    return Run(cfg, store, data, val, language, families, model, spec, sampling(cfg, data), base, adapters)


def build_model(cfg: TrainConfig, pcfg: PolicyConfig, store: EpisodeStore, data, base: Base | None):
    """(model, spec, adapters): a fresh VLA, or for lora and full the base's (lora: with adapters)."""
    model = VLA(pcfg, store.cameras, tuple(store.attrs["image_size"]), store.states().shape[1],
                store.actions().shape[1])
    model.set_stats(data.stats)
    stats, adapters = data.stats, None
    from_base = base is not None and cfg.adapter != "scratch"
    if from_base:  # lora: the frozen base with adapters; full: every base weight
        model, stats, adapters = finetune.from_base(cfg, base, data.stats)
    if pcfg.latent_codes > 0 and not (isinstance(data, VideoMix) and data.latent):
        for name, p in model.named_parameters():  # no latent targets here: keep them out of training (and DDP)
            if "latent_" in name:
                p.requires_grad_(False)
    spec = build_spec(model, store.attrs, stats)
    if from_base:
        spec["base"] = {"checkpoint": str(base.checkpoint), **({"hash": adapters.base["hash"]} if adapters else {})}
        spec["adapter"] = cfg.name if adapters else None
    return model, spec, adapters


def sampling(cfg: TrainConfig, data) -> Sampling:
    if isinstance(data, VideoMix):
        groups, group_prob = data.sample_groups(cfg.video_fraction)
    else:
        groups, group_prob = data.sample_families if cfg.balance_families else None, None
    repeats = None
    if cfg.release_boost > 1 or cfg.start_boost > 1:
        repeats = (np.where(data.release_ahead(RELEASE_WINDOW), cfg.release_boost, 1)
                   * np.where(data.near_start(START_WINDOW), cfg.start_boost, 1))
    return Sampling(groups, group_prob, repeats)


def video_windows(path: Path, demos: EpisodeStore, pcfg: PolicyConfig) -> WindowDataset:
    """Windows of a labelled video store, checked to fit the demonstrations' cameras and image size."""
    video = EpisodeStore.open(path)
    if not set(demos.cameras) <= set(video.cameras) or video.attrs["image_size"] != demos.attrs["image_size"]:
        raise UserError(f"--video-store {path} has cameras {video.cameras} at {video.attrs['image_size']}; the "
                        f"demonstrations have {demos.cameras} at {demos.attrs['image_size']}")
    kind = (video.attrs.get("action_spec") or {}).get("kind")
    if not video.meta("has_actions").any() or not ("pseudo_labels" in video.attrs or kind == "latent"):
        raise UserError(f"--video-store {path} carries neither inverse-dynamics labels nor latent actions; make "
                        "one with scripts/label_video.py idm|latent")
    have = (video.states().shape[1], video.actions().shape[1])
    want = (demos.states().shape[1], demos.actions().shape[1])
    if have[0] != want[0] or (kind != "latent" and have[1] != want[1]):
        raise UserError(f"--video-store {path} has state/action sizes {have}; the demonstrations have {want}")
    # a video's labels end where the clip ends, not where a task was done: no gripper kept past the end
    return WindowDataset(path, pcfg.obs_horizon, pcfg.action_horizon, cameras=demos.cameras, keep_gripper=False)


def latent_config(pcfg: PolicyConfig, spec: dict, from_base: bool) -> PolicyConfig:
    """The model config with the video's latent-action codebook (a base must already have the same one)."""
    want = {"latent_codes": int(spec["codes"]), "latent_groups": int(spec["groups"]),
            "latent_stride": int(spec["stride"])}
    if from_base:
        have = {k: getattr(pcfg, k) for k in want}
        if have != want:
            raise UserError(f"the video's latent actions {want} do not match the base's {have}")
        return pcfg
    return dataclasses.replace(pcfg, **want)
