"""experiments/.../diagnose_release.py: where a demonstration lets go, and bad input as one clear line."""

import subprocess
import sys
from pathlib import Path

import diagnose_release  # noqa: E402  (the study's script, beside this test: pytest puts this folder on sys.path)
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # a study's test: make test (CI) runs it, make test-fast does not

SCRIPT = Path(__file__).resolve().parent / "diagnose_release.py"


def test_release_is_the_first_open_after_the_grasp():
    release = diagnose_release.release_frames
    actions = np.zeros((9, 2), np.float32)
    actions[:, 1] = [-1, -1, 1, 1, 1, 1, -1, -1, -1]  # opens at the start (approach), closes, lets go at 6
    assert release(actions, 1) == 6
    actions[6:, 1] = 1
    assert release(actions, 1) is None  # never lets go
    assert release(-np.ones((5, 2)), 1) is None  # never grasps


def test_a_policy_that_is_not_a_trained_run_is_refused(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "expert"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 1 and "not a trained run" in out.stderr, out.stderr
