"""Deepscope's data model: deep and flat images as structures of arrays, and the document.

Nothing here imports Qt. A ``DeepImage`` never holds a per-pixel Python object: the
samples of pixel ``i = y * width + x`` (``y`` counted from the top of the data window)
are ``offsets[i]:offsets[i + 1]`` of every channel array.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class PixelType(enum.IntEnum):
    """OpenEXR pixel types, with their on-disk codes."""

    UINT = 0
    HALF = 1
    FLOAT = 2

    @property
    def size(self) -> int:
        """Bytes per value on disk."""
        return 2 if self is PixelType.HALF else 4

    @property
    def dtype(self) -> np.dtype:
        """The dtype Deepscope keeps in memory: HALF is widened to float32."""
        return np.dtype(np.uint32) if self is PixelType.UINT else np.dtype(np.float32)

    @property
    def disk_dtype(self) -> np.dtype:
        """The little-endian dtype of the value on disk."""
        return np.dtype({0: "<u4", 1: "<f2", 2: "<f4"}[int(self)])


@dataclass(frozen=True)
class Box:
    """An EXR ``box2i``: inclusive corners, as stored in the file."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    @property
    def width(self) -> int:
        return self.xmax - self.xmin + 1

    @property
    def height(self) -> int:
        return self.ymax - self.ymin + 1

    @property
    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.xmin, self.ymin, self.xmax, self.ymax)

    def __str__(self) -> str:
        return f"({self.xmin},{self.ymin})-({self.xmax},{self.ymax}) {self.width}x{self.height}"


@dataclass(frozen=True)
class ChannelInfo:
    """One entry of an EXR ``chlist``."""

    name: str
    pixel_type: PixelType
    x_sampling: int = 1
    y_sampling: int = 1
    p_linear: bool = False


@dataclass(frozen=True)
class RawAttribute:
    """An attribute whose type Deepscope does not decode: kept and shown, never an error."""

    type_name: str
    data: bytes

    def __str__(self) -> str:
        head = self.data[:32].hex()
        more = "…" if len(self.data) > 32 else ""
        return f"<{self.type_name}, {len(self.data)} bytes: {head}{more}>"


@dataclass(frozen=True)
class Attribute:
    """A header attribute: its name, its EXR type name and its decoded value."""

    name: str
    type_name: str
    value: Any


@dataclass
class DeepImage:
    """One deep part as a structure of arrays.

    ``offsets`` is int64 of length ``width * height + 1``; ``channels`` maps the full
    channel name to a 1-D array (float32 for HALF and FLOAT, uint32 for UINT);
    ``pixel_types`` remembers the type each channel had in the file so it can be written
    back unchanged. Samples are sorted front to back by ``Z`` when the image has ``Z``.
    """

    data_window: Box
    display_window: Box
    offsets: np.ndarray
    channels: dict[str, np.ndarray]
    pixel_types: dict[str, PixelType]

    def __post_init__(self) -> None:
        n = self.width * self.height
        if self.offsets.dtype != np.int64 or self.offsets.shape != (n + 1,):
            raise ValueError(f"offsets must be int64[{n + 1}], got {self.offsets.dtype}{self.offsets.shape}")
        total = int(self.offsets[-1]) if n >= 0 else 0
        for name, arr in self.channels.items():
            if arr.ndim != 1 or arr.shape[0] != total:
                raise ValueError(f"channel {name!r} has shape {arr.shape}, expected ({total},)")

    @property
    def width(self) -> int:
        return self.data_window.width

    @property
    def height(self) -> int:
        return self.data_window.height

    @property
    def total_samples(self) -> int:
        return int(self.offsets[-1])

    def sample_counts(self) -> np.ndarray:
        """Samples per pixel as a ``(height, width)`` uint32 array."""
        return np.diff(self.offsets).astype(np.uint32).reshape(self.height, self.width)

    def pixel_index(self, x: int, y: int) -> int:
        """Flat index of the pixel at data-window-relative (x, y), y from the top."""
        return y * self.width + x

    def pixel_samples(self, x: int, y: int) -> dict[str, np.ndarray]:
        """The samples of one pixel (data-window-relative coordinates), every channel."""
        i = self.pixel_index(x, y)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return {name: arr[a:b] for name, arr in self.channels.items()}

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + sum(a.nbytes for a in self.channels.values())


@dataclass
class FlatImage:
    """One flat part: full channel name to a ``(height, width)`` array over the data window."""

    data_window: Box
    display_window: Box
    channels: dict[str, np.ndarray]
    pixel_types: dict[str, PixelType]

    @property
    def width(self) -> int:
        return self.data_window.width

    @property
    def height(self) -> int:
        return self.data_window.height

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.channels.values())


DEEP_TYPES = ("deepscanline", "deeptile")
TILED_TYPES = ("tiledimage", "deeptile")


@dataclass
class PartHeader:
    """Everything the header of one part says, decoded."""

    index: int
    attributes: dict[str, Attribute]

    def get(self, name: str, default: Any = None) -> Any:
        attr = self.attributes.get(name)
        return default if attr is None else attr.value

    @property
    def name(self) -> str | None:
        return self.get("name")

    @property
    def type(self) -> str:
        """``scanlineimage``, ``tiledimage``, ``deepscanline`` or ``deeptile``."""
        t = self.get("type")
        if t:
            return t
        return "tiledimage" if "tiles" in self.attributes else "scanlineimage"

    @property
    def is_deep(self) -> bool:
        return self.type in DEEP_TYPES

    @property
    def is_tiled(self) -> bool:
        return self.type in TILED_TYPES

    @property
    def channels(self) -> list[ChannelInfo]:
        return list(self.get("channels", []))

    @property
    def compression(self) -> str:
        return self.get("compression", "NONE")

    @property
    def data_window(self) -> Box:
        return self.get("dataWindow")

    @property
    def display_window(self) -> Box:
        return self.get("displayWindow")

    @property
    def tiles(self):
        return self.get("tiles")

    @property
    def label(self) -> str:
        """A short human name: the part name, or its index."""
        return self.name or f"part {self.index}"


@dataclass
class Part:
    """A part of a document: its header and, once loaded, its pixels."""

    header: PartHeader
    image: DeepImage | FlatImage | None = None

    @property
    def index(self) -> int:
        return self.header.index

    @property
    def is_deep(self) -> bool:
        return self.header.is_deep


@dataclass
class ExrDocument:
    """An opened EXR file: its parts (deep or flat) and what Deepscope found in them."""

    path: str
    parts: list[Part]
    file_size: int = 0
    mtime: float = 0.0
    version: int = 2
    flags: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def is_multipart(self) -> bool:
        return len(self.parts) > 1
