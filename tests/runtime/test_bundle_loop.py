"""Export and the torch-free runtime, end to end: parity (fp32, int8), refusals of damaged or hostile
bundles and bad observations, the wire format, and the simulated-hardware loop with faults injected into
the policy process (SIGSTOP, SIGCONT, kill, restart)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import msgpack
import numpy as np
import onnx
import pytest

import embodied.envs as envs
from embodied.data.collect import collect
from embodied.data.recipes import Recipe
from embodied.envs.simrobot import free_port
from embodied.errors import UserError
from embodied.export.bundle import export_bundle
from embodied.policies.policy import VLAPolicy
from embodied.runtime.bundle import BundleError, OnnxPolicy, file_sha256
from embodied.runtime.robot import MessageError, decode_chunk, encode_chunk, encode_observation
from embodied.training.config import TrainConfig
from embodied.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
SIZE = (32, 32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    recipe = Recipe(name="t", families=["reach"], episodes_per_family=1, image_size=SIZE)
    store = collect(recipe, root / "t.zarr", workers=1, progress=False).path
    train(TrainConfig(name="r", store=store, out=root, steps=1, batch_size=4, workers=0, eval_every=0,
                      final_eval_episodes=0, log_every=1, warmup=1), store, root)
    ckpt = root / "r/checkpoints/step_000001"
    spec = export_bundle(VLAPolicy.load(ckpt), root / "bundle", int8=True, source=str(ckpt))
    return ckpt, root / "bundle", spec


def observation(seed=0):
    env = gym.make(envs.ENV_IDS["reach"], image_size=SIZE)
    obs, _ = env.reset(seed=seed)
    env.close()
    return obs


def test_parity_fp32_and_int8(exported):
    ckpt, bundle, spec = exported
    assert spec["parity"]["policy"]["max_abs_diff"] <= 1e-4 and spec["parity"]["encoder"]["max_abs_diff"] <= 1e-4
    assert 0 < spec["parity"]["policy_int8"]["max_abs_diff"] < 1.0  # quantized: close, not equal
    assert spec["sizes"]["policy_int8.onnx"] < spec["sizes"]["policy.onnx"] / 2
    for name in ("policy.onnx", "encoder.onnx"):
        onnx.checker.check_model(str(bundle / name), full_check=True)
    torch_policy, runtime = VLAPolicy.load(ckpt), OnnxPolicy(bundle)
    for seed in range(3):  # typed instructions go through the bundle's own tokenizer and encoder
        obs = observation(seed)
        torch_policy.reset()
        runtime.reset()
        assert np.abs(runtime.act(obs) - torch_policy.act(obs)).max() <= 1e-4
    assert OnnxPolicy(bundle, precision="int8").act(obs).shape == (spec["chunk_size"], spec["action_dim"])


def copy(bundle, tmp_path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    return out


def rehash(bundle: Path, name: str) -> None:
    spec = json.loads((bundle / "policy_spec.json").read_text())
    spec["files"][name] = file_sha256(bundle / name)
    (bundle / "policy_spec.json").write_text(json.dumps(spec))


@pytest.mark.parametrize("damage, message", [
    ("missing", "encoder.onnx is missing"),
    ("flipped", "does not match its sha256"),
    ("no_spec", "not a bundle"),
    ("dotdot", "outside the bundle"),
    ("absolute", "outside the bundle"),
    ("symlink", "symlink"),
])
def test_damaged_or_hostile_bundles_are_refused(exported, tmp_path, damage, message):
    bundle = copy(exported[1], tmp_path)
    if damage == "missing":
        (bundle / "encoder.onnx").unlink()
    elif damage == "flipped":
        data = bytearray((bundle / "policy.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (bundle / "policy.onnx").write_bytes(bytes(data))
    elif damage == "no_spec":
        (bundle / "policy_spec.json").unlink()
    elif damage in ("dotdot", "absolute"):  # a graph whose weights would be read from elsewhere, hash updated
        secret = tmp_path / "secret.bin"
        secret.write_bytes(b"\0" * 64)
        model = onnx.load(str(bundle / "policy.onnx"))
        tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        location = "../secret.bin" if damage == "dotdot" else str(secret)
        tensor.external_data.add(key="location", value=location)
        onnx.save(model, str(bundle / "policy.onnx"))
        rehash(bundle, "policy.onnx")
    elif damage == "symlink":
        outside = tmp_path / "tokenizer.json"
        shutil.move(bundle / "tokenizer.json", outside)
        (bundle / "tokenizer.json").symlink_to(outside)
    with pytest.raises(BundleError, match=message):
        OnnxPolicy(bundle)


def test_bad_observations_are_refused_before_anything_runs(exported):
    runtime, obs = OnnxPolicy(exported[1]), observation()
    bad = [
        ({**obs, "images": {**obs["images"], "top": obs["images"]["front"]}}, "unknown \\['top'\\]"),
        ({**obs, "images": {"front": obs["images"]["front"]}}, "missing \\['wrist'\\]"),
        ({**obs, "images": {**obs["images"], "front": np.zeros((64, 64, 3), np.uint8)}},
         "expected uint8 \\(32, 32, 3\\)"),
        ({**obs, "images": {**obs["images"], "front": obs["images"]["front"].astype(np.float32)}}, "got float32"),
        ({**obs, "state": obs["state"][:5]}, "state: expected float \\(13,\\)"),
        ({"images": obs["images"]}, "a dict with images, state and instruction"),
    ]
    for o, message in bad:
        with pytest.raises(UserError, match=message):
            runtime.act(o)


def test_wire_format_refuses_wrong_messages():
    chunk = np.zeros((16, 5), np.float32)
    assert decode_chunk(encode_chunk(chunk, 7), 16, 5)[1] == 7
    obs = {"images": {"front": np.zeros((4, 4, 3), np.uint8)}, "state": np.zeros(3, np.float32), "instruction": "x"}
    for raw, message in [
        (encode_observation(obs, 1, 0.0), "expected a 'chunk' message, got type 'obs'"),
        (b"\xc1garbage", "not msgpack"),
        (msgpack.packb([1, 2]), "got type 'list'"),
        (encode_chunk(np.zeros((16, 4), np.float32), 1), "expected float32"),
        (msgpack.packb({"type": "chunk", "tick": "3", "episode": 0, "chunk": {"dtype": "float32", "shape": [1, 5],
                                                                              "data": b"\0" * 20}}),
         "'tick' must be a non-negative int"),
    ]:
        with pytest.raises(MessageError, match=message):
            decode_chunk(raw, 16, 5)


POLICY_PROCESS = """
import sys
sys.modules["torch"] = None  # the policy process must never need torch
from embodied.runtime.bundle import OnnxPolicy
from embodied.runtime.loop import drive
from embodied.runtime.robot import ZmqRobot
robot = ZmqRobot(sys.argv[2], sys.argv[3])
robot.connect()
drive(robot, OnnxPolicy(sys.argv[1], threads=1), idle_timeout=30)
"""


@pytest.mark.slow
def test_watchdog_holds_when_the_policy_stops_and_resumes_after(exported, tmp_path):
    rate, timeout = 20.0, 0.2
    period = 1 / rate
    addresses = [f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"]
    config = {"observations": addresses[0], "actions": addresses[1], "rate": rate, "family": "press_button",
              "cameras": ["front", "wrist"], "image_size": list(SIZE), "timeout_ms": 1e3 * timeout,
              "max_ticks": int(15 * rate), "stop_on_success": False, "report": str(tmp_path / "report.json")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    robot = subprocess.Popen([sys.executable, "-m", "embodied.envs.simrobot", json.dumps(config)], cwd=ROOT,
                             env=env, stdout=subprocess.DEVNULL)

    def policy():
        return subprocess.Popen([sys.executable, "-c", POLICY_PROCESS, str(exported[1]), *addresses], cwd=ROOT,
                                env=env, stderr=subprocess.PIPE)

    first = policy()
    time.sleep(6.0)  # both processes up, plans flowing
    stopped = time.perf_counter()  # CLOCK_MONOTONIC: the robot's tick stamps are on the same clock
    first.send_signal(signal.SIGSTOP)
    time.sleep(1.0)
    resumed = time.perf_counter()
    first.send_signal(signal.SIGCONT)
    time.sleep(1.5)
    killed = time.perf_counter()
    first.kill()
    time.sleep(1.0)
    second = policy()  # a restarted policy process picks up where the robot is
    assert robot.wait(timeout=60) == 0
    second.wait(timeout=60)
    assert second.returncode == 0, second.stderr.read().decode()[-2000:]
    log = json.loads((tmp_path / "report.json").read_text())["episodes"][0]["log"]

    def first_tick(after, held):
        return next(t for t in log if t["stamp"] > after and t["held"] == held)

    assert not log[-1]["held"] and sum(not t["held"] for t in log if t["stamp"] < stopped) > 20
    for fault in (stopped, killed):
        hold = first_tick(fault, True)
        # time to hold: at most timeout + one period after the last plan arrived; a plan already in flight
        # when the process stopped is picked up at the next tick, so from the fault itself, one more period.
        # A loaded machine runs ticks late: the robot's own measured lateness (jitter) is added to the bounds.
        late = max(t["jitter"] for t in log if fault <= t["stamp"] <= hold["stamp"])
        assert hold["plan_age"] <= timeout + period + late + 0.01
        assert hold["stamp"] - fault <= timeout + 2 * period + late + 0.03
        # and it keeps holding (never replays a stale plan) until plans come again
        assert all(t["held"] for t in log if hold["stamp"] <= t["stamp"] < fault + 0.9)
    assert first_tick(resumed, False)["stamp"] < killed  # SIGCONT: acting again
    assert any(not t["held"] for t in log if t["stamp"] > killed + 1.0)  # the restarted process drives


TORCH_FREE = """
import importlib.util, sys
import numpy as np
from embodied.runtime.bundle import OnnxPolicy
policy = OnnxPolicy(sys.argv[1])
obs = dict(np.load(sys.argv[2], allow_pickle=False))
obs = {"images": {c: obs[c] for c in policy.cameras}, "state": obs["state"], "instruction": "pick up the red cube"}
np.save(sys.argv[3], policy.act(obs))
assert "torch" not in sys.modules and importlib.util.find_spec("torch") is None, "torch is here"
"""


@pytest.mark.slow
def test_runtime_installs_and_runs_in_a_venv_without_torch(exported, tmp_path):
    """`pip install 'embodied[runtime]'` into a fresh venv (versions from the lock) pulls no torch, and
    the bundle runs there with the same chunk as here."""
    venv, source = tmp_path / "venv", tmp_path / "source"  # a copy: building writes build/ next to the source
    shutil.copytree(ROOT / "embodied", source / "embodied", ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", f"{source}[runtime]",
                          "-c", str(ROOT / "requirements.lock")], capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    runtime = OnnxPolicy(exported[1])
    obs = {c: np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8) for c in runtime.cameras}
    obs["state"] = np.zeros(runtime.spec["state_dim"], np.float32)
    np.savez(tmp_path / "obs.npz", **obs)
    run = subprocess.run([str(venv / "bin/python"), "-c", TORCH_FREE, str(exported[1]), str(tmp_path / "obs.npz"),
                          str(tmp_path / "chunk.npy")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    want = runtime.act({"images": {c: obs[c] for c in runtime.cameras}, "state": obs["state"],
                        "instruction": "pick up the red cube"})
    np.testing.assert_allclose(np.load(tmp_path / "chunk.npy"), want, atol=1e-5)


def test_camera_frames_come_out_as_the_policy_was_trained(tmp_path):
    from embodied.media import write_mp4
    from embodied.runtime.camera import Camera, fit_frame

    # a 4:3 "camera" showing a 3:3 centre square of known colour: the crop keeps exactly that square
    frames = []
    for i in range(5):
        frame = np.zeros((96, 128, 3), np.uint8)
        frame[:, 16:112] = (40 * i, 200, 90)
        frames.append(frame)
    write_mp4(tmp_path / "cam.mp4", frames, fps=10)
    camera = Camera(str(tmp_path / "cam.mp4"), SIZE)
    got = []
    while (frame := camera.read()) is not None:
        got.append(frame)
    camera.close()
    assert len(got) == 5 and got[0].shape == (*SIZE, 3) and got[0].dtype == np.uint8
    for i, f in enumerate(got):  # RGB order and the cropped region's colour, within H.264 tolerance
        assert np.abs(f.reshape(-1, 3).mean(0) - (40 * i, 200, 90)).max() < 8
    with pytest.raises(UserError, match="could not be opened"):
        Camera(str(tmp_path / "none.mp4"), SIZE)
    with pytest.raises(UserError, match="uint8 \\(h, w, 3\\)"):
        fit_frame(np.zeros((10, 10), np.uint8), SIZE)


@pytest.mark.slow
def test_run_robot_loop_script_records_an_episode(exported, tmp_path):
    cmd = [sys.executable, "scripts/run_robot_loop.py", "--bundle", str(exported[1]), "--family", "reach",
           "--rate", "20", "--latency-ms", "20", "--action-delay-ms", "10", "--state-noise", "0.001",
           "--delay-steps", "0", "3", "--timeout-ms", "400", "--video", str(tmp_path / "loop.mp4"),
           "--store", str(tmp_path / "loop.zarr"), "--json", str(tmp_path / "loop.json")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "deadline misses" in run.stdout and "plan age at use" in run.stdout and "cold start" in run.stdout
    result = json.loads((tmp_path / "loop.json").read_text())
    (now, late), cold = result["runs"], result["cold_start"]
    assert [now["delay_steps"], late["delay_steps"]] == [0, 3] and now["policy"]["plans"] > 0
    # the injected delay shows in the robot's own accounting: plans used 3+ ticks after their observation
    assert late["robot"]["episodes"][0]["plan_age_ms"]["p50"] >= 150 > now["robot"]["episodes"][0]["plan_age_ms"]["p50"]
    assert late["policy"]["turnaround_ms"]["p50"] >= 150 and 0 < cold["warmup_s"] <= cold["ready_s"]
    from embodied.data.store import EpisodeStore

    store = EpisodeStore.open(tmp_path / "loop.zarr")  # both runs' episodes
    assert store.num_episodes == 2
    assert len(store.actions()) == sum(r["robot"]["episodes"][0]["ticks"] for r in (now, late))
    assert all((tmp_path / f"loop_delay{d}.mp4").stat().st_size > 1000 for d in (0, 3))  # one video per delay
    bad = subprocess.run([sys.executable, "scripts/run_robot_loop.py", "--bundle", str(tmp_path), "--family", "reach"],
                         cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "not a bundle" in bad.stderr and "Traceback" not in bad.stderr
