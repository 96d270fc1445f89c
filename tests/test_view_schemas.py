"""The published view schemas (docs/schemas/views/) are exactly what the views generate, and every
command document printed by ``--json`` validates against its schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel

from nextstat_pro import view_schemas
from nextstat_pro.view_schemas import CAPABILITIES, DEFAULT_DIR, differences, generate, views_of

from .conftest import shared

SIMPLE = str(shared("workspaces", "simple_workspace.json"))


def test_committed_schemas_are_the_generated_ones() -> None:
    diff = differences(DEFAULT_DIR, generate())
    assert not diff, f"run `python -m nextstat_pro.view_schemas`: {diff}"


def test_every_view_has_a_file_and_every_file_a_view() -> None:
    expected = {f"{c}.{m.__name__}.json" for c in CAPABILITIES for m in views_of(c)}
    assert {p.name for p in DEFAULT_DIR.glob("*.json")} == expected
    for name in expected:
        schema = json.loads((DEFAULT_DIR / name).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema.get("description"), f"{name}: the model's docstring is its description"


def test_views_are_closed_and_immutable() -> None:
    """What a client reads is what the schema says: no undeclared members, no mutation after a
    service built it."""
    for capability in CAPABILITIES:
        for model in views_of(capability):
            if model.model_config.get("extra") is None:  # a RootModel (a JSON array) has no members
                continue
            assert model.model_config.get("extra") == "forbid", f"{capability}.{model.__name__}"
            assert model.model_config.get("frozen") is True, f"{capability}.{model.__name__}"


def test_check_reports_missing_stale_and_changed_files(tmp_path: Path) -> None:
    files = generate()
    view_schemas.write(tmp_path, files)
    assert view_schemas.main(["--check", "--dir", str(tmp_path)]) == 0
    first = sorted(files)[0]
    (tmp_path / first).write_text("{}\n")
    (tmp_path / "runs.Gone.json").write_text("{}\n")
    (tmp_path / sorted(files)[1]).unlink()
    assert differences(tmp_path, files) == [f"missing: {sorted(files)[1]}", "not generated (stale): runs.Gone.json",
                                            f"differs: {first}"]
    assert view_schemas.main(["--check", "--dir", str(tmp_path)]) == 1
    view_schemas.write(tmp_path, files)
    assert differences(tmp_path, files) == []


def test_a_missing_views_module_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view_schemas, "CAPABILITIES", (*CAPABILITIES, "nowhere"))
    with pytest.raises(ModuleNotFoundError):
        view_schemas.generate()


def schema(model: type[BaseModel]) -> jsonschema.Draft202012Validator:
    path = DEFAULT_DIR / f"{model.__module__.split('.')[1]}.{model.__name__}.json"
    return jsonschema.Draft202012Validator(json.loads(path.read_text()))


def test_json_output_validates_against_the_published_schemas(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The commands print the services' views: each document validates against its schema."""
    from nextstat_pro.examples import write_examples
    from nextstat_pro.hub.views import ModelDiff, Pushed, VersionDetail, VersionDoc
    from nextstat_pro.projects.views import ProjectRow
    from nextstat_pro.runs.views import ArtifactRow, RecoveredRuns, RunDetail, RunExport, RunOutcome, RunRow
    from nextstat_pro.scale.views import JobStatus

    h = ["--home", str(home)]

    def doc(*args: str) -> object:
        r = cli(*h, *args)
        assert r.code == 0, r.err
        return json.loads(r.out)

    ex = write_examples(tmp_path / "ex", 3)
    outcome = doc("run", "fit", "-w", SIMPLE, "--json")
    schema(RunOutcome).validate(outcome)
    run_id = outcome["run_id"]  # type: ignore[index]
    for row in doc("runs", "list", "--json"):  # type: ignore[attr-defined]
        schema(RunRow).validate(row)
    schema(RunDetail).validate(doc("runs", "show", run_id, "--json"))
    for row in doc("runs", "artifacts", run_id, "--json"):  # type: ignore[attr-defined]
        schema(ArtifactRow).validate(row)
    exported = doc("runs", "export", run_id, str(tmp_path / "out"), "--json")
    schema(RunExport).validate(exported)
    assert exported["path"] == str((tmp_path / "out").resolve())  # type: ignore[index]
    pushed = doc("hub", "model", "push", "example", str(ex["workspace"]), "--version", "1.0.0", "--json")
    schema(Pushed).validate(pushed)
    assert pushed["created"] and pushed["label"] == "example@1.0.0"  # type: ignore[index]
    schema(VersionDetail).validate(doc("hub", "model", "show", "example@1.0.0", "--runs"))
    for row in doc("hub", "model", "versions", "example", "--json"):  # type: ignore[attr-defined]
        schema(VersionDoc).validate(row)
    schema(ModelDiff).validate(doc("hub", "model", "diff", "example@1.0.0", "example", "--json"))
    tagged = doc("hub", "model", "tag", "example@1.0.0", "stage=qa", "--reason", "r", "--json")
    schema(VersionDoc).validate(tagged)
    assert tagged["tags"] == {"stage": "qa"}  # type: ignore[index]
    aliased = doc("hub", "model", "alias", "example@1.0.0", "candidate", "--reason", "r", "--json")
    assert aliased["aliases"] == ["candidate"]  # type: ignore[index]
    for row in doc("project", "list", "--json"):  # type: ignore[attr-defined]
        schema(ProjectRow).validate(row)
    recovered = doc("runs", "recover", "--json")
    schema(RecoveredRuns).validate(recovered)
    assert recovered == []
    job = doc("submit", "toys", "-w", SIMPLE, "--seed", "1", "--param", "n_toys=2", "--shards", "2", "--workers", "1",
              "--wait", "--json")
    schema(JobStatus).validate(job)
    assert job["status"] == "succeeded" and job["progress"] == {  # type: ignore[index]
        "shards_done": 2, "shards_total": 2, "points_done": 2, "points_total": 2}
    assert doc("runs", "shards", job["run_id"]) == job  # type: ignore[index]
