"""Installation qualification: is what runs here what was released, installed whole, and wired up?

Checks (each a ``Check`` with its evidence):

- ``IQ-PYTHON``: Python version and implementation, the OS, against the package's ``Requires-Python``;
- ``IQ-DIST-PINS``: every installed distribution that is pinned has exactly its pinned version, and
  every runtime requirement of ``nextstat-pro`` is installed and satisfied (unpinned extras such as
  pip are listed, not failed: installers are not part of the product);
- ``IQ-DIST-FILES``: every installed file of the checked distributions has the sha256 its wheel's
  ``RECORD`` lists (a modified or missing file fails); an editable (development) install of the product
  is named as such, with a digest of its source tree, since no ``RECORD`` covers its sources;
- ``IQ-ENGINE``: the engine (nextstat) imports, and its version is the one the product requires;
- ``IQ-DB-SCHEMA``: the database's Alembic revision is the head this software ships;
- ``IQ-STORE`` and ``IQ-WITNESS``: a probe written, read back and compared (unique per pack, so the
  write is real; the store's probe is one small content-addressed object, the witness's one small
  file beside the checkpoints, which ``audit verify`` does not read), and the witness's log key is
  the instance's;
- ``IQ-CLOCK``: the clock source (Python's clock, the kernel's synchronisation flag) and the skew
  between this host and the database server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from sqlalchemy import text

from ...canonical import digest_of
from ...db import migrate
from ...db.types import rfc3339
from ...errors import NSPError
from .clock import kernel_clock_synchronised
from .models import Check, make_check
from .pins import Pins, normalise

if TYPE_CHECKING:
    from ...instance import Instance

PRODUCT = "nextstat-pro"
ENGINE = "nextstat"
# What ``file_hashes="product"`` checks: the product, the engine and the independent reference.
PRODUCT_DISTRIBUTIONS = ("nextstat-pro", "nextstat", "nextstat-cli", "pyhf")
MAX_LISTED = 50  # mismatches listed in a check's evidence; the count is always complete
CLOCK_SKEW_S = 2.0


def installed() -> dict[str, metadata.Distribution]:
    """Installed distributions by normalised name; the first on ``sys.path`` wins, as for imports."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalise(name), dist)
    return found


def check_python(started: float) -> Check:
    requires = metadata.distribution(PRODUCT).metadata["Requires-Python"] or ""
    version = platform.python_version()
    ok = version in SpecifierSet(requires) if requires else True
    evidence = {"python": version, "implementation": platform.python_implementation(),
                "executable": sys.executable, "requires_python": requires, "system": platform.system(),
                "release": platform.release(), "machine": platform.machine(), "platform": platform.platform()}
    return make_check("IQ-PYTHON", "IQ", "The Python interpreter and operating system the product runs on.",
                      f"Python {requires} (the package's Requires-Python)",
                      f"{platform.python_implementation()} {version} on {platform.platform()}", ok, evidence,
                      time.perf_counter() - started)


def check_pins(pins: Pins, dists: dict[str, metadata.Distribution], started: float) -> Check:
    versions = {name: d.version for name, d in dists.items()}
    wrong = {n: {"pinned": v, "installed": versions[n]} for n, v in sorted(pins.versions.items())
             if n in versions and versions[n] != v}
    unmet = _unmet_requirements(dists)
    unpinned = sorted(n for n in versions if n not in pins.versions and n != PRODUCT)
    ok = not wrong and not unmet
    observed = (f"{len(versions)} distributions installed; {len(wrong)} differ from their pin; "
                f"{len(unmet)} runtime requirement(s) unmet; unpinned: {', '.join(unpinned) or 'none'}")
    evidence = {"pins_source": pins.source, "pins_digest": pins.digest, "pinned": len(pins.versions),
                "installed": dict(sorted(versions.items())), "differ": wrong, "unmet": unmet,
                "unpinned": unpinned}
    return make_check("IQ-DIST-PINS", "IQ",
                      "Installed distributions and their versions against the pins the product was released with.",
                      f"every pinned distribution installed is at its pin ({pins.source}, {pins.digest[:19]}…); "
                      "every runtime requirement of nextstat-pro is satisfied",
                      observed, ok, evidence, time.perf_counter() - started)


def _unmet_requirements(dists: dict[str, metadata.Distribution]) -> list[str]:
    env = {k: str(v) for k, v in default_environment().items()} | {"extra": ""}
    unmet = []
    for spec in metadata.distribution(PRODUCT).requires or []:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate(env):
            continue  # an optional extra (scale, test) or another platform's requirement
        dist = dists.get(normalise(req.name))
        if dist is None:
            unmet.append(f"{spec}: not installed")
        elif not req.specifier.contains(dist.version, prereleases=True):
            unmet.append(f"{spec}: {dist.version} installed")
    return unmet


