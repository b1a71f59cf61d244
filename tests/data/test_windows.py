"""Training windows: history and chunk padding at both episode edges, episode splits, DataLoader."""

import numpy as np
import pytest
import torch

from embodied.data import Episode
from embodied.data.windows import WindowDataset, split_episodes
from tests.data.conftest import CAMERAS, SIZE, make_episode, new_store


@pytest.fixture
def counting_store(tmp_path):
    """Two episodes (6 and 4 frames) whose state/action/pixels encode (episode, frame)."""
    store = new_store(tmp_path / "w.zarr")
    for e, t in enumerate((6, 4)):
        f = np.arange(t, dtype=np.float32)
        code = 10 * e + f
        store.append(Episode(
            images={c: np.broadcast_to(code.astype(np.uint8)[:, None, None, None], (t, *SIZE, 3)).copy()
                    for c in CAMERAS},
            state=np.repeat(code[:, None], 4, axis=1), action=np.repeat(code[:, None], 3, axis=1),
            instruction=f"episode {e}", family="pick"))
    return store


def test_padding_at_episode_start_and_end(counting_store):
    ds = WindowDataset(counting_store.path, obs_horizon=3, action_horizon=4)
    assert len(ds) == 10
    first = ds[0]  # episode 0, frame 0: history repeats frame 0
    np.testing.assert_array_equal(first["state"][:, 0], [0, 0, 0])
    np.testing.assert_array_equal(first["images"]["front"][:, 0, 0, 0], [0, 0, 0])
    np.testing.assert_array_equal(first["action"][:, 0], [0, 1, 2, 3])
    assert first["action_mask"].all()
    last = ds[5]  # episode 0, frame 5 (its last): chunk repeats the last action, masked
    np.testing.assert_array_equal(last["state"][:, 0], [3, 4, 5])
    np.testing.assert_array_equal(last["action"][:, 0], [5, 5, 5, 5])
    np.testing.assert_array_equal(last["action_mask"].all(1), [True, False, False, False])
    assert last["action_mask"].shape == last["action"].shape
    second = ds[6]  # episode 1, frame 0: never reaches back into episode 0
    np.testing.assert_array_equal(second["state"][:, 0], [10, 10, 10])
    np.testing.assert_array_equal(second["images"]["wrist"][:, 0, 0, 0], [10, 10, 10])
    assert (second["instruction"], second["episode"], second["frame"]) == ("episode 1", 1, 0)
    end = ds[9]
    np.testing.assert_array_equal(end["action"][:, 0], [13, 13, 13, 13])
    np.testing.assert_array_equal(end["action_mask"].any(1), [True, False, False, False])


def test_episode_split_is_seeded_and_disjoint():
    train, val = split_episodes(50, val_fraction=0.2, seed=3)
    assert len(val) == 10 and len(train) == 40 and not set(train) & set(val)
    assert set(train) | set(val) == set(range(50))
    np.testing.assert_array_equal(split_episodes(50, 0.2, seed=3)[1], val)
    assert not np.array_equal(split_episodes(50, 0.2, seed=4)[1], val)
    assert len(split_episodes(3, 0.01)[1]) == 1  # at least one validation episode


def test_episodes_subset_and_episodes_without_actions(tmp_path):
    store = new_store(tmp_path / "s.zarr")
    for i in range(3):
        store.append(make_episode(i, length=5, actions=i != 1))
    ds = WindowDataset(store.path, episodes=np.array([0, 1]))
    assert len(ds) == 5 and set(ds._episode) == {0}  # episode 1 has no actions
    assert len(WindowDataset(store.path, require_actions=False)) == 15


def test_dataloader_with_workers(counting_store):
    ds = WindowDataset(counting_store.path, obs_horizon=2, action_horizon=3)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=2)
    batches = list(loader)
    assert sum(len(b["action"]) for b in batches) == 10
    b = batches[0]
    assert b["images"]["front"].shape == (4, 2, *SIZE, 3) and b["images"]["front"].dtype == torch.uint8
    assert b["action"].shape == (4, 3, 3) and b["action_mask"].dtype == torch.bool
    assert len(b["instruction"]) == 4


