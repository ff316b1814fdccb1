"""The core deep kernels: depth ordering, flattening and sample counts.

Every loop over pixels or samples is a numba kernel over the flat arrays of a
``DeepImage``; the public functions validate, allocate and pick the channels.

Conventions (shared with the rest of core):

* **Depth order.** Samples are ordered by ``Z`` ascending, ties broken by ``ZBack``
  ascending when the image has ``ZBack``, then by stored order (the sort is stable).
  ``-0.0`` equals ``0.0``. A sample whose ``Z`` is NaN goes after every other sample of
  its pixel, in stored order (its ``ZBack`` is then ignored); a NaN ``ZBack`` sorts
  after every number among samples of equal ``Z``.
* **Alpha.** Samples are premultiplied (OpenEXR deep convention). A negative alpha marks
  a volume sample (PRMan); its magnitude is the opacity, so every kernel uses ``|alpha|``.
* **Alpha association** (OpenEXR "Interpreting Deep Pixels"): see ``associated_alpha``.
  A colour channel with no associated alpha is treated as opaque: the flat value is the
  value of the front-most sample.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numba import literal_unroll

from core._numba import kernel, prange
from core.errors import SelectionError
from core.model import DeepImage

__all__ = [
    "ALPHA_BASE_NAMES",
    "associated_alpha",
    "depth_order",
    "flatten",
    "is_depth_sorted",
    "sample_count_image",
    "sort_samples",
]

ALPHA_BASE_NAMES = ("A", "AR", "AG", "AB")
DEPTH_NAMES = ("Z", "ZBack")

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_INF32 = np.float32(np.inf)

# Pixels per parallel work item for kernels that need per-worker scratch memory.
_CHUNK = 2048
# Out-of-order pixels with at most _SMALL_ORDER samples are sorted by insertion (float
# compares, no keys), up to _RANK_SORT by ranking packed (Z key, index) int64s (O(n^2) but
# branch-free and vectorised: 2x faster than the merge sort on 30-60 samples); bigger ones
# by merge sort, whose runs of _SMALL_SORT are sorted by insertion sort.
_SMALL_ORDER = 8
_RANK_SORT = 64
_SMALL_SORT = 24
# Canonical key of a NaN Z: after every number (int32 max).
_NAN_KEY = 2147483647


# --------------------------------------------------------------------------- helpers


def _validate_depth_arrays(offsets: np.ndarray, z: np.ndarray, zback: np.ndarray | None) -> tuple:
    offsets = np.asarray(offsets)
    if offsets.dtype != np.int64 or offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"offsets must be a 1-D int64 array, got {offsets.dtype}{offsets.shape}")
    total = int(offsets[-1])
    z = np.ascontiguousarray(z, dtype=np.float32)
    if z.shape != (total,):
        raise ValueError(f"z has shape {z.shape}, expected ({total},)")
    if zback is not None:
        zback = np.ascontiguousarray(zback, dtype=np.float32)
        if zback.shape != (total,):
            raise ValueError(f"zback has shape {zback.shape}, expected ({total},)")
    return offsets, z, zback


def _max_count(offsets: np.ndarray) -> int:
    if offsets.shape[0] < 2:
        return 0
    return int(np.diff(offsets).max())


@kernel(inline="always")
def _float_key(bits: np.int32) -> np.int64:
    """Monotone signed key of a float32 given its bits: NaN last, -0 == +0."""
    b = np.int64(bits)
    if b == -2147483648:  # -0.0
        return np.int64(0)
    if (b & 0x7FFFFFFF) > 0x7F800000:  # NaN, either sign
        return np.int64(_NAN_KEY)
    if b < 0:
        return b ^ 0x7FFFFFFF
    return b


@kernel(inline="always")
def _sample_key(zbits: np.ndarray, zbbits: np.ndarray, has_zback: bool, i: np.int64) -> np.int64:
    """One int64 key ordering samples by (Z, ZBack); NaN Z ignores ZBack."""
    zk = _float_key(zbits[i])
    low = np.int64(0)
    if has_zback and zk != _NAN_KEY:
        low = _float_key(zbbits[i]) + np.int64(2147483648)
    return zk * np.int64(4294967296) + low


@kernel(inline="always")
def _in_order(zp, zc, zbp, zbc, has_zback) -> bool:
    """Whether a sample (zc, zbc) may follow (zp, zbp) in depth order (same order as
    ``_sample_key``, with float compares: cheaper than the keys on sorted data)."""
    if zc < zp:
        return False
    if zc != zc:  # NaN Z goes last, NaNs keep their order
        return True
    if zp != zp:
        return False
    if has_zback and zc == zp:
        if zbc < zbp:
            return False
        if zbp != zbp and zbc == zbc:
            return False
    return True


@kernel(inline="always")
def _insertion_sort(keys: np.ndarray, idx: np.ndarray, lo: np.int64, hi: np.int64) -> None:
    """Stable in-place sort of keys[lo:hi] carrying idx along."""
    for i in range(lo + 1, hi):
        k = keys[i]
        v = idx[i]
        j = i - 1
        while j >= lo and keys[j] > k:
            keys[j + 1] = keys[j]
            idx[j + 1] = idx[j]
            j -= 1
        keys[j + 1] = k
        idx[j + 1] = v


@kernel
def _merge_sort(keys: np.ndarray, idx: np.ndarray, tkeys: np.ndarray, tidx: np.ndarray, n: np.int64) -> bool:
    """Stable bottom-up merge sort of keys[:n] (carrying idx).

    Returns True when the sorted result ended in (tkeys, tidx) instead of (keys, idx).
    """
    run = _SMALL_SORT
    for lo in range(0, n, run):
        _insertion_sort(keys, idx, lo, min(lo + run, n))
    src_k, src_i, dst_k, dst_i = keys, idx, tkeys, tidx
    in_tmp = False
    width = run
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, o = lo, mid, lo
            while i < mid and j < hi:
                if src_k[j] < src_k[i]:
                    dst_k[o] = src_k[j]
                    dst_i[o] = src_i[j]
                    j += 1
                else:
                    dst_k[o] = src_k[i]
                    dst_i[o] = src_i[i]
                    i += 1
                o += 1
            while i < mid:
                dst_k[o] = src_k[i]
                dst_i[o] = src_i[i]
                i += 1
                o += 1
            while j < hi:
                dst_k[o] = src_k[j]
                dst_i[o] = src_i[j]
                j += 1
                o += 1
        src_k, src_i, dst_k, dst_i = dst_k, dst_i, src_k, src_i
        in_tmp = not in_tmp
        width *= 2
    return in_tmp


# --------------------------------------------------------------------------- depth order


@kernel(inline="always")
def _insertion_order(z, zback, has_zback, out, o, n) -> None:
    """Stable in-place insertion sort of the sample indices out[o:o+n] by ``_in_order``.

    Float compares on the samples themselves, no keys: the cheapest order for the few
    samples of a surface pixel, and O(n) on a nearly sorted run."""
    for i in range(o + 1, o + n):
        v = out[i]
        j = i - 1
        while j >= o and not _in_order(z[out[j]], z[v], zback[out[j]], zback[v], has_zback):
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = v


@kernel(inline="always")
def _rank_sort(zbbits, has_zback, a, n, keys, tkeys, out, o) -> None:
    """Depth order of pixel [a, a+n) into out[o:o+n] by ranking unique packed keys.

    ``keys[j]`` holds ``Z key << 32 | j``: unique, so the rank of each (the number of smaller
    keys, a branch-free loop the compiler vectorises) is its place, and ties of ``Z`` come
    out in stored order. Runs of equal ``Z`` are then insertion-sorted by ``ZBack`` (stable)."""
    i = 0
    while i + 4 <= n:  # four ranks per pass over the keys: a quarter of the loads and loop overhead
        k0 = keys[i]
        k1 = keys[i + 1]
        k2 = keys[i + 2]
        k3 = keys[i + 3]
        r0 = 0
        r1 = 0
        r2 = 0
        r3 = 0
        for j in range(n):
            kj = keys[j]
            r0 += kj < k0
            r1 += kj < k1
            r2 += kj < k2
            r3 += kj < k3
        tkeys[r0] = k0
        tkeys[r1] = k1
        tkeys[r2] = k2
        tkeys[r3] = k3
        i += 4
    while i < n:
        ki = keys[i]
        r = 0
        for j in range(n):
            r += keys[j] < ki
        tkeys[r] = ki
        i += 1
    if has_zback:
        s = 0
        while s < n:
            hi = tkeys[s] >> 32
            e = s + 1
            while e < n and (tkeys[e] >> 32) == hi:
                e += 1
            if e - s > 1 and hi != _NAN_KEY:
                for i in range(s + 1, e):
                    v = tkeys[i]
                    kv = _float_key(zbbits[a + (v & 0xFFFFFFFF)])
                    j = i - 1
                    while j >= s and _float_key(zbbits[a + (tkeys[j] & 0xFFFFFFFF)]) > kv:
                        tkeys[j + 1] = tkeys[j]
                        j -= 1
                    tkeys[j + 1] = v
            s = e
    for r in range(n):
        out[o + r] = a + (tkeys[r] & 0xFFFFFFFF)


# What _order_pixel found: the pixel's samples are in depth order, stored strictly back to
# front, or neither (then their order was written out).
_IN_ORDER = 0
_REVERSED = 1
_REORDERED = 2


@kernel(inline="always")
def _order_pixel(z, zback, zbits, zbbits, has_zback, a, n, keys, idx, tkeys, tidx, out, o) -> int:
    """Classify pixel [a, a+n) as ``_IN_ORDER``, ``_REVERSED`` or ``_REORDERED``; only the last
    writes anything: the pixel's sample indices in depth order, to out[o:o+n].

    One branch-free pass of float compares (it vectorises) counts the steps in order: all of
    them is the identity, none means stored strictly back to front (the reversal, stable
    because there are no ties). The rest are sorted: up to ``_SMALL_ORDER`` samples by insertion, up
    to ``_RANK_SORT`` by rank (``_rank_sort``), others by a merge sort of int64 keys. The
    caller picks ``o``: ``a`` for a whole-image permutation, the pixel's place in its chunk
    for chunk scratch."""
    zc = z[a : a + n]  # views: indices from 0 compile without wraparound checks, so this vectorises
    zbc = zback[a : a + n]
    steps = 0
    for j in range(1, n):
        steps += _in_order_flag(zc[j - 1], zc[j], zbc[j - 1], zbc[j], has_zback)
    if steps == n - 1:
        return _IN_ORDER
    if steps == 0:
        return _REVERSED
    _sort_pixel(z, zback, zbits, zbbits, has_zback, a, n, keys, idx, tkeys, tidx, out, o)
    return _REORDERED


@kernel  # (not inlined: one compiled sort shared by depth_order and flatten's chunk ordering)
def _sort_pixel(z, zback, zbits, zbbits, has_zback, a, n, keys, idx, tkeys, tidx, out, o) -> None:
    """Pixel [a, a+n)'s sample indices in depth order into out[o:o+n] (see ``_order_pixel``)."""
    if n <= _SMALL_ORDER:
        for j in range(n):
            out[o + j] = a + j
        _insertion_order(z, zback, has_zback, out, o, n)
    elif n <= _RANK_SORT:
        for j in range(n):
            keys[j] = (_float_key(zbits[a + j]) << 32) | j
        _rank_sort(zbbits, has_zback, a, n, keys, tkeys, out, o)
    else:
        for j in range(n):
            keys[j] = _sample_key(zbits, zbbits, has_zback, a + j)
            idx[j] = a + j
        if _merge_sort(keys, idx, tkeys, tidx, n):
            for j in range(n):
                out[o + j] = tidx[j]
        else:
            for j in range(n):
                out[o + j] = idx[j]


