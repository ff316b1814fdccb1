"""Inflaters on the benchmark file's real ZIPS chunks: libdeflate (``deflate``) against CPython's
``zlib``, one thread and two, and whether each releases the GIL while it works (the reader
inflates chunks on two threads, so an inflater that holds the GIL would serialise them)."""

from __future__ import annotations

import threading
import time
import zlib

from tests.benchmarks.data import deep_file
from tests.benchmarks.harness import Row, measure


def _chunks(limit: int = 400) -> list[tuple[bytes, int]]:
    """(packed, unpacked size) of the sample data of the first ``limit`` chunks."""
    from core import exr_read

    src = exr_read._open(str(deep_file("ZIPS")))
    try:
        layout = exr_read._read_layout(src)
        table = exr_read._chunk_tables(src, layout)[0][:limit]
        _, chunks = exr_read._read_deep_counts(layout.parts[0], src, table, False, None, 1)
        return [(src.read(c.data_pos, c.packed, "chunk"), c.unpacked) for c in chunks]
    finally:
        import os

        os.close(src.fd)


def _gil_latency(fn, seconds: float = 0.3) -> float:
    """Worst wait of this thread for the GIL while another thread calls ``fn`` in a loop."""
    stop = []

    def spin():
        while not stop:
            fn()

    t = threading.Thread(target=spin)
    t.start()
    worst = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        time.sleep(0.0005)
        worst = max(worst, time.perf_counter() - t0)
    stop.append(True)
    t.join()
    return worst


def bench_inflate(quick: bool) -> list[Row]:
    import deflate

    chunks = _chunks(200 if quick else 400)
    # one large block (the inflated data of 150 chunks, deflated again) for the GIL test: a call
    # far longer than the 5 ms switch interval, so that holding the GIL would show
    raw = b"".join(deflate.zlib_decompress(p, n) for p, n in chunks[:150])
    big = (zlib.compress(raw, 6), len(raw))
    inflaters = {
        "deflate (libdeflate)": lambda p, n: deflate.zlib_decompress(p, n),
        "zlib": lambda p, n: zlib.decompress(p, bufsize=n),
    }
    rows = []
    base = None
    for name, fn in inflaters.items():
        def serial(fn=fn):
            for p, n in chunks:
                fn(p, n)

        def parallel(fn=fn):
            half = len(chunks) // 2
            parts = [chunks[:half], chunks[half:]]
            threads = [threading.Thread(target=lambda part=part: [fn(p, n) for p, n in part]) for part in parts]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        one = measure(serial, 3 if quick else 7)
        two = measure(parallel, 3 if quick else 7)
        call = measure(lambda fn=fn: fn(*big), 5)
        latency = _gil_latency(lambda fn=fn: fn(*big))
        r = Row(f"inflate_{name.split()[0]}", f"inflate {len(chunks)} ZIPS chunks: {name}", "(info)", "ms", one,
                "deflate" if base else None, base or [])
        r.note = (f"two threads {sum(two) / len(two) * 1000:.0f} ms; one {big[1] / 1e6:.1f} MB block takes "
                  f"{min(call) * 1000:.2f} ms and another thread waits at most {latency * 1000:.2f} ms for the GIL "
                  f"meanwhile ({'GIL released' if latency < 0.5 * min(call) else 'GIL HELD'})")
        rows.append(r)
        base = base or one
    return rows
