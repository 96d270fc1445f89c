"""What every command group shares: the consoles, the instance of this invocation, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from ..access.context import RequestContext
from ..config import resolve_home
from ..errors import AuthenticationError, NSPError, UsageError
from ..identity.auth import authenticate
from ..instance import Instance
from . import credentials

if TYPE_CHECKING:
    from ..client.base import Client

DEFAULT_PROJECT = "default"  # the project ``init`` creates
# Off a terminal Rich would wrap at 80 columns; tables of run ids need more.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class State:
    home: Path
    server: str | None = None  # --server / $NSP_SERVER: commands go to that server's API
    _instance: Instance | None = field(default=None, repr=False)
    _clients: list[Client] = field(default_factory=list, repr=False)

    def client(self, allow_password_change: bool = False, authenticated: bool = True) -> Client:
        """The one place that decides where a command's operations run: the server of ``--server``
        (``HttpClient``, with the credential ``login --server`` stored for it or ``$NSP_TOKEN``), else
        this machine's instance (``LocalClient`` as the authenticated caller). ``authenticated=False``
        is for the operations that make a caller (sign-in, a reset's completion)."""
        made: Client
        if self.server is not None:
            from ..client.http import HttpClient

            token = credentials.load(credentials.server_key(self.server))
            if authenticated and token is None:
                raise AuthenticationError(f"not logged in to {self.server}: run `nextstat-pro login --server "
                                          f"{self.server}` (or set NSP_TOKEN)")
            made = HttpClient(self.server, token)
        else:
            from ..client.local import LocalClient

            ctx = self.context(allow_password_change) if authenticated else None
            made = LocalClient(self.instance(), ctx)
        self._clients.append(made)
        return made

    def local_only(self, command: str) -> None:
        """Refuse ``--server`` for a command that acts on this machine's instance itself."""
        if self.server is not None:
            raise UsageError(f"{command} works on this machine's instance only: run it without --server "
                             "(and without NSP_SERVER)")

    def instance(self, check_permissions: bool = True) -> Instance:
        """The instance of this invocation, opened once. It refuses to open when its files are
        wider than configured; ``check_permissions=False`` is for ``audit verify``, which
        reports them (``permissions.check_home_permissions``) instead."""
        if self._instance is None:
            if self.server is not None:
                # Never a local instance behind the back of a user who named a server.
                raise UsageError("this command works on a local instance only: run it without --server "
                                 "(and without NSP_SERVER)")
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
        if name:
            return name
        # A server's configuration is for its admins and auditors to read: a client's default is
        # the project every instance starts with.
        return DEFAULT_PROJECT if self.server is not None else self.instance().config.default_project

    def close(self) -> None:
        for made in self._clients:
            made.close()
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
