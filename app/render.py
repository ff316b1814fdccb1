"""What the viewer shows, computed without Qt: frames for the canvas, pixel profiles, readouts.

``render_frame`` is the job the render worker runs: it derives a part's per-pixel arrays
once (flattened channels, sample counts, nearest depth; cached by the document model under
``(path, mtime, part)``), picks what the current :class:`View` shows and runs the display
transform, giving a :class:`Frame` of uint8 RGBA plus the float values shown (for the
readout and the pixel text). ``pixel_profile`` gathers one deep pixel's samples in depth
order for the deep graph and the sample table (a handful of samples: cheap in the GUI thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.display import colormap_transform, display_transform, robust_range
from core.errors import Cancelled
from core.kernels import flatten, sample_count_image
from core.layers import Layer, alpha_channel, depth_channel, find_layer, group_channels, split_channel
from core.model import Box, DeepImage, FlatImage, PixelType

VIEW_MODES = ("color", "channel", "alpha", "depth", "samples")
VIEW_MODE_LABELS = {"color": "Colour", "channel": "Channel", "alpha": "Alpha", "depth": "Depth",
                    "samples": "Sample count"}
DEPTH_CMAP = "viridis"
COUNT_CMAP = "inferno"

PartKey = tuple[str, float, int]
Image = DeepImage | FlatImage


@dataclass(frozen=True)
class View:
    """What the canvas shows: a mode, the layer it applies to, and the channel for "channel" mode."""

    mode: str = "color"
    layer: str = ""
    channel: str | None = None


@dataclass(frozen=True)
class Tone:
    """Display settings: exposure in stops, then sRGB, a gamma curve or linear."""

    exposure: float = 0.0
    gamma: float = 2.2
    transfer: str = "srgb"


@dataclass
class PartData:
    """Per-pixel arrays derived from one part, computed once in a worker and cached.

    ``planes`` maps each channel name to a ``(H, W)`` array: the flattened value for a
    deep part (for an id channel: the front-most visible id), the value itself for a flat
    part; float32, or uint32 for ids. ``counts`` (deep only) is the samples
    per pixel; ``front_z`` is the depth of the front-most visible sample (inf where a pixel
    has none) for a deep part, the depth channel for a flat one, or None.
    """

    planes: dict[str, np.ndarray]
    counts: np.ndarray | None = None
    front_z: np.ndarray | None = None
    # (H, W, 3) float32 stacks of colour planes by channel names, made by the first render of a
    # colour view and reused by the next (an exposure change then only runs the display transform)
    stacked: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False, compare=False)


#: the view modes whose frame depends on the tone (exposure, gamma, transfer)
TONE_MODES = ("color", "channel", "alpha")
#: the stride of a quick frame off screen (seen only if the view moves before the full frame)
QUICK_COARSE = 8


@dataclass(frozen=True)
class RenderRequest:
    """An immutable render job: which part, what to show, and the cache entry if there is one."""

    key: PartKey
    image: Image
    view: View
    tone: Tone
    part_data: PartData | None = None
    #: a quick frame while the tone moves (colour views only): ``display_transform``'s ``stride``
    #: and ``region`` (what is on screen, in array columns and rows; None: all of it)
    stride: int = 1
    region: tuple[int, int, int, int] | None = None


@dataclass
class Frame:
    """A ready-to-show image: ``rgba`` is ``(H, W, 4)`` uint8 over the data window.

    ``values`` are the float arrays behind it, by label (``R``/``G``/``B``, a channel's short
    name, ``Z``, ``samples``), shown in the readout and as text when zoomed in.
    ``value_range`` is the colour map range of the depth and sample-count views.
    """

    key: PartKey
    view: View
    tone: Tone
    rgba: np.ndarray
    values: dict[str, np.ndarray]
    data_window: Box
    display_window: Box
    value_range: tuple[float, float] | None = None
    title: str = ""
    #: a quick frame (``quick``): each stride x stride block of ``region`` (None: the whole
    #: image) shows its top-left pixel, the rest coarser (see ``display_transform``); same size
    stride: int = 1
    region: tuple[int, int, int, int] | None = None

    @property
    def quick(self) -> bool:
        return self.stride > 1 or self.region is not None


@dataclass
class RenderResult:
    frame: Frame
    part_data: PartData


@dataclass
class PixelProfile:
    """One deep pixel's samples in depth order, ready to plot and tabulate.

    ``z``/``zback`` are the sample depths (``zback == z`` for point samples; the sample
    index when the part has no Z), ``values`` every channel of the pixel, ``alpha`` the
    absolute alpha (None without an alpha channel), ``is_volume`` flags samples with
    ``ZBack > Z`` or a negative alpha, ``accumulated`` the opacity in front of and
    including each sample, ``colours`` each sample's display colour (uint8 RGBA).
    """

    x: int
    y: int
    order: np.ndarray
    z: np.ndarray
    zback: np.ndarray
    values: dict[str, np.ndarray]
    alpha: np.ndarray | None
    is_volume: np.ndarray
    accumulated: np.ndarray | None
    colours: np.ndarray
    has_depth: bool = True
    channel_order: list[str] = field(default_factory=list)
    tone: Tone | None = None  # what ``colours`` were made with

    @property
    def count(self) -> int:
        return int(self.z.shape[0])


def default_view(image: Image) -> View:
    """Colour view of the root layer (or of the first layer when there is no root)."""
    layers = group_channels(image.channels)
    name = layers[0].name if layers else ""
    return View("color", name, None)


def view_is_valid(image: Image, view: View) -> bool:
    """True when ``view`` can be shown for ``image``."""
    if view.mode not in VIEW_MODES:
        return False
    layers = group_channels(image.channels)
    if layers and find_layer(layers, view.layer) is None:
        return False
    if view.mode == "channel" and view.channel not in image.channels:
        return False
    if view.mode == "samples" and not isinstance(image, DeepImage):
        return False
    if view.mode == "depth" and depth_channel(image.channels) is None:
        return False
    return True


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled()


def compute_part_data(image: Image, progress: Callable[[float], None] | None = None,
                      cancel: Callable[[], bool] | None = None) -> PartData:
    """Flatten a deep part (or widen a flat one) once: the arrays every view is made from."""
    _check(cancel)  # a superseded job that has not started yet stops here
    zname = depth_channel(image.channels)
    if isinstance(image, DeepImage):
        planes = dict(flatten(image, split_volumes=True))
        ids = [n for n, arr in image.channels.items() if arr.dtype == np.uint32]
        if ids:  # ids are not composited: the id of the front-most visible sample
            planes.update(flatten(image, ids))
        _check(cancel)
        if progress:
            progress(0.8)
        counts = np.asarray(sample_count_image(image))
        front_z = None
        if zname is not None and zname in planes:
            front_z = planes[zname]  # front-most visible sample; inf where none (shown transparent)
        return PartData(planes, counts, front_z)
    planes = {name: arr if arr.dtype == np.uint32 else np.asarray(arr, dtype=np.float32)
              for name, arr in image.channels.items()}
    front_z = planes.get(zname) if zname is not None else None
    return PartData(planes, None, front_z)


def _short(name: str) -> str:
    return split_channel(name)[1]


def _stack_rgb(planes: dict[str, np.ndarray], names, shape) -> np.ndarray:
    rgb = np.zeros(shape + (3,), dtype=np.float32)
    for i, name in enumerate(names):
        if name is not None and name in planes:
            rgb[..., i] = planes[name]
    return rgb


def render_frame(request: RenderRequest, progress: Callable[[float], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> RenderResult:
    """Make the frame ``request`` asks for (runs in a worker: full-image work)."""
    _check(cancel)
    image, view, tone = request.image, request.view, request.tone
    data = request.part_data
    if data is None:
        data = compute_part_data(image, progress, cancel)
    _check(cancel)
    shape = (image.height, image.width)
    layers = group_channels(image.channels)
    layer = find_layer(layers, view.layer) or (layers[0] if layers else Layer("", ()))
    values: dict[str, np.ndarray] = {}
    value_range = None
    title = ""
    stride, region = 1, None
    if view.mode in TONE_MODES:
        if view.mode == "color":
            names = layer.rgb
            title = f"{layer.label} ({', '.join(_short(n) for n in dict.fromkeys(names) if n)})"
            if layer.is_grey:
                names = (names[0],)
        elif view.mode == "channel":
            names = (view.channel,)
            title = f"channel {view.channel}"
        else:
            a = alpha_channel(layers, layer.name)
            names = (a,)
            title = f"alpha {a}" if a else "alpha (none: opaque)"
        if len(names) == 1:
            plane = data.planes.get(names[0]) if names[0] else None
            if plane is None:
                plane = np.ones(shape, dtype=np.float32) if view.mode == "alpha" else np.zeros(shape, np.float32)
            values[_short(names[0]) if names[0] else "A"] = plane
            src = np.asarray(plane, dtype=np.float32)[..., None]
        else:
            for name in names:
                if name is not None and name in data.planes:
                    values[_short(name)] = data.planes[name]
            key = tuple(names)
            src = data.stacked.get(key)
            if src is None or src.shape[:2] != shape:
                src = _stack_rgb(data.planes, names, shape)
                data.stacked[key] = src
        stride, region = request.stride, request.region
        rgba = display_transform(np.ascontiguousarray(src), exposure=tone.exposure, gamma=tone.gamma,
                                 transfer=tone.transfer, stride=stride, region=region, coarse=QUICK_COARSE)
    elif view.mode == "depth":
        z = data.front_z if data.front_z is not None else np.full(shape, np.inf, np.float32)
        value_range = robust_range(z)
        values["Z"] = z
        rgba = colormap_transform(z, value_range[0], value_range[1], cmap=DEPTH_CMAP)
        title = f"depth {value_range[0]:.4g} … {value_range[1]:.4g}"
    elif view.mode == "samples":
        if data.counts is None:
            raise ValueError("the sample-count view needs a deep part")
        counts = data.counts.astype(np.float32)
        vmax = float(counts.max()) if counts.size else 1.0
        value_range = (0.0, max(vmax, 1.0))
        values["samples"] = data.counts
        rgba = colormap_transform(counts, value_range[0], value_range[1], cmap=COUNT_CMAP)
        title = f"samples per pixel 0 … {int(value_range[1])}"
    else:
        raise ValueError(f"unknown view mode {view.mode!r}")
    if progress:
        progress(1.0)
    frame = Frame(request.key, view, tone, np.ascontiguousarray(rgba), values, image.data_window,
                  image.display_window, value_range, title, stride, region)
    return RenderResult(frame, data)


def pixel_profile(image: DeepImage, x: int, y: int, tone: Tone | None = None) -> PixelProfile | None:
    """The samples of the deep pixel at absolute EXR coordinates (x, y), in depth order."""
    dw = image.data_window
    lx, ly = x - dw.xmin, y - dw.ymin
    if not (0 <= lx < image.width and 0 <= ly < image.height):
        return None
    samples = image.pixel_samples(lx, ly)
    n = int(image.offsets[ly * image.width + lx + 1] - image.offsets[ly * image.width + lx])
    zname = depth_channel(image.channels)
    has_depth = zname is not None
    z = samples[zname].astype(np.float32) if has_depth else np.arange(n, dtype=np.float32)
    zback = samples["ZBack"].astype(np.float32) if "ZBack" in samples else z.copy()
    order = np.lexsort((zback, z)) if n else np.zeros(0, np.int64)  # stable; identity if sorted at load
    z, zback = z[order], zback[order]
    values = {k: v[order] for k, v in samples.items()}
    layers = group_channels(image.channels)
    aname = alpha_channel(layers, "")
    raw_alpha = values[aname].astype(np.float32) if aname else None
    alpha = np.abs(raw_alpha) if raw_alpha is not None else None
    is_volume = zback > z
    if raw_alpha is not None:
        is_volume |= raw_alpha < 0
    accumulated = None
    if alpha is not None:
        accumulated = (1.0 - np.cumprod(1.0 - np.clip(alpha, 0.0, 1.0))).astype(np.float32)
    channel_order = [c for layer in layers for c in layer.channels]
    profile = PixelProfile(x, y, order, z, zback, values, alpha, is_volume, accumulated,
                           np.zeros((n, 4), dtype=np.uint8), has_depth, channel_order)
    profile.colours = sample_colours(image, profile, tone)
    profile.tone = tone or Tone()
    return profile


def sample_colours(image: DeepImage, profile: PixelProfile, tone: Tone | None = None) -> np.ndarray:
    """Each sample's own (un-premultiplied) colour under ``tone``: ``(n, 4)`` uint8.

    The only part of a profile that depends on the tone: a tone change recomputes just this.
    """
    n = profile.count
    if not n:
        return np.zeros((0, 4), dtype=np.uint8)
    layers = group_channels(image.channels)
    root = find_layer(layers, "") or (layers[0] if layers else Layer("", ()))
    rgb = np.zeros((1, n, 3), dtype=np.float32)
    for i, name in enumerate(root.rgb):
        if name is not None:
            rgb[0, :, i] = profile.values[name]
    alpha = profile.alpha
    if alpha is not None:  # show the sample's own colour: un-premultiply where alpha > 0
        safe = np.where(alpha > 0, alpha, 1.0).astype(np.float32)
        rgb[0] /= safe[:, None]
    t = tone or Tone()
    return np.asarray(display_transform(rgb, exposure=t.exposure, gamma=t.gamma, transfer=t.transfer)[0])


def format_value(value, pixel_type: PixelType | None = None) -> str:
    """A channel value as shown to the user: ids (UINT) in hex, floats with 6 significant digits."""
    if pixel_type is PixelType.UINT or np.issubdtype(np.asarray(value).dtype, np.integer):
        return f"0x{int(value):08x}"
    return f"{float(value):.6g}"


def readout_text(frame: Frame | None, image: Image | None, x: int, y: int) -> str:
    """The status-bar line for the pixel under the cursor (absolute EXR coordinates)."""
    parts = [f"x {x}  y {y}"]
    if frame is not None:
        fx, fy = x - frame.data_window.xmin, y - frame.data_window.ymin
        h, w = frame.rgba.shape[:2]
        if 0 <= fx < w and 0 <= fy < h:
            shown = "  ".join(f"{k} {format_value(v[fy, fx])}" for k, v in frame.values.items()
                              if k not in ("Z", "samples"))
            if shown:
                parts.append(shown)
    if image is not None:
        dw = image.data_window
        lx, ly = x - dw.xmin, y - dw.ymin
        if not (0 <= lx < image.width and 0 <= ly < image.height):
            parts.append("outside the data window")
        elif isinstance(image, DeepImage):
            i = ly * image.width + lx
            a, b = int(image.offsets[i]), int(image.offsets[i + 1])
            zname = depth_channel(image.channels)
            if zname is not None and b > a:
                parts.append(f"Z {format_value(image.channels[zname][a])}")
            parts.append(f"{b - a} sample{'s' if b - a != 1 else ''}")
        else:
            zname = depth_channel(image.channels)
            if zname is not None:
                parts.append(f"Z {format_value(image.channels[zname][ly, lx])}")
    return "   │   ".join(parts)
