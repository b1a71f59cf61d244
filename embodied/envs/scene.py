"""The tabletop world: builds the MuJoCo model from the assets and the object catalog, lays out a
scene per episode and answers questions about privileged simulator state."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import yaml

from embodied.envs.rendering import mujoco
from embodied.paths import envs_dir

TABLE_REGION = ((0.28, 0.56), (-0.19, 0.19))  # x, y ranges where objects and plates are placed
PLATE_RADIUS = 0.055
PLATE_HALF_HEIGHT = 0.005
OBJECT_MASS = 0.06
DRAWER_OPEN = 0.12  # joint range of the drawer (m)
# the drawer's inside in its body frame (envs/assets/tabletop.xml): centre x, x range, half width in y; floor top z
DRAWER_INSIDE = (-0.004, (-0.074, 0.066), 0.062)
DRAWER_FLOOR = 0.018
BUTTON_PRESSED = -0.008  # button joint below this counts as pressed (m)
WORLD_VERSION = 1  # the newest world (envs/tasks.yaml `worlds`); env ids without a version get it
FIXTURES = ("cabinet", "button_a", "button_b")


@dataclass(frozen=True)
class Thing:
    """Something an instruction can name: a movable object, a plate or a button."""

    name: str  # MuJoCo body name
    kind: str  # "object" | "plate" | "button"
    shape: str  # cube | cylinder | plate | button
    color: str
    size: str = ""  # small | large for objects
    half: float = 0.0  # half extent (m) for objects

    @property
    def words(self) -> set[str]:
        return {self.color, self.shape, self.size} - {""}


@cache
def load_suite() -> dict:
    """The task suite definition (envs/tasks.yaml)."""
    with open(envs_dir() / "tasks.yaml") as f:
        return yaml.safe_load(f)


def catalog_things(catalog: dict) -> tuple[list[Thing], list[Thing]]:
    """Every movable object and plate the model contains (most are parked off-table)."""
    objects = [
        Thing(f"{shape}_{color}_{size}", "object", shape, color, size, half)
        for shape in catalog["shapes"]
        for color in catalog["colors"]
        for size, half in catalog["sizes"].items()
    ]
    plates = [Thing(f"plate_{c}", "plate", "plate", c) for c in catalog["plate_colors"]]
    return objects, plates


def build_model(catalog: dict) -> mujoco.MjModel:
    """Compile envs/assets/tabletop.xml plus one body per catalog object and plate."""
    spec = mujoco.MjSpec.from_file(str(envs_dir() / "assets" / "tabletop.xml"))
    objects, plates = catalog_things(catalog)
    for i, t in enumerate(objects):
        rgb = catalog["colors"][t.color]
        # Parked objects float (gravity-compensated) far from the table until a layout uses them.
        body = spec.worldbody.add_body(name=t.name, pos=_parking(i), gravcomp=1)
        body.add_freejoint(name=t.name)
        geom = dict(rgba=[*rgb, 1], mass=OBJECT_MASS, condim=4, friction=[1.0, 0.02, 0.0002])
        if t.shape == "cube":
            body.add_geom(name=t.name, type=mujoco.mjtGeom.mjGEOM_BOX, size=[t.half] * 3, **geom)
        else:
            body.add_geom(name=t.name, type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[t.half, t.half, 0],
                          **geom)
    for i, t in enumerate(plates):
        body = spec.worldbody.add_body(name=t.name, pos=_parking(100 + i), mocap=True)
        rgb = np.array(catalog["colors"][t.color])
        body.add_geom(name=t.name, type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                      size=[PLATE_RADIUS, PLATE_HALF_HEIGHT, 0], pos=[0, 0, PLATE_HALF_HEIGHT],
                      rgba=[*(0.55 * rgb + 0.4), 1])
    return spec.compile()


def sample_fixtures(rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """The cabinet on a random side of the table (its drawer opening toward the robot) and the two buttons on
    the other, 13-18 cm apart, all within the arm's reach and clear of the objects' region (|y| < 0.19)."""
    side = float(rng.choice([-1.0, 1.0]))
    cabinet = (float(rng.uniform(0.38, 0.46)), side * float(rng.uniform(0.31, 0.36)))
    x = float(rng.uniform(0.26, 0.32))
    xs = [x, x + float(rng.uniform(0.13, 0.18))]
    rng.shuffle(xs)
    a, b = ((xs[i], -side * float(rng.uniform(0.28, 0.33))) for i in range(2))
    return {"cabinet": cabinet, "button_a": a, "button_b": b}


def _parking(i: int) -> list[float]:
    return [5.0 + 0.2 * (i % 10), 5.0 + 0.2 * (i // 10), 2.0]


@dataclass
class Layout:
    """One episode's scene: what is on the table and where."""

    things: list[Thing]  # objects, plates and buttons present this episode
    poses: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # name -> x, y, yaw
    drawer: float = 0.0  # initial drawer opening (m)
    fixtures: dict[str, tuple[float, float]] = field(default_factory=dict)  # cabinet/button -> x, y; empty: fixed


