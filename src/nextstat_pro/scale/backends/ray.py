"""``ray``: a local Ray instance, or a cluster at ``--backend-opt address=ray://...``."""

from __future__ import annotations

import time
from typing import Any

from ...errors import ConfigError
from ..worker import run_shard_uri
from .base import Launch


class RayBackend:
    name = "ray"
    poll_interval = 1.0  # wait() returns as soon as a worker finishes

    def __init__(self) -> None:
        self.refs: dict[int, Any] = {}
        self.ray: Any = None
        self.remote: Any = None

    def launch(self, job: Launch) -> str:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray backend needs `ray` (pip install ray)") from None
        if self.ray is None:
            address = job.options.get("address")
            try:
                if address:
                    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
                else:
                    ray.init(num_cpus=job.workers, include_dashboard=False, ignore_reinit_error=True,
                             log_to_driver=False, _node_ip_address="127.0.0.1")
            except (ConnectionError, RuntimeError) as exc:
                raise ConfigError(f"cannot start or reach Ray ({address or 'local'}): {exc}") from None
            self.ray = ray
            self.remote = ray.remote(num_cpus=1)(run_shard_uri)
        for shard in job.shards:
            self.refs[shard] = self.remote.remote(job.spec_uri, shard)
        return "ray"

    def _ready(self) -> list[Any]:
        if self.ray is None or not self.refs:
            return []
        ready: list[Any]
        ready, _ = self.ray.wait(list(self.refs.values()), num_returns=len(self.refs), timeout=0)
        return ready

    def failures(self) -> dict[int, str]:
        ready = set(self._ready())
        out = {}
        for shard, ref in self.refs.items():
            if ref in ready:
                try:
                    self.ray.get(ref)
                except Exception as exc:  # Ray wraps the worker's error
                    out[shard] = str(exc).splitlines()[0]
        return out

    def active(self) -> bool:
        return self.ray is not None and len(self._ready()) < len(self.refs)

    def wait(self, timeout: float) -> None:
        ready = set(self._ready())
        running = [r for r in self.refs.values() if r not in ready]
        if running:
            self.ray.wait(running, num_returns=1, timeout=timeout)
        else:
            time.sleep(timeout)

    def cancel(self) -> None:
        if self.ray is None:
            return
        for ref in self.refs.values():
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.ray is not None:
            self.ray.shutdown()
            self.ray = None
