"""``kubernetes``: an Indexed Job (``completionMode: Indexed``; ``JOB_COMPLETION_INDEX`` is
the shard index) applied with the ``kubernetes`` client. Workers skip shards already done, so
a resume re-applies the whole index range safely.

No API server can run in this project's CI: the manifest is validated against the
Kubernetes batch/v1 Job schema in the tests."""

from __future__ import annotations

import json
from typing import Any, cast

from ...errors import ConfigError
from .base import Launch, PollingWait


def job_manifest(job: Launch) -> dict[str, Any]:
    o = job.options
    n = max(job.shards) + 1
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"nsp-{job.run_id[:18].lower()}", "labels": {"app.kubernetes.io/name": "nextstat-pro",
                                                                         "nextstat.pro/run": job.run_id}},
        "spec": {
            "completionMode": "Indexed",
            "completions": n,
            "parallelism": min(int(o.get("parallelism", job.workers)), n),
            "backoffLimitPerIndex": int(o.get("retries", 2)),
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "worker",
                        "image": o.get("image", "nextstat-pro:latest"),
                        "command": ["nextstat-pro", "worker", "run-shard", "--spec", job.spec_uri,
                                    "--shard", "$(JOB_COMPLETION_INDEX)"],
                        "resources": {"requests": {"cpu": str(o.get("cpus", 1)), "memory": o.get("mem", "2Gi")}},
                        "envFrom": [{"secretRef": {"name": o["secret"]}}] if o.get("secret") else [],
                    }],
                }
            },
        },
    }


class KubernetesBackend(PollingWait):
    name = "kubernetes"

    def __init__(self) -> None:
        self.name_: str | None = None
        self.namespace = "default"

    def launch(self, job: Launch) -> str:
        manifest = job_manifest(job)
        job.workdir.mkdir(parents=True, exist_ok=True)
        (job.workdir / "job.json").write_text(json.dumps(manifest, indent=2))
        try:
            from kubernetes import client, config
        except ImportError:
            raise ConfigError("the kubernetes backend needs the `kubernetes` package") from None
        self.namespace = job.options.get("namespace", "default")
        kube_config: Any = config  # its loaders are not annotated
        try:
            kube_config.load_kube_config()
        except Exception:  # the client raises several types for a missing or bad config
            try:
                kube_config.load_incluster_config()
            except Exception:
                raise ConfigError("no Kubernetes configuration (kubeconfig or in-cluster): cannot apply "
                                  f"{job.workdir / 'job.json'}") from None
        try:
            # The client takes the manifest as a plain dict (releases before the pydantic-based ones send it as
            # is, those validate it into a V1Job, which serialises back to the same JSON); its annotation names
            # only the model class.
            client.BatchV1Api().create_namespaced_job(self.namespace, cast("client.V1Job", manifest))
        except Exception as exc:
            raise ConfigError(f"the Kubernetes API refused the job: {exc}") from None
        self.name_ = manifest["metadata"]["name"]
        return self.name_

    def failures(self) -> dict[int, str]:
        return {}

    def active(self) -> bool:
        return self.name_ is not None

    def cancel(self) -> None:
        if self.name_:
            from kubernetes import client

            client.BatchV1Api().delete_namespaced_job(self.name_, self.namespace, propagation_policy="Foreground")

    def close(self) -> None:
        pass
