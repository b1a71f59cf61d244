"""Demonstrations as video: the zarr episode store, recording, recipes, training windows, video I/O."""

from embodied.data.store import FORMAT_VERSION, Episode, EpisodeStore, StoreError

__all__ = ["FORMAT_VERSION", "Episode", "EpisodeStore", "StoreError"]
