"""The dashboard's reports forms (web/reports.py) with the web test client: generate a run
certificate, an audit-trail report and a review, sign one with re-authentication; CSRF required;
a viewer sees no generate controls and is refused; bad inputs give a one-line error page."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from nextstat_pro.compliance.service import list_reports
from nextstat_pro.instance import Instance
from nextstat_pro.verify.report_pdf import read_attachments, verify_report_pdf

from .conftest import PASSWORD
from .identity_helpers import add_user
from .test_reports import fit


@contextmanager
def client_for(inst: Instance) -> Iterator[TestClient]:
    """The API with the dashboard mounted, as ``serve`` composes them (no background threads)."""
    from nextstat_pro.server.app import create_app
    from nextstat_pro.web import mount

    with TestClient(create_app(inst, background=(), mounts=(mount,))) as client:
        yield client


def sign_in(c: TestClient, username: str) -> str:
    """A cookie session; returns the page's CSRF token."""
    r = c.post("/login", data={"username": username, "password": PASSWORD, "next": "/admin"})
    assert r.status_code == 200, r.text  # followed to /admin
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', r.text)
    assert found is not None
    return found.group(1)


def error_of(r: object) -> str:
    from httpx import Response

    assert isinstance(r, Response)
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', r.text)
    assert found is not None, r.text[:500]
    return found.group(1)


def test_generate_and_sign_reports_in_the_dashboard(sqlite_instance: Instance, tmp_path: Path) -> None:
    inst = sqlite_instance
    add_user(inst, "vera", "viewer", PASSWORD)
    run_id = fit(inst)
    reports = lambda: list_reports(inst, inst.context(), "default")  # noqa: E731
    with client_for(inst) as c:
        csrf = sign_in(c, "admin")
        page = c.get("/admin").text
        for needle in ("Generate run certificate", "Generate audit-trail report", "Generate audit-trail review",
                       'action="/admin/reports/certificate"'):
            assert needle in page, needle
        # No CSRF token: refused, nothing generated.
        refused = c.post("/admin/reports/certificate", data={"run_id": run_id}, follow_redirects=False)
        assert refused.status_code == 403 and reports() == []
        r = c.post("/admin/reports/certificate", data={"run_id": run_id, "csrf_token": csrf},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/admin#h-reports"
        r = c.post("/admin/reports/audit-trail", data={"project": "default", "until": "2100-01-01",
                                                        "csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303, r.text
        r = c.post("/admin/reports/audit-review", data={"project": "", "since": "2000-01-01", "until": "2100-01-01",
                                                         "csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303, r.text
        # The whole log's review is recorded in the default project.
        assert {x.kind for x in reports()} == {"run-certificate", "audit-trail", "audit-review"}
        # Bad inputs: a one-line error page with the service's message.
        bad = c.post("/admin/reports/audit-review", data={"since": "2030-01-02", "until": "2030-01-01",
                                                           "csrf_token": csrf})
        assert bad.status_code == 400 and "the review period is empty" in error_of(bad)
        missing = c.post("/admin/reports/certificate", data={"run_id": "0192-no-such-run", "csrf_token": csrf})
        assert missing.status_code == 404 and error_of(missing)
        listed = c.get("/admin").text
        trail = next(x for x in reports() if x.kind == "audit-trail")
        assert f'/api/v1/reports/{trail.report_id}/pdf' in listed and "No report yet" not in listed
    with client_for(inst) as c:
        csrf = sign_in(c, "vera")
        page = c.get("/admin").text
        assert "Generate" not in page and 'action="/admin/reports/certificate"' not in page
        assert f'action="/admin/reports/{trail.report_id}/sign"' in page  # a viewer may sign (report.sign)
        before = len(reports())
        for path, data in (("certificate", {"run_id": run_id}), ("audit-trail", {"until": "2100-01-01"})):
            denied = c.post(f"/admin/reports/{path}", data={**data, "csrf_token": csrf})
            assert denied.status_code == 403 and error_of(denied), path
        assert len(reports()) == before
        form = {"meaning": "review", "reason": "trail <b>checked</b>", "username": "vera", "csrf_token": csrf}
        wrong = c.post(f"/admin/reports/{trail.report_id}/sign", data={**form, "password": "not-her-password-1"})
        assert wrong.status_code == 401 and error_of(wrong)
        r = c.post(f"/admin/reports/{trail.report_id}/sign", data={**form, "password": PASSWORD},
                   follow_redirects=False)
        assert r.status_code == 303, r.text
    rendition = next(x for x in reports() if x.parent_id == trail.report_id)
    assert rendition.approval_state != "draft"
    # The signed rendition re-appends the root's events file (streamed from the store) and verifies.
    pdf = tmp_path / "signed.pdf"
    pdf.write_bytes(inst.store.get(rendition.pdf_digest))
    v = verify_report_pdf(pdf)
    assert [s["username"] for s in v.signatures] == ["vera"]
    root_events = read_attachments(inst.store.get(trail.pdf_digest))["audit/events.jsonl.gz"]
    assert read_attachments(pdf.read_bytes())["audit/events.jsonl.gz"] == root_events
    assert gzip.decompress(root_events).count(b"\n") > 3
