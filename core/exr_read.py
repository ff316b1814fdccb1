"""Deepscope's EXR reader: headers, offset tables, deep and flat chunks into our arrays.

Deep parts (deepscanline / deeptile with NONE, RLE, ZIPS or ZIP) are decoded by our own
code straight into a :class:`DeepImage`; other deep compressions (ZSTD) go through the
OpenEXR binding. Flat parts go through the binding when it can read the file and through
our decoder (same four compressions) when it cannot. Every count and size in the file is
checked against the file size before anything is allocated, so a damaged file gives a
one-line :class:`ExrError` and never a huge allocation or a crash.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from core.errors import Cancelled, ExrError, UnsupportedError
from core.exr_codec import MAX_RATIO, CodecError, decode_block, scatter
from core.exr_header import LINES_PER_CHUNK, FileLayout, expected_chunk_count, level_sizes, parse_headers
from core.model import DeepImage, ExrDocument, FlatImage, Part, PartHeader, PixelType

OUR_COMPRESSIONS = ("NONE", "RLE", "ZIPS", "ZIP")
#: Headers larger than this are refused (OpenEXR files with 64 MiB of header are corrupt).
MAX_HEADER_BYTES = 64 << 20
Progress = Callable[[float], None]
CancelCheck = Callable[[], bool]


@dataclass
class _Source:
    """An open file read with ``os.pread`` (no whole-file buffer, thread safe)."""

    path: str
    fd: int
    size: int

    def read(self, offset: int, n: int, what: str) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ExrError(self.path, f"{what} lies beyond the end of the file (truncated?)")
        data = os.pread(self.fd, n, offset)
        if len(data) != n:
            raise ExrError(self.path, f"short read of {what}")
        return data


def _open(path: str) -> _Source:
    if os.path.isdir(path):
        raise ExrError(path, "is a directory, not an EXR file")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ExrError(path, "no such file") from None
    except IsADirectoryError:
        raise ExrError(path, "is a directory, not an EXR file") from None
    except OSError as exc:
        raise ExrError(path, exc.strerror or str(exc)) from None
    try:
        size = os.fstat(fd).st_size
    except OSError as exc:
        os.close(fd)
        raise ExrError(path, str(exc)) from None
    return _Source(path, fd, size)


def _read_layout(src: _Source) -> FileLayout:
    head = os.pread(src.fd, min(src.size, 1 << 16), 0)
    if len(head) >= 4 and struct.unpack_from("<i", head)[0] != 20000630:
        raise ExrError(src.path, "not an OpenEXR file (bad magic number)")
    n = len(head)
    while True:
        try:
            return parse_headers(head, src.path)
        except ExrError as exc:
            # The first 64 KiB may not hold the whole header block: read more and retry.
            if n >= src.size or "ends inside the header" not in exc.problem or n >= MAX_HEADER_BYTES:
                raise
            n = min(src.size, n * 4, MAX_HEADER_BYTES)
            head = os.pread(src.fd, n, 0)


def _chunk_tables(src: _Source, layout: FileLayout) -> list[np.ndarray]:
    pos = layout.tables_start
    tables = []
    for header in layout.parts:
        count = header.get("chunkCount")
        if count is None:
            count = expected_chunk_count(header)
        nbytes = 8 * count
        if pos + nbytes > src.size:
            raise ExrError(src.path, f"{header.label}: chunk offset table ({count} entries) is truncated")
        tables.append(np.frombuffer(src.read(pos, nbytes, "chunk offset table"), "<u8").astype(np.int64))
        pos += nbytes
    return tables


def read_headers(path: str | os.PathLike) -> list[PartHeader]:
    """Every part header of a file, parsed by Deepscope (never refuses unknown attributes)."""
    src = _open(os.fspath(path))
    try:
        return _read_layout(src).parts
    finally:
        os.close(src.fd)


# --------------------------------------------------------------------------- deep parts


@dataclass
class _DeepChunk:
    data_pos: int
    packed: int
    unpacked: int
    # pixel rectangle (data-window relative, inclusive-exclusive)
    x0: int
    y0: int
    x1: int
    y1: int


def _deep_chunk_rects(header: PartHeader, src: _Source, table: np.ndarray, multipart: bool):
    """Yield (chunk file offset, header fields) after checking each offset is in the file."""
    dw = header.data_window
    prefix = 4 if multipart else 0
    if header.is_tiled:
        tiles = header.tiles
        lv0 = level_sizes(header)[0]
        ntx, nty = lv0[2], lv0[3]
        hdr_size = prefix + 16 + 24
    else:
        lines = LINES_PER_CHUNK.get(header.compression, 1)
        hdr_size = prefix + 4 + 24
    for k, off in enumerate(table):
        off = int(off)
        if off <= 0 or off + hdr_size > src.size:
            raise ExrError(src.path, f"{header.label}: chunk {k} starts outside the file (truncated or incomplete)")
        raw = src.read(off, hdr_size, f"chunk {k} header")
        if multipart:
            (pnum,) = struct.unpack_from("<i", raw, 0)
            if pnum != header.index:
                raise ExrError(src.path, f"{header.label}: chunk {k} belongs to part {pnum}")
        if header.is_tiled:
            tx, ty, lx, ly = struct.unpack_from("<iiii", raw, prefix)
            if (lx, ly) != (0, 0):
                continue  # Deepscope shows the full-resolution level only
            if not (0 <= tx < ntx and 0 <= ty < nty):
                raise ExrError(src.path, f"{header.label}: chunk {k} names tile ({tx},{ty}) outside the image")
            x0, y0 = tx * tiles.x_size, ty * tiles.y_size
            x1, y1 = min(x0 + tiles.x_size, dw.width), min(y0 + tiles.y_size, dw.height)
            sizes = struct.unpack_from("<QQQ", raw, prefix + 16)
        else:
            (y,) = struct.unpack_from("<i", raw, prefix)
            rel = y - dw.ymin
            if rel < 0 or rel >= dw.height or rel % lines:
                raise ExrError(src.path, f"{header.label}: chunk {k} names line {y} outside the data window")
            x0, y0, x1, y1 = 0, rel, dw.width, min(rel + lines, dw.height)
            sizes = struct.unpack_from("<QQQ", raw, prefix + 4)
        yield off + hdr_size, sizes, (x0, y0, x1, y1)


def _read_deep_counts(header, src, table, multipart, cancel):
    """Pass 1: sample counts of every pixel, and where each chunk's data is."""
    dw = header.data_window
    comp = header.compression
    ratio = MAX_RATIO[comp]
    counts = np.zeros(dw.width * dw.height, np.int64)
    seen = np.zeros(dw.width * dw.height, np.bool_) if header.is_tiled else None
    chunks: list[_DeepChunk] = []
    unpacked_total = 0
    budget = ratio * src.size + (1 << 20)
    for k, (pos, (table_packed, data_packed, data_unpacked), rect) in enumerate(
        _deep_chunk_rects(header, src, table, multipart)
    ):
        if cancel is not None and k % 64 == 0 and cancel():
            raise Cancelled(src.path)
        x0, y0, x1, y1 = rect
        w, h = x1 - x0, y1 - y0
        table_unpacked = w * h * 4
        if header.is_tiled and table_packed > table_unpacked and comp == "NONE":
            # OpenEXR writes uncompressed edge-tile count tables at the full tile size;
            # the clipped table comes first and the rest is padding.
            full = header.tiles.x_size * header.tiles.y_size * 4
            if table_packed == full:
                table_packed_read = table_unpacked
            else:
                table_packed_read = -1
        else:
            table_packed_read = table_packed
        if (table_packed_read < 0 or table_packed_read > table_unpacked
                or pos + table_packed + data_packed > src.size):
            raise ExrError(src.path, f"{header.label}: chunk {k} sizes exceed the file (truncated or corrupt)")
        unpacked_total += data_unpacked
        if data_unpacked > ratio * max(data_packed, 1) or unpacked_total > budget:
            raise ExrError(src.path, f"{header.label}: chunk {k} claims {data_unpacked} bytes of samples, "
                           "more than its packed size can hold")
        packed = src.read(pos, table_packed_read, f"chunk {k} sample counts")
        try:
            raw = decode_block(packed, table_unpacked, comp)
        except CodecError as exc:
            raise ExrError(src.path, f"{header.label}: chunk {k} sample counts: {exc}") from None
        cumulative = raw.view("<i4").reshape(h, w).astype(np.int64)
        per_pixel = np.diff(cumulative, axis=1, prepend=0)
        if (per_pixel < 0).any():
            raise ExrError(src.path, f"{header.label}: chunk {k} has decreasing sample counts (corrupt)")
        rows = (np.arange(y0, y1)[:, None] * dw.width + np.arange(x0, x1)[None, :]).ravel()
        if seen is not None:
            if seen[rows].any():
                raise ExrError(src.path, f"{header.label}: tile of chunk {k} appears twice")
            seen[rows] = True
        counts[rows] = per_pixel.ravel()
        chunks.append(_DeepChunk(pos + table_packed, data_packed, data_unpacked, x0, y0, x1, y1))
    if seen is not None and not seen.all():
        raise ExrError(src.path, f"{header.label}: some tiles are missing")
    return counts, chunks


