"""The package's layers import downward only (pyproject.toml's import-linter contract), and the check
fails when a lower layer reaches up: the same contract on a copy with one upward import added."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    # the package is found on PYTHONPATH first: the copy under test, not the editable install
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=120)


def test_the_layers_hold():
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "embodied", tmp_path / "embodied", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    chunks = tmp_path / "embodied/runtime/chunks.py"  # the torch-free runtime reaching up into training
    chunks.write_text(chunks.read_text() + "\n\ndef _upward():\n    from embodied.training import loop  # noqa\n")
    out = lint(tmp_path)
    assert out.returncode == 1 and "0 kept, 1 broken" in out.stdout, out.stdout[-3000:]
    assert "embodied.runtime.chunks -> embodied.training.loop" in out.stdout
