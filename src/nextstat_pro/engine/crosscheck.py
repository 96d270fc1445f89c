"""A standing cross-check of what a run reports against pyhf (numpy backend).

``crosscheck(workspace, patchset, patch)`` computes OUR side exactly as a run does
(``tasks.prepare`` + ``tasks.execute`` of the tasks ``fit`` and ``upper-limit``) and the
REFERENCE with pyhf 0.7.6 on its numpy backend, independently of our code: pyhf parses the
workspace, verifies and applies the patch itself, builds its own model (its own defaults for
every measurement setting) and fits it. It then compares, per parameter (matched by name),
the best-fit value and the uncertainty, the NLL at the best fit, and the asymptotic CLs upper
limit (observed and the five expected quantiles). Docs: docs/validation.md.

How the reference is computed:

- best fit: ``pyhf.infer.mle.fit`` with pyhf's scipy optimizer (SLSQP) at
  ``REFERENCE_FIT_TOLERANCE``; NLL = ``-model.logpdf`` at that point (pyhf's ``twice_nll``/2;
  the engine's ``nll`` is the same function: equal to 1e-12 at the same point, checked);
- uncertainties: pyhf's optimizer returns none, so the NLL's Hessian over the FREE parameters
  is taken by central finite differences at pyhf's best fit, evaluated in batches through a
  pyhf model built with ``batch_size``, and inverted; fixed parameters get 0;
- upper limit: ``pyhf.infer.intervals.upper_limits.toms748_scan`` (what ``upper_limit`` calls
  when given no scan) between ``max(POI lower bound, 0)`` and the POI's upper bound, with
  ``REFERENCE_LIMIT_RTOL`` and ``level = alpha`` (pyhf 0.7.6's ``upper_limit`` does not pass its
  ``level`` on to ``toms748_scan``, so it is called directly).

A failure on either side (the engine's "CLs(0)=0", a failed pyhf minimisation) is a row of
the report: both failing agree, one failing disagrees. Inputs that OUR side refuses
(``InputError``: e.g. a measurement setting the engine cannot honour) are not compared: the
refusal propagates, since there is no result of ours to check.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from ..errors import TaskFailedError, UsageError
from .inputs import InputFile
from .tasks import engine_info, execute, prepare

# --- Tolerances of the comparison (docs/validation.md gives the measured figures) ---------

VALUE_RTOL = 1e-3
"""Best-fit values agree when ``|ours - ref| <= max(VALUE_RTOL * |ref|, VALUE_SIGMA_TOL * sigma)``.
Relative 1e-3 is the issue's tolerance; but a nuisance parameter's best fit is often near 0,
where a relative difference means nothing, so the allowance never falls below a fraction of
the parameter's own (reference) uncertainty ``sigma``: a shift measured in the only unit in
which the data determine the parameter."""

VALUE_SIGMA_TOL = 2e-3
"""The floor of the value allowance in units of the parameter's uncertainty. The engine's
minimiser alone stops up to 4e-3 sigma short of the minimum along weakly determined directions
(measured against a pyhf minimum converged to 1e-10: generated lumi-without-sigmas 4.0e-3 sigma,
tHu 1.7e-3, tttt-prod 7e-4, the shared small ones <= 2e-4); the product finishes its fits with a
Newton step (engine/uncertainties.py), after which the worst case measured is 2e-5 sigma. A
shift of 2e-3 sigma raises twice the NLL by 4e-6 along its direction, far below anything a
limit or an interval can see."""

UNCERTAINTY_RTOL = 1e-3
"""Uncertainties agree to relative 1e-3 (the issue's tolerance). A fixed parameter's
reference uncertainty is exactly 0, so ours must be exactly 0 too."""

NLL_ATOL = 5e-5
"""The NLL at the best fit agrees to 5e-5 absolute. An NLL's scale is absolute (a difference
of 0.5 is one standard deviation), so a relative tolerance would loosen with the size of the
dataset. The engine's minimum alone is higher than the converged reference by up to 1.1e-5
(tHu; FACTS reports 2e-6 to 4e-5 in twice the NLL), the product's (after its Newton step) and
pyhf's SLSQP by < 1e-8 here."""

