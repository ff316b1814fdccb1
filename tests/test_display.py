"""core.display against plain numpy reference transforms written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.display import (
    COLORMAPS,
    NAN_RGB,
    colormap_lut,
    colormap_transform,
    display_transform,
    robust_range,
)

SETTINGS = settings(max_examples=40, deadline=None)


def ref_encode(v: np.ndarray, transfer: str, gamma: float) -> np.ndarray:
    """The transfer curves from their definitions, in float64."""
    v = v.astype(np.float64)
    with np.errstate(all="ignore"):
        if transfer == "srgb":
            return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.abs(v) ** (1 / 2.4) - 0.055)
        if transfer == "gamma":
            return np.where(v > 0, np.abs(v) ** (1 / gamma), 0.0)
        return v


def ref_display(rgb, exposure, gamma, transfer, alpha=None) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    with np.errstate(all="ignore"):
        v = rgb * np.float32(2.0**exposure)  # exposure applied in float32
    e = ref_encode(v, transfer, gamma)
    code = np.floor(np.clip(np.nan_to_num(e, nan=0.0), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    out = np.empty(rgb.shape[:2] + (4,), np.uint8)
    out[..., :3] = code
    nan = np.isnan(v).any(axis=2)
    out[nan, :3] = NAN_RGB
    if alpha is None:
        out[..., 3] = 255
    else:
        a = np.asarray(alpha, np.float32)
        a8 = np.floor(np.clip(a, 0, 1) * np.float32(255) + np.float32(0.5))
        out[..., 3] = np.where(np.isnan(a), 255, a8).astype(np.uint8)
    return out


PIXELS = st.one_of(
    st.floats(-1.0, 4.0, width=32),
    st.floats(0.0, 0.015625, width=32),
    st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, 1e-30, 1e30, 0.0031308, 0.5]),
)


@st.composite
def images(draw):
    h = draw(st.integers(1, 5))
    w = draw(st.integers(1, 5))
    c = draw(st.sampled_from([None, 1, 3]))
    shape = (h, w) if c is None else (h, w, c)
    n = int(np.prod(shape))
    return np.array(draw(st.lists(PIXELS, min_size=n, max_size=n)), np.float32).reshape(shape)


@SETTINGS
@given(
    images(),
    st.floats(-8, 8),
    st.sampled_from([0.4, 1.0, 1.8, 2.2, 2.4, 5.0]),
    st.sampled_from(["srgb", "gamma", "linear"]),
)
def test_display_transform_matches_reference(rgb, exposure, gamma, transfer):
    out = display_transform(rgb, exposure=exposure, gamma=gamma, transfer=transfer)
    assert out.dtype == np.uint8 and out.shape == rgb.shape[:2] + (4,) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, ref_display(rgb, exposure, gamma, transfer))


def test_display_transform_dense_ramp_is_exact():
    # every float32 bit pattern step over [0, 2) at a coarse stride, for each curve
    v = np.arange(0x00000000, 0x40000000, 0x1001, dtype=np.uint32).view(np.float32)
    rgb = v.reshape(1, -1)
    for transfer, gamma, exposure in [("srgb", 2.2, 0.0), ("gamma", 2.2, 1.5), ("linear", 1.0, -2.25)]:
        out = display_transform(rgb, exposure=exposure, gamma=gamma, transfer=transfer)
        np.testing.assert_array_equal(out, ref_display(rgb, exposure, gamma, transfer))


def test_extreme_exposures_overflow_and_underflow_like_the_reference():
    # the product is taken in float32: it overflows to inf (255) and underflows through the
    # denormals to 0 exactly where the reference's does, for exposures up to the clamp
    v = np.arange(0x00000000, 0x7F800001, 0x7001, dtype=np.uint32).view(np.float32)
    rgb = np.stack([v, v[::-1], -v], axis=-1).reshape(1, -1, 3)
    for exposure in (-100.0, -130.0, -60.5, -20.3, 37.7, 60.0, 100.0, 250.0):
        for transfer, gamma in (("srgb", 2.2), ("gamma", 0.4), ("linear", 1.0)):
            out = display_transform(rgb, exposure=exposure, gamma=gamma, transfer=transfer)
            np.testing.assert_array_equal(out, ref_display(rgb, min(max(exposure, -100.0), 100.0), gamma, transfer))


@SETTINGS
@given(images(), st.floats(-8, 8), st.integers(1, 6), st.booleans())
def test_stride_shows_each_blocks_top_left_pixel(rgb, exposure, stride, with_alpha):
    # the quick frame is the full frame with every stride x stride block set to its top-left pixel
    alpha = np.linspace(-0.5, 1.5, rgb.shape[0] * rgb.shape[1], dtype=np.float32).reshape(rgb.shape[:2])
    alpha = alpha if with_alpha else None
    full = display_transform(rgb, exposure=exposure, alpha=alpha)
    quick = display_transform(rgb, exposure=exposure, alpha=alpha, stride=stride)
    ys = np.arange(rgb.shape[0]) // stride * stride
    xs = np.arange(rgb.shape[1]) // stride * stride
    np.testing.assert_array_equal(quick, full[ys][:, xs])
    assert quick.shape == full.shape and quick.flags.c_contiguous


@SETTINGS
@given(images(), st.integers(1, 3), st.integers(1, 4), st.tuples(*[st.integers(-2, 7)] * 4))
def test_region_is_at_stride_and_the_rest_coarse(rgb, stride, coarse, box):
    # a zoomed-in quick frame: the pixels on screen at the fine stride (blocks from the region's
    # corner), every other pixel from the coarse blocks of the whole image
    h, w = rgb.shape[:2]
    full = display_transform(rgb, exposure=0.5)
    got = display_transform(rgb, exposure=0.5, stride=stride, region=box, coarse=coarse)
    x0, y0, x1, y1 = (min(max(box[0], 0), w), min(max(box[1], 0), h), min(max(box[2], 0), w), min(max(box[3], 0), h))
    x1, y1 = max(x1, x0), max(y1, y0)
    ys = np.arange(h)
    xs = np.arange(w)
    if (x0, y0, x1, y1) == (0, 0, w, h):
        want = full[ys // stride * stride][:, xs // stride * stride]
    else:
        want = full[ys // coarse * coarse][:, xs // coarse * coarse].copy()
        fy = y0 + (np.arange(y0, y1) - y0) // stride * stride
        fx = x0 + (np.arange(x0, x1) - x0) // stride * stride
        want[y0:y1, x0:x1] = full[fy][:, fx]
    np.testing.assert_array_equal(got, want)


def test_stride_must_be_positive():
    with pytest.raises(ValueError, match="stride"):
        display_transform(np.zeros((2, 2, 3), np.float32), stride=0)
    with pytest.raises(ValueError, match="coarse"):
        display_transform(np.zeros((2, 2, 3), np.float32), region=(0, 0, 1, 1), coarse=0)


def test_known_srgb_codes():
    out = display_transform(np.array([[0.0, 0.18, 0.5, 1.0, 2.0]], np.float32))
    # sRGB(0.18) = 0.4614 -> 118, sRGB(0.5) = 0.7354 -> 188
    np.testing.assert_array_equal(out[0, :, 0], [0, 118, 188, 255, 255])
    assert (out[0, :, 3] == 255).all()


def test_special_values_are_visible():
    rgb = np.array([[[np.nan, 0, 0], [np.inf, np.inf, np.inf], [-np.inf, -1.0, 0.5]]], np.float32)
    out = display_transform(rgb, transfer="linear")
    assert tuple(out[0, 0, :3]) == NAN_RGB == (255, 0, 255)
    assert tuple(out[0, 1, :3]) == (255, 255, 255)
    assert tuple(out[0, 2, :3]) == (0, 0, 128)


def test_grey_input_and_alpha():
    grey = np.array([[0.25, 0.75]], np.float32)
    a = display_transform(grey, transfer="linear")
    b = display_transform(grey[..., None], transfer="linear")
    np.testing.assert_array_equal(a, b)
    assert (a[0, :, 0] == a[0, :, 1]).all() and (a[0, :, 1] == a[0, :, 2]).all()
    alpha = np.array([[np.nan, 0.5]], np.float32)
    out = display_transform(grey, alpha=alpha)
    np.testing.assert_array_equal(out[0, :, 3], [255, 128])


def test_out_buffer_is_reused_and_checked():
    rgb = np.zeros((2, 3, 3), np.float32)
    buf = np.full((2, 3, 4), 7, np.uint8)
    assert display_transform(rgb, out=buf) is buf
    assert (buf[..., :3] == 0).all() and (buf[..., 3] == 255).all()
    with pytest.raises(ValueError):
        display_transform(rgb, out=np.zeros((3, 2, 4), np.uint8))
    with pytest.raises(ValueError):
        display_transform(rgb, out=np.zeros((2, 3, 4), np.uint8)[:, ::-1])


def test_bad_arguments():
    rgb = np.zeros((2, 2, 3), np.float32)
    with pytest.raises(ValueError):
        display_transform(rgb, transfer="log")
    with pytest.raises(ValueError):
        display_transform(rgb, transfer="gamma", gamma=0.0)
    with pytest.raises(ValueError):
        display_transform(rgb, exposure=math.nan)
    with pytest.raises(ValueError):
        display_transform(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError):
        display_transform(rgb, alpha=np.zeros((3, 3), np.float32))


def test_non_float32_and_non_contiguous_inputs():
    rgb64 = np.linspace(0, 1, 24).reshape(2, 4, 3)
    expected = display_transform(rgb64.astype(np.float32))
    np.testing.assert_array_equal(display_transform(rgb64), expected)
    wide = np.zeros((2, 8, 3), np.float32)
    wide[:, ::2] = rgb64
    np.testing.assert_array_equal(display_transform(wide[:, ::2]), expected)


def test_empty_image():
    assert display_transform(np.zeros((0, 5, 3), np.float32)).shape == (0, 5, 4)


# --------------------------------------------------------------------------- colour maps


def test_colormap_luts_have_the_published_end_colours():
    viridis = colormap_lut("viridis")
    assert viridis.shape == (256, 3) and viridis.dtype == np.uint8
    assert tuple(viridis[0]) == (0x44, 0x01, 0x54) and tuple(viridis[-1]) == (0xFD, 0xE7, 0x25)
    inferno = colormap_lut("inferno")
    assert tuple(inferno[0]) == (0x00, 0x00, 0x04) and tuple(inferno[-1]) == (0xFC, 0xFF, 0xA4)
    assert tuple(colormap_lut("turbo")[0]) == (0x30, 0x12, 0x3B)
    with pytest.raises(ValueError):
        colormap_lut("jet")


@pytest.mark.parametrize("cmap", ["viridis", "inferno"])
def test_perceptual_maps_get_brighter(cmap):
    lut = colormap_lut(cmap).astype(np.float64) / 255
    luma = lut @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luma) > -1e-3)
    assert luma[-1] - luma[0] > 0.5


def ref_colormap(values, vmin, vmax, cmap):
    lut = colormap_lut(cmap)
    v = np.asarray(values, np.float64)
    scale = 255.0 / (vmax - vmin) if vmax > vmin else 0.0
    with np.errstate(all="ignore"):
        t = np.clip(np.nan_to_num((v - vmin) * scale, nan=0.0, posinf=255, neginf=0), 0, 255)
    idx = np.floor(t + 0.5).astype(np.int64)
    out = np.empty(v.shape + (4,), np.uint8)
    out[..., :3] = lut[idx]
    out[..., 3] = 255
    out[np.isnan(v)] = (*NAN_RGB, 255)
    out[np.isinf(v)] = (0, 0, 0, 0)
    return out


@SETTINGS
@given(
    st.lists(PIXELS, min_size=1, max_size=30),
    st.floats(-2, 2),
    st.floats(0, 5),
    st.sampled_from(COLORMAPS),
)
def test_colormap_transform_matches_reference(values, vmin, span, cmap):
    arr = np.array(values, np.float32).reshape(1, -1)
    vmax = vmin + span
    out = colormap_transform(arr, vmin, vmax, cmap)
    assert out.shape == arr.shape + (4,) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, ref_colormap(arr, vmin, vmax, cmap))


def test_colormap_rejects_non_finite_range():
    with pytest.raises(ValueError):
        colormap_transform(np.zeros((2, 2), np.float32), math.nan, 1.0)
    with pytest.raises(ValueError):
        colormap_transform(np.zeros((2, 2), np.float32), 0.0, math.inf)


def test_colormap_of_sample_counts():
    counts = np.array([[0, 5, 10]], np.uint32)
    out = colormap_transform(counts, 0, 10, "inferno")
    lut = colormap_lut("inferno")
    np.testing.assert_array_equal(out[0, :, :3], lut[[0, 128, 255]])


def test_robust_range():
    rng = np.random.default_rng(1)
    v = rng.normal(10, 2, (40, 50)).astype(np.float32)
    v[0, :10] = np.inf
    v[1, :5] = np.nan
    v[2, :3] = -np.inf
    lo, hi = robust_range(v, 1.0, 99.0)
    finite = v[np.isfinite(v)]
    assert (lo, hi) == tuple(float(x) for x in np.percentile(finite, [1.0, 99.0]))
    assert robust_range(np.full((3, 3), np.inf, np.float32)) == (0.0, 1.0)
    assert robust_range(np.array([[2.0]], np.float32)) == (2.0, 2.0)
    assert robust_range(np.array([[1, 2, 3]], np.uint32), 0, 100) == (1.0, 3.0)


def test_kept_tables_give_the_same_codes_as_fresh_ones():
    """The lookup tables are kept per transfer curve, not per exposure: interleaved tones
    still give every value the reference code, and exposure changes build no table."""
    from core.display import _code_tables

    rgb = np.random.default_rng(3).uniform(-0.1, 4.0, (7, 9, 3)).astype(np.float32)
    tones = [(e, g, t) for e in (-2.0, 0.0, 0.5, 3.25) for g, t in ((2.2, "srgb"), (1.8, "gamma"), (2.4, "gamma"),
                                                                      (1.0, "linear"))]
    _code_tables.cache_clear()
    for _ in range(2):
        for exposure, gamma, transfer in tones + tones[::-1]:
            out = display_transform(rgb, exposure=exposure, gamma=gamma, transfer=transfer)
            np.testing.assert_array_equal(out, ref_display(rgb, exposure, gamma, transfer))
    info = _code_tables.cache_info()
    assert info.misses == 4  # srgb, gamma 1.8, gamma 2.4, linear
    assert info.hits == 4 * len(tones) - info.misses
