"""``htcondor``: a submit description (``$(Process)`` or an explicit shard list as the index),
submitted through the ``htcondor2`` bindings, or ``condor_submit`` when present.

No schedd can run in this project's CI: the generated file is tested against golden files."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from typing import Any

from ...errors import ConfigError
from .base import Launch, PollingWait, worker_command


def submit_description(job: Launch) -> str:
    o = job.options
    exe, *pre = worker_command(job.options)
    args = " ".join([*pre, "worker", "run-shard", "--spec", job.spec_uri, "--shard", "$(shard)"])
    shards = sorted(job.shards)
    lines = [
        f"# NextStat Pro job {job.run_id}",
        "universe = vanilla",
        f"executable = {exe}",
        f'arguments = "{args}"',
        f"output = {job.workdir}/shard-$(shard).out",
        f"error = {job.workdir}/shard-$(shard).err",
        f"log = {job.workdir}/job.log",
        f"request_cpus = {o.get('cpus', 1)}",
        f"request_memory = {o.get('mem', '2GB')}",
        "getenv = True",
    ]
    if shards == list(range(len(shards))):
        lines += ["shard = $(Process)", f"queue {len(shards)}"]
    else:
        lines += [f"queue shard in ({', '.join(map(str, shards))})"]
    return "\n".join(lines) + "\n"


class HTCondorBackend(PollingWait):
    name = "htcondor"

    def __init__(self) -> None:
        self.cluster: str | None = None

    def launch(self, job: Launch) -> str:
        job.workdir.mkdir(parents=True, exist_ok=True)
        path = job.workdir / "shards.sub"
        path.write_text(submit_description(job))
        try:
            # Optional and untyped: imported by name, used through Any.
            htcondor2: Any = importlib.import_module("htcondor2")
            result = htcondor2.Schedd().submit(htcondor2.Submit(path.read_text()))
            self.cluster = str(result.cluster())
            return self.cluster
        except ImportError:
            pass
        except Exception as exc:  # the bindings raise their own error types
            raise ConfigError(f"HTCondor refused the job: {exc} (submit file: {path})") from None
        if shutil.which("condor_submit") is None:
            raise ConfigError(f"HTCondor is not available here (no htcondor2 bindings, no condor_submit); "
                              f"the submit file is at {path}")
        proc = subprocess.run(["condor_submit", "-terse", str(path)], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ConfigError(f"condor_submit failed: {proc.stderr.strip()}")
        self.cluster = proc.stdout.split(".")[0].strip()
        return self.cluster

    def failures(self) -> dict[int, str]:
        return {}

    def active(self) -> bool:
        return self.cluster is not None

    def cancel(self) -> None:
        if self.cluster and shutil.which("condor_rm"):
            subprocess.run(["condor_rm", self.cluster], capture_output=True, timeout=60)

    def close(self) -> None:
        pass
