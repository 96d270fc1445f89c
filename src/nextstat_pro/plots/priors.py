"""The priors of a pyhf workspace's constrained parameters, as pyhf defines them: what the pulls
of a fit are measured in. The engine's parameter names are pyhf's (``name`` or ``name[bin]``).

- normsys, histosys: a unit Gaussian around 0;
- lumi: a Gaussian of width ``sigmas[0]`` around ``auxdata[0]`` (the measurement's settings;
  pyhf's defaults 1.0 and 1.0 when absent, as engine/measurement.py writes them out);
- staterror: per bin, around 1, of relative width sqrt(sum of the samples' errors squared) /
  (sum of their nominal yields), or the measurement's ``sigmas`` when it gives them;
- shapesys: per bin, around 1, of relative width error / nominal yield (the Poisson
  constraint's width at its nominal value);
- normfactor, shapefactor: unconstrained, no prior (no pull).
A bin whose width is 0 or undefined (empty nominal) has no prior: pyhf fixes those."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ._model import Prior


def priors_from_workspace(workspace: Mapping[str, Any], measurement: str | None = None) -> dict[str, Prior]:
    """Parameter name → Prior for ``workspace`` (a parsed pyhf workspace) under ``measurement``
    (default: its first, as the engine takes it)."""
    priors: dict[str, Prior] = {}
    stat: dict[str, list[tuple[list[float], list[float]]]] = defaultdict(list)
    for channel in workspace.get("channels", []):
        for sample in channel.get("samples", []):
            nominal = [float(x) for x in sample.get("data", [])]
            for modifier in sample.get("modifiers", []):
                kind, name = modifier.get("type"), modifier.get("name")
                if kind in ("normsys", "histosys"):
                    priors[name] = Prior(0.0, 1.0)
                elif kind == "lumi":
                    priors[name] = Prior(1.0, 1.0)
                elif kind == "staterror":
                    stat[name].append((nominal, [float(x) for x in modifier.get("data") or []]))
                elif kind == "shapesys":
                    for i, (n, e) in enumerate(zip(nominal, modifier.get("data") or [], strict=False)):
                        if n > 0 and e > 0:
                            priors[f"{name}[{i}]"] = Prior(1.0, float(e) / n)
    for name, parts in stat.items():
        for i in range(min(len(n) for n, _ in parts)):
            total = sum(n[i] for n, _ in parts)
            error = math.sqrt(sum(e[i] ** 2 for _, e in parts if i < len(e)))
            if total > 0 and error > 0:
                priors[f"{name}[{i}]"] = Prior(1.0, error / total)
    _apply_settings(priors, workspace, measurement)
    return priors


def _apply_settings(priors: dict[str, Prior], workspace: Mapping[str, Any], measurement: str | None) -> None:
    measurements = workspace.get("measurements") or []
    chosen = next((m for m in measurements if measurement is None or m.get("name") == measurement), None)
    if chosen is None:
        return
    for setting in chosen.get("config", {}).get("parameters", []):
        name = setting.get("name")
        if setting.get("fixed"):
            for key in [k for k in priors if k == name or k.startswith(f"{name}[")]:
                del priors[key]
            continue
        sigmas, auxdata = setting.get("sigmas"), setting.get("auxdata")
        if name in priors and (sigmas or auxdata):  # a one-component parameter: lumi
            old = priors[name]
            priors[name] = Prior(float(auxdata[0]) if auxdata else old.centre,
                                 float(sigmas[0]) if sigmas else old.width)
        elif sigmas:  # per bin: staterror
            for i, s in enumerate(sigmas):
                if f"{name}[{i}]" in priors:
                    priors[f"{name}[{i}]"] = Prior(priors[f"{name}[{i}]"].centre, float(s))
