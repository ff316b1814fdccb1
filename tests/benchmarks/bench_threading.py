"""Numba threading layers compared on the parallel kernels, quiet and with a CPU hog running
(this machine is shared: the hog stands in for another engineer's job). Each configuration
runs in a fresh interpreter (tests.benchmarks.layer_probe); configurations are interleaved."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.harness import Row

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    "omp active": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "ACTIVE"},
    "omp passive": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "PASSIVE"},
    "omp default": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": ""},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
    "1 thread": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "PASSIVE", "NUMBA_NUM_THREADS": "1"},
}
if os.environ.get("DEEPSCOPE_BENCH_TBB_LIB"):  # a folder holding libtbb.so.12 (pip install --prefix DIR tbb)
    CONFIGS["tbb"] = {"NUMBA_THREADING_LAYER": "tbb", "LD_LIBRARY_PATH": os.environ["DEEPSCOPE_BENCH_TBB_LIB"]}
HOG = "import time\nt = time.time()\nwhile time.time() - t < 600: pass\n"


def _probe(env_extra: dict, runs: int) -> dict:
    env = dict(os.environ)
    for k in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY", "NUMBA_NUM_THREADS"):
        env.pop(k, None)
    env.update(env_extra)  # an empty OMP_WAIT_POLICY keeps libgomp's own default
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks.layer_probe", str(runs)], capture_output=True,
                         text=True, env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(rounds: int = 2, runs: int = 5, hogs: int = 0) -> dict[str, dict[str, list[float]]]:
    """{config: {kernel: [seconds]}} over ``rounds`` interleaved rounds, with ``hogs`` busy processes."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        results: dict[str, dict[str, list[float]]] = {c: {} for c in CONFIGS}
        for _ in range(rounds):
            for name, env in CONFIGS.items():
                got = _probe(env, runs)
                got.pop("layer")
                for k, v in got.items():
                    results[name].setdefault(k, []).extend(v)
        return results
    finally:
        for p in procs:
            p.kill()
            p.wait()


def bench_threading(quick: bool) -> list[Row]:
    rows = []
    for hogs in (0, 1):
        res = compare(rounds=1 if quick else 2, runs=3 if quick else 5, hogs=hogs)
        base = res["omp default"]
        for name, kernels in res.items():
            for kernel, times in kernels.items():
                r = Row(f"layer_{name}_{kernel}_{hogs}", f"{kernel}: {name}{' + 1 CPU hog' if hogs else ''}",
                        "(info)", "ms", times, "omp default" if name != "omp default" else None,
                        base.get(kernel, []) if name != "omp default" else [])
                rows.append(r)
    return rows


def summary(rows: list[Row]) -> str:
    lines = []
    for r in rows:
        lines.append(f"{r.work}: {statistics.median(r.values) * 1000:.1f} ms")
    return "\n".join(lines)
