"""Runs the viewer's background work for a :class:`DocumentModel`.

Opening a file, flattening a part and rendering the canvas image are jobs on three
"latest wins" lanes (:mod:`app.workers`): a newer open supersedes an older one, a newer
view or exposure supersedes the render in flight, and stale results are dropped. A part is
flattened once (its :class:`~app.render.PartData` is cached in the model); changing the view
or the exposure meanwhile only changes what is rendered once it is ready. The controller watches the
open file and reloads it when it changes on disk. A file that cannot be read is reported
by ``load_failed`` and leaves the model (what was open) untouched.
"""

from __future__ import annotations

import math
import os
from functools import partial

from PySide6.QtCore import QFileSystemWatcher, QObject, QThreadPool, QTimer, Signal

from app.document import DocumentModel
from app.render import TONE_MODES, PartData, PartKey, RenderRequest, RenderResult, compute_part_data, render_frame
from app.workers import TaskLane, make_pool, wait_for_pool
from core.errors import DeepscopeError
from core.exr_read import open_exr
from core.model import ExrDocument

RELOAD_DELAY_MS = 300
RELOAD_ATTEMPTS = 20
#: While the tone keeps changing, the frames are quick ones: what is on screen, one pixel of
#: each stride x stride block when the view is zoomed out by 2x or more (the screen shows about
#: one anyway), the rest coarse. The full frame follows once the tone has rested this long.
QUICK_SETTLE_MS = 150
QUICK_MAX_STRIDE = 8
#: on-screen pixels kept in a quick frame beyond the view's edges (image pixels)
QUICK_MARGIN = 16


def _load_job(path: str, progress, cancelled) -> ExrDocument:
    return open_exr(path, load=True, progress=progress, cancel=cancelled)


def _demo_job(kind: str, cache_dir, progress, cancelled) -> ExrDocument:
    from core.demo import demo_paths  # renders the demo once into the cache, then reuses it

    path = demo_paths(cache_dir)[kind]
    progress(0.3)
    return open_exr(path, load=True, progress=lambda f: progress(0.3 + 0.7 * f), cancel=cancelled)


def _flatten_job(image, progress, cancelled) -> PartData:
    return compute_part_data(image, progress, cancelled)


def _render_job(request: RenderRequest, progress, cancelled) -> RenderResult:
    return render_frame(request, progress, cancelled)


