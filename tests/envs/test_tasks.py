"""Task families: experts succeed, instructions ground the motion, splits, parsing, success tests."""

import gymnasium as gym
import numpy as np
import pytest

import embodied.envs as envs
from embodied.envs.experts import ScriptedExpert, run_expert_episode
from embodied.envs.tasks import InstructionError, in_heldout_wording, paraphrase, parse_instruction, target_families


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
    e = gym.make("embodied/Pick-v1", cameras=())
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
    e = gym.make("embodied/Tabletop-v1", cameras=())
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
    assert info["task"] == "close_drawer" and world.drawer > 0.015  # starts part open: there is something to do
    e.close()


def test_ambiguous_phrase_is_an_error():
    e = gym.make("embodied/Tabletop-v1", cameras=())
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


@pytest.mark.parametrize("version", [0, 1])
def test_splits_keep_heldout_instructions_apart(version):
    """Each split samples exactly its kind: (held-out wording?, held-out target?) is (no, no) for train, one of
    the two for heldout, and the one it names for heldout_wording / heldout_target."""
    suite = envs.scene.load_suite()
    heldout_targets = suite["worlds"][version]["heldout_targets"]
    expected = {"train": {(False, False)}, "heldout": {(True, False), (False, True)},
                "heldout_wording": {(True, False)}, "heldout_target": {(False, True)}}
    for split, allowed in expected.items():
        e = gym.make(f"embodied/Tabletop-v{version}", cameras=(), split=split, families=tuple(target_families()))
        kinds = set()
        for seed in range(30):
            _, info = e.reset(seed=seed)
            task = e.unwrapped.task
            named = [t for t in (task.obj, task.target) if t is not None]
            new_target = any(set(h.split()) <= t.words for h in heldout_targets for t in named)
            kinds.add((in_heldout_wording(info["instruction"], info["task"], suite), new_target))
        e.close()
        assert kinds == allowed, (split, kinds)  # 30 scenes show every allowed kind


def test_compositional_holdout_still_names_every_color_shape_and_size():
    """World v1 holds out a quarter of the 16 objects as targets (two color-shape pairs, both sizes) and one
    plate color; every color, shape and size is still named by some training target."""
    world = envs.scene.World(1)
    held = [o for o in world.objects if any(set(h.split()) <= o.words for h in world.heldout_targets)]
    trained = [o for o in world.objects if o not in held]
    assert len(held) == len(world.objects) // 4
    for attr in ("color", "shape", "size"):
        assert {getattr(o, attr) for o in trained} == {getattr(o, attr) for o in world.objects}
    plates = [p for p in world.plates if any(set(h.split()) <= p.words for h in world.heldout_targets)]
    assert len(plates) == 1


def test_expert_requires_end_effector_actions():
    e = gym.make("embodied/Pick-v1", cameras=(), action_type="joint_pos")
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


def test_drawer_start_no_longer_gives_the_task_away():
    """v0: open starts shut and close starts open, so the scene tells the family; v1: one range for both."""
    for version, (open_range, close_range) in ((0, ((0, 0.011), (0.079, 0.12))), (1, ((0.019, 0.071),) * 2)):
        for family, (lo, hi) in (("open_drawer", open_range), ("close_drawer", close_range)):
            e = gym.make(envs.env_id(family, version), cameras=())
            starts = [(e.reset(seed=s), e.unwrapped.world.drawer)[1] for s in range(15)]
            e.close()
            assert all(lo <= x <= hi for x in starts), (version, family, starts)


def test_v1_moves_the_cabinet_and_buttons_and_v0_keeps_them():
    positions = {}
    for version in (0, 1):
        e = gym.make(envs.env_id("press_button", version), cameras=())
        world = e.unwrapped.world
        seen = []
        for seed in range(12):
            e.reset(seed=seed)
            buttons = [world.pos(t)[:2] for t in world.things if t.kind == "button"]
            seen.append(np.concatenate([world.cabinet_pos[:2], *buttons]))
        e.close()
        positions[version] = np.array(seen)
    assert np.ptp(positions[0], axis=0).max() < 1e-6  # fixed
    assert np.ptp(positions[1], axis=0).min() > 0.02  # every coordinate varies
    assert set(np.sign(positions[1][:, 1])) == {-1.0, 1.0}  # the cabinet stands on both sides
    assert np.all(np.sign(positions[1][:, 1]) != np.sign(positions[1][:, 3]))  # the buttons on the other


def test_success_must_hold_for_the_dwell():
    """World v1 ends an episode only after the success predicate held 5 control steps in a row."""
    from embodied.envs.tasks import success

    e = gym.make(envs.env_id("pick", 1), cameras=())
    obs, _ = e.reset(seed=3)
    expert = ScriptedExpert(e, seed=3)
    held, terminated = [], False
    while not terminated:
        obs, _, terminated, truncated, info = e.step(expert.act(obs)[0])
        held.append(success(e.unwrapped.task, e.unwrapped.world))
        assert not truncated
    assert info["success"] and held[-5:] == [True] * 5 and not all(held[:-4])
    e.close()


def test_moving_another_object_is_reported():
    e = gym.make(envs.env_id("reach", 1), cameras=())
    e.reset(seed=4)
    base = e.unwrapped
    other = next(t for t in base.world.things if t.kind == "object" and t is not base.task.obj)
    _, _, _, _, info = e.step(np.zeros(5, np.float32))
    assert not info["disturbed"]
    qadr = base.world._qadr[other.name]
    base.world.data.qpos[qadr] += 0.04  # knocked 4 cm along x
    _, _, _, _, info = e.step(np.zeros(5, np.float32))
    assert info["disturbed"] and not info["success"]
    e.close()


def test_instruction_controls_blank_and_swap():
    """blank shows no words; swap shows another valid instruction of the scene and grades both goals."""
    from gymnasium.utils.env_checker import check_env

    blank = gym.make(envs.env_id("press_button", 1), instruction="blank")
    obs, info = blank.reset(seed=1)
    assert obs["instruction"] == "" and info["instruction"].startswith(("press", "push", "hit"))
    check_env(blank.unwrapped, skip_render_check=True)
    blank.close()
    e = gym.make(envs.env_id("press_button", 1), instruction="swap", cameras=())
    obs, info = e.reset(seed=1)
    base = e.unwrapped
    assert base.swap.obj is not base.task.obj and obs["instruction"] == base.swap.instruction != info["instruction"]
    base.task, base.swap = base.swap, base.task  # the expert presses the swapped button: graded as the swap's goal
    expert = ScriptedExpert(e, seed=1)
    terminated = False
    while not terminated:
        obs, _, terminated, truncated, info = e.step(expert.act(obs)[0])
        assert not truncated
    assert info["success"] and not info["swap_success"]
    e.close()
    drawer = gym.make(envs.env_id("open_drawer", 1), instruction="swap", cameras=())
    obs, info = drawer.reset(seed=2)
    assert drawer.unwrapped.swap.family == "close_drawer" and "drawer" in obs["instruction"]
    drawer.close()