def _read_deep_part(header: PartHeader, src: _Source, table: np.ndarray, multipart: bool,
                    progress: Progress | None, cancel: CancelCheck | None, threads: int,
                    sort: bool = True) -> DeepImage:
    dw = header.data_window
    channels = header.channels
    ch_sizes = np.array([c.pixel_type.size for c in channels], np.int64)
    bytes_per_sample = int(ch_sizes.sum())
    counts, chunks = _read_deep_counts(header, src, table, multipart, cancel)
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    # every chunk's declared unpacked size must agree with its sample counts (vectorized)
    width = dw.width
    if chunks:
        rect = np.array([(c.x0, c.y0, c.x1, c.y1, c.unpacked) for c in chunks], np.int64)
        nlines = rect[:, 3] - rect[:, 1]
        which = np.repeat(np.arange(len(chunks)), nlines)
        ys = np.arange(nlines.sum()) - np.repeat(np.cumsum(nlines) - nlines, nlines) + rect[which, 1]
        per_line = offsets[ys * width + rect[which, 2]] - offsets[ys * width + rect[which, 0]]
        per_chunk = np.bincount(which, weights=per_line, minlength=len(chunks)).astype(np.int64)
        bad = np.nonzero(per_chunk * bytes_per_sample != rect[:, 4])[0]
        if bad.size:
            k = int(bad[0])
            raise ExrError(src.path, f"{header.label}: chunk {k} holds {int(rect[k, 4])} bytes for "
                           f"{int(per_chunk[k])} samples of {bytes_per_sample} bytes (corrupt)")
    block = np.empty((len(channels), total), np.uint32)
    lock = threading.Lock()
    done = [0]

    def work(ch: _DeepChunk) -> None:
        if cancel is not None and cancel():
            raise Cancelled(src.path)
        packed = src.read(ch.data_pos, ch.packed, "chunk data")
        try:
            raw = decode_block(packed, ch.unpacked, header.compression)
        except CodecError as exc:
            raise ExrError(src.path, f"{header.label}: chunk at line {ch.y0 + dw.ymin}: {exc}") from None
        ys = np.arange(ch.y0, ch.y1)
        starts = offsets[ys * width + ch.x0]
        line_counts = offsets[ys * width + ch.x1] - starts
        try:
            scatter(raw, line_counts, starts, ch_sizes, block)
        except CodecError as exc:
            raise ExrError(src.path, f"{header.label}: chunk at line {ch.y0 + dw.ymin}: {exc}") from None
        if progress is not None:
            with lock:
                done[0] += 1
                if done[0] % 32 == 0 or done[0] == len(chunks):
                    progress(done[0] / max(len(chunks), 1))

    _run(work, chunks, threads)
    arrays = {}
    for i, c in enumerate(channels):
        row = block[i]
        arrays[c.name] = row if c.pixel_type is PixelType.UINT else row.view(np.float32)
    image = DeepImage(header.data_window, header.display_window, offsets, arrays,
                      {c.name: c.pixel_type for c in channels})
    return _sorted(image) if sort else image


