"""Reports over HTTP: a run certificate generated, listed, downloaded as PDF/A (verified offline
with `nextstat-pro verify`'s checker), signed with re-authentication; viewers may read, not make."""

from __future__ import annotations

from pathlib import Path

from nextstat_pro.instance import Instance

from .conftest import PASSWORD
from .identity_helpers import add_user
from .server_helpers import assert_problem, client_for, run_fit, sha256, token


def test_a_run_certificate_over_http(sqlite_instance: Instance, tmp_path: Path) -> None:
    from nextstat_pro.verify.report_pdf import verify_report_pdf

    inst = sqlite_instance
    add_user(inst, "vera", "viewer", PASSWORD)
    with client_for(inst) as c:
        h = token(c)
        run_id = run_fit(c, h)["run_id"]
        assert_problem(c.post(f"/api/v1/runs/{run_id}/certificate", headers=token(c, "vera"), json={}), 403, 6)
        r = c.post(f"/api/v1/runs/{run_id}/certificate", headers=h, json={"plots": False})
        assert r.status_code == 201, r.text
        report = r.json()
        listed = c.get("/api/v1/projects/default/reports", headers=token(c, "vera")).json()
        assert [x["report_id"] for x in listed] == [report["report_id"]]
        pdf = c.get(f"/api/v1/reports/{report['report_id']}/pdf", headers=h)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert sha256(pdf.content) == report["pdf_digest"]
        assert "sandbox" in c.get(f"/api/v1/reports/{report['report_id']}/html", headers=h).headers[
            "content-security-policy"]
        (tmp_path / "cert.pdf").write_bytes(pdf.content)
        assert verify_report_pdf(tmp_path / "cert.pdf")
        body = {"meaning": "review", "reason": "certificate checked", "password": PASSWORD, "username": "admin"}
        refused = c.post(f"/api/v1/reports/{report['report_id']}/signatures", headers=h, json=body)
        assert_problem(refused, 409, 5)  # the approval policy: its author does not review it
        body["username"] = "vera"
        signed = c.post(f"/api/v1/reports/{report['report_id']}/signatures", headers=token(c, "vera"), json=body)
        assert signed.status_code == 201, signed.text
        assert signed.json()["rendition"]["parent_id"] == report["report_id"]
        assert_problem(c.get("/api/v1/reports/00000000-nope/pdf", headers=h), 404, 4)
