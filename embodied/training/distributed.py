"""Process-group setup: DDP under torchrun (NCCL on GPUs, gloo on CPU), or a single process."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Dist:
    """Reads torchrun's RANK/WORLD_SIZE/LOCAL_RANK; a plain `python` run is rank 0 of 1."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        fit_threads(int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    if device == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


CGROUP_QUOTAS = (("/sys/fs/cgroup/cpu.max", None),  # cgroup v2: "<quota> <period>" or "max <period>"
                 ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"))  # v1; -1: none


def usable_cpus(quotas=CGROUP_QUOTAS) -> int:
    """The cores this process may run on: its affinity mask, capped by a cgroup CPU quota. A container held to
    2 CPUs on a 64-core host sees 64 cores; torch would start 64 threads to fight over 2."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for first, second in quotas:
        try:
            text = Path(first).read_text().split()
            quota, period = (text[0], text[1]) if second is None else (text[0], Path(second).read_text().strip())
            if quota not in ("max", "-1"):
                return max(1, min(cores, math.ceil(int(quota) / int(period))))
        except (OSError, ValueError, IndexError):
            continue
    return cores


def fit_threads(processes: int = 1) -> int:
    """Intra-op threads: at most this process's share of the usable cores, so OpenMP threads never outnumber
    them (an oversubscribed step is several times slower: scripts/bench_train.py --compare). OMP_NUM_THREADS,
    when set, wins. Returns the thread count."""
    if "OMP_NUM_THREADS" not in os.environ:
        share = max(1, usable_cpus() // max(1, processes))
        if torch.get_num_threads() > share:
            torch.set_num_threads(share)
    return torch.get_num_threads()


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_across(value: float, d: Dist) -> float:
    if d.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return float(t.item()) / d.world
