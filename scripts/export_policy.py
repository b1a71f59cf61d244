"""Export a trained run as a bundle for a robot controller (ONNX + tokenizer + policy_spec.json), checked
before it is marked done: onnx.checker and parity with torch (max action difference <= 1e-4).

    python scripts/export_policy.py policies/runs/tiny_pretrain_small --out bundles/tiny
    python scripts/export_policy.py policies/runs/tiny_pretrain_small --adapter policies/runs/stack_lora \\
        --int8 --out bundles/tiny_stack
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from embodied.errors import cli


@dataclass
class Args:
    run: Annotated[Path, tyro.conf.Positional]
    """A run folder (its latest checkpoint) or a checkpoint folder."""
    out: Path
    """The bundle folder to write (must not exist)."""
    adapter: Path | None = None
    """A LoRA adapter (an adapter folder or a fine-tune run) to merge into the exported weights."""
    int8: bool = False
    """Also write policy_int8.onnx (onnxruntime dynamic quantization) and report its parity."""


def main(args: Args) -> None:
    from rich.console import Console
    from rich.table import Table

    from embodied.export.bundle import export_bundle
    from embodied.policies.checkpoint import resolve_checkpoint
    from embodied.policies.policy import VLAPolicy

    ckpt = resolve_checkpoint(args.run)
    policy = VLAPolicy.load(ckpt)
    if args.adapter:
        policy.load_adapter(args.adapter)
    spec = export_bundle(policy, args.out, int8=args.int8, source=str(ckpt))
    table = Table(title=f"{args.out}: parity with torch on fixed inputs")
    for col in ("graph", "max |onnx - torch|", "size"):
        table.add_column(col, justify="left" if col == "graph" else "right")
    for graph, rep in spec["parity"].items():
        size = spec["sizes"][f"{graph}.onnx"]
        table.add_row(f"{graph}.onnx", f"{rep['max_abs_diff']:.2e}", f"{size / 1e6:.1f} MB")
    Console().print(table)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
