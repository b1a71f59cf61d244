"""Task families: instructions from templates (sampled or parsed from text), and success predicates
on privileged simulator state."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

from embodied.envs.scene import BUTTON_PRESSED, PLATE_HALF_HEIGHT, PLATE_RADIUS, Thing, World, load_suite
from embodied.errors import UserError

DIRECTIONS = {  # from the robot's point of view: it faces +x
    "to the left": np.array([0.0, 1.0]),
    "to the right": np.array([0.0, -1.0]),
    "forward": np.array([1.0, 0.0]),
    "backward": np.array([-1.0, 0.0]),
}
PUSH_DISTANCE = 0.08  # success: displaced at least this far along the direction (m)
MAX_INSTRUCTION = 128  # characters; the observation space's Text limit
NEXT_TO = 0.02  # place_next_to: the two objects' surfaces closer than this (m), and the other moved less than this
LIFT_HEIGHT = 0.06  # success: raised at least this far off the table (m)
# which instructions a split samples: (wording held out?, target held out?) pairs it allows
SPLITS = {
    "train": {(False, False)},
    "heldout": {(True, False), (False, True)},  # one new thing at a time, so each episode has one kind
    "heldout_wording": {(True, False)},
    "heldout_target": {(False, True)},
    "all": {(False, False), (True, False), (False, True), (True, True)},
}
# which kinds of thing each slot of each family may name
SLOTS = {
    "reach": {"obj": ("object",)},
    "pick": {"obj": ("object",)},
    "push": {"obj": ("object",)},
    "place": {"obj": ("object",), "target": ("plate",)},
    "stack": {"obj": ("object",), "target": ("object",)},
    "open_drawer": {},
    "close_drawer": {},
    "press_button": {"obj": ("button",)},
    "put_in_drawer": {"obj": ("object",)},
    "place_next_to": {"obj": ("object",), "target": ("object",)},
    "press_then_pick": {"obj": ("object",), "target": ("button",)},
}


class InstructionError(UserError):
    """An instruction that names no task or an object absent from the scene."""


@dataclass
class Task:
    family: str
    instruction: str
    obj: Thing | None = None
    target: Thing | None = None
    direction: str | None = None
    start: np.ndarray | None = None  # initial position of obj (set at reset)
    target_start: np.ndarray | None = None  # initial position of target (set at reset)
    pressed: bool = False  # press_then_pick: the button went down while the object still stood on the table


def describe(t: Thing, things: list[Thing]) -> str:
    """Shortest unambiguous name: color + shape, with the size only when needed."""
    same = [o for o in things if o.color == t.color and o.shape == t.shape]
    return f"{t.size} {t.color} {t.shape}" if len(same) > 1 else f"{t.color} {t.shape}"


def is_heldout_target(t: Thing | None, heldout: list[str]) -> bool:
    return t is not None and any(set(h.split()) <= t.words for h in heldout)


def candidates(family: str, world: World) -> list[dict]:
    """Every valid slot assignment of a family in the current scene."""
    objs = [t for t in world.things if t.kind == "object"]
    plates = [t for t in world.things if t.kind == "plate"]
    if family in ("reach", "pick"):
        return [{"obj": o} for o in objs]
    if family == "push":
        out = []
        for o in objs:
            for name, vec in DIRECTIONS.items():
                end = world.pos(o)[:2] + 1.6 * PUSH_DISTANCE * vec
                if 0.2 < end[0] < 0.62 and abs(end[1]) < 0.22:  # room to push, off the fixtures
                    out.append({"obj": o, "dir": name})
        return out
    if family == "place":
        return [{"obj": o, "target": p} for o in objs for p in plates]
    if family == "stack":
        return [{"obj": o, "target": b} for o in objs for b in objs
                if b.shape == "cube" and o is not b and o.half <= b.half]
    if family == "press_button":
        return [{"obj": t} for t in world.things if t.kind == "button"]
    if family == "put_in_drawer":
        return [{"obj": o} for o in objs]
    if family == "place_next_to":
        return [{"obj": o, "target": b} for o in objs for b in objs if o is not b]
    if family == "press_then_pick":
        return [{"obj": o, "target": b} for o in objs for b in world.things if b.kind == "button"]
    return [{}]


def world_versions() -> list[int]:
    return list(load_suite()["worlds"])


def target_families() -> list[str]:
    """Families whose instructions can name a held-out target (an object or a plate); the drawers and the buttons
    have none, so split='heldout_target' has nothing to sample for them."""
    return [f for f, slots in SLOTS.items() if any({"object", "plate"} & set(kinds) for kinds in slots.values())]


def split_options(family: str, world: World, split: str) -> list[tuple[str, dict]]:
    """Every (template, slot assignment) of a family in the current scene that the split allows."""
    spec = world.suite["families"][family]
    options = []
    for slots in candidates(family, world):
        new_target = any(is_heldout_target(v, world.heldout_targets) for v in slots.values() if isinstance(v, Thing))
        for tmpl in spec["templates"] + spec["heldout"]:
            if (tmpl in spec["heldout"], new_target) in SPLITS[split]:
                options.append((tmpl, slots))
    return options


def sample_task(family: str, world: World, rng: np.random.Generator, split: str) -> Task:
    """A random instruction of a family for the current scene, from the split's templates/targets."""
    options = split_options(family, world, split)
    if not options:
        raise InstructionError(f"no {split!r} instruction of family {family!r} fits this scene")
    return _task(family, *options[rng.integers(len(options))], world)


