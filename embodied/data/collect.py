"""Record episodes (a policy acting in an env) and collect a recipe's demonstrations into a store,
with parallel workers, resumably."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from embodied.data.places import exists, location
from embodied.data.recipes import Recipe
from embodied.data.store import Episode, EpisodeStore, StoreError
from embodied.envs.experts import EXPERTS_VERSION

ROBOT = "arm5"
WRITE_BATCH = 8  # episodes per store commit: each zarr write costs ms here (75 -> 41 ms an episode)


def record_episode(env: gym.Env, policy, seed: int, options: dict | None = None, clean_labels: bool = False) -> Episode:
    """Run `policy` (the Policy contract: reset(), act(obs) -> chunk) for one episode of `env`
    (a TimeLimit-wrapped tabletop or Meta-World env); frame t is stored with the action taken after it, or
    with clean_labels, the policy's noise-free `label` for that step (a scripted expert's)."""
    obs, info = env.reset(seed=seed, options=options)
    policy.reset()
    images = {c: [] for c in obs["images"]}
    states, actions, focus = [], [], []
    done = False
    while not done:
        focus.append(info["focus"])
        action = np.asarray(policy.act(obs))[0]
        for cam, img in obs["images"].items():
            images[cam].append(img)
        states.append(obs["state"])
        actions.append(policy.label if clean_labels else action)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return Episode(images={c: np.stack(v) for c, v in images.items()}, state=np.stack(states),
                   action=np.stack(actions).astype(np.float32), instruction=info["instruction"],
                   family=info["task"], success=bool(info["success"]), seed=seed, focus=np.stack(focus))


def create_store_for(path: str | Path, env: gym.Env, **attrs) -> EpisodeStore:
    """An empty store whose specs (cameras, image size, rates, action/state specs, camera projections) are
    the env's."""
    base = env.unwrapped
    cfg = base.config
    if hasattr(base, "camera_projections"):
        attrs.setdefault("camera_projections", base.camera_projections())
    return EpisodeStore.create(
        path, cameras=list(cfg.cameras), image_size=tuple(cfg.image_size),
        state_dim=len(base.state_spec.names), action_dim=len(base.action_spec.names),
        control_rate=1.0 / cfg.ctrl_dt, robot=getattr(base, "robot", ROBOT), action_spec=base.action_spec.to_dict(),
        state_spec=base.state_spec.to_dict(), **attrs)


def store_recorded(path: str | Path, recorded: str | Path, env: gym.Env) -> EpisodeStore:
    """Append the episodes the simulated robot recorded (embodied.envs.simrobot's `record` .npz) to the
    store at `path`, created with `env`'s specs if missing."""
    import json

    path = Path(path)
    store = EpisodeStore.open(path, mode="a") if path.exists() else create_store_for(path, env)
    with np.load(recorded) as arrays:
        episodes = [Episode(images={c: arrays[f"ep{i}_images_{c}"] for c in store.cameras},
                            state=arrays[f"ep{i}_state"], action=arrays[f"ep{i}_action"], seed=0,
                            instruction=m["instruction"], family=m["family"], success=m["success"])
                    for i, m in enumerate(json.loads(str(arrays["meta"])))]
    store.append_many(episodes)
    return store


class _Worker:
    """One per worker process: keeps an env per family so GL contexts are made once."""

    def __init__(self, recipe: Recipe):
        self.recipe, self.envs = recipe, {}

    def run(self, family: str, seed: int) -> Episode:
        from embodied.envs import expert_for, gym_id

        if family not in self.envs:
            self.envs[family] = gym.make(gym_id(family), **self.recipe.env_config())
        env = self.envs[family]
        expert = expert_for(env, noise=self.recipe.expert_noise, seed=seed)
        ep = record_episode(env, expert, seed, options=reset_options(env, seed), clean_labels=self.recipe.clean_labels)
        if self.recipe.drop_actions:  # video only, as it would come from elsewhere
            ep.action = ep.state = ep.focus = None
        return ep


def reset_options(env: gym.Env, seed: int) -> dict | None:
    """A demonstration's reset options: Meta-World's seed s records goal variation s mod 50 (of its 50), so
    consecutive seeds cover distinct goals (a seeded random pick repeats some within 10 episodes); None for
    the tabletop, whose seed draws the scene."""
    variations = getattr(env.unwrapped, "variations", None)
    return {"variation": seed % len(variations)} if variations is not None else None


_worker: _Worker | None = None  # per worker process, set by the pool initializer


def _init_worker(recipe: Recipe) -> None:
    global _worker
    _worker = _Worker(recipe)


def _run(family: str, seed: int) -> Episode:
    return _worker.run(family, seed)


def open_or_create(path: Path | str, recipe: Recipe) -> EpisodeStore:
    if path.exists() if isinstance(path, Path) else exists(path):  # a folder that is no store: open says so
        store = EpisodeStore.open(path, mode="a")
        want = recipe_signature(collected_as(recipe))
        have = recipe_signature(store.attrs.get("recipe", {}))
        if have != want:
            raise StoreError(f"{path} was collected as {have}, but recipe {recipe.name!r} now asks for {want}; "
                             "delete the store to collect it again, or use another output path")
        return store
    from embodied.envs import gym_id

    env = gym.make(gym_id(recipe.families[0]), **recipe.env_config())
    attrs = {"recipe": collected_as(recipe) | {"image_size": list(recipe.image_size)}}
    if recipe.metaworld:
        attrs["metaworld_version"] = version("metaworld")
    store = create_store_for(path, env, **attrs)
    env.close()
    return store


