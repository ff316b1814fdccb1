"""core.kernels against slow, obvious reference implementations written here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import SelectionError
from core.kernels import (
    associated_alpha,
    depth_order,
    flatten,
    is_depth_sorted,
    sample_count_image,
    sort_samples,
)
from core.model import Box, DeepImage, PixelType

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Depths with ties, signed zeros and non-finite values.
DEPTHS = [0.0, -0.0, 1.0, 1.0, 2.5, 3.0, -1.0, math.inf, -math.inf, math.nan, 1e-30, 7.0]


def make_image(counts, channels: dict[str, np.ndarray], width: int | None = None) -> DeepImage:
    counts = np.asarray(counts, np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    width = len(counts) if width is None else width
    height = len(counts) // width if width else 0
    box = Box(0, 0, width - 1, height - 1)
    types = {n: PixelType.UINT if a.dtype == np.uint32 else PixelType.FLOAT for n, a in channels.items()}
    return DeepImage(box, box, offsets, dict(channels), types)


@st.composite
def deep_depths(draw, with_zback: bool | None = None, big: bool = True):
    """Offsets plus Z (and maybe ZBack) with ties, NaN, inf, empty pixels, single samples."""
    counts = draw(st.lists(st.integers(0, 7), min_size=0, max_size=10))
    if big and draw(st.booleans()):
        counts.insert(draw(st.integers(0, len(counts))), draw(st.integers(17, 90)))
    n = sum(counts)
    z = np.array(draw(st.lists(st.sampled_from(DEPTHS), min_size=n, max_size=n)), np.float32)
    if with_zback is None:
        with_zback = draw(st.booleans())
    zback = None
    if with_zback:
        zback = np.array(draw(st.lists(st.sampled_from(DEPTHS), min_size=n, max_size=n)), np.float32)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, z, zback


def ref_depth_order(offsets, z, zback=None) -> np.ndarray:
    """Python's stable sorted() per pixel: Z, then ZBack, NaN last; NaN Z ignores ZBack."""

    def key(i):
        zi = float(z[i])
        if math.isnan(zi):
            return (1, 0.0, 0, 0.0)
        if zback is None:
            return (0, zi, 0, 0.0)
        zb = float(zback[i])
        return (0, zi, 1, 0.0) if math.isnan(zb) else (0, zi, 0, zb)

    out = []
    for p in range(len(offsets) - 1):
        out.extend(sorted(range(offsets[p], offsets[p + 1]), key=key))
    return np.array(out, np.int64)


# --------------------------------------------------------------------------- depth order


@SETTINGS
@given(deep_depths())
def test_depth_order_matches_stable_reference(data):
    offsets, z, zback = data
    perm = depth_order(offsets, z, zback)
    assert perm.dtype == np.int64
    np.testing.assert_array_equal(perm, ref_depth_order(offsets, z, zback))


@SETTINGS
@given(deep_depths())
def test_is_depth_sorted_agrees_with_reference(data):
    offsets, z, zback = data
    ref = ref_depth_order(offsets, z, zback)
    assert is_depth_sorted(offsets, z, zback) == bool(np.array_equal(ref, np.arange(len(z))))
    zs = z[ref]
    zbs = zback[ref] if zback is not None else None
    assert is_depth_sorted(offsets, zs, zbs)
    np.testing.assert_array_equal(depth_order(offsets, zs, zbs), np.arange(len(z)))


@SETTINGS
@given(deep_depths())
def test_depth_order_of_pixels_stored_back_to_front(data):
    # each pixel's sorted samples reversed: strictly descending pixels take the reversal path,
    # pixels with ties (equal keys, NaNs, -0 and 0) must still come out in stable order
    offsets, z, zback = data
    ref = ref_depth_order(offsets, z, zback)
    back = np.concatenate([ref[offsets[p]:offsets[p + 1]][::-1] for p in range(len(offsets) - 1)] + [ref[:0]])
    zr = z[back]
    zbr = zback[back] if zback is not None else None
    np.testing.assert_array_equal(depth_order(offsets, zr, zbr), ref_depth_order(offsets, zr, zbr))


def test_depth_order_reverses_only_without_ties():
    offsets = np.array([0, 40, 80], np.int64)
    z = np.r_[np.arange(40, 0, -1), np.arange(40, 0, -1)].astype(np.float32)
    z[41] = z[40]  # a tie in the second pixel: equal samples keep their stored order
    zback = np.zeros(80, np.float32)
    zback[40], zback[41] = 2.0, 1.0  # ... unless ZBack orders them
    for zb in (None, zback):
        perm = depth_order(offsets, z, zb)
        np.testing.assert_array_equal(perm, ref_depth_order(offsets, z, zb))
    np.testing.assert_array_equal(depth_order(offsets, z)[:40], np.arange(39, -1, -1))


