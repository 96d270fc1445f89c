"""``build_validation_pack``: the operation that qualifies an installation and returns the pack's data.

Order: authorize (``report.validation_pack``, an instance admin: it writes probes into the store and
the witness and records the PQ's runs), then IQ on the instance, OQ on shipped inputs and on a scratch
instance in a temporary folder (deleted afterwards), PQ on the instance (runs made by the caller),
and the traceability matrix from the checks' results. Nothing here renders or stores the report:
the report pipeline (``compliance``) renders this data with the ``validation-pack`` template, stores
and signs it. A check that fails is a result, not an error; only a workload file that cannot be read
or is malformed raises (``InputError``, before anything runs).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ...access.context import RequestContext
from ...access.rbac import authorize
from ...db.types import rfc3339
from ...engine import engine_info
from ...engine.tasks import platform_info
from ...projects.service import check_allowed
from .iq import installation_qualification
from .models import SCHEMA, Check, PackSummary, ValidationPackData, Workload, section
from .oq_controls import control_checks
from .oq_tamper import tamper_checks
from .pins import shipped_pins
from .pq import load_workload, performance_qualification
from .reference import reference_checks
from .scratch import open_scratch
from .traceability import matrix

if TYPE_CHECKING:
    from ...instance import Instance

OPERATION = "report.validation_pack"


@dataclass(frozen=True)
class PackOptions:
    """How much to check. The defaults are the full pack; the suite's variant hashes the product's
    own distributions only and cross-checks the small workspace only (the example's takes ~35 s)."""

    file_hashes: Literal["all", "product"] = "all"
    crosscheck: Literal["all", "small"] = "all"
    scratch_dir: Path | None = None  # where the scratch instance lives (default: a temporary folder)


def build_validation_pack(instance: Instance, ctx: RequestContext, pq: Path | None,
                          options: PackOptions | None = None) -> ValidationPackData:
    """Qualify this installation: IQ, OQ, PQ (``pq``: the workload YAML, or None for no PQ) and the
    traceability matrix, as data for the ``validation-pack`` report."""
    options = options or PackOptions()
    with instance.db.read() as session:
        authorize(session, ctx, OPERATION)
    if pq is not None:
        # A bad workload, or one the caller may not run, is refused before anything runs or is written.
        workload_doc, _ = load_workload(pq)
        check_allowed(instance, ctx, workload_doc.project, "run.create")
    started_at = datetime.now(UTC)
    probe_at = rfc3339(started_at)
    probe = f"nextstat-pro installation qualification probe {instance.config.instance_id} {probe_at}\n".encode()
    probe_name = f"iq-probe-{probe_at.replace(':', '').replace('.', '-')}.txt"
    iq = installation_qualification(instance, shipped_pins(), probe, probe_name, options.file_hashes)
    oq = reference_checks(options.crosscheck) + _scratch_checks(options.scratch_dir)
    pq_checks: list[Check] = []
    workload: Workload | None = None
    if pq is not None:
        pq_checks, workload = performance_qualification(instance, ctx, pq)
    finished_at = datetime.now(UTC)
    trace = matrix(iq + oq + pq_checks)
    iq_s = section("IQ", "Installation qualification", iq)
    oq_s = section("OQ", "Operational qualification", oq)
    pq_s = section("PQ", "Performance qualification", pq_checks, workload)
    failed = iq_s.failed + oq_s.failed + pq_s.failed
    pq_passed = pq_s.passed if pq is not None else None
    engine = engine_info()
    summary = PackSummary(
        instance_id=instance.config.instance_id, product=f"nextstat-pro {platform_info()['nextstat_pro']}",
        engine=f"{engine['name']} {engine['version']}", started_at=rfc3339(started_at),
        finished_at=rfc3339(finished_at), qualified_by=f"{ctx.actor.name} ({ctx.actor.username or ctx.actor.id})",
        iq_passed=iq_s.passed, oq_passed=oq_s.passed, pq_passed=pq_passed,
        passed=iq_s.passed and oq_s.passed and pq_passed is not False and not trace.not_met,
        checks=len(iq) + len(oq) + len(pq_checks), failed=failed,
        requirements_met=sum(r.status in ("met", "met with procedure") for r in trace.rows),
        requirements_procedure=sum(r.status == "customer procedure" for r in trace.rows),
        requirements_not_met=trace.not_met, requirements_gaps=trace.gaps)
    return ValidationPackData(format=SCHEMA, summary=summary, iq=iq_s, oq=oq_s, pq=pq_s, traceability=trace)


def _scratch_checks(parent: Path | None) -> list[Check]:
    with tempfile.TemporaryDirectory(prefix="nsp-oq-", dir=parent) as tmp:
        root = Path(tmp)
        scratch = open_scratch(root)
        try:
            checks = control_checks(scratch, root) + tamper_checks(scratch)
        finally:
            scratch.close()
    return checks
