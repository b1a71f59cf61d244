"""The tabletop Gymnasium environment: a 5-joint arm with a parallel gripper and language tasks."""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass, field
from numbers import Integral, Real

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from embodied.envs import tasks
from embodied.envs.arm import STATE_SPEC, ArmController, action_spec
from embodied.envs.diagnosis import Trace
from embodied.envs.rendering import CameraRenderer, camera_projection, mounted_projections, mujoco, static_cameras
from embodied.envs.scene import WORLD_VERSION, World
from embodied.errors import UserError

# a str, not a set: its order fixes character indices, which must agree across processes
INSTRUCTION_CHARS = string.ascii_letters + string.digits + " .,'-_"
SUITE = "suite"
MAX_IMAGE = 4096  # pixels per side; MuJoCo's offscreen buffer and memory set the real bound
CAMERAS = ("front", "wrist")  # the scene's cameras
INSTRUCTION_CONTROLS = ("given", "blank", "swap")


@dataclass
class TabletopConfig:
    """Settings of the tabletop env. Unknown keys are rejected."""

    ctrl_dt: float = 0.05
    """Control period (s): one env step. 20 Hz."""
    sim_dt: float = 0.002
    """Physics time step (s)."""
    image_size: tuple[int, int] = (96, 96)
    """Camera image (height, width)."""
    cameras: tuple[str, ...] = ("front", "wrist")
    """Cameras in observation['images']."""
    action_type: str = "ee_delta"
    """'ee_delta' (dx, dy, dz, dyaw, gripper) or 'joint_pos' (5 joint targets, gripper)."""
    max_step: float = 0.02
    """End-effector translation per step at action 1 (m)."""
    max_yaw_step: float = 0.2
    """End-effector yaw change per step at action 1 (rad)."""
    version: int = WORLD_VERSION
    """World version (envs/tasks.yaml `worlds`); the env id's -v0/-v1 sets it."""
    split: str = "train"
    """Instructions to sample: 'train', 'heldout' (a held-out wording or a held-out target, never both),
    'heldout_wording', 'heldout_target' or 'all'."""
    instruction: str = "given"
    """What the observation's instruction says, for controls: 'given' (the task's), 'blank' (empty) or 'swap'
    (another valid instruction of the same family for the same scene; info['swap_success'] grades it, while
    info['success'] still grades the original task, and the episode ends when either holds)."""
    shadows: bool = False
    """Render shadows (about 40x slower in software rendering)."""
    multisamples: int = 0
    """Anti-aliasing samples (0 = off; slower)."""
    smooth: bool = False
    """Finely tessellated curved surfaces (about 3x slower rendering; invisible at 96x96)."""
    render_size: tuple[int, int] = (256, 256)
    """Size of env.render() frames (height, width)."""
    settle_steps: int = 25
    """Physics steps run after reset so objects come to rest."""
    families: tuple[str, ...] = field(default_factory=tuple)
    """Families a suite env samples from (empty = the world's `suite` in envs/tasks.yaml)."""
    front_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Move the front camera by this much (m, world x y z; it keeps looking at the workspace): video from
    another camera placement than the policy's."""
    light_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Scale the lights' color (r, g, b): another look, e.g. warm indoor light (1.0, 0.8, 0.6)."""
    table_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Scale the table top's color (r, g, b; clipped to 1): another table, e.g. dark wood (0.8, 0.55, 0.35)."""
    arm_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Scale the arm's and gripper's colors (r, g, b; clipped to 1): another robot's paint, e.g. orange
    (1.2, 0.6, 0.2). The objects' colors stay: the instructions name them."""

    def __post_init__(self):
        """Reject values that would fail later, deep inside MuJoCo or OpenGL, naming the field."""
        for name in ("ctrl_dt", "sim_dt", "max_step"):
            value = getattr(self, name)
            if not (isinstance(value, Real) and 0 < value < float("inf")):
                raise UserError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(self.max_yaw_step, Real) and 0 <= self.max_yaw_step < float("inf")):
            raise UserError(f"max_yaw_step must be a number >= 0, got {self.max_yaw_step!r}")
        for name in ("image_size", "render_size"):
            size = getattr(self, name)
            if (not isinstance(size, (tuple, list)) or len(size) != 2
                    or not all(isinstance(v, Integral) and 1 <= v <= MAX_IMAGE for v in size)):
                raise UserError(f"{name} must be (height, width), two integers from 1 to {MAX_IMAGE}, "
                                 f"got {size!r}")
        for name in ("multisamples", "settle_steps"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or value < 0:
                raise UserError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("front_offset", "light_tint", "table_tint", "arm_tint"):
            value = getattr(self, name)
            if not (isinstance(value, (tuple, list)) and len(value) == 3
                    and all(isinstance(v, Real) and abs(v) < 10 for v in value)):
                raise UserError(f"{name} must be three numbers (x, y, z or r, g, b), got {value!r}")
        for name in ("light_tint", "table_tint", "arm_tint"):
            if min(getattr(self, name)) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.action_type not in ("ee_delta", "joint_pos"):
            raise UserError(f"action_type must be 'ee_delta' or 'joint_pos', got {self.action_type!r}")
        if self.split not in tasks.SPLITS:
            raise UserError(f"split must be one of {list(tasks.SPLITS)}, got {self.split!r}")
        if self.instruction not in INSTRUCTION_CONTROLS:
            raise UserError(f"instruction must be one of {list(INSTRUCTION_CONTROLS)}, got {self.instruction!r}")
        if not isinstance(self.version, Integral) or self.version not in tasks.world_versions():
            raise UserError(f"version must be a world version {tasks.world_versions()}, got {self.version!r}")
        self.substeps  # noqa: B018 - ctrl_dt must be a multiple of sim_dt

    @property
    def substeps(self) -> int:
        return substeps(self.ctrl_dt, self.sim_dt)


def default_config() -> TabletopConfig:
    return TabletopConfig()


def make_config(**overrides) -> TabletopConfig:
    return with_overrides(default_config(), "tabletop", overrides)


def with_overrides(config, kind: str, overrides: dict):
    """An env's default config with overrides (any env's); unknown keys name the valid ones."""
    known = {f.name for f in dataclasses.fields(config)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown {kind} config keys {sorted(unknown)}; valid keys: {sorted(known)}")
    return dataclasses.replace(config, **overrides)


def substeps(ctrl_dt: float, sim_dt: float) -> int:
    """Physics steps per control step; ctrl_dt must be a whole multiple of sim_dt (any env's)."""
    n = round(ctrl_dt / sim_dt) if sim_dt > 0 else 0
    if n < 1 or abs(n * sim_dt - ctrl_dt) > 1e-9:
        raise UserError(f"ctrl_dt={ctrl_dt} must be a positive multiple of sim_dt={sim_dt}")
    return n


class TabletopEnv(gym.Env):
    """Observation: {'images': {camera: uint8 (H, W, 3)}, 'state': float32 (13,), 'instruction': str}.
    Action: float32 (5,) in [-1, 1]; see `action_spec`. Reward 1 on success, which terminates.

    reset(options={'task': family}) picks the family; reset(options={'instruction': text}) parses a
    typed instruction and grounds it in the sampled scene.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, task: str = SUITE, render_mode: str | None = None, **overrides):
        cfg = make_config(**overrides)
        self.config, self.render_mode = cfg, render_mode
        self.world = World(cfg.version)
        self.families = list(cfg.families or self.world.spec["suite"])
        self._check_family(task)
        for f in self.families:
            self._check_family(f)
        self.task_name = task
        model = self.world.model
        model.opt.timestep = cfg.sim_dt
        self.substeps = cfg.substeps
        self.action_spec = action_spec(cfg.action_type, cfg.max_step, cfg.max_yaw_step, model)
        self.state_spec = STATE_SPEC
        self.controller = ArmController(model, self.action_spec)
        for cam in cfg.cameras:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam) < 0:
                raise UserError(f"unknown camera {cam!r}; available: {list(CAMERAS)}")
        model.cam_pos[model.camera("front").id] += np.asarray(cfg.front_offset)
        tint = np.asarray(cfg.light_tint)
        model.light_diffuse[:] *= tint
        model.light_ambient[:] *= tint
        model.vis.headlight.diffuse[:] *= tint
        model.vis.headlight.ambient[:] *= tint
        table = model.material("table").id
        model.mat_rgba[table, :3] = np.clip(model.mat_rgba[table, :3] * np.asarray(cfg.table_tint), 0, 1)
        arm = np.flatnonzero(model.body_rootid[model.geom_bodyid] == model.body("base").id)
        model.geom_rgba[arm, :3] = np.clip(model.geom_rgba[arm, :3] * np.asarray(cfg.arm_tint), 0, 1)
        h, w = cfg.image_size
        obs_space = {
            "state": spaces.Box(-np.inf, np.inf, (len(STATE_SPEC.names),), np.float32),
            "instruction": spaces.Text(max_length=tasks.MAX_INSTRUCTION, min_length=0, charset=INSTRUCTION_CHARS),
        }
        if cfg.cameras:  # cameras=() gives a state-only env (fast expert runs)
            images = {c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in cfg.cameras}
            obs_space["images"] = spaces.Dict(images)
        self.observation_space = spaces.Dict(obs_space)
        self.action_space = spaces.Box(-1.0, 1.0, (len(self.action_spec.names),), np.float32)
        # GL contexts are made on first use: a context made before a fork (AsyncVectorEnv builds a
        # throwaway env in the parent) deadlocks the forked workers
        self._renderer = self._viewer = None
        self.task: tasks.Task | None = None
        self.swap: tasks.Task | None = None  # with instruction='swap': the task the observation names

    def _check_family(self, name: str) -> None:
        known = list(self.world.suite["families"])
        if name != SUITE and name not in known:
            raise UserError(f"unknown task {name!r}; available: {[SUITE, *known]}")

    # ---- Gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task", "instruction"}
        if unknown:
            raise UserError(f"unknown reset options {sorted(unknown)}; expected 'task' and/or 'instruction'")
        m, d, world = self.world.model, self.world.data, self.world
        family = options.get("task", self.task_name)
        self._check_family(family)
        if family == SUITE:
            family = self.families[self.np_random.integers(len(self.families))]
        for attempt in range(50):  # some scenes lack what a family needs (e.g. a cube to stack on)
            mujoco.mj_resetData(m, d)
            world.apply_layout(world.sample_layout(self.np_random))
            self.controller.reset(d)
            mujoco.mj_forward(m, d)
            if options.get("instruction"):
                self.task = tasks.parse_instruction(options["instruction"], world)
                break
            try:
                self.task = tasks.sample_task(family, world, self.np_random, self.config.split)
                break
            except tasks.InstructionError:
                if attempt == 49:
                    raise
        start = world.spec["drawer_start"].get(self.task.family)
        if start is not None:  # world v0: the opening depends on the family
            d.qpos[m.joint("drawer").qposadr[0]] = self.np_random.uniform(*start)
        self.swap = None
        if self.config.instruction == "swap" and not options.get("instruction"):
            self.swap = tasks.swap_task(self.task, world, self.np_random, self.config.split)
        mujoco.mj_step(m, d, self.config.settle_steps)
        for task in (self.task, self.swap):
            if task is not None and task.obj is not None:
                task.start = world.pos(task.obj)
            if task is not None and task.target is not None:
                task.target_start = world.pos(task.target)
        self._trace = Trace(self.task, world)
        self._trace.update(world)
        self._held = self._held_swap = 0  # control steps the success predicate has held in a row
        self._warnings = d.warning.number.copy()
        info = self._info(success=False)
        if self.swap is not None:
            info["swap_success"] = False
        return self._observation(), info

    def step(self, action):
        action = self._check_action(action)
        m, d = self.world.model, self.world.data
        self.controller.apply(d, action)
        mujoco.mj_step(m, d, self.substeps)
        graded = bool(self.task.family)
        if graded:
            tasks.advance(self.task, self.world)
            self._trace.update(self.world)
        need = self.world.spec["success_steps"]
        self._held = self._held + 1 if graded and tasks.success(self.task, self.world) else 0
        success = self._held >= need
        info = self._info(success)
        if self.swap is not None:
            tasks.advance(self.swap, self.world)
            self._held_swap = self._held_swap + 1 if tasks.success(self.swap, self.world) else 0
            info["swap_success"] = self._held_swap >= need
        return self._observation(), float(success), success or info.get("swap_success", False), False, info

    def instruct(self, text: str, task: tasks.Task | None = None) -> dict:
        """Continue from the current scene with a new instruction (the interactive sim chains commands):
        `task` is what the text was grounded to (graded by its success predicate), or None to run the
        text ungraded. Returns the observation; the episode's step limit is the caller's."""
        text = " ".join(text.split())
        if len(text) > tasks.MAX_INSTRUCTION:
            raise tasks.InstructionError(f"instruction {tasks.clip(text)} is too long: at most "
                                         f"{tasks.MAX_INSTRUCTION} characters")
        self.task = task if task is not None else tasks.Task(family="", instruction=text)
        self.task.instruction = text
        if self.task.obj is not None:
            self.task.start = self.world.pos(self.task.obj)
        if self.task.target is not None:
            self.task.target_start = self.world.pos(self.task.target)
        self._trace = Trace(self.task, self.world) if self.task.family else None
        if self._trace is not None:
            self._trace.update(self.world)
        self._held, self.swap = 0, None
        return self._observation()

    def camera_projections(self) -> dict[str, dict[str, list]]:
        """Where a point appears in each observed camera, for stores (so training can tell where the named
        thing is in the image): {"world": {camera: (3, 4) world-to-pixel matrix}} for cameras that never
        move, {"ee": {camera: (3, 4) matrix from the grasp site's frame (the state's ee pose)}} for cameras
        on the hand. See rendering.camera_projection."""
        m = self.world.model
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)  # a scratch state: neither kind depends on it
        h, w = self.config.image_size
        cams = self.config.cameras
        return {"world": {c: camera_projection(m, d, c, h, w).tolist() for c in static_cameras(m, cams)},
                "ee": mounted_projections(m, d, cams, "grasp", h, w)}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._viewer is None:
            cfg = self.config
            self._viewer = CameraRenderer(self.world.model, *cfg.render_size, cfg.shadows,
                                          cfg.multisamples, cfg.smooth)
        return self._viewer.render(self.world.data, "front")

    def close(self):
        for r in (self._renderer, self._viewer):
            if r is not None:
                r.close()
        self._renderer = self._viewer = None

    # ---- helpers ------------------------------------------------------------------------------
    def _check_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float32)
        if a.shape != self.action_space.shape:
            raise UserError(f"action has shape {a.shape}; expected {self.action_space.shape} "
                             f"({', '.join(self.action_spec.names)})")
        if not np.all(np.isfinite(a)):
            raise UserError(f"action contains NaN or inf: {a}")
        return np.clip(a, -1.0, 1.0)

    def _observation(self) -> dict:
        d = self.world.data
        shown = {"given": self.task, "swap": self.swap or self.task}.get(self.config.instruction)
        obs = {"state": self.controller.state(d), "instruction": shown.instruction if shown else ""}
        if self.config.cameras:
            if self._renderer is None:
                cfg = self.config
                self._renderer = CameraRenderer(self.world.model, *cfg.image_size, cfg.shadows,
                                                cfg.multisamples, cfg.smooth)
            obs["images"] = {c: self._renderer.render(d, c) for c in self.config.cameras}
        return obs

    def _info(self, success: bool) -> dict:
        """Success, task identity, any MuJoCo warnings (e.g. bad qacc) raised since the last step, and
        while not successful, what stands in the way (`failure`: one of diagnosis.FAILURES)."""
        counts = self.world.data.warning.number.copy()
        fresh = np.flatnonzero(counts > self._warnings)
        self._warnings = counts
        return {
            "success": bool(success),
            "task": self.task.family,
            "instruction": self.task.instruction,
            "physics_warnings": [mujoco.mjtWarning(i).name for i in fresh],
            "failure": "" if success or self._trace is None else self._trace.failure(self.world),
            # another object on the table moved more than diagnosis.DISTURBED (reported, not failed)
            "disturbed": bool(self._trace is not None and self._trace.disturbed(self.world)),
            # privileged: where the named thing is, relative to the gripper (m); recorded as an auxiliary target
            "focus": (tasks.focus(self.task, self.world) - self.world.grasp_pos).astype(np.float32)
            if self.task.family else np.full(3, np.nan, np.float32),
        }
