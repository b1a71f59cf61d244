"""Checksums and `verify`: any single damaged file of a store is found and named; old stores still read;
a bad frame during training names the store, camera and episode."""

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from embodied.data import EpisodeStore, StoreError
from embodied.data.store import IMAGE_CODEC
from embodied.data.verify import verify
from tests.data.conftest import CAMERAS, SIZE, make_episode, new_store


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("verify") / "s.zarr"
    store = new_store(path)
    for i in range(3):
        store.append(make_episode(i, length=4))
    store.stats()  # also writes attributes after the appends
    return path


def files_of(path):
    """Every file of the store: all metadata and chunk files (images: the first and last frame)."""
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    frames = [f for f in files if "/images/" in f and not f.endswith("zarr.json")]
    keep = {f for cam in CAMERAS for f in [x for x in frames if f"/{cam}/" in x][::11]}
    return [f for f in files if f not in frames or f in keep]


def corrupt(file, how):
    raw = file.read_bytes()
    if how == "truncate":
        file.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        file.write_bytes(np.random.default_rng(0).integers(0, 256, len(raw), dtype=np.uint8).tobytes())
    else:  # flip one bit of one byte (the smallest change), at a few places
        k = {"flip_middle": len(raw) // 2, "flip_start": 1, "flip_end": len(raw) - 2}[how]
        file.write_bytes(raw[:k] + bytes([raw[k] ^ 1]) + raw[k + 1:])


def test_a_whole_store_verifies(pristine):
    report = verify(pristine, progress=False)
    assert report.whole and report.episodes == 3 and report.frames == 12 and report.format_version == 2


def test_every_file_kind_is_covered(pristine):
    kinds = {f.split("/")[0] if "/" in f else f for f in files_of(pristine)}
    files = files_of(pristine)
    assert kinds == {"zarr.json", "data", "meta"}
    assert any("images/front/c." in f for f in files) and any(f.startswith("data/state/c/") for f in files)
    assert sum(f.startswith("meta/") and "/c/" in f for f in files) == 7  # every per-episode column


@pytest.mark.parametrize("how", ["truncate", "garbage", "flip_middle", "flip_start", "flip_end"])
def test_any_damaged_file_is_found(pristine, tmp_path, how):
    missed = []
    for name in files_of(pristine):
        copy = tmp_path / name.replace("/", "_")
        import shutil

        shutil.copytree(pristine, copy)
        corrupt(copy / name, how)
        if verify(copy, progress=False).whole:
            missed.append(name)
        shutil.rmtree(copy)
    assert not missed, f"{how}: not detected in {missed}"


def test_report_names_camera_episode_and_steps(pristine, tmp_path):
    import shutil

    shutil.copytree(pristine, tmp_path / "s.zarr")
    path = tmp_path / "s.zarr"
    store = EpisodeStore.open(path)
    start, _ = store.episode_range(1)
    for step in (1, 2):
        corrupt(path / f"data/images/wrist/c.{start + step}.0.0.0", "flip_middle")
    (damage,) = verify(path, progress=False).damage
    assert (damage.episode, damage.camera, damage.steps) == (1, "wrist", "1-2 (2 frames)")
    with pytest.raises(StoreError, match=r"s.zarr: camera 'wrist', episode 1, step 1 .*checksum"):
        store.frames("wrist", np.arange(start, start + 4))
    out = subprocess.run([sys.executable, "-m", "embodied.cli", "data", "verify", str(path), "--json",
                          str(tmp_path / "r.json")], capture_output=True, text=True)
    assert out.returncode == 1 and "wrist" in out.stdout
    assert json.loads((tmp_path / "r.json").read_text())["whole"] is False


def test_interrupted_append_is_reported_as_a_tail(pristine, tmp_path):
    import shutil

    shutil.copytree(pristine, tmp_path / "s.zarr")
    store = EpisodeStore.open(tmp_path / "s.zarr", mode="a")
    store._state.resize((store.num_frames + 3, 4))  # as an append killed before its commit leaves it
    (damage,) = verify(tmp_path / "s.zarr", progress=False).damage
    assert "3 rows past the last committed episode" in damage.why
    EpisodeStore.open(tmp_path / "s.zarr", mode="a")  # drops the tail
    assert verify(tmp_path / "s.zarr", progress=False).whole


def test_format_version_1_stores_still_read(tmp_path):
    """A store as version 1 wrote it: Blosc frames without checksums."""
    path = tmp_path / "v1.zarr"
    group = zarr.open_group(path, mode="w-")
    h, w = SIZE
    for cam in CAMERAS:
        group.create_array(f"data/images/{cam}", shape=(0, h, w, 3), chunks=(1, h, w, 3), dtype="uint8",
                           compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle")],
                           chunk_key_encoding={"name": "default", "separator": "."})
    assert IMAGE_CODEC.cname.name == "zstd"
    for name, dim in (("state", 4), ("action", 3)):
        group.create_array(f"data/{name}", shape=(0, dim), chunks=(4096, dim), dtype="float32", fill_value=np.nan)
    group.create_array("meta/episode_ends", shape=(0,), chunks=(4096,), dtype="int64")
    for key, dtype in {"instruction": str, "family": str, "success": bool, "seed": "int64", "has_actions": bool,
                       "has_states": bool}.items():
        group.create_array(f"meta/{key}", shape=(0,), chunks=(4096,), dtype=dtype)
    group.attrs.update({"format_version": 1, "cameras": CAMERAS, "image_size": [h, w], "control_rate": 20.0,
                        "robot": "test", "num_episodes": 0})
    store = EpisodeStore.open(path, mode="a")
    store.append(make_episode(0))
    np.testing.assert_array_equal(EpisodeStore.open(path).episode(0).images["front"], make_episode(0).images["front"])
    report = verify(path, progress=False)
    assert report.whole and report.format_version == 1
