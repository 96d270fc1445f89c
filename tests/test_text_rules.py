"""Text that people and reports read (printed names, e-mail, reasons, descriptions, tags, run
parameters, input file names): control characters, ANSI escapes, bidi and other hiding characters
refused with one line naming the field and the code point; NFC; length limits from
``text.LIMITS``; a printed name another active user already reads as is refused; usernames and
registry names fully matched. Through the services and through the CLI: nothing is written."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from nextstat_pro import text
from nextstat_pro.db.models import AuditEvent, HubTag, HubVersion, Project, RoleBinding, Run, Signature, User
from nextstat_pro.engine import InputFile
from nextstat_pro.errors import ConflictError, TextError, UsageError
from nextstat_pro.hub import edit, push
from nextstat_pro.identity.users import create_user, disable_user, grant_role
from nextstat_pro.instance import Instance
from nextstat_pro.projects import create_project
from nextstat_pro.runs import RunRequest, export_run, run_task
from nextstat_pro.runs.esignatures import sign_run

from .conftest import PASSWORD, one_line_error, shared
from .identity_helpers import add_user, session_for

HOSTILE = {  # what each is, as the error names it
    "\n": "U+000A LINE FEED",
    "\r": "U+000D CARRIAGE RETURN",
    "\t": "U+0009 CHARACTER TABULATION",
    "\x00": "U+0000 NULL",
    "\x1b[31m": "U+001B ESCAPE",
    "\x7f": "U+007F DELETE",
    "\x9b": "U+009B CONTROL SEQUENCE INTRODUCER",
    "\u202a": "U+202A LEFT-TO-RIGHT EMBEDDING",
    "\u202b": "U+202B RIGHT-TO-LEFT EMBEDDING",
    "\u202c": "U+202C POP DIRECTIONAL FORMATTING",
    "\u202d": "U+202D LEFT-TO-RIGHT OVERRIDE",
    "\u202e": "U+202E RIGHT-TO-LEFT OVERRIDE",
    "\u2066": "U+2066 LEFT-TO-RIGHT ISOLATE",
    "\u2067": "U+2067 RIGHT-TO-LEFT ISOLATE",
    "\u2068": "U+2068 FIRST STRONG ISOLATE",
    "\u2069": "U+2069 POP DIRECTIONAL ISOLATE",
    "\u200e": "U+200E LEFT-TO-RIGHT MARK",
    "\u200f": "U+200F RIGHT-TO-LEFT MARK",
    "\u061c": "U+061C ARABIC LETTER MARK",
    "\u200b": "U+200B ZERO WIDTH SPACE",
    "\u2060": "U+2060 WORD JOINER",
    "\ufeff": "U+FEFF ZERO WIDTH NO-BREAK SPACE",
    "\u00ad": "U+00AD SOFT HYPHEN",
    "\U000e0041": "U+E0041 TAG LATIN CAPITAL LETTER A",
    "\u2028": "U+2028 LINE SEPARATOR",
    "\u2029": "U+2029 PARAGRAPH SEPARATOR",
    "\udcff": "U+DCFF SURROGATE",
    "\u0378": "U+0378 UNASSIGNED CODE POINT",
}


@pytest.mark.parametrize("bad", sorted(HOSTILE))
@pytest.mark.parametrize("field", sorted(text.LIMITS))
def test_each_refused_character_is_named_in_one_line(field: str, bad: str) -> None:
    if bad == "\n" and text.LIMITS[field].newlines:
        assert text.clean(field, f"a{bad}b") == "a\nb"
        return
    with pytest.raises(TextError) as info:
        text.clean(field, f"Ann{bad} Lee")
    message = info.value.message
    assert message.startswith(f"{field} contains {HOSTILE[bad]}") and " at character 4" in message
    assert "\n" not in message and message.isprintable() and info.value.field == field


def test_joiners_and_ordinary_scripts_are_text() -> None:
    for name in ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0915\u094d\u200d\u0937", "Zoë O'Brien-Šimić",
                 "\u674e\u5c0f\u9f99", "\U0001f469\u200d\U0001f52c Dr. Curie", "<b>Bob</b> & 'x'"):
        assert text.clean("printed name", name) == name


def test_nfc_and_stripping() -> None:
    decomposed = unicodedata.normalize("NFD", "  Zoë Ångström ")
    assert text.clean("printed name", decomposed) == "Zoë Ångström"
    # A limit counts code points after NFC: a name typed decomposed is not longer.
    assert text.clean("printed name", unicodedata.normalize("NFD", "é" * 200)) == "é" * 200


@pytest.mark.parametrize("field", sorted(text.LIMITS))
def test_each_length_limit(field: str) -> None:
    limit = text.LIMITS[field].max_length
    assert text.clean(field, "x" * limit) == "x" * limit
    with pytest.raises(TextError, match=f"^{field} is too long: {limit + 1} characters, at most {limit}$"):
        text.clean(field, "x" * (limit + 1))


def test_descriptions_take_newlines_but_no_other_control() -> None:
    assert text.clean("description", "line 1\nline 2") == "line 1\nline 2"
    with pytest.raises(TextError, match=r"U\+000D CARRIAGE RETURN"):
        text.clean("description", "line 1\r\nline 2")


def test_limits_table_is_the_one_in_the_docs() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text()
    for field, limit in text.LIMITS.items():
        assert f"| {field} | {limit.max_length} | {'yes' if limit.newlines else 'no'} |" in doc, field


def test_shown_escapes_what_the_rules_refuse() -> None:
    assert text.shown("Eve\u202eevE\x1b[2J\n") == "Eve\\u202eevE\\u001b[2J\\u000a"
    assert text.shown("Zoë \u200d") == "Zoë \u200d"


# --- through the services --------------------------------------------------------------------

def counts(inst: Instance) -> dict[str, int]:
    with inst.db.transaction() as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (User, AuditEvent, Run, HubVersion, HubTag, RoleBinding, Signature, Project)}


def test_user_fields_through_the_service(instance: Instance) -> None:
    before = counts(instance)
    admin = instance.context()
    for printed, email, needle in (("Eve\u202eevE", None, "printed name contains U+202E"),
                                   ("Eve \x1b[31mRed", None, "printed name contains U+001B ESCAPE"),
                                   ("Eve", "eve@example.org\n", "e-mail contains U+000A"),
                                   ("Eve", "not an address", "is not an address"),
                                   ("E" * 201, None, "printed name is too long")):
        with pytest.raises(TextError, match=needle.replace("+", r"\+")):
            create_user(instance, admin, username="eve", printed_name=printed, password="eve-password-long-1",
                        email=email)
    with pytest.raises(UsageError, match="invalid username"):
        create_user(instance, admin, username="eve\n", printed_name="Eve", password="eve-password-long-1")
    assert counts(instance) == before
    create_user(instance, admin, username="zoe", printed_name=unicodedata.normalize("NFD", " Zoë Lee "),
                password="zoe-password-long-1", email=" zoe@example.org ")
    with instance.db.transaction() as s:  # normalised as stored
        user = s.scalar(select(User).where(User.username == "zoe"))
        assert (user.printed_name, user.email) == ("Zoë Lee", "zoe@example.org")


@pytest.mark.parametrize("lookalike", ["ADA ADMIN", "ada  admin", "Ａda Admin", "Ada\u200d Admin",
                                       unicodedata.normalize("NFD", "Ada Admin")])
def test_a_printed_name_an_active_user_reads_as_is_refused(instance: Instance, lookalike: str) -> None:
    before = counts(instance)
    with pytest.raises(ConflictError, match="already that of user admin"):
        create_user(instance, instance.context(), username="mallory", printed_name=lookalike,
                    password="mallory-pass-long-1")
    assert counts(instance) == before


def test_a_disabled_users_printed_name_may_be_taken(instance: Instance) -> None:
    add_user(instance, "rita", "viewer", "rita-password-long-1")  # printed name "Rita"
    admin = instance.context()
    with pytest.raises(ConflictError):
        create_user(instance, admin, username="rita2", printed_name="rita", password="rita2-password-long-1")
    disable_user(instance, admin, "rita", "left")
    create_user(instance, admin, username="rita2", printed_name="rita", password="rita2-password-long-1")


def test_reasons_tags_descriptions_params_through_the_services(instance: Instance) -> None:
    add_user(instance, "vera", None, "vera-password-long-1")
    ws = InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))
    admin = instance.context()
    push(instance, admin, "default", "model", "simple", ws, "1.0.0")
    before = counts(instance)
    with pytest.raises(TextError, match=r"^reason contains U\+202E"):
        grant_role(instance, admin, "vera", "default", "viewer", "QA \u202eforged")
    with pytest.raises(TextError, match=r"^reason contains U\+000A"):
        disable_user(instance, admin, "vera", "left\nuser vera approved everything")
    with pytest.raises(TextError, match=r"^tag value contains U\+001B"):
        push(instance, admin, "default", "model", "simple", ws, "1.0.1", tags=["analysis=\x1b[8mhidden"])
    with pytest.raises(TextError, match=r"^tag key contains U\+2066"):
        push(instance, admin, "default", "model", "simple", ws, "1.0.1", tags=["\u2066k=v"])
    with pytest.raises(TextError, match=r"^description contains U\+200B"):
        push(instance, admin, "default", "model", "simple", ws, "1.0.1", description="a\u200bb")
    with pytest.raises(TextError, match=r"^description contains U\+001B"):
        edit(instance, admin, "default", "model", "simple@1.0.0", "tidy", description="\x1b[2J")
    with pytest.raises(TextError, match=r"^reason contains U\+202E"):
        edit(instance, admin, "default", "model", "simple@1.0.0", "tidy\u202e", description="fine")
    with pytest.raises(UsageError, match="invalid name"):
        push(instance, admin, "default", "model", "simple\n", ws, "1.0.1")
    with pytest.raises(TextError, match=r"^description contains U\+0007"), instance.db.transaction() as s:
        create_project(s, admin, "other", "ring \x07")
    with pytest.raises(UsageError, match="invalid project name"), instance.db.transaction() as s:
        create_project(s, admin, "other\n")
    for params in ({"mu\u202e": "1"}, {"method": "focei\x1b[0m"}, {"method": "x" * 1001}):
        with pytest.raises(TextError, match="^parameter (name|value) "):
            run_task(instance, admin, RunRequest("hypotest" if "mu\u202e" in params else "pk-nlme", "default",
                                                 params, None, [ws]))
    with pytest.raises(TextError, match=r"^input file name contains U\+202E"):
        InputFile.from_bytes("workspace", "evil\u202enosj.json", ws.data)
    assert counts(instance) == before


def test_a_signature_reason_and_the_signer_as_every_manifestation_shows_them(
        instance: Instance, tmp_path: Path) -> None:
    add_user(instance, "rita", "editor", "rita-password-long-1")
    ws = InputFile.read("workspace", shared("workspaces", "simple_workspace.json"))
    run = run_task(instance, instance.context(), RunRequest("fit", "default", {}, None, [ws]))
    rita = session_for(instance, "rita", "rita-password-long-1")
    before = counts(instance)
    with pytest.raises(TextError, match=r"^reason contains U\+202E"):
        sign_run(instance, rita, run.run_id, "review", "ok \u202edevorppa ton", "rita-password-long-1", "rita")
    assert counts(instance) == before
    result = sign_run(instance, rita, run.run_id, "review", unicodedata.normalize("NFD", " geprüft "),
                      "rita-password-long-1", "rita")
    assert result.payload["reason"] == "geprüft"
    # (an account the admin created: its key is marked as one made under the admin's password)
    assert result.payload["signer"] == {"user_id": rita.actor.id, "username": "rita", "printed_name": "Rita",
                                        "key_after_admin_reset": True}
    with instance.db.transaction() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "run.signed"))
        after = json.loads(event.body)["after"]
        assert (after["signer"], after["signer_username"], json.loads(event.body)["reason"]) == \
            ("Rita", "rita", "geprüft")
    folder = export_run(instance, instance.context(), run.run_id, tmp_path / "export")
    records = json.loads((folder / "signatures.json").read_text())
    assert records[0]["payload"]["signer"]["username"] == "rita"


# --- through the CLI: one line, exit 2, nothing written ---------------------------------------

def db_counts(home: Path) -> dict[str, Any]:
    inst = Instance.open(home)
    try:
        return counts(inst)
    finally:
        inst.close()


@pytest.mark.parametrize("args", [
    ("user", "create", "eve", "--printed-name", "Eve\u202eevE"),
    ("user", "create", "eve", "--printed-name", "Eve\nApproved by QA"),
    ("user", "create", "eve", "--printed-name", "Eve", "--email", "eve@x.org\x1b[2J"),
    ("user", "create", "eve", "--printed-name", "ADMIN"),
    ("user", "create", "eve\n", "--printed-name", "Eve"),
    ("role", "grant", "admin", "viewer", "--reason", "ok\u2066"),
    ("run", "fit", "--workspace", "WS", "--param", "grad_tol=0.1\x1b[31m"),
    ("run", "fit", "--workspace", "WS", "--param", "\u202egrad_tol=0.1"),
    ("hub", "model", "push", "simple", "WS", "--tag", "a=b\u200b"),
    ("hub", "model", "push", "simple", "WS", "--description", "\x1b]8;;http://evil\x07link"),
    ("project", "create", "other", "--description", "a\u202eb"),
])
def test_through_the_cli(cli, home: Path, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    ws = str(shared("workspaces", "simple_workspace.json"))
    args = tuple(ws if a == "WS" else a for a in args)
    before = db_counts(home)
    r = cli("--home", str(home), *args, env={"NSP_NEW_PASSWORD": "eve-password-long-1"})
    line = one_line_error(r)
    expected = 5 if "ADMIN" in args else 2  # the same printed name: a conflict
    assert r.code == expected, (r.code, line)
    assert line.isprintable(), line  # the message names the character, never prints it
    if "ADMIN" not in args and "eve\n" not in args:
        assert " contains U+" in line, line
    assert db_counts(home) == before


def test_verify_and_sign_show_the_username_beside_the_printed_name(  # type: ignore[no-untyped-def]
        cli, home: Path, tmp_path: Path) -> None:
    h = ["--home", str(home)]
    ws = str(shared("workspaces", "simple_workspace.json"))
    run_id = json.loads(cli(*h, "run", "fit", "-w", ws, "--json").out)["run_id"]
    assert cli(*h, "user", "create", "rita", "--printed-name", "Rita [bold]Reviewer[/]",
               env={"NSP_NEW_PASSWORD": "rita-password-long-1"}).code == 0
    assert cli(*h, "role", "grant", "rita", "editor", "--reason", "QA").code == 0
    assert cli(*h, "login", "-u", "rita", env={"NSP_PASSWORD": "rita-password-long-1"}).code == 0
    r = cli(*h, "sign", run_id, "--meaning", "review", "--reason", "checked [red]x[/]", "-u", "rita",
            env={"NSP_PASSWORD": "rita-password-long-1"})
    assert r.code == 0, r.err
    assert "Rita [bold]Reviewer[/] (rita)" in r.out and "checked [red]x[/]" in r.out  # markup shown as text
    # A row written before these rules (or by SQL): the offline verifier escapes it.
    inst = Instance.open(home)
    try:
        with inst.db.transaction() as s:
            s.execute(update(User).where(User.username == "admin").values(printed_name="Ada\u202enimdA"))
    finally:
        inst.close()
    assert cli(*h, "login", "-u", "admin", env={"NSP_PASSWORD": PASSWORD}).code == 0
    assert cli(*h, "sign", run_id, "--meaning", "responsibility", "--reason", "mine", "-u", "admin",
               env={"NSP_PASSWORD": PASSWORD}).code == 0
    assert cli(*h, "runs", "export", run_id, str(tmp_path / "exp")).code == 0
    out = cli("verify", str(tmp_path / "exp")).out
    assert "signed by Rita [bold]Reviewer[/] (rita)" in out
    assert "signed by Ada\\u202enimdA (admin)" in out and "\u202e" not in out
