"""Dataset recipes: datasets/<name>.yaml says which demonstrations to collect."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from embodied.errors import UserError
from embodied.paths import repo_root


@dataclass
class Recipe:
    """What a demonstration store holds. Unknown keys in a recipe file are errors."""

    name: str
    """Store name: datasets/<name>.zarr."""
    families: list[str]
    """Task families to record (see envs/tasks.yaml), or Meta-World tasks ('reach-v3'; in the env that has
    metaworld, `make metaworld`); all of one kind."""
    episodes_per_family: int
    """Successful episodes to keep per family."""
    seed_start: int = 0
    """First env seed; family episodes use seeds from here up."""
    shared_scenes: bool = True
    """Every family records the same seeds, so the same layouts (a seed draws the scene before the task); False
    gives family k the seeds from seed_start + k * episodes_per_family * max_seed_factor: as many distinct
    scenes as episodes."""
    max_seed_factor: int = 3
    """Give up on a family after trying episodes_per_family * this many seeds."""
    image_size: tuple[int, int] = (96, 96)
    """Camera image (height, width)."""
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    """Cameras to record: the tabletop's front, wrist; Meta-World's e.g. corner, gripperPOV."""
    expert_noise: float = 0.1
    """Std of Gaussian noise on the expert's actions, for diverse demonstrations."""
    clean_labels: bool = True
    """Record the expert's noise-free action while executing the noisy one (DART): demonstrations show
    recoveries from perturbations without teaching the noise. False records what was executed."""
    split: str = "train"
    """Instruction split: 'train' excludes held-out paraphrases and targets, 'heldout' uses only them.
    Tabletop only (a Meta-World task has one instruction)."""
    world: int = 1
    """World version of the tabletop (envs/tasks.yaml `worlds`; 0: the original world). Tabletop only."""
    keep_failures: bool = False
    """Also keep episodes the expert failed (marked success=False)."""
    drop_actions: bool = False
    """Record video only: no actions, states or privileged focus (has_actions false), as a video of people
    or another robot would come; for pretraining on action-free video (scripts/label_video.py)."""
    env: dict = field(default_factory=dict)
    """Extra tabletop config, e.g. {front_offset: [-0.2, 0.25, 0.1], light_tint: [1.0, 0.8, 0.6]}: video
    from another camera placement or look than the policy's."""
    description: str = ""
    """What this recipe is for."""

    @property
    def metaworld(self) -> bool:
        """Whether the recipe records Meta-World tasks (else tabletop families)."""
        from embodied.envs import METAWORLD_IDS

        return self.families[0] in METAWORLD_IDS

    def env_config(self) -> dict:
        config = {"image_size": tuple(self.image_size), "cameras": tuple(self.cameras)}
        return config if self.metaworld else config | {"split": self.split, "version": self.world} | self.env


def recipes_dir() -> Path:
    return repo_root() / "datasets"


def available_recipes() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe by name (datasets/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = recipes_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no recipe {str(name_or_path)!r}; available: {available_recipes()}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe is a mapping of keys, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"{path}: unknown recipe keys {unknown}; valid keys: {sorted(known)}")
    missing = sorted(k for k in ("families", "episodes_per_family") if k not in raw)
    if missing:
        raise UserError(f"{path}: recipe is missing {missing}")
    raw.setdefault("name", path.stem)
    recipe = Recipe(**raw)
    _check(recipe, path)
    return recipe


def _check(r: Recipe, path: Path) -> None:
    from embodied.envs import FAMILIES, METAWORLD_IDS, available

    bad = [f for f in r.families if f not in FAMILIES and f not in METAWORLD_IDS]
    if bad or not r.families:
        raise UserError(f"{path}: unknown families {bad}; {available(bad[0] if bad else '')}")
    kinds = {f in METAWORLD_IDS for f in r.families}
    if len(kinds) > 1:
        raise UserError(f"{path}: families mix tabletop families and Meta-World tasks {r.families}; a store holds "
                        "one robot (its cameras, state and action specs), so make one recipe of each")
    if r.episodes_per_family < 1:
        raise UserError(f"{path}: episodes_per_family must be >= 1, got {r.episodes_per_family}")
    from embodied.envs.tasks import SPLITS, world_versions

    if r.split not in SPLITS:
        raise UserError(f"{path}: split must be one of {list(SPLITS)}, got {r.split!r}")
    if r.world not in world_versions():
        raise UserError(f"{path}: world must be one of {world_versions()}, got {r.world!r}")
    if r.metaworld and r.env:
        raise UserError(f"{path}: env applies to the tabletop's config; leave it out for Meta-World tasks")
    if not r.metaworld and r.env:
        from embodied.envs.tabletop import make_config

        if {"image_size", "cameras", "split", "version"} & set(r.env):
            raise UserError(f"{path}: set image_size, cameras, split and world as recipe keys, not under env")
        try:
            make_config(**{k: tuple(v) if isinstance(v, list) else v for k, v in r.env.items()})
        except TypeError as e:
            raise UserError(f"{path}: env: {e}") from None
    if r.metaworld and r.split != "train":
        raise UserError(f"{path}: split applies to tabletop instructions; a Meta-World task has one, so leave it out")
    if r.metaworld:
        from embodied.envs.metaworld import CAMERAS
    else:
        from embodied.envs.tabletop import CAMERAS
    if not r.cameras or any(c not in CAMERAS for c in r.cameras):
        raise UserError(f"{path}: cameras must be a non-empty subset of {list(CAMERAS)}, got {r.cameras}")


def training_store(checkpoint: str | Path) -> Path | str:
    """The store a checkpoint was trained on (a folder or a URL): its training config's --store, else its
    recipe's store."""
    import json

    from embodied.data.places import location

    trainer = Path(checkpoint) / "trainer.json"
    config = json.loads(trainer.read_text()).get("config", {}) if trainer.is_file() else {}
    return location(config.get("store") or store_path(config.get("dataset", "pretrain_small")))


def store_path(recipe: str | Path) -> Path:
    """Where a recipe's store lives: datasets/<recipe name>.zarr (a recipe given by path too)."""
    name = load_recipe(recipe).name if Path(recipe).suffix in (".yaml", ".yml") else str(recipe)
    return recipes_dir() / f"{name}.zarr"
