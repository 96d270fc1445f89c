"""Engine tasks against the real workspaces in ../shared, compared with nextstat called directly."""

from __future__ import annotations

import json

import nextstat as ns
import pytest

from nextstat_pro.engine import InputFile, execute, prepare
from nextstat_pro.engine.histfactory import LIMIT_RTOL
from nextstat_pro.engine.inputs import pyhf_digest
from nextstat_pro.engine.quality import assess_fit
from nextstat_pro.errors import (
    InputError,
    ParamError,
    SchemaValidationError,
    TaskFailedError,
    UnknownTaskError,
    UsageError,
)
from nextstat_pro.examples import histfactory_workspace, signal_patchset

from .conftest import shared


def ws_input(name: str) -> InputFile:
    return InputFile.read("workspace", shared("workspaces", name))


def test_fit_matches_nextstat_called_directly() -> None:
    text = shared("workspaces", "simple_workspace.json").read_text()
    model = ns.from_pyhf(text)
    direct = ns.fit(model)
    result = execute(prepare("fit", {}, [ws_input("simple_workspace.json")]), None)
    assert [p["name"] for p in result["parameters"]] == model.parameter_names()
    # The engine's minimum bit for bit: the Newton step that would finish it moves mu by 1e-6 of
    # its uncertainty, below NEWTON_MIN_SHIFT, so it is not taken. The uncertainties are the
    # product's free-parameter Hessian (engine/uncertainties.py): within 1e-4 of the engine's.
    assert [p["value"] for p in result["parameters"]] == direct.parameters
    assert [p["uncertainty"] for p in result["parameters"]] == pytest.approx(direct.uncertainties, rel=1e-4)
    assert result["nll"] == direct.nll
    assert result["quality"]["newton_step"]["applied"] is False
    assert result["poi"]["name"] == "mu" and result["poi"]["value"] == pytest.approx(0.5245, abs=1e-3)
    assert result["quality"]["ok"] is True


def test_result_carries_its_provenance() -> None:
    inp = ws_input("simple_workspace.json")
    result = execute(prepare("hypotest", {"mu": "1.0"}, [inp]), 5)
    assert result["engine"] == {"name": "nextstat", "version": "0.10.1"}
    assert result["task"] == "hypotest" and result["seed"] == 5
    assert result["params"] == {"grad_tol": 0.1, "mu": 1.0}
    assert result["inputs"] == [{"role": "workspace", "name": "simple_workspace.json", "digest": inp.digest}]
    assert {"python", "system", "machine", "nextstat_pro"} <= set(result["platform"])
    assert result["wall_time_s"] > 0
    assert result["cls"] == pytest.approx(ns.hypotest(1.0, ns.from_pyhf(inp.data.decode())))


def test_upper_limit_has_observed_and_expected_band() -> None:
    result = execute(prepare("upper-limit", {}, [ws_input("simple_workspace.json")]), None)
    model = ns.from_pyhf(shared("workspaces", "simple_workspace.json").read_text())
    observed, band = ns.upper_limit(model, method="root", rtol=LIMIT_RTOL)
    assert result["observed"] == observed
    assert list(result["expected"].values()) == band
    assert band[0] < result["expected"]["median"] < band[4]


def _crossing(mus: list[float], cls: list[float], alpha: float) -> float:
    """Where a falling CLs curve crosses ``alpha`` (linear in log CLs between two points)."""
    import math

    for (m0, c0), (m1, c1) in zip(zip(mus, cls, strict=True), zip(mus[1:], cls[1:], strict=True), strict=False):
        if c0 >= alpha > c1:
            t = (math.log(c0) - math.log(alpha)) / (math.log(c0) - math.log(c1))
            return m0 + t * (m1 - m0)
    raise AssertionError("the curve does not cross alpha")


def test_upper_limit_records_the_cls_curve_that_crosses_alpha_at_its_limits() -> None:
    plain = execute(prepare("upper-limit", {}, [ws_input("simple_workspace.json")]), None)
    result = execute(prepare("upper-limit", {"cls_points": "41"}, [ws_input("simple_workspace.json")]), None)
    assert "cls_scan" not in plain
    same = set(plain) - {"wall_time_s", "params"}
    assert {k: result[k] for k in same} == {k: plain[k] for k in same}  # the curve only adds to the result
    curve = result["cls_scan"]
    assert len(curve["mu"]) == 41 and curve["mu"][0] == 0.0
    assert curve["mu"][-1] == pytest.approx(1.2 * max(result["observed"], *result["expected"].values()))
    assert curve["cls_observed"][0] == pytest.approx(1.0)
    # The limits are where the curves cross alpha: the observed one and each expected one.
    assert _crossing(curve["mu"], curve["cls_observed"], 0.05) == pytest.approx(result["observed"], rel=0.02)
    for k, limit in result["expected"].items():
        assert _crossing(curve["mu"], curve["cls_expected"][k], 0.05) == pytest.approx(limit, rel=0.02), k
    with pytest.raises(ParamError, match="cls_points"):
        prepare("upper-limit", {"cls_points": "-1"}, [ws_input("simple_workspace.json")])


