"""Evaluation fanned out on a local Ray (2 CPUs, started by the test): the same per-seed results as the local
path, put back in order."""

import pytest

from embodied.evaluation.rollouts import evaluate

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_parts_give_the_local_per_seed_results():
    from embodied.evaluation.fanout import evaluate_on_ray

    families, episodes = ["reach", "press_button"], 6
    local = evaluate("expert", families, episodes, seed_start=1_000_000, num_envs=2, progress=False)
    fanned, stats = evaluate_on_ray("local", "expert", families, episodes, 1_000_000, part=2, num_envs=2, cpus=2)
    assert (stats["tasks"], stats["workers"]) == (6, 2)  # 3 parts of 2 episodes per family, an actor per CPU
    for f in families:
        assert [r["seed"] for r in fanned[f]["runs"]] == [r["seed"] for r in local[f]["runs"]]
        assert fanned[f]["runs"] == local[f]["runs"]
    assert fanned["mean"] == local["mean"]
    assert not ray.is_initialized()  # the Ray it started is shut down


@pytest.mark.slow
def test_a_sampling_policy_gives_the_same_results_from_run_to_run():
    """Which actor plays which part depends on timing; each part is reseeded from itself, so a random policy's
    episodes do not."""
    from embodied.evaluation.fanout import evaluate_on_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        runs = [evaluate_on_ray("local", "random", ["reach"], 2, 1_000_000, part=1, num_envs=1,
                                env_config={"cameras": ()})[0]["reach"]["runs"] for _ in range(2)]
    finally:
        ray.shutdown()
    assert runs[0] == runs[1] and len(runs[0]) == 2
