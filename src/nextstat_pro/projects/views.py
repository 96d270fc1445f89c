"""What the projects operations return: the documents of ``project create|list``.

Each model is the ``--json`` output of its command and the body an HTTP server will send; the JSON
Schemas in ``docs/schemas/views/`` are generated from them (``nextstat_pro.view_schemas``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from ..viewbase import VIEW_CONFIG

_VIEW = VIEW_CONFIG


class ProjectRow(BaseModel):
    """A project: the namespace runs, registry items, roles and retention belong to."""

    model_config = _VIEW

    name: str
    description: str
    created_at: datetime


VIEWS: tuple[type[BaseModel], ...] = (ProjectRow,)
