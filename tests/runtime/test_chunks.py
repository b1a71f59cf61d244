"""ChunkExecutor semantics: receding horizon and temporal ensembling."""

import numpy as np
import pytest

from embodied.errors import UserError
from embodied.runtime import ChunkExecutor


def run(executor, steps, make_chunk):
    out, plans = [], []
    for t in range(steps):
        if executor.needs_plan():
            plans.append(t)
            executor.add(make_chunk(t))
        out.append(executor.next()[0])
    return out, plans


def test_receding_horizon_replans_every_k_steps():
    # chunk planned at step t holds t*100 + (0, 1, 2, 3): the executed action tells who planned it
    out, plans = run(ChunkExecutor("receding", replan_every=3), 8, lambda t: (t * 100 + np.arange(4))[:, None])
    assert plans == [0, 3, 6]
    assert out == [0, 1, 2, 300, 301, 302, 600, 601]


def test_receding_horizon_never_runs_past_a_short_chunk():
    _, plans = run(ChunkExecutor("receding", replan_every=8), 6, lambda t: np.zeros((2, 1)))
    assert plans == [0, 2, 4]


def test_a_plan_that_switches_the_gripper_runs_through_the_switch():
    """Every plan closes the gripper 6 steps ahead (column 1): plain receding horizon with 4 steps per plan
    never reaches the close; committing runs each plan to one step past its switch."""
    def closes_later(t):
        chunk = np.zeros((16, 2), np.float32)
        chunk[:, 1] = np.where(np.arange(16) >= 6, 1.0, -1.0)
        return chunk
    plain = ChunkExecutor("receding", replan_every=4)
    committed = ChunkExecutor("receding", replan_every=4, gripper=1)
    grips = {name: [] for name in ("plain", "committed")}
    for name, ex in (("plain", plain), ("committed", committed)):
        for _ in range(20):
            if ex.needs_plan():
                ex.add(closes_later(0))
            grips[name].append(ex.next()[1])
    assert max(grips["plain"]) < 0  # Zeno: the close is always 6 steps away
    assert grips["committed"][:7] == [-1.0] * 6 + [1.0] and grips["committed"][7] == -1.0  # replanned after it
    # without a switch in the plan, committing changes nothing
    _, plans = run(ChunkExecutor("receding", replan_every=3, gripper=0), 8, lambda t: np.ones((8, 1)))
    assert plans == [0, 3, 6]


def test_plans_arriving_unasked_wait_for_the_gripper_switch():
    """The hardware loop: a plan arrives at every step. One that closes the gripper 3 steps ahead runs
    through the close; later plans are dropped until then, and taken again after it."""
    def plan(close_at):
        chunk = np.zeros((8, 2), np.float32)
        chunk[:, 0] = close_at  # tells the plans apart
        chunk[:, 1] = np.where(np.arange(8) >= close_at, 1.0, -1.0)
        return chunk
    for gripper, expect in ((1, [3, 3, 3, 3, 9, 9]), (None, [3, 9, 9, 9, 9, 9])):
        ex = ChunkExecutor("receding", gripper=gripper)
        ex.add(plan(3))
        used = [ex.next()[0]]
        for _ in range(5):
            ex.add(plan(9))  # never switches within 8 steps: no commitment of its own
            used.append(ex.next()[0])
        assert used == expect, (gripper, used)


def test_a_late_plan_from_before_a_gripper_switch_cannot_undo_it():
    """The hardware loop with delay: a plan computed before the close ran never saw it; it is dropped (it
    would reopen the gripper), and the first plan computed after the close is taken."""
    def plan(close_at):
        chunk = np.zeros((8, 2), np.float32)
        chunk[:, 0] = close_at
        chunk[:, 1] = np.where(np.arange(8) >= close_at, 1.0, -1.0)
        return chunk
    for gripper, expect in ((1, [2, 2, 2, 2, 9]), (None, [2, 2, 2, 9, 9])):
        ex = ChunkExecutor("receding", gripper=gripper)
        ex.add(plan(2), at=0)
        used = [ex.next()[0] for _ in range(3)]  # steps 0-2: closes at step 2
        ex.add(plan(9), at=2)  # for step 2's observation, taken before the close: it plans open
        used.append(ex.next()[0])
        ex.add(plan(9), at=4)
        used.append(ex.next()[0])
        assert used == expect, (gripper, used)


class Spec:
    spec = {"action_spec": {"names": ["dx", "dy", "dz", "dyaw", "gripper"]}}