def test_depth_order_big_pixel_with_many_ties_is_stable():
    rng = np.random.default_rng(7)
    counts = [300, 0, 1, 65, 2]
    n = sum(counts)
    z = rng.integers(0, 5, n).astype(np.float32)
    z[rng.random(n) < 0.05] = np.nan
    zback = rng.integers(0, 3, n).astype(np.float32)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    for zb in (None, zback):
        np.testing.assert_array_equal(depth_order(offsets, z, zb), ref_depth_order(offsets, z, zb))


def test_signed_zero_ties_keep_stored_order():
    offsets = np.array([0, 3], np.int64)
    z = np.array([0.0, -0.0, 0.0], np.float32)
    np.testing.assert_array_equal(depth_order(offsets, z), [0, 1, 2])
    assert is_depth_sorted(offsets, z)


def test_depth_order_rejects_bad_shapes():
    with pytest.raises(ValueError):
        depth_order(np.array([0, 3], np.int64), np.zeros(2, np.float32))
    with pytest.raises(ValueError):
        depth_order(np.array([0, 3], np.int32), np.zeros(3, np.float32))


def test_depth_order_of_empty_images():
    assert depth_order(np.zeros(1, np.int64), np.zeros(0, np.float32)).shape == (0,)
    assert depth_order(np.zeros(5, np.int64), np.zeros(0, np.float32)).shape == (0,)
    assert is_depth_sorted(np.zeros(5, np.int64), np.zeros(0, np.float32))


def test_branch_free_order_predicate_equals_the_branching_one():
    # flatten's chunk check and 1-3-sample ranks use _in_order_flag, the sorts _in_order: the two
    # must define the same order on every pair of special depths, with and without ZBack
    import itertools

    from core.kernels import _in_order, _in_order_flag

    values = [np.float32(v) for v in (-math.inf, -1.0, -0.0, 0.0, 1e-30, 1.0, 2.5, math.inf, math.nan)]
    for zp, zc, zbp, zbc in itertools.product(values, repeat=4):
        for has_zback in (True, False):
            assert bool(_in_order_flag(zp, zc, zbp, zbc, has_zback)) == bool(_in_order(zp, zc, zbp, zbc, has_zback)), (
                zp, zc, zbp, zbc, has_zback)


def test_is_depth_sorted_over_chunks_ignores_steps_between_pixels():
    # every pixel in order but starting in front of where the previous one ended, empty
    # pixels everywhere (also at chunk ends); then one pixel out of order deep in chunk 3
    rng = np.random.default_rng(2)
    npix = 3 * 2048 + 500
    counts = rng.integers(0, 4, npix)
    counts[2047::2048] = 0
    counts[2048] = 0
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    n = int(offsets[-1])
    pix = np.repeat(np.arange(npix), counts)
    z = (np.arange(n) - offsets[pix] + 100.0 - pix * 0.01).astype(np.float32)
    zback = z.copy()
    assert is_depth_sorted(offsets, z, zback) and is_depth_sorted(offsets, z)
    np.testing.assert_array_equal(depth_order(offsets, z, zback), np.arange(n))
    p = 2 * 2048 + 700 + int(np.argmax(counts[2 * 2048 + 700 :] >= 2))
    bad = z.copy()
    a = offsets[p]
    bad[a], bad[a + 1] = bad[a + 1], bad[a]
    assert not is_depth_sorted(offsets, bad, zback)
    np.testing.assert_array_equal(depth_order(offsets, bad, zback), ref_depth_order(offsets, bad, zback))
    tie = z.copy()  # equal Z: ZBack decides
    tie[offsets[p] + 1] = tie[offsets[p]]
    zb = zback.copy()
    zb[offsets[p]] = zb[offsets[p] + 1] + 1.0
    assert is_depth_sorted(offsets, tie) and not is_depth_sorted(offsets, tie, zb)


@SETTINGS
@given(deep_depths())
def test_sort_samples_permutes_every_channel(data):
    offsets, z, zback = data
    n = len(z)
    counts = np.diff(offsets)
    channels = {"Z": z, "R": np.arange(n, dtype=np.float32) * 0.5, "id": np.arange(n, dtype=np.uint32) + 7}
    if zback is not None:
        channels["ZBack"] = zback
    image = make_image(counts, channels)
    out = sort_samples(image)
    ref = ref_depth_order(offsets, z, zback)
    if np.array_equal(ref, np.arange(n)):
        assert out is image
    else:
        assert out is not image
        assert out.offsets is image.offsets
        for name, arr in image.channels.items():
            assert out.channels[name].dtype == arr.dtype
            np.testing.assert_array_equal(out.channels[name].view(np.uint32), arr[ref].view(np.uint32))
        assert out.pixel_types == image.pixel_types
        # the input is not modified
        np.testing.assert_array_equal(image.channels["id"], np.arange(n, dtype=np.uint32) + 7)


