"""Verification needs no database: the ``verify`` package and the commands a QA reviewer runs on a
laptop (``verify``, ``audit verify-proof``, ``audit verify --bundle``) load no SQLAlchemy, Alembic,
psycopg or boto3 and nothing of the instance, and every failure is one VerificationError naming
what failed.

The import checks run in a fresh interpreter: this test process has imported everything already.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import nextstat_pro
from nextstat_pro.audit.export import export_bundle
from nextstat_pro.audit.service import prove
from nextstat_pro.canonical import canonical_json
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import IntegrityError
from nextstat_pro.instance import init_instance
from nextstat_pro.runs import RunRequest, export_run, run_task
from nextstat_pro.runs.esignatures import sign_run
from nextstat_pro.verify import VerificationError, verify_run_folder
from nextstat_pro.verify.dsse import EnvelopeError
from nextstat_pro.verify.merkle import ProofError
from nextstat_pro.verify.note import NoteError
from nextstat_pro.verify.proofs import ProofVerificationError

from .conftest import shared
from .identity_helpers import add_user, session_for

# Top-level packages an offline verification must not import.
FORBIDDEN = {"sqlalchemy", "alembic", "psycopg", "psycopg2", "psycopg_binary", "boto3", "botocore", "s3transfer",
             "pyhf", "numpy", "nextstat"}
# Of ours, what an offline verification may load; nothing of the instance, db, audit, store, runs, ...
OFFLINE_OURS = {"nextstat_pro", "nextstat_pro.errors", "nextstat_pro.canonical", "nextstat_pro.csvsafe",
                "nextstat_pro.text", "nextstat_pro.cli", "nextstat_pro.cli.main", "nextstat_pro.cli.lazy",
                "nextstat_pro.cli.verify"}
PASSWORD = "rita-password-1"

PROBE_TAIL = """
import json as _json, os as _os, sys as _sys
with open(_os.environ["NSP_PROBE_OUT"], "w") as _fh:
    _json.dump({"code": code, "modules": sorted(_sys.modules)}, _fh)
"""
CLI_PROBE = """
import sys
sys.argv = ["nextstat-pro", *{args!r}]
from nextstat_pro.cli.main import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
"""


def probe(code: str, tmp_path: Path) -> tuple[int, set[str], subprocess.CompletedProcess[str]]:
    """Run ``code`` (which sets ``code``) in a fresh interpreter; return its ``code``, the modules it
    loaded and the process."""
    out = tmp_path / "probe.json"
    env = {k: v for k, v in os.environ.items() if k not in ("NSP_HOME", "NSP_TOKEN")}
    proc = subprocess.run([sys.executable, "-c", code + PROBE_TAIL], capture_output=True, text=True, timeout=120,
                          env={**env, "NSP_PROBE_OUT": str(out)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    return result["code"], set(result["modules"]), proc


def assert_offline(modules: set[str]) -> None:
    assert not {m.split(".")[0] for m in modules} & FORBIDDEN, sorted(
        m for m in modules if m.split(".")[0] in FORBIDDEN)[:10]
    ours = {m for m in modules if m.split(".")[0] == "nextstat_pro" and not m.startswith("nextstat_pro.verify")}
    assert ours <= OFFLINE_OURS, sorted(ours - OFFLINE_OURS)


def resum(folder: Path) -> None:
    """Rewrite SHA256SUMS after an edit, as someone hiding the edit would."""
    names = [line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    (folder / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names))


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A signed, exported run folder, an inclusion proof, an audit bundle (CSV) and the log key,
    made by a real instance that is closed before anything is verified."""
    base = tmp_path_factory.mktemp("offline")
    inst = init_instance(base / "home", admin="admin", password="test-password-123", printed_name="Ada Admin")
    try:
        add_user(inst, "rita", "editor", PASSWORD)
        req = RunRequest("fit", "default", {}, None,
                         [InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))])
        run_id = run_task(inst, inst.context(), req).run_id
        sign_run(inst, session_for(inst, "rita", PASSWORD), run_id, "review", "inputs checked", PASSWORD, "rita")
        folder = export_run(inst, inst.context(), run_id, base / "export")
        (base / "proof.json").write_text(prove(inst, inst.context(), "1").model_dump_json())
        export_bundle(inst, inst.context(), base / "bundle", "csv")
        key = inst.home / "witness" / "log.pub"
    finally:
        inst.close()
    return {"folder": folder, "proof": base / "proof.json", "bundle": base / "bundle", "key": key}


