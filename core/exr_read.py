"""Deepscope's EXR reader: headers, offset tables, deep and flat chunks into our arrays.

Deep parts (deepscanline / deeptile with NONE, RLE, ZIPS or ZIP) are decoded by our own
code straight into a :class:`DeepImage`; other deep compressions (ZSTD) go through the
OpenEXR binding. Flat parts go through the binding when it can read the file and through
our decoder (same four compressions) when it cannot. Every count and size in the file is
checked against the file size before anything is allocated, so a damaged file gives a
one-line :class:`ExrError` and never a huge allocation or a crash.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.errors import Cancelled, ExrError, UnsupportedError
from core.exr_codec import MAX_RATIO, CodecError, decode_block, decode_scatter
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


class _ChunkLayout:
    """Where chunk headers are and how to read them, for one deep part."""

    def __init__(self, header: PartHeader, multipart: bool):
        self.header = header
        self.multipart = multipart
        self.prefix = 4 if multipart else 0
        if header.is_tiled:
            lv0 = level_sizes(header)[0]
            self.ntx, self.nty = lv0[2], lv0[3]
            self.hdr_size = self.prefix + 16 + 24
        else:
            self.lines = LINES_PER_CHUNK.get(header.compression, 1)
            self.hdr_size = self.prefix + 4 + 24

    def rect(self, src: _Source, k: int, off: int):
        """(data position, (table packed, data packed, data unpacked), pixel rectangle) of chunk k,
        or None for a tile of a lower resolution level; checks the offset and the rectangle."""
        header, prefix = self.header, self.prefix
        dw = header.data_window
        if off <= 0 or off + self.hdr_size > src.size:
            raise ExrError(src.path, f"{header.label}: chunk {k} starts outside the file (truncated or incomplete)")
        raw = src.read(off, self.hdr_size, f"chunk {k} header")
        if self.multipart:
            (pnum,) = struct.unpack_from("<i", raw, 0)
            if pnum != header.index:
                raise ExrError(src.path, f"{header.label}: chunk {k} belongs to part {pnum}")
        if header.is_tiled:
            tiles = header.tiles
            tx, ty, lx, ly = struct.unpack_from("<iiii", raw, prefix)
            if (lx, ly) != (0, 0):
                return None  # Deepscope shows the full-resolution level only
            if not (0 <= tx < self.ntx and 0 <= ty < self.nty):
                raise ExrError(src.path, f"{header.label}: chunk {k} names tile ({tx},{ty}) outside the image")
            x0, y0 = tx * tiles.x_size, ty * tiles.y_size
            x1, y1 = min(x0 + tiles.x_size, dw.width), min(y0 + tiles.y_size, dw.height)
            sizes = struct.unpack_from("<QQQ", raw, prefix + 16)
        else:
            (y,) = struct.unpack_from("<i", raw, prefix)
            rel = y - dw.ymin
            if rel < 0 or rel >= dw.height or rel % self.lines:
                raise ExrError(src.path, f"{header.label}: chunk {k} names line {y} outside the data window")
            x0, y0, x1, y1 = 0, rel, dw.width, min(rel + self.lines, dw.height)
            sizes = struct.unpack_from("<QQQ", raw, prefix + 4)
        return off + self.hdr_size, sizes, (x0, y0, x1, y1)


def _chunk_counts(layout: _ChunkLayout, src: _Source, k: int, off: int):
    """Chunk k's header and sample counts: (chunk, per-pixel counts (h, w) int32), or None."""
    header = layout.header
    comp = header.compression
    ratio = MAX_RATIO[comp]
    found = layout.rect(src, k, off)
    if found is None:
        return None
    pos, (table_packed, data_packed, data_unpacked), (x0, y0, x1, y1) = found
    w, h = x1 - x0, y1 - y0
    table_unpacked = w * h * 4
    if header.is_tiled and table_packed > table_unpacked and comp == "NONE":
        # OpenEXR writes uncompressed edge-tile count tables at the full tile size;
        # the clipped table comes first and the rest is padding.
        full = header.tiles.x_size * header.tiles.y_size * 4
        table_packed_read = table_unpacked if table_packed == full else -1
    else:
        table_packed_read = table_packed
    if (table_packed_read < 0 or table_packed_read > table_unpacked
            or pos + table_packed + data_packed > src.size):
        raise ExrError(src.path, f"{header.label}: chunk {k} sizes exceed the file (truncated or corrupt)")
    if data_unpacked > ratio * max(data_packed, 1):
        raise ExrError(src.path, f"{header.label}: chunk {k} claims {data_unpacked} bytes of samples, "
                       "more than its packed size can hold")
    packed = src.read(pos, table_packed_read, f"chunk {k} sample counts")
    try:
        raw = decode_block(packed, table_unpacked, comp)
    except CodecError as exc:
        raise ExrError(src.path, f"{header.label}: chunk {k} sample counts: {exc}") from None
    cumulative = raw.view("<i4").reshape(h, w)
    per_pixel = np.diff(cumulative, axis=1, prepend=np.int32(0))
    if (per_pixel < 0).any():
        raise ExrError(src.path, f"{header.label}: chunk {k} has decreasing sample counts (corrupt)")
    return _DeepChunk(pos + table_packed, data_packed, data_unpacked, x0, y0, x1, y1), per_pixel


