"""LoRA adapters (peft) on a frozen pretrained VLA."""

from embodied.adapters.lora import Adapters, read_adapter, resolve_targets, widen_stats

__all__ = ["Adapters", "read_adapter", "resolve_targets", "widen_stats"]
