"""``nextstat-pro report``: run certificates, audit-trail reports and reviews, validation packs.

Every report command writes ``DIR/<report>.pdf`` (PDF/A-3b, evidence attached) and ``.html`` and
records the report (``report list|show|download|sign``); ``nextstat-pro verify REPORT.pdf`` checks
one offline. Templates: ``report templates`` (list), ``report templates push FOLDER``.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..compliance import service
from ..compliance.views import ReportRow, ReportWritten
from .common import JsonOption, ProjectOption, console, print_model, state
from .identity import secret

report_app = typer.Typer(help="Reports: run certificates, audit trails and reviews, validation packs.",
                         no_args_is_help=True)
templates_app = typer.Typer(help="Report templates (registry kind `template`): list, push a new version.")
report_app.add_typer(templates_app, name="templates")

OutOption = typer.Option(..., "--out", help="Folder to write <report>.pdf and <report>.html into.")
TemplateOption = typer.Option(None, "--template", help="Template REF (NAME@VERSION, alias, digest); default: latest.")


def _done(w: ReportWritten, as_json: bool) -> None:
    if as_json:
        print_model(w)
        return
    console.print(f"[green]report[/] {w.report_id} ({w.kind}) rendered with {escape(w.template)}")
    console.print(f"  PDF  {escape(w.pdf_path or '')}  {w.pdf_digest}")
    console.print(f"  HTML {escape(w.html_path or '')}  {w.html_digest}")
    console.print(f"  record {w.record_digest}; check it offline: nextstat-pro verify {escape(w.pdf_path or '')}")


@templates_app.callback(invoke_without_command=True)
def templates(ctx: typer.Context, project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """List the report templates of a project (the built-ins are registered on first use)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..compliance.registry import list_templates

    st = state(ctx)
    rows = list_templates(st.instance(), st.context(), st.project(project))
    if as_json:
        print_model(rows)
        return
    table = Table("name", "version", "kind", "built-in", "digest", "description")
    for r in rows:
        table.add_row(escape(r.name), escape(r.version or "–"), r.kind, "yes" if r.builtin else "no", r.digest[:23],
                      escape(r.description))
    console.print(table)


@templates_app.command("push")
def templates_push(ctx: typer.Context, folder: Path, project: str | None = ProjectOption,
                   as_json: bool = JsonOption) -> None:
    """Push a template folder (manifest.json, Jinja2 HTML, CSS, assets) as a new immutable version."""
    from ..compliance.registry import push_template

    st = state(ctx)
    pushed = push_template(st.instance(), st.context(), st.project(project), folder)
    if as_json:
        print_model(pushed)
    else:
        console.print(f"{'pushed' if pushed.created else 'exists'} template {escape(pushed.label)} {pushed.digest}")


@report_app.command("run-certificate")
def run_certificate(ctx: typer.Context, run: str, out: Path = OutOption, template: str | None = TemplateOption,
                    no_plots: bool = typer.Option(False, "--no-plots", help="Leave the result plots out."),
                    as_json: bool = JsonOption) -> None:
    """The certificate of a finished run: inputs, engine, parameters, results, signatures, verification."""
    from ..compliance.certificate import run_certificate as make

    st = state(ctx)
    _done(make(st.instance(), st.context(), run, out, template, plots=not no_plots), as_json)


@report_app.command("audit-trail")
def audit_trail(ctx: typer.Context, out: Path = OutOption,
                project: str | None = typer.Option(None, "--project", "-p",
                                                   help="One project's events (default: the whole log; auditors)."),
                since: str | None = typer.Option(None, "--from", help="Start (date or RFC 3339, UTC), inclusive."),
                until: str | None = typer.Option(None, "--to", help="End (date or RFC 3339, UTC), exclusive."),
                target: str | None = typer.Option(None, "--target", help="One target, TYPE:ID."),
                template: str | None = TemplateOption, as_json: bool = JsonOption) -> None:
    """An audit-trail report of any period, with the checkpoint proving it complete."""
    from ..compliance.audit_reports import audit_trail as make

    st = state(ctx)
    _done(make(st.instance(), st.context(), project, since, until, target, out, template), as_json)


