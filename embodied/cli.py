"""The `embodied` command.

    embodied data info STORE                   summary table
    embodied data show STORE [--out PNG]       contact sheet of first frames
    embodied data export STORE EPISODE OUT     an episode as mp4
    embodied data import STORE --video front=a.mp4 --video wrist=b.mp4 --instruction "..." [--actions a.npy]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Union

import tyro

from embodied.data.store import EpisodeStore

Positional = tyro.conf.Positional


@dataclass
class Info:
    """Summary table: episodes, frames, tasks, success, size on disk, bytes per frame."""

    store: Annotated[Path, Positional]
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
    """Append an episode from video files, one per camera, with optional actions/states."""

    store: Annotated[Path, Positional]
    instruction: str
    """What the episode shows being done."""
    video: list[str] = field(default_factory=list)
    """CAMERA=PATH.mp4, once per camera of the store."""
    family: str = "imported"
    actions: Path | None = None
    """(T, A) actions as .npy or .csv; without them the episode is marked as having none."""
    states: Path | None = None
    """(T, S) robot states as .npy or .csv."""

    def run(self) -> None:
        from embodied.data.video_io import import_episode

        bad = [v for v in self.video if "=" not in v]
        if bad:
            raise SystemExit(f"--video takes CAMERA=PATH, got {bad}")
        videos = dict(v.split("=", 1) for v in self.video)
        store = EpisodeStore.open(self.store, mode="a")
        index = import_episode(store, videos, self.instruction, self.family, self.actions, self.states)
        print(f"appended episode {index} to {self.store}")


def _sub(cls, name):
    return Annotated[cls, tyro.conf.subcommand(name)]


@dataclass
class Data:
    command: Annotated[Union[_sub(Info, "info"), _sub(Show, "show"), _sub(Export, "export"),  # noqa: UP007
                             _sub(Import, "import")], tyro.conf.arg(name="")]


def main() -> None:
    args = tyro.extras.subcommand_cli_from_dict({"data": Data})
    args.command.run()


if __name__ == "__main__":
    main()
