"""Built-in report templates are registered at ``init`` and ``db upgrade`` (issue 17), not on a
report's first use: one ``hub.template.pushed`` event per version, nothing on a re-run, and a
built-in version added by a newer package registered by the upgrade, in every project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from nextstat_pro.audit.witness import checkpoint_name
from nextstat_pro.compliance import registry
from nextstat_pro.compliance.templates import Template, builtin_templates, load_folder
from nextstat_pro.db.models import AuditEvent, HubItem, HubVersion, Project
from nextstat_pro.instance import Instance
from nextstat_pro.projects.service import create_project

from .conftest import event_count


def registered(inst: Instance) -> dict[str, set[tuple[str, str]]]:
    """Each project's template versions, (name, version)."""
    with inst.db.transaction() as s:
        rows = s.execute(select(Project.name, HubItem.name, HubVersion.semver)
                         .join(HubItem, HubItem.project_id == Project.id)
                         .join(HubVersion, HubVersion.item_id == HubItem.id).where(HubItem.kind == "template"))
        out: dict[str, set[tuple[str, str]]] = {}
        for project, name, version in rows:
            out.setdefault(project, set()).add((name, version))
        return out


def pushed(inst: Instance) -> list[str]:
    with inst.db.transaction() as s:
        bodies = s.scalars(select(AuditEvent.body).where(AuditEvent.action == "hub.template.pushed")
                           .order_by(AuditEvent.seq))
        return [str(json.loads(b)["after"]["semver"]) for b in bodies]


def newer_builtin(tmp_path: Path) -> Template:
    """A shipped template's next version, as a newer package would carry it."""
    src = Path(registry.__file__).parent / "templates" / "audit-trail"
    folder = tmp_path / "audit-trail-1.1.0"
    shutil.copytree(src, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = "1.1.0"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return load_folder(folder)


def test_init_registers_the_builtins_once(home: Path) -> None:
    shipped = {(t.name, t.version) for t in builtin_templates()}
    instance = Instance.open(home)  # made by ``nextstat-pro init`` (the home fixture)
    try:
        assert registered(instance) == {"default": shipped}  # before any report was asked for
        assert pushed(instance) == [t.version for t in builtin_templates()]  # one event per version
        assert registry.register_builtin_templates(instance, instance.context()) == 0  # idempotent
        assert len(pushed(instance)) == len(shipped)
    finally:
        instance.close()
    # And a witnessed checkpoint covers them from the start.
    assert (home / "witness" / checkpoint_name(event_count(home))).exists()


def test_upgrade_registers_new_builtin_versions_in_every_project(cli, home: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    inst = Instance.open(home)
    with inst.db.transaction() as s:
        create_project(s, inst.context(), "second")
    inst.close()
    extra = newer_builtin(tmp_path)
    shipped = builtin_templates()
    monkeypatch.setattr(registry, "builtin_templates", lambda: [*shipped, extra])
    before = event_count(home)
    r = cli("--home", str(home), "db", "upgrade")
    assert r.code == 0, r.err
    # "second" gets every built-in, "default" only the new version.
    assert f"report templates: {len(shipped) + 2} built-in version(s) registered" in r.out
    assert event_count(home) == before + len(shipped) + 2
    inst = Instance.open(home)
    try:
        versions = registered(inst)
        assert versions["default"] == versions["second"] == {(t.name, t.version) for t in [*shipped, extra]}
    finally:
        inst.close()
    again = cli("--home", str(home), "db", "upgrade")
    assert again.code == 0 and "report templates: 0 built-in version(s) registered" in again.out
    assert event_count(home) == before + len(shipped) + 2
