"""The torch-free runtime: chunk execution (numpy only)."""

from embodied.runtime.chunks import ChunkExecutor

__all__ = ["ChunkExecutor"]
