"""Why an episode has not succeeded (yet), from privileged state: the failure breakdown printed with
evaluation tables. A Trace follows one episode; `failure()` names the first thing that went wrong."""

from __future__ import annotations

import numpy as np

from embodied.envs.scene import Thing, World
from embodied.envs.tasks import DIRECTIONS, Task

NEAR = 0.04  # the gripper came within this of a thing, horizontally (m)
LIFTED = 0.03  # an object this far off the table was picked up (m)
MOVED = 0.03  # a thing displaced this far was pushed (m)
DISTURBED = 0.02  # an object the task does not name, moved this far (m): reported with every episode

# wrong object: came closer to another candidate than to the target; never reached: stayed over 4 cm from
# the target; missed grasp: reached it, never lifted it; dropped: lifted, no longer held; pushed another:
# moved another object, not the target; went past: push ended with the gripper beyond the target's centre
# in the push direction (it pushed off-centre and slid past, or overshot); out of time: on the way
# (reached, lifted or pushing) at the end.
FAILURES = ("wrong object", "never reached", "missed grasp", "dropped", "pushed another", "went past",
            "out of time")


class Trace:
    """Closest approach of the gripper to each candidate, whether the target was ever lifted, and how far
    every candidate moved: enough to tell a wrong choice from a missed grasp from a lack of time."""

    def __init__(self, task: Task, world: World):
        self.task = task
        if task.obj is not None:
            self.target: Thing | None = task.obj
            self.others = [t for t in world.things if t.kind == task.obj.kind and t is not task.obj]
        else:
            self.target, self.others = None, []
        self.start = {t.name: world.pos(t) for t in self._candidates()}
        self.closest = {t.name: np.inf for t in self._candidates()}
        self.closest_drawer = np.inf
        self.lifted = False
        named = {t.name for t in (task.obj, task.target) if t is not None}
        self.bystanders = {t.name: (t, world.pos(t)) for t in world.things
                           if t.kind == "object" and t.name not in named}

    def _candidates(self) -> list[Thing]:
        return ([self.target] if self.target is not None else []) + self.others

    def update(self, world: World) -> None:
        g = world.grasp_pos
        for t in self._candidates():
            d = float(np.linalg.norm(world.pos(t)[:2] - g[:2]))
            self.closest[t.name] = min(self.closest[t.name], d)
        if self.target is None:
            self.closest_drawer = min(self.closest_drawer, float(np.linalg.norm(world.drawer_front[:2] - g[:2])))
        elif self.target.kind == "object":
            self.lifted |= bool(world.pos(self.target)[2] > self.target.half + LIFTED)

    def disturbed(self, world: World) -> bool:
        """Whether an object the task does not name has moved more than DISTURBED on the table."""
        return any(np.linalg.norm((world.pos(t) - start)[:2]) > DISTURBED for t, start in self.bystanders.values())

    def failure(self, world: World) -> str:
        """One of FAILURES: what stands between this episode and success so far."""
        family = self.task.family
        if self.target is None:  # the drawer families
            return "never reached" if self.closest_drawer > NEAR else "out of time"
        mine = self.closest[self.target.name]
        other = min((self.closest[t.name] for t in self.others), default=np.inf)
        if family == "push":
            moved = {t.name: np.linalg.norm((world.pos(t) - self.start[t.name])[:2]) for t in self._candidates()}
            if any(moved[t.name] > MOVED for t in self.others) and moved[self.target.name] < MOVED:
                return "pushed another"
        if other < mine and other < NEAR:
            return "wrong object"
        if mine > NEAR:
            return "never reached"
        if family == "push":
            ahead = (world.grasp_pos - world.pos(self.target))[:2] @ DIRECTIONS[self.task.direction]
            if ahead > 0:
                return "went past"
        if family in ("pick", "place", "stack"):
            if not self.lifted:
                return "missed grasp"
            if not world.grasped(self.target):
                return "dropped"
        return "out of time"
