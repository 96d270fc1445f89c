"""The plot renderer (plots/): every kind drawn from real engine results, nothing drawn from
what a result lacks, byte-identical SVG across processes, and inert SVG whatever the data say."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from nextstat_pro.engine import InputFile, execute, prepare
from nextstat_pro.engine.asymptotics import Asymptotics, expected_cls
from nextstat_pro.engine.inputs import PkDataset, load_pk_dataset
from nextstat_pro.engine.params import UpperLimitParams
from nextstat_pro.errors import InputError
from nextstat_pro.examples import generate
from nextstat_pro.plots import (
    RENDERER_VERSION,
    Plot,
    Prior,
    UnsafeSVGError,
    check_inert,
    limits,
    plots_for_result,
    priors_from_workspace,
    pulls,
)
from nextstat_pro.scale.spec import InputRef, JobSpec
from nextstat_pro.scale.worker import LoadedJob, compute

JOB_SCHEMA = "https://nextstat.pro/schemas/job-result/v1"
BAND = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")
HOSTILE = "<script>alert(1)</script> $\\alpha$ &amp; -->"


# --- real results ----------------------------------------------------------------------


class Example:
    """The generated example workspace, one signal patch of it and the PK study."""

    def __init__(self) -> None:
        self.workspace = generate.histfactory_workspace()
        self.patchset = generate.signal_patchset(self.workspace, 125)
        self.patch = self.patchset["patches"][60]
        self.ws = InputFile.from_bytes("workspace", "ws.json", json.dumps(self.workspace).encode())
        self.ps = InputFile.from_bytes("patchset", "ps.json", json.dumps(self.patchset).encode())
        self.pk_csv = generate.pk_dataset().encode()
        self.pk: PkDataset = load_pk_dataset(InputFile.from_bytes("dataset", "pk.csv", self.pk_csv))

    def run(self, task: str, params: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
        if task == "pk-nlme":
            return execute(prepare(task, params, [InputFile.from_bytes("dataset", "pk.csv", self.pk_csv)]), seed)
        prepared = prepare(task, params, [self.ws, self.ps], patch=self.patch["metadata"]["name"])
        return execute(prepared, seed)

    def priors(self) -> dict[str, Prior]:
        return priors_from_workspace(jsonpatch.apply_patch(self.workspace, self.patch["patch"]))

    def cls_scan(self, mus: list[float]) -> dict[str, Any]:
        """The CLs curve as an upper-limit result would record it (docs/plots.md), from the
        product's own asymptotic calculator."""
        prepared = prepare("upper-limit", {}, [self.ws, self.ps], patch=self.patch["metadata"]["name"])
        calc = Asymptotics(prepared.subject)
        expected = [expected_cls(calc.q_asimov(mu)) for mu in mus]
        return {"mu": mus, "cls_observed": [calc.hypotest(mu)[0] for mu in mus],
                "cls_expected": {k: [e[i] for e in expected] for i, k in enumerate(BAND)}}

    def grid(self, names: list[str], point_task: str = "upper-limit") -> dict[str, Any]:
        """A grid job's merged result over ``names``, computed by the worker's own code."""
        spec = JobSpec(run_id="r", task="grid", point_task=point_task, params={},
                       inputs=[InputRef(role=f.role, name=f.name, digest=f.digest) for f in (self.ws, self.ps)],
                       items=names, shards=1)
        points = compute(LoadedJob(spec, [self.ws, self.ps]), range(len(names)))
        return {"schema": JOB_SCHEMA, "task": "grid", "point_task": point_task, "params": {}, "n_items": len(names),
                "failed_points": [p["index"] for p in points if not p["ok"]], "points": points}


@pytest.fixture(scope="module")
def example() -> Example:
    return Example()


