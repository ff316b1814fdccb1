"""Helpers for the GUI tests: small synthetic images and documents, and waits for the workers."""

from __future__ import annotations

import numpy as np

from core.model import Attribute, Box, DeepImage, ExrDocument, FlatImage, Part, PartHeader, PixelType


def wait_rendered(qtbot, window, timeout: int = 30000) -> None:
    """Wait until loading and rendering are done and the frame shows the current part and view."""
    model = window.model

    def done() -> bool:
        frame = model.frame
        return (not window.controller.busy and frame is not None and frame.key == model.part_key
                and frame.view == model.view and frame.tone == model.tone)

    qtbot.waitUntil(done, timeout=timeout)


def wait_idle(qtbot, controller, timeout: int = 30000) -> None:
    qtbot.waitUntil(lambda: not controller.busy, timeout=timeout)


# ---------------------------------------------------------------------- synthetic images
def make_deep(counts, rng=None, with_zback=True, with_id=True, data_window=None, display_window=None,
              negative_alpha_at=()) -> DeepImage:
    """A small deep image with the given (H, W) sample counts, sorted front to back."""
    rng = rng or np.random.default_rng(0)
    counts = np.asarray(counts, dtype=np.int64)
    h, w = counts.shape
    dw = data_window or Box(0, 0, w - 1, h - 1)
    offsets = np.zeros(h * w + 1, np.int64)
    offsets[1:] = np.cumsum(counts.ravel())
    n = int(offsets[-1])
    z = np.empty(n, np.float32)
    for i in range(h * w):
        a, b = offsets[i], offsets[i + 1]
        z[a:b] = np.sort(rng.uniform(1.0, 10.0, b - a)).astype(np.float32)
    alpha = rng.uniform(0.1, 0.9, n).astype(np.float32)
    channels = {"R": alpha * rng.uniform(0, 1, n).astype(np.float32),
                "G": alpha * rng.uniform(0, 1, n).astype(np.float32),
                "B": alpha * rng.uniform(0, 1, n).astype(np.float32), "A": alpha, "Z": z}
    types = {k: PixelType.HALF for k in "RGBA"}
    types["Z"] = PixelType.FLOAT
    if with_zback:
        zback = z.copy()
        vol = rng.uniform(0, 1, n) < 0.3
        zback[vol] = z[vol] + rng.uniform(0.1, 0.5, int(vol.sum())).astype(np.float32)
        channels["ZBack"] = zback
        types["ZBack"] = PixelType.FLOAT
    if with_id:
        channels["id"] = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        types["id"] = PixelType.UINT
    for i in negative_alpha_at:
        channels["A"][i] = -channels["A"][i]
    return DeepImage(dw, display_window or dw, offsets, channels, types)


def make_flat(h=4, w=5, rng=None, data_window=None, display_window=None) -> FlatImage:
    rng = rng or np.random.default_rng(1)
    dw = data_window or Box(0, 0, w - 1, h - 1)
    channels = {c: rng.uniform(0, 2, (h, w)).astype(np.float32) for c in ("R", "G", "B", "A")}
    channels["spec.R"] = rng.uniform(0, 1, (h, w)).astype(np.float32)
    channels["spec.G"] = rng.uniform(0, 1, (h, w)).astype(np.float32)
    channels["spec.B"] = rng.uniform(0, 1, (h, w)).astype(np.float32)
    channels["Z"] = rng.uniform(1, 5, (h, w)).astype(np.float32)
    channels["id"] = rng.integers(0, 2**32, (h, w), dtype=np.uint64).astype(np.uint32)
    types = {k: PixelType.FLOAT for k in channels}
    types["id"] = PixelType.UINT
    return FlatImage(dw, display_window or dw, channels, types)


def make_document(*images, path="/nonexistent/synthetic.exr", mtime=1.0) -> ExrDocument:
    parts = []
    for i, image in enumerate(images):
        kind = "deepscanline" if isinstance(image, DeepImage) else "scanlineimage"
        attrs = {"type": Attribute("type", "string", kind), "name": Attribute("name", "string", f"part{i}"),
                 "dataWindow": Attribute("dataWindow", "box2i", image.data_window),
                 "displayWindow": Attribute("displayWindow", "box2i", image.display_window)}
        parts.append(Part(PartHeader(i, attrs), image))
    return ExrDocument(path=path, parts=parts, mtime=mtime)


# ---------------------------------------------------------------------- event spies
class EventSpy:
    """Records the events of one type a widget receives: ``with EventSpy(w, QEvent.Type.Paint) as seen:``."""

    def __init__(self, widget, event_type):
        from PySide6.QtCore import QObject

        seen = self.seen = []

        class _Filter(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 - Qt override
                if event.type() == event_type:
                    seen.append(obj)
                return False

        self.widget = widget
        self._filter = _Filter()

    def __enter__(self) -> list:
        self.widget.installEventFilter(self._filter)
        return self.seen

    def __exit__(self, *_exc) -> None:
        self.widget.removeEventFilter(self._filter)
