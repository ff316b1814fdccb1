"""The viewer's Cryptomatte state: the layers of the open file, the current layer, the
selection per layer, the preview mode, picking, mattes and exports.

One signal per property, like :class:`app.document.DocumentModel`. Everything that touches a
whole image runs on worker lanes (latest request wins): finding the layers (it may read
sidecar manifests and look at pixels), stacking a layer's ranks once (cached under
``(path, mtime, part, layer)``), counting the ids in the pixels, keying the matte with the
preview image, and exports. Per-pixel queries (the picker, the id stack) run in the GUI thread.

Selections are kept per layer *name*, as typed (wildcards unexpanded), so the next frame of a
sequence keys the same matte list. With wildcards off, every token is taken literally
(``*`` is then a character of the name), as the Nuke gizmo does; switching back restores the
wildcards. A layer whose id channels are HALF is never keyed: the core refuses it and the
error is shown instead.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from app.document import DocumentModel
from app.workers import TaskLane, make_pool, wait_for_pool
from core.cryptomatte import (
    CryptoError,
    CryptoLayer,
    CryptoRanks,
    IdStack,
    crypto_edges,
    crypto_id_at,
    crypto_matte,
    crypto_preview,
    crypto_ranks,
    find_document_crypto_layers,
    id_coverage,
    id_stack,
)
from core.display import display_transform
from core.errors import Cancelled, DeepscopeError, ExrError, SelectionError
from core.model import Box, ExrDocument, FlatImage, PixelType
from core.selection import (
    Selection,
    escape_name,
    format_id,
    has_wildcards,
    parse_id_token,
    unescape_token,
)
from core.writer import write_flat, write_png16

PREVIEW_MODES = ("off", "id colours", "edges", "matte overlay", "matte only")
PREVIEW_LABELS = {
    "off": "Off (beauty)",
    "id colours": "Id colours",
    "edges": "Edges",
    "matte overlay": "Matte over beauty",
    "matte only": "Matte only",
}
DEFAULT_PREVIEW = "matte overlay"
MATTE_COLOUR = (255, 204, 0)  # the overlay colour of the matte (amber)
MATTE_OPACITY = 0.55
MATTE_DIM = 0.45  # how much the overlay darkens what is not in the matte (when something is)
EDGE_COLOUR = (255, 255, 255)
EXPORT_SUFFIXES = (".exr", ".png")
TEMPLATE_FIELDS = ("layer", "name", "hex", "index")
DEFAULT_TEMPLATE = "{layer}_{name}.exr"
MAX_FILE_STEM = 150
#: plain filter text of this many hex digits (or starting with 0x) also finds ids by their hex
HEX_MIN_DIGITS = 6

LayerKey = tuple[str, float, int, str]  # path, mtime, part index, layer name

_SEP = "\x00"
_STRING_DTYPE = getattr(np.dtypes, "StringDType", None)


# ============================================================================ manifest rows


class ManifestIndex:
    """The rows a manifest panel lists for one layer, and fast filtering over them.

    Rows are the manifest names sorted case-insensitively, then (once the pixels have been
    counted) the ids seen in the pixels that have no name, written ``<float>`` like the Nuke
    gizmo. ``ids`` are uint32 id bits, ``named`` says which rows are manifest names,
    ``pixels``/``coverage`` are per-row pixel counts and coverage sums (None until known).

    Filtering (:meth:`filter`) is vectorised: a wildcard pattern is one regex pass over all
    names joined by NUL, plain text one numpy string search, so 100k names filter in tens of
    milliseconds.
    """

    def __init__(self, names: Sequence[str], ids: np.ndarray, named: np.ndarray | None = None,
                 pixels: np.ndarray | None = None, coverage: np.ndarray | None = None):
        self.names = list(names)
        self.ids = np.ascontiguousarray(ids, dtype=np.uint32)
        if self.ids.shape != (len(self.names),):
            raise ValueError(f"{len(self.names)} names but ids of shape {self.ids.shape}")
        self.named = np.ones(len(self.names), bool) if named is None else np.asarray(named, bool)
        self.pixels = None if pixels is None else np.asarray(pixels, np.int64)
        self.coverage = None if coverage is None else np.asarray(coverage, np.float64)
        self._blob: tuple[str, np.ndarray] | None = None
        self._lower = None
        self._hex = None

    @classmethod
    def from_manifest(cls, manifest: dict[str, int]) -> ManifestIndex:
        """Rows of a manifest (``{name: id bits}``), sorted case-insensitively."""
        names = sorted(manifest, key=lambda n: (n.lower(), n))
        ids = np.fromiter((manifest[n] for n in names), dtype=np.uint32, count=len(names))
        return cls(names, ids)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def has_stats(self) -> bool:
        return self.pixels is not None

    def with_stats(self, present: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> ManifestIndex:
        """These rows with pixel counts, plus a ``<float>`` row for every id in the pixels that
        has no manifest name (id 0, the background, left out). Arguments as from
        :func:`core.cryptomatte.id_coverage` (sorted ids)."""
        present = np.asarray(present, np.uint32)
        sums = np.asarray(sums, np.float64)
        counts = np.asarray(counts, np.int64)
        keep = self.named  # unnamed rows of an earlier count are replaced
        ids = self.ids[keep]
        pixels = np.zeros(len(ids), np.int64)
        coverage = np.zeros(len(ids), np.float64)
        if len(present):
            pos = np.minimum(np.searchsorted(present, ids), len(present) - 1)
            hit = present[pos] == ids
            pixels[hit] = counts[pos[hit]]
            coverage[hit] = sums[pos[hit]]
        extra = ~np.isin(present, ids) & ((present & np.uint32(0x7FFFFFFF)) != 0)
        extra_ids = present[extra]
        return ManifestIndex(
            [n for n, k in zip(self.names, keep, strict=True) if k] + [format_id(int(b)) for b in extra_ids],
            np.concatenate([ids, extra_ids]),
            np.concatenate([np.ones(len(ids), bool), np.zeros(len(extra_ids), bool)]),
            np.concatenate([pixels, counts[extra]]),
            np.concatenate([coverage, sums[extra]]),
        )

    # ---------------------------------------------------------------- filtering
    @staticmethod
    def is_wildcard(text: str) -> bool:
        """Filter text with ``*`` or ``?`` is a wildcard pattern over whole names."""
        return "*" in text or "?" in text

    @staticmethod
    def pattern_token(text: str) -> str | None:
        """The matte-list token that selects exactly what the wildcard filter ``text`` shows:
        ``*`` and ``?`` stay wildcards, ``[``, ``]`` and ``\\`` are escaped (literal in the
        filter). None when ``text`` is not a wildcard pattern."""
        if not ManifestIndex.is_wildcard(text):
            return None
        return "".join("\\" + c if c in "[]\\" else c for c in text)

    def filter(self, text: str) -> np.ndarray:
        """Row indices (ascending int64) that ``text`` shows.

        Empty text shows every row. Text with ``*`` (any run) or ``?`` (one character) is
        matched against whole names, case-sensitively, as the gizmo keys wildcards; any other
        text shows the names that contain it, ignoring case, and, when it is ``0x`` followed
        by hex digits or at least ``HEX_MIN_DIGITS`` hex digits, the ids whose hex starts with it.
        """
        n = len(self.names)
        if not text or not text.strip() or (self.is_wildcard(text) and not text.strip("*")):
            return np.arange(n, dtype=np.int64)
        if self.is_wildcard(text):
            return self._wildcard_rows(text)
        return self._substring_rows(text)

    def _joined(self) -> tuple[str, np.ndarray] | None:
        """All names joined as ``\\0a\\0b\\0`` and each name's start; None if a name has a NUL."""
        if self._blob is None:
            if any(_SEP in n for n in self.names):
                return None
            starts = np.zeros(len(self.names), dtype=np.int64)
            if self.names:
                lengths = np.fromiter(map(len, self.names), dtype=np.int64, count=len(self.names))
                starts[1:] = np.cumsum(lengths[:-1] + 1)
            self._blob = (_SEP + _SEP.join(self.names) + _SEP, starts + 1)
        return self._blob

    def _wildcard_rows(self, text: str) -> np.ndarray:
        joined = self._joined()
        if joined is None:  # a name with a NUL: match names one by one
            rx = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text), re.S)
            return np.array([i for i, n in enumerate(self.names) if rx.fullmatch(n)], dtype=np.int64)
        blob, starts = joined
        body = "".join("[^\x00]*" if c == "*" else "[^\x00]" if c == "?" else re.escape(c) for c in text)
        rx = re.compile(f"\x00(?:{body})(?=\x00)")
        pos = np.fromiter((m.start() + 1 for m in rx.finditer(blob)), dtype=np.int64)
        return np.searchsorted(starts, pos).astype(np.int64)

    def prepare_search(self) -> ManifestIndex:
        """Build the filter's search arrays (lower-case names, hex ids, the joined names) now.

        The workers that build an index call this, so the panel's first keystroke does not pay
        for it in the GUI thread. Returns self.
        """
        if self._lower is None:
            if _STRING_DTYPE is not None:
                arr = np.array(self.names, dtype=_STRING_DTYPE())
                self._lower = np.strings.lower(arr)
                self._hex = np.array([f"{int(b):08x}" for b in self.ids], dtype=_STRING_DTYPE())
            else:  # numpy 1.x: fixed-width strings
                self._lower = np.char.lower(np.array(self.names, dtype=str))
                self._hex = np.array([f"{int(b):08x}" for b in self.ids], dtype=str)
        self._joined()
        return self

    def _substring_rows(self, text: str) -> np.ndarray:
        self.prepare_search()
        query = text.lower()
        if _STRING_DTYPE is not None:
            hit = np.strings.find(self._lower, query) >= 0
        else:
            hit = np.char.find(self._lower, query) >= 0
        hexq = query[2:] if query.startswith("0x") else query
        is_hex = all(c in string.hexdigits for c in hexq) and 0 < len(hexq) <= 8
        if is_hex and (query.startswith("0x") or len(hexq) >= HEX_MIN_DIGITS):
            starts = np.strings.startswith if _STRING_DTYPE is not None else np.char.startswith
            hit |= starts(self._hex, hexq)
        return np.flatnonzero(hit).astype(np.int64)

    def row_of_id(self, id_bits: int) -> int | None:
        """The first row holding ``id_bits``, or None."""
        rows = np.flatnonzero(self.ids == np.uint32(id_bits))
        return int(rows[0]) if rows.size else None


