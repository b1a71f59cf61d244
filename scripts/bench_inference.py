"""Inference speed and footprint: batch-1 latency of torch eager vs ONNX fp32 vs ONNX int8 (tiny, small),
the runtime's resident memory without torch, bundle sizes, and the simulated-hardware loop at 10 and
20 Hz (deadline misses over N ticks) for tiny.

    python scripts/bench_inference.py                         # tiny from the main job's run, small random
    python scripts/bench_inference.py --loop-ticks 0 --json bench_inference.json
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from embodied.errors import cli
from embodied.paths import repo_root


@dataclass
class Args:
    presets: tuple[str, ...] = ("tiny", "small")
    run: Path = Path("policies/runs/tiny_pretrain_small")
    """Trained weights for tiny (random weights if absent; latency does not depend on them)."""
    repeats: int = 200
    """Timed calls per measurement (after 20 warm-up calls)."""
    threads: int = 2
    """Threads for torch and onnxruntime alike."""
    loop_ticks: int = 1000
    """Ticks of the hardware loop per rate for tiny (0 = skip)."""
    rates: tuple[float, ...] = (10.0, 20.0)
    json: Path | None = None


def policy_for(preset: str, args: Args):
    import torch

    from embodied.policies.checkpoint import resolve_checkpoint
    from embodied.policies.config import load_preset
    from embodied.policies.model import VLA
    from embodied.policies.policy import VLAPolicy

    run = args.run if args.run.is_absolute() else repo_root() / args.run
    if preset == "tiny" and run.exists():
        return VLAPolicy.load(resolve_checkpoint(run)), "trained"
    torch.manual_seed(0)
    cfg = load_preset(preset)
    model = VLA(cfg, ["front", "wrist"], (96, 96), 13, 5)
    stats = {"state": {"mean": [0.0] * 13, "std": [1.0] * 13}, "action": {"min": [-1.0] * 5, "max": [1.0] * 5}}
    model.set_stats(stats)
    spec = {"format": 1, "config": vars(cfg).copy(), "cameras": ["front", "wrist"], "image_size": [96, 96],
            "state_spec": {}, "action_spec": {}, "state_dim": 13, "action_dim": 5, "chunk_size": cfg.action_horizon,
            "obs_horizon": cfg.obs_horizon, "control_rate": 20.0, "stats": stats}
    return VLAPolicy(model, spec), "random"


def observation(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"images": {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in ("front", "wrist")},
            "state": rng.normal(size=13).astype(np.float32), "instruction": "pick up the red cube"}


def latency(act, obs, repeats: int) -> dict:
    for _ in range(20):
        act(obs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        act(obs)
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))}


RSS = """
import resource, sys, numpy as np
from embodied.runtime.bundle import OnnxPolicy
p = OnnxPolicy(sys.argv[1], threads=int(sys.argv[2]))
rng = np.random.default_rng(0)
obs = {"images": {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in p.cameras},
       "state": np.zeros(13, np.float32), "instruction": "pick up the red cube"}
for _ in range(20):
    p.act(obs)
steady = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
print(steady, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch" in sys.modules)
"""


def main(args: Args) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from embodied.export.bundle import export_bundle
    from embodied.runtime.bundle import OnnxPolicy

    torch.set_num_threads(args.threads)
    obs, rows, out = observation(), [], Path(tempfile.mkdtemp(prefix="bench_inference_"))
    for preset in args.presets:
        policy, weights = policy_for(preset, args)
        eager = latency(lambda o: (policy.reset(), policy.act(o)), obs, args.repeats)  # noqa: B023
        bundle = out / preset
        spec = export_bundle(policy, bundle, int8=True)
        row = {"preset": preset, "weights": weights, "torch_eager": eager}
        for precision in ("fp32", "int8"):
            runtime = OnnxPolicy(bundle, precision=precision, threads=args.threads)
            runtime.act(obs)  # the instruction's encoding is cached, as in an episode
            row[f"onnx_{precision}"] = latency(lambda o: (runtime.reset(), runtime.act(o)), obs,  # noqa: B023
                                               args.repeats)
        row["speedup_fp32"] = eager["p50"] / row["onnx_fp32"]["p50"]
        row["sizes_mb"] = {k: v / 1e6 for k, v in spec["sizes"].items()}
        row["parity_int8"] = spec["parity"]["policy_int8"]["max_abs_diff"]
        rss = subprocess.run([sys.executable, "-c", RSS, str(bundle), str(args.threads)], capture_output=True,
                             text=True, check=True).stdout.split()
        row["runtime_rss_mb"], row["runtime_peak_rss_mb"] = float(rss[0]), float(rss[1])
        row["runtime_imported_torch"] = rss[2] == "True"
        rows.append(row)
    loop = [bench_loop(out / "tiny", rate, args.loop_ticks) for rate in args.rates] \
        if args.loop_ticks and "tiny" in args.presets else []
    shutil.rmtree(out)  # the bundles (the encoder alone is 91 MB each)

    console = Console()
    table = Table(title=f"batch-1 act() latency, ms p50 / p95 ({args.threads} threads; instruction cached)")
    for col in ("preset", "torch eager", "ONNX fp32", "ONNX int8", "fp32 speed-up", "int8 max |diff|",
                "policy.onnx / int8 / encoder", "runtime RSS (peak)"):
        table.add_column(col, justify="left" if col == "preset" else "right")
    for r in rows:
        lat = [f"{r[k]['p50']:.2f} / {r[k]['p95']:.2f}" for k in ("torch_eager", "onnx_fp32", "onnx_int8")]
        sizes = r["sizes_mb"]
        table.add_row(f"{r['preset']} ({r['weights']})", *lat, f"{r['speedup_fp32']:.1f}x", f"{r['parity_int8']:.3f}",
                      f"{sizes['policy.onnx']:.1f} / {sizes['policy_int8.onnx']:.1f} / {sizes['encoder.onnx']:.0f} MB",
                      f"{r['runtime_rss_mb']:.0f} ({r['runtime_peak_rss_mb']:.0f}) MB"
                      f"{' torch!' if r['runtime_imported_torch'] else ''}")
    console.print(table)
    if loop:
        table = Table(title="simulated-hardware loop, tiny bundle, policy and robot in separate processes")
        for col in ("rate", "ticks", "deadline misses", "jitter p50 / p99 / max", "inference p50 / p95 / p99",
                    "held ticks"):
            table.add_column(col, justify="right")
        for r in loop:
            table.add_row(f"{r['rate']:g} Hz", str(r["ticks"]), str(r["deadline_misses"]),
                          f"{r['jitter_ms_p50']:.2f} / {r['jitter_ms_p99']:.2f} / {r['jitter_ms_max']:.2f} ms",
                          " / ".join(f"{r['latency_ms'][p]:.1f}" for p in ("p50", "p95", "p99")) + " ms",
                          str(r["held_ticks"]))
        console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"latency": rows, "loop": loop}, indent=2))


def bench_loop(bundle: Path, rate: float, ticks: int) -> dict:
    """One long episode (success does not end it), the policy re-planning on every observation."""
    from embodied.envs.simrobot import rehearse
    from embodied.runtime.bundle import OnnxPolicy

    config = {"rate": rate, "family": "pick", "max_ticks": ticks, "stop_on_success": False}
    robot, policy = rehearse(OnnxPolicy(bundle, threads=1), config)
    episode = robot["episodes"][0]
    return {"rate": rate, **{k: v for k, v in episode.items() if k != "log"}, "latency_ms": policy["latency_ms"]}


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