def test_sort_samples_without_z_returns_the_image():
    image = make_image([2, 1], {"A": np.array([0.5, 0.2, 0.1], np.float32)})
    assert sort_samples(image) is image


def test_sample_count_image():
    counts = [0, 3, 1, 0, 2, 5]
    image = make_image(counts, {"Z": np.zeros(11, np.float32)}, width=3)
    out = sample_count_image(image)
    assert out.dtype == np.uint32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, [[0, 3, 1], [0, 2, 5]])


# --------------------------------------------------------------------------- alpha association


def test_associated_alpha_follows_the_openexr_table():
    # The example table of "Interpreting OpenEXR Deep Pixels".
    names = ["A", "AR", "AG", "R", "Z", "L1.A", "L1.AR", "L1.R", "L1.G", "L1.L2.G"]
    assert associated_alpha("A", names) is None
    assert associated_alpha("AR", names) is None
    assert associated_alpha("Z", names) is None
    assert associated_alpha("R", names) == "AR"
    assert associated_alpha("L1.R", names) == "L1.AR"
    assert associated_alpha("L1.G", names) == "L1.A"
    assert associated_alpha("L1.L2.G", names) == "L1.A"
    assert associated_alpha("B", ["A", "AR", "B"]) == "A"
    assert associated_alpha("diffuse.R", ["A", "R", "diffuse.R"]) == "A"
    assert associated_alpha("L2.Z", ["A", "Z", "L2.Z"]) == "A"  # only the base Z is a depth channel
    assert associated_alpha("R", ["R", "G"]) is None


# --------------------------------------------------------------------------- flatten (plain)


def ref_flatten(image: DeepImage, names: list[str]) -> dict[str, np.ndarray]:
    """Per-pixel float32 loop, written from the documented rules."""
    with np.errstate(all="ignore"):
        return _ref_flatten(image, names)


def _ref_flatten(image: DeepImage, names: list[str]) -> dict[str, np.ndarray]:
    one = np.float32(1.0)
    ch = image.channels
    npix = image.width * image.height
    out = {}
    for name in names:
        arr = ch[name]
        res = np.zeros(npix, np.uint32 if arr.dtype == np.uint32 else np.float32)
        alpha_name = None if name in ("Z", "ZBack") else associated_alpha(name, ch)
        is_alpha = name.rpartition(".")[2] in ("A", "AR", "AG", "AB")
        depth_alpha = ch.get("A")
        for p in range(npix):
            a0, a1 = int(image.offsets[p]), int(image.offsets[p + 1])
            acc = np.float32(0.0)
            if name in ("Z", "ZBack"):
                front = back = np.float32(np.inf)
                found = False
                for s in range(a0, a1):
                    al = abs(depth_alpha[s]) if depth_alpha is not None else one
                    if al > 0:
                        if not found:
                            front, found = ch["Z"][s], True
                        back = ch["Z"][s]
                        if "ZBack" in ch and ch["ZBack"][s] > back:
                            back = ch["ZBack"][s]
                    acc = acc + (one - acc) * al
                    if acc >= one:
                        break
                res[p] = front if name == "Z" else back
            elif arr.dtype == np.uint32:
                for s in range(a0, a1):
                    al = abs(ch[alpha_name][s]) if alpha_name else one
                    if al > 0:
                        res[p] = arr[s]
                        break
            else:
                value = np.float32(0.0)
                for s in range(a0, a1):
                    if is_alpha:
                        al = abs(arr[s])
                    else:
                        al = abs(ch[alpha_name][s]) if alpha_name else one
                    w = one - acc
                    value = value + w * arr[s]
                    acc = acc + w * al
                    if acc >= one:
                        break
                res[p] = acc if is_alpha else value
        out[name] = res.reshape(image.height, image.width)
    return out


VALUES = st.one_of(
    st.floats(-0.25, 1.5, width=32),
    st.sampled_from([0.0, 1.0, 0.5, math.nan, math.inf, -math.inf]),
)
ALPHAS = st.one_of(
    st.floats(-1.0, 1.0, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 1.0, math.nan]),
)


def draw_channels(draw, n: int, droppable: list[str]) -> dict[str, np.ndarray]:
    """n samples of colours, alphas (base, layer L1 and AR), depths with ties, NaN and -0, and
    ids; a drawn subset of ``droppable`` left out."""
    f32 = lambda s: np.array(draw(st.lists(s, min_size=n, max_size=n)), np.float32)  # noqa: E731
    channels = {
        "R": f32(VALUES),
        "G": f32(VALUES),
        "A": f32(ALPHAS),
        "Z": f32(st.sampled_from(DEPTHS)),
        "ZBack": f32(st.sampled_from(DEPTHS)),
        "L1.A": f32(ALPHAS),
        "L1.X": f32(VALUES),
        "L1.L2.Y": f32(VALUES),
        "AR": f32(ALPHAS),
        "id": np.array(draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n)), np.uint32),
    }
    for name in draw(st.sets(st.sampled_from(droppable))):
        del channels[name]
    return channels


