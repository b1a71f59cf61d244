"""What fine-tuning adds to the one training loop: the pretrained base, which episodes to learn from,
and the model to train (LoRA on the frozen base, every weight, or a fresh model of the same shape)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from embodied.adapters import Adapters, widen_stats
from embodied.errors import UserError
from embodied.policies.checkpoint import resolve_checkpoint
from embodied.policies.model import VLA
from embodied.policies.policy import full_spec, model_from_spec
from embodied.training.config import FinetuneConfig


def resolve(cfg: FinetuneConfig) -> FinetuneConfig:
    """Check the flags that go together and fill the method's default learning rate."""
    if cfg.adapter in ("lora", "full") and cfg.base is None:
        raise UserError(f"--adapter {cfg.adapter} fine-tunes a pretrained run: pass --base policies/runs/<run>")
    if cfg.model.rtc is not None and cfg.adapter == "lora":
        raise UserError("--rtc adds an input to the base: fine-tune every weight (--adapter full), not a LoRA adapter")
    given = sorted(k for k in cfg.model.given() if k != "rtc")
    if cfg.base is not None and given:
        raise UserError(f"the architecture comes from --base; drop {given}")
    if cfg.adapter == "lora" and cfg.ema > 0:
        raise UserError("--ema applies to full and scratch; a LoRA adapter is saved from its trained weights")
    if cfg.adapter != "lora" and cfg.targets:
        raise UserError("--targets applies to --adapter lora only")
    if cfg.episodes_per_family is not None and cfg.episodes_per_family < 1:
        raise UserError(f"episodes_per_family must be at least 1, got {cfg.episodes_per_family}")
    if cfg.lr is None:
        cfg = dataclasses.replace(cfg, lr=1e-4 if cfg.adapter == "full" else 1e-3)
    return cfg


@dataclass
class Base:
    """The pretrained run a fine-tune starts from."""

    model: VLA
    """Its weights (the EMA weights when it has them)."""
    spec: dict
    """Its policy spec, every config field filled in."""
    checkpoint: Path
    """Its checkpoint folder."""


def load_base(path: Path, rtc: int | None = None) -> Base:
    """The pretrained VLA from a run folder (its latest checkpoint) or a checkpoint folder. rtc: give a base
    trained without real-time chunking the committed-prefix input, zero at first (the model acts as the base
    until the fine-tune teaches it to read the prefix)."""
    ckpt = resolve_checkpoint(path, "--base")
    spec = full_spec(json.loads((ckpt / "policy.json").read_text()))
    if spec.get("adapter"):
        raise UserError(f"--base {path} is itself a LoRA fine-tune; use its base ({spec['base']['checkpoint']}) "
                        "or merge it first")
    weights = ckpt / "ema.safetensors" if (ckpt / "ema.safetensors").exists() else ckpt / "model.safetensors"
    state = load_file(weights)
    added = rtc is not None and rtc != spec["config"]["rtc"]
    if added:
        if spec["config"]["rtc"]:
            raise UserError(f"--base {path} already continues prefixes of up to {spec['config']['rtc']} actions; "
                            "fine-tune it without --rtc")
        spec = {**spec, "config": {**spec["config"], "rtc": rtc}}
    model = model_from_spec(spec)
    missing, unexpected = model.load_state_dict(state, strict=not added)
    if added:
        if sorted(missing) != ["prefix_proj.bias", "prefix_proj.weight"] or unexpected:
            raise RuntimeError(f"adding the prefix input to {path}: missing {missing}, unexpected {unexpected}")
        torch.nn.init.zeros_(model.prefix_proj.weight)
        torch.nn.init.zeros_(model.prefix_proj.bias)
    return Base(model, spec, ckpt)


def check_fits(spec: dict, store) -> None:
    """The new store must feed the base: same cameras, image size, state and action sizes."""
    have = {"cameras": list(store.cameras), "image_size": list(store.attrs["image_size"]),
            "state_dim": int(store.states().shape[1]), "action_dim": int(store.actions().shape[1])}
    want = {k: spec[k] for k in have}
    if not set(want["cameras"]) <= set(have["cameras"]) or have["image_size"] != want["image_size"] or \
            have["state_dim"] != want["state_dim"] or have["action_dim"] != want["action_dim"]:
        raise UserError(f"the store does not fit the base: base expects {want}, store has {have}")


