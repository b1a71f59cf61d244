"""Training throughput and memory per model preset, and act() latency at batch 1.

CPU always; on a CUDA GPU also bf16 with and without torch.compile, peak GPU memory and model FLOPs
utilization (MFU). Synthetic inputs (two 96x96 cameras, T_o=1, H=16): this measures the model, not data
loading (see bench_data.py).

--compare measures, in one run, the tiny training step as the main job runs it today against the
configuration before (the instruction padding kept), against twice as many threads as cores (what torch did
before threads were fitted to a cgroup CPU quota: a container held to 2 CPUs that sees more cores), and the
leaner preset of experiments/speed: steps interleaved, so a machine that slows down slows every column alike;
on every core and on one core.

    python scripts/bench_train.py [--presets tiny small] [--json bench_train.json]
    python scripts/bench_train.py --compare --json bench_compare.json
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from embodied.errors import cli
from embodied.policies.config import load_preset
from embodied.policies.language import drop_padding
from embodied.policies.model import VLA

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}  # dense
CAMS = ["front", "wrist"]


@dataclass
class Args:
    presets: list[str] = field(default_factory=lambda: ["tiny", "small", "base"])
    """Model presets to measure."""
    cpu_batch: dict[str, int] = field(default_factory=lambda: {"tiny": 64, "small": 16, "base": 8})
    """Batch size per preset on the CPU."""
    gpu_batch: int = 256
    """Batch size on the GPU."""
    steps: int = 10
    """Timed steps per setting (after warm-up)."""
    head: str = "regression"
    """Model head."""
    cpu: bool = True
    """Measure on the CPU (--no-cpu on a GPU machine whose CPU is not the one of interest)."""
    json: Path | None = None
    """Also write the figures here."""
    compare: bool = False
    """Only the comparison: today's tiny step against the previous configuration (see above)."""
    compare_steps: int = 20
    """Interleaved rounds per core count in --compare."""


def inputs(b: int, device: torch.device, h: int = 16):
    g = torch.Generator().manual_seed(0)
    x = {
        "images": {c: torch.randint(0, 256, (b, 1, 96, 96, 3), generator=g, dtype=torch.uint8).to(device)
                   for c in CAMS},
        "state": torch.randn(b, 1, 13, generator=g).to(device),
        "lang": torch.randn(b, 16, 384, generator=g).to(device),
        "lang_mask": (torch.arange(16)[None].expand(b, -1) < 10).to(device),
    }
    target = {"action": (torch.rand(b, h, 5, generator=g) * 2 - 1).to(device),
              "action_mask": torch.ones(b, h, dtype=torch.bool).to(device)}
    return x, target


