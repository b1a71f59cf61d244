"""LeRobot datasets: export a store to, and import one from, a local folder in LeRobot's v3.0 layout.

    meta/info.json       codebase_version "v3.0", fps, totals, splits, path templates, features
                         {key: {dtype, shape, names[, info]}}; cameras are "video" features
    meta/stats.json      {feature: {min, max, mean, std, count, q01, q10, q50, q90, q99}}; images per channel in
                         [0, 1], shape (3, 1, 1), from a subsample of frames
    meta/tasks.parquet   task (str, the pandas index), task_index (int64)
    meta/episodes/chunk-000/file-000.parquet   a row per episode: episode_index, tasks, length, dataset_from_index,
                         dataset_to_index, data/{chunk,file}_index, videos/<key>/{chunk_index, file_index,
                         from_timestamp, to_timestamp}, stats/<key>/<stat>
    data/chunk-000/file-000.parquet            a row per frame: observation.state float32[S], action float32[A],
                         timestamp (s since the episode's start), frame_index, episode_index, index, task_index
    videos/observation.images.<camera>/chunk-000/file-000.mp4   the episodes one after another: frame k of an
                         episode is shown at from_timestamp + k / fps

Mapping: camera X <-> observation.images.X, data/state <-> observation.state, data/action <-> action,
instruction <-> task, control rate <-> fps. Family, success and seed go in extra episode columns (embodied/...),
the action and state specs in meta/embodied.json; LeRobot ignores both. The export writes one data file and one
video per camera (LeRobot starts new files past 100/200 MB; readers follow the indices either way).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from embodied.data.store import Episode, EpisodeStore, StoreError
from embodied.media import Mp4Writer

VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
CAMERA = "observation.images."
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
INDEX_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}
LAYOUT = "a LeRobot v3.0 dataset folder (meta/info.json, meta/episodes/, data/, videos/)"


# ---- export -------------------------------------------------------------------------------------------------
def export_lerobot(store_path: str | Path, out_dir: str | Path, *, skip_incomplete: bool = False, crf: int = 18,
                   progress: bool = False) -> dict:
    """Write a store as a LeRobot v3.0 dataset in a new folder (first to `<out>.partial`). Every LeRobot frame
    has an action (and a state, if any episode has one): episodes without are refused by index, or left out
    with `skip_incomplete`. Returns a summary: path, episodes, frames, tasks, skipped (store indices)."""
    store, out = EpisodeStore.open(store_path), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"{out} exists and is not empty; the export writes a new folder (remove it or choose another)")
    meta = {k: store.meta(k) for k in ("instruction", "family", "success", "seed", "has_actions", "has_states")}
    with_state = bool(meta["has_states"][meta["has_actions"]].any())
    complete = meta["has_actions"] & (meta["has_states"] | (not with_state))
    skipped, kept = np.flatnonzero(~complete).tolist(), np.flatnonzero(complete).tolist()
    if skipped and not skip_incomplete:
        raise StoreError(f"{store.path}: episodes {skipped[:20]}{' ...' if len(skipped) > 20 else ''} have no "
                         f"actions{' or no states' if with_state else ''}, which every LeRobot frame needs; pass "
                         f"--skip-incomplete to export only the other {len(kept)}")
    if not kept:
        raise StoreError(f"{store.path}: no episode has actions; a LeRobot dataset needs them")
    rate = float(store.attrs["control_rate"])
    if abs(rate - round(rate)) > 1e-6 or rate < 1:
        raise StoreError(f"{store.path}: control rate {rate} Hz; LeRobot needs a whole number of frames per second")
    fps, (h, w) = round(rate), store.attrs["image_size"]
    tasks = {t: i for i, t in enumerate(dict.fromkeys(meta["instruction"][kept].tolist()))}
    pix_fmt = "yuv444p" if h % 2 or w % 2 else "yuv420p"  # 4:2:0 needs even sizes; the feature keeps the size
    video = {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": pix_fmt,
             "video.fps": fps, "video.channels": 3, "has_audio": False, "is_depth_map": False}
    features = {CAMERA + c: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                             "info": video} for c in store.cameras}
    columns = {"action": store.actions()}  # float32 (N, A), and (N, S) states
    if with_state:
        columns["observation.state"] = store.states()
    for key, spec in (("observation.state", store.attrs.get("state_spec")),
                      ("action", store.attrs.get("action_spec") or store.attrs.get("lerobot", {}).get("action"))):
        if key in columns:
            names, dim = (spec or {}).get("names"), columns[key].shape[1]
            features[key] = {"dtype": "float32", "shape": [dim], "names": list(names) if names and len(names) == dim
                             else None}
    features.update({k: {"dtype": d, "shape": [1], "names": None} for k, d in INDEX_FEATURES.items()})

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    writers = {c: Mp4Writer(tmp / VIDEO_PATH.format(video_key=CAMERA + c, chunk_index=0, file_index=0), fps, crf,
                            pix_fmt) for c in store.cameras}
    data, rows, stats, frame = None, [], [], 0
    try:
        for new, i in enumerate(tqdm(kept, desc="export", unit="ep", disable=not progress, leave=False)):
            start, end = store.episode_range(i)
            t, task = end - start, str(meta["instruction"][i])
            values = {**{k: v[start:end] for k, v in columns.items()},
                      "timestamp": np.arange(t, dtype=np.float32) / np.float32(fps), "frame_index": np.arange(t),
                      "episode_index": np.full(t, new), "index": np.arange(frame, frame + t),
                      "task_index": np.full(t, tasks[task])}
            table = pa.table({k: _column(v) for k, v in values.items()})
            data = data or pq.ParquetWriter(_made(tmp / DATA_PATH.format(chunk_index=0, file_index=0)), table.schema)
            data.write_table(table)  # a row group per episode, as LeRobot writes
            ep_stats = {k: _stats(v.reshape(t, -1)) for k, v in values.items()}
            row = {"episode_index": new, "tasks": [task], "length": t, "data/chunk_index": 0, "data/file_index": 0,
                   "dataset_from_index": frame, "dataset_to_index": frame + t}
            for cam, writer in writers.items():
                images = store.frames(cam, np.arange(start, end))  # uint8 (t, H, W, 3)
                for image in images:
                    writer.write(image)
                ep_stats[key := CAMERA + cam] = _image_stats(images)
                row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                            f"videos/{key}/from_timestamp": frame / fps,
                            f"videos/{key}/to_timestamp": (frame + t) / fps})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0, "embodied/episode": i,
                        "embodied/family": str(meta["family"][i]), "embodied/success": bool(meta["success"][i]),
                        "embodied/seed": int(meta["seed"][i]),
                        **{f"stats/{k}/{s}": v.tolist() for k, st in ep_stats.items() for s, v in st.items()}})
            rows.append(row)
            stats.append(ep_stats)
            frame += t
        for writer in [*writers.values(), data]:
            writer.close()
        pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), _made(tmp / EPISODES_PATH))
        pq.write_table(_tasks_table(list(tasks)), tmp / "meta/tasks.parquet")
        info = {"codebase_version": VERSION, "robot_type": store.attrs.get("robot"), "total_episodes": len(kept),
                "total_frames": frame, "total_tasks": len(tasks), "chunks_size": 1000, "data_files_size_in_mb": 100,
                "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{len(kept)}"},
                "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": features}
        ours = {k: store.attrs.get(k) for k in ("robot", "control_rate", "cameras", "action_spec", "state_spec")}
        for name, doc in (("info", info), ("embodied", {**ours, "store": str(store.path), "episodes": kept}),
                          ("stats", {k: {s: v.tolist() for s, v in _aggregate([e[k] for e in stats]).items()}
                                     for k in stats[0]})):
            (tmp / f"meta/{name}.json").write_text(json.dumps(doc, indent=2))
    except BaseException:
        for writer in [*(w.container for w in writers.values()), *([data] if data else [])]:
            writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()  # empty, checked above
    os.replace(tmp, out)
    return {"path": str(out), "episodes": len(kept), "frames": frame, "tasks": len(tasks), "skipped": skipped}


def _column(values: np.ndarray) -> pa.Array:
    """(T,) -> a plain column; (T, D) -> fixed_size_list[D] (LeRobot's Sequence(length=D) in arrow)."""
    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values).ravel()), values.shape[1])


