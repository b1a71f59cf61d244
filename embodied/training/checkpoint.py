"""Checkpoints are directories: safetensors for every tensor, JSON for everything else. Loading
never unpickles anything.

    step_000400/
      model.safetensors      weights (with normalization statistics)
      ema.safetensors        EMA weights, when EMA is on
      optimizer.safetensors  optimizer tensors;  optimizer.json: the rest of its state
      trainer.json           step, scheduler state, resolved training config
      policy.json            policy spec: model config, cameras, specs, chunk size, rates, statistics
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(folder: Path, *, model, optimizer, scheduler, step: int, config: dict, spec: dict,
                    ema=None, extra=None) -> Path:
    """Write to a temporary folder, then rename: a kill mid-save leaves the previous checkpoint intact.
    `extra(folder)` writes more into the checkpoint before the rename (a fine-tune's adapter)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_contiguous(model.state_dict()), tmp / "model.safetensors")
    if ema is not None:
        save_file(_contiguous(ema.module.state_dict()), tmp / "ema.safetensors")
    tensors, rest = _split_optimizer(optimizer.state_dict())
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "optimizer.json").write_text(json.dumps(rest))
    (tmp / "trainer.json").write_text(json.dumps({"step": step, "scheduler": scheduler.state_dict(),
                                                 "config": config}, indent=2, default=str))
    (tmp / "policy.json").write_text(json.dumps(spec, indent=2))
    if extra is not None:
        extra(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    latest = folder.parent / "latest"
    latest.with_suffix(".tmp").write_text(folder.name)
    os.replace(latest.with_suffix(".tmp"), latest)
    return folder


def load_checkpoint(folder: Path, *, model, optimizer=None, scheduler=None, ema=None) -> dict:
    """Restore into existing objects; returns trainer.json (step, config)."""
    folder = Path(folder)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    if ema is not None and (folder / "ema.safetensors").exists():
        ema.module.load_state_dict(load_file(folder / "ema.safetensors"))
    trainer = json.loads((folder / "trainer.json").read_text())
    if optimizer is not None:
        rest = json.loads((folder / "optimizer.json").read_text())
        optimizer.load_state_dict(_join_optimizer(load_file(folder / "optimizer.safetensors"), rest))
    if scheduler is not None:
        scheduler.load_state_dict(trainer["scheduler"])
    return trainer


def _contiguous(state: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def _split_optimizer(state: dict) -> tuple[dict, dict]:
    """Optimizer state_dict -> (flat tensors, JSON-able remainder)."""
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict, rest: dict) -> dict:
    state: dict[int, dict] = {}
    for flat, value in [*tensors.items(), *rest["scalars"].items()]:
        pid, key = flat.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}
