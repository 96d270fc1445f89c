"""``login``, ``logout``, ``passwd``, ``whoami``, and the ``user``, ``role`` and ``token`` groups."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from ..errors import UsageError
from ..identity import auth
from ..identity.rbac import role_in
from ..identity.users import create_user, disable_user, grant_role, list_users, reset_password, revoke_role
from ..projects import get_project, list_projects
from . import credentials
from .common import JsonOption, ProjectOption, console, print_json, state

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


def login(ctx: typer.Context, username: str = typer.Option(None, "--username", "-u")) -> None:
    """Sign in; the session is kept in a 0600 file under your config folder."""
    inst = state(ctx).instance()
    username = username or os.environ.get("NSP_USER") or typer.prompt("Username")
    cred = auth.login(inst.db.transaction, inst.config.auth, username, secret("Password"))
    path = credentials.save(inst.config.instance_id, cred.token)
    console.print(f"logged in as {username} until {cred.expires_at:%Y-%m-%d %H:%M} UTC (session in {path})")


def logout(ctx: typer.Context) -> None:
    """Revoke this session."""
    st = state(ctx)
    inst = st.instance()
    actor = st.context(allow_password_change=True)
    with inst.db.transaction() as session:
        auth.logout(session, actor)
    credentials.forget(inst.config.instance_id)
    console.print("logged out")


def passwd(ctx: typer.Context) -> None:
    """Change your password (re-encrypts your signing key, or creates it after a reset)."""
    st = state(ctx)
    actor = st.context(allow_password_change=True)
    old = secret("Current password")
    new = secret("New password", env="NSP_NEW_PASSWORD", confirm=True)
    with st.instance().db.transaction() as session:
        auth.change_password(session, actor, st.instance().config.auth, old, new)
    console.print("password changed")


def whoami(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Who you are signed in as, and your roles."""
    st = state(ctx)
    actor = st.context(allow_password_change=True)
    with st.instance().db.transaction() as session:
        roles = {p.name: ("admin" if actor.actor.is_instance_admin else role_in(session, actor.actor.id, p))
                 for p in list_projects(session, actor)}
    doc = {"username": actor.actor.username, "printed_name": actor.actor.name,
           "instance_admin": actor.actor.is_instance_admin, "credential": actor.token_kind, "roles": roles}
    if as_json:
        print_json(doc)
    else:
        admin = " — instance admin" if doc["instance_admin"] else ""
        console.print(f"{doc['printed_name']} ({doc['username']}){admin}")
        for project, role in roles.items():
            console.print(f"  {project}: {role}")


@user_app.command("create")
def user_create(ctx: typer.Context, username: str, printed_name: str = typer.Option(..., "--printed-name"),
                email: str | None = typer.Option(None, "--email"),
                instance_admin: bool = typer.Option(False, "--instance-admin")) -> None:
    """Create a user (their initial password from $NSP_NEW_PASSWORD or a prompt)."""
    st = state(ctx)
    actor = st.context()
    password = secret(f"Password for {username}", env="NSP_NEW_PASSWORD", confirm=True)
    inst = st.instance()
    with inst.db.transaction() as session:
        create_user(session, actor, username=username, printed_name=printed_name, password=password, email=email,
                    instance_admin=instance_admin, policy=inst.config.auth)
    console.print(f"created user {username}")


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        rows = [{"username": u.username, "printed_name": u.printed_name, "email": u.email,
                 "instance_admin": u.is_instance_admin, "disabled": u.disabled, "locked": u.locked_at is not None,
                 "must_change_password": u.must_change_password} for u in list_users(session, actor)]
    if as_json:
        print_json(rows)
        return
    table = Table(*rows[0].keys()) if rows else Table("username")
    for r in rows:
        table.add_row(*[str(v) for v in r.values()])
    console.print(table)


@user_app.command("disable")
def user_disable(ctx: typer.Context, username: str, reason: str = typer.Option(..., "--reason")) -> None:
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        disable_user(session, actor, username, reason)
    console.print(f"disabled {username}")


@user_app.command("reset-password")
def user_reset(ctx: typer.Context, username: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Set a temporary password ($NSP_NEW_PASSWORD or prompt); the user must change it."""
    st = state(ctx)
    actor = st.context()
    temporary = secret(f"Temporary password for {username}", env="NSP_NEW_PASSWORD", confirm=True)
    inst = st.instance()
    with inst.db.transaction() as session:
        reset_password(session, actor, username, temporary, reason, policy=inst.config.auth)
    console.print(f"reset the password of {username}; they must change it at next sign-in")


@role_app.command("grant")
def role_grant(ctx: typer.Context, username: str, role: str, project: str | None = ProjectOption,
               reason: str = typer.Option(..., "--reason")) -> None:
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        grant_role(session, actor, username, get_project(session, st.project(project)), role, reason)
    console.print(f"{username} is {role} in {st.project(project)}")


@role_app.command("revoke")
def role_revoke(ctx: typer.Context, username: str, project: str | None = ProjectOption,
                reason: str = typer.Option(..., "--reason")) -> None:
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        revoke_role(session, actor, username, get_project(session, st.project(project)), reason)
    console.print(f"{username} has no role in {st.project(project)} any more")


@token_app.command("create")
def token_create(ctx: typer.Context, name: str, role: str = typer.Option("viewer", "--role"),
                 days: int = typer.Option(90, "--days"), project: str | None = ProjectOption) -> None:
    """Create an API token (printed once) for use as NSP_TOKEN."""
    st = state(ctx)
    actor = st.context()
    inst = st.instance()
    with inst.db.transaction() as session:
        cred = auth.create_token(session, actor, inst.config.auth, get_project(session, st.project(project)), role,
                                 name, days)
    typer.echo(cred.token)


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: str, reason: str = typer.Option(..., "--reason")) -> None:
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        auth.revoke_token(session, actor, token_id, reason)
    console.print(f"revoked {token_id}")
