"""Alerts: failures, fit quality, result regressions, stuck jobs, security and tamper findings,
derived from the audit log and delivered by webhook and e-mail (docs/alerts.md)."""

from __future__ import annotations

from . import models as models  # the tables join Base.metadata wherever alerts are used

__all__ = ["models"]