def test_catching_up_runs_a_late_plan_along_its_path():
    """A plan for step 0 moves 0.5 a step (column 0; column 1, the gripper at 0.3, is never caught up). The
    arm held for the 3 steps it took to arrive: plain receding runs chunk[3:] and ends 1.5 short of the
    planned path; catching up adds what is owed (all of it: rate 1), within [-1, 1], and ends on it."""
    chunk = np.tile(np.array([[0.5, 0.3]], np.float32), (8, 1))
    ends = {}
    for catch_up in (None, [0]):
        executor = ChunkExecutor("receding", replan_every=8, catch_up=catch_up, catch_up_rate=1.0)
        for _ in range(3):
            executor.skip()
        executor.add(chunk, at=0)
        ahead = executor.upcoming(5).tolist()  # what a real-time-chunking plan is told the arm will run
        moved = [executor.next().tolist() for _ in range(5)]
        assert moved == ahead
        assert all(m[1] == pytest.approx(0.3) for m in moved)
        ends[bool(catch_up)] = sum(m[0] for m in moved)
        if catch_up:
            assert [m[0] for m in moved] == [1.0, 1.0, 1.0, 0.5, 0.5]  # 1.5 owed, at most 0.5 a step extra
    assert ends == {False: 2.5, True: 4.0}  # the plan's path: 8 x 0.5


def test_a_catch_up_rate_spreads_what_is_owed_and_still_repays_it():
    """Half of what is owed per action: 0.75 owed after 3 held steps is repaid 0.375, 0.1875, ... never all
    at once, and the arm still converges on the plan's path."""
    executor = ChunkExecutor("receding", replan_every=16, catch_up=[0], catch_up_rate=0.5)
    for _ in range(3):
        executor.skip()
    executor.add(np.full((16, 1), 0.25, np.float32), at=0)
    moved = [float(executor.next()[0]) for _ in range(13)]
    assert moved[:2] == pytest.approx([0.25 + 0.375, 0.25 + 0.1875])
    assert sum(moved) == pytest.approx(16 * 0.25, abs=1e-3)  # the path's end: 16 x 0.25
    with pytest.raises(UserError, match="catch_up_rate"):
        ChunkExecutor("receding", catch_up=[0], catch_up_rate=0.0)


def test_catching_up_owes_what_the_robot_cut_and_starts_over_with_each_plan():
    executor = ChunkExecutor("receding", replan_every=8, catch_up=[0], catch_up_rate=1.0)
    executor.add(np.full((8, 2), 0.5, np.float32))
    executor.next()
    executor.sent(np.array([0.1, 0.5]))  # the safety layer let 0.1 of 0.5 through
    assert executor.upcoming(2)[:, 0] == pytest.approx([0.9, 0.5])
    assert executor.next()[0] == pytest.approx(0.9)
    executor.add(np.full((8, 2), -0.25, np.float32), at=1)  # a late plan for step 1 takes over at step 2
    # it planned -0.25 for step 1, where the arm ran +0.9: owed -1.15, clipped to -1 after its own -0.25
    assert executor.next()[0] == pytest.approx(-1.0)
    assert executor.next()[0] == pytest.approx(-0.25 - 0.4)  # the rest of what is owed
    executor.add(np.array([[np.nan, 0.5]] + [[0.5, 0.5]] * 7, np.float32), at=4)  # a bad action in the plan
    executor.next()  # its NaN: the safety layer holds (sent: no motion)
    executor.sent(np.array([np.nan, 0.5]))
    assert np.isfinite(executor.next()).all()  # the rest of the plan still runs


def test_for_policy_finds_the_gripper_column_by_name():
    assert ChunkExecutor.for_policy(Spec()).gripper == 4
    assert ChunkExecutor.for_policy(Spec(), commit_gripper=False).gripper is None
    assert ChunkExecutor.for_policy(object()).gripper is None  # no spec: plain receding horizon


def test_temporal_ensembling_weights_older_chunks_more():
    decay = 0.5
    ex = ChunkExecutor("ensemble", decay=decay)
    out, plans = run(ex, 3, lambda t: np.full((4, 1), float(t)))
    assert plans == [0, 1, 2]
    w = np.exp(-decay * np.arange(3))
    assert out[0] == 0.0
    assert out[1] == pytest.approx((w[0] * 0 + w[1] * 1) / w[:2].sum())
    assert out[2] == pytest.approx((w[0] * 0 + w[1] * 1 + w[2] * 2) / w.sum())


def test_ensemble_drops_expired_chunks():
    ex = ChunkExecutor("ensemble", decay=0.0)
    ex.add(np.full((1, 1), 5.0))
    assert ex.next()[0] == 5.0
    ex.add(np.full((2, 1), 1.0))
    assert ex.next()[0] == 1.0  # the first chunk covered only its own step


def test_errors():
    with pytest.raises(ValueError, match="mode"):
        ChunkExecutor("average")
    ex = ChunkExecutor()
    with pytest.raises(RuntimeError, match="no plan"):
        ex.next()
    with pytest.raises(ValueError, match=r"\(H, A\)"):
        ex.add(np.zeros(3))
