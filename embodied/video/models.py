"""Saving and loading the video models (inverse dynamics, latent actions): a folder of model.safetensors and
model.json (what builds the model, and its training report)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from embodied.errors import UserError
from embodied.video.idm import InverseDynamics
from embodied.video.latent import LatentActionModel

BUILDERS = {"idm": InverseDynamics, "latent": LatentActionModel}


def save(model: nn.Module, folder: str | Path, report: dict | None = None) -> Path:
    """model.safetensors + model.json (what builds it, and its training report)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps({**model.meta, "report": report or {}}, indent=2))
    return folder


def load(folder: str | Path) -> nn.Module:
    """An inverse-dynamics or latent-action model saved by `save`."""
    folder = Path(folder)
    if not (folder / "model.json").is_file():
        raise UserError(f"{folder}: no model.json; expected a folder written by scripts/label_video.py")
    meta = json.loads((folder / "model.json").read_text())
    meta.pop("report", None)
    kind = meta.pop("kind", None)
    if kind not in BUILDERS:
        raise UserError(f"{folder}: unknown model kind {kind!r}; expected one of {sorted(BUILDERS)}")
    model = BUILDERS[kind](**meta)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model.eval()
