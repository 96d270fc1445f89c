"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a real uvicorn
server over an instance with runs, registry versions, users of each role and hostile text.

Every page is screenshotted (1280 px and phone width) under the test's tmp dir and checked by
axe-core (no serious or critical violation); every page load is watched for console errors, which
is where a CSP violation (an inline script or style) would show."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Page, expect

from nextstat_pro.access.context import RequestContext
from nextstat_pro.db.models import Run
from nextstat_pro.engine import InputFile
from nextstat_pro.examples import histfactory_workspace, pk_dataset, signal_patchset
from nextstat_pro.hub import service as hub
from nextstat_pro.instance import Instance, init_instance
from nextstat_pro.projects.service import get_project
from nextstat_pro.runs import RunInputs, RunRequest, run_task
from nextstat_pro.runs.records import create_run, transition
from nextstat_pro.scale import SubmitRequest, coordinate, submit
from nextstat_pro.server.app import create_app
from nextstat_pro.web import mount

from .conftest import PASSWORD, new_pg_database, shared
from .identity_helpers import add_user, session_for

AXE = Path(__import__("nextstat_pro.web", fromlist=["x"]).__file__).parent / "testing" / "axe.min.js"
HOSTILE = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=1</script>"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium"}


@pytest.fixture(scope="session")
def base_url() -> None:
    """pytest-base-url's own fixture is an instance method, which pytest 9 warns about (an error
    here); the tests use absolute addresses."""
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    url: str
    inst: Instance
    fit: str
    limit: str
    queued: str
    toys: str
    job: str
    held: str
    scan: str
    ranking: str
    pk: str
    grid: str
    admin_ctx: RequestContext

    def at(self, path: str) -> str:
        return self.url + path


def _seed(inst: Instance, tmp: Path, jobs: bool = True) -> dict[str, str]:
    admin = inst.context()
    add_user(inst, "erin", "editor", PASSWORD)
    add_user(inst, "victor", "viewer", PASSWORD)
    from nextstat_pro.identity.users import create_user, grant_role

    # A printed name that is markup: it must show as text wherever it appears.
    create_user(inst, admin, username="mallory", printed_name=f"Mallory {SCRIPT}", password=PASSWORD)
    grant_role(inst, admin, "mallory", "default", "editor", "test")
    workspace = json.loads(shared("workspaces", "simple_workspace.json").read_text())
    workspace["channels"][0]["samples"][1]["modifiers"][0]["name"] = HOSTILE  # a parameter name of markup
    hostile = tmp / "hostile.json"
    hostile.write_text(json.dumps(workspace))
    simple = shared("workspaces", "simple_workspace.json")
    mallory = session_for(inst, "mallory", PASSWORD)
    fit = run_task(inst, mallory, RunRequest(task="fit", project="default", params={"covariance": "true"}, seed=None,
                                             given=RunInputs(workspace=hostile)))
    # With its CLs curve recorded: the limit gets the CLs-vs-POI plot beside the Brazil band.
    limit = run_task(inst, admin, RunRequest(task="upper-limit", project="default", params={"cls_points": "21"},
                                             seed=None, given=RunInputs(workspace=simple)))
    assert fit.status == limit.status == "succeeded", (fit.error, limit.error)
    others = {task: run_task(inst, admin, RunRequest(task=task, project="default", params={}, seed=None,
                                                     given=RunInputs(workspace=simple))).run_id
              for task in (("scan", "ranking") if jobs else ())}
    hub.push_file(inst, admin, "default", "model", "simple", simple, semver="1.0.0")
    changed = json.loads(simple.read_text())
    changed["observations"][0]["data"] = [54.0, 66.0]
    v2 = tmp / "simple-v2.json"
    v2.write_text(json.dumps(changed))
    hub.push_file(inst, admin, "default", "model", "simple", v2, semver="1.1.0")
    with inst.db.transaction() as s:  # a run that stays queued until a test moves it
        queued = create_run(s, admin, get_project(s, "default"), "fit", {}, None, []).run_id
    if not jobs:  # the PostgreSQL variant looks at the runs list only: two runs and a queued one
        return {"fit": fit.run_id, "limit": limit.run_id, "queued": queued, "toys": "", "job": "", "held": "",
                "scan": "", "ranking": "", "pk": "", "grid": ""}
    job = SubmitRequest("toys", "default", [InputFile.read("workspace", simple)], params={"n_toys": "24"}, seed=7,
                        shards=2, workers=2)
    toys = submit(inst, admin, job)
    assert coordinate(inst, admin, toys) == "succeeded"
    waiting = submit(inst, admin, job)  # submitted, never coordinated: a job to cancel
    held = submit(inst, admin, job)  # and one nobody cancels (what a viewer looks at)
    # A PK study (concentration-time with the fit) and a 2-D signal grid (the exclusion contour).
    study = tmp / "pk.csv"
    study.write_text(pk_dataset())
    pk = run_task(inst, admin, RunRequest(task="pk-nlme", project="default", params={}, seed=None,
                                          given=RunInputs(dataset=str(study))))
    assert pk.status == "succeeded", pk.error
    ws = histfactory_workspace()
    grid = submit(inst, admin, SubmitRequest(
        "grid", "default", [InputFile.from_bytes("workspace", "ws.json", json.dumps(ws).encode()),
                            InputFile.from_bytes("patchset", "ps.json", json.dumps(signal_patchset(ws, 6)).encode())],
        shards=2, workers=2))
    assert coordinate(inst, admin, grid) == "succeeded"
    return {"fit": fit.run_id, "limit": limit.run_id, "queued": queued, "toys": toys, "job": waiting, "held": held,
            "pk": pk.run_id, "grid": grid, **others}


