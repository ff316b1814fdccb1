"""The viewer's Deep IDs state: manifest, id channels, the selection, its mask and preview, exports.

:class:`DeepIdModel` observes the :class:`~app.document.DocumentModel` and holds, for the
current part, one signal per property:

* the **manifest** (``idManifest``, else the older ``objectID`` list, else none: the same rule
  as ``deepscope select``) and the **id channels** (:func:`core.deepid.id_channels`), grouped
  into **sources**: one per manifest group that has channels in the image, and one per id
  channel no group names. The manifest panel shows one table per source.
* the **selection**: either a set of ids per source (checkboxes, picking), or a query in the
  ``deepidselect`` language (:func:`core.deepid.parse_query`), which keeps its exact per-sample
  meaning (``--and``, negation). Editing ids while a query is active starts an id selection from
  the ids the query's positive terms matched. Either way it resolves to a
  :class:`core.deepid.IdSelection`.
* the **mask** (:func:`core.deepid.deep_mask`) and the **flattened deep selection**
  (:func:`core.deepid.deep_select` then :func:`core.kernels.flatten`: only the selected samples,
  so edges keep their true colour), computed in a worker, latest request wins; and the canvas
  **overlay** for the **preview mode** ("off", "mask overlay", "selected objects only").

**Picking** (:meth:`DeepIdModel.pick`): the ids of the *front-most sample that contributes
visibly* at a pixel: the first sample, in depth order, whose visible weight
``|alpha| * (1 - alpha accumulated in front)`` is above zero (:func:`core.deepid.visible_weights`).
It adds (or removes) that sample's ids in the active source's channels. The canvas picks only
while "Pick" is on; a click still sets the current pixel, so the deep graph and sample table
follow it.

Exports (the mask as float32 ``A`` EXR with the part's windows or as a 16-bit PNG over the
display window; the deep selection as a deep EXR) run in a worker and are written atomically,
never over the open file (:mod:`core.writer`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from app.document import DocumentModel
from app.render import PartKey, PixelProfile, Tone
from app.workers import TaskLane
from core.deepid import (
    IdChannel,
    IdSelection,
    Query,
    SelectionGroup,
    deep_mask,
    deep_select,
    id_channels,
    id_totals,
    parse_query,
    parse_term,
    resolve,
    select_samples,
    split_and,
    visible_weights,
)
from core.display import display_transform
from core.errors import Cancelled, DeepscopeError, SelectionError
from core.idmanifest import ChannelGroup, IdManifest, manifest_from_header
from core.kernels import flatten
from core.layers import alpha_channel, find_layer, group_channels
from core.model import Box, DeepImage, FlatImage, PixelType

PREVIEW_MODES = ("off", "mask overlay", "selected objects only")
PREVIEW_LABELS = {"off": "Off", "mask overlay": "Mask overlay", "selected objects only": "Selected objects only"}

#: the mask overlay: selected pixels tinted with this colour, the rest dimmed towards black
TINT_COLOUR = np.array([255.0, 150.0, 30.0], dtype=np.float32)
TINT_OPACITY = 0.4
DIM_OPACITY = 0.62
#: "selected objects only" is shown over a checkerboard of these greys (squares of CHECKER image pixels)
CHECKER_GREYS = (38.0, 58.0)
CHECKER = 8

Image = DeepImage | FlatImage


def format_id(value: int, bits: int = 32) -> str:
    """An id as the panel shows it: 8 hex digits, 16 for 64-bit ids."""
    return f"{int(value):0{16 if bits > 32 else 8}x}"


# --------------------------------------------------------------------------- sources


@dataclass
class IdSource:
    """One table of the manifest panel: a manifest group's id channels, or a channel no group names.

    ``key`` identifies it within a part (``group:N`` or ``channel:NAME``); ``components`` are
    the names of the manifest columns (empty without a manifest group).
    """

    key: str
    title: str
    channels: tuple[IdChannel, ...]
    group: ChannelGroup | None = None
    group_index: int | None = None

    @property
    def bits(self) -> int:
        return max((c.bits for c in self.channels), default=32)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.group.components) if self.group is not None else ()

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(n for c in self.channels for n in c.channel_names)

    def entry(self, value: int) -> tuple[str, ...] | None:
        """The manifest's strings for an id (None when the manifest has no entry)."""
        return self.group.entries.get(int(value)) if self.group is not None else None

    def describe(self) -> str:
        """One line: channels, and the group's hash scheme, encoding and lifetime."""
        text = "channels " + ", ".join(self.channel_names)
        g = self.group
        if g is None:
            return text + " · no manifest group"
        return f"{text} · hash {g.hash_scheme} · encoding {g.encoding_scheme} · lifetime {g.lifetime}"


