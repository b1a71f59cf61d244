"""The video-pretraining experiment runs every path (none, labelled, idm, latent) at a tiny size:
`pytest experiments/video_pretraining` (not part of the framework's suite)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # a study's test: make test (CI) runs it, make test-fast does not

ROOT = Path(__file__).resolve().parents[2]
STYLE = {"front_offset": [0.0, 0.2, -0.1], "light_tint": [1.0, 0.8, 0.6]}


def test_experiment_script_runs_every_path(tmp_path):
    recipes = {
        "l": {"families": ["reach", "push"], "episodes_per_family": 4},
        "v": {"families": ["reach", "press_button"], "episodes_per_family": 2, "seed_start": 5000,
              "drop_actions": True, "env": STYLE},
        "f": {"families": ["press_button"], "episodes_per_family": 3, "seed_start": 9000},
    }
    for name, r in recipes.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**r, "image_size": [32, 32]}))
    out = tmp_path / "out"
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "video_pretraining_experiment.py"),
           "--labelled", str(tmp_path / "l.yaml"), "--video", str(tmp_path / "v.yaml"),
           "--fewshot", str(tmp_path / "f.yaml"), "--stores", str(tmp_path),
           "--ns", "2", "--model-steps", "3", "--pretrain-steps", "2", "--finetune-steps", "2", "--batch-size", "8",
           "--episodes", "1", "--check-episodes", "1", "--video-on-top", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "seed0" / "results.json").read_text())
    assert set(results["cells"]) == {"none/2", "labelled/2", "idm/2", "latent/2"}
    assert results["cells"]["idm/2"]["rollouts"]["press_button"]["episodes"] == 1
    assert {"heldout", "video_domain"} <= set(results["video_models"]["idm"])
    # --video-on-top: a video base's batch holds a whole labelled batch and as much video again
    assert [results[f"pretrain/{m}"]["batch_size"] for m in ("labelled", "idm", "latent")] == [8, 16, 16]
    table = (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 0 and "| 2 | latent |" in table and "of 1; p = " in table

    # --idm-keep relabels the video with the same inverse-dynamics model (not retrained) and keeps half the labels
    weights = out / "seed0" / "idm" / "model.safetensors"
    trained = weights.stat().st_mtime_ns
    keep = [a for a in cmd if a != "--video-on-top"] + ["--methods", "idm", "--idm-keep", "0.5"]
    done = subprocess.run(keep, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "seed0" / "results.json").read_text())
    assert set(results["cells"]) == {"idm/2"} and results["settings"]["idm_keep"] == 0.5
    assert results["video_models"]["idm"]["settings"]["idm_keep"] == 0.5
    assert len(results["video_models"]["idm"]["video_domain"]["error_by_spread"]) == 4
    labelled = json.loads((out / "seed0" / "video_idm.zarr" / "zarr.json").read_text())["attributes"]
    assert labelled["pseudo_labels"]["keep"] == 0.5 and weights.stat().st_mtime_ns == trained


def cell(method: str, seed: int, wins: list[bool]) -> dict:
    runs = [{"seed": 5_000_000 + i, "success": w} for i, w in enumerate(wins)]
    entry = {"success": sum(wins) / len(wins), "episodes": len(wins), "ci95": [0.0, 1.0], "runs": runs}
    return {"method": method, "n": 10, "seed": seed, "wall_s": 60.0, "rollouts": {"press_button": entry, "mean": entry}}


def test_methods_are_compared_scene_by_scene_over_every_training_seed():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from video_pretraining_experiment import markdown

    settings = {"pretrain_steps": 2, "batch_size": 8, "video_fraction": 0.5, "video_weight": 0.5, "episodes": 4,
                "block": "report"}
    seeds = [{"settings": settings | {"seed": s}, "video_models": {},
              "cells": {"labelled/10": cell("labelled", s, [True, False, False, False]),
                        "latent/10": cell("latent", s, [True, True, True, False])}} for s in (0, 1)]
    table = markdown(seeds)
    # per seed: the latent cell alone won scenes 1 and 2; over two seeds 4 of 8 pairs, none lost
    assert "+50 points; won 4, lost 0 of 8; p = 0.12" in table
    assert "**75%** (75-75)" in table and "75% / 75%" in table
