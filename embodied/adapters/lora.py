"""LoRA adapters on a frozen VLA, through peft: attach, train, save alone, load, switch, merge.

An adapter is saved as a folder of two files:

    adapter.safetensors   the LoRA matrices (and the action head, when it was trained)
    adapter.json          rank, alpha, the adapted modules, the base's architecture and weight hash, the
                          normalization statistics it was trained with, the safetensors file's sha256

Statistics: an adapter carries its own. Fine-tuning keeps the base's (the frozen base was trained in
that normalized space) and widens the action range only where the new data reaches outside it, so no
new action is clipped; `set_adapter` swaps them in and `set_adapter(None)` restores the base's.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import shutil
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from embodied.errors import UserError
from embodied.runtime.bundle import file_sha256

ADAPTER_FORMAT = 1
HEAD = "action_head"
_ADAPTABLE = (nn.Linear, nn.Conv2d)


def resolve_targets(model: nn.Module, patterns: list[str]) -> list[str]:
    """Module names matched by each pattern: a name suffix ("attn.qkv") or a glob over full names
    ("vision.*.convs.*"). Every pattern must match at least one Linear or Conv2d."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    inner = (".lora_", ".base_layer", ".modules_to_save", ".original_module")  # peft's own submodules
    names = [n for n, m in model.named_modules()
             if isinstance(m, (*_ADAPTABLE, BaseTunerLayer)) and n and not any(s in n for s in inner)]
    found: list[str] = []
    for p in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, f"*.{p}")]
        if not hits:
            kinds = sorted({n.split(".", 2)[-1] if n.startswith("backbone.") else n for n in names})
            raise UserError(f"LoRA target {p!r} matches no Linear or Conv2d module; adaptable modules: "
                            f"{', '.join(kinds)} (backbone names are per layer: backbone.<i>.<name>)")
        found += [n for n in hits if n not in found]
    return found


def base_hash(model: nn.Module) -> str:
    """sha256 of the base weights, the same with or without adapters attached: LoRA matrices and
    normalization statistics (which adapters carry themselves) are left out, peft's wrapper names folded."""
    h = hashlib.sha256()
    for key, value in sorted(_base_weights(model).items()):
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


def _base_weights(model: nn.Module) -> dict:
    out = {}
    for key, value in model.state_dict().items():
        if "lora_" in key or ".modules_to_save." in key or key.split(".")[-1] in _STAT_BUFFERS:
            continue
        out[key.replace(".base_layer.", ".").replace(".original_module.", ".")] = value
    return out


_STAT_BUFFERS = {"state_mean", "state_std", "action_low", "action_high"}


def widen_stats(base: dict, data: dict) -> tuple[dict, list[int]]:
    """The base's statistics, with the action range widened where `data` reaches outside it. Returns the
    statistics and the widened action dimensions."""
    lo = [min(a, b) for a, b in zip(base["action"]["min"], data["action"]["min"], strict=True)]
    hi = [max(a, b) for a, b in zip(base["action"]["max"], data["action"]["max"], strict=True)]
    widened = [i for i, (a, b, c, d) in enumerate(zip(lo, hi, base["action"]["min"], base["action"]["max"],
                                                      strict=True)) if a < c or b > d]
    return {"state": dict(base["state"]), "action": {**base["action"], "min": lo, "max": hi}}, widened


def architecture(spec: dict) -> dict:
    """What must be equal for an adapter to fit a base. The spec's config is read as it is: the policy
    layer hands over specs with every config field filled in (embodied.policies.policy.full_spec)."""
    arch = {k: spec[k] for k in ("cameras", "image_size", "state_dim", "action_dim")}
    arch["config"] = {k: v for k, v in spec["config"].items() if k != "lora_targets"}
    return json.loads(json.dumps(arch))  # as it reads back from adapter.json (tuples become lists)


