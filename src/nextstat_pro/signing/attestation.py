"""The signed run attestation: an in-toto Statement v1 over a run's outputs and manifest."""

from __future__ import annotations

from typing import Any

from ..canonical import parse_digest
from ..verify.dsse import STATEMENT_TYPE

PREDICATE_TYPE = "https://nextstat.pro/attestations/run/v1"


def run_statement(manifest: dict[str, Any], manifest_digest: str) -> dict[str, Any]:
    subjects = [{"name": f"outputs/{o['name']}", "digest": {"sha256": parse_digest(o["digest"])}}
                for o in manifest["outputs"]]
    subjects.append({"name": "manifest.json", "digest": {"sha256": parse_digest(manifest_digest)}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run_id": manifest["run_id"],
            "project": manifest["project"],
            "task": manifest["task"],
            "params": manifest["params"],
            "seed": manifest["seed"],
            "patch": manifest["patch"],
            "inputs": [{"role": i["role"], "name": i["name"], "digest": {"sha256": parse_digest(i["digest"])}}
                       for i in manifest["inputs"]],
            "engine": manifest["engine"],
            "platform": manifest["platform"],
            "timing": {k: manifest[k] for k in ("created_at", "started_at", "finished_at")},
            "status": manifest["status"],
            "error": manifest["error"],
            "fit_quality_ok": manifest["fit_quality_ok"],
            "created_by": manifest["created_by"],
            "manifest_digest": manifest_digest,
        },
    }
