"""Meta-World v3 adapter. metaworld pins mujoco==3.3.0, so these run in their own env: `make test-metaworld`."""

import pytest

from embodied.envs import METAWORLD_IDS

# embodied's own check, not importorskip: importing metaworld first would load MuJoCo before embodied picks its GL
# backend
if not METAWORLD_IDS:
    pytest.skip("metaworld is not installed here: it pins mujoco==3.3.0, so it has its own env "
                "(`make test-metaworld` builds it and runs these tests)", allow_module_level=True)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

from embodied.data.collect import collect, reset_options  # noqa: E402
from embodied.data.recipes import load_recipe  # noqa: E402
from embodied.envs import METAWORLD_IDS, expert_for, gym_id, metaworld  # noqa: E402
from embodied.envs.experts import ScriptedExpert  # noqa: E402
from embodied.envs.metaworld import (  # noqa: E402
    ALL_V3_ENVIRONMENTS,
    MT10,
    MetaWorldExpert,
    env_id,
    instruction,
)
from embodied.envs.rendering import mujoco  # noqa: E402
from embodied.errors import UserError  # noqa: E402
from embodied.evaluation.rollouts import evaluate  # noqa: E402
from embodied.policies.policy import VLAPolicy  # noqa: E402
from embodied.training.loop import train  # noqa: E402
from tests.training.test_train import config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CAMERAS = ("corner", "corner2", "behindGripper", "gripperPOV")
GRIPPER = ("hand", "rightclaw", "leftclaw", "rightpad", "leftpad", "right_hand")


@pytest.fixture(scope="module")
def env():
    e = gym.make(METAWORLD_IDS["reach-v3"], cameras=CAMERAS, image_size=(48, 64))
    yield e
    e.close()


def test_registry_names_and_instructions():
    assert len(METAWORLD_IDS) == 50 and set(MT10) <= set(METAWORLD_IDS)
    assert env_id("button-press-topdown-v3") == "embodied/MetaWorld-ButtonPressTopdownV3-v0"
    assert METAWORLD_IDS["reach-v3"] == "embodied/MetaWorld-ReachV3-v0"
    assert all(len(instruction(t)) > 0 and not instruction(t).endswith("v3") for t in METAWORLD_IDS)
    assert instruction("drawer-open-v3") == "open the drawer"
    assert instruction("stick-pull-v3") == "stick pull"  # no hand-written one: the name in words
    assert gym_id("reach-v3") == METAWORLD_IDS["reach-v3"] and gym_id("reach") == "embodied/Reach-v1"
    assert [load_recipe(n).families for n in ("mt10", "mw_fewshot")][0] == MT10
    assert not set(load_recipe("mw_fewshot").families) & set(MT10)  # few-shot tasks are new to an mt10 base


def test_check_env_passes():
    e = gym.make(METAWORLD_IDS["drawer-open-v3"], cameras=("corner",), image_size=(24, 24),
                 render_mode="rgb_array", render_size=(32, 32))
    check_env(e.unwrapped, skip_render_check=False)
    e.close()


def test_observation_contract_and_image_shapes(env):
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(obs["images"]) == set(CAMERAS)
    assert all(img.shape == (48, 64, 3) and img.dtype == np.uint8 for img in obs["images"].values())
    assert obs["state"].shape == (4,) and obs["state"].dtype == np.float32
    assert obs["instruction"] == "reach the goal position" == info["instruction"]
    assert info["task"] == "reach-v3" and info["success"] is False and info["failure"] == "never reached"
    assert info["focus"].shape == (3,) and np.isfinite(info["focus"]).all()
    spec = env.unwrapped.action_spec
    assert spec.names == ("dx", "dy", "dz", "gripper") and env.action_space.shape == (4,)
    obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert reward == 0.0 and not terminated and not truncated and env.observation_space.contains(obs)


def _rows(model, data, camera: str, bodies: tuple[str, ...]) -> float:
    """Mean image row (0 = top) of the pixels showing `bodies`, from MuJoCo's segmentation rendering."""
    r = mujoco.Renderer(model, 64, 64)
    r.enable_segmentation_rendering()
    r.update_scene(data, camera)
    seg = r.render()
    r.close()
    is_geom = seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM
    body = np.where(is_geom, model.geom_bodyid[np.clip(seg[..., 0], 0, model.ngeom - 1)], -1)
    mask = np.isin(body, [model.body(b).id for b in bodies])
    assert mask.sum() > 5, f"{bodies} hardly visible from {camera}"
    return float(np.nonzero(mask)[0].mean())


