"""The VLA model, its presets, and the Policy contract."""

from embodied.policies.config import PolicyConfig, available_presets, load_preset
from embodied.policies.policy import Policy, VLAPolicy

__all__ = ["Policy", "PolicyConfig", "VLAPolicy", "available_presets", "load_preset"]
