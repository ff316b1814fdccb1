"""core.recolor: grading, removing, thinning and varying objects by id in a deep image.

The kernel is checked against a slow per-sample Python reference (its own grade matrices, hue
rotation and hashing rules from the documented definitions) on random inputs with empty pixels,
NaN and infinite values, alpha 0, above 1 and negative; the exact properties (nothing selected
is flatten, a fully selected image is the graded flatten) and the frame-to-frame consistency of
thinning are checked on the generated Deep ID sequence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.deepid import id_channels, parse_query, resolve, select_samples
from core.errors import Cancelled, SelectionError
from core.exr_read import open_exr
from core.idmanifest import manifest_from_header
from core.kernels import flatten, sort_samples
from core.model import Box, DeepImage, PixelType
from core.recolor import (
    Grade,
    RecolorError,
    SampleSelection,
    grade_premultiplied,
    keep_fraction,
    matte_grade,
    output_shape,
    recolor,
    select_ids,
    vary_parameters,
    wipe,
)
from tests.shared_data import shared_path

RGBA = ("R", "G", "B", "A")


def deep(counts, **channels) -> DeepImage:
    counts = np.asarray(counts, dtype=np.int64)
    h, w = counts.shape
    offsets = np.zeros(h * w + 1, np.int64)
    np.cumsum(counts.reshape(-1), out=offsets[1:])
    box = Box(0, 0, w - 1, h - 1)
    chans = {k: np.asarray(v).astype(np.uint32 if np.asarray(v).dtype.kind in "iu" else np.float32)
             for k, v in channels.items()}
    types = {k: PixelType.UINT if v.dtype == np.uint32 else PixelType.FLOAT for k, v in chans.items()}
    return DeepImage(box, box, offsets, chans, types)


def random_image(seed: int, nasty: bool = False, size=(7, 9)) -> DeepImage:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, size)
    counts[0, 0] = 0
    counts[0, 1] = 1
    n = int(counts.sum())
    a = rng.uniform(0.0, 1.0, n)
    a[rng.random(n) < 0.2] = 1.0
    r, g, b = rng.random(n) * a, rng.random(n) * a, rng.random(n) * a
    if nasty:
        a[rng.random(n) < 0.05] = 0.0
        a[rng.random(n) < 0.05] = 1.3
        a[rng.random(n) < 0.05] = -0.4
        r[rng.random(n) < 0.05] = np.nan
        g[rng.random(n) < 0.05] = np.inf
        b[rng.random(n) < 0.1] = 5.0  # glows with little alpha
    ids = rng.integers(0, 7, n)
    return sort_samples(deep(counts, R=r, G=g, B=b, A=a, Z=rng.uniform(1, 9, n), id=ids, hi=rng.integers(0, 3, n)))


# --------------------------------------------------------------------------- the reference


def rotation(degrees: float) -> np.ndarray:
    """Rotation about the grey axis, from Rodrigues' formula."""
    k = np.ones(3) / math.sqrt(3.0)
    t = math.radians(degrees)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return math.cos(t) * np.eye(3) + math.sin(t) * kx + (1 - math.cos(t)) * np.outer(k, k)


def linear_part(grade: Grade) -> np.ndarray:
    luma = np.array([0.2126, 0.7152, 0.0722])
    sat = grade.saturation * np.eye(3) + (1 - grade.saturation) * np.outer(np.ones(3), luma)
    return (1 - grade.mix) * rotation(grade.hue) @ sat @ np.diag(grade.gain)


