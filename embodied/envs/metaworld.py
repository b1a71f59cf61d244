"""Meta-World v3 tasks (a Sawyer arm, 50 manipulation tasks) behind the tabletop env's observation/action
contract, registered as `embodied/MetaWorld-<Task>V3-v0` where the `metaworld` package is importable.

metaworld 3.1.1 pins mujoco==3.3.0, so it lives in its own env: `make metaworld` builds .venv-metaworld
from requirements-metaworld.lock. Goal variations are Meta-World's own: MT1(task, seed=benchmark_seed)
makes the task's 50; `reset(seed=...)` picks one of them with the env's seeded generator.

State: by default the robot's own state only, as in the tabletop: hand position (m) and gripper opening
(0 closed .. 1 open), float32 (4,). The objects and the goal must come from the images and the
instruction. `state="full"` gives Meta-World's 39-dim observation instead (hand, gripper, object poses,
the previous step's copy of those, goal), for state-based baselines: it holds the goal position, which
the images show only as a small site (a few pixels at 96x96).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from embodied.envs.rendering import CameraRenderer, mujoco
from embodied.envs.tabletop import INSTRUCTION_CHARS, MAX_IMAGE, substeps, with_overrides
from embodied.envs.tasks import MAX_INSTRUCTION
from embodied.errors import UserError
from embodied.specs import ActionSpec, StateSpec

# isort: split
# metaworld imports MuJoCo, which reads $MUJOCO_GL once: embodied.envs.rendering must choose it first
import metaworld
from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT10_V3
from metaworld.policies import ENV_POLICY_MAP

ROBOT = "sawyer"
TASKS = list(ALL_V3_ENVIRONMENTS)  # 'reach-v3', ...
MT10 = list(MT10_V3)
CAMERAS = ("topview", "corner", "corner2", "corner3", "corner4", "behindGripper", "gripperPOV")  # every v3 task's
REACHED = 0.05  # the fingertips came this close to the task's object (m): Meta-World's TARGET_RADIUS
MOVED = 0.03  # the object was displaced this far: the arm got to it (m), as in diagnosis.MOVED
INSTRUCTIONS = {
    "reach-v3": "reach the goal position",
    "push-v3": "push the puck to the goal",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "door-open-v3": "open the door",
    "drawer-open-v3": "open the drawer",
    "drawer-close-v3": "close the drawer",
    "button-press-topdown-v3": "press the button from the top",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window closed",
}
ACTION_SPEC = ActionSpec("ee_delta", ("dx", "dy", "dz", "gripper"), ("m", "m", "m", "1=closed,-1=open"),
                         (0.01, 0.01, 0.01, 1.0), (0.0, 0.0, 0.0, 0.0))  # Meta-World's action_scale: 1 cm
_NOW = ("hand_x", "hand_y", "hand_z", "gripper_opening") + tuple(f"obj_{i}" for i in range(14))  # 2 objects' pose
PROPRIO_SPEC = StateSpec(_NOW[:4])
FULL_SPEC = StateSpec(_NOW + tuple(f"prev_{n}" for n in _NOW) + ("goal_x", "goal_y", "goal_z"))


def instruction(task: str) -> str:
    """'drawer-open-v3' -> 'open the drawer'; tasks without one: their name in words."""
    return INSTRUCTIONS.get(task, task.removesuffix("-v3").replace("-", " "))


def env_id(task: str) -> str:
    """'button-press-topdown-v3' -> 'embodied/MetaWorld-ButtonPressTopdownV3-v0'."""
    return "embodied/MetaWorld-" + "".join(w.capitalize() for w in task.split("-")) + "-v0"


@dataclass
class MetaWorldConfig:
    """Settings of a Meta-World env. Unknown keys are rejected."""

    ctrl_dt: float = 0.0125
    """Control period (s): one env step. Meta-World's 80 Hz (5 physics steps)."""
    sim_dt: float = 0.0025
    """Physics time step (s): Meta-World's."""
    image_size: tuple[int, int] = (96, 96)
    """Camera image (height, width)."""
    cameras: tuple[str, ...] = ("corner", "gripperPOV")
    """Cameras in observation['images']: Meta-World's fixed corner, corner2-4, topview, or the hand-mounted
    gripperPOV (looking down past the fingers) and behindGripper (0.5 m behind the hand: the arm blocks it
    at the start of button-press-topdown and window-open/close). Fixed cameras are rolled level (Meta-World's
    corner is upside down)."""
    state: str = "proprio"
    """'proprio': hand position + gripper opening (4,); 'full': Meta-World's 39-dim observation."""
    benchmark_seed: int = 0
    """Seed of Meta-World's MT1 goal variations (50 per task)."""
    render_size: tuple[int, int] = (256, 256)
    """Size of env.render() frames (height, width), from the corner camera."""
    reflections: bool = False
    """Render the table's reflections (about 1.7x the frame time in software rendering; barely visible)."""

    def __post_init__(self):
        for name in ("image_size", "render_size"):
            size = getattr(self, name)
            if (not isinstance(size, (tuple, list)) or len(size) != 2
                    or not all(isinstance(v, Integral) and 1 <= v <= MAX_IMAGE for v in size)):
                raise UserError(f"{name} must be (height, width), two integers from 1 to {MAX_IMAGE}, got {size!r}")
        if self.state not in ("proprio", "full"):
            raise UserError(f"state must be 'proprio' or 'full', got {self.state!r}")
        self.substeps  # noqa: B018 - ctrl_dt must be a multiple of sim_dt

    @property
    def substeps(self) -> int:
        return substeps(self.ctrl_dt, self.sim_dt)


