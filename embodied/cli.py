"""The `embodied` command.

    embodied data info STORE                   summary table
    embodied data show STORE [--out PNG]       contact sheet of first frames
    embodied data export STORE EPISODE OUT     an episode as mp4
    embodied data import STORE --video front=a.mp4 --video wrist=b.mp4 --instruction "..." [--actions a.npy]
    embodied data verify STORE [--json FILE]    read everything; exit code 1 names damaged episodes
    embodied data rewrite STORE OUT            a copy in the current format (an older store's frames into shards)
    embodied data export-lerobot STORE OUT [--skip-incomplete]   a LeRobot v3.0 dataset folder
    embodied data import-lerobot IN STORE      a new store from a LeRobot v3.0 dataset folder
    embodied keys DIR                          CURVE key pairs for the robot link (docs/robot.md)

A mistake (bad path, invalid store, bad value) prints one line, `error: ...`; EMBODIED_DEBUG=1 shows the
traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from embodied.data.store import EpisodeStore
from embodied.errors import UserError, cli

Positional = tyro.conf.Positional


@dataclass
class Info:
    """Summary table: episodes, frames, tasks, success, size on disk, bytes per frame. STORE: a folder or a URL."""

    store: Annotated[str, Positional]
    json: Path | None = None
    """Also write the summary as JSON."""

    def run(self) -> None:
        from embodied.data.report import print_summary

        s = print_summary(EpisodeStore.open(self.store))
        if self.json:
            self.json.write_text(json.dumps(s, indent=2))


@dataclass
class Show:
    """Contact sheet PNG of episodes' first frames with their instructions."""

    store: Annotated[Path, Positional]
    out: Path | None = None
    """PNG path (default: STORE's name + .png next to it)."""
    episodes: int = 16
    """How many episodes to show."""

    def run(self) -> None:
        from embodied.data.report import show

        out = self.out or self.store.with_suffix(".png")
        print(show(EpisodeStore.open(self.store), out, self.episodes))


@dataclass
class Export:
    """Write one episode to mp4 (cameras side by side, instruction as caption)."""

    store: Annotated[Path, Positional]
    episode: Annotated[int, Positional]
    out: Annotated[Path, Positional]

    def run(self) -> None:
        from embodied.data.video_io import export_episode

        print(export_episode(EpisodeStore.open(self.store), self.episode, self.out))


@dataclass
class Import:
    """Append an episode from video files, one per camera, with optional actions/states. A store that
    does not exist yet is created with the videos' cameras, frame size and frame rate."""

    store: Annotated[Path, Positional]
    instruction: str
    """What the episode shows being done."""
    video: Annotated[list[str], tyro.conf.UseAppendAction] = field(default_factory=list)
    """CAMERA=PATH.mp4, once per camera of the store."""
    family: str = "imported"
    actions: Path | None = None
    """(T, A) actions as .npy or .csv; without them the episode is marked as having none."""
    states: Path | None = None
    """(T, S) robot states as .npy or .csv."""

    def run(self) -> None:
        from embodied.data.video_io import create_store_for_videos, import_episode, load_array

        bad = [v for v in self.video if "=" not in v]
        if bad or not self.video:
            raise UserError(f"--video takes CAMERA=PATH, once per camera; got {bad or 'none'}")
        videos = dict(v.split("=", 1) for v in self.video)
        if self.store.exists():
            store = EpisodeStore.open(self.store, mode="a")
        else:
            dims = {k: load_array(p).shape[1] if p else None for k, p in
                    (("action_dim", self.actions), ("state_dim", self.states))}
            store = create_store_for_videos(self.store, videos, **dims)
            print(f"created {self.store} for cameras {store.cameras}, {store.attrs['image_size']} frames")
        index = import_episode(store, videos, self.instruction, self.family, self.actions, self.states)
        print(f"appended episode {index} to {self.store}")


