"""What a registry version holds, checked before it is accepted: its canonical bytes, digest,
media type and a description of its content (channels, columns, patches, ...)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from ..canonical import canonical_json, digest_of
from ..engine import InputFile
from ..engine.histfactory import load_model
from ..engine.inputs import load_workspace, parse_json, pyhf_digest
from ..engine.schemas import validate
from ..errors import InputError


@dataclass(frozen=True)
class Content:
    """``data`` is the identity: RFC 8785 canonical JSON for JSON kinds (so formatting does not
    make a new version), the bytes otherwise. ``source`` is the file as pushed: canonical JSON
    turns 1.0 into 1, which changes pyhf's own digests, so runs and patchset checks use it."""

    data: bytes
    digest: str
    media_type: str
    meta: dict[str, Any]
    source: bytes | None = None


def model_content(inp: InputFile) -> Content:
    workspace = load_workspace(inp)
    model = load_model(workspace)
    doc = workspace.document
    data = canonical_json(doc)
    meta = {
        "channels": [c["name"] for c in doc["channels"]],
        "samples": sorted({s["name"] for c in doc["channels"] for s in c["samples"]}),
        "bins": sum(len(c["samples"][0]["data"]) for c in doc["channels"] if c["samples"]),
        "parameters": model.n_params(),
        "poi": model.parameter_names()[model.poi_index()],
        "schema_extensions": workspace.extensions,
        "pyhf_sha256": pyhf_digest(doc, "sha256"),
    }
    return Content(data, digest_of(data), "application/vnd.pyhf.workspace+json",
                   {**meta, "source_digest": inp.digest}, inp.data)


def patchset_content(inp: InputFile, base_document: dict[str, Any], base_digest: str) -> Content:
    doc = parse_json(inp)
    validate(doc, "patchset", f"patchset {inp.name}")
    for algorithm, expected in doc["metadata"]["digests"].items():
        actual = pyhf_digest(base_document, algorithm)
        if actual != expected:
            raise InputError(
                f"patchset {inp.name} was made for another workspace: its {algorithm} digest is {expected}, "
                f"the base version's is {actual}"
            )
    names = [p["metadata"]["name"] for p in doc["patches"]]
    if len(set(names)) != len(names):
        raise InputError(f"patchset {inp.name} has duplicate patch names")
    data = canonical_json(doc)
    meta = {"base_digest": base_digest, "patches": names, "labels": doc["metadata"]["labels"]}
    return Content(data, digest_of(data), "application/vnd.pyhf.patchset+json",
                   {**meta, "source_digest": inp.digest}, inp.data)


def canonical_records_content(inp: InputFile, columns: list[str], rows: int) -> Content:
    """A JSON dataset whose bytes are already RFC 8785 canonical (a job's merged points,
    spliced from canonical shard results): its identity without encoding it again."""
    return Content(inp.data, inp.digest, "application/json",
                   {"format": "json", "columns": columns, "rows": rows, "source_digest": inp.digest})


def dataset_content(inp: InputFile) -> Content:
    name = inp.name.lower()
    if name.endswith(".csv"):
        try:
            rows = list(csv.reader(io.StringIO(inp.data.decode("utf-8-sig"))))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"dataset {inp.name} is not readable CSV: {exc}") from None
        if not rows:
            raise InputError(f"dataset {inp.name} is empty")
        header = rows[0]
        bad = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != len(header)]
        if bad:
            raise InputError(f"dataset {inp.name} line {bad[0]} has {len(rows[bad[0] - 1])} fields, "
                             f"header has {len(header)}")
        meta = {"format": "csv", "columns": header, "rows": len(rows) - 1}
        return Content(inp.data, inp.digest, "text/csv", meta)
    if name.endswith(".json"):
        doc = parse_json(inp)
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise InputError(f"dataset {inp.name} must be a JSON array of records")
        columns = sorted({k for r in doc for k in r})
        data = canonical_json(doc)
        return Content(data, digest_of(data), "application/json",
                       {"format": "json", "columns": columns, "rows": len(doc), "source_digest": inp.digest}, inp.data)
    if name.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - pyarrow is a dependency
            raise InputError("Parquet datasets need pyarrow") from None
        try:
            meta = pq.read_metadata(io.BytesIO(inp.data))
        except Exception as exc:  # pyarrow raises its own error types
            raise InputError(f"dataset {inp.name} is not Parquet: {exc}") from None
        return Content(inp.data, inp.digest, "application/vnd.apache.parquet",
                       {"format": "parquet", "columns": list(meta.schema.names), "rows": meta.num_rows})
    raise InputError(f"dataset {inp.name}: use .csv, .json or .parquet")
