"""Finding a checkpoint: a run folder (policies/runs/<name>/) points at its newest checkpoint through
checkpoints/latest; a checkpoint folder holds policy.json. Writing checkpoints is the trainer's
(embodied.training.checkpoint); finding them is everyone's (evaluation, the sim, fine-tuning, export)."""

from __future__ import annotations

from pathlib import Path

from embodied.errors import UserError


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest complete checkpoint folder, or None."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    return folder if (folder / "trainer.json").is_file() else None


def resolve_checkpoint(path: Path, what: str = "policy") -> Path:
    """A run folder (its latest checkpoint) or a checkpoint folder -> the checkpoint folder (absolute)."""
    path = Path(path)
    ckpt = path if (path / "policy.json").is_file() else latest_checkpoint(path)
    if ckpt is None:
        raise UserError(f"{what} {path}: no checkpoint there (expected a run folder with checkpoints/, "
                        "or a checkpoint folder with policy.json)")
    return ckpt.resolve()
