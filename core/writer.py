"""Writing EXR (deep and flat, through the OpenEXR binding) and 16-bit PNG files.

Every write goes to a temporary file in the target folder that is renamed into place
(``os.replace``): an export never leaves a half-written file, and a failed write leaves the
previous file (if any) untouched. Passing ``source=`` (the file the data was read from)
refuses to overwrite that file, whatever name it is reached by.

Header attributes (``attributes=``) accept these Python values:

==========================================  =========================================
value                                       EXR attribute type
==========================================  =========================================
``str``                                     ``string``
``list``/``tuple`` of ``str`` (non-empty)   ``stringvector``
``int`` / numpy integer (int32 range)       ``int``
``float`` / numpy floating                  ``float`` (32-bit: the binding has no double)
:class:`~core.model.Box`                    ``box2i``
tuple/array of 2 or 3 ints / floats         ``v2i`` ``v3i`` / ``v2f`` ``v3f``
3x3 or 4x4 numpy array, float32 / float64   ``m33f`` ``m44f`` / ``m33d`` ``m44d``
==========================================  =========================================

Anything else (bytes, empty lists, bools, nested dicts...) is refused with :class:`ExrError`.
The names the writer sets itself (``channels``, ``compression``, ``dataWindow``,
``displayWindow``, ``type``, ``tiles``, ``idManifest``...) cannot be given as attributes.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR

from core.errors import ExrError
from core.idmanifest import IdManifest
from core.model import Box, DeepImage, FlatImage, PixelType

PathLike = str | os.PathLike

DEEP_COMPRESSIONS = ("NONE", "RLE", "ZIPS")
"""What OpenEXR accepts for deep parts (ZIP, PIZ... are rejected by the library)."""

FLAT_COMPRESSIONS = (
    "NONE", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "B44A", "DWAA", "DWAB", "ZSTD",
    "HTJ2K256", "HTJ2K32",
)

_COMPRESSION_ENUM = {
    name: getattr(OpenEXR, "NO_COMPRESSION" if name == "NONE" else f"{name}_COMPRESSION")
    for name in FLAT_COMPRESSIONS
    if hasattr(OpenEXR, "NO_COMPRESSION" if name == "NONE" else f"{name}_COMPRESSION")
}

RESERVED_ATTRIBUTES = frozenset(
    {"channels", "compression", "dataWindow", "displayWindow", "type", "tiles", "idManifest",
     "chunkCount", "version", "maxSamplesPerPixel", "deepImageState", "name"}
)

_WRITE_DTYPE = {PixelType.HALF: np.float16, PixelType.FLOAT: np.float32, PixelType.UINT: np.uint32}
_INT32 = (-(2**31), 2**31 - 1)


@dataclass
class ExrPart:
    """One part of a multi-part file for :func:`write_parts`.

    ``compression`` defaults to ZIPS for deep parts and ZIP for flat ones; ``tiled`` is the
    tile size or ``None`` for scanlines.
    """

    name: str
    image: DeepImage | FlatImage
    compression: str | None = None
    tiled: tuple[int, int] | None = None
    attributes: Mapping[str, Any] | None = None
    id_manifest: IdManifest | OpenEXR.IDManifest | None = None


# --------------------------------------------------------------------------- atomic files


def _check_target(path: Path, source: PathLike | None) -> None:
    if path.is_dir():
        raise ExrError(path, "is a directory")
    if not path.parent.is_dir():
        raise ExrError(path, f"folder {path.parent} does not exist")
    if source is not None and path.exists() and os.path.exists(source):
        try:
            same = os.path.samefile(path, source)
        except OSError:
            same = False
        if same:
            raise ExrError(path, "refusing to overwrite the file being read")


def _temp_path(path: Path) -> Path:
    """A new empty file next to ``path`` (mode from the umask, like any new file)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ExrError(path, f"cannot create a file in {path.parent}: {exc.strerror or exc}") from None
        os.close(fd)
        return tmp
    raise ExrError(path, "cannot find a free temporary file name")