# ============================================================================ results


@dataclass(frozen=True)
class MatteResult:
    """The matte of a selection on one layer: ``(H, W)`` float32 over ``data_window``."""

    key: LayerKey
    ids: np.ndarray
    matte: np.ndarray
    data_window: Box
    pixels: int
    total: float


@dataclass(frozen=True)
class Overlay:
    """What the canvas draws over the beauty: uint8 RGBA ``(H, W, 4)`` over ``data_window``."""

    mode: str
    rgba: np.ndarray
    data_window: Box


@dataclass(frozen=True)
class MatteRequest:
    key: LayerKey
    ranks: CryptoRanks
    ids: np.ndarray
    mode: str
    id_colours: np.ndarray | None = None


@dataclass(frozen=True)
class ExportItem:
    """One file of an export: where it goes and the id it keys."""

    path: str
    id_bits: int
    name: str


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote (``paths``) and which ids it left out as absent from the pixels."""

    paths: list[str]
    skipped: int = 0

    @property
    def count(self) -> int:
        return len(self.paths)


# ============================================================================ pure helpers


def literal_token(token: str) -> str:
    """A token taken literally (wildcards off): ``*``, ``?`` and brackets become characters."""
    if parse_id_token(token) is not None:
        return token
    return escape_name(unescape_token(token))


def id_token(id_bits: int, name: str | None) -> str:
    """The token the picker writes for an id: its escaped name, or ``<float>`` without one."""
    return escape_name(name) if name is not None else format_id(id_bits)


def preview_rgba(mode: str, ranks: CryptoRanks, matte: np.ndarray | None,
                 id_colours: np.ndarray | None = None) -> np.ndarray | None:
    """The overlay image of a preview mode (uint8 RGBA over the layer's data window), or None.

    ``id colours``: :func:`~core.cryptomatte.crypto_preview` through the sRGB display curve,
    opaque. ``edges``: white where ids mix, with alpha ``1 - top coverage``
    (:func:`~core.cryptomatte.crypto_edges`). ``matte overlay``: blended by the canvas over the
    displayed beauty, it gives ``beauty * (1 - a) + colour * opacity * m`` with
    ``a = dim * (1 - m) + opacity * m``: the matte tinted as :func:`~core.cryptomatte.matte_overlay`
    tints it, the rest darkened so the selection stands out (nothing is darkened while the matte
    is empty). ``matte only``: the matte in grey, opaque.
    """
    if mode == "off":
        return None
    if mode == "id colours":
        if id_colours is not None:
            return id_colours
        return display_transform(crypto_preview(ranks.ids, ranks.coverage), transfer="srgb")
    h, w = ranks.shape
    if mode == "edges":
        edges = crypto_edges(ranks.ids, ranks.coverage)
        out = np.empty((h, w, 4), np.uint8)
        out[..., :3] = EDGE_COLOUR
        out[..., 3] = np.rint(edges * 255.0).astype(np.uint8)
        return out
    if matte is None:
        matte = np.zeros((h, w), np.float32)
    m = np.clip(np.nan_to_num(matte, nan=0.0), 0.0, 1.0)
    if mode == "matte overlay":
        out = np.zeros((h, w, 4), np.uint8)
        if not np.any(m > 0):
            return out
        alpha = MATTE_DIM * (1.0 - m) + MATTE_OPACITY * m  # > 0 everywhere
        tint = (MATTE_OPACITY * m / alpha)[..., None] * np.asarray(MATTE_COLOUR, np.float32)
        out[..., :3] = np.rint(tint).astype(np.uint8)
        out[..., 3] = np.rint(alpha * 255.0).astype(np.uint8)
        return out
    if mode == "matte only":
        return display_transform(m.astype(np.float32), transfer="srgb")
    raise ValueError(f"unknown preview mode {mode!r}")


def matte_job(request: MatteRequest, progress, cancelled) -> tuple[MatteResult, Overlay | None, np.ndarray | None]:
    """Key the selection and make the preview image (runs in a worker)."""
    if cancelled():
        raise Cancelled()
    ranks = request.ranks
    matte = crypto_matte(ranks.ids, ranks.coverage, request.ids)
    if cancelled():
        raise Cancelled()
    progress(0.5)
    rgba = preview_rgba(request.mode, ranks, matte, request.id_colours)
    id_colours = rgba if request.mode == "id colours" else request.id_colours
    result = MatteResult(request.key, request.ids, matte, ranks.data_window, int(np.count_nonzero(matte > 0)),
                         float(matte.sum(dtype=np.float64)))
    overlay = None if rgba is None else Overlay(request.mode, rgba, ranks.data_window)
    return result, overlay, id_colours


def find_layers_job(document: ExrDocument, progress, cancelled) -> list[tuple[CryptoLayer, ManifestIndex]]:
    """The Cryptomatte layers of a document with their manifest rows (runs in a worker)."""
    headers = [p.header for p in document.parts]
    images = [p.image if isinstance(p.image, FlatImage) else None for p in document.parts]
    layers = find_document_crypto_layers(headers, document.path, images)
    out = []
    for i, layer in enumerate(layers):
        if cancelled():
            raise Cancelled()
        out.append((layer, ManifestIndex.from_manifest(layer.manifest).prepare_search()))
        progress((i + 1) / max(len(layers), 1))
    return out


def ranks_job(layer: CryptoLayer, image, path: str, progress, cancelled) -> CryptoRanks:
    """Stack a layer's ranks once (raises CryptoError for HALF ids or missing channels)."""
    if cancelled():
        raise Cancelled()
    if not isinstance(image, FlatImage):
        raise CryptoError(f"Cryptomatte layer {layer.name!r} is in a deep part: only flat parts can be keyed", path)
    return crypto_ranks(layer, image, path)


def stats_job(index: ManifestIndex, ranks: CryptoRanks, progress, cancelled) -> ManifestIndex:
    """Count every id in the pixels; unnamed ones become rows (runs in a worker)."""
    if cancelled():
        raise Cancelled()
    present, sums, counts = id_coverage(ranks.ids, ranks.coverage)
    return index.with_stats(present, sums, counts).prepare_search()


def matte_on_display_window(matte: np.ndarray, data_window: Box, display_window: Box) -> np.ndarray:
    """The matte placed on the display window (zero outside the data window), for PNG."""
    out = np.zeros((display_window.height, display_window.width), dtype=np.float32)
    x0, y0 = max(data_window.xmin, display_window.xmin), max(data_window.ymin, display_window.ymin)
    x1, y1 = min(data_window.xmax, display_window.xmax), min(data_window.ymax, display_window.ymax)
    if x0 <= x1 and y0 <= y1:
        out[y0 - display_window.ymin:y1 - display_window.ymin + 1,
            x0 - display_window.xmin:x1 - display_window.xmin + 1] = matte[
            y0 - data_window.ymin:y1 - data_window.ymin + 1, x0 - data_window.xmin:x1 - data_window.xmin + 1]
    return out


def write_matte(path: str | os.PathLike, matte: np.ndarray, data_window: Box, display_window: Box,
                source: str | os.PathLike | None = None) -> None:
    """Write a matte atomically: ``.exr`` as float32 ``A`` with the source's data and display
    windows, ``.png`` as 16-bit grey over the display window (clipped to [0, 1]). Never over
    ``source``."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".exr":
        write_flat(path, {"A": np.ascontiguousarray(matte, np.float32)}, data_window, display_window,
                   pixel_types={"A": PixelType.FLOAT}, compression="ZIP", source=source)
    elif suffix == ".png":
        write_png16(path, matte_on_display_window(matte, data_window, display_window), source=source)
    else:
        raise ExrError(path, "a matte is written as .exr or .png")


def sanitize_filename(text: str) -> str:
    """``text`` made safe as part of a file name on every system: letters, digits, ``-``,
    ``_`` and ``.`` are kept, anything else (``/``, ``:``, spaces, quotes...) becomes ``_``;
    no leading dot; at most ``MAX_FILE_STEM`` characters."""
    out = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in text)
    out = out.lstrip(".") if out.strip(".") else out.replace(".", "_")
    return (out or "_")[:MAX_FILE_STEM]


def check_template(template: str) -> str:
    """Validate an export-all file name template and return its suffix (``.exr``/``.png``).

    Fields: ``{layer}``, ``{name}``, ``{hex}`` (8 hex digits), ``{index}`` (row number, takes a
    format such as ``{index:04d}``). One of name, hex or index is required so every id gets
    its own file. Raises :class:`SelectionError` saying what is wrong.
    """
    if not template or not template.strip():
        raise SelectionError("the file name template is empty")
    if "/" in template or "\\" in template or os.sep in template:
        raise SelectionError(f"the template {template!r} is a file name: choose the folder separately")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise SelectionError(f"the template {template!r} is malformed: {exc}") from None
    unknown = [f for f in fields if f not in TEMPLATE_FIELDS]
    if unknown:
        raise SelectionError(
            f"the template {template!r} has unknown fields {', '.join('{' + f + '}' for f in unknown)}; "
            f"use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}")
    if not {"name", "hex", "index"} & set(fields):
        raise SelectionError(f"the template {template!r} needs {{name}}, {{hex}} or {{index}} to name each id")
    suffix = os.path.splitext(template)[1].lower()
    if suffix not in EXPORT_SUFFIXES:
        raise SelectionError(f"the template {template!r} must end in .exr or .png")
    try:
        template.format(layer="l", name="n", hex="00000000", index=0)
    except (ValueError, IndexError, KeyError) as exc:
        raise SelectionError(f"the template {template!r} is malformed: {exc}") from None
    return suffix


def plan_export_all(folder: str | os.PathLike, template: str, layer_name: str,
                    entries: Sequence[tuple[str | None, int]],
                    source: str | os.PathLike | None = None) -> list[ExportItem]:
    """The files an export-all writes: one per ``(name or None, id bits)`` entry, named by
    ``template`` in ``folder`` with sanitised names. Two ids whose names sanitise to the same
    file get the id's hex appended. Raises :class:`SelectionError` for a bad template, a
    missing folder, or a file name that would replace ``source``."""
    check_template(template)
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise SelectionError(f"{folder}: the export folder does not exist")
    layer = sanitize_filename(layer_name)
    used: set[str] = set()
    src = os.path.abspath(os.fspath(source)) if source is not None else None
    items = []
    for index, (name, bits) in enumerate(entries):
        hex_id = f"{int(bits):08x}"
        file_name = template.format(layer=layer, name=sanitize_filename(name) if name is not None else hex_id,
                                    hex=hex_id, index=index)
        stem, ext = os.path.splitext(file_name)
        k = 0
        while file_name.casefold() in used:
            k += 1
            file_name = f"{stem}_{hex_id}{ext}" if k == 1 else f"{stem}_{hex_id}_{k}{ext}"
        used.add(file_name.casefold())
        path = os.path.join(folder, file_name)
        if src is not None and os.path.abspath(path) == src:
            raise SelectionError(f"{path}: the export would replace the file being read")
        items.append(ExportItem(path, int(bits), name if name is not None else format_id(int(bits))))
    return items


def export_matte_job(path: str, ranks: CryptoRanks, ids: np.ndarray, display_window: Box, source: str | None,
                     progress, cancelled) -> ExportReport:
    """Key and write one matte (runs in a worker)."""
    matte = crypto_matte(ranks.ids, ranks.coverage, ids)
    if cancelled():
        raise Cancelled()
    progress(0.5)
    write_matte(path, matte, ranks.data_window, display_window, source)
    return ExportReport([path])


def export_all_job(items: Sequence[ExportItem], ranks: CryptoRanks, display_window: Box, source: str | None,
                   include_empty: bool, progress, cancelled) -> ExportReport:
    """One matte file per item, each written atomically (runs in a worker; cancel stops
    between files, the files already written are complete)."""
    todo = list(items)
    skipped = 0
    if not include_empty:
        present = id_coverage(ranks.ids, ranks.coverage)[0]
        keep = np.isin(np.array([it.id_bits for it in todo], dtype=np.uint32), present)
        skipped = int(len(todo) - keep.sum())
        todo = [it for it, k in zip(todo, keep, strict=True) if k]
    written = []
    for i, item in enumerate(todo):
        if cancelled():
            raise Cancelled()
        matte = crypto_matte(ranks.ids, ranks.coverage, np.array([item.id_bits], dtype=np.uint32))
        write_matte(item.path, matte, ranks.data_window, display_window, source)
        written.append(item.path)
        progress((i + 1) / max(len(todo), 1))
    return ExportReport(written, skipped)


# ============================================================================ the model


class CryptoModel(QObject):
    """The Cryptomatte state the panels, the canvas overlay and the picker share."""

    layers_changed = Signal(object)  # list[CryptoLayer]
    layer_changed = Signal(object)  # CryptoLayer | None
    index_changed = Signal(object)  # ManifestIndex | None: the rows of the current layer
    ranks_changed = Signal(object)  # CryptoRanks | None: the current layer's stacked ranks
    selection_changed = Signal(object)  # Selection, as typed (wildcards unexpanded)
    preview_mode_changed = Signal(str)
    wildcards_changed = Signal(bool)
    single_selection_changed = Signal(bool)
    picking_changed = Signal(bool)
    matte_changed = Signal(object)  # MatteResult | None
    overlay_changed = Signal(object)  # Overlay | None
    error_changed = Signal(str)  # "" when the current layer can be keyed
    message_changed = Signal(str)  # what the last pick or export did
    export_finished = Signal(object)  # ExportReport
    export_failed = Signal(str)

    def __init__(self, document: DocumentModel, pool: QThreadPool | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.document_model = document
        self.pool = pool if pool is not None else make_pool(2)
        self.layers_lane = TaskLane("finding layers", self.pool, self)
        self.ranks_lane = TaskLane("reading ids", self.pool, self)
        self.stats_lane = TaskLane("counting ids", self.pool, self)
        self.matte_lane = TaskLane("keying", self.pool, self)
        self.export_lane = TaskLane("exporting", self.pool, self)
        self.layers_lane.finished.connect(self._on_layers_found)
        self.layers_lane.failed.connect(self._on_layers_failed)
        self.ranks_lane.finished.connect(self._on_ranks)
        self.ranks_lane.failed.connect(self._on_ranks_failed)
        self.stats_lane.finished.connect(self._on_stats)
        self.stats_lane.failed.connect(lambda _key, exc: self._set_message(f"counting ids failed: {exc}"))
        self.matte_lane.finished.connect(self._on_matte)
        self.matte_lane.failed.connect(self._on_matte_failed)
        self.export_lane.finished.connect(self._on_exported)
        self.export_lane.failed.connect(lambda _tag, exc: self.export_failed.emit(_one_line(exc)))
        self.export_lane.cancelled.connect(self._on_export_cancelled)

        self._document: ExrDocument | None = None
        self._layers: list[CryptoLayer] = []
        self._indexes: list[ManifestIndex] = []
        self._current = -1
        self._wanted_layer: str | None = None  # layer name to restore when the next file's layers arrive
        self._selections: dict[str, Selection] = {}
        self._ranks: dict[LayerKey, CryptoRanks] = {}
        self._stats: dict[LayerKey, ManifestIndex] = {}
        self._id_colours: dict[LayerKey, np.ndarray] = {}
        self._preview_mode = DEFAULT_PREVIEW
        self._wildcards = True
        self._single = False
        self._picking = True
        self._matte: MatteResult | None = None
        self._overlay: Overlay | None = None
        self._error = ""
        self._message = ""
        self._export_total = 0

        self._matte_timer = QTimer(self)
        self._matte_timer.setSingleShot(True)
        self._matte_timer.setInterval(0)
        self._matte_timer.timeout.connect(self._submit_matte)
        document.document_changed.connect(self._on_document_changed)
        if document.document is not None:
            self._on_document_changed(document.document)

    # ------------------------------------------------------------------ lanes
    @property
    def lanes(self) -> dict[str, TaskLane]:
        return {"finding layers": self.layers_lane, "reading ids": self.ranks_lane, "keying": self.matte_lane,
                "counting ids": self.stats_lane, "exporting": self.export_lane}

    @property
    def busy(self) -> bool:
        """True while any Cryptomatte work (not counting exports) is pending."""
        return (any(lane.busy for lane in (self.layers_lane, self.ranks_lane, self.stats_lane, self.matte_lane))
                or self._matte_timer.isActive())

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel every job and wait for the pool (call before the window goes away)."""
        self._matte_timer.stop()
        for lane in self.lanes.values():
            lane.shutdown()
        return wait_for_pool(self.pool, timeout_ms)

    # ------------------------------------------------------------------ document and layers
    @property
    def document(self) -> ExrDocument | None:
        return self._document

    def _on_document_changed(self, document: ExrDocument | None) -> None:
        for lane in (self.layers_lane, self.ranks_lane, self.stats_lane, self.matte_lane):
            if lane.busy:
                lane.cancel()
        if self.layer is not None:
            self._wanted_layer = self.layer.name
        self._document = document
        self._ranks.clear()
        self._stats.clear()
        self._id_colours.clear()
        self._set_layers([], [])
        if document is not None:
            self.layers_lane.submit(partial(find_layers_job, document), tag=document)

    def _on_layers_found(self, document: ExrDocument, found) -> None:
        if document is not self._document:
            return
        layers = [la for la, _ in found]
        self._set_layers(layers, [ix for _, ix in found])
        if not layers:
            return
        names = [la.name for la in layers]
        wanted = self._wanted_layer
        if wanted in names:
            index = names.index(wanted)
        else:
            index = next((i for i, la in enumerate(layers) if la.keyable), 0)
        self.set_layer(index)

    def _on_layers_failed(self, document: ExrDocument, exc: BaseException) -> None:
        if document is self._document:
            self._set_error(_one_line(exc))

    def _set_layers(self, layers: list[CryptoLayer], indexes: list[ManifestIndex]) -> None:
        had_layer = self._current >= 0
        self._layers = list(layers)
        self._indexes = list(indexes)
        self._current = -1
        self._matte = None
        self._overlay = None
        self.layers_changed.emit(list(self._layers))
        if had_layer or not layers:
            self.layer_changed.emit(None)
            self.index_changed.emit(None)
            self.ranks_changed.emit(None)
            self.selection_changed.emit(self.selection)
            self.matte_changed.emit(None)
            self.overlay_changed.emit(None)
        self._set_error("")

    @property
    def layers(self) -> list[CryptoLayer]:
        return list(self._layers)

    @property
    def layer_index(self) -> int:
        return self._current

    @property
    def layer(self) -> CryptoLayer | None:
        return self._layers[self._current] if 0 <= self._current < len(self._layers) else None

    def layer_label(self, layer: CryptoLayer) -> str:
        """The layer's name, with its part when two parts hold a layer of that name."""
        same = [la for la in self._layers if la.name == layer.name]
        return f"{layer.name} (part {layer.part_index})" if len(same) > 1 else layer.name

    def set_layer(self, which: int | str) -> None:
        """Make a layer current, by index or by name (raises ValueError when there is none)."""
        if isinstance(which, str):
            names = [la.name for la in self._layers]
            labels = [self.layer_label(la) for la in self._layers]
            if which in labels:
                which = labels.index(which)
            elif which in names:
                which = names.index(which)
            else:
                raise ValueError(f"no Cryptomatte layer {which!r}")
        if not 0 <= which < len(self._layers):
            raise ValueError(f"no Cryptomatte layer {which}")
        if which == self._current:
            return
        self._current = which
        layer = self._layers[which]
        self._wanted_layer = layer.name
        self._matte = None
        self._overlay = None
        sel = self._selections.get(layer.name)
        self._selections[layer.name] = (sel.with_manifest(layer.manifest) if sel is not None
                                        else Selection((), layer.manifest))
        self._set_error("")
        self.layer_changed.emit(layer)
        self.index_changed.emit(self.index)
        self.selection_changed.emit(self.selection)
        self.matte_changed.emit(None)
        self.overlay_changed.emit(None)
        key = self.layer_key
        ranks = self._ranks.get(key)
        self.ranks_changed.emit(ranks)
        if ranks is None:
            image = self.layer_image
            if self.matte_lane.busy:
                self.matte_lane.cancel()
            self.ranks_lane.submit(partial(ranks_job, layer, image, self._document.path), tag=key)
        else:
            self._schedule_matte()

    @property
    def layer_key(self) -> LayerKey | None:
        layer, doc = self.layer, self._document
        if layer is None or doc is None:
            return None
        return (doc.path, doc.mtime, layer.part_index, layer.name)

    @property
    def layer_image(self):
        """The pixels of the current layer's part (FlatImage, or a DeepImage that cannot be keyed)."""
        layer, doc = self.layer, self._document
        if layer is None or doc is None:
            return None
        for part in doc.parts:
            if part.index == layer.part_index:
                return part.image
        return None

    @property
    def ranks(self) -> CryptoRanks | None:
        key = self.layer_key
        return self._ranks.get(key) if key is not None else None

    @property
    def index(self) -> ManifestIndex | None:
        """The manifest rows of the current layer (with pixel counts once they are known)."""
        key = self.layer_key
        if key is None:
            return None
        return self._stats.get(key) or self._indexes[self._current]

    def _on_ranks(self, key: LayerKey, ranks: CryptoRanks) -> None:
        if self._document is None or key[:2] != (self._document.path, self._document.mtime):
            return
        self._ranks[key] = ranks
        if key == self.layer_key:
            self.ranks_changed.emit(ranks)
            self._schedule_matte()
            self.stats_lane.submit(partial(stats_job, self._indexes[self._current], ranks), tag=key)

    def _on_ranks_failed(self, key: LayerKey, exc: BaseException) -> None:
        if key == self.layer_key:
            self._set_error(_one_line(exc))

    def _on_stats(self, key: LayerKey, index: ManifestIndex) -> None:
        if self._document is None or key[:2] != (self._document.path, self._document.mtime):
            return
        self._stats[key] = index
        if key == self.layer_key:
            self.index_changed.emit(index)

    # ------------------------------------------------------------------ error and message
    @property
    def error(self) -> str:
        """Why the current layer cannot be keyed ("" when it can)."""
        return self._error

    def _set_error(self, text: str) -> None:
        if text != self._error:
            self._error = text
            self.error_changed.emit(text)

    @property
    def message(self) -> str:
        return self._message

    def _set_message(self, text: str) -> None:
        self._message = text
        self.message_changed.emit(text)

    # ------------------------------------------------------------------ options
    @property
    def preview_mode(self) -> str:
        return self._preview_mode

    def set_preview_mode(self, mode: str) -> None:
        if mode not in PREVIEW_MODES:
            raise ValueError(f"preview mode must be one of {PREVIEW_MODES}, got {mode!r}")
        if mode != self._preview_mode:
            self._preview_mode = mode
            self.preview_mode_changed.emit(mode)
            if mode == "off":
                self._overlay = None
                self.overlay_changed.emit(None)
            self._schedule_matte()

    @property
    def wildcards(self) -> bool:
        return self._wildcards

    def set_wildcards(self, enabled: bool) -> None:
        """With wildcards off every token is a literal name (``*`` is a character of it)."""
        enabled = bool(enabled)
        if enabled != self._wildcards:
            self._wildcards = enabled
            self.wildcards_changed.emit(enabled)
            self.selection_changed.emit(self.selection)
            self._schedule_matte()

    @property
    def single_selection(self) -> bool:
        return self._single

    def set_single_selection(self, enabled: bool) -> None:
        """In single-selection mode a pick replaces the selection with the top id at the pixel."""
        enabled = bool(enabled)
        if enabled != self._single:
            self._single = enabled
            self.single_selection_changed.emit(enabled)

    @property
    def picking(self) -> bool:
        return self._picking

    def set_picking(self, enabled: bool) -> None:
        """Whether clicks on the canvas pick ids (they always still inspect the pixel)."""
        enabled = bool(enabled)
        if enabled != self._picking:
            self._picking = enabled
            self.picking_changed.emit(enabled)

    # ------------------------------------------------------------------ selection
    @property
    def selection(self) -> Selection:
        """The current layer's selection as typed (wildcards unexpanded); empty without a layer."""
        layer = self.layer
        if layer is None:
            return Selection()
        return self._selections.get(layer.name) or Selection((), layer.manifest)

    def effective_selection(self) -> Selection:
        """What is keyed: the typed selection, with every token literal when wildcards are off."""
        sel = self.selection
        if self._wildcards:
            return sel
        return Selection((literal_token(t) for t in sel.tokens), sel.manifest)

    def selected_ids(self) -> np.ndarray:
        return self.effective_selection().ids

    def selected_names(self) -> list[str]:
        """The names (``<float>`` for unnamed ids) of every id keyed, sorted like a matte list."""
        layer = self.layer
        if layer is None:
            return []
        return sorted((layer.name_of(int(i)) or format_id(int(i)) for i in self.selected_ids()),
                      key=lambda t: (t.lower(), t))

    def matte_list(self) -> str:
        """The Nuke matte list text of the current selection."""
        return self.selection.matte_list()

    def set_selection(self, selection: Selection | Iterable[str]) -> None:
        """Replace the current layer's selection (a Selection or tokens)."""
        layer = self.layer
        if layer is None:
            return
        tokens = selection.tokens if isinstance(selection, Selection) else list(selection)
        new = Selection(tokens, layer.manifest)
        if new == self._selections.get(layer.name):
            return
        self._selections[layer.name] = new
        self.selection_changed.emit(new)
        self._schedule_matte()

    def set_matte_list(self, text: str) -> None:
        """Replace the selection from Nuke matte list text; raises SelectionError when it does not parse."""
        layer = self.layer
        if layer is None:
            return
        self.set_selection(Selection.from_matte_list(text, layer.manifest))

    def add_tokens(self, tokens: Iterable[str]) -> None:
        """Add tokens as written (names with escapes, wildcards, ``<float>``)."""
        self.set_selection(list(self.selection.tokens) + [t for t in tokens if t])

    def add_ids(self, ids: Iterable[int]) -> None:
        """Add ids by name (``<float>`` when unnamed); ids already keyed are left as they are."""
        layer = self.layer
        if layer is None:
            return
        have = {int(i) for i in self.selected_ids()}
        new = [id_token(int(b), layer.name_of(int(b))) for b in ids if int(b) not in have]
        if new:
            self.add_tokens(new)

    def remove_ids(self, ids: Iterable[int]) -> None:
        """Deselect ids however they were selected. With wildcards on, a wildcard that matched one
        of them is replaced by the other names it matches (as the gizmo does)."""
        layer = self.layer
        if layer is None:
            return
        drop = {int(i) for i in ids}
        sel = self.selection
        keep: list[str] = []
        for token in sel.tokens:
            keyed = token if self._wildcards else literal_token(token)
            token_ids = sel.token_ids(keyed)
            if not drop.intersection(token_ids):
                keep.append(token)
            elif self._wildcards and parse_id_token(token) is None and has_wildcards(token):
                keep.extend(escape_name(n) for n in sel.matches(token) if int(sel.manifest[n]) not in drop)
        self.set_selection(keep)

    def clear_selection(self) -> None:
        self.set_selection([])

    # ------------------------------------------------------------------ per-pixel queries (GUI thread)
    def _pixel_source(self):
        ranks = self.ranks
        if ranks is not None:
            return ranks
        image = self.layer_image
        return image if isinstance(image, FlatImage) else None

    def id_stack_at(self, x: int, y: int) -> IdStack | None:
        """Every rank's id, name and coverage at EXR pixel (x, y), or None when there is nothing to ask."""
        layer, source = self.layer, self._pixel_source()
        if layer is None or source is None:
            return None
        try:
            return id_stack(layer, source, x, y)
        except DeepscopeError:
            return None

    def pick(self, x: int, y: int, remove: bool = False) -> int | None:
        """What a click on EXR pixel (x, y) does, following the Nuke gizmo's picker: add the
        highest-coverage id not yet selected (single-selection mode: select only the top id),
        or with ``remove`` take off the highest-coverage selected id. Returns the id or None."""
        layer = self.layer
        if layer is None:
            return None
        if self._error:
            self._set_message(f"nothing picked: {self._error}")
            return None
        source = self._pixel_source()
        if source is None:
            self._set_message(f"nothing picked: layer {layer.name!r} is not in a flat part")
            return None
        replace = self._single and not remove
        try:
            bits = crypto_id_at(layer, source, x, y, () if replace else self.selected_ids(), remove)
        except DeepscopeError as exc:
            self._set_error(_one_line(exc))
            self._set_message("nothing picked: the layer cannot be keyed")
            return None
        if bits is None:
            what = "selected id" if remove else ("id" if replace else "id not yet selected")
            self._set_message(f"no {what} at pixel ({x}, {y})")
            return None
        name = layer.name_of(bits) or format_id(bits)
        if remove:
            self.remove_ids([bits])
            self._set_message(f"removed {name} (pixel {x}, {y})")
        elif replace:
            self.set_selection([id_token(bits, layer.name_of(bits))])
            self._set_message(f"selected only {name} (pixel {x}, {y})")
        else:
            self.add_ids([bits])
            self._set_message(f"added {name} (pixel {x}, {y})")
        return bits

    # ------------------------------------------------------------------ matte and preview
    @property
    def matte(self) -> MatteResult | None:
        """The matte of the current selection, once keyed (None while a new one is computed)."""
        return self._matte

    @property
    def overlay(self) -> Overlay | None:
        return self._overlay

    def _schedule_matte(self) -> None:
        self._matte_timer.start()

    def _submit_matte(self) -> None:
        key, ranks = self.layer_key, self.ranks
        if key is None or ranks is None or self._error:
            return
        request = MatteRequest(key, ranks, self.selected_ids(), self._preview_mode, self._id_colours.get(key))
        self.matte_lane.submit(partial(matte_job, request), tag=request)

    def _on_matte(self, request: MatteRequest, result) -> None:
        if request.key != self.layer_key:
            return
        matte, overlay, id_colours = result
        if id_colours is not None:
            self._id_colours[request.key] = id_colours
        if request.mode != self._preview_mode or not np.array_equal(request.ids, self.selected_ids()):
            return  # a newer request is queued behind the timer
        self._matte = matte
        self._overlay = overlay
        self.matte_changed.emit(matte)
        self.overlay_changed.emit(overlay)

    def _on_matte_failed(self, request: MatteRequest, exc: BaseException) -> None:
        if request.key == self.layer_key:
            self._set_error(_one_line(exc))

    # ------------------------------------------------------------------ exports
    def _export_ready(self) -> tuple[CryptoRanks, FlatImage] | None:
        ranks, image = self.ranks, self.layer_image
        if self.layer is None:
            self.export_failed.emit("no Cryptomatte layer to export")
            return None
        if self._error:
            self.export_failed.emit(self._error)
            return None
        if ranks is None or not isinstance(image, FlatImage):
            self.export_failed.emit("the layer's ids are still being read: try again in a moment")
            return None
        return ranks, image

    def export_matte(self, path: str | os.PathLike) -> bool:
        """Write the current matte (``.exr`` float32 ``A``, same windows as the source, or 16-bit
        ``.png``) in a worker. The outcome comes by ``export_finished``/``export_failed``."""
        ready = self._export_ready()
        if ready is None:
            return False
        ranks, image = ready
        path = os.fspath(path)
        if os.path.splitext(path)[1].lower() not in EXPORT_SUFFIXES:
            self.export_failed.emit(f"{path}: a matte is written as .exr or .png")
            return False
        self._export_total = 1
        job = partial(export_matte_job, path, ranks, self.selected_ids(), image.display_window, self._document.path)
        self.export_lane.submit(job, tag=("matte", path))
        return True

    def export_entries(self, pattern: str | None = None) -> list[tuple[str | None, int]]:
        """(name or None, id) of the rows an export-all covers: every row, or those the manifest
        filter ``pattern`` shows."""
        index = self.index
        if index is None:
            return []
        rows = index.filter(pattern or "")
        return [(index.names[r] if index.named[r] else None, int(index.ids[r])) for r in rows]

    def export_all(self, folder: str | os.PathLike, template: str = DEFAULT_TEMPLATE, pattern: str | None = None,
                   include_empty: bool = False) -> int:
        """Write every id (or every id the filter ``pattern`` shows) as its own matte, named by
        ``template``, in a worker with progress and cancel. Ids absent from the pixels are
        skipped unless ``include_empty``. Returns how many ids were planned (0 on an error,
        reported by ``export_failed``)."""
        ready = self._export_ready()
        if ready is None:
            return 0
        ranks, image = ready
        try:
            items = plan_export_all(folder, template, self.layer.name, self.export_entries(pattern),
                                    self._document.path)
        except DeepscopeError as exc:
            self.export_failed.emit(_one_line(exc))
            return 0
        if not items:
            self.export_failed.emit("no id matches: nothing to export")
            return 0
        self._export_total = len(items)
        job = partial(export_all_job, items, ranks, image.display_window, self._document.path, include_empty)
        self.export_lane.submit(job, tag=("all", os.fspath(folder)))
        return len(items)

    def cancel_export(self) -> None:
        self.export_lane.cancel()

    def _on_exported(self, tag, report: ExportReport) -> None:
        kind, where = tag
        if kind == "matte":
            self._set_message(f"wrote {where}")
        else:
            skipped = f" ({report.skipped} ids absent from the pixels skipped)" if report.skipped else ""
            self._set_message(f"wrote {report.count} mattes into {where}{skipped}")
        self.export_finished.emit(report)

    def _on_export_cancelled(self, _tag) -> None:
        self._set_message("export cancelled (the files already written are complete)")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, DeepscopeError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
