"""Fine-tune a pretrained VLA on a few demonstrations of new tasks, through the same training loop as
pretraining: LoRA adapters on the frozen base (saved alone, a few hundred kB), full fine-tuning, or
from scratch on the same data, the two comparisons.

    python scripts/finetune.py --base policies/runs/tiny_pretrain_small --dataset finetune_heldout \\
        --adapter lora --name stack_lora             # every stage, rank 4 (the preset's targets)
    python scripts/finetune.py --base policies/runs/tiny_pretrain_small --adapter full --name stack_full
    python scripts/finetune.py --base policies/runs/tiny_pretrain_small --adapter scratch --name stack_scratch
    python scripts/finetune.py ... --episodes-per-family 10     # the first 10 demonstrations per family

It prints the plan (targets, trainable share, adapter size) and ends with the new families' success and, for
LoRA, the new families and the base's own with the adapter off and on. The adapter lands in
policies/runs/<name>/checkpoints/step_*/adapter/ (adapter.safetensors + adapter.json);
`VLAPolicy.load(<base>).load_adapter(<that folder or the run>)` puts it on the base.
"""

from __future__ import annotations

import tyro

from embodied.errors import cli
from embodied.training.config import FinetuneConfig
from embodied.training.run import run

if __name__ == "__main__":
    cli(lambda: run(tyro.cli(FinetuneConfig)))
