"""Validation of HistFactory inputs against the published pyhf 1.0.0 JSON schemas.

The schema files are read from the installed ``pyhf`` distribution's package data (the
same bytes as pyhf's repository); pyhf itself is never imported. They are draft-06
schemas whose top-level files hold only ``$id`` + ``$ref`` (a ``$ref`` hides its sibling
``$id`` in draft-06), so we validate against ``defs.json#/definitions/<kind>`` with
every file registered under its ``$id``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6

from ..errors import ConfigError, SchemaValidationError

DEFS_ID = "https://scikit-hep.org/pyhf/schemas/1.0.0/defs.json"
Kind = Literal["workspace", "patchset", "model", "measurement"]
# Modifier fields that NextStat understands but the pyhf schema does not allow. They are
# accepted (and reported in the result) rather than refused; anything else is an error.
ENGINE_MODIFIER_EXTENSIONS = frozenset({"constraint"})


def schema_dir() -> Path:
    spec = importlib.util.find_spec("pyhf")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the pyhf schemas are not installed (pip install pyhf==0.7.6)")
    return Path(next(iter(spec.submodule_search_locations))) / "schemas" / "1.0.0"


@lru_cache(maxsize=None)
def validator(kind: Kind) -> jsonschema.Draft6Validator:
    resources = []
    for path in sorted(schema_dir().glob("*.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents, default_specification=DRAFT6)))
    registry: Registry = Registry().with_resources(resources)
    return jsonschema.Draft6Validator({"$ref": f"{DEFS_ID}#/definitions/{kind}"}, registry=registry)


def validate(document: Any, kind: Kind, what: str) -> list[str]:
    """Validate ``document``; return the JSON paths of accepted engine extensions.

    Raises SchemaValidationError naming the JSON path of the most relevant failure.
    """
    extensions: list[str] = []
    checked = document
    if kind == "workspace" and isinstance(document, dict):
        checked, extensions = _without_engine_extensions(document)
    error = jsonschema.exceptions.best_match(validator(kind).iter_errors(checked))
    if error is not None:
        raise SchemaValidationError(what, error.json_path, error.message[:300])
    return extensions


def _without_engine_extensions(workspace: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    found: list[str] = []
    channels = workspace.get("channels")
    if not isinstance(channels, list):
        return workspace, found
    stripped = copy.deepcopy(workspace)
    for ci, channel in enumerate(stripped["channels"]):
        for si, sample in enumerate(channel.get("samples", []) if isinstance(channel, dict) else []):
            for mi, modifier in enumerate(sample.get("modifiers", []) if isinstance(sample, dict) else []):
                if not isinstance(modifier, dict):
                    continue
                for key in sorted(ENGINE_MODIFIER_EXTENSIONS & modifier.keys()):
                    del modifier[key]
                    found.append(f"$.channels[{ci}].samples[{si}].modifiers[{mi}].{key}")
    return stripped, found