def _read_deep_counts(header, src, table, multipart, cancel, threads: int = 1):
    """Pass 1: sample counts of every pixel, and where each chunk's data is.

    Chunks are read on ``threads`` threads; the checks that span chunks (the total size, tiles
    seen twice or missing) then run in file order, so a damaged file gives the same error
    whatever the threads did.
    """
    dw = header.data_window
    ratio = MAX_RATIO[header.compression]
    layout = _ChunkLayout(header, multipart)
    offsets = [int(off) for off in table]
    results: list = [None] * len(offsets)

    def work(k: int) -> None:
        try:
            results[k] = _chunk_counts(layout, src, k, offsets[k])
        except ExrError as exc:  # raised below in chunk order
            results[k] = exc

    _run(work, len(offsets), threads, cancel, src.path)
    counts = np.zeros(dw.width * dw.height, np.int64)
    seen = np.zeros(dw.width * dw.height, np.bool_) if header.is_tiled else None
    chunks: list[_DeepChunk] = []
    unpacked_total = 0
    budget = ratio * src.size + (1 << 20)
    for k, got in enumerate(results):
        if isinstance(got, ExrError):
            raise got
        if got is None:
            continue
        chunk, per_pixel = got
        unpacked_total += chunk.unpacked
        if unpacked_total > budget:
            raise ExrError(src.path, f"{header.label}: chunk {k} claims {chunk.unpacked} bytes of samples, "
                           "more than its packed size can hold")
        x0, y0, x1, y1 = chunk.x0, chunk.y0, chunk.x1, chunk.y1
        if seen is None:
            counts.reshape(dw.height, dw.width)[y0:y1, x0:x1] = per_pixel
        else:
            rows = (np.arange(y0, y1)[:, None] * dw.width + np.arange(x0, x1)[None, :]).ravel()
            if seen[rows].any():
                raise ExrError(src.path, f"{header.label}: tile of chunk {k} appears twice")
            seen[rows] = True
            counts[rows] = per_pixel.ravel()
        chunks.append(chunk)
        results[k] = None
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
    # pass 1 is Python-bound (small tables): more threads only contend for the GIL (measured)
    counts, chunks = _read_deep_counts(header, src, table, multipart, cancel, 1)
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    # every chunk's declared unpacked size must agree with its sample counts (vectorized);
    # the per-line sample ranges computed here are what the scatter needs, chunk by chunk
    width = dw.width
    line_from = np.zeros(len(chunks) + 1, np.int64)
    line_starts = line_counts = np.zeros(0, np.int64)
    if chunks:
        rect = np.array([(c.x0, c.y0, c.x1, c.y1, c.unpacked) for c in chunks], np.int64)
        nlines = rect[:, 3] - rect[:, 1]
        np.cumsum(nlines, out=line_from[1:])
        which = np.repeat(np.arange(len(chunks)), nlines)
        ys = np.arange(nlines.sum()) - np.repeat(line_from[:-1], nlines) + rect[which, 1]
        line_starts = offsets[ys * width + rect[which, 0]]
        line_counts = offsets[ys * width + rect[which, 2]] - line_starts
        per_chunk = np.bincount(which, weights=line_counts, minlength=len(chunks)).astype(np.int64)
        bad = np.nonzero(per_chunk * bytes_per_sample != rect[:, 4])[0]
        if bad.size:
            k = int(bad[0])
            raise ExrError(src.path, f"{header.label}: chunk {k} holds {int(rect[k, 4])} bytes for "
                           f"{int(per_chunk[k])} samples of {bytes_per_sample} bytes (corrupt)")
    del counts  # the offsets hold the same information
    block = np.empty((len(channels), total), np.uint32)
    lock = threading.Lock()
    done = [0]
    comp = header.compression

    def work(k: int) -> None:
        ch = chunks[k]
        packed = src.read(ch.data_pos, ch.packed, "chunk data")
        a, b = line_from[k], line_from[k + 1]
        try:
            decode_scatter(packed, ch.unpacked, comp, line_counts[a:b], line_starts[a:b], ch_sizes, block)
        except CodecError as exc:
            raise ExrError(src.path, f"{header.label}: chunk at line {ch.y0 + dw.ymin}: {exc}") from None
        if progress is not None:
            with lock:
                done[0] += 1
                if done[0] % 32 == 0 or done[0] == len(chunks):
                    progress(done[0] / max(len(chunks), 1))

    _run(work, len(chunks), threads, cancel, src.path)
    arrays = {}
    for i, c in enumerate(channels):
        row = block[i]
        arrays[c.name] = row if c.pixel_type is PixelType.UINT else row.view(np.float32)
    image = DeepImage(header.data_window, header.display_window, offsets, arrays,
                      {c.name: c.pixel_type for c in channels})
    return _sorted(image) if sort else image