@pytest.fixture(scope="module")
def results(example: Example) -> dict[str, dict[str, Any]]:
    out = {
        "fit": example.run("fit", {"covariance": True}),
        "scan": example.run("scan", {"points": 11}),
        "ranking": example.run("ranking", {}),
        "toys": example.run("toys", {"n_toys": 60}, seed=11),
        "upper-limit": example.run("upper-limit", {}),
        "pk-nlme": example.run("pk-nlme", {}),
    }
    out["upper-limit-cls"] = {**out["upper-limit"], "cls_scan": example.cls_scan([0.5, 2.0, 4.0, 6.0, 8.0])}
    # A grid of the worker's shape (test_synthetic_grid_has_the_workers_shape) over the example's
    # masses: computing 36 limits would take most of this file's time budget.
    out["grid"] = synthetic_grid(lambda x, y: (x / 1250) ** 3 * (1 + y / 500))
    return out


def test_synthetic_grid_has_the_workers_shape(example: Example) -> None:
    """The grid results these tests build have the shape of a real grid job's points."""
    real = example.grid(["sig_1000_0"])
    made = synthetic_grid(lambda x, y: 1.0)
    assert real.keys() == made.keys() | {"n_items", "failed_points"}
    real_point, made_point = real["points"][0], made["points"][0]
    assert real_point.keys() == made_point.keys()
    assert real_point["values"] == [1000, 0] and real_point["ok"]
    assert set(made_point["result"]) <= set(real_point["result"])
    assert real_point["result"]["expected"].keys() == made_point["result"]["expected"].keys()


