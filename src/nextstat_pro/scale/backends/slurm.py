"""``slurm``: an sbatch job array (``--array`` = the shards to run), polled with squeue/scontrol.

Resources come from ``--backend-opt``: partition, time (default 01:00:00), mem (default 1G),
cpus (default 1), account. The workdir must be on a filesystem the nodes share."""

from __future__ import annotations

import shlex
import shutil
import subprocess

from ...errors import ConfigError
from .base import Launch, PollingWait, worker_command

FINAL_BAD = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


def sbatch_script(job: Launch) -> str:
    o = job.options
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=nsp-{job.run_id[:13]}",
        f"#SBATCH --array={','.join(str(s) for s in sorted(job.shards))}",
        f"#SBATCH --output={job.workdir}/slurm-%A_%a.out",
        f"#SBATCH --cpus-per-task={o.get('cpus', 1)}",
        f"#SBATCH --mem={o.get('mem', '1G')}",
        f"#SBATCH --time={o.get('time', '01:00:00')}",
    ]
    if o.get("partition"):
        lines.append(f"#SBATCH --partition={o['partition']}")
    if o.get("account"):
        lines.append(f"#SBATCH --account={o['account']}")
    command = " ".join(shlex.quote(c) for c in worker_command(job.options))
    lines += ["set -euo pipefail",
              f"exec {command} worker run-shard --spec {shlex.quote(job.spec_uri)} --shard \"$SLURM_ARRAY_TASK_ID\"",
              ""]
    return "\n".join(lines)


class SlurmBackend(PollingWait):
    name = "slurm"

    def __init__(self) -> None:
        self.job_ids: list[str] = []
        self.shards: dict[str, list[int]] = {}

    def launch(self, job: Launch) -> str:
        if shutil.which("sbatch") is None:
            raise ConfigError("sbatch is not on PATH: the slurm backend needs a SLURM client")
        job.workdir.mkdir(parents=True, exist_ok=True)
        script = job.workdir / f"shards-{len(self.job_ids)}.sbatch"
        script.write_text(sbatch_script(job))
        proc = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ConfigError(f"sbatch failed: {proc.stderr.strip() or proc.stdout.strip()}")
        job_id = proc.stdout.strip().split(";")[0]
        self.job_ids.append(job_id)
        self.shards[job_id] = list(job.shards)
        return job_id

    def _states(self) -> dict[int, str]:
        """Shard → SLURM state, from scontrol (works without accounting)."""
        out: dict[int, str] = {}
        for job_id in self.job_ids:
            proc = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True,
                                  timeout=60)
            for line in proc.stdout.splitlines():
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                task, state = fields.get("ArrayTaskId"), fields.get("JobState")
                if task is None or state is None:
                    continue
                if task.isdigit():
                    out[int(task)] = state
                else:  # a pending range like "0-3,7" or "[0-3%2]"
                    for part in task.strip("[]").split("%")[0].split(","):
                        lo, _, hi = part.partition("-")
                        for i in range(int(lo), int(hi or lo) + 1):
                            out[i] = state
        return out

    def failures(self) -> dict[int, str]:
        return {s: f"SLURM state {st}" for s, st in self._states().items() if st in FINAL_BAD}

    def active(self) -> bool:
        return any(st in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED")
                   for st in self._states().values())

    def cancel(self) -> None:
        for job_id in self.job_ids:
            subprocess.run(["scancel", job_id], capture_output=True, timeout=60)

    def close(self) -> None:
        pass



