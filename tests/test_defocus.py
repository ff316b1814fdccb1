"""core.defocus: thin-lens circles of confusion, camera metadata, and the layered deep defocus.

The defocus is checked against a slow brute-force reference: a thin-lens ray trace through the
deep samples (each sample a pixel-sized square at its depth; the ray from output pixel q through
lens point u meets depth d at ``q - u * r(d)``; a pixel is the mean over a grid of lens points
of the front-to-back over-composite of what each ray hits). Exact properties are tested exactly:
a pinhole gives flatten's result bit for bit, an opaque object in focus keeps its pixels, the
background behind a sharp foreground keeps its level (no halo), energy is conserved.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import defocus as dm
from core.defocus import (
    CameraGuess,
    DefocusError,
    SimpleBlur,
    ThinLens,
    coverage_table,
    defocus,
    focus_at,
    guess_camera,
    output_shape,
    simple_coc,
    thin_lens_coc,
)
from core.errors import Cancelled
from core.exr_read import read_headers
from core.kernels import flatten, sort_samples
from core.model import Box, DeepImage, PixelType
from tests.shared_data import shared_path

RGBA = ("R", "G", "B", "A")


def deep(counts, data_window: Box | None = None, **channels) -> DeepImage:
    """A deep image from per-pixel sample counts (H, W) and flat per-sample channel values."""
    counts = np.asarray(counts, dtype=np.int64)
    h, w = counts.shape
    offsets = np.zeros(h * w + 1, np.int64)
    np.cumsum(counts.reshape(-1), out=offsets[1:])
    box = data_window or Box(0, 0, w - 1, h - 1)
    chans = {k: np.asarray(v, dtype=np.float32).reshape(-1) for k, v in channels.items()}
    return DeepImage(box, box, offsets, chans, {k: PixelType.FLOAT for k in chans})


def stack(result: dict, names=RGBA) -> np.ndarray:
    return np.stack([result[c] for c in names])


# --------------------------------------------------------------------------- scenes


def two_planes(size=20, margin=5, fg=(8, 13), z_fg=3.0, z_bg=10.0, checker=False, hidden=True) -> DeepImage:
    """An opaque square (z_fg) over an opaque background plane (z_bg), inside an empty margin.
    With ``hidden`` the background also has its samples behind the square (a complete deep image)."""
    counts = np.zeros((size, size), np.int64)
    r, g, b, a, z = [], [], [], [], []
    for y in range(size):
        for x in range(size):
            if not (margin <= y < size - margin and margin <= x < size - margin):
                continue
            in_fg = fg[0] <= y < fg[1] and fg[0] <= x < fg[1]
            if in_fg:
                counts[y, x] += 1
                r.append(0.9), g.append(0.2), b.append(0.1), a.append(1.0), z.append(z_fg)
            if hidden or not in_fg:
                counts[y, x] += 1
                c = 0.2 + 0.6 * ((x // 2 + y // 2) % 2) if checker else 0.3
                r.append(0.1), g.append(c), b.append(0.8), a.append(1.0), z.append(z_bg)
    return deep(counts, R=r, G=g, B=b, A=a, Z=z)


def random_scene(seed: int, size=16, margin=4, depth=(1.0, 10.0), max_count=3) -> DeepImage:
    """Semi-transparent samples at random depths (sorted), inside an empty margin. No pixel gets
    to the alpha (0.99) at which the defocus takes what lies behind as never rendered: this is
    a complete deep image, as the ray trace assumes."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, max_count + 1, (size, size))
    counts[:margin] = 0
    counts[-margin:] = 0
    counts[:, :margin] = 0
    counts[:, -margin:] = 0
    n = int(counts.sum())
    a = rng.uniform(0.1, 0.75, n)
    img = deep(counts, R=rng.random(n) * a, G=rng.random(n) * a, B=rng.random(n) * a, A=a,
               Z=rng.uniform(*depth, n))
    return sort_samples(img)


