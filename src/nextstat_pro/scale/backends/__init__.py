"""Backends behind one small contract (``base.Backend``): adding one is one module."""

from __future__ import annotations

from ...errors import UsageError
from .base import Backend, Launch
from .dask import DaskBackend
from .htcondor import HTCondorBackend
from .kubernetes import KubernetesBackend
from .local import LocalBackend
from .ray import RayBackend
from .slurm import SlurmBackend

BACKENDS = {b.name: b for b in (LocalBackend, DaskBackend, RayBackend, SlurmBackend, HTCondorBackend,
                                KubernetesBackend)}

__all__ = ["BACKENDS", "Backend", "Launch", "get_backend"]


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise UsageError(f"unknown backend {name!r} (backends: {', '.join(BACKENDS)})") from None
