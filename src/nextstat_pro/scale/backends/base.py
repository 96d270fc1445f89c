"""The backend contract: start shard workers somewhere, report failures, cancel.

Success is not reported by backends: a shard is done when its result ref appears in the
store, whichever backend ran it (that is what makes backends interchangeable)."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Launch:
    run_id: str
    spec_uri: str
    shards: list[int]
    workdir: Path  # scripts, logs (a shared folder for cluster backends)
    workers: int = 2
    options: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str
    # How long the coordinator lets ``wait`` block between two looks at the store and the
    # database. A backend whose ``wait`` returns when a worker finishes can afford a long one
    # (it bounds only how late a cancellation is noticed); one that cannot tell needs a
    # short one (it bounds how late a finished shard is seen).
    poll_interval: float

    def launch(self, job: Launch) -> str:
        """Start workers for ``job.shards``; return a handle (job id) for the record."""
        ...

    def failures(self) -> dict[int, str]:
        """Shards whose worker ended without a result, with why (empty while running)."""
        ...

    def active(self) -> bool:
        """Whether any worker may still produce a result."""
        ...

    def wait(self, timeout: float) -> None:
        """Return when a worker may have finished, at the latest after ``timeout`` seconds
        (backends that cannot tell sleep: the coordinator then looks at the store)."""
        ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def worker_command(options: dict[str, Any] | None = None) -> list[str]:
    """How a cluster node starts a worker: ``--backend-opt executable=PATH`` (the path on the
    nodes), else this installation's ``nextstat-pro``."""
    if options and options.get("executable"):
        return [str(options["executable"])]
    exe = Path(sys.executable).with_name("nextstat-pro")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("nextstat-pro")
    return [found] if found else [sys.executable, "-m", "nextstat_pro.cli.main"]


class PollingWait:
    """``wait`` for batch schedulers, whose completions are only seen by polling."""

    poll_interval = 0.2

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)
