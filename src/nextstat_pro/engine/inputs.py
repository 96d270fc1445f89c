"""Reading and validating task inputs: workspaces, patchsets and CSV datasets."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonpatch
import orjson

from .. import text
from ..canonical import digest_of
from ..errors import InputError
from .schemas import validate


@dataclass(frozen=True)
class InputFile:
    """One input as the run records it: its role, file name, bytes and digest."""

    role: str
    name: str
    data: bytes
    digest: str

    @classmethod
    def from_bytes(cls, role: str, name: str, data: bytes) -> InputFile:
        text.check("input file name", name)  # recorded in the manifest and shown by runs show
        return cls(role, name, data, digest_of(data))

    @classmethod
    def read(cls, role: str, path: Path) -> InputFile:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{role} file not found: {path}") from None
        except IsADirectoryError:
            raise InputError(f"{role} path is a folder, not a file: {path}") from None
        except OSError as exc:
            raise InputError(f"cannot read {role} file {path}: {exc.strerror}") from None
        return cls.from_bytes(role, path.name, data)


@dataclass(frozen=True)
class Workspace:
    """A validated pyhf workspace, optionally with one patch applied."""

    document: dict[str, Any]
    patch: str | None = None
    extensions: list[str] = field(default_factory=list)
    text: str | None = None  # the original JSON text when unpatched (saves a re-encode)

    def json(self) -> str:
        if self.text is not None:
            return self.text
        try:
            # orjson encodes a workspace 15x faster than json (a grid re-encodes one patched
            # workspace per point), and its floats read back to the same doubles, so the
            # engine builds the same model (tests/test_engine.py checks the fit bit for bit).
            return orjson.dumps(self.document).decode()
        except TypeError:  # an integer beyond 64 bits, which json can still write
            return json.dumps(self.document)


def parse_json(inp: InputFile) -> Any:
    try:
        # orjson parses a 1.3 MB workspace in 4.5 ms, json in 9.9 ms (that was most of a
        # recorded tttt fit's overhead); both read every float to the same double. What
        # orjson refuses (NaN literals, integers beyond 64 bits, bad input) goes to json,
        # which accepts what it always did and words the error.
        return orjson.loads(inp.data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(inp.data)
    except RecursionError:
        # orjson refuses nesting beyond 1024 levels; json then runs out of stack.
        raise InputError(f"{inp.role} {inp.name} is nested too deeply to be a workspace, patchset or dataset") from None
    except UnicodeDecodeError:
        raise InputError(f"{inp.role} {inp.name} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{inp.role} {inp.name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def load_workspace(inp: InputFile) -> Workspace:
    document = parse_json(inp)
    extensions = validate(document, "workspace", f"workspace {inp.name}")
    return Workspace(document, extensions=extensions, text=inp.data.decode())


def pyhf_digest(document: Any, algorithm: str) -> str:
    """The digest pyhf records in a patchset's ``metadata.digests`` for its base workspace.

    Exactly pyhf 0.7.6's ``utils.digest``: ``json.dumps(obj, sort_keys=True, ensure_ascii=False)``
    with json's default separators, UTF-8 encoded, then the hash. Any other serialisation
    (compact separators, ASCII escapes) gives another digest, and pyhf's patchsets would then be
    refused as made for another workspace (and ours refused by ``pyhf patchset verify``)."""
    payload = json.dumps(document, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.new(algorithm, payload).hexdigest()


def apply_patch(workspace: Workspace, patchset_input: InputFile, patch_name: str,
                parsed: dict[str, Any] | None = None) -> Workspace:
    """Apply one named patch of a pyhf patchset (JSON Patch) and re-validate the result.
    ``parsed``: the patchset's document when the caller has parsed it already (it is read,
    not changed)."""
    patchset = parsed if parsed is not None else parse_json(patchset_input)
    validate(patchset, "patchset", f"patchset {patchset_input.name}")
    for algorithm, expected in patchset["metadata"]["digests"].items():
        if algorithm not in hashlib.algorithms_available:
            raise InputError(f"patchset {patchset_input.name} uses an unknown digest algorithm {algorithm!r}")
        actual = pyhf_digest(workspace.document, algorithm)
        if actual != expected:
            raise InputError(
                f"patchset {patchset_input.name} was made for another workspace: "
                f"its {algorithm} digest is {expected}, this workspace's is {actual}"
            )
    patches = {p["metadata"]["name"]: p for p in patchset["patches"]}
    if patch_name not in patches:
        shown = ", ".join(sorted(patches)[:5]) + (" ..." if len(patches) > 5 else "")
        raise InputError(f"no patch named {patch_name!r} in {patchset_input.name} (it has: {shown})")
    try:
        patched = jsonpatch.apply_patch(workspace.document, patches[patch_name]["patch"])
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise InputError(f"patch {patch_name!r} does not apply to the workspace: {exc}") from None
    extensions = validate(patched, "workspace", f"workspace patched with {patch_name!r}")
    return Workspace(patched, patch=patch_name, extensions=extensions)


@dataclass(frozen=True)
class PkDataset:
    """Concentration-time observations of a one-compartment oral PK study."""

    subject_ids: list[str]
    times: list[float]
    concentrations: list[float]
    subject_index: list[int]
    doses: list[float]  # one per subject, in subject_ids order


PK_COLUMNS = ("subject", "time", "concentration", "dose")


def load_pk_dataset(inp: InputFile) -> PkDataset:
    try:
        text = inp.data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"dataset {inp.name} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in PK_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(
            f"dataset {inp.name} lacks column(s) {', '.join(missing)} (needs: {', '.join(PK_COLUMNS)})"
        )
    order: dict[str, int] = {}
    doses: list[float] = []
    times: list[float] = []
    conc: list[float] = []
    index: list[int] = []
    for line, row in enumerate(reader, start=2):
        try:
            t, c, d = float(row["time"]), float(row["concentration"]), float(row["dose"])
        except (TypeError, ValueError):
            raise InputError(f"dataset {inp.name} line {line}: time, concentration and dose must be numbers") from None
        if t < 0 or c < 0 or d <= 0:
            raise InputError(f"dataset {inp.name} line {line}: negative time/concentration or non-positive dose")
        subject = (row["subject"] or "").strip()
        if not subject:
            raise InputError(f"dataset {inp.name} line {line}: empty subject")
        if subject not in order:
            order[subject] = len(order)
            doses.append(d)
        elif doses[order[subject]] != d:
            raise InputError(f"dataset {inp.name} line {line}: subject {subject} has more than one dose")
        times.append(t)
        conc.append(c)
        index.append(order[subject])
    if len(order) < 2:
        raise InputError(f"dataset {inp.name} needs at least two subjects for a population fit")
    return PkDataset(list(order), times, conc, index, doses)
