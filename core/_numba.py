"""The one place that owns numba's decorator options for Deepscope kernels.

Every kernel is compiled with ``nogil=True`` so a worker thread can run it while the
GUI stays live, and ``cache=True`` so the compile cost is paid once per machine.
fastmath is used only without ``nnan``/``ninf``: NaN and inf in EXR data must survive.

Threading: parallel kernels use numba's default layer (TBB if installed, else GNU OpenMP).
The ``workqueue`` layer is not an option: it aborts the process when two threads launch
parallel kernels at once, which the viewer does (worker lanes and the GUI thread). GNU
OpenMP's idle threads spin-wait by default; on a loaded 2-core machine the spinning steals
the cores the work needs (1.5-2x slower, tests/benchmarks/bench_threading.py), so they wait
passively unless the user set ``OMP_WAIT_POLICY``: no cost measured on a quiet machine.
"""

from __future__ import annotations

import os

# read by libgomp when it loads, at the first parallel launch (after this import)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def kernel(*args, parallel: bool = False, fastmath: bool = False, **kwargs):
    """``numba.njit`` with the project's options (nogil, cache)."""
    options = dict(nogil=True, cache=True, parallel=parallel)
    if fastmath:
        options["fastmath"] = FASTMATH
    options.update(kwargs)
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


prange = numba.prange


@numba.extending.intrinsic
def float32_bits(typingctx, value):
    """The IEEE bits of a float32 scalar as uint32 (a bit cast, no memory), inside kernels."""
    from llvmlite import ir

    if value != numba.types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return numba.types.uint32(numba.types.float32), codegen
