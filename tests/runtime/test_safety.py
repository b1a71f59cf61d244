"""The safety layer, rule by rule, against NaN, inf and huge values (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embodied.runtime.safety import SafetyConfig, SafetyLayer

LOW, HIGH = -np.ones(5), np.ones(5)
BOX = np.array([[-0.3, 0.3], [-0.3, 0.3], [0.0, 0.4]])
SCALE = np.full(3, 0.02)
wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e30, 1e30), st.floats(-2, 2))
actions = st.lists(wild, min_size=5, max_size=5).map(np.array)
inside = st.tuples(*[st.floats(lo, hi) for lo, hi in BOX]).map(np.array)
anywhere = st.tuples(*[st.floats(lo - 0.5, hi + 0.5) for lo, hi in BOX]).map(np.array)


def layer(max_change=0.5, box=True):
    return SafetyLayer(SafetyConfig(LOW, HIGH, max_change, BOX[:, 0] if box else None, BOX[:, 1] if box else None,
                                    SCALE, gripper=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(actions, min_size=1, max_size=6), inside)
def test_every_output_is_finite_and_within_limits(sequence, pos):
    safe = layer()
    for a in sequence:
        out = safe.filter(a, pos)
        assert np.isfinite(out).all() and (out >= LOW).all() and (out <= HIGH).all()


@settings(max_examples=200, deadline=None)
@given(actions, st.floats(-1, 1))
def test_non_finite_becomes_hold_keeping_the_gripper(a, grip):
    safe = layer(max_change=10)
    safe.filter(np.array([0.1, 0.2, 0.3, 0.0, grip]))
    out = safe.filter(a)
    if not np.isfinite(a).all():
        assert (out[:4] == 0).all() and out[4] == np.float32(grip)
        assert safe.events["non_finite"] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(actions, min_size=2, max_size=6))
def test_motion_changes_at_most_max_change_per_step(sequence):
    safe = layer(max_change=0.3, box=False)
    last = None
    for a in sequence:
        out = safe.filter(a)
        if not np.isfinite(a).all():  # a hold: stopping at once beats a smooth stop
            assert (out[:4] == 0).all()
        elif last is not None:
            assert (np.abs(out[:4] - last[:4]) <= 0.3 + 1e-6).all()
        last = out


@settings(max_examples=300, deadline=None)
@given(actions, anywhere)
def test_workspace_keeps_the_target_in_the_box_or_moves_back(a, pos):
    out = layer(max_change=10).filter(a, pos)
    target = pos + out[:3] * SCALE
    lo, hi = np.minimum(BOX[:, 0], pos), np.maximum(BOX[:, 1], pos)  # from outside: never further out
    assert (target >= lo - 1e-6).all() and (target <= hi + 1e-6).all()


def test_unwalled_is_the_action_before_the_box_cut_it():
    """What catching up owes against (ChunkExecutor.sent): the wall's cut is not owed, the rest is."""
    safe = layer(max_change=10)
    at_wall = BOX[:, 1] - [0.0, 0.1, 0.1]  # x at the box's far side
    out = safe.filter(np.array([1.0, 0.5, 0.0, 0.0, 1.0]), at_wall)
    assert out[0] == pytest.approx(0.0, abs=1e-6) and out[1] == pytest.approx(0.5)
    assert safe.unwalled[0] == pytest.approx(1.0) and safe.unwalled[1] == pytest.approx(0.5)
    safe.hold()
    assert (safe.unwalled[:4] == 0).all()


def test_non_finite_position_holds():
    out = layer().filter(np.array([1.0, 1, 1, 0, 1]), np.array([np.nan, 0, 0]))
    assert (out[:4] == 0).all()


def test_a_hold_is_exactly_no_motion_never_rate_limited():
    safe = layer(max_change=0.3)
    for _ in range(5):
        safe.filter(np.array([1.0, 1.0, 0.0, 0.0, 1.0]), np.zeros(3) + [0, 0, 0.2])
    held = safe.hold()
    assert (held[:4] == 0).all() and held[4] == 1.0  # stops at once, gripper kept closed
    out = safe.filter(np.array([np.nan] * 5))
    assert (out[:4] == 0).all()


def test_a_hold_before_the_first_action_keeps_the_gripper_as_the_episode_began():
    safe = layer()
    safe.reset(gripper=-1.0)  # the arm starts open
    assert (safe.hold() == [0, 0, 0, 0, -1.0]).all()
    safe.reset()  # unknown: a hold commands 0 (half-closed on the tabletop arm)
    assert (safe.hold() == 0).all()


def test_motion_blends_in_after_a_hold_and_the_gripper_does_not_wait():
    """Soft start: a steady full-speed plan from rest in equal steps of 1 / ramp, then as planned; again
    after a watchdog hold."""
    safe = SafetyLayer(SafetyConfig(LOW, HIGH, 0.5, gripper=4, ramp=4))
    safe.reset(gripper=-1.0)
    plan = np.array([0.8, -0.4, 0.0, 0.2, 1.0])  # closing at once: the gripper is exempt
    sent = np.array([safe.filter(plan) for _ in range(6)])
    np.testing.assert_allclose(sent[:, :4], np.outer([0.25, 0.5, 0.75, 1, 1, 1], plan[:4]), atol=1e-6)
    assert (sent[:, 4] == 1.0).all() and safe.events["ramped"] == 3
    safe.hold()
    np.testing.assert_allclose(safe.filter(plan)[:4], plan[:4] / 4, atol=1e-6)
    off = SafetyLayer(SafetyConfig(LOW, HIGH, 10.0, gripper=4, ramp=1))
    off.reset(gripper=-1.0)
    assert (off.filter(plan) == plan.astype(np.float32)).all()


def test_joint_targets_hold_the_last_target():
    safe = SafetyLayer(SafetyConfig(LOW, HIGH, 0.5, kind="joint_pos", gripper=4))
    assert (safe.hold() == 0).all()  # before any command: home (the middle of each range)
    target = safe.filter(np.array([0.3, -0.2, 0.1, 0.4, -1.0]))
    assert (safe.filter(np.array([np.inf, 0, 0, 0, 0])) == target).all()


def test_a_bundle_spec_gives_its_limits_box_and_gripper():
    """A robot's controller builds its safety layer from the bundle it runs (SafetyConfig.from_spec)."""
    spec = {"action_limits": {"low": [-0.5] * 5, "high": [0.5] * 5},
            "action_spec": {"kind": "ee_delta", "names": ["dx", "dy", "dz", "dyaw", "gripper"],
                            "scale": [0.02, 0.02, 0.02, 0.2, 1.0]}}
    config = SafetyConfig.from_spec(spec, workspace=BOX)
    assert config.gripper == 4 and config.kind == "ee_delta"
    np.testing.assert_array_equal(config.workspace_low, BOX[:, 0])
    out = SafetyLayer(config).filter(np.array([1.0, -1.0, 0.2, 0.0, 1.0]), np.array([0.0, 0.0, 0.2]))
    np.testing.assert_array_equal(out[:2], [0.5, -0.5])  # the bundle's limits, not the env's [-1, 1]
    joint = SafetyConfig.from_spec({**spec, "action_spec": {**spec["action_spec"], "kind": "joint_pos"}}, BOX)
    assert joint.workspace_low is None and joint.kind == "joint_pos"  # no end-effector box for joint targets