def collected_as(recipe: Recipe) -> dict:
    """The recipe as a store records it: its fields, plus the tabletop experts' version."""
    return vars(recipe) | ({} if recipe.metaworld else {"experts": EXPERTS_VERSION})


def recipe_signature(recipe: dict) -> dict:
    """What makes two collections of a recipe the same data (the episode count may grow). Stores from
    before the experts were versioned hold version 1 demonstrations."""
    from embodied.envs import METAWORLD_IDS

    tabletop = not set(recipe.get("families", [])) & set(METAWORLD_IDS)
    experts = {"experts": recipe.get("experts", 1)} if tabletop else {}
    return experts | {"cameras": list(recipe.get("cameras", [])), "image_size": list(recipe.get("image_size", [])),
            "expert_noise": recipe.get("expert_noise"), "clean_labels": recipe.get("clean_labels", False),
            "split": recipe.get("split"), "drop_actions": recipe.get("drop_actions", False),
            "env": recipe.get("env", {})}


def collect(recipe: Recipe, path: str | Path, workers: int = 2, progress: bool = True,
            ray: str | None = None) -> EpisodeStore:
    """Fill `path` (a folder or a URL) with the recipe's episodes; rerunning appends only what is missing.
    Episodes are played by `workers` processes here, or with `ray` (an address, or 'local') by Ray actors
    on a cluster (`workers` of them) that return them to this process; either way this process writes them,
    WRITE_BATCH at a time, each batch one commit, so a store never holds part of a batch. A (family, seed)
    gives the same episode on either path."""
    path = location(path)
    store = open_or_create(path, recipe)
    kept = store.meta("success") | recipe.keep_failures
    families, seeds = store.meta("family"), store.meta("seed")
    have = {f: int(np.sum((families == f) & kept)) for f in recipe.families}
    tried = {f: set(seeds[families == f].tolist()) for f in recipe.families}
    total = recipe.episodes_per_family * len(recipe.families)
    bar = tqdm(total=total, initial=sum(min(v, recipe.episodes_per_family) for v in have.values()),
               desc=f"collect {recipe.name}", unit="ep", disable=not progress)
    ok = attempts = 0
    start = time.perf_counter()
    finished: list[Episode] = []  # written WRITE_BATCH at a time: one commit per batch

    def write() -> None:
        store.append_many(finished)
        bar.update(len(finished))
        finished.clear()

    with (_ray_players(recipe, workers, ray) if ray else _local_players(recipe, workers)) as play:
        try:
            while True:
                jobs = _next_seeds(recipe, have, tried)
                if not jobs:
                    break
                for ep in play(jobs):
                    attempts += 1
                    ok += ep.success
                    if ep.success or recipe.keep_failures:
                        finished.append(ep)
                        have[ep.family] += 1
                    bar.set_postfix(ep_per_s=f"{attempts / (time.perf_counter() - start):.2f}",
                                    success=f"{ok}/{attempts}")
                    if len(finished) >= WRITE_BATCH:
                        write()
                if finished:  # the next round of seeds depends on what this one kept
                    write()
        except KeyboardInterrupt:
            write()  # keep what is finished; a rerun collects the rest
            raise
    bar.close()
    short = {f: n for f, n in have.items() if n < recipe.episodes_per_family}
    if short:
        print(f"warning: families short of {recipe.episodes_per_family} episodes after all seeds: {short}")
    store.stats()  # computed once, saved with the store
    return store


Players = Callable[[list[tuple[str, int]]], Iterator[Episode]]  # (family, seed) jobs -> episodes as they end


@contextmanager
def _local_players(recipe: Recipe, workers: int) -> Iterator[Players]:
    ctx = mp.get_context("forkserver")  # workers must not inherit GL state from this process
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(recipe,)) as pool:
        def play(jobs):
            pending = {pool.submit(_run, f, s) for f, s in jobs}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (fut.result() for fut in done)
        yield play


@contextmanager
def _ray_players(recipe: Recipe, workers: int, address: str) -> Iterator[Players]:
    """`workers` Ray actors (a CPU each), each keeping its envs as a local worker process does."""
    from embodied.cluster import ray_session

    with ray_session(address, cpus=workers) as ray:
        from ray.util import ActorPool

        cpus = int(ray.cluster_resources().get("CPU", 1))
        if workers > cpus:  # actors that can never be placed would hold their jobs forever
            print(f"--workers {workers}: the Ray cluster has {cpus} CPUs; using {cpus} actors")
            workers = cpus
        actors = ActorPool([ray.remote(num_cpus=1)(_Worker).remote(recipe) for _ in range(workers)])
        yield lambda jobs: actors.map_unordered(lambda actor, job: actor.run.remote(*job), jobs)


def _next_seeds(recipe: Recipe, have: dict, tried: dict) -> list[tuple[str, int]]:
    jobs = []
    span = recipe.episodes_per_family * recipe.max_seed_factor
    for k, family in enumerate(recipe.families):
        need = recipe.episodes_per_family - have[family]
        first = recipe.seed_start + (0 if recipe.shared_scenes else k * span)
        seeds = (s for s in range(first, first + span) if s not in tried[family])
        for seed in list(zip(range(max(0, need)), seeds, strict=False)):
            jobs.append((family, seed[1]))
            tried[family].add(seed[1])
    return jobs
