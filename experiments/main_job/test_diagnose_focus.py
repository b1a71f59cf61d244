"""experiments/.../diagnose_focus.py: a family whose instruction names nothing is refused before any policy loads."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a study's test: make test (CI) runs it, make test-fast does not

SCRIPT = Path(__file__).resolve().parent / "diagnose_focus.py"


def test_a_family_that_names_no_object_is_refused(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no_run"), "--families", "press_button",
                          "open_drawer"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "open_drawer" in out.stderr and "press_button" not in out.stderr.split("expected")[0], out.stderr
