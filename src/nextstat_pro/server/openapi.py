"""The committed OpenAPI document (``docs/openapi.json``): ``python -m nextstat_pro.server.openapi``
writes it, ``--check`` fails when the code's differs (tests/test_server_openapi.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def document() -> dict[str, Any]:
    from .app import build_app

    doc: dict[str, Any] = build_app().openapi()
    return doc


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT)
    parser.add_argument("--check", action="store_true", help="fail if the file differs from the code's document")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is out of date: run python -m nextstat_pro.server.openapi", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
