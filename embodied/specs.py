"""Specs that travel with data, checkpoints and exports: what an action and a state vector mean."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ActionSpec:
    """An action is float32[len(names)] in [-1, 1]; `scale` maps it to robot units."""

    kind: str  # "ee_delta" | "joint_pos"
    names: tuple[str, ...]
    units: tuple[str, ...]
    scale: tuple[float, ...]  # robot units per unit of action (for joint_pos: half the range)
    offset: tuple[float, ...]  # robot value at action 0 (for joint_pos: the range's middle)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StateSpec:
    """The robot's own state vector: float32[len(names)]."""

    names: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)
