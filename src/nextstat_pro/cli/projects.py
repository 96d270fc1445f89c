"""``project create|list``."""

from __future__ import annotations

import typer
from rich.table import Table

from .common import JsonOption, console, print_model, state

project_app = typer.Typer(help="Projects: the namespaces runs and models belong to.", no_args_is_help=True)


@project_app.command("create")
def create(ctx: typer.Context, name: str, description: str = typer.Option("", "--description"),
           as_json: bool = JsonOption) -> None:
    """Create a project."""
    project = state(ctx).client().create_project(name, description)
    if as_json:
        print_model(project)
        return
    console.print(f"created project [bold]{project.name}[/]")


@project_app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List projects."""
    rows = state(ctx).client().list_projects()
    if as_json:
        print_model(rows)
        return
    table = Table("project", "description", "created")
    for row in rows:
        table.add_row(row.name, row.description, row.created_at.isoformat())
    console.print(table)
