"""What every command group shares: the consoles, the instance of this invocation, output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ..audit.service import maybe_checkpoint
from ..config import resolve_home
from ..errors import AuthenticationError
from ..identity.actors import RequestContext
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
        with inst.db.transaction() as session:
            ctx = authenticate(session, token, "cli", allow_password_change)
        # A run whose process died is recorded as abandoned by whichever command comes next
        # (runs/lease.py): one indexed read when there is nothing to do.
        from ..runs.lease import has_expired_leases, recover_abandoned  # not for verify's imports

        if recover and has_expired_leases(inst):
            recover_abandoned(inst, ctx)
        return ctx

    def project(self, name: str | None) -> str:
        return name or self.instance().config.default_project

    def close(self) -> None:
        if self._instance is not None:
            try:
                # The checkpoint interval needs no daemon: any command may sign the next one.
                maybe_checkpoint(self._instance)
            finally:
                self._instance.close()


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if obj is None:
        obj = ctx.find_root().obj = State(resolve_home(None))
    assert isinstance(obj, State)
    return obj


def print_json(value: Any) -> None:
    # Plain print: Rich would wrap long lines and break machine-readable output.
    typer.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


ProjectOption = typer.Option(None, "--project", "-p", help="Project (default: the instance's default project).")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")