def _record_problems(dist: metadata.Distribution) -> tuple[int, list[str]]:
    """(files checked, problems) for one distribution's RECORD: each listed hash recomputed."""
    checked, problems = 0, []
    for entry in dist.files or []:
        if entry.hash is None or entry.hash.mode != "sha256":
            continue  # RECORD itself, and files installers write after the fact (INSTALLER, .pyc)
        path = Path(str(dist.locate_file(entry)))
        try:
            data = path.read_bytes()
        except OSError:
            problems.append(f"{entry}: missing or unreadable")
            continue
        checked += 1
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if digest != entry.hash.value:
            problems.append(f"{entry}: sha256 differs from RECORD")
    return checked, problems


def editable_source(dist: metadata.Distribution) -> str | None:
    """The source folder of an editable install (PEP 660 ``direct_url.json``), else None."""
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    doc = json.loads(raw)
    if (doc.get("dir_info") or {}).get("editable") and str(doc.get("url", "")).startswith("file://"):
        return str(doc["url"])[len("file://"):]
    return None


def tree_digest(root: Path) -> tuple[int, str]:
    """(files, digest) of a package's source tree: sha256 over ``path\\0digest\\n`` lines, sorted."""
    lines = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            lines.append(f"{path.relative_to(root).as_posix()}\0{digest_of(path.read_bytes())}\n")
    return len(lines), digest_of("".join(lines).encode())


def check_files(dists: dict[str, metadata.Distribution], names: Iterable[str], started: float) -> Check:
    checked_files, problems, per_dist = 0, list[str](), dict[str, Any]()
    names = sorted(set(names) & set(dists))
    for name in names:
        n, found = _record_problems(dists[name])
        checked_files += n
        per_dist[name] = {"version": dists[name].version, "files": n, "problems": len(found)}
        problems.extend(f"{name}: {p}" for p in found)
    product: dict[str, Any] = {}
    source = editable_source(dists[PRODUCT]) if PRODUCT in dists else None
    if source is not None:
        package = Path(__file__).resolve().parents[2]  # src/nextstat_pro
        count, digest = tree_digest(package)
        product = {"editable": True, "source": source, "package": str(package), "files": count, "tree_digest": digest}
    observed = f"{checked_files} files of {len(names)} distributions checked; {len(problems)} differ or are missing"
    if product:
        observed += (f"; nextstat-pro is an editable (development) install from {source}: its {product['files']} "
                     f"source files have tree digest {product['tree_digest'][:19]}… (no RECORD covers them)")
    evidence = {"distributions": per_dist, "files_checked": checked_files, "problems": problems[:MAX_LISTED],
                "problem_count": len(problems), "product_source": product}
    return make_check("IQ-DIST-FILES", "IQ",
                      "Every installed file of the checked distributions against the sha256 in its wheel's RECORD.",
                      "no file modified or missing", observed, not problems, evidence, time.perf_counter() - started)


def check_engine(dists: dict[str, metadata.Distribution], started: float) -> Check:
    import nextstat

    from ...engine import engine_info

    required = [Requirement(r) for r in metadata.distribution(PRODUCT).requires or []
                if normalise(Requirement(r).name) == ENGINE]
    spec = str(required[0].specifier) if required else ""
    info = engine_info()
    ok = bool(required) and required[0].specifier.contains(info["version"], prereleases=True) and \
        dists.get(ENGINE) is not None and dists[ENGINE].version == info["version"]
    evidence = {"engine": info, "required": spec, "module": str(getattr(nextstat, "__file__", ""))}
    return make_check("IQ-ENGINE", "IQ", "The statistical engine imports and is the version the product requires.",
                      f"nextstat {spec}", f"nextstat {info['version']} imported from {evidence['module']}", ok,
                      evidence, time.perf_counter() - started)


def check_schema(instance: Instance, started: float) -> Check:
    head = migrate.head_revision()
    try:
        current = migrate.current_revision(instance.db.engine)
        error = None
    except Exception as exc:  # noqa: BLE001 -- an unreachable database is this check's failure, worded
        current, error = None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    evidence = {"dialect": instance.db.dialect, "head": head, "current": current, "error": error,
                "server_version": _server_version(instance) if error is None else None}
    observed = f"{instance.db.dialect} at revision {current}" if error is None else f"database unreachable: {error}"
    return make_check("IQ-DB-SCHEMA", "IQ", "The database is reachable and its schema is at the revision this "
                      "software ships (Alembic head).", f"revision {head}", observed,
                      error is None and current == head, evidence, time.perf_counter() - started)


