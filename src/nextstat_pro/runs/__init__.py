"""Runs: recorded, immutable executions of engine tasks."""

from .export import export_folder, export_run, read_manifest
from .reads import list_run_rows, run_artifacts, run_result, show_run
from .records import STATUSES, get_run, read_run
from .references import RunInputs
from .service import RunRequest, run_task
from .views import RunOutcome

__all__ = ["STATUSES", "RunInputs", "RunOutcome", "RunRequest", "export_folder", "export_run", "get_run",
           "list_run_rows", "read_manifest", "read_run", "run_artifacts", "run_result", "run_task",
           "show_run"]
