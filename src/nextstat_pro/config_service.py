"""Reading the instance configuration, and changing it: each change is audited with before/after values."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from sqlalchemy import select

from .access.context import RequestContext
from .access.rbac import authorize
from .audit.events import append_event
from .config import SETTABLE, ApprovalPolicy, InstanceConfig, write_config
from .db.models import User
from .errors import UsageError
from .projects.service import authorized_project, get_project

if TYPE_CHECKING:
    from .instance import Instance



def show_config(instance: Instance, ctx: RequestContext) -> InstanceConfig:
    """The instance configuration as an auditor or an instance admin may read it: any password
    inside a URL is masked, because whoever reads the database password can change the records
    without going through this layer (and an auditor changes nothing)."""
    with instance.db.read() as session:
        authorize(session, ctx, "config.read")
    config = instance.config
    return config.model_copy(update={name: _mask_password(getattr(config, name))
                                     for name in ("db_url", "store_url", "witness_url", "archive_url")})


def _mask_password(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def set_config(instance: Instance, ctx: RequestContext, key: str, raw_value: str, reason: str) -> InstanceConfig:
    """Set ``key`` to the JSON value ``raw_value`` (a bare word counts as a string)."""
    if key not in SETTABLE:
        raise UsageError(f"cannot set {key!r} (settable: {', '.join(SETTABLE)})")
    try:
        value: Any = json.loads(raw_value)
    except ValueError:
        value = raw_value
    data = instance.config.model_dump()
    section, _, field = key.partition(".")
    if field and data[section] is None:  # an optional section not set yet (smtp): its first field
        data[section] = {}
    holder = data[section] if field else data
    name = field or section
    before = holder.get(name)
    holder[name] = value
    try:
        new = InstanceConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        # Naming the field matters for a section set field by field (smtp.host before smtp.from_address).
        raise UsageError(f"bad value for {key}: {where + ': ' if where and where != key else ''}{first['msg']}") \
            from None
    dumped = new.model_dump()
    after = dumped[section][field] if field else dumped[name]
    old = instance.config
    written = False
    try:
        with instance.db.transaction() as session:
            authorize(session, ctx, "instance.configure")
            append_event(session, ctx, action="config.changed", target=("config", key), before={key: before},
                         after={key: after}, reason=reason)
            # Written inside the transaction, put back if the transaction does not commit
            # (the commit itself included): neither the file nor the event without the other.
            write_config(instance.home, new)
            written = True
    except BaseException:
        if written:
            write_config(instance.home, old)
        raise
    instance.config = new
    return new


def approval_policy(instance: Instance, ctx: RequestContext, project_name: str) -> ApprovalPolicy:
    """The approval policy of a project, as its members may read it (their runs' approval state
    follows from it): ``run.read`` in the project."""
    with instance.db.read() as session:
        authorized_project(session, ctx, project_name, "run.read")
    return instance.config.approval_policy(project_name)


def set_approval_policy(instance: Instance, ctx: RequestContext, project_name: str, policy: ApprovalPolicy,
                        reason: str) -> ApprovalPolicy:
    """Replace one project's approval policy (the ``approval`` setting holds every project's):
    the same audited ``config.changed`` as ``config set approval``, by an instance admin."""

    with instance.db.read() as session:
        authorize(session, ctx, "instance.configure")  # before the lookup: a refusal tells nothing of projects
        get_project(session, project_name)  # a policy for a project that does not exist is a typo
        known = set(session.scalars(select(User.username).where(User.username.in_(policy.approvers))))
        missing = [u for u in policy.approvers if u not in known]
        if missing:
            raise UsageError(f"approval policy: no user {missing[0]!r} among the approvers")
    policies = {name: p.model_dump(mode="json") for name, p in instance.config.approval.items()}
    policies[project_name] = policy.model_dump(mode="json")
    return set_config(instance, ctx, "approval", json.dumps(policies), reason).approval_policy(project_name)
