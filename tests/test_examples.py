"""Generated examples are deterministic, valid and loadable by the engine."""

import json

import nextstat as ns

from nextstat_pro.canonical import json_digest
from nextstat_pro.engine.inputs import pyhf_digest
from nextstat_pro.engine.schemas import validate
from nextstat_pro.examples import histfactory_workspace, pk_dataset, signal_patchset


def test_workspace_is_deterministic_valid_and_has_dozens_of_parameters() -> None:
    ws = histfactory_workspace()
    assert json_digest(ws) == json_digest(histfactory_workspace())
    assert validate(ws, "workspace", "example") == []
    model = ns.from_pyhf(json.dumps(ws))
    assert 30 <= model.n_params() <= 60
    assert len(ws["channels"]) == 4


def test_patchset_has_125_points_for_this_workspace() -> None:
    ws = histfactory_workspace()
    ps = signal_patchset(ws)
    validate(ps, "patchset", "example")
    assert len(ps["patches"]) == 125
    assert len({p["metadata"]["name"] for p in ps["patches"]}) == 125
    assert ps["metadata"]["digests"]["sha256"] == pyhf_digest(ws, "sha256")


def test_pk_dataset_is_deterministic() -> None:
    assert pk_dataset() == pk_dataset()
    assert pk_dataset().splitlines()[0] == "subject,time,concentration,dose"
    assert len(pk_dataset().splitlines()) == 1 + 24 * 10
