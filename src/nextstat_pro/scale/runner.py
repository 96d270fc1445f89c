"""A coordinator process: ``python -m nextstat_pro.scale.runner``, started by
``coordinator.start_process`` with a ticket on its stdin (see ``coordinator._ticket``).

It is not the CLI and takes no credential: it opens the instance at the ticket's home (its
keys and database credentials, as any in-process caller does), rebuilds the request's
context from the database by the ids in the ticket, and calls ``coordinator.coordinate``.
Detached, it first forks the coordinator into the background, prints its pid and exits, so
the caller returns at once and the coordinator is nobody's child. Only the standard library
is imported before that fork: the caller waits for it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..access.context import RequestContext


def context_from(session: Session, who: dict[str, Any]) -> RequestContext:
    """The context of a ticket, from the database: the user as it is now (refused when
    disabled or locked) and the credential's scope and role cap (refused when revoked or
    expired). A ticket names ids only, so it cannot claim more than the request had."""
    from ..access.context import RequestContext
    from ..db.models import ApiToken, User
    from ..db.types import utcnow
    from ..errors import AuthenticationError
    from ..identity.users import actor_for

    user = session.get(User, who["user_id"])
    if user is None or user.disabled or user.locked_at is not None:
        raise AuthenticationError(f"user {who['user_id']} can no longer act: the job was not coordinated")
    token = session.get(ApiToken, who["token_id"]) if who.get("token_id") else None
    if who.get("token_id") and (token is None or token.user_id != user.id or token.revoked_at is not None
                                or token.expires_at < utcnow()):
        raise AuthenticationError(f"credential {who['token_id']} was revoked or expired: the job was not coordinated")
    if token is None:
        return RequestContext(actor_for(user), interface=who.get("interface", "cli"), client=who.get("client"),
                              extra=dict(who.get("extra") or {}))
    return RequestContext(actor_for(user), interface=who.get("interface", "cli"), client=who.get("client"),
                          extra=dict(who.get("extra") or {}), token_id=token.id, token_kind=token.kind,
                          token_project_id=token.project_id, token_role=token.role)


def _detach(log: str) -> None:
    """Fork: the parent prints the child's pid and exits; the child goes on with its output
    in the log (it must let go of the caller's pipes, or the caller would wait for it)."""
    pid = os.fork()
    if pid:
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
        os._exit(0)
    _redirect(log)


def _redirect(log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)


def run(ticket: dict[str, Any]) -> int:
    """Coordinate the ticket's run; the exit code is the CLI's for the outcome."""
    from pathlib import Path

    from .. import observability
    from ..errors import NSPError, TaskFailedError
    from ..instance import Instance
    from .coordinator import coordinate

    try:
        instance = Instance.open(Path(ticket["home"]))
        try:
            with instance.db.transaction() as session:
                ctx = context_from(session, ticket["context"])
            print(f"coordinating run {ticket['run_id']} for {ctx.actor.username or ctx.actor.name} "
                  f"(pid {os.getpid()})", flush=True)
            with observability.attached(ticket.get("trace")):  # the job's span continues the caller's trace
                status = coordinate(instance, ctx, ticket["run_id"])
        finally:
            instance.close()
    except NSPError as exc:
        print(f"error: {exc.message}", flush=True)
        return exc.exit_code
    print(f"run {ticket['run_id']}: {status}", flush=True)
    return 0 if status in ("succeeded", "cancelled") else TaskFailedError.exit_code


def main() -> None:
    ticket = json.loads(sys.stdin.buffer.read())
    if ticket.get("detach"):
        _detach(ticket["log"])
    sys.exit(run(ticket))


if __name__ == "__main__":
    main()
