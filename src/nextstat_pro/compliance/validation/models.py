"""The validation pack's data: IQ, OQ and PQ checks, the traceability matrix and a summary.

A check is the unit of evidence: what was tested, what was expected, what was observed, whether it
passed, and the sha256 of its machine-readable evidence (RFC 8785 canonical JSON of ``evidence``), so a
printed line can be matched with the embedded evidence by machine. The report template
(``compliance/templates/validation-pack/``) renders ``ValidationPackData.model_dump(mode="json")``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ...canonical import json_digest
from ...viewbase import VIEW_CONFIG

Section = Literal["IQ", "OQ", "PQ"]


class Check(BaseModel):
    """One qualification check: what was tested, what was expected, what was observed, pass or fail."""

    model_config = VIEW_CONFIG

    id: str = Field(description="Stable check id, e.g. ``IQ-DIST-PINS`` or ``OQ-TAMPER-EDIT``.")
    section: Section
    what: str = Field(description="What the check tests, in one sentence.")
    expected: str
    observed: str
    passed: bool
    evidence: dict[str, Any] = Field(description="The machine-readable observations behind ``observed``.")
    evidence_digest: str = Field(description="``sha256:`` of the RFC 8785 canonical JSON of ``evidence``.")
    seconds: float = Field(description="How long the check took (wall clock).")


def make_check(id: str, section: Section, what: str, expected: str, observed: str, passed: bool,
               evidence: dict[str, Any], seconds: float) -> Check:
    """A check with its evidence digest computed from the evidence itself."""
    return Check(id=id, section=section, what=what, expected=expected, observed=observed, passed=passed,
                 evidence=evidence, evidence_digest=json_digest(evidence), seconds=round(seconds, 3))


class Workload(BaseModel):
    """The PQ workload file as given: its name, digest, project and description."""

    model_config = VIEW_CONFIG

    file: str
    digest: str = Field(description="``sha256:`` of the workload file's bytes.")
    project: str
    description: str | None
    tasks: int
    runs: int = Field(description="How many runs the workload recorded (tasks times their ``repeat``).")


class QualificationSection(BaseModel):
    """The checks of one qualification stage and whether all passed."""

    model_config = VIEW_CONFIG

    name: Section
    title: str
    checks: list[Check]
    passed: bool
    failed: list[str] = Field(description="Ids of the checks that failed.")
    workload: Workload | None = Field(None, description="The PQ's workload file (PQ only; None: no PQ was run).")


def section(name: Section, title: str, checks: list[Check], workload: Workload | None = None) -> QualificationSection:
    failed = [c.id for c in checks if not c.passed]
    return QualificationSection(name=name, title=title, checks=checks, passed=not failed, failed=failed,
                                workload=workload)


class TraceRow(BaseModel):
    """One requirement of the traceability matrix: who meets it, the tests that show it, this pack's
    checks that are its evidence here, and the verdict."""

    model_config = VIEW_CONFIG

    requirement: str = Field(description="Requirement id from the regulations list, e.g. ``P11-10e``.")
    regulation: str = Field(description="Where the requirement comes from, e.g. ``21 CFR 11.10(e)``.")
    title: str = Field(description="A short name of the requirement (ours; read the regulation for its words).")
    kind: Literal["S", "S+P", "P", "n/a"] = Field(
        description="Who can meet it: software, software and procedure, procedure, or not applicable.")
    tests: list[str] = Field(description="pytest node ids of the product's test suite that show it.")
    evidence: list[str] = Field(description="Ids of this pack's checks that are its evidence on this installation.")
    procedure: str | None = Field(description="What the customer's procedure must add, and why.")
    gap: str | None = Field(description="What the software lacks to meet this software requirement, if anything.")
    status: Literal["met", "met with procedure", "customer procedure", "software gap", "not met", "not applicable"]


class TraceabilityMatrix(BaseModel):
    model_config = VIEW_CONFIG

    sources: list[str] = Field(description="The regulations and guidance the requirement ids come from.")
    rows: list[TraceRow]
    not_met: list[str] = Field(description="Requirements whose evidence checks failed on this installation.")
    gaps: list[str] = Field(description="Software requirements the product does not meet yet (``gap`` says why).")


class PackSummary(BaseModel):
    """The summary page: the verdict per stage and overall, and where and when it was qualified."""

    model_config = VIEW_CONFIG

    instance_id: str
    product: str = Field(description="``nextstat-pro <version>``.")
    engine: str = Field(description="``nextstat <version>``.")
    started_at: str = Field(description="RFC 3339 UTC: when the qualification started (data, not render time).")
    finished_at: str
    qualified_by: str = Field(description="The printed name and username of who ran it.")
    iq_passed: bool
    oq_passed: bool
    pq_passed: bool | None = Field(description="None when no PQ workload was given.")
    passed: bool
    checks: int
    failed: list[str]
    requirements_met: int
    requirements_procedure: int
    requirements_not_met: list[str]
    requirements_gaps: list[str] = Field(description="Software requirements the product does not meet yet.")


class ValidationPackData(BaseModel):
    """Everything a validation pack shows: IQ, OQ, PQ, the traceability matrix and the summary."""

    model_config = VIEW_CONFIG

    format: str = Field(description="The data's format id (``SCHEMA``).")
    summary: PackSummary
    iq: QualificationSection
    oq: QualificationSection
    pq: QualificationSection
    traceability: TraceabilityMatrix


SCHEMA = "https://nextstat.pro/schemas/validation-pack/v1"
