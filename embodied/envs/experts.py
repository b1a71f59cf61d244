"""Scripted experts: closed-loop waypoint planners on privileged simulator state, one per family.

An expert implements the Policy contract (`reset()`, `act(obs) -> chunk`) with chunks of one action,
so anything that runs a policy can run it. Optional Gaussian action noise makes demonstrations diverse;
the plan re-reads the simulator every step, so it recovers from the noise. `label` holds the last
noise-free action: demonstrations execute the noisy action and record the clean one (DART, Laskey et
al. 2017), so a policy learns to recover from perturbations without learning the noise.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from embodied.envs.scene import PLATE_HALF_HEIGHT, World
from embodied.envs.tabletop import TabletopEnv
from embodied.envs.tasks import DIRECTIONS, PUSH_DISTANCE, Task, success
from embodied.errors import UserError

# Bump when a change alters the demonstrations: stores record it, and a store of another version is
# refused rather than topped up with mixed demonstrations. 2: reach lines up above the object first. 3: the
# button is held down for a moment (world v1's success holds for 5 steps); the cabinet is found where it stands.
EXPERTS_VERSION = 3
OPEN, CLOSED = -1.0, 1.0
CLEAR = 0.16  # travel height of the grasp site above the table (m)
TIP = 0.02  # grasp site to fingertip (m)


class ScriptedExpert:
    """Plans from the env's privileged state; `env` is a TabletopEnv (or a wrapper around one)."""

    def __init__(self, env, noise: float = 0.0, seed: int | None = None):
        self.env: TabletopEnv = env.unwrapped
        if self.env.action_spec.kind != "ee_delta":
            raise UserError("scripted experts act in end-effector deltas; make the env with "
                             "action_type='ee_delta'")
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self._plan: Iterator[np.ndarray] | None = None
        self.label: np.ndarray | None = None

    def reset(self) -> None:
        self._plan = None

    def act(self, observation: dict) -> np.ndarray:  # -> float32 (1, 5)
        if self._plan is None:
            task = self.env.task
            self._plan = getattr(self, f"_{task.family}")(task, self.env.world)
        action = np.clip(next(self._plan), -1, 1).astype(np.float32)
        self.label = action.copy()  # the noise-free action: what a demonstration records (DART)
        if self.noise > 0:
            action[:4] += self.rng.normal(0, self.noise, 4)
        return np.clip(action, -1, 1).astype(np.float32)[None]

    # ---- motion primitives --------------------------------------------------------------------
    def _move(self, goal, grip: float, yaw=None, tol: float = 0.006, max_steps: int = 60, until=None,
              abort=None):
        """Servo the grasp site to goal() (re-evaluated every step) until it is within tol (or, when
        given, until() holds instead); abort() ends the move early."""
        ctrl, data = self.env.controller, self.env.world.data
        spec = self.env.action_spec
        for _ in range(max_steps):
            target = np.asarray(goal(), dtype=float)
            want_yaw = ctrl.target_yaw if yaw is None else _nearest_yaw(yaw(), ctrl.target_yaw)
            delta = np.append(target - ctrl.target_pos, want_yaw - ctrl.target_yaw)
            action = np.append(np.clip(delta / np.asarray(spec.scale[:4]), -1, 1), grip)
            if until is not None:
                done = until()
            else:
                done = np.linalg.norm(target - self.env.world.grasp_pos) < tol and abs(want_yaw - ctrl.yaw(data)) < 0.05
            if done or (abort is not None and abort()):
                return
            yield action

    def _wait(self, grip: float, steps: int):
        for _ in range(steps):
            yield np.array([0.0, 0.0, 0.0, 0.0, grip])

    def _hold(self, grip: float):
        while True:
            yield np.array([0.0, 0.0, 0.0, 0.0, grip])

    def _grasp(self, task: Task, world: World):
        """Grasp the task's object and lift it to travel height, retrying a missed grasp."""
        o = task.obj
        yaw = (lambda: world.yaw(o)) if o.shape == "cube" else None
        for _ in range(3):
            yield from self._move(lambda: world.pos(o) + [0, 0, CLEAR - o.half], OPEN, yaw, tol=0.01)
            yield from self._move(lambda: world.pos(o) + [0, 0, max(0.0, 0.022 - o.half)], OPEN, yaw,
                                  tol=0.004)
            yield from self._wait(CLOSED, 6)
            yield from self._move(lambda: np.append(world.grasp_pos[:2], CLEAR), CLOSED, tol=0.01)
            if world.grasped(o):
                return
            yield from self._wait(OPEN, 3)

    def _put_down(self, task: Task, world: World, surface, over=None):
        """Lower the held object onto surface() over the target (or over over(), a point), correcting for where
        the object sits in the grip; give up early if it slips out."""
        o = task.obj
        where = over or (lambda: world.pos(task.target))
        offset = lambda: world.grasp_pos - world.pos(o)  # noqa: E731
        over = lambda h: np.append(where()[:2] + offset()[:2], h)  # noqa: E731
        dropped = lambda: not world.touched(o)  # noqa: E731
        yield from self._move(lambda: over(CLEAR), CLOSED, tol=0.01, abort=dropped)
        yield from self._move(lambda: over(surface() + o.half + 0.006 + offset()[2]), CLOSED, tol=0.004)
        yield from self._wait(OPEN, 5)
        yield from self._move(lambda: np.append(world.grasp_pos[:2], CLEAR), OPEN, tol=0.01)

    def _pick_and_place(self, task: Task, world: World, surface):
        for _ in range(3):
            yield from self._grasp(task, world)
            if world.grasped(task.obj):
                yield from self._put_down(task, world, surface)
            if success(task, world):
                break
        yield from self._hold(OPEN)

    # ---- families ----------------------------------------------------------------------------
    def _reach(self, task: Task, world: World):
        """Line up above the object at travel height, then descend onto it: the same approach as a grasp,
        so reach and pick teach one way of finding the named object. Reach succeeds (and ends) on the
        way down; a diagonal dive that ends mid-flight teaches a policy to overshoot."""
        o = task.obj
        yield from self._move(lambda: world.pos(o) + [0, 0, CLEAR - o.half], OPEN, tol=0.01)
        yield from self._move(lambda: world.pos(o) + [0, 0, o.half + 0.025], OPEN, tol=0.004)
        yield from self._hold(OPEN)

    def _pick(self, task: Task, world: World):
        yield from self._grasp(task, world)
        yield from self._hold(CLOSED)

    def _place(self, task: Task, world: World):
        yield from self._pick_and_place(task, world, lambda: 2 * PLATE_HALF_HEIGHT)

    def _stack(self, task: Task, world: World):
        yield from self._pick_and_place(task, world, lambda: world.pos(task.target)[2] + task.target.half)

    def _push(self, task: Task, world: World):
        o, vec = task.obj, np.append(DIRECTIONS[task.direction], 0.0)
        behind = lambda: world.pos(o) - vec * (o.half + 0.035)  # noqa: E731
        yield from self._move(lambda: behind() + [0, 0, CLEAR], CLOSED, tol=0.01)
        yield from self._move(lambda: np.append(behind()[:2], TIP + 0.008), CLOSED, tol=0.006)
        # keep the fingers just behind the object, on the line through its current position
        ahead = lambda: np.append((world.pos(o) - vec * (o.half - 0.01))[:2], TIP + 0.008)  # noqa: E731
        moved = lambda: (world.pos(o) - task.start) @ vec > PUSH_DISTANCE + 0.02  # noqa: E731
        yield from self._move(ahead, CLOSED, max_steps=80, until=moved)
        yield from self._hold(CLOSED)

    def _place_next_to(self, task: Task, world: World):
        """Put the object down beside the other a few millimetres apart, on the side the fingers do not open
        toward (so they miss it), the side nearer the object's start."""
        o, other = task.obj, task.target

        def spot():
            across = np.cross(world.finger_axis, [0.0, 0.0, 1.0])
            across *= np.sign(across @ (task.start - world.pos(other))) or 1.0
            return world.pos(other) + across * (_extent(o, across, world) + _extent(other, across, world) + 0.006)

        for _ in range(3):
            yield from self._grasp(task, world)
            if world.grasped(o):
                yield from self._put_down(task, world, lambda: 0.0, over=spot)
            if success(task, world):
                break
        yield from self._hold(OPEN)

    def _put_in_drawer(self, task: Task, world: World):
        o = task.obj
        offset = lambda: world.grasp_pos - world.pos(o)  # noqa: E731
        over = lambda h: np.append(world.drawer_center[:2] + offset()[:2], h)  # noqa: E731
        for _ in range(3):
            yield from self._grasp(task, world)
            if not world.grasped(o):
                continue
            yield from self._move(lambda: over(CLEAR), CLOSED, tol=0.01, abort=lambda: not world.touched(o))
            yield from self._move(lambda: over(world.drawer_center[2] + o.half + 0.012 + offset()[2]), CLOSED,
                                  tol=0.004)
            yield from self._wait(OPEN, 5)
            yield from self._move(lambda: np.append(world.grasp_pos[:2], CLEAR), OPEN, tol=0.01)
            if success(task, world):
                break
        yield from self._hold(OPEN)

    def _press_then_pick(self, task: Task, world: World):
        yield from self._press(task.target, world)
        yield from self._grasp(task, world)
        yield from self._hold(CLOSED)

    def _open_drawer(self, task: Task, world: World):
        inside = lambda: world.drawer_front + [0.025, 0, 0]  # noqa: E731
        yield from self._move(lambda: np.append(inside()[:2], CLEAR), CLOSED, tol=0.01)
        yield from self._move(lambda: np.append(inside()[:2], 0.05), CLOSED, tol=0.006)
        yield from self._move(lambda: np.append(inside()[:2] - [0.12, 0], 0.05), CLOSED, tol=0.006)
        yield from self._hold(CLOSED)

    def _close_drawer(self, task: Task, world: World):
        outside = lambda: world.drawer_front - [0.045, 0, 0]  # noqa: E731
        yield from self._move(lambda: np.append(outside()[:2], CLEAR), CLOSED, tol=0.01)
        yield from self._move(lambda: np.append(outside()[:2], 0.04), CLOSED, tol=0.006)
        end = world.cabinet_pos[:2] - [0.08 + 0.006 + 0.016 + 0.01, 0]
        yield from self._move(lambda: np.append(end, 0.04), CLOSED, tol=0.006)
        yield from self._hold(CLOSED)

    def _press_button(self, task: Task, world: World):
        yield from self._press(task.obj, world)
        yield from self._hold(CLOSED)

    def _press(self, button, world: World):
        top = lambda: world.pos(button)  # noqa: E731
        yield from self._move(lambda: top() + [0, 0, 0.08], CLOSED, tol=0.01)
        yield from self._move(lambda: top() + [0, 0, TIP - 0.014], CLOSED, tol=0.004, max_steps=30)
        yield from self._wait(CLOSED, world.spec["success_steps"] + 1)
        yield from self._move(lambda: top() + [0, 0, 0.08], CLOSED, tol=0.01)