@report_app.command("audit-review")
def audit_review(ctx: typer.Context, until: str = typer.Option(..., "--to", help="End of the period (exclusive)."),
                 out: Path = OutOption,
                 since: str | None = typer.Option(None, "--from",
                                                  help="Start (default: where the last signed review ended)."),
                 project: str | None = typer.Option(None, "--project", "-p",
                                                    help="One project's events (default: the whole log)."),
                 findings: Path | None = typer.Option(None, "--findings",
                                                      help="JSON list of {severity, text, seq}."),
                 template: str | None = TemplateOption, as_json: bool = JsonOption) -> None:
    """An audit-trail review: events grouped by risk, findings, gaps; sign it with `report sign --meaning review`."""
    from ..compliance.audit_reports import audit_review as make
    from ..compliance.audit_reports import parse_findings

    st = state(ctx)
    _done(make(st.instance(), st.context(), since, until, project, parse_findings(findings), out, template), as_json)


@report_app.command("validation-pack")
def validation_pack(ctx: typer.Context, out: Path = OutOption,
                    pq: Path | None = typer.Option(None, "--pq", help="PQ workload YAML (your own runs)."),
                    project: str | None = ProjectOption, template: str | None = TemplateOption,
                    as_json: bool = JsonOption) -> None:
    """A GAMP 5 style validation pack: IQ, OQ, PQ and the traceability matrix, for QA to sign."""
    from ..compliance.pack import validation_pack as make

    st = state(ctx)
    _done(make(st.instance(), st.context(), st.project(project), pq, out, template), as_json)


@report_app.command("list")
def list_reports(ctx: typer.Context, project: str | None = ProjectOption,
                 kind: str | None = typer.Option(None, "--kind"), as_json: bool = JsonOption) -> None:
    """The recorded reports of a project, newest first."""
    st = state(ctx)
    rows = service.list_reports(st.instance(), st.context(), st.project(project), kind)
    if as_json:
        print_model(rows)
        return
    _table(rows)


def _table(rows: list[ReportRow]) -> None:
    table = Table("report", "kind", "title", "template", "state", "created", "by")
    for r in rows:
        table.add_row(r.report_id, r.kind, escape(r.title), escape(r.template), r.approval_state,
                      f"{r.created_at:%Y-%m-%d %H:%M:%S}Z", escape(r.created_by))
    console.print(table)


@report_app.command("show")
def show(ctx: typer.Context, report: str, as_json: bool = JsonOption) -> None:
    """One recorded report."""
    st = state(ctx)
    row = service.show_report(st.instance(), st.context(), report)
    if as_json:
        print_model(row)
        return
    for key, value in row.model_dump().items():
        console.print(f"{key:>16}  {escape(str(value))}")


@report_app.command("download")
def download(ctx: typer.Context, report: str, out: Path = OutOption, as_json: bool = JsonOption) -> None:
    """Write a recorded report's PDF and HTML (digest-checked) into a folder."""
    st = state(ctx)
    _done(service.write_report(st.instance(), st.context(), report, out), as_json)


@report_app.command("sign")
def sign(ctx: typer.Context, report: str,
         meaning: str = typer.Option(..., "--meaning", help="authorship, review, approval or responsibility."),
         reason: str = typer.Option(..., "--reason"),
         reject: bool = typer.Option(False, "--reject", help="Sign a rejection instead of an approval."),
         username: str | None = typer.Option(None, "--username", "-u",
                                             help="Needed for the first signing of a session (21 CFR 11.200)."),
         out: Path | None = typer.Option(None, "--out", help="Write the signed rendition here."),
         as_json: bool = JsonOption) -> None:
    """Electronically sign a report; a signed rendition showing the signature is recorded."""
    st = state(ctx)
    actor = st.context()
    username = username or os.environ.get("NSP_SIGN_USER")
    result = service.sign_report(st.instance(), actor, report, meaning, reason, secret("Password to sign"), username,
                                 "reject" if reject else "approve", out)
    if as_json:
        print_model(result)
        return
    console.print(f"[green]signed[/] report {result.report_id}: meaning {result.meaning} ({result.decision}); "
                  f"report is now [bold]{result.approval_state}[/]")
    _done(result.rendition, False)
