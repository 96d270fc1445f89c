"""A measurement's parameter settings as pyhf reads them, before the engine builds a model.

nextstat 0.10.1 honours a measurement's ``fixed``, ``bounds``, ``inits`` and POI, but not
every constraint setting (checked against pyhf 0.7.6, numpy backend; docs/validation.md):

- ``lumi`` without ``sigmas``: pyhf's constraint width is 1.0, the engine's 0.02;
- ``staterror`` with ``sigmas`` but no ``auxdata``, or ``auxdata`` but no ``sigmas``: the
  engine ignores the half it was given (it honours them only together);
- ``normsys``/``histosys`` ``auxdata`` and ``shapesys`` ``auxdata``/``factors``: ignored.

The first two are corrected here by writing pyhf's defaults out explicitly (then both give
the same likelihood); the last cannot be expressed in a form the engine honours, so a
measurement that sets them to anything but pyhf's defaults is refused rather than fitted
to a different likelihood. Settings pyhf itself rejects (``sigmas`` on normsys/histosys,
a setting of the wrong length) are refused with pyhf's reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from ..errors import InputError


def pyhf_settings(document: dict[str, Any]) -> dict[str, Any] | None:
    """The workspace with its measurements' settings rewritten to what pyhf means, or None
    when nothing needs rewriting (the common case costs one pass over the configs).

    Nothing is copied unless it changes: a rewritten setting is a new dict, and only the
    measurements holding one are rebuilt around it. A grid calls this once per point, and a
    deep copy of every measurement cost more than the rest of it (0.06 ms a point on
    example_bkgonly, whose settings need no rewrite)."""
    measurements = document.get("measurements") or []
    if not any(m["config"].get("parameters") for m in measurements):
        return None
    kinds = _modifier_kinds(document)
    rewritten = []
    changed = False
    for measurement in measurements:
        settings = measurement["config"].get("parameters", [])
        new = [_rewrite(document, measurement["name"], s, kinds.get(s["name"], set())) for s in settings]
        if any(n is not s for n, s in zip(new, settings, strict=True)):
            changed = True
            measurement = {**measurement, "config": {**measurement["config"], "parameters": new}}
        rewritten.append(measurement)
    return {**document, "measurements": rewritten} if changed else None


def _modifier_kinds(document: dict[str, Any]) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = defaultdict(set)
    for channel in document["channels"]:
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                kinds[modifier["name"]].add(modifier["type"])
    return kinds


def _rewrite(document: dict[str, Any], measurement: str, setting: dict[str, Any], kinds: set[str]) -> dict[str, Any]:
    """One parameter setting as pyhf reads it: ``setting`` itself when nothing changes, else a
    new dict with the missing entries appended (``setting`` is not changed)."""
    name = setting["name"]
    if "lumi" in kinds and "sigmas" not in setting:
        setting = {**setting, "sigmas": [1.0]}  # pyhf's width for a lumi setting without sigmas
    if kinds & {"normsys", "histosys"}:
        kind = "normsys" if "normsys" in kinds else "histosys"
        if "sigmas" in setting or "factors" in setting:
            key = "sigmas" if "sigmas" in setting else "factors"
            raise InputError(f"{_where(measurement, name)}: a {kind} parameter takes no {key} (pyhf refuses it too)")
        if "auxdata" in setting and setting["auxdata"] != [0.0]:
            where = _where(measurement, name)
            raise InputError(f"{where}: {kind} auxdata other than [0.0] is not supported by the engine "
                             f"(nextstat {_engine_version()} ignores it, so the fit would differ from pyhf's)")
    if "staterror" in kinds:
        setting = _staterror(document, measurement, name, setting)
    if "shapesys" in kinds and any(k in setting for k in ("auxdata", "factors")):
        defaults = _shapesys_factors(document, name)
        for key in ("auxdata", "factors"):
            if key in setting and not _same(setting[key], defaults):
                where = _where(measurement, name)
                raise InputError(f"{where}: shapesys {key} other than pyhf's defaults (computed from the sample's "
                                 f"data) is not supported by the engine, so the fit would differ from pyhf's")
    return setting


def _where(measurement: str, name: str) -> str:
    # Formatted only for an error: a grid checks every setting of every point.
    return f"measurement {measurement!r}, parameter {name!r}"


def _staterror(document: dict[str, Any], measurement: str, name: str, setting: dict[str, Any]) -> dict[str, Any]:
    has_aux, has_sigmas = "auxdata" in setting, "sigmas" in setting
    if has_aux == has_sigmas:
        return setting  # neither (engine and pyhf compute the same defaults) or both (honoured)
    if has_sigmas:
        return {**setting, "auxdata": [1.0] * len(setting["sigmas"])}  # pyhf's default auxdata
    if all(a == 1.0 for a in setting["auxdata"]):
        return setting  # the engine's default auxdata is the same
    sigmas = _staterror_sigmas(document, name)
    if sigmas is None:
        raise InputError(f"{_where(measurement, name)}: staterror auxdata without sigmas on a parameter spanning "
                         f"several channels is not supported by the engine; give sigmas too")
    if len(sigmas) != len(setting["auxdata"]):
        where = _where(measurement, name)
        raise InputError(f"{where}: {len(setting['auxdata'])} auxdata values for {len(sigmas)} bins")
    return {**setting, "sigmas": sigmas}


def _staterror_sigmas(document: dict[str, Any], name: str) -> list[float] | None:
    """pyhf's default staterror widths (relative, per bin) for a one-channel staterror:
    sqrt(sum over samples of uncertainty²) / (sum of the nominal yields of those samples);
    a bin with no uncertainty gets 1.0 (pyhf fixes that parameter)."""
    channels = [c for c in document["channels"]
                if any(m["name"] == name and m["type"] == "staterror" for s in c["samples"] for m in s["modifiers"])]
    if len(channels) != 1:
        return None
    samples = [(s["data"], m["data"]) for s in channels[0]["samples"] for m in s["modifiers"]
               if m["name"] == name and m["type"] == "staterror"]
    n_bins = len(samples[0][0])
    nominal = [sum(data[b] for data, _ in samples) for b in range(n_bins)]
    sigmas = []
    for b in range(n_bins):
        rel = math.sqrt(sum((unc[b] / nominal[b]) ** 2 for _, unc in samples)) if nominal[b] > 0 else 0.0
        sigmas.append(rel if rel > 0 else 1.0)
    return sigmas


def _shapesys_factors(document: dict[str, Any], name: str) -> list[float]:
    """pyhf's default shapesys auxdata and factors: (nominal / uncertainty)² per valid bin, 1.0 elsewhere."""
    for channel in document["channels"]:
        for sample in channel["samples"]:
            for m in sample["modifiers"]:
                if m["name"] == name and m["type"] == "shapesys":
                    return [(n / u) ** 2 if n > 0 and u > 0 else 1.0 for n, u in zip(sample["data"], m["data"],
                                                                                     strict=True)]
    return []


def _same(values: list[float], defaults: list[float]) -> bool:
    return len(values) == len(defaults) and all(math.isclose(v, d, rel_tol=1e-12) for v, d in zip(values, defaults,
                                                                                                   strict=True))


def _engine_version() -> str:
    import nextstat

    return str(nextstat.__version__)
