"""Training configuration: one typed dataclass; every field is a `scripts/train_vla.py` flag."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from embodied.runtime.chunks import REPLAN_EVERY


@dataclass
class ModelOverrides:
    """Fields of the model preset a run may override; None keeps the preset's. A fine-tune takes its
    architecture from its base and refuses these."""

    head: Literal["regression", "flow"] | None = None
    """The action head: 'regression' (L1 on the chunk) or 'flow' (flow matching)."""
    obs_horizon: int | None = None
    """Observation history T_o."""
    action_horizon: int | None = None
    """Chunk size H."""
    keypoints: int | None = None
    """Spatial-softmax keypoints per camera (0 = off; then also --keypoint-loss 0)."""
    keypoint_loss: float | None = None
    """Keypoint loss weight (0 = off): pulls each camera's first keypoint to where the named thing appears,
    for cameras whose store records a projection."""
    film_pool: Literal["mean", "state", "mean+state"] | None = None
    """How FiLM reads the instruction: 'mean' (the sentence), 'state' (token attention steered by the robot
    state) or 'mean+state' (their average)."""
    augment_shift: int | None = None
    """Random-shift augmentation of training images (pixels, every camera; 0 = off)."""
    rtc: int | None = None
    """Real-time chunking: condition each chunk on up to this many committed actions (0 = off; docs/robot.md)."""

    def given(self) -> dict:
        """The overrides that were set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class TrainConfig:
    """Pretraining a VLA on a demonstration store. Saved (resolved) with every checkpoint."""

    name: str = "tiny_pretrain_small"
    """Run name: the run is written to policies/runs/<name>/ (resumed if it has a checkpoint). Not
    `--run`: torchrun would take that flag for its own --run-path."""
    preset: str = "tiny"
    """Model preset: a name (policies/<name>.yaml: tiny, small, base) or a preset file's path."""
    model: Annotated[ModelOverrides, tyro.conf.OmitArgPrefixes] = field(default_factory=ModelOverrides)
    """Preset fields to override (flags without a prefix: --head flow)."""
    dataset: str = "pretrain_small"
    """Dataset recipe (datasets/<name>.yaml); its store is collected first if missing."""
    store: str | None = None
    """Use this store instead of the recipe's: a folder or a URL (s3://bucket/name.zarr; docs/data.md)."""
    video_store: Path | None = None
    """Action-free video made trainable by scripts/label_video.py (inverse-dynamics pseudo-labels or
    latent-action codes), mixed into every batch."""
    video_fraction: float = 0.5
    """Share of every batch drawn from --video-store."""
    video_weight: float = 0.5
    """Loss weight of the video samples (pseudo-labels and latent codes are noisier than demonstrations)."""
    steps: int = 3000
    """Optimizer steps (the learning-rate schedule spans them)."""
    stop_at: int | None = None
    """Stop (with a checkpoint) at this step, e.g. to fit a job's time limit; rerun to continue."""
    batch_size: int = 64
    """Samples per optimizer step per process (before accumulation)."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    paraphrase: float = 0.5
    """Share of training samples whose instruction is swapped for one of its family's training paraphrases
    (envs/tasks.yaml; slots kept, held-out wordings never used), so the policy reads the command's gist
    rather than the three wordings the store was collected with. 0 = off."""
    start_boost: int = 3
    """Draw each demonstration's first 3 frames this many times as often within their family: there the arm
    is where it starts in every episode, so only vision and language tell which way to go. 1 = off."""
    release_boost: int = 3
    """Draw the frames whose next 8 actions open the gripper after holding (the release that ends a place)
    this many times as often within their family: a decision made on a few frames per demonstration.
    1 = off."""
    balance_families: bool = True
    """Draw every task family equally often (else every frame equally often)."""
    lr: float = 1e-3
    """Peak learning rate (AdamW), after linear warmup, then cosine decay to 1% of it."""
    warmup: int = 100
    """Warmup steps."""
    weight_decay: float = 0.01
    """AdamW weight decay (not on norms, biases or embeddings)."""
    clip_grad: float = 1.0
    """Gradient-norm clip."""
    ema: float = 0.0
    """EMA decay of the weights (0 = off, e.g. 0.999); evaluation and export use the EMA weights."""
    val_fraction: float = 0.05
    """Episodes held out for validation loss."""
    log_every: int = 50
    """Steps between metric rows (CSV) and progress updates."""
    eval_every: int = 1000
    """Steps between validation loss + quick rollouts (0 = only at the end)."""
    eval_episodes: int = 4
    """Rollouts per family in periodic evaluations."""
    final_eval_episodes: int = 20
    """Rollouts per family in the final evaluation."""
    failure_videos: int = 3
    """mp4s of the first failed episodes per family in the final evaluation, in failures/ (0 = none)."""
    random_baseline: bool = True
    """Also evaluate a random policy on the final evaluation's seeds, for the table."""
    ckpt_every: int = 500
    """Steps between checkpoints (and at the end)."""
    replan_every: int = REPLAN_EVERY
    """Receding-horizon execution: actions used from each chunk before re-planning."""
    workers: int = 1
    """DataLoader worker processes (1 is fastest on 2 cores: the model needs the rest)."""
    frame_cache_mb: int = 4096
    """Decoded training frames each DataLoader worker keeps in memory (the main job's store is 2.8 GiB decoded;
    zarr decodes a frame in about 1 ms on a slow CPU, so without it every epoch decodes every frame again)."""
    device: str = "auto"
    """'auto' (CUDA if present), 'cuda' or 'cpu'."""
    bf16: bool = True
    """bf16 autocast on CUDA (ignored on CPU)."""
    compile: bool = False
    """torch.compile the model (CUDA)."""
    seed: int = 0
    """Seeds batches, augmentation and flow noise (per step, so resuming is exact)."""
    fresh: bool = False
    """Start over even if the run has a checkpoint."""
    out: Path | None = None
    """Runs folder (default: policies/runs)."""