def _extent(t, direction: np.ndarray, world: World) -> float:
    """How far an object reaches from its centre along a horizontal direction (a turned cube reaches further)."""
    if t.shape != "cube":
        return t.half
    angle = np.arctan2(direction[1], direction[0]) - world.yaw(t)
    return t.half * (abs(np.cos(angle)) + abs(np.sin(angle)))


def _toward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3,) horizontal unit vector from a to b."""
    v = np.append((b - a)[:2], 0.0)
    return v / max(np.linalg.norm(v), 1e-9)


def _nearest_yaw(object_yaw: float, current: float) -> float:
    """The grasp yaw closest to `current` that aligns the fingers with a cube's faces (90° symmetry)."""
    return object_yaw + np.pi / 2 * np.round((current - object_yaw) / (np.pi / 2))


def run_expert_episode(env, seed: int, noise: float = 0.0, options: dict | None = None) -> dict:
    """Run one expert episode on a (TimeLimit-wrapped) env; returns success, steps and instruction."""
    expert = ScriptedExpert(env, noise=noise, seed=seed)
    obs, info = env.reset(seed=seed, options=options)
    expert.reset()
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = env.step(expert.act(obs)[0])
        steps += 1
    return {"success": info["success"], "steps": steps, "instruction": info["instruction"],
            "family": info["task"], "disturbed": info["disturbed"]}
