"""What every capability's views share: a view is closed (no field it does not declare) and frozen."""

from pydantic import ConfigDict

VIEW_CONFIG = ConfigDict(extra="forbid", frozen=True)
