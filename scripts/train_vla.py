"""Pretrain the VLA. With no arguments: the main job (20-40 minutes on a 2-core CPU machine, which trains the
tiny preset at 90-250 samples/s depending on the machine): build the default demonstration store if missing,
pretrain the tiny preset, evaluate on held-out seeds, and print success per task family next to a random policy.

    python scripts/train_vla.py
    python scripts/train_vla.py --preset small --head flow --dataset pretrain_full --name small_flow
    torchrun --nproc_per_node=8 scripts/train_vla.py --preset base --dataset pretrain_full --name base
"""

from __future__ import annotations

import tyro

from embodied.errors import cli
from embodied.training.config import TrainConfig
from embodied.training.run import run

if __name__ == "__main__":
    cli(lambda: run(tyro.cli(TrainConfig)))
