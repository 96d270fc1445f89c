"""``local``: a process pool on this machine (the embedded default needs nothing else)."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from ..worker import run_shard_uri
from .base import Launch


class LocalBackend:
    name = "local"

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.futures: dict[int, Future[str]] = {}

    def launch(self, job: Launch) -> str:
        if self.pool is None:
            # spawn, not fork: the engine runs threads, which fork does not carry safely.
            self.pool = ProcessPoolExecutor(max_workers=job.workers, mp_context=multiprocessing.get_context("spawn"))
        for shard in job.shards:
            self.futures[shard] = self.pool.submit(run_shard_uri, job.spec_uri, shard)
        return f"local:{job.workers}"

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