@st.composite
def flat_cases(draw):
    counts = draw(st.lists(st.integers(0, 6), min_size=1, max_size=12))
    channels = draw_channels(draw, sum(counts), ["A", "ZBack", "AR", "L1.A"])
    return sort_samples(make_image(counts, channels))


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


@SETTINGS
@given(flat_cases())
def test_flatten_matches_reference(image):
    names = list(image.channels)
    result = flatten(image, names)
    ref = ref_flatten(image, names)
    assert list(result) == names
    for name in names:
        assert_same(result[name], ref[name])


@SETTINGS
@given(flat_cases())
def test_flatten_default_skips_ids_and_sort_option_matches_sorted_copy(image):
    result = flatten(image)
    assert set(result) == {n for n, a in image.channels.items() if a.dtype != np.uint32}
    # shuffle the samples inside each pixel, then flatten(sort=True) must give the same
    rng = np.random.default_rng(3)
    perm = np.concatenate(
        [a + rng.permutation(b - a) for a, b in zip(image.offsets[:-1], image.offsets[1:], strict=True)]
        + [np.zeros(0, np.int64)]
    ).astype(np.int64)
    shuffled = DeepImage(
        image.data_window, image.display_window, image.offsets,
        {n: a[perm] for n, a in image.channels.items()}, image.pixel_types,
    )  # fmt: skip
    resorted = sort_samples(shuffled)
    expected = flatten(resorted)
    got = flatten(shuffled, sort=True)
    for name in expected:
        assert_same(got[name], expected[name])


def stored_in(image: DeepImage, order: np.ndarray) -> DeepImage:
    """The image with its samples stored in ``order`` (a permutation inside each pixel)."""
    channels = {n: np.ascontiguousarray(a[order]) for n, a in image.channels.items()}
    return DeepImage(image.data_window, image.display_window, image.offsets, channels, dict(image.pixel_types))


def pixel_orders(offsets, ref: np.ndarray, modes, rng) -> np.ndarray:
    """Per pixel, from its depth order ``ref``: kept (in order), reversed or shuffled."""
    parts = [np.zeros(0, np.int64)]
    for p, mode in enumerate(modes):
        own = ref[offsets[p] : offsets[p + 1]]
        parts.append(own if mode == 0 else own[::-1] if mode == 1 else rng.permutation(own))
    return np.concatenate(parts).astype(np.int64)


def assert_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@st.composite
def unsorted_cases(draw):
    """Samples with ties, NaN and -0 depths, stored per pixel in order, back to front or
    shuffled; pixels of 0-7 samples, maybe one of 9-90 (insertion, rank and merge sorts);
    one alpha group (the ordering inside the over) or several (through depth_order)."""
    counts = draw(st.lists(st.integers(0, 7), min_size=1, max_size=12))
    if draw(st.booleans()):
        counts.insert(draw(st.integers(0, len(counts))), draw(st.integers(9, 90)))
    channels = draw_channels(draw, sum(counts), ["A", "ZBack", "AR", "L1.A", "L1.X", "L1.L2.Y", "G"])
    image = make_image(counts, channels)
    ref = ref_depth_order(image.offsets, channels["Z"], channels.get("ZBack"))
    modes = draw(st.lists(st.integers(0, 2), min_size=len(counts), max_size=len(counts)))
    order = pixel_orders(image.offsets, ref, modes, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    return stored_in(image, order)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unsorted_cases())
def test_flatten_sort_of_any_stored_order_equals_the_sorted_image(image):
    # bit for bit: the same samples composited in the same order, ids included
    names = list(image.channels)
    ch = image.channels
    ordered = stored_in(image, ref_depth_order(image.offsets, ch["Z"], ch.get("ZBack")))
    got = flatten(image, names, sort=True)
    want = flatten(ordered, names)
    ref = ref_flatten(ordered, names)
    assert list(got) == names
    for name in names:
        assert_bits(got[name], want[name])
        assert_same(got[name], ref[name])


