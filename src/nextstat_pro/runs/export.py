"""Exporting a run: its artifacts, inputs and manifest into a folder, checkable offline.

The folder holds ``manifest.json`` (the exact stored bytes, so its sha256 is the run's
content hash), ``outputs/<name>``, ``inputs/<role>/<name>`` and ``SHA256SUMS`` in the
format ``sha256sum -c`` reads. It is assembled in a temporary sibling folder and renamed
into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ..audit.events import append_event
from ..db.models import PurgedObject
from ..errors import ConflictError, NotFoundError, UsageError
from ..identity.actors import RequestContext
from ..instance import Instance
from .records import read_run
from .service import MANIFEST_NAME

SUMS_NAME = "SHA256SUMS"


def read_manifest(instance: Instance, digest: str) -> dict[str, Any]:
    return json.loads(instance.store.get(digest))


def export_run(instance: Instance, ctx: RequestContext, run_ref: str, dest: Path) -> Path:
    """Export a finished run. The folder appears and its audit event commits together:
    if either fails, neither remains."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConflictError(f"export folder {dest} exists and is not empty; nothing was written")
    placed = False
    try:
        with instance.db.transaction() as session:
            run = read_run(session, ctx, run_ref, "run.export")
            if run.manifest_digest is None:
                raise UsageError(f"run {run.id} is {run.status}: only finished runs can be exported")
            files = _collect(instance, session, run.manifest_digest)
            manifest = json.loads(files[MANIFEST_NAME])
            append_event(
                session, ctx, action="run.exported", target=("run", run.id), project=manifest["project"],
                after={"manifest_digest": run.manifest_digest, "destination": str(dest.resolve()), "files": len(files)},
            )
            _place(files, dest)
            placed = True
    except BaseException:
        if placed:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _collect(instance: Instance, session: Session, manifest_digest: str) -> dict[str, bytes]:
    """Every file of the export, read (and digest-checked) from the store, plus SHA256SUMS."""

    def get(digest: str) -> bytes:
        try:
            return instance.store.get(digest)
        except NotFoundError:
            tomb = session.get(PurgedObject, digest)
            if tomb is None:
                raise
            raise NotFoundError(
                f"object {digest} was purged under the retention policy on {tomb.purged_at:%Y-%m-%d} "
                f"({tomb.reason}); the run's manifest and audit trail remain"
            ) from None

    manifest_bytes = get(manifest_digest)
    manifest = json.loads(manifest_bytes)
    files: dict[str, bytes] = {MANIFEST_NAME: manifest_bytes}
    for entry in manifest["outputs"]:
        files[f"outputs/{entry['name']}"] = get(entry["digest"])
    for entry in manifest["inputs"]:
        files[f"inputs/{entry['role']}/{entry['name']}"] = get(entry["digest"])
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items()))
    files[SUMS_NAME] = sums.encode()
    return files


def _place(files: dict[str, bytes], dest: Path) -> None:
    """Write into a temporary sibling, then rename: the folder appears whole or not at all."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        for name, data in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