def error_message(path: str, exc: BaseException) -> str:
    """One line naming the file and the problem, whatever was raised."""
    if isinstance(exc, DeepscopeError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{path}: {exc.strerror or exc}"
    return f"{path}: {type(exc).__name__}: {' '.join(str(exc).split())}"


class DocumentController(QObject):
    """Opens, reloads and renders in the background; the GUI thread only wires results in."""

    load_started = Signal(str)
    document_loaded = Signal(str)
    load_failed = Signal(str, str)  # path, one-line message
    render_failed = Signal(str)

    def __init__(self, model: DocumentModel, pool: QThreadPool | None = None, watch_files: bool = True,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.pool = pool if pool is not None else make_pool(2)
        self.load_lane = TaskLane("load", self.pool, self)
        self.flatten_lane = TaskLane("flatten", self.pool, self)
        self.render_lane = TaskLane("render", self.pool, self)
        self.load_lane.finished.connect(self._on_loaded)
        self.load_lane.failed.connect(self._on_load_failed)
        self.flatten_lane.finished.connect(self._on_flattened)
        self.flatten_lane.failed.connect(self._on_flatten_failed)
        self.flatten_lane.cancelled.connect(self._on_flatten_cancelled)
        self.render_lane.finished.connect(self._on_rendered)
        self.render_lane.failed.connect(self._on_render_failed)

        # Several model changes in one event (a new document resets part and view) give one render.
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self._submit_render)
        self._settle_timer = QTimer(self)  # the full frame after quick ones
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(QUICK_SETTLE_MS)
        self._settle_timer.timeout.connect(self._submit_render)
        self._display_zoom = 1.0
        self._display_rect: tuple[float, float, float, float] | None = None  # EXR pixel space
        self._flattening: PartKey | None = None  # the part the flatten lane works on
        for signal in (model.document_changed, model.part_changed, model.view_changed):
            signal.connect(self.schedule_render)
        # A tone change submits at once (no timer): the frame is what the user waits for, and the
        # job then runs in the worker while the other slots of the signal run here.
        for signal in (model.exposure_changed, model.gamma_changed, model.transfer_changed):
            signal.connect(self._on_tone_changed)

        self.watch_files = watch_files
        self.demo_cache_dir: str | None = None  # None: core.demo's default cache
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(self._on_file_changed)
        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(RELOAD_DELAY_MS)
        self._reload_timer.timeout.connect(self._reload_after_change)
        self._reload_attempts = 0

    # ------------------------------------------------------------------ loading
    def open(self, path: str | os.PathLike, keep_state: bool = False) -> None:
        """Start reading ``path``; the model changes only if the read succeeds."""
        path = os.path.abspath(os.fspath(path))
        self.load_started.emit(path)
        self.load_lane.submit(partial(_load_job, path), tag=(path, keep_state))

    def open_demo(self, kind: str = "deep") -> None:
        """Open the built-in demo scene: ``"deep"`` (demo.deep.exr) or ``"flat"`` (beauty + Cryptomatte)."""
        self.load_started.emit(f"demo scene ({kind})")
        self.load_lane.submit(partial(_demo_job, kind, self.demo_cache_dir), tag=(f"demo scene ({kind})", False))

    def reload(self) -> None:
        """Read the open file again, keeping the part, view and pixels when still valid."""
        doc = self.model.document
        if doc is not None:
            self.open(doc.path, keep_state=True)

    def cancel(self) -> None:
        """Stop whatever is loading or rendering."""
        self._settle_timer.stop()
        for lane in self.lanes.values():
            lane.cancel()

    @property
    def lanes(self) -> dict[str, TaskLane]:
        """The lanes by what they do, in the order a file goes through them."""
        return {"loading": self.load_lane, "flattening": self.flatten_lane, "rendering": self.render_lane}

    @property
    def busy(self) -> bool:
        """Loading or rendering, or a full frame still to come after quick ones."""
        return (any(lane.busy for lane in self.lanes.values()) or self._render_timer.isActive()
                or self._settle_timer.isActive())

    @property
    def quick_settle_ms(self) -> int:
        """How long the tone must rest before the full frame replaces the quick ones."""
        return self._settle_timer.interval()

    @quick_settle_ms.setter
    def quick_settle_ms(self, ms: int) -> None:
        self._settle_timer.setInterval(int(ms))

    def set_display_view(self, zoom: float, rect: tuple[float, float, float, float] | None = None) -> None:
        """What the canvas shows: its zoom in device pixels per image pixel and the part of EXR
        pixel space on screen, (x0, y0, x1, y1) (None: unknown, all of it). Quick frames
        cover that part, as coarse as the zoom allows."""
        self._display_zoom = float(zoom)
        self._display_rect = None if rect is None else tuple(float(v) for v in rect)

    def quick_stride(self) -> int:
        """The stride of the frames made while the tone moves: 1 unless the image is shown at
        half size or less."""
        z = self._display_zoom
        if not z > 0.0 or z > 0.5:
            return 1
        return max(1, min(QUICK_MAX_STRIDE, int(1.0 / z)))

    def quick_region(self) -> tuple[int, int, int, int] | None:
        """The on-screen part of the current image in array columns and rows (with a margin),
        or None when that is all of it (or unknown)."""
        image, rect = self.model.image, self._display_rect
        if image is None or rect is None:
            return None
        dw = image.data_window
        x0 = max(math.floor(rect[0]) - dw.xmin - QUICK_MARGIN, 0)
        y0 = max(math.floor(rect[1]) - dw.ymin - QUICK_MARGIN, 0)
        x1 = min(math.ceil(rect[2]) - dw.xmin + QUICK_MARGIN, image.width)
        y1 = min(math.ceil(rect[3]) - dw.ymin + QUICK_MARGIN, image.height)
        if x0 <= 0 and y0 <= 0 and x1 >= image.width and y1 >= image.height:
            return None
        return x0, y0, max(x1, x0), max(y1, y0)

    def _on_loaded(self, tag, document: ExrDocument) -> None:
        _path, keep_state = tag
        self.model.set_document(document, keep_state=keep_state)
        self._watch(document.path)
        self.document_loaded.emit(document.path)

    def _on_load_failed(self, tag, exc: BaseException) -> None:
        path = tag[0]
        self.load_failed.emit(path, error_message(path, exc))

    # ------------------------------------------------------------------ rendering
    def schedule_render(self, *_args) -> None:
        """Render the current view soon (coalesces several changes into one job)."""
        self._settle_timer.stop()
        self._render_timer.start()

    def _on_tone_changed(self, *_args) -> None:
        if self._render_timer.isActive():
            return  # a document, part or view change in the same event renders with this tone anyway
        model = self.model
        frame = model.frame
        stride, region = self.quick_stride(), self.quick_region()
        if ((stride > 1 or region is not None) and model.view.mode in TONE_MODES and frame is not None
                and frame.key == model.part_key and frame.view == model.view):
            # a view already on screen: a quick frame now, the full one when the tone rests
            self._settle_timer.start()
            self._submit_render(stride, region)
            return
        self._settle_timer.stop()
        self._submit_render()

    def _submit_render(self, stride: int = 1, region: tuple[int, int, int, int] | None = None) -> None:
        model = self.model
        image, key = model.image, model.part_key
        if image is None or key is None:
            for lane in (self.flatten_lane, self.render_lane):
                if lane.busy:
                    lane.cancel()
            model.set_frame(None)
            return
        data = model.cached_part_data(key)
        if data is None:
            # flatten the part first (once); the render follows when it is cached
            if self._flattening != key:
                self._flattening = key
                self.flatten_lane.submit(partial(_flatten_job, image), tag=key)
            return
        request = RenderRequest(key, image, model.view, model.tone, data, stride, region)
        self.render_lane.submit(partial(_render_job, request), tag=request)

    def _on_flattened(self, key: PartKey, data: PartData) -> None:
        self._flattening = None
        if key == self.model.part_key:
            self.model.store_part_data(key, data)
            self.schedule_render()

    def _on_flatten_failed(self, key: PartKey, exc: BaseException) -> None:
        self._flattening = None
        self.render_failed.emit(error_message(key[0], exc))

    def _on_flatten_cancelled(self, _key) -> None:
        self._flattening = None

    def _on_rendered(self, request: RenderRequest, result: RenderResult) -> None:
        if request.key != self.model.part_key:
            return  # the document changed while this ran
        self.model.set_frame(result.frame)

    def _on_render_failed(self, request: RenderRequest, exc: BaseException) -> None:
        self.render_failed.emit(error_message(request.key[0], exc))

    # ------------------------------------------------------------------ reload on change
    def _watch(self, path: str) -> None:
        old = self._watcher.files()
        if old:
            self._watcher.removePaths(old)
        if self.watch_files and os.path.exists(path):
            self._watcher.addPath(path)

    def set_watch_files(self, enabled: bool) -> None:
        """Reload when the open file changes on disk (on by default)."""
        self.watch_files = bool(enabled)
        doc = self.model.document
        if doc is not None:
            self._watch(doc.path)
        elif not enabled and self._watcher.files():
            self._watcher.removePaths(self._watcher.files())

    def watched_files(self) -> list[str]:
        return list(self._watcher.files())

    def _on_file_changed(self, path: str) -> None:
        doc = self.model.document
        if doc is not None and os.path.abspath(path) == os.path.abspath(doc.path):
            self._reload_attempts = 0
            self._reload_timer.start()  # writers touch a file several times: wait until it settles

    def _reload_after_change(self) -> None:
        doc = self.model.document
        if doc is None:
            return
        if not os.path.exists(doc.path):  # replaced by rename: try again shortly, a few times
            self._reload_attempts += 1
            if self._reload_attempts < RELOAD_ATTEMPTS:
                self._reload_timer.start()
            return
        self._reload_attempts = 0
        if doc.path not in self._watcher.files():
            self._watcher.addPath(doc.path)
        self.reload()

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel all jobs and wait for the pool threads to return."""
        self._render_timer.stop()
        self._reload_timer.stop()
        for lane in self.lanes.values():
            lane.shutdown()
        return wait_for_pool(self.pool, timeout_ms)
