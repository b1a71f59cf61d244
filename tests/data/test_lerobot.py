"""LeRobot v3.0 interop: a tiny store exported and checked against the v3.0 layout (files, info.json, features,
tasks, stats, episode indices and video timestamps), imported back (round trip), a dataset built by hand in
LeRobot's layout (another camera name, no state), and bad input refused with nothing written."""

import json
import shutil
import sys
from fractions import Fraction

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embodied.data import EpisodeStore, StoreError
from embodied.data.lerobot import export_lerobot, import_lerobot
from tests.data.conftest import CAMERAS, SIZE, make_episode

FPS = 20
STATE_NAMES = ["j0", "j1", "gripper_opening", "ee_z"]
ACTION_SPEC = {"kind": "ee_delta", "names": ["dx", "dy", "gripper"], "units": ["m", "m", "1=closed,-1=open"],
               "scale": [0.01, 0.01, 1.0], "offset": [0.0, 0.0, 0.0]}


def moving_square(t: int, shift: int, shape=SIZE) -> np.ndarray:
    """uint8 (t, H, W, 3): a gradient, its colour set by `shift`, and a square a pixel further each frame."""
    h, w = shape
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = np.linspace(30, 160, w, dtype=np.uint8)
    frames[..., 2] = 40 + 15 * (shift % 10)
    for k in range(t):
        x = k % (w - 6)
        frames[k, 4:10, x:x + 6] = (230, 230, 40)
    return frames


@pytest.fixture
def store(tmp_path):
    """Four episodes (5-11 frames, 16x20 images), two sharing an instruction."""
    s = EpisodeStore.create(tmp_path / "s.zarr", cameras=CAMERAS, image_size=SIZE, state_dim=4, action_dim=3,
                            control_rate=float(FPS), robot="test", action_spec=ACTION_SPEC,
                            state_spec={"names": STATE_NAMES})
    for i in range(4):
        ep = make_episode(i)
        ep.images = {cam: moving_square(len(ep), 3 * i + k) for k, cam in enumerate(CAMERAS)}
        ep.instruction = "do thing 1" if i == 3 else ep.instruction
        s.append(ep)
    return s


