"""The viewer's preview effects: deep defocus and per-id recolor, rendered live in a worker.

:class:`PreviewModel` observes the :class:`~app.document.DocumentModel` (and the Deep IDs and
Cryptomatte models for what to recolor) and holds, one signal per property:

* the **effect** shown over the image: ``"off"``, ``"defocus"`` or ``"recolor"`` (one at a time:
  both read the deep samples and give a flat image);
* the **defocus settings** (:class:`DefocusSettings`: a thin lens, or the one-control simple
  mode), initialised for each new file from :func:`core.defocus.guess_camera` when the header
  holds camera data (the **camera guess** says which attribute each value came from), else in
  simple mode focused on the median depth seen at a grid of pixels (the **scene probe**);
  the **focus tool** (a click on the image focuses on the frontmost visible surface there,
  :func:`core.defocus.focus_at`);
* the **grade** (:class:`core.recolor.Grade`), the **source** of the ids it applies to (the
  Deep IDs selection, or the current Cryptomatte layer's matte), whether to **compare** the deep
  recolor with the matte-based grade, and the **wipe position** of that comparison;
* the **preview** (:class:`PreviewFrame`), a one-line **status** and **busy**.

**Rendering.** Every change of a setting renders a proxy (``proxy``: 0.25 of the resolution)
at once, and the full resolution once the settings have not changed for ``settle_ms``
(250 ms) and the proxy of those settings has shown. One job runs at a time on the
``preview`` lane: while a proxy renders, newer requests wait and only the latest is rendered
next (a proxy is quick; a stale full-resolution render is cancelled, ``cancel=`` reaching the
core). A proxy result of slightly older settings is still shown (it is closer to what the
user asked than what is on screen); a full-resolution result is shown only if it is for the
current settings. Only the display changes with the exposure/gamma: the float result is kept
and shown again with the new tone, in the worker as well. The GUI thread never calls
:func:`core.defocus.defocus`, :func:`core.recolor.recolor` or the display transform.

**The matte comparison.** Compositors regrade an object of a flat beauty through a coverage
matte (Cryptomatte): ``lerp(beauty, grade(beauty), matte)`` (:func:`core.recolor.matte_grade`).
On a deep part with the Deep IDs selection the comparison is made from the same ids and the
same file: the beauty is the deep image flattened (plain *over*, exactly what the recolor
gives for an empty selection) and the matte is the **visible coverage of the selected samples**
per pixel (the sum of ``|a| * (1 - alpha in front)`` over them): what a Cryptomatte of those
ids would hold. The wipe shows the deep recolor left of the divider and the matte-based grade
right of it; the difference is at edges, where a pixel mixes the selected object with others
(the matte grades the whole mix, so the neighbours' colour is graded too) or with nothing
(the matte under-grades). With the **Cryptomatte** source (a flat beauty, like the demo's
``demo.exr``) there are no deep samples to regrade: the preview is the matte-based grade of
the flat beauty (or of the flattened deep part) with the layer's matte, and there is no wipe.

Exports write the current effect at full resolution as RGBA float32 with the part's data and
display windows, atomically and never over the open file (in a worker, reusing the shown
result when it is already the full-resolution one).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from app.document import DocumentModel
from app.render import PartKey, Tone
from app.workers import TaskLane, make_pool, wait_for_pool
from core.deepid import IdSelection, select_samples, visible_weights
from core.defocus import DEFAULT_MAX_RADIUS, CameraGuess, SimpleBlur, ThinLens, defocus, focus_at, guess_camera
from core.display import display_transform
from core.errors import Cancelled, DeepscopeError
from core.model import Box, DeepImage, FlatImage, PixelType
from core.recolor import Grade, SampleSelection, matte_grade, recolor, select_ids

EFFECTS = ("off", "defocus", "recolor")
EFFECT_LABELS = {"off": "Off", "defocus": "Defocus", "recolor": "Recolor"}
SOURCES = ("deep ids", "cryptomatte")
SOURCE_LABELS = {"deep ids": "Deep IDs selection", "cryptomatte": "Cryptomatte matte"}
PROXY = 0.25
SETTLE_MS = 250
PROBE_GRID = 9
#: the simple mode's default blur: this fraction of the width at the probed depth farthest from the focus
DEFAULT_BLUR_FRACTION = 0.02
COLOUR = ("R", "G", "B")
FIELD_LABELS = {"focal_length_mm": "focal length", "f_stop": "f-stop", "focus_distance": "focus distance",
                "sensor_width_mm": "sensor width", "fov_degrees": "field of view", "aperture_radius": "aperture"}

Image = DeepImage | FlatImage


# =========================================================================== settings


@dataclass(frozen=True)
class DefocusSettings:
    """What the defocus preview uses: a thin lens (mm, f-number, focus distance in depth units,
    ``units_to_m`` metres per depth unit) or, with ``simple``, a blur of ``blur_per_unit`` pixels
    per depth unit away from ``focus_distance``; ``max_radius`` in full-resolution pixels."""

    focus_distance: float = 10.0
    f_stop: float = 2.8
    focal_length_mm: float = 50.0
    sensor_width_mm: float = 36.0
    units_to_m: float = 1.0
    max_radius: float = DEFAULT_MAX_RADIUS
    simple: bool = False
    blur_per_unit: float = 1.0

    def camera(self) -> ThinLens | SimpleBlur:
        if self.simple:
            return SimpleBlur(float(self.focus_distance), float(self.blur_per_unit))
        return ThinLens(focus_distance=float(self.focus_distance), f_stop=float(self.f_stop),
                        focal_length_mm=float(self.focal_length_mm), sensor_width_mm=float(self.sensor_width_mm),
                        units_to_m=float(self.units_to_m))

    def validate(self) -> None:
        """Raise :class:`core.defocus.DefocusError` when the core would refuse these settings."""
        self.camera().validate()
        if not (self.max_radius >= 0 and math.isfinite(self.max_radius)):
            from core.defocus import DefocusError

            raise DefocusError(f"max_radius must be a finite number >= 0, got {self.max_radius!r}")


@dataclass(frozen=True)
class SceneProbe:
    """Front depths seen at a grid of pixels: a default focus (their median) and a depth range."""

    depths: tuple[float, ...]

    @property
    def z_min(self) -> float:
        return min(self.depths)

    @property
    def z_max(self) -> float:
        return max(self.depths)

    @property
    def focus(self) -> float:
        return float(np.median(self.depths))


def probe_scene(image: DeepImage, grid: int = PROBE_GRID) -> SceneProbe | None:
    """:func:`core.defocus.focus_at` at ``grid`` x ``grid`` pixels (cheap: a few dozen pixels)."""
    if not isinstance(image, DeepImage) or "Z" not in image.channels or image.width * image.height == 0:
        return None
    depths = []
    for j in range(grid):
        y = min(int((j + 0.5) * image.height / grid), image.height - 1)
        for i in range(grid):
            x = min(int((i + 0.5) * image.width / grid), image.width - 1)
            z = focus_at(image, x, y)
            if z is not None and math.isfinite(z) and z > 0:
                depths.append(float(z))
    return SceneProbe(tuple(depths)) if depths else None


def initial_defocus(guess: CameraGuess | None, probe: SceneProbe | None, width: int,
                    base: DefocusSettings | None = None) -> DefocusSettings:
    """Settings for a newly opened part: the header's camera when it has one (the rest from
    ``base``), else simple mode focused on the probed median depth, blurring
    :data:`DEFAULT_BLUR_FRACTION` of the width at the probed depth farthest from it."""
    base = base or DefocusSettings()
    focus = probe.focus if probe is not None else base.focus_distance
    if guess is not None and guess.found:
        default = ThinLens(focus_distance=focus, f_stop=base.f_stop, focal_length_mm=base.focal_length_mm,
                           sensor_width_mm=base.sensor_width_mm, units_to_m=base.units_to_m)
        lens = guess.lens(default)
        if lens is not None:
            return replace(base, focus_distance=lens.focus_distance, f_stop=lens.f_stop,
                           focal_length_mm=lens.focal_length_mm, sensor_width_mm=lens.sensor_width_mm,
                           simple=False)
    blur = base.blur_per_unit
    if probe is not None:
        far = max(abs(z - focus) for z in probe.depths)
        if far > 0:
            blur = DEFAULT_BLUR_FRACTION * max(width, 1) / far
    return replace(base, focus_distance=focus, simple=True, blur_per_unit=float(f"{blur:.3g}"))


def camera_note(guess: CameraGuess | None) -> str:
    """Where the camera values came from, for the panel."""
    if guess is None or not guess.found:
        return "No camera data in the header: simple mode (blur per depth unit) until you set a lens."
    parts = []
    for name, source in guess.sources.items():
        value = getattr(guess, name, None)
        if value is None:
            continue
        parts.append(f"{FIELD_LABELS.get(name, name)} {value:.4g} ← {source}")
    return "Camera from the header: " + "; ".join(parts)


# =========================================================================== proxy pixels


def proxy_axis(n: int, proxy: float) -> tuple[np.ndarray, np.ndarray]:
    """``(to_out, middle)`` along one axis at ``proxy`` scale (the rule of :func:`core.defocus.output_shape`):
    the output index of every source index, and the middle source index of each output index
    (the one :func:`core.recolor.recolor` shows)."""
    n_out = int(math.floor((n - 0.5) * proxy)) + 1 if n > 0 else 0
    to_out = np.minimum(np.floor((np.arange(n) + 0.5) * proxy).astype(np.int64), max(n_out - 1, 0))
    idx = np.arange(n_out)
    start = np.searchsorted(to_out, idx, "left")
    stop = np.searchsorted(to_out, idx, "right")
    return to_out, (start + stop - 1) // 2


def subsample(array: np.ndarray, proxy: float) -> np.ndarray:
    """The pixels a proxy shows of a full-resolution ``(H, W, ...)`` array (the middle source pixel of each)."""
    if proxy >= 1.0:
        return array
    _, ys = proxy_axis(array.shape[0], proxy)
    _, xs = proxy_axis(array.shape[1], proxy)
    return array[ys][:, xs]


def upscale(array: np.ndarray, height: int, width: int, proxy: float) -> np.ndarray:
    """A proxy-resolution ``(h, w, ...)`` array back at ``height`` x ``width``: each source
    pixel shows the output pixel it went into (nearest, exact for the proxy's pixel map)."""
    if proxy >= 1.0 and array.shape[:2] == (height, width):
        return array
    ty, _ = proxy_axis(height, proxy)
    tx, _ = proxy_axis(width, proxy)
    return np.ascontiguousarray(array[ty][:, tx])


# =========================================================================== worker side (no Qt)


@dataclass(frozen=True)
class Target:
    """What a preview shows, all hashable: two equal targets give the same float result."""

    key: PartKey
    effect: str
    defocus: DefocusSettings | None = None
    grade: Grade | None = None
    source: str | None = None
    selection_key: tuple | None = None
    compare: bool = False


@dataclass(frozen=True, eq=False)
class SelectionData:
    """What a recolor's selection gives, computed once per selection in the worker: the selected
    samples (deep), the coverage matte of the matte-based grade, the flattened beauty."""

    key: tuple
    samples: SampleSelection | None = None
    matte: np.ndarray | None = None
    beauty: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class PreviewRequest:
    """An immutable preview job; ``previous`` is a frame of the same target and resolution
    whose float result is shown again with the new ``tone``."""

    target: Target
    image: Image
    proxy: float
    tone: Tone
    id_selection: IdSelection | None = None
    crypto_matte: np.ndarray | None = None
    crypto_window: Box | None = None
    cache: SelectionData | None = None
    previous: PreviewFrame | None = None


@dataclass(eq=False)
class PreviewFrame:
    """A computed preview. ``result`` is the effect (R, G, B, A float32 at ``proxy`` scale);
    ``rgba`` its display over the part's data window at full size (uint8, upscaled from a proxy).
    ``compare_*`` is the matte-based grade of the recolor comparison. ``thread`` is the
    ``threading.get_ident()`` of the thread that made it."""

    target: Target
    proxy: float
    tone: Tone
    result: dict[str, np.ndarray]
    rgba: np.ndarray
    data_window: Box
    display_window: Box
    compare_result: dict[str, np.ndarray] | None = None
    compare_rgba: np.ndarray | None = None
    note: str = ""
    seconds: float = 0.0
    thread: int = 0
    selection: SelectionData | None = None

    @property
    def is_full(self) -> bool:
        return self.proxy >= 1.0


def _check(cancel) -> None:
    if cancel is not None and cancel():
        raise Cancelled()


def place_on_window(values: np.ndarray, window: Box, target: Box) -> np.ndarray:
    """A ``(H, W)`` array over ``window`` re-placed over ``target`` (zero where it has no data)."""
    out = np.zeros((target.height, target.width), dtype=np.float32)
    x0, y0 = max(window.xmin, target.xmin), max(window.ymin, target.ymin)
    x1, y1 = min(window.xmax, target.xmax) + 1, min(window.ymax, target.ymax) + 1
    if x0 < x1 and y0 < y1:
        out[y0 - target.ymin:y1 - target.ymin, x0 - target.xmin:x1 - target.xmin] = \
            values[y0 - window.ymin:y1 - window.ymin, x0 - window.xmin:x1 - window.xmin]
    return out


def selected_coverage(image: DeepImage, selected: np.ndarray) -> np.ndarray:
    """Per pixel, the visible coverage of the selected samples (``(H, W)`` float32): the sum of
    their ``|a| * (1 - alpha in front)``, i.e. what a Cryptomatte of the same ids holds."""
    n = image.total_samples
    if "A" in image.channels:
        weights = visible_weights(image).astype(np.float64)
    else:  # opaque samples: the first of each pixel is all that shows
        weights = np.zeros(n, np.float64)
        starts = image.offsets[:-1][np.diff(image.offsets) > 0]
        weights[starts] = 1.0
    picked = np.where(np.asarray(selected, dtype=np.bool_).reshape(-1), weights, 0.0)
    cum = np.zeros(n + 1, np.float64)
    np.cumsum(picked, out=cum[1:])
    cov = cum[image.offsets[1:]] - cum[image.offsets[:-1]]
    return cov.astype(np.float32).reshape(image.height, image.width)


def flat_beauty(image: Image) -> np.ndarray:
    """``(H, W, 4)`` float32 premultiplied RGBA: the flat part's, or the deep part flattened with
    plain *over* (what :func:`core.recolor.recolor` gives for an empty selection)."""
    if isinstance(image, DeepImage):
        planes = recolor(image, None, Grade())
    else:
        h, w = image.height, image.width
        planes = {c: image.channels.get(c) for c in ("R", "G", "B", "A")}
        if planes["A"] is None:
            planes["A"] = np.ones((h, w), np.float32)
        for c in COLOUR:
            if planes[c] is None:
                planes[c] = np.zeros((h, w), np.float32)
    return np.ascontiguousarray(np.dstack([np.asarray(planes[c], np.float32) for c in ("R", "G", "B", "A")]))


def _planes(rgba: np.ndarray) -> dict[str, np.ndarray]:
    return {c: np.ascontiguousarray(rgba[..., i]) for i, c in enumerate(("R", "G", "B", "A"))}


def show(result: dict[str, np.ndarray], tone: Tone, height: int, width: int, proxy: float) -> np.ndarray:
    """The display of a result (colour over black, opaque, as the canvas shows an image) at full size."""
    some = result["A"]
    rgb = np.zeros(some.shape + (3,), np.float32)
    for i, c in enumerate(COLOUR):
        if c in result:
            rgb[..., i] = result[c]
    rgba = display_transform(rgb, exposure=tone.exposure, gamma=tone.gamma, transfer=tone.transfer)
    return upscale(rgba, height, width, proxy)


def compute_preview(request: PreviewRequest, progress=None, cancel=None) -> PreviewFrame:
    """Run a preview job (in a worker): the effect at the request's resolution, then its display."""
    _check(cancel)
    start = time.perf_counter()
    t, image, proxy = request.target, request.image, request.proxy
    prev = request.previous
    selection = request.cache
    compare = None
    note = ""
    if prev is not None and prev.target == t and prev.proxy == proxy:
        result, compare, note, selection = prev.result, prev.compare_result, prev.note, prev.selection
    elif t.effect == "defocus":
        if not isinstance(image, DeepImage):
            raise DeepscopeError("defocus needs a deep part")
        result = defocus(image, t.defocus.camera(), max_radius=t.defocus.max_radius, proxy=proxy, cancel=cancel)
        if "A" not in result:
            result["A"] = np.zeros(next(iter(result.values())).shape, np.float32)
        note = "thin lens" if not t.defocus.simple else "simple blur"
    elif t.effect == "recolor":
        result, compare, note, selection = _recolor_job(request, selection, cancel)
    else:
        raise DeepscopeError(f"no preview for effect {t.effect!r}")
    _check(cancel)
    if progress is not None:
        progress(0.8)
    h, w = image.height, image.width
    rgba = show(result, request.tone, h, w, proxy)
    compare_rgba = show(compare, request.tone, h, w, proxy) if compare is not None else None
    return PreviewFrame(t, proxy, request.tone, result, rgba, image.data_window, image.display_window, compare,
                        compare_rgba, note, time.perf_counter() - start, threading.get_ident(), selection)


def _recolor_job(request: PreviewRequest, cache: SelectionData | None, cancel):
    t, image, proxy, grade = request.target, request.image, request.proxy, request.target.grade
    cache = cache if cache is not None and cache.key == t.selection_key else SelectionData(t.selection_key)
    samples, matte, beauty = cache.samples, cache.matte, cache.beauty
    if t.source == "deep ids" and isinstance(image, DeepImage):
        for c in COLOUR:
            if c not in image.channels:
                raise DeepscopeError(f"the deep part has no {c} channel to recolor")
        if samples is None:
            samples = select_ids(image, request.id_selection)
        _check(cancel)
        if grade.needs_ids and samples.id_low is None:
            grade = replace(grade, keep_percent=100.0, vary_seed=None, vary_amount=0.0)
        result = recolor(image, samples, grade, proxy=proxy, cancel=cancel)
        compare = None
        if t.compare:
            _check(cancel)
            if beauty is None:
                beauty = flat_beauty(image)
            if matte is None:
                matte = selected_coverage(image, samples.mask)
            compare = _planes(matte_grade(subsample(beauty, proxy), subsample(matte, proxy), grade))
        note = "deep recolor" + (" | matte-based grade from the visible coverage" if t.compare else "")
        return result, compare, note, SelectionData(t.selection_key, samples, matte, beauty)
    # a matte-based grade: the Cryptomatte matte, or on a flat part the selected pixels
    if beauty is None:
        beauty = flat_beauty(image)
    _check(cancel)
    if matte is None:
        if t.source == "cryptomatte":
            if request.crypto_matte is None:
                raise DeepscopeError("no Cryptomatte matte yet")
            matte = place_on_window(request.crypto_matte, request.crypto_window, image.data_window)
        else:
            matte = select_samples(image, request.id_selection).astype(np.float32)
    result = _planes(matte_grade(subsample(beauty, proxy), subsample(matte, proxy), grade))
    what = "Cryptomatte matte" if t.source == "cryptomatte" else "selected pixels"
    note = f"matte-based grade ({what}) of the {'flattened deep' if isinstance(image, DeepImage) else 'flat'} beauty"
    return result, None, note, SelectionData(t.selection_key, samples, matte, beauty)


def export_preview_job(path: str, source: str, request: PreviewRequest, shown: PreviewFrame | None,
                       progress, cancelled) -> str:
    """Write the full-resolution effect as RGBA float32 EXR with the part's windows (atomic, never over ``source``)."""
    from core.writer import write_flat

    if shown is not None and shown.is_full and shown.target == request.target:
        frame = shown
    else:
        frame = compute_preview(request, progress, cancelled)
    _check(cancelled)
    channels = {c: np.ascontiguousarray(frame.result[c], dtype=np.float32) for c in ("R", "G", "B", "A")
                if c in frame.result}
    write_flat(path, channels, frame.data_window, frame.display_window,
               pixel_types={c: PixelType.FLOAT for c in channels}, source=source)
    h, w = frame.rgba.shape[:2]
    return f"wrote {path}: {request.target.effect} preview, RGBA float32 {w}x{h}"


def _preview_job(request: PreviewRequest, progress, cancelled) -> PreviewFrame:
    return compute_preview(request, progress, cancelled)


# =========================================================================== the model


class PreviewModel(QObject):
    """Preview settings and results of the open part; the panels and the canvas overlays observe it."""

    effect_changed = Signal(str)
    defocus_changed = Signal(object)  # DefocusSettings
    camera_guess_changed = Signal(object)  # CameraGuess | None
    scene_changed = Signal(object)  # SceneProbe | None
    focus_tool_changed = Signal(bool)
    grade_changed = Signal(object)  # Grade
    source_changed = Signal(str)
    compare_changed = Signal(bool)
    wipe_position_changed = Signal(float)  # 0..1 across the data window
    selection_changed = Signal(str)  # what the recolor applies to, as a line of text
    preview_changed = Signal(object)  # PreviewFrame | None
    status_changed = Signal(str)
    busy_changed = Signal(bool)
    export_finished = Signal(str, str)  # path, message
    export_failed = Signal(str, str)  # path, message

    def __init__(self, document: DocumentModel, deepid=None, crypto=None, pool: QThreadPool | None = None,
                 parent: QObject | None = None, proxy: float = PROXY, settle_ms: int = SETTLE_MS):
        super().__init__(parent)
        self.document = document
        self.deepid = deepid
        self.crypto = crypto
        self._own_pool = pool is None
        self.pool = pool if pool is not None else make_pool(2)
        self.proxy = float(proxy)
        self.lane = TaskLane("preview", self.pool, self)
        self.export_lane = TaskLane("exporting preview", self.pool, self)
        self.lane.finished.connect(self._on_result)
        self.lane.failed.connect(self._on_failed)
        self.lane.cancelled.connect(self._on_cancelled)
        self.export_lane.finished.connect(lambda path, text: self.export_finished.emit(path, str(text)))
        self.export_lane.failed.connect(self._on_export_failed)
        for lane in (self.lane, self.export_lane):
            lane.busy_changed.connect(self._update_busy)

        self._effect = "off"
        self._defocus = DefocusSettings()
        self._guess: CameraGuess | None = None
        self._probe: SceneProbe | None = None
        self._focus_tool = False
        self._grade = Grade()
        self._source = "deep ids"
        self._source_chosen = False  # the user picked a source: keep it until another file opens
        self._compare = True
        self._wipe = 0.5
        self._status = ""
        self._busy = False
        self._crypto_matte = None  # the CryptoModel's latest MatteResult
        self._shown: PreviewFrame | None = None
        self._running: PreviewRequest | None = None
        self._failed: tuple[Target, float] | None = None
        self._cache: SelectionData | None = None
        self._settled = True
        self._key: PartKey | None = None
        self._path: str | None = None
        self.jobs_run = 0  # preview jobs submitted (for tests and the status)

        self._kick = QTimer(self)  # several changes in one event: one request
        self._kick.setSingleShot(True)
        self._kick.setInterval(0)
        self._kick.timeout.connect(self._pump)
        self._settle = QTimer(self)  # full resolution once the settings stop changing
        self._settle.setSingleShot(True)
        self._settle.setInterval(int(settle_ms))
        self._settle.timeout.connect(self._on_settled)

        document.document_changed.connect(self._on_part_changed)
        document.part_changed.connect(self._on_part_changed)
        for signal in (document.exposure_changed, document.gamma_changed, document.transfer_changed):
            signal.connect(lambda *_a: self._kick.start())
        if deepid is not None:
            deepid.selection_changed.connect(self._on_ids_changed)
            deepid.sources_changed.connect(self._on_sources_changed)
        if crypto is not None:
            crypto.matte_changed.connect(self._on_crypto_matte)
            crypto.layers_changed.connect(self._on_sources_changed)
            crypto.selection_changed.connect(lambda _s: self.selection_changed.emit(self.selection_text()))
        self._on_part_changed()

    # ------------------------------------------------------------------ part
    @property
    def image(self) -> Image | None:
        return self.document.image

    def _on_part_changed(self, *_args) -> None:
        doc = self.document.document
        key = self.document.part_key
        new_file = doc is None or doc.path != self._path or (self._key is not None and key is not None
                                                             and key[2] != self._key[2])
        self._key = key
        self._path = doc.path if doc is not None else None
        self._cache = None
        self._failed = None
        if self.lane.busy:
            self.lane.cancel()
        self._running = None
        if self._shown is not None:
            self._shown = None
            self.preview_changed.emit(None)
        image = self.image
        if new_file:
            self._source_chosen = False
            self._crypto_matte = None
            header = doc.parts[self.document.part_index].header if doc is not None and doc.parts else None
            deep = isinstance(image, DeepImage)
            self._guess = guess_camera(header) if deep and header is not None else None
            self._probe = probe_scene(image) if deep else None
            self.camera_guess_changed.emit(self._guess)
            self.scene_changed.emit(self._probe)
            if deep:
                self._set_defocus(initial_defocus(self._guess, self._probe, image.display_window.width,
                                                  self._defocus))
        self._auto_source()
        self.selection_changed.emit(self.selection_text())
        self._changed()

    def _on_sources_changed(self, *_args) -> None:
        self._auto_source()
        self.selection_changed.emit(self.selection_text())
        self._changed()

    def _auto_source(self) -> None:
        if self._source_chosen:
            return
        has_ids = self.deepid is not None and bool(self.deepid.sources)
        has_crypto = self.crypto is not None and bool(self.crypto.layers)
        source = "cryptomatte" if has_crypto and not (has_ids and isinstance(self.image, DeepImage)) else "deep ids"
        if source != self._source:
            self._source = source
            self.source_changed.emit(source)

    # ------------------------------------------------------------------ effect
    @property
    def effect(self) -> str:
        return self._effect

    def set_effect(self, effect: str) -> None:
        if effect not in EFFECTS:
            raise ValueError(f"effect must be one of {EFFECTS}, got {effect!r}")
        if effect != self._effect:
            self._effect = effect
            self.effect_changed.emit(effect)
            self._changed()
            if effect == "off":
                self._pump()  # hide it now

    def availability(self, effect: str) -> str:
        """Why ``effect`` cannot be previewed on the open part ("" when it can)."""
        image = self.image
        if image is None:
            return "no image is open"
        if effect == "defocus":
            if not isinstance(image, DeepImage):
                return "defocus needs a deep part (this one is flat)"
            if "Z" not in image.channels:
                return "the deep part has no Z channel: nothing to focus on"
            return ""
        if effect == "recolor":
            if self._source == "deep ids":
                if self.deepid is None or not self.deepid.sources:
                    return "the part has no id channels: choose a Cryptomatte matte"
                if isinstance(image, DeepImage) and not all(c in image.channels for c in COLOUR):
                    return "the deep part has no R, G, B to recolor"
                return ""
            if self.crypto is None or not self.crypto.layers:
                return "the file has no Cryptomatte layer"
            if self.crypto.error:
                return self.crypto.error
            return ""
        return ""

    # ------------------------------------------------------------------ defocus settings
    @property
    def defocus(self) -> DefocusSettings:
        return self._defocus

    def set_defocus(self, settings: DefocusSettings) -> None:
        if self._set_defocus(settings):
            self._changed()

    def update_defocus(self, **changes) -> None:
        """Change some defocus settings (``f_stop=4.0``, ``simple=True`` ...)."""
        self.set_defocus(replace(self._defocus, **changes))

    def _set_defocus(self, settings: DefocusSettings) -> bool:
        if not isinstance(settings, DefocusSettings):
            raise TypeError("expected DefocusSettings")
        if settings == self._defocus:
            return False
        self._defocus = settings
        self.defocus_changed.emit(settings)
        return True

    @property
    def camera_guess(self) -> CameraGuess | None:
        """What the part's header says about the camera (None for a flat part)."""
        return self._guess

    @property
    def scene(self) -> SceneProbe | None:
        return self._probe

    def reset_defocus(self) -> None:
        """Back to what the header (or the probe) gave for this part."""
        image = self.image
        if isinstance(image, DeepImage):
            self.set_defocus(initial_defocus(self._guess, self._probe, image.display_window.width,
                                             DefocusSettings()))

    # ------------------------------------------------------------------ focus tool
    @property
    def focus_tool(self) -> bool:
        return self._focus_tool

    def set_focus_tool(self, enabled: bool) -> None:
        enabled = bool(enabled)
        if enabled != self._focus_tool:
            self._focus_tool = enabled
            self.focus_tool_changed.emit(enabled)

    def focus_on(self, pixel: tuple[int, int]) -> float | None:
        """Focus on the frontmost visible surface at ``pixel`` (absolute EXR coordinates); turns
        the defocus preview on. Returns the depth, or None (nothing there: nothing changes)."""
        image = self.image
        local = self.document.local_pixel(pixel, image) if isinstance(image, DeepImage) else None
        depth = focus_at(image, *local) if local is not None and "Z" in image.channels else None
        if depth is None or not math.isfinite(depth) or depth <= 0:
            self._set_status(f"nothing to focus on at ({pixel[0]}, {pixel[1]})")
            return None
        self.update_defocus(focus_distance=float(depth))
        self.set_effect("defocus")
        return float(depth)

    # ------------------------------------------------------------------ recolor settings
    @property
    def grade(self) -> Grade:
        return self._grade

    def set_grade(self, grade: Grade) -> None:
        if not isinstance(grade, Grade):
            raise TypeError("expected a Grade")
        grade.validate()
        if grade != self._grade:
            self._grade = grade
            self.grade_changed.emit(grade)
            self._changed()

    def update_grade(self, **changes) -> None:
        """Change some grade fields (``saturation=0.5``, ``gain=(2, 1, 1)`` ...)."""
        self.set_grade(replace(self._grade, **changes))

    @property
    def source(self) -> str:
        return self._source

    def set_source(self, source: str) -> None:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        self._source_chosen = True
        if source != self._source:
            self._source = source
            self._cache = None
            self.source_changed.emit(source)
            self.selection_changed.emit(self.selection_text())
            self._changed()

    @property
    def compare(self) -> bool:
        return self._compare

    def set_compare(self, enabled: bool) -> None:
        enabled = bool(enabled)
        if enabled != self._compare:
            self._compare = enabled
            self.compare_changed.emit(enabled)
            self._changed()

    @property
    def can_compare(self) -> bool:
        """The wipe needs deep samples to regrade: a deep part and the Deep IDs source."""
        return isinstance(self.image, DeepImage) and self._source == "deep ids"

    @property
    def wipe_position(self) -> float:
        return self._wipe

    def set_wipe_position(self, fraction: float) -> None:
        fraction = float(fraction)
        if not math.isfinite(fraction):
            raise ValueError("wipe position must be finite")
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction != self._wipe:
            self._wipe = fraction
            self.wipe_position_changed.emit(fraction)

    def wipe_column(self, width: int | None = None) -> int:
        """The first column (data-window relative) of the matte-based side."""
        if width is None:
            width = self.image.width if self.image is not None else 0
        return int(round(self._wipe * width))

    # ------------------------------------------------------------------ selection
    def _selection_key(self) -> tuple | None:
        if self._source == "deep ids":
            if self.deepid is None:
                return None
            return ("deep ids", self.deepid.selection_version)
        matte = self._crypto_matte
        if matte is None or self.crypto is None or matte.key != self.crypto.layer_key:
            return None
        return ("cryptomatte", matte.key, matte.ids.tobytes())

    def selection_text(self) -> str:
        """What the recolor applies to, in a few words."""
        if self._source == "deep ids":
            if self.deepid is None or not self.deepid.sources:
                return "no id channels in this part"
            n = self.deepid.selected_count
            query = self.deepid.query
            if query:
                return f"query {query!r} ({n} id{'s' if n != 1 else ''})"
            if n == 0:
                return "nothing selected: pick objects in the Deep IDs panel"
            return f"{n} id{'s' if n != 1 else ''} selected in the Deep IDs panel"
        if self.crypto is None or self.crypto.layer is None:
            return "no Cryptomatte layer"
        names = self.crypto.selected_names()
        if not names:
            return f"{self.crypto.layer.name}: nothing in the matte: pick in the Cryptomatte panel"
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        return f"{self.crypto.layer.name}: {shown}"

    def _on_ids_changed(self, _selection) -> None:
        self.selection_changed.emit(self.selection_text())
        if self._source == "deep ids":
            self._changed()

    def _on_crypto_matte(self, matte) -> None:
        if matte is not None:
            self._crypto_matte = matte
            self.selection_changed.emit(self.selection_text())
            if self._source == "cryptomatte":
                self._changed()

    # ------------------------------------------------------------------ status and busy
    @property
    def status(self) -> str:
        return self._status

    def _set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self.status_changed.emit(text)

    @property
    def busy(self) -> bool:
        """True while a preview is pending (a job, a timer, or a full resolution still to come)."""
        return self.lane.busy or self._kick.isActive() or self._settle.isActive() or self._running is not None

    def _update_busy(self, *_args) -> None:
        busy = self.busy
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    @property
    def preview(self) -> PreviewFrame | None:
        """What the canvas shows (None with the effect off or before the first result)."""
        return self._shown

    @property
    def is_current(self) -> bool:
        """The full-resolution preview of the current settings and tone is showing."""
        target, _ = self.target()
        s = self._shown
        return (target is not None and s is not None and s.target == target and s.is_full
                and s.tone == self.document.tone)

    # ------------------------------------------------------------------ requests
    def target(self, effect: str | None = None) -> tuple[Target | None, str]:
        """What the current settings ask to show (or why nothing can be shown)."""
        effect = self._effect if effect is None else effect
        key, image = self.document.part_key, self.image
        if effect == "off":
            return None, ""
        why = self.availability(effect)
        if why:
            return None, why
        if effect == "defocus":
            try:
                self._defocus.validate()
            except DeepscopeError as exc:
                return None, str(exc)
            return Target(key, "defocus", defocus=self._defocus), ""
        sel = self._selection_key()
        if sel is None:
            return None, "waiting for the Cryptomatte matte…" if self._source == "cryptomatte" else "no selection"
        compare = self._compare and isinstance(image, DeepImage) and self._source == "deep ids"
        return Target(key, "recolor", grade=self._grade, source=self._source, selection_key=sel,
                      compare=compare), ""

    def _request(self, target: Target, proxy: float, previous: PreviewFrame | None = None) -> PreviewRequest:
        cache = self._cache if self._cache is not None and self._cache.key == target.selection_key else None
        id_selection = crypto_matte = crypto_window = None
        if target.effect == "recolor":
            if target.source == "deep ids":
                id_selection = self.deepid.selection
            elif self._crypto_matte is not None:
                crypto_matte = self._crypto_matte.matte
                crypto_window = self._crypto_matte.data_window
        return PreviewRequest(target, self.image, proxy, self.document.tone, id_selection, crypto_matte,
                              crypto_window, cache, previous)

    def _changed(self) -> None:
        """A setting changed: a proxy now, the full resolution once things settle."""
        self._settled = False
        self._settle.start()
        self._kick.start()
        self._update_busy()

    def _on_settled(self) -> None:
        self._settled = True
        self._pump()

    def _pump(self) -> None:
        target, why = self.target()
        if target is None:
            self._settle.stop()
            if self.lane.busy:
                self.lane.cancel()
            self._running = None
            if self._shown is not None:
                self._shown = None
                self.preview_changed.emit(None)
            self._set_status(why)
            self._update_busy()
            return
        running = self._running
        if running is not None:
            if running.target == target or running.proxy < 1.0:
                self._update_busy()
                return  # a proxy is quick: it shows, then the latest request follows
            self.lane.cancel()  # a stale full-resolution render: stop it
            self._running = None
        shown, tone = self._shown, self.document.tone
        if shown is None or shown.target != target:
            proxy = self.proxy if self.proxy < 1.0 else 1.0
            self._submit(target, proxy)
        elif not shown.is_full:
            if self._settled:
                self._submit(target, 1.0)
        elif shown.tone != tone:
            self._submit(target, 1.0, previous=shown)
        self._update_busy()

    def _submit(self, target: Target, proxy: float, previous: PreviewFrame | None = None) -> None:
        if self._failed == (target, proxy):
            return  # it failed with these settings: wait for a change
        if previous is None and self._shown is not None and self._shown.target == target \
                and self._shown.proxy == proxy:
            previous = self._shown
        request = self._request(target, proxy, previous)
        self._running = request
        self.jobs_run += 1
        self.lane.submit(partial(_preview_job, request), tag=request)

    def _on_result(self, request: PreviewRequest, frame: PreviewFrame) -> None:
        self._running = None
        if request.target.key != self.document.part_key:
            self._pump()
            return
        if frame.selection is not None and frame.selection.key == request.target.selection_key:
            self._cache = frame.selection
        target, _ = self.target()
        progressive = not frame.is_full and target is not None and frame.target.effect == target.effect
        if target is not None and (frame.target == target or progressive):
            self._failed = None
            self._shown = frame
            what = "full resolution" if frame.is_full else f"proxy {frame.proxy:g}×"
            self._set_status(f"{frame.note}: {what} in {frame.seconds * 1000:.0f} ms")
            self.preview_changed.emit(frame)
        self._pump()

    def _on_failed(self, request: PreviewRequest, exc: BaseException) -> None:
        self._running = None
        self._failed = (request.target, request.proxy)
        self._set_status(f"preview failed: {_one_line(exc)}")
        self._update_busy()

    def _on_cancelled(self, _request) -> None:
        self._running = None
        self._update_busy()

    # ------------------------------------------------------------------ export
    def export(self, path: str | os.PathLike, effect: str | None = None) -> bool:
        """Write ``effect`` (default the current one) at full resolution as RGBA float32 EXR, in a
        worker; the outcome comes by ``export_finished`` / ``export_failed``."""
        path = os.fspath(path)
        effect = self._effect if effect is None else effect
        doc = self.document.document
        target, why = self.target(effect)
        if doc is None or target is None or effect == "off":
            self.export_failed.emit(path, why or "turn a preview on first")
            return False
        if os.path.exists(path) and os.path.exists(doc.path) and os.path.samefile(path, doc.path):
            self.export_failed.emit(path, f"{path}: refusing to overwrite the file being read")
            return False
        request = self._request(target, 1.0)
        self.export_lane.submit(partial(export_preview_job, path, doc.path, request, self._shown), tag=path)
        return True

    def _on_export_failed(self, path: str, exc: BaseException) -> None:
        self.export_failed.emit(path, _one_line(exc) if isinstance(exc, DeepscopeError) else f"{path}: {exc}")

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Stop every job (call before the window goes away); waits only for a pool of its own."""
        self._kick.stop()
        self._settle.stop()
        for lane in (self.lane, self.export_lane):
            lane.shutdown()
        self._running = None
        return wait_for_pool(self.pool, timeout_ms) if self._own_pool else True


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, DeepscopeError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
