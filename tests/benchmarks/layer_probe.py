"""Times a few parallel kernels under the threading layer set in the environment (run by
bench_threading in a fresh interpreter per layer): prints JSON {kernel: [seconds...]}."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 7
    import numba

    from core.cryptomatte import crypto_matte
    from core.display import display_transform
    from core.kernels import depth_order, flatten
    from tests.benchmarks.bench_kernels import deep_image
    from tests.benchmarks.data import crypto_arrays_cached

    image = deep_image()
    counts = np.diff(image.offsets)
    rng = np.random.default_rng(0)
    pix = np.repeat(np.arange(counts.size), counts)
    perm = np.argsort(pix * 2.0 + rng.random(pix.size), kind="stable")
    z, zb = image.channels["Z"][perm], image.channels["ZBack"][perm]
    ids, cov, selected = crypto_arrays_cached()
    rgb = (rng.random((1080, 1920, 3), dtype=np.float32) * 4).astype(np.float32)
    jobs = {
        "flatten": lambda: flatten(image),
        "depth_order": lambda: depth_order(image.offsets, z, zb),
        "crypto_matte": lambda: crypto_matte(ids, cov, selected),
        "display": lambda: display_transform(rgb, exposure=0.5),
    }
    if os.environ.get("NUMBA_THREADING_LAYER") == "workqueue":  # it aborts on concurrent launches
        jobs_concurrent = False
    else:
        jobs_concurrent = True
    def concurrent():
        """Two Python threads launching parallel kernels at once (the viewer's flatten and render lanes)."""
        import threading

        def lane(fn):
            for _ in range(2):
                fn()

        threads = [threading.Thread(target=lane, args=(jobs["flatten"],)),
                   threading.Thread(target=lane, args=(jobs["display"],))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    if jobs_concurrent:
        jobs["2 threads: flatten + display"] = concurrent
    out = {}
    for name, fn in jobs.items():
        fn()
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        out[name] = ts
    out["layer"] = numba.threading_layer()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