@pytest.mark.parametrize("camera", ["corner", "corner2", "behindGripper"])
def test_images_are_upright(env, camera):
    """The gripper is above the table in the image. Meta-World's corner camera is upside down as
    shipped; the env rolls fixed cameras level."""
    env.reset(seed=0)
    mw = env.unwrapped.mw
    assert _rows(mw.model, mw.data, camera, GRIPPER) < _rows(mw.model, mw.data, camera, ("tablelink",))


def test_metaworld_corner_camera_is_upside_down_as_shipped(env):
    raw = ALL_V3_ENVIRONMENTS["reach-v3"]()
    raw.set_task(env.unwrapped.variations[0])
    raw.reset()
    assert _rows(raw.model, raw.data, "corner", GRIPPER) > _rows(raw.model, raw.data, "corner", ("tablelink",))
    raw.close()


def test_reset_is_deterministic(env):
    o1, i1 = env.reset(seed=7)
    o2, i2 = env.reset(seed=7)
    assert i1["variation"] == i2["variation"]
    np.testing.assert_array_equal(o1["state"], o2["state"])
    for cam in CAMERAS:
        np.testing.assert_array_equal(o1["images"][cam], o2["images"][cam])
    goals = {tuple(env.reset(seed=s)[1]["focus"].round(4)) for s in range(4)}
    assert len(goals) > 1  # seeds choose among Meta-World's goal variations
    _, i3 = env.reset(seed=0, options={"variation": 3})
    _, j3 = env.reset(seed=1, options={"variation": 3})
    assert i3["variation"] == j3["variation"] == 3 and np.array_equal(i3["focus"], j3["focus"])


@pytest.mark.parametrize("task", ["reach-v3", "drawer-open-v3", "button-press-topdown-v3"])
def test_scripted_policy_succeeds(task):
    e = gym.make(METAWORLD_IDS[task], cameras=())  # state only: fast
    for seed in (0, 1):
        obs, info = e.reset(seed=seed)
        expert = MetaWorldExpert(e, noise=0.1, seed=seed)
        expert.reset()
        done = False
        while not done:
            chunk = expert.act(obs)
            assert chunk.shape == (1, 4) and chunk.dtype == np.float32
            obs, reward, terminated, truncated, info = e.step(chunk[0])
            done = terminated or truncated
        assert info["success"] and terminated and reward == 1.0 and info["failure"] == "", (task, seed)
    e.close()


def test_every_task_has_the_listed_cameras(env):
    model = env.unwrapped.mw.model
    assert tuple(model.camera(i).name for i in range(model.ncam)) == metaworld.CAMERAS


def test_expert_and_demonstration_goals_follow_the_env_kind(env):
    assert isinstance(expert_for(env, noise=0.1, seed=0), MetaWorldExpert)
    assert reset_options(env, 51) == {"variation": 1}  # seed s records goal variation s mod 50
    tabletop = gym.make(gym_id("reach"), cameras=())
    assert isinstance(expert_for(tabletop), ScriptedExpert) and reset_options(tabletop, 51) is None
    tabletop.close()


def write_recipe(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump({"families": ["reach-v3", "drawer-close-v3"], "episodes_per_family": 2,
                                    "image_size": [32, 32], "cameras": ["corner", "gripperPOV"], **fields}))
    return path


