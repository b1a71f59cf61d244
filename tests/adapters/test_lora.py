"""LoRA adapters: exactly the named modules wrapped, only adapter weights learn, save/load round trip,
refusals that leave the policy untouched, exact switching, merged == unmerged, statistics per adapter."""

import json

import pytest
import torch
from peft.tuners.lora import LoraLayer

from embodied.adapters import Adapters, resolve_targets, widen_stats
from embodied.adapters.lora import base_hash
from embodied.errors import UserError
from embodied.policies.config import load_preset
from embodied.policies.model import VLA

CAMS = ["front", "wrist"]
STATE, ACTION = 13, 5


def stats(low=-1.0, high=1.0, mean=0.0):
    return {"state": {"mean": [mean] * STATE, "std": [1.0] * STATE},
            "action": {"min": [low] * ACTION, "max": [high] * ACTION}}


def make(seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = load_preset("tiny", **overrides)
    model = VLA(cfg, CAMS, (32, 32), STATE, ACTION).eval()
    spec = {"config": vars(cfg).copy(), "cameras": CAMS, "image_size": [32, 32], "state_dim": STATE,
            "action_dim": ACTION, "stats": stats()}
    model.set_stats(spec["stats"])
    return model, spec


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"images": {c: torch.randint(0, 256, (3, 1, 32, 32, 3), generator=g, dtype=torch.uint8) for c in CAMS},
            "state": torch.randn(3, 1, STATE, generator=g), "lang": torch.randn(3, 16, 384, generator=g),
            "lang_mask": torch.arange(16)[None].expand(3, -1) < 9}


@torch.no_grad()
def chunk(model, x):
    return model.denormalize_action(model(**{**x, "state": model.normalize_state(x["state"])}))


