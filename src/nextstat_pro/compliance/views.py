"""What the report operations return: the documents of ``report templates|run-certificate|audit-trail|
audit-review|validation-pack|list|show|sign``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ..viewbase import VIEW_CONFIG

_VIEW = VIEW_CONFIG


class TemplateRow(BaseModel):
    """One version of a report template in the registry (kind ``template``)."""

    model_config = _VIEW

    name: str
    version: str | None = Field(description="The semantic version (the template manifest's ``version``).")
    kind: str = Field(description="The report kind it renders.")
    description: str
    digest: str = Field(description="The sha256 of the packed template: what a report records.")
    builtin: bool = Field(description="Whether it is the template shipped with this release.")
    created_at: datetime


class ReportRow(BaseModel):
    """A recorded report: its identity (the record digest), its files by digest, who made it."""

    model_config = _VIEW

    report_id: str
    project: str
    kind: str
    title: str
    template: str = Field(description="``name@version`` of the template that rendered it.")
    template_digest: str
    record_digest: str = Field(description="The sha256 of ``report.json``: what e-signatures on the report sign.")
    pdf_digest: str
    html_digest: str
    data_digest: str
    parent_id: str | None = Field(description="The report this one re-renders with its signatures, if any.")
    created_at: datetime
    created_by: str
    approval_state: str = Field(description="draft, in review, approved or rejected, from its e-signatures.")


class ReportWritten(ReportRow):
    """A report generated (or re-rendered) and written as ``DIR/<name>.pdf`` and ``.html``."""

    pdf_path: str | None
    html_path: str | None


class ReportSigned(BaseModel):
    """An electronic signature on a report and the signed rendition it produced."""

    model_config = _VIEW

    signature_id: str
    report_id: str = Field(description="The report signed.")
    meaning: str
    decision: str
    approval_state: str
    rendition: ReportWritten = Field(description="The new report showing the signature's manifestation.")


VIEWS: tuple[type[BaseModel], ...] = (TemplateRow, ReportRow, ReportWritten, ReportSigned)
