"""Stores on object storage: an s3:// URL works where a path does, against a real S3-compatible server
(moto's server mode, started here on a free local port), not a mock of the client."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from embodied.data import EpisodeStore, StoreError
from embodied.data.places import location
from embodied.data.verify import verify
from embodied.data.windows import WindowDataset
from tests.data.conftest import CAMERAS, make_episode, new_store

ROOT = Path(__file__).resolve().parents[2]
s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3():
    """A bucket on a local S3 server; the client finds it through the standard AWS_* variables."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir("bucket")
        yield fs
        s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def test_a_remote_store_round_trips_verifies_and_reads_windows_like_a_local_copy(s3, tmp_path):
    url = "s3://bucket/round.zarr"
    remote, local = new_store(url), new_store(tmp_path / "local.zarr")
    for batch in ([0, 1], [2]):
        remote.append_many([make_episode(i) for i in batch])
        local.append_many([make_episode(i) for i in batch])
    with pytest.raises(StoreError, match="already exists"):
        new_store(url)
    reopened = EpisodeStore.open(url)
    assert (reopened.num_episodes, reopened.version) == (3, 3)
    np.testing.assert_array_equal(reopened.episode(2).images["wrist"], make_episode(2).images["wrist"])
    assert s3.find("bucket/round.zarr/data/images/front/c")  # frames live in the bucket, in shards
    assert verify(url, progress=False).whole
    a = WindowDataset(url, obs_horizon=2, action_horizon=3)
    b = WindowDataset(local.path, obs_horizon=2, action_horizon=3)
    order = list(range(len(b)))[::-1]
    for x, y in zip(a.__getitems__(order), b.__getitems__(order), strict=True):
        for c in CAMERAS:
            np.testing.assert_array_equal(x["images"][c], y["images"][c])
        np.testing.assert_array_equal(x["action"], y["action"])


def test_damage_on_a_remote_store_is_named(s3):
    url = "s3://bucket/damaged.zarr"
    store = new_store(url)
    store.append_many([make_episode(0, length=4), make_episode(1, length=4)])
    shard = "bucket/damaged.zarr/data/images/wrist/c/0/0/0/0"
    raw = bytearray(s3.cat_file(shard))
    raw[len(raw) // 3] ^= 1  # inside the frames, before the index
    s3.pipe_file(shard, bytes(raw))
    report = verify(url, progress=False)
    assert not report.whole and {d.camera for d in report.damage} == {"wrist"}
    s3.rm_file(shard)
    with pytest.raises(StoreError, match="files are missing .*images/wrist"):
        EpisodeStore.open(url)
    missing = verify(url, progress=False).damage
    assert [d.file for d in missing] == ["data/images/wrist/c/0/0/0/0"] and "missing" in missing[0].why
    with pytest.raises(StoreError, match="no zarr.json"):
        EpisodeStore.open("s3://bucket/nothing.zarr")


def test_collected_into_a_url_trains_to_the_same_loss_as_a_local_copy(s3, tmp_path):
    from embodied.data.collect import collect
    from embodied.data.recipes import Recipe
    from embodied.training.config import TrainConfig
    from embodied.training.loop import train

    recipe = Recipe(name="t", families=["reach", "press_button"], episodes_per_family=2, image_size=(32, 32))
    url = "s3://bucket/train.zarr"
    for out in (tmp_path / "t.zarr", url):  # one worker: the same episodes in the same order
        collect(recipe, out, workers=1, progress=False)
    assert collect(recipe, url, workers=1, progress=False).num_episodes == 4  # resumed: nothing to add
    losses = {}
    for name, store in (("local", str(tmp_path / "t.zarr")), ("remote", url)):
        cfg = TrainConfig(name=name, store=store, out=tmp_path, steps=3, batch_size=8, workers=0, eval_every=0,
                          final_eval_episodes=0, ckpt_every=100, log_every=1, warmup=2)
        train(cfg, location(store), tmp_path)
        rows = (tmp_path / name / "metrics.csv").read_text().splitlines()
        losses[name] = [float(r.split(",")[2]) for r in rows[1:] if r.split(",")[2]]
    assert len(losses["local"]) == 3
    np.testing.assert_allclose(losses["remote"], losses["local"], rtol=1e-5)
    # evaluation of the run reads its families and world from the store in the bucket
    evaluate = runpy.run_path(str(ROOT / "scripts/evaluate.py"))
    evaluate["main"](evaluate["Args"](str(tmp_path / "remote"), episodes=1, num_envs=2, random_baseline=False,
                                      json=tmp_path / "eval.json"))
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["families"] == ["press_button", "reach"]
    assert result["world"] == EpisodeStore.open(url).attrs["recipe"]["world"]


def test_export_to_lerobot_from_a_url(s3, tmp_path):
    from embodied.cli import ExportLerobot
    from embodied.data.lerobot import import_lerobot

    url = "s3://bucket/export.zarr"
    new_store(url).append_many([make_episode(0), make_episode(1)])
    ExportLerobot(url, tmp_path / "lerobot").run()
    back = import_lerobot(tmp_path / "lerobot", tmp_path / "back.zarr")
    assert back.num_episodes == 2
    np.testing.assert_allclose(back.episode(1).action, make_episode(1).action, atol=1e-6)


def test_data_info_and_verify_commands_take_a_url(s3, capsys):
    from embodied.cli import Info, Verify

    url = "s3://bucket/cli.zarr"
    new_store(url).append_many([make_episode(0), make_episode(1)])
    Info(url).run()
    Verify(url).run()  # whole: no SystemExit
    out = capsys.readouterr().out
    assert "cli.zarr" in out and "whole" in out