def middle_sources(n: int, proxy: float) -> list[int]:
    out: dict[int, list[int]] = {}
    for x in range(n):
        out.setdefault(int(math.floor((x + 0.5) * proxy)), []).append(x)
    return [v[(len(v) - 1) // 2] for _, v in sorted(out.items())]


def reference(image: DeepImage, mask, ids, grade: Grade, proxy: float = 1.0) -> np.ndarray:
    """(4, H, W) float32: front-to-back over of each pixel, grading the selected samples."""
    f32 = np.float32
    m = linear_part(grade)
    diagonal = grade.saturation == 1.0 and grade.hue % 360 == 0
    xs, ys = middle_sources(image.width, proxy), middle_sources(image.height, proxy)
    out = np.zeros((4, len(ys), len(xs)), np.float32)
    ch = image.channels
    for yo, y in enumerate(ys):
        for xo, x in enumerate(xs):
            p = y * image.width + x
            acc, col = f32(0), [f32(0), f32(0), f32(0)]
            for s in range(image.offsets[p], image.offsets[p + 1]):
                al = f32(abs(ch["A"][s]))
                c = [f32(ch["R"][s]), f32(ch["G"][s]), f32(ch["B"][s])]
                if mask[s]:
                    if grade.remove:
                        continue
                    if grade.keep_percent < 100 and keep_fraction(ids[s]) >= grade.keep_percent / 100:
                        continue
                    v = np.array(c, np.float64)
                    lin = np.diag(m) * v if diagonal else np.array([m[i] @ v for i in range(3)])
                    if grade.vary_seed is not None and grade.vary_amount > 0:
                        hue, gain = vary_parameters(ids[s], grade.vary_seed, grade.vary_amount)
                        with np.errstate(invalid="ignore"):
                            lin = gain * (rotation(float(hue)) @ lin)
                    if grade.mix > 0:
                        lin = lin + grade.mix * np.array(grade.tint) * float(al)
                    c = [f32(lin[0]), f32(lin[1]), f32(lin[2])]
                w = f32(1) - acc
                col = [col[i] + w * c[i] for i in range(3)]
                acc = acc + w * al
                if acc >= f32(1):
                    break
            out[:3, yo, xo] = col
            out[3, yo, xo] = acc
    return out


def stack(result: dict) -> np.ndarray:
    return np.stack([result[c] for c in RGBA])


GRADES = [
    Grade(gain=(2.0, 0.5, 1.25)),
    Grade(saturation=0.2, hue=130.0),
    Grade(tint=(1.0, 0.2, 0.1), mix=0.7),
    Grade(gain=(1.1, 0.9, 1.4), saturation=1.6, hue=-45.0, tint=(0.2, 0.4, 1.0), mix=0.3),
    Grade(remove=True),
    Grade(keep_percent=40.0, gain=(0.5, 0.5, 0.5)),
    Grade(keep_percent=0.0),
    Grade(vary_seed=7, vary_amount=0.8),
    Grade(vary_seed=-3, vary_amount=0.3, hue=20.0, keep_percent=70.0),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("grade", GRADES, ids=range(len(GRADES)))
@pytest.mark.parametrize("proxy", [1.0, 0.5])
@pytest.mark.parametrize("wide", [False, True])
def test_recolor_matches_the_reference(seed, grade, proxy, wide):
    img = random_image(seed, nasty=True)
    rng = np.random.default_rng(seed + 10)
    mask = rng.random(img.total_samples) < 0.6
    low = img.channels["id"]
    high = img.channels["hi"] if wide else None
    sel = SampleSelection(mask, low, high, "id")
    ids = sel.ids()
    got = stack(recolor(img, sel, grade, proxy=proxy))
    want = reference(img, mask, ids, grade, proxy)
    # an infinite colour may come out as inf or NaN depending on the order of the operations
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-6, atol=1e-6)


# --------------------------------------------------------------------------- exact properties


@pytest.mark.parametrize("seed", [2, 3])
def test_nothing_selected_is_flatten_exactly(seed):
    img = random_image(seed, nasty=True)
    want = flatten(img, list(RGBA))
    for selection in (None, np.zeros(img.total_samples, bool), select_ids(img, channel="id", ids=[99])):
        got = recolor(img, selection, Grade(gain=(3, 3, 3), remove=False, hue=50))
        for c in RGBA:
            np.testing.assert_array_equal(got[c], want[c])


@pytest.mark.parametrize("seed", [4, 5])
def test_a_fully_selected_image_is_the_graded_flatten(seed):
    """Gain, saturation, hue and tint are linear in the premultiplied colour (the tint adds
    tint * alpha) and leave alpha alone, so they commute with compositing. Power-of-two gains
    are exact in floating point: bit for bit; the others to float32 rounding."""
    img = random_image(seed)
    every = np.ones(img.total_samples, bool)
    flat = flatten(img, list(RGBA))
    rgb = np.stack([flat[c] for c in "RGB"], axis=-1)
    exact = Grade(gain=(2.0, 0.5, 0.25))
    got = recolor(img, every, exact)
    want = grade_premultiplied(rgb, flat["A"], exact)
    np.testing.assert_array_equal(np.stack([got[c] for c in "RGB"], axis=-1), want)
    np.testing.assert_array_equal(got["A"], flat["A"])
    for grade in (Grade(gain=(1.3, 0.7, 2.1)), Grade(saturation=0.3), Grade(saturation=1.8), Grade(hue=77.0),
                  Grade(tint=(1.0, 0.2, 0.3), mix=0.6), GRADES[3]):
        got = recolor(img, every, grade)
        want = grade_premultiplied(rgb, flat["A"], grade)
        np.testing.assert_allclose(np.stack([got[c] for c in "RGB"], axis=-1), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got["A"], flat["A"])


def test_grade_premultiplied_definitions():
    rgb = np.array([[0.2, 0.4, 0.6]])
    a = np.array([0.5])
    # saturation 0: the Rec. 709 luma of the colour in every channel
    grey = grade_premultiplied(rgb, a, Grade(saturation=0.0))
    assert np.allclose(grey, 0.2126 * 0.2 + 0.7152 * 0.4 + 0.0722 * 0.6)
    # hue rotation keeps r + g + b and a grey stays grey; 120 degrees cycles the channels
    rot = grade_premultiplied(rgb, a, Grade(hue=120.0))
    assert rot.sum() == pytest.approx(1.2, rel=1e-6)
    assert np.allclose(rot, [[0.6, 0.2, 0.4]], atol=1e-6)
    assert np.allclose(grade_premultiplied(np.array([[0.3, 0.3, 0.3]]), a, Grade(hue=77.0)), 0.3)
    # a full tint is the tint colour premultiplied by alpha
    assert np.allclose(grade_premultiplied(rgb, a, Grade(tint=(1.0, 0.5, 0.0), mix=1.0)), [[0.5, 0.25, 0.0]])
    # alpha 0 (a glow): the linear part still applies, the tint adds nothing
    assert np.allclose(grade_premultiplied(rgb, np.array([0.0]), Grade(gain=(2, 2, 2), tint=(1, 1, 1), mix=0.5)),
                       [[0.2, 0.4, 0.6]])


def test_remove_everything_gives_alpha_zero():
    path = shared_path("deepid", "generated", "shapes.0001.deep.exr")
    part = open_exr(path).parts[0]
    img = part.image
    every = np.ones(img.total_samples, bool)
    got = recolor(img, every, Grade(remove=True))
    assert not got["A"].any() and not got["R"].any()
    thin_none = recolor(img, select_ids(img, channel="particleid", ids=np.unique(img.channels["particleid"])),
                        Grade(keep_percent=0.0))
    assert not thin_none["A"].any()


# --------------------------------------------------------------------------- ids: thin and vary


def kept_ids(image: DeepImage, ids: np.ndarray, percent: float) -> set[int]:
    """The ids whose samples survive thinning, seen in the output: dropping an id changes the alpha."""
    flat_a = flatten(image, ["A"])["A"]
    kept = set()
    for v in ids.tolist():
        sel = select_ids(image, channel="particleid", ids=[v])
        out = recolor(image, sel, Grade(keep_percent=percent))
        visible = recolor(image, sel, Grade(remove=True))["A"]
        if np.array_equal(visible, flat_a):
            continue  # never visible: its fate cannot be seen
        if np.array_equal(out["A"], flat_a):
            kept.add(v)
    return kept


def test_thinning_keeps_the_same_ids_on_every_frame():
    frames = [open_exr(shared_path("deepid", "generated", f"shapes.{n}.deep.exr")).parts[0].image
              for n in ("0001", "0050")]
    ids = [np.unique(f.channels["particleid"]) for f in frames]
    common = np.intersect1d(ids[0], ids[1])
    assert common.size >= 20
    kept = [kept_ids(f, common, 50.0) for f in frames]
    visible_both = set(common.tolist())
    for f in frames:
        flat_a = flatten(f, ["A"])["A"]
        visible_both &= {v for v in common.tolist()
                         if not np.array_equal(recolor(f, select_ids(f, channel="particleid", ids=[v]),
                                                       Grade(remove=True))["A"], flat_a)}
    assert len(visible_both) >= 10
    assert kept[0] & visible_both == kept[1] & visible_both
    assert 0 < len(kept[0] & visible_both) < len(visible_both)
    # and the decision is the documented hash rule
    assert kept[0] & visible_both == {v for v in visible_both if keep_fraction(v) < 0.5}


def test_keep_percent_keeps_about_that_share_and_nests():
    ids = np.arange(20000, dtype=np.uint64) * np.uint64(2654435761)
    f = keep_fraction(ids)
    assert ((f >= 0) & (f < 1)).all()
    assert abs((f < 0.3).mean() - 0.3) < 0.02
    # raising the percentage only adds ids
    assert np.all((f < 0.3) <= (f < 0.6))


def test_variation_is_per_id_and_per_seed():
    ids = np.arange(500, dtype=np.uint64)
    hue, gain = vary_parameters(ids, 1, 1.0)
    hue2, gain2 = vary_parameters(ids, 1, 1.0)
    assert np.array_equal(hue, hue2) and np.array_equal(gain, gain2)
    assert hue.min() >= -180 and hue.max() < 180 and gain.min() >= 0.5 and gain.max() <= 1.5
    assert np.unique(hue).size > 300  # every id its own look
    other, _ = vary_parameters(ids, 2, 1.0)
    assert (other != hue).mean() > 0.9
    half, _ = vary_parameters(ids, 1, 0.5)
    assert np.allclose(half, hue * 0.5)


def test_variation_follows_the_id_across_frames():
    """Frames 1 and 50 of the sequence: the kernel applies the per-id look of each particle."""
    grade = Grade(vary_seed=11, vary_amount=1.0)
    for n in ("0001", "0050"):
        img = open_exr(shared_path("deepid", "generated", f"shapes.{n}.deep.exr")).parts[0].image
        sel = select_ids(img, channel="particleid", ids=np.unique(img.channels["particleid"]))
        got = stack(recolor(img, sel, grade))
        window = (slice(30, 46), slice(40, 64))  # the reference is slow: a crop
        crop = crop_image(img, window)
        want = reference(crop, crop_mask(img, sel.mask, window), crop.channels["particleid"].astype(np.uint64), grade)
        np.testing.assert_allclose(got[:, window[0], window[1]], want, rtol=2e-6, atol=1e-6)


def crop_image(img: DeepImage, window) -> DeepImage:
    ys, xs = window
    h, w = img.height, img.width
    keep_pix = np.zeros((h, w), bool)
    keep_pix[ys, xs] = True
    counts = np.diff(img.offsets).reshape(h, w)
    sample_pix = np.repeat(keep_pix.reshape(-1), counts.reshape(-1))
    sub = counts[ys, xs]
    channels = {k: v[sample_pix] for k, v in img.channels.items()}
    return deep(sub, **channels)


def crop_mask(img: DeepImage, mask: np.ndarray, window) -> np.ndarray:
    ys, xs = window
    keep_pix = np.zeros((img.height, img.width), bool)
    keep_pix[ys, xs] = True
    return mask[np.repeat(keep_pix.reshape(-1), np.diff(img.offsets))]


# --------------------------------------------------------------------------- selections


def test_select_ids_from_a_deep_id_query():
    path = shared_path("deepid", "openexr", "42.deep.exr")
    part = open_exr(path).parts[0]
    img = part.image
    manifest = manifest_from_header(part.header, path)
    selection = resolve(parse_query([["material:blue"], ["model:blob"]]), manifest, img)
    sel = select_ids(img, selection)
    assert np.array_equal(sel.mask, select_samples(img, selection))
    assert sel.count == 3921  # deepidselect's count for this query (shared test data README)
    assert sel.channel == "materialid"
    assert np.array_equal(sel.ids(), img.channels["materialid"].astype(np.uint64))
    by_model = select_ids(img, selection, channel="modelid")
    assert by_model.channel == "modelid"


def test_select_ids_on_a_64_bit_pair():
    path = shared_path("deepid", "generated", "shapes_64.0001.deep.exr")
    img = open_exr(path).parts[0].image
    pair = next(c for c in id_channels(img) if c.high is not None)
    values = pair.values(img.channels)
    chosen = np.unique(values)[:3]
    sel = select_ids(img, channel=pair.name, ids=chosen)
    assert np.array_equal(sel.mask, np.isin(values, chosen))
    assert np.array_equal(sel.ids(), values)
    # thinning uses the whole 64-bit id
    out = recolor(img, sel, Grade(keep_percent=50.0))
    removed = {int(v) for v in chosen if keep_fraction(v) >= 0.5}
    expected = recolor(img, SampleSelection(np.isin(values, list(removed)) if removed else np.zeros_like(sel.mask)),
                       Grade(remove=True))
    np.testing.assert_array_equal(stack(out), stack(expected))


def test_selection_errors():
    img = random_image(0)
    with pytest.raises(SelectionError):
        select_ids(img, channel="nope", ids=[1])
    with pytest.raises(SelectionError):
        select_ids(img, channel="R", ids=[1])
    with pytest.raises(SelectionError):
        select_ids(img)
    with pytest.raises(SelectionError):
        recolor(img, np.ones(3, bool), Grade())
    with pytest.raises(RecolorError):
        recolor(img, np.ones(img.total_samples, bool), Grade(keep_percent=50))  # a mask has no ids
    with pytest.raises(RecolorError):
        recolor(img, None, Grade(mix=2.0))
    with pytest.raises(RecolorError):
        recolor(img, None, Grade(), channels=("R", "G", "id"))
    with pytest.raises(RecolorError):
        recolor(img, None, Grade(), proxy=0.0)
    for bad in (Grade(gain=(1, 2)), Grade(saturation=math.nan), Grade(keep_percent=101), Grade(vary_amount=2),
                Grade(vary_seed=1.5, vary_amount=0.5), Grade(tint=(1, 1, math.inf), mix=0.5)):
        with pytest.raises(RecolorError):
            bad.validate()


def test_cancel_and_proxy():
    img = random_image(6)
    with pytest.raises(Cancelled):
        recolor(img, None, Grade(), cancel=lambda: True)
    sel = select_ids(img, channel="id", ids=[1, 2, 3])
    full = stack(recolor(img, sel, Grade(hue=90)))
    half = stack(recolor(img, sel, Grade(hue=90), proxy=0.5))
    assert half.shape[1:] == output_shape(img.width, img.height, 0.5) == (4, 5)
    ys, xs = middle_sources(img.height, 0.5), middle_sources(img.width, 0.5)
    assert np.array_equal(half, full[:, ys][:, :, xs])


def test_recolor_never_modifies_the_image():
    img = random_image(8, nasty=True)
    before = {k: v.copy() for k, v in img.channels.items()}
    recolor(img, select_ids(img, channel="id", ids=range(7)), GRADES[8])
    for k, v in before.items():
        np.testing.assert_array_equal(img.channels[k], v)


# --------------------------------------------------------------------------- matte grade and wipe


def test_matte_grade_definition():
    rng = np.random.default_rng(0)
    beauty = rng.random((4, 5, 4)).astype(np.float32)
    grade = Grade(gain=(2.0, 1.0, 0.5), hue=10.0)
    graded = grade_premultiplied(beauty[..., :3], beauty[..., 3], grade)
    assert np.allclose(matte_grade(beauty, np.zeros((4, 5)), grade), beauty)
    one = matte_grade(beauty, np.ones((4, 5)), grade)
    assert np.allclose(one[..., :3], graded, rtol=1e-6) and np.array_equal(one[..., 3], beauty[..., 3])
    half = matte_grade(beauty, np.full((4, 5), 0.5), grade)
    assert np.allclose(half[..., :3], 0.5 * (beauty[..., :3] + graded), rtol=1e-6)
    removed = matte_grade(beauty, np.full((4, 5), 0.25), Grade(remove=True))
    assert np.allclose(removed, 0.75 * beauty, rtol=1e-6)
    with pytest.raises(RecolorError):
        matte_grade(beauty[..., :3], np.zeros((4, 5)), grade)


def test_deep_recolor_and_matte_grade_differ_only_at_edges():
    """On the demo scene, the hero's body graded through its deep samples and through its
    coverage matte on the flat beauty: the same inside the body, different where the body's edge
    pixels also hold the wall, the floor or the crate (the matte grade tints those too)."""
    from core.demo import render_demo

    scene = render_demo(128, 72, samples_per_axis=4)
    img = scene.deep
    name = "/char/hero/body"
    body_id = next(i for i, e in scene.id_manifest.groups[0].entries.items() if e == (name,))
    grade = Grade(gain=(0.2, 1.8, 0.4))
    deep_result = stack(recolor(img, select_ids(img, channel="objectid", ids=[body_id]), grade))
    beauty = np.stack([scene.flat.channels[c] for c in RGBA], axis=-1)
    matte = scene.coverage[name]
    flat_result = np.moveaxis(matte_grade(beauty, matte, grade), -1, 0)
    inside = matte >= 0.999
    edge = (matte > 0.2) & (matte < 0.8)
    assert inside.sum() > 50 and edge.sum() > 10
    diff = np.abs(deep_result - flat_result).max(axis=0)
    assert np.median(diff[inside]) < 2e-3  # half-float beauty vs deep samples
    assert np.median(diff[edge]) > 10 * max(np.median(diff[inside]), 1e-4)


def test_wipe():
    a = np.zeros((3, 4, 4), np.float32)
    b = np.ones((3, 4, 4), np.float32)
    out = wipe(a, b, 1)
    assert out[:, :1].max() == 0 and out[:, 1:].min() == 1
    assert np.array_equal(wipe(a, b, -5), b) and np.array_equal(wipe(a, b, 99), a)
    assert out is not a and out is not b
    with pytest.raises(RecolorError):
        wipe(a, b[:2], 1)
