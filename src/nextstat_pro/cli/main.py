"""The ``nextstat-pro`` command: command groups composed, errors turned into exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer
import typer._click.exceptions as typer_click
from rich.table import Table

from ..config import resolve_home
from ..config_service import set_config
from ..engine import TASKS
from ..errors import InputError, NSPError
from ..examples import write_examples
from ..identity.rbac import authorize
from .audit import audit_app
from .common import State, console, err_console, print_json, state
from .hub import hub_app
from .identity import login, logout, passwd, role_app, token_app, user_app, whoami
from .projects import project_app
from .runs import run, runs_app
from .scale import cancel, resume, shards, submit, worker_app
from .setup import db_app, init
from .signing import sign, verify

app = typer.Typer(
    name="nextstat-pro",
    help="NextStat Pro: audited, reproducible NextStat runs for regulated and large organisations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, "--home", help="Instance folder (default: $NSP_HOME or ./.nextstat-pro)."),
) -> None:
    ctx.obj = State(resolve_home(home))
    ctx.call_on_close(ctx.obj.close)


app.command("init")(init)
app.command("login")(login)
app.command("logout")(logout)
app.command("passwd")(passwd)
app.command("whoami")(whoami)
app.command("run")(run)
app.command("sign")(sign)
app.command("submit")(submit)
runs_app.command("resume")(resume)
runs_app.command("cancel")(cancel)
runs_app.command("shards")(shards)
app.add_typer(worker_app, name="worker")
app.command("verify")(verify)
app.add_typer(user_app, name="user")
app.add_typer(role_app, name="role")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")
app.add_typer(project_app, name="project")
app.add_typer(runs_app, name="runs")
app.add_typer(audit_app, name="audit")
app.add_typer(hub_app, name="hub")


@app.command("tasks")
def tasks() -> None:
    """List the engine tasks and their parameters."""
    table = Table("task", "inputs", "parameters (--param key=value)", "what")
    for spec in TASKS.values():
        inputs = "--workspace [--patchset --patch]" if spec.kind == "histfactory" else "--dataset"
        params = ", ".join(f"{k}={f.default!r}" if f.default is not None else k for k, f in spec.params.model_fields.items())
        table.add_row(spec.name, inputs, params, spec.summary)
    console.print(table)


config_app = typer.Typer(help="Instance configuration (changes are audited).", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the instance configuration."""
    st = state(ctx)
    actor = st.context()
    with st.instance().db.transaction() as session:
        authorize(session, actor, "instance.configure")
    print_json(st.instance().config.model_dump())


@config_app.command("set")
def config_set(ctx: typer.Context, key: str, value: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Set KEY to VALUE (JSON); the change and its reason go into the audit trail."""
    st = state(ctx)
    set_config(st.instance(), st.context(), key, value, reason)
    console.print(f"{key} = {value}")


examples_app = typer.Typer(help="Generated example inputs.", no_args_is_help=True)
app.add_typer(examples_app, name="examples")


@examples_app.command("write")
def examples_write(folder: Path, signal_points: int = typer.Option(125, "--signal-points")) -> None:
    """Write the example workspace, signal patchset and PK dataset into FOLDER."""
    for role, path in write_examples(folder, signal_points).items():
        console.print(f"{role:>9}  {path}")


# typer 0.29 parses with its own copy of click: its exceptions are not click's, so both are caught.
_USAGE_ERRORS = (click.UsageError, typer_click.UsageError)
_CLICK_ERRORS = (click.ClickException, typer_click.ClickException, typer_click.TyperException)
_ABORTS = (click.exceptions.Abort, typer.Abort)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except NSPError as exc:
        err_console.print(f"error: {exc.message}", markup=False)
        sys.exit(exc.exit_code)
    except (typer_click.NoArgsIsHelpError, click.exceptions.NoArgsIsHelpError) as exc:
        exc.show()  # a bare group prints its help, as a user asking for it expects
        sys.exit(2)
    except _ABORTS:
        err_console.print("aborted")
        sys.exit(130)
    except _USAGE_ERRORS as exc:
        err_console.print(f"error: {_one_line(exc.format_message())} (see --help)", markup=False)
        sys.exit(2)
    except _CLICK_ERRORS as exc:
        err_console.print(f"error: {_one_line(exc.format_message())}", markup=False)
        sys.exit(exc.exit_code)
    except RecursionError:
        # Every reader of user JSON words this itself; this is the net under one that does not.
        err_console.print("error: the input is nested too deeply to read", markup=False)
        sys.exit(InputError.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