@pytest.mark.parametrize("cache_mb", [0, 1])
def test_a_batch_read_at_once_equals_items_read_one_by_one(counting_store, cache_mb):
    """__getitems__ (what a DataLoader calls) reads each camera's frames once; the frame cache, full or
    not, changes no value. 1 MB holds all 10 frames a camera of 16x20x3."""
    ds = WindowDataset(counting_store.path, obs_horizon=2, action_horizon=3, frame_cache_mb=cache_mb)
    plain = WindowDataset(counting_store.path, obs_horizon=2, action_horizon=3)
    order = [9, 0, 5, 6, 0, 3]
    for _ in range(2):  # the second pass reads from the cache where there is one
        for got, i in zip(ds.__getitems__(order), order, strict=True):
            want = plain[i]
            for c in CAMERAS:
                np.testing.assert_array_equal(got["images"][c], want["images"][c])
            np.testing.assert_array_equal(got["action"], want["action"])
            assert (got["episode"], got["frame"]) == (want["episode"], want["frame"])
    # a read keeps its whole chunk: the store's 10 frames a camera are one chunk (8 were asked)
    assert sum(len(v) for v in ds._cache.values()) == (2 * 10 if cache_mb else 0)


def test_frame_cache_stops_at_its_budget(counting_store):
    ds = WindowDataset(counting_store.path, obs_horizon=1, action_horizon=2)
    frame = 16 * 20 * 3
    ds._cache_left = 3 * frame  # room for three frames in all
    ds.__getitems__(list(range(10)))
    assert sum(len(v) for v in ds._cache.values()) == 3 and ds._cache_left == 0
    np.testing.assert_array_equal(ds[8]["images"]["front"][0, 0, 0], [12, 12, 12])  # read, not cached


def test_bad_arguments(counting_store):
    with pytest.raises(ValueError, match="cameras"):
        WindowDataset(counting_store.path, cameras=["top"])
    with pytest.raises(ValueError, match="horizons"):
        WindowDataset(counting_store.path, action_horizon=0)


def test_keep_gripper_trains_the_last_gripper_command_past_a_successful_end(counting_store):
    """Only the gripper column is unmasked past the end, holding the last command; motions stay masked and
    a failed episode keeps everything masked."""
    counting_store.append(Episode(images={c: np.zeros((3, *SIZE, 3), np.uint8) for c in CAMERAS},
                                  state=np.zeros((3, 4), np.float32), action=np.full((3, 3), 20, np.float32),
                                  instruction="failed", family="pick", success=False))
    counting_store.set_attrs(action_spec={"kind": "ee_delta", "names": ["dx", "gripper", "dy"]})
    ds = WindowDataset(counting_store.path, obs_horizon=1, action_horizon=4)  # keep_gripper is the default
    last = ds[5]  # episode 0 (successful), frame 5, its last
    np.testing.assert_array_equal(last["action_mask"], [[True] * 3] + [[False, True, False]] * 3)
    np.testing.assert_array_equal(last["action"][:, 1], [5, 5, 5, 5])
    assert ds[0]["action_mask"].all()
    np.testing.assert_array_equal(ds[12]["action_mask"].any(1), [True, False, False, False])  # failed
    off = WindowDataset(counting_store.path, obs_horizon=1, action_horizon=4, keep_gripper=False)
    np.testing.assert_array_equal(off[5]["action_mask"].any(1), [True, False, False, False])  # all masked