def aperture(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Lens points on an m x m grid inside the unit disk (offset so no ray lands on a pixel edge)."""
    g = (np.arange(m) + 0.5) / m * 2.0 - 1.0
    ux, uy = np.meshgrid(g + 0.0123, g - 0.0071)
    keep = ux**2 + uy**2 <= 1.0
    return ux[keep], uy[keep]


def ray_trace(image: DeepImage, radius: np.ndarray, names=("R", "G", "B"), m: int = 24) -> np.ndarray:
    """The brute-force reference: (len(names) + 1, H, W), colours then alpha (see the module docstring)."""
    h, w = image.height, image.width
    pix = np.repeat(np.arange(h * w), np.diff(image.offsets))
    py, px = np.divmod(pix, w)
    z = image.channels["Z"].astype(np.float64)
    a = np.abs(image.channels["A"].astype(np.float64))
    cols = [image.channels[n].astype(np.float64) for n in names]
    order = np.lexsort((np.arange(z.size), z))  # depth order, ties in stored order
    px, py, a, r = px[order], py[order], a[order], np.asarray(radius, np.float64)[order]
    cols = [c[order] for c in cols]
    ux, uy = aperture(m)
    reach = int(np.ceil(np.abs(r).max() if r.size else 0)) + 1
    out = np.zeros((len(names) + 1, h, w))
    for qy in range(h):
        for qx in range(w):
            near = (np.abs(px - qx) <= reach) & (np.abs(py - qy) <= reach)
            if not near.any():
                continue
            rr, sx, sy, sa = r[near], px[near], py[near], a[near]
            hit = ((np.floor(qx - ux[:, None] * rr[None, :] + 0.5) == sx[None, :])
                   & (np.floor(qy - uy[:, None] * rr[None, :] + 0.5) == sy[None, :]))
            am = np.where(hit, sa[None, :], 0.0)
            t = np.cumprod(1.0 - am, axis=1)
            before = np.concatenate([np.ones((t.shape[0], 1)), t[:, :-1]], axis=1)
            for i, c in enumerate(cols):
                out[i, qy, qx] = np.mean(np.sum(before * np.where(hit, c[near][None, :], 0.0), axis=1))
            out[-1, qy, qx] = np.mean(1.0 - t[:, -1])
    return out


# --------------------------------------------------------------------------- circle of confusion


def test_thin_lens_coc_matches_the_formula():
    lens = ThinLens(focus_distance=2.0, f_stop=2.0, focal_length_mm=50.0, sensor_width_mm=36.0)
    # A = 25 mm; c = A f |d - df| / (d (df - f)) with d = 4000 mm, df = 2000 mm
    c_mm = 25.0 * 50.0 * 2000.0 / (4000.0 * 1950.0)
    expected = c_mm / 36.0 * 1920.0 / 2.0
    assert thin_lens_coc(4.0, lens, 1920) == pytest.approx(expected, rel=1e-12)
    # in front of the focus plane: negative; at it: zero
    c_front = 25.0 * 50.0 * 1000.0 / (1000.0 * 1950.0)
    assert thin_lens_coc(1.0, lens, 1920) == pytest.approx(-c_front / 36.0 * 1920.0 / 2.0, rel=1e-12)
    assert thin_lens_coc(2.0, lens, 1920) == 0.0
    # depth units: centimetres with units_to_m = 0.01 give the same blur
    cm = ThinLens(focus_distance=200.0, f_stop=2.0, units_to_m=0.01)
    assert thin_lens_coc(400.0, cm, 1920) == pytest.approx(expected, rel=1e-12)
    # a pinhole does not blur; radius grows as the aperture opens
    assert np.all(thin_lens_coc(np.array([0.5, 3.0, 100.0]), ThinLens(2.0, math.inf), 1920) == 0.0)
    assert abs(thin_lens_coc(4.0, ThinLens(2.0, 1.4), 1920)) > abs(thin_lens_coc(4.0, ThinLens(2.0, 8.0), 1920))


def test_simple_coc_is_linear_in_depth():
    d = np.array([1.0, 5.0, 9.0])
    assert np.array_equal(simple_coc(d, 5.0, 0.5), np.array([-2.0, 0.0, 2.0]))
    with pytest.raises(DefocusError):
        simple_coc(d, 5.0, -1.0)


@pytest.mark.parametrize("lens", [
    ThinLens(focus_distance=-1.0, f_stop=2.0),
    ThinLens(focus_distance=1.0, f_stop=0.0),
    ThinLens(focus_distance=1.0, f_stop=math.nan),
    ThinLens(focus_distance=0.04, f_stop=2.0),  # inside the focal length
    ThinLens(focus_distance=1.0, f_stop=2.0, sensor_width_mm=math.inf),
])
def test_bad_lenses_are_refused(lens):
    with pytest.raises(DefocusError):
        thin_lens_coc(1.0, lens, 100)


def test_coverage_table_is_normalised_and_round():
    table = coverage_table(3.0)
    d = np.arange(table.shape[1])
    weight = np.where(d == 0, 1.0, 2.0)
    totals = np.einsum("iyx,y,x->i", table, weight, weight)
    assert np.allclose(totals, 1.0, atol=1e-12)
    assert np.allclose(table, table.transpose(0, 2, 1))
    steps = 64
    assert table[0, 0, 0] == 1.0 and table[steps // 2, 0, 0] == 1.0  # r <= 0.5 stays in its pixel
    # a large disk: inner pixels get 1 / (pi r^2)
    r = 3.0
    assert table[int(r * steps), 0, 0] == pytest.approx(1.0 / (math.pi * r * r), rel=1e-3)
    # pixel (1, 0) of a disk of radius 1: the area of the unit square [0.5, 1.5] x [-0.5, 0.5] in it
    x = np.linspace(0.5, 1.0, 200001)
    area = np.trapezoid(2.0 * np.minimum(np.sqrt(np.maximum(1.0 - x * x, 0.0)), 0.5), x)
    assert table[steps, 0, 1] == pytest.approx(area / math.pi, rel=1e-3)


# --------------------------------------------------------------------------- exact properties


def nasty_scene(seed: int) -> DeepImage:
    """Empty pixels, single samples, NaN and infinite depths, alpha 0, > 1 and negative (volumes)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, (9, 11))
    counts[0, 0] = 0
    counts[0, 1] = 1
    n = int(counts.sum())
    z = rng.uniform(0.5, 20.0, n)
    z[rng.random(n) < 0.05] = np.nan
    z[rng.random(n) < 0.05] = np.inf
    z[rng.random(n) < 0.03] = -2.0
    a = rng.uniform(-0.5, 1.2, n)
    a[rng.random(n) < 0.1] = 0.0
    img = deep(counts, R=rng.normal(0.5, 1.0, n), G=rng.random(n), B=rng.random(n) * 10, A=a, Z=z)
    return sort_samples(img)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("camera, kwargs", [
    (ThinLens(focus_distance=5.0, f_stop=math.inf), {}),
    (ThinLens(focus_distance=5.0, f_stop=1.4), {"max_radius": 0.0}),
    (SimpleBlur(5.0, 0.0), {}),
])
def test_a_pinhole_gives_flatten_exactly(seed, camera, kwargs):
    img = nasty_scene(seed)
    got = defocus(img, camera, **kwargs)
    want = flatten(img, list(RGBA))
    for c in RGBA:
        np.testing.assert_array_equal(got[c], want[c])


