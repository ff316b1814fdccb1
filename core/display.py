"""Display transforms: HDR float pixels to 8-bit RGBA for the screen.

The canvas shows ready-made ``(H, W, 4)`` uint8 RGBA (C-contiguous, row-major, row 0 at
the top) so pyqtgraph never levels HDR data itself. The transforms are cheap enough to
redo on every exposure or gamma change (tev's approach).

Special values are made visible rather than hidden:

* NaN in any colour channel shows the whole pixel as **magenta** ``(255, 0, 255)``;
* ``+inf`` saturates its channel to 255 (white when all channels are ``+inf``),
  ``-inf`` gives 0.

For the colour maps (depth and sample-count heat maps), NaN is magenta as well and
``±inf`` (the flattened ``Z`` of an empty pixel) is transparent black ``(0, 0, 0, 0)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from core._numba import float32_bits, kernel, prange

__all__ = [
    "COLORMAPS",
    "NAN_RGB",
    "TRANSFERS",
    "colormap_lut",
    "colormap_transform",
    "display_transform",
    "robust_range",
]

TRANSFERS = ("srgb", "gamma", "linear")
NAN_RGB = (255, 0, 255)

# Colour-map anchors: evenly spaced sRGB colours taken from the published maps (viridis
# and inferno by van der Walt & Smith, turbo by Mikhailov), linearly interpolated to 256
# entries. Close to the originals, not bit-identical to matplotlib's tables.
_ANCHORS = {
    "viridis": "440154 472d7b 3b528b 2c728e 21908c 27ad81 5dc863 aadc32 fde725",
    "inferno": "000004 1b0c42 4b0c6b 781c6d a52c60 cf4446 ed6925 fb9b06 f7d13d fcffa4",
    "turbo": "30123b 4662d7 36aaf9 1ae4b6 72fe5e c7ef34 faba39 f66b19 cb2a04 7a0403",
}
COLORMAPS = tuple(_ANCHORS)


# --------------------------------------------------------------------------- transfer curves


def _srgb_encode(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(np.maximum(v, 0.0031308), 1.0 / 2.4) - 0.055)


def _encode(v: np.ndarray, transfer: str, gamma: float) -> np.ndarray:
    """The transfer curve in float64 (linear scene value -> display value, unclamped)."""
    v = np.asarray(v, np.float64)
    if transfer == "srgb":
        return _srgb_encode(v)
    if transfer == "gamma":
        return np.power(np.maximum(v, 0.0), 1.0 / gamma)
    return v


def _decode(x: np.ndarray, transfer: str, gamma: float) -> np.ndarray:
    """The inverse curves, used as a first guess for the thresholds."""
    if transfer == "srgb":
        return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    if transfer == "gamma":
        return x**gamma
    return x.copy()


def _smallest_reaching(f, guess: np.ndarray, dtype) -> np.ndarray:
    """Per element, the smallest non-negative value ``v`` of float ``dtype`` with ``f(v)``
    true, for ``f`` monotone (false below, true above; true at +inf).

    Bisection over the bit patterns (ordered like the values for non-negative floats),
    in a bracket of 2**16 ulps around ``guess`` when it holds the answer (17 steps),
    else over the whole range."""
    itype = np.int64 if dtype == np.float64 else np.int32
    top = np.int64(np.array(np.inf, dtype).view(itype))
    g = np.asarray(guess, dtype).view(itype).astype(np.int64)
    lo = np.clip(g - (1 << 16), 0, top)
    hi = np.clip(g + (1 << 16), 0, top)
    as_float = lambda b: b.astype(itype).view(dtype)  # noqa: E731
    wide = f(as_float(lo)) | ~f(as_float(hi))
    lo = np.where(wide, 0, lo)
    hi = np.where(wide, top, hi)
    if np.any(f(as_float(lo))):  # true already at 0
        hi = np.where(f(as_float(lo)), lo, hi)
    while np.any(hi - lo > 1):
        mid = lo + (hi - lo) // 2
        ok = f(as_float(mid))
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return as_float(hi)


def _thresholds(transfer: str, gamma: float) -> np.ndarray:
    """Linear values where the 8-bit code steps up: ``code(v) = #{k : v >= thr[k]}``.

    ``thr[k]`` is the smallest float64 where ``encode(v) * 255 + 0.5`` reaches ``k + 1``,
    found on the forward curve itself, so the kernel agrees with it to the last bit."""
    targets = (np.arange(255, dtype=np.float64) + 0.5) / 255.0
    with np.errstate(all="ignore"):
        return _smallest_reaching(
            lambda v: _encode(v, transfer, gamma) >= targets, _decode(targets, transfer, gamma), np.float64
        )


def _raw_thresholds(thr: np.ndarray) -> np.ndarray:
    """The smallest float32 ``x >= 0`` with ``x >= thr[k]`` (as float64), for every k."""
    with np.errstate(all="ignore"):
        reaches = lambda x: x.astype(np.float64) >= thr  # noqa: E731
        return _smallest_reaching(reaches, thr, np.float32)


@functools.lru_cache(maxsize=16)
def _code_tables(transfer: str, gamma: float) -> tuple:
    """The kernel's lookup tables for one transfer curve (a few milliseconds to build, so
    kept). They do not depend on the exposure: the kernel multiplies each value by
    ``2**exposure`` in float32 and looks the product up, so dragging the exposure builds
    nothing, on the worker or on the GUI thread colouring a pixel's samples."""
    raw = _raw_thresholds(_thresholds(transfer, gamma))
    tables = _bucket_table(raw)
    search = tables is None
    shift, first, table = (0, 0, np.zeros(1, np.int64)) if search else tables
    rbits = raw.view(np.int32).astype(np.int64)
    return shift, first, table, search, rbits


