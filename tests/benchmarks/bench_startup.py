"""Start-up: process start to the window shown with the demo frame drawn (warm numba cache), and
what a cold cache (first start on a machine) costs, each in a fresh interpreter (startup_probe)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.harness import Row

ROOT = Path(__file__).resolve().parents[2]
START_TARGET = 2.0


def start_once(extra_env: dict | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.update(extra_env or {})
    env["DEEPSCOPE_BENCH_T0"] = repr(time.time())
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks.startup_probe"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_startup(quick: bool) -> list[Row]:
    start_once()  # the demo files and the numba cache exist after this
    runs = [start_once() for _ in range(3 if quick else 7)]
    drawn = [r["drawn"] for r in runs]
    row = Row("warm_start", "warm start to window shown on the demo", f"<= {START_TARGET:.0f} s", "s", drawn)
    row.met = statistics.median(drawn) <= START_TARGET
    row.note = (f"process start -> window shown {statistics.median([r['shown'] for r in runs]):.2f} s -> demo frame "
                f"drawn; imports take {statistics.median([r['imports_done'] for r in runs]):.2f} s; longest "
                f"event-loop stall {max(r['max_stall'] for r in runs) * 1000:.0f} ms")
    rows = [row]
    cold_rows = []
    for demo in ("deep", "flat"):
        folder = tempfile.mkdtemp(prefix="deepscope-numba-cold-")
        try:
            cold = start_once({"NUMBA_CACHE_DIR": folder, "DEEPSCOPE_BENCH_DEMO": demo})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        r = Row(f"cold_start_{demo}", f"cold numba cache: first start on the {demo} demo", "window never blocked",
                "s", [cold["drawn"]] if cold["drawn"] else [])
        r.met = cold["shown"] is not None and cold["shown"] < START_TARGET and cold["max_stall"] < 0.5
        r.note = (f"window shown at {cold['shown']:.2f} s, frame drawn at {cold['drawn']:.1f} s while the kernels "
                  f"compile in the background ('{cold['status']}'); longest event-loop stall "
                  f"{cold['max_stall'] * 1000:.0f} ms at {cold['max_stall_at']:.1f} s")
        cold_rows.append(r)
    return rows + cold_rows