def _stats(x: np.ndarray) -> dict:
    """x: (n, D) -> min, max, mean, std, q01 ... q99 each float64 (D,), count (1,)."""
    values = np.ascontiguousarray(np.asarray(x, np.float64).T)  # (D, n): reductions along memory are fast
    quantiles = np.quantile(values, list(QUANTILES.values()), axis=1)
    return {"min": values.min(1), "max": values.max(1), "mean": values.mean(1), "std": values.std(1),
            "count": np.array([len(x)]), **dict(zip(QUANTILES, quantiles, strict=True))}


def _image_stats(images: np.ndarray, samples: int = 20) -> dict:
    """uint8 (T, H, W, 3) -> per-channel stats in [0, 1], each (3, 1, 1), over up to `samples` frames (frames
    of 300 pixels or more thinned to about 150 a side, as LeRobot does); count is the frames used."""
    pick = np.unique(np.linspace(0, len(images) - 1, min(samples, len(images))).round().astype(int))
    step = max(images.shape[1:3]) // 150 if max(images.shape[1:3]) >= 300 else 1
    pixels = images[pick, ::step, ::step].reshape(-1, 3) / np.float64(255)
    stats = {k: v.reshape(3, 1, 1) for k, v in _stats(pixels).items() if k != "count"}
    return {**stats, "count": np.array([len(pick)])}


