"""NS-Scale: one submit API for many fits, on local, Dask, Ray, SLURM, HTCondor, Kubernetes."""

from .service import SubmitRequest, cancel, coordinate, submit

__all__ = ["SubmitRequest", "cancel", "coordinate", "submit"]