def synthetic_grid(limit: Any, n: int = 6, fail: tuple[int, ...] = ()) -> dict[str, Any]:
    """A merged grid result of the job's shape whose limits follow ``limit(x, y)`` (a surface
    that crosses 1 inside the grid, which the example's limits never do)."""
    points = []
    for k in range(n * n):
        x, y = 1000 + 100 * (k % n), 50 * (k // n)
        observed = limit(x, y)
        point: dict[str, Any] = {"index": k, "item": f"p{k}", "values": [x, y], "ok": k not in fail}
        if k in fail:
            point["error"] = "failed"
        else:
            point["result"] = {"observed": observed,
                               "expected": dict(zip(BAND, [observed * f for f in (0.5, 0.7, 0.9, 1.2, 1.6)],
                                                    strict=True))}
        points.append(point)
    return {"schema": JOB_SCHEMA, "task": "grid", "point_task": "upper-limit", "params": {"alpha": 0.05},
            "points": points}


def names(plots: list[Plot]) -> list[str]:
    return [p.name for p in plots]


def comments(plot: Plot) -> str:
    """The text matplotlib wrote as XML comments (text is drawn as paths: this is what it said)."""
    return " | ".join(re.findall(r"<!-- (.*?) -->", plot.svg.decode(), re.S))


# --- every kind, from real results -------------------------------------------------------

# (task, key of ``results``, keyword arguments by name): every kind is drawn by one of these.
CASES = [("fit", "fit", ("priors",)), ("scan", "scan", ()), ("ranking", "ranking", ()), ("toys", "toys", ()),
         ("upper-limit", "upper-limit", ()), ("upper-limit", "upper-limit-cls", ()),
         ("pk-nlme", "pk-nlme", ("pk_data",)), ("grid", "grid", ("grid_labels",))]


def arguments(example: Example, wanted: tuple[str, ...]) -> dict[str, Any]:
    every = {"priors": example.priors(), "pk_data": example.pk, "grid_labels": ["m_parent", "m_lsp"]}
    return {k: every[k] for k in wanted}


@pytest.fixture(scope="module")
def rendered(results: dict[str, dict[str, Any]], example: Example) -> dict[str, tuple[list[Plot], float]]:
    """Each case's plots and the time per plot (after a first plot pays for matplotlib's import)."""
    plots_for_result("scan", results["scan"])
    out = {}
    for task, key, wanted in CASES:
        start = time.perf_counter()
        plots = plots_for_result(task, results[key], **arguments(example, wanted))
        out[key] = (plots, (time.perf_counter() - start) / max(len(plots), 1))
    return out


def test_each_task_gets_the_plots_its_result_supports(rendered: dict[str, tuple[list[Plot], float]]) -> None:
    assert {key: names(plots) for key, (plots, _) in rendered.items()} == {
        "fit": ["pulls", "correlation"],
        "scan": ["profile-likelihood"],
        "ranking": ["ranking", "pulls"],
        "toys": ["toys"],
        "upper-limit": ["brazil"],
        "upper-limit-cls": ["brazil", "cls"],
        "pk-nlme": ["pk-concentration", "correlation"],
        "grid": ["exclusion", "brazil"],
    }
    for plots, _ in rendered.values():
        for plot in plots:
            svg = plot.svg.decode()
            assert svg.startswith("<svg ") and svg.rstrip().endswith("</svg>")
            check_inert(svg)
            assert f"<title>{plot.title}</title>" in svg
    # A small result plots in well under a second (0.05-0.6 s measured here); the bound is
    # loose because the suite shares two cores with other work.
    timings = {key: seconds for key, (_, seconds) in rendered.items()}
    assert max(timings.values()) < 3.0, timings


def test_a_result_without_what_a_plot_needs_gets_no_such_plot(results: dict[str, dict[str, Any]],
                                                             example: Example) -> None:
    fit = {k: v for k, v in results["fit"].items() if k != "covariance"}
    assert plots_for_result("fit", fit) == []  # no covariance, no priors: which pulls would it show?
    assert names(plots_for_result("fit", fit, priors=example.priors())) == ["pulls"]
    hypotest = example.run("hypotest", {})
    assert plots_for_result("hypotest", hypotest) == []  # one CLs value: nothing to draw
    assert names(plots_for_result("pk-nlme", results["pk-nlme"])) == ["correlation"]  # no observations given
    for task in ("fit", "scan", "ranking", "toys", "upper-limit", "pk-nlme", "grid", "fit-many", "unknown"):
        assert plots_for_result(task, {}) == []
        assert plots_for_result(task, {"points": "x", "impacts": [1], "parameters": None}) == []
    assert plots_for_result("fit", [1, 2]) == []  # type: ignore[arg-type]
    # Non-finite values are no coordinates: the kind is left out, nothing raises.
    broken = json.loads(json.dumps(results["scan"]))
    broken["points"][0]["nll_mu"] = math.nan
    assert plots_for_result("scan", broken) == []
    nan_cov = json.loads(json.dumps(results["pk-nlme"]))
    nan_cov["covariance"]["matrix"][0][0] = math.nan
    assert plots_for_result("pk-nlme", nan_cov) == []


def test_pk_plot_refuses_a_dataset_the_result_was_not_fitted_to(results: dict[str, dict[str, Any]],
                                                                 example: Example) -> None:
    other = load_pk_dataset(InputFile.from_bytes("dataset", "pk.csv", generate.pk_dataset(n_subjects=5).encode()))
    with pytest.raises(InputError, match="not the one this result was fitted to"):
        plots_for_result("pk-nlme", results["pk-nlme"], pk_data=other)


def test_job_results(example: Example) -> None:
    # A grid whose limits cross 1: the contours are drawn; failed points are left out.
    crossing = synthetic_grid(lambda x, y: (x / 1250) ** 3 * (1 + y / 500), fail=(3, 7))
    plots = plots_for_result("grid", crossing)
    assert names(plots) == ["exclusion", "brazil"]
    assert "not crossed" not in comments(plots[0])
    # Limits that stay above 1 on the grid: the plot says so instead of drawing a line.
    above = synthetic_grid(lambda x, y: 5 + x / 1000)
    assert "observed: not crossed on this grid" in comments(plots_for_result("grid", above)[0])
    # Fewer than three usable points: no contour (nor a Brazil band along one point).
    few = synthetic_grid(lambda x, y: 2.0, n=6, fail=tuple(range(2, 36)))
    assert names(plots_for_result("grid", few)) == ["brazil"]  # two points along the first coordinate
    assert plots_for_result("grid", synthetic_grid(lambda x, y: 2.0, n=6, fail=tuple(range(1, 36)))) == []
    # A 1-D grid: a Brazil band, no contour.
    one_d = synthetic_grid(lambda x, y: x / 1000)
    for point in one_d["points"]:
        point["values"] = point["values"][:1]
    assert names(plots_for_result("grid", one_d)) == ["brazil"]
    # A grid of hypotests: the contour where the observed CLs is 0.05.
    hypotests = synthetic_grid(lambda x, y: 1.0)
    hypotests["point_task"] = "hypotest"
    for point in hypotests["points"]:
        x, y = point["values"]
        point["result"] = {"cls": 0.05 * (x / 1250) ** 4 * (1 + y / 500), "mu_tested": 1.0}
    plot = plots_for_result("grid", hypotests)[0]
    assert (plot.name, plot.title) == ("exclusion", "Exclusion contour (observed CLs = 0.05)")
    assert "not crossed" not in comments(plot)
    # Scan and toys jobs: the points of their merged results.
    scan_job = {"schema": JOB_SCHEMA, "task": "scan", "points": [
        {"index": i, "item": mu, "ok": True, "result": {"mu": mu, "nll_mu": 10 + (mu - 1) ** 2, "q_mu": 0.0}}
        for i, mu in enumerate([0.0, 0.5, 1.0, 1.5, 2.0])]}
    assert names(plots_for_result("scan", scan_job)) == ["profile-likelihood"]
    toys_job = {"schema": JOB_SCHEMA, "task": "toys", "points": [
        {"index": i, "item": i, "ok": True, "result": {"poi": 1 + 0.1 * (i % 7), "converged": i % 5 != 0}}
        for i in range(40)]}
    plot = plots_for_result("toys", toys_job)[0]
    assert plot.title == "POI fitted to 32 converged toys of 40"


def test_many_parameters_are_cut_to_the_most_telling(results: dict[str, dict[str, Any]]) -> None:
    ranking = json.loads(json.dumps(results["ranking"]))
    total = len(ranking["impacts"])
    assert total > 10
    plots = plots_for_result("ranking", ranking, max_rows=10)
    assert [p.title for p in plots] == [f"Impacts on mu_sig (10 largest of {total})",
                                        f"Pulls and constraints (10 furthest of {total})"]
    largest = max(ranking["impacts"], key=lambda r: max(abs(r["delta_mu_up"]), abs(r["delta_mu_down"])))
    assert largest["name"] in comments(plots[0])
    fit = plots_for_result("fit", results["fit"], max_rows=8)
    assert fit[0].name == "correlation" and "(8 most correlated of" in fit[0].title


def test_pulls_and_priors() -> None:
    workspace = {
        "channels": [{"name": "SR", "samples": [
            {"name": "sig", "data": [5.0, 10.0], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "lumi", "type": "lumi", "data": None},
                {"name": "stat", "type": "staterror", "data": [3.0, 0.0]}]},
            {"name": "bkg", "data": [15.0, 30.0], "modifiers": [
                {"name": "jes", "type": "histosys", "data": {"hi_data": [16, 31], "lo_data": [14, 29]}},
                {"name": "xsec", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                {"name": "stat", "type": "staterror", "data": [4.0, 0.0]},
                {"name": "unc", "type": "shapesys", "data": [1.5, 6.0]},
                {"name": "free", "type": "shapefactor", "data": None}]}]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02]}, {"name": "xsec", "fixed": True, "inits": [0]}]}}],
    }
    priors = priors_from_workspace(workspace)
    assert priors == {
        "lumi": Prior(1.0, 0.02), "jes": Prior(0.0, 1.0),
        "stat[0]": Prior(1.0, 5.0 / 20.0),  # sqrt(3^2 + 4^2) / (5 + 15); bin 1 has no error
        "unc[0]": Prior(1.0, 0.1), "unc[1]": Prior(1.0, 0.2),
    }  # xsec is fixed, mu and free unconstrained: no pulls
    fit = {"parameters": [
        {"name": "mu", "value": 1.3, "uncertainty": 0.5, "fixed": False},
        {"name": "lumi", "value": 1.01, "uncertainty": 0.01, "fixed": False},
        {"name": "jes", "value": -0.5, "uncertainty": 0.8, "fixed": False},
        {"name": "xsec", "value": 0.0, "uncertainty": 0.0, "fixed": True}]}
    rows = pulls.rows_from_fit(fit, priors)
    assert [r[0] for r in rows] == ["lumi", "jes"]
    assert rows[0][1] == pytest.approx(0.5) and rows[0][2] == pytest.approx(0.5)
    assert rows[1][1:] == (-0.5, 0.8)


