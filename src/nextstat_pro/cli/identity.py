"""``login``, ``logout``, ``passwd``, ``whoami``, and the ``user``, ``role`` and ``token`` groups."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from ..errors import UsageError
from . import credentials
from .common import JsonOption, ProjectOption, State, console, print_model, state

user_app = typer.Typer(help="User accounts (never deleted: disabled).", no_args_is_help=True)
role_app = typer.Typer(help="Project roles: viewer, editor, admin.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens scoped to a project and role.", no_args_is_help=True)


def secret(prompt: str, env: str = "NSP_PASSWORD", confirm: bool = False) -> str:
    """A password from ``$NSP_PASSWORD`` (non-interactive use) or a hidden prompt."""
    value = os.environ.get(env)
    if value is not None:
        return value
    if not os.isatty(0):
        raise UsageError(f"no password: set {env} or run in a terminal")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def login(ctx: typer.Context, username: str = typer.Option(None, "--username", "-u"),
          server: str | None = typer.Option(None, "--server",
                                            help="Sign in to this server (its token is kept for that URL only).")
          ) -> None:
    """Sign in; the session is kept in a 0600 file under your config folder (one per instance or
    server). Later commands go to a server only with --server URL or NSP_SERVER (docs/cli.md)."""
    st = state(ctx)
    st.server = server or st.server
    client = st.client(authenticated=False)
    username = username or os.environ.get("NSP_USER") or typer.prompt("Username")
    cred = client.sign_in(username, secret("Password"))
    path = credentials.save(_session_key(st), cred.token)
    where = f" to {st.server}" if st.server else ""
    console.print(f"logged in as {username}{where} until {cred.expires_at:%Y-%m-%d %H:%M} UTC (session in {path})",
                  markup=False)


def _session_key(st: State) -> str:
    """Where this invocation's session is kept: under its server's URL, or its instance's id."""
    return credentials.server_key(st.server) if st.server else st.instance().config.instance_id


def logout(ctx: typer.Context) -> None:
    """Revoke this session."""
    st = state(ctx)
    st.client(allow_password_change=True).logout()
    credentials.forget(_session_key(st))
    console.print("logged out")


def passwd(ctx: typer.Context,
           reset_token: str | None = typer.Option(
               None, "--reset-token", envvar="NSP_RESET_TOKEN",
               help="Set a new password with the one-time token of a reset (e-mailed to you, or handed over by "
                    "the administrator who approved the reset); no sign-in needed."),
           username: str | None = typer.Option(None, "--username", "-u",
                                               help="Whose password the reset token resets (with --reset-token).")
           ) -> None:
    """Change your password (re-encrypts your signing key), or set it with a reset token (makes your
    new signing key)."""
    st = state(ctx)
    if reset_token is not None:
        who = username or os.environ.get("NSP_USER") or typer.prompt("Username")
        new = secret("New password", env="NSP_NEW_PASSWORD", confirm=True)
        done = st.client(authenticated=False).complete_reset(who, reset_token, new)
        console.print(f"password of {done.username} set; new signing key {done.key_id[:16]}…", markup=False)
        if done.key_after_admin_reset:
            console.print("  an administrator saw the reset token: every signature with this key says it was "
                          "created after an admin reset", markup=False)
        return
    client = st.client(allow_password_change=True)
    old = secret("Current password")
    new = secret("New password", env="NSP_NEW_PASSWORD", confirm=True)
    client.change_password(old, new)
    console.print("password changed")