def test_a_pinhole_without_alpha_or_colours():
    img = deep([[2, 0], [1, 3]], Z=[1, 2, 5, 3, 4, 6], R=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    got = defocus(img, SimpleBlur(0.0, 0.0))
    assert np.array_equal(got["R"], flatten(img, ["R"])["R"])
    assert np.array_equal(got["A"], np.array([[1, 0], [1, 1]], np.float32))
    only_alpha = defocus(deep([[1, 1]], Z=[1, 2], A=[0.5, 0.25]), SimpleBlur(0.0, 0.0), channels=[])
    assert set(only_alpha) == {"A"} and np.array_equal(only_alpha["A"], np.array([[0.5, 0.25]], np.float32))


def opaque_object_scene(hidden: bool) -> tuple[DeepImage, np.ndarray]:
    """A wall at z=10, an opaque disc at z=4 (in focus in the test), a glass sheet at z=2 far to the left."""
    size = 40
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - 20) ** 2 + (xx - 26) ** 2 <= 36
    glass = (xx < 8) & (yy > 5) & (yy < 34)
    counts = np.zeros((size, size), np.int64)
    samples = []
    for y in range(size):
        for x in range(size):
            here = []
            if glass[y, x]:
                here.append((0.1, 0.3, 0.3, 0.4, 2.0))
            if disc[y, x]:
                here.append((0.8 + 0.005 * x, 0.3, 0.1 + 0.01 * y, 1.0, 4.0))
            if hidden or not disc[y, x]:
                here.append((0.2, 0.25 + 0.01 * ((x + y) % 5), 0.6, 1.0, 10.0))
            counts[y, x] = len(here)
            samples += here
    s = np.array(samples)
    return deep(counts, R=s[:, 0], G=s[:, 1], B=s[:, 2], A=s[:, 3], Z=s[:, 4]), disc


@pytest.mark.parametrize("hidden", [True, False])
@pytest.mark.parametrize("camera", [ThinLens(focus_distance=4.0, f_stop=1.4, focal_length_mm=85.0),
                                    SimpleBlur(4.0, 1.5)])
def test_an_object_in_focus_keeps_its_pixels(hidden, camera):
    img, disc = opaque_object_scene(hidden)
    got = defocus(img, camera, frame_width=400)
    want = flatten(img, list(RGBA))
    # the wall and the glass are blurred, the disc is not
    wall = ~disc & (np.arange(40)[None, :] > 12)
    assert np.abs(got["G"] - want["G"])[wall].max() > 1e-3
    for c in RGBA:
        assert np.array_equal(got[c][disc], want[c][disc]), c


def test_no_halo_around_a_sharp_foreground():
    """A flat background with nothing rendered behind an opaque square in focus: blurred, it keeps
    its colour right up to the square (no dark or bright rim), the square is untouched."""
    img = two_planes(size=24, margin=0, fg=(8, 16), hidden=False)
    got = defocus(img, SimpleBlur(3.0, 0.35))  # background radius 2.45 px
    want = flatten(img, list(RGBA))
    fg = np.zeros((24, 24), bool)
    fg[8:16, 8:16] = True
    for c, value in zip(RGBA, (0.1, 0.3, 0.8, 1.0), strict=True):
        assert np.array_equal(got[c][fg], want[c][fg])
        np.testing.assert_allclose(got[c][~fg], value, atol=2e-6)


def test_a_blurred_foreground_shows_the_background_through_its_edge():
    img = two_planes(size=24, margin=0, fg=(8, 16), checker=False, hidden=True)
    got = defocus(img, SimpleBlur(10.0, 0.4))  # foreground radius 2.8 px, background sharp
    # at the square's edge rows inside it, the background's blue shows through
    assert 0.1 < got["B"][12, 8] < 0.8 and got["R"][12, 8] < 0.9
    # outside, just past the edge, the square's red spreads over the background
    assert got["R"][12, 6] > 0.1 + 1e-3
    # far from the square, the sharp background is unchanged
    assert got["B"][2, 2] == pytest.approx(0.8) and got["A"][2, 2] == pytest.approx(1.0)
    np.testing.assert_allclose(got["A"], 1.0, atol=1e-6)


@pytest.mark.parametrize("camera", [SimpleBlur(4.2, 0.6), SimpleBlur(8.0, 0.4),
                                    ThinLens(4.2, 1.4, 50.0, units_to_m=0.1)])