def test_flatten_sort_of_every_small_pixel_equals_the_sorted_image():
    # every pixel of 1-3 samples over depths with ties, -0, NaN and ZBack ties (those are
    # ranked without a branch): the composite equals the sorted image's bit for bit, and
    # unique colours with alpha 0.5 make any other order change it
    import itertools

    depths = [(1.0, 1.0), (1.0, 2.0), (-0.0, 0.5), (0.0, 0.5), (math.nan, 3.0), (1.0, math.nan), (2.0, 2.0)]
    pixels = [combo for n in (1, 2, 3) for combo in itertools.product(depths, repeat=n)]
    counts = [len(c) for c in pixels]
    flat = [s for c in pixels for s in c]
    n = len(flat)
    channels = {
        "R": np.arange(1, n + 1, dtype=np.float32),
        "A": np.full(n, 0.5, np.float32),
        "Z": np.array([s[0] for s in flat], np.float32),
        "ZBack": np.array([s[1] for s in flat], np.float32),
    }
    image = make_image(counts, channels)
    for zback in (True, False):
        chans = dict(channels) if zback else {k: v for k, v in channels.items() if k != "ZBack"}
        img = make_image(counts, chans)
        order = ref_depth_order(img.offsets, chans["Z"], chans.get("ZBack"))
        names = list(chans)
        got = flatten(img, names, sort=True)
        want = flatten(stored_in(img, order), names)
        for name in names:
            assert_bits(got[name], want[name])
    assert image.total_samples == n


