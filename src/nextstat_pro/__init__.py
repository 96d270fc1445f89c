"""NextStat Pro: the enterprise layer around the NextStat statistical engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import NSPError

if TYPE_CHECKING:
    from .instance import Instance, init_instance

__all__ = ["Instance", "NSPError", "__version__", "init_instance"]


def __getattr__(name: str) -> Any:
    # Lazy: a stateless shard worker imports the engine, not the database and audit stack
    # (0.6 s of imports per spawned process).
    if name == "__version__":
        from importlib.metadata import version

        return version("nextstat-pro")
    if name in ("Instance", "init_instance"):
        from . import instance

        return getattr(instance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