def default_config() -> MetaWorldConfig:
    return MetaWorldConfig()


def make_config(**overrides) -> MetaWorldConfig:
    return with_overrides(default_config(), "metaworld", overrides)


def level_cameras(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Roll every fixed world camera about its view axis so that world up is image up. Meta-World's corner
    camera has its image y axis pointing down (xyaxes '-1 1 0 -0.2 -0.2 -1'): its frames are upside down."""
    for cam in range(model.ncam):
        if model.cam_bodyid[cam] != 0 or model.cam_mode[cam] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED:
            continue
        forward = -data.cam_xmat[cam].reshape(3, 3)[:, 2]
        right = np.cross(forward, [0.0, 0.0, 1.0])
        if np.linalg.norm(right) < 0.1:  # looking (almost) straight down or up: no horizon to level
            continue
        right /= np.linalg.norm(right)
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, np.column_stack([right, np.cross(right, forward), -forward]).ravel())
        model.cam_quat[cam] = quat
    mujoco.mj_forward(model, data)


class MetaWorldEnv(gym.Env):
    """Observation: {'images': {camera: uint8 (H, W, 3)}, 'state': float32 (4,) or (39,), 'instruction': str}.
    Action: float32 (4,) in [-1, 1]: hand deltas (1 cm per unit) + gripper. Reward 1 on success (Meta-World's
    own test), which terminates; Meta-World's shaped reward is info['shaped_reward'].
    reset(options={'variation': i}) picks goal variation i instead of a seeded random one."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}
    robot = ROBOT  # the store attribute `robot` (the tabletop's is 'arm5')

    def __init__(self, task: str = "reach-v3", render_mode: str | None = None, **overrides):
        if task not in ALL_V3_ENVIRONMENTS:
            raise UserError(f"unknown Meta-World task {task!r}; available: {TASKS}")
        cfg = make_config(**overrides)
        self.config, self.render_mode, self.task_name = cfg, render_mode, task
        self.instruction = instruction(task)
        self.variations = metaworld.MT1(task, seed=cfg.benchmark_seed).train_tasks
        self.mw = ALL_V3_ENVIRONMENTS[task]()
        self.mw.max_path_length = 10**9  # the TimeLimit wrapper truncates, not Meta-World's own counter
        model = self.mw.model
        model.opt.timestep, self.mw.frame_skip = cfg.sim_dt, cfg.substeps
        level_cameras(model, self.mw.data)
        if not cfg.reflections:
            model.mat_reflectance[:] = 0.0  # visual only: MuJoCo skips the reflection pass
        names = [model.camera(i).name for i in range(model.ncam)]
        for cam in cfg.cameras:
            if cam not in names:
                raise UserError(f"unknown camera {cam!r}; available: {names}")
        self.action_spec = ACTION_SPEC
        self.state_spec = FULL_SPEC if cfg.state == "full" else PROPRIO_SPEC
        obs_space = {
            "state": spaces.Box(-np.inf, np.inf, (len(self.state_spec.names),), np.float32),
            "instruction": spaces.Text(max_length=MAX_INSTRUCTION, charset=INSTRUCTION_CHARS),
        }
        if cfg.cameras:  # cameras=() gives a state-only env (fast expert runs)
            h, w = cfg.image_size
            obs_space["images"] = spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in cfg.cameras})
        self.observation_space = spaces.Dict(obs_space)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._renderer = self._viewer = None  # GL contexts made on first use (not before a fork)
        self.raw_obs: np.ndarray | None = None  # Meta-World's 39-dim observation: what its scripted policies read

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options, n = dict(options or {}), len(self.variations)
        if set(options) - {"variation"}:
            raise UserError(f"unknown reset options {sorted(set(options) - {'variation'})}; expected 'variation'")
        self.variation = int(options.get("variation", self.np_random.integers(n)))
        if not 0 <= self.variation < n:
            raise UserError(f"variation must be 0..{n - 1} (Meta-World's goal variations), got {self.variation}")
        self.mw.set_task(self.variations[self.variation])
        self.raw_obs, _ = self.mw.reset()
        self._closest, self._start = np.inf, self._target().copy()
        self._warnings = self.mw.data.warning.number.copy()
        return self._observation(), self._info(success=False, shaped=0.0)

    def step(self, action):
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise UserError(f"action must be 4 finite numbers ({', '.join(self.action_spec.names)}), got {a}")
        self.raw_obs, shaped, _, _, mw_info = self.mw.step(np.clip(a, -1.0, 1.0))
        success = bool(mw_info["success"])
        return self._observation(), float(success), success, False, self._info(success, float(shaped))

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._viewer is None:
            self._viewer = CameraRenderer(self.mw.model, *self.config.render_size)
        return self._viewer.render(self.mw.data, "corner")

    def close(self):
        for r in (self._renderer, self._viewer):
            if r is not None:
                r.close()
        self._renderer = self._viewer = None
        self.mw.close()

    def _observation(self) -> dict:
        raw = self.raw_obs
        state = raw if self.config.state == "full" else raw[:4]
        obs = {"state": state.astype(np.float32), "instruction": self.instruction}
        if self.config.cameras:
            if self._renderer is None:
                self._renderer = CameraRenderer(self.mw.model, *self.config.image_size)
            obs["images"] = {c: self._renderer.render(self.mw.data, c) for c in self.config.cameras}
        return obs

    def _target(self) -> np.ndarray:  # (3,) what the hand must get to: reach's goal, else the task's object
        return self.raw_obs[-3:] if self.task_name.startswith("reach") else self.raw_obs[4:7]

    def _info(self, success: bool, shaped: float) -> dict:
        """As the tabletop's: `failure` is 'never reached' (the fingertips never came within 5 cm of the object,
        or of reach's goal, and the object never moved) or 'out of time'; `focus` is that target relative to
        the fingertips (m)."""
        focus = (self._target() - self.mw.tcp_center).astype(np.float32)  # from between the fingertips
        self._closest = min(self._closest, float(np.linalg.norm(focus)))
        reached = self._closest <= REACHED or np.linalg.norm(self._target() - self._start) > MOVED
        counts = self.mw.data.warning.number.copy()
        fresh = np.flatnonzero(counts > self._warnings)
        self._warnings = counts
        return {
            "success": success, "task": self.task_name, "instruction": self.instruction,
            "variation": self.variation, "shaped_reward": shaped,
            "physics_warnings": [mujoco.mjtWarning(i).name for i in fresh],
            "failure": "" if success else ("out of time" if reached else "never reached"),
            "focus": focus,
        }


