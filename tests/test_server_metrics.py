"""``GET /metrics``: Prometheus series for an auditor's token (a scraper's), refused to others."""

from __future__ import annotations

from nextstat_pro.identity.users import create_user
from nextstat_pro.instance import Instance

from .conftest import PASSWORD
from .identity_helpers import add_user
from .server_helpers import assert_problem, client_for, run_fit, token


def test_metrics_for_auditors_only(instance: Instance) -> None:
    create_user(instance, instance.context(), username="scraper", printed_name="Prometheus", password=PASSWORD,
                auditor=True)
    add_user(instance, "vera", "viewer", PASSWORD)
    with client_for(instance) as c:
        run_fit(c, token(c))
        assert_problem(c.get("/metrics"), 401, 10)
        assert_problem(c.get("/metrics", headers=token(c, "vera")), 403, 6)
        r = c.get("/metrics", headers=token(c, "scraper"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        assert 'fits_total{outcome="ok",task="fit"}' in text or 'fits_total{task="fit",outcome="ok"}' in text
        assert 'runs_by_status{status="succeeded"} 1.0' in text
        assert "http_request_duration_seconds_bucket" in text and 'route="/api/v1/projects/{project}/runs"' in text
