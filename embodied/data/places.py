"""Where a store lives: a local folder, or a URL (s3://bucket/name.zarr, ...) that zarr opens through fsspec."""

from __future__ import annotations

from pathlib import Path

from zarr.core.sync import sync


def location(path: str | Path) -> Path | str:
    """A local path, or a URL (s3://bucket/name.zarr, ...) kept as a string: zarr opens it through fsspec."""
    text = str(path)
    return text if "://" in text else Path(path)


def read_key(store, key: str) -> bytes | None:
    """The bytes of one file of a zarr store (local or remote), or None if it is not there."""
    from zarr.core.buffer import default_buffer_prototype

    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()


def raw_store(path: Path | str):
    """The zarr store at a folder or URL, read-only, for reading its files as bytes."""
    from zarr.storage import FsspecStore, LocalStore

    return LocalStore(path, read_only=True) if isinstance(path, Path) else FsspecStore.from_url(path, read_only=True)


def exists(path: Path | str) -> bool:
    """Is there a store at `path` (a folder or a URL): a zarr.json at its root?"""
    path = location(path)
    if isinstance(path, Path):
        return (path / "zarr.json").is_file()
    return read_key(raw_store(path), "zarr.json") is not None
