"""Deep defocus: a thin-lens depth of field computed from every deep sample's own depth.

Because a deep pixel keeps the surfaces behind an edge, a blurred foreground can reveal
what it covered, and an in-focus object in front of a blurred background keeps its edge.

**Circle of confusion.** A thin lens of focal length ``f``, f-number ``N`` (aperture
diameter ``A = f / N``) focused at distance ``d_f`` images a point at distance ``d`` as a
disk of diameter ``c = A * f * |d - d_f| / (d * (d_f - f))`` on the sensor (all lengths in
mm); with a sensor ``S`` mm wide spread over a frame ``W`` pixels wide that is a disk of
radius ``c * W / (2 * S)`` pixels. :func:`thin_lens_coc` returns it *signed* (negative in
front of the focus plane), from depths in the file's units times ``units_to_m``.
:func:`simple_coc` is the one-control mode for files with no known units: radius
``blur_per_unit * (depth - focus_depth)`` pixels. Radii are clamped to ``max_radius``.

**Algorithm: depth slices, scatter, normalise, over** (chosen for speed and quality: the
cost is one pass over the samples plus, per slice, work proportional to the area it covers).

1. Every sample gets its signed radius and a *slice*. Slices are equal steps of
   ``sign(r) * log(1 + |r| / rho)``: 0.25 px of radius wide at the focus plane, widening by
   25 % of the radius (CoC-equal intervals where a step in blur is equally visible; at most
   ``max_slices``, widened if the range needs more). The samples of a pixel that fall in one
   slice are composited with *over* (float32, exactly as :func:`core.kernels.flatten` does)
   into one *group* with their visible-weighted radius. Two passes, by rows, in parallel: one
   counts each row's groups per slice, the other writes them packed (arrays as large as the
   groups, not the samples).
2. Slice by slice, front to back, each group is scattered into the slice's layer as a disk
   whose pixel weights are the area of each pixel inside the disk over the disk's area (a
   table interpolated in radius: smooth as a slider moves, weights summing to 1, so energy
   is kept; a radius below half a pixel stays in its pixel). Blurs above ``level_radius``
   (4) px are scattered on a power-of-two coarser grid (the groups of a cell merged first,
   the radius reduced by what the cell averaging and the bilinear upsampling add) so a
   sample's cost stays bounded however large its blur. Only the tiles of the grid a slice
   touches are visited, in two parallel passes: the slice's cells (its groups merged, the
   shares of step 3), then, band by band of rows while the band is in cache, the scatter,
   the normalisation and (on the full-resolution grid) the composite of step 4.
3. **Occlusion without halos: a normalised convolution.** Where the renderer stopped behind
   an opaque surface (alpha accumulated to 0.99) the slices behind it are *unknown* there,
   not empty; elsewhere a pixel with nothing in a slice is *known empty* for it. Each layer
   cell is divided by ``W + E``: the disk weight of the groups that reached it plus the disk
   weight its known-empty neighbours would have given (the outside of the frame counts as
   unknown). Content among known-empty pixels keeps its energy (``W + E = 1``); where the
   neighbourhood is all surface or unknown the layer is divided by ``W`` alone, so the
   background behind a sharp foreground keeps its level (no dark halo, no foreground colour
   in it: no bright halo) and a surface whose blur changes from slice to slice stays opaque
   (the layers of a continuous surface then telescope to exactly its lens average).
4. The layers are composited front to back with *over*: a sharp foreground stays as it
   was (bit for bit when opaque), a blurred foreground spreads its partial coverage over what
   lies behind it, which shows through its edges.
5. A pixel with no see-through pixel (one that never gets opaque) within reach of the
   largest blur cannot be partly transparent: every ray through the lens ends on a surface.
   What transparency the layering left there is divided out.

Approximations (measured against a brute-force thin-lens ray trace of the deep samples in
the tests): a layer occludes the layers behind it uniformly over the lens rather than over
the part of the lens it covers (worst at the edge of a blurred foreground over a background
blurred the other way), fragments of different pixels in one slice add up, and coarse levels
soften small objects a little. With a pinhole (``f_stop`` infinite, ``max_radius`` 0 or
``blur_per_unit`` 0) there is one slice, no spreading, and the result equals
:func:`core.kernels.flatten` bit for bit.

Live previews pass ``proxy`` (0.25, 0.5): the output is that fraction of the resolution
(``floor((W - 0.5) * proxy) + 1`` pixels wide), radii shrink with it, and only a quarter of
the source pixels are read (unless ``full_sampling``). ``cancel`` is called before the
sample pass and between slices (raising :class:`core.errors.Cancelled`). Every call
returns new arrays and never modifies the image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core._numba import kernel, prange
from core.errors import Cancelled, DeepscopeError
from core.model import DeepImage, PartHeader

__all__ = [
    "DEFAULT_MAX_RADIUS",
    "CameraGuess",
    "DefocusError",
    "SimpleBlur",
    "ThinLens",
    "defocus",
    "focus_at",
    "guess_camera",
    "output_shape",
    "simple_coc",
    "thin_lens_coc",
]

DEFAULT_MAX_RADIUS = 64.0
"""Largest blur radius, in full-resolution pixels."""
LEVEL_RADIUS = 4.0
"""A slice whose disks are larger than this (in cells) is scattered on a coarser grid."""
MAX_SLICES = 64
SLICE_WIDTH = 0.25
"""Width in pixels of radius of the slices at the focus plane."""
SLICE_GROWTH = 0.25
"""Slices widen by this fraction of their radius: ``width(r) = SLICE_WIDTH + SLICE_GROWTH * |r|``."""
_RHO = SLICE_WIDTH / SLICE_GROWTH
HIDDEN_ALPHA = 0.99
"""Accumulated alpha from which what lies behind is taken as never rendered (unknown)."""
_TILE = 16  # cells per side of the tiles a slice's work is limited to (and rows per parallel band)
_MIN_KNOWN = 1e-3


class DefocusError(DeepscopeError):
    """Camera parameters or a request that a defocus cannot use."""


# --------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class ThinLens:
    """A thin-lens camera. ``focus_distance`` is in the file's depth units; ``units_to_m``
    converts them to metres (0.01 for centimetres); the focal length and sensor width are in mm."""

    focus_distance: float
    f_stop: float
    focal_length_mm: float = 50.0
    sensor_width_mm: float = 36.0
    units_to_m: float = 1.0

    def validate(self) -> None:
        for name in ("focus_distance", "f_stop", "focal_length_mm", "sensor_width_mm", "units_to_m"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and not math.isnan(value)):
                raise DefocusError(f"{name} must be a positive number, got {value!r}")
        for name in ("focus_distance", "focal_length_mm", "sensor_width_mm", "units_to_m"):
            if math.isinf(getattr(self, name)):
                raise DefocusError(f"{name} must be finite")
        if self.focus_distance * self.units_to_m * 1000.0 <= self.focal_length_mm:
            raise DefocusError(
                f"the focus distance ({self.focus_distance * self.units_to_m:g} m) must be beyond the focal length "
                f"({self.focal_length_mm:g} mm): check --units-to-m"
            )

    def coefficients(self, frame_width: float) -> tuple[float, float]:
        """``(k, d_f)`` with the signed radius in pixels ``r = k * (1 - d_f / d)`` (``d`` in depth units)."""
        self.validate()
        f = self.focal_length_mm
        aperture = 0.0 if math.isinf(self.f_stop) else f / self.f_stop
        focus_mm = self.focus_distance * self.units_to_m * 1000.0
        diameter_mm = aperture * f / (focus_mm - f)  # times (d - d_f) / d
        return diameter_mm * frame_width / (2.0 * self.sensor_width_mm), float(self.focus_distance)


@dataclass(frozen=True)
class SimpleBlur:
    """One control for files with no known units: radius ``blur_per_unit * |depth - focus_depth|`` px."""

    focus_depth: float
    blur_per_unit: float

    def validate(self) -> None:
        if not math.isfinite(self.focus_depth):
            raise DefocusError(f"focus_depth must be finite, got {self.focus_depth!r}")
        if not (self.blur_per_unit >= 0 and math.isfinite(self.blur_per_unit)):
            raise DefocusError(f"blur_per_unit must be a finite number >= 0, got {self.blur_per_unit!r}")


def thin_lens_coc(depth: np.ndarray | float, lens: ThinLens, frame_width: float) -> np.ndarray:
    """Signed circle-of-confusion radius in pixels of points at ``depth`` (depth units).

    Negative in front of the focus plane, positive behind it; 0 at ``lens.focus_distance``.
    ``frame_width`` is the width in pixels the sensor width spans (the display window).
    """
    k, focus = lens.coefficients(frame_width)
    d = np.asarray(depth, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return k * (1.0 - focus / d)


def simple_coc(depth: np.ndarray | float, focus_depth: float, blur_per_unit: float) -> np.ndarray:
    """Signed blur radius in pixels for the one-control mode: ``blur_per_unit * (depth - focus_depth)``."""
    SimpleBlur(focus_depth, blur_per_unit).validate()
    return blur_per_unit * (np.asarray(depth, dtype=np.float64) - focus_depth)


def _radius_params(camera: ThinLens | SimpleBlur, frame_width: float) -> tuple[float, float, float, bool]:
    """``(c0, c1, c2, inverse)``: signed radius ``c0 + c1 / z`` (inverse) or ``c0 + c2 * z``."""
    if isinstance(camera, ThinLens):
        k, focus = camera.coefficients(frame_width)
        return k, -k * focus, 0.0, True
    if isinstance(camera, SimpleBlur):
        camera.validate()
        return -camera.blur_per_unit * camera.focus_depth, 0.0, camera.blur_per_unit, False
    raise DefocusError(f"unknown camera {camera!r}: use ThinLens or SimpleBlur")


def _radius_py(z: float, c0: float, c1: float, c2: float, inverse: bool, scale: float, max_r: float) -> float:
    """The kernel's radius rule for one depth (used to bound the slices)."""
    if inverse:
        if z <= 0.0:
            r = -max_r if c1 < 0.0 else 0.0
        else:
            r = (c0 + c1 / z) * scale
    else:
        r = (c0 + (c2 * z if c2 != 0.0 else 0.0)) * scale
    return min(max(r, -max_r), max_r)


