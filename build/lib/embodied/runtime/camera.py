"""Camera input for real robots through OpenCV: frames come out exactly as the policy was trained on
them (RGB uint8 at the bundle's image size, centre-cropped to its aspect ratio, area-resampled)."""

from __future__ import annotations

import numpy as np

from embodied.errors import UserError


def fit_frame(frame_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An OpenCV BGR frame (h, w, 3) -> RGB uint8 (H, W, 3): centre crop to H:W, then INTER_AREA resize."""
    import cv2

    frame = np.asarray(frame_bgr)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise UserError(f"a camera frame is uint8 (h, w, 3), got {frame.dtype} {frame.shape}")
    height, width = size
    h, w = frame.shape[:2]
    if h * width > w * height:  # too tall: crop rows
        keep = round(w * height / width)
        frame = frame[(h - keep) // 2:(h - keep) // 2 + keep]
    else:  # too wide: crop columns
        keep = round(h * width / height)
        frame = frame[:, (w - keep) // 2:(w - keep) // 2 + keep]
    resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


class Camera:
    """cv2.VideoCapture (a device index, a stream URL or a video file) -> frames for the policy."""

    def __init__(self, source: int | str, size: tuple[int, int]):
        import cv2

        self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            raise UserError(f"camera {source!r} could not be opened (a device index, stream URL or video file)")
        self.source, self.size = source, tuple(size)

    def read(self) -> np.ndarray | None:
        """The next frame as RGB uint8 (H, W, 3), or None when the source has ended."""
        ok, frame = self.capture.read()
        return fit_frame(frame, self.size) if ok else None

    def close(self) -> None:
        self.capture.release()