def _bucket_table(raw: np.ndarray) -> tuple[int, int, np.ndarray] | None:
    """A table that gives the code of a float32 from its bits in O(1), without branches.

    Buckets are runs of floats sharing their top ``9 + m`` bits (exponent plus ``m``
    mantissa bits) over the range holding the thresholds; ``m`` is the smallest that
    leaves at most one distinct threshold per bucket. Entry 0 stands for everything
    below the range and the last entry for everything above it. Entry ``i`` packs
    ``tbits | base << 32 | step << 40`` and ``code = base + step * (bits >= tbits)``.
    Returns None when no ``m`` up to 16 separates the thresholds or the table would
    exceed 65536 entries (only for extreme gamma and exposure).
    """
    bits = raw.view(np.int32).astype(np.int64)
    distinct = np.r_[True, bits[1:] != bits[:-1]]
    for m in range(6, 17):
        shift = 23 - m
        bucket = bits >> shift
        ub = bucket[distinct]
        if np.all(ub[1:] > ub[:-1]):
            break
    else:
        return None  # thresholds too close together (denormal range): search instead
    first = int(bucket[0])
    n = int(bucket[-1]) - first + 1
    if n > 1 << 16:
        return None  # thresholds spread over too many octaves: search instead
    lows = ((np.arange(n, dtype=np.int64) + first) << shift).astype(np.int32).view(np.float32)
    base = np.searchsorted(raw, lows, side="right")
    t1 = np.r_[raw, np.float32(np.inf)][base]
    step = np.searchsorted(raw, t1, side="right") - base
    never = 0x80000000  # above the bits of every non-negative float32, +inf included
    tbits = np.where(np.isinf(t1), never, t1.view(np.int32).astype(np.int64))
    base = np.r_[0, base, 255].astype(np.int64)
    step = np.r_[0, step, 0].astype(np.int64)
    tbits = np.r_[never, tbits, never].astype(np.int64)
    return shift, first - 1, tbits | (base << 32) | (step << 40)


