"""Type a command, watch the robot do it. Each line is an instruction in any wording (grounded in the scene
so the outcome can be judged); commands chain from the scene as the last one left it. ':help' lists the
meta commands; Ctrl-C stops the robot, Ctrl-D leaves.

    python scripts/sim.py                                   # the scripted expert: works with no training
    python scripts/sim.py --policy policies/runs/tiny_pretrain_small
    python scripts/sim.py --policy bundles/tiny --seed 7
"""

from __future__ import annotations

import os
import signal
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


def main(args: Args) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory

    from embodied.envs.tasks import describe
    from embodied.interactive.session import Session, handle

    viewer = args.viewer if args.viewer is not None else bool(os.environ.get("DISPLAY") or
                                                                os.environ.get("WAYLAND_DISPLAY"))
    speed = args.speed if args.speed is not None else (1.0 if viewer else 0.0)
    # Ctrl-C must reach us even when started from a process that ignores SIGINT (nohup, test runners):
    # an ignored disposition is inherited, and Python then never raises KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    session = Session(args.policy, args.seed, args.max_steps, speed, viewer=viewer)
    print(f"embodied sim, policy {args.policy}. ':help' for commands.\n{session.scene()}", flush=True)
    prompt = PromptSession(history=InMemoryHistory())
    while True:
        try:
            line = prompt.prompt("sim> ").strip()
        except KeyboardInterrupt:  # at the prompt: a fresh line
            continue
        except EOFError:
            break
        if not line:
            continue
        try:
            if line.startswith(":"):
                print(handle(session, line), flush=True)
                continue
            grounding, message = session.ground(line)
            if message:
                print(message, flush=True)
                if grounding.absent:
                    continue
            what = f"{grounding.task.family}: " + ", ".join(
                describe(t, session.base.world.things) for t in (grounding.task.obj, grounding.task.target) if t) \
                if grounding.sure else "ungraded"
            print(f"acting ({what}); Ctrl-C stops", flush=True)
            print(session.run(line, grounding), flush=True)
        except EOFError:
            break
        except KeyboardInterrupt:
            print("stopped", flush=True)
        except Exception as e:  # nothing typed ends the session
            print(f"error: {e}", flush=True)
    print("bye", flush=True)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
