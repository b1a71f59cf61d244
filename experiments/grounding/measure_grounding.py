"""How well free text grounds to a task family and its objects: paraphrases written for this
measurement (none is a template form of envs/tasks.yaml), filled with each scene's real objects, over
several scenes per family. Prints coverage (graded), family and object accuracy, per family and for a
sweep of thresholds.

    python experiments/grounding/measure_grounding.py --scenes 6 --json grounding.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from embodied.errors import cli

PARAPHRASES = {
    "reach": ["could you move your hand to the {obj}", "bring the gripper next to the {obj}",
              "approach the {obj}", "put your fingers near the {obj}"],
    "pick": ["could you raise the {obj} off the table", "pick the {obj} up please",
             "take hold of the {obj} and lift it", "grasp the {obj} and hold it up"],
    "push": ["give the {obj} a push {dir}", "move the {obj} {dir} by pushing it",
             "please push the {obj} a bit {dir}", "slide that {obj} {dir}"],
    "place": ["take the {obj} and put it onto the {target}", "drop the {obj} on the {target}",
              "could you set the {obj} onto the {target}", "the {obj} goes on the {target}"],
    "stack": ["put the {obj} on the {target} to make a tower", "build a stack with the {obj} on top of the {target}",
              "place the {obj} above the {target}", "stack up the {obj} onto the {target}"],
    "open_drawer": ["can you open up the drawer", "pull the drawer out please", "slide out the drawer",
                    "open the drawer for me"],
    "close_drawer": ["could you close the drawer please", "push the drawer back in", "shut the drawer all the way",
                     "close it, the drawer"],
    "press_button": ["push down the {obj}", "press on the {obj} please", "tap the {obj}", "click the {obj}"],
}


@dataclass
class Args:
    scenes: int = 6
    """Scenes per family (seeds from 2,000,000)."""
    json: Path | None = None


def main(args: Args) -> None:
    import gymnasium as gym
    from rich.console import Console
    from rich.table import Table

    import embodied.envs as envs
    from embodied.envs.grounding import Grounder
    from embodied.envs.tasks import describe

    grounder, rows = Grounder(), []
    for family, phrases in PARAPHRASES.items():
        env = gym.make(envs.ENV_IDS[family], cameras=())
        for seed in range(2_000_000, 2_000_000 + args.scenes):
            env.reset(seed=seed)
            base = env.unwrapped
            task, world = base.task, base.world
            words = {"obj": describe(task.obj, world.things) if task.obj else "",
                     "target": describe(task.target, world.things) if task.target else "", "dir": task.direction}
            for phrase in phrases:
                text = phrase.format(**words)
                g = grounder.ground(text, world)
                got = g.task
                rows.append({"family": family, "text": text, "score": g.score, "nearest": g.nearest,
                             "got_family": got.family if got else None,
                             "family_ok": got is not None and got.family == family,
                             "objects_ok": got is not None and got.family == family and got.obj is task.obj
                             and got.target is task.target and got.direction == task.direction})
        env.close()
    table = Table(title=f"grounding {len(rows)} paraphrases ({args.scenes} scenes per family), threshold "
                        f"{grounder.threshold}: graded / family right / family and objects right")
    for col in ("family", "graded", "family", "family + objects"):
        table.add_column(col, justify="left" if col == "family" and not table.columns else "right")
    for family in [*PARAPHRASES, "all"]:
        r = [x for x in rows if family in ("all", x["family"])]
        graded = [x for x in r if x["score"] >= grounder.threshold]
        table.add_row(family, f"{100 * len(graded) / len(r):.0f}%",
                      f"{100 * np.mean([x['family_ok'] for x in r]):.0f}%",
                      f"{100 * np.mean([x['objects_ok'] for x in r]):.0f}%")
    console = Console()
    console.print(table)
    sweep = Table(title="threshold sweep: graded, and right among the graded")
    for col in ("threshold", "graded", "family right | graded", "objects right | graded"):
        sweep.add_column(col, justify="right")
    for t in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9):
        graded = [x for x in rows if x["score"] >= t]
        fam = np.mean([x["got_family"] == x["family"] for x in graded]) if graded else float("nan")
        obj = np.mean([x["objects_ok"] or False for x in graded]) if graded else float("nan")
        sweep.add_row(f"{t:.2f}", f"{100 * len(graded) / len(rows):.0f}%", f"{100 * fam:.0f}%", f"{100 * obj:.0f}%")
    console.print(sweep)
    wrong = [x for x in rows if x["score"] >= grounder.threshold and not x["objects_ok"]]
    for x in wrong[:8]:
        console.print(f"  wrong: {x['text']!r} -> {x['nearest']!r} ({x['score']:.2f})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
