"""Make action-free video trainable: label it with actions from an inverse-dynamics model (idm), or with
latent-action codes (latent). Either writes a new store (the video is left as it is) that
`scripts/train_vla.py --video-store` mixes into pretraining.

    python scripts/label_video.py idm --labelled datasets/vp_labelled.zarr --video datasets/vp_video.zarr
    python scripts/label_video.py latent --stores datasets/vp_labelled.zarr datasets/vp_video.zarr \\
        --video datasets/vp_video.zarr
    python scripts/train_vla.py --dataset vp_labelled --video-store datasets/vp_video_idm.zarr

The model is saved in policies/runs/<out name>/ (model.safetensors, model.json with its held-out figures);
--model reuses a saved one instead of training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tyro

from embodied.errors import UserError, cli
from embodied.paths import repo_root


@dataclass
class Idm:
    """Inverse dynamics (frames t, t+k -> the k actions between), trained on demonstrations with actions."""

    video: Path
    """The action-free video store to label."""
    labelled: Path | None = None
    """Demonstrations with actions to learn from (the same cameras and image size)."""
    model: Path | None = None
    """A saved model folder to label with instead of training one."""
    out: Path | None = None
    """The labelled store (default: next to the video, <name>_idm.zarr)."""
    check: Path | None = None
    """A store of video like --video's but with its actions, to measure the labels' error where they are used."""
    stride: int = 4
    """k: frames between the two of a pair."""
    steps: int = 1500
    batch: int = 64
    seed: int = 0
    calibrate: bool = False
    """Give the labels the spread of the true actions per dimension, fit on the held-out demonstrations (the
    model's labels are smaller moves than the true ones; see experiments/video_pretraining/README.md)."""
    keep: float = 1.0
    """Share of the frames' labels to keep: those whose overlapping pair predictions agree most; the rest are
    written as unknown and masked out in training (1: keep all)."""

    def run(self) -> None:
        from embodied.video import idm, models

        out = self.out or self.video.with_name(self.video.stem + "_idm.zarr")
        _check_out(out, self.video)
        if self.model and self.calibrate:
            raise UserError("--calibrate applies to a model trained here; a saved model keeps the calibration "
                            "it was trained with (model.json)")
        if self.model:
            model, report = _load(self.model, "idm")
        elif self.labelled:
            model, report = idm.train_idm(self.labelled, self.stride, self.steps, self.batch, seed=self.seed,
                                          calibrate=self.calibrate)
        else:
            raise UserError("pass --labelled STORE (demonstrations to learn from) or --model FOLDER")
        if self.check:
            from embodied.data.store import EpisodeStore

            n = EpisodeStore.open(self.check).num_episodes
            mean = report.get("mean_action")
            if mean is None:
                raise UserError(f"{self.model}/model.json has no mean_action for the --check baseline")
            report["check"] = idm.label_error(model, self.check, range(n), mean)
        _report(report)
        folder = self.model or models.save(model, repo_root() / "policies" / "runs" / out.stem, report)
        idm.label_store(model, self.video, out, source=str(folder), keep=self.keep)
        print(f"wrote {out} (labels from {folder})")


@dataclass
class Latent:
    """Latent actions: a VQ code per frame pair, learned from video alone (any stores, actions unused)."""

    video: Path
    """The action-free video store to label."""
    stores: tuple[Path, ...] = ()
    """Video to learn the codes from (default: --video alone); the first store's actions, if it has them,
    measure what the codes say about actions (and with --labelled-share, a few supervise them)."""
    model: Path | None = None
    """A saved model folder to label with instead of training one."""
    out: Path | None = None
    """The labelled store (default: next to the video, <name>_latent.zarr)."""
    stride: int = 4
    codes: int = 16
    """Codebook size K."""
    groups: int = 2
    """Codes per latent action."""
    steps: int = 1500
    batch: int = 64
    seed: int = 0
    labelled_share: float = 0.0
    """Share of all training episodes, from the first store, whose actions an action head learns from the codes
    (LAOM's setting: 0.025)."""

    def run(self) -> None:
        from embodied.video import latent, models

        out = self.out or self.video.with_name(self.video.stem + "_latent.zarr")
        _check_out(out, self.video)
        if self.model:
            model, report = _load(self.model, "latent")
        else:
            model, report = latent.train_latent(list(self.stores or [self.video]), self.stride, self.codes,
                                                self.groups, self.steps, self.batch, seed=self.seed,
                                                labelled_share=self.labelled_share)
        _report(report)
        folder = self.model or models.save(model, repo_root() / "policies" / "runs" / out.stem, report)
        latent.label_store(model, self.video, out, source=str(folder))
        print(f"wrote {out} (codes from {folder})")


def _load(folder: Path, kind: str):
    """A saved model of this kind and its training report (the IDM's holds the mean action, the baseline)."""
    from embodied.video import models

    model = models.load(folder)
    if model.meta["kind"] != kind:
        raise UserError(f"--model {folder} is a {model.meta['kind']!r} model; `{kind}` needs a {kind!r} one")
    return model, json.loads((Path(folder) / "model.json").read_text()).get("report", {})


def _check_out(out: Path, video: Path) -> None:
    """Fail before any training: the video must be a store, and the output must not exist."""
    from embodied.data.store import EpisodeStore

    EpisodeStore.open(video)
    if out.exists():
        raise UserError(f"{out} already exists; delete it or pass another --out")


def _report(report: dict) -> None:
    if report:  # a reused model's report is its training's
        print(json.dumps({k: v for k, v in report.items() if k != "mean_action"}, indent=2))


if __name__ == "__main__":
    cli(lambda: tyro.extras.subcommand_cli_from_dict({"idm": Idm, "latent": Latent}).run())
