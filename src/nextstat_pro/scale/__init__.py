"""NS-Scale: one submit API for many fits, on local, Dask, Ray, SLURM, HTCondor, Kubernetes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import SubmitRequest, cancel, coordinate, submit

__all__ = ["SubmitRequest", "cancel", "coordinate", "submit"]


def __getattr__(name: str) -> Any:
    # Lazy: workers import nextstat_pro.scale.worker, which needs no database.
    if name in __all__:
        from . import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
