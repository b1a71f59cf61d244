"""Video import and export: round trip on a tiny generated video, and clear errors that leave the
store unchanged."""

import numpy as np
import pytest

from embodied.data import EpisodeStore, StoreError
from embodied.data.video_io import export_episode, import_episode
from embodied.media import read_video, write_mp4
from tests.data.conftest import SIZE, new_store


def moving_square(t: int, shift: int = 0) -> list[np.ndarray]:
    frames = []
    for i in range(t):
        img = np.full((*SIZE, 3), 40, np.uint8)
        x = (2 * i + shift) % (SIZE[1] - 6)
        img[4:10, x:x + 6] = (220, 60, 30)
        frames.append(img)
    return frames


@pytest.fixture
def videos(tmp_path):
    return {cam: write_mp4(tmp_path / f"{cam}.mp4", moving_square(12, k), fps=20)
            for k, cam in enumerate(["front", "wrist"])}


def test_import_then_export_round_trip(tmp_path, videos):
    store = new_store(tmp_path / "s.zarr")
    actions = np.linspace(-1, 1, 36, dtype=np.float32).reshape(12, 3)
    np.save(tmp_path / "a.npy", actions)
    np.savetxt(tmp_path / "s.csv", np.ones((12, 4)), delimiter=",")
    i = import_episode(store, videos, "push the block", actions=tmp_path / "a.npy", states=tmp_path / "s.csv")
    ep = EpisodeStore.open(store.path).episode(i)
    for k, cam in enumerate(["front", "wrist"]):
        want = np.stack(moving_square(12, k))
        error = np.abs(ep.images[cam].astype(int) - want.astype(int)).mean()
        assert error < 8, f"{cam}: mean abs error {error}"  # H.264 4:2:0 is lossy on 16x20 frames
        # every frame in order: the square sits where it was drawn (wrong order would miss by pixels)
        x_got = (ep.images[cam][:, 7, :, 0] > 130).argmax(axis=1)
        np.testing.assert_allclose(x_got, (want[:, 7, :, 0] > 130).argmax(axis=1), atol=1)
    np.testing.assert_array_equal(ep.action, actions)
    np.testing.assert_array_equal(ep.state, np.ones((12, 4), np.float32))
    out = export_episode(store, i, tmp_path / "out.mp4", scale=2)
    frames = read_video(out)
    assert len(frames) == 12 and frames.shape[2] >= 2 * 2 * SIZE[1]  # both cameras side by side


def test_import_without_actions_is_marked(tmp_path, videos):
    store = new_store(tmp_path / "s.zarr")
    i = import_episode(store, videos, "a video from the web")
    assert not store.meta("has_actions")[i] and store.episode(i).action is None


def test_bad_imports_leave_store_unchanged(tmp_path, videos):
    store = new_store(tmp_path / "s.zarr")
    import_episode(store, videos, "first")
    short = write_mp4(tmp_path / "short.mp4", moving_square(7), fps=20)
    big = write_mp4(tmp_path / "big.mp4", [np.zeros((32, 32, 3), np.uint8)] * 12, fps=20)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    np.save(tmp_path / "a5.npy", np.zeros((5, 3), np.float32))
    np.save(tmp_path / "a_wide.npy", np.zeros((12, 7), np.float32))
    cases = [
        ({"front": videos["front"], "wrist": short}, {}, "different frame counts"),
        ({"front": videos["front"], "wrist": big}, {}, "resize it first"),
        ({"front": videos["front"], "wrist": junk}, {}, "cannot read video"),
        ({"front": videos["front"], "wrist": tmp_path / "none.mp4"}, {}, "no video file"),
        ({"front": videos["front"]}, {}, "cameras"),
        (videos, {"actions": tmp_path / "a5.npy"}, "5 rows but the videos have 12"),
        (videos, {"actions": tmp_path / "a_wide.npy"}, r"action has shape \(12, 7\)"),
    ]
    for vids, extra, match in cases:
        with pytest.raises(StoreError, match=match):
            import_episode(store, vids, "bad", **extra)
    reopened = EpisodeStore.open(store.path)
    assert reopened.num_episodes == 1 and reopened._state.shape[0] == reopened.num_frames == 12
