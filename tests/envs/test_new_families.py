"""The fine-tuning families (put_in_drawer, place_next_to, press_then_pick): strict success tests, both ways."""

import gymnasium as gym
import numpy as np

import embodied.envs as envs
from embodied.envs.experts import ScriptedExpert
from embodied.envs.scene import load_suite
from embodied.envs.tabletop import mujoco
from embodied.envs.tasks import parse_instruction

NEW = ["put_in_drawer", "place_next_to", "press_then_pick"]


def _env(family, seed=0):
    e = gym.make(envs.env_id(family), cameras=())
    e.reset(seed=seed)
    return e, e.unwrapped.world, e.unwrapped.task


def _put(world, thing, xy, z=None, yaw=0.0):
    """Teleport an object to rest at xy (on the table unless z is given)."""
    qa, da = world._qadr[thing.name], world._dadr[thing.name]
    world.data.qpos[qa:qa + 7] = [*xy, thing.half if z is None else z, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
    world.data.qvel[da:da + 6] = 0
    mujoco.mj_forward(world.model, world.data)


def _idle(env, steps=8):
    info = {}
    for _ in range(steps):
        _, _, terminated, _, info = env.step(np.array([0, 0, 0, 0, -1], np.float32))
        if terminated:
            break
    return info["success"]


def test_new_families_stay_out_of_the_suite_and_every_pretraining_set():
    """The suite env samples what it sampled before the new families came (a seed keeps its episode)."""
    for version, world in load_suite()["worlds"].items():
        assert not set(NEW) & set(world["suite"]), version
    e = gym.make(envs.ENV_IDS["suite"], cameras=())
    assert {e.reset(seed=s)[1]["task"] for s in range(40)} <= set(load_suite()["worlds"][1]["suite"])


def test_put_in_drawer_needs_the_object_inside_the_drawer():
    e, world, task = _env("put_in_drawer")
    beside = world.cabinet_pos[:2] - [0.14, 0.0]  # on the table in front of the cabinet
    _put(world, task.obj, beside)
    assert not _idle(e)
    inside = world.drawer_center
    _put(world, task.obj, inside[:2], inside[2] + task.obj.half + 0.002)
    assert _idle(e)


def test_place_next_to_needs_the_two_close_both_standing():
    e, world, task = _env("place_next_to", seed=1)
    o, other = task.obj, task.target
    q = world.pos(other)
    far = o.half * 1.5 + other.half * 1.5 + 0.05
    _put(world, o, q[:2] + [0.0, far])
    assert not _idle(e)
    e.reset(seed=1)
    task = e.unwrapped.task
    o, other = task.obj, task.target
    _put(world, o, world.pos(other)[:2] + [0.0, o.half + other.half + 0.006])  # yaw 0: faces parallel if a cube
    _put(world, other, world.pos(other)[:2])
    assert 0 < world.gap(o, other) < 0.02
    assert _idle(e)


def test_press_then_pick_needs_the_press_first():
    """Picking the object alone does not count; the full sequence does."""
    e, world, task = _env("press_then_pick", seed=2)
    expert = ScriptedExpert(e)
    expert._plan = expert._grasp(task, world)  # the pick without the press
    obs, info = None, {}
    for _ in range(60):
        try:
            action = expert.act(obs)[0]
        except StopIteration:
            break
        _, _, terminated, _, info = e.step(action)
    assert world.grasped(task.obj) and world.pos(task.obj)[2] > task.obj.half + 0.06 and not info["success"]
    assert not task.pressed
    e.reset(seed=2)
    expert = ScriptedExpert(e)
    for _ in range(150):
        _, _, terminated, _, info = e.step(expert.act(None)[0])
        if terminated:
            break
    assert info["success"] and e.unwrapped.task.pressed


def test_two_step_instructions_parse_to_their_family():
    e, world, _ = _env("press_then_pick", seed=3)
    button = next(t for t in world.things if t.kind == "button")
    obj = next(t for t in world.things if t.kind == "object")
    from embodied.envs.tasks import describe

    task = parse_instruction(f"press the {button.color} button and then pick up the {describe(obj, world.things)}",
                             world)
    assert (task.family, task.obj, task.target) == ("press_then_pick", obj, button)
    assert parse_instruction(f"put the {describe(obj, world.things)} in the drawer", world).family == "put_in_drawer"