def id_sources(channels: Iterable[IdChannel], manifest: IdManifest | None) -> list[IdSource]:
    """Group id channels by manifest group (in manifest order); a channel with no group is its own source."""
    by_group: dict[int, list[IdChannel]] = {}
    loose: list[IdChannel] = []
    for ch in channels:
        if ch.group_index is not None and manifest is not None:
            by_group.setdefault(ch.group_index, []).append(ch)
        else:
            loose.append(ch)
    out = []
    for gi in sorted(by_group):
        group = manifest.groups[gi]
        chans = tuple(by_group[gi])
        title = " / ".join(c for c in group.components if c) or " / ".join(c.name for c in chans)
        out.append(IdSource(f"group:{gi}", title, chans, group, gi))
    for ch in loose:
        out.append(IdSource(f"channel:{ch.name}", ch.name, (ch,)))
    titles = [s.title for s in out]
    for s in out:  # two groups with the same components: tell them apart by their channels
        if titles.count(s.title) > 1:
            s.title = f"{s.title} ({', '.join(c.name for c in s.channels)})"
    return out


@dataclass
class IdStats:
    """The ids of one source found in the image: sorted unique ``ids`` (uint64), their sample
    counts and visible coverage (summed visible weight: how many pixels' worth shows)."""

    ids: np.ndarray
    samples: np.ndarray
    coverage: np.ndarray

    def lookup(self, value: int) -> tuple[int, float]:
        i = int(np.searchsorted(self.ids, np.uint64(value)))
        if i < self.ids.shape[0] and int(self.ids[i]) == int(value):
            return int(self.samples[i]), float(self.coverage[i])
        return 0, 0.0


def _source_values(image: Image, source: IdSource) -> np.ndarray:
    values = [ch.values(image.channels).reshape(-1) for ch in source.channels]
    return np.concatenate(values) if len(values) > 1 else values[0]


def _weights(image: Image) -> np.ndarray:
    """Visible weight per sample (deep) or alpha per pixel (flat; 1 without alpha)."""
    if isinstance(image, DeepImage):
        return visible_weights(_with_alpha(image))
    a = alpha_channel(group_channels(image.channels), "")
    if a is None:
        return np.ones(image.width * image.height, dtype=np.float32)
    return np.abs(np.asarray(image.channels[a], dtype=np.float32)).reshape(-1)


def compute_id_stats(image: Image, sources: list[IdSource], progress=None, cancel=None) -> dict[str, IdStats]:
    """Per source, the ids present, their sample counts and visible coverage (runs in a worker)."""
    out: dict[str, IdStats] = {}
    if not sources:
        return out
    weights = _weights(image)
    for k, source in enumerate(sources):
        if cancel is not None and cancel():
            raise Cancelled()
        values = _source_values(image, source)
        w = np.concatenate([weights] * len(source.channels)) if len(source.channels) > 1 else weights
        ids, counts = np.unique(values, return_counts=True)
        cov = np.zeros(ids.shape[0], dtype=np.float64)
        vis_ids, vis = id_totals(values, w)
        if vis_ids.size:
            cov[np.searchsorted(ids, vis_ids)] = vis
        out[source.key] = IdStats(ids.astype(np.uint64), counts.astype(np.int64), cov)
        if progress is not None:
            progress((k + 1) / len(sources))
    return out


@dataclass(frozen=True)
class IdRow:
    """One row of a source's table: an id, its manifest strings (None: no entry), where it shows."""

    id: int
    names: tuple[str, ...] | None
    samples: int
    coverage: float


def source_rows(source: IdSource, stats: IdStats | None) -> list[IdRow]:
    """Every manifest entry of the source and every id found in the image, by id."""
    ids: set[int] = set(source.group.entries) if source.group is not None else set()
    if stats is not None:
        ids.update(stats.ids.tolist())
    rows = []
    for v in sorted(ids):
        samples, cov = stats.lookup(v) if stats is not None else (0, 0.0)
        rows.append(IdRow(v, source.entry(v), samples, cov))
    return rows


def row_text(row: IdRow, bits: int) -> str:
    """What the plain filter searches: the id in hex and decimal, and its names."""
    return " ".join((format_id(row.id, bits), str(row.id), *(row.names or ())))