@kernel(parallel=True)
def _depth_order_kernel(offsets, z, zback, has_zback, max_count, out):
    """Every pixel's depth order into out; returns the number of pixels that were reordered."""
    npix = offsets.shape[0] - 1
    nchunks = (npix + _CHUNK - 1) // _CHUNK
    zbits = z.view(np.int32)
    zbbits = zback.view(np.int32)
    moved = 0
    for c in prange(nchunks):
        keys = np.empty(max_count, np.int64)
        idx = np.empty(max_count, np.int64)
        tkeys = np.empty(max_count, np.int64)
        tidx = np.empty(max_count, np.int64)
        chunk_moved = 0
        for p in range(c * _CHUNK, min((c + 1) * _CHUNK, npix)):
            a = offsets[p]
            n = offsets[p + 1] - a
            if n <= 0:
                continue
            how = _order_pixel(z, zback, zbits, zbbits, has_zback, a, n, keys, idx, tkeys, tidx, out, a)
            if how == _IN_ORDER:
                for j in range(n):
                    out[a + j] = a + j
            elif how == _REVERSED:
                for j in range(n):
                    out[a + j] = a + n - 1 - j
            chunk_moved += how != _IN_ORDER
        moved += chunk_moved
    return moved


@kernel(inline="always")
def _in_order_flag(zp, zc, zbp, zbc, has_zback) -> bool:
    """``_in_order`` as logic on the compares, without branches, so a loop over many samples
    vectorises (NaN compares are false: a NaN ``Z`` goes last, a NaN ``ZBack`` last among equal ``Z``)."""
    zback_ok = (zbc != zbc) | ((zbp == zbp) & (zbc >= zbp))
    return (zc != zc) | ((zp == zp) & ((zc > zp) | ((zc == zp) & (zback_ok | (not has_zback)))))