LIMIT_RTOL = 1e-4
"""Upper limits (observed and each expected quantile) agree to relative 1e-4 (the issue's
tolerance); the reference root is found to REFERENCE_LIMIT_RTOL, 100 times tighter."""

# --- How the reference is computed -------------------------------------------------------

REFERENCE_FIT_TOLERANCE = 1e-10
"""SLSQP's ``tol`` for pyhf's fits. pyhf's default (None: SLSQP's ftol 1e-6) leaves its best
fit 1.5e-4 to 2.3e-4 away from the minimum on the small workspaces (NLL 5e-8 high), which is a
tenth of the value tolerance; at 1e-10 it is within 3e-8 to 2e-6 of the 1e-12 result."""

HESSIAN_STEP = 3e-3
"""Finite-difference step, in units of each parameter's conditional uncertainty
``1/sqrt(H_ii)``. A central difference's truncation error is of relative order ``step**2``
and its rounding error of order ``eps * |NLL| / step**2``. Measured on the small workspaces
(uncertainties against those at step 3e-3): step 1e-1 -> up to 5e-4, 3e-2 -> 4.5e-5, 1e-2 ->
4.6e-6, 1e-3 -> 8e-7 (truncation falling as step**2), 1e-4 -> 7.6e-5 (rounding); at 3e-3 both
are below 1e-6, a thousandth of UNCERTAINTY_RTOL."""

HESSIAN_STEP_START = 1e-3
"""First step (times ``max(1, |x_i|)``) used only to estimate each ``1/sqrt(H_ii)``."""

REFERENCE_LIMIT_RTOL = 1e-6
"""Relative tolerance of pyhf's toms748 root finding (its default is 1e-4, the whole tolerance
of the comparison)."""

REFERENCE_LIMIT_ATOL = 2e-12
"""Absolute tolerance of the root finding (pyhf's default)."""

BATCH = 64
"""Points per batched ``logpdf`` call. Small models are dominated by Python overhead (one
batched call of 1000 points costs what 2 single calls do); on tttt-prod a point costs about
7 ms either way (pyhf's dense modifier arrays), and 64 keeps those arrays small."""

EXPECTED_LABELS = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")
DEFAULT_ALPHA = 0.05


class FitOutcome(BaseModel):
    """One side's best fit: values and uncertainties by parameter name, fixed parameters, NLL."""

    model_config = ConfigDict(frozen=True)
    values: dict[str, float]
    uncertainties: dict[str, float] | None
    fixed: list[str]
    nll: float
    uncertainty_error: str | None = None
    at_bound: list[str] = []


class LimitOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)
    observed: float
    expected: list[float]  # -2, -1, 0, +1, +2 sigma


class Side(BaseModel):
    """What one side computed; a failure is a message instead of a result."""

    model_config = ConfigDict(frozen=True)
    name: str
    fit: FitOutcome | None = None
    fit_error: str | None = None
    limit: LimitOutcome | None = None
    limit_error: str | None = None
    seconds: float = 0.0
    notes: list[str] = []
    nll_offset: float = 0.0  # added to this side's NLL before comparing (see _translate_extensions)


class CrosscheckRow(BaseModel):
    """One compared quantity. ``difference`` is ours - reference; it agrees when
    ``|difference| <= tolerance`` (an absolute allowance derived from the rule in ``rule``)."""

    model_config = ConfigDict(frozen=True)
    quantity: str
    ours: float | None
    reference: float | None
    difference: float | None
    tolerance: float | None
    ok: bool
    rule: str
    note: str | None = None


class CrosscheckReport(BaseModel):
    model_config = ConfigDict(frozen=True)
    workspace: str
    patch: str | None
    against: str
    reference: str
    engine: str
    rows: list[CrosscheckRow]
    ok: bool
    notes: list[str]
    ours_seconds: float
    reference_seconds: float

    def failures(self) -> list[CrosscheckRow]:
        return [r for r in self.rows if not r.ok]


# --- Our side: exactly what a run reports ----------------------------------------------


def _inputs(workspace_input: InputFile, patchset_input: InputFile | None) -> list[InputFile]:
    return [workspace_input] + ([patchset_input] if patchset_input is not None else [])


