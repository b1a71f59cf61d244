"""Task families: experts succeed, instructions ground the motion, splits, parsing, success tests."""

import gymnasium as gym
import numpy as np
import pytest

import embodied.envs as envs
from embodied.envs.experts import ScriptedExpert, run_expert_episode
from embodied.envs.tasks import InstructionError, in_heldout_wording, paraphrase, parse_instruction


@pytest.mark.parametrize("family", envs.FAMILIES)
def test_expert_succeeds(family):
    e = gym.make(envs.ENV_IDS[family], cameras=())
    results = [run_expert_episode(e, seed, noise=0.1) for seed in (0, 1)]
    e.close()
    assert all(r["success"] for r in results), results


def test_success_is_not_free():
    """Doing nothing succeeds at nothing: each predicate needs the task done."""
    for family in envs.FAMILIES:
        e = gym.make(envs.ENV_IDS[family], cameras=())
        e.reset(seed=0)
        for _ in range(10):
            _, reward, terminated, _, info = e.step(np.zeros(5, np.float32))
        assert not info["success"] and not terminated and reward == 0.0, family
        e.close()


def _two_objects(env, seed):
    env.reset(seed=seed)
    objs = [t for t in env.unwrapped.world.things if t.kind == "object"]
    return objs[0], objs[1]


def test_instruction_decides_which_object_moves():
    """Same scene, two instructions: the named object is lifted, the other one stays put."""
    e = gym.make("embodied/Pick-v0", cameras=())
    world = e.unwrapped.world
    a, b = _two_objects(e, seed=5)
    from embodied.envs.tasks import describe

    for target, other in ((a, b), (b, a)):
        name = describe(target, world.things)
        result = run_expert_episode(e, seed=5, options={"instruction": f"pick up the {name}"})
        assert result["success"]
        assert world.pos(target)[2] > 0.06 and world.pos(other)[2] < other.half + 0.005
    e.close()


def test_typed_instruction_sets_family_and_targets():
    e = gym.make("embodied/Tabletop-v0", cameras=())
    e.reset(seed=2)
    world = e.unwrapped.world
    plate = next(t for t in world.things if t.kind == "plate")
    obj = next(t for t in world.things if t.kind == "object")
    from embodied.envs.tasks import describe

    text = f"  Place the {describe(obj, world.things)} onto the {plate.color} plate. "
    obs, info = e.reset(seed=2, options={"instruction": text})
    assert info["task"] == "place"
    assert e.unwrapped.task.obj == obj and e.unwrapped.task.target == plate
    obs, info = e.reset(seed=2, options={"instruction": "shut the drawer"})
    assert info["task"] == "close_drawer" and world.drawer > 0.07  # starts open
    e.close()


def test_ambiguous_phrase_is_an_error():
    e = gym.make("embodied/Tabletop-v0", cameras=())
    for seed in range(50):  # find a scene with two objects of one color
        e.reset(seed=seed)
        objs = [t for t in e.unwrapped.world.things if t.kind == "object"]
        colors = [o.color for o in objs]
        dup = next((c for c in colors if colors.count(c) > 1), None)
        if dup:
            break
    with pytest.raises(InstructionError, match="ambiguous"):
        parse_instruction(f"pick up the {dup}", e.unwrapped.world)
    e.close()


def test_splits_keep_heldout_instructions_apart():
    suite = envs.scene.load_suite()
    heldout_templates = {t.split("{")[0] for f in suite["families"].values() for t in f["heldout"]}
    heldout_targets = suite["objects"]["heldout_targets"]

    def is_heldout(instruction):
        return (any(instruction.startswith(p) for p in heldout_templates)
                or any(h in instruction for h in heldout_targets))

    for split, expect in (("train", False), ("heldout", True)):
        e = gym.make("embodied/Tabletop-v0", cameras=(), split=split)
        seen = [e.reset(seed=s)[1]["instruction"] for s in range(40)]
        e.close()
        assert all(is_heldout(s) == expect for s in seen), (split, seen)


def test_expert_requires_end_effector_actions():
    e = gym.make("embodied/Pick-v0", cameras=(), action_type="joint_pos")
    with pytest.raises(ValueError, match="end-effector deltas"):
        ScriptedExpert(e)
    e.close()