def split_query_text(text: str) -> list[list[str]]:
    """A query typed on one line (shell quoting allowed) as ``--and`` groups of terms."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    return [g for g in split_and(tokens) if g] if tokens else []


def _with_alpha(image: DeepImage) -> DeepImage:
    """The image itself, or a view with opaque alpha when it has no ``A`` (every sample hides what is behind)."""
    if "A" in image.channels:
        return image
    channels = dict(image.channels)
    channels["A"] = np.ones(image.total_samples, dtype=np.float32)
    return DeepImage(image.data_window, image.display_window, image.offsets, channels,
                     {**image.pixel_types, "A": PixelType.FLOAT})


def _one_pixel(values: dict[str, np.ndarray], types: dict[str, PixelType]) -> DeepImage:
    """A 1x1 deep image of one pixel's samples (so core's selection functions apply to it)."""
    n = next(iter(values.values())).shape[0] if values else 0
    box = Box(0, 0, 0, 0)
    return DeepImage(box, box, np.array([0, n], dtype=np.int64),
                     {k: np.ascontiguousarray(v) for k, v in values.items()}, dict(types))


def empty_selection(image: Image | None) -> IdSelection:
    """A selection that picks nothing."""
    names = tuple(sorted(image.channels)) if image is not None else ()
    return IdSelection(Query(()), [SelectionGroup()], [], names)


def ids_selection(image: Image, sources: list[IdSource], picked: dict[str, frozenset[int]]) -> IdSelection:
    """The selection of the picked ids: a sample is selected when any of its id channels holds a picked id."""
    include: dict[IdChannel, np.ndarray] = {}
    for source in sources:
        ids = picked.get(source.key)
        if ids:
            arr = np.array(sorted(ids), dtype=np.uint64)
            for ch in source.channels:
                include[ch] = arr
    return IdSelection(Query(()), [SelectionGroup(include=include)], [], tuple(sorted(image.channels)))


# --------------------------------------------------------------------------- masks and previews (worker)


@dataclass(frozen=True, eq=False)
class SelectionRequest:
    """An immutable job for the selection worker; ``previous`` is reused when it has the same key and version."""

    key: PartKey
    image: Image
    selection: IdSelection
    version: int
    preview: str
    tone: Tone
    previous: SelectionResult | None = None


@dataclass
class SelectionResult:
    """What a selection job made: per-sample (deep) or per-pixel (flat) ``selected`` flags, the
    float32 ``mask``, the flattened deep selection (``flat``: planes by channel name, premultiplied,
    or None when the preview did not need it) and the canvas ``overlay`` (uint8 RGBA, or None)."""

    key: PartKey
    version: int
    selected: np.ndarray
    mask: np.ndarray
    flat: dict[str, np.ndarray] | None = None
    overlay: np.ndarray | None = None
    preview: str = "off"
    tone: Tone = field(default_factory=Tone)


def beauty_channels(image: Image) -> tuple[tuple[str | None, ...], str | None]:
    """The root layer's colour channels (as the colour view shows them) and its alpha."""
    layers = group_channels(image.channels)
    layer = find_layer(layers, "") or (layers[0] if layers else None)
    if layer is None:
        return (), None
    return tuple(layer.rgb), alpha_channel(layers, layer.name)


def selection_mask(image: Image, selected: np.ndarray) -> np.ndarray:
    """The mask of the selection: the Deep IDs shallow mask (deep), or the selected pixels (flat)."""
    if isinstance(image, DeepImage):
        return deep_mask(_with_alpha(image), selected)
    return selected.astype(np.float32)


def flatten_selection(image: Image, selected: np.ndarray) -> dict[str, np.ndarray]:
    """The selected samples composited (deep), or the beauty times the selection (flat)."""
    rgb, alpha = beauty_channels(image)
    names = list(dict.fromkeys(n for n in (*rgb, alpha) if n is not None))
    if isinstance(image, DeepImage):
        if not names:
            return {}
        return dict(flatten(deep_select(image, selected), names, split_volumes=True))
    keep = selected.astype(np.float32)
    return {n: np.asarray(image.channels[n], dtype=np.float32) * keep for n in names}


def checkerboard(height: int, width: int, x0: int = 0, y0: int = 0) -> np.ndarray:
    """``(H, W)`` float32 greys in squares of :data:`CHECKER` pixels, anchored at absolute (0, 0)."""
    ys = (np.arange(height) + y0) // CHECKER
    xs = (np.arange(width) + x0) // CHECKER
    odd = (ys[:, None] + xs[None, :]) % 2
    return np.where(odd == 1, CHECKER_GREYS[1], CHECKER_GREYS[0]).astype(np.float32)


def mask_overlay(mask: np.ndarray) -> np.ndarray:
    """RGBA (straight alpha) to lay over the beauty: selected pixels tinted, the rest dimmed."""
    m = np.clip(np.nan_to_num(mask.astype(np.float32), nan=0.0), 0.0, 1.0)
    a = DIM_OPACITY + (TINT_OPACITY - DIM_OPACITY) * m
    colour = TINT_COLOUR[None, None, :] * (TINT_OPACITY * m / a)[..., None]
    out = np.empty(mask.shape + (4,), dtype=np.uint8)
    out[..., :3] = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    out[..., 3] = np.rint(a * 255.0).astype(np.uint8)
    return out


def selected_only_overlay(image: Image, flat: dict[str, np.ndarray], tone: Tone) -> np.ndarray:
    """The flattened selection shown with the viewer's tone, premultiplied over a checkerboard (opaque RGBA)."""
    h, w = image.height, image.width
    rgb_names, alpha = beauty_channels(image)
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    for i, name in enumerate(rgb_names):
        if name is not None and name in flat:
            rgb[..., i] = flat[name]
    shown = display_transform(rgb, exposure=tone.exposure, gamma=tone.gamma, transfer=tone.transfer)
    a = flat.get(alpha) if alpha is not None else None
    a = np.ones((h, w), np.float32) if a is None else np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0)
    dw = image.data_window
    bg = checkerboard(h, w, dw.xmin, dw.ymin)
    out = np.empty((h, w, 4), dtype=np.uint8)
    out[..., :3] = np.clip(shown[..., :3].astype(np.float32) + ((1.0 - a) * bg)[..., None], 0, 255).astype(np.uint8)
    out[..., 3] = 255
    return out


