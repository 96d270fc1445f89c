"""The CLI as a client of either: each command runs once on the instance (local mode) and once
through a real server over that instance (``--server URL``), and both give the same exit code,
the same ``--json`` document (but for the ids and times each call makes) and the same one-line
error for bad input."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from nextstat_pro.instance import Instance
from nextstat_pro.server.app import create_app

from .conftest import PASSWORD, CliResult, one_line_error, shared

SIMPLE = str(shared("workspaces", "simple_workspace.json"))
# What each call makes anew: dropped before two documents are compared.
MADE = frozenset({"aliases", "checkpoints", "created", "created_at", "digest", "events", "expires_at",
                  "finished_at", "id", "label", "last_seq", "manifest_digest", "meta", "name", "note",
                  "oldest_unwitnessed_s", "path", "result_digest", "root", "run_id", "runs", "seq", "signature",
                  "signed_at", "size", "spec_digest", "started_at", "state_rows", "tags", "token_id", "tree_size",
                  "ts", "unwitnessed", "version_id", "wall_time_s", "witnessed",
                  # How far the continuous witnessing had got: the local command witnesses its tail at exit.
                  "latest_witnessed"})


@pytest.fixture
def server(instance: Instance) -> Iterator[str]:
    """A real uvicorn server over ``instance`` on a free port of 127.0.0.1, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(instance, background=()), log_level="warning", ws="none", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def made_removed(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: made_removed(v) for k, v in doc.items() if k not in MADE}
    if isinstance(doc, list):
        return [made_removed(v) for v in doc]
    return doc