# --------------------------------------------------------------------------- camera metadata


@dataclass(frozen=True)
class CameraGuess:
    """Camera data a renderer wrote in the header; ``None`` where nothing said it.

    ``focus_distance`` is in scene (depth) units, ``aperture_radius`` is a lens radius in
    scene units (Arnold's ``aperture_size``), ``fov_degrees`` the horizontal field of view.
    ``sources`` names the attribute each value came from (or ``derived from ...``).
    """

    focal_length_mm: float | None = None
    f_stop: float | None = None
    focus_distance: float | None = None
    sensor_width_mm: float | None = None
    fov_degrees: float | None = None
    aperture_radius: float | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return any(v is not None for v in (self.focal_length_mm, self.f_stop, self.focus_distance,
                                           self.fov_degrees, self.aperture_radius))

    def lens(self, default: ThinLens | None = None, units_to_m: float | None = None) -> ThinLens | None:
        """A :class:`ThinLens` from what was found, the rest from ``default``; None if no focus distance."""
        focus = self.focus_distance
        if focus is None and default is not None:
            focus = default.focus_distance
        if focus is None:
            return None
        base = default or ThinLens(focus_distance=focus, f_stop=2.8)
        units = units_to_m if units_to_m is not None else base.units_to_m
        f = self.focal_length_mm or base.focal_length_mm
        f_stop = self.f_stop
        if f_stop is None and self.aperture_radius:
            f_stop = f / (2.0 * self.aperture_radius * units * 1000.0)
        return ThinLens(focus_distance=focus, f_stop=f_stop or base.f_stop, focal_length_mm=f,
                        sensor_width_mm=self.sensor_width_mm or base.sensor_width_mm, units_to_m=units)


# (attribute name, field, unit conversion) in order of preference; matched case-sensitively
_CAMERA_ATTRIBUTES: tuple[tuple[str, str, float], ...] = (
    # OpenEXR standard attributes
    ("focus", "focus_distance", 1.0),  # metres in the standard; taken as scene units here
    ("aperture", "f_stop", 1.0),
    ("tStop", "f_stop", 1.0),
    ("effectiveFocalLength", "focal_length_mm", 1.0),
    ("nominalFocalLength", "focal_length_mm", 1.0),
    # V-Ray
    ("cameraFocalLength", "focal_length_mm", 1.0),
    ("cameraFNumber", "f_stop", 1.0),
    ("cameraAperture", "sensor_width_mm", 1.0),
    ("cameraTargetDistance", "focus_distance", 1.0),
    ("cameraFov", "fov_degrees", 1.0),
    ("CameraFov", "fov_degrees", 1.0),
    # Redshift (rs/camera/fov is in radians)
    ("rs/camera/fstop", "f_stop", 1.0),
    ("rs/camera/focusDistance", "focus_distance", 1.0),
    ("rs/camera/fov", "fov_degrees", 180.0 / math.pi),
    # Arnold (MtoA/HtoA metadata: CameraFov; its focal length and film aperture share one unit)
    ("arnold/camera/focus_distance", "focus_distance", 1.0),
    ("arnold/camera/aperture_size", "aperture_radius", 1.0),
    # RenderMan / Karma / generic custom attributes
    ("fStop", "f_stop", 1.0),
    ("fNumber", "f_stop", 1.0),
    ("fstop", "f_stop", 1.0),
    ("focalLength", "focal_length_mm", 1.0),
    ("focal_length", "focal_length_mm", 1.0),
    ("focusDistance", "focus_distance", 1.0),
    ("focus_distance", "focus_distance", 1.0),
    ("apertureSize", "aperture_radius", 1.0),
    ("aperture_size", "aperture_radius", 1.0),
    ("horizontalAperture", "sensor_width_mm", 1.0),
    ("camera:fstop", "f_stop", 1.0),
    ("camera:focalLength", "focal_length_mm", 1.0),
    ("camera:focusDistance", "focus_distance", 1.0),
    ("camera:horizontalAperture", "sensor_width_mm", 1.0),
)
_SANE = {
    "focal_length_mm": (0.5, 5000.0),
    "f_stop": (0.3, 1000.0),
    "focus_distance": (1e-6, 1e9),
    "sensor_width_mm": (0.5, 500.0),
    "fov_degrees": (0.01, 179.0),
    "aperture_radius": (0.0, 1e6),
}


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, str):
        try:
            v = float(value.strip())
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def _fov_from_matrices(attrs: Mapping[str, Any]) -> tuple[float, str] | None:
    """Horizontal field of view from ``worldToNDC``/``worldToScreen`` and ``worldToCamera``.

    The camera-to-NDC part ``P = inverse(worldToCamera) * worldToNDC`` (row vectors, as
    OpenEXR stores them) of a perspective camera has ``|P[2][3]| = 1``, ``P[3][3] = 0`` and
    ``P[0][0] = 1 / tan(fov / 2)`` for NDC in [-1, 1] (Arnold, Clarisse); RenderMan's NDC
    is [0, 1], recognised by its 0.5 offset ``P[2][0]``, where ``P[0][0]`` is halved.
    """
    w2c = attrs.get("worldToCamera")
    for name in ("worldToNDC", "worldToScreen"):
        m = attrs.get(name)
        if m is None or w2c is None:
            continue
        try:
            a = np.asarray(w2c, dtype=np.float64).reshape(4, 4)
            b = np.asarray(m, dtype=np.float64).reshape(4, 4)
            p = np.linalg.inv(a) @ b
        except (ValueError, np.linalg.LinAlgError):
            continue
        if not np.all(np.isfinite(p)) or abs(abs(p[2, 3]) - 1.0) > 1e-3 or abs(p[3, 3]) > 1e-3 or p[0, 0] <= 0:
            continue
        scale = p[0, 0]
        if abs(abs(p[2, 0]) - 0.5) < 1e-3:  # [0, 1] NDC
            scale *= 2.0
        return math.degrees(2.0 * math.atan(1.0 / scale)), f"derived from {name} and worldToCamera"
    return None


