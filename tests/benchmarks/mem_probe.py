"""Peak memory of one deep read, run in a fresh interpreter by bench_read.bench_memory.

``python -m tests.benchmarks.mem_probe ours|oiio BIG.exr SMALL.exr`` imports the reader,
reads SMALL.exr once (numba kernels loaded from the cache, pools created), resets the kernel's
peak-RSS mark (``/proc/self/clear_refs``), then reads BIG.exr and prints JSON: the RSS before,
the peak RSS during the read (``VmHWM``), their difference and the bytes of the arrays read.

``ru_maxrss`` is not used: Linux carries it over from the parent process across fork and exec,
so a child of a big benchmark process would report the parent's peak.
"""

from __future__ import annotations

import gc
import json
import sys


def status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(argv: list[str]) -> None:
    reader, big, small = argv
    if reader == "ours":
        from core.exr_read import open_exr

        def read(p):
            return open_exr(p)

        def nbytes(doc):
            img = doc.parts[0].image
            return int(img.offsets.nbytes + sum(a.nbytes for a in img.channels.values()))
    else:
        import OpenImageIO as oiio  # noqa: N813 - its usual name

        def read(p):
            inp = oiio.ImageInput.open(p)
            dd = inp.read_native_deep_image(0, 0)
            inp.close()
            return dd

        def nbytes(dd):
            return 0
    warm = read(small)
    del warm
    gc.collect()
    if not reset_peak():
        raise SystemExit("cannot reset the peak RSS (/proc/self/clear_refs)")
    before = status_bytes("VmRSS")
    result = read(big)
    peak = status_bytes("VmHWM")
    print(json.dumps({"baseline": before, "peak": peak, "delta": peak - before, "nbytes": nbytes(result)}))


if __name__ == "__main__":
    main(sys.argv[1:])
