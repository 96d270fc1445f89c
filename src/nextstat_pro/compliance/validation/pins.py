"""The pinned versions the installation qualification checks against, shipped with the package.

An installed package has no ``constraints.txt`` beside it, so the pins travel as package data
(``data/constraints.json``: the file's digest and ``{name: version}``, names normalised as PEP 503
does). ``python -m nextstat_pro.compliance.validation.pins [--check] [constraints.txt]`` regenerates
the copy (or, with ``--check``, fails when it differs); tests/test_validation_pack.py runs the check,
so the copy cannot drift from the project's pins.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ...canonical import digest_of
from ...errors import InputError

DATA = "data"
PINS_FILE = "constraints.json"


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them: lowercase, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pins:
    source: str  # the file the pins were read from
    digest: str  # sha256: of that file's bytes
    versions: dict[str, str]  # normalised name -> exact version

    def document(self) -> dict[str, object]:
        return {"source": self.source, "digest": self.digest, "pins": dict(sorted(self.versions.items()))}


def parse_constraints(data: bytes, source: str = "constraints.txt") -> Pins:
    """``name==version`` lines (comments and blank lines ignored); anything else is refused, since
    a pin the check cannot read would be a pin it silently does not check."""
    versions: dict[str, str] = {}
    for number, raw in enumerate(data.decode("utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip() or ";" in line:
            raise InputError(f"{source} line {number}: not an exact pin name==version: {raw!r}")
        versions[normalise(name.strip())] = version.strip()
    return Pins(source, digest_of(data), versions)


def shipped_pins() -> Pins:
    """The pins shipped in the package."""
    raw = resources.files(__package__).joinpath(DATA).joinpath(PINS_FILE).read_bytes()
    doc = json.loads(raw)
    return Pins(str(doc["source"]), str(doc["digest"]), {str(k): str(v) for k, v in doc["pins"].items()})


def _shipped_path() -> Path:
    return Path(__file__).with_name(DATA) / PINS_FILE


def render(pins: Pins) -> str:
    return json.dumps(pins.document(), indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    source = Path(paths[0]) if paths else Path.cwd() / "constraints.txt"
    pins = parse_constraints(source.read_bytes(), "constraints.txt")
    text = render(pins)
    target = _shipped_path()
    if check:
        current = target.read_text() if target.exists() else ""
        if current != text:
            print(f"{target} differs from {source}: run python -m nextstat_pro.compliance.validation.pins",
                  file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target} ({len(pins.versions)} pins)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