def decoded(path) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a video and their times: float (n,) s, uint8 (n, H, W, 3)."""
    with av.open(str(path)) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    return np.array([t for t, _ in frames]), np.stack([f for _, f in frames])


def mae(a, b) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_export_follows_the_v3_layout(store, tmp_path):
    out = tmp_path / "lr"
    summary = export_lerobot(store.path, out)
    n = store.num_frames
    assert summary == {"path": str(out), "episodes": 4, "frames": n, "tasks": 3, "skipped": []}
    assert not (tmp_path / "lr.partial").exists()
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and isinstance(info["fps"], int)
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, n, 3)
    assert info["splits"] == {"train": "0:4"} and info["robot_type"] == "test"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    for cam in CAMERAS:
        f = features[f"observation.images.{cam}"]
        assert (f["dtype"], f["shape"], f["names"]) == ("video", [*SIZE, 3], ["height", "width", "channels"])
        assert f["info"]["video.fps"] == FPS and f["info"]["video.codec"] == "h264"
    assert features["observation.state"] == {"dtype": "float32", "shape": [4], "names": STATE_NAMES}
    assert features["action"] == {"dtype": "float32", "shape": [3], "names": ACTION_SPEC["names"]}
    for key, dtype in [("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")]:
        assert features[key] == {"dtype": dtype, "shape": [1], "names": None}

    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]  # pandas: task is the index
    task_of = dict(zip(tasks["task_index"].to_pylist(), tasks["task"].to_pylist(), strict=True))
    assert sorted(task_of.values()) == ["do thing 0", "do thing 1", "do thing 2"]

    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert data.schema.field("observation.state").type == pa.list_(pa.float32(), 4)  # Sequence(length=4)
    assert data.schema.field("action").type == pa.list_(pa.float32(), 3)
    assert data.num_rows == n and data["index"].to_pylist() == list(range(n))
    np.testing.assert_array_equal(np.stack(data["observation.state"].to_numpy(zero_copy_only=False)), store.states())
    np.testing.assert_array_equal(np.stack(data["action"].to_numpy(zero_copy_only=False)), store.actions())
    frame_index, episode_index = data["frame_index"].to_numpy(), data["episode_index"].to_numpy()
    np.testing.assert_allclose(data["timestamp"].to_numpy(), frame_index / FPS, rtol=1e-6)

    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    videos = {cam: decoded(out / f"videos/observation.images.{cam}/chunk-000/file-000.mp4") for cam in CAMERAS}
    for e, row in enumerate(episodes):
        start, end = store.episode_range(e)
        assert (row["episode_index"], row["length"]) == (e, end - start)
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (start, end)
        assert row["tasks"] == [store.meta("instruction")[e]] and row["embodied/family"] == store.meta("family")[e]
        rows = slice(row["dataset_from_index"], row["dataset_to_index"])  # the data rows of this episode
        assert set(episode_index[rows]) == {e} and list(frame_index[rows]) == list(range(end - start))
        assert {task_of[i] for i in data["task_index"].to_numpy()[rows]} == {store.meta("instruction")[e]}
        for cam, (times, frames) in videos.items():
            key = f"videos/observation.images.{cam}"
            assert (row[f"{key}/chunk_index"], row[f"{key}/file_index"]) == (0, 0)
            assert row[f"{key}/to_timestamp"] - row[f"{key}/from_timestamp"] == pytest.approx((end - start) / FPS)
            every = store.frames(cam, np.arange(n))
            for k, ts in enumerate(data["timestamp"].to_numpy()[rows]):
                # as LeRobot reads: the frame at from_timestamp + timestamp, within its tolerance of 1e-4 s
                hit = np.flatnonzero(np.abs(times - (row[f"{key}/from_timestamp"] + ts)) < 1e-4)
                assert len(hit) == 1, (e, k, cam)
                errors = [mae(frames[hit[0]], frame) for frame in every]  # the right frame, not a neighbour's
                assert errors[start + k] < 12 and int(np.argmin(errors)) == start + k, (e, k, cam, errors)
    assert len(videos["front"][0]) == n

    stats = json.loads((out / "meta/stats.json").read_text())
    state = stats["observation.state"]
    assert set(state) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    np.testing.assert_allclose(state["mean"], store.states().mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state["std"], store.states().std(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state["min"], store.states().min(0))
    np.testing.assert_allclose(stats["action"]["max"], store.actions().max(0))
    assert state["count"] == [n] and np.all(np.array(state["q01"]) <= np.array(state["q99"]))
    image = {k: np.array(v) for k, v in stats["observation.images.front"].items()}
    assert image["mean"].shape == (3, 1, 1) and image["count"].tolist() == [n]  # episodes < 20 frames: all used
    assert 0 <= image["min"].min() and image["max"].max() <= 1
    everything = store.frames("front", np.arange(n)).reshape(-1, 3) / 255
    np.testing.assert_allclose(image["mean"].ravel(), everything.mean(0), atol=1e-6)
    np.testing.assert_allclose(image["std"].ravel(), everything.std(0), atol=1e-6)


def test_round_trip(store, tmp_path):
    export_lerobot(store.path, tmp_path / "lr")
    back = import_lerobot(tmp_path / "lr", tmp_path / "back.zarr")
    assert not (tmp_path / "back.zarr.partial").exists()
    assert back.cameras == CAMERAS and back.attrs["control_rate"] == FPS
    np.testing.assert_array_equal(back.episode_ends, store.episode_ends)
    assert back.attrs["action_spec"] == ACTION_SPEC and back.attrs["state_spec"] == {"names": STATE_NAMES}
    for i in range(store.num_episodes):
        a, b = store.episode(i), back.episode(i)
        np.testing.assert_array_equal(b.state, a.state)
        np.testing.assert_array_equal(b.action, a.action)
        assert (b.instruction, b.family, b.success, b.seed) == (a.instruction, a.family, a.success, a.seed)
        for cam in CAMERAS:
            assert mae(b.images[cam], a.images[cam]) < 8, (i, cam)


def test_episodes_without_actions_are_refused_or_skipped(store, tmp_path):
    store.append(make_episode(9, actions=False, states=False))
    with pytest.raises(StoreError, match=r"episodes \[4\] have no actions or no states.*--skip-incomplete"):
        export_lerobot(store.path, tmp_path / "lr")
    assert not (tmp_path / "lr").exists() and not (tmp_path / "lr.partial").exists()
    assert export_lerobot(store.path, tmp_path / "lr", skip_incomplete=True)["skipped"] == [4]
    rows = pq.read_table(tmp_path / "lr/meta/episodes/chunk-000/file-000.parquet")
    assert rows["embodied/episode"].to_pylist() == [0, 1, 2, 3]


def encode(path, frames, fps, codec):
    """An mp4 as LeRobot's encoder writes it: frame k at k / fps s."""
    path.parent.mkdir(parents=True)
    with av.open(str(path), "w") as c:
        stream = c.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for k, frame in enumerate(frames):
            f = av.VideoFrame.from_ndarray(frame, format="rgb24")
            f.pts, f.time_base = k, Fraction(1, fps)
            c.mux(stream.encode(f))
        c.mux(stream.encode())


