"""Threads per test process: pytest-xdist runs one worker per core, so each worker (and every process a test
starts, which inherits OMP_NUM_THREADS) gets its share of the usable cores. Without it, two workers of two
threads each, plus the subprocesses their tests start, oversubscribe a 2-core machine: OpenMP threads spin
waiting for one another and the suite took 275 s instead of 208 s (experiments/speed/README.md)."""

import os

workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
    from embodied.threads import fit_threads

    os.environ["OMP_NUM_THREADS"] = str(fit_threads(processes=workers))  # the same share for what tests start