@kernel(inline="always")
def _chunk_in_order(offsets, p0, p1, z, zback, has_zback) -> bool:
    """Whether every pixel of p0..p1 is in depth order.

    Branch-free passes over the chunk (they vectorise): mark the samples that start a pixel,
    then look for a step between neighbouring samples that goes backwards, not counting
    those onto a pixel start. About the cost of reading ``Z``/``ZBack``; a per-pixel loop of
    compares pays a branch miss on nearly every pixel of 1-3 samples (5x slower)."""
    s0 = offsets[p0]
    n = offsets[p1] - s0
    start = np.zeros(n + 1, np.uint8)
    first = offsets[p0:p1]
    for k in range(p1 - p0):
        start[first[k] - s0] = 1
    zc = z[s0 : s0 + n]  # views: indices from 0 compile without wraparound checks
    zbc = zback[s0 : s0 + n]
    steps_back = 0
    for j in range(1, n):
        steps_back += (1 - _in_order_flag(zc[j - 1], zc[j], zbc[j - 1], zbc[j], has_zback)) & (1 - start[j])
    return steps_back == 0


@kernel(parallel=True)
def _is_depth_sorted_kernel(offsets, z, zback, has_zback):
    npix = offsets.shape[0] - 1
    nchunks = (npix + _CHUNK - 1) // _CHUNK
    bad = 0
    for c in prange(nchunks):
        chunk_bad = 0 if _chunk_in_order(offsets, c * _CHUNK, min((c + 1) * _CHUNK, npix), z, zback, has_zback) else 1
        bad += chunk_bad
    return bad == 0


@kernel
def _gather_range(srcs, perm, out, lo, hi):
    for i in range(lo, hi):
        s = perm[i]
        k = 0
        for src in literal_unroll(srcs):
            out[k, i] = src[s]
            k += 1


