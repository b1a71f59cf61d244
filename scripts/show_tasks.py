"""Show the task suite: a contact sheet (PNG) of every family's first and last frame of a scripted-expert
episode, both cameras, with the instruction as caption, and an mp4 of each episode.

    python scripts/show_tasks.py                  # docs/tasks.png and videos/tasks/<family>.mp4
    python scripts/show_tasks.py --no-videos --seed 3
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro
from tqdm import tqdm

import embodied.envs as envs
from embodied.envs.experts import ScriptedExpert
from embodied.errors import cli
from embodied.media import caption, contact_sheet, save_png, side_by_side, write_mp4


@dataclass
class Args:
    sheet: Path = Path("docs/tasks.png")
    """Where the contact sheet goes."""
    videos: bool = True
    """Write one expert mp4 per family (--no-videos to skip)."""
    video_dir: Path = Path("videos/tasks")
    """Folder for the mp4 files."""
    seed: int = 0
    """Seed of the first family's episode; family i uses seed + i."""
    scale: int = 2
    """Upscaling of the 96x96 observation images in the pictures."""


def main(args: Args) -> None:
    tiles = []
    for i, family in enumerate(tqdm(envs.FAMILIES, desc="families")):
        env = gym.make(envs.ENV_IDS[family])
        obs, info = env.reset(seed=args.seed + i)
        first = side_by_side(obs["images"], args.scale)
        expert, frames, done = ScriptedExpert(env), [], False
        while not done:
            if args.videos:
                frames.append(caption(side_by_side(obs["images"], args.scale), info["instruction"], lines=2))
            obs, _, terminated, truncated, info = env.step(expert.act(obs)[0])
            done = terminated or truncated
        outcome = "success" if info["success"] else "failure"
        last = side_by_side(obs["images"], args.scale)
        gap = np.full((first.shape[0], 6, 3), 255, np.uint8)
        tiles.append(caption(np.concatenate([first, gap, last], axis=1),
                             f"{family}: {info['instruction']}  (start | expert's end: {outcome})", lines=2))
        if args.videos:
            frames += [caption(last, f"{info['instruction']}  [{outcome}]", lines=2)] * 10
            write_mp4(args.video_dir / f"{family}.mp4", frames, fps=env.metadata["render_fps"])
        env.close()
    print(f"contact sheet: {save_png(args.sheet, contact_sheet(tiles, cols=2))}")
    if args.videos:
        print(f"videos: {args.video_dir}/<family>.mp4")


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
