"""Channel layers: group EXR channel names by prefix the way tev and Nuke do.

``a.b.R`` belongs to layer ``a.b`` with short name ``R``; a name without a dot belongs to
the unnamed root layer ``""``. Within a layer channels are ordered R, G, B, then X, Y, Z,
then U, V, then the other single channels by name, alpha last. Pure Python, no Qt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.model import Box

# Rank of well-known short names inside a layer; unknown names rank between V and alpha.
_COLOR_RANK = {"r": 0, "red": 0, "g": 1, "green": 1, "b": 2, "blue": 2}
_VECTOR_RANK = {"x": 3, "y": 4, "z": 5, "u": 6, "v": 7}
_OTHER_RANK = 8
_ALPHA_RANK = 9
_ALPHA_NAMES = ("a", "alpha")
_DEPTH_NAMES = ("Z", "depth.Z", "depth.z", "depth", "z")


def split_channel(name: str) -> tuple[str, str]:
    """``"a.b.R"`` -> ``("a.b", "R")``; ``"R"`` -> ``("", "R")``."""
    layer, dot, short = name.rpartition(".")
    if not dot:
        return "", name
    return layer, short


def _rank(short: str) -> int:
    key = short.lower()
    if key in _COLOR_RANK:
        return _COLOR_RANK[key]
    if key in _ALPHA_NAMES:
        return _ALPHA_RANK
    # Single-letter X/Y/Z/U/V only: "velocity" must not sort like "V".
    if key in _VECTOR_RANK:
        return _VECTOR_RANK[key]
    return _OTHER_RANK


def channel_sort_key(name: str) -> tuple[int, str, str]:
    """Order of a channel inside its layer: R,G,B, X,Y,Z, U,V, other singles by name, alpha last."""
    short = split_channel(name)[1]
    return (_rank(short), short.lower(), short)


@dataclass(frozen=True)
class Layer:
    """A channel layer: its prefix (``""`` for the root) and its full channel names in display order."""

    name: str
    channels: tuple[str, ...]

    @property
    def label(self) -> str:
        """What a channel list shows for the layer: its name, or ``"(root)"``."""
        return self.name or "(root)"

    def short_name(self, channel: str) -> str:
        return split_channel(channel)[1]

    def _by_short(self) -> dict[str, str]:
        return {self.short_name(c).lower(): c for c in self.channels}

    @property
    def alpha(self) -> str | None:
        """The layer's own alpha channel (``A`` or ``alpha``), if any."""
        shorts = self._by_short()
        for key in _ALPHA_NAMES:
            if key in shorts:
                return shorts[key]
        return None

    @property
    def rgb(self) -> tuple[str | None, str | None, str | None]:
        """The channels shown as red, green, blue when the layer is viewed in colour.

        R/G/B (or red/green/blue) when the layer has at least two of them, else X/Y/Z,
        else U/V (same rule), else its first non-alpha channel as grey, else its alpha as
        grey. Missing components are ``None`` (shown as 0).
        """
        shorts = self._by_short()
        for names in (("r", "g", "b"), ("red", "green", "blue"), ("x", "y", "z"), ("u", "v", "")):
            found = tuple(shorts.get(n) if n else None for n in names)
            if sum(f is not None for f in found) >= 2:
                return found  # type: ignore[return-value]
        for c in self.channels:
            if c != self.alpha:
                return (c, c, c)
        a = self.alpha
        return (a, a, a)

    @property
    def is_grey(self) -> bool:
        """True when colour view shows one channel as grey."""
        r, g, b = self.rgb
        return r is not None and r == g == b


def group_channels(names: Iterable[str]) -> list[Layer]:
    """Group channel names into layers: the root layer first, then the others by name."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(split_channel(name)[0], []).append(name)
    order = sorted(groups, key=lambda n: (n != "", n.lower(), n))
    return [Layer(n, tuple(sorted(groups[n], key=channel_sort_key))) for n in order]


def find_layer(layers: Iterable[Layer], name: str) -> Layer | None:
    """The layer called ``name`` in ``layers``, or None."""
    for layer in layers:
        if layer.name == name:
            return layer
    return None


def alpha_channel(layers: list[Layer], layer_name: str = "") -> str | None:
    """The alpha to use for a layer: its own, else the root layer's."""
    layer = find_layer(layers, layer_name)
    if layer is not None and layer.alpha is not None:
        return layer.alpha
    root = find_layer(layers, "")
    return root.alpha if root is not None else None


def depth_channel(names: Iterable[str]) -> str | None:
    """The channel holding depth: ``Z`` (the deep standard), else ``depth.Z`` / ``depth``."""
    present = set(names)
    for candidate in _DEPTH_NAMES:
        if candidate in present:
            return candidate
    return None


def half_open(box: Box) -> tuple[int, int, int, int]:
    """An inclusive EXR box as half-open ``(x0, y0, x1, y1)``: pixels ``x0 <= x < x1``."""
    return box.xmin, box.ymin, box.xmax + 1, box.ymax + 1


def box_contains(box: Box, x: int, y: int) -> bool:
    """True when the absolute pixel (x, y) lies inside the inclusive box."""
    return box.xmin <= x <= box.xmax and box.ymin <= y <= box.ymax