def atomic_write(path: PathLike, write: Callable[[str], None], source: PathLike | None = None) -> None:
    """Run ``write(tmp_path)`` and rename the result onto ``path``; on any failure remove it.

    Errors raised by ``write`` become :class:`ExrError` naming ``path`` (an ``ExrError`` is
    re-raised as it is).
    """
    target = Path(os.fspath(path))
    _check_target(target, source)
    tmp = _temp_path(target)
    try:
        write(os.fspath(tmp))
        os.replace(tmp, target)
    except ExrError:
        _remove(tmp)
        raise
    except Exception as exc:  # the binding raises RuntimeError/ValueError/TypeError
        _remove(tmp)
        message = str(exc).replace(os.fspath(tmp), os.fspath(target))
        raise ExrError(target, f"could not write: {message}") from exc
    except BaseException:  # KeyboardInterrupt, SystemExit: still no half file left behind
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- header values


#: Attribute types the writer can carry from an input header to an output unchanged.
COPYABLE_TYPES = frozenset({"string", "stringvector", "int", "float", "box2i", "v2i", "v2f", "v3i", "v3f", "m33f",
                            "m44f"})


def carry_over_attributes(header) -> dict[str, Any]:
    """The attributes of an input ``PartHeader`` that an output derived from it should keep."""
    out = {}
    for name, attr in header.attributes.items():
        if name in RESERVED_ATTRIBUTES or attr.type_name not in COPYABLE_TYPES:
            continue
        if attr.type_name == "stringvector" and not attr.value:
            continue
        out[name] = attr.value
    return out


def _box_value(box: Box) -> tuple[tuple[int, int], tuple[int, int]]:
    return ((int(box.xmin), int(box.ymin)), (int(box.xmax), int(box.ymax)))


def _check_int(path: Path, name: str, value: int) -> int:
    value = int(value)
    if not _INT32[0] <= value <= _INT32[1]:
        raise ExrError(path, f"attribute {name!r}: {value} does not fit an EXR int (32-bit)")
    return value


