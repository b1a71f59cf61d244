"""Tabletop environments, registered with Gymnasium as `embodied/<Name>-v0`."""

from gymnasium.envs.registration import register

from embodied.envs.scene import load_suite
from embodied.envs.tabletop import TabletopEnv, TabletopConfig, default_config

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

__all__ = ["ENV_IDS", "FAMILIES", "TabletopConfig", "TabletopEnv", "default_config", "env_id"]