def test_collect_train_evaluate_end_to_end(tmp_path):
    """A Meta-World recipe through the tabletop's machinery: parallel collection (resumable), the training
    loop, and rollouts of the trained policy."""
    recipe = load_recipe(write_recipe(tmp_path / "mw.yaml"))
    assert recipe.env_config() == {"image_size": (32, 32), "cameras": ("corner", "gripperPOV")}  # no split
    path = tmp_path / "mw.zarr"
    store = collect(recipe, path, workers=2, progress=False)
    assert store.num_episodes == 4 and store.meta("success").all() and store.attrs["robot"] == "sawyer"
    assert store.attrs["control_rate"] == 80.0 and store.attrs["metaworld_version"]
    assert store.cameras == ["corner", "gripperPOV"] and store.attrs["action_spec"]["names"][-1] == "gripper"
    n = store.num_frames
    assert store.frames("corner", np.arange(n)).shape == (n, 32, 32, 3)
    assert store.actions().shape == (n, 4) and store.states().shape == (n, 4) and store.focus().shape == (n, 3)
    assert np.abs(store.actions()).max() <= 1.0 and np.isfinite(store.actions()).all()
    assert sorted(store.meta("family")) == ["drawer-close-v3", "drawer-close-v3", "reach-v3", "reach-v3"]
    assert set(store.meta("instruction")) == {"reach the goal position", "close the drawer"}
    assert sorted(store.meta("seed")) == [0, 0, 1, 1]  # seed s: goal variation s
    assert collect(recipe, path, workers=1, progress=False).num_episodes == 4  # resumable: nothing missing

    result = train(config(path, tmp_path, steps=2), path, tmp_path)
    assert result["split"] is None and result["val_loss"] > 0  # Meta-World: no instruction split
    policy = VLAPolicy.load(tmp_path / "r/checkpoints/step_000002")
    assert policy.spec["cameras"] == ["corner", "gripperPOV"] and len(policy.spec["action_spec"]["names"]) == 4
    # the loop's rollouts; gym.make's max_episode_steps cuts Meta-World's 500-step horizon (an untrained
    # policy uses all of it) to keep the test short
    env_config = {"image_size": (32, 32), "cameras": ("corner", "gripperPOV"), "max_episode_steps": 40}
    rollouts = evaluate(policy, ["reach-v3"], 1, num_envs=1, env_config=env_config, progress=False)
    assert rollouts["reach-v3"]["episodes"] == 1 and rollouts["mean"]["episodes"] == 1


def test_evaluate_script_takes_metaworld_tasks(tmp_path):
    def evaluate_script(*args):
        return subprocess.run([sys.executable, str(ROOT / "scripts/evaluate.py"), "expert", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    out = tmp_path / "e.json"
    done = evaluate_script("--families", "reach-v3", "--episodes", "1", "--num-envs", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    e = json.loads(out.read_text())
    assert e["suite"] == "metaworld" and e["split"] is None and e["results"]["reach-v3"]["success"] == 1.0
    assert e["random"]["mean"]["episodes"] == 1 and e["versions"]["metaworld"]  # random acts in 4 dims
    mixed = evaluate_script("--families", "reach-v3", "reach")
    assert mixed.returncode == 1 and "mixes tabletop families and Meta-World tasks" in mixed.stderr, mixed.stderr
    split = evaluate_script("--families", "reach-v3", "--split", "heldout")
    assert split.returncode == 1 and "apply to the tabletop" in split.stderr, split.stderr


@pytest.mark.parametrize("fields, match", [
    ({"families": ["reach-v3", "reach"]}, "mix tabletop families and Meta-World tasks"),
    ({"cameras": ["front"]}, r"cameras must be a non-empty subset of \['topview'"),
    ({"split": "heldout"}, "split applies to tabletop instructions"),
    ({"families": ["reach-v9"]}, "unknown families.*Meta-World tasks: \\['assembly-v3'"),
])
def test_bad_metaworld_recipes_are_refused(tmp_path, fields, match):
    with pytest.raises(UserError, match=match):
        load_recipe(write_recipe(tmp_path / "r.yaml", **fields))


def test_mistakes_are_named():
    with pytest.raises(UserError, match="unknown Meta-World task"):
        gym.make("embodied/MetaWorld-ReachV3-v0", task="reach-v9")
    with pytest.raises(UserError, match="unknown camera"):
        gym.make(METAWORLD_IDS["reach-v3"], cameras=("front",))
    with pytest.raises(TypeError, match="valid keys"):
        gym.make(METAWORLD_IDS["reach-v3"], split="train")
    with pytest.raises(UserError, match="unknown task 'reach-v9'; tabletop families"):
        gym_id("reach-v9")


def test_bad_reset_options_are_named(env):
    with pytest.raises(UserError, match="variation must be 0..49"):
        env.reset(seed=0, options={"variation": 50})
    with pytest.raises(UserError, match="unknown reset options"):
        env.reset(seed=0, options={"task": "push-v3"})