def compute_selection(request: SelectionRequest, progress=None, cancel=None) -> SelectionResult:
    """Run a selection job: selected samples and mask (reused when unchanged), the flattened
    selection when the preview needs it, and the overlay."""
    image = request.image
    prev = request.previous
    reuse = prev is not None and prev.key == request.key and prev.version == request.version
    if reuse:
        selected, mask, flat = prev.selected, prev.mask, prev.flat
    else:
        selected = select_samples(image, request.selection)
        if cancel is not None and cancel():
            raise Cancelled()
        mask = selection_mask(image, selected)
        flat = None
    if progress is not None:
        progress(0.4)
    overlay = None
    if request.preview == "mask overlay":
        overlay = mask_overlay(mask)
    elif request.preview == "selected objects only":
        if flat is None:
            if cancel is not None and cancel():
                raise Cancelled()
            flat = flatten_selection(image, selected)
        overlay = selected_only_overlay(image, flat, request.tone)
    return SelectionResult(request.key, request.version, selected, mask, flat, overlay, request.preview,
                           request.tone)


# --------------------------------------------------------------------------- exports (worker)


def mask_on_display_window(mask: np.ndarray, data_window: Box, display_window: Box) -> np.ndarray:
    """The data-window mask placed on the display window (zero where there is no data)."""
    out = np.zeros((display_window.height, display_window.width), dtype=np.float32)
    x0, y0 = max(data_window.xmin, display_window.xmin), max(data_window.ymin, display_window.ymin)
    x1, y1 = min(data_window.xmax, display_window.xmax) + 1, min(data_window.ymax, display_window.ymax) + 1
    if x0 < x1 and y0 < y1:
        dst = out[y0 - display_window.ymin:y1 - display_window.ymin, x0 - display_window.xmin:x1 - display_window.xmin]
        dst[...] = mask[y0 - data_window.ymin:y1 - data_window.ymin, x0 - data_window.xmin:x1 - data_window.xmin]
    return out


def export_mask_job(path: str, source: str, image: Image, selection: IdSelection, progress, cancelled) -> str:
    """Write the selection's mask: a 16-bit PNG (``.png``, display window) or a float32 ``A`` EXR (same windows)."""
    from core.writer import write_flat, write_png16

    selected = select_samples(image, selection)
    mask = selection_mask(image, selected)
    progress(0.5)
    if path.lower().endswith(".png"):
        write_png16(path, mask_on_display_window(mask, image.data_window, image.display_window), source=source)
        return f"wrote {path}: 16-bit PNG mask over the display window"
    write_flat(path, {"A": mask}, image.data_window, image.display_window, pixel_types={"A": PixelType.FLOAT},
               source=source)
    return f"wrote {path}: float32 A mask of {int(np.count_nonzero(selected))} selected samples"


def export_deep_job(path: str, source: str, image: DeepImage, selection: IdSelection, header_part,
                    manifest: IdManifest | None, progress, cancelled) -> str:
    """Write the selected samples as a deep EXR (input compression when deep-legal, its attributes and manifest)."""
    from core.writer import carry_over_attributes, write_deep  # the header carry-over of ``deepscope select``

    selected = select_samples(image, selection)
    subset = deep_select(image, selected)
    progress(0.5)
    compression = header_part.header.compression
    compression = compression if compression in ("NONE", "RLE", "ZIPS") else "ZIPS"
    id_manifest = manifest if manifest is not None and manifest.source == "idManifest" else None
    write_deep(path, subset, compression=compression, attributes=carry_over_attributes(header_part.header),
               id_manifest=id_manifest, source=source)
    return f"wrote {path}: {subset.total_samples} of {image.total_samples} samples"


# --------------------------------------------------------------------------- the model


