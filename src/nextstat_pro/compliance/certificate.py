"""The run certificate: a run's inputs, engine, parameters, results, plots, fit quality, e-signatures
(their §11.50 manifestation), approval state and verification status, from its stored manifest,
result, signatures and audit events only.

The run's export (``runs export``: manifest, outputs, inputs, DSSE attestation, e-signatures, audit
events with inclusion proofs against a fresh checkpoint) is embedded under ``run/`` and checked by
the offline verifier before the certificate states anything about verification, so what the
certificate prints as verified is what ``nextstat-pro verify`` finds in the attachments.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..access.context import RequestContext
from ..access.rbac import authorize
from ..db.models import Project
from ..errors import UsageError
from ..ids import new_id
from ..runs.esignatures import facts
from ..runs.export import SIGNATURES_NAME, SUMS_NAME, _collect, _signed_extras, _sums
from ..runs.records import read_run
from ..signing.approval import approval_state
from ..verify import VerificationError
from ..verify.report_pdf import RUN_FOLDER
from ..verify.run_export import verify_run_folder
from .registry import template_for
from .render import build, record_report
from .views import ReportWritten

if TYPE_CHECKING:
    from ..instance import Instance

_HEADLINE = ("nll", "twice_nll", "observed", "cls", "clsb", "clb", "mu_tested", "ofv", "n_toys", "n_converged",
             "poi_mean", "wall_time_s")


def run_certificate(instance: Instance, ctx: RequestContext, run_ref: str, out: Path | None = None,
                    template_ref: str | None = None, plots: bool = True) -> ReportWritten:
    """Generate, record and (with ``out``) write the certificate of a finished run."""
    from .service import written  # the output helper shared by every report kind

    with instance.db.transaction() as session:
        run = read_run(session, ctx, run_ref, "run.export")
        project = session.get(Project, run.project_id)
        assert project is not None
        authorize(session, ctx, "report.create", project)
        if run.manifest_digest is None:
            raise UsageError(f"run {run.id} is {run.status}: only finished runs have a certificate")
        files = _collect(instance, session, run.manifest_digest)
        manifest = json.loads(files["manifest.json"])
        files.update(_signed_extras(instance, session, run, manifest))
        files[SUMS_NAME] = _sums(files)
        template, version = template_for(instance, session, ctx, project, "run-certificate", template_ref)
        policy = instance.config.approval_policy(project.name)
        approval = approval_state(facts(session, run.id), policy)
        data, created = certificate_data(files, approval, plots)
        inputs = [{"kind": "run", "run_id": run.id, "manifest_digest": run.manifest_digest},
                  {"kind": "template", "ref": f"{template.name}@{template.version}", "digest": template.digest}]
        built = build(report_id=new_id(), kind="run-certificate", project=project.name,
                      title=f"Run certificate {run.id}", template=template, data=data, inputs=inputs,
                      evidence={RUN_FOLDER + n: d for n, d in files.items()}, created=created,
                      keys=instance.run_keys())
        row = record_report(instance, session, ctx, project, built, version,
                            {"run_id": run.id, "template": template_ref, "plots": plots})
        return written(row, project.name, "draft", built, out, "run-certificate")


def certificate_data(files: dict[str, bytes], approval: str, plots: bool) -> tuple[dict[str, Any], str]:
    """The certificate's data from the run's export files, and its time (the newest audit event
    of the run: the data's own time, never the clock)."""
    manifest = json.loads(files["manifest.json"])
    result = json.loads(files["outputs/result.json"]) if "outputs/result.json" in files else None
    events = [json.loads(line) for line in files["audit/events.jsonl"].decode().splitlines() if line]
    signatures = json.loads(files[SIGNATURES_NAME])
    verification = _verification(files)
    created = max([manifest["finished_at"], *(e["ts"] for e in events)])
    quality = (result or {}).get("quality", {})
    data = {
        "run": {k: manifest.get(k) for k in ("run_id", "project", "task", "status", "error", "seed", "patch",
                                             "created_at", "started_at", "finished_at")}
        | {"manifest_digest": _digest_of_manifest(files), "created_by": manifest["created_by"].get("name")},
        "inputs": manifest["inputs"],
        "versions": [{"role": v.get("role"), "ref": v.get("ref"),
                      "label": f"{v.get('name')}@{v.get('semver') or str(v.get('digest'))[:19]}"}
                     for v in manifest.get("versions", [])],
        "engine": manifest["engine"], "platform": manifest["platform"], "params": manifest["params"],
        "results": _results(result),
        "quality": {"ok": quality.get("ok") if result else None, "reasons": quality.get("reasons", [])},
        "plots": _plots(manifest["task"], result, files, manifest) if plots and result else [],
        "signatures": [_manifestation(s) for s in signatures],
        "report_signatures": [],
        "verification": verification,
        "approval": approval,
    }
    return data, created


def _digest_of_manifest(files: dict[str, bytes]) -> str:
    from ..canonical import digest_of

    return digest_of(files["manifest.json"])


def _results(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"headline": [], "parameters": []}
    headline = [{"name": k, "value": _show(result[k])} for k in _HEADLINE if k in result]
    if isinstance(result.get("poi"), dict):
        poi = result["poi"]
        headline.insert(0, {"name": f"POI {poi.get('name')}",
                            "value": f"{_show(poi.get('value'))} ± {_show(poi.get('uncertainty'))}"})
    if isinstance(result.get("expected"), dict):
        headline.append({"name": "expected", "value": ", ".join(f"{k} {_show(v)}"
                                                              for k, v in sorted(result["expected"].items()))})
    params = [{"name": p.get("name"), "value": _show(p.get("value")), "uncertainty": _show(p.get("uncertainty"))}
              for p in result.get("parameters", []) if isinstance(p, dict)]
    return {"headline": headline, "parameters": params}


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _plots(task: str, result: dict[str, Any], files: dict[str, bytes],
           manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The run's plots as the dashboard draws them, with what they need from its recorded inputs
    (a fit's priors, a PK study's observations, a grid's coordinate names): deterministic SVG."""
    from ..plots import plots_for_result
    from ..plots.inputs import plot_context

    def read(role: str) -> bytes | None:
        entry = next((e for e in manifest["inputs"] if e.get("role") == role), None)
        return files.get(f"inputs/{role}/{entry['name']}") if entry is not None else None

    return [{"name": p.name, "title": p.title, "svg": p.svg.decode("utf-8")}
            for p in plots_for_result(task, result, **plot_context(task, read))]


def _manifestation(record: dict[str, Any]) -> dict[str, Any]:
    """21 CFR 11.50: printed name, date and time, meaning (and the reason), with what was signed."""
    p = record["payload"]
    return {"id": record["id"], "printed_name": p["signer"]["printed_name"], "username": p["signer"]["username"],
            "signed_at": p["signed_at"], "meaning": p["meaning"], "decision": p["decision"], "reason": p["reason"],
            "manifest_digest": p["manifest_digest"], "key_id": record["key_id"]}


def _verification(files: dict[str, bytes]) -> list[dict[str, Any]]:
    """The offline verifier run on the export as embedded: its findings, or the failure it names."""
    with tempfile.TemporaryDirectory(prefix="nsp-certificate-") as tmp:
        root = Path(tmp)
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        try:
            r = verify_run_folder(root)
        except VerificationError as exc:
            return [{"check": "run export", "ok": False, "detail": exc.message}]
    return [
        {"check": "artifacts", "ok": True, "detail": f"{r.files} files match SHA256SUMS (inputs, outputs, manifest)"},
        {"check": "DSSE attestation", "ok": True, "detail": f"in-toto statement signed by run key {r.run_key_id}"},
        {"check": "audit inclusion", "ok": True,
         "detail": f"{r.events} audit events of the run included in the signed checkpoint at tree size "
                   f"{r.checkpoint_size}"},
        {"check": "e-signatures", "ok": True,
         "detail": f"{len(r.signatures)} signature(s), each bound to its sealed run.signed event and the signer's "
                   "registered key" if r.signatures else "no electronic signatures"},
    ]