def ours(workspace_input: InputFile, patchset_input: InputFile | None, patch: str | None,
         limit: bool = True) -> Side:
    """Run the tasks ``fit`` and ``upper-limit`` through ``prepare`` + ``execute``, as a run does.
    ``InputError``/``UsageError`` from ``prepare`` (a refused input) propagate."""
    start = time.perf_counter()
    inputs = _inputs(workspace_input, patchset_input)
    fit: FitOutcome | None = None
    fit_error = limit_result = limit_error = None
    notes: list[str] = []
    try:
        result = execute(prepare("fit", {}, inputs, patch), None)
    except TaskFailedError as exc:
        fit_error = exc.message
    else:
        rows = result["parameters"]
        quality = result.get("quality", {})
        if not quality.get("ok", True):
            notes.append("our fit quality is not ok: " + "; ".join(quality.get("reasons", [])))
        fit = FitOutcome(
            values={r["name"]: float(r["value"]) for r in rows},
            uncertainties={r["name"]: float(r["uncertainty"]) for r in rows},
            fixed=[r["name"] for r in rows if r.get("fixed")],
            nll=float(result["nll"]),
            at_bound=list(quality.get("at_bound", [])),
        )
    if limit:
        try:
            result = execute(prepare("upper-limit", {"alpha": DEFAULT_ALPHA}, inputs, patch), None)
        except TaskFailedError as exc:
            limit_error = exc.message
        else:
            limit_result = LimitOutcome(
                observed=float(result["observed"]),
                expected=[float(result["expected"][k]) for k in EXPECTED_LABELS],
            )
    else:
        limit_error = "not computed"
    return Side(name="nextstat", fit=fit, fit_error=fit_error, limit=limit_result, limit_error=limit_error,
                seconds=time.perf_counter() - start, notes=notes)


# --- The reference: pyhf, numpy backend --------------------------------------------------


class ReferenceFailure(Exception):
    """pyhf could not compute a quantity (reported as a row, never raised to the caller)."""


def _translate_extensions(document: dict[str, Any]) -> tuple[dict[str, Any], float, list[str]]:
    """pyhf's schema refuses the engine's ``constraint`` parameter field (HistFactory XML
    imports write it). Express it in pyhf's terms, or refuse to build a reference:

    - ``{"type": "Gaussian"}`` (or ``"Normal"``): pyhf's own constraint for a staterror: dropped;
    - ``{"type": "Gamma", "rel_uncertainty": r}`` on every bin of a staterror carried by one
      sample of its channel: HistFactory's Gamma constraint is a Poisson constraint with
      ``tau = 1/r**2`` (ROOT builds it as ``RooPoisson(tau, gamma*tau)``), which is pyhf's
      shapesys; the modifier becomes a shapesys with ``data = r * nominal`` (pyhf's
      ``tau = (nominal/data)**2``). The parameters keep their names. The engine writes the
      constraint as a density in gamma, pyhf as the probability of the auxiliary count
      ``tau``: they differ by the Jacobian ``d(tau*gamma)/d(gamma) = tau``, so the engine's
      NLL is pyhf's minus ``sum(log tau)`` (exactly, at every point; checked on
      histfactory_import). The returned offset is that constant, added to the reference NLL.

    Anything else raises ReferenceFailure (no reference can be built)."""
    measurements = document.get("measurements") or []
    if not any("constraint" in p for m in measurements for p in m.get("config", {}).get("parameters", [])):
        return document, 0.0, []
    document = copy.deepcopy(document)
    notes: list[str] = []
    offset = 0.0
    gamma: dict[str, dict[int, float]] = {}
    for m in document["measurements"]:
        for p in m["config"]["parameters"]:
            constraint = p.pop("constraint", None)
            if constraint is None:
                continue
            kind = str(constraint.get("type", "")).lower()
            if kind in ("gaussian", "normal"):
                continue
            name, _, rest = p["name"].partition("[")
            if kind != "gamma" or not rest.endswith("]") or "rel_uncertainty" not in constraint:
                raise ReferenceFailure(f"no pyhf equivalent of the constraint {constraint!r} of {p['name']}")
            gamma.setdefault(name, {})[int(rest[:-1])] = float(constraint["rel_uncertainty"])
    for name, rel in gamma.items():
        carriers = [(c, s, mod) for c in document["channels"] for s in c["samples"] for mod in s["modifiers"]
                    if mod["name"] == name]
        channels = {c["name"] for c, _, _ in carriers}
        if not carriers or any(mod["type"] != "staterror" for _, _, mod in carriers) or len(carriers) != len(channels):
            raise ReferenceFailure(f"Gamma constraint on {name}: pyhf can express it only for a staterror "
                                  "carried by one sample of its channel")
        for _, sample, mod in carriers:
            nominal = sample["data"]
            if set(rel) != set(range(len(nominal))):
                raise ReferenceFailure(f"Gamma constraint on {name}: every bin needs one (pyhf cannot mix constraints)")
            mod["type"] = "shapesys"
            mod["data"] = [rel[i] * nominal[i] for i in range(len(nominal))]
            offset += sum(math.log(1.0 / rel[i] ** 2) for i in range(len(nominal)))
        notes.append(f"{name}: the engine's Gamma constraint is pyhf's shapesys (Poisson, tau = 1/rel^2); "
                     f"NLLs compared with the constant sum(log tau) = {offset:.6g} added to pyhf's")
    return document, -offset, notes