def _drive_to(env, thing, steps=40, offset=(0.0, 0.0)):
    """Servo the gripper over `thing` (+ a horizontal offset) at a low height; returns the last info."""
    world = env.unwrapped.world
    for _ in range(steps):
        goal = world.pos(thing) + [*offset, 0.05]
        delta = np.clip((goal - world.grasp_pos) / 0.02, -1, 1)
        _, _, terminated, truncated, info = env.step(np.array([*delta, 0, -1], np.float32))
        if terminated or truncated:
            break
    return info


def test_failure_diagnosis_tells_wrong_object_from_never_reached():
    from embodied.envs.tasks import describe

    e = gym.make(envs.ENV_IDS["pick"], cameras=())
    e.reset(seed=5)
    world = e.unwrapped.world
    a, b = [t for t in world.things if t.kind == "object"][:2]
    e.reset(seed=5, options={"instruction": f"pick up the {describe(a, world.things)}"})
    _, _, _, _, info = e.step(np.zeros(5, np.float32))
    assert info["failure"] == "never reached"
    assert _drive_to(e, b)["failure"] == "wrong object"
    e.reset(seed=5, options={"instruction": f"pick up the {describe(a, world.things)}"})
    assert _drive_to(e, a)["failure"] == "missed grasp"  # over the right one, never lifted it
    assert run_expert_episode(e, seed=5)["success"]
    e.close()


def test_failure_diagnosis_tells_a_push_that_went_past_the_object():
    from embodied.envs.tasks import DIRECTIONS

    e = gym.make(envs.ENV_IDS["push"], cameras=())
    e.reset(seed=3)
    task = e.unwrapped.task
    ahead = 0.03 * DIRECTIONS[task.direction]
    assert _drive_to(e, task.obj, offset=-ahead)["failure"] == "out of time"  # behind it, still to push
    assert _drive_to(e, task.obj, offset=ahead)["failure"] == "went past"  # beyond its centre
    assert _drive_to(e, task.obj, offset=-ahead)["failure"] == "out of time"  # back behind it
    e.close()


def test_focus_follows_the_named_object_then_the_place_target():
    """info['focus'] (recorded as an auxiliary training target) points from the gripper to the named
    object, and once the object is held, to where it goes."""
    e = gym.make(envs.ENV_IDS["place"], cameras=())
    _, info = e.reset(seed=2)
    task, world = e.unwrapped.task, e.unwrapped.world
    np.testing.assert_allclose(info["focus"], world.pos(task.obj) - world.grasp_pos, atol=1e-5)
    expert = ScriptedExpert(e)
    held = False
    for _ in range(150):
        _, _, terminated, truncated, info = e.step(expert.act(None)[0])
        if world.grasped(task.obj) and world.pos(task.obj)[2] > 0.08:
            held = True
            np.testing.assert_allclose(info["focus"], world.pos(task.target) - world.grasp_pos, atol=1e-5)
            break
    assert held
    e.close()


def test_training_paraphrases_never_use_heldout_wording():
    """A held-out template's own words (those no train template of its family uses) appear in no paraphrase,
    so the held-out split stays unseen when training swaps in paraphrases."""
    for family, spec in envs.scene.load_suite()["families"].items():
        train_words = {w for t in spec["templates"] for w in t.split()}
        heldout_words = {w for t in spec["heldout"] for w in t.split()} - train_words
        assert heldout_words, family
        for p in spec["paraphrases"]:
            assert p not in spec["templates"] + spec["heldout"], (family, p)
            assert not heldout_words & set(p.split()), (family, p, heldout_words & set(p.split()))


def test_paraphrase_keeps_the_command_and_leaves_other_text_alone():
    suite, rng = envs.scene.load_suite(), np.random.default_rng(0)
    outs = {paraphrase("push the small red cube to the left", "push", suite, rng) for _ in range(40)}
    assert len(outs) >= 4  # several wordings ...
    assert all("small red cube to the left" in o or ("small red cube" in o and o.endswith("to the left"))
               for o in outs), outs  # ... each naming the same object and direction
    assert not outs & set(suite["families"]["push"]["templates"] + suite["families"]["push"]["heldout"])
    two = paraphrase("put the blue cylinder on the red plate", "place", suite, rng)
    assert two.index("blue cylinder") < two.index("red plate"), two
    for text, family in (("press down on the red button", "press_button"),  # held-out wording: unchanged
                         ("pick up the red cube", "pick-place-v3"), ("dance", "reach")):
        assert paraphrase(text, family, suite, rng) == text
    assert in_heldout_wording("raise the yellow cylinder off the table", "pick", suite)
    assert not in_heldout_wording("pick up the yellow cylinder", "pick", suite)  # a held-out target, not wording
