"""Pharma tasks: population PK (one-compartment oral, FOCE/FOCEI) with nextstat."""

from __future__ import annotations

import math
from typing import Any

import nextstat as ns

from ..errors import InputError, TaskFailedError
from .inputs import PkDataset
from .params import PkNlmeParams

THETA_NAMES = ("CL", "V", "Ka")


def pk_nlme(data: PkDataset, p: PkNlmeParams, seed: int | None) -> dict[str, Any]:
    if len(p.theta_init) != 3 or len(p.omega_init) != 3:
        raise InputError("pk-nlme needs three values for theta_init and omega_init (CL, V, Ka)")
    try:
        fit = ns.nlme_foce(
            data.times,
            data.concentrations,
            data.subject_index,
            len(data.subject_ids),
            doses=data.doses,
            theta_init=list(p.theta_init),
            omega_init=list(p.omega_init),
            method=p.method,
            error_model=p.error_model,
            sigma=p.sigma,
        )
    except (ValueError, RuntimeError) as exc:
        raise TaskFailedError(f"pk-nlme failed: {exc}") from None
    cov = fit.get("covariance_step") or {}
    se = cov.get("se") or [math.nan] * 7
    reasons = []
    if not fit["converged"]:
        reasons.append("FOCE did not converge")
    if not all(math.isfinite(x) for x in se[:3]):
        reasons.append("covariance step failed: standard errors of theta undefined")
    parameters = [
        {"name": n, "value": v, "uncertainty": s} for n, v, s in zip(THETA_NAMES, fit["theta"], se, strict=False)
    ]
    return {
        "quality": {"ok": not reasons, "converged": bool(fit["converged"]), "reasons": reasons},
        "parameters": parameters,
        "omega_sd": dict(zip(THETA_NAMES, fit["omega"], strict=True)),
        "omega_matrix": fit["omega_matrix"],
        "sigma": fit["sigma"],
        "ofv": fit["ofv"],
        "n_iter": fit["n_iter"],
        "n_subjects": len(data.subject_ids),
        "n_observations": len(data.times),
        "covariance": {
            "parameter_names": ["CL", "V", "Ka", "omega_CL", "omega_V", "omega_Ka", "sigma"],
            "matrix": cov.get("covariance"),
            "rse_pct": cov.get("rse_pct"),
        },
        "eta": fit["eta"],
    }
