"""The CLI: a thin adapter with one-line errors and non-zero exits for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PASSWORD, event_count, one_line_error, shared

SIMPLE = str(Path(__file__).resolve().parents[2] / "shared/workspaces/simple_workspace.json")


def test_run_list_show_artifacts_export(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("--home", str(home), "run", "fit", "--workspace", SIMPLE, "--json")
    assert r.code == 0, r.err
    run_id = json.loads(r.out)["run_id"]
    listing = json.loads(cli("--home", str(home), "runs", "list", "--json").out)
    assert [x["run_id"] for x in listing] == [run_id]
    assert cli("--home", str(home), "runs", "list", "--status", "failed", "--json").out.strip() == "[]"
    assert json.loads(cli("--home", str(home), "runs", "list", "--since", "2000-01-01", "--json").out)
    shown = json.loads(cli("--home", str(home), "runs", "show", run_id, "--json").out)
    assert shown["manifest"]["run_id"] == run_id
    arts = json.loads(cli("--home", str(home), "runs", "artifacts", run_id, "--json").out)
    assert [a["name"] for a in arts] == ["result.json", "run.log", "manifest.json"]
    assert cli("--home", str(home), "runs", "export", run_id, str(tmp_path / "exp")).code == 0
    assert (tmp_path / "exp" / "SHA256SUMS").exists()
    assert "audit trail verified" in cli("--home", str(home), "audit", "verify").out


def test_failed_task_exits_non_zero_but_is_recorded(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("--home", str(home), "run", "upper-limit", "-w", str(shared("workspaces", "tHu_workspace.json")))
    assert r.code == 8 and "failed" in r.out
    assert json.loads(cli("--home", str(home), "runs", "list", "--status", "failed", "--json").out)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "fit", "-w", "{bad}"], 3, "is not valid JSON"),
        (["run", "fit", "-w", "{notws}"], 3, "is invalid at $"),
        (["run", "fit", "-w", "/nonexistent.json"], 3, "workspace file not found"),
        (["run", "fitt", "-w", SIMPLE], 2, "unknown task 'fitt'"),
        (["run", "fit", "-w", SIMPLE, "--param", "novalue"], 2, "malformed --param 'novalue'"),
        (["run", "hypotest", "-w", SIMPLE, "--param", "mu=x"], 2, "bad value for parameter 'mu'"),
        (["run", "fit", "-w", "{gen}", "--patchset", "{genps}", "--patch", "nope"], 3, "no patch named 'nope'"),
        (["run", "fit", "-w", SIMPLE, "--project", "nope"], 4, "no project named 'nope'"),
        (["runs", "show", "01234567-dead"], 4, "no run"),
        (["runs", "list", "--since", "yesterday"], 2, "is not a date"),
        (["runs", "list", "--status", "weird"], 2, "unknown status"),
    ],
)
def test_bad_input_one_line_error_nothing_written(cli, home: Path, tmp_path: Path, args, code, message) -> None:  # type: ignore[no-untyped-def]
    from nextstat_pro.examples import write_examples

    ex = write_examples(tmp_path / "ex", 3)
    (tmp_path / "bad.json").write_text('{"channels": [')
    (tmp_path / "notws.json").write_text('{"hello": "world"}')
    subst = {"{bad}": str(tmp_path / "bad.json"), "{notws}": str(tmp_path / "notws.json"),
             "{gen}": str(ex["workspace"]), "{genps}": str(ex["patchset"])}
    before = event_count(home)
    r = cli("--home", str(home), *[subst.get(a, a) for a in args])
    assert r.code == code, (r.code, r.out, r.err)
    assert message in one_line_error(r)
    assert event_count(home) == before  # no event appended
    assert cli("--home", str(home), "runs", "list", "--json").out.strip() == "[]"


def test_second_init_refused_and_nothing_overwritten(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    config = (home / "config.json").read_bytes()
    r = cli("--home", str(home), "init", "--admin", "eve", env={"NSP_PASSWORD": PASSWORD})
    assert r.code == 5 and "exists already" in one_line_error(r)
    assert (home / "config.json").read_bytes() == config


def test_no_instance_is_a_clear_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("--home", str(tmp_path / "none"), "runs", "list")
    assert r.code == 9 and "no NextStat Pro instance" in one_line_error(r)


def test_projects(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("--home", str(home), "project", "create", "cms-higgs").code == 0
    names = [p["name"] for p in json.loads(cli("--home", str(home), "project", "list", "--json").out)]
    assert names == ["cms-higgs", "default"]
    r = cli("--home", str(home), "project", "create", "cms-higgs")
    assert r.code == 5 and "exists already" in one_line_error(r)
    r = cli("--home", str(home), "project", "create", "Bad Name")
    assert r.code == 2 and "invalid project name" in one_line_error(r)


def test_real_process_exit_code_and_stderr(home: Path) -> None:
    exe = Path(sys.executable).with_name("nextstat-pro")
    proc = subprocess.run([str(exe), "--home", str(home), "run", "fit", "-w", "/nonexistent.json"],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "40"})
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == ["error: workspace file not found: /nonexistent.json"]


def test_tasks_listing(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("tasks").out
    for task in ("fit", "hypotest", "upper-limit", "scan", "ranking", "toys", "pk-nlme"):
        assert task in out


def test_login_flow_and_signing_through_the_cli(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = ["--home", str(home)]
    assert cli(*h, "user", "create", "rita", "--printed-name", "Rita Reviewer",
               env={"NSP_NEW_PASSWORD": "rita-password-1"}).code == 0
    assert cli(*h, "role", "grant", "rita", "viewer", "--reason", "QA").code == 0
    run_id = json.loads(cli(*h, "run", "fit", "-w", SIMPLE, "--json").out)["run_id"]
    assert cli(*h, "logout").code == 0
    r = cli(*h, "runs", "list")
    assert r.code == 10 and "not logged in" in one_line_error(r)
    r = cli(*h, "login", "-u", "rita", env={"NSP_PASSWORD": "wrong-password-1"})
    assert r.code == 10 and "wrong password" in one_line_error(r)
    assert cli(*h, "login", "-u", "rita", env={"NSP_PASSWORD": "rita-password-1"}).code == 0
    assert json.loads(cli(*h, "whoami", "--json").out)["roles"] == {"default": "viewer"}
    r = cli(*h, "run", "fit", "-w", SIMPLE)
    assert r.code == 6 and "may not run.create" in one_line_error(r)
    r = cli(*h, "sign", run_id, "--meaning", "review", "--reason", "ok", env={"NSP_PASSWORD": "rita-password-1"})
    assert r.code == 10 and "username" in one_line_error(r)
    r = cli(*h, "sign", run_id, "--meaning", "review", "--reason", "ok", "-u", "rita")
    assert r.code == 0 and "Rita Reviewer" in r.out and "in review" in r.out
    r = cli(*h, "sign", run_id, "--meaning", "review", "--reason", "again")
    assert r.code == 5 and "already signed" in one_line_error(r)
    assert cli(*h, "runs", "export", run_id, str(tmp_path / "exp")).code == 0
    r = cli("verify", str(tmp_path / "exp"))
    assert r.code == 0 and "Rita Reviewer" in r.out and "meaning: review" in r.out
    (tmp_path / "exp" / "outputs" / "result.json").write_text("{}")
    r = cli("verify", str(tmp_path / "exp"))
    assert r.code == 7 and "outputs/result.json: digest mismatch" in one_line_error(r)


def test_hub_through_the_cli(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from nextstat_pro.examples import write_examples

    ex = write_examples(tmp_path / "ex", 4)
    h = ["--home", str(home)]
    r = cli(*h, "hub", "model", "push", "example", str(ex["workspace"]), "--version", "1.0.0", "--tag", "a=b")
    assert r.code == 0 and "pushed example@1.0.0" in r.out
    assert "unchanged" in cli(*h, "hub", "model", "push", "example", str(ex["workspace"])).out
    r = cli(*h, "hub", "model", "push", "example", str(ex["patchset"]), "--version", "2.0.0")
    assert r.code == 3 and "is invalid at" in one_line_error(r)
    assert cli(*h, "hub", "patchset", "push", "signals", str(ex["patchset"]), "--base", "example@1.0.0").code == 0
    assert cli(*h, "hub", "model", "alias", "example@1.0.0", "candidate", "--reason", "r").code == 0
    assert cli(*h, "hub", "model", "tag", "example@candidate", "stage=qa", "--reason", "r").code == 0
    shown = json.loads(cli(*h, "hub", "model", "show", "example@candidate").out)
    assert shown["tags"] == {"a": "b", "stage": "qa"} and shown["aliases"] == ["candidate"]
    r = cli(*h, "run", "upper-limit", "--model", "signals@latest#sig_1000_100", "--json")
    assert r.code == 0, r.err
    listing = json.loads(cli(*h, "runs", "list", "--json").out)
    signals = json.loads(cli(*h, "hub", "patchset", "show", "signals").out)
    assert listing[0]["versions"] == ["example@1.0.0", f"signals@{signals['digest'][:19]}"]
    r = cli(*h, "hub", "model", "show", "example@sha256:12")
    assert r.code == 2 and "at least 12" in one_line_error(r)
    r = cli(*h, "hub", "model", "diff", "example@1.0.0", "example@candidate")
    assert r.code == 0 and "identical" in r.out


def test_hub_import_through_the_cli(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from nextstat_pro.examples import histfactory_workspace

    h = ["--home", str(home)]
    lines = []
    for i in range(3):
        doc = histfactory_workspace()
        doc["observations"][0]["data"][0] = 10.0 + i
        (tmp_path / f"w{i}.json").write_text(json.dumps(doc))
        lines.append({"name": "bulk", "file": f"w{i}.json", "version": f"0.{i}.0", "tags": {"i": str(i)}})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(e) for e in lines + [{"name": "bulk", "file": "w0.json",
                                                                   "version": "9.0.0"}]))
    before = event_count(home)
    r = cli(*h, "hub", "model", "import", str(manifest), "--batch", "2")
    assert r.code == 5 and "line 4: this content is bulk@0.0.0 already" in one_line_error(r)
    assert "2 version(s) created" in r.err and event_count(home) == before + 2
    manifest.write_text("\n".join(json.dumps(e) for e in lines))
    r = cli(*h, "hub", "model", "import", str(manifest), "--batch", "2")
    assert r.code == 0 and "3 entries in 2 committed batch(es): 1 version(s) created, 2 existing" in r.out
    listing = json.loads(cli(*h, "hub", "model", "versions", "bulk", "--json").out)
    assert sorted(v["semver"] for v in listing) == ["0.0.0", "0.1.0", "0.2.0"]
    r = cli(*h, "hub", "model", "import", str(tmp_path / "none.jsonl"))
    assert r.code == 3 and "manifest not found" in one_line_error(r)


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["audit", "verify-proof", "{dir}/p.json", "--key", "{key}"], {"p.json": "[1, 2]"}, "proof does NOT verify"),
        (["audit", "verify-proof", "{dir}/p.json", "--key", "{key}"], {"p.json": '{"type": 3}'}, "unknown proof type"),
        (["verify", "{dir}"], {"SHA256SUMS": "", "manifest.json": "not json"}, "verification FAILED"),
        (["audit", "verify", "--bundle", "{dir}"], {"log.pub": "{keytext}", "checkpoint.note": "x\n"},
         "bundle does NOT verify"),
    ],
)
def test_offline_verifiers_give_one_line_errors_on_malformed_files(cli, home: Path, tmp_path: Path, args,  # type: ignore[no-untyped-def]
                                                                  files, message) -> None:
    key = home / "witness" / "log.pub"
    folder = tmp_path / "in"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text.replace("{keytext}", key.read_text()))
    r = cli(*[a.replace("{dir}", str(folder)).replace("{key}", str(key)) for a in args])
    assert r.code == 7
    assert message in one_line_error(r)


def test_service_errors_name_request_fields_and_the_cli_names_its_options(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    """A service's message speaks of its request; the command adds its own options' names."""
    r = cli("--home", str(home), "run", "fit", "--model", "example@1.0.0", "--workspace", SIMPLE)
    assert r.code == 2
    assert one_line_error(r) == ("error: a registry model and a workspace or patchset file cannot be combined: "
                                 "give one (--model, --workspace)")
    r = cli("--home", str(home), "submit", "toys", "--workspace", SIMPLE, "--param", "n_toys=4")
    assert r.code == 2 and one_line_error(r) == "error: toys need a seed (--seed)"
    r = cli("--home", str(home), "submit", "toys", "--workspace", SIMPLE, "--seed", "1", "--shards", "0")
    assert r.code == 2 and one_line_error(r) == "error: shards must be at least 1 (--shards)"


def test_no_service_error_message_names_a_cli_option() -> None:
    """Every string raised in the service packages (runs, hub, scale, projects) is free of ``--flag``
    and of ``nextstat-pro COMMAND``: the same errors will be an HTTP server's, whose clients have
    neither."""
    import ast
    import re

    src = Path(__file__).resolve().parents[1] / "src" / "nextstat_pro"
    flag = re.compile(r"(?<![\w-])--[a-z]|nextstat-pro ")
    found = []
    for package in ("runs", "hub", "scale", "projects"):
        for path in sorted((src / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Raise) and node.exc is not None:
                    found += [f"{path.relative_to(src)}:{node.lineno}: {c.value!r}" for c in ast.walk(node.exc)
                              if isinstance(c, ast.Constant) and isinstance(c.value, str) and flag.search(c.value)]
    assert not found, found
