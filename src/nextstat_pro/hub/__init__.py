"""NS-Hub: the model and dataset registry."""

from .imports import ImportFailed, import_manifest
from .refs import Ref, parse_ref
from .service import (
    KINDS,
    BatchEntryError,
    PushRequest,
    Resolved,
    edit,
    list_items,
    push,
    push_file,
    push_many,
    resolve,
    set_alias,
    show,
    versions,
)
from .views import ImportReport

__all__ = ["KINDS", "BatchEntryError", "ImportFailed", "ImportReport", "PushRequest", "Ref", "Resolved", "edit",
           "import_manifest", "list_items", "parse_ref", "push", "push_file", "push_many", "resolve", "set_alias",
           "show", "versions"]
