"""NextStat Pro: the enterprise layer around the NextStat statistical engine."""

from importlib.metadata import version

from .errors import NSPError
from .instance import Instance, init_instance

__version__ = version("nextstat-pro")
__all__ = ["Instance", "NSPError", "__version__", "init_instance"]
