"""Report figures (NS-Compliance), on SQLite (``--pg URL``: PostgreSQL as well).

1. Run certificate of a fit (signed by a reviewer), end to end: read the run, export its evidence,
   run the offline verifier on it, render HTML and PDF/A-3b, sign, store, audit. Median of
   ``--repeat``, with and without plots (the first call imports matplotlib: reported apart).
2. Audit-trail report of ``--events`` (default 10^6) events, streamed: each size in a process of its
   own, so its peak RSS (printed) is the report's alone; a tenth of the size is run too, to show the
   peak does not grow with the period (the events file is appended to the PDF in chunks:
   verify/pdf_update.py); then ``verify`` of that PDF, in a process of its own too (time, peak RSS).
   Targets: run certificate <= 2 s; 10^6 events <= 2 min in bounded memory.
3. ``--pack``: the validation pack (IQ + OQ, and PQ with ``--pq workload.yaml``), end to end.

    .venv/bin/python benchmarks/bench_reports.py [--events 1000000] [--repeat 5] [--pack --pq W.yaml]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # bench_audit's bulk loader
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from nextstat_pro.audit.service import make_checkpoint  # noqa: E402
from nextstat_pro.compliance.audit_reports import audit_trail  # noqa: E402
from nextstat_pro.compliance.certificate import run_certificate  # noqa: E402
from nextstat_pro.engine import InputFile  # noqa: E402
from nextstat_pro.instance import Instance, init_instance  # noqa: E402
from nextstat_pro.runs import RunRequest, run_task  # noqa: E402
from nextstat_pro.runs.esignatures import sign_run  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
PASSWORD = "bench-password-1"


def certificate(inst: Instance, out: Path, repeat: int) -> None:
    from identity_helpers import add_user, session_for

    ctx = inst.context()
    ws = InputFile.read("workspace", SHARED / "workspaces" / "simple_workspace.json")
    run_id = run_task(inst, ctx, RunRequest("fit", "default", {}, None, [ws])).run_id
    add_user(inst, "rita", "viewer", "rita-password-1")
    sign_run(inst, session_for(inst, "rita", "rita-password-1"), run_id, "review", "checked", "rita-password-1",
             "rita")
    for plots in (True, False):
        times = []
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            run_certificate(inst, ctx, run_id, out / f"cert-{plots}-{i}", plots=plots)
            times.append(time.perf_counter() - t0)
        print(f"run certificate ({'with' if plots else 'without'} plots): first {times[0]:.2f} s, then median "
              f"{statistics.median(times[1:]):.2f} s, max {max(times[1:]):.2f} s over {repeat} (target <= 2 s)")


def trail_child(home: Path) -> None:
    """One audit-trail report in this process: prints seconds and peak RSS as JSON."""
    inst = Instance.open(home)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    w = audit_trail(inst, inst.context(), out=home.parent / "trail")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pdf = Path(w.pdf_path or "").stat().st_size
    inst.close()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, "before_mb": before / 1024,
                      "pdf_mb": pdf / 2**20, "pdf": w.pdf_path}))


def verify_child(pdf: Path) -> None:
    """``verify REPORT.pdf`` in this process: prints seconds and peak RSS as JSON."""
    from nextstat_pro.verify.report_pdf import verify_report_pdf

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    v = verify_report_pdf(pdf)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, "before_mb": before / 1024,
                      "rerendered": v.rerendered}))


def trail(base: Path, events: int, db_url: str | None) -> None:
    from bench_audit import bulk_load

    home = base / f"trail-{events}" / "home"
    inst = init_instance(home, admin="bench", password=PASSWORD, db_url=db_url)
    t0 = time.perf_counter()
    bulk_load(inst, events)
    make_checkpoint(inst, inst.context())  # integration is the log's cost, not the report's
    load_s = time.perf_counter() - t0
    inst.close()
    out = subprocess.run([sys.executable, __file__, "--child", str(home)], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"audit-trail report of {events:,} events (loaded and integrated in {load_s:.0f} s): {r['seconds']:.1f} s, "
          f"peak RSS {r['peak_rss_mb']:.0f} MB (process at start {r['before_mb']:.0f} MB), PDF {r['pdf_mb']:.1f} MB",
          flush=True)
    out = subprocess.run([sys.executable, __file__, "--verify-child", r["pdf"]], check=True, capture_output=True,
                         text=True)
    v = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  verify of that PDF: {v['seconds']:.1f} s (re-rendered: {v['rerendered']}), peak RSS "
          f"{v['peak_rss_mb']:.0f} MB (process at start {v['before_mb']:.0f} MB)", flush=True)


def pack(inst: Instance, out: Path, pq: Path | None) -> None:
    from nextstat_pro.compliance.pack import validation_pack

    t0 = time.perf_counter()
    w = validation_pack(inst, inst.context(), "default", pq, out / "pack")
    print(f"validation pack ({'IQ + OQ + PQ ' + pq.name if pq else 'IQ + OQ'}): {time.perf_counter() - t0:.0f} s "
          f"(target <= 300 s with a PQ of 100 fits); {w.pdf_path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="where the benchmark's instances live")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default=None, help="a PostgreSQL database URL to run the trail on as well")
    parser.add_argument("--pack", action="store_true", help="also time the validation pack")
    parser.add_argument("--pq", type=Path, default=None, help="PQ workload for --pack")
    parser.add_argument("--only", choices=["certificate", "trail"], default=None)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--verify-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        trail_child(args.child)
        return
    if args.verify_child is not None:
        verify_child(args.verify_child)
        return
    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-reports-") as tmp:
        base = Path(tmp)
        if args.only != "trail":
            inst = init_instance(base / "home", admin="bench", password=PASSWORD)
            certificate(inst, base, args.repeat)
            if args.pack:
                pack(inst, base, args.pq)
            inst.close()
        if args.only != "certificate":
            for n in sorted({max(args.events // 10, 1000), args.events}):
                trail(base, n, None)
            if args.pg:
                trail(base, args.events, args.pg)


if __name__ == "__main__":
    main()
