import numpy as np
import pytest

from embodied.data import Episode, EpisodeStore

CAMERAS = ["front", "wrist"]
SIZE = (16, 20)


def make_episode(index: int, length: int | None = None, actions: bool = True, states: bool = True) -> Episode:
    """A deterministic synthetic episode: the same index always gives the same values."""
    rng = np.random.default_rng(index)
    t = length or int(rng.integers(5, 12))
    return Episode(
        images={c: rng.integers(0, 256, (t, *SIZE, 3), dtype=np.uint8) for c in CAMERAS},
        state=rng.normal(size=(t, 4)).astype(np.float32) if states else None,
        action=rng.uniform(-1, 1, (t, 3)).astype(np.float32) if actions else None,
        instruction=f"do thing {index}", family=["pick", "push"][index % 2], success=index % 3 != 0,
        seed=index,
    )


def new_store(path) -> EpisodeStore:
    return EpisodeStore.create(path, cameras=CAMERAS, image_size=SIZE, state_dim=4, action_dim=3,
                               control_rate=20.0, robot="test")


@pytest.fixture
def store(tmp_path):
    s = new_store(tmp_path / "s.zarr")
    for i in range(4):
        s.append(make_episode(i))
    return s
