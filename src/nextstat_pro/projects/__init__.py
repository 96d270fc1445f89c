"""Projects (namespaces)."""

from .service import create_project, get_project, list_projects

__all__ = ["create_project", "get_project", "list_projects"]