def _volume_scene(npix: int, seed: int):
    """Offsets and channels of a benchmark-like scene over several chunks: surface pixels of
    1-3 samples, volume runs of 30-60 and 65-120 samples, empty pixels; half the pixels with
    ties in Z (ordered by ZBack), half without (stored back to front, they are reversed), a
    few NaN Z, -0.0; samples stored in depth order."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 4, npix)
    vol = rng.random(npix) < 0.05
    counts[vol] = rng.integers(30, 61, int(vol.sum()))
    counts[rng.random(npix) < 0.01] = rng.integers(65, 121)
    counts[rng.random(npix) < 0.03] = 0
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    n = int(offsets[-1])
    pix = np.repeat(np.arange(npix), counts)
    ties = (rng.random(npix) < 0.5)[pix]  # half the pixels with many equal Z, half with none
    z = np.where(ties, rng.integers(0, 40, n), rng.permutation(n)).astype(np.float32) * np.float32(0.25)
    z[rng.random(n) < 0.01] = np.nan
    z[rng.random(n) < 0.01] = -0.0
    zback = z + rng.integers(0, 3, n).astype(np.float32)
    zback[rng.random(n) < 0.01] = np.nan
    alpha = rng.uniform(0.0, 0.4, n).astype(np.float32)
    alpha[rng.random(n) < 0.05] = 1.0
    alpha[rng.random(n) < 0.05] = 0.0
    channels = {"R": rng.random(n, dtype=np.float32), "G": rng.random(n, dtype=np.float32),
                "B": rng.random(n, dtype=np.float32), "A": alpha, "Z": z, "ZBack": zback,
                "id": rng.integers(0, 2**32, n, dtype=np.uint32)}  # fmt: skip
    image = make_image(counts, channels, width=100)
    return stored_in(image, ref_depth_order(offsets, z, zback))


@pytest.mark.parametrize("stored", ["in order", "back to front", "random", "a few pixels"])
def test_flatten_sort_over_many_chunks_equals_the_sorted_image(stored, monkeypatch):
    from core import kernels

    ordered = _volume_scene(7300, seed=11)  # 4 chunks of pixels, the last one partial
    offsets = ordered.offsets
    npix = offsets.shape[0] - 1
    rng = np.random.default_rng(5)
    modes = {"in order": np.zeros(npix, int), "back to front": np.ones(npix, int),
             "random": np.full(npix, 2)}.get(stored)  # fmt: skip
    if modes is None:  # most chunks untouched, a few pixels reordered in the others
        modes = np.zeros(npix, int)
        modes[rng.choice(npix // 3, 20, replace=False)] = rng.integers(1, 3, 20)
    image = stored_in(ordered, pixel_orders(offsets, np.arange(offsets[-1]), modes, rng))
    assert is_depth_sorted(offsets, image.channels["Z"], image.channels["ZBack"]) == (stored == "in order")

    def no_permutation(*args, **kwargs):
        raise AssertionError("one alpha group: flatten(sort=True) must not build depth_order")

    names = list(image.channels)
    # the stable sort keeps samples of equal (Z, ZBack) in their stored order
    ch = image.channels
    resorted = stored_in(image, ref_depth_order(offsets, ch["Z"], ch["ZBack"]))
    want = flatten(resorted, names)
    monkeypatch.setattr(kernels, "depth_order", no_permutation)
    got = flatten(image, names, sort=True)
    for name in names:
        assert_bits(got[name], want[name])
    monkeypatch.undo()
    # several alpha groups go through depth_order: the same result
    several = DeepImage(image.data_window, image.display_window, offsets,
                        {**ch, "AR": ch["A"] * np.float32(0.5)}, image.pixel_types)  # fmt: skip
    resorted_several = DeepImage(image.data_window, image.display_window, offsets,
                                 {**resorted.channels, "AR": resorted.channels["A"] * np.float32(0.5)},
                                 image.pixel_types)  # fmt: skip
    got = flatten(several, names + ["AR"], sort=True)
    want = flatten(resorted_several, names + ["AR"])
    for name in names + ["AR"]:
        assert_bits(got[name], want[name])


def test_flatten_hand_computed_pixel():
    # front to back: (R .2, A .5), (R .3, A .5), (R 9, A 1), (R 5, A .5) never reached
    image = make_image(
        [4, 0],
        {
            "R": np.array([0.2, 0.3, 9.0, 5.0], np.float32),
            "A": np.array([0.5, -0.5, 1.0, 0.5], np.float32),
            "Z": np.array([1.0, 2.0, 3.0, 4.0], np.float32),
            "ZBack": np.array([1.0, 2.5, 3.5, 4.0], np.float32),
        },
    )
    out = flatten(image)
    assert out["R"][0, 0] == pytest.approx(0.2 + 0.5 * 0.3 + 0.25 * 9.0)
    assert out["A"][0, 0] == 1.0
    assert out["Z"][0, 0] == 1.0 and out["ZBack"][0, 0] == 3.5
    assert out["R"][0, 1] == 0 and out["A"][0, 1] == 0
    assert np.isinf(out["Z"][0, 1]) and np.isinf(out["ZBack"][0, 1])


def test_flatten_ids_and_channels_without_alpha():
    image = make_image(
        [3, 1],
        {
            "A": np.array([0.0, 0.4, 0.9, 0.0], np.float32),
            "id": np.array([5, 6, 7, 8], np.uint32),
            "Z": np.array([1, 2, 3, 4], np.float32),
        },
    )
    out = flatten(image, ["id", "Z"])
    np.testing.assert_array_equal(out["id"], [[6, 0]])
    np.testing.assert_array_equal(out["Z"], [[2.0, np.inf]])
    # no alpha at all: a channel is treated as opaque, the front sample shows
    bare = make_image([2, 0], {"X": np.array([3.0, 4.0], np.float32), "Z": np.array([1, 2], np.float32)})
    out = flatten(bare)
    np.testing.assert_array_equal(out["X"], [[3.0, 0.0]])
    np.testing.assert_array_equal(out["Z"], [[1.0, np.inf]])


def test_flatten_unknown_channel_is_a_selection_error():
    image = make_image([1], {"A": np.array([0.5], np.float32)})
    with pytest.raises(SelectionError, match="nope"):
        flatten(image, ["nope"])


def test_flatten_empty_image():
    box = Box(0, 0, -1, -1)
    image = DeepImage(box, box, np.zeros(1, np.int64), {"A": np.zeros(0, np.float32)}, {})
    out = flatten(image)
    assert out["A"].shape == (0, 0)


def _load_deepalpha() -> DeepImage:
    path = TESTDATA / "deep" / "oiio" / "deepalpha.exr"
    if not path.exists():
        pytest.skip(f"shared testdata not found at {TESTDATA}")
    try:
        from core.exr_read import open_exr
    except ImportError:
        open_exr = None
    if open_exr is not None:
        return open_exr(str(path)).parts[0].image
    import OpenEXR

    part = OpenEXR.File(str(path)).parts[0]
    (x0, y0), (x1, y1) = part.header["dataWindow"]
    w, h = int(x1 - x0 + 1), int(y1 - y0 + 1)
    channels = {}
    counts = None
    for name in ("A", "Z"):
        pix = part.channels[name].pixels.reshape(-1)
        arrays = [np.zeros(0, np.float32) if p is None else np.asarray(p, np.float32) for p in pix]
        counts = np.array([len(a) for a in arrays], np.int64)
        channels[name] = np.concatenate(arrays)
    image = make_image(counts, channels, width=w)
    assert image.height == h
    return sort_samples(image)


def test_flatten_deepalpha_matches_openimageio_reference():
    import OpenEXR

    image = _load_deepalpha()
    assert image.total_samples == 28846  # OIIO's stats for this file
    ref_path = TESTDATA / "deep" / "oiio" / "deepalpha_flatten.ref.exr"
    ref_a = np.asarray(OpenEXR.File(str(ref_path)).parts[0].channels["A"].pixels, np.float32)
    out = flatten(image, ["A", "Z"])
    assert out["A"].shape == ref_a.shape == (120, 160)
    np.testing.assert_allclose(out["A"], ref_a, rtol=0, atol=1e-6)
    counts = sample_count_image(image)
    assert counts.max() == 22 and counts[64, 104] == 22
    assert np.all(np.isinf(out["Z"][counts == 0]))
    # OIIO's stats (taken after conversion to half): min depth 3.03125 at (159, 56)
    assert np.float16(out["Z"].min()) == np.float16(3.03125)
    assert np.float16(out["Z"][56, 159]) == np.float16(3.03125)


# --------------------------------------------------------------------------- flatten (split volumes)


def _split_piece(a, cs, zf, zb, z):
    """The doc's splitVolumeSample: (front alpha, front colours), (back alpha, back colours)."""
    a = min(max(a, 0.0), 1.0)
    if a == 1.0:
        return (1.0, list(cs)), (1.0, list(cs))
    xf = (z - zf) / (zb - zf)
    xb = (zb - z) / (zb - zf)
    if a > 0.0:
        af = -math.expm1(xf * math.log1p(-a))
        ab = -math.expm1(xb * math.log1p(-a))
        return (af, [c * af / a for c in cs]), (ab, [c * ab / a for c in cs])
    return (0.0, [c * xf for c in cs]), (0.0, [c * xb for c in cs])


