"""Offscreen rendering: pick the GL backend before MuJoCo is imported, render cameras fast."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import weakref
from pathlib import Path

import numpy as np


def choose_gl_backend() -> str:
    """EGL where an NVIDIA GPU is present, OSMesa (software) otherwise; $MUJOCO_GL wins if set."""
    if "MUJOCO_GL" not in os.environ:
        has_gpu = Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None
        os.environ["MUJOCO_GL"] = "egl" if has_gpu else "osmesa"
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    return os.environ["MUJOCO_GL"]


choose_gl_backend()

import mujoco  # noqa: E402  (the backend must be chosen before this import)

# MuJoCo's default warning handler appends to MUJOCO_LOG.TXT in the working folder; send its warnings
# to Python's logging instead (envs also report them per step in info["physics_warnings"]).
mujoco.set_mju_user_warning(logging.getLogger("mujoco").warning)


# Renderers still open at exit: closed by an atexit hook while the GL library is still loaded. Left to
# MuJoCo's Renderer.__del__ at interpreter shutdown, OSMesa's teardown prints a ctypes traceback.
_open_renderers: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_open_renderers() -> None:
    for renderer in list(_open_renderers):
        renderer.close()


class CameraRenderer:
    """Renders named cameras of one model at one size, with quality options.

    In software rendering shadows cost ~5x per 96x96 frame, multisampling more, and smooth curved
    surfaces (MuJoCo's default tessellation) ~3x; all are off unless asked for.
    """

    def __init__(self, model: mujoco.MjModel, height: int, width: int, shadows: bool = False,
                 multisamples: int = 0, smooth: bool = False):
        model.vis.quality.offsamples = multisamples
        # slices/stacks/quads of capsules and cylinders: coarse is indistinguishable at 96x96
        q = model.vis.quality
        q.numslices, q.numstacks, q.numquads = (28, 16, 4) if smooth else (12, 2, 1)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self._renderer = mujoco.Renderer(model, height, width)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        self._shadows = shadows
        _open_renderers.add(self)

    def render(self, data: mujoco.MjData, camera: str):  # -> uint8 (H, W, 3)
        self._renderer.update_scene(data, camera)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self._shadows
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def camera_projection(model: mujoco.MjModel, data: mujoco.MjData, camera: str, height: int, width: int):
    """(3, 4) matrix P taking a world point [x, y, z, 1] to [u*s, v*s, s]: (u, v) its position in the
    rendered image in pixels (u right, v down, (0, 0) the top-left corner of the top-left pixel)."""
    cam = model.camera(camera).id
    f = 0.5 * height / np.tan(np.radians(model.cam_fovy[cam]) / 2)
    # MuJoCo cameras look along their -z axis with +y up; image rows grow downward
    intrinsics = np.array([[f, 0, width / 2], [0, -f, height / 2], [0, 0, 1.0]]) @ np.diag([1.0, 1.0, -1.0])
    rot = data.cam_xmat[cam].reshape(3, 3)  # camera axes as columns, in world coordinates
    return intrinsics @ np.hstack([rot.T, -rot.T @ data.cam_xpos[cam][:, None]])


def mounted_projections(model: mujoco.MjModel, data: mujoco.MjData, names, site: str, height: int,
                        width: int) -> dict[str, list]:
    """{camera: (3, 4) matrix taking a point in `site`'s frame to pixels (as camera_projection)} for those of
    `names` rigidly mounted with the site (on the same body, or welded to it): their view moves with the
    site, so with the site's pose (in the robot state) they say where a point appears in every frame."""
    s = model.site(site).id
    site_to_world = np.eye(4)
    site_to_world[:3, :3], site_to_world[:3, 3] = data.site_xmat[s].reshape(3, 3), data.site_xpos[s]
    weld = model.body_weldid[model.site_bodyid[s]]
    return {c: (camera_projection(model, data, c, height, width) @ site_to_world).tolist() for c in names
            if model.body_weldid[model.cam_bodyid[model.camera(c).id]] == weld}


def pixel_to_plane(projection, pixel, z: float) -> np.ndarray:
    """(x, y) of the point at height z that a (3, 4) world-to-pixel projection sends to pixel (u, v)."""
    p, (u, v) = np.asarray(projection, float), pixel
    rows = np.stack([p[0] - u * p[2], p[1] - v * p[2]])  # (2, 4): u * s = p0 . X and v * s = p1 . X
    return np.linalg.solve(rows[:, :2], -(rows[:, 2] * z + rows[:, 3]))


def static_cameras(model: mujoco.MjModel, names) -> list[str]:
    """Those of `names` that never move: fixed to the world, or tracking a body that is itself fixed."""
    modes = mujoco.mjtCamLight
    static = []
    for name in names:
        cam = model.camera(name).id
        mode, target = int(model.cam_mode[cam]), model.cam_targetbodyid[cam]
        aims_still = mode == int(modes.mjCAMLIGHT_FIXED) or (
            mode in (int(modes.mjCAMLIGHT_TARGETBODY), int(modes.mjCAMLIGHT_TARGETBODYCOM))
            and model.body_weldid[target] == 0)
        if model.body_weldid[model.cam_bodyid[cam]] == 0 and aims_still:
            static.append(name)
    return static
