"""``project create|list``."""

from __future__ import annotations

import typer
from rich.table import Table

from ..projects import create_project, list_projects
from .common import JsonOption, console, print_json, state

project_app = typer.Typer(help="Projects: the namespaces runs and models belong to.", no_args_is_help=True)


@project_app.command("create")
def create(ctx: typer.Context, name: str, description: str = typer.Option("", "--description")) -> None:
    """Create a project."""
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        create_project(session, actor, name, description)
    console.print(f"created project [bold]{name}[/]")


@project_app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List projects."""
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        rows = [(p.name, p.description, p.created_at.isoformat()) for p in list_projects(session, actor)]
    if as_json:
        print_json([{"name": n, "description": d, "created_at": c} for n, d, c in rows])
        return
    table = Table("project", "description", "created")
    for row in rows:
        table.add_row(*row)
    console.print(table)