@kernel(parallel=True)
def _gather_kernel(srcs, perm, out):
    """out[k, i] = srcs[k][perm[i]] for every channel k, reading perm once."""
    n = perm.shape[0]
    step = 65536
    for c in prange((n + step - 1) // step):
        _gather_range(srcs, perm, out, c * step, min((c + 1) * step, n))


def depth_order(offsets: np.ndarray, z: np.ndarray, zback: np.ndarray | None = None) -> np.ndarray:
    """The permutation that puts every pixel's samples front to back.

    Returns int64 ``perm`` with ``sorted_channel = channel[perm]``; ``perm`` never moves a
    sample to another pixel. Order: ``Z`` ascending, then ``zback`` ascending (when
    given), then stored order (stable); NaN ``Z`` last. Pixels already in order keep
    the identity, pixels stored strictly back to front (no ties) are reversed. Others of up
    to 8 samples are sorted by insertion, up to 64 by ranking unique packed ``(Z key,
    index)`` keys, bigger ones (volumes can hold hundreds of samples) by a stable merge
    sort; pixels run in parallel.
    """
    offsets, z, zback = _validate_depth_arrays(offsets, z, zback)
    out = np.empty(int(offsets[-1]), np.int64)
    if out.shape[0] == 0:
        return out
    zb = zback if zback is not None else z
    _depth_order_kernel(offsets, z, zb, zback is not None, _max_count(offsets), out)
    return out


def is_depth_sorted(offsets: np.ndarray, z: np.ndarray, zback: np.ndarray | None = None) -> bool:
    """True when every pixel's samples are already in the order ``depth_order`` gives."""
    offsets, z, zback = _validate_depth_arrays(offsets, z, zback)
    if offsets.shape[0] < 2 or int(offsets[-1]) == 0:
        return True
    return bool(_is_depth_sorted_kernel(offsets, z, zback if zback is not None else z, zback is not None))


def _gather_channels(channels: dict[str, np.ndarray], perm: np.ndarray) -> dict[str, np.ndarray]:
    """Every channel permuted by ``perm``; 4-byte channels go through one parallel pass."""
    four = [n for n, a in channels.items() if a.dtype.itemsize == 4]
    out: dict[str, np.ndarray] = {}
    if four and perm.shape[0]:
        block = np.empty((len(four), perm.shape[0]), np.uint32)
        srcs = tuple(np.ascontiguousarray(channels[n]).view(np.uint32) for n in four)
        _gather_kernel(srcs, perm, block)
        for k, n in enumerate(four):
            out[n] = block[k].view(channels[n].dtype)
    for n, a in channels.items():
        if n not in out:
            out[n] = a[perm]
    return {n: out[n] for n in channels}


def sort_samples(image: DeepImage) -> DeepImage:
    """The image with every pixel's samples front to back (see ``depth_order``).

    Returns ``image`` itself when it has no ``Z`` channel or is already sorted (no
    copy); otherwise a new ``DeepImage`` sharing the offsets, with every channel permuted.
    """
    z = image.channels.get("Z")
    if z is None:
        return image
    zback = image.channels.get("ZBack")
    if is_depth_sorted(image.offsets, z, zback):
        return image
    perm = depth_order(image.offsets, z, zback)
    channels = _gather_channels(image.channels, perm)
    return dataclasses.replace(image, channels=channels, pixel_types=dict(image.pixel_types))


# --------------------------------------------------------------------------- sample counts


def sample_count_image(image: DeepImage) -> np.ndarray:
    """Samples per pixel as a ``(height, width)`` uint32 array (for the heat-map view)."""
    return np.diff(image.offsets).astype(np.uint32).reshape(image.height, image.width)


# --------------------------------------------------------------------------- alpha association


def _split_name(name: str) -> tuple[str, str]:
    layer, dot, base = name.rpartition(".")
    return (layer, base) if dot else ("", name)


def associated_alpha(channel: str, names) -> str | None:
    """The alpha channel that goes with ``channel`` among ``names``, or None.

    OpenEXR rule: look in the channel's own layer, then in each enclosing layer up to
    the base layer; in each layer ``R``/``G``/``B`` take ``AR``/``AG``/``AB`` if present,
    else ``A``; any other (colour or auxiliary) channel takes ``A``. Alpha channels and
    the base-layer ``Z``/``ZBack`` have no associated alpha.
    """
    names = set(names)
    layer, base = _split_name(channel)
    if base in ALPHA_BASE_NAMES or channel in DEPTH_NAMES:
        return None
    wanted = ("A" + base, "A") if base in ("R", "G", "B") else ("A",)
    while True:
        for w in wanted:
            candidate = f"{layer}.{w}" if layer else w
            if candidate in names:
                return candidate
        if not layer:
            return None
        layer = layer.rpartition(".")[0]


# --------------------------------------------------------------------------- flatten kernels


@kernel
def _over_range(
    p0, p1, offsets, alpha, has_alpha, colours, n_col, order, use_perm, sorting, moved, base, with_depth, z,
    zback, has_zback, out_alpha, out_col, out_z, out_zback,
):  # fmt: skip
    """Front-to-back over of pixels p0..p1 in float32, each stopping once alpha reaches 1.

    Samples are read in stored order, or through ``order``: the whole image's ``depth_order``
    (``use_perm``), or with ``sorting`` the chunk's own (``_order_chunk``: sample ``j`` of a
    pixel with ``moved[p - p0]`` is ``order[j - base]``).

    With ``with_depth``, also the front of the first sample with ``|alpha| > 0`` and the
    back of the last one composited (``inf`` when there is none). The channel loop is
    unrolled at compile time (``literal_unroll``), which is why this runs per chunk; it
    composites every array of ``colours`` (``n_col`` is unused: with no colour channel the
    caller passes a stand-in whose output row it discards)."""
    for p in range(p0, p1):
        a0 = offsets[p]
        a1 = offsets[p + 1]
        direct = not moved[p - p0] if sorting else not use_perm
        acc = _ZERO
        front = _INF32
        back = _INF32
        found = False
        for j in range(a0, a1):
            s = j if direct else order[j - base]
            al = abs(alpha[s]) if has_alpha else _ONE
            w = _ONE - acc
            k = 0
            for col in literal_unroll(colours):
                out_col[k, p] += w * col[s]
                k += 1
            if with_depth and al > _ZERO:
                zf = z[s]
                if not found:
                    front = zf
                    found = True
                back = zf
                if has_zback and zback[s] > zf:
                    back = zback[s]
            acc += w * al
            if acc >= _ONE:
                break
        out_alpha[p] = acc
        if with_depth:
            out_z[p] = front
            out_zback[p] = back


@kernel(inline="always")
def _over_pixel(a0, a1, alpha, has_alpha, colours, n_col, perm, use_perm, p, out_alpha, out_col):
    """``_over_range`` for one pixel without depth (same arithmetic, runtime channel loop)."""
    acc = _ZERO
    for j in range(a0, a1):
        s = perm[j] if use_perm else j
        al = abs(alpha[s]) if has_alpha else _ONE
        w = _ONE - acc
        for k in range(n_col):
            out_col[k, p] += w * colours[k][s]
        acc += w * al
        if acc >= _ONE:
            break
    out_alpha[p] = acc


@kernel(inline="always")
def _order_upto3(z, zback, has_zback, a, n, out, o) -> None:
    """Depth order of a pixel of at most 3 samples into out[o:o+3], without a branch.

    Each sample's place is its rank: the number of samples that go before it (a later one
    only when strictly in front, so equal depths keep their stored order). The three
    compares are independent of each other, where the exchanges of a sorting network wait
    on one another (3x slower), and a sort or even the check of whether one is needed
    mispredicts a branch on most pixels of 1-3 samples. Slots past ``n`` keep their own
    place. Always writes 3 slots (the caller leaves room); loads are clamped into ``z``,
    which must not be empty."""
    last = z.shape[0] - 1
    i0 = min(a, last)
    i1 = min(a + 1, last)
    i2 = min(a + 2, last)
    has1 = np.int64(n > 1)
    has2 = np.int64(n > 2)
    f01 = np.int64(_in_order_flag(z[i0], z[i1], zback[i0], zback[i1], has_zback))
    f02 = np.int64(_in_order_flag(z[i0], z[i2], zback[i0], zback[i2], has_zback))
    f12 = np.int64(_in_order_flag(z[i1], z[i2], zback[i1], zback[i2], has_zback))
    r0 = has1 * (1 - f01) + has2 * (1 - f02)
    r1 = has1 * (f01 + has2 * (1 - f12)) + (1 - has1)
    r2 = has2 * (f02 + f12) + 2 * (1 - has2)
    out[o + r0] = a
    out[o + r1] = a + 1
    out[o + r2] = a + 2


@kernel  # (not inlined: compiled once, not into every specialisation of the over kernel)
def _order_chunk(offsets, p0, p1, zbits, zbbits, z, zback, has_zback, order, moved) -> None:
    """Depth order of the pixels p0..p1 that are not in order, into ``order`` (indexed from the
    chunk's first sample) and flagged in ``moved``; the sort scratch fits the chunk's largest
    pixel. (A branch-free pass that counts in-order steps, so that each pixel is classified
    without a loop, measured slower: the per-pixel compares stop early on unsorted pixels.)"""
    base = offsets[p0]
    m = 0
    for p in range(p0, p1):
        m = max(m, offsets[p + 1] - offsets[p])
    keys = np.empty(m, np.int64)
    idx = np.empty(m, np.int64)
    tkeys = np.empty(m, np.int64)
    tidx = np.empty(m, np.int64)
    for p in range(p0, p1):
        a0 = offsets[p]
        a1 = offsets[p + 1]
        n = a1 - a0
        if n <= 3:
            _order_upto3(z, zback, has_zback, a0, n, order, a0 - base)
            moved[p - p0] = True
            continue
        how = _order_pixel(z, zback, zbits, zbbits, has_zback, a0, n, keys, idx, tkeys, tidx, order, a0 - base)
        if how == _REVERSED:
            for r in range(n):
                order[a0 - base + r] = a1 - 1 - r
        moved[p - p0] = how != _IN_ORDER


@kernel(parallel=True)
def _flatten_over_kernel(
    offsets, alpha, has_alpha, colours, n_col, perm, use_perm, with_depth, z, zback, has_zback,
    out_alpha, out_col, out_z, out_zback,
):  # fmt: skip
    """``_over_range`` over every chunk, samples in stored order or through ``perm``."""
    npix = offsets.shape[0] - 1
    nchunks = (npix + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        p0 = c * _CHUNK
        p1 = min((c + 1) * _CHUNK, npix)
        _over_range(
            p0, p1, offsets, alpha, has_alpha, colours, n_col, perm, use_perm, False, np.empty(0, np.bool_), 0,
            with_depth, z, zback, has_zback, out_alpha, out_col, out_z, out_zback,
        )  # fmt: skip


@kernel(parallel=True)
def _flatten_sort_over_kernel(
    offsets, alpha, has_alpha, colours, n_col, with_depth, z, zback, has_zback, out_alpha, out_col, out_z, out_zback,
):  # fmt: skip
    """``_over_range`` over every chunk, each first put in depth order (``_order_chunk``) into a
    permutation of its own: it stays in cache for the over that follows, and no image-sized
    permutation is written or gathered through. (A kernel of its own, so that flattening
    samples already in order never compiles the sort.)"""
    npix = offsets.shape[0] - 1
    nchunks = (npix + _CHUNK - 1) // _CHUNK
    zbits = z.view(np.int32)
    zbbits = zback.view(np.int32)
    for c in prange(nchunks):
        p0 = c * _CHUNK
        p1 = min((c + 1) * _CHUNK, npix)
        reorder = not _chunk_in_order(offsets, p0, p1, z, zback, has_zback)
        order = np.empty(offsets[p1] - offsets[p0] + 3 if reorder else 0, np.int64)  # _order_upto3 writes 3 slots
        moved = np.empty(p1 - p0 if reorder else 0, np.bool_)
        if reorder:
            _order_chunk(offsets, p0, p1, zbits, zbbits, z, zback, has_zback, order, moved)
        _over_range(
            p0, p1, offsets, alpha, has_alpha, colours, n_col, order, False, reorder, moved, offsets[p0],
            with_depth, z, zback, has_zback, out_alpha, out_col, out_z, out_zback,
        )  # fmt: skip


@kernel(parallel=True)
def _flatten_id_kernel(offsets, ids, alpha, has_alpha, perm, use_perm, sorting, z, zback, has_zback, out):
    """The id of each pixel's front-most sample with ``|alpha| > 0``. With ``sorting`` (samples
    in any order) that is the smallest in depth order, found by one scan: a later sample wins
    only when strictly in front, as the stable sort would have it."""
    npix = offsets.shape[0] - 1
    for p in prange(npix):
        value = np.uint32(0)
        if sorting:
            best = -1
            for j in range(offsets[p], offsets[p + 1]):
                al = abs(alpha[j]) if has_alpha else _ONE
                if al > _ZERO and (best < 0 or not _in_order(z[best], z[j], zback[best], zback[j], has_zback)):
                    best = j
            if best >= 0:
                value = ids[best]
            out[p] = value
            continue
        for j in range(offsets[p], offsets[p + 1]):
            s = perm[j] if use_perm else j
            al = abs(alpha[s]) if has_alpha else _ONE
            if al > _ZERO:
                value = ids[s]
                break
        out[p] = value


@kernel(parallel=True)
def _untidy_kernel(offsets, z, zback, perm, use_perm, out):
    """out[p] = 1 when the (depth-sorted) pixel p is not tidy: overlapping volumes, a
    point inside a volume or at a volume's front but stored after it, or coincident
    points. Pixels with a non-finite Z or ZBack are left at 0: the split rules cannot
    place such samples, so they keep the plain over."""
    npix = offsets.shape[0] - 1
    for p in prange(npix):
        max_vol_back = -_INF32
        last_point = np.float32(np.nan)
        overlap = False
        for j in range(offsets[p], offsets[p + 1]):
            s = perm[j] if use_perm else j
            zf = z[s]
            zb = zback[s]
            if not (zf - zf == _ZERO and zb - zb == _ZERO):  # inf or NaN
                overlap = False
                break
            overlap |= zf < max_vol_back
            if zb > zf:
                max_vol_back = max(max_vol_back, zb)
            else:
                overlap |= zf == last_point
                last_point = zf
        out[p] = overlap


@kernel
def _sift_down(v, root, end):
    """Restore the max-heap below ``root`` in ``v[:end]``."""
    while True:
        child = 2 * root + 1
        if child >= end:
            break
        if child + 1 < end and v[child] < v[child + 1]:
            child += 1
        if v[root] < v[child]:
            v[root], v[child] = v[child], v[root]
            root = child
        else:
            break


@kernel
def _sort_f64(v: np.ndarray, n: np.int64) -> None:
    """In-place ascending sort of v[:n]: insertion sort when small, else heap sort."""
    if n < 2:
        return
    if n <= 32:
        for i in range(1, n):
            x = v[i]
            j = i - 1
            while j >= 0 and v[j] > x:
                v[j + 1] = v[j]
                j -= 1
            v[j + 1] = x
        return
    # heapify, then pop the largest to the end
    for start in range((n - 2) // 2, -1, -1):
        _sift_down(v, start, n)
    for end in range(n - 1, 0, -1):
        v[0], v[end] = v[end], v[0]
        _sift_down(v, 0, end)


@kernel(inline="always")
def _merge_add(i, x, src, opaque, nlog, ratio, colours, n_col, state, sum_cv, sum_opaque):
    """Add the fraction ``x`` (1 for a point) of sample ``i`` to the slot being merged.

    The N-way form of the document's merge: with ``u = -log(1 - a)`` (additive over
    pieces and over merged samples) a piece of fraction ``x`` has ``u' = x u`` and
    contributes ``c * u' / a`` (``c * x`` when ``a == 0``) to the weighted colour sum; opaque
    pieces are averaged. state = [n_pieces, n_opaque, sum_u]."""
    state[0] += 1.0
    s = src[i]
    if opaque[i]:
        state[1] += 1.0
        for k in range(n_col):
            sum_opaque[k] += colours[k][s]
        return
    state[2] += x * nlog[i]
    f = x * ratio[i]
    for k in range(n_col):
        sum_cv[k] += colours[k][s] * f


@kernel(inline="always")
def _merge_composite(state, sum_cv, sum_opaque, n_col, acc, p, out_col):
    """Finish the merged slot, composite it under ``acc`` (float32), reset the slot;
    returns the new accumulated alpha. Merged alpha ``1 - exp(-sum u)``, merged colour
    ``sum(c u / a) * alpha / sum u`` (the document's ``w``), or the mean of opaque pieces."""
    if state[0] == 0.0:
        return acc
    w = _ONE - acc
    if state[1] > 0.0:
        am = _ONE
        for k in range(n_col):
            out_col[k, p] += w * np.float32(sum_opaque[k] / state[1])
    else:
        u = state[2]
        a64 = -math.expm1(-u)
        am = np.float32(a64)
        wm = a64 / u if u > 0.0 else 1.0
        for k in range(n_col):
            out_col[k, p] += w * np.float32(sum_cv[k] * wm)
    for k in range(n_col):
        sum_cv[k] = 0.0
        sum_opaque[k] = 0.0
    state[0] = 0.0
    state[1] = 0.0
    state[2] = 0.0
    return acc + w * am


@kernel(parallel=True)
def _flatten_split_kernel(
    offsets, pixels, z, zback, alpha, has_alpha, colours, n_col, perm, use_perm, max_count, out_alpha, out_col
):
    """Recomposite the listed (untidy) pixels with volume splitting and merging.

    Samples are split at every Z/ZBack boundary of the pixel (a sweep over the sorted
    boundaries with the set of volumes that cover each interval); at each boundary the
    point samples there, then the volume pieces over the next interval, are merged and
    composited. Piece alpha ``1 - (1 - a)**x`` is never formed: the merge only needs
    ``u = -x log(1 - a)``. Pixels with a non-finite alpha keep the plain over result."""
    npix = pixels.shape[0]
    nchunks = (npix + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        zs = np.empty(max_count, np.float64)
        bs = np.empty(max_count, np.float64)
        inv_t = np.empty(max_count, np.float64)
        nlog = np.empty(max_count, np.float64)
        ratio = np.empty(max_count, np.float64)
        opaque = np.empty(max_count, np.bool_)
        src = np.empty(max_count, np.int64)
        active = np.empty(max_count, np.int64)
        backs = np.empty(max_count, np.float64)
        bnd = np.empty(2 * max_count, np.float64)
        state = np.zeros(3, np.float64)
        sum_cv = np.zeros(max(n_col, 1), np.float64)
        sum_opaque = np.zeros(max(n_col, 1), np.float64)
        for q in range(c * _CHUNK, min((c + 1) * _CHUNK, npix)):
            p = pixels[q]
            a0 = offsets[p]
            a1 = offsets[p + 1]
            finite = True
            if has_alpha:
                for j in range(a0, a1):
                    if not np.isfinite(alpha[perm[j] if use_perm else j]):
                        finite = False
            if not finite:
                continue
            for k in range(n_col):
                out_col[k, p] = _ZERO
            n = a1 - a0
            nv = 0
            for i in range(n):
                s = perm[a0 + i] if use_perm else a0 + i
                src[i] = s
                zs[i] = z[s]
                bs[i] = max(zback[s], z[s])
                a = min(abs(np.float64(alpha[s])), 1.0) if has_alpha else 1.0
                opaque[i] = a >= 1.0
                if a >= 1.0:
                    nlog[i] = np.inf
                    ratio[i] = 1.0
                elif a > 0.0:
                    nlog[i] = -math.log1p(-a)
                    ratio[i] = nlog[i] / a
                else:
                    nlog[i] = 0.0
                    ratio[i] = 1.0
                if bs[i] > zs[i]:
                    inv_t[i] = 1.0 / (bs[i] - zs[i])
                    backs[nv] = bs[i]
                    nv += 1
            # boundaries: the fronts (already sorted) merged with the sorted volume backs
            _sort_f64(backs, nv)
            nb = 0
            i = 0
            j = 0
            while i < n or j < nv:
                if j >= nv or (i < n and zs[i] <= backs[j]):
                    b = zs[i]
                    i += 1
                else:
                    b = backs[j]
                    j += 1
                if nb == 0 or b != bnd[nb - 1]:
                    bnd[nb] = b
                    nb += 1
            acc = _ZERO
            nxt = 0
            n_active = 0
            for kb in range(nb):
                lo = bnd[kb]
                # volumes that end at lo are done
                keep = 0
                for i in range(n_active):
                    if bs[active[i]] > lo:
                        active[keep] = active[i]
                        keep += 1
                n_active = keep
                # samples starting at lo: points merge here, volumes become active
                while nxt < n and zs[nxt] <= lo:
                    if bs[nxt] > zs[nxt]:
                        active[n_active] = nxt
                        n_active += 1
                    else:
                        _merge_add(
                            nxt, 1.0, src, opaque, nlog, ratio, colours, n_col, state, sum_cv, sum_opaque
                        )
                    nxt += 1
                acc = _merge_composite(state, sum_cv, sum_opaque, n_col, acc, p, out_col)
                if acc >= _ONE:
                    break
                if kb + 1 < nb and n_active > 0:
                    hi = bnd[kb + 1]
                    for i in range(n_active):
                        v = active[i]
                        x = (hi - lo) * inv_t[v]
                        _merge_add(v, x, src, opaque, nlog, ratio, colours, n_col, state, sum_cv, sum_opaque)
                    acc = _merge_composite(state, sum_cv, sum_opaque, n_col, acc, p, out_col)
                    if acc >= _ONE:
                        break
            out_alpha[p] = acc


# --------------------------------------------------------------------------- flatten


def flatten(
    image: DeepImage,
    channels: list[str] | None = None,
    *,
    split_volumes: bool = False,
    sort: bool = False,
) -> dict[str, np.ndarray]:
    """Composite every pixel's samples front to back into flat ``(height, width)`` arrays.

    The samples must already be in depth order (``sort_samples``; the reader sorts at
    load) unless ``sort=True``, which composites in ``depth_order`` without copying the
    channels (with one alpha group, each chunk of pixels is ordered inside the over pass,
    no image-sized permutation is built). For each sample, premultiplied: ``out_c += (1 - acc) * c`` and
    ``acc += (1 - acc) * |a|`` in float32 (as OpenImageIO/OpenEXR do), with ``a`` the
    channel's associated alpha (``associated_alpha``); a pixel stops once ``acc >= 1``:
    later samples are hidden (with ``acc == 1`` they would add exactly zero, and a NaN or
    inf behind an opaque sample does not leak through). Outputs, float32 unless said:

    * an alpha channel: its accumulated alpha;
    * a colour or auxiliary channel: its composite; with no associated alpha the channel
      is treated as opaque (the front-most sample's value); 0 for empty pixels;
    * ``Z``: the ``Z`` of the front-most sample with ``|A| > 0`` (any sample if the image
      has no ``A``); ``ZBack``: the back (``max(Z, ZBack)``) of the last such sample
      composited before ``acc`` reached 1. Both are ``inf`` for pixels with no such sample;
    * a UINT (id) channel, only when asked for by name: uint32, the id of the front-most
      sample with ``|alpha| > 0``, else 0.

    ``channels=None`` flattens every non-UINT channel. ``split_volumes=True`` makes the
    colour/alpha result exact for overlapping samples (OpenEXR "Interpreting Deep Pixels"):
    in pixels that are not tidy, volume samples (``ZBack > Z``) are split at every
    depth boundary (sub-piece alpha ``1 - (1 - a)**t``, colour scaled by the alpha ratio,
    or by ``t`` when ``a == 0``), coincident pieces are merged with the log rule (pieces
    with alpha 1: the mean of their colours), then composited. Alpha is clamped to
    [0, 1] there; pixels with non-finite Z, ZBack or alpha, and tidy pixels, use the
    plain over, so the two modes agree exactly when nothing overlaps. Depth outputs are
    the same in both modes.
    """
    available = image.channels
    names = list(available) if channels is None else list(channels)
    for name in names:
        if name not in available:
            raise SelectionError(f"no channel {name!r} in this deep image")
    if channels is None:
        names = [n for n in names if available[n].dtype != np.uint32]

    h, w = image.height, image.width
    npix = h * w
    offsets = image.offsets
    z = available.get("Z")
    zback = available.get("ZBack")

    def f32(arr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(arr, dtype=np.float32)

    result: dict[str, np.ndarray] = {}
    groups: dict[str | None, list[str]] = {}
    alpha_outputs: set[str] = set()
    ids: list[str] = []
    depth_wanted = False
    for name in names:
        if name in DEPTH_NAMES:
            depth_wanted = True
        elif available[name].dtype == np.uint32:
            ids.append(name)
        elif _split_name(name)[1] in ALPHA_BASE_NAMES:
            alpha_outputs.add(name)
            groups.setdefault(name, [])
        else:
            groups.setdefault(associated_alpha(name, available), []).append(name)

    # Z and ZBack come out of the pass over the base alpha's group (same stop rule).
    depth_alpha = "A" if "A" in available else None
    if depth_wanted and depth_alpha not in groups:
        groups[depth_alpha] = []

    # sort=True: with one over pass (one alpha group: the usual beauty + depth), each chunk
    # of pixels is ordered inside that pass, just before it is composited. Several passes
    # would each sort again, and volume splitting (its tidy test and split kernels) reads
    # through a permutation: those build depth_order once, unless the samples are in order.
    sorting = sort and z is not None
    perm = np.empty(0, np.int64)
    use_perm = False
    if sorting and (split_volumes or len(groups) > 1):
        sorting = False
        if not is_depth_sorted(offsets, z, zback):
            perm = depth_order(offsets, z, zback)
            use_perm = True

    dummy = np.zeros(1, np.float32)
    zf = f32(z if z is not None else available.get("ZBack", dummy))
    zb = f32(zback) if zback is not None else zf
    has_zback = zback is not None
    untidy = np.empty(0, np.int64)
    if split_volumes and z is not None and npix:
        flags = np.empty(npix, np.uint8)
        _untidy_kernel(offsets, zf, zb, perm, use_perm, flags)
        untidy = np.flatnonzero(flags).astype(np.int64)
    max_count = _max_count(offsets) if untidy.shape[0] else 0
    # every pixel's depth is written by the pass over depth_alpha's group when depth is wanted
    out_z = np.empty(npix, np.float32)
    out_zback = np.empty(npix, np.float32)
    for alpha_name, cols in groups.items():
        has_alpha = alpha_name is not None
        alpha = f32(available[alpha_name]) if has_alpha else dummy
        n_col = len(cols)
        # no colour channel: composite a stand-in of the right length into a discarded row
        colours = tuple(f32(available[n]) for n in cols) if cols else (alpha if has_alpha else zf,)
        out_alpha = np.empty(npix, np.float32)
        out_col = np.zeros((max(n_col, 1), npix), np.float32)
        with_depth = depth_wanted and alpha_name == depth_alpha
        if npix and sorting:
            _flatten_sort_over_kernel(
                offsets, alpha, has_alpha, colours, n_col, with_depth, zf, zb, has_zback, out_alpha, out_col,
                out_z, out_zback,
            )  # fmt: skip
        elif npix:
            _flatten_over_kernel(
                offsets, alpha, has_alpha, colours, n_col, perm, use_perm, with_depth, zf, zb, has_zback,
                out_alpha, out_col, out_z, out_zback,
            )  # fmt: skip
        if untidy.shape[0]:
            _flatten_split_kernel(
                offsets, untidy, zf, zb, alpha, has_alpha, colours, n_col, perm, use_perm, max_count,
                out_alpha, out_col,
            )  # fmt: skip
        for k, n in enumerate(cols):
            result[n] = out_col[k].reshape(h, w)
        if alpha_name in alpha_outputs:
            result[alpha_name] = out_alpha.reshape(h, w)
    if "Z" in names:
        result["Z"] = out_z.reshape(h, w)
    if "ZBack" in names:
        result["ZBack"] = out_zback.reshape(h, w)

    for name in ids:
        alpha_name = associated_alpha(name, available)
        out = np.zeros(npix, np.uint32)
        if npix:
            _flatten_id_kernel(
                offsets, np.ascontiguousarray(available[name]),
                f32(available[alpha_name]) if alpha_name is not None else dummy, alpha_name is not None,
                perm, use_perm, sorting, zf, zb, has_zback, out,
            )  # fmt: skip
        result[name] = out.reshape(h, w)

    return {name: result[name] for name in names}
