"""Rehearse an exported bundle against the simulated robot running as its own process, at a fixed
control rate, over real sockets: the policy runs here (numpy + onnxruntime, no torch), the robot there.

    python scripts/run_robot_loop.py --bundle bundles/tiny --instruction "press the red button" --rate 10
    python scripts/run_robot_loop.py --bundle bundles/tiny --family press_button --episodes 20 --rate 20 \\
        --latency-ms 30 --action-delay-ms 20 --state-noise 0.001 --video loop.mp4 --store loop.zarr
    python scripts/run_robot_loop.py --bundle bundles/tiny --family open_drawer --episodes 30 --rate 20 \\
        --delay-steps 0 1 2 4 8 --timeout-ms 600 --json sweep.json      # the delay sweep, one column per delay
    embodied keys keys/ && python scripts/run_robot_loop.py --bundle bundles/tiny --family reach --keys keys/

Prints, per injected delay: success, planning latency, plan age at use, why ticks were held, the seams
between plans (action jump at plan switches against within plans, end-effector jerk), loop jitter,
deadline misses, watchdog trips and refused messages; then the policy's cold start.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from embodied.errors import UserError, cli
from embodied.runtime.chunks import CATCH_UP_RATE


@dataclass
class Args:
    bundle: Path
    """An exported bundle (scripts/export_policy.py)."""
    instruction: str | None = None
    """A typed instruction (one episode in the full tabletop suite)."""
    family: str | None = None
    """Or: episodes of this task family on a seed block's scenes (as evaluate.py plays them)."""
    block: str = "selection"
    """Seed block: 'selection' (from 1,000,000: choose settings here) or 'report' (from 5,000,000: final tables)."""
    episodes: int = 1
    rate: float = 10.0
    """Control rate (Hz)."""
    latency_ms: float = 0.0
    action_delay_ms: float = 0.0
    state_noise: float = 0.0
    timeout_ms: float = 250.0
    """Watchdog timeout."""
    replan_every: int = 1
    """Plan on every k-th observation (1: on every one; the robot always executes the newest plan). Keep
    k / rate below --timeout-ms, or the watchdog holds between plans."""
    delay_steps: list[int] = field(default_factory=lambda: [0])
    """Inference delay injected on the policy side, in control steps (each plan sent that long after its
    observation arrived); several values: a sweep on the same seeds, one column each."""
    mode: Literal["receding", "ensemble"] = "receding"
    """How the robot turns plans into actions: the newest plan, or temporal ensembling of every live one."""
    keys: Path | None = None
    """A directory from `embodied keys`: CURVE-encrypted sockets, plans accepted only from the policy's key."""
    ramp: int = 8
    """Soft start: after a hold (the episode's start, the watchdog) motion blends in over this many actions
    (1 = off: the arm jumps to the first plan's speed, bounded by the rate limit)."""
    catch_up: bool = True
    catch_up_rate: float = CATCH_UP_RATE
    """Share of what is owed added per action (below 1: spread over several; 1: all at once)."""
    """Receding, ee_delta actions: each action adds the motion its plan had made by now and the arm has not
    (a late plan's skipped head, the soft start's cuts); --no-catch-up: the plan's actions as they are."""
    commit_gripper: bool = True
    """The robot runs a plan that switches the gripper through the switch, dropping plans that arrive
    meanwhile (--no-commit-gripper: the newest plan always wins)."""
    precision: str = "fp32"
    """fp32 or int8 (if the bundle has it)."""
    split: str = "train"
    video: Path | None = None
    store: Path | None = None
    json: Path | None = None


def main(args: Args) -> dict:
    import psutil

    from embodied.envs.simrobot import rehearse
    from embodied.evaluation.rollouts import SEED_BLOCKS, scene_seeds
    from embodied.runtime.bundle import OnnxPolicy

    if (args.instruction is None) == (args.family is None):
        raise UserError("give --instruction TEXT (one episode) or --family NAME (--episodes N on eval seeds)")
    if not args.delay_steps or min(args.delay_steps) < 0:
        raise UserError(f"--delay-steps takes control steps >= 0, got {args.delay_steps}")
    if (max(args.delay_steps) + 2) / args.rate * 1e3 > args.timeout_ms:
        raise UserError(f"a delay of {max(args.delay_steps)} steps at {args.rate:g} Hz leaves no plan younger than "
                        f"--timeout-ms {args.timeout_ms:g}: the watchdog would hold throughout; give --timeout-ms "
                        f">= {(max(args.delay_steps) + 2) / args.rate * 1e3:.0f}")
    if args.block not in SEED_BLOCKS:
        raise UserError(f"--block must be one of {', '.join(SEED_BLOCKS)}; got {args.block!r}")
    policy = OnnxPolicy(args.bundle, precision=args.precision)  # refuses a damaged bundle before anything moves
    ready = time.time() - psutil.Process().create_time()  # process start -> runtime loaded and warmed up
    episodes = 1 if args.instruction else args.episodes
    config = {"rate": args.rate, "family": args.family or "suite",
              "seeds": scene_seeds(SEED_BLOCKS[args.block], args.family or "suite", episodes),
              "instruction": args.instruction, "split": args.split, "cameras": policy.cameras,
              "image_size": list(policy.spec["image_size"]), "latency_ms": args.latency_ms,
              "action_delay_ms": args.action_delay_ms, "state_noise": args.state_noise, "timeout_ms": args.timeout_ms,
              "commit_gripper": args.commit_gripper, "mode": args.mode, "ramp": args.ramp,
              "catch_up": args.catch_up, "catch_up_rate": args.catch_up_rate,
              "keys": str(args.keys) if args.keys else None}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in args.delay_steps:
            record = Path(tmp) / f"episodes_{d}.npz"
            video = args.video if len(args.delay_steps) == 1 or not args.video else \
                args.video.with_stem(f"{args.video.stem}_delay{d}")  # a video per delay: none overwritten
            result, stats = rehearse(policy, config | {"record": str(record) if args.store else None,
                                                       "video": str(video) if video else None},
                                     args.replan_every, episodes, delay=d / args.rate)
            runs.append({"delay_steps": d, "robot": result, "policy": stats})
            if args.store and record.exists():
                store_loop_episodes(args.store, record, config)
    cold = {"ready_s": ready, "warmup_s": policy.ready_s, "first_plan_ms": runs[0]["policy"]["first_plan_ms"]}
    summarize(runs, cold, args)
    out = {"runs": runs, "cold_start": cold, "block": args.block, "bundle": str(args.bundle)}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


