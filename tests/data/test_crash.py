"""Crash safety: `kill -9` a recording process at random moments; the store must reopen valid with
every committed episode intact, and the next writer must carry on."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from embodied.data import EpisodeStore
from tests.data.conftest import make_episode

RECORDER = """
import sys
from embodied.data import EpisodeStore
from tests.data.conftest import make_episode, new_store
path = sys.argv[1]
try:
    store = EpisodeStore.open(path, mode="a")
except Exception:
    store = new_store(path)
while True:  # appends of 1-3 episodes, each one commit, as collection writes them
    n = store.num_episodes
    store.append_many([make_episode(n + k, length=40) for k in range(1 + n % 3)])
    print(store.num_episodes, flush=True)
"""


def test_kill_9_while_recording_loses_at_most_the_append_in_progress(tmp_path):
    path = tmp_path / "crash.zarr"
    rng = np.random.default_rng(0)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tails = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(path)], stdout=subprocess.PIPE, text=True,
                                cwd=root)
        first = proc.stdout.readline()  # recording has started
        assert first.strip(), "recorder died before recording"
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        printed = [first, *proc.stdout.read().split()]
        proc.wait()
        committed = int(printed[-1])

        store = EpisodeStore.open(path)  # validates
        assert store.num_episodes >= committed
        tails += store._state.shape[0] > store.num_frames  # a half-written episode was left behind
        for i in range(store.num_episodes):
            ep, want = store.episode(i), make_episode(i, length=40)
            np.testing.assert_array_equal(ep.images["wrist"], want.images["wrist"])
            np.testing.assert_array_equal(ep.action, want.action)
            assert ep.instruction == want.instruction

    writer = EpisodeStore.open(path, mode="a")  # cuts off any half-written episode
    n = writer.num_episodes
    writer.append(make_episode(n, length=40))
    reopened = EpisodeStore.open(path)
    assert reopened.num_episodes == n + 1
    assert reopened._state.shape[0] == reopened.num_frames
    np.testing.assert_array_equal(reopened.episode(n).images["front"], make_episode(n, length=40).images["front"])
    print(f"{tails} of 4 kills left a half-written episode")
