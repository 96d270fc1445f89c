"""The registry's operations, one import away: every change audited, every read authorized.

The work is split by job: ``resolve`` (references to exactly one version, a version's bytes, a run's
input files), ``push`` (one version or many, content-addressed), ``documents`` (lists, tag searches,
show, diff) and ``metadata`` (aliases, tags, descriptions); ``imports``, ``likelihood`` and
``retention`` build on them. This module re-exports their public names, as callers import them.
"""

from __future__ import annotations

from .documents import (
    VersionRow,
    diff_models,
    list_items,
    refresh_statistics,
    search,
    show,
    version_doc,
    version_docs,
    versions,
)
from .metadata import edit, set_alias
from .push import BatchEntryError, PushRequest, check_request, push, push_file, push_in, push_many
from .resolve import KINDS, ROLES, Kind, Resolved, materialize, read_bytes, read_source, resolve, resolve_in

__all__ = ["KINDS", "ROLES", "BatchEntryError", "Kind", "PushRequest", "Resolved", "VersionRow", "check_request",
           "diff_models", "edit", "list_items", "materialize", "push", "push_file", "push_in", "push_many",
           "read_bytes", "read_source", "refresh_statistics", "resolve", "resolve_in", "search", "set_alias", "show",
           "version_doc", "version_docs", "versions"]