@dataclass
class Verify:
    """Read every file of a store: checksums, chunks, every frame. Names each damaged episode (camera,
    steps); exit code 0 when the store is whole, 1 when not. STORE: a folder or a URL (s3://bucket/name.zarr)."""

    store: Annotated[str, Positional]
    json: Path | None = None
    """Also write the report as JSON."""

    def run(self) -> None:
        from embodied.data.report import print_verify
        from embodied.data.verify import verify

        if "://" not in self.store and not Path(self.store).exists():
            raise FileNotFoundError(f"no store at {self.store}")
        report = verify(self.store)
        print_verify(report)
        if self.json:
            self.json.write_text(json.dumps(report.to_json(), indent=2))
        if not report.whole:
            raise SystemExit(1)


@dataclass
class Rewrite:
    """A copy of a store in the current format: a version 1 or 2 store (a file per frame) becomes a version 3 store
    (512 frames to a file, zarr v3 sharding). The copy is written to OUT.partial and renamed when whole; the
    source is only read."""

    store: Annotated[Path, Positional]
    out: Annotated[Path, Positional]

    def run(self) -> None:
        import shutil

        from embodied.data.store import StoreError, rewrite

        if self.out.exists():
            raise StoreError(f"{self.out} exists; rewrite makes a new store (choose another path)")
        tmp = self.out.with_name(self.out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            store = rewrite(self.store, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(self.out)
        print(f"wrote {self.out}: {store.num_episodes:,} episodes, {store.num_frames:,} frames, "
              f"format v{store.version}")


@dataclass
class ExportLerobot:
    """Write a store (a folder or a URL) as a LeRobot v3.0 dataset folder (meta/, data/, videos/ with H.264 mp4)
    in a new folder."""

    store: Annotated[str, Positional]
    out: Annotated[Path, Positional]
    skip_incomplete: bool = False
    """Leave out episodes without actions (or states) instead of refusing."""
    crf: int = 18
    """H.264 quality: lower is closer to the frames and bigger."""

    def run(self) -> None:
        from embodied.data.lerobot import export_lerobot

        s = export_lerobot(self.store, self.out, skip_incomplete=self.skip_incomplete, crf=self.crf, progress=True)
        skipped = f"; left out episodes {s['skipped']}" if s["skipped"] else ""
        print(f"wrote {s['path']}: {s['episodes']} episodes, {s['frames']} frames, {s['tasks']} tasks{skipped}")


@dataclass
class ImportLerobot:
    """A new store from a LeRobot v3.0 dataset folder (observation.images.X becomes camera X)."""

    in_dir: Annotated[Path, Positional]
    store: Annotated[Path, Positional]
    family: str = "imported"
    """Task family of the episodes, unless the dataset names one (an embodied export does)."""

    def run(self) -> None:
        from embodied.data.lerobot import import_lerobot

        store = import_lerobot(self.in_dir, self.store, family=self.family, progress=True)
        print(f"wrote {self.store}: {store.num_episodes} episodes, {store.num_frames} frames, "
              f"cameras {store.cameras}")


def _sub(cls, name):
    return Annotated[cls, tyro.conf.subcommand(name)]


Command = (_sub(Info, "info") | _sub(Show, "show") | _sub(Export, "export") | _sub(Import, "import")
           | _sub(Verify, "verify") | _sub(Rewrite, "rewrite") | _sub(ExportLerobot, "export-lerobot")
           | _sub(ImportLerobot, "import-lerobot"))


@dataclass
class Data:
    """Episode stores: inspect, import, export, verify; LeRobot datasets in and out."""

    command: Annotated[Command, tyro.conf.arg(name="")]

    def run(self) -> None:
        self.command.run()


@dataclass
class Keys:
    """Key pairs for an authenticated, encrypted robot link (ZeroMQ CURVE), owner-only; never overwrites."""

    directory: Annotated[Path, Positional]

    def run(self) -> None:
        from embodied.runtime.keys import make_keys

        made = make_keys(self.directory)
        print(f"wrote {', '.join(p.name for p in made.values())} in {self.directory} (secrets readable by you only)\n"
              f"robot's computer:  robot.key_secret, policy.key   (simrobot: \"keys\": DIR)\n"
              f"policy's computer: policy.key_secret, robot.key   (run_robot_loop.py --keys DIR)")


def main() -> None:
    cli(lambda: tyro.extras.subcommand_cli_from_dict({"data": Data, "keys": Keys}).run())


if __name__ == "__main__":
    main()
