"""Export a trained policy as a bundle a robot controller runs without torch:

    <bundle>/
      policy.onnx          images (uint8) + raw state + instruction tokens -> action chunk in env units:
                           normalization, the flow head's noise and Euler steps, adapters (merged) inside
      policy_int8.onnx     the same, dynamically quantized to int8 (with --int8)
      encoder.onnx         the instruction encoder (all-MiniLM-L6-v2): token ids -> token states
      tokenizer.json       its tokenizer (read by the `tokenizers` library, no torch)
      policy_spec.json     cameras, image size, state/action specs with units and limits, chunk size,
                           control rate, versions, parity figures, the sha256 of every file above

Every export is checked before it is marked done: onnx.checker (full check) on each graph, then parity
with the torch policy on fixed inputs (max action difference <= 1e-4 for fp32). The bundle is written to
`<bundle>.partial` and renamed only when every check passed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embodied.errors import UserError
from embodied.runtime.bundle import file_sha256

BUNDLE_FORMAT = 1
PARITY_FP32 = 1e-4


class ExportError(RuntimeError):
    """An exported graph failed a check; nothing was marked done."""


class PolicyGraph(nn.Module):
    """What policy.onnx computes: raw inputs -> chunk (B, H, A) in env units."""

    def __init__(self, model, cameras: list[str]):
        super().__init__()
        self.model, self.cameras = model, cameras

    def forward(self, *inputs):
        """images..., state, lang, lang_mask, noise, and with rtc > 0: prefix (B, H, A) in env units and
        prefix_len (B,) int64 (the committed actions a plan continues)."""
        model = self.model
        if model.cfg.rtc > 0:
            *images, state, lang, lang_mask, noise, prefix, prefix_len = inputs
            extra = {"prefix": model.normalize_action(prefix), "prefix_len": prefix_len}
        else:
            (*images, state, lang, lang_mask, noise), extra = inputs, {}
        frames = dict(zip(self.cameras, images, strict=True))
        norm_state = model.normalize_state(state)
        if model.cfg.head == "regression":
            chunk = model(frames, norm_state, lang, lang_mask, **extra)
        else:  # the Euler steps, unrolled into the graph; the starting noise is an input
            x, dt = noise, 1.0 / model.cfg.flow_steps
            for i in range(model.cfg.flow_steps):
                time_ = torch.full((state.shape[0],), i * dt, dtype=state.dtype)
                x = x + dt * model(frames, norm_state, lang, lang_mask, x, time_, **extra)
            chunk = x
        return model.denormalize_action(chunk)


class EncoderGraph(nn.Module):
    """What encoder.onnx computes: token ids and mask (B, L) int64 -> token states (B, L, 384)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=torch.zeros_like(input_ids)).last_hidden_state


def export_bundle(policy, out: Path, int8: bool = False, source: str = "") -> dict:
    """Write the bundle for a VLAPolicy (its active adapter merged first); returns policy_spec.json."""
    from embodied.policies.policy import VLAPolicy

    if not isinstance(policy, VLAPolicy):
        raise UserError(f"export needs a trained VLA policy, got {type(policy).__name__}")
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} exists; remove it or choose another --out (an export never overwrites)")
    if policy.adapters is not None and policy.adapters.active is not None:
        policy.merge()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = policy.model.eval().float().cpu()
    spec = policy.spec
    cameras, (h, w) = list(model.cameras), spec["image_size"]
    inputs = example_inputs(model, cameras, (h, w))
    names = [*[f"image_{c}" for c in cameras], "state", "lang", "lang_mask", "noise",
             *(("prefix", "prefix_len") if model.cfg.rtc > 0 else ())]
    _to_onnx(PolicyGraph(model, cameras), inputs, names, ["chunk"], tmp / "policy.onnx")
    language = policy.language
    tokens = language.tokenizer(["pick up the red cube"], padding="max_length", truncation=True,
                                max_length=language.max_tokens, return_tensors="pt")
    _to_onnx(EncoderGraph(language.model), (tokens["input_ids"], tokens["attention_mask"]),
             ["input_ids", "attention_mask"], ["tokens"], tmp / "encoder.onnx")
    tokenizer_file = Path(language.tokenizer.name_or_path) / "tokenizer.json"
    shutil.copy(tokenizer_file, tmp / "tokenizer.json")

    checks = [example_inputs(model, cameras, (h, w), seed=s) for s in range(1, 5)]  # not the traced ones
    report = {"policy": parity(tmp / "policy.onnx", PolicyGraph(model, cameras), checks, names)}
    if report["policy"]["max_abs_diff"] > PARITY_FP32:
        raise ExportError(f"policy.onnx differs from torch by {report['policy']['max_abs_diff']:.2e} > {PARITY_FP32}")
    texts = ["put the blue cube on the green plate", "could you open the drawer", "press it"]
    enc_checks = [(c["input_ids"], c["attention_mask"]) for c in
                  (language.tokenizer([t], padding="max_length", truncation=True, max_length=language.max_tokens,
                                      return_tensors="pt") for t in texts)]
    report["encoder"] = parity(tmp / "encoder.onnx", EncoderGraph(language.model), enc_checks,
                               ["input_ids", "attention_mask"])
    if report["encoder"]["max_abs_diff"] > PARITY_FP32:
        raise ExportError(f"encoder.onnx differs from torch by {report['encoder']['max_abs_diff']:.2e}")
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet():
            quantize_dynamic(tmp / "policy.onnx", tmp / "policy_int8.onnx", weight_type=QuantType.QInt8)
        report["policy_int8"] = parity(tmp / "policy_int8.onnx", PolicyGraph(model, cameras), checks, names)
    files = sorted(p.name for p in tmp.iterdir())
    bundle_spec = policy_spec(spec, model, language.max_tokens, source, report,
                              {f: file_sha256(tmp / f) for f in files}, {f: (tmp / f).stat().st_size for f in files})
    (tmp / "policy_spec.json").write_text(json.dumps(bundle_spec, indent=2))
    tmp.rename(out)
    return bundle_spec