class MetaWorldExpert:
    """Meta-World's scripted policy for the env's task, under the Policy contract (reset(), act(obs) ->
    chunk of one action). It reads the env's privileged 39-dim observation; with `noise`, Gaussian noise is
    added to the executed action and `label` keeps the clean one (DART, as the tabletop experts)."""

    def __init__(self, env, noise: float = 0.0, seed: int | None = None):
        self.env: MetaWorldEnv = env.unwrapped
        self.policy = ENV_POLICY_MAP[self.env.task_name]()
        self.noise, self.rng = noise, np.random.default_rng(seed)
        self.label: np.ndarray | None = None

    def reset(self) -> None:
        pass  # Meta-World's policies are stateless

    def act(self, observation: dict) -> np.ndarray:  # -> float32 (1, 4)
        with warnings.catch_warnings():  # "Constant(s) may be too high": its gains saturate by design
            warnings.simplefilter("ignore", UserWarning)
            action = np.clip(self.policy.get_action(self.env.raw_obs), -1, 1).astype(np.float32)
        self.label = action.copy()
        if self.noise > 0:
            action[:3] += self.rng.normal(0, self.noise, 3)
        return np.clip(action, -1, 1).astype(np.float32)[None]


def register_envs(max_episode_steps: int = 500) -> dict[str, str]:
    """Register every v3 task (Meta-World's own horizon: 500 steps); returns {task: env id}."""
    ids = {task: env_id(task) for task in TASKS}
    for task, gym_id in ids.items():
        if gym_id not in gym.registry:
            gym.register(gym_id, entry_point="embodied.envs.metaworld:MetaWorldEnv",
                         max_episode_steps=max_episode_steps, kwargs={"task": task})
    return ids
