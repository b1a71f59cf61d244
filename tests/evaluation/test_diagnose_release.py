"""scripts/diagnose_release.py: where a demonstration lets go, and bad input as one clear line."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "diagnose_release.py"


def load_script():
    spec = importlib.util.spec_from_file_location("diagnose_release", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_release_is_the_first_open_after_the_grasp():
    release = load_script().release_frames
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
