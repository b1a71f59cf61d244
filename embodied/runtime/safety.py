"""The safety layer between a policy and a robot, on by default. numpy only.

Rules, in order, for every action before it is sent:
  1. non-finite (NaN, inf anywhere) -> "hold": no motion, the gripper as last commanded (end-effector
     deltas: zero motion; joint targets: the last target). A hold is sent as is (rules 3-5 skipped).
  2. clamp every dimension to the spec's limits
  3. soft start: for the first `ramp` actions after a hold (an episode's start, the watchdog), each motion
     dimension moves from the last sent value toward the action by a share 1 / (ramp - k) at the k-th
     (k = 0, 1, ...): a steady plan blends in linearly, in steps of 1 / ramp of its speed. An arm at rest does
     not jump to the plan's full speed (a pick's first planned action is ~10x a step within a plan;
     experiments/robot_link)
  4. rate limit: no motion dimension changes by more than `max_change` from the last action sent (the
     gripper is open-or-closed: it is exempt, as from the soft start)
  5. workspace (end-effector delta actions): the commanded position stays inside the box; from outside
     it, only motion back toward the box is allowed. This rule wins over the rate limit and the ramp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embodied.errors import UserError


@dataclass
class SafetyConfig:
    low: np.ndarray
    """Per-dimension action limits (env action units)."""
    high: np.ndarray
    max_change: float = 0.5
    """Largest change of any dimension from one control step to the next."""
    workspace_low: np.ndarray | None = None
    """End-effector box (m), for ee_delta actions; None = no box."""
    workspace_high: np.ndarray | None = None
    position_scale: np.ndarray = field(default_factory=lambda: np.ones(3))
    """Metres per unit of the first three action dimensions (the action spec's scale)."""
    gripper: int | None = -1
    """Index of the gripper dimension (held at its last command on "hold"); None if there is none."""
    kind: str = "ee_delta"
    """The action spec's kind: 'ee_delta' (a hold is zero motion) or 'joint_pos' (a hold repeats the last
    target; before the first one, `home`)."""
    home: np.ndarray | None = None
    """joint_pos: the target held before any command (default: action 0, the middle of each range)."""
    ramp: int = 8
    """Soft start: actions over which the motion blends in after a hold (1 = off)."""

    def __post_init__(self):
        self.low, self.high = np.asarray(self.low, np.float64), np.asarray(self.high, np.float64)
        if self.low.shape != self.high.shape or (self.low > self.high).any():
            raise UserError(f"safety limits: low {self.low} and high {self.high} must be the same shape, low <= high")
        if not self.max_change > 0:
            raise UserError(f"max_change must be > 0, got {self.max_change}")
        if self.ramp < 1:
            raise UserError(f"ramp must be >= 1 action (1 = no soft start), got {self.ramp}")
        if self.kind not in ("ee_delta", "joint_pos"):
            raise UserError(f"action kind must be 'ee_delta' or 'joint_pos', got {self.kind!r}")

    @classmethod
    def from_spec(cls, spec: dict, workspace: np.ndarray | None = None, max_change: float = 0.5,
                  ramp: int = 8) -> SafetyConfig:
        """From a bundle's policy_spec.json: the action limits; the box (3, 2) for ee_delta actions."""
        limits, action_spec = spec["action_limits"], spec.get("action_spec", {})
        delta = action_spec.get("kind") == "ee_delta" and workspace is not None
        names = list(action_spec.get("names", []))
        return cls(np.asarray(limits["low"]), np.asarray(limits["high"]), max_change,
                   workspace[:, 0] if delta else None, workspace[:, 1] if delta else None,
                   np.asarray(action_spec.get("scale", [1.0] * 3)[:3]),
                   names.index("gripper") if "gripper" in names else None, action_spec.get("kind", "ee_delta"),
                   ramp=ramp)


class SafetyLayer:
    """filter(action, ee_position) -> the action to send; `events` counts what each rule changed."""

    def __init__(self, config: SafetyConfig):
        self.config = config
        self.events = {"non_finite": 0, "clamped": 0, "rate_limited": 0, "ramped": 0, "workspace": 0}
        self.reset()

    def reset(self, gripper: float | None = None) -> None:
        """A new episode. gripper: the command that keeps the gripper as it is now, so that a hold before the
        first action (the watchdog, waiting for the first plan) leaves it there; without it such a hold
        commands 0, which a proportional gripper takes as half-closed."""
        self.last: np.ndarray | None = None
        self.moving = 0  # actions sent since the last hold (or the episode's start): the soft start's k - 1
        self.unwalled: np.ndarray | None = None  # the last action before the workspace rule (catching up owes it)
        cfg = self.config
        if gripper is not None and cfg.gripper is not None and cfg.kind != "joint_pos":
            self.last = np.clip(np.zeros_like(cfg.low), cfg.low, cfg.high)
            self.last[cfg.gripper] = np.clip(gripper, cfg.low[cfg.gripper], cfg.high[cfg.gripper])

    def hold(self) -> np.ndarray:
        """No motion; the gripper stays as last commanded. What the watchdog sends."""
        cfg = self.config
        if cfg.kind == "joint_pos":
            home = np.zeros_like(cfg.low) if cfg.home is None else np.asarray(cfg.home, np.float64)
            action = self.last.copy() if self.last is not None else np.clip(home, cfg.low, cfg.high)
        else:
            action = np.clip(np.zeros_like(cfg.low), cfg.low, cfg.high)
            if cfg.gripper is not None and self.last is not None:
                action[cfg.gripper] = self.last[cfg.gripper]
        self.last, self.moving, self.unwalled = action.copy(), 0, action.copy()
        return action.astype(np.float32)

    def filter(self, action, ee_position=None) -> np.ndarray:
        cfg = self.config
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != cfg.low.shape:
            raise UserError(f"action: expected {cfg.low.shape[0]} values, got shape {np.shape(action)}")
        if not np.isfinite(a).all():
            self.events["non_finite"] += 1
            return self.hold()
        clamped = np.clip(a, cfg.low, cfg.high)
        self.events["clamped"] += int(not np.array_equal(clamped, a))
        a = clamped
        if self.last is not None and self.moving < cfg.ramp - 1:
            ramped = self.last + (a - self.last) / (cfg.ramp - self.moving)
            if cfg.gripper is not None:
                ramped[cfg.gripper] = a[cfg.gripper]
            self.events["ramped"] += 1
            a = ramped
        if self.last is not None:
            limited = np.clip(a, self.last - cfg.max_change, self.last + cfg.max_change)
            if cfg.gripper is not None:
                limited[cfg.gripper] = a[cfg.gripper]
            self.events["rate_limited"] += int(not np.array_equal(limited, a))
            a = np.clip(limited, cfg.low, cfg.high)
        self.unwalled = a.copy()
        if cfg.workspace_low is not None and ee_position is not None:
            pos = np.asarray(ee_position, np.float64)[:3]
            if np.isfinite(pos).all():
                target = pos + a[:3] * cfg.position_scale
                # inside: stop at the wall; outside: no further out than now
                lo = np.minimum(cfg.workspace_low, pos)
                hi = np.maximum(cfg.workspace_high, pos)
                kept = np.clip(target, lo, hi)
                if not np.array_equal(kept, target):
                    self.events["workspace"] += 1
                    a[:3] = np.clip((kept - pos) / cfg.position_scale, cfg.low[:3], cfg.high[:3])
            else:
                self.events["non_finite"] += 1
                return self.hold()
        self.last, self.moving = a.copy(), self.moving + 1
        return a.astype(np.float32)
