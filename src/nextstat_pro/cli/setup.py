"""``init`` and ``db``: creating an instance and migrating its schema."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..config import resolve_home
from ..db import migrate
from ..db.session import Database
from ..errors import NSPError, UsageError
from ..identity.auth import login
from ..instance import init_instance
from ..permissions import FilePolicy, shared_group_policy
from . import credentials
from .common import console, state

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


def init(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, "--home", help="Instance folder (default: $NSP_HOME or ./.nextstat-pro)."),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: SQLite in the home folder)."),
    store: str | None = typer.Option(None, "--store", help="Object store: a folder or s3://bucket/prefix."),
    admin_db: str | None = typer.Option(
        None, "--admin-db", help="PostgreSQL URL of a role that may create roles: migrations run as it, and the "
        "--db role keeps only SELECT/INSERT on the audit tables."),
    admin: str = typer.Option("admin", "--admin", help="Username of the first administrator."),
    printed_name: str | None = typer.Option(None, "--printed-name", help="Printed name of the administrator."),
    shared_group: str | None = typer.Option(
        None, "--shared-group", help="Let this Unix group read the instance's files (folders 2750, files 0640); "
        "default: owner-only (0700/0600)."),
) -> None:
    """Create an instance: database schema, object store, first admin and the `default` project."""
    home_path = resolve_home(home) if home else state(ctx).home
    permissions = shared_group_policy(shared_group) if shared_group else FilePolicy()
    password = os.environ.get("NSP_PASSWORD")
    if password is None:
        if not os.isatty(0):
            raise UsageError("no password: set NSP_PASSWORD or run init in a terminal")
        password = typer.prompt(f"Password for {admin}", hide_input=True, confirmation_prompt=True)
    instance = init_instance(
        home_path, admin=admin, password=password, printed_name=printed_name, db_url=db, store_url=store,
        admin_db_url=admin_db, permissions=permissions,
    )
    # The shipped report templates are registry versions from the start (issue 17), like
    # ``db upgrade`` registers a new package's; then a checkpoint covers their events. Here and
    # not in init_instance: compliance stands on the instance module.
    from ..compliance.registry import register_builtin_templates  # not for other commands' imports

    register_builtin_templates(instance, instance.context(), "default")
    try:
        instance.sign_checkpoint()
    except NSPError as exc:  # as init_instance: the next command witnesses the tail
        console.print(f"[yellow]warning[/] the first audit events are not yet witnessed: {exc.message}")
    # The administrator just proved the password: sign them in.
    cred = login(instance.db.transaction, instance.config.auth, admin, password)
    credentials.save(instance.config.instance_id, cred.token)
    console.print(f"[green]Initialised[/] NextStat Pro instance {instance.config.instance_id}")
    console.print(f"  home     {home_path}")
    console.print(f"  database {instance.db.dialect}")
    console.print(f"  store    {instance.store.url}")
    console.print(f"  files    {'readable by group ' + shared_group if shared_group else 'owner-only'}")
    console.print(f"  admin    {admin} (signed in); project [bold]default[/]")
    console.print(f"  log key  {instance.log_verifier()}")
    instance.close()


@db_app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    admin_db: str | None = typer.Option(None, "--admin-db", help="Run the migrations as this (PostgreSQL) role."),
) -> None:
    """Apply every pending migration to the instance's database."""
    config = state(ctx).instance().config
    app = Database(config.db_url)
    database = Database(admin_db) if admin_db else app
    try:
        before = migrate.current_revision(database.engine)
        migrate.upgrade(database.engine, app_role=app.engine.url.username if admin_db else None)
        console.print(f"database at revision {migrate.current_revision(database.engine)} (was {before})")
    finally:
        database.dispose()
        app.dispose()
    # A new package version may ship new built-in report template versions: register them now,
    # not on a report's first use (issue 17); as the instance itself (the first admin, "system").
    from ..compliance.registry import register_builtin_templates  # not for other commands' imports

    inst = state(ctx).instance()
    try:
        added = register_builtin_templates(inst, inst.context())
    except NSPError as exc:  # the schema is upgraded; reports register their templates on first use
        console.print(f"[yellow]warning[/] report templates not registered: {exc.message}")
        return
    console.print(f"report templates: {added} built-in version(s) registered")


@db_app.command("current")
def current(ctx: typer.Context) -> None:
    """Show the database's revision and the newest one this version knows."""
    config = state(ctx).instance().config
    database = Database(config.db_url)
    try:
        console.print(f"current {migrate.current_revision(database.engine)}, head {migrate.head_revision()}")
    finally:
        database.dispose()