@kernel(inline="always")
def _code(b, shift, first, table, search, rbits):
    """8-bit code of a non-NaN float32 given its bits (as int64 in [0, 2**32)).

    From the bucket table, or (``search``) by binary search of the raw threshold bits."""
    b = b if b < 0x80000000 else np.int64(0)  # negative, -0 and -inf show as 0
    if search:
        lo = 0
        hi = rbits.shape[0]
        while lo < hi:  # number of thresholds <= b
            mid = (lo + hi) >> 1
            if rbits[mid] <= b:
                lo = mid + 1
            else:
                hi = mid
        return np.int64(lo)
    e = table[min(max((b >> shift) - first, 0), table.shape[0] - 1)]
    return ((e >> 32) & 0xFF) + ((e >> 40) & 0xFF) * np.int64(b >= (e & 0xFFFFFFFF))


@kernel(inline="always")
def _bits(v) -> np.int64:
    """The bits of float32 ``v`` as a non-negative int64 (what ``_code`` reads)."""
    return np.int64(float32_bits(v))


@kernel(inline="always")
def _pixel_codes(rgb, y, x, mul, shift, first, table, search, rbits, alpha, has_alpha):
    """The four output bytes of pixel (y, x): codes of its scaled colour (grey for one
    channel; magenta if any is NaN) and its alpha byte."""
    if rgb.shape[2] == 3:
        r = rgb[y, x, 0] * mul
        g = rgb[y, x, 1] * mul
        b = rgb[y, x, 2] * mul
        if r != r or g != g or b != b:
            c0, c1, c2 = np.int64(255), np.int64(0), np.int64(255)
        else:
            c0 = _code(_bits(r), shift, first, table, search, rbits)
            c1 = _code(_bits(g), shift, first, table, search, rbits)
            c2 = _code(_bits(b), shift, first, table, search, rbits)
    else:
        v = rgb[y, x, 0] * mul
        if v != v:
            c0, c1, c2 = np.int64(255), np.int64(0), np.int64(255)
        else:
            c0 = _code(_bits(v), shift, first, table, search, rbits)
            c1 = c0
            c2 = c0
    c3 = np.int64(255)
    if has_alpha:
        a = alpha[y, x]
        if a != a or a >= 1.0:
            c3 = np.int64(255)
        elif a <= 0.0:
            c3 = np.int64(0)
        else:
            c3 = np.int64(a * np.float32(255.0) + np.float32(0.5))
    return c0, c1, c2, c3


@kernel(parallel=True)
def _display_kernel(rgb, y0, y1, x0, x1, mul, shift, first, table, search, rbits, alpha, has_alpha, out):
    """The output bytes of the pixels in rows [y0, y1), columns [x0, x1)."""
    for yi in prange(y1 - y0):
        y = np.uint64(y0 + yi)  # (unsigned indices: numba skips its wrap-around arithmetic)
        for xi in range(x1 - x0):
            x = np.uint64(x0 + xi)
            c0, c1, c2, c3 = _pixel_codes(rgb, y, x, mul, shift, first, table, search, rbits, alpha, has_alpha)
            out[y, x, 0] = c0
            out[y, x, 1] = c1
            out[y, x, 2] = c2
            out[y, x, 3] = c3


