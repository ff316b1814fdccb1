"""Deep read to arrays: ours against OpenImageIO's C++ reader and the OpenEXR binding, and the
peak memory of our read measured in fresh subprocesses."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from tests.benchmarks.data import deep_file, small_deep_file
from tests.benchmarks.harness import Row, measure, measure_pair

READ_RATIO_TARGET = 1.1
BINDING_SPEEDUP_TARGET = 10.0
MEMORY_TARGET = 1.3


def read_ours(path) -> object:
    from core.exr_read import open_exr

    return open_exr(path)


def read_oiio(path) -> object:
    """OpenImageIO's C++ deep read (``read_native_deep_image``), all channels, as its DeepData."""
    import OpenImageIO as oiio  # noqa: N813 - its usual name

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise RuntimeError(oiio.geterror())
    try:
        return inp.read_native_deep_image(0, 0)
    finally:
        inp.close()


def read_binding(path) -> object:
    """The OpenEXR binding's read plus the conversion of its per-pixel arrays to our flat arrays."""
    from core.exr_read import open_exr

    return open_exr(path, decoder="binding")


def _samples(path) -> int:
    return read_ours(path).parts[0].image.total_samples


def bench_read(quick: bool) -> list[Row]:
    runs = 3 if quick else 7
    path = deep_file("ZIPS")
    rows = []
    ours, oiio = measure_pair(lambda: read_ours(path), lambda: read_oiio(path), runs, warmup=1)
    n = _samples(path)
    row = Row("read_zips_oiio", "deep read to arrays, ZIPS (vs OpenImageIO)", f"<= {READ_RATIO_TARGET}x OIIO",
              "ms", ours, "OIIO", oiio, note=f"{n / 1e6:.2f} M samples, 7 channels, 1920x1080, 2 threads")
    row.met = row.ratio_of_medians() <= READ_RATIO_TARGET
    rows.append(row)
    binding_runs = 1 if quick else 2
    binding = measure(lambda: read_binding(path), binding_runs, warmup=0)
    brow = Row("read_zips_binding", "deep read to arrays, ZIPS (vs OpenEXR binding)",
               f">= {BINDING_SPEEDUP_TARGET:.0f}x faster than the binding", "ms", ours, "binding", binding)
    speedup = statistics.median(binding) / statistics.median(ours)
    brow.met = speedup >= BINDING_SPEEDUP_TARGET
    brow.note = f"ours is {speedup:.1f}x faster than the binding read + conversion to flat arrays"
    rows.append(brow)
    # the other layouts, against OpenImageIO (no target of their own)
    for comp, tiled, label in (("RLE", False, "RLE"), ("NONE", False, "NONE"), ("ZIPS", True, "deeptile ZIPS 64x64")):
        p = deep_file(comp, tiled)
        a, b = measure_pair(lambda p=p: read_ours(p), lambda p=p: read_oiio(p), 3 if quick else 5, warmup=1)
        r = Row(f"read_{comp.lower()}{'_tiled' if tiled else ''}", f"deep read to arrays, {label} (vs OpenImageIO)",
                "(info)", "ms", a, "OIIO", b)
        rows.append(r)
    return rows


def _probe(reader: str, path) -> dict:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks.mem_probe", reader, str(path),
                          str(small_deep_file())], capture_output=True, text=True, env=env,
                         cwd=os.fspath(_repo_root()), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def bench_memory(quick: bool) -> list[Row]:
    runs = 2 if quick else 3
    path = deep_file("ZIPS")
    ours = [_probe("ours", path) for _ in range(runs)]
    oiio = [_probe("oiio", path) for _ in range(runs)]
    nbytes = ours[0]["nbytes"]
    deltas = [p["delta"] for p in ours]
    ratios = [d / nbytes for d in deltas]
    row = Row("read_memory", "peak memory of that read (above baseline)", f"<= {MEMORY_TARGET}x the arrays",
              "MB", deltas, "OIIO", [p["delta"] for p in oiio])
    row.ratio = statistics.median(ratios)
    row.met = row.ratio <= MEMORY_TARGET
    row.note = (f"arrays {nbytes / 1e6:.0f} MB (channels as float32/uint32 + offsets); ratio = peak RSS growth / "
                f"arrays; baseline RSS after imports and a warm-up read {ours[0]['baseline'] / 1e6:.0f} MB; "
                f"the OIIO column is its own DeepData's peak growth")
    return [row]