@contextmanager
def _pyhf_numpy(tolerance: float | None) -> Iterator[Any]:
    """pyhf's numpy backend with the reference's optimizer tolerance; the previous backend and
    the pyhf loggers' levels are restored afterwards (pyhf logs every failed evaluation), and
    its warnings (jsonschema's RefResolver deprecation, numpy's invalid values when a point
    leaves the model's domain) are not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyhf  # type: ignore[import-untyped]

        with _numpy_backend(pyhf, tolerance):
            yield pyhf


@contextmanager
def _numpy_backend(pyhf: Any, tolerance: float | None) -> Iterator[None]:
    previous = pyhf.get_backend()
    loggers = [logging.getLogger(n) for n in ("pyhf", "pyhf.pdf", "pyhf.workspace", "pyhf.optimize.mixins")]
    levels = [lg.level for lg in loggers]
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=tolerance))
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        pyhf.set_backend(*previous)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


FloatArray = npt.NDArray[np.float64]


def batched_nll(make_model: Callable[[int], Any], data: Any, batch: int = BATCH) -> Callable[[FloatArray], FloatArray]:
    """``points (m, npars) -> NLL (m,)`` through a pyhf model built with ``batch_size``:
    one vectorised ``logpdf`` call per ``batch`` points (the last batch padded)."""
    model = make_model(batch)

    def nll(points: FloatArray) -> FloatArray:
        out = np.empty(len(points))
        for start in range(0, len(points), batch):
            chunk = points[start:start + batch]
            m = len(chunk)
            if m < batch:
                chunk = np.vstack([chunk, np.repeat(chunk[-1:], batch - m, axis=0)])
            out[start:start + m] = -np.asarray(model.logpdf(chunk, data), dtype=float)[:m]
        return out

    return nll


def hessian(nll: Callable[[FloatArray], FloatArray], x0: FloatArray, free: list[int],
            step: float = HESSIAN_STEP) -> FloatArray:
    """Central finite-difference Hessian of ``nll`` at ``x0`` over the ``free`` coordinates.

    Step ``h_i = step / sqrt(H_ii)`` (``H_ii`` estimated first with HESSIAN_STEP_START, refined
    until the step settles within a factor of 2). Diagonal: ``(f(+i) + f(-i) - 2 f0) / h_i^2``;
    off-diagonal, the two-point symmetric formula
    ``(f(+i+j) + f(-i-j) - f(+i) - f(-i) - f(+j) - f(-j) + 2 f0) / (2 h_i h_j)``, also exact to
    ``O(h^2)`` and half the points of the four-point one: n(n-1) + 2n + 1 evaluations."""
    n = len(free)
    idx = np.asarray(free, dtype=int)
    x0 = np.asarray(x0, dtype=float)

    def diagonal(h: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        pts = np.repeat(x0[None, :], 2 * n + 1, axis=0)
        pts[np.arange(n), idx] += h
        pts[n + np.arange(n), idx] -= h
        f = nll(pts)
        return float(f[-1]), f[:n], f[n:2 * n]

    h = HESSIAN_STEP_START * np.maximum(1.0, np.abs(x0[idx]))
    for _ in range(4):
        f0, fp, fm = diagonal(h)
        d = (fp + fm - 2 * f0) / h**2
        new = np.where(np.isfinite(d) & (d > 0), step / np.sqrt(np.where(d > 0, d, 1.0)), h)
        settled = bool(np.all(np.abs(np.log(new / h)) < math.log(2)))
        h = new
        if settled:
            break
    f0, fp, fm = diagonal(h)
    hess = np.diag((fp + fm - 2 * f0) / h**2)
    iu, ju = np.triu_indices(n, 1)
    chunk = 4096
    for start in range(0, len(iu), chunk):
        i, j = iu[start:start + chunk], ju[start:start + chunk]
        m = len(i)
        pts = np.repeat(x0[None, :], 2 * m, axis=0)
        rows = np.arange(m)
        pts[rows, idx[i]] += h[i]
        pts[rows, idx[j]] += h[j]
        pts[m + rows, idx[i]] -= h[i]
        pts[m + rows, idx[j]] -= h[j]
        f = nll(pts)
        hij = (f[:m] + f[m:] - fp[i] - fm[i] - fp[j] - fm[j] + 2 * f0) / (2 * h[i] * h[j])
        hess[i, j] = hess[j, i] = hij
    return hess


def uncertainties_from_hessian(hess: FloatArray) -> FloatArray:
    """Square roots of the covariance's diagonal; raises ReferenceFailure unless the Hessian
    is finite and positive definite."""
    if not np.all(np.isfinite(hess)):
        raise ReferenceFailure("the NLL is not finite around the best fit (a parameter at a bound?)")
    try:
        chol = np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        raise ReferenceFailure("the Hessian of pyhf's NLL at its best fit is not positive definite") from None
    inv_chol = np.linalg.inv(chol)
    return np.asarray(np.sqrt(np.sum(inv_chol**2, axis=0)), dtype=float)


def reference(workspace_document: dict[str, Any], patchset_document: dict[str, Any] | None = None,
              patch: str | None = None, alpha: float = DEFAULT_ALPHA, limit: bool = True,
              uncertainties: bool = True) -> Side:
    """pyhf's answer for the workspace (with ``patch`` of ``patchset_document`` applied by
    pyhf itself, which verifies the patchset's digest). Never raises for a computation that
    fails: the failure is the Side's ``fit_error``/``limit_error``."""
    start = time.perf_counter()
    notes: list[str] = []
    with _pyhf_numpy(REFERENCE_FIT_TOLERANCE) as pyhf:
        try:
            document: dict[str, Any] = workspace_document
            if patchset_document is not None:
                if patch is None:
                    raise ReferenceFailure("a patchset needs a patch name")
                patchset = pyhf.PatchSet(patchset_document)
                base = pyhf.Workspace(document, validate=False)
                patchset.verify(base)
                document = patchset[patch].apply(base)
            document, offset, ext_notes = _translate_extensions(dict(document))
            notes += ext_notes
            ws = pyhf.Workspace(document)
            measurement = ws["measurements"][0]["name"]

            def make_model(batch: int | None = None) -> Any:
                return ws.model(measurement_name=measurement, batch_size=batch)

            model = make_model()
            data = ws.data(model)
        except Exception as exc:  # noqa: BLE001 - any pyhf refusal is the reference's answer
            message = f"pyhf cannot build the model: {_first_line(exc)}"
            return Side(name="pyhf", fit_error=message, limit_error=message,
                        seconds=time.perf_counter() - start, notes=notes)
        fit = limit_outcome = None
        fit_error = limit_error = None
        try:
            fit = _reference_fit(pyhf, model, make_model, data, offset, uncertainties)
        except Exception as exc:  # noqa: BLE001
            fit_error = f"pyhf fit failed: {_first_line(exc)}"
        if limit:
            try:
                limit_outcome = _reference_limit(pyhf, model, data, alpha)
            except ReferenceFailure as exc:
                limit_error = str(exc)
            except Exception as exc:  # noqa: BLE001
                limit_error = f"pyhf upper limit failed: {_first_line(exc)}"
        else:
            limit_error = "not computed"
    return Side(name="pyhf", fit=fit, fit_error=fit_error, limit=limit_outcome, limit_error=limit_error,
                seconds=time.perf_counter() - start, notes=notes, nll_offset=offset)