def _run(work: Callable[[int], None], count: int, threads: int, cancel: CancelCheck | None, path: str) -> None:
    """Call ``work(k)`` for k in range(count) on ``threads`` threads (each takes the next index).

    The first error stops every thread and is raised here; ``cancel()`` is checked before each item.
    """
    def check() -> None:
        if cancel is not None and cancel():
            raise Cancelled(path)

    if threads <= 1 or count < 4:
        for k in range(count):
            check()
            work(k)
        return
    next_index = itertools.count()  # next() on a count is atomic under the GIL
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while not errors:
                k = next(next_index)
                if k >= count:
                    return
                check()
                work(k)
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)

    workers = [threading.Thread(target=loop, name=f"exr-read-{i}", daemon=True) for i in range(threads - 1)]
    for t in workers:
        t.start()
    loop()  # the calling thread works too
    for t in workers:
        t.join()
    if errors:
        raise errors[0]


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

    def work(k: int) -> None:
        pos, size, x0, y0, x1, y1 = rects[k]
        unpacked = (x1 - x0) * (y1 - y0) * bpp
        try:
            ys = np.arange(y0, y1)
            decode_scatter(src.read(pos, size, "chunk data"), unpacked, comp, np.full(y1 - y0, x1 - x0, np.int64),
                           ys * w + x0, ch_sizes, block)
        except CodecError as exc:
            raise ExrError(src.path, f"{header.label}: chunk at line {y0 + dw.ymin}: {exc}") from None

    _run(work, len(rects), threads, cancel, src.path)
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
    except (ValueError, IndexError, TypeError, KeyError, struct.error, OverflowError) as exc:
        raise ExrError(path, f"corrupt file ({exc})") from None
    finally:
        os.close(src.fd)