def few_episodes(store, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n episodes of each family to train on; the rest of them to validate on."""
    families = store.meta("family")
    train, val = [], []
    for f in sorted(set(families.tolist())):
        eps = np.flatnonzero(families == f)
        if len(eps) < n:
            raise UserError(f"episodes_per_family={n}, but the store holds only {len(eps)} of family {f!r}")
        train += eps[:n].tolist()
        val += eps[n:].tolist()
    return np.array(sorted(train)), np.array(sorted(val))


def from_base(cfg: FinetuneConfig, base: Base, data_stats: dict) -> tuple[VLA, dict, Adapters | None]:
    """lora or full: the model to train, the statistics it trains with, and its adapters (lora only)."""
    model, spec, ckpt = base.model, base.spec, base.checkpoint
    stats, widened = widen_stats(spec["stats"], data_stats)
    if widened:
        print(f"the new data's actions reach outside the base's range in dimensions {widened}: range widened")
    if cfg.adapter == "full":
        model.set_stats(stats)
        return model, stats, None
    adapters = Adapters(model, spec, {"run": str(ckpt.parent.parent), "checkpoint": str(ckpt)})
    info = adapters.add(cfg.name, rank=cfg.rank, alpha=cfg.alpha, targets=list(cfg.targets) or None,
                        train_head=cfg.train_head, stats=stats)
    print(f"LoRA rank {cfg.rank} on {len(info['modules'])} modules: {_abbreviate(info['modules'])}"
          f"{' + action head' if cfg.train_head else ''}; trainable {info['trainable']:,} of {info['total']:,} "
          f"parameters ({100 * info['share']:.1f}%); adapter file about {4 * info['trainable'] / 1e6:.2f} MB")
    return model, stats, adapters


def _abbreviate(modules: list[str]) -> str:
    """backbone.0.attn.qkv ... backbone.3.attn.qkv -> backbone.{0-3}.attn.qkv"""
    groups: dict[str, list[str]] = {}
    for m in modules:
        parts = m.split(".")
        key = ".".join("{}" if p.isdigit() else p for p in parts)
        groups.setdefault(key, []).append(next((p for p in parts if p.isdigit()), ""))
    return ", ".join(k.replace("{}", "{" + f"{v[0]}-{v[-1]}" + "}", 1) if len(v) > 1 else k.replace("{}", v[0], 1)
                     for k, v in groups.items())


def compare_with_base(run_dir: Path, new_families: list[str], episodes: int, world: dict,
                      seed_start: int | None = None) -> dict:
    """A LoRA fine-tune's new families and its base's own (what the base was trained on) with the adapter off (the
    bare base) and on, on the same scenes (default: the selection block): what the adapter taught and what it cost.
    Returns {"columns": {label: evaluate()'s result}, "families": [...]}."""
    from embodied.evaluation.rollouts import EVAL_SEED_START, evaluate
    from embodied.policies.policy import VLAPolicy

    policy = VLAPolicy.load(resolve_checkpoint(run_dir, "the fine-tune"))  # the base with the adapter on
    name = policy.adapters.active
    base_families = pretrained_families(Path(policy.spec["base"]["checkpoint"]))
    families = [*new_families, *(f for f in base_families if f not in new_families)]
    env_config = {"image_size": tuple(policy.spec["image_size"]), "cameras": tuple(policy.spec["cameras"])} | world
    columns = {}
    for label, adapter in (("adapter off (the base)", None), (f"adapter {name} on", name)):
        policy.set_adapter(adapter)
        columns[label] = evaluate(policy, families, episodes, seed_start=seed_start or EVAL_SEED_START,
                                  env_config=env_config, progress=False)
    return {"columns": columns, "families": families}


def pretrained_families(ckpt: Path) -> list[str]:
    """The families a checkpoint was trained on: its store's (when it still exists) or its recipe's."""
    from embodied.data.recipes import load_recipe
    from embodied.data.store import EpisodeStore

    config = json.loads((ckpt / "trainer.json").read_text())["config"]
    if config.get("store") and Path(config["store"]).exists():
        return sorted(set(EpisodeStore.open(Path(config["store"])).meta("family").tolist()))
    return list(load_recipe(config["dataset"]).families)
