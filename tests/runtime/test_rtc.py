"""Real-time chunking: the robot publishes what it has committed to, the policy side passes the part its own
delay will cover as the plan's prefix, the model (trained with rtc > 0) conditions on it, in torch and in the
exported bundle alike."""

import numpy as np
import pytest
import torch

from embodied.data.collect import collect
from embodied.data.recipes import Recipe
from embodied.export.bundle import export_bundle
from embodied.policies.config import load_preset
from embodied.policies.model import VLA
from embodied.policies.policy import VLAPolicy
from embodied.runtime import ChunkExecutor
from embodied.runtime.bundle import OnnxPolicy
from embodied.runtime.loop import drive
from embodied.runtime.robot import decode_observation, encode_observation
from embodied.training.config import ModelOverrides, TrainConfig
from embodied.training.loop import train

CAMS = ["front", "wrist"]


def test_upcoming_is_what_the_executor_will_run_unless_a_new_plan_comes():
    ex = ChunkExecutor("receding", replan_every=2)
    ex.add(np.arange(6, dtype=np.float32)[:, None] * 10)
    ex.next()
    assert ex.upcoming(3)[:, 0].tolist() == [10, 20, 30]
    assert ex.upcoming(9)[:, 0].tolist() == [10, 20, 30, 40, 50]  # the plan runs out
    ens = ChunkExecutor("ensemble")
    ens.add(np.zeros((4, 1), np.float32))
    ens.add(np.ones((4, 1), np.float32))
    assert np.allclose(ens.upcoming(1), ens.next())  # the same blend next() executes
    assert ChunkExecutor().upcoming(4).shape[0] == 0  # no plan yet: nothing committed


def test_the_committed_actions_travel_with_the_observation():
    obs = {"images": {"front": np.zeros((4, 4, 3), np.uint8)}, "state": np.zeros(3, np.float32), "instruction": "x"}
    committed = np.arange(10, dtype=np.float32).reshape(2, 5)
    assert np.array_equal(decode_observation(encode_observation(obs, 1, 0.0, committed))["committed"], committed)
    assert "committed" not in decode_observation(encode_observation(obs, 1, 0.0))


def batch(b=2):
    g = torch.Generator().manual_seed(0)
    return {"images": {c: torch.randint(0, 256, (b, 1, 32, 32, 3), generator=g, dtype=torch.uint8) for c in CAMS},
            "state": torch.randn(b, 1, 13, generator=g), "lang": torch.randn(b, 16, 384, generator=g),
            "lang_mask": torch.ones(b, 16, dtype=torch.bool)}


@pytest.mark.parametrize("head", ["regression", "flow"])
def test_a_prefix_conditions_the_chunk_and_an_empty_one_changes_nothing(head):
    model = VLA(load_preset("tiny", rtc=4, head=head), CAMS, (32, 32), 13, 5).eval()
    x, prefix = batch(), torch.rand(2, 16, 5) * 2 - 1
    plain = model.sample(**x, generator=torch.Generator().manual_seed(1))
    conditioned = model.sample(**x, generator=torch.Generator().manual_seed(1), prefix=prefix,
                               prefix_len=torch.tensor([3, 0]))
    assert (conditioned[0] - plain[0]).abs().max() > 1e-3  # the prefix is read
    assert torch.allclose(conditioned[1], plain[1])  # length 0: as without one
    with pytest.raises(ValueError, match="rtc"):
        load_preset("tiny", rtc=16)


@pytest.fixture(scope="module")
def rtc_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtc")
    store = collect(Recipe(name="t", families=["reach"], episodes_per_family=1, image_size=(32, 32)), root / "t.zarr",
                    workers=1, progress=False).path
    train(TrainConfig(name="r", store=store, out=root, steps=2, batch_size=4, workers=0, eval_every=0,
                      final_eval_episodes=0, log_every=1, warmup=1, model=ModelOverrides(rtc=3)), store, root)
    ckpt = root / "r/checkpoints/step_000002"
    spec = export_bundle(VLAPolicy.load(ckpt), root / "bundle", source=str(ckpt))
    return ckpt, root / "bundle", spec


def test_the_bundle_continues_a_prefix_as_torch_does(rtc_bundle):
    ckpt, bundle, spec = rtc_bundle
    assert spec["rtc"] == 3 and spec["parity"]["policy"]["max_abs_diff"] <= 1e-4  # parity inputs carry prefixes
    torch_policy, runtime = VLAPolicy.load(ckpt), OnnxPolicy(bundle)
    assert torch_policy.continues_prefix and runtime.continues_prefix
    rng = np.random.default_rng(0)
    obs = {"images": {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in runtime.cameras},
           "state": rng.standard_normal(13).astype(np.float32), "instruction": "move to the red cube"}
    committed = rng.uniform(-0.5, 0.5, (5, 5)).astype(np.float32)
    for prefix in (None, committed[:2], committed):  # five committed: the model takes its rtc = 3
        torch_policy.reset()
        runtime.reset()
        o = {**obs, "prefix": prefix}
        assert np.abs(runtime.act(o) - torch_policy.act(o)).max() <= 1e-4
    runtime.reset()
    assert np.abs(runtime.act({**obs, "prefix": committed}) - runtime.act({**obs, "prefix": committed[:3]})).max() == 0


class Robot:
    """Observations every 50 ms of the robot's clock, each with 16 committed actions."""

    def __init__(self, n):
        self.items = [{"images": {}, "state": np.zeros(3, np.float32), "instruction": "x", "tick": t, "time": 0.05 * t,
                       "episode": 0, "done": False, "committed": np.full((16, 5), t, np.float32)} for t in range(n)]

    def get_observation(self, timeout=1.0):
        return self.items.pop(0) if self.items else None

    def send_action(self, chunk, tick, episode=0):
        pass


class Recorder:
    continues_prefix = True

    def __init__(self):
        self.prefixes = []

    def reset(self):
        pass

    def act(self, obs):
        self.prefixes.append(len(obs["prefix"]))
        return np.zeros((16, 5), np.float32)


def test_the_prefix_covers_the_plans_own_delay():
    policy = Recorder()
    stats = drive(Robot(6), policy, idle_timeout=0.5, delay=0.2)  # 200 ms at 50 ms a tick: 4 ticks
    assert policy.prefixes[0] == 0 and policy.prefixes[2:] == [4] * 4 and stats["prefix_steps"]["max"] == 4