def test_a_tilted_opaque_plane_stays_opaque(camera):
    """A floor-like plane whose blur changes continuously across many slices (up to 24 px on
    coarse grids with the thin lens): every ray through the lens ends on the plane, so the
    result is opaque everywhere, with no seams between slices, and its colour stays within the
    plane's colours."""
    h, w = 60, 40
    yy, xx = np.mgrid[:h, :w]
    img = deep(np.ones((h, w), np.int64), R=0.2 + 0.6 * ((xx // 4) % 2), G=np.full(h * w, 0.5),
               B=np.full(h * w, 0.3), A=np.ones(h * w), Z=2.0 + 0.15 * yy)
    got = defocus(img, camera, frame_width=320)
    np.testing.assert_allclose(got["A"], 1.0, atol=1e-6)
    assert got["R"].min() >= 0.2 - 1e-5 and got["R"].max() <= 0.8 + 1e-5
    np.testing.assert_allclose(got["G"], 0.5, atol=1e-5)
    assert np.abs(got["R"] - flatten(img, ["R"])["R"]).max() > 0.1  # it did blur


@pytest.mark.parametrize("z", [2.0, 7.5, 10.0])
def test_energy_and_coverage_are_conserved(z):
    rng = np.random.default_rng(4)
    counts = np.zeros((40, 40), np.int64)  # far enough from the frame that nothing is extrapolated
    counts[15:25, 14:26] = 1
    n = int(counts.sum())
    a = rng.uniform(0.2, 1.0, n)
    img = deep(counts, R=rng.random(n) * a, G=rng.random(n), B=rng.random(n) * a, A=a, Z=np.full(n, z))
    got = defocus(img, SimpleBlur(5.0, 1.2))  # radius 3.6, 3.0 or 6.0 (on a half-resolution grid)
    want = flatten(img, list(RGBA))
    for c in RGBA:
        assert got[c].sum() == pytest.approx(float(want[c].sum()), rel=2e-5)
    assert np.abs(got["A"] - want["A"]).max() > 0.1  # it did blur


def test_proxy_of_a_pinhole_is_the_box_filtered_flatten():
    img = nasty_scene(5)
    img = DeepImage(img.data_window, img.display_window, img.offsets,
                    {k: np.nan_to_num(v, nan=0.0, posinf=30.0, neginf=0.0) for k, v in img.channels.items()},
                    dict(img.pixel_types))
    got = defocus(img, SimpleBlur(2.0, 0.0), proxy=0.5, full_sampling=True)
    assert got["A"].shape == output_shape(img.width, img.height, 0.5) == (5, 6)
    flat = flatten(img, list(RGBA))
    for c in RGBA:
        padded = np.zeros((10, 12))
        padded[:9, :11] = flat[c]
        n = np.zeros((10, 12))
        n[:9, :11] = 1
        box = padded.reshape(5, 2, 6, 2).sum(axis=(1, 3)) / n.reshape(5, 2, 6, 2).sum(axis=(1, 3))
        np.testing.assert_allclose(got[c], box, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- against the brute force


def compare(img: DeepImage, camera: SimpleBlur, m: int = 32) -> tuple[float, float, float]:
    """(worst, mean, 99th percentile) absolute difference from the ray trace, over R, G, B, A."""
    got = stack(defocus(img, camera))
    ref = ray_trace(img, simple_coc(img.channels["Z"], camera.focus_depth, camera.blur_per_unit), m=m)
    d = np.abs(got - ref)
    return float(d.max()), float(d.mean()), float(np.quantile(d, 0.99))


@pytest.mark.parametrize("camera, checker", [
    (SimpleBlur(3.0, 0.3), False),  # sharp foreground, background radius 2.1
    (SimpleBlur(3.0, 0.3), True),
    (SimpleBlur(10.0, 0.3), True),  # foreground radius 2.1, sharp background
    (SimpleBlur(6.0, 0.5), False),  # both blurred: 1.5 in front of the focus plane, 2.0 behind it
])
def test_two_planes_match_the_ray_trace(camera, checker):
    """Measured: worst pixel 0.023 (0.054 with both blurred), mean < 0.002, on values in [0, 1].
    The worst pixels are where a blurred foreground's edge meets a background blurred the other way
    (one in front of the focus plane, one behind): through a real lens the two cover complementary
    parts of the lens, so the edge stays opaque, but a layer occludes the layers behind it uniformly
    over the lens. The ray trace's lens grid (~800 rays a pixel) adds ~0.01 at disk edges."""
    worst, mean, _ = compare(two_planes(checker=checker), camera)
    assert worst < 0.07
    assert mean < 0.003


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("blur", [0.4, 0.7])
def test_random_fragments_match_the_ray_trace(seed, blur):
    """Semi-transparent fragments at random depths, blurs up to 2 and 3.5 px, overlapping: the
    layering approximations (uniform occlusion over the lens, fragments of one slice adding up)
    show most here. Measured: worst pixel 0.04-0.105, 99th percentile < 0.035, mean < 0.0036."""
    worst, mean, p99 = compare(random_scene(seed), SimpleBlur(5.0, blur))
    assert worst < 0.15
    assert p99 < 0.065
    assert mean < 0.006


def test_a_coarse_level_matches_the_ray_trace():
    """A blur radius of 5 px is above the default level radius: the square is scattered on a
    half-resolution grid (with the radius reduced so the cell averaging and the bilinear upsampling
    add no blur on average) and upsampled. That softens the peak of an object not much larger than
    its blur (measured: worst pixel 0.09, mean 0.004); scattered at full resolution, the same scene
    is within the ray trace's own accuracy (0.023, 0.002)."""
    counts = np.zeros((28, 28), np.int64)
    counts[9:19, 9:19] = 1
    img = deep(counts, R=np.full(100, 0.9), G=np.full(100, 0.5), B=np.full(100, 0.1), A=np.ones(100),
               Z=np.full(100, 10.0))
    camera = SimpleBlur(0.0, 0.5)
    ref = ray_trace(img, simple_coc(img.channels["Z"], 0.0, 0.5), m=32)
    coarse = np.abs(stack(defocus(img, camera)) - ref)
    assert coarse.max() < 0.12 and coarse.mean() < 0.006
    fine = np.abs(stack(defocus(img, camera, level_radius=6.0)) - ref)
    assert fine.max() < 0.035 and fine.mean() < 0.003


# --------------------------------------------------------------------------- kernels against plain references


def test_sampled_reads_what_the_plain_loop_reads():
    """The vectorised choice of the source pixels a proxy reads: half of each output pixel's run,
    rounded up, evenly spaced (as a loop over the runs picks them)."""
    for n in range(1, 70):
        for proxy in (0.1, 0.25, 0.3, 0.5, 0.7, 0.99, 1.0):
            n_out = output_shape(n, 1, proxy)[1]
            _, start, stop = dm._axis_map(n, proxy, n_out)
            want = np.zeros(n, np.uint8)
            for a, b in zip(start.tolist(), stop.tolist(), strict=True):
                m = (b - a + 1) // 2
                want[a + (np.arange(m) * 2 + 1) * (b - a) // (2 * m)] = 1
            assert np.array_equal(dm._sampled(start, stop, n, False), want), (n, proxy)
            assert dm._sampled(start, stop, n, True).all()


@pytest.mark.parametrize("level_radius", [1.0, 3.0, 4.0])
def test_table_spans_cover_every_weight(level_radius):
    """``spans[ti, dy]`` is the last ``|dx|`` where row dy of table entries ti and ti + 1 has weight,
    so the scatter and the normalisation can skip the rest of the row; ``spans[ti, 0]`` is the
    disk's reach."""
    table, spans = dm._tables(level_radius)
    reach = table.shape[1] - 1
    for ti in range(table.shape[0] - 1):
        pair = (table[ti] != 0.0) | (table[ti + 1] != 0.0)
        for dy in range(reach + 1):
            nz = np.flatnonzero(pair[dy])
            assert spans[ti, dy] == (nz[-1] if nz.size else -1)
        assert spans[ti, 0] >= 0 and not pair[spans[ti, 0] + 1:].any()  # nothing beyond the reach, any row


def test_clear_row_zeroes_the_marked_tiles_only():
    rng = np.random.default_rng(3)
    width, tile = 37, 4
    mask = rng.random((3, (width + tile - 1) // tile)) < 0.5
    buf = np.ones((5, 6 * width), np.float32)
    dm._clear_row(buf, 4, width, tile, mask[1])
    want = np.ones((5, 6, width), np.float32)
    for tx in np.flatnonzero(mask[1]):
        want[:, 4, tx * tile:(tx + 1) * tile] = 0.0
    assert np.array_equal(buf.reshape(5, 6, width), want)


def test_a_power_of_two_reciprocal_is_the_quotient():
    """Why the scatter multiplies by ``1 / cell_px`` when the cell size is a power of two: the
    product is then exactly the quotient (in float32, subnormals included)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1e3, 20000), rng.normal(0, 1e-38, 2000), [0.0, -0.0, 1e38]]).astype(np.float32)
    for n in (1, 2, 4, 8, 16, 64, 1024):
        npx = np.float32(n)
        assert np.array_equal(x * (np.float32(1.0) / npx), x / npx)


def test_coarse_composite_matches_a_plain_bilinear_over():
    """The coarse composite visits only the output pixels near the layer's rmask tiles: the result
    is the plain bilinear upsampling of the whole layer composited (over) under every pixel."""
    rng = np.random.default_rng(5)
    n_col, level, tile = 3, 2, 4
    out_h, out_w = 37, 45
    lev_h, lev_w = (out_h + level - 1) // level, (out_w + level - 1) // level
    rmask = rng.random(((lev_h + tile - 1) // tile, (lev_w + tile - 1) // tile)) < 0.3
    inside = np.kron(rmask, np.ones((tile, tile), bool))[:lev_h, :lev_w]
    layer = (rng.random((n_col + 3, lev_h, lev_w)) * inside).astype(np.float32)
    layer[:, rng.random((lev_h, lev_w)) < 0.2] = 0.0
    out_col = (rng.random((n_col, out_h * out_w)) * 0.5).astype(np.float32)
    out_a = rng.random(out_h * out_w).astype(np.float32)
    out_a[rng.random(out_a.size) < 0.2] = 1.0
    xs, ys = dm._bilinear_axis(out_w, level, lev_w), dm._bilinear_axis(out_h, level, lev_h)
    block = np.searchsorted(xs[0], np.arange(rmask.shape[1] + 1) * tile)
    got_col, got_a = out_col.copy(), out_a.copy()
    dm._composite_kernel(n_col, lev_w, tile, rmask, layer.reshape(n_col + 3, -1), *xs, *ys, block, got_col, got_a)
    want_col, want_a = out_col.reshape(n_col, out_h, out_w).copy(), out_a.reshape(out_h, out_w).copy()
    (xa, xb, fx), (ya, yb, fy) = xs, ys
    for yo in range(out_h):
        for xo in range(out_w):
            lay = layer[: n_col + 1]
            top = lay[:, ya[yo], xa[xo]] * (1.0 - fx[xo]) + lay[:, ya[yo], xb[xo]] * fx[xo]
            bottom = lay[:, yb[yo], xa[xo]] * (1.0 - fx[xo]) + lay[:, yb[yo], xb[xo]] * fx[xo]
            vals = (top * (1.0 - fy[yo]) + bottom * fy[yo]).astype(np.float32)
            acc = want_a[yo, xo]
            if acc >= 1.0 or not vals.any():
                continue
            w = np.float32(1.0) - acc
            want_col[:, yo, xo] += w * vals[:n_col]
            want_a[yo, xo] = acc + w * vals[n_col]
    assert np.array_equal(got_col, want_col.reshape(n_col, -1))
    assert np.array_equal(got_a, want_a.reshape(-1))


def test_see_through_pixels_match_a_plain_count():
    rng = np.random.default_rng(8)
    h, w, n_slices = 23, 31, 5
    for proxy in (1.0, 0.5, 0.25):
        ho, wo = output_shape(w, h, proxy)
        xo_of, xs0, xs1 = dm._axis_map(w, proxy, wo)
        yo_of, ys0, ys1 = dm._axis_map(h, proxy, ho)
        use_x, use_y = dm._sampled(xs0, xs1, w, proxy >= 1.0), dm._sampled(ys0, ys1, h, proxy >= 1.0)
        hidden_from = rng.integers(1, n_slices + 2, h * w).astype(np.int32)
        got = np.zeros((ho + 1, wo + 1), np.int32)
        dm._through_kernel(w, ho, wo, n_slices, ys0, ys1, use_x, use_y, xo_of, hidden_from, got)
        through = (hidden_from.reshape(h, w) > n_slices) & (use_y[:, None] > 0) & (use_x[None, :] > 0)
        want = np.zeros((ho, wo), bool)
        np.logical_or.at(want, (np.repeat(yo_of, w), np.tile(xo_of, h)), through.reshape(-1))
        assert np.array_equal(got[1:, 1:] > 0, want) and not got[0].any() and not got[:, 0].any()


@pytest.mark.parametrize("kwargs", [{}, {"proxy": 0.5}, {"proxy": 0.5, "full_sampling": True}, {"proxy": 0.25},
                                    {"level_radius": 1.0}])
def test_filled_shares_match_a_direct_count(monkeypatch, kwargs):
    """What the normalisation reads of each slice's cells: the hidden pixels each cell has by then
    (counted incrementally, level by level), its filled share (groups of the slice, plus pixels
    hidden with no group here, over the pixels read) and the row counts of cells with some
    known-empty share, against a direct count from every pixel's hidden-from slice."""
    seen: dict = {}
    checks = []
    count_kernel, cells_kernel = dm._count_kernel, dm._cells_kernel

    def count_spy(*args):
        count_kernel(*args)
        seen.update(width=args[4], height=args[5], use_x=args[6].copy(), use_y=args[7].copy(),
                    hidden_from=args[-2].copy())

    def cells_spy(*args):
        cells_kernel(*args)
        (k, _, row_start, gx, *_, lev_w, lev_h, ly0, ly1, _, _, _, hidden, tile, _, umask, cell_px, _, filled,
         pre) = args
        checks.append(dict(k=k, row_start=row_start, gx=gx.copy(), cell_x=args[9].copy(), lev_w=lev_w, lev_h=lev_h,
                           ly0=ly0, ly1=ly1, hidden=hidden.copy(), tile=tile, umask=umask.copy(),
                           cell_px=cell_px.copy(), filled=filled.copy(), pre=pre.copy()))

    monkeypatch.setattr(dm, "_count_kernel", count_spy)
    monkeypatch.setattr(dm, "_cells_kernel", cells_spy)
    rng = np.random.default_rng(12)
    counts = rng.integers(0, 5, (30, 34))
    n = int(counts.sum())
    a = np.where(rng.random(n) < 0.3, 1.0, rng.uniform(0.2, 0.9, n))  # opaque samples hide what lies behind
    img = sort_samples(deep(counts, R=rng.random(n) * a, G=rng.random(n), B=rng.random(n) * a, A=a,
                            Z=rng.uniform(1.0, 10.0, n)))
    defocus(img, SimpleBlur(5.0, 0.8), **kwargs)
    assert len(checks) >= 5
    assert any(c["hidden"].any() for c in checks) and any((c["filled"] < 1.0).any() for c in checks)
    h, w = seen["height"], seen["width"]
    hf = seen["hidden_from"].reshape(h, w)
    used = (seen["use_y"][:, None] > 0) & (seen["use_x"][None, :] > 0)
    for c in checks:
        k, lev_w, lev_h, tile = c["k"], c["lev_w"], c["lev_h"], c["tile"]
        cy_of = np.full(h, -1)
        for cy in range(lev_h):
            cy_of[c["ly0"][cy]:c["ly1"][cy]] = cy
        has = np.zeros((h, w), bool)
        for y in range(h):
            has[y, c["gx"][c["row_start"][y, k]:c["row_start"][y, k + 1]]] = True
        yy, xx = np.mgrid[:h, :w]
        cells = (cy_of[yy], c["cell_x"][xx])

        def per_cell(mask, cells=cells, lev_h=lev_h, lev_w=lev_w):
            out = np.zeros((lev_h, lev_w))
            np.add.at(out, (cells[0][mask], cells[1][mask]), 1)
            return out

        hidden = used & (hf <= k)
        assert np.array_equal(c["hidden"].reshape(lev_h, lev_w), per_cell(hidden))
        share = (per_cell(has) + per_cell(hidden & ~has)) / c["cell_px"].reshape(lev_h, lev_w)
        in_u = np.kron(c["umask"], np.ones((tile, tile), bool))[:lev_h, :lev_w]
        filled = c["filled"][: lev_h * lev_w].reshape(lev_h, lev_w)  # (the planes are sized for level 1)
        assert np.array_equal(filled[in_u], share.astype(np.float32)[in_u])
        rows = in_u.any(axis=1)
        pre = np.concatenate([np.zeros((lev_h, 1)), np.cumsum(in_u & (share < 1.0), axis=1)], axis=1)
        assert np.array_equal(c["pre"][:lev_h, : lev_w + 1][rows], pre[rows])


def test_results_do_not_depend_on_the_thread_count():
    """The slice kernels split the grid into bands of rows, each written by one thread: one thread
    or two give the same bits."""
    import numba

    img, _ = opaque_object_scene(True)
    camera = SimpleBlur(6.0, 0.9)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = [defocus(img, camera, **kw) for kw in ({}, {"proxy": 0.5}, {"level_radius": 1.0})]
        numba.set_num_threads(max(before, 2) if numba.config.NUMBA_NUM_THREADS >= 2 else 1)
        many = [defocus(img, camera, **kw) for kw in ({}, {"proxy": 0.5}, {"level_radius": 1.0})]
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, many, strict=True):
        for c in RGBA:
            assert np.array_equal(a[c], b[c])


# --------------------------------------------------------------------------- options and errors


def test_output_shape():
    assert output_shape(1920, 1080, 1.0) == (1080, 1920)
    assert output_shape(1920, 1080, 0.25) == (270, 480)
    assert output_shape(1920, 1080, 0.5) == (540, 960)
    assert output_shape(3, 1, 0.7) == (1, 2)
    with pytest.raises(DefocusError):
        output_shape(10, 10, 0.0)
    with pytest.raises(DefocusError):
        output_shape(10, 10, 1.5)


def test_a_fast_proxy_reads_half_the_pixels_of_each_run():
    """By default a proxy reads one source pixel of two at 0.5 (two of four at 0.25) in each
    direction: a pinhole at 0.5 is then the flattened image at those pixels, exactly."""
    img = nasty_scene(6)
    got = defocus(img, SimpleBlur(2.0, 0.0), proxy=0.5)
    flat = flatten(img, list(RGBA))
    xs = [1, 3, 5, 7, 9, 10]  # the second pixel of each pair; the last output pixel has only pixel 10
    ys = [1, 3, 5, 7, 8]
    for c in RGBA:
        np.testing.assert_array_equal(got[c], flat[c][np.ix_(ys, xs)])
    quarter = defocus(img, SimpleBlur(2.0, 0.0), proxy=0.25)
    assert quarter["A"].shape == (3, 3)
    rows, cols = [[1, 3], [5, 7], [8]], [[1, 3], [5, 7], [8, 10]]
    for yo, r in enumerate(rows):
        for xo, cc in enumerate(cols):
            np.testing.assert_allclose(quarter["A"][yo, xo], flat["A"][np.ix_(r, cc)].mean(), rtol=1e-6)


def test_proxy_preview_resembles_the_full_resolution_result():
    img, _ = opaque_object_scene(True)
    camera = SimpleBlur(4.0, 0.8)
    full = defocus(img, camera)
    half = defocus(img, camera, proxy=0.5)
    assert half["A"].shape == (20, 20)
    for c in RGBA:
        down = full[c].reshape(20, 2, 20, 2).mean(axis=(1, 3))
        assert np.abs(half[c] - down).mean() < 0.01


def test_cancel_stops_the_work():
    img, _ = opaque_object_scene(True)
    with pytest.raises(Cancelled):
        defocus(img, SimpleBlur(4.0, 0.5), cancel=lambda: True)
    calls = []
    defocus(img, SimpleBlur(4.0, 0.5), cancel=lambda: calls.append(1) and False)
    assert len(calls) >= 3  # before the sample pass and between slices


def test_defocus_never_modifies_the_image():
    img = nasty_scene(7)
    before = {k: v.copy() for k, v in img.channels.items()}
    offsets = img.offsets.copy()
    defocus(img, SimpleBlur(5.0, 0.3))
    assert np.array_equal(img.offsets, offsets)
    for k, v in before.items():
        np.testing.assert_array_equal(img.channels[k], v)


@pytest.mark.parametrize("seed", [0, 3])
def test_nasty_inputs_do_not_crash(seed):
    img = nasty_scene(seed)
    got = defocus(img, ThinLens(5.0, 1.2, 85.0), frame_width=200, max_radius=6)
    assert got["A"].shape == (9, 11)
    clean = {k: np.nan_to_num(v, nan=1.0, posinf=50.0, neginf=-1.0) for k, v in img.channels.items()}
    finite = defocus(DeepImage(img.data_window, img.display_window, img.offsets, clean, dict(img.pixel_types)),
                     SimpleBlur(5.0, 0.5))
    assert all(np.isfinite(finite[c]).all() for c in RGBA)


def test_errors():
    img = deep([[1]], R=[1], A=[1], Z=[1])
    with pytest.raises(DefocusError):
        defocus(deep([[1]], R=[1], A=[1]), SimpleBlur(1, 1))  # no Z
    with pytest.raises(DefocusError):
        defocus(img, SimpleBlur(1, 1), proxy=2.0)
    with pytest.raises(DefocusError):
        defocus(img, SimpleBlur(1, 1), max_radius=-1)
    with pytest.raises(DefocusError):
        defocus(img, SimpleBlur(1, 1), channels=["Q"])
    with pytest.raises(DefocusError):
        defocus(img, SimpleBlur(1, 1), channels=["Z"])
    with pytest.raises(DefocusError):
        defocus(img, "not a camera")


def test_empty_images():
    img = deep(np.zeros((3, 4), np.int64), R=[], A=[], Z=[])
    got = defocus(img, SimpleBlur(1, 1))
    assert got["A"].shape == (3, 4) and not got["A"].any()


# --------------------------------------------------------------------------- focus tool


def test_focus_at_looks_through_fog():
    # pixel 0: fog (alpha 0.03) x 3 then a surface at 6; pixel 1: empty; pixel 2: only thin fog;
    # pixel 3: unsorted, the nearest surface is at 2
    img = deep([[4, 0, 2, 2]], Z=[1, 1.5, 2, 6, 3, 4, 5, 2], A=[0.03, 0.03, 0.03, 1, 0.02, 0.05, 1, 1])
    assert focus_at(img, 0, 0) == pytest.approx(6.0)
    assert focus_at(img, 1, 0) is None
    assert focus_at(img, 2, 0) == pytest.approx(4.0)  # the larger contribution
    assert focus_at(img, 3, 0) == pytest.approx(2.0)
    assert focus_at(img, 0, 0, min_alpha=0.01) == pytest.approx(1.0)
    assert focus_at(deep([[1]], A=[1]), 0, 0) is None
    with pytest.raises(DefocusError):
        focus_at(img, 5, 0)


# --------------------------------------------------------------------------- camera metadata


def test_guess_camera_from_vray_metadata():
    path = shared_path("cryptomatte", "psyop", "cornellBox_CryptoWildcard.0001.exr")
    guess = guess_camera(read_headers(path)[0])
    assert guess.focal_length_mm == pytest.approx(35.0)
    assert guess.f_stop == pytest.approx(8.0)
    assert guess.sensor_width_mm == pytest.approx(36.0, abs=1e-3)
    assert guess.focus_distance == pytest.approx(200.0)
    assert guess.sources["f_stop"] == "cameraFNumber"
    assert guess.sources["focus_distance"] == "cameraTargetDistance"
    lens = guess.lens(units_to_m=0.01)
    assert lens == ThinLens(200.0, 8.0, 35.0, pytest.approx(36.0, abs=1e-3), 0.01)


def test_guess_camera_from_arnold_metadata():
    path = shared_path("cryptomatte", "psyop", "multichannel.exr")
    guess = guess_camera(read_headers(path)[0])
    assert guess.fov_degrees == pytest.approx(45.0, abs=1e-3)
    assert guess.sources["fov_degrees"] == "CameraFov"
    # f = 36 / (2 tan(22.5 deg)) on a 36 mm sensor
    assert guess.focal_length_mm == pytest.approx(36.0 / (2.0 * math.tan(math.radians(22.5))), rel=1e-4)
    assert guess.f_stop is None and guess.focus_distance is None
    assert guess.lens() is None


def test_guess_camera_from_the_ndc_matrix():
    path = shared_path("deep", "oiio", "deepalpha.exr")
    guess = guess_camera(read_headers(path)[0])
    assert guess.fov_degrees == pytest.approx(45.0, abs=1e-3)  # worldToNDC[0][0] = 1 / tan(22.5 deg)
    assert "worldToNDC" in guess.sources["fov_degrees"]


def test_guess_camera_ignores_a_non_perspective_matrix():
    path = shared_path("cryptomatte", "cryptomatte-api", "images", "karma_cpu_solaris_one_crypto.exr")
    assert not guess_camera(read_headers(path)[0]).found


def test_guess_camera_from_custom_attributes():
    guess = guess_camera({"focalLength": 85.0, "fNumber": "2.8", "focusDistance": 3.5, "screenWindowWidth": 1.0})
    assert (guess.focal_length_mm, guess.f_stop, guess.focus_distance) == (85.0, 2.8, 3.5)
    lens = guess.lens()
    assert lens == ThinLens(3.5, 2.8, 85.0, 36.0, 1.0)
    # Arnold's lens radius in scene units gives the f-stop: f / (2 r)
    arnold = guess_camera({"arnold/camera/aperture_size": 0.01, "arnold/camera/focus_distance": 400.0,
                           "cameraFocalLength": 50.0})
    lens = arnold.lens(units_to_m=0.01)  # centimetres: a 2 cm wide aperture
    assert lens.f_stop == pytest.approx(50.0 / 0.2)
    # Redshift's field of view is in radians; absurd values are ignored
    rs = guess_camera({"rs/camera/fov": math.radians(40.0), "cameraTargetDistance": 1e18, "fstop": -3})
    assert rs.fov_degrees == pytest.approx(40.0) and rs.focus_distance is None and rs.f_stop is None
    assert CameraGuess().found is False


# --------------------------------------------------------------------------- real data


def test_demo_scene_focused_on_the_wall_keeps_the_open_wall():
    """On the built-in demo scene, focus on the wall (z = 10): wall pixels with nothing nearer within
    the largest blur radius are unchanged, bit for bit; everything nearer is blurred."""
    from core.demo import render_demo

    img = render_demo(96, 54, samples_per_axis=2).deep
    camera = ThinLens(focus_distance=10.0, f_stop=2.0, focal_length_mm=50.0, units_to_m=0.1)
    max_radius = 6.0
    got = defocus(img, camera, max_radius=max_radius)
    want = flatten(img, list(RGBA))
    z_front = np.full(img.height * img.width, np.inf)
    counts = np.diff(img.offsets)
    nonempty = counts > 0
    z_front[nonempty] = img.channels["Z"][img.offsets[:-1][nonempty]]
    z_front = z_front.reshape(img.height, img.width)
    reach = int(max_radius) + 2
    padded = np.pad(z_front, reach, constant_values=np.inf)
    nearest = np.full_like(z_front, np.inf)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            nearest = np.minimum(nearest, padded[reach + dy:reach + dy + img.height, reach + dx:reach + dx + img.width])
    open_wall = (z_front == 10.0) & (nearest >= 10.0) & (want["A"] >= 1.0)
    assert open_wall.sum() > 100
    for c in RGBA:
        assert np.array_equal(got[c][open_wall], want[c][open_wall])
    assert np.abs(got["R"] - want["R"]).max() > 0.05
