"""The stateless worker: ``nextstat-pro worker run-shard --spec URI --shard I``.

It reads the spec and its inputs from the store, computes its block of items, writes the
shard result object and a write-once ref naming it. No database: cluster nodes often have
none. A shard result holds no timing, so a rerun yields the same bytes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch
import nextstat as ns
import orjson

from .. import observability
from ..canonical import canonical_json, gc_paused
from ..engine import InputFile, execute, prepare
from ..engine.histfactory import load_model
from ..engine.inputs import Workspace, parse_json
from ..engine.params import build_params
from ..engine.tasks import engine_info, get_task
from ..errors import IntegrityError, TaskFailedError
from ..observability import metrics
from ..store import ObjectStore, open_store
from .partition import shard_ranges, shard_ref
from .spec import JobSpec, parse_spec_uri, spec_uri_trace

SHARD_SCHEMA = "https://nextstat.pro/schemas/shard-result/v1"
# Per-point fields that vary between runs of the same computation and are left out of results.
VOLATILE = ("wall_time_s", "platform")


def load_spec(store: ObjectStore, digest: str) -> JobSpec:
    spec = JobSpec.model_validate_json(store.get(digest))
    if spec.digest != digest:
        raise IntegrityError(f"spec {digest} does not hash to itself")
    return spec


def run_shard_uri(uri: str, shard: int) -> str:
    store_url, digest = parse_spec_uri(uri)
    trace = spec_uri_trace(uri)
    if not trace:
        return run_shard(open_store(store_url), digest, shard)
    # The shard's span continues the job's trace, whichever process or node this is.
    try:
        with observability.span_from(trace, "nextstat.shard", {"nextstat.spec_digest": digest,
                                                               "nextstat.shard": shard}) as span:
            result = run_shard(open_store(store_url), digest, shard)
            span.set_attribute("nextstat.result_digest", result)
            return result
    finally:
        observability.flush()  # a pool worker may exit without atexit: export the span now


@dataclass
class LoadedJob:
    """A spec with its inputs, digest-checked when read, and what is parsed from them."""

    spec: JobSpec
    files: list[InputFile]
    patches: dict[str, dict[str, Any]] | None = None  # a grid's patches by name, parsed on first use


# The job this worker process last loaded. A pool or cluster worker runs many shards of one
# job, and reading and parsing a 10^4-patch patchset takes 0.1 s: it is done once per process.
# Safe to keep: a spec digest names its inputs by digest, and stored objects never change.
_last_job: LoadedJob | None = None


def load_job(store: ObjectStore, spec_digest: str) -> LoadedJob:
    global _last_job
    if _last_job is None or _last_job.spec.digest != spec_digest:
        spec = load_spec(store, spec_digest)
        # store.get checks each object against its digest: no second hash here.
        _last_job = LoadedJob(spec, [InputFile(i.role, i.name, store.get(i.digest), i.digest) for i in spec.inputs])
    return _last_job


def run_shard(store: ObjectStore, spec_digest: str, shard: int) -> str:
    """Compute one shard; return its result digest (also written under the shard's ref)."""
    existing = store.get_ref(shard_ref(spec_digest, shard))
    if existing is not None and store.exists(existing):
        return existing  # done before (a retried or duplicated task): nothing to recompute
    job = load_job(store, spec_digest)
    ranges = shard_ranges(len(job.spec.items), job.spec.shards)
    if not 0 <= shard < len(ranges):
        raise IntegrityError(f"shard {shard} is outside the plan of {len(ranges)} shards")
    indices = ranges[shard]
    points = compute(job, indices)
    doc = {"schema": SHARD_SCHEMA, "spec_digest": spec_digest, "shard": shard,
           "first": indices.start, "count": len(indices), "engine": engine_info(), "points": points}
    data = canonical_json(doc)
    digest = store.put(data).digest
    if not store.put_ref(shard_ref(spec_digest, shard), digest):
        existing = store.get_ref(shard_ref(spec_digest, shard))
        if existing != digest:
            raise IntegrityError(f"shard {shard} was already written with other content ({existing})")
    return digest


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in VOLATILE}


def compute(job: LoadedJob, indices: range) -> list[dict[str, Any]]:
    spec = job.spec
    inputs = {f.role: f for f in job.files}
    if spec.task == "toys":
        return _toys(inputs["workspace"], spec, indices)
    if spec.task == "scan":
        return _scan(inputs["workspace"], spec, indices)
    if spec.task == "grid":
        if job.patches is None:
            with gc_paused():  # once per worker process, before its first point
                job.patches = {p["metadata"]["name"]: p for p in parse_json(inputs["patchset"])["patches"]}
        return _grid(inputs["workspace"], job.patches, spec, indices)
    by_name = {f.name: f for f in job.files}
    out = []
    for k in indices:
        name = spec.items[k]
        # The loop variable is bound as a default (ruff B023), though _point calls the lambda at once.
        out.append({"index": k, "item": name,
                     **_point(lambda name=name: execute(prepare("fit", spec.params, [by_name[name]]), spec.seed),
                                    "fit")})
    return out


def _point(fn: Any, task: str) -> dict[str, Any]:
    """One point's result, or its error: one failed point does not fail the shard."""
    started = time.perf_counter()
    try:
        out = {"ok": True, "result": _strip(fn())}
    except (TaskFailedError, ValueError, RuntimeError) as exc:
        out = {"ok": False, "error": str(exc)}
    metrics.fit_done(task, out["ok"] is True, time.perf_counter() - started)
    return out


