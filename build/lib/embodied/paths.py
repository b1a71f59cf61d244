"""Where the repository's top-level folders (envs/, policies/, datasets/) live."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The clone's root: $EMBODIED_ROOT if set, else the folder above the installed package.

    Users work from a clone with an editable install, so the package sits inside the repository.
    """
    root = Path(os.environ.get("EMBODIED_ROOT", Path(__file__).resolve().parent.parent))
    if not (root / "envs" / "tasks.yaml").is_file():
        raise FileNotFoundError(
            f"cannot find the embodied repository at {root} (expected envs/tasks.yaml there). "
            "Install from a clone with `pip install -e .`, or set EMBODIED_ROOT to the clone."
        )
    return root


def envs_dir() -> Path:
    return repo_root() / "envs"
