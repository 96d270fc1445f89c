"""What a server process runs in background threads besides witnessing: the alerts dispatcher
(one active per instance, by its database lease, however many workers or replicas run it)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..alerts.dispatcher import run_dispatcher
from ..instance import Instance


def default_background() -> tuple[Callable[[Instance, threading.Event], None], ...]:
    return (run_dispatcher,)
