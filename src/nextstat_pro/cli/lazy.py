"""What lets ``nextstat-pro`` start without importing what the command it runs does not need.

A command group made by ``lazy_group`` knows its commands by name and imports a command's module
when that command is looked up: to run it, to print the group's ``--help`` (which lists them all),
or to complete it. So ``nextstat-pro verify FOLDER`` imports ``cli.verify`` and the ``verify``
package, and never the service layer, SQLAlchemy or the database and S3 drivers that the other
commands' modules import (``tests/test_verify_offline.py``).

The instance of an invocation (``cli.common.State``) is opened the same way: the root callback
records ``--home`` and ``open_state`` makes the State when a command that needs one is about to
run (``cli.common`` imports the instance, hence the database layer).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import typer
import typer._click as tclick
import typer.main
import typer.models
from typer.core import TyperGroup

# A loader returns a command: a typer.Typer (a group), a click command, or a command function.
Loader = Callable[[], object]
HOME_KEY = "nextstat_pro.home"
SERVER_KEY = "nextstat_pro.server"  # --server / $NSP_SERVER (cli.common.State.client)


def attr(module: str, name: str) -> Loader:
    """A loader of ``module.name`` (``module`` relative to ``nextstat_pro.cli``, e.g. ``.audit``)."""
    return lambda: getattr(importlib.import_module(module, __package__), name)


def to_click(obj: object, name: str, markup: Any) -> tclick.Command:
    """The click command of what a loader returned, named ``name``."""
    if isinstance(obj, typer.Typer):
        command: tclick.Command = typer.main.get_group(obj)
    elif isinstance(obj, tclick.Command):
        command = obj
    elif callable(obj):
        info = typer.models.CommandInfo(name=name, callback=obj)
        command = typer.main.get_command_from_info(info, pretty_exceptions_short=True, rich_markup_mode=markup)
    else:
        raise TypeError(f"command {name!r} loaded {obj!r}, not a command")
    command.name = name
    return command


class _Commands(MutableMapping[str, tclick.Command]):
    """A group's commands: the ones made already, and the others by name until looked up.
    ``rest`` loads a Typer whose commands are the group's remaining ones (names not listed)."""

    def __init__(self, made: Mapping[str, tclick.Command], loaders: Mapping[str, Loader],
                 rest: Loader | None, markup: Any) -> None:
        self._made = dict(made)
        self._loaders = dict(loaders)
        self._rest = rest
        self._markup = markup
        self._rest_group: TyperGroup | None = None

    def _rest_commands(self) -> MutableMapping[str, tclick.Command]:
        if self._rest is None:
            return {}
        if self._rest_group is None:
            group = to_click(self._rest(), "", self._markup)
            assert isinstance(group, TyperGroup)
            self._rest_group = group
        return self._rest_group.commands

    def _names(self) -> list[str]:
        names = [*self._loaders, *(n for n in self._made if n not in self._loaders)]
        if self._rest is not None:
            names += [n for n in self._rest_commands() if n not in names]
        return names

    def __getitem__(self, name: str) -> tclick.Command:
        if name not in self._made:
            if name in self._loaders:
                self._made[name] = to_click(self._loaders[name](), name, self._markup)
            else:
                rest = self._rest_commands()
                if name not in rest:
                    raise KeyError(name)
                self._made[name] = rest[name]
        return self._made[name]

    def __setitem__(self, name: str, command: tclick.Command) -> None:
        self._made[name] = command

    def __delitem__(self, name: str) -> None:
        self._made.pop(name, None)
        self._loaders.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._made or name in self._loaders or (
            isinstance(name, str) and name in self._rest_commands())


def lazy_group(loaders: Mapping[str, Loader], rest: Loader | None = None) -> type[TyperGroup]:
    """A Typer group class (``typer.Typer(cls=...)``) whose commands ``loaders`` makes when they are
    looked up, listed first and in this order; then the ones registered on the Typer itself; then,
    for the names in neither, the commands of the Typer that ``rest`` loads."""

    class LazyGroup(TyperGroup):
        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            self.commands = _Commands(self.commands, loaders, rest, self.rich_markup_mode)

        def list_commands(self, ctx: tclick.Context) -> list[str]:
            return list(self.commands)  # the names, without importing every command

    return LazyGroup


def open_state(ctx: typer.Context) -> None:
    """Give this invocation its ``cli.common.State`` (the instance, opened when first used) unless
    it has one. Commands that call ``cli.common.state`` run after this."""
    root = ctx.find_root()
    if root.obj is None:
        from ..config import resolve_home
        from .common import State

        home: Path | None = root.meta.get(HOME_KEY)
        server: str | None = root.meta.get(SERVER_KEY)
        root.obj = State(resolve_home(home), server=server)
        root.call_on_close(root.obj.close)
