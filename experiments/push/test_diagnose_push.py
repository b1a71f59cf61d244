"""experiments/.../diagnose_push.py: the offset at contact of a push that goes straight, and bad input as one line."""

import subprocess
import sys
from pathlib import Path

import diagnose_push  # noqa: E402  (the study's script, beside this test: pytest puts this folder on sys.path)
import gymnasium as gym
import pytest

from embodied import envs

pytestmark = pytest.mark.slow  # a study's test: make test (CI) runs it, make test-fast does not

SCRIPT = Path(__file__).resolve().parent / "diagnose_push.py"


def test_the_expert_meets_the_object_on_its_centre_line_and_stays_behind_it():
    env = gym.make(envs.ENV_IDS["push"], cameras=())
    run = diagnose_push.push_episode(env, envs.expert_for(env), seed=3)
    env.close()
    assert run["success"] and run["moved"] > 0.08
    assert abs(run["offset"]) < 0.01 and run["failure"] == ""  # a success: nothing went wrong, not past it


def test_noise_for_a_trained_policy_is_refused(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "policies/runs/x", "--noise", "0.3"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1 and "--noise applies to 'expert' only" in out.stderr, out.stderr
