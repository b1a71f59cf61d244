"""DAgger (Ross et al. 2011): the learned policy drives, the scripted expert labels the states it visits.

A policy trained on demonstrations only ever saw the states the expert visits; its own small errors take
it elsewhere (stopping 5 cm short of an object, say), where it has no data and errors compound. The
experts plan closed-loop from privileged simulator state every step, so they can say what to do from
wherever the policy went: recording the policy's episodes with the expert's labels adds exactly the
missing states. Episodes are kept whether or not they succeed: the labels, not the outcome, teach.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from embodied.runtime.chunks import REPLAN_EVERY, ChunkExecutor


class OnPolicy:
    """The Policy contract for `record_episode(..., clean_labels=True)`: executes the learned policy's
    action (the expert's with probability `beta`), and holds the expert's for that step in `label`."""

    def __init__(self, policy, expert, beta: float = 0.0, replan_every: int = REPLAN_EVERY, seed: int = 0):
        self.policy, self.expert, self.beta = policy, expert, beta
        self.executor = ChunkExecutor.for_policy(policy, replan_every)
        self.rng = np.random.default_rng(seed)
        self.label: np.ndarray | None = None

    def reset(self) -> None:
        self.policy.reset()
        self.expert.reset()
        self.executor.reset()

    def act(self, observation: dict) -> np.ndarray:  # -> float32 (1, A)
        expert = self.expert.act(observation)  # advances the expert's plan every step, as when it drives
        self.label = self.expert.label
        if self.executor.needs_plan():
            self.executor.add(self.policy.act(observation))
        own = self.executor.next()
        return expert if self.rng.random() < self.beta else own[None].astype(np.float32)


def collect_on_policy(policy, store, families: list[str], episodes: int, seed_start: int, beta: float = 0.0,
                      replan_every: int = REPLAN_EVERY, env_config: dict | None = None) -> dict:
    """Append `episodes` per family of `policy` driving with expert labels to `store` (an EpisodeStore open
    for appending); seeds from `seed_start`. Returns {family: success rate of those episodes}."""
    import gymnasium as gym

    from embodied.data.collect import record_episode
    from embodied.envs import expert_for, gym_id

    rates = {}
    bar = tqdm(total=episodes * len(families), desc="dagger", unit="ep")
    for family in families:
        env = gym.make(gym_id(family), **(env_config or {}))
        wins = 0
        for i in range(episodes):
            seed = seed_start + i
            driver = OnPolicy(policy, expert_for(env), beta, replan_every, seed)
            episode = record_episode(env, driver, seed, clean_labels=True)
            store.append(episode)
            wins += episode.success
            bar.update(1)
            bar.set_postfix(family=family, success=f"{wins}/{i + 1}")
        rates[family] = wins / episodes
        env.close()
    bar.close()
    return rates


def copy_store(source: Path, dest: Path) -> None:
    """A copy of a store to aggregate into (the recipe's own store stays as collected)."""
    import shutil

    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(dest)