def guess_camera(header: PartHeader | Mapping[str, Any]) -> CameraGuess:
    """The camera the header describes, as far as the renderer wrote it.

    Knows the OpenEXR standard attributes (``focus``, ``aperture``, ``nominalFocalLength``
    ...), V-Ray's ``camera*`` (focal length and film aperture in mm, ``cameraFNumber``,
    ``cameraTargetDistance``), Arnold's ``CameraFov``/``CameraFocalLength``/
    ``CameraFilmApertureHorizontal`` (one unit for both: only their ratio is used),
    Redshift's ``rs/camera/*``, common custom names (``focalLength``, ``fNumber``,
    ``focusDistance``, ``apertureSize`` ...) and the ``worldToNDC``/``worldToCamera``
    matrices (field of view). A field of view with a sensor width gives the focal length.
    """
    attrs: Mapping[str, Any]
    if isinstance(header, PartHeader):
        attrs = {name: a.value for name, a in header.attributes.items()}
    else:
        attrs = {k: getattr(v, "value", v) for k, v in header.items()}
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for name, target, unit in _CAMERA_ATTRIBUTES:
        if target in values or name not in attrs:
            continue
        key = name
        v = _number(attrs[key])
        if v is None:
            continue
        v *= unit
        lo, hi = _SANE[target]
        if not lo <= v <= hi:
            continue
        values[target] = v
        sources[target] = key
    # Arnold writes the focal length and the film aperture in one arbitrary unit
    f_raw = _number(attrs.get("CameraFocalLength"))
    ap_raw = _number(attrs.get("CameraFilmApertureHorizontal"))
    if "fov_degrees" not in values and f_raw and ap_raw and f_raw > 0 and ap_raw > 0:
        values["fov_degrees"] = math.degrees(2.0 * math.atan(0.5 * ap_raw / f_raw))
        sources["fov_degrees"] = "derived from CameraFocalLength and CameraFilmApertureHorizontal"
    if "fov_degrees" not in values:
        found = _fov_from_matrices(attrs)
        if found is not None:
            values["fov_degrees"], sources["fov_degrees"] = found
    if "focal_length_mm" not in values and "fov_degrees" in values:
        sensor = values.get("sensor_width_mm", 36.0)
        values["focal_length_mm"] = sensor / (2.0 * math.tan(math.radians(values["fov_degrees"]) / 2.0))
        what = "sensor_width_mm" if "sensor_width_mm" in values else "a 36 mm sensor"
        sources["focal_length_mm"] = f"derived from {sources['fov_degrees'].removeprefix('derived from ')} and {what}"
    return CameraGuess(**values, sources=sources)


# --------------------------------------------------------------------------- kernels: samples


@kernel(inline="always")
def _signed_radius(zv, c0, c1, c2, inverse, scale, max_r):
    """Signed blur radius in output pixels of a sample at depth zv (clamped to max_r)."""
    if inverse:
        if zv <= 0.0:
            r = -max_r if c1 < 0.0 else 0.0
        else:
            r = (c0 + c1 / zv) * scale
    else:
        r = c0 * scale
        if c2 != 0.0:
            r = (c0 + c2 * zv) * scale
    if r > max_r:
        r = max_r
    elif r < -max_r:
        r = -max_r
    return r


@kernel(inline="always")
def _next_slice(zv, k, first, z_bounds, last):
    """The slice of depth zv, searching from slice k (a bisection for the first sample of a pixel,
    or when the depth went back: unsorted samples); NaN depths go to the last slice."""
    if zv != zv:
        return last
    if first or (k > 0 and zv < z_bounds[k - 1]):
        lo = 0
        hi = last
        while lo < hi:
            mid = (lo + hi) // 2
            if zv >= z_bounds[mid]:
                lo = mid + 1
            else:
                hi = mid
        return lo
    while k < last and zv >= z_bounds[k]:
        k += 1
    return k


@kernel(parallel=True)
def _count_kernel(offsets, z, alpha, has_alpha, width, height, use_x, use_y, z_bounds, n_slices, tile_x, counts,
                  row_tiles, hidden_from, hidden_count):
    """The first pass over each row's samples. Each sample's slice: ``z_bounds[j]`` is the
    smallest depth of slice j + 1 (NaN depths go last). The samples of a pixel that share a
    slice form a *group*; ``counts[y, k]`` is the number of row y's groups in slice k. Also
    marks the tiles of each slice's level grid that hold groups (``row_tiles[k, y]``; source
    column x lies in tile ``tile_x[k, x]``) and, per pixel, the first slice it hides completely
    (accumulated alpha >= HIDDEN_ALPHA; ``n_slices + 1`` if never), with ``hidden_count[v, y]``
    the number of row y's pixels hidden from slice v. Pixels not in ``use_x``/``use_y`` are
    skipped (never hidden, not counted)."""
    last = n_slices - 1
    never = n_slices + 1  # hidden_from of a pixel that never gets opaque
    for y in prange(height):
        for k in range(n_slices):
            counts[y, k] = 0
        for v in range(n_slices + 2):
            hidden_count[v, y] = 0
        if not use_y[y]:
            for x in range(width):
                hidden_from[y * width + x] = never
            continue
        for x in range(width):
            p = y * width + x
            if not use_x[x]:
                hidden_from[p] = never
                continue
            k = 0
            prev = -1
            acc = 0.0
            hf = never
            for s in range(offsets[p], offsets[p + 1]):
                k = _next_slice(z[s], k, prev < 0, z_bounds, last)
                if k != prev:
                    counts[y, k] += 1
                    row_tiles[k, y, tile_x[k, x]] = 1
                    prev = k
                if hf == never:
                    acc += (1.0 - acc) * (abs(np.float64(alpha[s])) if has_alpha else 1.0)
                    if acc >= HIDDEN_ALPHA:
                        hf = k + 1
            hidden_from[p] = hf
            hidden_count[hf, y] += 1


@kernel(parallel=True)
def _hidden_list_kernel(width, height, use_y, n_slices, hidden_from, hidden_start, hidden_x):
    """The pixels that get hidden (see :func:`_count_kernel`) by the slice they are hidden from,
    then by row: row y's pixels hidden from slice v are the columns
    ``hidden_x[hidden_start[v * height + y]:hidden_start[v * height + y + 1]]``, in x order."""
    for y in prange(height):
        if not use_y[y]:
            continue
        pos = np.empty(n_slices + 1, np.int64)
        for v in range(n_slices + 1):
            pos[v] = hidden_start[v * height + y]
        for x in range(width):
            v = hidden_from[y * width + x]
            if v <= n_slices:
                hidden_x[pos[v]] = x
                pos[v] += 1


@kernel(parallel=True)
def _group_kernel(offsets, z, alpha, has_alpha, cols, n_col, width, height, use_x, use_y, z_bounds, n_slices, c0, c1,
                  c2, inverse, scale, max_r, hidden_from, gx, gcol, ga, gr, g_hidden, row_start):
    """The second pass: write each group, its over-composite (float32, as flatten does) and
    visible-weighted |radius|, row y's groups of slice k at ``row_start[y, k]:row_start[y, k + 1]``
    in x order (the layout :func:`_count_kernel`'s counts give), and whether its pixel is hidden
    by then (``g_hidden``: from slice k or before, so the slice's cells need not look it up)."""
    last = n_slices - 1
    for y in prange(height):
        if not use_y[y]:
            continue
        pos = np.empty(n_slices, np.int64)
        for k in range(n_slices):
            pos[k] = row_start[y, k]
        for x in range(width):
            if not use_x[x]:
                continue
            p = y * width + x
            a1 = offsets[p + 1]
            s = offsets[p]
            k = 0
            prev = -1
            while s < a1:
                k = _next_slice(z[s], k, prev < 0, z_bounds, last)
                prev = k
                acc32 = np.float32(0.0)
                c_0 = np.float32(0.0)
                c_1 = np.float32(0.0)
                c_2 = np.float32(0.0)
                c_3 = np.float32(0.0)
                rw = 0.0
                ww = 0.0
                rsum = 0.0
                n = 0
                done = False
                while True:
                    zd = np.float64(z[s])
                    rad = 0.0 if zd != zd else abs(_signed_radius(zd, c0, c1, c2, inverse, scale, max_r))
                    n += 1
                    rsum += rad
                    if not done:
                        al = abs(alpha[s]) if has_alpha else np.float32(1.0)
                        w = np.float32(1.0) - acc32
                        if n_col > 0:
                            c_0 += w * cols[0][s]
                        if n_col > 1:
                            c_1 += w * cols[1][s]
                        if n_col > 2:
                            c_2 += w * cols[2][s]
                        if n_col > 3:
                            c_3 += w * cols[3][s]
                        vis = np.float64(w) * np.float64(al)
                        rw += vis * rad
                        ww += vis
                        acc32 += w * al
                        if acc32 >= np.float32(1.0):
                            done = True
                    s += 1
                    if s >= a1 or _next_slice(z[s], k, False, z_bounds, last) != k:
                        break
                g = pos[k]
                pos[k] += 1
                gx[g] = x
                if n_col > 0:
                    gcol[0, g] = c_0
                if n_col > 1:
                    gcol[1, g] = c_1
                if n_col > 2:
                    gcol[2, g] = c_2
                if n_col > 3:
                    gcol[3, g] = c_3
                ga[g] = acc32
                gr[g] = rw / ww if ww > 0.0 else rsum / n
                g_hidden[g] = hidden_from[p] <= k


