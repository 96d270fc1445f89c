"""A job spec: everything a stateless worker needs, stored as canonical JSON; its digest is the
job's identity. Workers read it (and the inputs it names) from the store, never the database."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict, Field

from ..canonical import canonical_json, digest_of

JobTask = Literal["grid", "scan", "toys", "fit-many"]
SPEC_SCHEMA = "https://nextstat.pro/schemas/job-spec/v1"
TRACE_KEYS = ("traceparent", "tracestate")  # W3C Trace Context, in a spec URI (spec_uri)


class InputRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    role: str
    name: str
    digest: str


class JobSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_: str = Field(default=SPEC_SCHEMA, alias="schema")
    run_id: str
    task: JobTask
    point_task: str = "upper-limit"  # grid: what to compute per patch (upper-limit, hypotest, fit)
    params: dict[str, Any] = Field(default_factory=dict)  # engine task parameters per point
    seed: int | None = None
    inputs: list[InputRef]  # grid: workspace + patchset; scan/toys: workspace; fit-many: one per item
    items: list[Any]  # grid: patch names; scan: mu values; toys: toy indices; fit-many: input names
    shards: int = Field(ge=1)
    max_retries: int = Field(default=2, ge=0)

    # Cached: a frozen spec of 10^4 items is asked for its digest on every poll of every shard.
    @cached_property
    def _canonical(self) -> bytes:
        return canonical_json(self.model_dump(by_alias=True))

    def canonical(self) -> bytes:
        return self._canonical

    @cached_property
    def digest(self) -> str:
        return digest_of(self._canonical)

    @cached_property
    def computation_digest(self) -> str:
        """What is computed, without how it is run (run id, shard count, retries): the same
        for every backend and shard count, so it may appear in the merged result."""
        doc = self.model_dump(by_alias=True, exclude={"run_id", "shards", "max_retries"})
        return digest_of(canonical_json(doc))


def spec_uri(store_url: str, digest: str, trace: Mapping[str, str] | None = None) -> str:
    """How a worker is told where its spec is: ``<store URL>#<digest>``, and, while tracing,
    the job span as W3C Trace Context after it (``&traceparent=...[&tracestate=...]``), so a
    shard's span is the job's child on whichever backend runs it (every backend hands the URI
    to its workers as it is). The context rides beside the spec, never in it: the spec's
    digest, and so every result, is the same traced or not."""
    uri = f"{store_url}#{digest}"
    for key in TRACE_KEYS:
        if trace and trace.get(key):
            uri += f"&{key}={quote(trace[key], safe='')}"
    return uri


def _split(uri: str) -> tuple[str, str, str]:
    store_url, sep, fragment = uri.rpartition("#")
    digest, _, extra = fragment.partition("&")
    if not sep or not digest.startswith("sha256:"):
        raise ValueError(f"not a spec URI: {uri!r} (expected STORE_URL#sha256:...)")
    return store_url, digest, extra


def parse_spec_uri(uri: str) -> tuple[str, str]:
    store_url, digest, _ = _split(uri)
    return store_url, digest


def spec_uri_trace(uri: str) -> dict[str, str]:
    """The W3C Trace Context headers a spec URI carries (empty when it carries none)."""
    _, _, extra = _split(uri)
    found = {}
    for pair in extra.split("&") if extra else ():
        key, _, value = pair.partition("=")
        if key in TRACE_KEYS:
            found[key] = unquote(value)
    return found