def _server_version(instance: Instance) -> str:
    with instance.db.engine.connect() as conn:
        if instance.db.dialect == "postgresql":
            return str(conn.execute(text("SHOW server_version")).scalar())
        return "SQLite " + str(conn.execute(text("SELECT sqlite_version()")).scalar())


def check_store(instance: Instance, probe: bytes, started: float) -> Check:
    digest, error = digest_of(probe), None
    try:
        stored = instance.store.put(probe, digest)
        back = instance.store.get(stored.digest)
        ok = back == probe and stored.digest == digest
    except (NSPError, OSError) as exc:
        ok, error = False, str(exc)
    evidence = {"store": instance.store.url, "probe_digest": digest, "probe_bytes": len(probe), "error": error}
    observed = f"probe {digest[:19]}… written and read back identical" if ok else f"failed: {error or 'differs'}"
    return make_check("IQ-STORE", "IQ", "The object store is reachable and writable: a probe object written, "
                      "read back and compared.", "the probe reads back byte for byte under its digest",
                      observed, ok, evidence, time.perf_counter() - started)


def check_witness(instance: Instance, probe: bytes, probe_name: str, started: float) -> Check:
    error, key_ok, ok = None, False, False
    try:
        witness = instance.witness()
        witness.write(probe_name, probe)
        ok = witness.read(probe_name) == probe
        key_ok = witness.read("log.pub").decode().strip() == str(instance.log_verifier())
    except (NSPError, OSError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 -- an S3 client error of any kind is an unreachable witness
        error = f"{type(exc).__name__}: {exc}"
    evidence = {"witness": instance.config.witness_url, "probe": probe_name, "probe_digest": digest_of(probe),
                "log_key_matches": key_ok, "error": error}
    observed = (f"probe {probe_name} written and read back; log key {'matches' if key_ok else 'DIFFERS'}"
                if ok else f"failed: {error or 'the probe read back differs'}")
    return make_check("IQ-WITNESS", "IQ", "The witness (checkpoints outside the database) is reachable and "
                      "writable, and holds this instance's log key.",
                      "the probe reads back identical; the witness's log.pub is the instance's log key",
                      observed, ok and key_ok, evidence, time.perf_counter() - started)


def check_clock(instance: Instance, started: float) -> Check:
    info = time.get_clock_info("time")
    synced = kernel_clock_synchronised()
    skew, error = None, None
    try:
        with instance.db.engine.connect() as conn:
            before = time.time()
            sql = "SELECT clock_timestamp()" if instance.db.dialect == "postgresql" else \
                "SELECT strftime('%Y-%m-%dT%H:%M:%f', 'now')"
            value = conn.execute(text(sql)).scalar()
            after = time.time()
        db_now = value if isinstance(value, datetime) else datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
        skew = round(db_now.timestamp() - (before + after) / 2, 3)
    except Exception as exc:  # noqa: BLE001 -- reported as this check's failure
        error = f"{type(exc).__name__}: {exc}"
    ok = error is None and skew is not None and abs(skew) <= CLOCK_SKEW_S and synced is not False
    evidence = {"clock": info.implementation, "monotonic": info.monotonic, "adjustable": info.adjustable,
                "resolution_s": info.resolution, "kernel_synchronised": synced, "timezone_of_records": "UTC",
                "database_skew_s": skew, "error": error, "host_time": rfc3339(datetime.now(UTC)),
                "tz_env": os.environ.get("TZ")}
    sync_text = {True: "synchronised (NTP)", False: "NOT synchronised", None: "unknown"}[synced]
    observed = (f"system clock {info.implementation}, kernel {sync_text}, database skew {skew} s"
                if error is None else f"database clock unreadable: {error}")
    return make_check("IQ-CLOCK", "IQ", "The clock that stamps records: its source, synchronisation, and agreement "
                      "with the database server's clock (records are stamped in UTC).",
                      f"kernel clock not reported unsynchronised; |skew| <= {CLOCK_SKEW_S:g} s", observed, ok,
                      evidence, time.perf_counter() - started)


def installation_qualification(instance: Instance, pins: Pins, probe: bytes, probe_name: str,
                               file_hashes: str = "all") -> list[Check]:
    """The IQ checks, in order. ``file_hashes``: ``all`` installed distributions or ``product`` only."""
    dists = installed()
    names = list(dists) if file_hashes == "all" else list(PRODUCT_DISTRIBUTIONS)
    return [
        check_python(time.perf_counter()),
        check_pins(pins, dists, time.perf_counter()),
        check_files(dists, names, time.perf_counter()),
        check_engine(dists, time.perf_counter()),
        check_schema(instance, time.perf_counter()),
        check_store(instance, probe, time.perf_counter()),
        check_witness(instance, probe, probe_name, time.perf_counter()),
        check_clock(instance, time.perf_counter()),
    ]
