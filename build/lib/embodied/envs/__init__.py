"""Tabletop environments, registered with Gymnasium as `embodied/<Name>-v0`."""

from functools import partial

import gymnasium as gym
from gymnasium.envs.registration import register

from embodied.envs.scene import load_suite
from embodied.envs.tabletop import TabletopConfig, TabletopEnv, default_config

ENTRY = "embodied.envs.tabletop:TabletopEnv"


def env_id(family: str) -> str:
    """'open_drawer' -> 'embodied/OpenDrawer-v0'; 'suite' -> 'embodied/Tabletop-v0'."""
    if family == "suite":
        return "embodied/Tabletop-v0"
    return "embodied/" + "".join(w.capitalize() for w in family.split("_")) + "-v0"


FAMILIES = list(load_suite()["families"])
ENV_IDS = {f: env_id(f) for f in ["suite", *FAMILIES]}

register(ENV_IDS["suite"], entry_point=ENTRY, max_episode_steps=150, kwargs={"task": "suite"})
for _family in FAMILIES:
    register(ENV_IDS[_family], entry_point=ENTRY,
             max_episode_steps=load_suite()["families"][_family]["max_steps"], kwargs={"task": _family})



def make_vector_env(family: str = "suite", num_envs: int = 2, context: str = "forkserver",
                    autoreset_mode: gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP, **config):
    """An AsyncVectorEnv of `num_envs` tabletop envs, one process each.

    Workers start from a fork server, not a fork of this process: a process that has rendered holds
    GL state that deadlocks forked children. Observations travel through pipes, not shared memory:
    Gymnasium reads a Text space out of shared memory once, when the vector env is built, so
    instructions would never update.
    """
    fns = [partial(_make, family, config) for _ in range(num_envs)]  # unpickling imports this module
    return gym.vector.AsyncVectorEnv(fns, shared_memory=False, context=context, autoreset_mode=autoreset_mode)


def _make(family: str, config: dict) -> gym.Env:
    return gym.make(ENV_IDS[family], **config)


__all__ = ["ENV_IDS", "FAMILIES", "TabletopConfig", "TabletopEnv", "default_config", "env_id",
           "make_vector_env"]
