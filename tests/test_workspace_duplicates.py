"""Duplicate channel, sample, modifier and parameter names: we refuse exactly what pyhf 0.7.6
refuses to build a model from, and accept what it accepts. Each case runs pyhf (Workspace,
model, data) beside our validation, so the expectation is pyhf's behaviour, not a copy of ours."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nextstat_pro.engine.inputs import InputFile, load_workspace
from nextstat_pro.errors import DuplicateNameError, InputError

from .conftest import event_count, one_line_error, shared

Spec = dict[str, Any]


def _base() -> Spec:
    return json.loads(shared("workspaces", "simple_workspace.json").read_text())  # type: ignore[no-any-return]


MODIFIERS: dict[str, Spec] = {
    "normfactor": {"type": "normfactor", "data": None},
    "normsys": {"type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
    "histosys": {"type": "histosys", "data": {"hi_data": [52.0, 62.0], "lo_data": [48.0, 58.0]}},
    "shapesys": {"type": "shapesys", "data": [5.0, 6.0]},
    "staterror": {"type": "staterror", "data": [5.0, 6.0]},
    "shapefactor": {"type": "shapefactor", "data": None},
    "lumi": {"type": "lumi", "data": None},
}


def mod(mtype: str, name: str = "x", **data: Any) -> Spec:
    out = {"name": name, **copy.deepcopy(MODIFIERS[mtype])}
    if data:
        out["data"] = data["data"]
    return out


def samples(spec: Spec, channel: int = 0) -> list[Spec]:
    return spec["channels"][channel]["samples"]  # type: ignore[no-any-return]


def add_channel(spec: Spec, name: str, nbins: int, sample_mods: dict[str, list[Spec]]) -> None:
    spec["channels"].append({"name": name, "samples": [
        {"name": s, "data": [10.0] * nbins, "modifiers": m} for s, m in sample_mods.items()]})
    spec["observations"].append({"name": name, "data": [11.0] * nbins})


def lumi_config(spec: Spec) -> None:
    spec["measurements"][0]["config"]["parameters"] = [{"name": "lumi", "auxdata": [1.0], "sigmas": [0.02],
                                                        "bounds": [[0.5, 1.5]], "inits": [1.0]}]


def _case(f: Callable[[Spec], None]) -> Spec:
    spec = _base()
    f(spec)
    return spec


def twice_on_one_sample(mtype: str) -> Callable[[Spec], None]:
    name = "lumi" if mtype == "lumi" else "x"  # the schema names a lumi modifier lumi

    def change(spec: Spec) -> None:
        samples(spec)[1]["modifiers"].extend([mod(mtype, name), mod(mtype, name)])
        if mtype == "lumi":
            lumi_config(spec)
    return change


def on_two_samples(mtype: str) -> Callable[[Spec], None]:
    name = "lumi" if mtype == "lumi" else "x"

    def change(spec: Spec) -> None:
        samples(spec)[0]["modifiers"].append(mod(mtype, name))
        samples(spec)[1]["modifiers"].append(mod(mtype, name))
        if mtype == "lumi":
            lumi_config(spec)
    return change


CASES: dict[str, Callable[[Spec], None]] = {
    # channels
    "channel repeated whole (its shapesys twice)": lambda s: (
        s["channels"].append(copy.deepcopy(s["channels"][0])),
        s["observations"].append(copy.deepcopy(s["observations"][0]))),
    "channel name repeated, other samples, same bins": lambda s: s["channels"].append(
        {"name": "singlechannel", "samples": [{"name": "other", "data": [1.0, 2.0], "modifiers": []}]}),
    "channel name repeated, other bins": lambda s: s["channels"].append(
        {"name": "singlechannel", "samples": [{"name": "other", "data": [1.0, 2.0, 3.0], "modifiers": []}]}),
    "channel repeated without shapesys": lambda s: (
        samples(s)[1].update(modifiers=[mod("normsys", "bkg_norm")]),
        s["channels"].append(copy.deepcopy(s["channels"][0]))),
    "observation name repeated": lambda s: s["observations"].append({"name": "singlechannel", "data": [60.0, 70.0]}),
    "measurement name repeated": lambda s: s["measurements"].append(copy.deepcopy(s["measurements"][0])),
    "parameter configured twice": lambda s: s["measurements"][0]["config"].update(
        parameters=[{"name": "mu", "bounds": [[0, 10]]}, {"name": "mu", "bounds": [[0, 5]]}]),
    # samples
    "sample repeated whole (its shapesys twice)": lambda s: samples(s).append(copy.deepcopy(samples(s)[1])),
    "sample name repeated, replacing one holds the only mu": lambda s: samples(s).append(
        {"name": "signal", "data": [1.0, 1.0], "modifiers": []}),
    "sample name repeated, both with mu": lambda s: samples(s).append(
        {"name": "signal", "data": [1.0, 1.0], "modifiers": [mod("normfactor", "mu")]}),
    "sample name repeated, replaced one holds the only normsys": lambda s: (
        samples(s)[0]["modifiers"].append(mod("normsys", "ns")),
        samples(s).append({"name": "signal", "data": [1.0, 1.0], "modifiers": [mod("normfactor", "mu")]})),
    "sample name repeated, other bin count": lambda s: samples(s).append(
        {"name": "signal", "data": [1.0, 1.0, 1.0], "modifiers": [mod("normfactor", "mu")]}),
    "sample name repeated in another channel": lambda s: add_channel(
        s, "second", 2, {"signal": [mod("normfactor", "mu")], "background": []}),
    # the same modifier twice on one sample, and on two samples
    **{f"{t} twice on one sample": twice_on_one_sample(t) for t in MODIFIERS},
    **{f"{t} on two samples": on_two_samples(t) for t in MODIFIERS},
    "normsys twice on one sample, other data": lambda s: samples(s)[1]["modifiers"].extend(
        [mod("normsys"), mod("normsys", data={"hi": 1.3, "lo": 0.7})]),
    "shapesys name in two channels": lambda s: add_channel(
        s, "second", 2, {"bkg2": [mod("shapesys", "uncorr_bkguncrt")]}),
    # one name, several types
    "normsys and histosys share a name": lambda s: samples(s)[1]["modifiers"].extend(
        [mod("normsys"), mod("histosys")]),
    "normfactor and normsys share a name": lambda s: samples(s)[1]["modifiers"].append(mod("normsys", "mu")),
    "shapesys and staterror share a name": lambda s: samples(s)[1]["modifiers"].append(
        mod("staterror", "uncorr_bkguncrt")),
    "normfactor and shapefactor share a name": lambda s: (
        samples(s)[1]["modifiers"].append(mod("normfactor")), samples(s)[0]["modifiers"].append(mod("shapefactor"))),
    "normsys and staterror share a name": lambda s: (
        samples(s)[1]["modifiers"].append(mod("normsys")), samples(s)[0]["modifiers"].append(mod("staterror"))),
    "lumi and normsys share the name lumi": lambda s: (
        samples(s)[1]["modifiers"].append(mod("lumi", "lumi")),
        samples(s)[0]["modifiers"].append(mod("normsys", "lumi")), lumi_config(s)),
    # staterror across channels
    "staterror on one sample name in two channels": lambda s: (
        samples(s)[1]["modifiers"].append(mod("staterror", "se")),
        add_channel(s, "second", 3, {"background": [mod("staterror", "se", data=[1.0, 1.0, 1.0])]})),
    "staterror on samples spanning different channels": lambda s: (
        samples(s)[1]["modifiers"].append(mod("staterror", "se")),
        samples(s)[0]["modifiers"].append(mod("staterror", "se")),
        add_channel(s, "second", 3, {"background": [mod("staterror", "se", data=[1.0, 1.0, 1.0])]})),
    "staterror name in channels of other bin counts": lambda s: (
        samples(s)[1]["modifiers"].append(mod("staterror", "se")),
        add_channel(s, "second", 3, {"bkg2": [mod("staterror", "se", data=[1.0, 1.0, 1.0])]})),
    "shapefactor name in channels of other bin counts": lambda s: (
        samples(s)[1]["modifiers"].append(mod("shapefactor", "sf")),
        add_channel(s, "second", 3, {"bkg2": [mod("shapefactor", "sf")]})),
}


def pyhf_refuses(spec: Spec) -> str | None:
    """pyhf's verdict: None when it builds the model and its data, else the exception."""
    import pyhf

    logging.getLogger("pyhf").setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():  # pyhf's own use of a deprecated jsonschema API
            warnings.simplefilter("ignore", DeprecationWarning)
            ws = pyhf.Workspace(spec)
            model = ws.model()
            ws.data(model)
    except Exception as exc:  # any refusal counts, whatever pyhf raises
        return f"{type(exc).__name__}: {exc}"
    return None