def write_lerobot(root, version="v3.0", action_shape=(2,), lengths=(6, 4), codec="libx264"):
    """A LeRobot v3.0 dataset written by hand: camera 'top', 32x24 frames, no state, 2-D actions, fps 10,
    both episodes in one mp4 (the second from 0.6 s), episode rows out of order."""
    fps, n, shape = 10, sum(lengths), (24, 32)
    starts = np.cumsum([0, *lengths])[:-1]
    encode(root / "videos/observation.images.top/chunk-000/file-000.mp4",
           np.concatenate([moving_square(t, 5 * e, shape) for e, t in enumerate(lengths)]), fps, codec)
    frame_index = np.concatenate([np.arange(t) for t in lengths])
    actions = np.linspace(-1, 1, 2 * n, dtype=np.float32).reshape(n, 2)
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table({
        "action": pa.FixedSizeListArray.from_arrays(pa.array(actions.ravel()), 2),
        "timestamp": pa.array(frame_index / fps, pa.float32()), "frame_index": frame_index,
        "episode_index": np.repeat(np.arange(len(lengths)), lengths), "index": np.arange(n),
        "task_index": np.repeat([1, 0], lengths)}), root / "data/chunk-000/file-000.parquet")
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table({
        "episode_index": [0, 1], "tasks": [["wave"], ["fold the towel"]], "length": list(lengths),
        "data/chunk_index": [0, 0], "data/file_index": [0, 0], "dataset_from_index": starts.tolist(),
        "dataset_to_index": (starts + lengths).tolist(), "videos/observation.images.top/chunk_index": [0, 0],
        "videos/observation.images.top/file_index": [0, 0],
        "videos/observation.images.top/from_timestamp": (starts / fps).tolist(),
        "videos/observation.images.top/to_timestamp": ((starts + lengths) / fps).tolist()}).take([1, 0]),
        root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0, 1], "task": ["fold the towel", "wave"]}), root / "meta/tasks.parquet")
    features = {"observation.images.top": {"dtype": "video", "shape": [*shape, 3],
                                           "names": ["height", "width", "channels"], "info": {"video.fps": fps}},
                "action": {"dtype": "float32", "shape": list(action_shape), "names": ["x", "y"][:action_shape[0]]},
                **{k: {"dtype": "int64", "shape": [1], "names": None} for k in ("frame_index", "episode_index",
                                                                               "index", "task_index")},
                "timestamp": {"dtype": "float32", "shape": [1], "names": None}}
    (root / "meta/info.json").write_text(json.dumps({
        "codebase_version": version, "robot_type": "so100", "fps": fps, "total_episodes": 2, "total_frames": n,
        "total_tasks": 2, "features": features,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"}))
    return actions, lengths


@pytest.mark.parametrize("codec", ["libx264", "libsvtav1"])  # LeRobot encodes AV1 by default
def test_import_a_lerobot_dataset_with_another_camera_and_no_state(tmp_path, codec):
    if codec not in av.codecs_available or "libdav1d" not in av.codecs_available:
        pytest.skip(f"this PyAV cannot encode and decode {codec}")
    actions, lengths = write_lerobot(tmp_path / "lr", codec=codec)
    store = import_lerobot(tmp_path / "lr", tmp_path / "s.zarr", family="towels")
    assert store.cameras == ["top"] and store.attrs["image_size"] == [24, 32] and store.attrs["control_rate"] == 10
    assert store.attrs["robot"] == "so100" and store.attrs["lerobot"]["action"]["names"] == ["x", "y"]
    assert store.episode_ends.tolist() == [6, 10] and not store.meta("has_states").any()
    assert list(store.meta("instruction")) == ["wave", "fold the towel"] and set(store.meta("family")) == {"towels"}
    np.testing.assert_array_equal(store.actions(), actions)
    for e, t in enumerate(lengths):
        ep = store.episode(e)
        assert ep.state is None and mae(ep.images["top"], moving_square(t, 5 * e, (24, 32))) < 8


def test_bad_input_is_refused_and_nothing_is_written(store, tmp_path):
    cases = [
        ({"version": "v2.1"}, r"LeRobot v2\.1 dataset; only codebase_version v3\.0 is read.*convert_dataset_v21_to_v"),
        ({"action_shape": (3,)}, r"'action' has 2 names but shape \[3\]"),
    ]
    for i, (kwargs, match) in enumerate(cases):
        write_lerobot(tmp_path / f"lr{i}", **kwargs)
        with pytest.raises(StoreError, match=match):
            import_lerobot(tmp_path / f"lr{i}", tmp_path / "s_new.zarr")
        assert not (tmp_path / "s_new.zarr").exists() and not (tmp_path / "s_new.zarr.partial").exists()
    info = json.loads((tmp_path / "lr0/meta/info.json").read_text())
    info["codebase_version"] = "v3.0"
    info["features"]["action"]["names"] = None
    info["features"]["action"]["shape"] = [3]  # the parquet holds 2 values per frame
    (tmp_path / "lr0/meta/info.json").write_text(json.dumps(info))
    with pytest.raises(StoreError, match=r"'action' does not have 3 values per frame"):
        import_lerobot(tmp_path / "lr0", tmp_path / "s_new.zarr")
    info["features"]["observation.images.top"]["dtype"] = "image"
    (tmp_path / "lr0/meta/info.json").write_text(json.dumps(info))
    with pytest.raises(StoreError, match="only video features"):
        import_lerobot(tmp_path / "lr0", tmp_path / "s_new.zarr")
    (tmp_path / "lr0/meta/info.json").unlink()
    with pytest.raises(StoreError, match="no meta/info.json; expected a LeRobot v3.0 dataset folder"):
        import_lerobot(tmp_path / "lr0", tmp_path / "s_new.zarr")
    write_lerobot(tmp_path / "good")
    with pytest.raises(StoreError, match="exists; the import writes a new store"):
        import_lerobot(tmp_path / "good", store.path)
    assert EpisodeStore.open(store.path).num_episodes == 4
    assert not (tmp_path / "s_new.zarr").exists() and not (tmp_path / "s_new.zarr.partial").exists()

    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(StoreError, match="exists and is not empty"):
        export_lerobot(store.path, out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"
    assert not (tmp_path / "taken.partial").exists()


def test_cli_export_then_import(store, tmp_path, monkeypatch, capsys):
    from embodied.cli import main

    def embodied(*args) -> tuple[int, str, str]:  # in-process: exit code, stdout, stderr
        monkeypatch.setattr(sys, "argv", ["embodied", "data", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = embodied("export-lerobot", store.path, tmp_path / "lr")
    assert code == 0 and "4 episodes" in out, err
    code, out, err = embodied("import-lerobot", tmp_path / "lr", tmp_path / "back.zarr")
    assert code == 0 and EpisodeStore.open(tmp_path / "back.zarr").num_episodes == 4, err
    shutil.rmtree(tmp_path / "back.zarr")
    (tmp_path / "lr/meta/info.json").write_text(json.dumps({"codebase_version": "v2.1"}))
    code, out, err = embodied("import-lerobot", tmp_path / "lr", tmp_path / "back.zarr")
    assert code == 1 and err.startswith("error: ") and "v2.1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "back.zarr").exists()
