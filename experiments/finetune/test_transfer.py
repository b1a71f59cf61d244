"""The transfer experiment's bookkeeping: two processes sharing --out keep each other's cells, the table and plot
over training seeds, and the --rank check. `pytest experiments/finetune` (no training: the cells are made up)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_experiment import Args, main, markdown, plot, save, world  # noqa: E402

from embodied.errors import UserError  # noqa: E402

pytestmark = pytest.mark.slow  # a study's test: make test (CI) runs it, make test-fast does not


def cell(method: str, n: int, seed: int, wins: int) -> dict:
    entry = {"success": wins / 10, "episodes": 10, "ci95": [0.0, 1.0]}
    return {"method": method, "n": n, "seed": seed, "wall_s": 90.0, "trainable": 100, "share": 0.05,
            "adapter_bytes": 4000 if method != "full" else None, "settings": {"seed": seed},
            "rollouts": {"stack": entry, "mean": entry}}


def test_processes_sharing_out_keep_each_others_cells(tmp_path):
    path = tmp_path / "results.json"
    first = {"cells": {}, "settings": {"seeds": [0]}}  # both read an empty folder, then each adds its seed
    second = {"cells": {}, "settings": {"seeds": [1]}}
    first["cells"]["full/10/0"] = cell("full", 10, 0, 2)
    save(path, first, "full/10/0")
    second["cells"]["full/10/1"] = cell("full", 10, 1, 4)
    save(path, second, "full/10/1")
    first["cells"]["full/25/0"] = cell("full", 25, 0, 5) | {"demo_scenes": {"mean": {"success": 0.8}}}
    save(path, first, "full/25/0")
    first["cells"]["full/10/0"]["demo_scenes"] = {"mean": {"success": 0.3}}  # a cell updated in place ...
    save(path, first, "full/10/0")
    second["cells"]["full/50/1"] = cell("full", 50, 1, 6)  # ... outlives the other process's stale copy
    save(path, second, "full/50/1")
    on_disk = json.loads(path.read_text())
    assert set(on_disk["cells"]) == {"full/10/0", "full/10/1", "full/25/0", "full/50/1"}
    assert on_disk["cells"]["full/10/0"]["demo_scenes"]["mean"]["success"] == 0.3
    assert not path.with_suffix(".tmp").exists()

    table = markdown(on_disk)
    assert "| 10 | full | 20% / 40% | **30%** (20-40) |" in table  # mean and range over the two seeds
    assert "| 25 | full | 50% | **50%** (50-50) | 50% [0-100] | 80% |" in table  # its demonstrations' own scenes
    plot(on_disk | {"settings": {"dataset": "finetune_heldout"}}, tmp_path / "results.png")
    assert (tmp_path / "results.png").stat().st_size > 0


@pytest.mark.parametrize("bad", [{"rank": {"full": 8}}, {"methods": ("lora_big",)}, {"block": "test"}])
def test_bad_settings_are_named_before_any_work(tmp_path, bad):
    with pytest.raises(UserError, match="--rank only for the lora ones|block"):
        main(Args(**{"out": tmp_path, **bad}))
    assert not (tmp_path / "results.json").exists()


def test_cells_play_the_world_their_demonstrations_were_made_in():
    assert world("finetune_heldout") == {"split": "train", "version": 1}  # not the old world v0, nor held-out words
