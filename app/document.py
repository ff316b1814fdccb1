"""The viewer's document model: the open file, the view state, the pixels of interest.

One signal per property: a setter validates, stores, then emits only when the value
changed. Widgets observe the model and write to it; they never talk to each other.

Pixels are **absolute EXR coordinates** (the file's pixel space, the one the data and
display windows are expressed in, y down): what the user sees in the readout and can
compare with other tools. ``DocumentModel.local_pixel`` converts to the data-window-relative
coordinates a ``DeepImage`` is indexed with.
"""

from __future__ import annotations

import math
import os

from PySide6.QtCore import QObject, Signal

from app.render import (
    VIEW_MODES,
    Frame,
    PartData,
    PartKey,
    PixelProfile,
    Tone,
    View,
    default_view,
    pixel_profile,
    sample_colours,
    view_is_valid,
)
from core.display import TRANSFERS
from core.layers import Layer, group_channels
from core.model import DeepImage, ExrDocument, FlatImage

Pixel = tuple[int, int]
PROFILES_KEPT = 4  # the current and pinned pixels, and the last ones before them
EXPOSURE_RANGE = (-20.0, 20.0)
GAMMA_RANGE = (0.1, 10.0)


class DocumentModel(QObject):
    """Everything the viewer's widgets share; no Qt widgets and no heavy work here."""

    document_changed = Signal(object)  # ExrDocument | None
    part_changed = Signal(int)
    view_changed = Signal(object)  # View
    exposure_changed = Signal(float)
    gamma_changed = Signal(float)
    transfer_changed = Signal(str)
    pixel_changed = Signal(object)  # (x, y) | None, absolute EXR coordinates
    pinned_changed = Signal(object)  # (x, y) | None
    hover_changed = Signal(object)  # (x, y) | None
    hovered_sample_changed = Signal(object)  # int | None: index in depth order of the current pixel
    frame_changed = Signal(object)  # Frame | None

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._document: ExrDocument | None = None
        self._part = 0
        self._view = View()
        self._exposure = 0.0
        self._gamma = 2.2
        self._transfer = "srgb"
        self._pixel: Pixel | None = None
        self._pinned: Pixel | None = None
        self._hover: Pixel | None = None
        self._hovered_sample: int | None = None
        self._frame: Frame | None = None
        self._part_cache: dict[PartKey, PartData] = {}
        self._profiles: dict[tuple[int, Pixel], tuple[DeepImage, PixelProfile | None]] = {}

    # ------------------------------------------------------------------ document and part
    @property
    def document(self) -> ExrDocument | None:
        return self._document

    def set_document(self, document: ExrDocument | None, keep_state: bool = False) -> None:
        """Show ``document``; ``keep_state`` (a reload) keeps part, view and pixels when still valid."""
        old = self._document
        if old is not None:
            self.clear_cache(old.path)
        if document is not None and document is not old:
            self.clear_cache(document.path)
        self._document = document
        part = self._part if keep_state and document is not None and self._part < len(document.parts) else 0
        part_moved = part != self._part
        self._part = part
        image = self.image
        view = self._view if keep_state and image is not None and view_is_valid(image, self._view) else (
            default_view(image) if image is not None else View())
        view_moved = view != self._view
        self._view = view
        old_pixel, old_pinned = self._pixel, self._pinned
        if not keep_state:
            self._pixel = self._pinned = None
        self._hover = None
        self._hovered_sample = None
        self.document_changed.emit(document)
        if part_moved:
            self.part_changed.emit(part)
        if view_moved:
            self.view_changed.emit(view)
        if self._pixel != old_pixel:
            self.pixel_changed.emit(self._pixel)
        if self._pinned != old_pinned:
            self.pinned_changed.emit(self._pinned)
        self.hover_changed.emit(None)
        self.hovered_sample_changed.emit(None)

    @property
    def part_index(self) -> int:
        return self._part

    def set_part(self, index: int) -> None:
        doc = self._document
        if doc is None or not 0 <= index < len(doc.parts):
            raise ValueError(f"no part {index}")
        if index == self._part:
            return
        self._part = index
        image = self.image
        view = self._view
        if image is not None and not view_is_valid(image, view):
            keep = View(view.mode, view.layer, None)
            view = keep if view.mode != "channel" and view_is_valid(image, keep) else default_view(image)
        view_moved = view != self._view
        self._view = view
        self._hovered_sample = None
        self.part_changed.emit(index)
        if view_moved:
            self.view_changed.emit(view)
        self.hovered_sample_changed.emit(None)

    @property
    def image(self) -> DeepImage | FlatImage | None:
        """Pixels of the current part."""
        doc = self._document
        if doc is None or not doc.parts:
            return None
        return doc.parts[self._part].image

    @property
    def part_key(self) -> PartKey | None:
        """Cache key of the current part: (path, mtime, part index)."""
        doc = self._document
        return None if doc is None else (doc.path, doc.mtime, self._part)

    @property
    def is_deep(self) -> bool:
        return isinstance(self.image, DeepImage)

    @property
    def layers(self) -> list[Layer]:
        image = self.image
        return group_channels(image.channels) if image is not None else []

    # ------------------------------------------------------------------ view
    @property
    def view(self) -> View:
        return self._view

    def set_view(self, view: View) -> None:
        """Show a mode/layer/channel; raises ValueError when the current part cannot show it."""
        image = self.image
        if view.mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {view.mode!r}")
        if image is not None and not view_is_valid(image, view):
            raise ValueError(f"this part cannot show {view}")
        self._set_view_unchecked(view)

    def _set_view_unchecked(self, view: View) -> None:
        if view != self._view:
            self._view = view
            self.view_changed.emit(view)

    def set_view_mode(self, mode: str) -> None:
        """Switch mode, keeping the layer; "channel" mode picks the layer's first channel."""
        channel = self._view.channel
        if mode == "channel" and channel is None:
            layer = next((la for la in self.layers if la.name == self._view.layer), None)
            channel = layer.channels[0] if layer and layer.channels else None
        self.set_view(View(mode, self._view.layer, channel if mode == "channel" else None))

    # ------------------------------------------------------------------ tone
    @property
    def exposure(self) -> float:
        return self._exposure

    def set_exposure(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("exposure must be finite")
        value = min(max(value, EXPOSURE_RANGE[0]), EXPOSURE_RANGE[1])
        if value != self._exposure:
            self._exposure = value
            self.exposure_changed.emit(value)

    @property
    def gamma(self) -> float:
        return self._gamma

    def set_gamma(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("gamma must be finite")
        value = min(max(value, GAMMA_RANGE[0]), GAMMA_RANGE[1])
        if value != self._gamma:
            self._gamma = value
            self.gamma_changed.emit(value)

    @property
    def transfer(self) -> str:
        return self._transfer

    def set_transfer(self, value: str) -> None:
        if value not in TRANSFERS:
            raise ValueError(f"transfer must be one of {TRANSFERS}")
        if value != self._transfer:
            self._transfer = value
            self.transfer_changed.emit(value)

    @property
    def tone(self) -> Tone:
        return Tone(self._exposure, self._gamma, self._transfer)

    def reset_tone(self) -> None:
        self.set_exposure(0.0)
        self.set_gamma(2.2)
        self.set_transfer("srgb")

    # ------------------------------------------------------------------ pixels
    @property
    def current_pixel(self) -> Pixel | None:
        return self._pixel

    def set_current_pixel(self, pixel: Pixel | None) -> None:
        pixel = _as_pixel(pixel)
        if pixel != self._pixel:
            self._pixel = pixel
            self._hovered_sample = None
            self.hovered_sample_changed.emit(None)
            self.pixel_changed.emit(pixel)

    @property
    def pinned_pixel(self) -> Pixel | None:
        return self._pinned

    def set_pinned_pixel(self, pixel: Pixel | None) -> None:
        pixel = _as_pixel(pixel)
        if pixel != self._pinned:
            self._pinned = pixel
            self.pinned_changed.emit(pixel)

    @property
    def hover_pixel(self) -> Pixel | None:
        return self._hover

    def set_hover_pixel(self, pixel: Pixel | None) -> None:
        pixel = _as_pixel(pixel)
        if pixel != self._hover:
            self._hover = pixel
            self.hover_changed.emit(pixel)

    @property
    def hovered_sample(self) -> int | None:
        return self._hovered_sample

    def set_hovered_sample(self, index: int | None) -> None:
        index = None if index is None else int(index)
        if index is not None and index < 0:
            raise ValueError("sample index must be >= 0")
        if index != self._hovered_sample:
            self._hovered_sample = index
            self.hovered_sample_changed.emit(index)

    def pixel_profile(self, pixel: Pixel | None) -> PixelProfile | None:
        """The deep samples of ``pixel`` (absolute) in the current part, coloured with the current tone.

        None for a flat part or a pixel outside the data window. Every widget showing the
        current or pinned pixel asks here, so a click sorts and formats the pixel once; the
        colours are redone when the tone has changed since.
        """
        image = self.image
        if pixel is None or not isinstance(image, DeepImage):
            return None
        key = (id(image), pixel)
        hit = self._profiles.pop(key, None)
        if hit is not None and hit[0] is image:
            profile = hit[1]
            self._profiles[key] = hit  # the most recently used is kept longest
        else:
            profile = pixel_profile(image, *pixel, self.tone)
            self._profiles[key] = (image, profile)
            while len(self._profiles) > PROFILES_KEPT:
                del self._profiles[next(iter(self._profiles))]
        if profile is not None and profile.tone != self.tone:
            profile.colours = sample_colours(image, profile, self.tone)
            profile.tone = self.tone
        return profile

    def local_pixel(self, pixel: Pixel | None = None, image: DeepImage | FlatImage | None = None) -> Pixel | None:
        """Data-window-relative (x, y) of an absolute pixel in ``image`` (the current part), or None outside."""
        pixel = self._pixel if pixel is None else pixel
        image = self.image if image is None else image
        if pixel is None or image is None:
            return None
        dw = image.data_window
        lx, ly = pixel[0] - dw.xmin, pixel[1] - dw.ymin
        if 0 <= lx < image.width and 0 <= ly < image.height:
            return lx, ly
        return None

    # ------------------------------------------------------------------ frame and cache
    @property
    def frame(self) -> Frame | None:
        """The image the canvas shows (made by the render worker)."""
        return self._frame

    def set_frame(self, frame: Frame | None) -> None:
        if frame is not self._frame:
            self._frame = frame
            self.frame_changed.emit(frame)

    def cached_part_data(self, key: PartKey) -> PartData | None:
        return self._part_cache.get(key)

    def store_part_data(self, key: PartKey, data: PartData) -> None:
        """Keep a part's derived arrays; only parts of the open document are kept."""
        doc = self._document
        if doc is None or key[0] != doc.path or key[1] != doc.mtime:
            return
        self._part_cache[key] = data

    def clear_cache(self, path: str | os.PathLike | None = None) -> None:
        """Forget derived arrays of ``path`` (all when None); done on open and reload."""
        self._profiles.clear()
        if path is None:
            self._part_cache.clear()
            return
        path = os.fspath(path)
        for key in [k for k in self._part_cache if k[0] == path]:
            del self._part_cache[key]


def _as_pixel(pixel) -> Pixel | None:
    if pixel is None:
        return None
    x, y = pixel
    return int(x), int(y)
