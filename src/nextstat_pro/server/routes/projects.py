"""Projects: list the caller's, create one (instance admins)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ...projects.service import create, list_rows
from ...projects.views import ProjectRow
from ..auth import Caller, Inst
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["projects"])


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)


@router.get("/projects", response_model=list[ProjectRow], summary="Projects the caller can see")
def list_projects(inst: Inst, ctx: Caller) -> list[ProjectRow]:
    return list_rows(inst, ctx)


@router.post("/projects", response_model=ProjectRow, status_code=201, summary="Create a project")
def create_project(inst: Inst, ctx: Caller, body: NewProject) -> ProjectRow:
    return create(inst, ctx, body.name, body.description)
