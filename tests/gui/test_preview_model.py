"""PreviewModel: proxy then full resolution, latest wins, the work in the worker, results equal to the
core's, tone changes, exports, the helpers (proxy pixel maps, coverage, windows) against plain references."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import app.preview_model as pm
from app.deepid_model import DeepIdModel
from app.document import DocumentModel
from app.preview_model import (
    DefocusSettings,
    PreviewModel,
    SceneProbe,
    camera_note,
    flat_beauty,
    initial_defocus,
    place_on_window,
    proxy_axis,
    selected_coverage,
    subsample,
    upscale,
)
from core.defocus import SimpleBlur, ThinLens, defocus, guess_camera, output_shape
from core.display import display_transform
from core.exr_read import open_exr
from core.kernels import flatten
from core.model import Attribute, Box, DeepImage, PartHeader, PixelType
from core.recolor import Grade, matte_grade, recolor, select_ids
from tests.gui.helpers import make_deep, make_document

pytestmark = pytest.mark.gui

SETTLE = 80


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def setup(qtbot):
    """A document model on a small synthetic deep image, the Deep IDs model and the preview model."""
    made = []

    def make(image=None, settle_ms=SETTLE, proxy=0.25):
        image = image if image is not None else make_deep(np.random.default_rng(3).integers(0, 5, (18, 27)))
        doc = DocumentModel()
        ids = DeepIdModel(doc)
        preview = PreviewModel(doc, ids, None, settle_ms=settle_ms, proxy=proxy)
        made.append((preview, ids))
        doc.set_document(make_document(image))
        return doc, ids, preview

    yield make
    for preview, ids in made:
        ids.shutdown()
        preview.shutdown()


class Recorder:
    def __init__(self, preview: PreviewModel):
        self.frames = []
        preview.preview_changed.connect(lambda f: f is not None and self.frames.append(f))

    @property
    def full(self):
        return [f for f in self.frames if f.is_full]


def wait_current(qtbot, preview: PreviewModel, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: preview.is_current and not preview.busy, timeout=timeout)


def camera(settings: DefocusSettings):
    return settings.camera()


def rgba_of(result: dict) -> np.ndarray:
    return np.dstack([result[c] for c in ("R", "G", "B", "A")])


# ---------------------------------------------------------------------- pure helpers
@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 33])
@pytest.mark.parametrize("proxy", [1.0, 0.5, 0.25, 0.3])
def test_proxy_axis_against_reference(n, proxy):
    n_out = output_shape(n, 1, proxy)[1]
    to_out, middle = proxy_axis(n, proxy)
    ref_to = [min(math.floor((x + 0.5) * proxy), n_out - 1) for x in range(n)]
    assert to_out.tolist() == ref_to
    ref_mid = []
    for o in range(n_out):
        sources = [x for x in range(n) if ref_to[x] == o]
        ref_mid.append(sources[(len(sources) - 1) // 2])
    assert middle.tolist() == ref_mid


@pytest.mark.parametrize("shape", [(9, 13), (1, 1), (6, 5), (17, 4)])
@pytest.mark.parametrize("proxy", [0.5, 0.25])
def test_subsample_matches_the_core_proxy(shape, proxy):
    """The matte side of the wipe subsamples like core.recolor's proxy: a recolor of nothing at proxy
    equals the full flattened beauty subsampled."""
    rng = np.random.default_rng(sum(shape))
    image = make_deep(rng.integers(0, 4, shape), rng=rng, with_zback=False)
    full = flat_beauty(image)
    small = recolor(image, None, Grade(), proxy=proxy)
    assert np.array_equal(subsample(full, proxy), rgba_of(small))
    assert subsample(full, proxy).shape[:2] == output_shape(shape[1], shape[0], proxy)


@pytest.mark.parametrize("proxy", [1.0, 0.5, 0.25])
def test_upscale_reference(proxy):
    h, w = 11, 14
    ho, wo = output_shape(w, h, proxy)
    small = np.arange(ho * wo * 4, dtype=np.int64).reshape(ho, wo, 4)
    big = upscale(small, h, w, proxy)
    assert big.shape == (h, w, 4)
    for y in range(h):
        for x in range(w):
            oy, ox = min(math.floor((y + 0.5) * proxy), ho - 1), min(math.floor((x + 0.5) * proxy), wo - 1)
            assert np.array_equal(big[y, x], small[oy, ox])


def _coverage_reference(image: DeepImage, selected: np.ndarray) -> np.ndarray:
    out = np.zeros(image.width * image.height)
    alpha = image.channels.get("A")
    for p in range(image.width * image.height):
        acc = 0.0
        for i, s in enumerate(range(int(image.offsets[p]), int(image.offsets[p + 1]))):
            a = abs(float(alpha[s])) if alpha is not None else (1.0 if i == 0 else 0.0)
            w = a * (1.0 - acc) if alpha is not None else a
            if selected[s]:
                out[p] += w
            acc += w
    return out.reshape(image.height, image.width)


@pytest.mark.parametrize("seed", range(4))
def test_selected_coverage_against_reference(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, (7, 9))
    counts[0, 0] = 0
    counts[0, 1] = 1
    image = make_deep(counts, rng=rng)
    n = image.total_samples
    if seed == 1:  # opaque samples without A: only the front one shows
        del image.channels["A"]
    selected = rng.uniform(0, 1, n) < 0.5
    got = selected_coverage(image, selected)
    ref = _coverage_reference(image, selected)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    if "A" in image.channels:  # a full selection covers what the flattened alpha says
        everything = selected_coverage(image, np.ones(n, bool))
        np.testing.assert_allclose(everything, flatten(image, ["A"])["A"], rtol=1e-5, atol=1e-6)


def test_place_on_window():
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    window = Box(2, 1, 5, 3)  # x 2..5, y 1..3
    target = Box(0, 0, 4, 2)
    got = place_on_window(values, window, target)
    ref = np.zeros((3, 5), np.float32)
    for y in range(3):
        for x in range(5):
            sx, sy = x - window.xmin, y - window.ymin
            if 0 <= sx < 4 and 0 <= sy < 3:
                ref[y, x] = values[sy, sx]
    assert np.array_equal(got, ref)


def test_initial_defocus_from_the_header_and_without():
    attrs = {"cameraFocalLength": Attribute("cameraFocalLength", "float", 85.0),
             "cameraFNumber": Attribute("cameraFNumber", "float", 1.8),
             "cameraTargetDistance": Attribute("cameraTargetDistance", "float", 420.0)}
    guess = guess_camera(PartHeader(0, attrs))
    probe = SceneProbe((100.0, 400.0, 900.0))
    s = initial_defocus(guess, probe, 640)
    assert (s.focal_length_mm, s.f_stop, s.focus_distance, s.simple) == (85.0, 1.8, 420.0, False)
    note = camera_note(guess)
    assert "cameraFocalLength" in note and "cameraFNumber" in note and "cameraTargetDistance" in note
    # no camera: simple mode on the probed median, a blur of 2 % of the width at the farthest probe
    s = initial_defocus(guess_camera(PartHeader(0, {})), probe, 640)
    assert s.simple and s.focus_distance == 400.0
    assert s.blur_per_unit * 500.0 == pytest.approx(0.02 * 640, rel=1e-2)
    assert "No camera data" in camera_note(None)


# ---------------------------------------------------------------------- rendering
def test_proxy_then_full_resolution_equal_to_the_core(qtbot, setup):
    doc, _ids, preview = setup()
    image = doc.image
    rec = Recorder(preview)
    preview.set_defocus(DefocusSettings(focus_distance=5.0, simple=True, blur_per_unit=0.8, max_radius=6.0))
    preview.set_effect("defocus")
    wait_current(qtbot, preview)
    assert rec.frames[0].proxy == 0.25 and rec.frames[-1].is_full
    assert [f.is_full for f in rec.frames].count(True) == 1
    cam = SimpleBlur(5.0, 0.8)
    small, full = rec.frames[0], rec.frames[-1]
    for frame, proxy in ((small, 0.25), (full, 1.0)):
        ref = defocus(image, cam, max_radius=6.0, proxy=proxy)
        for c in ("R", "G", "B", "A"):
            assert np.array_equal(frame.result[c], ref[c]), (proxy, c)
        assert frame.rgba.shape == (image.height, image.width, 4)  # a proxy is shown upscaled
    assert small.result["A"].shape == output_shape(image.width, image.height, 0.25)
    shown = display_transform(np.dstack([full.result[c] for c in "RGB"]), exposure=0.0, transfer="srgb")
    assert np.array_equal(full.rgba, shown)
    assert preview.preview is full


def test_thin_lens_preview_equals_the_core(qtbot, setup):
    doc, _ids, preview = setup()
    settings = DefocusSettings(focus_distance=4.0, f_stop=1.4, focal_length_mm=85.0, sensor_width_mm=36.0,
                               units_to_m=1.0, max_radius=5.0)
    preview.set_defocus(settings)
    preview.set_effect("defocus")
    wait_current(qtbot, preview)
    ref = defocus(doc.image, ThinLens(4.0, 1.4, 85.0, 36.0, 1.0), max_radius=5.0)
    for c in ("R", "G", "B", "A"):
        assert np.array_equal(preview.preview.result[c], ref[c])


def test_latest_wins(qtbot, setup, monkeypatch):
    doc, _ids, preview = setup()
    real = pm.defocus
    seen = []

    def slow(image, cam, **kw):
        seen.append((cam.blur_per_unit, kw["proxy"]))
        threading.Event().wait(0.05)  # a render slower than the changes come
        return real(image, cam, **kw)

    monkeypatch.setattr(pm, "defocus", slow)
    rec = Recorder(preview)
    preview.set_effect("defocus")
    values = np.linspace(0.1, 1.0, 12).round(3).tolist()
    for v in values:
        preview.update_defocus(focus_distance=5.0, simple=True, blur_per_unit=v, max_radius=5.0)
        qtbot.wait(15)
    wait_current(qtbot, preview)
    assert len(rec.full) == 1 and rec.full[0].target.defocus.blur_per_unit == values[-1]
    assert rec.frames[-1] is rec.full[0]
    assert [p for _v, p in seen].count(1.0) == 1  # one full-resolution render, for the last value
    assert len(seen) < len(values) + 1  # intermediate requests were dropped, not all rendered
    ref = defocus(doc.image, SimpleBlur(5.0, values[-1]), max_radius=5.0)
    assert np.array_equal(preview.preview.result["R"], ref["R"])


def test_a_stale_full_resolution_render_is_cancelled(qtbot, setup, monkeypatch):
    doc, _ids, preview = setup()
    real = pm.defocus
    started = threading.Event()
    cancels = []

    def slow_full(image, cam, **kw):
        if kw["proxy"] == 1.0 and cam.blur_per_unit == 0.5:
            started.set()
            for _ in range(200):  # poll the cancel flag as the core does between slices
                if kw["cancel"]():
                    cancels.append(cam.blur_per_unit)
                    raise pm.Cancelled()
                threading.Event().wait(0.01)
        return real(image, cam, **kw)

    monkeypatch.setattr(pm, "defocus", slow_full)
    rec = Recorder(preview)
    preview.set_defocus(DefocusSettings(focus_distance=5.0, simple=True, blur_per_unit=0.5, max_radius=4.0))
    preview.set_effect("defocus")
    qtbot.waitUntil(started.is_set, timeout=30000)
    preview.update_defocus(blur_per_unit=0.9)
    wait_current(qtbot, preview)
    assert cancels == [0.5]
    assert all(f.target.defocus.blur_per_unit == 0.9 for f in rec.full)


def test_the_worker_does_the_work(qtbot, setup, monkeypatch):
    doc, ids, preview = setup()
    main = threading.get_ident()
    calls = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls.append((name, threading.get_ident()))
            return fn(*args, **kwargs)
        return wrapped

    for name in ("defocus", "recolor", "display_transform", "matte_grade", "select_ids"):
        monkeypatch.setattr(pm, name, spy(name, getattr(pm, name)))
    preview.set_effect("defocus")
    wait_current(qtbot, preview)
    ids.set_ids("channel:id", doc.image.channels["id"][:5].tolist())
    preview.update_grade(gain=(2.0, 1.0, 0.5))
    preview.set_effect("recolor")
    wait_current(qtbot, preview)
    names = {n for n, _t in calls}
    assert {"defocus", "recolor", "display_transform", "matte_grade", "select_ids"} <= names
    assert all(t != main for _n, t in calls), "a kernel ran on the GUI thread"
    assert preview.preview.thread != main
    assert preview.lane.name == "preview" and preview.jobs_run >= 4


def test_recolor_preview_equals_the_core_and_the_matte_comparison(qtbot, setup):
    doc, ids, preview = setup()
    image = doc.image
    chosen = np.unique(image.channels["id"])[::3]
    ids.set_ids("channel:id", chosen.tolist())
    grade = Grade(gain=(1.5, 0.5, 2.0), saturation=0.7, hue=30.0, tint=(0.2, 0.9, 0.1), mix=0.25)
    rec = Recorder(preview)
    preview.set_grade(grade)
    preview.set_effect("recolor")
    wait_current(qtbot, preview)
    selection = select_ids(image, channel="id", ids=chosen)
    beauty = np.dstack([flatten(image, [c])[c] for c in ("R", "G", "B", "A")])
    assert np.array_equal(beauty, flat_beauty(image))
    coverage = selected_coverage(image, selection.mask)
    for frame in (rec.frames[0], rec.frames[-1]):
        ref = recolor(image, selection, grade, proxy=frame.proxy)
        for c in ("R", "G", "B", "A"):
            assert np.array_equal(frame.result[c], ref[c])
        matte = matte_grade(subsample(beauty, frame.proxy), subsample(coverage, frame.proxy), grade)
        assert np.array_equal(rgba_of(frame.compare_result), matte)
        assert frame.compare_rgba.shape == frame.rgba.shape == (image.height, image.width, 4)
    # where a pixel mixes selected samples with others, the two differ; elsewhere they agree
    deep, matte = rgba_of(rec.frames[-1].result), rgba_of(rec.frames[-1].compare_result)
    partial = (coverage > 1e-3) & (coverage < beauty[..., 3] - 1e-3)
    assert np.abs(deep - matte)[partial].max() > 1e-3
    np.testing.assert_allclose(deep[coverage == 0], matte[coverage == 0], atol=1e-6)


def test_recolor_thin_and_vary_use_the_ids(qtbot, setup):
    doc, ids, preview = setup()
    image = doc.image
    chosen = np.unique(image.channels["id"])[::2]
    ids.set_ids("channel:id", chosen.tolist())
    grade = Grade(keep_percent=40.0, vary_seed=7, vary_amount=0.6)
    preview.set_grade(grade)
    preview.set_effect("recolor")
    wait_current(qtbot, preview)
    ref = recolor(image, select_ids(image, channel="id", ids=chosen), grade)
    assert np.array_equal(preview.preview.result["G"], ref["G"])


def test_recolor_of_nothing_is_the_flattened_image(qtbot, setup):
    doc, _ids, preview = setup()
    preview.update_grade(gain=(3.0, 3.0, 3.0))
    preview.set_effect("recolor")
    wait_current(qtbot, preview)
    flat = flatten(doc.image, ["R", "G", "B", "A"])
    for c in ("R", "G", "B", "A"):
        assert np.array_equal(preview.preview.result[c], flat[c])
    assert "nothing selected" in preview.selection_text()


def test_a_tone_change_only_redisplays(qtbot, setup, monkeypatch):
    doc, _ids, preview = setup()
    preview.set_defocus(DefocusSettings(focus_distance=5.0, simple=True, blur_per_unit=0.5, max_radius=4.0))
    preview.set_effect("defocus")
    wait_current(qtbot, preview)
    before = preview.preview
    calls = []
    real = pm.defocus
    monkeypatch.setattr(pm, "defocus", lambda *a, **k: calls.append(1) or real(*a, **k))
    doc.set_exposure(1.5)
    wait_current(qtbot, preview)
    after = preview.preview
    assert after is not before and calls == []
    assert after.result is before.result and after.tone.exposure == 1.5
    shown = display_transform(np.dstack([after.result[c] for c in "RGB"]), exposure=1.5, transfer="srgb")
    assert np.array_equal(after.rgba, shown)


def test_bad_settings_report_and_nothing_runs(qtbot, setup):
    _doc, _ids, preview = setup()
    preview.set_defocus(DefocusSettings(focus_distance=0.01, f_stop=2.0, focal_length_mm=50.0, units_to_m=1.0))
    preview.set_effect("defocus")
    qtbot.waitUntil(lambda: not preview.busy, timeout=10000)
    assert preview.preview is None and "focal length" in preview.status
    preview.update_defocus(focus_distance=5.0)
    wait_current(qtbot, preview)
    assert preview.preview is not None


def test_effect_off_and_a_flat_part(qtbot, setup):
    from tests.gui.helpers import make_flat

    doc, _ids, preview = setup()
    preview.set_effect("defocus")
    wait_current(qtbot, preview)
    preview.set_effect("off")
    assert preview.preview is None
    doc.set_document(make_document(make_flat(), path="/nonexistent/flat.exr"))
    preview.set_effect("defocus")
    qtbot.waitUntil(lambda: not preview.busy, timeout=10000)
    assert preview.preview is None and "deep" in preview.status


def test_a_new_document_clears_the_preview_and_reads_its_camera(qtbot, setup):
    doc, _ids, preview = setup()
    preview.set_effect("defocus")
    wait_current(qtbot, preview)
    image = make_deep(np.full((6, 8), 2), rng=np.random.default_rng(9))
    header_attrs = {"cameraFNumber": Attribute("cameraFNumber", "float", 2.0),
                    "cameraFocalLength": Attribute("cameraFocalLength", "float", 35.0),
                    "cameraTargetDistance": Attribute("cameraTargetDistance", "float", 6.0)}
    new = make_document(image, path="/nonexistent/camera.exr")
    new.parts[0].header.attributes.update(header_attrs)
    cleared = []
    preview.preview_changed.connect(lambda f: cleared.append(f))
    doc.set_document(new)
    assert cleared[0] is None
    s = preview.defocus
    assert (s.f_stop, s.focal_length_mm, s.focus_distance, s.simple) == (2.0, 35.0, 6.0, False)
    assert preview.camera_guess.sources["f_stop"] == "cameraFNumber"
    wait_current(qtbot, preview)
    ref = defocus(image, ThinLens(6.0, 2.0, 35.0, 36.0, 1.0), max_radius=s.max_radius)
    assert np.array_equal(preview.preview.result["A"], ref["A"])


def test_focus_on_a_pixel(qtbot, setup):
    from core.defocus import focus_at

    dw = Box(10, 20, 36, 37)
    image = make_deep(np.random.default_rng(5).integers(1, 4, (18, 27)), data_window=dw, display_window=dw)
    doc, _ids, preview = setup(image)
    depth = preview.focus_on((15, 25))
    assert depth == focus_at(image, 5, 5) and preview.defocus.focus_distance == depth
    assert preview.effect == "defocus"
    assert preview.focus_on((0, 0)) is None and "nothing to focus on" in preview.status


# ---------------------------------------------------------------------- export
def test_export_writes_the_full_resolution_effect(qtbot, setup, tmp_path):
    dw = Box(3, -2, 29, 15)
    display = Box(0, 0, 31, 19)
    image = make_deep(np.random.default_rng(8).integers(0, 4, (18, 27)), data_window=dw, display_window=display)
    doc, _ids, preview = setup(image)
    preview.set_defocus(DefocusSettings(focus_distance=5.0, simple=True, blur_per_unit=0.6, max_radius=5.0))
    preview.set_effect("defocus")
    qtbot.waitUntil(lambda: preview.preview is not None, timeout=30000)  # export may start before full res
    out = tmp_path / "defocus.exr"
    with qtbot.waitSignal(preview.export_finished, timeout=30000) as blocker:
        assert preview.export(out)
    assert blocker.args[0] == str(out)
    written = open_exr(out).parts[0]
    ref = defocus(image, SimpleBlur(5.0, 0.6), max_radius=5.0)
    assert written.image.data_window == dw and written.image.display_window == display
    assert sorted(written.image.channels) == ["A", "B", "G", "R"]
    for c in ("R", "G", "B", "A"):
        assert written.image.pixel_types[c] is PixelType.FLOAT
        assert np.array_equal(written.image.channels[c], ref[c])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_export_recolor_and_refusals(qtbot, setup, tmp_path):
    doc, ids, preview = setup()
    image = doc.image
    chosen = np.unique(image.channels["id"])[:4]
    ids.set_ids("channel:id", chosen.tolist())
    grade = Grade(saturation=0.0)
    preview.set_grade(grade)
    out = tmp_path / "recolor.exr"
    with qtbot.waitSignal(preview.export_finished, timeout=30000):
        assert preview.export(out, "recolor")  # the effect need not be on
    ref = recolor(image, select_ids(image, channel="id", ids=chosen), grade)
    got = open_exr(out).parts[0].image.channels
    assert all(np.array_equal(got[c], ref[c]) for c in "RGBA")
    with qtbot.waitSignal(preview.export_failed, timeout=5000) as blocker:
        assert not preview.export(tmp_path / "x.exr", "off")
    assert "preview" in blocker.args[1]
