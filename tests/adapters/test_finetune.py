"""Fine-tuning through the real script and the one loop: LoRA for two steps, then resume; the base
untouched; full fine-tuning and scratch as comparisons; flags that do not go together."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embodied.adapters.lora import base_hash
from embodied.data.collect import collect
from embodied.data.recipes import Recipe
from embodied.data.store import EpisodeStore
from embodied.errors import UserError
from embodied.policies.policy import VLAPolicy
from embodied.training.config import FinetuneConfig, ModelOverrides, TrainConfig
from embodied.training.finetune import few_episodes, resolve
from embodied.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(workers=0, eval_every=0, final_eval_episodes=0, log_every=1, warmup=1, batch_size=4)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A store of two families and a base pretrained on it for 2 steps."""
    root = tmp_path_factory.mktemp("ft")
    recipe = Recipe(name="t", families=["reach", "press_button"], episodes_per_family=3, image_size=(32, 32))
    store = collect(recipe, root / "t.zarr", workers=2, progress=False).path
    train(TrainConfig(name="base", store=store, out=root, steps=2, **SMALL), store, root)
    return store, root / "base"


def digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*.safetensors")))).hexdigest()


def finetune(store, base_run, out, *extra):
    cmd = [sys.executable, "scripts/finetune.py", "--base", str(base_run), "--store", str(store), "--out", str(out),
           "--name", "ft", "--steps", "4", "--batch-size", "4", "--workers", "0", "--final-eval-episodes", "0",
           "--log-every", "1", "--warmup", "1", "--rank", "4", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_lora_two_steps_through_the_script_then_resume(base, tmp_path):
    """Every stage adapted by default (the vision convolutions too); the run ends with the new families and the
    base's own, adapter off and on."""
    import json

    store, base_run = base
    before = digest(base_run)
    first = finetune(store, base_run, tmp_path, "--stop-at", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "LoRA rank 4 on 46 modules: backbone.{0-3}.attn.qkv" in first.stdout and "vision.front.convs" in first.stdout
    assert "adapter file about" in first.stdout
    second = finetune(store, base_run, tmp_path, "--final-eval-episodes", "1", "--compare-episodes", "1",
                      "--no-random-baseline")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming ft from step_000002" in second.stdout
    compared = json.loads((tmp_path / "ft" / "eval.json").read_text())["compared_with_base"]
    assert sorted(compared["families"]) == ["press_button", "reach"]  # the new families (the base knew both)
    off, on = compared["columns"].values()
    assert off["reach"]["episodes"] == on["reach"]["episodes"] == 1 and "adapter ft on" in second.stdout
    adapter = tmp_path / "ft/checkpoints/step_000004/adapter"
    assert (adapter / "adapter.json").is_file() and (adapter / "adapter.safetensors").stat().st_size < 400_000

    # the same four steps straight, in-process: resuming is exact
    straight = tmp_path / "straight"
    cfg = FinetuneConfig(name="ft", base=base_run, store=store, out=straight, steps=4, rank=4, **SMALL)
    train(cfg, store, straight)
    a = load_file(adapter / "adapter.safetensors")
    b = load_file(straight / "ft/checkpoints/step_000004/adapter/adapter.safetensors")
    assert a.keys() == b.keys() and any("lora_B" in k for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)

    # the base is untouched, on disk and inside the fine-tuned policy
    assert digest(base_run) == before
    policy = VLAPolicy.load(tmp_path / "ft/checkpoints/step_000004")
    bare = VLAPolicy.load(base_run / "checkpoints/step_000002")
    assert policy.adapters.active == "ft" and base_hash(policy.model) == base_hash(bare.model)
    obs = {"images": {c: torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy() for c in ("front", "wrist")},
           "state": bare.model.state_mean.numpy(), "instruction": "press the red button"}
    tuned = policy.act(obs)
    policy.set_adapter(None)
    policy.reset()
    assert (policy.act(obs) == bare.act(obs)).all() and not (tuned == bare.act(obs)).all()


def test_full_and_scratch_through_the_same_loop(base, tmp_path):
    store, base_run = base
    before = digest(base_run)
    for method in ("full", "scratch"):
        train(resolve(FinetuneConfig(name=method, base=base_run, store=store, out=tmp_path, adapter=method, steps=1,
                                     **SMALL)), store, tmp_path)
    full = load_file(tmp_path / "full/checkpoints/step_000001/model.safetensors")
    pre = load_file(base_run / "checkpoints/step_000002/model.safetensors")
    scratch = load_file(tmp_path / "scratch/checkpoints/step_000001/model.safetensors")
    assert full.keys() == pre.keys() == scratch.keys()
    head = "action_head.weight"
    # full: one small step away from the base; scratch: a fresh model of the same shape
    assert 0 < (full[head] - pre[head]).abs().max() < (scratch[head] - pre[head]).abs().max()
    assert digest(base_run) == before


def test_full_fine_tune_adds_real_time_chunking_to_a_plain_base(base, tmp_path):
    """--rtc on a base trained without it: the prefix input starts at zero (the base's chunks, whatever the
    prefix), then learns to read the prefix."""
    from embodied.training.finetune import load_base

    store, base_run = base
    bare = load_base(base_run).model.eval()
    grown = load_base(base_run, rtc=3).model.eval()
    assert grown.cfg.rtc == 3 and not hasattr(bare, "prefix_proj")
    b, h = 2, grown.cfg.action_horizon
    inputs = ({c: torch.randint(0, 256, (b, 1, 32, 32, 3), dtype=torch.uint8) for c in ("front", "wrist")},
              torch.randn(b, 1, 13), torch.randn(b, 16, 384), torch.ones(b, 16, dtype=torch.bool))
    prefix = torch.rand(b, h, grown.action_dim) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(grown.sample(*inputs, prefix=prefix, prefix_len=torch.tensor([0, 3])),
                                   bare.sample(*inputs))
    train(resolve(FinetuneConfig(name="rtc", base=base_run, store=store, out=tmp_path, adapter="full", steps=2,
                                 model=ModelOverrides(rtc=3), **SMALL)), store, tmp_path)
    tuned = VLAPolicy.load(tmp_path / "rtc/checkpoints/step_000002")
    assert tuned.spec["config"]["rtc"] == 3 and tuned.model.prefix_proj.weight.abs().max() > 0
    with pytest.raises(UserError, match="--adapter full"):
        resolve(FinetuneConfig(base=base_run, model=ModelOverrides(rtc=3)))
    with pytest.raises(UserError, match="already continues prefixes"):
        load_base(tmp_path / "rtc", rtc=4)


def test_flags_that_do_not_go_together(base, tmp_path):
    store, base_run = base
    with pytest.raises(UserError, match="pass --base"):
        resolve(FinetuneConfig(adapter="lora"))
    with pytest.raises(UserError, match="architecture comes from --base"):
        resolve(FinetuneConfig(base=base_run, model=ModelOverrides(head="flow")))
    with pytest.raises(UserError, match=r"drop \['keypoint_loss'\]"):  # not silently ignored
        resolve(FinetuneConfig(base=base_run, model=ModelOverrides(keypoint_loss=0.0)))
    assert resolve(FinetuneConfig(base=base_run, adapter="full")).lr == 1e-4
    with pytest.raises(UserError, match="only 3 of family"):
        few_episodes(EpisodeStore.open(store), 5)
    train_eps, val_eps = few_episodes(EpisodeStore.open(store), 2)
    assert len(train_eps) == 4 and len(val_eps) == 2 and not set(train_eps) & set(val_eps)
    result = finetune(store, base_run / "nowhere", tmp_path)
    assert result.returncode == 1 and "error: --base" in result.stderr and "Traceback" not in result.stderr