def _task(family: str, tmpl: str, slots: dict, world: World) -> Task:
    words = {k: describe(v, world.things) if isinstance(v, Thing) else v for k, v in slots.items()}
    return Task(family, tmpl.format(**words), slots.get("obj"), slots.get("target"), slots.get("dir"))


SWAP_FAMILY = {"open_drawer": "close_drawer", "close_drawer": "open_drawer"}


def swap_task(task: Task, world: World, rng: np.random.Generator, split: str) -> Task | None:
    """Another valid task for the same scene, for the instruction-swap control: the same family with other
    slots (another object, target, direction or button; a training wording), or the drawer's other family.
    None when the scene offers no other (e.g. one object and push has one direction)."""
    family = SWAP_FAMILY.get(task.family, task.family)
    same = (task.obj, task.target, task.direction)
    options = [(t, s) for t, s in split_options(family, world, split if split != "all" else "train")
               if family != task.family or (s.get("obj"), s.get("target"), s.get("dir")) != same]
    if not options:
        return None
    return _task(family, *options[rng.integers(len(options))], world)


def paraphrase(instruction: str, family: str, suite: dict, rng: np.random.Generator) -> str:
    """The same command in one of the family's training paraphrases (envs/tasks.yaml), its slots (object,
    target, direction) kept word for word. An instruction that no train template of the family matches
    (another suite's, a held-out wording) comes back unchanged."""
    spec = suite["families"].get(family)
    if not spec or not spec.get("paraphrases"):
        return instruction
    for tmpl in spec["templates"]:
        match = _template_regex(tmpl).match(instruction)
        if match:
            return spec["paraphrases"][rng.integers(len(spec["paraphrases"]))].format(**match.groupdict())
    return instruction


def in_heldout_wording(instruction: str, family: str, suite: dict) -> bool:
    """Whether the instruction is worded by one of the family's held-out templates (else, on the held-out
    split, it names a held-out target in a training wording)."""
    return any(_template_regex(t).match(instruction) for t in suite["families"].get(family, {}).get("heldout", []))