def differences(a: Any, b: Any, at: str = "") -> list[str]:
    """Where two JSON documents differ, as paths (what a failed comparison reports)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(a.keys() | b.keys()) for d in differences(a.get(k), b.get(k), f"{at}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{at}[{i}]")]
    return [] if a == b else [f"{at}: {a!r} != {b!r}"[:300]]


class Both:
    """Calls the CLI once locally (``--home``) and once through the server (``--server``)."""

    def __init__(self, cli: Any, home: Path, url: str) -> None:
        self.cli, self.local, self.remote = cli, ["--home", str(home)], ["--server", url]

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 remote_args: tuple[str, ...] | None = None) -> tuple[CliResult, CliResult]:
        a = self.cli(*self.local, *args, env=env)
        b = self.cli(*self.remote, *(remote_args if remote_args is not None else args), env=env)
        assert a.code == b.code, (args, a.code, a.out, a.err, b.code, b.out, b.err)
        return a, b

    def same(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """A read: the same output, byte for byte (JSON or a table); JSON is returned parsed."""
        a, b = self(*args, env=env)
        assert a.code == 0, a.err
        assert a.out == b.out, (args, a.out, b.out)
        return json.loads(a.out) if a.out.startswith(("{", "[")) else a.out

    def alike(self, *args: str, remote_args: tuple[str, ...] | None = None,
              env: dict[str, str] | None = None) -> tuple[Any, Any]:
        """A change: the same document but for what each call made."""
        a, b = self(*args, remote_args=remote_args, env=env)
        assert a.code == 0, (a.err, b.err)
        da, db = json.loads(a.out), json.loads(b.out)
        assert made_removed(da) == made_removed(db), (args, differences(made_removed(da), made_removed(db)))
        return da, db

    def error(self, *args: str, code: int, message: str, env: dict[str, str] | None = None) -> None:
        a, b = self(*args, env=env)
        assert a.code == code, (a.code, a.err)
        assert one_line_error(a) == one_line_error(b), (args, a.err, b.err)
        assert message in one_line_error(a)


def test_cli_commands_locally_and_through_a_server(cli, instance: Instance, server: str,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    from nextstat_pro.examples import write_examples

    home = instance.home
    both = Both(cli, home, server)
    pw = {"NSP_PASSWORD": PASSWORD}
    # Not signed in to the server yet; then login stores a token for its URL only.
    r = cli("--server", server, "whoami")
    assert r.code == 10 and f"not logged in to {server}" in one_line_error(r)
    assert cli("--home", str(home), "login", "-u", "admin", env=pw).code == 0
    r = cli("login", "--server", server, "-u", "admin", env=pw)
    assert r.code == 0 and f"logged in as admin to {server}" in r.out
    both.alike("whoami", "--json")

    # projects
    both.alike("project", "create", "p-local", "--json", remote_args=("project", "create", "p-http", "--json"))
    listing = both.same("project", "list", "--json")
    assert {"p-local", "p-http"} <= {p["name"] for p in listing}

    # a run on an uploaded workspace, then its reads
    a, b = both.alike("run", "fit", "--workspace", SIMPLE, "--json")
    assert a["status"] == "succeeded" and a["result"]["poi"] == b["result"]["poi"]
    run_a, run_b = a["run_id"], b["run_id"]
    both.same("runs", "list", "--json")
    both.same("runs", "list", "--limit", "1", "--status", "succeeded", "--json")
    both.same("runs", "list", "--text", "FIT", "--approval", "draft", "--sort", "oldest", "--version", "nothing",
              "--json")
    both.same("runs", "list", "--text", "fit", "--sort", "oldest", "--until", "2099-01-01", "--fit", "ok", "--json")
    # Duration bounds go over the wire too: no run lasted 1000 s, every finished one at least 0 s.
    both.same("runs", "list", "--min-duration", "1000", "--json")
    both.same("runs", "list", "--min-duration", "0", "--max-duration", "1000", "--json")
    both.error("runs", "list", "--min-duration", "-1", code=2, message="minimum duration -1")
    both.error("runs", "list", "--approval", "done", code=2, message="approval states: draft, in review, approved")
    both.error("runs", "list", "--version", "simple@", code=2, message="NAME@SEMVER")
    both.same("runs", "show", run_b, "--json")
    both.same("runs", "show", run_b)  # the table, with the result's summary line
    both.same("runs", "artifacts", run_a, "--json")

    # export: a folder that verifies, from either mode
    ea, eb = both.alike("runs", "export", run_a, str(tmp_path / "exp-local"), "--json",
                        remote_args=("runs", "export", run_a, str(tmp_path / "exp-http"), "--json"))
    assert ea["manifest_digest"] == eb["manifest_digest"] and ea["files"] == eb["files"]
    assert sorted(p.name for p in (tmp_path / "exp-http").rglob("*")) == sorted(
        p.name for p in (tmp_path / "exp-local").rglob("*"))
    for folder in ("exp-local", "exp-http"):
        r = cli("verify", str(tmp_path / folder))
        assert r.code == 0 and "verified" in r.out, r.err
    both.error("runs", "export", run_a, str(tmp_path / "exp-local"), code=5, message="is not empty")

    # the registry: push (an upload), resolve, versions, alias, tag, diff, import
    ex = write_examples(tmp_path / "ex", 3)
    pa, pb = both.alike("hub", "model", "push", "ws-a", str(ex["workspace"]), "--version", "1.0.0", "--json",
                        remote_args=("hub", "model", "push", "ws-b", SIMPLE, "--version", "1.0.0", "--json"))
    assert pa["created"] and pb["created"]
    both.same("hub", "model", "list", "--json")
    both.same("hub", "model", "versions", "ws-b", "--json")
    resolved = both.same("hub", "model", "show", "ws-b@1.0.0", "--runs")
    assert resolved["digest"] == pb["digest"]
    both.alike("hub", "model", "alias", "ws-a@1.0.0", "candidate", "--reason", "qa", "--json",
               remote_args=("hub", "model", "alias", "ws-b@1.0.0", "candidate", "--reason", "qa", "--json"))
    ta, tb = both.alike("hub", "model", "tag", "ws-a@candidate", "stage=qa", "--reason", "r", "--json",
                        remote_args=("hub", "model", "tag", "ws-b@candidate", "stage=qa", "--reason", "r", "--json"))
    assert ta["tags"] == tb["tags"] == {"stage": "qa"}
    diff = both.same("hub", "model", "diff", "ws-a@1.0.0", "ws-b@candidate", "--json")
    assert not diff["identical"]
    manifest = tmp_path / "m.jsonl"
    member = Path(ex["workspace"]).relative_to(tmp_path).as_posix()
    manifest.write_text(json.dumps({"name": "bulk", "file": member, "version": "0.1.0"}) + "\n")
    ia, ib = both("hub", "model", "import", str(manifest), "--json")  # the second finds the first's version
    assert (json.loads(ia.out)["existing"], json.loads(ib.out)["existing"]) == (0, 1), (ia.err, ib.err)
    both.error("hub", "model", "show", "ws-a@sha256:12", code=2, message="at least 12")
    both.error("hub", "model", "import", str(tmp_path / "none.jsonl"), code=3, message="manifest not found")

    # a run of a registry model by reference
    both.alike("run", "fit", "--model", "ws-b@candidate", "--json")

    # signing with re-authentication (21 CFR 11.200): the first signing of a session names the signer
    r = cli("--server", server, "sign", run_b, "--meaning", "review", "--reason", "ok", env=pw)
    assert r.code == 10 and "username" in one_line_error(r)
    sa, sb = both("sign", run_a, "--meaning", "authorship", "--reason", "mine", "-u", "admin", env=pw,
                  remote_args=("sign", run_b, "--meaning", "authorship", "--reason", "mine", "-u", "admin"))
    assert sa.code == 0 and "signed Ada Admin (admin)" in sa.out and "signed Ada Admin (admin)" in sb.out
    both.error("sign", run_a, "--meaning", "authorship", "--reason", "again", env=pw, code=5,
               message="already signed")
    both.error("sign", run_a, "--meaning", "whim", "--reason", "x", env=pw, code=2, message="unknown meaning")

    # users, roles, tokens
    newpw = {"NSP_NEW_PASSWORD": "viewer-password-1"}
    ua, ub = both("user", "create", "vic", "--printed-name", "Vic Viewer", env=newpw,
                  remote_args=("user", "create", "val", "--printed-name", "Val Viewer"))
    assert (ua.out, ub.out) == ("created user vic\n", "created user val\n")
    both.same("user", "list", "--json")
    ga, gb = both("role", "grant", "vic", "viewer", "--reason", "qa",
                  remote_args=("role", "grant", "val", "viewer", "--reason", "qa"))
    assert ga.out.replace("vic", "val") == gb.out
    both.same("role", "list", "--json")
    ta_, tb_ = both("token", "create", "ci", "--role", "viewer")
    assert ta_.out.startswith("nsp_") and tb_.out.startswith("nsp_")
    both.error("token", "create", "ci", "--role", "admin", "--project", "nope", code=4, message="no project")
    # wrong role: a viewer's token, in both modes
    viewer = ta_.out.strip()
    both.error("run", "fit", "--workspace", SIMPLE, env={"NSP_TOKEN": viewer}, code=6, message="may not run.create")
    both.same("runs", "list", "--json", env={"NSP_TOKEN": viewer})
    os.environ.pop("NSP_TOKEN")  # the cli fixture's monkeypatch restores the environment afterwards

    # a user changes their own password, signed in with their session token (local mode, then the server)
    for user in ("vic", "val"):
        issued = httpx.post(f"{server}/api/v1/auth/token", json={"username": user, "password": "viewer-password-1"})
        assert issued.status_code == 200, issued.text
        os.environ["NSP_TOKEN"] = issued.json()["token"]
        mode = ["--home", str(home)] if user == "vic" else ["--server", server]
        r = cli(*mode, "passwd", env={"NSP_PASSWORD": "wrong-password-9", "NSP_NEW_PASSWORD": "new-password-22"})
        assert r.code == 10 and one_line_error(r) == "error: the current password is wrong", r.err
        r = cli(*mode, "passwd", env={"NSP_PASSWORD": "viewer-password-1", "NSP_NEW_PASSWORD": "new-password-22"})
        assert r.code == 0 and r.out == "password changed\n", r.err
    os.environ.pop("NSP_TOKEN")

    # configuration
    both.same("config", "show")
    sa, sb = both("config", "set", "checkpoint_interval_s", "120", "--reason", "policy")
    assert sa.out == sb.out == "checkpoint_interval_s = 120\n", (sa.code, sa.err, sb.err)
    assert json.loads(cli("--home", str(home), "config", "show").out)["checkpoint_interval_s"] == 120
    both.error("config", "set", "nope", "1", "--reason", "r", code=2, message="cannot set 'nope'")

    # the audit trail: checkpoints, a query with a cursor, history, proofs, export, verify
    both.alike("audit", "checkpoint", "--json")
    checkpoints = both.same("audit", "checkpoints", "--json")
    page = both.same("audit", "log", "--limit", "3", "--json")
    assert len(page) == 3
    nxt = both.same("audit", "log", "--limit", "3", "--after", str(page[-1]["seq"]), "--json")
    assert nxt[0]["seq"] > page[-1]["seq"]
    both.same("audit", "log", "--action", "run.", "--limit", "2")  # the table with its "next page" line
    both.same("audit", "history", f"run:{run_a}", "--json")
    proof = both.same("audit", "prove", str(page[0]["seq"]))
    assert proof["event"]["seq"] == page[0]["seq"]
    both.same("audit", "consistency", str(checkpoints[0]["size"]), str(checkpoints[-1]["size"]))
    xa, xb = both("audit", "export", str(tmp_path / "bundle-local"),
                  remote_args=("audit", "export", str(tmp_path / "bundle-http")))
    assert xa.code == 0 and xb.out.startswith("exported ")
    for bundle in ("bundle-local", "bundle-http"):
        r = cli("audit", "verify", "--bundle", str(tmp_path / bundle))
        assert r.code == 0 and "bundle verified" in r.out, r.err
    va, vb = both.alike("audit", "verify", "--json")
    assert va["problem"] is None and va["state_checked"]

    # bad input: the same one-line error and exit code
    both.error("runs", "show", "01234567-dead", code=4, message="no run")
    both.error("login", "-u", "admin", env={"NSP_PASSWORD": "wrong-password-1"}, code=10, message="wrong password")
    both.error("run", "hypotest", "-w", SIMPLE, "--param", "mu=x", code=2, message="bad value for parameter 'mu'")
    both.error("run", "fitt", "-w", SIMPLE, code=2, message="unknown task 'fitt'")
    both.error("run", "fit", "-w", str(tmp_path / "nope.json"), code=3, message="workspace file not found")
    both.error("run", "fit", "-w", SIMPLE, "--seed", "-1", code=2, message="seed must be a whole number")
    both.error("runs", "list", "--project", "nope", "--json", code=4, message="no project named 'nope'")
    both.error("run", "fit", "--model", "ws-b@1.0.0", "--workspace", SIMPLE, code=2,
               message="cannot be combined: give one (--model, --workspace)")  # fields → options, both modes
    both.error("submit", "toys", "--workspace", SIMPLE, "--param", "n_toys=4", code=2,
               message="toys need a seed (--seed)")

    # a job: submitted with an uploaded workspace, coordinated (here, or by the server) to its end
    ja, jb = both.alike("submit", "scan", "-w", SIMPLE, "--param", "points=3", "--shards", "2", "--workers", "1",
                        "--wait", "--json")
    assert ja["status"] == jb["status"] == "succeeded" and ja["progress"]["shards_done"] == 2
    both.same("runs", "shards", jb["run_id"])
    both.error("runs", "cancel", ja["run_id"], "--reason", "late", code=5,
               message="is succeeded; it cannot become cancelled")
    both.error("runs", "shards", run_a, code=2, message="is not a job")

    # commands of this machine refuse --server; logout forgets the server's token
    for args in (["init"], ["db", "current"], ["crosscheck", SIMPLE], ["serve"]):
        r = cli("--server", server, *args)
        assert r.code == 2 and "works on this machine's instance only" in one_line_error(r), r.err
    for args in (["runs", "recover"], ["audit", "retention", "status"]):
        r = cli("--home", str(home), "--server", server, *args)
        assert r.code == 2 and "works on this machine's instance only" in one_line_error(r), r.err
    r = cli("--server", "http://127.0.0.1:9", "whoami", env={"NSP_TOKEN": "nsp_x"})
    assert r.code == 9 and "cannot reach the server at http://127.0.0.1:9" in one_line_error(r)
    os.environ.pop("NSP_TOKEN")
    assert cli("--server", server, "logout").code == 0
    r = cli("--server", server, "whoami")
    assert r.code == 10 and "not logged in" in one_line_error(r)


def test_an_answer_that_is_not_a_problem_is_one_line_with_the_status(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A proxy in front of the server that answers with its own HTML page (502) is reported in one
    line that names the status, never as a stack trace."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = b"<html><body>Bad Gateway</body></html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Proxy) as proxy:
        thread = threading.Thread(target=proxy.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{proxy.server_address[1]}"
            r = cli("--server", url, "runs", "list", env={"NSP_TOKEN": "nsp_x"})
        finally:
            proxy.shutdown()
            thread.join(timeout=5)
    assert r.code == 1
    assert one_line_error(r) == "error: the server answered HTTP 502 Bad Gateway to GET /api/v1/projects/default/runs"
