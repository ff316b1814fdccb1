"""app.render (no Qt): frames for every view mode, pixel profiles and readouts, checked against
slow obvious reference computations on small synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from app.render import RenderRequest, Tone, View, pixel_profile, readout_text, render_frame
from core.errors import Cancelled
from core.model import Box, DeepImage
from tests.gui.helpers import make_deep, make_flat

KEY = ("/x.exr", 1.0, 0)


def reference_over(image: DeepImage, names):
    """Front-to-back over of each pixel, one sample at a time, in float32."""
    h, w = image.height, image.width
    out = {n: np.zeros((h, w), np.float32) for n in names}
    acc_img = np.zeros((h, w), np.float32)
    a = image.channels["A"]
    for i in range(h * w):
        y, x = divmod(i, w)
        acc = np.float32(0)
        vals = {n: np.float32(0) for n in names}
        for s in range(image.offsets[i], image.offsets[i + 1]):
            for n in names:
                vals[n] += (np.float32(1) - acc) * image.channels[n][s]
            acc += (np.float32(1) - acc) * np.float32(abs(a[s]))
        for n in names:
            out[n][y, x] = vals[n]
        acc_img[y, x] = acc
    return out, acc_img


def reference_front_z(image: DeepImage):
    h, w = image.height, image.width
    out = np.full((h, w), np.inf, np.float32)
    for i in range(h * w):
        for s in range(image.offsets[i], image.offsets[i + 1]):
            if abs(image.channels["A"][s]) > 0:
                out[divmod(i, w)] = image.channels["Z"][s]
                break
    return out


def linear_8bit(v, exposure=0.0):
    return np.floor(np.clip(v * np.float32(2.0 ** exposure), 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def deep():
    counts = np.array([[0, 1, 2, 5], [3, 0, 1, 4], [2, 2, 0, 1]])
    return make_deep(counts, rng=np.random.default_rng(7), with_zback=False,
                     data_window=Box(10, 20, 13, 22), display_window=Box(0, 0, 31, 31))


def test_color_view_of_deep_part_is_the_over_composite(deep):
    tone = Tone(exposure=1.0, transfer="linear")
    result = render_frame(RenderRequest(KEY, deep, View("color"), tone))
    frame = result.frame
    ref, _ = reference_over(deep, "RGB")
    assert list(frame.values) == ["R", "G", "B"]
    for c in "RGB":
        np.testing.assert_allclose(frame.values[c], ref[c], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(frame.rgba[..., "RGB".index(c)], linear_8bit(frame.values[c], 1.0))
    assert (frame.rgba[..., 3] == 255).all()
    assert frame.rgba.shape == (3, 4, 4) and frame.rgba.dtype == np.uint8
    assert frame.data_window == deep.data_window and frame.display_window == deep.display_window
    assert result.part_data.counts is not None


def test_srgb_transfer_matches_the_standard_curve(deep):
    frame = render_frame(RenderRequest(KEY, deep, View("color"), Tone())).frame
    v = np.clip(frame.values["G"].astype(np.float64), 0, 1)
    srgb = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    assert np.abs(frame.rgba[..., 1].astype(int) - np.floor(srgb * 255 + 0.5)).max() <= 1


def test_alpha_depth_and_sample_views(deep):
    _, acc = reference_over(deep, "R")
    tone = Tone(transfer="linear")
    alpha = render_frame(RenderRequest(KEY, deep, View("alpha"), tone)).frame
    np.testing.assert_allclose(alpha.values["A"], acc, rtol=1e-5)
    np.testing.assert_array_equal(alpha.rgba[..., 0], linear_8bit(alpha.values["A"]))

    depth = render_frame(RenderRequest(KEY, deep, View("depth"), tone)).frame
    np.testing.assert_array_equal(depth.values["Z"], reference_front_z(deep))
    empty = deep.sample_counts() == 0
    assert (depth.rgba[..., 3][empty] == 0).all()  # no sample: transparent
    assert (depth.rgba[..., 3][~empty] == 255).all()
    lo, hi = depth.value_range
    finite = depth.values["Z"][np.isfinite(depth.values["Z"])]
    assert finite.min() <= lo <= hi <= finite.max()

    samples = render_frame(RenderRequest(KEY, deep, View("samples"), tone)).frame
    counts = np.diff(deep.offsets).reshape(deep.height, deep.width)
    np.testing.assert_array_equal(samples.values["samples"], counts)
    assert samples.value_range == (0.0, float(counts.max()))
    # same count, same colour; no samples and the most samples differ
    flat_rgba = samples.rgba.reshape(-1, 4)
    for c in np.unique(counts):
        assert len({tuple(p) for p in flat_rgba[counts.ravel() == c]}) == 1
    assert tuple(flat_rgba[counts.argmin()]) != tuple(flat_rgba[counts.argmax()])


def test_cached_part_data_is_reused(deep):
    first = render_frame(RenderRequest(KEY, deep, View("color"), Tone()))
    marker = first.part_data
    marker.planes["R"] = np.full_like(marker.planes["R"], 0.5)  # prove the cache is what gets shown
    second = render_frame(RenderRequest(KEY, deep, View("color"), Tone(transfer="linear"), marker))
    assert second.part_data is marker
    np.testing.assert_array_equal(second.frame.values["R"], 0.5)


def test_flat_views_show_channels_as_stored():
    flat = make_flat(3, 4)
    tone = Tone(transfer="linear")
    spec = render_frame(RenderRequest(KEY, flat, View("color", "spec"), tone)).frame
    for c in "RGB":
        np.testing.assert_array_equal(spec.values[c], flat.channels[f"spec.{c}"])
    ids = render_frame(RenderRequest(KEY, flat, View("channel", "", "id"), tone)).frame
    assert ids.values["id"].dtype == np.uint32
    np.testing.assert_array_equal(ids.values["id"], flat.channels["id"])
    z = render_frame(RenderRequest(KEY, flat, View("depth"), tone)).frame
    np.testing.assert_array_equal(z.values["Z"], flat.channels["Z"])
    with pytest.raises(ValueError):
        render_frame(RenderRequest(KEY, flat, View("samples"), tone))


def test_cancel_stops_rendering(deep):
    with pytest.raises(Cancelled):
        render_frame(RenderRequest(KEY, deep, View("color"), Tone()), cancel=lambda: True)


def test_pixel_profile_matches_the_samples():
    counts = np.array([[4, 0], [1, 6]])
    image = make_deep(counts, rng=np.random.default_rng(3), negative_alpha_at=(5,))
    dw = image.data_window
    prof = pixel_profile(image, dw.xmin + 1, dw.ymin + 1, Tone(transfer="linear"))
    a, b = image.offsets[3], image.offsets[4]
    assert prof.count == 6
    np.testing.assert_array_equal(prof.z, image.channels["Z"][a:b])
    np.testing.assert_array_equal(prof.zback, image.channels["ZBack"][a:b])
    for name, arr in image.channels.items():
        np.testing.assert_array_equal(prof.values[name], arr[a:b])
    raw_a = image.channels["A"][a:b]
    np.testing.assert_array_equal(prof.alpha, np.abs(raw_a))
    expected_volume = [(zb > z) or (al < 0) for z, zb, al in
                       zip(image.channels["Z"][a:b], image.channels["ZBack"][a:b], raw_a, strict=True)]
    assert prof.is_volume.tolist() == expected_volume
    assert raw_a[0] < 0 and prof.is_volume[0]  # sample 5 is this pixel's first: flagged by its alpha
    acc, running = [], 0.0
    for al in np.abs(raw_a):
        running += (1 - running) * float(al)
        acc.append(running)
    np.testing.assert_allclose(prof.accumulated, acc, rtol=1e-6)
    for i in range(6):
        al = abs(float(raw_a[i]))
        for c, name in enumerate("RGB"):
            expected = np.floor(min(max(float(image.channels[name][a + i]) / al, 0), 1) * 255 + 0.5)
            assert abs(int(prof.colours[i, c]) - expected) <= 1
    assert pixel_profile(image, dw.xmin + 1, dw.ymin, None).count == 0
    assert pixel_profile(image, dw.xmin + 2, dw.ymin, None) is None
    assert pixel_profile(image, dw.xmin - 1, dw.ymin, None) is None


def test_pixel_profile_sorts_unsorted_samples():
    offsets = np.array([0, 3], np.int64)
    z = np.array([5.0, 1.0, 3.0], np.float32)
    image = DeepImage(Box(0, 0, 0, 0), Box(0, 0, 0, 0), offsets,
                      {"Z": z, "A": np.array([0.1, 0.2, 0.3], np.float32)}, {})
    prof = pixel_profile(image, 0, 0)
    assert prof.z.tolist() == [1.0, 3.0, 5.0]
    assert prof.values["A"].tolist() == pytest.approx([0.2, 0.3, 0.1])


def test_readout_text(deep):
    frame = render_frame(RenderRequest(KEY, deep, View("color"), Tone())).frame
    x, y = deep.data_window.xmin + 3, deep.data_window.ymin  # 5 samples
    text = readout_text(frame, deep, x, y)
    assert text.startswith(f"x {x}  y {y}")
    assert f"R {frame.values['R'][0, 3]:.6g}" in text
    assert f"Z {deep.channels['Z'][deep.offsets[3]]:.6g}" in text
    assert "5 samples" in text
    assert "outside the data window" in readout_text(frame, deep, 0, 0)
    flat = make_flat(2, 2)
    flat_frame = render_frame(RenderRequest(KEY, flat, View("channel", "", "id"), Tone())).frame
    assert f"id 0x{int(flat.channels['id'][1, 0]):08x}" in readout_text(flat_frame, flat, 0, 1)


@pytest.mark.parametrize("view", [View("color"), View("channel", "", "G"), View("alpha"), View("depth"),
                                  View("samples")])
def test_frames_are_valid_premultiplied_rgba(deep, view):
    """The canvas hands frames to Qt as premultiplied RGBA without converting them: every
    view must give colour bytes no larger than the alpha byte (opaque, or transparent black)."""
    frame = render_frame(RenderRequest(KEY, deep, view, Tone(exposure=4.0))).frame
    rgba = frame.rgba
    assert rgba.dtype == np.uint8 and rgba.flags.c_contiguous
    assert (rgba[..., :3] <= rgba[..., 3:4]).all()