def test_the_example_workspace_priors_match_the_engines_pulls(results: dict[str, dict[str, Any]],
                                                               example: Example) -> None:
    """The priors we derive give the pulls the engine itself reports in its ranking: same
    centre, same width, so a fit's pulls plot agrees with a ranking's."""
    ours = {r[0]: r[1:] for r in pulls.rows_from_fit(results["fit"], example.priors())}
    engine = {r["name"]: (r["pull"], r["constraint"]) for r in results["ranking"]["impacts"]}
    assert ours.keys() == engine.keys()
    for name, (pull, constraint) in engine.items():
        # The ranking's pulls come from the engine's own fit (a few 1e-3 from ours); its
        # constraints are rescaled to our uncertainties, so they test the prior widths closely.
        assert ours[name][0] == pytest.approx(pull, abs=1e-2), name
        assert ours[name][1] == pytest.approx(constraint, rel=1e-6), name


def test_default_alpha_is_the_tasks() -> None:
    assert limits.DEFAULT_ALPHA == UpperLimitParams().alpha


# --- safety --------------------------------------------------------------------------------


def test_text_from_the_data_is_inert(results: dict[str, dict[str, Any]], example: Example) -> None:
    ranking = json.loads(json.dumps(results["ranking"]))
    ranking["impacts"][0]["name"] = HOSTILE
    ranking["poi"]["name"] = "<img src=x onerror=alert(1)>"
    fit = json.loads(json.dumps(results["fit"]))
    fit["parameters"][1]["name"] = HOSTILE
    fit["covariance"]["parameters"][1] = HOSTILE
    priors = {HOSTILE: Prior(1.0, 0.02)}
    grid = synthetic_grid(lambda x, y: x / 1200)
    plots = [*plots_for_result("ranking", ranking), *plots_for_result("fit", fit, priors=priors),
             *plots_for_result("grid", grid, grid_labels=[HOSTILE, "<b>y</b>"])]
    assert names(plots) == ["ranking", "pulls", "pulls", "correlation", "exclusion", "brazil"]
    for plot in plots:
        svg = plot.svg.decode()
        check_inert(svg)
        lowered = svg.lower()
        assert "<script" not in lowered and "<img" not in lowered and "<b>" not in lowered
        assert "http://" not in svg.split(">", 1)[1] and "https://" not in svg  # past the namespace declarations
        for href in re.findall(r'href="([^"]*)"', svg):
            assert href.startswith("#")
    # The hostile name was drawn (as glyphs), its text kept only escaped inside a comment;
    # a $...$ in a name is not read as mathtext.
    assert "&lt;script&gt;alert(1)&lt;/script&gt; $\\alpha$ &amp;amp;" in comments(plots[0])
    assert "<title>Impacts on &lt;img src=x onerror=alert(1)&gt;" in plots[0].svg.decode()


