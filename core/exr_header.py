"""Our own OpenEXR header parser: every part, every standard attribute type.

The OpenEXR binding refuses whole files that carry an attribute type it does not know
(``deepImageState`` in every file OpenEXR's ``deepidexample`` writes), so Deepscope parses
headers itself. Unknown attribute types are kept as :class:`RawAttribute`, never an error.
Every size read from the file is checked against the file size before it is used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from core.errors import ExrError, printable
from core.model import Attribute, Box, ChannelInfo, PartHeader, PixelType, RawAttribute

MAGIC = 20000630
FLAG_SINGLE_TILE = 0x200
FLAG_LONG_NAMES = 0x400
FLAG_NON_IMAGE = 0x800
FLAG_MULTIPART = 0x1000

COMPRESSION_NAMES = (
    "NONE", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "B44A",
    "DWAA", "DWAB", "HTJ2K256", "HTJ2K32", "LJ2K", "ZSTD",
)  # fmt: skip
#: Scanlines per chunk for each compression (OpenEXR's ``numLinesInBuffer``).
LINES_PER_CHUNK = {
    "NONE": 1, "RLE": 1, "ZIPS": 1, "ZIP": 16, "PIZ": 32, "PXR24": 16, "B44": 32,
    "B44A": 32, "DWAA": 32, "DWAB": 256, "HTJ2K256": 256, "HTJ2K32": 32, "LJ2K": 32, "ZSTD": 1,
}  # fmt: skip
LINE_ORDERS = ("INCREASING_Y", "DECREASING_Y", "RANDOM_Y")
LEVEL_MODES = ("ONE_LEVEL", "MIPMAP_LEVELS", "RIPMAP_LEVELS")
ROUNDING_MODES = ("ROUND_DOWN", "ROUND_UP")
ENVMAPS = ("LATLONG", "CUBE")
DEEP_IMAGE_STATES = ("MESSY", "SORTED", "NON_OVERLAPPING", "TIDY")
REQUIRED = ("channels", "compression", "dataWindow", "displayWindow", "lineOrder")
#: Largest window side we accept: OpenEXR itself limits coordinates to about +-2^30.
MAX_COORD = 1 << 30


@dataclass(frozen=True)
class TileDescription:
    """The ``tiledesc`` attribute."""

    x_size: int
    y_size: int
    level_mode: str = "ONE_LEVEL"
    rounding_mode: str = "ROUND_DOWN"

    def __str__(self) -> str:
        return f"{self.x_size}x{self.y_size} {self.level_mode} {self.rounding_mode}"


@dataclass(frozen=True)
class FileLayout:
    """What the header block says about the file as a whole."""

    version: int
    flags: int
    parts: list[PartHeader]
    #: byte offset of the first chunk offset table
    tables_start: int

    @property
    def is_multipart(self) -> bool:
        return bool(self.flags & FLAG_MULTIPART)


class _Cursor:
    """Bounds-checked little-endian reads over a bytes buffer."""

    def __init__(self, data: bytes | memoryview, path: str, pos: int = 0):
        self.data = data
        self.path = path
        self.pos = pos

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ExrError(self.path, f"file ends inside the header ({what}); the file is truncated or corrupt")

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def cstring(self, what: str, limit: int = 256) -> str:
        end = bytes(self.data[self.pos : self.pos + limit + 1]).find(b"\0")
        if end < 0:
            if self.pos + limit + 1 > len(self.data):
                raise ExrError(self.path, f"file ends inside the header ({what})")
            raise ExrError(self.path, f"{what} is longer than {limit} bytes; the header is corrupt")
        raw = self.take(end + 1, what)[:-1]
        return raw.decode("utf-8", errors="replace")

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size, what))


def _decode_chlist(data: bytes, path: str, attr: str) -> list[ChannelInfo]:
    cur = _Cursor(data, path)
    channels: list[ChannelInfo] = []
    while True:
        if cur.pos >= len(data):
            raise ExrError(path, f"channel list {attr!r} is not terminated")
        if data[cur.pos] == 0:
            break
        name = cur.cstring("channel name")
        ptype, plinear, _r1, _r2, _r3, xs, ys = cur.unpack("iBBBBii", f"channel {name!r}")
        if ptype not in (0, 1, 2):
            raise ExrError(path, f"channel {name!r} has unknown pixel type {ptype}")
        if xs < 1 or ys < 1:
            raise ExrError(path, f"channel {name!r} has invalid sampling {xs}x{ys}")
        channels.append(ChannelInfo(name, PixelType(ptype), xs, ys, bool(plinear)))
    return channels


def _decode_value(type_name: str, data: bytes, path: str, name: str):
    """Decode one attribute value; unknown types come back as RawAttribute."""

    def fixed(fmt: str):
        size = struct.calcsize("<" + fmt)
        if len(data) < size:
            raise ExrError(path, f"attribute {name!r} ({type_name}) is {len(data)} bytes, expected {size}")
        return struct.unpack("<" + fmt, data[:size])

    t = type_name
    if t == "int":
        return fixed("i")[0]
    if t == "float":
        return fixed("f")[0]
    if t == "double":
        return fixed("d")[0]
    if t == "string":
        return data.decode("utf-8", errors="replace")
    if t == "stringvector":
        out, pos = [], 0
        while pos + 4 <= len(data):
            (n,) = struct.unpack_from("<i", data, pos)
            pos += 4
            if n < 0 or pos + n > len(data):
                raise ExrError(path, f"attribute {name!r} (stringvector) is corrupt")
            out.append(data[pos : pos + n].decode("utf-8", errors="replace"))
            pos += n
        return out
    if t == "box2i":
        return Box(*fixed("iiii"))
    if t == "box2f":
        v = fixed("ffff")
        return (v[:2], v[2:])
    if t == "chlist":
        return _decode_chlist(data, path, name)
    if t == "compression":
        (c,) = fixed("B")
        return COMPRESSION_NAMES[c] if c < len(COMPRESSION_NAMES) else f"UNKNOWN({c})"
    if t == "lineOrder":
        (c,) = fixed("B")
        return LINE_ORDERS[c] if c < len(LINE_ORDERS) else f"UNKNOWN({c})"
    if t == "envmap":
        (c,) = fixed("B")
        return ENVMAPS[c] if c < len(ENVMAPS) else f"UNKNOWN({c})"
    if t == "deepImageState":
        (c,) = fixed("B")
        return DEEP_IMAGE_STATES[c] if c < len(DEEP_IMAGE_STATES) else f"UNKNOWN({c})"
    if t == "tiledesc":
        xs, ys, mode = fixed("IIB")
        level, rounding = mode & 0x0F, (mode >> 4) & 0x0F
        return TileDescription(
            xs,
            ys,
            LEVEL_MODES[level] if level < 3 else f"UNKNOWN({level})",
            ROUNDING_MODES[rounding] if rounding < 2 else f"UNKNOWN({rounding})",
        )
    if t in ("v2i", "v2f", "v2d", "v3i", "v3f", "v3d"):
        fmt = {"i": "i", "f": "f", "d": "d"}[t[-1]] * int(t[1])
        return tuple(fixed(fmt))
    if t in ("m33f", "m33d", "m44f", "m44d"):
        n = int(t[1])
        fmt = (t[-1]) * (n * n)
        return np.array(fixed(fmt), dtype=np.float32 if t[-1] == "f" else np.float64).reshape(n, n)
    if t == "chromaticities":
        v = fixed("ffffffff")
        return {"red": v[0:2], "green": v[2:4], "blue": v[4:6], "white": v[6:8]}
    if t == "rational":
        n, d = fixed("iI")
        return (n, d)
    if t == "timecode":
        return fixed("II")
    if t == "keycode":
        return fixed("iiiiiii")
    if t == "floatvector":
        return tuple(np.frombuffer(data[: len(data) // 4 * 4], "<f4").tolist())
    if t == "preview":
        w, h = fixed("II")
        if 8 + w * h * 4 > len(data):
            raise ExrError(path, f"attribute {name!r} (preview {w}x{h}) is truncated")
        return RawAttribute("preview", data)
    if t == "idmanifest":
        return bytes(data)
    return RawAttribute(t, bytes(data))


def _read_header(cur: _Cursor, index: int) -> PartHeader:
    attrs: dict[str, Attribute] = {}
    while True:
        cur.need(1, "attribute name")
        if cur.data[cur.pos] == 0:
            cur.pos += 1
            break
        name = cur.cstring("attribute name")
        shown = name if len(name) <= 40 and name.isprintable() else printable(name, 24)
        type_name = cur.cstring(f"type of attribute {shown!r}")
        (size,) = cur.unpack("i", f"size of attribute {shown!r}")
        if size < 0:
            raise ExrError(cur.path, f"attribute {shown!r} has negative size {size}")
        data = cur.take(size, f"attribute {shown!r}")
        attrs[name] = Attribute(name, type_name, _decode_value(type_name, data, cur.path, name))
    return PartHeader(index=index, attributes=attrs)


def _validate(header: PartHeader, path: str, multipart: bool) -> None:
    where = f"part {header.index}" + (f" ({header.name!r})" if header.name else "")
    for key in REQUIRED:
        if key not in header.attributes:
            raise ExrError(path, f"{where}: required attribute {key!r} is missing")
    expected_types = {
        "channels": "chlist",
        "compression": "compression",
        "dataWindow": "box2i",
        "displayWindow": "box2i",
        "lineOrder": "lineOrder",
    }
    optional_types = {"chunkCount": "int", "type": "string", "name": "string", "tiles": "tiledesc",
                      "view": "string", "version": "int"}
    for key, tname in list(expected_types.items()) + list(optional_types.items()):
        if key not in header.attributes:
            continue
        got = header.attributes[key].type_name
        if got != tname:
            raise ExrError(path, f"{where}: attribute {key!r} has type {got!r}, expected {tname!r}")
    if multipart:
        for key in ("name", "type", "chunkCount"):
            if key not in header.attributes:
                raise ExrError(path, f"{where}: multi-part file without required attribute {key!r}")
    ptype = header.type
    if ptype not in ("scanlineimage", "tiledimage", "deepscanline", "deeptile"):
        raise ExrError(path, f"{where}: unknown part type {ptype!r}")
    for key in ("dataWindow", "displayWindow"):
        box = header.get(key)
        if any(abs(v) > MAX_COORD for v in box.as_tuple()) or box.is_empty:
            raise ExrError(path, f"{where}: {key} {box.as_tuple()} is invalid")
    if header.compression.startswith("UNKNOWN"):
        raise ExrError(path, f"{where}: unknown compression {header.compression}")
    if header.is_tiled:
        tiles = header.tiles
        if not isinstance(tiles, TileDescription):
            raise ExrError(path, f"{where}: tiled part without a 'tiles' attribute")
        if tiles.x_size < 1 or tiles.y_size < 1 or tiles.x_size > MAX_COORD or tiles.y_size > MAX_COORD:
            raise ExrError(path, f"{where}: invalid tile size {tiles.x_size}x{tiles.y_size}")
        if tiles.level_mode.startswith("UNKNOWN") or tiles.rounding_mode.startswith("UNKNOWN"):
            raise ExrError(path, f"{where}: invalid tile level mode {tiles}")
    if not header.channels and not header.is_deep:
        raise ExrError(path, f"{where}: no channels")
    names = [c.name for c in header.channels]
    if len(set(names)) != len(names):
        raise ExrError(path, f"{where}: duplicate channel names")
    if header.is_deep:
        for c in header.channels:
            if c.x_sampling != 1 or c.y_sampling != 1:
                raise ExrError(path, f"{where}: deep channel {c.name!r} is subsampled, which deep data forbids")
    chunk_count = header.get("chunkCount")
    if chunk_count is not None and chunk_count < 0:
        raise ExrError(path, f"{where}: negative chunkCount {chunk_count}")


def parse_headers(data: bytes | memoryview, path: str) -> FileLayout:
    """Parse the magic, version and every part header from the start of a file."""
    cur = _Cursor(data, path)
    if len(data) < 8:
        raise ExrError(path, "not an OpenEXR file (too short)")
    magic, version_field = struct.unpack_from("<iI", data, 0)
    if magic != MAGIC:
        raise ExrError(path, "not an OpenEXR file (bad magic number)")
    cur.pos = 8
    version, flags = version_field & 0xFF, version_field & ~0xFF
    if version != 2:
        raise ExrError(path, f"unsupported OpenEXR version {version}")
    if flags & ~(FLAG_SINGLE_TILE | FLAG_LONG_NAMES | FLAG_NON_IMAGE | FLAG_MULTIPART):
        raise ExrError(path, f"unknown version flags 0x{flags:x}")
    multipart = bool(flags & FLAG_MULTIPART)
    parts: list[PartHeader] = []
    if multipart:
        while True:
            cur.need(1, "part header")
            if data[cur.pos] == 0:
                cur.pos += 1
                break
            parts.append(_read_header(cur, len(parts)))
            if len(parts) > 100000:
                raise ExrError(path, "too many parts")
        if not parts:
            raise ExrError(path, "multi-part file with no parts")
    else:
        header = _read_header(cur, 0)
        if "type" not in header.attributes:
            # Single-part files may omit 'type': the version flags tell.
            if flags & FLAG_NON_IMAGE:
                kind = "deeptile" if flags & FLAG_SINGLE_TILE else "deepscanline"
            else:
                kind = "tiledimage" if flags & FLAG_SINGLE_TILE else "scanlineimage"
            header.attributes["type"] = Attribute("type", "string", kind)
        parts.append(header)
    for header in parts:
        _validate(header, path, multipart)
    return FileLayout(version=version, flags=flags, parts=parts, tables_start=cur.pos)


def level_sizes(header: PartHeader) -> list[tuple[int, int, int, int]]:
    """(level_x, level_y, tiles_x, tiles_y) of every level of a tiled part, in file order."""
    tiles: TileDescription = header.tiles
    dw = header.data_window
    w, h = dw.width, dw.height
    up = tiles.rounding_mode == "ROUND_UP"

    def num_levels(size: int) -> int:
        n, s = 1, size
        while s > 1:
            s = (s + 1) // 2 if up else s // 2
            n += 1
        return n

    def level_size(size: int, lv: int) -> int:
        div = 1 << lv
        s = (size + div - 1) // div if up else size // div
        return max(s, 1)

    def ntiles(size: int, tile: int) -> int:
        return (size + tile - 1) // tile

    out = []
    if tiles.level_mode == "ONE_LEVEL":
        out.append((0, 0, ntiles(w, tiles.x_size), ntiles(h, tiles.y_size)))
    elif tiles.level_mode == "MIPMAP_LEVELS":
        for lv in range(num_levels(max(w, h))):
            out.append((lv, lv, ntiles(level_size(w, lv), tiles.x_size), ntiles(level_size(h, lv), tiles.y_size)))
    else:  # RIPMAP
        for ly in range(num_levels(h)):
            for lx in range(num_levels(w)):
                out.append(
                    (lx, ly, ntiles(level_size(w, lx), tiles.x_size), ntiles(level_size(h, ly), tiles.y_size))
                )
    return out


def expected_chunk_count(header: PartHeader) -> int:
    """The number of chunks a part has, from its windows, compression and tiling."""
    if header.is_tiled:
        return sum(tx * ty for _, _, tx, ty in level_sizes(header))
    lines = LINES_PER_CHUNK.get(header.compression, 1)
    return (header.data_window.height + lines - 1) // lines