def test_tHu_upper_limit_fails_clearly() -> None:
    with pytest.raises(TaskFailedError, match="CLs\\(0\\)=0"):
        execute(prepare("upper-limit", {}, [ws_input("tHu_workspace.json")]), None)


def test_scan_ranking_toys() -> None:
    inp = ws_input("simple_workspace.json")
    scan = execute(prepare("scan", {"mu_min": "0", "mu_max": "2", "points": "5"}, [inp]), None)
    assert [p["mu"] for p in scan["points"]] == [0.0, 0.5, 1.0, 1.5, 2.0]
    ranking = execute(prepare("ranking", {}, [inp]), None)
    assert {r["name"] for r in ranking["impacts"]} == {"uncorr_bkguncrt[0]", "uncorr_bkguncrt[1]"}
    toys = execute(prepare("toys", {"n_toys": "4"}, [inp]), 100)
    assert [t["seed"] for t in toys["toys"]] == [100, 101, 102, 103]
    # Toy k is the engine's toy with seed seed+k: the same toy alone with that seed.
    alone = execute(prepare("toys", {"n_toys": "1"}, [inp]), 102)
    assert alone["toys"][0]["poi"] == toys["toys"][2]["poi"]
    with pytest.raises(InputError, match="needs --seed"):
        execute(prepare("toys", {}, [inp]), None)


def test_fit_at_a_bound_is_not_ok_though_the_engine_says_converged() -> None:
    doc = json.loads(shared("workspaces", "simple_workspace.json").read_text())
    # Observe fewer events than the background alone: the POI is pushed to its lower bound 0.
    doc["observations"][0]["data"] = [40.0, 44.0]
    inp = InputFile.from_bytes("workspace", "low.json", json.dumps(doc).encode())
    raw = ns.fit(ns.from_pyhf(json.dumps(doc)))
    assert raw.converged is True
    result = execute(prepare("fit", {}, [inp]), None)
    assert result["quality"]["ok"] is False
    assert result["quality"]["at_bound"] == ["mu"]


def test_assess_fit_rules() -> None:
    ok = assess_fit(["a", "b"], [0.5, 1.0], [(0, 1), (1, 1)], [1e-4, 5.0], True, 0.1)
    assert ok["ok"] and ok["at_bound"] == []  # b is fixed: its gradient is ignored
    steep = assess_fit(["a"], [0.5], [(0, 1)], [0.5], True, 0.1)
    assert not steep["ok"] and "gradient" in steep["reasons"][0]
    assert not assess_fit(["a"], [0.5], [(0, 1)], [0.0], False, 0.1)["ok"]


def test_tttt_fit_has_249_named_parameters() -> None:
    result = execute(prepare("fit", {}, [ws_input("tttt-prod_workspace.json")]), None)
    assert len(result["parameters"]) == 249
    assert result["poi"]["name"] == "mu_signal"
    assert result["quality"]["ok"], result["quality"]["reasons"]


def test_malformed_json() -> None:
    inp = InputFile.from_bytes("workspace", "bad.json", b'{"channels": [')
    with pytest.raises(InputError, match="not valid JSON: .* line 1"):
        prepare("fit", {}, [inp])


def test_json_that_is_not_a_workspace_names_the_path() -> None:
    doc = json.loads(shared("workspaces", "simple_workspace.json").read_text())
    doc["channels"][0]["samples"][0]["data"] = "oops"
    inp = InputFile.from_bytes("workspace", "w.json", json.dumps(doc).encode())
    with pytest.raises(SchemaValidationError) as err:
        prepare("fit", {}, [inp])
    assert err.value.path == "$.channels[0].samples[0].data"
    with pytest.raises(SchemaValidationError, match="is invalid at \\$"):
        prepare("fit", {}, [InputFile.from_bytes("workspace", "x.json", b'{"hello": 1}')])


def test_engine_extension_is_accepted_and_reported() -> None:
    prepared = prepare("fit", {}, [ws_input("histfactory_import_workspace.json")])
    assert prepared.extensions and all(p.endswith(".constraint") for p in prepared.extensions)
    assert execute(prepared, None)["schema_extensions"] == prepared.extensions


def test_generated_patchset_applies() -> None:
    ws = histfactory_workspace()
    ps = signal_patchset(ws, 10)
    w = InputFile.from_bytes("workspace", "w.json", json.dumps(ws).encode())
    p = InputFile.from_bytes("patchset", "p.json", json.dumps(ps).encode())
    name = ps["patches"][3]["metadata"]["name"]
    prepared = prepare("fit", {}, [w, p], patch=name)
    assert prepared.patch == name
    result = execute(prepared, None)
    assert result["patch"] == name