class World:
    """MuJoCo model + data for the tabletop, with scene layout and privileged-state queries."""

    def __init__(self, version: int = WORLD_VERSION):
        self.suite = load_suite()
        if version not in self.suite["worlds"]:
            raise ValueError(f"unknown world version {version!r}; envs/tasks.yaml has {list(self.suite['worlds'])}")
        self.version, self.spec = version, self.suite["worlds"][version]
        self.heldout_targets: list[str] = self.spec["heldout_targets"]
        self.catalog = self.suite["objects"]
        self.model = build_model(self.catalog)
        camera = self.spec.get("front_camera")
        if camera:
            self.model.body_pos[self.model.body("look_at").id] = camera["look_at"]
            self.model.cam_fovy[self.model.camera("front").id] = camera["fovy"]
        self.data = mujoco.MjData(self.model)
        self.objects, self.plates = catalog_things(self.catalog)
        m = self.model
        self._body = {t.name: m.body(t.name).id for t in self.objects + self.plates}
        self._qadr = {t.name: m.jnt_qposadr[m.joint(t.name).id] for t in self.objects}
        self._dadr = {t.name: m.jnt_dofadr[m.joint(t.name).id] for t in self.objects}
        self._mocap = {t.name: m.body_mocapid[self._body[t.name]] for t in self.plates}
        self._geom = {t.name: m.geom(t.name).id for t in self.objects}
        self._fingers = (m.geom("finger_l").id, m.geom("finger_r").id)
        self._drawer_q = m.jnt_qposadr[m.joint("drawer").id]
        self._buttons = ("button_a", "button_b")
        self._fixture_mocap = {f: m.body_mocapid[m.body(f).id] for f in FIXTURES}
        self.grasp_site = m.site("grasp").id
        self.things: list[Thing] = []

    # ---- layout -------------------------------------------------------------------------------
    def sample_layout(self, rng: np.random.Generator) -> Layout:
        """3-4 objects and 2 plates at random non-overlapping spots, two buttons of random colors; in a world
        with random fixtures, the cabinet on one side of the table and the buttons on the other. (A new draw
        goes after the old ones: a seed keeps its scene in the older worlds.)"""
        n_obj = int(rng.integers(3, 5))
        objs = [self.objects[i] for i in rng.choice(len(self.objects), n_obj, replace=False)]
        plates = [self.plates[i] for i in rng.choice(len(self.plates), 2, replace=False)]
        colors = rng.choice(self.catalog["button_colors"], 2, replace=False)
        buttons = [Thing(b, "button", "button", str(c)) for b, c in zip(self._buttons, colors, strict=True)]
        drawer = float(rng.uniform(*self.spec["drawer_start"]["default"]))
        layout = Layout(things=objs + plates + buttons, drawer=drawer)
        placed: list[tuple[float, float, float]] = []  # x, y, radius
        for t in plates + objs:  # plates first: they need the most room
            radius = PLATE_RADIUS if t.kind == "plate" else t.half * 1.42
            for _ in range(1000):
                x, y = rng.uniform(*TABLE_REGION[0]), rng.uniform(*TABLE_REGION[1])
                if all(np.hypot(x - px, y - py) > radius + pr + 0.025 for px, py, pr in placed):
                    break
            else:
                raise RuntimeError("could not place all objects without overlap; widen TABLE_REGION")
            placed.append((x, y, radius))
            yaw = float(rng.uniform(-np.pi / 4, np.pi / 4)) if t.shape == "cube" else 0.0
            layout.poses[t.name] = (float(x), float(y), yaw)
        if self.spec["fixtures"] == "random":
            layout.fixtures = sample_fixtures(rng)
        return layout

    def apply_layout(self, layout: Layout) -> None:
        """Move the layout's objects onto the table and park everything else (after mj_resetData)."""
        m, d = self.model, self.data
        present = {t.name for t in layout.things}
        for i, t in enumerate(self.objects):
            qa, b = self._qadr[t.name], self._body[t.name]
            if t.name in present:
                x, y, yaw = layout.poses[t.name]
                d.qpos[qa:qa + 7] = [x, y, t.half, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
                m.body_gravcomp[b] = 0.0
            else:
                d.qpos[qa:qa + 3] = _parking(i)
                m.body_gravcomp[b] = 1.0
        for i, t in enumerate(self.plates):
            x, y, _ = layout.poses.get(t.name, (*_parking(100 + i)[:2], 0.0))
            d.mocap_pos[self._mocap[t.name]] = [x, y, 0.0 if t.name in present else 2.0]
        for t in layout.things:
            if t.kind == "button":
                m.geom_rgba[m.geom(t.name).id, :3] = self.catalog["colors"][t.color]
        d.qpos[self._drawer_q] = layout.drawer
        for f, mocap in self._fixture_mocap.items():
            d.mocap_pos[mocap][:2] = layout.fixtures.get(f, m.body(f).pos[:2])
        self.things = list(layout.things)

    # ---- privileged state ---------------------------------------------------------------------
    def pos(self, t: Thing) -> np.ndarray:  # (3,) world position of an object/plate/button top
        if t.kind == "button":
            return self.data.site_xpos[self.model.site(f"{t.name}_top").id].copy()
        return self.data.xpos[self._body[t.name]].copy()

    def yaw(self, t: Thing) -> float:
        if t.kind != "object":
            return 0.0
        w, x, y, z = self.data.xquat[self._body[t.name]]
        return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    def touching_fingers(self, t: Thing) -> tuple[bool, bool]:
        """Whether the object is in contact with the left and the right finger."""
        g = self._geom[t.name]
        left = right = False
        for c in self.data.contact[: self.data.ncon]:
            pair = (c.geom1, c.geom2)
            if g in pair:
                left |= self._fingers[0] in pair
                right |= self._fingers[1] in pair
        return left, right

    def grasped(self, t: Thing) -> bool:
        return all(self.touching_fingers(t))

    def touched(self, t: Thing) -> bool:
        return any(self.touching_fingers(t))

    @property
    def drawer(self) -> float:
        return float(self.data.qpos[self._drawer_q])

    @property
    def cabinet_pos(self) -> np.ndarray:  # (3,) where the cabinet stands this episode
        return self.data.mocap_pos[self._fixture_mocap["cabinet"]].copy()

    @property
    def drawer_front(self) -> np.ndarray:  # (3,) inner face of the drawer front panel
        return self.data.site_xpos[self.model.site("drawer_front").id].copy()

    @property
    def drawer_center(self) -> np.ndarray:  # (3,) the middle of the drawer's floor (its top face)
        return self.data.xpos[self.model.body("drawer").id] + [DRAWER_INSIDE[0], 0.0, DRAWER_FLOOR]

    def in_drawer(self, t: Thing) -> bool:
        """Whether an object rests on the drawer's floor, inside its four walls."""
        rel = self.pos(t) - self.data.xpos[self.model.body("drawer").id]
        (x0, x1), half_y = DRAWER_INSIDE[1], DRAWER_INSIDE[2]
        inside = x0 + 0.005 < rel[0] < x1 - 0.005 and abs(rel[1]) < half_y - 0.005
        return bool(inside and rel[2] < DRAWER_FLOOR + t.half + 0.012)

    def gap(self, a: Thing, b: Thing) -> float:
        """The shortest distance between two objects' surfaces (m; 0 or less in contact)."""
        return float(mujoco.mj_geomDistance(self.model, self.data, self._geom[a.name], self._geom[b.name], 1.0, None))

    def button_depth(self, t: Thing) -> float:
        return float(self.data.qpos[self.model.jnt_qposadr[self.model.joint(t.name).id]])

    @property
    def finger_axis(self) -> np.ndarray:  # (3,) horizontal unit vector the fingers open and close along
        left, right = (self.data.geom_xpos[g] for g in self._fingers)
        v = np.append((left - right)[:2], 0.0)
        return v / max(np.linalg.norm(v), 1e-9)

    @property
    def grasp_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.grasp_site].copy()