def _run(work, items, threads: int) -> None:
    if threads <= 1 or len(items) < 4:
        for it in items:
            work(it)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for fut in [pool.submit(work, it) for it in items]:
            fut.result()


def _sorted(image: DeepImage) -> DeepImage:
    """Samples front to back by Z, sorted once at load (a no-op on already sorted files)."""
    if "Z" not in image.channels:
        return image
    try:
        from core.kernels import sort_samples
    except ImportError:  # pragma: no cover - kernels land with the foundation
        return image
    return sort_samples(image)


# --------------------------------------------------------------------------- flat parts


def _read_flat_part_ours(header: PartHeader, src: _Source, table: np.ndarray, multipart: bool,
                         cancel: CancelCheck | None, threads: int) -> FlatImage:
    comp = header.compression
    if comp not in OUR_COMPRESSIONS:
        raise UnsupportedError(src.path, f"{header.label}: {comp} compression cannot be decoded here and the "
                               "OpenEXR binding could not read the file")
    channels = header.channels
    if any(c.x_sampling != 1 or c.y_sampling != 1 for c in channels):
        raise UnsupportedError(src.path, f"{header.label}: subsampled channels need the OpenEXR binding, "
                               "which could not read the file")
    dw = header.data_window
    w, h = dw.width, dw.height
    ch_sizes = np.array([c.pixel_type.size for c in channels], np.int64)
    bpp = int(ch_sizes.sum())
    if w * h * bpp > MAX_RATIO[comp] * src.size + (1 << 20):
        raise ExrError(src.path, f"{header.label}: data window {w}x{h} is too large for the file size (corrupt)")
    prefix = 4 if multipart else 0
    rects = []
    for k, off in enumerate(table):
        off = int(off)
        hdr = prefix + (20 if header.is_tiled else 8)
        if off <= 0 or off + hdr > src.size:
            raise ExrError(src.path, f"{header.label}: chunk {k} starts outside the file (truncated or incomplete)")
        raw = src.read(off, hdr, f"chunk {k} header")
        if multipart and struct.unpack_from("<i", raw)[0] != header.index:
            raise ExrError(src.path, f"{header.label}: chunk {k} belongs to another part")
        if header.is_tiled:
            tx, ty, lx, ly, size = struct.unpack_from("<iiiii", raw, prefix)
            if (lx, ly) != (0, 0):
                continue
            t = header.tiles
            x0, y0 = tx * t.x_size, ty * t.y_size
            if tx < 0 or ty < 0 or x0 >= w or y0 >= h:
                raise ExrError(src.path, f"{header.label}: chunk {k} names a tile outside the image")
            x1, y1 = min(x0 + t.x_size, w), min(y0 + t.y_size, h)
        else:
            y, size = struct.unpack_from("<ii", raw, prefix)
            lines = LINES_PER_CHUNK[comp]
            y0 = y - dw.ymin
            if y0 < 0 or y0 >= h or y0 % lines:
                raise ExrError(src.path, f"{header.label}: chunk {k} names line {y} outside the data window")
            x0, x1, y1 = 0, w, min(y0 + lines, h)
        if size < 0 or off + hdr + size > src.size:
            raise ExrError(src.path, f"{header.label}: chunk {k} data lies beyond the end of the file")
        rects.append((off + hdr, size, x0, y0, x1, y1))
    block = np.zeros((len(channels), w * h), np.uint32)

    def work(item) -> None:
        if cancel is not None and cancel():
            raise Cancelled(src.path)
        pos, size, x0, y0, x1, y1 = item
        unpacked = (x1 - x0) * (y1 - y0) * bpp
        try:
            raw = decode_block(src.read(pos, size, "chunk data"), unpacked, comp)
            ys = np.arange(y0, y1)
            scatter(raw, np.full(y1 - y0, x1 - x0, np.int64), ys * w + x0, ch_sizes, block)
        except CodecError as exc:
            raise ExrError(src.path, f"{header.label}: chunk at line {y0 + dw.ymin}: {exc}") from None

    _run(work, rects, threads)
    arrays = {}
    for i, c in enumerate(channels):
        row = block[i].reshape(h, w)
        arrays[c.name] = row if c.pixel_type is PixelType.UINT else row.view(np.float32)
    return FlatImage(dw, header.display_window, arrays, {c.name: c.pixel_type for c in channels})


