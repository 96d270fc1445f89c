"""Engine tasks: pure functions of (inputs, parameters, seed) computed with nextstat."""

from .inputs import InputFile
from .params import parse_pairs
from .tasks import TASKS, PreparedTask, engine_info, execute, get_task, platform_info, prepare

__all__ = [
    "TASKS",
    "InputFile",
    "PreparedTask",
    "engine_info",
    "execute",
    "get_task",
    "parse_pairs",
    "platform_info",
    "prepare",
]
