"""Grounding free text: exact forms, paraphrases, absent objects, and text that names no task."""

import gymnasium as gym
import pytest

import embodied.envs as envs
from embodied.envs.grounding import Grounder
from embodied.envs.tasks import describe


@pytest.fixture(scope="module")
def grounder():
    return Grounder()


def scene(family, seed=3):
    env = gym.make(envs.ENV_IDS[family], cameras=())
    env.reset(seed=seed)
    return env.unwrapped


def test_exact_forms_and_paraphrases_ground_to_the_right_task(grounder):
    base = scene("pick")
    name = describe(base.task.obj, base.world.things)
    exact = grounder.ground(f"pick up the {name}", base.world)
    assert exact.sure and exact.score == 1.0 and exact.task.obj is base.task.obj
    para = grounder.ground(f"could you raise the {name} off the table", base.world)
    assert para.sure and para.task.family == "pick" and para.task.obj is base.task.obj
    drawer = grounder.ground("can you open up the drawer", scene("open_drawer").world)
    assert drawer.sure and drawer.task.family == "open_drawer"


def test_absent_objects_and_unrelated_text_are_not_graded(grounder):
    base = scene("pick")
    present = {(t.color, t.shape) for t in base.world.things}
    missing = next(f"{c} {s}" for c in ("red", "green", "blue", "yellow") for s in ("cube", "cylinder")
                   if (c, s) not in present)
    g = grounder.ground(f"please pick up the {missing}", base.world)
    assert g.absent == [missing] and not g.sure
    unrelated = grounder.ground("what is the capital of france", base.world)
    assert not unrelated.sure and unrelated.task is None and unrelated.score < 0.6
