"""Recipes, collection through the real script (parallel, resumable), and the `embodied data` CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from embodied.data import EpisodeStore
from embodied.data.recipes import available_recipes, load_recipe
from embodied.data.windows import WindowDataset

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def write_recipe(path, **fields):
    path.write_text(yaml.safe_dump({"families": ["reach", "press_button"], "episodes_per_family": 2,
                                    "image_size": [32, 32], **fields}))
    return path


def test_shipped_recipes_load():
    assert {"pretrain_small", "pretrain_full", "finetune_heldout"} <= set(available_recipes())
    tune = load_recipe("finetune_heldout")
    pretraining = [load_recipe(n) for n in available_recipes() if n.startswith("pretrain")]
    for recipe in pretraining:  # the fine-tuning families are held out of every pretraining set, and its seeds too
        assert not set(recipe.families) & set(tune.families), recipe.name
        assert tune.seed_start >= recipe.seed_start + recipe.episodes_per_family * recipe.max_seed_factor * (
            1 if recipe.shared_scenes else len(recipe.families))


@pytest.mark.parametrize("fields, match", [
    ({"episodes": 3}, r"unknown recipe keys \['episodes'\]"),
    ({"families": ["juggle"]}, "unknown families"),
    ({"split": "test"}, "split must be"),
    ({"cameras": ["top"]}, "cameras must be"),
    ({"world": 7}, r"world must be one of \[0, 1\], got 7"),
])
def test_bad_recipes_are_refused(tmp_path, fields, match):
    with pytest.raises(ValueError, match=match):
        load_recipe(write_recipe(tmp_path / "r.yaml", **fields))
    with pytest.raises(FileNotFoundError, match="available: .*pretrain_small"):
        load_recipe("no_such_recipe")


def test_a_store_records_its_world_and_training_evaluates_in_it(tmp_path):
    """The recipe's world version travels with the store; a store from before versions is v0's."""
    from embodied.data.collect import collected_as
    from embodied.training.loop import tabletop_config

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", world=0))
    assert recipe.env_config()["version"] == 0 and load_recipe("pretrain_small").env_config()["version"] == 1
    assert tabletop_config({"recipe": collected_as(recipe)}) == {"split": "train", "version": 0}
    assert tabletop_config({"recipe": {"split": "heldout"}}) == {"split": "heldout", "version": 0}
    assert tabletop_config({"robot": "sawyer", "recipe": {}}) == {}


def test_metaworld_recipe_without_metaworld_says_how(tmp_path):
    from embodied.envs import METAWORLD_IDS

    if METAWORLD_IDS:
        pytest.skip("metaworld is installed here (tests/envs/test_metaworld.py covers its recipes)")
    with pytest.raises(ValueError, match=r"make metaworld.*\.venv-metaworld/bin/python"):
        load_recipe("mt10")
    with pytest.raises(ValueError, match="unknown families \\['reach-v3'\\].*make metaworld"):
        load_recipe(write_recipe(tmp_path / "r.yaml", families=["reach-v3"]))


@pytest.mark.slow
def test_collect_script_is_parallel_and_resumable(tmp_path):
    recipe, out = write_recipe(tmp_path / "tiny.yaml"), tmp_path / "tiny.zarr"
    run("scripts/collect_demos.py", str(recipe), "--out", str(out), "--workers", "2")
    store = EpisodeStore.open(out)
    assert store.num_episodes == 4 and store.meta("success").all()
    assert store.attrs["image_size"] == [32, 32]
    assert store.attrs["action_spec"]["names"] == ["dx", "dy", "dz", "dyaw", "gripper"]
    assert store.attrs["stats"]["num_episodes"] == 4
    first = [store.episode(i) for i in range(4)]

    write_recipe(recipe, episodes_per_family=3)  # rerun asks for more: only the missing ones are added
    run("scripts/collect_demos.py", str(recipe), "--out", str(out))
    store = EpisodeStore.open(out)
    assert store.num_episodes == 6
    pairs = list(zip(store.meta("family"), store.meta("seed"), strict=True))
    assert len(set(pairs)) == 6
    for i, ep in enumerate(first):  # earlier episodes untouched
        np.testing.assert_array_equal(store.episode(i).images["front"], ep.images["front"])
    ds = WindowDataset(out, obs_horizon=2, action_horizon=16)
    assert len(ds) == store.num_frames
    projections = store.attrs["camera_projections"]
    assert set(projections["world"]) == {"front"} and set(projections["ee"]) == {"wrist"}  # the wrist moves
    for cam in ("front", "wrist"):
        seen = np.stack([ds[i]["focus_px"][cam] for i in range(len(ds))])
        assert np.isfinite(seen).mean() > 0.5 and (np.abs(seen[np.isfinite(seen)]) <= 1).all()


@pytest.mark.slow
def test_data_cli_info_show_export(tmp_path):
    recipe, out = write_recipe(tmp_path / "tiny.yaml", episodes_per_family=1), tmp_path / "tiny.zarr"
    run("scripts/collect_demos.py", str(recipe), "--out", str(out))
    text = run("-m", "embodied.cli", "data", "info", str(out), "--json", str(tmp_path / "info.json"))
    assert "press_button" in text and "bytes per frame" in text
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["episodes"] == 2 and info["bytes_per_frame"] > 100
    run("-m", "embodied.cli", "data", "show", str(out), "--out", str(tmp_path / "sheet.png"))
    assert (tmp_path / "sheet.png").stat().st_size > 1000
    run("-m", "embodied.cli", "data", "export", str(out), "1", str(tmp_path / "ep.mp4"))
    assert (tmp_path / "ep.mp4").stat().st_size > 1000


def test_clean_labels_record_the_expert_intent_not_the_noise():
    """DART: with noise the executed actions differ from the labels; the labels are the expert's clean
    plan, which for reach first heads straight at the target (same direction every step)."""
    import gymnasium as gym

    from embodied.data.collect import record_episode
    from embodied.envs import ENV_IDS
    from embodied.envs.experts import ScriptedExpert

    env = gym.make(ENV_IDS["reach"], cameras=("front",), image_size=(16, 16))
    executed = []

    class Spy(ScriptedExpert):
        def act(self, obs):
            a = super().act(obs)
            executed.append(a[0].copy())
            return a

    ep = record_episode(env, Spy(env, noise=0.3, seed=0), seed=0, clean_labels=True)
    clean = np.stack(executed)
    assert np.abs(clean[:, :4] - ep.action[:, :4]).max() > 0.1  # noise was executed, not recorded
    assert np.all(np.abs(ep.action) <= 1) and ep.focus.shape == (len(ep.action), 3)
    executed.clear()
    noisy = record_episode(env, Spy(env, noise=0.3, seed=0), seed=0, clean_labels=False)
    env.close()
    np.testing.assert_array_equal(noisy.action, np.stack(executed))  # without: what was executed


def test_store_of_another_recipe_version_is_not_reused(tmp_path):
    recipe, out = write_recipe(tmp_path / "tiny.yaml", episodes_per_family=1), tmp_path / "tiny.zarr"
    run("scripts/collect_demos.py", str(recipe), "--out", str(out))
    write_recipe(recipe, episodes_per_family=1, expert_noise=0.3)
    result = subprocess.run([sys.executable, "scripts/collect_demos.py", str(recipe), "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "delete the store to collect it again" in result.stderr


def test_store_of_older_experts_is_not_topped_up(tmp_path):
    from embodied.data.collect import open_or_create
    from embodied.data.store import StoreError
    from embodied.envs.experts import EXPERTS_VERSION

    recipe, out = write_recipe(tmp_path / "tiny.yaml", episodes_per_family=1), tmp_path / "tiny.zarr"
    store = open_or_create(out, load_recipe(recipe))
    assert store.attrs["recipe"]["experts"] == EXPERTS_VERSION
    old = {k: v for k, v in store.attrs["recipe"].items() if k != "experts"}  # as stores before versioning
    store.set_attrs(recipe=old)
    with pytest.raises(StoreError, match=rf"'experts': 1.*'experts': {EXPERTS_VERSION}.*delete the store"):
        open_or_create(out, load_recipe(recipe))


def test_scenes_are_shared_across_families_or_each_its_own():
    """shared_scenes (the default) gives every family the same seeds, so the same layouts; False gives each family
    a seed range of its own."""
    from embodied.data.collect import _next_seeds
    from embodied.data.recipes import Recipe

    fams = ["reach", "pick"]
    for shared in (True, False):
        recipe = Recipe(name="t", families=fams, episodes_per_family=3, shared_scenes=shared)
        jobs = _next_seeds(recipe, {f: 0 for f in fams}, {f: set() for f in fams})
        seeds = {f: [s for g, s in jobs if g == f] for f in fams}
        assert seeds["reach"] == [0, 1, 2]
        assert seeds["pick"] == ([0, 1, 2] if shared else [9, 10, 11])


@pytest.mark.slow
def test_collection_on_ray_gives_the_local_episodes(tmp_path):
    """`--ray local`: Ray actors play the episodes, this process writes them; each (family, seed) is the episode
    the local worker processes record."""
    pytest.importorskip("ray")
    from embodied.data.collect import collect
    from embodied.data.recipes import load_recipe

    recipe = write_recipe(tmp_path / "tiny.yaml")
    run("scripts/collect_demos.py", str(recipe), "--out", str(tmp_path / "ray.zarr"), "--ray", "local",
        "--workers", "2")
    fanned = EpisodeStore.open(tmp_path / "ray.zarr")
    local = collect(load_recipe(str(recipe)), tmp_path / "local.zarr", workers=2, progress=False)
    assert fanned.num_episodes == local.num_episodes == 4 and fanned.attrs["stats"]["num_episodes"] == 4

    def by_seed(store):
        return {(str(f), int(s)): i for i, (f, s) in enumerate(zip(store.meta("family"), store.meta("seed"),
                                                                    strict=True))}
    a, b = by_seed(fanned), by_seed(local)
    assert a.keys() == b.keys()
    for key in a:
        x, y = fanned.episode(a[key]), local.episode(b[key])
        np.testing.assert_array_equal(x.action, y.action)
        for cam in ("front", "wrist"):
            np.testing.assert_array_equal(x.images[cam], y.images[cam])


def test_nothing_imports_ray_without_asking():
    code = ("import sys; sys.argv = ['x']; import runpy\n"
            "for s in ('scripts/collect_demos.py', 'scripts/evaluate.py'):\n"
            "    runpy.run_path(s, run_name='not_main')\n"
            "import embodied.data.collect, embodied.evaluation.fanout, embodied.cluster\n"
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