def test_verify_package_and_an_exported_run_load_no_database(offline: dict[str, Path], tmp_path: Path) -> None:
    code, modules, _ = probe(
        "from pathlib import Path\n"
        "import nextstat_pro.verify as v\n"
        f"r = v.verify_run_folder(Path({str(offline['folder'])!r}))\n"
        "assert r.signatures and r.events >= 5, r\n"
        "code = 0\n", tmp_path)
    assert code == 0
    assert_offline(modules)
    assert "nextstat_pro.instance" not in modules and "sqlalchemy" not in modules


@pytest.mark.parametrize("command", [
    ["verify", "{folder}"],
    ["verify", "{folder}", "--log-key", "{key}"],
    ["audit", "verify-proof", "{proof}", "--key", "{key}"],
    ["audit", "verify", "--bundle", "{bundle}", "--key", "{key}"],
], ids=["verify", "verify-pinned", "audit-verify-proof", "audit-verify-bundle"])
def test_offline_commands_load_no_database(offline: dict[str, Path], tmp_path: Path, command: list[str]) -> None:
    args = [a.format(**{k: str(v) for k, v in offline.items()}) for a in command]
    code, modules, proc = probe(CLI_PROBE.format(args=args), tmp_path)
    assert code == 0, proc.stderr
    assert "verified" in proc.stdout
    assert_offline(modules)


