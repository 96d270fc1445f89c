"""The ``nextstat-pro`` command: command groups composed, errors turned into exit codes.

Command modules are imported when their command runs (``cli.lazy``): ``verify``, ``audit
verify-proof`` and ``audit verify --bundle`` import no database or S3 driver, and no command pays
for the imports of the others. ``--help`` imports every module, to list each command's help.
"""

from __future__ import annotations

import signal
import sys
from functools import cache
from pathlib import Path

import click
import typer
import typer._click.exceptions as typer_click
from rich.console import Console

from ..errors import InputError, NSPError, Terminated
from .lazy import HOME_KEY, SERVER_KEY, attr, lazy_group, open_state

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@cache
def _runs_app() -> typer.Typer:
    """``runs``: the group of cli.runs with resume, cancel and shards of cli.scale."""
    from .runs import runs_app
    from .scale import cancel, resume, shards

    runs_app.command("resume")(resume)
    runs_app.command("cancel")(cancel)
    runs_app.command("shards")(shards)
    return runs_app


app = typer.Typer(
    name="nextstat-pro",
    help="NextStat Pro: audited, reproducible NextStat runs for regulated and large organisations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # The commands, in the order --help lists them; the module of each is imported when it runs.
    cls=lazy_group({
        "init": attr(".setup", "init"),
        "login": attr(".identity", "login"),
        "logout": attr(".identity", "logout"),
        "passwd": attr(".identity", "passwd"),
        "whoami": attr(".identity", "whoami"),
        "run": attr(".runs", "run"),
        "sign": attr(".signing", "sign"),
        "submit": attr(".scale", "submit"),
        "worker": attr(".scale", "worker_app"),
        "verify": attr(".verify", "verify"),
        "crosscheck": attr(".crosscheck", "crosscheck"),
        "user": attr(".identity", "user_app"),
        "role": attr(".identity", "role_app"),
        "token": attr(".identity", "token_app"),
        "db": attr(".setup", "db_app"),
        "project": attr(".projects", "project_app"),
        "runs": _runs_app,
        "audit": lambda: _audit_app(),
        "hub": attr(".hub", "hub_app"),
        "alerts": attr(".alerts", "alerts_app"),
        "report": attr(".reports", "report_app"),
        "serve": attr(".server", "serve"),
    }),
)
# The root callback opens this invocation's instance state for every command but these: verify
# needs none, and the audit group opens it for the commands that do (see _audit).
_NO_STATE_HERE = ("verify", "audit")
# Commands that act on this machine itself (its files, database, processes): --server is refused.
_ON_THIS_MACHINE = ("init", "db", "worker", "crosscheck", "serve")


@app.callback()
def _root(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, "--home", help="Instance folder (default: $NSP_HOME or ./.nextstat-pro)."),
    server: str | None = typer.Option(None, "--server", envvar="NSP_SERVER",
                                      help="Send every command to this NextStat Pro server (e.g. "
                                           "https://nsp.example.org) instead of a local instance; sign in with "
                                           "`login --server URL`."),
) -> None:
    ctx.meta[HOME_KEY] = home
    ctx.meta[SERVER_KEY] = server or None
    if server and ctx.invoked_subcommand in _ON_THIS_MACHINE:
        from ..errors import UsageError

        raise UsageError(f"{ctx.invoked_subcommand} works on this machine's instance only: run it without --server "
                         "(and without NSP_SERVER)")
    if ctx.invoked_subcommand not in _NO_STATE_HERE:
        open_state(ctx)


# audit: its verification commands (cli.verify) and the others (cli.audit) are imported apart.
audit_app = typer.Typer(
    help="The tamper-evident audit trail.", no_args_is_help=True,
    cls=lazy_group({"verify": attr(".verify", "audit_verify"), "verify-proof": attr(".verify", "verify_proof")},
                   rest=attr(".audit", "audit_app")),
)


def _audit_app() -> typer.Typer:
    return audit_app


@audit_app.callback()
def _audit(ctx: typer.Context) -> None:
    # audit verify opens the instance itself unless it verifies a bundle; verify-proof never does.
    if ctx.invoked_subcommand not in ("verify", "verify-proof"):
        open_state(ctx)


@app.command("tasks")
def tasks() -> None:
    """List the engine tasks and their parameters."""
    from rich.table import Table

    from ..engine import TASKS
    from .common import console

    table = Table("task", "inputs", "parameters (--param key=value)", "what")
    for spec in TASKS.values():
        inputs = "--workspace [--patchset --patch]" if spec.kind == "histfactory" else "--dataset"
        params = ", ".join(f"{k}={f.default!r}" if f.default is not None else k
                           for k, f in spec.params.model_fields.items())
        table.add_row(spec.name, inputs, params, spec.summary)
    console.print(table)


config_app = typer.Typer(help="Instance configuration (changes are audited).", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the instance configuration (passwords in URLs masked)."""
    from .common import print_model, state

    print_model(state(ctx).client().show_config())


@config_app.command("set")
def config_set(ctx: typer.Context, key: str, value: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Set KEY to VALUE (JSON); the change and its reason go into the audit trail."""
    from .common import console, state

    state(ctx).client().set_config(key, value, reason)
    console.print(f"{key} = {value}")


examples_app = typer.Typer(help="Generated example inputs.", no_args_is_help=True)
app.add_typer(examples_app, name="examples")


@examples_app.command("write")
def examples_write(folder: Path, signal_points: int = typer.Option(125, "--signal-points")) -> None:
    """Write the example workspace, signal patchset and PK dataset into FOLDER."""
    from ..examples import write_examples
    from .common import console

    for role, path in write_examples(folder, signal_points).items():
        console.print(f"{role:>9}  {path}")


# typer 0.29 parses with its own copy of click: its exceptions are not click's, so both are caught.
_USAGE_ERRORS = (click.UsageError, typer_click.UsageError)
_CLICK_ERRORS = (click.ClickException, typer_click.ClickException, typer.TyperException)
_ABORTS = (click.exceptions.Abort, typer.Abort)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM as an exception, so that a run in progress ends as cancelled, recorded
    # (runs/service.py), instead of the process vanishing mid-write.
    raise Terminated()


def main() -> None:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _main()
    finally:  # the entry point called in-process (tests, an embedding program) leaves SIGTERM as it was
        signal.signal(signal.SIGTERM, previous)


def _main() -> None:
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        err_console.print("error: interrupted (SIGINT)")
        sys.exit(130)
    except Terminated:
        err_console.print("error: terminated (SIGTERM)")
        sys.exit(143)
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


if __name__ == "__main__":  # ``python -m nextstat_pro.cli.main``, the workers' fallback (scale/backends/base.py)
    main()