def store_loop_episodes(store: Path, record: Path, config: dict) -> None:
    """The robot's recorded episodes into a store with the env's specs (created if missing)."""
    import gymnasium as gym

    import embodied.envs as envs
    from embodied.data.collect import store_recorded

    env = gym.make(envs.ENV_IDS[config["family"]], cameras=tuple(config["cameras"]),
                   image_size=tuple(config["image_size"]), split=config["split"], ctrl_dt=round(1 / config["rate"], 6))
    store_recorded(store, record, env)
    env.close()


def summarize(runs: list[dict], cold: dict, args: Args) -> None:
    """One column per injected delay; a row per figure (means over episodes where a figure is per episode)."""
    from rich.console import Console
    from rich.table import Table

    from embodied.evaluation.rollouts import rate, wilson

    def mean(eps, key, sub=None):
        values = [e[key] if sub is None else e[key][sub] for e in eps]
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else float("nan")

    def join(values, fmt: str, unit: str = "") -> str:
        return " / ".join(format(v, fmt) for v in values) + unit

    def figures(run: dict) -> dict[str, str]:
        eps, stats, robot = run["robot"]["episodes"], run["policy"], run["robot"]
        wins = sum(e["success"] for e in eps)
        three = ("p50", "p95", "max")
        return {
            "success": rate({"success": wins / len(eps), "ci95": wilson(wins, len(eps))}) + f" of {len(eps)}",
            "inference p50 / p95 / max": join((stats["latency_ms"][p] for p in three), ".1f", " ms"),
            "observation in -> plan out p50 / p95": join((stats["turnaround_ms"][p] for p in three[:2]), ".1f", " ms"),
            "plan age at use p50 / p95 / max": join((mean(eps, "plan_age_ms", p) for p in three), ".0f", " ms"),
            "held: no plan yet / ran out / policy silent": join((sum(e["held"][w] for e in eps)
                                                                 for w in eps[0]["held"]), "d"),
            "ticks from a plan past the timeout": str(sum(e["stale_ticks"] for e in eps)),
            "seam jump / within-plan jump (ratio)": join((mean(eps, "seam_jump"), mean(eps, "within_plan_jump")), ".3f",
                                                         f" ({mean(eps, 'seam_ratio'):.2f}x)"),
            "first plan's jump from the hold, planned / sent": join((mean(eps, "first_plan_jump"),
                                                                     mean(eps, "first_sent_jump")), ".3f"),
            "end-effector jerk p50 / p95": join((mean(eps, "jerk", p) for p in three[:2]), ".1f", " m/s^3"),
            "loop jitter p50 / p99 / max": join((mean(eps, f"jitter_ms_{p}") for p in ("p50", "p99", "max")), ".2f",
                                                " ms"),
            "ticks / deadline misses / watchdog trips": join((sum(e[k] for e in eps) for k in
                                                              ("ticks", "deadline_misses", "watchdog_trips")), "d"),
            "safety: clamped / rate-limited / ramped / workspace / non-finite":
                join((sum(e["safety"].get(k, 0) for e in eps)
                      for k in ("clamped", "rate_limited", "ramped", "workspace", "non_finite")), "d"),
            "refused messages / keys / stale plans": join((robot["bad_messages"], robot["refused_keys"],
                                                           sum(e["stale_plans_dropped"] for e in eps)), "d"),
        }

    table = Table(title=f"{args.bundle} through the simulated-hardware loop at {args.rate:g} Hz, {args.mode}, "
                        f"{args.block} block"
                        f"{', CURVE' if args.keys else ''}")
    table.add_column("figure")
    columns = [figures(run) for run in runs]
    for run in runs:
        table.add_column(f"delay {run['delay_steps']} ({1e3 * run['delay_steps'] / args.rate:.0f} ms)", justify="right")
    for name in columns[0]:
        table.add_row(name, *(c[name] for c in columns))
    console = Console()
    console.print(table)
    console.print(f"cold start: process start -> policy ready {cold['ready_s']:.2f} s (warm-up included; load + "
                  f"warm-up {cold['warmup_s']:.2f} s), first plan {cold['first_plan_ms']:.1f} ms after the first "
                  "observation")


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
