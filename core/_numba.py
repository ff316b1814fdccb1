"""The one place that owns numba's decorator options for Deepscope kernels.

Every kernel is compiled with ``nogil=True`` so a worker thread can run it while the
GUI stays live, and ``cache=True`` so the compile cost is paid once per machine.
fastmath is used only without ``nnan``/``ninf``: NaN and inf in EXR data must survive.
"""

from __future__ import annotations

import numba

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