@kernel(parallel=True)
def _display_blocks_kernel(rgb, y0, y1, x0, x1, stride, mul, shift, first, table, search, rbits, alpha, has_alpha,
                           out32):
    """``_display_kernel`` for the top-left pixel of each ``stride`` x ``stride`` block of rows
    [y0, y1), columns [x0, x1) (blocks from (y0, x0)), written over the whole block
    (``out32``: the output's RGBA bytes as one little-endian uint32 per pixel, so a block row
    is one fill)."""
    for by in prange((y1 - y0 + stride - 1) // stride):
        ya = y0 + by * stride
        yb = min(ya + stride, y1)
        row = out32[ya]
        for xa in range(x0, x1, stride):
            c0, c1, c2, c3 = _pixel_codes(rgb, ya, xa, mul, shift, first, table, search, rbits, alpha, has_alpha)
            row[xa : min(xa + stride, x1)] = np.uint32(c0 | (c1 << 8) | (c2 << 16) | (c3 << 24))
        for y in range(ya + 1, yb):
            out32[y, x0:x1] = row[x0:x1]


def _check_out(out: np.ndarray | None, h: int, w: int) -> np.ndarray:
    if out is None:
        return np.empty((h, w, 4), np.uint8)
    if out.shape != (h, w, 4) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint8 array of shape {(h, w, 4)}")
    return out


def display_transform(
    rgb: np.ndarray,
    exposure: float = 0.0,
    gamma: float = 2.2,
    transfer: str = "srgb",
    alpha: np.ndarray | None = None,
    out: np.ndarray | None = None,
    stride: int = 1,
    region: tuple[int, int, int, int] | None = None,
    coarse: int = 8,
) -> np.ndarray:
    """HDR pixels to ``(H, W, 4)`` uint8 RGBA for the screen.

    ``rgb`` is ``(H, W)`` or ``(H, W, 1)`` (shown grey) or ``(H, W, 3)``, converted to
    float32 if needed. Each value is multiplied by ``2**exposure`` in float32 (exposure in
    stops, clamped to ±100), encoded with ``transfer`` ("srgb": the piecewise IEC 61966-2-1
    curve, ``gamma`` ignored; "gamma": ``v**(1/gamma)`` with gamma in [0.05, 20], negatives
    to 0; "linear"), clamped to [0, 1] and rounded to 8 bits (``floor(x * 255 + 0.5)``),
    exactly as the float64 curve would give. NaN shows magenta (see the module doc).
    ``alpha`` (``(H, W)``) fills the A byte linearly (clamped, NaN as 255; the colour is
    not un-premultiplied); without it A is 255. ``out`` lets the caller reuse a buffer.

    Quick frames, the same size, for a viewer while the tone moves: with ``stride`` > 1 each
    ``stride`` x ``stride`` block shows its top-left pixel (zoomed out by ``stride`` or more,
    the screen shows about one pixel of each block anyway), for ``stride**2`` times fewer
    lookups. With ``region`` ``(x0, y0, x1, y1)`` (array columns and rows, half-open: what
    is on screen) only those pixels are at ``stride``, the rest at ``coarse``.

    Fast: each scaled value's code comes from a small table of the curve's 255 code
    thresholds indexed by its float bits (no pow per pixel; the table does not depend on the
    exposure, so an exposure change builds nothing), rows in parallel.
    """
    if transfer not in TRANSFERS:
        raise ValueError(f"transfer must be one of {TRANSFERS}, got {transfer!r}")
    if transfer == "gamma" and not 0.05 <= gamma <= 20.0:
        raise ValueError(f"gamma must be in [0.05, 20], got {gamma}")
    if math.isnan(exposure):
        raise ValueError("exposure is NaN")
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    if rgb.ndim != 3 or rgb.shape[2] not in (1, 3):
        raise ValueError(f"rgb must be (H, W), (H, W, 1) or (H, W, 3), got {rgb.shape}")
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    h, w = rgb.shape[:2]
    has_alpha = alpha is not None
    if has_alpha:
        alpha = np.ascontiguousarray(alpha, dtype=np.float32)
        if alpha.shape != (h, w):
            raise ValueError(f"alpha must have shape {(h, w)}, got {alpha.shape}")
    else:
        alpha = np.zeros((1, 1), np.float32)
    out = _check_out(out, h, w)
    mul = np.float32(2.0 ** min(max(float(exposure), -100.0), 100.0))
    shift, first, table, search, rbits = _code_tables(transfer, float(gamma) if transfer == "gamma" else 0.0)
    stride = int(stride)
    coarse = int(coarse)
    if stride < 1 or coarse < 1:
        raise ValueError(f"stride and coarse must be >= 1, got {stride} and {coarse}")
    x0, y0, x1, y1 = 0, 0, w, h
    if region is not None:
        x0, y0, x1, y1 = (int(v) for v in region)
        x0, x1 = min(max(x0, 0), w), min(max(x1, 0), w)
        y0, y1 = min(max(y0, 0), h), min(max(y1, 0), h)
        x1, y1 = max(x1, x0), max(y1, y0)
    if not (h and w):
        return out
    args = (mul, shift, first, table, search, rbits, alpha, has_alpha)
    out32 = out.view(np.uint32).reshape(h, w)  # (little-endian: byte 0 is R)
    if (x0, y0, x1, y1) != (0, 0, w, h):
        _display_blocks_kernel(rgb, 0, h, 0, w, coarse, *args, out32)
    if stride == 1:
        _display_kernel(rgb, y0, y1, x0, x1, *args, out)
    else:
        _display_blocks_kernel(rgb, y0, y1, x0, x1, stride, *args, out32)
    return out


# --------------------------------------------------------------------------- colour maps


def colormap_lut(cmap: str = "viridis") -> np.ndarray:
    """The 256-entry ``(256, 3)`` uint8 lookup table of a colour map."""
    if cmap not in _ANCHORS:
        raise ValueError(f"cmap must be one of {COLORMAPS}, got {cmap!r}")
    hexes = _ANCHORS[cmap].split()
    anchors = np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in hexes], np.float64)
    at = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(t, at, anchors[:, c]) for c in range(3)], axis=1)
    return np.rint(lut).astype(np.uint8)