def _flat_from_binding(header: PartHeader, bpart) -> FlatImage:
    dw = header.data_window
    types = {c.name: c.pixel_type for c in header.channels}
    arrays = {}
    for name, ch in bpart.channels.items():
        px = np.asarray(ch.pixels)
        if px.dtype == np.float16 or px.dtype == np.float64:
            px = px.astype(np.float32)
        if px.shape != (dw.height, dw.width):
            info = next((c for c in header.channels if c.name == name), None)
            if info is not None and px.ndim == 2:  # subsampled: show it at full resolution
                px = np.repeat(np.repeat(px, info.y_sampling, 0), info.x_sampling, 1)[: dw.height, : dw.width]
        arrays[name] = np.ascontiguousarray(px)
    return FlatImage(dw, header.display_window, arrays, {n: types.get(n, PixelType.FLOAT) for n in arrays})


def _deep_from_binding(header: PartHeader, bpart, sort: bool = True) -> DeepImage:
    """Turn the binding's per-pixel object arrays into our structure of arrays (slow path)."""
    dw = header.data_window
    names = [c.name for c in header.channels]
    first = bpart.channels[names[0]].pixels
    counts = np.fromiter((0 if p is None else len(p) for p in first.ravel()), np.int64, first.size)
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    arrays = {}
    for c in header.channels:
        cells = [p for p in bpart.channels[c.name].pixels.ravel() if p is not None and len(p)]
        dtype = c.pixel_type.dtype
        arrays[c.name] = np.concatenate(cells).astype(dtype) if cells else np.zeros(0, dtype)
    image = DeepImage(dw, header.display_window, offsets, arrays,
                      {c.name: c.pixel_type for c in header.channels})
    return _sorted(image) if sort else image