def test_focus_pixels_project_the_named_thing_and_say_nan_when_unknown():
    from embodied.data.windows import focus_pixels

    names = ["q", "ee_x", "ee_y", "ee_z", "ee_qw", "ee_qx", "ee_qy", "ee_qz"]
    # front (static): u = 48 + 100 x, v = 48 - 100 y; wrist (on the hand): u = 48 + 100 x_ee, v = 48 + 100 y_ee
    attrs = {"image_size": [96, 96], "state_spec": {"names": names},
             "camera_projections": {"world": {"front": [[100, 0, 0, 48], [0, -100, 0, 48], [0, 0, 0, 1]]},
                                    "ee": {"wrist": [[100, 0, 0, 48], [0, 100, 0, 48], [0, 0, 0, 1]]}}}
    quarter = [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]  # the hand turned 90 degrees about z
    states = np.array([[0, 0.0, 0, 0, *quarter], [0, 0.1, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0],
                       [0, 0, 0, 0, 1, 0, 0, 0]], np.float32)
    focus = np.array([[0.1, 0.2, 0], [0.1, 0, 0], [0.6, 0, 0], [np.nan] * 3], np.float32)
    px = focus_pixels(attrs, states, focus, ["front", "wrist", "side"])
    np.testing.assert_allclose(px["front"][0], [2 * 58 / 96 - 1, 2 * 28 / 96 - 1], atol=1e-6)  # gripper + focus
    np.testing.assert_allclose(px["front"][1], [2 * 68 / 96 - 1, 0], atol=1e-6)
    # in the turned hand's frame the focus (0.1, 0.2) is (0.2, -0.1): u = 68, v = 38
    np.testing.assert_allclose(px["wrist"][0], [2 * 68 / 96 - 1, 2 * 38 / 96 - 1], atol=1e-5)
    np.testing.assert_allclose(px["wrist"][1], [2 * 58 / 96 - 1, 0], atol=1e-6)
    assert np.isnan(px["front"][2:]).all() and np.isnan(px["wrist"][2:]).all()  # out of frame; unknown
    assert np.isnan(px["side"]).all()  # no projection
    no_pose = focus_pixels(attrs | {"state_spec": {"names": ["q"] * 8}}, states, focus, ["front"])
    assert np.isnan(no_pose["front"]).all()


def test_release_ahead_and_near_start_mark_their_frames(tmp_path):
    """release_ahead: one of the frame's next `window` actions opens the gripper after a closed one (not
    the close), looked for within the frame's own episode only."""
    store = new_store(tmp_path / "g.zarr")
    for grip in ([-1, -1, -1, 1, 1, 1, -1, -1], [1, 1, -1, -1], [-1, 1, 1, 1]):  # > 0 closes
        t = len(grip)
        action = np.zeros((t, 3), np.float32)
        action[:, 1] = grip
        store.append(Episode(images={c: np.zeros((t, *SIZE, 3), np.uint8) for c in CAMERAS},
                             state=np.zeros((t, 4), np.float32), action=action, instruction="x", family="place"))
    store.set_attrs(action_spec={"kind": "ee_delta", "names": ["dx", "gripper", "dy"]})
    ds = WindowDataset(store.path, obs_horizon=1, action_horizon=4)
    np.testing.assert_array_equal(ds.release_ahead(2), [0, 0, 0, 0, 0, 1, 1, 0] + [0, 1, 1, 0] + [0] * 4)
    np.testing.assert_array_equal(ds.release_ahead(1), [0, 0, 0, 0, 0, 0, 1, 0] + [0, 0, 1, 0] + [0] * 4)
    store.set_attrs(action_spec={"kind": "ee_delta", "names": ["dx", "dz", "dy"]})
    assert not WindowDataset(store.path, obs_horizon=1, action_horizon=4).release_ahead(2).any()
    # near_start: each episode's first frames, in the episodes the dataset was given
    np.testing.assert_array_equal(ds.near_start(3), [1, 1, 1, 0, 0, 0, 0, 0] + [1, 1, 1, 0] + [1, 1, 1, 0])
    later = WindowDataset(store.path, obs_horizon=1, action_horizon=4, episodes=np.array([2, 1]))
    np.testing.assert_array_equal(later.near_start(2), [1, 1, 0, 0] * 2)