def _reference_fit(pyhf: Any, model: Any, make_model: Callable[[int], Any], data: Any, offset: float,
                   with_uncertainties: bool) -> FitOutcome:
    best, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    best = np.asarray(best, dtype=float)
    names: list[str] = list(model.config.par_names)
    fixed_flags: list[bool] = list(model.config.suggested_fixed())
    bounds = model.config.suggested_bounds()
    free = [i for i, f in enumerate(fixed_flags) if not f]
    at_bound = [names[i] for i in free if best[i] in (bounds[i][0], bounds[i][1])]
    errors: dict[str, float] | None = None
    error_note = None
    if with_uncertainties:
        try:
            sigma = uncertainties_from_hessian(hessian(batched_nll(make_model, data), best, free))
            errors = dict.fromkeys(names, 0.0)
            errors.update({names[i]: float(s) for i, s in zip(free, sigma, strict=True)})
        except ReferenceFailure as exc:
            error_note = str(exc)
    return FitOutcome(
        values={n: float(v) for n, v in zip(names, best, strict=True)},
        uncertainties=errors,
        fixed=[n for n, f in zip(names, fixed_flags, strict=True) if f],
        nll=float(-model.logpdf(best, data)[0]),
        uncertainty_error=error_note,
        at_bound=at_bound,
    )