def train_rate(model: VLA, b: int, device: torch.device, steps: int, bf16: bool, compile_: bool) -> dict:
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    x, target = inputs(b, device, model.cfg.action_horizon)
    loss_fn = torch.compile(model.loss) if compile_ else model.loss
    amp = torch.autocast(device.type, torch.bfloat16, enabled=bf16)

    def step():
        with amp:
            loss = loss_fn(**x, **target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    compile_s = time.perf_counter()
    for _ in range(3):
        step()
    _sync(device)
    compile_s = time.perf_counter() - compile_s
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    out = {"samples_per_s": b / seconds, "step_ms": 1e3 * seconds, "batch": b, "warmup_s": compile_s,
           "final_loss": loss.item()}
    if device.type == "cuda":
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:
        out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def step_flops(model: VLA, b: int, device: torch.device) -> float:
    x, target = inputs(b, device, model.cfg.action_horizon)
    with FlopCounterMode(display=False) as counter:
        model.loss(**x, **target).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


@torch.no_grad()
def act_latency(model: VLA, device: torch.device, bf16: bool, n: int = 50) -> dict:
    """model.sample at batch 1, with normalization and the host<->device copies a policy does."""
    model.to(device).eval()
    x, _ = inputs(1, device)
    host = {c: v.cpu().numpy() for c, v in x["images"].items()}
    times = []
    for i in range(n + 5):
        start = time.perf_counter()
        images = {c: torch.from_numpy(v).to(device) for c, v in host.items()}
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            chunk = model.sample(images, model.normalize_state(x["state"]), x["lang"], x["lang_mask"])
        model.denormalize_action(chunk).float().cpu().numpy()
        if i >= 5:
            times.append(time.perf_counter() - start)
    return {"p50_ms": 1e3 * float(np.percentile(times, 50)), "p95_ms": 1e3 * float(np.percentile(times, 95))}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


LEAN = {"mlp_ratio": 2.0, "vision_channels": [8, 16, 32, 64, 128]}  # experiments/speed/tiny_lean.yaml
COMPARE = {  # name: (tiny preset overrides, drop the instruction padding past the batch's longest, threads per core)
    "before (padding kept)": ({}, False, 1),
    "today (padding dropped)": ({}, True, 1),
    "oversubscribed: 2 threads per core": ({}, True, 2),
    "tiny_lean, a study (not adopted)": (LEAN, True, 1),
}


def compare(steps: int) -> dict:
    """Median step time of each COMPARE setting, interleaved step by step, on every core and on one."""
    b = 64
    x, target = inputs(b, torch.device("cpu"))
    lengths = torch.randint(5, 12, (b,), generator=torch.Generator().manual_seed(1))  # the main job's: 5-11
    x["lang_mask"] = torch.arange(16)[None] < lengths[:, None]
    all_cpus, threads = os.sched_getaffinity(0), torch.get_num_threads()
    out = {}
    for cores in sorted({len(all_cpus), 1}, reverse=True):
        _pin(set(sorted(all_cpus)[:cores]))
        runs = {name: _stepper(overrides, trim, x, target) for name, (overrides, trim, _) in COMPARE.items()}
        times = {name: [] for name in runs}
        for i in range(steps + 3):
            for name, step in runs.items():
                torch.set_num_threads(COMPARE[name][2] * min(threads, cores))
                start = time.perf_counter()
                step()
                if i >= 3:  # warm-up
                    times[name].append(time.perf_counter() - start)
        before = np.array(times[next(iter(COMPARE))])
        out[f"{cores} core{'s' if cores > 1 else ''}"] = {
            name: {"step_ms": 1e3 * float(np.median(t)), "samples_per_s": b / float(np.median(t)),
                   "ratio": float(np.median(before / np.array(t)))} for name, t in times.items()}
    _pin(all_cpus)
    torch.set_num_threads(threads)
    return out


def _pin(cpus: set[int]) -> None:
    """Every thread of this process onto `cpus`: sched_setaffinity(0) moves the calling thread alone, and
    OpenMP's worker threads, started earlier, would keep running on the other cores."""
    for task in Path("/proc/self/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def _stepper(overrides: dict, trim: bool, x: dict, target: dict):
    torch.manual_seed(0)
    model = VLA(load_preset("tiny", **overrides), CAMS, (96, 96), 13, 5).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    batch = x | dict(zip(("lang", "lang_mask"), drop_padding(x["lang"], x["lang_mask"]), strict=True)) if trim else x

    def step():
        model.loss(**batch, **target).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def report_compare(results: dict) -> None:
    for cores, rows in results.items():
        t = Table(title=f"the tiny training step, batch 64, {cores} (median of interleaved steps)")
        for col in ("setting", "step", "samples/s", "x before"):
            t.add_column(col, justify="left" if col == "setting" else "right")
        for name, r in rows.items():
            t.add_row(name, f"{r['step_ms']:.0f} ms", f"{r['samples_per_s']:.0f}", f"{r['ratio']:.2f}x")
        Console().print(t)


def main(args: Args) -> None:
    if args.compare:
        results = {"compare": compare(args.compare_steps)}
        report_compare(results["compare"])
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
    results: dict = {"cpu": {}, "gpu": {}, "head": args.head}
    cpu = torch.device("cpu")
    for name in args.presets:
        if args.cpu:
            model = VLA(load_preset(name, head=args.head), CAMS, (96, 96), 13, 5)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            b = args.cpu_batch.get(name, 8)
            r = train_rate(model, b, cpu, max(3, args.steps // (1 if name == "tiny" else 3)), False, False)
            r |= {"params_m": params, "act": act_latency(model, cpu, False, n=20 if name == "base" else 50)}
            results["cpu"][name] = r
        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in torch.cuda.get_device_name()), None)
            model = VLA(load_preset(name, head=args.head), CAMS, (96, 96), 13, 5).to(gpu)
            flops = step_flops(model, args.gpu_batch, gpu)
            for compile_ in (False, True):
                m = VLA(load_preset(name, head=args.head), CAMS, (96, 96), 13, 5)
                r = train_rate(m, args.gpu_batch, gpu, args.steps, True, compile_)
                r["tflops"] = flops / (r["step_ms"] / 1e3) / 1e12
                r["mfu"] = r["tflops"] / peak if peak else None
                r["act"] = act_latency(m, gpu, True)
                results["gpu"][f"{name}, bf16{' + compile' if compile_ else ''}"] = r
                del m
                torch.cuda.empty_cache()
    report(results)
    if torch.cuda.is_available():
        results["gpu_name"] = torch.cuda.get_device_name()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict) -> None:
    t = Table(title=f"CPU ({torch.get_num_threads()} threads), fp32, {results.get('head', '')} head")
    for col in ("preset", "params", "batch", "samples/s", "peak RSS", "act p50", "act p95"):
        t.add_column(col, justify="left" if col == "preset" else "right")
    for name, r in results["cpu"].items():
        t.add_row(name, f"{r['params_m']:.1f}M", str(r["batch"]), f"{r['samples_per_s']:,.0f}",
                  f"{r['peak_rss_gib']:.2f} GiB", f"{r['act']['p50_ms']:.1f} ms", f"{r['act']['p95_ms']:.1f} ms")
    Console().print(t)
    if results["gpu"]:
        t = Table(title=f"GPU: {torch.cuda.get_device_name()}")
        for col in ("setting", "batch", "samples/s", "step", "peak mem", "TFLOP/s", "MFU", "warm-up", "act p50",
                    "act p95"):
            t.add_column(col, justify="left" if col == "setting" else "right")
        for name, r in results["gpu"].items():
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
            t.add_row(name, str(r["batch"]), f"{r['samples_per_s']:,.0f}", f"{r['step_ms']:.1f} ms",
                      f"{r['peak_gpu_gib']:.1f} GiB", f"{r['tflops']:.1f}", mfu, f"{r['warmup_s']:.0f} s",
                      f"{r['act']['p50_ms']:.1f} ms", f"{r['act']['p95_ms']:.1f} ms")
        Console().print(t)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
