"""ChunkExecutor semantics: receding horizon and temporal ensembling."""

import numpy as np
import pytest

from embodied.runtime import ChunkExecutor


def run(executor, steps, make_chunk):
    out, plans = [], []
    for t in range(steps):
        if executor.needs_plan():
            plans.append(t)
            executor.add(make_chunk(t))
        out.append(executor.next()[0])
    return out, plans


def test_receding_horizon_replans_every_k_steps():
    # chunk planned at step t holds t*100 + (0, 1, 2, 3): the executed action tells who planned it
    out, plans = run(ChunkExecutor("receding", replan_every=3), 8, lambda t: (t * 100 + np.arange(4))[:, None])
    assert plans == [0, 3, 6]
    assert out == [0, 1, 2, 300, 301, 302, 600, 601]


def test_receding_horizon_never_runs_past_a_short_chunk():
    _, plans = run(ChunkExecutor("receding", replan_every=8), 6, lambda t: np.zeros((2, 1)))
    assert plans == [0, 2, 4]


def test_temporal_ensembling_weights_older_chunks_more():
    decay = 0.5
    ex = ChunkExecutor("ensemble", decay=decay)
    out, plans = run(ex, 3, lambda t: np.full((4, 1), float(t)))
    assert plans == [0, 1, 2]
    w = np.exp(-decay * np.arange(3))
    assert out[0] == 0.0
    assert out[1] == pytest.approx((w[0] * 0 + w[1] * 1) / w[:2].sum())
    assert out[2] == pytest.approx((w[0] * 0 + w[1] * 1 + w[2] * 2) / w.sum())


def test_ensemble_drops_expired_chunks():
    ex = ChunkExecutor("ensemble", decay=0.0)
    ex.add(np.full((1, 1), 5.0))
    assert ex.next()[0] == 5.0
    ex.add(np.full((2, 1), 1.0))
    assert ex.next()[0] == 1.0  # the first chunk covered only its own step


def test_errors():
    with pytest.raises(ValueError, match="mode"):
        ChunkExecutor("average")
    ex = ChunkExecutor()
    with pytest.raises(RuntimeError, match="no plan"):
        ex.next()
    with pytest.raises(ValueError, match=r"\(H, A\)"):
        ex.add(np.zeros(3))
