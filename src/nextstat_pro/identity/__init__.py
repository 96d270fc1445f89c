"""Identity: who acts (actors), user accounts (``identity.users``), later authentication and roles."""

from ..access.context import Actor, RequestContext

__all__ = ["Actor", "RequestContext"]
