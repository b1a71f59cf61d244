"""Checksums and `verify`: any single damaged file of a store is found and named; old stores still read;
a bad frame during training names the store, camera and episode."""

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from embodied.cli import Rewrite
from embodied.data import EpisodeStore, StoreError
from embodied.data.store import FRAMES_PER_SHARD, IMAGE_CODEC, attrs_checksum, checksum_of, node_names
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
    """Every file of the store: all metadata, chunk and shard files."""
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def chunk_in_shard(shard: bytes, i: int, chunks: int) -> tuple[int, int]:
    """(offset, length) of inner chunk i of a shard of `chunks`, from its index: (offset, nbytes) uint64 pairs,
    then a crc32c."""
    index = np.frombuffer(shard[-(16 * chunks + 4):-4], "<u8").reshape(-1, 2)
    return int(index[i, 0]), int(index[i, 1])


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
    assert report.whole and report.episodes == 3 and report.frames == 12 and report.format_version == 3


def test_every_file_kind_is_covered(pristine):
    kinds = {f.split("/")[0] if "/" in f else f for f in files_of(pristine)}
    files = files_of(pristine)
    assert kinds == {"zarr.json", "data", "meta"}
    assert "data/images/front/c/0/0/0/0" in files and any(f.startswith("data/state/c/") for f in files)
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


def test_report_names_camera_episode_and_steps(tmp_path, monkeypatch):
    monkeypatch.setattr("embodied.data.store.FRAMES_PER_CHUNK", 2)  # a checksum covers 2 frames
    path = tmp_path / "s.zarr"
    store = new_store(path)
    for i in range(3):
        store.append(make_episode(i, length=4))
    start, _ = store.episode_range(1)
    shard = path / "data/images/wrist/c/0/0/0/0"
    raw = bytearray(shard.read_bytes())
    offset, length = chunk_in_shard(bytes(raw), start // 2 + 1, FRAMES_PER_SHARD // 2)
    raw[offset + length // 2] ^= 1  # the chunk of steps 2 and 3 of episode 1
    shard.write_bytes(bytes(raw))
    (damage,) = verify(path, progress=False).damage
    assert (damage.episode, damage.camera, damage.steps) == (1, "wrist", "2-3 (2 frames)")
    whole = make_episode(1, length=4).images["wrist"][:2]  # the chunk before still reads
    np.testing.assert_array_equal(store.frames("wrist", [start, start + 1]), whole)
    with pytest.raises(StoreError, match=r"s.zarr: camera 'wrist', episode 1, step 2 .*checksum"):
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


def old_store(path, version: int):
    """A store as version 1 (Blosc frames, a file each, no checksums) or 2 (with crc32c) wrote it."""
    group = zarr.open_group(path, mode="w-")
    h, w = SIZE
    crc = [Crc32cCodec()] if version == 2 else []
    for cam in CAMERAS:
        group.create_array(f"data/images/{cam}", shape=(0, h, w, 3), chunks=(1, h, w, 3), dtype="uint8",
                           compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle"), *crc],
                           chunk_key_encoding={"name": "default", "separator": "."})
    assert IMAGE_CODEC.cname.name == "zstd"
    for name, dim in (("state", 4), ("action", 3), *((("focus", 3),) if version == 2 else ())):
        group.create_array(f"data/{name}", shape=(0, dim), chunks=(4096, dim), dtype="float32", fill_value=np.nan,
                           compressors=[ZstdCodec(), *crc])
    group.create_array("meta/episode_ends", shape=(0,), chunks=(4096,), dtype="int64", compressors=[ZstdCodec(), *crc])
    for key, dtype in {"instruction": str, "family": str, "success": bool, "seed": "int64", "has_actions": bool,
                       "has_states": bool}.items():
        group.create_array(f"meta/{key}", shape=(0,), chunks=(4096,), dtype=dtype, compressors=[ZstdCodec(), *crc])
    attrs = {"format_version": version, "cameras": CAMERAS, "image_size": [h, w], "control_rate": 20.0,
             "robot": "test", "num_episodes": 0}
    if version == 2:
        attrs["checksums"] = {n: checksum_of((path / n / "zarr.json").read_bytes()) for n in node_names(CAMERAS)}
        attrs["attrs_crc32c"] = attrs_checksum(attrs)
    group.attrs.update(attrs)
    return path


@pytest.mark.parametrize("version", [1, 2])
def test_old_stores_still_read_append_verify_and_rewrite(tmp_path, version):
    path = old_store(tmp_path / "old.zarr", version)
    EpisodeStore.open(path, mode="a").append_many([make_episode(0), make_episode(1)])
    np.testing.assert_array_equal(EpisodeStore.open(path).episode(1).images["front"], make_episode(1).images["front"])
    assert (path / "data/images/front/c.0.0.0.0").is_file()  # still a file per frame
    report = verify(path, progress=False)
    assert report.whole and report.format_version == version
    Rewrite(path, tmp_path / "new.zarr").run()  # `embodied data rewrite`
    new = EpisodeStore.open(tmp_path / "new.zarr")
    assert (new.version, new.num_episodes) == (3, 2) and verify(new.path, progress=False).whole
    assert not (tmp_path / "new.zarr.partial").exists()
    with pytest.raises(StoreError, match="exists"):  # never over a store
        Rewrite(path, tmp_path / "new.zarr").run()
    for i in range(2):
        np.testing.assert_array_equal(new.episode(i).images["wrist"], make_episode(i).images["wrist"])
        np.testing.assert_array_equal(new.episode(i).action, make_episode(i).action)
    if version == 2:  # a damaged frame of the old layout is still found
        (path / "data/images/wrist/c.3.0.0.0").write_bytes(b"garbage")
        (damage,) = verify(path, progress=False).damage
        assert (damage.episode, damage.camera, damage.steps) == (0, "wrist", "3")
