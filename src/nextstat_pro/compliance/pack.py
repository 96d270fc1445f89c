"""The validation-pack report: the IQ/OQ/PQ checks and traceability matrix that
``compliance.validation.build_validation_pack`` produces (its own package), rendered with the
``validation-pack`` template, recorded, and signed on its summary page by QA (``report sign
REPORT --meaning approval``: the signed rendition shows the manifestation)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..access.context import RequestContext
from ..canonical import canonical_json, digest_of
from ..ids import new_id
from ..projects.service import authorized_project, check_allowed
from .registry import template_for
from .render import build, record_report
from .views import ReportWritten

if TYPE_CHECKING:
    from ..instance import Instance
    from .validation.pack import PackOptions


def validation_pack(instance: Instance, ctx: RequestContext, project_name: str, pq: Path | None = None,
                    out: Path | None = None, template_ref: str | None = None,
                    options: PackOptions | None = None) -> ReportWritten:
    """Qualify this installation (IQ, OQ, and PQ with a workload file), then render and record the
    pack. ``options``: how thorough the qualification is (``PackOptions``; tests use small ones)."""
    from .service import written
    from .validation import build_validation_pack  # the pack's content (IQ/OQ/PQ, matrix)

    check_allowed(instance, ctx, project_name, "report.create")  # before the minutes of qualification
    pack = build_validation_pack(instance, ctx, pq, options)
    data: dict[str, Any] = {**pack.model_dump(mode="json"), "report_signatures": []}
    with instance.db.transaction() as session:
        project = authorized_project(session, ctx, project_name, "report.create")
        template, version = template_for(instance, session, ctx, project, "validation-pack", template_ref)
        inputs: list[dict[str, Any]] = [
            {"kind": "qualification", "data_digest": digest_of(canonical_json(data))},
            {"kind": "template", "ref": f"{template.name}@{template.version}", "digest": template.digest}]
        workload = pack.pq.workload
        if workload is not None:
            inputs.append({"kind": "pq-workload", "file": workload.file, "digest": workload.digest})
        built = build(report_id=new_id(), kind="validation-pack", project=project.name,
                      title=f"Validation pack {pack.summary.product}", template=template, data=data, inputs=inputs,
                      evidence={}, created=pack.summary.finished_at, keys=instance.run_keys())
        row = record_report(instance, session, ctx, project, built, version,
                            {"pq": str(pq) if pq else None, "passed": pack.summary.passed})
        return written(row, project.name, "draft", built, out, "validation-pack")