def whoami(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Who you are signed in as, your credential (an API token's project and role cap) and your roles."""
    me = state(ctx).client(allow_password_change=True).whoami()
    if as_json:
        print_model(me)
        return
    extra = (" — instance admin" if me.instance_admin else "") + (" — auditor (read-only)" if me.auditor else "")
    console.print(f"{me.printed_name} ({me.username}){extra}", markup=False)
    if me.credential == "api":
        console.print(f"  API token {me.token_id}: project {me.token_project}, role at most {me.token_role}",
                      markup=False)
    elif me.credential is not None:
        console.print(f"  {me.credential} {me.token_id}", markup=False)
    for project, role in me.roles.items():
        console.print(f"  {project}: {role or ('read-only' if me.auditor else 'none')}", markup=False)


@user_app.command("create")
def user_create(ctx: typer.Context, username: str, printed_name: str = typer.Option(..., "--printed-name"),
                email: str | None = typer.Option(None, "--email"),
                instance_admin: bool = typer.Option(False, "--instance-admin"),
                auditor: bool = typer.Option(False, "--auditor",
                                             help="Instance-level auditor: reads and verifies everything, changes "
                                                  "nothing.")) -> None:
    """Create a user (their initial password from $NSP_NEW_PASSWORD or a prompt)."""
    client = state(ctx).client()
    password = secret(f"Password for {username}", env="NSP_NEW_PASSWORD", confirm=True)
    client.create_user(username=username, printed_name=printed_name, password=password, email=email,
                instance_admin=instance_admin, auditor=auditor)
    console.print(f"created user {username}" + (" (auditor)" if auditor else ""))


@user_app.command("set-auditor")
def user_set_auditor(ctx: typer.Context, username: str,
                     revoke: bool = typer.Option(False, "--revoke", help="Take the auditor role away instead."),
                     reason: str = typer.Option(..., "--reason")) -> None:
    """Grant USERNAME the instance-level auditor role (read and verify everything, change nothing)."""
    state(ctx).client().set_auditor(username, not revoke, reason)
    console.print(f"{username} is {'no longer ' if revoke else ''}an auditor")


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    rows = state(ctx).client().list_users()
    if as_json:
        print_model(rows)
        return
    columns = list(rows[0].model_dump()) if rows else ["username"]
    table = Table(*columns)
    for r in rows:
        table.add_row(*[str(v) for v in r.model_dump().values()])
    console.print(table)


@user_app.command("disable")
def user_disable(ctx: typer.Context, username: str, reason: str = typer.Option(..., "--reason")) -> None:
    state(ctx).client().disable_user(username, reason)
    console.print(f"disabled {username}")


@user_app.command("reset-password")
def user_reset(ctx: typer.Context, username: str, reason: str = typer.Option(..., "--reason"),
               as_json: bool = JsonOption) -> None:
    """Reset USERNAME's password: a one-time token e-mailed to them (SMTP configured), or a request
    that a second instance admin approves. You never choose or see their password."""
    done = state(ctx).client().reset_password(username, reason)
    if as_json:
        print_model(done)
    elif done.channel == "email":
        console.print(f"e-mailed {username} a one-time reset token (to {done.sent_to}, valid until "
                      f"{done.expires_at:%Y-%m-%d %H:%M} UTC); they set a new password with "
                      "`nextstat-pro passwd --reset-token`", markup=False)
    else:
        console.print(f"asked for a reset of {username}'s password: another instance admin must approve it "
                      f"(nextstat-pro user approve-reset {username} --reason ...) before "
                      f"{done.expires_at:%Y-%m-%d %H:%M} UTC", markup=False)


@user_app.command("approve-reset")
def user_approve_reset(ctx: typer.Context, username: str, reason: str = typer.Option(..., "--reason"),
                       as_json: bool = JsonOption) -> None:
    """Approve another admin's reset of USERNAME's password (no SMTP) and print the one-time token to
    hand to them; the signing key they then make is marked as created after an admin reset."""
    done = state(ctx).client().approve_reset(username, reason)
    if as_json:
        print_model(done)
        return
    console.print(f"approved the reset of {username}'s password asked for by {done.requested_by}; give them this "
                  f"one-time token (valid until {done.expires_at:%Y-%m-%d %H:%M} UTC, shown once):", markup=False)
    typer.echo(done.token)
    console.print(f"they set a new password with: nextstat-pro passwd -u {username} --reset-token TOKEN",
                  markup=False)


@role_app.command("grant")
def role_grant(ctx: typer.Context, username: str, role: str, project: str | None = ProjectOption,
               reason: str = typer.Option(..., "--reason")) -> None:
    st = state(ctx)
    st.client().grant_role(username, st.project(project), role, reason)
    console.print(f"{username} is {role} in {st.project(project)}")


@role_app.command("list")
def role_list(ctx: typer.Context, project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """Who has which role in the project."""
    st = state(ctx)
    rows = st.client().list_role_bindings(st.project(project))
    if as_json:
        print_model(rows)
        return
    table = Table("username", "printed name", "role", "since (UTC)")
    for r in rows:
        table.add_row(r.username, r.printed_name, r.role, f"{r.since:%Y-%m-%d %H:%M}")
    console.print(table)


@role_app.command("revoke")
def role_revoke(ctx: typer.Context, username: str, project: str | None = ProjectOption,
                reason: str = typer.Option(..., "--reason")) -> None:
    st = state(ctx)
    st.client().revoke_role(username, st.project(project), reason)
    console.print(f"{username} has no role in {st.project(project)} any more")


@token_app.command("create")
def token_create(ctx: typer.Context, name: str, role: str = typer.Option("viewer", "--role"),
                 days: int = typer.Option(90, "--days"), project: str | None = ProjectOption) -> None:
    """Create an API token (printed once) for use as NSP_TOKEN."""
    st = state(ctx)
    cred = st.client().create_token(st.project(project), role, name, days)
    typer.echo(cred.token)


@token_app.command("list")
def token_list(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Your sessions and API tokens still in force (their ids, never their secrets)."""
    rows = state(ctx).client().list_tokens()
    if as_json:
        print_model(rows)
        return
    table = Table("id", "kind", "name", "project", "role", "expires (UTC)", "")
    for r in rows:
        table.add_row(r.token_id, r.kind, r.name, r.project or "", r.role or "", f"{r.expires_at:%Y-%m-%d %H:%M}",
                      "this one" if r.current else "")
    console.print(table)


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: str, reason: str = typer.Option(..., "--reason")) -> None:
    state(ctx).client().revoke_token(token_id, reason)
    console.print(f"revoked {token_id}")