def ours_refuses(spec: Spec) -> str | None:
    try:
        load_workspace(InputFile.from_bytes("workspace", "ws.json", json.dumps(spec).encode()))
    except InputError as exc:
        return exc.message
    return None


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_exactly_when_pyhf_refuses(case: str) -> None:
    spec = _case(CASES[case])
    theirs, ours = pyhf_refuses(copy.deepcopy(spec)), ours_refuses(spec)
    assert (ours is None) == (theirs is None), f"pyhf: {theirs!r}; ours: {ours!r}"
    if ours is not None:
        assert "\n" not in ours and ours.startswith("workspace ws.json: "), ours


def test_the_cases_cover_both_verdicts() -> None:
    """A table where pyhf refused nothing (or everything) would test nothing."""
    verdicts = {case: pyhf_refuses(_case(f)) is None for case, f in CASES.items()}
    assert 10 <= sum(verdicts.values()) <= len(CASES) - 10, verdicts


def test_the_message_names_the_place() -> None:
    with pytest.raises(DuplicateNameError, match="shapesys modifier 'uncorr_bkguncrt' appears again on sample "
                                                 "'bkg2' of channel 'second'"):
        load_workspace(InputFile.from_bytes("workspace", "ws.json",
                                            json.dumps(_case(CASES["shapesys name in two channels"])).encode()))
    with pytest.raises(DuplicateNameError, match="'signal' of channel 'singlechannel', which a later sample"):
        load_workspace(InputFile.from_bytes("workspace", "ws.json", json.dumps(
            _case(CASES["sample name repeated, replacing one holds the only mu"])).encode()))


def test_real_workspaces_pass() -> None:
    for name in ("tttt-prod_workspace.json", "tHu_workspace.json", "complex_workspace.json",
                 "histfactory_import_workspace.json", "two_channel_workspace.json", "example_bkgonly.json"):
        load_workspace(InputFile.read("workspace", shared("workspaces", name)))


def test_a_run_of_a_refused_workspace_writes_nothing(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(_case(CASES["sample repeated whole (its shapesys twice)"])))
    before = event_count(home)
    r = cli("--home", str(home), "run", "fit", "--workspace", str(path))
    assert r.code == 3 and "shapesys modifier 'uncorr_bkguncrt' appears again" in one_line_error(r)
    assert event_count(home) == before
    assert cli("--home", str(home), "runs", "list", "--json").out.strip() == "[]"
