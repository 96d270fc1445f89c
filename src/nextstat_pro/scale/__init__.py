"""NS-Scale: one submit API for many fits, on local, Dask, Ray, SLURM, HTCondor, Kubernetes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .coordinator import coordinate, start_process, start_thread
    from .service import SubmitRequest, cancel, submit

__all__ = ["SubmitRequest", "cancel", "coordinate", "start_process", "start_thread", "submit"]
_WHERE = {"SubmitRequest": "service", "cancel": "service", "submit": "service",
          "coordinate": "coordinator", "start_process": "coordinator", "start_thread": "coordinator"}


def __getattr__(name: str) -> Any:
    # Lazy: workers import nextstat_pro.scale.worker, which needs no database.
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
