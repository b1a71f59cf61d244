"""One training loop (embodied/training/loop.py), distributed setup, checkpoints."""
