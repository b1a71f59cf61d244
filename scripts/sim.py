"""Type a command, watch the robot do it. Each line is an instruction in any wording (grounded in the scene
so the outcome can be judged); commands chain from the scene as the last one left it. ':help' lists the
meta commands; Ctrl-C stops the robot, Ctrl-D leaves.

    python scripts/sim.py                                   # the scripted expert: works with no training
    python scripts/sim.py --policy policies/runs/tiny_pretrain_small
    python scripts/sim.py --policy bundles/tiny --seed 7
    python scripts/sim.py --web                             # and a page at http://127.0.0.1:8765/
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass

import tyro

from embodied.errors import cli


@dataclass
class Args:
    policy: str = "expert"
    """'expert', a run or checkpoint folder, or an exported bundle."""
    seed: int = 0
    """The first scene."""
    max_steps: int = 150
    """Steps per command before the prompt returns."""
    speed: float | None = None
    """Times real time (0: as fast as possible; default: 1 with the viewer, else 0)."""
    viewer: bool | None = None
    """Open MuJoCo's viewer window (default: when a display is present, $DISPLAY or $WAYLAND_DISPLAY)."""
    web: bool = False
    """Also serve a web page with the live cameras, the scene and a command box (headless machines)."""
    host: str = "127.0.0.1"
    """Where the page listens (the default is this machine only)."""
    port: int = 8765
    """The page's port (0: any free one)."""


def main(args: Args) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.patch_stdout import patch_stdout

    from embodied.interactive.runner import Runner
    from embodied.interactive.session import Session

    viewer = args.viewer if args.viewer is not None else bool(os.environ.get("DISPLAY") or
                                                                os.environ.get("WAYLAND_DISPLAY"))
    speed = args.speed if args.speed is not None else (1.0 if viewer or args.web else 0.0)
    # Ctrl-C must reach us even when started from a process that ignores SIGINT (nohup, test runners):
    # an ignored disposition is inherited, and Python then never raises KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    runner = Runner(lambda: Session(args.policy, args.seed, args.max_steps, speed, viewer=viewer),
                    stop_hint="Ctrl-C or the page's Stop stops" if args.web else "Ctrl-C stops")
    runner.listen(show_in_terminal)
    print(f"embodied sim, policy {args.policy}. ':help' for commands.\n{runner.session.scene()}", flush=True)
    if args.web:
        from embodied.interactive.web import serve

        print(f"web view: {serve(runner, args.host, args.port)}", flush=True)
    if args.web and not sys.stdin.isatty():  # a service (nohup, systemd, docker): the page alone drives it
        print("no terminal: the page drives the sim; Ctrl-C (SIGINT) ends it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
        runner.close()
        print("bye", flush=True)
        return
    prompt = PromptSession(history=InMemoryHistory())
    with patch_stdout() if args.web else contextlib.nullcontext():  # the page's output lands above the prompt
        while True:
            try:
                line = prompt.prompt("sim> ").strip()
            except KeyboardInterrupt:  # at the prompt: a fresh line
                continue
            except EOFError:
                break
            if line and wait(runner, runner.submit(line)):
                break
    runner.close()
    print("bye", flush=True)


def wait(runner, future) -> bool:
    """The line's result (True: quit); Ctrl-C meanwhile stops the robot."""
    while True:
        try:
            return future.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            continue
        except KeyboardInterrupt:
            runner.stop("Ctrl-C")


def show_in_terminal(kind: str, payload) -> None:
    if kind == "message":
        print(payload, flush=True)
    elif kind == "line" and payload[0] != "terminal":
        print(f"{payload[0]}> {payload[1]}", flush=True)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
