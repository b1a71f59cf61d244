"""The zarr episode store: round trips, validation, bad appends, statistics."""

import json

import numpy as np
import pytest
import zarr

from embodied.data import FORMAT_VERSION, EpisodeStore, StoreError
from tests.data.conftest import make_episode, new_store


def assert_same(a, b):
    for cam in a.images:
        np.testing.assert_array_equal(a.images[cam], b.images[cam])
    for name in ("state", "action"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert (a.instruction, a.family, a.success, a.seed) == (b.instruction, b.family, b.success, b.seed)


def test_round_trip_is_bit_exact(store):
    store.append(make_episode(9, actions=False, states=False))
    reopened = EpisodeStore.open(store.path)
    assert reopened.num_episodes == 5
    for i, source in enumerate([0, 1, 2, 3, 9]):
        assert_same(reopened.episode(i), make_episode(source, actions=source != 9, states=source != 9))
    assert list(reopened.meta("has_actions")) == [True] * 4 + [False]
    assert reopened.episode_ends[-1] == reopened.num_frames == sum(len(make_episode(i)) for i in range(4)) + len(
        make_episode(9))


def test_frames_in_any_order_with_repeats_match_zarr(store):
    index = np.array([7, 0, 3, 4, 3, store.num_frames - 1])
    plain = zarr.open_array(store.path / "data/images/front", mode="r")[:][index]
    np.testing.assert_array_equal(store.frames("front", index), plain)
    with pytest.raises(IndexError, match="the store has"):
        store.frames("front", [store.num_frames])


def test_frames_span_shards_and_the_store_has_a_file_per_shard(tmp_path, monkeypatch):
    monkeypatch.setattr("embodied.data.store.FRAMES_PER_SHARD", 8)
    monkeypatch.setattr("embodied.data.store.FRAMES_PER_CHUNK", 2)  # appends end inside chunks too
    s = new_store(tmp_path / "s.zarr")
    eps = [make_episode(i) for i in range(5)]
    for first in (0, 2):  # two appends: the second rewrites the partly filled shard
        s.append_many(eps[first:first + 2 + first // 2])
    frames = np.concatenate([ep.images["wrist"] for ep in eps])
    np.testing.assert_array_equal(EpisodeStore.open(s.path).frames("wrist", np.arange(len(frames))), frames)
    files = sorted((s.path / "data/images/wrist").rglob("c/*/0/0/0"))
    assert len(files) == -(-len(frames) // 8)


def test_reopen_and_append(store):
    s = EpisodeStore.open(store.path, mode="a")
    s.append(make_episode(10))
    assert EpisodeStore.open(store.path).num_episodes == 5


def test_batched_append_is_one_commit_and_reads_back_the_same(store):
    s = EpisodeStore.open(store.path, mode="a")
    assert s.append_many([make_episode(11), make_episode(12, actions=False), make_episode(13)]) == [4, 5, 6]
    reopened = EpisodeStore.open(store.path)
    assert reopened.num_episodes == 7
    for i, source in zip([3, 4, 5, 6], [3, 11, 12, 13], strict=True):
        assert_same(reopened.episode(i), make_episode(source, actions=source != 12))
    bad = make_episode(14)
    bad.action[0, 0] = np.inf
    with pytest.raises(StoreError, match="action contains NaN or inf"):  # one bad episode: none is written
        s.append_many([make_episode(15), bad])
    assert EpisodeStore.open(store.path).num_frames == reopened.num_frames


@pytest.mark.parametrize("mutate, match", [
    (lambda ep: ep.images.pop("wrist"), "cameras"),
    (lambda ep: ep.images.__setitem__("front", ep.images["front"][:, :8]), "expected uint8"),
    (lambda ep: ep.action.__setitem__((1, 1), np.nan), "action contains NaN"),
    (lambda ep: setattr(ep, "action", ep.action[:, :2]), r"action has shape .*expected"),
    (lambda ep: setattr(ep, "state", ep.state[:-1]), r"state has shape .*expected"),
])
def test_bad_episode_is_refused_and_store_unchanged(store, mutate, match):
    before = (store.num_episodes, store.num_frames)
    ep = make_episode(20)
    mutate(ep)
    with pytest.raises(StoreError, match=match):
        store.append(ep)
    reopened = EpisodeStore.open(store.path)
    assert (reopened.num_episodes, reopened.num_frames) == before
    assert_same(reopened.episode(3), make_episode(3))


def test_read_only_store_refuses_appends(store):
    with pytest.raises(StoreError, match="read-only"):
        EpisodeStore.open(store.path).append(make_episode(5))


def _edit_attrs(path, **changes):
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"].update(changes)
    (path / "zarr.json").write_text(json.dumps(meta))


def test_newer_format_version_is_refused(store):
    _edit_attrs(store.path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(StoreError, match="newer than this embodied"):
        EpisodeStore.open(store.path)


def test_missing_array_is_reported(store):
    import shutil

    shutil.rmtree(store.path / "meta" / "instruction")
    with pytest.raises(StoreError, match=r"missing \['meta/instruction'\]"):
        EpisodeStore.open(store.path)


def test_corrupted_episode_ends_are_reported(store):
    zarr.open_array(store.path / "meta/episode_ends", mode="r+")[2] = 1
    with pytest.raises(StoreError, match="not strictly increasing"):
        EpisodeStore.open(store.path)


def test_commit_count_beyond_data_is_reported(store):
    _edit_attrs(store.path, num_episodes=9)
    with pytest.raises(StoreError, match="9 episodes are committed"):
        EpisodeStore.open(store.path)


def test_non_finite_recorded_actions_are_reported(store):
    zarr.open_array(store.path / "data/action", mode="r+")[3, 0] = np.inf
    with pytest.raises(StoreError, match="action rows of recorded episodes are NaN or inf"):
        EpisodeStore.open(store.path)


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not an episode store"):
        EpisodeStore.open(tmp_path)
    with pytest.raises(StoreError, match="already exists"):
        new_store(tmp_path)


def test_stats_match_numpy_and_are_saved(store):
    stats = store.stats()
    actions = np.concatenate([make_episode(i).action for i in range(4)])
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["action"]["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-5)
    assert EpisodeStore.open(store.path).attrs["stats"]["num_episodes"] == 4  # saved with the store
    store.append(make_episode(4, actions=False))  # no actions: stats of actions unchanged
    again = store.stats()
    assert again["num_episodes"] == 5
    np.testing.assert_allclose(again["action"]["mean"], actions.mean(0), rtol=1e-5)
