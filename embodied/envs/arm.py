"""The arm's controller: end-effector deltas -> inverse kinematics (damped least squares) -> joint
position targets; or joint-position actions directly."""

from __future__ import annotations

import numpy as np

from embodied.envs.rendering import mujoco
from embodied.errors import UserError
from embodied.specs import ActionSpec, StateSpec

ARM_JOINTS = ("j1", "j2", "j3", "j4", "j5")
FINGERS = ("finger_l", "finger_r")
FINGER_OPEN = 0.045  # each finger's travel (m)
R_DOWN = np.diag([-1.0, 1.0, -1.0])  # grasp-site orientation pointing down at yaw 0
WORKSPACE = np.array([[0.12, 0.70], [-0.45, 0.45], [0.02, 0.35]])  # grasp-site target bounds (m)
MAX_LAG = 0.04  # the target may lead the actual grasp site by at most this much (m)
HOME = np.array([0.35, 0.0, 0.22])
HOME_SEED = np.array([0.0, 0.3, 1.9, 0.9, 0.0])  # an elbow-up configuration near HOME


def yaw_rotation(yaw: float) -> np.ndarray:  # (3, 3) gripper pointing down, rotated by yaw
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R_DOWN


def site_yaw(xmat: np.ndarray) -> float:
    """Yaw of a down-pointing gripper from its site rotation matrix (the fingers close along y)."""
    r = xmat.reshape(3, 3)
    return float(np.arctan2(-r[0, 1], r[1, 1]))


def action_spec(kind: str, max_step: float, max_yaw_step: float, model: mujoco.MjModel) -> ActionSpec:
    grip = dict(names=("gripper",), units=("1=closed,-1=open",), scale=(1.0,), offset=(0.0,))
    if kind == "ee_delta":
        return ActionSpec(
            kind, ("dx", "dy", "dz", "dyaw") + grip["names"], ("m", "m", "m", "rad") + grip["units"],
            (max_step,) * 3 + (max_yaw_step,) + grip["scale"], (0.0,) * 4 + grip["offset"])
    if kind == "joint_pos":
        lo, hi = np.array([model.jnt_range[model.joint(j).id] for j in ARM_JOINTS]).T
        return ActionSpec(kind, ARM_JOINTS + grip["names"], ("rad",) * 5 + grip["units"],
                          tuple((hi - lo) / 2) + grip["scale"], tuple((hi + lo) / 2) + grip["offset"])
    raise UserError(f"unknown action kind {kind!r}; expected 'ee_delta' or 'joint_pos'")


STATE_SPEC = StateSpec(ARM_JOINTS + ("gripper_opening", "ee_x", "ee_y", "ee_z", "ee_qw", "ee_qx",
                                     "ee_qy", "ee_qz"))


class ArmController:
    """Keeps a grasp-site target pose (position + yaw) and servos the arm to it through IK."""

    def __init__(self, model: mujoco.MjModel, spec: ActionSpec, ik_iters: int = 6, damping: float = 0.02):
        self.model, self.spec = model, spec
        self.ik_iters, self.damping = ik_iters, damping
        self._scratch = mujoco.MjData(model)
        self._qadr = np.array([model.jnt_qposadr[model.joint(j).id] for j in ARM_JOINTS])
        self._dof = np.array([model.jnt_dofadr[model.joint(j).id] for j in ARM_JOINTS])
        self._lo, self._hi = np.array([model.jnt_range[model.joint(j).id] for j in ARM_JOINTS]).T
        self._act = np.array([model.actuator(j).id for j in ARM_JOINTS])
        self._fingers = np.array([model.actuator(f).id for f in FINGERS])
        self._finger_q = np.array([model.jnt_qposadr[model.joint(f).id] for f in FINGERS])
        self._site = model.site("grasp").id
        self._jacp, self._jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        self.home_q = self.solve(HOME, 0.0, HOME_SEED, iters=200)
        self.target_pos, self.target_yaw, self.q_target = HOME.copy(), 0.0, self.home_q.copy()

    def reset(self, data: mujoco.MjData) -> None:
        """Put the arm at home with the gripper open, at rest (call after mj_resetData)."""
        data.qpos[self._qadr] = self.home_q
        data.qpos[self._finger_q] = FINGER_OPEN
        data.ctrl[self._act] = self.home_q
        data.ctrl[self._fingers] = FINGER_OPEN
        self.target_pos, self.target_yaw, self.q_target = HOME.copy(), 0.0, self.home_q.copy()

    def apply(self, data: mujoco.MjData, action: np.ndarray) -> None:
        """Turn one normalized action into actuator targets."""
        scaled = np.asarray(self.spec.offset) + np.asarray(self.spec.scale) * action
        if self.spec.kind == "joint_pos":
            self.q_target = np.clip(scaled[:5], self._lo, self._hi)
        else:
            actual = data.site_xpos[self._site]
            target = np.clip(self.target_pos + scaled[:3], WORKSPACE[:, 0], WORKSPACE[:, 1])
            lead = target - actual
            if np.linalg.norm(lead) > MAX_LAG:  # bounded windup when blocked by contact
                target = actual + lead * (MAX_LAG / np.linalg.norm(lead))
            self.target_pos = target
            self.target_yaw = float(np.clip(self.target_yaw + scaled[3], -2.6, 2.6))
            self.q_target = self.solve(self.target_pos, self.target_yaw, self.q_target)
        data.ctrl[self._act] = self.q_target
        data.ctrl[self._fingers] = FINGER_OPEN * (1.0 - np.clip(scaled[-1], -1, 1)) / 2  # see gripper_command

    def solve(self, pos: np.ndarray, yaw: float, q0: np.ndarray, iters: int | None = None) -> np.ndarray:
        """Damped least squares on position + orientation error, within joint limits."""
        m, d = self.model, self._scratch
        q, r_goal = np.array(q0, dtype=float), yaw_rotation(yaw)
        for _ in range(iters or self.ik_iters):
            d.qpos[self._qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            e = r_goal @ d.site_xmat[self._site].reshape(3, 3).T  # rotation still to go
            err = np.array([*(pos - d.site_xpos[self._site]),
                            0.5 * (e[2, 1] - e[1, 2]), 0.5 * (e[0, 2] - e[2, 0]), 0.5 * (e[1, 0] - e[0, 1])])
            if np.linalg.norm(err) < 1e-5:
                break
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._dof], self._jacr[:, self._dof]])  # (6, 5)
            dq = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(6), err)
            q = np.clip(q + dq, self._lo, self._hi)
        return q

    def state(self, data: mujoco.MjData) -> np.ndarray:  # float32 (13,), see STATE_SPEC
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[self._site])
        opening = data.qpos[self._finger_q].sum()
        return np.concatenate([data.qpos[self._qadr], [opening], data.site_xpos[self._site], quat]
                              ).astype(np.float32)

    def yaw(self, data: mujoco.MjData) -> float:
        return site_yaw(data.site_xmat[self._site])


def gripper_command(opening: float) -> float:
    """The gripper action (1 closed, -1 open) whose target is this opening (the state's gripper_opening, both
    fingers together): the inverse of the controller's finger targets, FINGER_OPEN * (1 - command) / 2 each."""
    return float(np.clip(1.0 - opening / FINGER_OPEN, -1.0, 1.0))
