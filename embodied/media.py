"""Pictures of episodes: captioned frames, contact sheets, PNGs and mp4 files (PyAV). The one media module:
evaluation, data import/export, the hardware loop and the scripts all draw through it."""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from embodied.errors import UserError


def side_by_side(images: dict[str, np.ndarray], scale: int = 1) -> np.ndarray:
    """Camera images (each uint8 (H, W, 3), same H) -> one uint8 (H*scale, sum W*scale, 3)."""
    row = np.concatenate(list(images.values()), axis=1)
    return row.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else row


def caption(image: np.ndarray, text: str, font_size: int = 14, lines: int | None = None) -> np.ndarray:
    """Add a white band with (wrapped) text under an image; returns a new uint8 (H', W, 3).

    `lines` fixes the band's height (extra text is cut), so every frame of a video has one size.
    """
    font = ImageFont.load_default(size=font_size)
    width = image.shape[1]
    chars = max(8, int(width / (0.55 * font_size)))
    wrapped = textwrap.wrap(text, chars) or [""]
    lines = lines or len(wrapped)
    wrapped = wrapped[:lines]
    band = Image.new("RGB", (width, (font_size + 4) * lines + 6), "white")
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(wrapped):
        draw.text((4, 3 + i * (font_size + 4)), line, fill="black", font=font)
    return np.concatenate([image, np.asarray(band)], axis=0)


def contact_sheet(tiles: list[np.ndarray], cols: int, pad: int = 6) -> np.ndarray:
    """Tiles (uint8 (h, w, 3), any sizes) on a grid; each cell is as big as the biggest tile."""
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 235, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y:y + t.shape[0], x:x + t.shape[1]] = t
    return sheet


def save_png(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


class Mp4Writer:
    """An H.264 mp4 written frame by frame (uint8 (H, W, 3), one size); frame k is shown at k / fps s.
    yuv420p pads odd sizes by a pixel for the codec; yuv444p keeps any size. Use as a context manager."""

    def __init__(self, path: str | Path, fps: int, crf: int = 18, pix_fmt: str = "yuv420p"):
        self.path, self.fps, self.crf, self.pix_fmt = Path(path), int(fps), crf, pix_fmt
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), "w")
        self.stream, self.size, self.count = None, None, 0

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        pad_h, pad_w = (h % 2, w % 2) if self.pix_fmt == "yuv420p" else (0, 0)
        if self.stream is None:
            self.size = (h, w)
            self.stream = self.container.add_stream("libx264", rate=self.fps, options={"crf": str(self.crf)})
            self.stream.width, self.stream.height, self.stream.pix_fmt = w + pad_w, h + pad_h, self.pix_fmt
        if (h, w) != self.size:
            raise UserError(f"all frames must be {self.size[0]}x{self.size[1]}; got {frame.shape[:2]}")
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts, video_frame.time_base = self.count, Fraction(1, self.fps)
        self.container.mux(self.stream.encode(video_frame))
        self.count += 1

    def close(self) -> None:
        if self.stream is not None:
            self.container.mux(self.stream.encode())
        self.container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
        else:  # no flush: keep the first error
            self.container.close()


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: int, crf: int = 18) -> Path:
    """H.264 mp4 of uint8 (H, W, 3) frames (odd sizes are padded by a pixel for the codec)."""
    with Mp4Writer(path, fps, crf) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video file as uint8 (T, H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file {path}")
    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError) as e:
        raise UserError(f"cannot read video {path}: {e}") from e
    if not frames:
        raise UserError(f"video {path} has no frames")
    return np.stack(frames)


def plot_curves(metrics: Path, evals: Path, out: Path) -> Path:
    """A training run's curves as a PNG: loss, validation loss (metrics.csv), and success, the mean and each
    family (evals.jsonl, when there is one)."""
    import csv
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(Path(metrics).open()))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    titles = ("train loss", "validation loss", "rollout success")
    for ax, key, title in zip(axes, ("loss", "val_loss", "success"), titles, strict=True):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o" if key != "loss" else None, color="black",
                    label="mean" if key == "success" else None, linewidth=2 if key == "success" else 1)
        ax.set_title(title)
        ax.set_xlabel("step")
        if key != "success":
            ax.set_yscale("log")
    if Path(evals).exists():
        per_family: dict[str, list] = {}
        for line in Path(evals).read_text().splitlines():
            e = json.loads(line)
            for f, v in e.get("rollouts", {}).items():
                if f != "mean":
                    per_family.setdefault(f, []).append((e["step"], v["success"]))
        for f, pts in sorted(per_family.items()):
            axes[2].plot(*zip(*pts, strict=True), marker=".", linewidth=1, alpha=0.8, label=f)
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=7, loc="upper left")
    axes[2].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