class DeepIdModel(QObject):
    """Deep IDs state of the open part; widgets observe it and write to it (one signal per property)."""

    manifest_changed = Signal(object)  # IdManifest | None
    id_channels_changed = Signal(object)  # list[IdChannel]
    sources_changed = Signal(object)  # list[IdSource]
    id_stats_changed = Signal(object)  # dict[source key, IdStats]
    active_source_changed = Signal(object)  # source key | None
    selection_changed = Signal(object)  # IdSelection
    query_changed = Signal(str)  # "" when the selection is a set of ids
    mask_changed = Signal(object)  # (H, W) float32 | None
    deep_selection_changed = Signal(object)  # flattened deep selection planes | None
    overlay_changed = Signal(object)  # (H, W, 4) uint8 | None
    preview_mode_changed = Signal(str)
    pick_enabled_changed = Signal(bool)
    busy_changed = Signal(bool)
    message = Signal(str)  # one line for the panel (pick results, query errors)
    export_finished = Signal(str, str)  # path, message
    export_failed = Signal(str, str)  # path, message

    def __init__(self, document: DocumentModel, pool: QThreadPool | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.pool = pool
        self._manifest: IdManifest | None = None
        self._channels: list[IdChannel] = []
        self._sources: list[IdSource] = []
        self._stats: dict[str, IdStats] = {}
        self._rows: dict[str, tuple[list[IdRow], list[str]]] = {}  # per source: rows, lower-case filter text
        self._active: str | None = None
        self._picked: dict[str, frozenset[int]] = {}
        self._query: Query | None = None
        self._query_text = ""
        self._selection: IdSelection = empty_selection(None)
        self._version = 0
        self._result: SelectionResult | None = None
        self._preview = "off"
        self._pick = False
        self._key: PartKey | None = None
        self._busy = False
        self.stats_lane = TaskLane("id stats", pool, self)
        self.selection_lane = TaskLane("id selection", pool, self)
        self.stats_lane.finished.connect(self._on_stats)
        self.stats_lane.failed.connect(lambda _tag, exc: self.message.emit(f"id statistics failed: {exc}"))
        self.selection_lane.finished.connect(self._on_selection_result)
        self.selection_lane.failed.connect(self._on_selection_failed)
        for lane in (self.stats_lane, self.selection_lane):
            lane.busy_changed.connect(self._update_busy)
        self._exports: dict[int, TaskLane] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._submit)
        document.document_changed.connect(self._on_part_changed)
        document.part_changed.connect(self._on_part_changed)
        for signal in (document.exposure_changed, document.gamma_changed, document.transfer_changed):
            signal.connect(self._on_tone_changed)
        self._on_part_changed()

    # ------------------------------------------------------------------ part -> manifest, channels, sources
    @property
    def image(self) -> Image | None:
        return self.document.image

    @property
    def manifest(self) -> IdManifest | None:
        return self._manifest

    @property
    def id_channels(self) -> list[IdChannel]:
        return list(self._channels)

    @property
    def sources(self) -> list[IdSource]:
        return list(self._sources)

    @property
    def id_stats(self) -> dict[str, IdStats]:
        return dict(self._stats)

    def source(self, key: str | None) -> IdSource | None:
        return next((s for s in self._sources if s.key == key), None)

    def rows(self, key: str) -> list[IdRow]:
        """The table rows of a source: manifest entries and ids in the image (cached until either changes)."""
        return self._cached_rows(key)[0]

    def _cached_rows(self, key: str) -> tuple[list[IdRow], list[str]]:
        cached = self._rows.get(key)
        if cached is None:
            source = self.source(key)
            rows = source_rows(source, self._stats.get(key)) if source is not None else []
            texts = [row_text(r, source.bits).lower() for r in rows] if source is not None else []
            cached = self._rows[key] = (rows, texts)
        return cached

    def _read_manifest(self) -> IdManifest | None:
        doc = self.document.document
        if doc is None or not doc.parts:
            return None
        index = self.document.part_index
        try:
            manifest = manifest_from_header(doc.parts[index].header, doc.path)
            if manifest is None and index != 0:  # deepidselect looks in part 0 too
                manifest = manifest_from_header(doc.parts[0].header, doc.path)
        except DeepscopeError as exc:
            self.message.emit(str(exc))
            return None
        return manifest

    def _on_part_changed(self, *_args) -> None:
        old_key, old_sources = self._key, {s.key for s in self._sources}
        self._key = self.document.part_key
        image = self.image
        self._manifest = self._read_manifest()
        self._channels = id_channels(image, self._manifest) if image is not None else []
        self._sources = id_sources(self._channels, self._manifest)
        self._stats = {}
        self._rows = {}
        self._result = None
        same_part = (old_key is not None and self._key is not None and old_key[0] == self._key[0]
                     and old_key[2] == self._key[2] and old_sources == {s.key for s in self._sources})
        if not same_part:  # a reload of the same part keeps the selection
            self._picked = {}
            self._query = None
            self._query_text = ""
        keys = [s.key for s in self._sources]
        if self._active not in keys:
            self._active = keys[0] if keys else None
        self.manifest_changed.emit(self._manifest)
        self.id_channels_changed.emit(self.id_channels)
        self.sources_changed.emit(self.sources)
        self.id_stats_changed.emit({})
        self.active_source_changed.emit(self._active)
        self._rebuild_selection(emit_query=True)
        self.mask_changed.emit(None)
        self.deep_selection_changed.emit(None)
        self.overlay_changed.emit(None)
        if image is not None and self._sources:
            self.stats_lane.submit(partial(_stats_job, image, list(self._sources)), tag=self._key)
        elif self.stats_lane.busy:
            self.stats_lane.cancel()

    def _on_stats(self, key, stats: dict[str, IdStats]) -> None:
        if key == self._key:
            self._stats = stats
            self._rows = {}
            self.id_stats_changed.emit(dict(stats))

    # ------------------------------------------------------------------ active source
    @property
    def active_source(self) -> str | None:
        """The key of the source picking works in (the panel's current tab)."""
        return self._active

    def set_active_source(self, key: str | None) -> None:
        if key is not None and self.source(key) is None:
            raise ValueError(f"no id source {key!r}")
        if key != self._active:
            self._active = key
            self.active_source_changed.emit(key)

    # ------------------------------------------------------------------ selection
    @property
    def selection(self) -> IdSelection:
        return self._selection

    @property
    def selection_version(self) -> int:
        return self._version

    @property
    def query(self) -> str:
        """The query the selection comes from ("" when it is a set of ids)."""
        return self._query_text

    def checked_ids(self, key: str) -> frozenset[int]:
        """The ids of a source the selection names (a query: the ids its positive terms matched)."""
        if self._query is None:
            return self._picked.get(key, frozenset())
        source = self.source(key)
        if source is None:
            return frozenset()
        chosen = self._selection.selected_ids()
        out: set[int] = set()
        for ch in source.channels:
            if ch in chosen:
                out.update(int(v) for v in chosen[ch].tolist())
        return frozenset(out)

    @property
    def selected_count(self) -> int:
        """How many ids are selected over all sources."""
        return sum(len(self.checked_ids(s.key)) for s in self._sources)

    @property
    def has_selection(self) -> bool:
        return self._query is not None or any(self._picked.values())

    def _ids_from_query(self) -> dict[str, frozenset[int]]:
        return {s.key: self.checked_ids(s.key) for s in self._sources}

    def set_ids(self, key: str, ids: Iterable[int]) -> None:
        """Make ``ids`` the selected ids of one source (a query becomes the ids it matched)."""
        if self.source(key) is None:
            raise ValueError(f"no id source {key!r}")
        picked = self._ids_from_query() if self._query is not None else dict(self._picked)
        picked[key] = frozenset(int(v) for v in ids)
        self._set_picked(picked)

    def set_checked(self, key: str, ids: Iterable[int], checked: bool) -> None:
        """Add (``checked``) or remove ids of one source."""
        current = set(self.checked_ids(key))
        ids = {int(v) for v in ids}
        self.set_ids(key, current | ids if checked else current - ids)

    def clear_selection(self) -> None:
        self._set_picked({})

    def _set_picked(self, picked: dict[str, frozenset[int]]) -> None:
        picked = {k: v for k, v in picked.items() if v}
        had_query = self._query is not None
        if picked == self._picked and not had_query:
            return
        self._picked = picked
        self._query = None
        self._query_text = ""
        self._rebuild_selection(emit_query=had_query)

    def apply_query(self, text: str) -> IdSelection:
        """Select with a ``deepidselect`` query typed on one line (``--and`` between groups).

        Raises :class:`SelectionError` for a query that does not parse (nothing changes then).
        An empty text clears the selection.
        """
        groups = split_query_text(text)
        if not groups:
            self.clear_selection()
            return self._selection
        query = parse_query(groups)
        if self.image is None:
            raise SelectionError("no image is open")
        self._query = query
        self._query_text = str(query)
        self._picked = {}
        self._rebuild_selection(emit_query=True)
        return self._selection

    def resolve_text(self, text: str) -> IdSelection | None:
        """The selection a query text would give, without applying it (None when it does not parse)."""
        groups = split_query_text(text)
        if not groups or self.image is None:
            return None
        try:
            return resolve(parse_query(groups), self._manifest, self.image)
        except SelectionError:
            return None

    def filter_ids(self, text: str) -> dict[str, set[int]] | None:
        """The ids of each source the panel shows for a filter text (None: show everything).

        A row shows when its id (hex or decimal) or one of its names contains the text, or one of
        its words (case insensitive), or when the text, read as a query, matches it; ids a negated
        term matches are hidden. A query of negated terms only shows every other id. Plain words
        need no query resolution: a query's substring terms match a subset of what they show.
        """
        text = text.strip()
        if not text:
            return None
        needle = text.lower()
        groups = split_query_text(text)
        words = [w.lower() for g in groups for w in g]
        try:
            plain = len(groups) == 1 and all(
                (t.kind == "substring" and t.component is None and not t.negated)
                for t in (parse_term(w) for w in groups[0]))
        except SelectionError:
            plain = False
        positive: dict[str, set[int]] = {s.key: set() for s in self._sources}
        negative: dict[str, set[int]] = {s.key: set() for s in self._sources}
        only_negative = False
        selection = None if plain else self.resolve_text(text)
        if selection is not None:
            terms = [t for g in selection.query.groups for t in g]
            only_negative = bool(terms) and all(t.negated for t in terms)
            source_of = {ch: s.key for s in self._sources for ch in s.channels}
            for m in selection.matches:
                key = source_of.get(m.channel)
                if key is None:
                    src = self._source_of_channel(m.channel)
                    key = src.key if src is not None else None
                if key is not None:
                    (negative if m.negated else positive)[key].add(int(m.id))
        out: dict[str, set[int]] = {}
        for source in self._sources:
            rows, texts = self._cached_rows(source.key)
            if only_negative:
                shown = {r.id for r in rows}
            else:
                shown = set(positive[source.key])
                shown.update(r.id for r, t in zip(rows, texts, strict=True)
                             if needle in t or (plain and any(w in t for w in words)))
            out[source.key] = shown - negative[source.key]
        return out

    def _source_of_channel(self, channel: IdChannel) -> IdSource | None:
        for s in self._sources:
            if channel in s.channels or any(n in s.channel_names for n in channel.channel_names):
                return s
        return None

    def _rebuild_selection(self, emit_query: bool = False) -> None:
        image = self.image
        if image is None or not self._sources:
            self._selection = empty_selection(image)
        elif self._query is not None:
            try:
                self._selection = resolve(self._query, self._manifest, image)
            except SelectionError as exc:
                self.message.emit(str(exc))
                self._query, self._query_text = None, ""
                self._selection = ids_selection(image, self._sources, self._picked)
        else:
            self._selection = ids_selection(image, self._sources, self._picked)
        self._version += 1
        if emit_query:
            self.query_changed.emit(self._query_text)
        self.selection_changed.emit(self._selection)
        self.schedule()

    # ------------------------------------------------------------------ picking
    def front_visible_sample(self, pixel: tuple[int, int]) -> int | None:
        """Index (in the pixel's stored depth order) of its front-most sample with visible weight > 0."""
        image = self.image
        local = self.document.local_pixel(pixel, image) if image is not None else None
        if local is None:
            return None
        if isinstance(image, FlatImage):
            return 0
        values = image.pixel_samples(*local)
        one = _with_alpha(_one_pixel(values, image.pixel_types))
        if one.total_samples == 0:
            return None
        visible = np.nonzero(visible_weights(one) > 0)[0]
        return int(visible[0]) if visible.size else None

    def ids_at(self, pixel: tuple[int, int], source_key: str | None = None) -> frozenset[int] | None:
        """The ids of the front visible sample at ``pixel`` in one source's channels (default: the active one)."""
        source = self.source(self._active if source_key is None else source_key)
        image = self.image
        index = self.front_visible_sample(pixel)
        if source is None or index is None:
            return None
        lx, ly = self.document.local_pixel(pixel, image)
        if isinstance(image, DeepImage):
            values = image.pixel_samples(lx, ly)
            return frozenset(int(ch.values(values)[index]) for ch in source.channels)
        return frozenset(int(ch.values(image.channels)[ly, lx]) for ch in source.channels)

    def pick(self, pixel: tuple[int, int], remove: bool = False) -> frozenset[int] | None:
        """Add (or remove) the ids of the front visible sample at ``pixel`` in the active source."""
        ids = self.ids_at(pixel)
        source = self.source(self._active)
        if ids is None or source is None:
            self.message.emit(f"({pixel[0]}, {pixel[1]}): no visible sample to pick" if source is not None
                              else "no id channels to pick from")
            return None
        self.set_checked(source.key, ids, not remove)
        names = ", ".join(self.id_label(source, v) for v in sorted(ids))
        self.message.emit(f"{'removed' if remove else 'picked'} {names} ({source.title})")
        return ids

    @property
    def pick_enabled(self) -> bool:
        """While on, a click on the canvas picks ids (Ctrl/Alt+click removes)."""
        return self._pick

    def set_pick_enabled(self, enabled: bool) -> None:
        enabled = bool(enabled)
        if enabled != self._pick:
            self._pick = enabled
            self.pick_enabled_changed.emit(enabled)

    # ------------------------------------------------------------------ naming samples
    def id_label(self, source: IdSource, value: int) -> str:
        """An id as a name: its manifest strings joined by '/', else its hex value."""
        entry = source.entry(value)
        if entry:
            return ", ".join(entry) if len(entry) > 1 else entry[0]
        return self.plain_id(source, value)

    @staticmethod
    def plain_id(source: IdSource, value: int) -> str:
        """An id with no name: decimal when the group says ids are not hashes (particle numbers), else hex."""
        if source.group is not None and source.group.hash_scheme == "none":
            return str(int(value))
        return format_id(value, source.bits)

    def sample_names(self, values: dict[str, np.ndarray]) -> list[str]:
        """For each sample of a pixel (``values``: channel -> samples), the names of its ids:
        ``model=circle/big · material=blue · particleid=00000003``."""
        n = next(iter(values.values())).shape[0] if values else 0
        parts: list[list[str]] = [[] for _ in range(n)]
        for source in self._sources:
            if not all(name in values for name in source.channel_names):
                continue
            for ch in source.channels:
                ids = ch.values(values)
                for i in range(n):
                    v = int(ids[i])
                    entry = source.entry(v)
                    if entry and source.components:
                        parts[i].append(" ".join(f"{c}={s}" for c, s in zip(source.components, entry, strict=False)))
                    elif entry:
                        parts[i].append(f"{ch.name}={'/'.join(entry)}")
                    else:
                        parts[i].append(f"{ch.name}={self.plain_id(source, v)}")
        return [" · ".join(p) for p in parts]

    def _current(self, image: Image | None) -> bool:
        """True when ``image`` is the open part and this model is up to date with it."""
        return image is not None and image is self.image and self._key == self.document.part_key

    def profile_selected(self, image: Image | None, profile: PixelProfile | None) -> np.ndarray | None:
        """Which samples of a deep pixel profile the selection picks (None without a selection)."""
        if (profile is None or not self._current(image) or not self.has_selection
                or not isinstance(image, DeepImage)):
            return None
        try:
            return select_samples(_one_pixel(profile.values, image.pixel_types), self._selection)
        except SelectionError:
            return None

    def sample_columns(self, image: Image | None, profile: PixelProfile | None) -> list[tuple[str, list[str]]]:
        """Extra sample-table columns: "sel" (✓ for selected samples) and "ids" (the names of each sample's ids)."""
        if profile is None or not self._current(image) or not self._sources:
            return []
        names = self.sample_names(profile.values)
        selected = self.profile_selected(image, profile)
        marks = ["✓" if s else "" for s in selected] if selected is not None else [""] * profile.count
        return [("sel", marks), ("ids", names)]

    # ------------------------------------------------------------------ preview and worker
    @property
    def preview_mode(self) -> str:
        return self._preview

    def set_preview_mode(self, mode: str) -> None:
        if mode not in PREVIEW_MODES:
            raise ValueError(f"preview mode must be one of {PREVIEW_MODES}")
        if mode != self._preview:
            self._preview = mode
            self.preview_mode_changed.emit(mode)
            self.schedule()

    @property
    def mask(self) -> np.ndarray | None:
        """The current selection's mask over the data window (None until computed)."""
        r = self._result
        return r.mask if r is not None and r.version == self._version else None

    @property
    def selected_samples(self) -> np.ndarray | None:
        r = self._result
        return r.selected if r is not None and r.version == self._version else None

    @property
    def deep_selection(self) -> dict[str, np.ndarray] | None:
        """The flattened deep selection (planes by channel), computed for "selected objects only"."""
        r = self._result
        return r.flat if r is not None and r.version == self._version else None

    @property
    def overlay(self) -> np.ndarray | None:
        """The canvas overlay for the preview mode (uint8 RGBA over the data window), or None."""
        r = self._result
        if r is None or r.version != self._version or self._preview == "off" or r.preview != self._preview:
            return None
        return r.overlay

    @property
    def overlay_key(self) -> PartKey | None:
        return self._result.key if self._result is not None else None

    @property
    def busy(self) -> bool:
        return self.stats_lane.busy or self.selection_lane.busy or self._timer.isActive() or bool(self._exports)

    def _update_busy(self, *_args) -> None:
        busy = self.busy
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _on_tone_changed(self, *_args) -> None:
        if self._preview == "selected objects only":
            self.schedule()

    def schedule(self) -> None:
        """Recompute the mask and preview soon (several changes in one event give one job)."""
        self._timer.start()
        self._update_busy()

    def _submit(self) -> None:
        image, key = self.image, self._key
        if image is None or key is None or not self._sources:
            if self.selection_lane.busy:
                self.selection_lane.cancel()
            self._update_busy()
            return
        request = SelectionRequest(key, image, self._selection, self._version, self._preview,
                                   self.document.tone, self._result)
        self.selection_lane.submit(partial(_selection_job, request), tag=request)
        self._update_busy()

    def _on_selection_result(self, request: SelectionRequest, result: SelectionResult) -> None:
        if request.key != self._key or request.version != self._version:
            return
        old = self._result
        self._result = result
        if old is None or old.mask is not result.mask:
            self.mask_changed.emit(result.mask)
        if old is None or old.flat is not result.flat:
            self.deep_selection_changed.emit(result.flat)
        self.overlay_changed.emit(self.overlay)

    def _on_selection_failed(self, _request, exc: BaseException) -> None:
        self.message.emit(f"selection failed: {exc}")

    # ------------------------------------------------------------------ exports
    def _export(self, path: str | os.PathLike, job: Callable) -> None:
        lane = TaskLane("export", self.pool, self)
        target = os.fspath(path)
        ident = id(lane)
        self._exports[ident] = lane

        def done(ok: bool, _tag, payload) -> None:
            self._exports.pop(ident, None)
            lane.deleteLater()
            self._update_busy()
            if ok:
                self.export_finished.emit(target, str(payload))
            else:
                text = str(payload) if isinstance(payload, DeepscopeError) else f"{target}: {payload}"
                self.export_failed.emit(target, text)

        lane.finished.connect(partial(done, True))
        lane.failed.connect(partial(done, False))
        lane.submit(job, tag=target)
        self._update_busy()

    def can_export(self) -> tuple[bool, bool]:
        """(mask, deep selection): what the open part can export now."""
        image = self.image
        mask_ok = image is not None and bool(self._sources)
        return mask_ok, mask_ok and isinstance(image, DeepImage)

    def export_mask(self, path: str | os.PathLike) -> None:
        """Write the mask in the background (``.png``: 16-bit PNG; else float32 ``A`` EXR)."""
        doc, image = self.document.document, self.image
        if doc is None or image is None or not self._sources:
            self.export_failed.emit(os.fspath(path), "no id channels to make a mask from")
            return
        self._export(path, partial(export_mask_job, os.fspath(path), doc.path, image, self._selection))

    def export_deep_selection(self, path: str | os.PathLike) -> None:
        """Write the selected samples as a deep EXR in the background."""
        doc, image = self.document.document, self.image
        if doc is None or not isinstance(image, DeepImage) or not self._sources:
            self.export_failed.emit(os.fspath(path), "the deep selection needs a deep part with ids")
            return
        part = doc.parts[self.document.part_index]
        self._export(path, partial(export_deep_job, os.fspath(path), doc.path, image, self._selection, part,
                                   self._manifest))

    def shutdown(self) -> None:
        """Stop every job (call before the pool is waited on)."""
        self._timer.stop()
        for lane in (self.stats_lane, self.selection_lane, *self._exports.values()):
            lane.shutdown()


def _stats_job(image: Image, sources: list[IdSource], progress, cancelled) -> dict[str, IdStats]:
    return compute_id_stats(image, sources, progress, cancelled)


def _selection_job(request: SelectionRequest, progress, cancelled) -> SelectionResult:
    return compute_selection(request, progress, cancelled)