class Adapters:
    """Named LoRA adapters on one VLA (modified in place; its base weights frozen). At most one is active;
    `set(None)` runs the bare base."""

    def __init__(self, model: nn.Module, spec: dict, base: dict | None = None):
        """spec: the base's policy spec (architecture, statistics); base: where it came from
        ({"run", "checkpoint"}), saved into every adapter."""
        self.model, self.spec = model, spec
        self.base = {**(base or {}), "hash": base_hash(model)}
        self.peft = None  # the peft wrapper, once the first adapter is attached
        self.meta: dict[str, dict] = {}  # name -> adapter.json content
        self.active: str | None = None

    @property
    def names(self) -> list[str]:
        return list(self.meta)

    def add(self, name: str, rank: int = 16, alpha: float | None = None, dropout: float = 0.0,
            targets: list[str] | None = None, train_head: bool = False, stats: dict | None = None) -> dict:
        """Attach a fresh adapter and make it active. targets: patterns (default: the preset's lora_targets)."""
        from peft import LoraConfig

        _check_name(name, self.names)
        if rank < 1:
            raise UserError(f"LoRA rank must be at least 1, got {rank}")
        modules = resolve_targets(self.model, targets or self.model.cfg.lora_targets)
        config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, lora_dropout=dropout,
                            target_modules=modules, modules_to_save=[HEAD] if train_head else None)
        self._attach(name, config)
        self.meta[name] = {"format": ADAPTER_FORMAT, "kind": "lora", "name": name, "rank": rank,
                           "alpha": config.lora_alpha, "dropout": dropout, "targets": modules,
                           "train_head": train_head, "base": self.base, "architecture": architecture(self.spec),
                           "stats": stats or self.spec["stats"]}
        self.set(name)
        info = self.summary(name)
        self.meta[name].update(trainable=info["trainable"], share=info["share"])
        return info

    def summary(self, name: str) -> dict:
        """Adapted modules, trainable parameters (the active adapter's) and their share of the VLA."""
        trainable = sum(p.numel() for n, p in self.model.named_parameters() if p.requires_grad)
        total = sum(v.numel() for v in _base_weights(self.model).values())
        return {"modules": self.meta[name]["targets"], "trainable": trainable, "total": total,
                "share": trainable / total}

    def set(self, name: str | None) -> None:
        """Switch adapter per episode; None = the bare base (outputs exactly as before any adapter)."""
        if name is not None and name not in self.meta:
            raise UserError(f"no adapter named {name!r}; attached: {self.names or 'none'}")
        if self.peft is not None:
            if name is None:
                self.peft.base_model.disable_adapter_layers()
            else:
                self.peft.base_model.enable_adapter_layers()
                self.peft.base_model.set_adapter(name)
        self.active = name
        self.model.set_stats(self.meta[name]["stats"] if name else self.spec["stats"])

    def save(self, name: str, folder: Path, extra: dict | None = None) -> Path:
        """adapter.safetensors + adapter.json into a temporary folder, renamed over `folder` at the end: a
        kill mid-save leaves the previous adapter whole."""
        from peft import get_peft_model_state_dict

        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tensors = {k: v.detach().cpu().contiguous()
                   for k, v in get_peft_model_state_dict(self.peft, adapter_name=name).items()}
        save_file(tensors, tmp / "adapter.safetensors")
        meta = {**self.meta[name], **(extra or {}), "sha256": file_sha256(tmp / "adapter.safetensors"),
                "size_bytes": (tmp / "adapter.safetensors").stat().st_size}
        (tmp / "adapter.json").write_text(json.dumps(meta, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        return folder

    def load(self, folder: Path, name: str | None = None) -> str:
        """Attach a saved adapter (and make it active). Everything is checked before the model is touched:
        a truncated or altered file, another base or another architecture is refused and leaves the
        policy as it was."""
        from peft import LoraConfig, set_peft_model_state_dict

        meta, tensors = read_adapter(Path(folder))
        name = name or meta["name"]
        _check_name(name, self.names)
        if meta["architecture"] != architecture(self.spec):
            diff = sorted(k for k in meta["architecture"] if meta["architecture"][k] != architecture(self.spec)[k])
            raise UserError(f"{folder}: adapter was trained on another architecture (differs in {diff}); "
                            "load it onto the base it names: " + str(meta["base"].get("run")))
        if meta["base"]["hash"] != self.base["hash"]:
            raise UserError(f"{folder}: adapter was trained on another base ({meta['base'].get('run')}, weights "
                            f"{meta['base']['hash'][:12]}); this policy's base weights are {self.base['hash'][:12]}")
        config = LoraConfig(r=meta["rank"], lora_alpha=meta["alpha"], lora_dropout=meta["dropout"],
                            target_modules=meta["targets"], modules_to_save=[HEAD] if meta["train_head"] else None)
        snapshot = {k: v.clone() for k, v in self.model.state_dict().items()} if self.peft is None else None
        self._attach(name, config)
        try:
            from peft import get_peft_model_state_dict

            # exactly this adapter's tensors, shapes included: a file naming base weights could otherwise
            # overwrite the frozen base through peft's loader
            expected = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(self.peft, adapter_name=name).items()}
            got = {k: tuple(v.shape) for k, v in tensors.items()}
            if got != expected:
                odd = sorted(set(got) ^ set(expected))[:3] or [k for k in got if got[k] != expected[k]][:3]
                raise UserError(f"{folder}: adapter tensors do not fit this adapter's modules (e.g. {odd})")
            set_peft_model_state_dict(self.peft, tensors, adapter_name=name)
        except Exception:
            self._detach(name, snapshot)
            raise
        self.meta[name] = {**meta, "name": name}
        self.set(name)
        return name

    def merge(self) -> nn.Module:
        """The active adapter folded into the weights: a plain VLA (no peft layers) for deployment, with
        the adapter's statistics. This object is spent afterwards."""
        if self.active is None or self.peft is None:
            raise UserError("no active adapter to merge (set_adapter(name) first)")
        merged = self.peft.merge_and_unload(adapter_names=[self.active])
        merged.set_stats(self.meta[self.active]["stats"])
        self.peft = None
        self.meta.clear()
        return merged

    def _attach(self, name: str, config) -> None:
        from peft import get_peft_model

        if self.peft is None:
            self.peft = get_peft_model(self.model, config, adapter_name=name)
        else:
            self.peft.add_adapter(name, config)
        # only the newest adapter trains; the base and the other adapters stay as they were
        mine = re.compile(rf"\.(lora_A|lora_B|modules_to_save)\.{re.escape(name)}\.")
        for n, p in self.model.named_parameters():
            p.requires_grad = bool(mine.search(n))

    def _detach(self, name: str, snapshot: dict | None) -> None:
        if self.meta:
            self.peft.delete_adapter(name)
            self.set(self.active)
        else:  # the first adapter: back to the bare model, with its weights as they were
            self.peft.unload()
            self.peft = None
            self.model.load_state_dict(snapshot)


def _check_name(name: str, attached: list[str]) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or name in "lora_":  # peft keys embed the name
        raise UserError(f"adapter name {name!r}: use letters, digits, '_' or '-', and not a part of 'lora_'")
    if name in attached:
        raise UserError(f"an adapter named {name!r} is already attached (have: {attached})")


def read_adapter(folder: Path) -> tuple[dict, dict]:
    """adapter.json and its tensors, checked against the recorded sha256."""
    meta_path, weights = folder / "adapter.json", folder / "adapter.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(f"{folder} is not an adapter (expected adapter.json and adapter.safetensors)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{meta_path}: not valid JSON ({e})") from e
    if meta.get("format", 0) > ADAPTER_FORMAT or meta.get("kind") != "lora":
        raise UserError(f"{meta_path}: adapter format {meta.get('format')}/{meta.get('kind')} is not one this "
                        f"embodied reads (lora, format <= {ADAPTER_FORMAT})")
    if file_sha256(weights) != meta.get("sha256"):
        raise UserError(f"{weights}: its sha256 does not match adapter.json (truncated or altered; "
                        f"{weights.stat().st_size} bytes, {meta.get('size_bytes')} written)")
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError) as e:
        raise UserError(f"{weights}: unreadable ({e})") from e
    return meta, {k: v.float() for k, v in tensors.items()}
