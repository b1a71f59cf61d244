"""What a person sees at the terminal: one-line errors with a non-zero exit, help without leaked
comments, and `embodied data import` into a store that does not exist yet."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embodied.data import EpisodeStore
from embodied.media import write_mp4

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = [*(ROOT / "scripts").glob("*.py"), *(ROOT / "experiments").glob("*/*.py")]
SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in ENTRY_POINTS if not p.name.startswith("test_")
                 and p.name != "onpolicy.py")  # DAgger's module beside its script


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def embodied(*args, **kw):
    return run("-m", "embodied.cli", *args, **kw)


@pytest.mark.parametrize("args, message", [
    (("data", "show", "nonexistent.zarr"), "error: no store at nonexistent.zarr"),
    (("data", "info", "."), "is not an episode store"),
    (("data", "import", "new.zarr", "--video", "front=missing.mp4", "--instruction", "open the drawer"),
     "error: no video file missing.mp4"),
    (("data", "import", "new.zarr", "--video", "front", "--instruction", "open the drawer"), "CAMERA=PATH"),
    (("data", "verify", "nope.zarr"), "error: no store at nope.zarr"),
])
def test_user_mistakes_print_one_line(tmp_path, args, message):
    out = embodied(*args, cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and message in out.stderr, out.stderr
    assert not (tmp_path / "new.zarr").exists()  # nothing half-created


def test_script_mistake_prints_one_line_and_debug_shows_the_traceback(tmp_path):
    out = run(str(ROOT / "scripts/collect_demos.py"), "nope", cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.startswith("error: no recipe 'nope'; available:"), out.stderr
    debug = run(str(ROOT / "scripts/collect_demos.py"), "nope", cwd=tmp_path,
                env={**__import__("os").environ, "EMBODIED_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", [(s,) for s in SCRIPTS] + [
    ("-m", "embodied.cli", *c) for c in [(), ("data",), *[("data", s) for s in
                                                          ("info", "show", "export", "import", "verify")]]])
def test_help_is_clean(command):
    args = [str(ROOT / command[0]), *command[1:]] if command[0].endswith(".py") else list(command)
    out = run(*args, "--help")
    assert out.returncode == 0, out.stderr
    for leak in ("noqa", "type: ignore", "TODO", "pragma"):
        assert leak not in out.stdout, f"{leak!r} in the help of {command}"


def test_import_creates_a_missing_store(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (16, 20, 3), dtype=np.uint8) for _ in range(6)]
    for cam in ("front", "wrist"):
        write_mp4(tmp_path / f"{cam}.mp4", frames, fps=10)
    out = embodied("data", "import", "new.zarr", "--video", "front=front.mp4", "--video", "wrist=wrist.mp4",
                   "--instruction", "open the drawer", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    store = EpisodeStore.open(tmp_path / "new.zarr")
    assert store.cameras == ["front", "wrist"] and store.attrs["image_size"] == [16, 20]
    assert store.attrs["control_rate"] == 10 and store.num_episodes == 1
    assert not store.meta("has_actions")[0]
