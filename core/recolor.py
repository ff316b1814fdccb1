"""Recolor by id: grade, remove, thin or vary chosen objects in a deep image, then flatten.

A deep image keeps every object's own samples, so an object can be regraded with its true
edge colour and coverage, where a matte-based grade on a flat beauty also tints whatever
the edge pixels mixed in. :func:`recolor` grades the samples of the selected ids while it
composites (front-to-back *over*, exactly as :func:`core.kernels.flatten` does), in one
kernel pass that reads the deep image and never copies it.

**Grades** (:class:`Grade`), on the un-premultiplied colour ``u = c / a`` of a sample, in
this order: ``gain`` per channel, ``saturation`` about the Rec. 709 luma, a ``hue`` rotation
in degrees about the grey axis (it keeps ``r + g + b``), the per-id ``vary`` look, then a
flat ``tint`` mixed in by ``mix``. Everything but the tint is linear in ``u``, and the tint is
affine, so the premultiplied result is ``M c + mix * tint * a``: no division by alpha is
needed and samples with alpha 0 (glows) are graded consistently.

**Which grades commute with compositing.** The flattened colour is a weighted sum of the
samples' colours with weights that depend only on alpha; a grade that leaves alpha alone
and is ``M c + t a`` gives, over a fully selected pixel, ``M C + t A`` of the flattened
``(C, A)``: gain, saturation, hue and tint all commute with flattening (to float rounding;
bit for bit for power-of-two gains). Per-id variation does not (each id gets its own
``M``), and removing or thinning changes the alpha.

**Remove / thin / vary** (per id, so the same ids behave the same on every frame):
``remove`` drops the selected samples; ``keep_percent`` keeps the selected ids whose hash
falls below that percentage and drops the others (the Deep IDs spec's "remove a percentage
of the dust motes"); ``vary_seed``/``vary_amount`` give each id its own hue rotation (up to
``±180° * amount``) and gain (``1 ± amount / 2``), from a hash of the id and the seed.

:func:`matte_grade` is the matte-based grade compositors apply to a flat beauty with a
Cryptomatte matte, ``lerp(beauty, graded(beauty), matte)``, and :func:`wipe` joins two
images at a column, for a split-screen comparison of the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from core._numba import kernel, prange
from core.deepid import IdChannel, IdSelection, Query, SelectionGroup, find_id_channel, id_channels, select_samples
from core.errors import Cancelled, DeepscopeError, SelectionError
from core.model import DeepImage

__all__ = [
    "LUMA",
    "Grade",
    "RecolorError",
    "SampleSelection",
    "grade_premultiplied",
    "keep_fraction",
    "matte_grade",
    "output_shape",
    "recolor",
    "select_ids",
    "vary_parameters",
    "wipe",
]

LUMA = (0.2126, 0.7152, 0.0722)
"""Rec. 709 luma weights: saturation scales the distance from this grey."""
_THIN_SALT = np.uint64(0x5DEECE66D1CE4E5B)
_VARY_SALT = np.uint64(0x2545F4914F6CDD1D)
_HUE_STEPS = 1024  # distinct hue offsets of the per-id variation


class RecolorError(DeepscopeError):
    """A grade or selection a recolor cannot use."""


# --------------------------------------------------------------------------- grades


def _triple(name: str, value) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except TypeError:
        raise RecolorError(f"{name} must be three numbers, got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise RecolorError(f"{name} must be three finite numbers, got {value!r}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Grade:
    """What to do to the selected samples (see the module docstring for the order)."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    hue: float = 0.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    mix: float = 0.0
    remove: bool = False
    keep_percent: float = 100.0
    vary_seed: int | None = None
    vary_amount: float = 0.0

    def validate(self) -> None:
        _triple("gain", self.gain)
        _triple("tint", self.tint)
        for name in ("saturation", "hue", "mix", "keep_percent", "vary_amount"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RecolorError(f"{name} must be a finite number, got {v!r}")
        if not 0.0 <= self.mix <= 1.0:
            raise RecolorError(f"mix must be between 0 and 1, got {self.mix!r}")
        if not 0.0 <= self.keep_percent <= 100.0:
            raise RecolorError(f"keep_percent must be between 0 and 100, got {self.keep_percent!r}")
        if not 0.0 <= self.vary_amount <= 1.0:
            raise RecolorError(f"vary_amount must be between 0 and 1, got {self.vary_amount!r}")
        if self.vary_seed is not None and not isinstance(self.vary_seed, (int, np.integer)):
            raise RecolorError(f"vary_seed must be an integer, got {self.vary_seed!r}")

    @property
    def varies(self) -> bool:
        return self.vary_seed is not None and self.vary_amount > 0.0

    @property
    def thins(self) -> bool:
        return self.keep_percent < 100.0

    @property
    def needs_ids(self) -> bool:
        """Whether the grade treats ids differently (thin or vary) and so needs each sample's id."""
        return not self.remove and (self.thins or self.varies)

    def matrix(self) -> np.ndarray:
        """``(1 - mix) * hue @ saturation @ gain``: the linear part, on premultiplied colour."""
        self.validate()
        gain = np.diag(np.asarray(_triple("gain", self.gain), dtype=np.float64))
        w = np.asarray(LUMA, dtype=np.float64)
        sat = (1.0 - self.saturation) * np.outer(np.ones(3), w) + self.saturation * np.eye(3)
        m = _hue_matrix(math.radians(self.hue)) @ sat @ gain
        return (1.0 - self.mix) * m

    def offset(self) -> np.ndarray:
        """``mix * tint``: multiplied by the sample's alpha and added."""
        return self.mix * np.asarray(_triple("tint", self.tint), dtype=np.float64)

    @property
    def is_diagonal(self) -> bool:
        return self.saturation == 1.0 and self.hue % 360.0 == 0.0


def _hue_matrix(theta: float) -> np.ndarray:
    """Rotation by theta about the grey axis (1, 1, 1) / sqrt(3) (Rodrigues)."""
    if theta % (2.0 * math.pi) == 0.0:
        return np.eye(3)
    k = np.full(3, 1.0 / math.sqrt(3.0))
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    c, s = math.cos(theta), math.sin(theta)
    return c * np.eye(3) + s * cross + (1.0 - c) * np.outer(k, k)


def _mix64(v):
    """MurmurHash3's 64-bit finaliser, on uint64 arrays or scalars."""
    v = np.asarray(v, dtype=np.uint64)
    with np.errstate(over="ignore"):
        v = v ^ (v >> np.uint64(33))
        v = v * np.uint64(0xFF51AFD7ED558CCD)
        v = v ^ (v >> np.uint64(33))
        v = v * np.uint64(0xC4CEB9FE1A85EC53)
        v = v ^ (v >> np.uint64(33))
    return v


def keep_fraction(ids: np.ndarray | int) -> np.ndarray:
    """The thinning value of each id in [0, 1): an id is kept when it is below ``keep_percent / 100``.

    A hash of the id alone, so the same ids are kept on every frame of a sequence.
    """
    h = _mix64(np.asarray(ids, dtype=np.uint64) ^ _THIN_SALT)
    return (h >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def vary_parameters(ids: np.ndarray | int, seed: int, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Per id, its hue offset in degrees and its gain, as :func:`recolor` applies them."""
    h = _mix64(np.asarray(ids, dtype=np.uint64) ^ _mix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ _VARY_SALT))
    step = (h >> np.uint64(54)).astype(np.int64)  # top 10 bits
    hue = (step - _HUE_STEPS // 2) * (360.0 / _HUE_STEPS) * amount
    u = ((h >> np.uint64(30)) & np.uint64(0xFFFFFF)).astype(np.float64) / float(1 << 24)
    return hue, 1.0 + (u - 0.5) * amount


def grade_premultiplied(rgb: np.ndarray, alpha: np.ndarray, grade: Grade) -> np.ndarray:
    """The grade applied to premultiplied ``rgb`` (``(..., 3)``) with its ``alpha`` (``(...)``).

    The linear part and the tint of :class:`Grade` (no per-id variation, thinning or
    removal: those need ids). Returns float32 ``(..., 3)``.
    """
    grade.validate()
    rgb = np.asarray(rgb, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    if rgb.shape[-1] != 3 or rgb.shape[:-1] != alpha.shape:
        raise RecolorError(f"rgb {rgb.shape} and alpha {alpha.shape} do not match")
    if grade.is_diagonal:
        out = rgb * np.diag(grade.matrix())
    else:
        out = rgb @ grade.matrix().T
    if grade.mix > 0.0:
        out = out + alpha[..., None] * grade.offset()
    return out.astype(np.float32)


# --------------------------------------------------------------------------- selections


@dataclass(frozen=True)
class SampleSelection:
    """The samples a recolor touches (``mask``, one bool per sample) and, for thinning and
    variation, each sample's id (``low | high << 32``; ``high`` is None for 32-bit ids)."""

    mask: np.ndarray
    id_low: np.ndarray | None = None
    id_high: np.ndarray | None = None
    channel: str | None = None

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.mask))

    def ids(self) -> np.ndarray:
        """The id of every sample as uint64 (empty when the selection has no id channel)."""
        if self.id_low is None:
            return np.zeros(0, np.uint64)
        low = self.id_low.astype(np.uint64)
        if self.id_high is None:
            return low
        return low | (self.id_high.astype(np.uint64) << np.uint64(32))


def _id_channel(image: DeepImage, name: str) -> IdChannel:
    found = find_id_channel(id_channels(image), name)
    if found is None:
        arr = image.channels.get(name)
        if arr is None or arr.dtype != np.uint32:
            raise SelectionError(f"no id channel {name!r} in the deep image")
        found = IdChannel(name, name)
    for n in found.channel_names:
        if image.channels[n].dtype != np.uint32:
            raise SelectionError(f"id channel {n!r} is not UINT")
    return found


def select_ids(
    image: DeepImage,
    selection: IdSelection | None = None,
    *,
    channel: str | None = None,
    ids: Iterable[int] | np.ndarray | None = None,
) -> SampleSelection:
    """The samples to recolor: those an :class:`~core.deepid.IdSelection` picks (from
    :func:`core.deepid.resolve`), or those whose id in ``channel`` (a UINT channel or a
    64-bit pair by its short name) is one of ``ids``.

    ``channel`` also names the ids used for thinning and variation (default: the first id
    channel the selection uses).
    """
    if not isinstance(image, DeepImage):
        raise RecolorError("recolor needs a deep image")
    if selection is None:
        if channel is None or ids is None:
            raise SelectionError("give an IdSelection, or a channel and its ids")
        ch = _id_channel(image, channel)
        values = np.unique(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).astype(np.uint64))
        selection = IdSelection(Query(()), [SelectionGroup(include={ch: values})], [], tuple(image.channels))
    else:
        ch = _id_channel(image, channel) if channel is not None else None
        if ch is None:
            positive = [c for g in selection.groups for c in g.include]
            candidates = positive or selection.id_channels
            ch = candidates[0] if candidates else None
            if ch is not None:
                ch = _id_channel(image, ch.low)
    mask = select_samples(image, selection)
    if ch is None:
        return SampleSelection(mask)
    low = np.ascontiguousarray(image.channels[ch.low])
    high = np.ascontiguousarray(image.channels[ch.high]) if ch.high is not None else None
    return SampleSelection(mask, low, high, ch.name)