def test_a_failing_offline_command_loads_no_database_either(offline: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "export"
    shutil.copytree(offline["folder"], folder)
    (folder / "outputs" / "result.json").write_bytes(b"{}")
    code, modules, proc = probe(CLI_PROBE.format(args=["verify", str(folder)]), tmp_path)
    assert code == IntegrityError.exit_code
    assert proc.stderr.strip() == "error: verification FAILED: outputs/result.json: digest mismatch (file changed)"
    assert_offline(modules)


def _edit_result(folder: Path) -> None:
    (folder / "outputs" / "result.json").write_bytes(b"{}")


def _edit_signature_reason(folder: Path) -> None:
    records = json.loads((folder / "signatures.json").read_text())
    records[0]["payload"]["reason"] = "nothing checked"
    (folder / "signatures.json").write_text(json.dumps(records))
    resum(folder)


def _drop_run_started(folder: Path) -> None:
    events = [json.loads(line) for line in (folder / "audit/events.jsonl").read_text().splitlines()]
    kept = [e for e in events if e["action"] != "run.started"]
    (folder / "audit/events.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept))
    resum(folder)


def _drop_signature(folder: Path) -> None:
    (folder / "signatures.json").write_text("[]\n")
    resum(folder)


def _forge_signer_key(folder: Path) -> None:
    """Rita's review re-signed with a key of the forger's own, carried in signatures.json."""
    forged = Ed25519PrivateKey.generate()
    raw = forged.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    records = json.loads((folder / "signatures.json").read_text())
    records[0].update(public_key=raw.hex(), key_id=hashlib.sha256(raw).hexdigest(), signature=base64.b64encode(
        forged.sign(canonical_json(records[0]["payload"]))).decode())
    (folder / "signatures.json").write_text(json.dumps(records))
    resum(folder)


def _edit_envelope(folder: Path) -> None:
    envelope = json.loads((folder / "run.intoto.jsonl").read_text().splitlines()[0])
    envelope["signatures"][0]["sig"] = envelope["signatures"][0]["sig"][::-1]
    (folder / "run.intoto.jsonl").write_text(json.dumps(envelope) + "\n")
    resum(folder)


def _edit_checkpoint(folder: Path) -> None:
    note = (folder / "audit/checkpoint.note").read_text()
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    (folder / "audit/checkpoint.note").write_text("\n".join(lines))
    resum(folder)


@pytest.mark.parametrize(("tamper", "named"), [
    (_edit_result, r"^outputs/result\.json: digest mismatch"),
    (_edit_signature_reason, r"^signature \S+ by Rita does not verify"),
    (_drop_run_started, r"^the run's run\.started audit event is missing from the export"),
    (_drop_signature, r"^signature \S+: the sealed run\.signed event \d+ records it, but signatures\.json does not"),
    (_forge_signer_key, r"^signature \S+ by Rita \(rita\): key \S+ was registered by no sealed user\.key_created"),
    (_edit_envelope, r"^run\.intoto\.jsonl: "),
    (_edit_checkpoint, r"^audit checkpoint: signature by \S+ does not verify"),
], ids=["artifact", "e-signature", "audit-event", "signature-left-out", "forged-signer-key", "envelope",
        "checkpoint"])
def test_a_tampered_folder_fails_with_one_error_naming_what(offline: dict[str, Path], tmp_path: Path,
                                                            tamper: Any, named: str) -> None:
    folder = tmp_path / "export"
    shutil.copytree(offline["folder"], folder)
    verify_run_folder(folder)
    tamper(folder)
    with pytest.raises(VerificationError, match=named) as failed:
        verify_run_folder(folder)
    assert isinstance(failed.value, IntegrityError) and failed.value.exit_code == IntegrityError.exit_code


def test_every_verification_error_is_one_integrity_error() -> None:
    for cls in (ProofError, NoteError, EnvelopeError, ProofVerificationError):
        assert issubclass(cls, VerificationError)
    assert issubclass(VerificationError, IntegrityError)


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (functions and TYPE_CHECKING too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # ``from . import x`` names a module
    return found


def test_verify_package_imports_nothing_of_the_instance() -> None:
    """The closure of what ``nextstat_pro.verify`` imports, read from the source: ours only the
    verify package and leaf modules, and no database, store or network library."""
    src = Path(nextstat_pro.__file__).parent

    def source(module: str) -> Path | None:
        rel = Path(*module.split(".")[1:])
        for candidate in (src / rel / "__init__.py", src / rel.with_suffix(".py")):
            if candidate.is_file():
                return candidate
        return None

    seen: set[str] = set()
    todo = ["nextstat_pro.verify"]
    third_party: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = source(module)
        assert path is not None, module
        for target in _imports(path, module):
            top = target.split(".")[0]
            if top == "nextstat_pro":
                if source(target) is not None:
                    todo.append(target)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    ours = seen - {m for m in seen if m.startswith("nextstat_pro.verify")}
    assert ours <= {"nextstat_pro", "nextstat_pro.errors", "nextstat_pro.canonical", "nextstat_pro.csvsafe"}, ours
    assert not any(m.startswith(("nextstat_pro.instance", "nextstat_pro.db", "nextstat_pro.audit")) for m in seen)
    # orjson: canonical JSON's fast path (a self-contained extension, no database or network).
    assert third_party <= {"cryptography", "rfc8785", "defusedcsv", "orjson"}, third_party


def test_help_lists_every_command(cli) -> None:  # type: ignore[no-untyped-def]
    top = cli("--help")
    assert top.code == 0
    for name in ("init", "login", "logout", "passwd", "whoami", "run", "sign", "submit", "worker", "verify",
                 "crosscheck", "user", "role", "token", "db", "project", "runs", "audit", "hub", "tasks", "config",
                 "examples"):
        assert f"│ {name} " in top.out, name
    audit = cli("audit", "--help")
    for name in ("verify", "verify-proof", "checkpoint", "checkpoints", "prove", "consistency", "log", "history",
                 "export", "retention"):
        assert f"│ {name} " in audit.out, name
    runs = cli("runs", "--help")
    for name in ("list", "show", "artifacts", "export", "resume", "cancel", "shards"):
        assert f"│ {name} " in runs.out, name