@cache
def _template_regex(tmpl: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", tmpl)
    regex = "".join(re.escape(p) if i % 2 == 0 else
                    ("(?P<dir>" + "|".join(DIRECTIONS) + ")" if p == "dir" else f"(?P<{p}>.+?)")
                    for i, p in enumerate(parts))
    return re.compile(regex + r"\.?$", re.IGNORECASE)


def clip(text: str, limit: int = 60) -> str:
    """The text quoted for an error message, cut to a readable length."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def resolve(phrase: str, kinds: tuple[str, ...], things: list[Thing]) -> Thing:
    """The one thing of the given kinds that a phrase like "large red cube" names."""
    words = set(phrase.lower().split()) - {"the", "a"}
    pool = [t for t in things if t.kind in kinds]
    found = [t for t in pool if words <= t.words]
    available = ", ".join(describe(t, things) for t in pool) or "none"
    if not found:
        raise InstructionError(f"no {'/'.join(kinds)} called {clip(phrase)} in this scene; "
                               f"available: {available}")
    if len(found) > 1:
        names = ", ".join(describe(t, things) for t in found)
        raise InstructionError(f"{clip(phrase)} is ambiguous here: it could be {names}")
    return found[0]


def parse_instruction(text: str, world: World) -> Task:
    """Match a typed instruction against every family's templates and ground it in the scene."""
    clean = " ".join(text.strip().split())
    if len(clean) > MAX_INSTRUCTION:
        raise InstructionError(f"instruction {clip(clean)} is too long: at most {MAX_INSTRUCTION} characters")
    errors = []
    for family, spec in world.suite["families"].items():
        for tmpl in spec["templates"] + spec["heldout"]:
            match = _template_regex(tmpl).match(clean)
            if not match:
                continue
            slots = match.groupdict()
            try:
                things = {k: resolve(v, SLOTS[family][k], world.things)
                          for k, v in slots.items() if k != "dir"}
            except InstructionError as e:
                errors.append(str(e))
                continue
            dir_ = slots["dir"].lower() if "dir" in slots else None
            return Task(family, clean, things.get("obj"), things.get("target"), dir_)
    if errors:
        raise InstructionError(f"cannot ground {clip(clean)}: {errors[0]}")
    examples = "; ".join(f"{f}: '{s['templates'][0]}'" for f, s in world.suite["families"].items())
    raise InstructionError(f"{clip(clean)} matches no known task. Known forms: {examples}")


def advance(task: Task, world: World) -> None:
    """Record what a two-step task has done so far (called every control step, before `success`)."""
    if task.family == "press_then_pick" and world.button_depth(task.target) < BUTTON_PRESSED:
        task.pressed |= bool(world.pos(task.obj)[2] < task.obj.half + 0.01)


def focus(task: Task, world: World) -> np.ndarray:
    """(3,) where the task's attention belongs now: the named object (or button) until it is held, then the
    place or stack target; the drawer front for drawer tasks; the button, then the object, for press_then_pick.
    Privileged; an auxiliary training target."""
    if task.obj is None:
        return world.drawer_front
    if task.family == "press_then_pick":
        return world.pos(task.obj if task.pressed else task.target)
    if task.family == "put_in_drawer" and world.grasped(task.obj):
        return world.drawer_center
    if task.target is not None and world.grasped(task.obj):
        return world.pos(task.target)
    return world.pos(task.obj)


def success(task: Task, world: World) -> bool:
    """The family's success predicate on privileged state."""
    f, o, t = task.family, task.obj, task.target
    if f == "reach":
        site, top = world.grasp_pos, world.pos(o) + [0, 0, o.half]
        return bool(np.linalg.norm(site[:2] - top[:2]) < 0.025 and 0.0 < site[2] - top[2] < 0.05)
    if f == "pick":
        return bool(world.pos(o)[2] > o.half + LIFT_HEIGHT and world.grasped(o))
    if f == "push":
        moved = (world.pos(o) - task.start)[:2] @ DIRECTIONS[task.direction]
        return bool(moved > PUSH_DISTANCE and world.pos(o)[2] < o.half + 0.01)
    if f in ("place", "stack"):
        p, q = world.pos(o), world.pos(t)
        if f == "place":
            on_top = np.linalg.norm(p[:2] - q[:2]) < PLATE_RADIUS - 0.01
            height = 2 * PLATE_HALF_HEIGHT + o.half
        else:
            on_top = np.linalg.norm(p[:2] - q[:2]) < t.half and abs(q[2] - t.half) < 0.01
            height = q[2] + t.half + o.half
        return bool(on_top and abs(p[2] - height) < 0.012 and not world.touched(o))
    if f == "open_drawer":
        return world.drawer > 0.08
    if f == "close_drawer":
        return world.drawer < 0.01
    if f == "press_button":
        return world.button_depth(o) < BUTTON_PRESSED
    if f == "put_in_drawer":
        return world.in_drawer(o) and not world.touched(o)
    if f == "place_next_to":  # set down beside the other, both standing on the table, the other left where it was
        p, q = world.pos(o), world.pos(t)
        standing = abs(p[2] - o.half) < 0.004 and abs(q[2] - t.half) < 0.004
        return bool(world.gap(o, t) < NEXT_TO and standing and np.linalg.norm((q - task.target_start)[:2]) < NEXT_TO
                    and not world.touched(o))
    if f == "press_then_pick":
        return task.pressed and success(Task("pick", task.instruction, o), world)
    raise KeyError(f)