@kernel(parallel=True)
def _depth_range_kernel(z):
    """Smallest and largest depth that is not NaN (infinities included); (inf, -inf) if none."""
    n = z.shape[0]
    step = 1 << 16
    n_chunks = (n + step - 1) // step
    lows = np.full(max(n_chunks, 1), np.inf)
    highs = np.full(max(n_chunks, 1), -np.inf)
    for c in prange(n_chunks):
        lo = np.inf
        hi = -np.inf
        for i in range(c * step, min(c * step + step, n)):
            v = np.float64(z[i])
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        lows[c] = lo
        highs[c] = hi
    return lows.min(), highs.max()


# --------------------------------------------------------------------------- kernels: one slice


@kernel(inline="always")
def _clear_row(buf, cy, width, tile, mask_row):
    """Zero row cy (``width`` cells) of every plane of ``buf`` in the tiles ``mask_row`` marks,
    a run of tiles at a time: slices give contiguous stores (an index computed per cell made
    numba's wrap-around handling vectorise the loop into scatters)."""
    ntx = mask_row.shape[0]
    tx = 0
    while tx < ntx:
        if not mask_row[tx]:
            tx += 1
            continue
        end = tx + 1
        while end < ntx and mask_row[end]:
            end += 1
        a = cy * width + tx * tile
        b = cy * width + min(end * tile, width)
        for c in range(buf.shape[0]):
            buf[c, a:b] = np.float32(0.0)
        tx = end


@kernel(parallel=True)
def _cells_kernel(k, height, row_start, gx, gcol, ga, gr, g_hidden, n_col, cell_x, lev_w, lev_h, lev_y0, lev_y1,
                  hidden_start, hidden_x, v0, hidden, tile, content, umask, cell_px, cells, filled, pre):
    """Merge slice k's groups into the cells of its level grid (``cells`` rows: colour sums,
    alpha, radius and group count; the cells of ``content`` tiles, the only ones holding groups,
    are cleared first: what other slices left elsewhere is never read) and, in ``umask`` tiles,
    give each cell its *filled* share: the source pixels that have a group here or are unknown
    (hidden by an opaque surface in front, with no group here), over all its source pixels; the
    rest is known to be empty. ``hidden`` counts each cell's pixels hidden from slice v0 - 1 or
    before; the pixels hidden from slices v0 to k (listed by :func:`_hidden_list_kernel`) are
    added first: a level's counts are brought up to date as its slices come, each pixel counted
    once. ``pre[cy]`` counts, along the row, the cells with some known-empty share.
    ``cell_x[x]`` is the level column of source column x."""
    ntx = umask.shape[1]
    for cy in prange(lev_h):
        for y in range(lev_y0[cy], lev_y1[cy]):
            for v in range(v0, k + 1):
                f = v * height + y
                for j in range(hidden_start[f], hidden_start[f + 1]):
                    hidden[cy * lev_w + cell_x[hidden_x[j]]] += 1
        ty = cy // tile
        in_mask = False
        for tx in range(ntx):
            if umask[ty, tx]:
                in_mask = True
        if not in_mask:  # (then no content either)
            continue
        hidden_groups = np.empty(lev_w, np.int32)  # groups of hidden pixels, counted in `hidden`
        hidden_groups[:] = 0  # (np.zeros inside a parallel loop miscompiles)
        _clear_row(cells, cy, lev_w, tile, content[ty])
        for y in range(lev_y0[cy], lev_y1[cy]):
            for g in range(row_start[y, k], row_start[y, k + 1]):
                cx = cell_x[gx[g]]
                i = np.uint64(cy * lev_w + cx)  # (unsigned: no wrap-around arithmetic)
                if n_col > 0:
                    cells[0, i] += gcol[0, g]
                if n_col > 1:
                    cells[1, i] += gcol[1, g]
                if n_col > 2:
                    cells[2, i] += gcol[2, g]
                if n_col > 3:
                    cells[3, i] += gcol[3, g]
                cells[n_col, i] += ga[g]
                cells[n_col + 1, i] += gr[g]
                cells[n_col + 2, i] += np.float32(1.0)
                if g_hidden[g]:
                    hidden_groups[cx] += 1
        total = 0
        pre[cy, 0] = 0
        for tx in range(ntx):
            x1 = min(tx * tile + tile, lev_w)
            if not umask[ty, tx]:
                for cx in range(tx * tile, x1):
                    pre[cy, cx + 1] = total
                continue
            has_groups = content[ty, tx]
            for cx in range(tx * tile, x1):
                i = np.uint64(cy * lev_w + cx)
                groups = cells[n_col + 2, i] if has_groups else np.float32(0.0)
                share = (groups + (hidden[i] - hidden_groups[cx])) / cell_px[i]
                filled[i] = np.float32(share)
                if share < 1.0:
                    total += 1
                pre[cy, cx + 1] = total


TABLE_STEPS = 64
"""Radii per pixel in the disk-coverage table (weights are interpolated linearly in between)."""


def coverage_table(r_max: float, steps: int = TABLE_STEPS) -> np.ndarray:
    """Normalised pixel weights of a disk: ``table[i, |dy|, |dx|]`` for radius ``i / steps``.

    The weight of a pixel is the area of the pixel square (side 1, centred on the offset)
    inside the disk, divided by the disk's area: the thin-lens blur of a point seen through
    pixels that integrate over their area. Each radius's weights sum to 1 over the plane; a
    radius below 0.5 keeps everything in the centre pixel.
    """
    n_r = int(math.ceil(r_max * steps)) + 2
    reach = int(math.ceil(n_r / steps + 0.5)) + 1
    radii = np.arange(n_r) / steps
    # area of the pixel [d - 0.5, d + 0.5]^2 inside the disk, by columns: a fine midpoint rule in x,
    # exact in y (the height of the disk over x is sqrt(r^2 - x^2))
    n_x = 128
    xs = (np.arange(n_x) + 0.5) / n_x - 0.5
    d = np.arange(reach, dtype=np.float64)
    x = np.abs(d[:, None] + xs[None, :])  # (dx, n_x): positions across each pixel column
    h = np.sqrt(np.maximum(radii[:, None, None] ** 2 - x[None] ** 2, 0.0))  # (r, dx, n_x) half-heights
    lo = (d - 0.5)[None, :, None, None]
    hi = (d + 0.5)[None, :, None, None]
    inside = np.clip(np.minimum(hi, h[:, None]) - np.maximum(lo, -h[:, None]), 0.0, None)  # (r, dy, dx, n_x)
    area = inside.mean(axis=3)
    table = 0.5 * (area + area.transpose(0, 2, 1))
    table[radii <= 0.5] = 0.0
    table[radii <= 0.5, 0, 0] = 1.0
    weight = np.where(d[None, :] == 0, 1.0, 2.0)
    totals = np.einsum("iyx,y,x->i", table, weight[0], weight[0])
    return table / totals[:, None, None]


@kernel(inline="always")
def _disk_weight(d2, r):
    """Anti-aliased disk clamp(r + 0.5 - distance, 0, 1): the fallback beyond the table."""
    lo = r - 0.5
    if lo >= 0.0 and d2 <= lo * lo:
        return 1.0
    hi = r + 0.5
    if d2 >= hi * hi:
        return 0.0
    w = hi - math.sqrt(d2)
    if w > 1.0:
        return 1.0
    return w if w > 0.0 else 0.0


@kernel(inline="always")
def _disk_total(r):
    reach = np.int64(r + 0.5)
    total = 0.0
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            total += _disk_weight(np.float64(dx * dx + dy * dy), r)
    return total


@kernel(inline="always")
def _level_radius(r, level):
    """The disk radius in cells that, after the cell's box filter and the bilinear upsampling
    (together a variance of level^2 / 4 px^2 per axis), blurs like a disk of radius r px (r^2 / 4)."""
    if level == 1.0:
        return r
    r2 = r * r - level * level
    return math.sqrt(r2) / level if r2 > 0.0 else 0.0


