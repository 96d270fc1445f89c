"""Bad command lines and hostile inputs: one line on stderr, the documented exit code, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import event_count, one_line_error
from .test_cli import SIMPLE


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "No such option: --bogus"),
    (["runs", "show"], "Missing argument"),
    (["runs", "nosuchcommand"], "No such command"),
    (["run", "fit", "-w", SIMPLE, "--seed", "x"], "Invalid value for '--seed'"),
    (["runs", "list", "--limit", "many"], "Invalid value"),
])
def test_usage_errors_are_one_line_with_exit_2(cli, home: Path, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("--home", str(home), *args)
    assert r.code == 2, (r.code, r.err)
    assert message in one_line_error(r)


def test_a_bare_group_prints_its_help() -> None:
    r = subprocess.run([sys.executable, "-m", "nextstat_pro.cli", "hub"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Usage:" in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_usage_error_in_a_real_process_has_no_traceback() -> None:
    r = subprocess.run([sys.executable, "-m", "nextstat_pro.cli", "--bogus"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: No such option: --bogus (see --help)"]


@pytest.mark.parametrize(("seed", "task", "extra"), [
    ("-1", "fit", []),
    (str(2**63), "fit", []),
    (str(10**30), "fit", []),
    (str(2**63 - 5), "toys", ["--param", "n_toys=10"]),  # seed + k must stay below 2^63 for every toy
])
def test_seeds_outside_the_engines_range_are_refused(cli, home: Path, seed: str, task: str,  # type: ignore[no-untyped-def]
                                                     extra: list[str]) -> None:
    before = event_count(home)
    r = cli("--home", str(home), "run", task, "-w", SIMPLE, "--seed", seed, *extra)
    assert r.code == 2, (r.code, r.err)
    assert "seed must be a whole number from 0 to 2^63" in one_line_error(r)
    assert event_count(home) == before
    assert json.loads(cli("--home", str(home), "runs", "list", "--json").out) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_non_finite_parameters_are_refused(cli, home: Path, value: str) -> None:  # type: ignore[no-untyped-def]
    before = event_count(home)
    r = cli("--home", str(home), "run", "hypotest", "-w", SIMPLE, "--param", f"mu={value}")
    assert r.code == 2, (r.code, r.err)
    assert "bad value for parameter 'mu'" in one_line_error(r)
    assert event_count(home) == before


def test_deeply_nested_json_is_refused(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name, text in (("arrays.json", "[" * 100_000 + "]" * 100_000),
                       ("objects.json", '{"a":' * 100_000 + "1" + "}" * 100_000)):
        path = tmp_path / name
        path.write_text(text)
        before = event_count(home)
        r = cli("--home", str(home), "run", "fit", "-w", str(path))
        assert r.code == 3, (r.code, r.err)
        assert "nested too deeply" in one_line_error(r)
        assert event_count(home) == before
