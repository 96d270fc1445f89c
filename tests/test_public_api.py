"""The public surface of the package, so a change to it is deliberate."""

import nextstat_pro
from nextstat_pro import audit, engine, hub, runs, store


def test_public_names() -> None:
    assert set(nextstat_pro.__all__) == {"Instance", "NSPError", "__version__", "init_instance"}
    assert {"append_event", "verify_log"} <= set(audit.__all__)
    assert {"prepare", "execute", "TASKS", "InputFile"} <= set(engine.__all__)
    assert {"run_task", "export_run", "list_run_rows", "get_run"} <= set(runs.__all__)
    assert {"open_store", "LocalStore", "S3Store", "ObjectStore"} <= set(store.__all__)
    assert {"push", "push_many", "PushRequest", "import_manifest", "resolve", "list_items"} <= set(hub.__all__)


def test_audit_schema_published_in_docs_is_the_packaged_one() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    packaged = root / "src/nextstat_pro/audit/schemas/audit-event.v1.json"
    assert packaged.read_bytes() == (root / "docs/schemas/audit-event.v1.json").read_bytes()
