"""Projects (namespaces)."""

from .service import authorized_project, create_project, get_project, list_rows

__all__ = ["authorized_project", "create_project", "get_project", "list_rows"]
