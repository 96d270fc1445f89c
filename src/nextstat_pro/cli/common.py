"""What every command group shares: the consoles, the instance of this invocation, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console

from ..access.context import RequestContext
from ..config import resolve_home
from ..errors import AuthenticationError, NSPError
from ..identity.auth import authenticate
from ..instance import Instance
from . import credentials

# Off a terminal Rich would wrap at 80 columns; tables of run ids need more.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class State:
    home: Path
    _instance: Instance | None = field(default=None, repr=False)

    def instance(self, check_permissions: bool = True) -> Instance:
        """The instance of this invocation, opened once. It refuses to open when its files are
        wider than configured; ``check_permissions=False`` is for ``audit verify``, which
        reports them (``permissions.check_home_permissions``) instead."""
        if self._instance is None:
            self._instance = Instance.open(self.home, check_permissions=check_permissions)
        return self._instance

    def context(self, allow_password_change: bool = False, recover: bool = True) -> RequestContext:
        """The authenticated caller (a ``login`` session or ``$NSP_TOKEN``); with ``recover``,
        runs abandoned by a dead process are recorded as such first."""
        inst = self.instance()
        token = credentials.load(inst.config.instance_id)
        if token is None:
            raise AuthenticationError("not logged in: run `nextstat-pro login` (or set NSP_TOKEN)")
        ctx = authenticate(inst, token, "cli", allow_password_change)
        # A run whose process died is recorded as abandoned by whichever command comes next
        # (runs/lease.py): one indexed read when there is nothing to do.
        from ..runs.lease import has_expired_leases, recover_abandoned  # not for verify's imports

        if recover and has_expired_leases(inst):
            recover_abandoned(inst, ctx)
        return ctx

    def project(self, name: str | None) -> str:
        return name or self.instance().config.default_project

    def close(self) -> None:
        if self._instance is None:
            return
        # Run while the command unwinds when it failed: its own error (audit verify's verdict,
        # say) is then the one to show, and a witnessing failure is only reported beside it.
        failing = sys.exc_info()[1] is not None
        try:
            # Whatever this command appended (or a killed process left) is witnessed before it
            # ends: continuous witnessing needs no daemon (audit/witnessing.py).
            self._instance.witness_tail()
        except NSPError as exc:
            if not failing:
                raise
            err_console.print(f"error: {exc.message}", markup=False)
        finally:
            self._instance.close()


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if obj is None:
        obj = ctx.find_root().obj = State(resolve_home(None))
    assert isinstance(obj, State)
    return obj


def print_model(model: BaseModel | Sequence[BaseModel]) -> None:
    """A service's view model as the ``--json`` output: the model's own JSON (the HTTP body to come),
    a list of models as a JSON array."""
    if isinstance(model, BaseModel):
        typer.echo(model.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in model], indent=2))


@contextmanager
def options_for(**options: str) -> Iterator[None]:
    """Word a service's error about request fields (a ``FieldError``, or any error with ``fields``) for
    this command: its message, then the options that set those fields (``options_for(seed="--seed")``).
    Services speak of their requests' fields, never of one adapter's flags."""
    try:
        yield
    except NSPError as exc:
        named = [options[f] for f in getattr(exc, "fields", ()) if f in options]
        if named:
            exc.message = f"{exc.message} ({', '.join(named)})"
        raise


def print_json(value: Any) -> None:
    # Plain print: Rich would wrap long lines and break machine-readable output.
    typer.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


ProjectOption = typer.Option(None, "--project", "-p", help="Project (default: the instance's default project).")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")
