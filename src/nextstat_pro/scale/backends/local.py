"""``local``: a process pool on this machine (the embedded default needs nothing else)."""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing.context import BaseContext

from ..worker import run_shard_uri
from .base import Launch


def start_method() -> str:
    """``fork`` when this process runs no thread but its own, ``spawn`` otherwise.

    A forked worker starts in milliseconds with the engine already imported (a spawned one
    takes 0.3 s), but fork copies no thread: once the engine has started its thread pool
    (``fit_toys`` does) or any library has started a thread, a forked child could wait
    forever on a lock one of them held. With a single thread there is no such lock."""
    if sys.platform == "linux" and len(os.listdir("/proc/self/task")) == 1:
        return "fork"
    return "spawn"


class LocalBackend:
    name = "local"
    poll_interval = 1.0  # wait() returns as soon as a worker finishes

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.method = ""
        self.futures: dict[int, Future[str]] = {}

    def launch(self, job: Launch) -> str:
        forking = False
        if self.pool is None:
            self.method = start_method()
            context: BaseContext = multiprocessing.get_context(self.method)
            self.pool = ProcessPoolExecutor(max_workers=job.workers, mp_context=context)
            forking = self.method == "fork"
        # Forked workers are created by the pool's first submit. Freezing this process's
        # objects first keeps the children's garbage collector from walking (and so copying)
        # the parent's whole heap, as the gc documentation advises for fork without exec; an
        # application that froze objects itself is left as it was.
        frozen = forking and gc.get_freeze_count() == 0
        if frozen:
            gc.freeze()
        try:
            for shard in job.shards:
                self.futures[shard] = self.pool.submit(run_shard_uri, job.spec_uri, shard)
        finally:
            if frozen:
                gc.unfreeze()
        return f"local:{job.workers}:{self.method}"

    def failures(self) -> dict[int, str]:
        out = {}
        for shard, fut in self.futures.items():
            if fut.done() and fut.exception() is not None:
                exc = fut.exception()
                out[shard] = f"{type(exc).__name__}: {exc}"
        return out

    def active(self) -> bool:
        return any(not f.done() for f in self.futures.values())

    def wait(self, timeout: float) -> None:
        running = [f for f in self.futures.values() if not f.done()]
        if running:
            wait(running, timeout, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout)

    def cancel(self) -> None:
        for fut in self.futures.values():
            fut.cancel()
        self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
