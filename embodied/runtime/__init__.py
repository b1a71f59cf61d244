"""The torch-free runtime (numpy + onnxruntime): chunk execution, exported bundles, the safety layer,
the Robot interface and its wire format, cameras, and the policy side of the loop: what a robot's computer
runs. Nothing here imports torch, MuJoCo or the simulator (the simulated robot is embodied.envs.simrobot)."""

from embodied.runtime.chunks import REPLAN_EVERY, ChunkExecutor

__all__ = ["REPLAN_EVERY", "ChunkExecutor"]