def _aggregate(stats: list[dict]) -> dict:
    """Episode stats -> dataset stats as LeRobot aggregates them: count, min, max, mean and std (pooled) exact;
    quantiles the count-weighted mean of the episodes' quantiles."""
    counts = np.array([s["count"][0] for s in stats], np.float64)
    stack = {k: np.stack([s[k] for s in stats]) for k in stats[0] if k != "count"}  # (E, *shape)
    weight = (counts / counts.sum()).reshape(-1, *[1] * (stack["mean"].ndim - 1))
    mean = (weight * stack["mean"]).sum(0)
    var = (weight * (stack["std"] ** 2 + (stack["mean"] - mean) ** 2)).sum(0)
    return {"min": stack["min"].min(0), "max": stack["max"].max(0), "mean": mean, "std": np.sqrt(var),
            "count": np.array([int(counts.sum())]), **{q: (weight * stack[q]).sum(0) for q in QUANTILES}}


def _tasks_table(tasks: list[str]) -> pa.Table:
    """tasks.parquet as pandas writes a frame indexed by task: LeRobot reads it with pandas."""
    column = {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
              "metadata": None}
    pandas = {"index_columns": ["task"], "columns": [column, {**column, "name": "task", "field_name": "task",
                                                              "pandas_type": "unicode", "numpy_type": "object"}],
              "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                  "metadata": {"encoding": "UTF-8"}}], "attributes": {},
              "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    return table.replace_schema_metadata({"pandas": json.dumps(pandas)})


def _made(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ---- import -------------------------------------------------------------------------------------------------
def import_lerobot(in_dir: str | Path, store_path: str | Path, *, family: str = "imported",
                   progress: bool = False) -> EpisodeStore:
    """Read a LeRobot v3.0 dataset folder into a new store (written to `<store>.partial`, renamed at the end).
    Cameras are its video features (observation.images.X -> camera X, all one size); observation.state and
    action may be missing (episodes are then marked as having none); other features are left out."""
    src, path = Path(in_dir), Path(store_path)
    if path.exists():
        raise StoreError(f"{path} exists; the import writes a new store (remove it or choose another path)")
    reader = _Reader(src)
    ours = json.loads((src / "meta/embodied.json").read_text()) if (src / "meta/embodied.json").is_file() else {}
    names = {k: _names(reader.features[k]) for k in reader.dims}
    state_names = names.get("observation.state")
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        store = EpisodeStore.create(
            tmp, cameras=list(reader.cameras.values()), image_size=reader.size,
            state_dim=reader.dims.get("observation.state", 0), action_dim=reader.dims.get("action", 0),
            control_rate=float(reader.fps), robot=ours.get("robot") or reader.info.get("robot_type") or "lerobot",
            action_spec=ours.get("action_spec"), state_spec=ours.get("state_spec") or (
                {"names": state_names} if state_names else None),
            lerobot={"source": str(src), "codebase_version": reader.info["codebase_version"],
                     "action": {"names": names.get("action")}})
        for row in tqdm(reader.episodes, desc="import", unit="ep", disable=not progress, leave=False):
            store.append(reader.episode(row, family))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reader.close()
    os.replace(tmp, path)
    return EpisodeStore.open(path)


def read_info(src: Path) -> dict:
    """meta/info.json of a LeRobot v3.0 dataset folder; a StoreError names what is wrong."""
    path = src / "meta/info.json"
    if not src.is_dir():
        raise StoreError(f"no folder {src}; expected {LAYOUT}")
    if not path.is_file():
        raise StoreError(f"{src}: no meta/info.json; expected {LAYOUT}")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path} is not valid JSON ({e})") from None
    version = str(info.get("codebase_version"))
    if not version.startswith("v3."):
        hint = (" (LeRobot converts it: python -m lerobot.scripts.convert_dataset_v21_to_v30)"
                if version.startswith("v2") else "")
        raise StoreError(f"{src} is a LeRobot {version} dataset; only codebase_version {VERSION} is read{hint}")
    if not isinstance(info.get("features"), dict) or not isinstance(info.get("fps"), int | float) or info["fps"] <= 0:
        raise StoreError(f"{path}: expected 'features' (a dict) and 'fps' (a positive number)")
    return info


class _Reader:
    """A LeRobot dataset checked up front (features, episodes, tasks); then frames episode by episode."""

    def __init__(self, src: Path):
        self.src, self.info = src, read_info(src)
        self.features, self.fps = self.info["features"], self.info["fps"]
        keys = [k for k, f in self.features.items() if isinstance(f, dict) and f.get("dtype") in ("video", "image")]
        stored = [k for k in keys if self.features[k]["dtype"] == "image"]
        if stored:
            raise StoreError(f"{src}: {stored} are stored as images inside the parquet files; only video features "
                             "(dtype 'video', frames in videos/) are supported")
        if not keys:
            raise StoreError(f"{src}: meta/info.json has no video feature; a store needs at least one camera")
        self.cameras = {k: k[len(CAMERA):] if k.startswith(CAMERA) else k.rsplit(".", 1)[-1] for k in keys}
        if len(set(self.cameras.values())) < len(keys):
            self.cameras = {k: k.replace(".", "_") for k in keys}
        sizes = {k: self._image_size(k) for k in keys}
        if len(set(sizes.values())) > 1:
            raise StoreError(f"{src}: cameras have different sizes {sizes} (height, width); a store holds one size")
        self.size = next(iter(sizes.values()))
        self.dims = {k: self._vector_dim(k) for k in ("observation.state", "action") if k in self.features}
        self.episodes = self._read_episodes()
        self.tasks = self._read_tasks()
        self.cursors = {k: _VideoCursor(0.4 / self.fps) for k in keys}
        self.data_path, self.table = None, None

    def _image_size(self, key: str) -> tuple[int, int]:
        shape, names = list(self.features[key].get("shape") or []), self.features[key].get("names")
        if isinstance(names, list) and names and names[0] in ("channel", "channels"):
            shape = shape[1:] + shape[:1]  # (C, H, W) -> (H, W, C)
        if len(shape) != 3 or shape[2] != 3:
            raise StoreError(f"{self.src}: feature {key!r} has shape {shape}; expected [height, width, 3] (RGB)")
        return int(shape[0]), int(shape[1])

    def _vector_dim(self, key: str) -> int:
        shape, names = list(self.features[key].get("shape") or []), _names(self.features[key])
        if len(shape) != 1 or shape[0] < 1:
            raise StoreError(f"{self.src}: feature {key!r} has shape {shape}; expected a vector shape [n]")
        if names is not None and len(names) != shape[0]:
            raise StoreError(f"{self.src}: feature {key!r} has {len(names)} names but shape {shape}; they must match")
        return int(shape[0])

    def _read_episodes(self) -> list[dict]:
        files = sorted((self.src / "meta/episodes").glob("*/*.parquet"))
        if not files:
            raise StoreError(f"{self.src}: no meta/episodes/chunk-*/file-*.parquet; expected {LAYOUT}")
        need = ["episode_index", "length", "data/chunk_index", "data/file_index",
                *(f"videos/{k}/{c}" for k in self.cameras for c in ("chunk_index", "file_index", "from_timestamp"))]
        rows = []
        for file in files:
            columns = [c for c in pq.read_schema(file).names if not c.startswith("stats/")]
            missing = [c for c in need if c not in columns]
            if missing:
                raise StoreError(f"{file}: no column(s) {missing}; a v3.0 episodes file has them")
            rows += pq.read_table(file, columns=columns).to_pylist()
        return sorted(rows, key=lambda r: r["episode_index"])

    def _read_tasks(self) -> dict[int, str]:
        path = self.src / "meta/tasks.parquet"
        if not path.is_file():
            return {}
        table = pq.read_table(path)
        text = next((c for c in ("task", "__index_level_0__") if c in table.column_names), None)
        if text is None or "task_index" not in table.column_names:
            raise StoreError(f"{path}: expected the columns task and task_index; got {table.column_names}")
        return dict(zip(table["task_index"].to_pylist(), table[text].to_pylist(), strict=True))

    def _frames(self, row: dict) -> dict[str, np.ndarray]:
        """The data rows of one episode in frame order: column -> (T,) or (T, D)."""
        path = self.src / self.info.get("data_path", DATA_PATH).format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        if path != self.data_path:
            if not path.is_file():
                raise StoreError(f"no data file {path} (episode {row['episode_index']})")
            names = pq.read_schema(path).names
            missing = [c for c in ("episode_index", *self.dims) if c not in names]
            if missing:
                raise StoreError(f"{path}: no column(s) {missing} that meta/info.json lists")
            wanted = ("episode_index", "frame_index", "timestamp", "task_index", *self.dims)
            self.table, self.data_path = pq.read_table(path, columns=[c for c in wanted if c in names]), path
            episodes = self.table["episode_index"].to_numpy()
            self.order = np.argsort(episodes, kind="stable")
            self.sorted = episodes[self.order]
        ep = row["episode_index"]
        part = self.table.take(self.order[np.searchsorted(self.sorted, ep):np.searchsorted(self.sorted, ep, "right")])
        if "frame_index" in part.column_names:
            part = part.take(np.argsort(part["frame_index"].to_numpy(), kind="stable"))
        out = {}
        for name in part.column_names:
            column = part[name].combine_chunks()
            if name in self.dims:
                flat, dim = column.flatten().to_numpy(zero_copy_only=False), self.dims[name]
                if len(flat) != len(column) * dim:
                    raise StoreError(f"{path}: column {name!r} does not have {dim} values per frame, as "
                                     f"meta/info.json's shape [{dim}] says (episode {ep})")
                out[name] = flat.reshape(len(column), dim).astype(np.float32)
            else:
                out[name] = column.to_numpy(zero_copy_only=False)
        return out

    def episode(self, row: dict, family: str) -> Episode:
        ep, t = row["episode_index"], row["length"]
        frames = self._frames(row)
        if len(frames["episode_index"]) != t or t < 1:
            raise StoreError(f"episode {ep}: {len(frames['episode_index'])} rows in {self.data_path}, but "
                             f"meta/episodes says length {t}")
        times = frames["timestamp"].astype(np.float64) if "timestamp" in frames else np.arange(t) / self.fps
        images = {}
        for key, camera in self.cameras.items():
            video = self.src / self.info.get("video_path", VIDEO_PATH).format(
                video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"])
            images[camera] = self.cursors[key].take(video, row[f"videos/{key}/from_timestamp"] + times)
            if images[camera].shape[1:3] != self.size:
                raise StoreError(f"{video}: frames are {images[camera].shape[1:3]} (height, width); meta/info.json "
                                 f"says {key!r} has {self.size}")
        task = self.tasks.get(int(frames["task_index"][0])) if "task_index" in frames else None
        return Episode(images=images, state=frames.get("observation.state"), action=frames.get("action"),
                       instruction=str(task or (row.get("tasks") or [""])[0]),
                       family=str(row.get("embodied/family") or family),
                       success=bool(row.get("embodied/success", True)), seed=int(row.get("embodied/seed", -1)))

    def close(self) -> None:
        for cursor in self.cursors.values():
            cursor.close()


def _names(feature: dict) -> list[str] | None:
    """A feature's names as a flat list (older datasets nest them: {"motors": [...]}), or None."""
    names = feature.get("names")
    if isinstance(names, dict):
        names = next((v for v in names.values() if isinstance(v, list)), None)
    return [str(n) for n in names] if isinstance(names, list) else None


class _VideoCursor:
    """Decoded frames of one camera's video files, read forward; a file is reopened only to go back."""

    def __init__(self, tolerance: float):
        self.tolerance, self.path, self.container = tolerance, None, None

    def take(self, path: Path, times: np.ndarray) -> np.ndarray:  # times: float (T,) s -> uint8 (T, H, W, 3)
        if path != self.path or times[0] < self.time - self.tolerance:
            self._open(path)
        out = []
        for t in times:
            while self.frame is None or self.time < t - self.tolerance:
                try:
                    frame = next(self.frames, None)
                except av.error.FFmpegError as e:
                    raise StoreError(f"cannot decode {path}: {e}") from None
                if frame is None or frame.time is None:
                    raise StoreError(f"{path}: no frame at {t:.4f} s; the video ends at {self.time:.4f} s")
                self.frame, self.time = frame, frame.time
            if abs(self.time - t) > self.tolerance:
                raise StoreError(f"{path}: no frame at {t:.4f} s (the nearest is at {self.time:.4f} s)")
            out.append(self.frame.to_ndarray(format="rgb24"))
        return np.stack(out)

    def _open(self, path: Path) -> None:
        self.close()
        if not path.is_file():
            raise StoreError(f"no video file {path}")
        try:
            self.container = av.open(str(path))
        except av.error.FFmpegError as e:
            raise StoreError(f"cannot read video {path}: {e}") from None
        self.path, self.frames, self.frame, self.time = path, self.container.decode(video=0), None, -np.inf

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container, self.path = None, None
