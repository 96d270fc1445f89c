"""Runs: recorded, immutable executions of engine tasks."""

from .export import export_run, read_manifest
from .records import STATUSES, get_run, list_runs, read_run
from .service import RunOutcome, RunRequest, run_task

__all__ = ["STATUSES", "RunOutcome", "RunRequest", "export_run", "get_run", "list_runs", "read_run", "read_manifest",
           "run_task"]
