"""Ray, for work fanned out past one machine (`--ray ADDRESS` of collect_demos.py and evaluate.py). Ray is
imported only here, and only when asked for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from embodied.errors import UserError


@contextmanager
def ray_session(address: str, cpus: int | None = None) -> Iterator:
    """The ray module, connected: 'local' starts Ray on this machine (with `cpus` CPUs), anything else goes to
    ray.init (e.g. 'auto', 'ray://head:10001'). A Ray this call started is shut down on leaving."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'ray>=2.40' (make setup installs it with the tests' tools)") \
            from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=None if address == "local" else address, num_cpus=cpus if address == "local" else None,
                     include_dashboard=False, log_to_driver=False)
        except ConnectionError as e:
            raise UserError(f"no Ray cluster at {address!r} ({e}); give 'local', 'auto' or ray://HOST:PORT") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