@pytest.mark.parametrize("svg", [
    '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    '<use xlink:href="https://example.org/x.svg#a"/></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><p>x</p></foreignObject></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><image href="data:image/png;base64,AAAA"/></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><path style="fill: url(https://example.org/p)"/></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><style>@import "https://example.org/a.css";</style></svg>',
    '<!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><g></svg>',
])
def test_the_inertness_check_refuses_what_could_run_or_load(svg: str) -> None:
    with pytest.raises(UnsafeSVGError):
        check_inert(svg)


# --- determinism ---------------------------------------------------------------------------

RENDER_ALL = """
import hashlib, json, sys, types
from nextstat_pro.plots import Prior, plots_for_result
doc = json.load(open(sys.argv[1]))
pk = types.SimpleNamespace(**doc["pk"])
priors = {k: Prior(*v) for k, v in doc["priors"].items()}
for task, result in doc["results"]:
    for plot in plots_for_result(task, result, priors=priors, pk_data=pk, grid_labels=["m_parent", "m_lsp"]):
        print(task, plot.name, hashlib.sha256(plot.svg).hexdigest())
"""


def test_svg_is_byte_identical_across_processes(results: dict[str, dict[str, Any]], example: Example,
                                                 rendered: dict[str, tuple[list[Plot], float]],
                                                 tmp_path: Path) -> None:
    cases = [(task, key) for task, key, _ in CASES if key != "upper-limit"]
    doc = {"results": [(task, results[key]) for task, key in cases], "pk": dataclasses.asdict(example.pk),
           "priors": {k: [p.centre, p.width] for k, p in example.priors().items()}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    script = tmp_path / "render_all.py"
    script.write_text(RENDER_ALL)
    runs = [subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONHASHSEED": str(seed)}) for seed in (1, 2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    here = "".join(f"{task} {plot.name} {hashlib.sha256(plot.svg).hexdigest()}\n"
                   for task, key in cases for plot in rendered[key][0])
    assert outputs[0] == outputs[1] == here
    assert len(here.splitlines()) == 12
    assert {line.split()[1] for line in here.splitlines()} == {
        "pulls", "correlation", "profile-likelihood", "ranking", "toys", "brazil", "cls", "pk-concentration",
        "exclusion"}


def test_no_dates_and_a_versioned_renderer(results: dict[str, dict[str, Any]]) -> None:
    svg = plots_for_result("scan", results["scan"])[0].svg.decode()
    assert "<metadata" not in svg and "dc:date" not in svg and "<?xml" not in svg
    assert not re.search(r"20\d\d-\d\d-\d\d", svg)
    assert RENDERER_VERSION.startswith("nextstat-pro-plots/1 matplotlib/")


def test_threads_and_global_style_are_safe(results: dict[str, dict[str, Any]],
                                           rendered: dict[str, tuple[list[Plot], float]]) -> None:
    """The dashboard may draw from several threads; matplotlib's settings are process-global."""
    from concurrent.futures import ThreadPoolExecutor

    import matplotlib

    before = dict(matplotlib.rcParams)
    keys = ["scan", "toys", "upper-limit-cls", "scan", "toys", "upper-limit-cls"]
    tasks = {"scan": "scan", "toys": "toys", "upper-limit-cls": "upper-limit"}
    with ThreadPoolExecutor(max_workers=3) as pool:
        drawn = list(pool.map(lambda key: plots_for_result(tasks[key], results[key]), keys))
    for key, plots in zip(keys, drawn, strict=True):
        assert [p.svg for p in plots] == [p.svg for p in rendered[key][0]]
    assert dict(matplotlib.rcParams) == before  # no style leaks into other matplotlib users


def test_plot_context_reads_what_each_task_needs_from_its_inputs(example: Example) -> None:
    from nextstat_pro.plots.inputs import plot_context

    inputs = {"workspace": json.dumps(example.workspace).encode(), "dataset": example.pk_csv,
              "patchset": json.dumps(example.patchset).encode()}
    assert plot_context("fit", inputs.get)["priors"]  # the constraints' priors of the workspace
    assert list(plot_context("pk-nlme", inputs.get)["pk_data"].subject_ids) == list(example.pk.subject_ids)
    assert plot_context("grid", inputs.get) == {"grid_labels": ["m_parent", "m_lsp"]}
    assert plot_context("upper-limit", inputs.get) == {}
    # An input missing or unreadable leaves the plots that need it out; it never fails the caller.
    broken = {"workspace": b"{not json", "dataset": b"a,b\n1,2\n", "patchset": b"[]"}
    for task in ("fit", "pk-nlme", "grid"):
        assert plot_context(task, broken.get) == {}
        assert plot_context(task, {}.get) == {}
    # With them, the run gets the plots the dashboard and the certificate show.
    kinds = [p.name for p in plots_for_result("pk-nlme", example.run("pk-nlme", {}),
                                              **plot_context("pk-nlme", inputs.get))]
    assert kinds == ["pk-concentration", "correlation"]
