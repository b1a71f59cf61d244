"""The tabletop env: Gymnasium API, observations, determinism, bad input, physics warnings."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import embodied.envs as envs
from embodied.envs.rendering import pixel_to_plane
from embodied.envs.tasks import InstructionError


@pytest.fixture
def env():
    e = gym.make("embodied/Pick-v1")
    yield e
    e.close()


@pytest.mark.parametrize("env_id", list(envs.ENV_IDS.values()))
def test_check_env_passes(env_id):
    e = gym.make(env_id, image_size=(32, 32))
    check_env(e.unwrapped)
    e.close()


def test_observation_contract(env):
    obs, info = env.reset(seed=0)
    assert set(obs) == {"images", "state", "instruction"}
    for cam in ("front", "wrist"):
        img = obs["images"][cam]
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8
        assert img.std() > 10  # a real picture, not a blank frame
    assert obs["state"].shape == (13,) and obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert info["task"] == "pick" and obs["instruction"] == info["instruction"]
    assert env.unwrapped.action_spec.names == ("dx", "dy", "dz", "dyaw", "gripper")


def test_image_size_and_cameras_configurable():
    e = gym.make("embodied/Reach-v1", image_size=(48, 64), cameras=("wrist",))
    obs, _ = e.reset(seed=0)
    assert set(obs["images"]) == {"wrist"} and obs["images"]["wrist"].shape == (48, 64, 3)
    e.close()


def test_same_seed_and_actions_give_same_trajectory():
    runs = []
    for _ in range(2):
        e = gym.make("embodied/Tabletop-v1", image_size=(32, 32))
        obs, _ = e.reset(seed=7)
        rng = np.random.default_rng(0)
        states, frames = [obs["state"]], [obs["images"]["front"]]
        for _ in range(15):
            obs, *_ = e.step(rng.uniform(-1, 1, 5).astype(np.float32))
            states.append(obs["state"])
            frames.append(obs["images"]["front"])
        runs.append((obs["instruction"], np.stack(states), np.stack(frames)))
        e.close()
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_another_look_changes_pixels_not_physics():
    """Video from elsewhere: another table and arm paint (and light, camera) render differently; the scene and
    its physics stay those of the seed."""
    looks = [{}, {"table_tint": (0.8, 0.55, 0.35), "arm_tint": (1.2, 0.6, 0.2)}]
    runs = []
    for look in looks:
        e = gym.make("embodied/Pick-v1", image_size=(48, 48), **look)
        obs, _ = e.reset(seed=3)
        for _ in range(5):
            obs, *_ = e.step(np.array([0.5, 0.2, -0.3, 0.0, -1.0], np.float32))
        runs.append((obs["state"], obs["images"]["front"].astype(int), obs["images"]["wrist"].astype(int)))
        e.close()
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert np.abs(runs[0][1] - runs[1][1]).mean() > 3 and np.abs(runs[0][2] - runs[1][2]).mean() > 1
    with pytest.raises(Exception, match="arm_tint must be >= 0"):
        gym.make("embodied/Pick-v1", arm_tint=(1, -1, 1))


def test_actions_move_the_gripper(env):
    env.reset(seed=0)
    start = env.unwrapped.world.grasp_pos
    for _ in range(5):
        env.step(np.array([1, 0, 0, 0, 0], np.float32))
    moved = env.unwrapped.world.grasp_pos - start
    assert 0.07 < moved[0] < 0.11 and abs(moved[1]) < 0.01 and abs(moved[2]) < 0.01  # 5 x 2 cm


def test_joint_position_actions():
    e = gym.make("embodied/Reach-v1", action_type="joint_pos", cameras=())
    e.reset(seed=0)
    assert e.action_space.shape == (6,)
    target = np.array([0.3, 0.2, 0.5, 0.1, -0.2, 0.0], np.float32)
    for _ in range(20):
        obs, *_ = e.step(target)
    spec = e.unwrapped.action_spec
    expected = np.array(spec.offset[:5]) + np.array(spec.scale[:5]) * target[:5]
    np.testing.assert_allclose(obs["state"][:5], expected, atol=0.02)
    e.close()


@pytest.mark.parametrize("action, match", [
    (np.zeros(4, np.float32), r"shape \(4,\); expected \(5,\)"),
    (np.array([0, np.nan, 0, 0, 0], np.float32), "NaN or inf"),
    (np.array([0, 0, np.inf, 0, 0], np.float32), "NaN or inf"),
])
def test_bad_actions_raise_clear_errors(env, action, match):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_unknown_task_lists_available():
    with pytest.raises(ValueError, match=r"unknown task 'fly'.*'pick'"):
        envs.TabletopEnv(task="fly")
    e = gym.make("embodied/Tabletop-v1", cameras=())
    with pytest.raises(ValueError, match=r"unknown task 'fly'.*'stack'"):
        e.reset(options={"task": "fly"})
    e.close()


def test_unknown_config_key_and_option_rejected():
    with pytest.raises(TypeError, match=r"unknown tabletop config keys \['imagesize'\].*image_size"):
        envs.TabletopEnv(imagesize=(64, 64))
    e = gym.make("embodied/Tabletop-v1", cameras=())
    with pytest.raises(ValueError, match="unknown reset options"):
        e.reset(options={"instrution": "open the drawer"})
    e.close()


def test_instruction_naming_absent_object_lists_scene():
    e = gym.make("embodied/Tabletop-v1", cameras=())
    with pytest.raises(InstructionError, match=r"no object called 'purple cube'.*available: "):
        e.reset(seed=0, options={"instruction": "pick up the purple cube"})
    with pytest.raises(InstructionError, match="matches no known task"):
        e.reset(seed=0, options={"instruction": "dance a little"})
    e.close()


def test_physics_instability_is_reported_not_hidden(env):
    env.reset(seed=0)
    data = env.unwrapped.world.data
    data.qvel[:] = 1e12  # blow the simulation up
    *_, info = env.step(np.zeros(5, np.float32))
    assert "mjWARN_BADQVEL" in info["physics_warnings"]  # MuJoCo reset its data; we say so
    *_, info = env.step(np.zeros(5, np.float32))
    assert info["physics_warnings"] == []  # reported once, when it happened


def test_vector_env_carries_fresh_instructions():
    venv = envs.make_vector_env("suite", num_envs=2, image_size=(32, 32))
    obs, _ = venv.reset(seed=3)
    first = obs["instruction"]
    assert all(isinstance(s, str) and len(s) > 5 for s in first)
    assert obs["images"]["front"].shape == (2, 32, 32, 3)
    obs, _ = venv.reset(seed=11)
    assert obs["instruction"] != first  # not a stale copy
    obs, *_ = venv.step(np.zeros((2, 5), np.float32))
    venv.close()


def test_unknown_task_names_what_is_available():
    assert envs.gym_id("reach") == "embodied/Reach-v1" and envs.gym_id("suite") == "embodied/Tabletop-v1"
    with pytest.raises(ValueError, match=r"unknown task 'juggle'; tabletop families: \['reach'"):
        envs.make_vector_env("juggle", num_envs=1)  # in this process, before any worker starts


def test_a_folder_named_metaworld_is_not_the_package(tmp_path):
    """A results folder called metaworld on the path (pytest puts test folders there) must not switch Meta-World on
    where the package is missing: that import fails."""
    (tmp_path / "metaworld").mkdir()
    code = "import embodied.envs as e; print(len(e.METAWORLD_IDS), e.gym_id('reach'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(len(envs.METAWORLD_IDS)), "embodied/Reach-v1"]


@pytest.mark.parametrize("overrides, field", [
    ({"image_size": (0, 0)}, "image_size"), ({"image_size": (96,)}, "image_size"),
    ({"render_size": (64, -1)}, "render_size"), ({"ctrl_dt": 0}, "ctrl_dt"), ({"sim_dt": float("nan")}, "sim_dt"),
    ({"max_step": -0.01}, "max_step"), ({"settle_steps": -1}, "settle_steps"), ({"multisamples": 1.5}, "multisamples"),
    ({"action_type": "torque"}, "action_type"), ({"split": "test"}, "split"), ({"sim_dt": 0.003}, "sim_dt"),
])
def test_bad_config_values_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        envs.TabletopEnv(**overrides)


def test_long_instruction_is_refused_with_a_short_echo():
    e = gym.make("embodied/Tabletop-v1", cameras=())
    with pytest.raises(InstructionError, match="too long: at most 128") as err:
        e.reset(seed=0, options={"instruction": "x" * 100_000})
    assert len(str(err.value)) < 200 and "100,000 characters" in str(err.value)
    e.close()


def test_quick_start_exits_cleanly(tmp_path):
    """The README's snippet run as a file, without env.close(): no renderer traceback at shutdown and
    no MuJoCo log file left in the working folder, even after a physics warning."""
    script = tmp_path / "quick.py"
    script.write_text(
        "import gymnasium as gym\nimport numpy as np\nimport embodied.envs\n"
        "env = gym.make('embodied/Tabletop-v1')\nobs, info = env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"
        "env.unwrapped.world.data.qvel[0] = np.inf\nenv.step(np.zeros(5, np.float32))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def _chroma(rgb) -> np.ndarray:  # shading darkens a side but keeps its chromaticity
    return np.asarray(rgb, float) / max(float(np.sum(rgb)), 1e-6)


def _color_at(image, xyz_pixel, palette) -> str:
    u, v, depth = xyz_pixel
    return min(palette, key=lambda c: np.linalg.norm(palette[c] - _chroma(image[int(v / depth), int(u / depth)])))


def test_camera_projections_point_at_each_object():
    """A store's camera_projections must say where things appear: the pixel an object's centre projects to
    shows that object's color (the nearest of the palette), for every object of several scenes in the
    static front camera, and for the named object in the wrist camera as the expert reaches for it."""
    from embodied.envs.experts import ScriptedExpert

    e = gym.make("embodied/Pick-v1", cameras=("front", "wrist"), image_size=(96, 96))
    projections = e.unwrapped.camera_projections()
    assert set(projections["world"]) == {"front"} and set(projections["ee"]) == {"wrist"}
    front, wrist = np.asarray(projections["world"]["front"]), np.asarray(projections["ee"]["wrist"])
    world = e.unwrapped.world
    palette = {name: _chroma(rgb) for name, rgb in world.catalog["colors"].items()}
    checked = wrist_checked = wrist_right = 0
    for seed in range(3):
        obs, _ = e.reset(seed=seed)
        for thing in (t for t in world.things if t.kind == "object"):
            pixel = front @ np.append(world.pos(thing), 1.0)
            assert _color_at(obs["images"]["front"], pixel, palette) == thing.color, (seed, thing.name)
            back = pixel_to_plane(front, pixel[:2] / pixel[2], world.pos(thing)[2])
            np.testing.assert_allclose(back, world.pos(thing)[:2], atol=1e-6)  # and back onto the table
            checked += 1
        expert, target, seen = ScriptedExpert(e), e.unwrapped.task.obj, []
        for _ in range(8):  # the first steps toward the named object (closer, its top hides its centre)
            state = obs["state"].astype(float)
            pixel = wrist @ np.append(_quat_to_matrix(state[9:13]).T @ (world.pos(target) - state[6:9]), 1.0)
            if pixel[2] > 0 and (0 <= pixel[:2] / pixel[2]).all() and (pixel[:2] / pixel[2] < 96).all():
                seen.append(_color_at(obs["images"]["wrist"], pixel, palette) == target.color)
            obs, *_ = e.step(expert.act(obs)[0])
        wrist_checked += len(seen)
        wrist_right += sum(seen)
    e.close()
    assert checked >= 9 and wrist_checked >= 10 and wrist_right >= 0.75 * wrist_checked


def _quat_to_matrix(q) -> np.ndarray:
    import mujoco

    out = np.empty(9)
    mujoco.mju_quat2Mat(out, np.asarray(q, float))
    return out.reshape(3, 3)
