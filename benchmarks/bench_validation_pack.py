"""The validation pack end to end: IQ + OQ + a PQ of 100 fits, against the target of 5 minutes.

Builds the full pack (``PackOptions()``: every installed distribution's files hashed against its
RECORD, both pyhf cross-checks, the scratch instance's tamper, signature and refusal checks) on a
fresh instance, with a PQ workload of 100 fit tasks: the example workspace (examples/generate.py)
with each of 100 signal patches of its patchset, each run recorded (stored, signed, audited) and
its POI compared with the value the task expects. Prints each section's time, its slowest checks,
the verdicts, and the total against the target. Figures go to docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_validation_pack.py [--fits 100] [--db URL] [--dir DIR]
    bash scripts/with-services.sh sh -c '.venv/bin/python benchmarks/bench_validation_pack.py --pg "$NSP_TEST_PG_URL"'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from nextstat_pro.compliance.validation import PackOptions, build_validation_pack
from nextstat_pro.engine import InputFile, execute, prepare
from nextstat_pro.examples import histfactory_workspace, signal_patchset
from nextstat_pro.instance import init_instance

TARGET_S = 300.0


def workload(folder: Path, fits: int) -> Path:
    """A PQ workload of ``fits`` fit tasks, one per signal patch, each expecting its own POI (computed
    here once, as a customer would take expected values from an earlier, reviewed analysis)."""
    workspace = histfactory_workspace()
    patchset = signal_patchset(workspace, fits)
    (folder / "workspace.json").write_text(json.dumps(workspace, indent=1))
    (folder / "patchset.json").write_text(json.dumps(patchset, indent=1))
    ws = InputFile.read("workspace", folder / "workspace.json")
    ps = InputFile.read("patchset", folder / "patchset.json")
    lines = ["format: nextstat-pro.pq/1", "project: default",
             f"description: {fits} signal-hypothesis fits of the example analysis", "tasks:"]
    for patch in patchset["patches"]:
        name = patch["metadata"]["name"]
        poi = execute(prepare("fit", {}, [ws, ps], name), None)["poi"]["value"]
        lines += [f"  - name: {name}", "    task: fit",
                  f"    inputs: {{workspace: workspace.json, patchset: patchset.json, patch: {name}}}",
                  "    expect:", "      fit_ok: true",
                  f"      values: [{{path: poi.value, value: {poi!r}, abs: 1.0e-4, rel: 1.0e-4}}]"]
    path = folder / "pq.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def new_pg_database(server: str) -> str:
    import psycopg

    name = "nsp_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="where the benchmark's instance lives (default: here)")
    parser.add_argument("--fits", type=int, default=100, help="PQ fit tasks (default 100)")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in the instance's home)")
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL: a fresh database is created on it")
    parser.add_argument("--quick", action="store_true", help="the suite's variant: product files only, small "
                        "cross-check")
    args = parser.parse_args()
    db_url = new_pg_database(args.pg) if args.pg else args.db
    options = PackOptions(file_hashes="product", crosscheck="small") if args.quick else PackOptions()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        pq = workload(root, args.fits)
        prep = time.perf_counter() - t0
        inst = init_instance(root / "home", admin="bench", password="bench-password-1", printed_name="Bench QA",
                             db_url=db_url)
        try:
            t0 = time.perf_counter()
            pack = build_validation_pack(inst, inst.context(), pq, options)
            total = time.perf_counter() - t0
        finally:
            inst.close()

    print(f"database: {inst.db.dialect}; options: {options.file_hashes} files, {options.crosscheck} cross-checks; "
          f"PQ: {args.fits} fits (workload written and its expected values computed in {prep:.1f} s, not counted)")
    for sec in (pack.iq, pack.oq, pack.pq):
        seconds = sum(c.seconds for c in sec.checks)
        slowest = sorted(sec.checks, key=lambda c: -c.seconds)[:3]
        print(f"{sec.name}: {len(sec.checks)} checks in {seconds:.1f} s, {'passed' if sec.passed else 'FAILED'}"
              f"{' (' + ', '.join(sec.failed[:5]) + ')' if sec.failed else ''}; slowest: "
              + ", ".join(f"{c.id} {c.seconds:.1f} s" for c in slowest))
    if pack.pq.workload is not None:
        runs = [r["seconds"] for c in pack.pq.checks for r in c.evidence["runs"]]
        runs.sort()
        print(f"PQ runs: {len(runs)}, median {runs[len(runs) // 2] * 1000:.0f} ms, slowest {runs[-1] * 1000:.0f} ms")
    t = pack.traceability
    print(f"traceability: {len(t.rows)} requirements; not met here: {t.not_met or 'none'}; gaps: {t.gaps or 'none'}")
    print(f"total {total:.1f} s (target <= {TARGET_S:.0f} s): {'OK' if total <= TARGET_S else 'OVER TARGET'}; "
          f"ratio to target {total / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