# --------------------------------------------------------------------------- kernel


@kernel(inline="always")
def _fmix64(v):
    v ^= v >> np.uint64(33)
    v *= np.uint64(0xFF51AFD7ED558CCD)
    v ^= v >> np.uint64(33)
    v *= np.uint64(0xC4CEB9FE1A85EC53)
    v ^= v >> np.uint64(33)
    return v


@kernel(parallel=True)
def _recolor_kernel(offsets, src_x, src_y, width, out_w, alpha, has_alpha, r, g, b, mask, id_low, id_high, use_high,
                    matrix, diagonal, offset, tint, remove, thin, keep, vary, vary_key, hue_cos, hue_sin, amount,
                    out_r, out_g, out_b, out_a):
    """Front-to-back over of each output pixel's source pixel, grading selected samples on the way.

    Unselected samples go through exactly flatten's float32 operations."""
    k = 1.0 / math.sqrt(3.0)
    for q in prange(out_r.shape[0]):
        p = src_y[q // out_w] * width + src_x[q % out_w]
        acc = np.float32(0.0)
        o_r = np.float32(0.0)
        o_g = np.float32(0.0)
        o_b = np.float32(0.0)
        for s in range(offsets[p], offsets[p + 1]):
            al = abs(alpha[s]) if has_alpha else np.float32(1.0)
            cr = r[s]
            cg = g[s]
            cb = b[s]
            if mask[s]:
                if remove:
                    continue
                h = np.uint64(0)
                if thin or vary:
                    v = np.uint64(id_low[s])
                    if use_high:
                        v |= np.uint64(id_high[s]) << np.uint64(32)
                    if thin:
                        h = _fmix64(v ^ _THIN_SALT)
                        if np.float64(h >> np.uint64(40)) >= keep:
                            continue
                    if vary:
                        h = _fmix64(v ^ vary_key)
                x0 = np.float64(cr)
                x1 = np.float64(cg)
                x2 = np.float64(cb)
                if diagonal:
                    y0 = matrix[0, 0] * x0
                    y1 = matrix[1, 1] * x1
                    y2 = matrix[2, 2] * x2
                else:
                    y0 = matrix[0, 0] * x0 + matrix[0, 1] * x1 + matrix[0, 2] * x2
                    y1 = matrix[1, 0] * x0 + matrix[1, 1] * x1 + matrix[1, 2] * x2
                    y2 = matrix[2, 0] * x0 + matrix[2, 1] * x1 + matrix[2, 2] * x2
                if vary:
                    step = np.int64(h >> np.uint64(54))
                    c = hue_cos[step]
                    sn = hue_sin[step]
                    gain = 1.0 + (np.float64((h >> np.uint64(30)) & np.uint64(0xFFFFFF)) / 16777216.0 - 0.5) * amount
                    dot = (y0 + y1 + y2) * k
                    # Rodrigues: y cos + (k x y) sin + k (k . y)(1 - cos), k = (1, 1, 1) / sqrt(3)
                    z0 = y0 * c + (y2 - y1) * k * sn + dot * k * (1.0 - c)
                    z1 = y1 * c + (y0 - y2) * k * sn + dot * k * (1.0 - c)
                    z2 = y2 * c + (y1 - y0) * k * sn + dot * k * (1.0 - c)
                    y0 = z0 * gain
                    y1 = z1 * gain
                    y2 = z2 * gain
                if tint:
                    fa = np.float64(al)
                    y0 += offset[0] * fa
                    y1 += offset[1] * fa
                    y2 += offset[2] * fa
                cr = np.float32(y0)
                cg = np.float32(y1)
                cb = np.float32(y2)
            w = np.float32(1.0) - acc
            o_r += w * cr
            o_g += w * cg
            o_b += w * cb
            acc += w * al
            if acc >= np.float32(1.0):
                break
        out_r[q] = o_r
        out_g[q] = o_g
        out_b[q] = o_b
        out_a[q] = acc


# --------------------------------------------------------------------------- recolor


def output_shape(width: int, height: int, proxy: float = 1.0) -> tuple[int, int]:
    """``(height, width)`` of a result at ``proxy`` scale (the same rule as :func:`core.defocus.output_shape`)."""
    if not (0.0 < proxy <= 1.0):
        raise RecolorError(f"proxy must be in (0, 1], got {proxy!r}")
    if width <= 0 or height <= 0:
        return (max(height, 0), max(width, 0))
    return (int(math.floor((height - 0.5) * proxy)) + 1, int(math.floor((width - 0.5) * proxy)) + 1)


def _sources(n: int, proxy: float, n_out: int) -> np.ndarray:
    """For each output index, the middle source index of those it covers."""
    to_out = np.minimum(np.floor((np.arange(n) + 0.5) * proxy).astype(np.int64), n_out - 1)
    idx = np.arange(n_out)
    start = np.searchsorted(to_out, idx, "left")
    stop = np.searchsorted(to_out, idx, "right")
    return (start + stop - 1) // 2


def recolor(
    image: DeepImage,
    selection: SampleSelection | IdSelection | np.ndarray | None,
    grade: Grade,
    *,
    proxy: float = 1.0,
    channels: tuple[str, str, str] = ("R", "G", "B"),
    cancel: Callable[[], bool] | None = None,
) -> dict[str, np.ndarray]:
    """The flattened image with the selected samples graded: ``{R, G, B, A}`` float32 ``(height, width)``.

    ``selection`` is a :class:`SampleSelection` (from :func:`select_ids`; build it once per
    selection, not per slider move), an :class:`~core.deepid.IdSelection`, a bool mask per
    sample, or None (nothing selected: the result is :func:`core.kernels.flatten`'s, bit for
    bit). Thinning and variation need the ids of a :class:`SampleSelection`. Colours are
    composited with ``A`` (samples without alpha are opaque). ``proxy`` (0.25, 0.5) gives a
    smaller preview: each output pixel is the recolor of the middle source pixel it covers.
    Samples should be in depth order, as the reader leaves them.
    """
    if not isinstance(image, DeepImage):
        raise RecolorError("recolor needs a deep image")
    grade.validate()
    for name in channels:
        if name not in image.channels:
            raise RecolorError(f"no channel {name!r} in the deep image")
        if image.channels[name].dtype == np.uint32:
            raise RecolorError(f"channel {name!r} holds ids, not colour")
    n = image.total_samples
    if selection is None:
        sel = SampleSelection(np.zeros(n, np.bool_))
    elif isinstance(selection, IdSelection):
        sel = select_ids(image, selection)
    elif isinstance(selection, SampleSelection):
        sel = selection
    else:
        sel = SampleSelection(np.asarray(selection, dtype=np.bool_).reshape(-1))
    mask = np.ascontiguousarray(sel.mask, dtype=np.bool_).reshape(-1)
    if mask.shape[0] != n:
        raise SelectionError(f"selection has {mask.shape[0]} samples, the image {n}")
    if grade.needs_ids and sel.id_low is None:
        raise RecolorError("thinning and variation need the ids of the selection (use select_ids)")
    ho, wo = output_shape(image.width, image.height, proxy)
    out = np.zeros((4, ho * wo), np.float32)
    result = {"R": out[0].reshape(ho, wo), "G": out[1].reshape(ho, wo), "B": out[2].reshape(ho, wo),
              "A": out[3].reshape(ho, wo)}
    if ho * wo == 0:
        return result
    if cancel is not None and cancel():
        raise Cancelled()

    def f32(name: str) -> np.ndarray:
        return np.ascontiguousarray(image.channels[name], dtype=np.float32)

    has_alpha = "A" in image.channels
    alpha = f32("A") if has_alpha else f32(channels[0])
    dummy = np.zeros(1, np.uint32)
    low = np.ascontiguousarray(sel.id_low, dtype=np.uint32) if sel.id_low is not None else dummy
    high = np.ascontiguousarray(sel.id_high, dtype=np.uint32) if sel.id_high is not None else dummy
    thin = grade.thins and not grade.remove
    vary = grade.varies and not grade.remove
    hue_cos = np.ones(1)
    hue_sin = np.zeros(1)
    vary_key = np.uint64(0)
    if vary:
        angles = np.radians((np.arange(_HUE_STEPS) - _HUE_STEPS // 2) * (360.0 / _HUE_STEPS) * grade.vary_amount)
        hue_cos, hue_sin = np.cos(angles), np.sin(angles)
        vary_key = np.uint64(_mix64(np.uint64(int(grade.vary_seed) & 0xFFFFFFFFFFFFFFFF) ^ _VARY_SALT))
    _recolor_kernel(
        image.offsets, _sources(image.width, proxy, wo), _sources(image.height, proxy, ho), image.width, wo,
        alpha, has_alpha, f32(channels[0]), f32(channels[1]), f32(channels[2]), mask, low, high,
        sel.id_high is not None, np.ascontiguousarray(grade.matrix()), grade.is_diagonal, grade.offset(),
        grade.mix > 0.0, grade.remove, thin, grade.keep_percent / 100.0 * float(1 << 24), vary, vary_key,
        hue_cos, hue_sin, float(grade.vary_amount), out[0], out[1], out[2], out[3],
    )  # fmt: skip
    return result


# --------------------------------------------------------------------------- flat comparison


def matte_grade(beauty_rgba: np.ndarray, matte: np.ndarray, grade: Grade) -> np.ndarray:
    """The matte-based grade of a flat premultiplied beauty: ``lerp(beauty, graded(beauty), matte)``.

    What a compositor does with a Cryptomatte matte: grade the un-premultiplied beauty,
    re-premultiply, and mix by the matte (``remove`` mixes towards transparent). Edge pixels
    that hold several objects get the grade in proportion to the matte, contaminating the
    neighbours' colour, which is what :func:`recolor` avoids. Per-id variation and thinning
    need ids and are not applied here. Returns float32 ``(height, width, 4)``.
    """
    beauty = np.asarray(beauty_rgba, dtype=np.float64)
    m = np.asarray(matte, dtype=np.float64)
    if beauty.ndim != 3 or beauty.shape[2] != 4 or m.shape != beauty.shape[:2]:
        raise RecolorError(f"beauty must be (height, width, 4) and the matte (height, width); got {beauty.shape} "
                           f"and {m.shape}")
    rgb, a = beauty[..., :3], beauty[..., 3]
    if grade.remove:
        target = np.zeros_like(beauty)
    else:
        target = np.concatenate([grade_premultiplied(rgb, a, grade).astype(np.float64), a[..., None]], axis=2)
    return (beauty + m[..., None] * (target - beauty)).astype(np.float32)


def wipe(a: np.ndarray, b: np.ndarray, x_split: int) -> np.ndarray:
    """``a`` left of column ``x_split`` and ``b`` from it on (a split-screen comparison); a new array."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim < 2:
        raise RecolorError(f"wipe needs two images of the same shape, got {a.shape} and {b.shape}")
    x = min(max(int(x_split), 0), a.shape[1])
    out = np.array(a, dtype=np.result_type(a, b), copy=True)
    out[:, x:] = b[:, x:]
    return out
