"""Reports (NS-Compliance): generate a run certificate, an audit-trail report or review, a
validation pack; list and show reports; download a report's PDF/A or HTML; sign a report; the
report templates. Generation and signing happen in the services; the routes adapt."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ...compliance.audit_reports import audit_review, audit_trail
from ...compliance.certificate import run_certificate
from ...compliance.pack import validation_pack
from ...compliance.registry import list_templates, push_template
from ...compliance.service import list_reports, show_report, sign_report
from ...compliance.views import ReportRow, ReportSigned, ReportWritten, TemplateRow
from ...hub.views import Pushed
from ..auth import Caller, Inst
from ..uploads import save_checked, spool_folder, unpack_upload
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["reports"])


class Certificate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str | None = Field(default=None, max_length=300, description="A template REF (default: built-in).")
    plots: bool = True


class TrailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(default=None, max_length=100)
    since: str | None = Field(default=None, max_length=40, description="RFC 3339 time or date (inclusive).")
    until: str | None = Field(default=None, max_length=40)
    target: str | None = Field(default=None, max_length=300, description="TYPE:ID of one record.")
    template: str | None = Field(default=None, max_length=300)


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: str | None = Field(default=None, max_length=40, description="Default: where the last signed review ended.")
    until: str = Field(max_length=40)
    project: str | None = Field(default=None, max_length=100)
    findings: list[dict[str, Any]] | None = None
    template: str | None = Field(default=None, max_length=300)


class ReportSignature(BaseModel):
    """An electronic signature on a report (21 CFR 11.200: the signer re-authenticates here)."""

    model_config = ConfigDict(extra="forbid")
    meaning: str = Field(max_length=40)
    reason: str = Field(min_length=1, max_length=2000)
    password: str = Field(min_length=1, max_length=1024, description="Password, or an SSO user's signature passphrase.")
    username: str | None = Field(default=None, max_length=200)
    decision: Literal["approve", "reject"] = "approve"


@router.post("/runs/{run_id}/certificate", response_model=ReportWritten, status_code=201,
             summary="Generate the run's certificate (PDF/A-3b and HTML, recorded and signed by the instance)")
def certificate(inst: Inst, ctx: Caller, run_id: str, body: Certificate) -> ReportWritten:
    return run_certificate(inst, ctx, run_id, template_ref=body.template, plots=body.plots)


@router.post("/audit/reports/trail", response_model=ReportWritten, status_code=201,
             summary="An audit-trail report of a period, a project or a record (streamed, no period cap)")
def trail(inst: Inst, ctx: Caller, body: TrailRequest) -> ReportWritten:
    return audit_trail(inst, ctx, body.project, body.since, body.until, body.target, template_ref=body.template)


@router.post("/audit/reports/review", response_model=ReportWritten, status_code=201,
             summary="An audit-trail review of a period, grouped by risk, for a reviewer to sign")
def review(inst: Inst, ctx: Caller, body: ReviewRequest) -> ReportWritten:
    return audit_review(inst, ctx, body.since, body.until, body.project, body.findings, template_ref=body.template)


@router.post("/projects/{project}/reports/validation-pack", response_model=ReportWritten, status_code=201,
             summary="The validation pack (IQ, OQ, the PQ of an uploaded workload, traceability)")
def pack(request: Request, inst: Inst, ctx: Caller, project: str,
         pq: Annotated[UploadFile | None, File(description="A PQ workload (YAML).")] = None,
         pq_digest: Annotated[str | None, Form(max_length=71)] = None,
         template: Annotated[str | None, Form(max_length=300)] = None) -> ReportWritten:
    with spool_folder() as folder:
        path = save_checked(inst, ctx, request, pq, folder, "pq", pq_digest, ("project", project)) if pq else None
        return validation_pack(inst, ctx, project, path, template_ref=template)


@router.get("/projects/{project}/reports", response_model=list[ReportRow], summary="A project's reports")
def reports(inst: Inst, ctx: Caller, project: str, kind: Annotated[str | None, Query(max_length=40)] = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[ReportRow]:
    return list_reports(inst, ctx, project, kind, limit)


@router.get("/reports/{report_id}", response_model=ReportRow, summary="One report")
def report(inst: Inst, ctx: Caller, report_id: str) -> ReportRow:
    return show_report(inst, ctx, report_id)


@router.get("/reports/{report_id}/{fmt}", summary="Download a report as PDF/A-3b or HTML",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/pdf": {}, "text/html": {}}}})
def download(inst: Inst, ctx: Caller, report_id: str, fmt: Literal["pdf", "html"]) -> StreamingResponse:
    row = show_report(inst, ctx, report_id)
    digest = row.pdf_digest if fmt == "pdf" else row.html_digest
    headers = {"ETag": f'"{digest}"', "Content-Length": str(inst.store.size(digest)),
               "Content-Disposition": f'attachment; filename="{row.kind}-{row.report_id}.{fmt}"',
               # A report's HTML is a document, not one of our pages: it runs nothing.
               "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"}
    media = "application/pdf" if fmt == "pdf" else "text/html; charset=utf-8"
    return StreamingResponse(inst.store.read_range(digest), media_type=media, headers=headers)


@router.post("/reports/{report_id}/signatures", response_model=ReportSigned, status_code=201,
             summary="Sign a report (a new rendition shows the signature)")
def sign(inst: Inst, ctx: Caller, report_id: str, body: ReportSignature) -> ReportSigned:
    return sign_report(inst, ctx, report_id, body.meaning, body.reason, body.password, body.username, body.decision)


@router.get("/projects/{project}/report-templates", response_model=list[TemplateRow],
            summary="Report templates (built-in and pushed), by kind and version")
def templates(inst: Inst, ctx: Caller, project: str) -> list[TemplateRow]:
    return list_templates(inst, ctx, project)


@router.post("/projects/{project}/report-templates", response_model=Pushed, status_code=201,
             summary="Push a template version (a zip of the template folder)")
def push(request: Request, inst: Inst, ctx: Caller, project: str,
         folder_zip: Annotated[UploadFile, File(description="The template folder as a zip.")],
         digest: Annotated[str | None, Form(max_length=71)] = None) -> Pushed:
    with spool_folder() as folder:
        root = unpack_upload(inst, ctx, request, folder_zip, folder, "template", digest, ("project", project))
        entries = [p for p in root.iterdir()]
        folder_path = entries[0] if len(entries) == 1 and entries[0].is_dir() else root
        return push_template(inst, ctx, project, folder_path)
