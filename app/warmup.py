"""First start on a machine: compile Deepscope's numba kernels in the background, with progress.

Kernels are compiled with ``cache=True``: once compiled they load from the cache in a few
milliseconds, but the first-ever compile takes seconds per kernel. Worker jobs compile what
they need on their own; the danger is a kernel the GUI thread calls directly (the display
transform of a pixel profile, the preview colours of manifest rows): compiled there, it would
freeze the window for seconds. :func:`start_kernel_warmup` checks numba's cache index of the
kernels below; when one is missing or stale it compiles them all on a background thread,
those the GUI thread calls first, each on a tiny input of the same types as real use, and
shows "Compiling image kernels (first start only) k/n" in the status bar. On a warm cache it
does nothing at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

Step = tuple[str, Callable[[], object]]


# --------------------------------------------------------------------------- tiny inputs (no Qt)


def _tiny_deep(shuffled: bool = False):
    from core.model import Box, DeepImage, PixelType

    counts = np.array([0, 1, 3, 2, 40, 1], np.int64)  # empty, single, several, a volume pixel
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    n = int(offsets[-1])
    rng = np.random.default_rng(0)
    z = np.sort(rng.uniform(1, 5, n)).astype(np.float32)
    if shuffled:
        z = z[::-1].copy()
    alpha = rng.uniform(0.1, 0.9, n).astype(np.float32)
    channels = {"R": alpha * 0.5, "G": alpha * 0.25, "B": alpha * 0.125, "A": alpha, "Z": z,
                "ZBack": z + np.float32(0.01), "id": rng.integers(1, 9, n).astype(np.uint32)}
    types = {k: PixelType.HALF for k in "RGBA"} | {"Z": PixelType.FLOAT, "ZBack": PixelType.FLOAT,
                                                  "id": PixelType.UINT}
    box = Box(0, 0, 2, 1)
    return DeepImage(box, box, offsets, channels, types)


def _display() -> None:
    from core.display import colormap_transform, display_transform

    rgb = np.linspace(0, 2, 2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    display_transform(rgb)
    display_transform(rgb, exposure=1.0, gamma=2.2, transfer="gamma")
    display_transform(rgb[:, :, 0], alpha=rgb[:, :, 1])
    colormap_transform(rgb[:, :, 0], 0.0, 1.0)


def _quick_frames() -> None:
    from core.display import display_transform

    rgb = np.linspace(0, 2, 2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    display_transform(rgb, stride=2)
    display_transform(rgb[:, :, 0], alpha=rgb[:, :, 1], stride=2, region=(0, 0, 2, 1))


def _id_colours() -> None:
    from core.cryptomatte import crypto_matte, crypto_preview, id_colours

    id_colours(np.array([0, 1, 0x3F800000], np.uint32))
    ids = np.array([[[1, 2], [3, 0]]] * 2, np.uint32)
    cov = np.full(ids.shape, 0.5, np.float32)
    crypto_preview(ids, cov)
    crypto_matte(ids, cov, np.array([2], np.uint32))


def _reader() -> None:
    import zlib

    from core.exr_codec import decode_block, decode_scatter

    values = np.concatenate([np.full(32, 0x3C00, "<u2").view(np.uint8), np.zeros(32, "<u4").view(np.uint8)])
    raw = values.tobytes()
    t = np.concatenate([values[0::2], values[1::2]]).astype(np.int64)
    d = t.copy()
    d[1:] = (t[1:] - t[:-1] + 128) & 0xFF
    packed = zlib.compress(d.astype(np.uint8).tobytes())
    out = np.zeros((2, 32), np.uint32)
    lines = np.array([32], np.int64)
    decode_scatter(packed, len(raw), "ZIPS", lines, np.zeros(1, np.int64), np.array([2, 4], np.int64), out)
    rle = bytearray()
    for k in range(0, len(d), 2):  # pairs of equal bytes would not shrink: one run per byte pair
        rle += bytes([1, int(d[k])]) if d[k] == d[k + 1] else bytes([254, int(d[k]), int(d[k + 1])])
    if len(rle) < len(raw):
        decode_block(bytes(rle), len(raw), "RLE")
    decode_block(packed, len(raw), "ZIPS")


def _sort() -> None:
    from core.kernels import sort_samples

    sort_samples(_tiny_deep(shuffled=True))


def _flatten() -> None:
    from core.kernels import flatten

    image = _tiny_deep()
    flatten(image, split_volumes=True)
    flatten(image)
    flatten(image, ["id"])
    flatten(_tiny_deep(shuffled=True), sort=True)


def _deep_ids() -> None:
    from core.deepid import deep_mask, id_channels, parse_query, resolve, select_samples, visible_weights

    image = _tiny_deep()
    if id_channels(image):
        selection = resolve(parse_query([["id:3"]]), None, image)
        deep_mask(image, select_samples(image, selection))
    visible_weights(image)


STEPS: list[Step] = [
    ("id colours", _id_colours),  # the manifest panel colours its rows in the GUI thread
    ("display", _display),  # pixel profiles (deep graph, sample table) in the GUI thread
    ("reader", _reader),
    ("depth sort", _sort),
    ("flatten", _flatten),
    ("deep ids", _deep_ids),
    ("quick frames", _quick_frames),  # the render worker's frames while the exposure moves (after the first frame)
]


#: the kernels the steps compile, by module (a name its module no longer has is skipped)
KERNELS = {
    "core.display": ("_display_kernel", "_display_blocks_kernel", "_colormap_kernel"),
    "core.cryptomatte": ("_preview_kernel", "_crypto_matte_kernel"),
    "core.exr_codec": ("_unpredict_scatter_kernel", "_unpredict_deinterleave_kernel"),
    "core.kernels": ("_is_depth_sorted_kernel", "_depth_order_kernel", "_gather_kernel", "_flatten_over_kernel",
                     "_flatten_sort_over_kernel", "_flatten_split_kernel", "_flatten_id_kernel", "_untidy_kernel"),
    "core.deepid": ("_member_kernel", "_deep_mask_kernel", "_visible_weight_kernel"),
}


def _dispatchers() -> list:
    """The numba dispatchers of :data:`KERNELS` (for the cache check)."""
    import importlib

    found = []
    for module_name, names in KERNELS.items():
        module = importlib.import_module(module_name)
        found.extend(d for d in (getattr(module, n, None) for n in names) if hasattr(d, "_cache"))
    return found


def cache_is_warm() -> bool:
    """True when every kernel of those modules has a fresh entry in numba's cache.

    Uses numba's cache index (an internal API): if it cannot be read, the cache counts as warm
    (the kernels still compile on demand in the workers, as they always do).
    """
    try:
        for disp in _dispatchers():
            cache_file = disp._cache._cache_file
            if not cache_file._load_index():
                return False
    except Exception:  # noqa: BLE001 - internal API changed: never block or fail start-up for it
        return True
    return True


def run_steps(steps: list[Step], progress: Callable[[int, int, str], None] | None = None,
              stop: Callable[[], bool] | None = None) -> list[str]:
    """Run the warm-up steps in order; returns the names of the steps that failed (never raises)."""
    failed = []
    for k, (name, fn) in enumerate(steps):
        if stop is not None and stop():
            break
        if progress is not None:
            progress(k, len(steps), name)
        try:
            fn()
        except Exception:  # noqa: BLE001 - a warm-up failure only means a later on-demand compile
            failed.append(name)
    if progress is not None:
        progress(len(steps), len(steps), "")
    return failed


# --------------------------------------------------------------------------- the Qt side


class KernelWarmup(QObject):
    """Runs :data:`STEPS` on a background thread; ``progress(done, total, name)`` and ``finished``
    arrive in the GUI thread by queued signals."""

    progress = Signal(int, int, str)
    finished = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        def run() -> None:
            run_steps(STEPS, lambda k, n, name: self.progress.emit(k, n, name), self._stop.is_set)
            self.finished.emit()

        self._thread = threading.Thread(target=run, name="deepscope-kernel-warmup")
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the kernel being compiled and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def start_kernel_warmup(window: QMainWindow) -> KernelWarmup | None:
    """Compile the kernels in the background if numba's cache is cold; progress in the status bar.

    Returns the running warm-up, or None when the cache is warm (nothing to do).
    """
    if cache_is_warm():
        return None
    label = QLabel("Compiling image kernels (first start only)…")
    label.setObjectName("kernel_warmup_label")
    label.setToolTip("Deepscope compiles its numba kernels once per machine; they load in milliseconds afterwards.")
    window.statusBar().addPermanentWidget(label)
    warmup = KernelWarmup(window)

    def on_progress(done: int, total: int, name: str) -> None:
        if name:
            label.setText(f"Compiling image kernels (first start only): {name} {done + 1}/{total}…")

    def on_finished() -> None:
        window.statusBar().removeWidget(label)
        label.deleteLater()

    warmup.progress.connect(on_progress)
    warmup.finished.connect(on_finished)
    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(warmup.stop)
    warmup.start()
    return warmup