def perturb(model, name, seed):
    """Fresh LoRA B matrices are zero (the adapter starts as the identity): give them values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f".{name}." in n and ("lora_B" in n or "modules_to_save" in n):
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_lora_wraps_exactly_the_named_modules():
    model, spec = make()
    adapters = Adapters(model, spec)
    info = adapters.add("one", rank=4)  # the preset's default: every stage
    wrapped = sorted(n for n, m in model.named_modules() if isinstance(m, LoraLayer))
    backbone = [f"backbone.{i}.{k}" for i in range(4) for k in ("attn.qkv", "attn.out", "mlp.fc1", "mlp.fc2")]
    vision = [f"vision.{c}.{k}.{i}" for c in CAMS for k in ("convs", "films") for i in range(5)]
    assert wrapped == sorted(info["modules"]) and set(backbone + vision + ["lang_proj", "state_proj"]) <= set(wrapped)
    assert 0 < info["share"] < 0.05 and info["trainable"] == sum(p.numel() for p in model.parameters()
                                                                 if p.requires_grad)
    only = Adapters(*make()).add("two", rank=4, targets=["attn.qkv", "attn.out", "mlp.fc1", "mlp.fc2"])
    assert sorted(only["modules"]) == sorted(backbone)
    convs = resolve_targets(make()[0], ["vision.*.convs.*", "action_head"])
    assert len(convs) == 2 * 5 + 1 and "vision.wrist.convs.4" in convs
    with pytest.raises(UserError, match=r"'attn\.qkvv' matches no .*attn\.qkv"):
        resolve_targets(model, ["attn.qkvv"])


def test_only_adapter_and_head_receive_gradients():
    model, spec = make()
    Adapters(model, spec).add("one", rank=4, train_head=True)
    model.train()
    x = batch()
    loss = model.loss(**x, action=torch.rand(3, 16, ACTION) * 2 - 1, action_mask=torch.ones(3, 16, dtype=torch.bool))
    loss.backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None}
    assert got and all("lora_" in n or "modules_to_save.one." in n for n in got)
    # lora_B starts at zero, so only B and the head have a nonzero gradient on the first step
    moved = {n for n in got if dict(model.named_parameters())[n].grad.abs().sum() > 0}
    assert any("lora_B" in n for n in moved) and any("modules_to_save.one." in n for n in moved)
    assert len({n for n in got if "lora_A" in n}) == len(resolve_targets(make()[0], model.cfg.lora_targets))


def test_save_load_round_trip_and_switching_is_exact(tmp_path):
    model, spec = make()
    x = batch()
    bare = chunk(model, x)
    adapters = Adapters(model, spec, {"run": "base"})
    adapters.add("one", rank=4, train_head=True)
    perturb(model, "one", 1)
    adapters.add("two", rank=2)
    perturb(model, "two", 2)
    with_b = chunk(model, x)
    adapters.set("one")
    with_a = chunk(model, x)
    assert (with_a - bare).abs().max() > 1e-3 and (with_b - with_a).abs().max() > 1e-3
    adapters.set(None)
    assert torch.equal(chunk(model, x), bare)
    adapters.set("two")
    assert torch.equal(chunk(model, x), with_b)
    adapters.set("one")
    assert torch.equal(chunk(model, x), with_a)
    adapters.save("one", tmp_path / "one")

    fresh, _ = make()  # the same base, built again
    loaded = Adapters(fresh, spec)
    assert loaded.load(tmp_path / "one") == "one"
    assert torch.equal(chunk(fresh, x), with_a)


def test_merged_equals_unmerged(tmp_path):
    model, spec = make()
    x = batch()
    adapters = Adapters(model, spec)
    adapters.add("one", rank=4, train_head=True, stats=stats(-2.0, 2.0))
    perturb(model, "one", 3)
    unmerged = chunk(model, x)
    merged = adapters.merge()
    assert not any(isinstance(m, LoraLayer) for m in merged.modules())
    assert (chunk(merged, x) - unmerged).abs().max() <= 1e-5
    assert merged.action_high[0] == 2.0  # the adapter's statistics travel into the merged model


def test_refusals_leave_the_policy_as_it_was(tmp_path):
    model, spec = make()
    adapters = Adapters(model, spec, {"run": "base"})
    adapters.add("one", rank=4)
    perturb(model, "one", 4)
    adapters.save("one", tmp_path / "one")
    x = batch()

    other, other_spec = make(seed=5)  # same architecture, other weights
    before = chunk(other, x)
    with pytest.raises(UserError, match="another base"):
        Adapters(other, other_spec).load(tmp_path / "one")
    wider, wider_spec = make(d_model=64, heads=4)
    with pytest.raises(UserError, match="another architecture"):
        Adapters(wider, wider_spec).load(tmp_path / "one")

    truncated = tmp_path / "t"
    truncated.mkdir()
    (truncated / "adapter.json").write_text((tmp_path / "one/adapter.json").read_text())
    (truncated / "adapter.safetensors").write_bytes((tmp_path / "one/adapter.safetensors").read_bytes()[:-100])
    same, _ = make()
    same_before = chunk(same, x)
    fits = Adapters(same, spec)
    with pytest.raises(UserError, match="sha256 does not match"):
        fits.load(truncated)
    meta = json.loads((tmp_path / "one/adapter.json").read_text())
    (truncated / "adapter.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(UserError, match="format"):
        fits.load(truncated)
    for m, want in ((other, before), (same, same_before)):  # nothing half-loaded
        assert not any(isinstance(mod, LoraLayer) for mod in m.modules())
        assert torch.equal(chunk(m, x), want)
    assert fits.names == [] and fits.load(tmp_path / "one") == "one"  # and the right one still loads


def test_an_adapter_file_naming_base_weights_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from embodied.runtime.bundle import file_sha256

    model, spec = make()
    adapters = Adapters(model, spec)
    adapters.add("one", rank=4)
    adapters.save("one", tmp_path / "one")
    tensors = load_file(tmp_path / "one/adapter.safetensors")
    tensors["base_model.model.backbone.0.attn.qkv.base_layer.weight"] = torch.zeros(3 * 128, 128)  # hostile
    save_file(tensors, tmp_path / "one/adapter.safetensors")
    meta = json.loads((tmp_path / "one/adapter.json").read_text())
    meta["sha256"] = file_sha256(tmp_path / "one/adapter.safetensors")  # made to pass the file check
    (tmp_path / "one/adapter.json").write_text(json.dumps(meta))
    fresh, _ = make()
    x = batch()
    before = chunk(fresh, x)
    with pytest.raises(UserError, match="do not fit"):
        Adapters(fresh, spec).load(tmp_path / "one")
    assert torch.equal(chunk(fresh, x), before) and not any(isinstance(m, LoraLayer) for m in fresh.modules())


def test_adapter_carries_its_statistics():
    base = stats()
    widened, dims = widen_stats(base, {"state": base["state"], "action": {"min": [-1, -3, -1, -1, -1],
                                                                         "max": [1, 1, 1, 2, 0.5]}})
    assert dims == [1, 3] and widened["action"]["min"][1] == -3 and widened["action"]["max"][3] == 2
    assert widened["action"]["max"][4] == 1  # never narrowed: the base's range still fits the base
    model, spec = make()
    adapters = Adapters(model, spec)
    adapters.add("wide", rank=2, stats=widened)
    assert model.action_low[1] == -3
    adapters.set(None)
    assert model.action_low[1] == -1 and model.action_high[3] == 1


def test_base_hash_ignores_adapters_and_statistics():
    model, spec = make()
    h = base_hash(model)
    adapters = Adapters(model, spec)
    adapters.add("one", rank=2, train_head=True, stats=stats(-5, 5))
    perturb(model, "one", 6)
    assert base_hash(model) == h != base_hash(make(seed=7)[0])
