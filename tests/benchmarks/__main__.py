"""Run Deepscope's benchmarks: ``python -m tests.benchmarks [--quick] [--only GROUP ...]``.

Inputs are generated on first use into ``bench-cache/`` (git-ignored; about 600 MB, a couple of
minutes the first time). Every row prints its median, min, runs and, where a peer does the same
work, the peer's median and the ratio, measured in the same run. Results are also saved as JSON
(``bench-cache/results.json`` by default) and can be printed as a markdown table (``--markdown``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def groups():
    from tests.benchmarks import (
        bench_gui,
        bench_inflate,
        bench_kernels,
        bench_preview,
        bench_read,
        bench_startup,
        bench_threading,
    )

    return {
        "read": bench_read.bench_read,
        "memory": bench_read.bench_memory,
        "flatten": bench_kernels.bench_flatten,
        "matte": bench_kernels.bench_crypto_matte,
        "mask": bench_kernels.bench_deep_mask,
        "display": bench_kernels.bench_display,
        "viewer": bench_gui.bench_viewer,
        "manifest": bench_gui.bench_manifest,
        "startup": bench_startup.bench_startup,
        "preview": bench_preview.bench_preview,
        "threading": bench_threading.bench_threading,
        "inflate": bench_inflate.bench_inflate,
    }


#: groups left out unless named with --only (slow, and not a target row)
OPTIONAL = ("threading", "inflate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 3 minutes instead of 10)")
    parser.add_argument("--only", nargs="+", metavar="GROUP", help=f"run only these groups: {', '.join(groups())}")
    parser.add_argument("--json", default=None, help="where to save the results (default bench-cache/results.json)")
    parser.add_argument("--markdown", action="store_true", help="print the results as a markdown table at the end")
    parser.add_argument("--prepare", action="store_true", help="only generate the cached inputs")
    args = parser.parse_args(argv)

    from tests.benchmarks import data
    from tests.benchmarks.harness import cpu_busy_fraction, load_average, machine, markdown_table, print_row, save

    t0 = time.time()
    print("preparing inputs in", data.CACHE, flush=True)
    for comp, tiled in (("ZIPS", False), ("RLE", False), ("NONE", False), ("ZIPS", True)):
        data.deep_file(comp, tiled)
    data.small_deep_file()
    data.crypto_file()
    data.crypto_arrays_cached()
    if args.prepare:
        return 0
    available = groups()
    chosen = args.only or [g for g in available if g not in OPTIONAL]
    unknown = [g for g in chosen if g not in available]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(available)}")
    info = machine()
    info["load_before"] = load_average()
    info["busy_before"] = round(cpu_busy_fraction(1.0), 2)
    print(f"machine: {info.get('cpu')} x{info.get('cores')}, {info.get('ram_gb')} GB, Python {info['python']}, "
          f"numba {info['numba']} ({info.get('threading_layer')} layer), OpenEXR {info['OpenEXR']}, "
          f"OIIO {info['OpenImageIO']}; load {info['load_before']}, CPUs busy {info['busy_before']:.0%} before",
          flush=True)
    rows = []
    for name in chosen:
        print(f"[{name}]", flush=True)
        t = time.time()
        try:
            got = available[name](args.quick)
        except Exception as exc:  # one broken group must not hide the others
            print(f"  {name} failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        for row in got:
            print_row(row)
        rows.extend(got)
        print(f"  ({time.time() - t:.0f} s)", flush=True)
    info["load_after"] = load_average()
    info["quick"] = args.quick
    info["seconds"] = round(time.time() - t0)
    out = args.json or os.fspath(data.CACHE / ("results-quick.json" if args.quick else "results.json"))
    save(rows, out, info)
    print(f"saved {out}; load average {info['load_before']} before, {info['load_after']} after")
    if args.markdown:
        print(markdown_table(rows))
    missed = [r.work for r in rows if r.met is False]
    if missed:
        print("targets not met:", "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
