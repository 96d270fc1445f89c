"""The committed OpenAPI document is the code's, and a valid OpenAPI 3 document."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from nextstat_pro.server import openapi


def test_committed_document_is_current() -> None:
    committed = openapi.DEFAULT.read_text()
    assert committed == openapi.render(), "docs/openapi.json is stale: python -m nextstat_pro.server.openapi"


def test_document_validates() -> None:
    validate(json.loads(openapi.DEFAULT.read_text()))  # raises on an invalid document


def test_errors_are_documented_as_problems() -> None:
    doc = openapi.document()
    assert doc["info"]["title"] == "NextStat Pro API"
    paths = doc["paths"]
    assert "/api/v1/projects/{project}/runs" in paths and "/healthz" in paths