@dataclass
class FinetuneConfig(TrainConfig):
    """Fine-tuning a pretrained run on a new store through the same loop; `scripts/finetune.py` flags."""

    name: str = "finetune"
    base: Path | None = None
    """The pretrained run (its latest checkpoint) or a checkpoint folder. Required for lora and full."""
    adapter: Literal["lora", "full", "scratch"] = "lora"
    """lora: train LoRA adapters on the frozen base; full: fine-tune every weight; scratch: train a fresh
    model of the base's architecture (of --preset without --base) on the same data, the comparison."""
    rank: int = 4
    """LoRA rank (tiny preset, every stage: rank 4 trains 4.2% of its weights, 8 8.4%; the backbone alone at rank 8
    3.3%)."""
    alpha: float | None = None
    """LoRA alpha (default: the rank, so the update's scale is 1)."""
    targets: tuple[str, ...] = ()
    """LoRA target modules, name suffixes or globs (default: the base preset's lora_targets), e.g.
    --targets attn.qkv attn.out mlp.fc1 mlp.fc2 'vision.*.convs.*'. An unmatched target is an error."""
    train_head: bool = True
    """Also train the action head (fully) with the adapter; it is saved in the adapter."""
    dataset: str = "finetune_heldout"
    episodes_per_family: int | None = None
    """Train on the first N demonstrations of each family (validation uses the rest)."""
    steps: int = 600
    batch_size: int = 32
    paraphrase: float = 0.0
    start_boost: int = 1
    release_boost: int = 1
    lr: float | None = None  # type: ignore[assignment]
    """Peak learning rate (default: 1e-3 for lora and scratch, 1e-4 for full)."""
    warmup: int = 50
    eval_every: int = 0
    final_eval_episodes: int = 30
    compare_episodes: int = 5
    """LoRA: at the end, this many scenes per family of the new families and the base's own with the adapter off
    and on (0 = skip)."""
    ckpt_every: int = 200
