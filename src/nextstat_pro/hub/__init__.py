"""NS-Hub: the model and dataset registry."""

from .refs import Ref, parse_ref
from .service import KINDS, Resolved, edit, list_items, push, resolve, set_alias, show, versions

__all__ = ["KINDS", "Ref", "Resolved", "edit", "list_items", "parse_ref", "push", "resolve", "set_alias", "show",
           "versions"]
