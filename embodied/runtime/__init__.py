"""The torch-free runtime (numpy + onnxruntime): chunk execution, exported bundles, the safety layer,
the Robot interface and its wire format, cameras, and the simulated robot. Nothing here imports torch."""

from embodied.runtime.chunks import REPLAN_EVERY, ChunkExecutor

__all__ = ["REPLAN_EVERY", "ChunkExecutor"]
