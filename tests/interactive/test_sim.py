"""The typed-command sim driven as a person would, through a terminal (pexpect): a typed instruction
in other words than the templates, chained commands, an absent object, a bad meta command, Ctrl-C
mid-episode, Ctrl-D."""

import os
import sys
import time
from pathlib import Path

import gymnasium as gym
import pexpect
import pytest

import embodied.envs as envs
from embodied.envs.tasks import describe

ROOT = Path(__file__).resolve().parents[2]
SEED = 3
pytestmark = pytest.mark.slow  # a real terminal (the REPL) over pexpect


def scene_names():
    env = gym.make(envs.ENV_IDS["suite"], cameras=())
    env.reset(seed=SEED)
    world = env.unwrapped.world
    objects = [describe(t, world.things) for t in world.things if t.kind == "object"]
    plates = [describe(t, world.things) for t in world.things if t.kind == "plate"]
    present = {(t.color, t.shape) for t in world.things}
    absent = next(f"{c} {s}" for c in ("red", "green", "blue", "yellow") for s in ("cube", "cylinder")
                  if (c, s) not in present)
    env.close()
    return objects, plates, absent


def spawn(tmp_path, *extra):
    env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "dumb", "OMP_NUM_THREADS": "1"}
    child = pexpect.spawn(sys.executable, [str(ROOT / "scripts/sim.py"), "--seed", str(SEED), *extra], cwd=tmp_path,
                          env=env, encoding="utf-8", timeout=120, dimensions=(40, 200))
    child.expect("sim> ")
    return child


def test_typed_commands_chain_and_bad_input_never_ends_the_session(tmp_path):
    objects, plates, absent = scene_names()
    sim = spawn(tmp_path)
    sim.sendline(f"could you raise the {objects[0]} off the table")  # not a template form
    sim.expect(r"success after (\d+) steps.*\[pick\]")
    sim.expect("sim> ")
    sim.sendline(f"put the {objects[0]} on the {plates[0]}")  # continues from the lifted object
    sim.expect(r"success after \d+ steps.*\[place\]")
    sim.expect("sim> ")
    sim.sendline(f"pick up the {absent}")
    sim.expect(f"there is no {absent} here")
    sim.expect("in the scene:")
    sim.expect("sim> ")
    sim.sendline(":frobnicate")
    sim.expect("unknown command ':frobnicate'")
    sim.expect(":help, :quit")
    sim.sendline(":record ../outside.mp4")
    sim.expect("outside the working folder")
    sim.sendline(":reset notanumber")
    sim.expect("error: ")
    sim.expect("sim> ")
    sim.send("\x04")  # Ctrl-D
    sim.expect("bye")
    sim.expect(pexpect.EOF)
    sim.close()
    assert sim.exitstatus == 0 and not (tmp_path.parent / "outside.mp4").exists()


def test_ctrl_c_stops_the_robot_not_the_sim(tmp_path):
    objects, _, _ = scene_names()
    sim = spawn(tmp_path, "--speed", "0.25")  # slow enough to interrupt
    sim.sendline(":record run.mp4")
    sim.expect("recording to run.mp4")
    sim.sendline(f"pick up the {objects[0]}")
    sim.expect(f"acting \\(pick: {objects[0]}\\); Ctrl-C stops")
    time.sleep(1.0)  # ~5 of its ~27 steps at a quarter of real time
    sim.sendintr()  # Ctrl-C mid-episode
    sim.expect(r"stopped \(Ctrl-C\) after (\d+) steps")
    assert 0 < int(sim.match.group(1)) < 150
    sim.expect("sim> ")
    sim.sendline(":stop")
    sim.expect(r"wrote run.mp4 \((\d+) frames\)")
    sim.sendline(":quit")
    sim.expect(pexpect.EOF)
    sim.close()
    assert sim.exitstatus == 0 and (tmp_path / "run.mp4").stat().st_size > 1000
