"""What a server process runs in background threads besides witnessing: the alerts dispatcher
(one active per instance, by its database lease, however many workers run it)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from ..instance import Instance


def default_background() -> tuple[Callable[[Instance, threading.Event], None], ...]:
    try:
        dispatcher = importlib.import_module("nextstat_pro.alerts.dispatcher")
    except ModuleNotFoundError:
        return ()
    run: Callable[[Instance, threading.Event], None] = dispatcher.run_dispatcher
    return (run,)