def _table_spans(table: np.ndarray) -> np.ndarray:
    """``spans[ti, dy]``: the largest ``|dx|`` where row dy of table entry ti or ti + 1 has weight
    (-1 for a row with none); ``spans[ti, 0]`` is how far the disk reaches."""
    nonzero = table != 0.0
    pair = nonzero[:-1] | nonzero[1:]
    last = pair.shape[2] - 1 - np.argmax(pair[:, :, ::-1], axis=2)
    return np.where(pair.any(axis=2), last, -1).astype(np.int64)


@functools.lru_cache(maxsize=8)
def _tables(level_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The coverage table of a level radius and its spans, built once (10 ms a call otherwise)."""
    table = coverage_table(level_radius)
    spans = _table_spans(table)
    table.flags.writeable = False
    spans.flags.writeable = False
    return table, spans


@kernel(inline="always")
def _splat(buf, nch, vals, cy, cx, r, y0, y1, width, table, spans):
    """Add vals[c] * disk weight around (cy, cx) to buf[c] in rows [y0, y1) (``width`` cells a row).
    Within the table, row dy of the disk is visited only where it has weight (``spans``)."""
    t = r * np.float64(TABLE_STEPS)
    if t < table.shape[0] - 1:
        ti = np.int64(t)
        tf = t - ti
        reach = spans[ti, 0]
        # the 3 to 7 values in locals: a loop over vals would reload them for every pixel
        v0 = vals[0]
        v1 = vals[1]
        v2 = vals[2]
        v3 = vals[3] if nch > 3 else 0.0
        v4 = vals[4] if nch > 4 else 0.0
        v5 = vals[5] if nch > 5 else 0.0
        v6 = vals[6] if nch > 6 else 0.0
        # (indices made unsigned where they cannot be negative: numba then skips its wrap-around
        # arithmetic for negative indices, a few instructions an access in the hottest loop)
        for yy in range(max(cy - reach, y0), min(cy + reach + 1, y1)):
            dy = np.uint64(abs(yy - cy))
            span = spans[ti, dy]
            w0s = table[ti, dy]
            w1s = table[ti + 1, dy]
            for xx in range(max(cx - span, 0), min(cx + span + 1, width)):
                dx = np.uint64(abs(xx - cx))
                w0 = w0s[dx]
                w = w0 + tf * (w1s[dx] - w0)
                if w > 0.0:
                    i = np.uint64(yy * width + xx)
                    buf[0, i] += np.float32(v0 * w)
                    buf[1, i] += np.float32(v1 * w)
                    buf[2, i] += np.float32(v2 * w)
                    if nch > 3:
                        buf[3, i] += np.float32(v3 * w)
                    if nch > 4:
                        buf[4, i] += np.float32(v4 * w)
                    if nch > 5:
                        buf[5, i] += np.float32(v5 * w)
                    if nch > 6:
                        buf[6, i] += np.float32(v6 * w)
        return
    reach = np.int64(r + 0.5)
    inv = 1.0 / _disk_total(r)
    for yy in range(max(cy - reach, y0), min(cy + reach + 1, y1)):
        dy = abs(yy - cy)
        for xx in range(max(cx - reach, 0), min(cx + reach + 1, width)):
            dx = abs(xx - cx)
            w = _disk_weight(np.float64(dx * dx + dy * dy), r) * inv
            if w > 0.0:
                i = yy * width + xx
                for c in range(nch):
                    buf[c, i] += np.float32(vals[c] * w)


@kernel(inline="always")
def _splat_band(ty, n_col, lev_w, lev_h, level, cells, cell_px, tile, content, pad, layer, table, spans):
    """Scatter into the layer rows of band ty (``tile`` rows) every cell of ``content`` tiles
    whose disk reaches them (from the band and the bands either side)."""
    nty, ntx = content.shape
    y0 = ty * tile
    y1 = min(y0 + tile, lev_h)
    vals = np.empty(n_col + 3, np.float64)
    for sty in range(max(ty - 1, 0), min(ty + 2, nty)):
        cy_lo = max(sty * tile, y0 - pad)
        cy_hi = min(sty * tile + tile, y1 + pad, lev_h)
        for stx in range(ntx):
            if not content[sty, stx]:
                continue
            for cy in range(cy_lo, cy_hi):
                for cx in range(stx * tile, min(stx * tile + tile, lev_w)):
                    i = np.uint64(cy * lev_w + cx)
                    groups = cells[n_col + 2, i]
                    if groups > 0.0:
                        npx = cell_px[i]
                        n = np.int64(npx)
                        if n == npx and n > 0 and n & (n - 1) == 0:
                            # a power of two (as cell sizes usually are): its reciprocal is exact, so the
                            # products are the quotients, bit for bit, without a division each
                            inv = np.float32(1.0) / npx
                            for c in range(n_col + 1):
                                vals[c] = cells[c, i] * inv
                            vals[n_col + 1] = groups * inv
                        else:
                            for c in range(n_col + 1):
                                vals[c] = cells[c, i] / npx
                            vals[n_col + 1] = groups / npx
                        r = _level_radius(cells[n_col + 1, i] / groups, level)
                        vals[n_col + 2] = vals[n_col + 1] * r
                        _splat(layer, n_col + 3, vals, cy, cx, r, y0, y1, lev_w, table, spans)


@kernel(inline="always")
def _gain(n_col, lev_w, lev_h, cy, cx, pre, filled, layer, table, spans):
    """The factor that normalises layer cell (cy, cx) by the disk weight its neighbourhood would
    have given had every pixel that is not known to be empty been rendered (normalised convolution).

    ``W`` is the group weight that reached the cell, ``r`` the weighted radius of what reached
    it, ``G`` the disk-weighted (radius ``r``) share of the neighbourhood that has a group or
    is unknown (the outside of the frame counts as unknown). The layer is divided by
    ``D = W + 1 - G``: 1 for content of one radius among known empty pixels (energy is kept),
    ``W`` where the neighbourhood is all surface or unknown (so a continuous surface stays
    opaque across changing blur, and the background behind a sharp foreground keeps its level).
    Alpha is not raised past 1. 1.0 for a cell nothing reached."""
    i = np.uint64(cy * lev_w + cx)
    weight = np.float64(layer[n_col + 1, i])
    if not weight > 0.0:
        return 1.0
    r = layer[n_col + 2, i] / weight
    t = min(r * np.float64(TABLE_STEPS), table.shape[0] - 1.000001)
    ti = np.int64(t)
    tf = t - ti
    reach = spans[ti, 0]
    ya = cy - reach
    yb = cy + reach + 1
    xa = cx - reach
    xb = cx + reach + 1
    ga = max(xa, 0)
    gb = min(xb, lev_w)
    empty = 0
    for yy in range(max(ya, 0), min(yb, lev_h)):
        empty += pre[yy, gb] - pre[yy, ga]
    share = 1.0
    if empty > 0:
        share = 0.0
        for yy in range(ya, yb):  # (terms of zero weight, outside the row's span, would add 0)
            dy = np.uint64(abs(yy - cy))  # (unsigned: no wrap-around arithmetic, as in _splat)
            span = spans[ti, dy]
            w0s = table[ti, dy]
            w1s = table[ti + 1, dy]
            for xx in range(cx - span, cx + span + 1):
                f = 1.0
                if 0 <= yy < lev_h and 0 <= xx < lev_w:
                    f = min(np.float64(filled[np.uint64(yy * lev_w + xx)]), 1.0)
                if f > 0.0:
                    dx = np.uint64(abs(xx - cx))
                    w0 = w0s[dx]
                    share += f * (w0 + tf * (w1s[dx] - w0))
    d = weight if share == 1.0 else weight + (1.0 - share)
    gain = 1.0 / d if d > _MIN_KNOWN else 1.0 / _MIN_KNOWN
    if gain > 1.0:
        a = np.float64(layer[n_col, i])
        if gain * a > 1.0:
            gain = max(1.0 / a, 1.0)
    return gain


@kernel(inline="always")
def _fill_band(ty, clear_mask, n_col, lev_w, lev_h, level, cells, cell_px, tile, content, pad, layer, table, spans):
    """Clear band ty's layer rows in the tiles ``clear_mask`` marks, then scatter into them
    (:func:`_splat_band`); returns the band's rows [y0, y1)."""
    y0 = ty * tile
    y1 = min(y0 + tile, lev_h)
    for cy in range(y0, y1):
        _clear_row(layer, cy, lev_w, tile, clear_mask[ty])
    _splat_band(ty, n_col, lev_w, lev_h, level, cells, cell_px, tile, content, pad, layer, table, spans)
    return y0, y1


@kernel(parallel=True)
def _coarse_layer_kernel(n_col, lev_w, lev_h, level, cells, cell_px, tile, content, rmask, umask, pad, layer, table,
                         spans, pre, filled):
    """A coarse layer (level > 1), band by band: clear the band's layer in ``umask`` tiles (the
    upsampling reads no further), scatter the cells of ``content`` tiles into it (layer rows:
    colours, alpha, then the disk weight itself, how much group presence reached the cell, and
    the weight times the radius) and normalise its cells in ``rmask`` tiles (:func:`_gain`)."""
    nty, ntx = rmask.shape
    for ty in prange(nty):
        y0, y1 = _fill_band(ty, umask, n_col, lev_w, lev_h, level, cells, cell_px, tile, content, pad, layer, table,
                            spans)
        for cy in range(y0, y1):
            for tx in range(ntx):
                if not rmask[ty, tx]:
                    continue
                for cx in range(tx * tile, min(tx * tile + tile, lev_w)):
                    i = np.uint64(cy * lev_w + cx)
                    gain = _gain(n_col, lev_w, lev_h, cy, cx, pre, filled, layer, table, spans)
                    if gain != 1.0:
                        for c in range(n_col + 1):
                            layer[c, i] = np.float32(layer[c, i] * gain)


@kernel(parallel=True)
def _full_layer_kernel(n_col, lev_w, lev_h, cells, cell_px, tile, content, rmask, pad, layer, table, spans, pre, filled,
                       out_col, out_a):
    """A full-resolution layer (level 1), band by band while the band is in cache: clear the
    band's layer in ``rmask`` tiles (nothing is read elsewhere), scatter the cells into it
    (:func:`_splat_band`), then normalise each cell (:func:`_gain`) and composite it under its
    output pixel, float32 over in flatten's order (so unspread groups give flatten's result
    exactly). A pixel already opaque needs neither: the layer's cell i is output pixel i."""
    nty, ntx = rmask.shape
    for ty in prange(nty):
        y0, y1 = _fill_band(ty, rmask, n_col, lev_w, lev_h, 1.0, cells, cell_px, tile, content, pad, layer, table,
                            spans)
        for cy in range(y0, y1):
            for tx in range(ntx):
                if not rmask[ty, tx]:
                    continue
                for cx in range(tx * tile, min(tx * tile + tile, lev_w)):
                    i = np.uint64(cy * lev_w + cx)
                    acc = out_a[i]
                    if not acc < np.float32(1.0):
                        continue
                    gain = _gain(n_col, lev_w, lev_h, cy, cx, pre, filled, layer, table, spans)
                    if gain != 1.0:
                        for c in range(n_col + 1):
                            layer[c, i] = np.float32(layer[c, i] * gain)
                    nonzero = False
                    for c in range(n_col + 1):
                        if layer[c, i] != np.float32(0.0):
                            nonzero = True
                    if nonzero:
                        w = np.float32(1.0) - acc
                        for c in range(n_col):
                            out_col[c, i] += w * layer[c, i]
                        out_a[i] = acc + w * layer[n_col, i]


def _bilinear_axis(n_out: int, level: int, n_lev: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index, the two level cells a bilinear upsampling reads (clamped to the
    grid) and the weight of the second: ``u = (o + 0.5) / level - 0.5``, cells ``floor(u)`` and
    ``floor(u) + 1``, weight ``u - floor(u)``."""
    u = (np.arange(n_out) + 0.5) / level - 0.5
    a = np.floor(u)
    f = u - a
    a = a.astype(np.int64)
    return np.clip(a, 0, n_lev - 1), np.clip(a + 1, 0, n_lev - 1), f


@kernel(parallel=True)
def _composite_kernel(n_col, lev_w, tile, rmask, layer, xa_of, xb_of, fx_of, ya_of, yb_of, fy_of, block, out_col,
                      out_a):
    """Composite a coarse layer under what is already in the output (front to back over),
    upsampled bilinearly (cells and weights from :func:`_bilinear_axis`). Nothing reached the
    layer outside its ``rmask`` tiles (it is clear around them), so only the output pixels that
    read a cell in one are visited: those of row yo whose first cell lies in tile column tx
    (``block[tx]:block[tx + 1]``) when tile column tx or tx + 1 is in ``rmask`` in either of
    the row's cell rows. Float32 over, in flatten's order."""
    ntx = rmask.shape[1]
    out_h = ya_of.shape[0]
    out_w = xa_of.shape[0]
    for yo in prange(out_h):
        ya = ya_of[yo]
        yb = yb_of[yo]
        fy = fy_of[yo]
        tya = ya // tile
        tyb = yb // tile
        vals = np.empty(n_col + 1, np.float32)
        for tx in range(ntx):
            near = rmask[tya, tx] or rmask[tyb, tx]
            if tx + 1 < ntx and (rmask[tya, tx + 1] or rmask[tyb, tx + 1]):
                near = True
            if not near:
                continue
            for xo in range(block[tx], block[tx + 1]):
                p = np.uint64(yo * out_w + xo)
                acc = out_a[p]
                if acc >= np.float32(1.0):
                    continue
                xa = xa_of[xo]
                xb = xb_of[xo]
                fx = fx_of[xo]
                aa = np.uint64(ya * lev_w + xa)  # (unsigned indices: no wrap-around arithmetic)
                ab = np.uint64(ya * lev_w + xb)
                ba = np.uint64(yb * lev_w + xa)
                bb = np.uint64(yb * lev_w + xb)
                for c in range(n_col + 1):
                    top = layer[c, aa] * (1.0 - fx) + layer[c, ab] * fx
                    bottom = layer[c, ba] * (1.0 - fx) + layer[c, bb] * fx
                    vals[c] = np.float32(top * (1.0 - fy) + bottom * fy)
                nonzero = False
                for c in range(n_col + 1):
                    if vals[c] != np.float32(0.0):
                        nonzero = True
                if not nonzero:
                    continue
                w = np.float32(1.0) - acc
                for c in range(n_col):
                    out_col[c, p] += w * vals[c]
                out_a[p] = acc + w * vals[n_col]


@kernel(parallel=True)
def _through_kernel(width, out_h, out_w, n_slices, ys0, ys1, use_x, use_y, xo_of, hidden_from, through):
    """``through[yo + 1, xo + 1] = 1`` where a source pixel read for output pixel (yo, xo) never
    gets opaque (it lets something through)."""
    for yo in prange(out_h):
        for y in range(ys0[yo], ys1[yo]):
            if not use_y[y]:
                continue
            for x in range(width):
                if use_x[x] and hidden_from[y * width + x] > n_slices:
                    through[yo + 1, xo_of[x] + 1] = 1


@kernel(parallel=True)
def _close_kernel(n_col, out_w, out_h, reach, see_through, out_col, out_a):
    """Make opaque the pixels that no ray can leave: where no pixel within ``reach`` (the
    largest blur) lets anything through (none stays below HIDDEN_ALPHA), every ray through
    the lens ends on a surface, so a remaining transparency is a layering residue: divide it
    out (the colour becomes the average of what was composited)."""
    for yo in prange(out_h):
        ya = max(yo - reach, 0)
        yb = min(yo + reach + 1, out_h)
        for xo in range(out_w):
            p = yo * out_w + xo
            a = out_a[p]
            if not (a > np.float32(0.0) and a < np.float32(1.0)):
                continue
            xa = max(xo - reach, 0)
            xb = min(xo + reach + 1, out_w)
            if see_through[yb, xb] - see_through[ya, xb] - see_through[yb, xa] + see_through[ya, xa] != 0:
                continue
            for c in range(n_col):
                out_col[c, p] = np.float32(out_col[c, p] / a)
            out_a[p] = np.float32(1.0)


# --------------------------------------------------------------------------- defocus


def output_shape(width: int, height: int, proxy: float = 1.0) -> tuple[int, int]:
    """``(height, width)`` of a defocus result at ``proxy`` scale of a ``width`` x ``height`` image."""
    if not (0.0 < proxy <= 1.0):
        raise DefocusError(f"proxy must be in (0, 1], got {proxy!r}")
    if width <= 0 or height <= 0:
        return (max(height, 0), max(width, 0))
    return (int(math.floor((height - 0.5) * proxy)) + 1, int(math.floor((width - 0.5) * proxy)) + 1)


def _axis_map(n: int, proxy: float, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source index -> output index, and each output index's source range [start, stop)."""
    to_out = np.minimum(np.floor((np.arange(n) + 0.5) * proxy).astype(np.int64), n_out - 1)
    idx = np.arange(n_out)
    return to_out, np.searchsorted(to_out, idx, "left"), np.searchsorted(to_out, idx, "right")


def _sampled(start: np.ndarray, stop: np.ndarray, n: int, full: bool) -> np.ndarray:
    """Which source indices a proxy reads: all, or half of each output pixel's run (rounded up,
    evenly spaced): a quarter of the samples at any proxy of 0.5 or less."""
    use = np.zeros(n, np.uint8)
    if full:
        use[:] = 1
        return use
    c = stop - start
    m = (c + 1) // 2
    run = np.repeat(np.arange(c.size), m)  # the output index of each index read, m of them per run
    j = np.arange(run.size) - np.repeat(np.cumsum(m) - m, m)
    use[start[run] + (j * 2 + 1) * c[run] // (2 * m[run])] = 1
    return use


def _level_axis(start: np.ndarray, stop: np.ndarray, n_out: int, level: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Source ranges of the cells of a level (``level`` output pixels per cell)."""
    n_lev = (n_out + level - 1) // level
    first = np.arange(n_lev) * level
    last = np.minimum(first + level, n_out) - 1
    return start[first], stop[last], n_lev


def _slicing(z: np.ndarray, c0: float, c1: float, c2: float, inverse: bool, scale: float, max_r: float,
             max_slices: int) -> tuple[float, int, int, float]:
    """(inverse step, first slice index, number of slices, largest |radius|) for the radii present."""
    lo_z, hi_z = _depth_range_kernel(z)
    candidates = [float(lo_z), float(hi_z)] if lo_z <= hi_z else []
    radii = [_radius_py(v, c0, c1, c2, inverse, scale, max_r) for v in candidates] or [0.0]
    sig = [math.copysign(math.log1p(abs(r) / _RHO), r) for r in radii]
    lo, hi = min(sig), max(sig)
    if max_slices > 1:
        step = max(SLICE_GROWTH, (hi - lo) / (max_slices - 1))
    else:
        step = 2.0 * (hi - lo) + 1.0
    k_lo = math.floor(lo / step + 0.5)
    k_hi = math.floor(hi / step + 0.5)
    return 1.0 / step, k_lo, k_hi - k_lo + 1, max(abs(r) for r in radii)


def _depth_bounds(c0: float, c1: float, c2: float, inverse: bool, scale: float, step: float, k_lo: int,
                  n_slices: int) -> np.ndarray:
    """``bounds[j]``: the smallest depth of slice j + 1 (depth grows with the signed radius)."""
    bounds = np.empty(max(n_slices - 1, 0), np.float64)
    for j in range(1, n_slices):
        sig = (j + k_lo - 0.5) * step
        r = math.copysign(_RHO * math.expm1(abs(sig)), sig) / scale
        if inverse:  # r = c0 + c1 / z with c1 < 0, r < c0
            bounds[j - 1] = c1 / (r - c0) if r < c0 else np.inf
        else:
            bounds[j - 1] = (r - c0) / c2 if c2 > 0.0 else np.inf
    return bounds


def _dilate(mask: np.ndarray) -> np.ndarray:
    """The tiles of ``mask`` and their eight neighbours."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    grown = out.copy()
    out[:, 1:] |= grown[:, :-1]
    out[:, :-1] |= grown[:, 1:]
    return out


def _sigma_inverse(sig: float) -> float:
    return _RHO * math.expm1(abs(sig))


def _colour_names(image: DeepImage, channels: list[str] | None) -> list[str]:
    if channels is None:
        names = [c for c in ("R", "G", "B") if c in image.channels]
    else:
        names = list(channels)
    if len(names) > 4:
        raise DefocusError(f"defocus takes at most 4 colour channels, got {len(names)}")
    for n in names:
        arr = image.channels.get(n)
        if arr is None:
            raise DefocusError(f"no channel {n!r} in this deep image")
        if arr.dtype == np.uint32 or n in ("A", "Z", "ZBack"):
            raise DefocusError(f"channel {n!r} cannot be blurred as a colour")
    return names


def defocus(
    image: DeepImage,
    camera: ThinLens | SimpleBlur,
    *,
    max_radius: float = DEFAULT_MAX_RADIUS,
    proxy: float = 1.0,
    channels: list[str] | None = None,
    frame_width: float | None = None,
    cancel: Callable[[], bool] | None = None,
    level_radius: float = LEVEL_RADIUS,
    max_slices: int = MAX_SLICES,
    full_sampling: bool = False,
) -> dict[str, np.ndarray]:
    """The image as a thin-lens ``camera`` sees it: flat ``(height, width)`` float32 arrays.

    Returns the colour ``channels`` (default the ``R``, ``G``, ``B`` present; premultiplied,
    composited with the ``A`` channel, samples without alpha are opaque) and ``A``, at
    ``proxy`` scale (see :func:`output_shape`). ``max_radius`` and the radii are in
    full-resolution pixels; ``frame_width`` is the width in pixels the sensor spans
    (default the display window's). Samples should be in depth order, as the reader leaves
    them (in an unsorted pixel, the samples that share a slice are composited in stored order).
    A proxy reads a quarter of the source pixels (half of each output pixel's run in each
    direction: one pixel of two at 0.5, two of four at 0.25) unless ``full_sampling``.
    See the module docstring for the algorithm; ``level_radius`` and ``max_slices`` trade
    quality for speed.
    """
    if not isinstance(image, DeepImage):
        raise DefocusError("defocus needs a deep image")
    if "Z" not in image.channels:
        raise DefocusError("the deep image has no Z channel: nothing to focus on")
    if not (max_radius >= 0 and math.isfinite(max_radius)):
        raise DefocusError(f"max_radius must be a finite number >= 0, got {max_radius!r}")
    if not level_radius >= 1.0:
        raise DefocusError(f"level_radius must be at least 1, got {level_radius!r}")
    if not 1 <= max_slices <= 255:
        raise DefocusError(f"max_slices must be between 1 and 255, got {max_slices!r}")
    names = _colour_names(image, channels)
    ho, wo = output_shape(image.width, image.height, proxy)
    frame = float(frame_width if frame_width is not None else image.display_window.width)
    c0, c1, c2, inverse = _radius_params(camera, frame)
    scale = float(proxy)
    max_r = float(max_radius) * scale

    out_col = np.zeros((max(len(names), 1), ho * wo), np.float32)
    out_a = np.zeros(ho * wo, np.float32)
    result = {n: out_col[i].reshape(ho, wo) for i, n in enumerate(names)}
    result["A"] = out_a.reshape(ho, wo)
    if ho * wo == 0 or image.total_samples == 0:
        return result

    h, w = image.height, image.width
    z = np.ascontiguousarray(image.channels["Z"], dtype=np.float32)
    has_alpha = "A" in image.channels
    alpha = np.ascontiguousarray(image.channels["A"], dtype=np.float32) if has_alpha else z
    n_col = len(names)
    arrays = [np.ascontiguousarray(image.channels[n], dtype=np.float32) for n in names]
    cols = tuple((arrays + [alpha] * 4)[:4])
    offsets = image.offsets

    inv_step, k_lo, n_slices, r_most = _slicing(z, c0, c1, c2, inverse, scale, max_r, max_slices)
    step = 1.0 / inv_step
    z_bounds = _depth_bounds(c0, c1, c2, inverse, scale, step, k_lo, n_slices)

    def check() -> None:
        if cancel is not None and cancel():
            raise Cancelled()

    xo_of, xs0, xs1 = _axis_map(w, scale, wo)
    yo_of, ys0, ys1 = _axis_map(h, scale, ho)
    slice_level = np.ones(n_slices, np.int64)
    slice_tile = np.full(n_slices, _TILE, np.int64)
    r_bounds = np.zeros(n_slices)
    r_nominals = np.zeros(n_slices)
    for k in range(n_slices):
        k_abs = k + k_lo
        r_bounds[k] = min(_sigma_inverse((abs(k_abs) + 0.5) * step), r_most)
        r_nominals[k] = min(_sigma_inverse(k_abs * step), r_most)
        level = 1
        while r_bounds[k] / level > level_radius and (wo + level - 1) // level > 1:
            level *= 2
        slice_level[k] = level
        slice_tile[k] = max(_TILE, int(max(r_bounds[k], r_nominals[k]) / level + 1.0) + 1)
    n_tiles_x = (wo + _TILE - 1) // _TILE

    check()
    use_x = _sampled(xs0, xs1, w, scale >= 1.0 or full_sampling)
    use_y = _sampled(ys0, ys1, h, scale >= 1.0 or full_sampling)
    counts = np.empty((h, n_slices), np.int64)
    row_tiles = np.zeros((n_slices, h, n_tiles_x), np.uint8)
    hidden_from = np.empty(h * w, np.int32)
    hidden_count = np.empty((n_slices + 2, h), np.int64)
    tile_x = np.ascontiguousarray((xo_of[None, :] // slice_level[:, None]) // slice_tile[:, None])
    _count_kernel(offsets, z, alpha, has_alpha, w, h, use_x, use_y, z_bounds, n_slices, tile_x, counts, row_tiles,
                  hidden_from, hidden_count)
    hidden_start = np.zeros((n_slices + 1) * h + 1, np.int64)  # by hidden-from slice, then row
    np.cumsum(hidden_count[: n_slices + 1].reshape(-1), out=hidden_start[1:])
    hidden_x = np.empty(int(hidden_start[-1]), np.int32)
    _hidden_list_kernel(w, h, use_y, n_slices, hidden_from, hidden_start, hidden_x)
    # the groups packed by row, then slice: arrays as large as the groups, not the samples (fresh
    # memory costs its page faults, and a proxy groups a quarter of the samples)
    row_start = np.zeros((h, n_slices + 1), np.int64)
    flat = np.cumsum(counts.reshape(-1))
    row_start[:, 1:] = flat.reshape(h, n_slices)
    row_start[1:, 0] = row_start[:-1, n_slices]
    n_groups = int(flat[-1]) if flat.size else 0
    gx = np.empty(n_groups, np.int32)
    gcol = np.empty((max(n_col, 1), n_groups), np.float32)
    ga = np.empty(n_groups, np.float32)
    gr = np.empty(n_groups, np.float32)
    g_hidden = np.empty(n_groups, np.bool_)
    _group_kernel(offsets, z, alpha, has_alpha, cols, n_col, w, h, use_x, use_y, z_bounds, n_slices, c0, c1, c2,
                  inverse, scale, max_r, hidden_from, gx, gcol, ga, gr, g_hidden, row_start)
    slice_groups = counts.sum(axis=0)

    nx = np.bincount(xo_of, weights=use_x, minlength=wo).astype(np.float32)  # source pixels read per output pixel
    ny = np.bincount(yo_of, weights=use_y, minlength=ho).astype(np.float32)
    plane = ho * wo
    cells = np.empty((n_col + 3, plane), np.float32)  # colour sums, A, radius, groups
    layer = np.empty((n_col + 3, plane), np.float32)  # colours, A, weight, weight * radius
    coarse_layer = np.empty((n_col + 3) * ((ho + 1) // 2) * ((wo + 1) // 2), np.float32)  # the same, levels > 1
    filled = np.zeros(plane, np.float32)
    pre = np.zeros((ho, wo + 1), np.int32)
    table, spans = _tables(float(level_radius))
    level_cache: dict[int, list] = {}

    for k in range(n_slices):
        check()
        if slice_groups[k] == 0:
            continue
        level = int(slice_level[k])
        tile = int(slice_tile[k])
        if level not in level_cache:
            ly0, ly1, lev_h = _level_axis(ys0, ys1, ho, level)
            lev_w = _level_axis(xs0, xs1, wo, level)[2]
            nyl = np.add.reduceat(ny, np.arange(0, ho, level))
            nxl = np.add.reduceat(nx, np.arange(0, wo, level))
            cell_px = np.outer(nyl, nxl).astype(np.float32).reshape(-1)
            # hidden[cell]: its pixels hidden from slice `hidden_upto` or before (kept up to date
            # by the level's slices, in order)
            level_cache[level] = [ly0, ly1, lev_h, lev_w, cell_px, xo_of // level, _bilinear_axis(wo, level, lev_w),
                                  _bilinear_axis(ho, level, lev_h), np.zeros(lev_h * lev_w, np.int32), 0]
        ly0, ly1, lev_h, lev_w, cell_px, cell_x, x_bilinear, y_bilinear, hidden, hidden_upto = level_cache[level]
        level_cache[level][-1] = k
        pad = int(max(r_bounds[k], r_nominals[k]) / level + 1.0) + 1
        tile_rows = (yo_of // level) // tile
        starts = np.flatnonzero(np.diff(tile_rows, prepend=-1))
        n_tiles = ((lev_h + tile - 1) // tile, (lev_w + tile - 1) // tile)
        content = np.ascontiguousarray(np.maximum.reduceat(row_tiles[k], starts, axis=0)[: n_tiles[0], : n_tiles[1]])
        rmask = _dilate(content)  # where the layer can be nonzero
        umask = _dilate(rmask)  # cells whose unknown pixels matter to rmask

        _cells_kernel(k, h, row_start, gx, gcol, ga, gr, g_hidden, n_col, cell_x, lev_w, lev_h, ly0, ly1,
                      hidden_start, hidden_x, hidden_upto + 1, hidden, tile, content, umask, cell_px, cells, filled,
                      pre)
        if level == 1:
            _full_layer_kernel(n_col, lev_w, lev_h, cells, cell_px, tile, content, rmask, pad, layer, table, spans,
                               pre, filled, out_col, out_a)
        else:
            coarse = coarse_layer[: (n_col + 3) * lev_w * lev_h].reshape(n_col + 3, lev_w * lev_h)
            _coarse_layer_kernel(n_col, lev_w, lev_h, float(level), cells, cell_px, tile, content, rmask, umask, pad,
                                 coarse, table, spans, pre, filled)
            block = np.searchsorted(x_bilinear[0], np.arange(content.shape[1] + 1) * tile)
            _composite_kernel(n_col, lev_w, tile, rmask, coarse, *x_bilinear, *y_bilinear, block, out_col, out_a)
    if r_most > 0.5:
        # a pixel with nothing to see through within reach of any blur cannot be partly transparent
        see_through = np.zeros((ho + 1, wo + 1), np.int32)
        _through_kernel(w, ho, wo, n_slices, ys0, ys1, use_x, use_y, xo_of, hidden_from, see_through)
        see_through = see_through.cumsum(axis=0, dtype=np.int32).cumsum(axis=1, dtype=np.int32)
        _close_kernel(n_col, wo, ho, int(math.ceil(r_most)) + 1, see_through, out_col, out_a)
    return result


# --------------------------------------------------------------------------- focus tool


def focus_at(image: DeepImage, x: int, y: int, min_alpha: float = 0.1) -> float | None:
    """Depth (``Z``) of the frontmost visible surface at data-window pixel (x, y), for the focus tool.

    Walks the pixel front to back: the first sample whose visible contribution
    ``(1 - acc) * |a|`` reaches ``min_alpha`` (thin fog and dust in front are looked
    through); else the sample that contributes most. None for an empty or fully
    transparent pixel, or an image without ``Z``.
    """
    if "Z" not in image.channels:
        return None
    if not (0 <= x < image.width and 0 <= y < image.height):
        raise DefocusError(f"pixel ({x}, {y}) is outside the {image.width}x{image.height} data window")
    samples = image.pixel_samples(x, y)
    z = samples["Z"].astype(np.float64)
    if z.size == 0:
        return None
    order = np.argsort(z, kind="stable")  # NaN last, as the reader sorts
    z = z[order]
    a = np.abs(samples["A"].astype(np.float64))[order] if "A" in samples else np.ones_like(z)
    a = np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0)
    transmit = np.concatenate([[1.0], np.cumprod(1.0 - a)[:-1]])
    visible = transmit * a
    ok = np.isfinite(z)
    hits = np.flatnonzero((visible >= min_alpha) & ok)
    if hits.size:
        return float(z[hits[0]])
    visible = np.where(ok, visible, 0.0)
    best = int(np.argmax(visible))
    return float(z[best]) if visible[best] > 0.0 else None