def _binding_file(path: str):
    import OpenEXR  # imported lazily: the binding is slow to import and optional for headers

    try:
        return OpenEXR.File(path, separate_channels=True), None
    except Exception as exc:  # the binding raises RuntimeError for anything it refuses
        return None, " ".join(str(exc).split())


# --------------------------------------------------------------------------- documents


def read_part(path: str | os.PathLike, index: int = 0, progress: Progress | None = None,
              cancel: CancelCheck | None = None) -> DeepImage | FlatImage:
    """Pixels of one part."""
    doc = open_exr(path, load=True, parts=[index], progress=progress, cancel=cancel)
    image = doc.parts[index].image
    assert image is not None
    return image


def open_exr(path: str | os.PathLike, load: bool = True, parts: list[int] | None = None,
             progress: Progress | None = None, cancel: CancelCheck | None = None,
             threads: int | None = None, sort: bool = True, decoder: str = "auto") -> ExrDocument:
    """Open a file: every part header, and the pixels of ``parts`` (all by default) when ``load``.

    Deep samples are sorted front to back by Z unless ``sort`` is False (stored order).
    ``decoder`` is ``"auto"`` (ours for deep NONE/RLE/ZIPS/ZIP, the binding first for flat
    parts), ``"ours"`` (ours wherever it can decode) or ``"binding"`` (always the binding); the last
    two exist to check one against the other.

    ``progress(fraction)`` is called as chunks decode; ``cancel()`` returning True stops the
    read with :class:`Cancelled`. Raises :class:`ExrError` naming the file and the problem.
    """
    path = os.fspath(path)
    if decoder not in ("auto", "ours", "binding"):
        raise ValueError(f"decoder must be 'auto', 'ours' or 'binding', not {decoder!r}")
    threads = threads if threads is not None else min(2, os.cpu_count() or 1)
    src = _open(path)
    try:
        st = os.fstat(src.fd)
        layout = _read_layout(src)
        doc = ExrDocument(path=path, parts=[Part(h) for h in layout.parts], file_size=src.size,
                          mtime=st.st_mtime, version=layout.version, flags=layout.flags)
        if not load:
            return doc
        tables = _chunk_tables(src, layout)
        wanted = list(range(len(layout.parts))) if parts is None else list(parts)
        for i in wanted:
            if not 0 <= i < len(layout.parts):
                raise ExrError(path, f"there is no part {i} (the file has {len(layout.parts)})")
        binding = None
        binding_error = None
        for n, i in enumerate(wanted):
            header = layout.parts[i]

            def part_progress(f: float, n=n) -> None:
                if progress is not None:
                    progress((n + f) / len(wanted))

            ours = header.compression in OUR_COMPRESSIONS and decoder != "binding"
            if header.is_deep and ours:
                image = _read_deep_part(header, src, tables[i], layout.is_multipart, part_progress, cancel,
                                        threads, sort)
            else:
                image = None
                has_deep = any(h.is_deep for h in layout.parts)
                if not header.is_deep and ours and (has_deep or decoder == "ours"):
                    # avoid the binding's slow deep path just to get a flat part of a mixed file
                    image = _read_flat_part_ours(header, src, tables[i], layout.is_multipart, cancel, threads)
                if image is None:
                    if binding is None and binding_error is None:
                        binding, binding_error = _binding_file(path)
                    if binding is not None:
                        bpart = binding.parts[i]
                        image = _deep_from_binding(header, bpart, sort) if header.is_deep else _flat_from_binding(
                            header, bpart)
                    elif header.is_deep:
                        raise UnsupportedError(path, f"{header.label}: deep {header.compression} compression needs "
                                               f"the OpenEXR binding, which refused the file ({binding_error})")
                    else:
                        image = _read_flat_part_ours(header, src, tables[i], layout.is_multipart, cancel, threads)
                part_progress(1.0)
            doc.parts[i].image = image
        return doc
    except (ExrError, Cancelled):
        raise
    except MemoryError:
        raise ExrError(path, "not enough memory to load the image") from None
    except (ValueError, IndexError, struct.error, OverflowError) as exc:
        raise ExrError(path, f"corrupt file ({exc})") from None
    finally:
        os.close(src.fd)
