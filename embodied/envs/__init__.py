"""Tabletop environments, registered with Gymnasium as `embodied/<Name>-v<world version>` (v1, the newest, and
v0, the world old stores and bundles were made in: envs/tasks.yaml `worlds`); Meta-World's tasks as
`embodied/MetaWorld-<Task>V3-v0` where the `metaworld` package is importable (its own env: `make metaworld`)."""

import importlib.util
from functools import partial

import gymnasium as gym
from gymnasium.envs.registration import register

from embodied.envs.scene import WORLD_VERSION, load_suite
from embodied.envs.tabletop import TabletopConfig, TabletopEnv, default_config
from embodied.errors import UserError

ENTRY = "embodied.envs.tabletop:TabletopEnv"


def env_id(family: str, version: int = WORLD_VERSION) -> str:
    """'open_drawer' -> 'embodied/OpenDrawer-v1'; 'suite' -> 'embodied/Tabletop-v1'."""
    name = "Tabletop" if family == "suite" else "".join(w.capitalize() for w in family.split("_"))
    return f"embodied/{name}-v{version}"


FAMILIES = list(load_suite()["families"])
ENV_IDS = {f: env_id(f) for f in ["suite", *FAMILIES]}  # the newest world's

for _version in load_suite()["worlds"]:
    register(env_id("suite", _version), entry_point=ENTRY, max_episode_steps=150,
             kwargs={"task": "suite", "version": _version})
    for _family in FAMILIES:
        register(env_id(_family, _version), entry_point=ENTRY, kwargs={"task": _family, "version": _version},
                 max_episode_steps=load_suite()["families"][_family]["max_steps"])

# {'reach-v3': 'embodied/MetaWorld-ReachV3-v0', ...}; empty without metaworld (it pins another MuJoCo). A folder
# named metaworld on the path is a namespace package without an origin, not the package.
METAWORLD_IDS: dict[str, str] = {}
if getattr(importlib.util.find_spec("metaworld"), "origin", None) is not None:
    from embodied.envs.metaworld import register_envs

    METAWORLD_IDS = register_envs()


def gym_id(task: str, version: int | None = None) -> str:
    """The Gymnasium id of a tabletop family ('reach', or 'suite': every family) in world `version` (default: the
    newest) or a Meta-World task ('reach-v3')."""
    if task in ENV_IDS:
        return ENV_IDS[task] if version is None else env_id(task, version)
    if task in METAWORLD_IDS:
        return METAWORLD_IDS[task]
    raise UserError(f"unknown task {task!r}; {available(task)}")


def available(task: str = "") -> str:
    """The tasks there are, for error messages; where metaworld is missing and `task` looks like one of its
    tasks ('...-v3'), how to get it."""
    text = f"tabletop families: {FAMILIES}"
    if METAWORLD_IDS:
        text += f"; Meta-World tasks: {list(METAWORLD_IDS)}"
    elif task.endswith("-v3"):
        text += ("; Meta-World tasks need their own env (metaworld pins another MuJoCo): run `make metaworld`, "
                 "then the same command with .venv-metaworld/bin/python")
    return text


def expert_for(env: gym.Env, noise: float = 0.0, seed: int | None = None):
    """The scripted expert of `env`'s task (the Policy contract, with the noise-free action in `label`):
    the tabletop's planner or Meta-World's own policy."""
    if METAWORLD_IDS:
        from embodied.envs.metaworld import MetaWorldEnv, MetaWorldExpert

        if isinstance(env.unwrapped, MetaWorldEnv):
            return MetaWorldExpert(env, noise=noise, seed=seed)
    from embodied.envs.experts import ScriptedExpert

    return ScriptedExpert(env, noise=noise, seed=seed)


def make_vector_env(family: str = "suite", num_envs: int = 2, context: str = "forkserver",
                    autoreset_mode: gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP, **config):
    """An AsyncVectorEnv of `num_envs` envs of a tabletop family or Meta-World task, one process each.

    Workers start from a fork server, not a fork of this process: a process that has rendered holds
    GL state that deadlocks forked children. Observations travel through pipes, not shared memory:
    Gymnasium reads a Text space out of shared memory once, when the vector env is built, so
    instructions would never update.
    """
    gym_id(family)  # an unknown name fails here, not in every worker
    fns = [partial(_make, family, config) for _ in range(num_envs)]  # unpickling imports this module
    return gym.vector.AsyncVectorEnv(fns, shared_memory=False, context=context, autoreset_mode=autoreset_mode)


def _make(family: str, config: dict) -> gym.Env:
    return gym.make(gym_id(family, config.get("version")), **config)


__all__ = ["ENV_IDS", "FAMILIES", "METAWORLD_IDS", "WORLD_VERSION", "TabletopConfig", "TabletopEnv", "default_config",
           "env_id",
           "available", "expert_for", "gym_id", "make_vector_env"]
