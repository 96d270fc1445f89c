"""``dask``: a ``distributed`` LocalCluster, or a scheduler at ``--backend-opt address=tcp://...``."""

from __future__ import annotations

import os
import time
from typing import Any

from ...errors import ConfigError
from ..worker import run_shard_uri
from .base import Launch


def _local_cluster(local_cluster: Any, workers: int) -> Any:
    """A LocalCluster whose workers fit at full speed and which leaves this process as it was.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_=65536`` for their workers, which makes
    NextStat's fits 2.3x slower (glibc then returns memory to the kernel on nearly every
    free), and they write their worker environment into this process's ``os.environ``,
    where every process started later inherits it (a Ray or local pool of the same
    coordinator was 2.5x slower after a Dask job)."""
    import dask

    saved = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return local_cluster(n_workers=workers, threads_per_worker=1, processes=True,
                                 dashboard_address=None, host="127.0.0.1")
    finally:
        os.environ.clear()
        os.environ.update(saved)


class DaskBackend:
    name = "dask"
    poll_interval = 1.0  # wait() returns as soon as a worker finishes

    def __init__(self) -> None:
        self.client: Any = None
        self.cluster: Any = None
        self.futures: dict[int, Any] = {}

    def launch(self, job: Launch) -> str:
        try:
            import distributed
        except ImportError:
            raise ConfigError("the dask backend needs `distributed` (pip install distributed)") from None
        # distributed's functions are not annotated: used through Any under mypy --strict.
        api: Any = distributed
        if self.client is None:
            address = job.options.get("address")
            try:
                if address:
                    self.client = api.Client(address, timeout="10s")
                else:
                    self.cluster = _local_cluster(api.LocalCluster, job.workers)
                    self.client = api.Client(self.cluster)
            except OSError as exc:
                raise ConfigError(f"cannot reach the Dask scheduler {address}: {exc}") from None
        for shard in job.shards:
            self.futures[shard] = self.client.submit(run_shard_uri, job.spec_uri, shard, pure=False,
                                                     key=f"{job.run_id}-shard-{shard}-{len(self.futures)}")
        return str(self.client.scheduler.address)

    def failures(self) -> dict[int, str]:
        return {s: str(f.exception()) for s, f in self.futures.items() if f.status == "error"}

    def active(self) -> bool:
        return any(f.status == "pending" for f in self.futures.values())

    def wait(self, timeout: float) -> None:
        running = [f for f in self.futures.values() if f.status == "pending"]
        if not running:
            time.sleep(timeout)
            return
        import distributed

        api: Any = distributed
        try:
            api.wait(running, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass  # nothing finished yet: the coordinator looks again

    def cancel(self) -> None:
        for f in self.futures.values():
            f.cancel()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None
