"""Pretraining on action-free video: inverse dynamics, latent actions, labelled stores, the mixed loop and
the experiment script end to end on tiny stores."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embodied.data.collect import collect
from embodied.data.recipes import Recipe
from embodied.data.store import EpisodeStore
from embodied.data.verify import verify
from embodied.data.windows import WindowDataset
from embodied.errors import UserError
from embodied.policies.config import load_preset
from embodied.policies.model import VLA
from embodied.training.config import TrainConfig
from embodied.training.loop import train
from embodied.video import idm, latent
from embodied.video.pairs import FramePairs

ROOT = Path(__file__).resolve().parents[2]
STYLE = {"front_offset": [0.0, 0.2, -0.1], "light_tint": [1.0, 0.8, 0.6]}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    labelled = Recipe(name="l", families=["reach", "push"], episodes_per_family=8, image_size=(32, 32),
                      expert_noise=0.3)
    video = Recipe(name="v", families=["reach", "push"], episodes_per_family=3, image_size=(32, 32),
                   expert_noise=0.3, seed_start=5000, drop_actions=True, env=STYLE)
    return {"labelled": collect(labelled, folder / "l.zarr", workers=1, progress=False).path,  # 1: same order
            "video": collect(video, folder / "v.zarr", workers=1, progress=False).path}


def test_video_recipe_records_no_actions_or_states(stores):
    video = EpisodeStore.open(stores["video"])
    assert not video.meta("has_actions").any() and not video.meta("has_states").any()
    assert np.isnan(video.actions()).all() and np.isnan(video.states()).all()
    assert video.attrs["recipe"]["env"] == STYLE


@pytest.mark.slow
def test_inverse_dynamics_recovers_actions_better_than_the_mean(stores, tmp_path):
    model, report = idm.train_idm(stores["labelled"], steps=300, batch=32, val_fraction=0.25, progress=False,
                                  calibrate=True)
    held = report["heldout"]
    assert held["episodes"] == 4
    for error in ("idm_error", "uncalibrated_error"):  # both land near 0.5-0.6 of it
        assert held[error] < 0.85 * held["mean_error"], held
    # the calibration widens every dimension the model shrinks toward its middle, on the episodes it was fit on
    shrunk = {n: d for n, d in held["per_dimension"].items() if d["uncalibrated_std"] < 0.9 * d["true_std"]}
    assert shrunk, held["per_dimension"]
    for name, d in shrunk.items():
        assert d["uncalibrated_std"] < d["labels_std"] <= 1.05 * d["true_std"], (name, d)
    # a saved model labels as it did, calibration included
    from embodied.video import models

    episode = EpisodeStore.open(stores["video"]).episode(0)
    loaded = models.load(models.save(model, tmp_path / "idm", report))
    np.testing.assert_array_equal(idm.label_episode(loaded, episode.images), idm.label_episode(model, episode.images))
    assert not np.array_equal(idm.label_episode(model, episode.images, calibrated=False),
                              idm.label_episode(model, episode.images))


@pytest.mark.slow
def test_latent_codes_are_used_not_collapsed(stores):
    model, report = latent.train_latent([stores["labelled"], stores["video"]], codes=8, groups=1, steps=150,
                                        batch=32, progress=False)
    assert report["heldout"]["pairs"] > 0
    # on every pair of both stores, as label_store sees them (the held-out split is one or two episodes,
    # too few pairs to judge by); seeds 0, 8 and 13 land at 6.4-7.3 with all 8 codes; collapse lands near 1
    every = torch.utils.data.ConcatDataset([FramePairs(s, 4) for s in stores.values()])
    usage = latent.code_report(model, every)
    assert usage["codes_over_1pct"][0] >= 4 and usage["perplexity"][0] > 3.0, usage


def test_labelled_stores_are_valid_stores_and_the_video_is_untouched(stores, tmp_path):
    model, _ = idm.train_idm(stores["labelled"], steps=2, batch=8, val_fraction=0.0, progress=False)
    lam, _ = latent.train_latent([stores["video"]], codes=8, groups=2, steps=2, batch=8, progress=False)
    before = sorted(p.name for p in Path(stores["video"]).rglob("*"))
    video = EpisodeStore.open(stores["video"])
    for kind, out in (("idm", idm.label_store(model, stores["video"], tmp_path / "p.zarr")),
                      ("latent", latent.label_store(lam, stores["video"], tmp_path / "q.zarr"))):
        report = verify(out.path, progress=False)
        assert report.whole, report
        assert out.num_episodes == video.num_episodes and out.num_frames == video.num_frames
        assert out.meta("has_actions").all() and not out.meta("has_states").any()
        np.testing.assert_array_equal(out.frames("front", np.arange(5)), video.frames("front", np.arange(5)))
        if kind == "idm":
            assert "pseudo_labels" in out.attrs and out.actions().shape[1] == 5
            assert np.isfinite(out.actions()).all()
        else:
            codes = out.actions()
            assert out.attrs["action_spec"]["kind"] == "latent" and codes.shape[1] == 2
            assert set(np.unique(codes)) <= set(range(-1, 8))
            last = np.r_[0, out.episode_ends][1:] - 1
            assert (codes[last] == -1).all()  # no pair starts at an episode's last frame
    assert sorted(p.name for p in Path(stores["video"]).rglob("*")) == before
    with pytest.raises(UserError, match="already exists"):
        idm.label_store(model, stores["video"], tmp_path / "p.zarr")


def test_labels_filtered_by_confidence_are_masked_out_in_training(stores, tmp_path):
    model, _ = idm.train_idm(stores["labelled"], steps=2, batch=8, val_fraction=0.0, progress=False)
    with pytest.raises(UserError, match="share of labels kept"):
        idm.label_store(model, stores["video"], tmp_path / "bad.zarr", keep=0)
    assert not (tmp_path / "bad.zarr").exists()
    store = idm.label_store(model, stores["video"], tmp_path / "f.zarr", keep=0.6)
    assert verify(store.path, progress=False).whole and store.attrs["pseudo_labels"]["keep"] == 0.6
    actions = store.actions()
    unknown = np.isnan(actions).any(1)
    assert np.isnan(actions[unknown]).all()  # a frame's whole label, or none of it
    first = np.r_[0, store.episode_ends[:-1]]  # one pair spans an episode's first frame: it keeps its label
    assert not unknown[first].any()
    assert abs(unknown.mean() - 0.4 * (1 - len(first) / len(unknown))) < 0.1, unknown.mean()
    # label_error reports the error in each quarter of the spread (whether agreement tells good labels)
    demos = idm.label_error(model, stores["labelled"], range(4), np.zeros(5))
    assert len(demos["error_by_spread"]) == 4

    windows = WindowDataset(store.path, action_horizon=4)
    for i in np.flatnonzero(unknown)[:3]:
        item = windows[int(i)]
        assert not item["action_mask"][0].any() and (item["action"][0] == 0).all()
    i = int(np.flatnonzero(~unknown[:-4] & ~unknown[1:-3])[5])  # a known frame with a known next one
    item = windows[i]
    assert item["action_mask"][:2].all()
    np.testing.assert_array_equal(item["action"][:2], actions[i: i + 2])

    cfg = TrainConfig(name="f", store=stores["labelled"], out=tmp_path, steps=3, batch_size=8, workers=0,
                      eval_every=0, final_eval_episodes=0, warmup=1, video_store=store.path)
    train(cfg, stores["labelled"], tmp_path)
    loss = [float(r["loss"]) for r in csv.DictReader((tmp_path / "f/metrics.csv").open()) if r["loss"]]
    assert loss and np.isfinite(loss).all(), loss


def test_latent_queries_do_not_change_the_action_chunk():
    cfg = load_preset("tiny", latent_codes=8, latent_groups=2)
    model = VLA(cfg, ["front"], (32, 32), 4, 3).eval()
    g = torch.Generator().manual_seed(0)
    images = {"front": torch.randint(0, 256, (2, 1, 32, 32, 3), generator=g, dtype=torch.uint8)}
    mask = torch.arange(16)[None] < torch.tensor([[5], [9]])  # (2, 16) instruction tokens
    args = (images, torch.randn(2, 1, 4, generator=g), torch.randn(2, 16, 384, generator=g), mask)
    out = model.outputs(*args, with_latent=True)
    assert out["latent"].shape == (2, 16 // 4, 2, 8)
    torch.testing.assert_close(out["chunk"], model(*args), rtol=0, atol=1e-5)


def test_pretraining_mixes_labelled_video_into_the_loop(stores, tmp_path):
    lam, _ = latent.train_latent([stores["video"]], codes=8, groups=2, steps=2, batch=8, progress=False)
    latent.label_store(lam, stores["video"], tmp_path / "q.zarr")
    cfg = TrainConfig(name="r", store=stores["labelled"], out=tmp_path, steps=3, batch_size=8, workers=0, eval_every=0,
                      final_eval_episodes=0, warmup=1, video_store=tmp_path / "q.zarr",
                      start_boost=3, release_boost=2)  # the boosts mark frames of both sources
    train(cfg, stores["labelled"], tmp_path)
    spec = json.loads((tmp_path / "r/checkpoints/step_000003/policy.json").read_text())
    assert spec["config"]["latent_codes"] == 8 and spec["config"]["latent_groups"] == 2
    with pytest.raises(UserError, match="neither inverse-dynamics labels nor latent actions"):
        train(TrainConfig(**{**vars(cfg), "name": "s", "video_store": stores["video"]}), stores["labelled"], tmp_path)


def test_a_few_labelled_pairs_teach_the_codes_the_action(stores, tmp_path):
    """labelled_share (LAOM's setting): that share of the training episodes keeps its actions, every other pair
    hides them, and the error of an action head reading the codes joins the loss: its gradient reaches the
    encoder through the codes, not the decoder, and pairs without actions are left out of it."""
    from embodied.video import models

    with pytest.raises(UserError, match="labelled_share"):
        latent.train_latent([stores["video"]], steps=1, labelled_share=1.0)
    with pytest.raises(UserError, match="episodes with actions"):
        latent.train_latent([stores["video"], stores["labelled"]], steps=1, labelled_share=0.2)
    hidden = FramePairs(stores["labelled"], 4, hide_actions=True)
    assert np.isnan(hidden[0]["action"]).all() and np.isfinite(FramePairs(stores["labelled"], 4)[0]["action"]).all()

    model, report = latent.train_latent([stores["labelled"], stores["video"]], codes=8, groups=2, steps=2, batch=8,
                                        labelled_share=0.3, progress=False)
    assert report["labelled_episodes"] == round(0.3 * (14 + 5))  # 90% of 16 and of 6 episodes train
    loaded = models.load(models.save(model, tmp_path / "lam", report))
    torch.testing.assert_close(loaded.action_head.weight, model.action_head.weight, rtol=0, atol=0)

    b = next(iter(torch.utils.data.DataLoader(FramePairs(stores["labelled"], 4), batch_size=16)))
    model.train()

    def loss(action):
        model.zero_grad()
        value = model.loss(b["before"], b["after"], torch.Generator().manual_seed(0), action)[0]
        value.backward()
        return float(value.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, plain_grad = loss(None)
    supervised, grad = loss(b["action"])
    assert supervised > plain and grad["action_head.weight"].abs().sum() > 0
    moved = {name for name in grad  # the action term moves the encoder (straight through the codes), not the decoder
             if not torch.allclose(grad[name], plain_grad.get(name, torch.zeros_like(grad[name])))}
    assert "encoder.convs.0.weight" in moved and "action_head.weight" in moved
    assert all(name.startswith(("encoder.", "action_head.")) for name in moved), moved
    half = b["action"].clone()
    half[8:] = float("nan")  # pairs without actions are left out of the term, not poisoning it
    with_half, half_grad = loss(half)
    assert np.isfinite(with_half) and with_half > plain
    assert all(torch.isfinite(g).all() for g in half_grad.values())
