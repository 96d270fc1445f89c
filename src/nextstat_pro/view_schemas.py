"""The published JSON Schemas of the views: what ``--json`` prints and what the HTTP server will send.

Every capability's ``views`` module lists its command documents in ``VIEWS``; each gets
``docs/schemas/views/<capability>.<Model>.json``, generated from the model (``mode="serialization"``:
the JSON as printed). ``python -m nextstat_pro.view_schemas`` writes them; ``--check`` writes nothing and
exits 1 naming every file that is missing, stale or not generated (``tests/test_view_schemas.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import import_module
from pathlib import Path

from pydantic import BaseModel

CAPABILITIES = ("runs", "hub", "scale", "projects", "identity", "audit", "alerts", "compliance")
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "views"


def views_of(capability: str) -> tuple[type[BaseModel], ...]:
    """A capability's ``VIEWS``. A missing module or tuple is an error, never skipped: a schema that
    silently stopped being published would look like a removed API."""
    module = import_module(f"nextstat_pro.{capability}.views")
    views = getattr(module, "VIEWS", None)
    if not isinstance(views, tuple) or not views:
        raise RuntimeError(f"nextstat_pro.{capability}.views has no VIEWS tuple")
    return views


def generate() -> dict[str, str]:
    """Every schema file's name and text: sorted keys, two-space indent, a trailing newline."""
    files: dict[str, str] = {}
    for capability in CAPABILITIES:
        for model in views_of(capability):
            name = f"{capability}.{model.__name__}.json"
            if name in files:
                raise RuntimeError(f"two views named {name}")
            schema = model.model_json_schema(mode="serialization")
            files[name] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return files


def differences(folder: Path, files: dict[str, str]) -> list[str]:
    """What differs between ``folder`` and the generated ``files``, one line each."""
    present = {p.name for p in folder.glob("*.json")} if folder.is_dir() else set()
    out = [f"missing: {name}" for name in sorted(files.keys() - present)]
    out += [f"not generated (stale): {name}" for name in sorted(present - files.keys())]
    out += [f"differs: {name}" for name in sorted(files.keys() & present)
            if (folder / name).read_text(encoding="utf-8") != files[name]]
    return out


def write(folder: Path, files: dict[str, str]) -> None:
    """Make ``folder`` hold exactly ``files`` (stale schemas removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in set(p.name for p in folder.glob("*.json")) - files.keys():
        (folder / stale).unlink()
    for name, text in files.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nextstat_pro.view_schemas", description=__doc__)
    parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 if the files differ.")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="Where the schemas live.")
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        diff = differences(args.dir, files)
        for line in diff:
            print(line, file=sys.stderr)
        return 1 if diff else 0
    write(args.dir, files)
    print(f"{len(files)} view schemas in {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
