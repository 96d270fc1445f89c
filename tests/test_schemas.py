"""The pyhf schemas we validate with are the published ones, and the shared workspaces pass."""

import json

import pytest

from nextstat_pro.engine.schemas import schema_dir, validate
from nextstat_pro.errors import SchemaValidationError

from .conftest import shared


def test_packaged_schemas_equal_the_published_ones() -> None:
    for name in ("defs.json", "workspace.json", "patchset.json", "model.json", "measurement.json", "jsonpatch.json"):
        assert (schema_dir() / name).read_bytes() == shared("schemas", "pyhf-1.0.0", name).read_bytes()


@pytest.mark.parametrize(
    "name",
    ["simple_workspace.json", "two_channel_workspace.json", "complex_workspace.json", "tttt-prod_workspace.json",
     "tHu_workspace.json", "example_bkgonly.json"],
)
def test_shared_workspaces_validate(name: str) -> None:
    assert validate(json.loads(shared("workspaces", name).read_text()), "workspace", name) == []


@pytest.mark.parametrize("name", ["example_patchset.json", "example_patchset_2_patches.json"])
def test_shared_patchsets_validate(name: str) -> None:
    validate(json.loads(shared("workspaces", name).read_text()), "patchset", name)


def test_unknown_modifier_field_is_still_refused() -> None:
    doc = json.loads(shared("workspaces", "simple_workspace.json").read_text())
    doc["measurements"][0]["config"]["parameters"].append({"name": "mu", "bogus": 1})
    with pytest.raises(SchemaValidationError):
        validate(doc, "workspace", "w")