@contextmanager
def _memoised_repeated_fits(pyhf: Any) -> Iterator[dict[str, int]]:
    """Each pyhf hypotest runs five fits, three of which are the same at every tested POI: the
    free fit to the data, the fit at POI 0 that makes the Asimov dataset, and the free fit to
    that dataset. A toms748 scan tests ~50 POI values, so those three are memoised (keyed on
    the model object and every argument; a hit returns a copy of the stored result). The
    answer is bit for bit pyhf's (the fits are deterministic); the scan runs ~2.5x faster.
    Yields hit/miss counts; the patched module attributes are restored afterwards."""
    import pyhf.infer.calculators as calculators  # type: ignore[import-untyped]
    import pyhf.infer.test_statistics as test_statistics  # type: ignore[import-untyped]

    counts = {"hits": 0, "misses": 0}
    cache: dict[tuple[Any, ...], Any] = {}

    def key_of(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        def freeze(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return ("array", v.shape, v.tobytes())
            if isinstance(v, (list, tuple)):
                return tuple(freeze(x) for x in v)
            if isinstance(v, dict):
                return tuple(sorted((k, freeze(x)) for k, x in v.items()))
            if isinstance(v, (int, float, str, bool, type(None))):
                return v
            return ("object", id(v))  # the model: same object, same fit

        return freeze(args), freeze(kwargs)

    def memoised(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            key = (fn.__name__, key_of(*args, **kwargs))
            if key not in cache:
                counts["misses"] += 1
                cache[key] = fn(*args, **kwargs)
            else:
                counts["hits"] += 1
            return copy.deepcopy(cache[key])

        return call

    saved = test_statistics.fit, calculators.fixed_poi_fit
    test_statistics.fit = memoised(saved[0])  # free fits (to data, to Asimov)
    calculators.fixed_poi_fit = memoised(saved[1])  # the Asimov dataset's fit at POI 0
    try:
        yield counts
    finally:
        test_statistics.fit, calculators.fixed_poi_fit = saved


def _reference_limit(pyhf: Any, model: Any, data: Any, alpha: float) -> LimitOutcome:
    from pyhf.infer.intervals.upper_limits import toms748_scan  # type: ignore[import-untyped]

    poi = model.config.poi_index
    if poi is None:
        raise ReferenceFailure("pyhf: the model has no POI")
    lo, hi = (float(b) for b in model.config.suggested_bounds()[poi])
    # The bracket: pyhf's upper_limit starts at the POI's lower bound, the engine at 0. q~ (the
    # test statistic of both) is defined for mu >= 0, and from a negative bound (tHu's POI has
    # bounds [-100, 100]) pyhf's first hypotest fails to minimise, so both start at max(lo, 0).
    lo = max(lo, 0.0)
    with _memoised_repeated_fits(pyhf):
        if lo == 0.0:
            # toms748_scan halves the lower bound until every CLs there exceeds alpha: from 0
            # that never ends. Ask first, as the scan would.
            obs, exp = pyhf.infer.hypotest(lo, data, model, return_expected_set=True)
            values = [float(obs)] + [float(e) for e in exp]
            if not all(math.isfinite(v) for v in values) or min(values) < alpha:
                raise ReferenceFailure(f"pyhf upper limit failed: 0 does not bracket the limit (CLs there must be "
                                      f"finite and >= {alpha:g}): CLs(0) = {float(obs):.3g}, expected "
                                      f"{', '.join(f'{float(e):.3g}' for e in exp)}")
        observed, expected = toms748_scan(data, model, lo, hi, level=alpha, atol=REFERENCE_LIMIT_ATOL,
                                          rtol=REFERENCE_LIMIT_RTOL)
    return LimitOutcome(observed=float(observed), expected=[float(e) for e in expected])


def reference_from_inputs(workspace_input: InputFile, patchset_input: InputFile | None, patch: str | None,
                          limit: bool = True) -> Side:
    """``reference`` on input files: the documents are parsed with ``json`` (not our reader)."""
    try:
        workspace = json.loads(workspace_input.data)
        patchset = json.loads(patchset_input.data) if patchset_input is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = f"pyhf cannot read the input: {_first_line(exc)}"
        return Side(name="pyhf", fit_error=message, limit_error=message)
    return reference(workspace, patchset, patch, limit=limit)


# --- The comparison ------------------------------------------------------------------


def _row(quantity: str, ours_v: float | None, ref_v: float | None, tolerance: float, rule: str,
         note: str | None = None) -> CrosscheckRow:
    if ours_v is None or ref_v is None or not math.isfinite(ours_v) or not math.isfinite(ref_v):
        return CrosscheckRow(quantity=quantity, ours=ours_v, reference=ref_v, difference=None, tolerance=tolerance,
                             ok=False, rule=rule, note=note or "missing or not finite on one side")
    diff = ours_v - ref_v
    return CrosscheckRow(quantity=quantity, ours=ours_v, reference=ref_v, difference=diff, tolerance=tolerance,
                         ok=abs(diff) <= tolerance, rule=rule, note=note)


def _failure_row(quantity: str, ours_error: str | None, ref_error: str | None) -> CrosscheckRow:
    both = ours_error is not None and ref_error is not None
    note = "; ".join(f"{who} failed: {e}" for who, e in (("ours", ours_error), ("pyhf", ref_error)) if e)
    return CrosscheckRow(quantity=quantity, ours=None, reference=None, difference=None, tolerance=None, ok=both,
                         rule="both fail, or neither", note=("both failed (agree). " if both else "") + note)


VALUE_RULE = f"|d| <= max({VALUE_RTOL:g}*|ref|, {VALUE_SIGMA_TOL:g}*sigma_ref)"
UNC_RULE = f"|d| <= {UNCERTAINTY_RTOL:g}*ref (fixed: ref = 0, so ours must be 0)"
NLL_RULE = f"|d| <= {NLL_ATOL:g}"
LIMIT_RULE = f"|d| <= {LIMIT_RTOL:g}*ref"


def compare(ours_side: Side, ref: Side) -> list[CrosscheckRow]:
    rows: list[CrosscheckRow] = []
    of, rf = ours_side.fit, ref.fit
    if of is None or rf is None:
        rows.append(_failure_row("fit", ours_side.fit_error, ref.fit_error))
    else:
        rows += _compare_fits(of, rf, ref.nll_offset)
    ol, rl = ours_side.limit, ref.limit
    if ours_side.limit_error == "not computed" or ref.limit_error == "not computed":
        pass
    elif ol is None or rl is None:
        rows.append(_failure_row("upper limit", ours_side.limit_error, ref.limit_error))
    else:
        rows.append(_row("upper limit observed", ol.observed, rl.observed, LIMIT_RTOL * abs(rl.observed), LIMIT_RULE))
        for label, o, r in zip(EXPECTED_LABELS, ol.expected, rl.expected, strict=True):
            rows.append(_row(f"upper limit expected {label}", o, r, LIMIT_RTOL * abs(r), LIMIT_RULE))
    return rows


def _compare_fits(of: FitOutcome, rf: FitOutcome, nll_offset: float) -> list[CrosscheckRow]:
    rows: list[CrosscheckRow] = []
    names = list(rf.values) + [n for n in of.values if n not in rf.values]
    ref_sigma = rf.uncertainties or {}
    for name in names:
        if name not in of.values or name not in rf.values:
            side = "pyhf" if name in rf.values else "ours"
            rows.append(CrosscheckRow(quantity=f"value {name}", ours=of.values.get(name), reference=rf.values.get(name),
                                      difference=None, tolerance=None, ok=False, rule="same parameter names",
                                      note=f"parameter only in {side}"))
            continue
        ref_v, sigma = rf.values[name], ref_sigma.get(name)
        fixed = name in rf.fixed
        if sigma is None or (sigma == 0.0 and not fixed):
            scale, note = 1.0, "no reference uncertainty: sigma taken as 1"
        else:
            scale, note = sigma, None
        tol = max(VALUE_RTOL * abs(ref_v), VALUE_SIGMA_TOL * scale)
        bound = " (at a bound)" if name in rf.at_bound else ""
        rows.append(_row(f"value {name}{bound}", of.values[name], ref_v, tol, VALUE_RULE, note))
    if rf.uncertainties is None:
        rows.append(_failure_row("uncertainties", None, rf.uncertainty_error))
    elif of.uncertainties is None:
        rows.append(_failure_row("uncertainties", "no uncertainties", None))
    else:
        for name in names:
            if name in of.uncertainties and name in rf.uncertainties:
                ref_u = rf.uncertainties[name]
                label = " (fixed)" if name in rf.fixed else ""
                rows.append(_row(f"uncertainty {name}{label}", of.uncertainties[name], ref_u,
                                 UNCERTAINTY_RTOL * abs(ref_u), UNC_RULE))
    ours_fixed, ref_fixed = set(of.fixed), set(rf.fixed)
    if ours_fixed != ref_fixed:
        only_ref, only_ours = sorted(ref_fixed - ours_fixed), sorted(ours_fixed - ref_fixed)
        note = "; ".join(p for p in (f"fixed in pyhf only: {', '.join(only_ref)}" if only_ref else "",
                                     f"fixed in ours only: {', '.join(only_ours)}" if only_ours else "") if p)
        rows.append(CrosscheckRow(quantity="fixed parameters", ours=float(len(ours_fixed)),
                                  reference=float(len(ref_fixed)), difference=None, tolerance=None, ok=False,
                                  rule="the same parameters marked fixed", note=note))
    elif ref_fixed:
        rows.append(CrosscheckRow(quantity="fixed parameters", ours=float(len(ours_fixed)),
                                  reference=float(len(ref_fixed)), difference=0.0, tolerance=0.0, ok=True,
                                  rule="the same parameters marked fixed", note=", ".join(sorted(ref_fixed))))
    rows.append(_row("NLL", of.nll, rf.nll + nll_offset, NLL_ATOL, NLL_RULE,
                     f"pyhf's NLL + {nll_offset:.6g} (constraint normalisation)" if nll_offset else None))
    return rows


def report(workspace_name: str, patch: str | None, ours_side: Side, ref: Side) -> CrosscheckReport:
    rows = compare(ours_side, ref)
    info = engine_info()
    return CrosscheckReport(
        workspace=workspace_name, patch=patch, against="pyhf",
        reference=f"pyhf {version('pyhf')} (numpy backend, scipy SLSQP tol {REFERENCE_FIT_TOLERANCE:g})",
        engine=f"{info['name']} {info['version']}", rows=rows, ok=all(r.ok for r in rows),
        notes=ours_side.notes + ref.notes, ours_seconds=ours_side.seconds, reference_seconds=ref.seconds,
    )


def crosscheck(workspace_input: InputFile, patchset_input: InputFile | None = None, patch: str | None = None,
               against: str = "pyhf") -> CrosscheckReport:
    """Compare what a run reports for the workspace (fit and upper limit) with pyhf's answer.

    Raises UsageError for an unknown ``against`` or a patchset without patch name (and the
    reverse), and the InputError of our side when the product refuses the input."""
    if against != "pyhf":
        raise UsageError(f"unknown reference {against!r} (supported: pyhf)")
    if (patchset_input is None) != (patch is None):
        raise UsageError("--patchset and --patch go together")
    ours_side = ours(workspace_input, patchset_input, patch)
    ref = reference_from_inputs(workspace_input, patchset_input, patch)
    return report(workspace_input.name, patch, ours_side, ref)