def _attribute_value(path: Path, name: str, value: Any) -> Any:
    """The object the binding turns into the EXR attribute described in the module docstring."""
    if isinstance(value, bool) or value is None:
        raise ExrError(path, f"attribute {name!r}: unsupported value {value!r}")
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return _check_int(path, name, value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Box):
        return _box_value(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.dtype == object or arr.size == 0:
            raise ExrError(path, f"attribute {name!r}: unsupported value {value!r}")
        if arr.ndim == 2 and arr.shape in ((3, 3), (4, 4)) and arr.dtype.kind in "fiu":
            dtype = np.float64 if arr.dtype == np.float64 else np.float32
            return np.ascontiguousarray(arr, dtype=dtype)
        if arr.ndim == 1 and arr.shape[0] in (2, 3):
            if arr.dtype.kind in "iu":
                return tuple(_check_int(path, name, v) for v in arr.tolist())
            if arr.dtype.kind == "f":
                return tuple(float(v) for v in arr.tolist())
    raise ExrError(path, f"attribute {name!r}: unsupported value of type {type(value).__name__}")


def _attributes(path: Path, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (attributes or {}).items():
        if not isinstance(name, str) or not name:
            raise ExrError(path, f"attribute name {name!r} is not a non-empty string")
        if name in RESERVED_ATTRIBUTES:
            raise ExrError(path, f"attribute {name!r} is set by the writer, not by attributes=")
        out[name] = _attribute_value(path, name, value)
    return out


_LIFETIMES = {
    "frame": OpenEXR.IdLifetime.LIFETIME_FRAME,
    "shot": OpenEXR.IdLifetime.LIFETIME_SHOT,
    "stable": OpenEXR.IdLifetime.LIFETIME_STABLE,
}


def binding_id_manifest(manifest: IdManifest | OpenEXR.IDManifest) -> OpenEXR.IDManifest:
    """The binding's ``IDManifest`` for a :class:`core.idmanifest.IdManifest` (one is passed through)."""
    if isinstance(manifest, OpenEXR.IDManifest):
        return manifest
    if not isinstance(manifest, IdManifest):
        raise TypeError(f"id_manifest must be an IdManifest, not {type(manifest).__name__}")
    out = OpenEXR.IDManifest()
    for group in manifest.groups:
        if not group.channels:
            raise ValueError("an id manifest group has no channels")
        g = out.add(set(group.channels))
        g.setComponents(list(group.components))
        g.setHashScheme(group.hash_scheme)
        g.setEncodingScheme(group.encoding_scheme)
        lifetime = _LIFETIMES.get(group.lifetime)
        if lifetime is None:
            raise ValueError(f"unknown id lifetime {group.lifetime!r}")
        g.setLifetime(lifetime)
        for id_value, texts in group.entries.items():
            if len(texts) != len(group.components):
                raise ValueError(
                    f"id {id_value} has {len(texts)} names for {len(group.components)} components")
            g.insert(int(id_value), list(texts))
    return out


def _id_manifest(path: Path, manifest) -> OpenEXR.IDManifest:
    try:
        return binding_id_manifest(manifest)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ExrError(path, f"id manifest: {exc}") from None


def _compression(path: Path, compression: str, allowed: Sequence[str], what: str):
    name = str(compression).upper()
    if name not in allowed or name not in _COMPRESSION_ENUM:
        raise ExrError(path, f"compression {compression!r} is not available for {what} "
                             f"(use one of {', '.join(n for n in allowed if n in _COMPRESSION_ENUM)})")
    return _COMPRESSION_ENUM[name]


def _tiles(path: Path, tiled: tuple[int, int]) -> OpenEXR.TileDescription:
    try:
        tx, ty = (int(v) for v in tiled)
    except (TypeError, ValueError):
        raise ExrError(path, f"tiled must be (x_size, y_size), got {tiled!r}") from None
    if tx < 1 or ty < 1:
        raise ExrError(path, f"tile size must be positive, got {tx}x{ty}")
    desc = OpenEXR.TileDescription()
    desc.xSize = tx
    desc.ySize = ty
    return desc


def _check_window(path: Path, box: Box, what: str) -> None:
    if not isinstance(box, Box):
        raise ExrError(path, f"{what} must be a Box, got {type(box).__name__}")
    if box.is_empty:
        raise ExrError(path, f"{what} {box} is empty")
    for v in box.as_tuple():
        _check_int(path, what, v)


def _pixel_type(path: Path, name: str, given: PixelType | str | None, arr: np.ndarray) -> PixelType:
    if given is None:
        return PixelType.UINT if arr.dtype.kind in "iu" else PixelType.FLOAT
    if isinstance(given, str):
        try:
            return PixelType[given.upper()]
        except KeyError:
            raise ExrError(path, f"channel {name!r}: unknown pixel type {given!r}") from None
    return PixelType(given)


def _typed(path: Path, name: str, arr: np.ndarray, ptype: PixelType) -> np.ndarray:
    """``arr`` converted to the dtype the binding writes as ``ptype``."""
    if ptype is PixelType.UINT:
        if arr.dtype.kind not in "iu":
            raise ExrError(path, f"channel {name!r} is UINT but holds {arr.dtype} values")
        if arr.dtype != np.uint32 and arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
            raise ExrError(path, f"channel {name!r} has values outside the uint32 range")
        return np.ascontiguousarray(arr, dtype=np.uint32)
    if arr.dtype.kind not in "fiu":
        raise ExrError(path, f"channel {name!r} holds {arr.dtype} values")
    return np.ascontiguousarray(arr, dtype=_WRITE_DTYPE[ptype])


# --------------------------------------------------------------------------- deep


def _per_pixel(values: np.ndarray, cuts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An ``(H, W)`` object array of per-pixel views of ``values`` (what the binding wants)."""
    n = shape[0] * shape[1]
    out = np.fromiter(np.split(values, cuts), dtype=object, count=n)
    return out.reshape(shape)


def _deep_part(path: Path, image: DeepImage, compression: str, tiled, attributes, id_manifest):
    if not isinstance(image, DeepImage):
        raise ExrError(path, f"expected a DeepImage, got {type(image).__name__}")
    _check_window(path, image.data_window, "data window")
    _check_window(path, image.display_window, "display window")
    if not image.channels:
        raise ExrError(path, "a deep image needs at least one channel")
    offsets = image.offsets
    if offsets[0] != 0 or (offsets.size > 1 and np.any(np.diff(offsets) < 0)):
        raise ExrError(path, "deep offsets must start at 0 and never decrease")
    header = _attributes(path, attributes)
    header.update(
        type=OpenEXR.deeptile if tiled else OpenEXR.deepscanline,
        compression=_compression(path, compression, DEEP_COMPRESSIONS, "deep images"),
        dataWindow=_box_value(image.data_window),
        displayWindow=_box_value(image.display_window),
    )
    if tiled:
        header["tiles"] = _tiles(path, tiled)
    if id_manifest is not None:
        header["idManifest"] = _id_manifest(path, id_manifest)
    shape = (image.height, image.width)
    cuts = offsets[1:-1]
    channels = {}
    for name, arr in image.channels.items():
        ptype = _pixel_type(path, name, image.pixel_types.get(name), arr)
        channels[name] = _per_pixel(_typed(path, name, arr, ptype), cuts, shape)
    return header, channels


def write_deep(
    path: PathLike,
    image: DeepImage,
    compression: str = "ZIPS",
    tiled: tuple[int, int] | None = None,
    attributes: Mapping[str, Any] | None = None,
    id_manifest: IdManifest | OpenEXR.IDManifest | None = None,
    source: PathLike | None = None,
) -> None:
    """Write ``image`` as a single-part deep scanline (or, with ``tiled``, deep tiled) file.

    Channels keep ``image.pixel_types`` (HALF is written as half), both windows are kept.
    ``compression`` is NONE, RLE or ZIPS (what OpenEXR allows for deep data).
    """
    target = Path(os.fspath(path))
    header, channels = _deep_part(target, image, compression, tiled, attributes, id_manifest)
    atomic_write(target, lambda tmp: OpenEXR.File(header, channels).write(tmp), source)


# --------------------------------------------------------------------------- flat


def _flat_part(path: Path, channels, data_window, display_window, pixel_types, compression, tiled,
               attributes, id_manifest):
    _check_window(path, data_window, "data window")
    _check_window(path, display_window, "display window")
    if not channels:
        raise ExrError(path, "an image needs at least one channel")
    shape = (data_window.height, data_window.width)
    pixel_types = pixel_types or {}
    out = {}
    for name, arr in channels.items():
        arr = np.asarray(arr)
        if arr.shape != shape:
            raise ExrError(path, f"channel {name!r} has shape {arr.shape}, the data window needs {shape}")
        ptype = _pixel_type(path, name, pixel_types.get(name), arr)
        out[name] = _typed(path, name, arr, ptype)
    header = _attributes(path, attributes)
    header.update(
        type=OpenEXR.tiledimage if tiled else OpenEXR.scanlineimage,
        compression=_compression(path, compression, FLAT_COMPRESSIONS, "flat images"),
        dataWindow=_box_value(data_window),
        displayWindow=_box_value(display_window),
    )
    if tiled:
        header["tiles"] = _tiles(path, tiled)
    if id_manifest is not None:
        header["idManifest"] = _id_manifest(path, id_manifest)
    return header, out


def write_flat(
    path: PathLike,
    channels: Mapping[str, np.ndarray],
    data_window: Box,
    display_window: Box,
    pixel_types: Mapping[str, PixelType | str] | None = None,
    compression: str = "ZIP",
    attributes: Mapping[str, Any] | None = None,
    tiled: tuple[int, int] | None = None,
    id_manifest: IdManifest | OpenEXR.IDManifest | None = None,
    source: PathLike | None = None,
) -> None:
    """Write a single-part flat file from ``(H, W)`` arrays over ``data_window``.

    A channel without an entry in ``pixel_types`` is written as UINT when its array holds
    integers (uint32 ids) and as FLOAT otherwise.
    """
    target = Path(os.fspath(path))
    header, out = _flat_part(target, channels, data_window, display_window, pixel_types, compression,
                             tiled, attributes, id_manifest)
    atomic_write(target, lambda tmp: OpenEXR.File(header, out).write(tmp), source)


def write_parts(path: PathLike, parts: Sequence[ExrPart], source: PathLike | None = None) -> None:
    """Write a multi-part file (deep and flat parts mixed); part names must be unique."""
    target = Path(os.fspath(path))
    if not parts:
        raise ExrError(target, "no parts to write")
    names = [p.name for p in parts]
    if len(set(names)) != len(names) or not all(names):
        raise ExrError(target, "part names must be unique and non-empty")
    windows = {p.image.display_window for p in parts}
    if len(windows) > 1:
        raise ExrError(target, "all parts of a multi-part file must share one display window")
    built = []
    for part in parts:
        if isinstance(part.image, DeepImage):
            header, channels = _deep_part(target, part.image, part.compression or "ZIPS", part.tiled,
                                          part.attributes, part.id_manifest)
        elif isinstance(part.image, FlatImage):
            img = part.image
            header, channels = _flat_part(target, img.channels, img.data_window, img.display_window,
                                          img.pixel_types, part.compression or "ZIP", part.tiled,
                                          part.attributes, part.id_manifest)
        else:
            raise ExrError(target, f"part {part.name!r}: expected a DeepImage or FlatImage")
        built.append((header, channels, part.name))

    def write(tmp: str) -> None:
        OpenEXR.File([OpenEXR.Part(h, c, n) for h, c, n in built]).write(tmp)

    atomic_write(target, write, source)


# --------------------------------------------------------------------------- PNG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA


def png16_bytes(image: np.ndarray) -> bytes:
    """A complete 16-bit PNG for ``image``: ``(H, W)`` grey or ``(H, W, C)`` with C in 1..4.

    Float arrays are clipped to [0, 1] (NaN as 0) and scaled to 0..65535; integer arrays
    must already be in 0..65535. Values are not colour-managed (written as they are).
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in _PNG_COLOR_TYPE:
        raise ValueError(f"expected (H, W) or (H, W, 1..4) pixels, got shape {np.shape(image)}")
    height, width, nch = arr.shape
    if height < 1 or width < 1 or height >= 2**31 or width >= 2**31:
        raise ValueError(f"a PNG must be at least 1x1 pixel, got {width}x{height}")
    if arr.dtype.kind == "f":
        values = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        values = np.rint(np.clip(values, 0.0, 1.0) * 65535.0).astype(">u2")
    elif arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError("integer pixels must lie in 0..65535")
        values = arr.astype(">u2")
    else:
        raise ValueError(f"unsupported pixel dtype {arr.dtype}")
    rows = np.zeros((height, 1 + width * nch * 2), dtype=np.uint8)  # filter byte 0 (None) per row
    rows[:, 1:] = values.reshape(height, width * nch).view(np.uint8)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, _PNG_COLOR_TYPE[nch], 0, 0, 0)
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", ihdr),
        _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
        _png_chunk(b"IEND", b""),
    ))


def write_png16(path: PathLike, gray_or_rgba: np.ndarray, source: PathLike | None = None) -> None:
    """Write a 16-bit PNG (grey for one channel, RGBA for four; see :func:`png16_bytes`), atomically."""
    target = Path(os.fspath(path))
    try:
        data = png16_bytes(gray_or_rgba)
    except ValueError as exc:
        raise ExrError(target, str(exc)) from None

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(target, write, source)
