"""Training: exact resume, checkpoint round trip, a live-env episode, two-node DDP with gloo on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import embodied.envs as envs
from embodied.data.collect import collect
from embodied.data.recipes import Recipe
from embodied.envs.simrobot import free_port
from embodied.evaluation.rollouts import wilson
from embodied.policies.policy import VLAPolicy
from embodied.runtime import ChunkExecutor
from embodied.training.config import ModelOverrides, TrainConfig
from embodied.training.loop import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    recipe = Recipe(name="t", families=["reach", "press_button"], episodes_per_family=2, image_size=(32, 32))
    return collect(recipe, tmp_path_factory.mktemp("data") / "t.zarr", workers=2, progress=False).path


def config(store, out, **kw):
    base = dict(name="r", store=store, out=out, steps=4, batch_size=8, workers=0, eval_every=0,
                final_eval_episodes=0, ckpt_every=100, log_every=1, warmup=2, fresh=False)
    return TrainConfig(**{**base, **kw})


def weights(run_dir, step):
    return load_file(run_dir / "checkpoints" / f"step_{step:06d}" / "model.safetensors")


@pytest.mark.parametrize("head", ["regression", "flow"])
def test_two_steps_then_resume_two_equals_four_straight(store, tmp_path, head):
    train(config(store, tmp_path / "a", model=ModelOverrides(head=head), stop_at=2), store, tmp_path / "a")
    assert (tmp_path / "a/r/checkpoints/latest").read_text() == "step_000002"
    train(config(store, tmp_path / "a", model=ModelOverrides(head=head)), store, tmp_path / "a")  # resumes at 2
    train(config(store, tmp_path / "b", model=ModelOverrides(head=head)), store, tmp_path / "b")
    resumed, straight = weights(tmp_path / "a/r", 4), weights(tmp_path / "b/r", 4)
    assert resumed.keys() == straight.keys()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=1e-6, msg=k)
    head = "action_head.weight"
    assert not torch.equal(weights(tmp_path / "a/r", 2)[head], straight[head])  # it trained
    rows = (tmp_path / "a/r/metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) >= 5


def test_checkpoint_round_trip_gives_identical_actions(store, tmp_path):
    result = train(config(store, tmp_path, steps=3, final_eval_episodes=1, val_fraction=0.0), store, tmp_path)
    assert "val_loss" not in result  # no validation episodes: rollouts only
    mean = result["rollouts"]["mean"]
    wins = sum(r["success"] for f in ("reach", "press_button") for r in result["rollouts"][f]["runs"])
    assert mean["episodes"] == 2 and mean["success"] == wins / 2 and mean["ci95"] == wilson(wins, 2)
    ckpt = tmp_path / "r/checkpoints/step_000003"
    spec = json.loads((ckpt / "policy.json").read_text())
    assert spec["chunk_size"] == 16 and spec["cameras"] == ["front", "wrist"] and spec["control_rate"] == 20
    assert spec["action_spec"]["names"] == ["dx", "dy", "dz", "dyaw", "gripper"] and "stats" in spec
    trainer = json.loads((ckpt / "trainer.json").read_text())
    assert trainer["step"] == 3 and trainer["config"]["batch_size"] == 8
    a, b = VLAPolicy.load(ckpt), VLAPolicy.load(ckpt)
    env = gym.make(envs.ENV_IDS["reach"], image_size=(32, 32))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(a.act(obs), b.act(obs))
    torch.testing.assert_close(a.model.state_mean, torch.tensor(spec["stats"]["state"]["mean"]))
    env.close()
    failed = [f for f, r in result["rollouts"].items() if f != "mean" and r["success"] < 1]
    assert sorted(p.name.split("_seed")[0] for p in (tmp_path / "r/failures").glob("*.mp4")) == sorted(failed)


def test_failure_videos_0_writes_none(store, tmp_path):
    result = train(config(store, tmp_path, steps=1, final_eval_episodes=1, failure_videos=0), store, tmp_path)
    assert "rollouts" in result and not (tmp_path / "r/failures").exists()


def test_policy_acts_in_a_live_episode(store, tmp_path):
    train(config(store, tmp_path, steps=2), store, tmp_path)
    policy = VLAPolicy.load(tmp_path / "r/checkpoints/step_000002")
    env = gym.make(envs.ENV_IDS["press_button"], image_size=(32, 32))
    obs, _ = env.reset(seed=3)
    policy.reset()
    executor = ChunkExecutor("receding", replan_every=4)
    start = env.unwrapped.world.grasp_pos
    for _ in range(12):
        if executor.needs_plan():
            chunk = policy.act(obs)
            assert chunk.shape == (16, 5) and chunk.dtype == np.float32 and np.all(np.abs(chunk) <= 1)
            executor.add(chunk)
        obs, _, terminated, truncated, _ = env.step(executor.next())
        assert not truncated
    assert np.linalg.norm(env.unwrapped.world.grasp_pos - start) > 1e-3  # the arm moved
    env.close()


def two_nodes(store, out, *extra):
    """Two "machines" on localhost, one process each: torchrun's c10d rendezvous (what a cluster's launcher
    uses), DDP over gloo, the run folder on storage both see. -> (node 0's stdout, node 1's stdout)."""
    port = free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
           f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=rehearsal", "scripts/train_vla.py", "--store", str(store),
           "--out", str(out), "--name", "ddp", "--steps", "4", "--batch-size", "4", "--workers", "0",
           "--eval-every", "0", "--final-eval-episodes", "0", "--log-every", "1", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-3000:]
    return [o for o, _ in outputs]


@pytest.mark.slow
def test_two_nodes_train_checkpoint_to_shared_storage_and_resume_exactly(store, tmp_path):
    two_nodes(store, tmp_path / "a", "--stop-at", "2")  # a job cut by its time limit
    assert (tmp_path / "a/ddp/checkpoints/latest").read_text() == "step_000002"
    resumed = two_nodes(store, tmp_path / "a")  # the next job: both nodes load rank 0's checkpoint
    assert sum("resuming ddp from step_000002" in out for out in resumed) == 1  # rank 0 says so, once
    two_nodes(store, tmp_path / "b")  # the same four steps straight
    a, b = weights(tmp_path / "a/ddp", 4), weights(tmp_path / "b/ddp", 4)
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert not torch.equal(weights(tmp_path / "a/ddp", 2)["action_head.weight"], b["action_head.weight"])
    rows = (tmp_path / "a/ddp/metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:5]] == ["1", "2", "3", "4"]  # one row per step, across both jobs
    assert all(float(r.split(",")[5]) > 0 for r in rows[1:5])  # samples/s counts both processes


def test_step_batches_are_stateless_and_balance_families():
    from embodied.training.loop import StepBatches

    groups = np.array(["reach"] * 10 + ["place"] * 90)
    full = list(StepBatches(100, 64, seed=1, start=0, steps=50, rank=0, groups=groups))
    resumed = list(StepBatches(100, 64, seed=1, start=20, steps=50, rank=0, groups=groups))
    assert resumed == full[20:]  # a resumed run draws exactly the batches it would have
    drawn = groups[np.concatenate(full)]
    assert 0.45 < np.mean(drawn == "reach") < 0.55  # 10% of the frames, half of the draws
    plain = np.concatenate(list(StepBatches(100, 64, seed=1, start=0, steps=50, rank=0)))
    assert np.mean(groups[plain] == "reach") < 0.15
    assert list(StepBatches(100, 8, 1, 0, 5, rank=1)) != list(StepBatches(100, 8, 1, 0, 5, rank=0))


def test_step_batches_repeat_samples_within_their_family_and_leave_other_families_alone():
    from embodied.training.loop import StepBatches

    groups = np.array(["reach"] * 10 + ["place"] * 90)
    repeats = np.ones(100, int)
    repeats[90:] = 4  # 10 of place's 90 frames, 4 times in its pool: 40/120 of place's draws
    full = list(StepBatches(100, 64, seed=1, start=0, steps=50, rank=0, groups=groups, repeats=repeats))
    assert list(StepBatches(100, 64, 1, 20, 50, 0, groups, repeats=repeats)) == full[20:]
    drawn = np.concatenate(full)
    assert 0.45 < np.mean(groups[drawn] == "reach") < 0.55  # families stay balanced
    place = drawn[groups[drawn] == "place"]
    assert 0.28 < np.mean(place >= 90) < 0.39  # without repeats: 10/90 = 0.11
    assert set(drawn) == set(range(100))  # every sample can still be drawn
    plain = np.concatenate(list(StepBatches(100, 64, seed=1, start=0, steps=50, rank=0, groups=groups)))
    np.testing.assert_array_equal(drawn[groups[drawn] == "reach"], plain[groups[plain] == "reach"])


def test_bad_boosts_and_video_counts_are_refused_before_anything_is_written(store, tmp_path):
    from embodied.errors import UserError

    with pytest.raises(UserError, match="release_boost must be >= 1"):
        train(config(store, tmp_path, release_boost=0), store, tmp_path)
    with pytest.raises(UserError, match="start_boost must be >= 1"):
        train(config(store, tmp_path, start_boost=0), store, tmp_path)
    with pytest.raises(UserError, match="failure_videos must be >= 0"):
        train(config(store, tmp_path, failure_videos=-1), store, tmp_path)
    assert not (tmp_path / "r").exists()


def test_wilson_interval():
    lo, hi = wilson(0, 20)
    assert lo == 0 and 0.15 < hi < 0.17  # 0/20 still allows up to ~16%
    lo, hi = wilson(10, 20)
    assert 0.29 < lo < 0.31 and 0.69 < hi < 0.71
    assert wilson(20, 20)[1] == 1.0 and wilson(0, 0) == [0.0, 1.0]


@pytest.mark.slow
def test_eval_script_with_heldout_split_and_language_probe(store, tmp_path):
    train(config(store, tmp_path, steps=2), store, tmp_path)
    out = subprocess.run([sys.executable, str(ROOT / "scripts/evaluate.py"), str(tmp_path / "r"),
                          "--split", "heldout",
                          "--episodes", "2", "--families", "press_button", "--probe", "1", "--no-random-baseline",
                          "--json", str(tmp_path / "e.json")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["split"] == "heldout" and result["results"]["press_button"]["episodes"] == 2
    assert result["seeds"] == {"press_button": [1_700_000, 1_700_001]}  # the selection block, press_button's scenes
    assert result["block"] == "selection" and len(result["policy"]["model_sha256"]) == 64
    assert result["versions"]["mujoco"] and result["versions"]["commit"]
    probe = result["probe"]["press_button"]
    assert probe["runs"] == 2  # one scene, each of its two buttons named
    assert probe["success"] in (0.0, 0.5, 1.0) and probe["both_right"] == float(probe["success"] == 1.0)
    assert probe["wrong_target"] in (0.0, 0.5, 1.0) and probe["wrong_target"] <= 1 - probe["success"]