def _serve(inst: Instance, port: int | None = None) -> Iterator[str]:
    port = port or _free_port()
    app = create_app(inst, background=(), mounts=(mount,))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2, lifespan="on"))
    thread = threading.Thread(target=server.run, name="web-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _site(inst: Instance, tmp: Path, jobs: bool = True) -> Iterator[Site]:
    from nextstat_pro.config_service import set_config

    # Every test signs in again from 127.0.0.1: more than the default 10 sign-ins a minute.
    set_config(inst, inst.context(), "server.login_attempts_per_minute", "60", reason="browser tests")
    ids = _seed(inst, tmp, jobs)
    for url in _serve(inst):
        yield Site(url=url, inst=inst, admin_ctx=inst.context(), **ids)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("web")
    inst = init_instance(tmp / "home", admin="admin", password=PASSWORD, printed_name="Ada Admin")
    try:
        yield from _site(inst, tmp)
    finally:
        inst.close()


# --- helpers -----------------------------------------------------------------------------------

class Watch:
    """Console errors and failed requests of a page: a CSP violation is a console error."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def sign_in(page: Page, site: Site, username: str = "admin", then: str = "/") -> Watch:
    watch = Watch(page)
    page.set_viewport_size(DESKTOP)
    page.goto(site.at(f"/login?next={then}"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(site.url + then) + ".*"))
    return watch


_AXE_SOURCE: str | None = None


def check_page(page: Page, shots: Path, name: str) -> None:
    """Screenshots at desktop and phone width, and axe-core's verdict: no serious or critical
    violation. axe is evaluated through the DevTools protocol (not a script tag), so the page's
    CSP stays in force while it runs."""
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        _AXE_SOURCE = AXE.read_text()
    shots.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=shots / f"{name}-1280.png", full_page=True)
    page.evaluate(_AXE_SOURCE + "\n;0")
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                           .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '));
    }""")
    assert found == [], f"{name}: {found}"
    page.set_viewport_size(PHONE)
    page.screenshot(path=shots / f"{name}-phone.png", full_page=True)
    # At phone width nothing but the tables' own scroll boxes may overflow the viewport.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    wide = [] if overflow <= 1 else page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.parentElement.closest('.scroll'))
        .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + (e.textContent || '').slice(0, 40))""")
    assert overflow <= 1, f"{name}: the page is {overflow} px wider than a phone: {wide}"
    page.set_viewport_size(DESKTOP)


def no_xss(page: Page) -> None:
    assert page.evaluate("window.__xss === undefined"), "markup from data ran as script"


# --- tests -------------------------------------------------------------------------------------

def test_sign_in_filter_runs_and_open_a_run_with_plots(page: Page, site: Site, tmp_path: Path) -> None:
    page.goto(site.at("/runs"))
    expect(page).to_have_url(re.compile(r"/login\?next=/runs"))
    check_page(page, tmp_path, "login")
    watch = sign_in(page, site, then="/runs")
    table = page.locator("#runs")
    expect(table.locator(f'tr[data-run-id="{site.fit}"]')).to_be_visible()
    expect(table.locator(f'tr[data-run-id="{site.limit}"]')).to_be_visible()
    check_page(page, tmp_path, "runs")
    # Filters live in the URL: shareable, and the back button returns to the unfiltered list.
    page.get_by_label("Task").select_option("upper-limit")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"task=upper-limit"))
    expect(table.locator(f'tr[data-run-id="{site.limit}"]')).to_be_visible()
    expect(table.locator(f'tr[data-run-id="{site.fit}"]')).to_have_count(0)
    page.go_back()
    expect(table.locator(f'tr[data-run-id="{site.fit}"]')).to_be_visible()
    page.goto(site.at("/runs?author=mallory"))
    expect(table.locator("tbody tr[data-run-id]")).to_have_count(1)
    expect(table.locator(f'tr[data-run-id="{site.fit}"] td').nth(4)).to_have_text("mallory")
    # One run: its parameters (a name of markup, shown as text) and its plots.
    page.get_by_role("link", name=site.fit[:13]).click()
    expect(page.get_by_role("heading", name=re.compile("Run"))).to_contain_text(site.fit)
    expect(page.locator("#results")).to_contain_text(HOSTILE)
    plots = page.locator("#plots figure.plot")
    expect(plots).to_have_count(2, timeout=20_000)
    for kind in ("pulls", "correlation"):
        img = page.locator(f'figure[data-plot="{kind}"] img')
        expect(img).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    no_xss(page)
    check_page(page, tmp_path, "run-fit")
    page.goto(site.at(f"/runs/{site.limit}"))
    expect(page.locator('figure[data-plot="brazil"] img')).to_be_visible(timeout=20_000)
    expect(page.locator("#results")).to_contain_text("median")
    assert watch.errors == []


def test_each_plot_kind_renders(page: Page, site: Site) -> None:
    watch = sign_in(page, site, then="/runs")
    expected = {site.fit: ("pulls", "correlation"), site.limit: ("brazil", "cls"),
                site.scan: ("profile-likelihood",), site.ranking: ("ranking", "pulls"), site.toys: ("toys",),
                site.pk: ("pk-concentration", "correlation"), site.grid: ("exclusion", "brazil")}
    for run_id, kinds in expected.items():
        page.goto(site.at(f"/runs/{run_id}"))
        expect(page.locator("#plots figure.plot")).to_have_count(len(kinds), timeout=20_000)
        for kind in kinds:
            img = page.locator(f'figure[data-plot="{kind}"] img')
            expect(img).to_have_attribute("alt", re.compile(".+"))
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    assert watch.errors == []


def test_artifacts_preview_and_download_with_digest(page: Page, site: Site, tmp_path: Path) -> None:
    watch = sign_in(page, site, then=f"/runs/{site.fit}")
    row = page.locator("#artifacts tr", has_text="run.log")
    row.get_by_role("button", name="Tail of run.log").click()
    expect(page.locator("#preview pre.log")).to_be_visible()
    page.get_by_label("Search lines").fill("fit")
    page.locator("#preview").get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#preview ol.hits li, #preview p").first).to_be_visible()
    page.get_by_label("Search lines").fill(SCRIPT)  # the log line naming the author, as text
    page.locator("#preview").get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#preview ol.hits")).to_contain_text(f"by Mallory {SCRIPT}")
    no_xss(page)
    result_row = page.locator("#artifacts tr", has_text="result.json")
    result_row.get_by_role("button", name="JSON view of result.json").click()
    expect(page.locator("#preview table.json")).to_contain_text("parameters")
    page.locator("#preview table.json").get_by_role("link", name="parameters").click()
    expect(page.locator("#preview")).to_contain_text("/parameters")
    check_page(page, tmp_path, "run-preview")
    link = result_row.get_by_role("link", name=re.compile("Download"))
    digest = link.get_attribute("data-digest")
    with page.expect_download() as info:
        link.click()
    data = Path(info.value.path()).read_bytes()
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert watch.errors == []


def test_status_change_reaches_the_open_list_live(page: Page, site: Site) -> None:
    sign_in(page, site, then="/runs")
    table = page.locator("#runs")
    expect(table).to_have_attribute("data-live", "connected")
    cell = table.locator(f'tr[data-run-id="{site.queued}"] .status')
    expect(cell).to_have_text("queued")
    with site.inst.db.transaction() as s:
        run = s.get(Run, site.queued)
        assert run is not None
        transition(s, site.admin_ctx, run, "default", "running")
    changed_at = time.monotonic()
    expect(cell).to_have_text("running", timeout=3000)
    took = time.monotonic() - changed_at
    assert took <= 1.0, f"the change took {took:.2f} s to reach the page"
    expect(page.locator("#live-status")).to_contain_text("is now running")
    # No polling: the page made no request after the stream opened.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.wait_for_timeout(800)
    assert requests == []
    # The run's own page follows it too.
    page.goto(site.at(f"/runs/{site.queued}"))
    summary = page.locator(".summary")
    expect(summary).to_have_attribute("data-live", "connected")
    with site.inst.db.transaction() as s:
        run = s.get(Run, site.queued)
        assert run is not None
        transition(s, site.admin_ctx, run, "default", "failed", error="stopped by the test")
    expect(summary.locator(".status")).to_have_text("failed", timeout=2000)
    expect(page.locator("#run-ended")).to_be_visible()


def test_job_progress_toys_plot_and_cancel(page: Page, site: Site, tmp_path: Path) -> None:
    watch = sign_in(page, site, then=f"/runs/{site.toys}")
    expect(page.locator("#job")).to_contain_text("2 of 2 shards done")
    expect(page.locator('figure[data-plot="toys"] img')).to_be_visible(timeout=20_000)
    check_page(page, tmp_path, "run-job")
    page.goto(site.at(f"/runs/{site.job}"))
    expect(page.locator("#job")).to_contain_text("0 of 2 shards done")
    page.get_by_role("button", name="Cancel job…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason").fill(f"wrong seed {SCRIPT}")
    dialog.get_by_role("button", name="Cancel the job").click()
    expect(page.locator(".summary .status")).to_have_text("cancelled")
    expect(page.locator("#history")).to_contain_text(f"wrong seed {SCRIPT}")
    no_xss(page)
    assert watch.errors == []


def test_sign_with_the_reauthentication_dialog(page: Page, site: Site, tmp_path: Path) -> None:
    watch = sign_in(page, site, then=f"/runs/{site.limit}")
    page.get_by_role("button", name="Sign this run…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    check_page(page, tmp_path, "sign-dialog")
    dialog.get_by_label("Meaning").select_option("authorship")
    dialog.get_by_label("Reason").fill(f"I ran it {SCRIPT}")
    dialog.get_by_label("Password").fill("wrong-password-000")
    dialog.get_by_role("button", name="Sign", exact=True).click()
    expect(dialog.locator("#sign-error")).to_contain_text("wrong password")
    dialog.get_by_label("Password").fill(PASSWORD)
    dialog.get_by_role("button", name="Sign", exact=True).click()
    signatures = page.locator("#signatures .manifestation")
    expect(signatures).to_have_count(1)
    expect(signatures).to_contain_text("Ada Admin")
    expect(signatures).to_contain_text(f"I ran it {SCRIPT}")
    expect(signatures).to_contain_text("authorship")
    page.get_by_role("button", name="Verify this run").click()
    expect(page.locator("#verify-result .badge")).to_have_text("verified", timeout=15_000)
    expect(page.locator("#verify-result")).to_contain_text("1 electronic signature verified")
    expect(page.locator("#verify-result")).to_contain_text("Ada Admin (admin)")
    no_xss(page)
    check_page(page, tmp_path, "run-signed-verified")
    # The failed attempt's 401 is the one console error the page may show (the browser logs it).
    assert [e for e in watch.errors if "401" not in e] == []


def test_registry_diff_audit_and_admin(page: Page, site: Site, tmp_path: Path) -> None:
    watch = sign_in(page, site, then="/registry")
    # Push by upload (multipart to the API, with the CSRF header), then the item is listed.
    page.get_by_text("Push a new version").click()
    page.get_by_label("Name").fill("uploaded")
    page.get_by_label("Version (semver)").fill("0.1.0")
    page.get_by_label("File").set_input_files(str(shared("workspaces", "simple_workspace.json")))
    page.get_by_role("button", name="Push").click()
    expect(page.get_by_role("link", name="uploaded")).to_be_visible()
    page.get_by_role("link", name="simple", exact=True).click()
    check_page(page, tmp_path, "registry-item")
    page.get_by_label("Diff from simple@1.0.0").check()
    page.get_by_label("Diff to simple@1.1.0").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("table.diff")).to_contain_text("observations")
    check_page(page, tmp_path, "registry-diff")
    page.goto(site.at("/audit?action=run."))
    events = page.locator("table.events tbody tr")
    expect(events.first).to_contain_text("run.")
    page.get_by_label("Actor").fill(f"Mallory {SCRIPT}")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile("actor=Mallory"))
    expect(events.first).to_contain_text(SCRIPT)  # the printed name, as text
    no_xss(page)
    check_page(page, tmp_path, "audit")
    with page.expect_download() as info:
        page.get_by_role("link", name=re.compile("Export the trail")).click()
    assert info.value.suggested_filename.startswith("audit-bundle-")
    page.goto(site.at("/admin"))
    expect(page.locator("#h-users")).to_be_visible()
    expect(page.get_by_text("Alert rules of default")).to_be_visible()
    expect(page.get_by_text("Reports of default, newest first")).to_be_visible()
    page.get_by_label("Token name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("Token", exact=True).input_value()
    assert token.startswith("nsp_")
    check_page(page, tmp_path, "admin")
    page.reload()  # a form re-post would be refused or make another; the secret is not shown again
    page.goto(site.at("/admin"))
    expect(page.locator("#issued-token")).to_have_count(0)
    assert watch.errors == []


def test_viewer_sees_no_write_controls_and_writes_are_refused(page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site, username="victor", then="/admin")
    expect(page.get_by_role("button", name="Create token")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Revoke"))).to_have_count(0)
    expect(page.locator("#h-alerts")).to_have_count(0)  # alerts.read needs an editor
    expect(page.locator("#h-users")).to_have_count(0)
    check_page(page, tmp_path, "admin-viewer")
    page.goto(site.at(f"/runs/{site.held}"))
    expect(page.locator("#job")).to_contain_text("0 of 2 shards done")
    expect(page.get_by_role("button", name=re.compile("Cancel|Resume|Push"))).to_have_count(0)
    # The server refuses a viewer's change whatever the page shows: a run, with the session's
    # own CSRF token (so the refusal is the role's, not the CSRF check's).
    answer = page.evaluate("""async () => {
        const body = new FormData(); body.append('task', 'fit');
        const r = await fetch('/api/v1/projects/default/runs', {method: 'POST', body,
            headers: {'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}});
        return [r.status, (await r.json()).detail];
    }""")
    assert answer[0] == 403, answer
    page.goto(site.at("/registry"))
    expect(page.get_by_text("Push a new version")).to_have_count(0)
    page.goto(site.at("/audit"))
    expect(page.get_by_label("Project")).to_have_value("default")  # a viewer reads their project's trail
    expect(page.locator("#h-cp")).to_have_count(0)


def test_security_headers_csrf_and_clickjacking(page: Page, site: Site) -> None:
    sign_in(page, site, then="/runs")
    response = page.goto(site.at("/runs"))
    assert response is not None
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    # A change without the CSRF token is refused even with the session cookie.
    status = page.evaluate("""async () => (await fetch('/logout', {method: 'POST'})).status""")
    assert status == 403
    # A page cannot be framed: Chromium refuses to render it in an iframe.
    page.set_content(f'<iframe id="f" src="{site.at("/runs")}"></iframe>')
    page.wait_for_timeout(500)
    frame = page.frame_locator("#f")
    expect(frame.locator("#runs")).to_have_count(0)
    # A plot (an SVG of ours) is served sandboxed.
    svg = page.request.get(site.at(f"/runs/{site.limit}/plots/brazil.svg"))
    assert svg.ok and "sandbox" in svg.headers["content-security-policy"]


def test_open_redirect_after_sign_in_is_refused(page: Page, site: Site) -> None:
    page.goto(site.at("/login?next=//evil.example/x"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/")
    assert page.url == site.url + "/"


def test_filter_runs_by_approval_free_text_and_order(page: Page, site: Site, tmp_path: Path) -> None:
    from nextstat_pro.runs.esignatures import sign_run

    erin = session_for(site.inst, "erin", PASSWORD)
    sign_run(site.inst, erin, site.ranking, "review", "looked at it", PASSWORD, "erin")  # ranking: in review
    watch = sign_in(page, site, then="/runs")
    table = page.locator("#runs")
    rows = table.locator("tbody tr[data-run-id]")
    page.get_by_label("Approval").select_option("in review")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"approval=in\+review"))
    expect(rows).to_have_count(1)
    expect(table.locator(f'tr[data-run-id="{site.ranking}"] .approval')).to_have_text("in review")
    page.get_by_label("Search").fill("RANK")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"q=RANK"))
    expect(rows).to_have_count(1)
    check_page(page, tmp_path, "runs-filtered")
    # Free text finds an author (and markup typed into it stays text); the approval filter goes.
    page.get_by_label("Approval").select_option("")
    page.get_by_label("Search").fill("MALLO")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(table.locator(f'tr[data-run-id="{site.fit}"]')).to_be_visible()
    page.get_by_label("Search").fill(SCRIPT)
    page.get_by_role("button", name="Apply filters").click()
    expect(table).to_contain_text("No runs match.")
    no_xss(page)
    # The back button returns to each earlier filter, its form filled in as it was.
    page.go_back()
    expect(rows).to_have_count(1)
    page.go_back()
    expect(page.get_by_label("Search")).to_have_value("RANK")
    expect(page.get_by_label("Approval")).to_have_value("in review")
    expect(table.locator(f'tr[data-run-id="{site.ranking}"]')).to_be_visible()
    # Oldest first: the first run the site made (mallory's fit) heads the list.
    page.goto(site.at("/runs"))
    page.get_by_label("Order").select_option("oldest")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"sort=oldest"))
    expect(rows.first).to_have_attribute("data-run-id", site.fit)
    expect(table.locator("caption")).to_contain_text("oldest first")
    page.goto(site.at("/runs?approval=done"))
    expect(page.get_by_role("alert")).to_contain_text("approval states: draft, in review, approved, rejected")
    assert [e for e in watch.errors if "400" not in e] == []


def test_shard_progress_reaches_the_job_page_without_polling(page: Page, site: Site) -> None:
    from nextstat_pro.audit.events import append_event
    from nextstat_pro.db.models import ScaleShard
    from nextstat_pro.db.types import utcnow

    simple = shared("workspaces", "simple_workspace.json")
    job = submit(site.inst, site.admin_ctx, SubmitRequest("toys", "default", [InputFile.read("workspace", simple)],
                                                          params={"n_toys": "24"}, seed=7, shards=2, workers=2))
    watch = sign_in(page, site, then=f"/runs/{job}")
    expect(page.locator("#job")).to_contain_text("0 of 2 shards done")
    expect(page.locator(".summary")).to_have_attribute("data-live", "connected")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    with site.inst.db.transaction() as s:  # what the coordinator does when a shard's result is in
        shard = s.get(ScaleShard, (job, 0))
        assert shard is not None
        shard.status, shard.result_digest, shard.updated_at = "done", "sha256:" + "0" * 64, utcnow()
        append_event(s, site.admin_ctx, action="job.shard_done", target=("run", job), project="default",
                     after={"shard": 0, "result_digest": shard.result_digest, "points": 12})
    changed_at = time.monotonic()
    expect(page.locator("#shards")).to_contain_text("1 of 2 shards done", timeout=3000)
    took = time.monotonic() - changed_at
    assert took <= 1.5, f"the shard took {took:.2f} s to reach the page"
    expect(page.locator("#shards")).to_contain_text("1 done, 0 failed")
    # One fetch of the fragment for the event, and no request after it: nothing polls.
    page.wait_for_timeout(2500)
    assert requests == [site.at(f"/runs/{job}/shards")], requests
    assert watch.errors == []


@pytest.fixture(scope="module")
def pg_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("web-pg")
    inst = init_instance(tmp / "home", admin="admin", password=PASSWORD, printed_name="Ada Admin",
                         db_url=new_pg_database())
    try:
        yield from _site(inst, tmp, jobs=False)
    finally:
        inst.close()


def test_runs_list_on_postgresql(page: Page, pg_site: Site, tmp_path: Path) -> None:
    watch = sign_in(page, pg_site, then="/runs?status=succeeded")
    table = page.locator("#runs")
    expect(table.locator("tbody tr[data-run-id]")).to_have_count(2)
    expect(table.locator(f'tr[data-run-id="{pg_site.queued}"]')).to_have_count(0)
    expect(table).to_have_attribute("data-live", "connected")
    check_page(page, tmp_path, "runs-pg")
    assert watch.errors == []



@pytest.fixture(scope="module")
def oidc_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An instance whose sign-in offers OpenID Connect, beside a real provider (tests/oidc, as in
    tests/test_sso_oidc.py) that sends the browser back to this server."""
    import os
    import subprocess

    from .sso_helpers import configure_sso
    from .test_sso_oidc import OIDC_DIR, _install

    _install()
    tmp = tmp_path_factory.mktemp("web-oidc")
    inst = init_instance(tmp / "home", admin="admin", password=PASSWORD, printed_name="Ada Admin")
    port = _free_port()
    callback = f"http://127.0.0.1:{port}/api/v1/auth/oidc/callback"
    accounts = {"u2001": {"username": "olga", "name": "Olga Oidc", "groups": ["physics"]}}
    idp_port = _free_port()
    proc = subprocess.Popen(["node", str(OIDC_DIR / "provider.mjs"), str(idp_port), callback, json.dumps(accounts)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    os.environ["NSP_TEST_WEB_OIDC_SECRET"] = "test-client-secret"
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready "), line
        configure_sso(inst, {"oidc": {"issuer": line.split()[1], "client_id": "nextstat-pro",
                                      "client_secret_env": "NSP_TEST_WEB_OIDC_SECRET", "redirect_url": callback,
                                      "scopes": ["openid", "profile", "email", "groups"]},
                             "group_roles": {"physics": {"default": "editor"}}})
        yield from _serve(inst, port)
    finally:
        os.environ.pop("NSP_TEST_WEB_OIDC_SECRET", None)
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        inst.close()


def test_sign_in_with_sso(page: Page, oidc_site: str, tmp_path: Path) -> None:
    watch = Watch(page)
    page.goto(oidc_site + "/login")
    check_page(page, tmp_path, "login-sso")
    page.get_by_role("link", name="Sign in with SSO").click()
    # The provider's development login and consent forms (its pages, not ours).
    page.locator("input[name=login]").fill("u2001")
    page.locator("input[name=password]").fill("anything")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]").click()  # consent
    page.wait_for_url(oidc_site + "/")
    watch.errors.clear()  # the provider's pages load fonts from the internet; ours load nothing foreign
    page.reload()
    expect(page.locator("header .who")).to_have_text("Olga Oidc")
    expect(page.get_by_role("heading", name="Runs in default")).to_be_visible()
    assert watch.errors == []
