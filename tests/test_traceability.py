"""The traceability matrix holds: every requirement of the regulations list is traced, every
requirement software meets names tests that exist in this suite and evidence every pack produces,
and a row whose evidence failed on an installation reads "not met".

A test renamed or deleted without updating the matrix fails here (``missing_tests``), as does a
requirement added to the regulations list without a row."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from nextstat_pro.compliance.validation.models import make_check
from nextstat_pro.compliance.validation.reference import golden
from nextstat_pro.compliance.validation.traceability import ALWAYS, REQUIREMENTS, Requirement, matrix

from .conftest import ROOT, shared

# The technical items the issue names (Part 11 §11.10 a-k, 11.50, 11.70, 11.100, 11.200, 11.300;
# Annex 11 §4, 5, 7, 8, 9, 10, 12, 14, 17), by the prefix of their ids.
NAMED = ("P11-10", "P11-50", "P11-70", "P11-100", "P11-200", "P11-300", "AX11-4", "AX11-5", "AX11-7", "AX11-8",
         "AX11-9", "AX11-10", "AX11-12", "AX11-14", "AX11-17")


@cache
def defined_tests(path: Path) -> frozenset[str]:
    """``func`` and ``Class::func`` of every test defined in a test file (parsed, not imported)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(f"{node.name}::{f.name}" for f in node.body
                         if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.name.startswith("test_"))
    return frozenset(names)


def missing_tests(requirements: tuple[Requirement, ...], root: Path = ROOT) -> list[str]:
    """What is wrong with the rows' tests: a software row without one, or a node id that names no test."""
    problems = []
    for req in requirements:
        if req.kind in ("S", "S+P") and not req.tests:
            problems.append(f"{req.id}: no test")
        for node in req.tests:
            file, _, name = node.partition("::")
            path = root / file
            if not name or not path.is_file() or name.split("[")[0] not in defined_tests(path):
                problems.append(f"{req.id}: {node} does not exist")
    return problems


def test_every_software_requirement_names_existing_tests() -> None:
    assert missing_tests(REQUIREMENTS) == []


def test_a_missing_or_unknown_test_is_reported() -> None:
    bad = (Requirement("X-1", "x", "no test at all", "S", ()),
           Requirement("X-2", "x", "a test that is not there", "S+P",
                       ("tests/test_traceability.py::test_that_was_never_written",)),
           Requirement("X-3", "x", "a file that is not there", "S", ("tests/test_nowhere.py::test_x",)),
           Requirement("X-4", "x", "procedure only", "P", ()))
    assert missing_tests(bad) == [
        "X-1: no test",
        "X-2: tests/test_traceability.py::test_that_was_never_written does not exist",
        "X-3: tests/test_nowhere.py::test_x does not exist",
    ]


def test_every_requirement_of_the_regulations_list_is_traced() -> None:
    text = shared("compliance", "REQUIREMENTS.md").read_text()
    listed = {rid: kind for rid, kind in re.findall(r"^\| ([A-Z0-9][A-Za-z0-9.\-]+) \| .*? \| ([^|]+?) \|$", text,
                                                    re.MULTILINE) if rid != "ID"}
    assert len(listed) > 40
    ours = {r.id: r for r in REQUIREMENTS}
    assert sorted(ours) == sorted(listed)
    assert len(ours) == len(REQUIREMENTS), "one row per requirement"
    for rid, kind in listed.items():
        expected = "n/a" if kind.startswith("n/a") else kind.replace("**", "")
        assert ours[rid].kind == expected, rid
    for prefix in NAMED:  # P11-10 covers P11-10a..k, not P11-100a
        items = [rid for rid in ours if rid.startswith(prefix) and not rid[len(prefix):][:1].isdigit()]
        assert items, prefix
        assert all(ours[rid].kind in ("P", "n/a") or ours[rid].tests for rid in items), prefix


def test_every_software_requirement_has_evidence_every_pack_produces() -> None:
    case_ids = {c["id"] for c in golden()["cases"]}
    assert case_ids <= ALWAYS
    for req in REQUIREMENTS:
        if req.kind in ("S", "S+P"):
            assert req.evidence, f"{req.id}: no evidence check"
            assert set(req.evidence) <= ALWAYS, f"{req.id}: {set(req.evidence) - ALWAYS}"
        else:
            assert req.procedure, f"{req.id}: a procedure row says what the customer does and why"
        if req.kind == "S+P":
            assert req.procedure, f"{req.id}: the procedure part is named"


def test_a_failed_evidence_check_marks_its_requirements_not_met() -> None:
    checks = [make_check(c, "OQ", "w", "e", "o", c != "OQ-ESIG-TAMPER", {}, 0.0) for c in sorted(ALWAYS)]
    trace = matrix(checks)
    rows = {r.requirement: r for r in trace.rows}
    relying = sorted(r.id for r in REQUIREMENTS if "OQ-ESIG-TAMPER" in r.evidence)
    assert trace.not_met == [r.requirement for r in trace.rows if r.requirement in relying]
    assert rows["P11-70"].status == "not met" and rows["P11-50a"].status == "met"
    assert rows["P11-10a"].status == "met with procedure" and rows["P11-10i"].status == "customer procedure"
    assert rows["P11-200b"].status == "not applicable"
