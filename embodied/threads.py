"""How many threads a process may run: one per usable core, never more (torch imported only when asked)."""

from __future__ import annotations

import math
import os
from pathlib import Path

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
    """torch's intra-op threads: at most this process's share of the usable cores, so OpenMP threads never
    outnumber them (2 threads on 1 core made the tiny step 16x slower: scripts/bench_train.py --compare).
    OMP_NUM_THREADS, when set, wins. Returns the thread count."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        share = max(1, usable_cpus() // max(1, processes))
        if torch.get_num_threads() > share:
            torch.set_num_threads(share)
    return torch.get_num_threads()