def _merge_two(s1, s2):
    """The doc's mergeOverlappingSamples, with a weight so that merging several opaque
    pieces one pair at a time averages all of their colours."""
    a1, c1, n1 = s1
    a2, c2, n2 = s2
    am = a1 + a2 - a1 * a2
    if a1 == 1.0 and a2 == 1.0:
        return 1.0, [(x * n1 + y * n2) / (n1 + n2) for x, y in zip(c1, c2, strict=True)], n1 + n2
    if a1 == 1.0:
        return 1.0, c1, n1
    if a2 == 1.0:
        return 1.0, c2, n2
    u1 = -math.log1p(-a1)
    v1 = u1 / a1 if a1 > 0 else 1.0
    u2 = -math.log1p(-a2)
    v2 = u2 / a2 if a2 > 0 else 1.0
    u = u1 + u2
    w = am / u if u > 0 else 1.0
    return am, [(x * v1 + y * v2) * w for x, y in zip(c1, c2, strict=True)], 1


def ref_tidy_flatten(samples, n_col):
    """Make a pixel tidy exactly as the OpenEXR document describes, then composite.

    samples: list of [z, zback, alpha, [colours]]."""
    s = [
        [float(z), max(float(zb), float(z)), min(abs(float(a)), 1.0), [float(c) for c in cs]]
        for z, zb, a, cs in samples
    ]
    changed = True
    while changed:  # 1. split partially overlapping samples
        changed = False
        for i in range(len(s)):
            for j in range(len(s)):
                zj, bj = s[j][0], s[j][1]
                if bj <= zj:
                    continue
                cut = None
                if zj < s[i][0] < bj:
                    cut = s[i][0]
                elif s[i][1] > s[i][0] and zj < s[i][1] < bj:
                    cut = s[i][1]
                if cut is not None:
                    (af, cf), (ab, cb) = _split_piece(s[j][2], s[j][3], zj, bj, cut)
                    s[j] = [zj, cut, af, cf]
                    s.append([cut, bj, ab, cb])
                    changed = True
                    break
            if changed:
                break
    groups = {}  # 2. merge perfectly overlapping samples
    for z, b, a, cs in s:
        key = (z, b)
        if key in groups:
            groups[key] = _merge_two(groups[key], (a, cs, 1))
        else:
            groups[key] = (a, cs, 1)
    acc = 0.0  # 3. sort, composite
    out = [0.0] * n_col
    for key in sorted(groups):
        a, cs, _ = groups[key]
        for k in range(n_col):
            out[k] += (1 - acc) * cs[k]
        acc += (1 - acc) * a
    return acc, out


@st.composite
def volume_pixels(draw):
    counts = draw(st.lists(st.integers(0, 6), min_size=1, max_size=6))
    zs, zbs, als, rs, gs = [], [], [], [], []
    grid = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]
    for count in counts:
        pixel = []
        for _ in range(count):
            z = draw(st.sampled_from(grid))
            thick = draw(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5, 3.0]))
            a = draw(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 0.5])))
            if draw(st.booleans()):
                a = -a  # PRMan's volume marker
            pixel.append((z, z + thick, a, draw(st.floats(0, 2)), draw(st.floats(0, 2))))
        pixel.sort(key=lambda t: (t[0], t[1]))
        for z, zb, a, r, g in pixel:
            zs.append(z)
            zbs.append(zb)
            als.append(a)
            rs.append(r)
            gs.append(g)
    f = lambda v: np.array(v, np.float32)  # noqa: E731
    return make_image(counts, {"R": f(rs), "G": f(gs), "A": f(als), "Z": f(zs), "ZBack": f(zbs)})