@kernel(parallel=True)
def _colormap_kernel(values, vmin, scale, lut, out):
    h = values.shape[0]
    w = values.shape[1]
    for y in prange(h):
        for x in range(w):
            v = np.float64(values[y, x])
            if v != v:
                out[y, x, 0] = 255
                out[y, x, 1] = 0
                out[y, x, 2] = 255
                out[y, x, 3] = 255
            elif v == np.inf or v == -np.inf:
                out[y, x, 0] = 0
                out[y, x, 1] = 0
                out[y, x, 2] = 0
                out[y, x, 3] = 0
            else:
                t = (v - vmin) * scale
                if not t > 0.0:  # also NaN, so the index is always valid
                    i = 0
                elif t >= 255.0:
                    i = 255
                else:
                    i = np.int64(t + 0.5)
                out[y, x, 0] = lut[i, 0]
                out[y, x, 1] = lut[i, 1]
                out[y, x, 2] = lut[i, 2]
                out[y, x, 3] = 255


def colormap_transform(
    values: np.ndarray,
    vmin: float,
    vmax: float,
    cmap: str = "viridis",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """A ``(H, W)`` scalar image (depth, sample count) as a ``(H, W, 4)`` uint8 heat map.

    ``vmin`` maps to the first LUT entry and ``vmax`` to the last (values outside are
    clamped; ``vmax <= vmin`` maps every finite value to the first entry; both must be
    finite). NaN is magenta, ``±inf`` transparent black.
    """
    lut = colormap_lut(cmap)
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be (H, W), got {values.shape}")
    if values.dtype.kind not in "fc":
        values = values.astype(np.float64)
    values = np.ascontiguousarray(values)
    h, w = values.shape
    out = _check_out(out, h, w)
    vmin = float(vmin)
    vmax = float(vmax)
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        raise ValueError(f"vmin and vmax must be finite, got {vmin}, {vmax}")
    scale = 255.0 / (vmax - vmin) if vmax > vmin else 0.0
    if h and w:
        _colormap_kernel(values, vmin, scale, lut, out)
    return out


def robust_range(values: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> tuple[float, float]:
    """Percentile range of the finite values, for a heat map that outliers don't wash out.

    NaN and ``±inf`` (the flattened depth of an empty pixel) are ignored; with no finite
    value the range is ``(0.0, 1.0)``.
    """
    v = np.asarray(values).ravel()
    if v.dtype.kind == "f":
        v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [lo_pct, hi_pct])
    return float(lo), float(hi)