def example_inputs(model, cameras: list[str], size: tuple[int, int], batch: int = 1, seed: int = 0) -> tuple:
    """Fixed inputs for tracing and parity: random frames, states near the data, a real-length mask."""
    g = torch.Generator().manual_seed(seed)
    t, s = model.cfg.obs_horizon, model.state_mean.numel()
    images = [torch.randint(0, 256, (batch, t, *size, 3), generator=g, dtype=torch.uint8) for _ in cameras]
    state = model.state_mean + model.state_std * torch.randn(batch, t, s, generator=g)
    lang = torch.randn(batch, model.cfg.lang_tokens, 384, generator=g)
    mask = torch.arange(model.cfg.lang_tokens)[None].expand(batch, -1) < 9
    noise = torch.randn(batch, model.cfg.action_horizon, model.action_dim, generator=g)
    if model.cfg.rtc == 0:
        return (*images, state.float(), lang, mask, noise)
    span = model.action_high - model.action_low  # committed actions inside the data's range
    prefix = model.action_low + span * torch.rand(batch, model.cfg.action_horizon, model.action_dim, generator=g)
    return (*images, state.float(), lang, mask, noise, prefix, torch.full((batch,), 1 + seed % model.cfg.rtc))


def _to_onnx(module: nn.Module, inputs: tuple, names: list[str], outputs: list[str], path: Path) -> None:
    import onnx

    with warnings.catch_warnings(), torch.no_grad(), _quiet():  # batch 1: what a robot runs
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module.eval(), inputs, input_names=names, output_names=outputs, dynamo=True,
                                    verbose=False)
    model = program.model_proto
    onnx.save(model, path)  # one self-contained file (no external data) per graph
    onnx.checker.check_model(str(path), full_check=True)


def parity(path: Path, module: nn.Module, checks: list[tuple], names: list[str]) -> dict:
    """Max |onnxruntime - torch| over fixed inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    worst = 0.0
    for inputs in checks:
        got = session.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True) if n in wanted})[0]
        with torch.no_grad():
            want = module(*inputs).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return {"max_abs_diff": worst, "inputs": len(checks)}


def policy_spec(spec: dict, model, max_tokens: int, source: str, report: dict, hashes: dict, sizes: dict) -> dict:
    import onnx

    import embodied

    action_spec = spec.get("action_spec") or {}
    return {
        "format": BUNDLE_FORMAT, "source": source,
        "cameras": list(model.cameras), "image_size": list(spec["image_size"]), "image_dtype": "uint8",
        "obs_horizon": model.cfg.obs_horizon, "chunk_size": model.cfg.action_horizon,
        "control_rate": spec["control_rate"], "state_dim": int(model.state_mean.numel()),
        "action_dim": model.action_dim, "state_spec": spec.get("state_spec", {}),
        "action_spec": action_spec,
        "action_limits": {"low": model.action_low.tolist(), "high": model.action_high.tolist()},
        "head": model.cfg.head, "flow_steps": model.cfg.flow_steps if model.cfg.head == "flow" else 0,
        "rtc": model.cfg.rtc,
        "instruction_encoder": {"graph": "encoder.onnx", "tokenizer": "tokenizer.json", "max_tokens": max_tokens,
                                "name": model.cfg.language_model},
        "inputs": {"images": [f"image_{c}" for c in model.cameras], "state": "state", "lang": "lang",
                   "lang_mask": "lang_mask", "noise": "noise"},
        "parity": report,
        "versions": {"embodied": embodied.__version__, "torch": torch.__version__, "onnx": onnx.__version__},
        "files": hashes, "sizes": sizes,
    }


@contextlib.contextmanager
def _quiet():
    """The exporter prints its progress and logs absent torchvision ops; quantization logs every tensor it
    skips. None of it is news to a user when the checks below pass."""
    loggers = [logging.getLogger(n) for n in ("", "torch.onnx", "torch.onnx._internal.exporter._registration")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