@settings(max_examples=150, deadline=None)
@given(volume_pixels())
def test_split_volumes_matches_the_documented_procedure(image):
    out = flatten(image, ["R", "G", "A"], split_volumes=True)
    # the same samples stored in reverse order, composited through depth_order
    rev = np.concatenate(
        [np.arange(b - 1, a - 1, -1) for a, b in zip(image.offsets[:-1], image.offsets[1:], strict=True)]
    ).astype(np.int64)
    shuffled = make_image(np.diff(image.offsets), {n: a[rev] for n, a in image.channels.items()})
    out_sorted = flatten(shuffled, ["R", "G", "A"], split_volumes=True, sort=True)
    ch = image.channels
    for p in range(image.width):
        a0, a1 = int(image.offsets[p]), int(image.offsets[p + 1])
        samples = [(ch["Z"][s], ch["ZBack"][s], ch["A"][s], (ch["R"][s], ch["G"][s])) for s in range(a0, a1)]
        acc, (r, g) = ref_tidy_flatten(samples, 2)
        for result in (out, out_sorted):
            assert result["A"][0, p] == pytest.approx(acc, rel=1e-5, abs=1e-6)
            assert result["R"][0, p] == pytest.approx(r, rel=1e-4, abs=1e-5)
            assert result["G"][0, p] == pytest.approx(g, rel=1e-4, abs=1e-5)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans(), st.floats(0.0, 1.0)), min_size=1, max_size=8))
def test_split_volumes_equals_plain_flatten_when_nothing_overlaps(spec):
    # one pixel of back-to-back segments: volumes [z, z+1) or points at z, never overlapping
    zs, zbs, als = [], [], []
    z = 0.0
    for gap, volume, a in spec:
        z += gap + 1.0
        zs.append(z)
        zbs.append(z + 1.0 if volume else z)
        als.append(a)
        z += 1.0
    n = len(zs)
    f = lambda v: np.array(v, np.float32)  # noqa: E731
    image = make_image([n], {"R": f(np.linspace(0, 1, n)), "A": f(als), "Z": f(zs), "ZBack": f(zbs)})
    plain = flatten(image)
    split = flatten(image, split_volumes=True)
    for name in plain:
        assert_same(split[name], plain[name])


def test_split_of_two_coincident_volumes_is_twice_the_density():
    a, c = 0.3, 0.6
    image = make_image(
        [2],
        {
            "R": np.array([c, c], np.float32),
            "A": np.array([a, a], np.float32),
            "Z": np.array([1.0, 1.0], np.float32),
            "ZBack": np.array([2.0, 2.0], np.float32),
        },
    )
    out = flatten(image, split_volumes=True)
    merged = 1 - (1 - a) ** 2
    assert out["A"][0, 0] == pytest.approx(merged, rel=1e-6)
    assert out["R"][0, 0] == pytest.approx(c * merged / a, rel=1e-6)
    # the plain over of the same samples differs: it treats them as one behind the other
    assert flatten(image)["R"][0, 0] == pytest.approx(c + (1 - a) * c)


def test_split_opaque_point_inside_a_volume_hides_its_back_half():
    a, c = 0.5, 0.8
    image = make_image(
        [2],
        {
            "R": np.array([c, 0.0], np.float32),
            "A": np.array([a, 1.0], np.float32),
            "Z": np.array([0.0, 1.0], np.float32),
            "ZBack": np.array([2.0, 1.0], np.float32),
        },
    )
    out = flatten(image, split_volumes=True)
    front = 1 - (1 - a) ** 0.5
    assert out["A"][0, 0] == 1.0
    assert out["R"][0, 0] == pytest.approx(c * front / a, rel=1e-6)


def test_split_coincident_opaque_pieces_average_their_colours():
    image = make_image(
        [3],
        {
            "R": np.array([1.0, 2.0, 6.0], np.float32),
            "A": np.array([1.0, 1.0, 1.0], np.float32),
            "Z": np.array([1.0, 1.0, 1.0], np.float32),
        },
    )
    out = flatten(image, split_volumes=True)
    assert out["R"][0, 0] == pytest.approx(3.0)
    assert out["A"][0, 0] == 1.0


def test_split_keeps_plain_result_for_non_finite_depths():
    image = make_image(
        [2],
        {
            "R": np.array([1.0, 2.0], np.float32),
            "A": np.array([0.5, 0.5], np.float32),
            "Z": np.array([1.0, 1.0], np.float32),
            "ZBack": np.array([np.inf, 3.0], np.float32),
        },
    )
    plain = flatten(image)
    split = flatten(image, split_volumes=True)
    for name in plain:
        assert_same(split[name], plain[name])


@pytest.mark.parametrize("n", [0, 1, 2, 31, 32, 33, 64, 257])
def test_boundary_sort_matches_numpy(n):
    """The split-volume boundary sort: insertion sort up to 32 values, heap sort above."""
    from core.kernels import _sort_f64

    rng = np.random.default_rng(n)
    v = np.concatenate([rng.standard_normal(n), rng.integers(-3, 3, 5).astype(np.float64)])
    tail = v[n:].copy()
    want = np.sort(v[:n])
    _sort_f64(v, n)
    np.testing.assert_array_equal(v[:n], want)
    np.testing.assert_array_equal(v[n:], tail)
