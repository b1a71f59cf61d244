"""Intra-op threads fit the cores a process may use, cgroup CPU quotas included."""

import torch

import embodied.threads
from embodied.threads import fit_threads, usable_cpus


def quota_files(tmp_path, v2=None, v1=None):
    """CGROUP_QUOTAS-shaped paths to files holding a v2 cpu.max line and/or v1 (quota, period)."""
    paths = []
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
        paths.append((str(tmp_path / "cpu.max"), None))
    if v1 is not None:
        (tmp_path / "quota").write_text(f"{v1[0]}\n")
        (tmp_path / "period").write_text(f"{v1[1]}\n")
        paths.append((str(tmp_path / "quota"), str(tmp_path / "period")))
    return paths


def test_a_cgroup_quota_caps_the_cores_and_no_quota_leaves_the_affinity_mask(tmp_path):
    cores = usable_cpus(quotas=())  # the affinity mask alone
    assert cores >= 1
    assert usable_cpus(quota_files(tmp_path, v2="100000 100000")) == 1  # one CPU's worth
    assert usable_cpus(quota_files(tmp_path, v2="50000 100000")) == 1  # half a CPU still runs one thread
    assert usable_cpus(quota_files(tmp_path, v2="150000 100000")) == min(cores, 2)  # rounds up, never past the mask
    assert usable_cpus(quota_files(tmp_path, v2=f"{100000 * (cores + 8)} 100000")) == cores
    assert usable_cpus(quota_files(tmp_path, v2="max 100000")) == cores
    assert usable_cpus(quota_files(tmp_path, v1=(-1, 100000))) == cores
    assert usable_cpus(quota_files(tmp_path, v1=(100000, 100000))) == 1
    assert usable_cpus(quota_files(tmp_path, v2="garbage")) == cores  # unreadable: no cap
    assert usable_cpus([(str(tmp_path / "absent"), None)]) == cores


def test_threads_fit_the_quota_unless_omp_num_threads_says_otherwise(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        monkeypatch.setattr(embodied.threads, "usable_cpus", lambda: 2)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert fit_threads() == 3  # the user's setting wins
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert fit_threads() == 2  # capped at the quota
        assert fit_threads(processes=2) == 1  # two processes on two cores: one thread each
        torch.set_num_threads(1)
        assert fit_threads() == 1  # never raised
    finally:
        torch.set_num_threads(before)