def _fresh_copy(data: bytes) -> Callable[[], Any]:
    """A new document of the base workspace per point, to patch in place: parsed again, which
    is cheaper than the deep copy jsonpatch would make (tttt-prod, 1.3 MB: orjson 1.7 ms, json
    4.5 ms, deepcopy 9 ms). orjson reads every float to the same double as json; what it
    refuses (NaN literals, integers beyond 64 bits) is parsed by json, as ``parse_json`` does."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        text = data.decode()
        return lambda: json.loads(text)
    return lambda: orjson.loads(data)


_MISSING = object()
_INDEX = re.compile("0|[1-9][0-9]*")  # an array index as jsonpointer accepts it


def _member(node: Any, part: str) -> Any:
    """``node``'s member named by the pointer token ``part`` as jsonpointer resolves it, or
    _MISSING when it does not resolve or resolves in a way left to jsonpatch ("-", a string)."""
    if type(node) is dict:
        return node.get(part, _MISSING)
    if type(node) is list and _INDEX.fullmatch(part) and int(part) < len(node):
        return node[int(part)]
    return _MISSING


def _replaced(base: Any, ops: Any) -> Any:
    """``jsonpatch.apply_patch(copy of base, ops)`` for a patch of ``replace`` operations on
    members that exist (a grid's usual patch), without copying the whole base: each operation
    copies the containers on its path, and the new document shares everything else with
    ``base``, which is never changed. Replacements change no array index nor member name, so
    every later path resolves as it would in a fresh copy; a later path through a replaced
    value copies that value too, so the patch is not changed either. Returns _MISSING for
    anything else (other operations, escapes, a path that does not resolve), to be left to
    jsonpatch, with its errors."""
    if type(ops) is not list or not ops or type(base) not in (dict, list):
        return _MISSING
    for op in ops:
        if type(op) is not dict or op.get("op") != "replace" or "value" not in op:
            return _MISSING
        path = op.get("path")
        if type(path) is not str or not path.startswith("/") or "~" in path:
            return _MISSING
    doc = base.copy()
    copied = {id(doc)}  # containers of this document, not shared with base or the patch
    for op in ops:
        *steps, last = op["path"][1:].split("/")
        parent = doc
        for part in steps:
            child = _member(parent, part)
            if type(child) not in (dict, list):
                return _MISSING  # missing, or a step into a scalar: jsonpatch's error
            if id(child) not in copied:
                child = child.copy()
                copied.add(id(child))
                parent[part if type(parent) is dict else int(part)] = child
            parent = child
        if _member(parent, last) is _MISSING:
            return _MISSING
        parent[last if type(parent) is dict else int(last)] = op["value"]
    return doc


def _grid(ws: InputFile, patches: dict[str, dict[str, Any]], spec: JobSpec, indices: range) -> list[dict[str, Any]]:
    fresh = _fresh_copy(ws.data)
    base = fresh()  # shared by the points' documents, never changed
    task = get_task(spec.point_task)
    params = build_params(task.params, task.name, spec.params)
    out = []
    for k in indices:
        name = spec.items[k]
        patch = patches[name]

        def one(patch: dict[str, Any] = patch) -> dict[str, Any]:
            # Nothing downstream changes the document (engine/measurement.py rewrites
            # settings into new dicts), so the points may share the base's unpatched parts:
            # parsing the base again for each point was a tenth of a small fit's time.
            doc = _replaced(base, patch["patch"])
            if doc is _MISSING:
                doc = jsonpatch.apply_patch(fresh(), patch["patch"], in_place=True)
            model = load_model(Workspace(doc))
            return task.fn(model, params, spec.seed)

        out.append({"index": k, "item": name, "values": patch["metadata"]["values"], **_point(one, spec.point_task)})
    return out


def _scan(ws: InputFile, spec: JobSpec, indices: range) -> list[dict[str, Any]]:
    model = load_model(Workspace(parse_json(ws), text=ws.data.decode()))
    out = []
    for k in indices:
        mu = spec.items[k]
        # One point per call: the engine warm-starts along a scan, which would make the
        # numbers depend on how points are grouped into shards.
        out.append({"index": k, "item": mu, **_point(lambda mu=mu: ns.profile_scan(model, [mu])["points"][0], "scan")})
    return out


def _toys(ws: InputFile, spec: JobSpec, indices: range) -> list[dict[str, Any]]:
    if spec.seed is None:
        raise TaskFailedError("toys need a seed")
    model = load_model(Workspace(parse_json(ws), text=ws.data.decode()))
    fit = ns.fit(model)
    generation = list(fit.parameters)
    poi = model.poi_index()
    if spec.params.get("mu") is not None:
        generation[poi] = float(spec.params["mu"])
    # Toy k uses seed + k: the block starting at k0 is the engine's batch with seed + k0.
    fits = ns.fit_toys(model, generation, n_toys=len(indices), seed=spec.seed + indices.start)
    lo, hi = model.suggested_bounds()[poi]
    metrics.fit_done("toys", True, count=len(fits))  # one batch: no duration per toy
    return [{"index": k, "item": k, "ok": True,
             "result": {"seed": spec.seed + k, "poi": f.parameters[poi], "nll": f.nll, "converged": f.converged,
                        "poi_at_bound": f.parameters[poi] in (lo, hi)}}
            for k, f in zip(indices, fits, strict=True)]
