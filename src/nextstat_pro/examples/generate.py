"""Seeded generators of example inputs, so the demo and tests need no external data.

- ``histfactory_workspace``: a four-channel pyhf workspace (two signal regions, two
  control regions) with ~three dozen nuisance parameters;
- ``signal_patchset``: a pyhf patchset (format 1.0.0) of signal hypotheses over a
  (m_parent, m_lsp) mass grid, for that workspace;
- ``pk_dataset``: a simulated one-compartment oral PK study as CSV.
"""

from __future__ import annotations

import io
import math
import random
from typing import Any

from ..engine.inputs import pyhf_digest

CHANNELS = (("SR_low", 8), ("SR_high", 8), ("CR_ttbar", 6), ("CR_wjets", 6))
SIGNAL_CHANNELS = ("SR_low", "SR_high")


def _poisson(rng: random.Random, lam: float) -> int:
    if lam < 30:
        # Knuth: exact and fast for small means.
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def _falling(rng: random.Random, n: int, start: float, slope: float) -> list[float]:
    return [round(start * math.exp(-slope * i) * rng.uniform(0.9, 1.1), 4) for i in range(n)]


def _signal(m_parent: float, m_lsp: float, channel: str, n_bins: int) -> list[float]:
    """Signal yields: the cross-section falls with m_parent; the peak bin moves with the mass splitting."""
    xsec = 40.0 * math.exp(-(m_parent - 1000.0) / 350.0)
    split = max(m_parent - m_lsp, 50.0)
    peak = min(n_bins - 1.0, split / 250.0) if channel == "SR_high" else min(n_bins - 1.0, split / 500.0)
    frac = 0.65 if channel == "SR_high" else 0.35
    shape = [math.exp(-0.5 * ((i - peak) / 1.5) ** 2) for i in range(n_bins)]
    norm = sum(shape)
    return [round(xsec * frac * s / norm, 5) for s in shape]


def histfactory_workspace(seed: int = 20261127) -> dict[str, Any]:
    rng = random.Random(seed)
    channels, observations = [], []
    for name, n_bins in CHANNELS:
        ttbar = _falling(rng, n_bins, 120.0 if name != "CR_wjets" else 30.0, 0.35)
        wjets = _falling(rng, n_bins, 60.0 if name != "CR_ttbar" else 15.0, 0.45)
        other = _falling(rng, n_bins, 12.0, 0.25)
        samples: list[dict[str, Any]] = []
        signal = _signal(1400.0, 200.0, name, n_bins) if name in SIGNAL_CHANNELS else None
        if signal is not None:
            samples.append(
                {
                    "name": "signal",
                    "data": signal,
                    "modifiers": [
                        {"name": "mu_sig", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                        {"name": "sig_theory", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                    ],
                }
            )
        for sample, yields, xsec in (("ttbar", ttbar, 0.06), ("wjets", wjets, 0.1), ("other", other, 0.2)):
            modifiers: list[dict[str, Any]] = [
                {"name": "lumi", "type": "lumi", "data": None},
                {"name": f"xsec_{sample}", "type": "normsys", "data": {"hi": 1 + xsec, "lo": 1 - xsec}},
                {"name": "jes", "type": "normsys", "data": {"hi": 1.03, "lo": 0.96}},
                {"name": f"staterror_{name}", "type": "staterror",
                 "data": [round(math.sqrt(y) * 0.3, 4) for y in yields]},
            ]
            if sample == "ttbar":
                modifiers.append(
                    {"name": "ttbar_shape", "type": "histosys", "data": {
                        "hi_data": [round(y * (1 + 0.02 * i), 4) for i, y in enumerate(yields)],
                        "lo_data": [round(y * (1 - 0.02 * i), 4) for i, y in enumerate(yields)]}}
                )
            samples.append({"name": sample, "data": yields, "modifiers": modifiers})
        channels.append({"name": name, "samples": samples})
        expected = [
            sum(s["data"][i] for s in samples if s["name"] != "signal") + (0.3 * signal[i] if signal else 0.0)
            for i in range(n_bins)
        ]
        observations.append({"name": name, "data": [float(_poisson(rng, lam)) for lam in expected]})
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [
            {
                "name": "example",
                "config": {
                    "poi": "mu_sig",
                    "parameters": [
                        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.017], "bounds": [[0.9, 1.1]], "inits": [1.0]},
                        {"name": "mu_sig", "bounds": [[0.0, 100.0]], "inits": [1.0]},
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }


def mass_grid(n_points: int) -> list[tuple[int, int]]:
    """``n_points`` (m_parent, m_lsp) pairs, m_lsp below m_parent, in a fixed order."""
    n_lsp = 5
    n_parent = math.ceil(n_points / n_lsp)
    grid = [(1000 + 50 * i, 100 * j) for i in range(n_parent) for j in range(n_lsp)]
    return grid[:n_points]


def signal_patchset(workspace: dict[str, Any], n_points: int = 125) -> dict[str, Any]:
    index = {c["name"]: i for i, c in enumerate(workspace["channels"])}
    bins = dict(CHANNELS)
    patches = []
    for m_parent, m_lsp in mass_grid(n_points):
        ops = [
            {"op": "replace", "path": f"/channels/{index[ch]}/samples/0/data",
             "value": _signal(float(m_parent), float(m_lsp), ch, bins[ch])}
            for ch in SIGNAL_CHANNELS
        ]
        patches.append({"metadata": {"name": f"sig_{m_parent}_{m_lsp}", "values": [m_parent, m_lsp]}, "patch": ops})
    return {
        "metadata": {
            "description": "signal grid over (m_parent, m_lsp) for the NextStat Pro example workspace",
            "digests": {"sha256": pyhf_digest(workspace, "sha256")},
            "labels": ["m_parent", "m_lsp"],
            "references": {"hepdata": "ins0000000"},
        },
        "patches": patches,
        "version": "1.0.0",
    }


def pk_dataset(seed: int = 11, n_subjects: int = 24) -> str:
    """CSV (subject,time,concentration,dose) of a one-compartment oral model with
    log-normal between-subject variability and proportional residual error."""
    rng = random.Random(seed)
    cl_pop, v_pop, ka_pop, omega, sigma = 2.0, 20.0, 1.2, 0.25, 0.1
    times = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0)
    out = io.StringIO()
    out.write("subject,time,concentration,dose\n")
    for s in range(1, n_subjects + 1):
        cl = cl_pop * math.exp(rng.gauss(0, omega))
        v = v_pop * math.exp(rng.gauss(0, omega))
        ka = ka_pop * math.exp(rng.gauss(0, omega))
        dose = 100.0 if s % 2 else 200.0
        k = cl / v
        for t in times:
            c = dose * ka / (v * (ka - k)) * (math.exp(-k * t) - math.exp(-ka * t))
            out.write(f"S{s:03d},{t},{max(c * (1 + rng.gauss(0, sigma)), 0.0):.6g},{dose}\n")
    return out.getvalue()