def test_a_patched_workspace_fits_bit_for_bit_as_the_json_module_would_encode_it() -> None:
    """A patched workspace is re-encoded with orjson (15x faster than json): the engine must
    build the same model from it, to the last bit of every fit number."""
    import jsonpatch

    from nextstat_pro.engine.inputs import Workspace

    base = json.loads(shared("workspaces", "tttt-prod_workspace.json").read_text())
    doc = jsonpatch.apply_patch(base, [{"op": "replace", "path": "/observations/0/data/0", "value": 7.25}])
    ours = ns.fit(ns.from_pyhf(Workspace(doc).json()))
    direct = ns.fit(ns.from_pyhf(json.dumps(doc)))
    assert list(ours.parameters) == list(direct.parameters)
    assert list(ours.uncertainties) == list(direct.uncertainties)
    assert ours.nll == direct.nll
    assert json.loads(Workspace({"n": 2**70}).json()) == {"n": 2**70}  # beyond orjson: json writes it


def test_unknown_patch_and_foreign_patchset() -> None:
    ws = histfactory_workspace()
    w = InputFile.from_bytes("workspace", "w.json", json.dumps(ws).encode())
    p = InputFile.from_bytes("patchset", "p.json", json.dumps(signal_patchset(ws, 3)).encode())
    with pytest.raises(InputError, match="no patch named 'nope'"):
        prepare("fit", {}, [w, p], patch="nope")
    # pyhf's own example patchset (which `pyhf patchset verify` accepts) applies to its base
    # workspace; a patchset made for another workspace is refused.
    bkg = ws_input("example_bkgonly.json")
    pyhf_patchset = InputFile.read("patchset", shared("workspaces", "example_patchset.json"))
    prepared = prepare("fit", {}, [bkg, pyhf_patchset], patch="patch_channel1_signal_syst1")
    assert prepared.patch == "patch_channel1_signal_syst1"
    with pytest.raises(InputError, match="made for another workspace"):
        prepare("fit", {}, [w, pyhf_patchset], patch="patch_channel1_signal_syst1")
    assert pyhf_digest(ws, "sha256") == json.loads(p.data)["metadata"]["digests"]["sha256"]


def test_unknown_task_and_bad_params() -> None:
    inp = ws_input("simple_workspace.json")
    with pytest.raises(UnknownTaskError, match="unknown task 'fitt'"):
        prepare("fitt", {}, [inp])
    with pytest.raises(ParamError, match="unknown parameter 'mux'"):
        prepare("hypotest", {"mux": "1"}, [inp])
    with pytest.raises(ParamError, match="bad value for parameter 'mu'"):
        prepare("hypotest", {"mu": "one"}, [inp])
    with pytest.raises(UsageError, match="needs a workspace"):
        prepare("fit", {}, [])


def test_pk_nlme_on_generated_dataset() -> None:
    from nextstat_pro.examples import pk_dataset

    inp = InputFile.from_bytes("dataset", "pk.csv", pk_dataset().encode())
    result = execute(prepare("pk-nlme", {}, [inp]), None)
    values = {p["name"]: p["value"] for p in result["parameters"]}
    # Simulated with CL=2, V=20, Ka=1.2 (24 subjects): the estimates are close.
    assert values["CL"] == pytest.approx(2.0, rel=0.15)
    assert values["V"] == pytest.approx(20.0, rel=0.15)
    assert values["Ka"] == pytest.approx(1.2, rel=0.2)
    assert result["quality"]["ok"] and len(result["covariance"]["matrix"]) == 7


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("subject,time,conc,dose\nA,1,2,100\n", "lacks column\\(s\\) concentration"),
        ("subject,time,concentration,dose\nA,x,2,100\nB,1,1,100\n",
         "line 2: time, concentration and dose must be numbers"),
        ("subject,time,concentration,dose\nA,1,2,100\n", "at least two subjects"),
        ("subject,time,concentration,dose\nA,1,2,100\nA,2,2,50\nB,1,1,1\n", "more than one dose"),
    ],
)
def test_bad_pk_datasets(csv: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        prepare("pk-nlme", {}, [InputFile.from_bytes("dataset", "d.csv", csv.encode())])


def test_missing_file() -> None:
    from pathlib import Path

    with pytest.raises(InputError, match="workspace file not found"):
        InputFile.read("workspace", Path("/nonexistent/ws.json"))


# pyhf validates with jsonschema's deprecated RefResolver.
@pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")
def test_cls_curve_agrees_with_pyhf() -> None:
    """The recorded CLs curve checked against an independent implementation: pyhf's asymptotic
    qtilde hypotest at the same POI values (observed CLs and the expected band)."""
    import numpy as np
    import pyhf

    text = shared("workspaces", "simple_workspace.json").read_text()
    result = execute(prepare("upper-limit", {"cls_points": "9"}, [ws_input("simple_workspace.json")]), None)
    curve = result["cls_scan"]
    ws = pyhf.Workspace(json.loads(text))
    model = ws.model()
    data = ws.data(model)
    for i, mu in enumerate(curve["mu"]):
        if mu == 0.0:
            continue  # CLs(0) = 1 by definition; pyhf's qtilde at mu = 0 divides by zero
        observed, expected = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", return_expected_set=True)
        assert curve["cls_observed"][i] == pytest.approx(float(observed), rel=2e-3, abs=1e-6), mu
        ours = [curve["cls_expected"][k][i] for k in ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")]
        assert ours == pytest.approx([float(e) for e in np.ravel(expected)], rel=2e-3, abs=1e-6), mu
