"""The built-in demo scene: a small deterministic render with deep samples, ids and ground truth.

The scene is 2.5D: screen-space shapes (ellipses and rectangles, optionally moving during the
shutter) with a depth each: a wall and a perspective floor, a hero (body and hair), a moving
crate (motion blur) in front of the body, a glass pane (alpha 0.4), a fog volume cut into
contiguous depth segments (``Z < ZBack``) and a cloud of sub-pixel dust particles (a few
hundred scattered, the rest in a tight swarm), every one its own object. The top-left corner is
left empty. Each pixel is rendered with ``n x n`` stratified, jittered sub-samples, each at its
own shutter time; the jitter comes from an integer hash of (pixel, sub-sample), so the render
is identical on every machine and with any number of threads.

Definitions (what the tests hold the render to):

* A sub-sample walks its hits front to back; a hit of opacity ``a`` behind transmission ``T``
  has the *visible weight* ``w = a * T`` (then ``T *= 1 - a``; an opaque hit ends the walk).
* The **coverage** of an object in a pixel (the ground truth) is the sum of the visible weights
  of its hits over all sub-samples, divided by the number of sub-samples. A material's coverage
  is the sum over its objects. The flat beauty is the same weighted sum of colours; its alpha
  is the sum of all coverages.
* **Deep samples**: the hits of one primitive in one pixel (one object surface, or one depth
  segment of the fog) are merged into one sample: ``Z`` is the weight-averaged depth (the
  fog's segment bounds are ``Z``/``ZBack``), its visible coverage ``v`` is the summed weight
  over the sub-sample count and its un-premultiplied colour the weight-averaged colour. The
  samples are sorted front to back and given the alpha ``v / T_front`` where ``T_front`` is
  one minus the coverage of the samples in front: so compositing the deep pixel with *over*
  gives back the beauty, and a deep mask of an object gives back its coverage (up to half
  float rounding of the stored alpha and colour).
* Cryptomatte ranks are the top 6 ids of each pixel by that same coverage (ties: smaller id
  first).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core._numba import kernel, prange
from core.errors import ExrError
from core.hashing import crypto_hash, deepid_hash, layer_key
from core.idmanifest import ChannelGroup, IdManifest
from core.model import Box, DeepImage, FlatImage, PixelType
from core.writer import atomic_write, write_deep, write_flat

DEMO_VERSION = 1
"""Bump when the scene or the files change: cached demos of another version are regenerated."""

DEFAULT_WIDTH = 320
DEFAULT_HEIGHT = 180
SAMPLES_PER_AXIS = 8
SEED = 0x5EED
ASPECT = 16.0 / 9.0
"""Scene coordinates: u in [0, ASPECT] left to right, v in [0, 1] top to bottom, at any image size."""

CRYPTO_RANKS = 6
CRYPTO_LAYERS = ("CryptoObject", "CryptoMaterial")
DUST_COUNT = 300
DUST_CLUSTER = 80
DEEP_FILE = "demo.deep.exr"
FLAT_FILE = "demo.exr"
TRUTH_FILE = "demo_truth.npz"

# primitive table columns ---------------------------------------------------------------
K_ELLIPSE, K_RECT = 0, 1
PAT_FLAT, PAT_SPHERE, PAT_PLANKS, PAT_CRATE, PAT_WALL = 0, 1, 2, 3, 4
(F_CX, F_CY, F_A, F_B, F_ANGLE, F_VX, F_VY, F_INV0, F_INVU, F_INVV, F_BULGE, F_ALPHA,
 F_R, F_G, F_B_, F_Z0, F_Z1) = range(17)
N_F = 17
I_KIND, I_OBJ, I_MAT, I_PAT, I_VOL = range(5)
N_I = 5

_M32 = 0xFFFFFFFF


# --------------------------------------------------------------------------- hashing (jitter)


@kernel
def _fmix32(h):
    """MurmurHash3's 32-bit finalizer on an int64 holding a uint32."""
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


@kernel
def _rand01(seed, a, b, c):
    """A float in [0, 1) from the integers (seed, a, b, c): the same on every machine."""
    h = _fmix32((seed + a * 0x9E3779B1) & 0xFFFFFFFF)
    h = _fmix32(h ^ ((b * 0x85EBCA77) & 0xFFFFFFFF))
    h = _fmix32(h ^ ((c * 0xC2B2AE3D) & 0xFFFFFFFF))
    return (h >> 8) * (1.0 / 16777216.0)


def _fmix32_np(h: np.ndarray) -> np.ndarray:
    h = h.astype(np.uint64) & _M32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(_M32)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(_M32)
    h ^= h >> np.uint64(16)
    return h


def _rand01_np(seed: int, a: np.ndarray, b: int, c: int) -> np.ndarray:
    """Vectorised :func:`_rand01` over ``a`` (used to place the dust)."""
    a = np.asarray(a, dtype=np.uint64)
    h = _fmix32_np((np.uint64(seed) + a * np.uint64(0x9E3779B1)) & np.uint64(_M32))
    h = _fmix32_np(h ^ np.uint64((b * 0x85EBCA77) & _M32))
    h = _fmix32_np(h ^ np.uint64((c * 0xC2B2AE3D) & _M32))
    return (h >> np.uint64(8)).astype(np.float64) / 16777216.0


# --------------------------------------------------------------------------- the scene


@dataclass(frozen=True)
class SceneTable:
    """The primitives of the demo: float parameters ``f[n, N_F]`` and int codes ``i[n, N_I]``."""

    f: np.ndarray
    i: np.ndarray
    objects: tuple[str, ...]
    materials: tuple[str, ...]
    object_material: tuple[int, ...]


def _inverse_depth_plane(z_top: float, v_top: float, z_bottom: float, v_bottom: float) -> tuple:
    """(c0, cu, cv) with 1/z = c0 + cv * v through two (v, z) points: a plane seen in perspective."""
    cv = (1.0 / z_bottom - 1.0 / z_top) / (v_bottom - v_top)
    return (1.0 / z_top - cv * v_top, 0.0, cv)


def build_scene() -> SceneTable:
    """The demo's primitives, objects and materials (fixed, independent of the image size)."""
    materials = ("mtl/plaster", "mtl/wood", "mtl/skin", "mtl/hair", "mtl/glass", "mtl/fog", "mtl/dust")
    mat = {m: k for k, m in enumerate(materials)}
    objects: list[str] = []
    object_material: list[int] = []
    rows_f: list[list[float]] = []
    rows_i: list[list[int]] = []

    def obj(name: str, material: str) -> int:
        objects.append(name)
        object_material.append(mat[material])
        return len(objects) - 1

    def prim(o: int, kind: int, centre, size, *, angle=0.0, velocity=(0.0, 0.0), depth=None, plane=None,
             bulge=0.0, alpha=1.0, rgb=(1.0, 1.0, 1.0), pattern=PAT_FLAT, volume=None) -> None:
        f = [0.0] * N_F
        f[F_CX], f[F_CY] = centre
        f[F_A], f[F_B] = size
        f[F_ANGLE] = angle
        f[F_VX], f[F_VY] = velocity
        if plane is None:
            plane = (1.0 / depth, 0.0, 0.0)
        f[F_INV0], f[F_INVU], f[F_INVV] = plane
        f[F_BULGE] = bulge
        f[F_ALPHA] = alpha
        f[F_R], f[F_G], f[F_B_] = rgb
        if volume is not None:
            f[F_Z0], f[F_Z1] = volume
        rows_f.append(f)
        rows_i.append([kind, o, object_material[o], pattern, int(volume is not None)])

    horizon = 0.55
    wall = obj("/set/wall", "mtl/plaster")
    prim(wall, K_RECT, (0.45 + 1.0, 0.26), (1.0, 0.36), depth=10.0, rgb=(0.62, 0.57, 0.5), pattern=PAT_WALL)
    floor = obj("/set/floor", "mtl/wood")
    prim(floor, K_RECT, (ASPECT / 2, horizon + 0.3), (ASPECT / 2 + 0.2, 0.3),
         plane=_inverse_depth_plane(9.99, horizon, 3.2, 1.0), rgb=(0.46, 0.3, 0.17), pattern=PAT_PLANKS)
    body = obj("/char/hero/body", "mtl/skin")
    prim(body, K_ELLIPSE, (1.15, 0.55), (0.11, 0.17), depth=5.6, bulge=0.25, rgb=(0.86, 0.56, 0.45),
         pattern=PAT_SPHERE)
    prim(body, K_ELLIPSE, (1.15, 0.31), (0.065, 0.075), depth=5.55, bulge=0.08, rgb=(0.9, 0.62, 0.5),
         pattern=PAT_SPHERE)
    hair = obj("/char/hero/hair", "mtl/hair")
    prim(hair, K_ELLIPSE, (1.152, 0.262), (0.074, 0.042), angle=0.12, depth=5.45, bulge=0.04,
         rgb=(0.2, 0.11, 0.05), pattern=PAT_SPHERE)
    crate = obj("/props/crate", "mtl/wood")
    prim(crate, K_RECT, (1.03, 0.69), (0.09, 0.09), angle=0.05, velocity=(0.06, 0.0), depth=4.8,
         rgb=(0.62, 0.45, 0.24), pattern=PAT_CRATE)
    glass = obj("/props/glass", "mtl/glass")
    prim(glass, K_RECT, (0.38, 0.5), (0.16, 0.2), depth=4.2, alpha=0.4, rgb=(0.6, 0.82, 0.88))
    fog = obj("/fx/fog", "mtl/fog")
    bounds = (7.0, 7.6, 8.2, 8.8, 9.4)
    for z0, z1 in zip(bounds[:-1], bounds[1:], strict=True):
        # F_ALPHA holds the extinction per unit depth at the centre of the fog
        prim(fog, K_ELLIPSE, (0.75, 0.33), (0.4, 0.18), depth=z0, alpha=0.38, rgb=(0.82, 0.86, 0.9),
             volume=(z0, z1))
    index = np.arange(DUST_COUNT)
    du = 0.15 + 1.55 * _rand01_np(SEED, index, 1, 0)
    dv = 0.05 + 0.8 * _rand01_np(SEED, index, 2, 0)
    # the last DUST_CLUSTER particles swarm in a disc ~2 pixels wide: more than 6 ids per pixel there
    angle = 2.0 * np.pi * _rand01_np(SEED, index, 6, 0)
    radius = 2.2 / 180.0 * np.sqrt(_rand01_np(SEED, index, 7, 0))
    swarm = index >= DUST_COUNT - DUST_CLUSTER
    du = np.where(swarm, 0.62 + radius * np.cos(angle), du)
    dv = np.where(swarm, 0.28 + radius * np.sin(angle), dv)
    dz = 3.0 + 3.8 * _rand01_np(SEED, index, 3, 0)
    dr = (0.15 + 0.3 * _rand01_np(SEED, index, 4, 0)) / 180.0  # 0.15..0.45 pixel at 180 lines
    db = 0.8 + 0.8 * _rand01_np(SEED, index, 5, 0)
    for k in range(DUST_COUNT):
        p = obj(f"/fx/dust/p{k + 1:04d}", "mtl/dust")
        prim(p, K_ELLIPSE, (du[k], dv[k]), (dr[k], dr[k]), depth=dz[k],
             rgb=(1.0 * db[k], 0.86 * db[k], 0.62 * db[k]))
    return SceneTable(
        f=np.array(rows_f, dtype=np.float64),
        i=np.array(rows_i, dtype=np.int64),
        objects=tuple(objects),
        materials=materials,
        object_material=tuple(object_material),
    )


# --------------------------------------------------------------------------- kernels


@kernel
def _hit(f, ic, k, u, v, t, aspect):
    """Does sub-sample (u, v) at time t hit primitive k? -> (hit, z, alpha, r, g, b)."""
    dx = u - f[k, F_CX] - f[k, F_VX] * t
    dy = v - f[k, F_CY] - f[k, F_VY] * t
    ca = math.cos(f[k, F_ANGLE])
    sa = math.sin(f[k, F_ANGLE])
    lx = dx * ca + dy * sa
    ly = -dx * sa + dy * ca
    a = f[k, F_A]
    b = f[k, F_B]
    r2 = 0.0
    if ic[k, I_KIND] == K_ELLIPSE:
        r2 = (lx / a) * (lx / a) + (ly / b) * (ly / b)
        if r2 >= 1.0:
            return False, 0.0, 0.0, 0.0, 0.0, 0.0
    else:
        if lx < -a or lx >= a or ly < -b or ly >= b:
            return False, 0.0, 0.0, 0.0, 0.0, 0.0
    if ic[k, I_VOL] != 0:
        z = f[k, F_Z0]
        alpha = 1.0 - math.exp(-f[k, F_ALPHA] * (1.0 - r2) * (f[k, F_Z1] - f[k, F_Z0]))
    else:
        z = 1.0 / (f[k, F_INV0] + f[k, F_INVU] * u + f[k, F_INVV] * v)
        if ic[k, I_KIND] == K_ELLIPSE:
            z -= f[k, F_BULGE] * math.sqrt(1.0 - r2)
        alpha = f[k, F_ALPHA]
    shade = 1.0
    pattern = ic[k, I_PAT]
    if pattern == PAT_SPHERE:
        shade = 0.45 + 0.55 * math.sqrt(1.0 - r2)
    elif pattern == PAT_PLANKS:
        plank = math.floor((u - 0.5 * aspect) * z * 1.2)
        shade = 0.78 if plank % 2 != 0 else 1.0
    elif pattern == PAT_CRATE:
        if abs(lx) > 0.78 * a or abs(ly) > 0.78 * b:
            shade = 0.6
    elif pattern == PAT_WALL:
        shade = 1.0 - 0.35 * v
        if math.floor(u * 6.0) % 2 != 0:
            shade *= 0.93
    return True, z, alpha, f[k, F_R] * shade, f[k, F_G] * shade, f[k, F_B_] * shade


@kernel(parallel=True)
def _render_kernel(width, height, n_axis, seed, aspect, f, ic, bx0, bx1, by0, by1,
                   out_n, out_z, out_zb, out_rgba, out_v, out_prim, beauty):
    """Render every pixel: merged, sorted, alpha-normalised deep samples plus the beauty."""
    n_prims = f.shape[0]
    n_sub = n_axis * n_axis
    for y in prange(height):
        cand = np.empty(n_prims, np.int64)
        acc = np.zeros((n_prims, 5))  # per candidate: v, v*z, v*r, v*g, v*b (sums of weights)
        hz = np.empty(n_prims)
        ha = np.empty(n_prims)
        hc = np.empty((n_prims, 3))
        hj = np.empty(n_prims, np.int64)
        sz = np.empty(n_prims)
        sj = np.empty(n_prims, np.int64)
        for x in range(width):
            p = y * width + x
            nc = 0
            for k in range(n_prims):
                if bx0[k] <= x and x <= bx1[k] and by0[k] <= y and y <= by1[k]:
                    cand[nc] = k
                    nc += 1
            for j in range(nc):
                for c in range(5):
                    acc[j, c] = 0.0
            t_shift = _fmix32(p ^ seed) % n_sub
            br = 0.0
            bg = 0.0
            bb = 0.0
            ba = 0.0
            for s in range(n_sub):
                u = (x + ((s % n_axis) + _rand01(seed, p, s, 0)) / n_axis) / width * aspect
                v = (y + ((s // n_axis) + _rand01(seed, p, s, 1)) / n_axis) / height
                t = (((s * 37 + t_shift) % n_sub) + _rand01(seed, p, s, 2)) / n_sub
                nh = 0
                for j in range(nc):
                    hit, z, alpha, r, g, b = _hit(f, ic, cand[j], u, v, t, aspect)
                    if not hit or alpha <= 0.0:
                        continue
                    # insertion into the hit list, ordered by (z, candidate)
                    m = nh
                    while m > 0 and hz[m - 1] > z:
                        hz[m] = hz[m - 1]
                        ha[m] = ha[m - 1]
                        hc[m, 0] = hc[m - 1, 0]
                        hc[m, 1] = hc[m - 1, 1]
                        hc[m, 2] = hc[m - 1, 2]
                        hj[m] = hj[m - 1]
                        m -= 1
                    hz[m] = z
                    ha[m] = alpha
                    hc[m, 0] = r
                    hc[m, 1] = g
                    hc[m, 2] = b
                    hj[m] = j
                    nh += 1
                trans = 1.0
                for h in range(nh):
                    w = trans * ha[h]
                    j = hj[h]
                    acc[j, 0] += w
                    acc[j, 1] += w * hz[h]
                    acc[j, 2] += w * hc[h, 0]
                    acc[j, 3] += w * hc[h, 1]
                    acc[j, 4] += w * hc[h, 2]
                    br += w * hc[h, 0]
                    bg += w * hc[h, 1]
                    bb += w * hc[h, 2]
                    ba += w
                    if ha[h] >= 1.0:
                        trans = 0.0
                        break
                    trans *= 1.0 - ha[h]
            inv = 1.0 / n_sub
            beauty[p, 0] = br * inv
            beauty[p, 1] = bg * inv
            beauty[p, 2] = bb * inv
            beauty[p, 3] = ba * inv
            # one sample per candidate that was seen, sorted by (Z, candidate)
            ns = 0
            for j in range(nc):
                if acc[j, 0] <= 0.0:
                    continue
                k = cand[j]
                z = f[k, F_Z0] if ic[k, I_VOL] != 0 else acc[j, 1] / acc[j, 0]
                m = ns
                while m > 0 and sz[m - 1] > z:
                    sz[m] = sz[m - 1]
                    sj[m] = sj[m - 1]
                    m -= 1
                sz[m] = z
                sj[m] = j
                ns += 1
            out_n[p] = ns
            front = 0.0
            for m in range(ns):
                j = sj[m]
                k = cand[j]
                cov = acc[j, 0] * inv
                left = 1.0 - front
                alpha = 1.0 if left <= 1e-12 else min(1.0, cov / left)
                out_z[p, m] = sz[m]
                out_zb[p, m] = f[k, F_Z1] if ic[k, I_VOL] != 0 else sz[m]
                out_rgba[p, m, 0] = alpha * acc[j, 2] / acc[j, 0]
                out_rgba[p, m, 1] = alpha * acc[j, 3] / acc[j, 0]
                out_rgba[p, m, 2] = alpha * acc[j, 4] / acc[j, 0]
                out_rgba[p, m, 3] = alpha
                out_v[p, m] = cov
                out_prim[p, m] = k
                front += cov


def pixel_bounds(table: SceneTable, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Inclusive pixel bounding boxes (x0, x1, y0, y1) of every primitive over the shutter."""
    f = table.f
    radius_u = np.where(table.i[:, I_KIND] == K_ELLIPSE, np.maximum(f[:, F_A], f[:, F_B]),
                        np.hypot(f[:, F_A], f[:, F_B]))
    umin = f[:, F_CX] - radius_u + np.minimum(0.0, f[:, F_VX])
    umax = f[:, F_CX] + radius_u + np.maximum(0.0, f[:, F_VX])
    vmin = f[:, F_CY] - radius_u + np.minimum(0.0, f[:, F_VY])
    vmax = f[:, F_CY] + radius_u + np.maximum(0.0, f[:, F_VY])
    x0 = np.floor(umin / ASPECT * width).astype(np.int64) - 1
    x1 = np.floor(umax / ASPECT * width).astype(np.int64) + 1
    y0 = np.floor(vmin * height).astype(np.int64) - 1
    y1 = np.floor(vmax * height).astype(np.int64) + 1
    return (np.clip(x0, 0, width), np.clip(x1, -1, width - 1), np.clip(y0, 0, height),
            np.clip(y1, -1, height - 1))


# --------------------------------------------------------------------------- ground truth


class CoverageMaps(Mapping):
    """Per-name ``(H, W)`` float32 coverage maps, kept sparse and expanded on access.

    A read-only mapping (``maps[name]``, ``keys()``, ``items()``...). Names that never reach a
    pixel map to an all-zero image.
    """

    def __init__(self, names, shape, pixel, index, value):
        self.names = tuple(str(n) for n in names)
        self.shape = (int(shape[0]), int(shape[1]))
        self._lookup = {n: k for k, n in enumerate(self.names)}
        order = np.argsort(index, kind="stable")
        self.pixel = np.asarray(pixel, dtype=np.int64)[order]
        self.index = np.asarray(index, dtype=np.int64)[order]
        self.value = np.asarray(value, dtype=np.float32)[order]
        self._starts = np.searchsorted(self.index, np.arange(len(self.names) + 1))

    def __getitem__(self, name: str) -> np.ndarray:
        k = self._lookup[name]
        a, b = self._starts[k], self._starts[k + 1]
        out = np.zeros(self.shape[0] * self.shape[1], dtype=np.float32)
        out[self.pixel[a:b]] = self.value[a:b]
        return out.reshape(self.shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def total(self, name: str) -> float:
        """The coverage of ``name`` summed over the image (its visible area in pixels)."""
        k = self._lookup[name]
        return float(self.value[self._starts[k]:self._starts[k + 1]].sum(dtype=np.float64))


def _aggregate(pixel: np.ndarray, index: np.ndarray, value: np.ndarray, n_names: int):
    """Sum ``value`` per (pixel, index): returns unique (pixel, index) and the float64 sums."""
    key = pixel.astype(np.int64) * n_names + index.astype(np.int64)
    uniq, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=value, minlength=uniq.size)
    return uniq // n_names, uniq % n_names, sums


def _crypto_ranks(pixel, index, cov, ids: np.ndarray, n_pixels: int, ranks: int):
    """Per pixel the ``ranks`` (id bits, coverage) pairs with the highest coverage."""
    out_id = np.zeros((n_pixels, ranks), dtype=np.uint32)
    out_cov = np.zeros((n_pixels, ranks), dtype=np.float32)
    if pixel.size == 0:
        return out_id, out_cov
    order = np.lexsort((ids[index], -cov, pixel))
    pix = pixel[order]
    pos = np.arange(pix.size)
    start = np.zeros(pix.size, dtype=np.int64)
    new = np.ones(pix.size, dtype=bool)
    new[1:] = pix[1:] != pix[:-1]
    start[new] = pos[new]
    start = np.maximum.accumulate(start)
    rank = pos - start
    keep = rank < ranks
    out_id[pix[keep], rank[keep]] = ids[index[order][keep]]
    out_cov[pix[keep], rank[keep]] = cov[order][keep]
    return out_id, out_cov


def crypto_preview(id_bits: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``(N, 3)`` preview colours: each id's hash colour weighted by its coverage, summed over ranks.

    The colour of an id is that of ``oiiotool --cryptomatte-colors``: fmix32 of the id bits
    for red, then fmix32(h + 0x0101) for green and fmix32(h + 0x020000) for blue, over 2^32-1.
    """
    out = np.zeros(id_bits.shape[:-1] + (3,), dtype=np.float64)
    used = (id_bits != 0) & (cov >= 1e-5)
    h = _fmix32_np(id_bits.astype(np.uint64))
    for c, add in enumerate((None, 0x0101, 0x020000)):
        if add is not None:
            h = _fmix32_np(h + np.uint64(add))
        out[..., c] = np.where(used, cov * (h.astype(np.float64) / 4294967295.0), 0.0).sum(axis=-1)
    return out.astype(np.float32)


# --------------------------------------------------------------------------- public API


@dataclass
class DemoScene:
    """The rendered demo: what goes into the two files, and the ground truth.

    ``coverage`` maps every object name (``/set/floor``...) and material name (``mtl/wood``...)
    to its ``(H, W)`` float32 coverage (see the module docstring for the definition).
    """

    deep: DeepImage
    flat: FlatImage
    flat_attributes: dict[str, str]
    deep_attributes: dict[str, str]
    id_manifest: IdManifest
    coverage: CoverageMaps
    objects: tuple[str, ...]
    materials: tuple[str, ...]
    object_material: dict[str, str]
    samples_per_pixel: int


def _half(values: np.ndarray) -> np.ndarray:
    """float32 values as they come back from a HALF channel."""
    return np.asarray(values).astype(np.float16).astype(np.float32)


def render_demo(width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT,
                samples_per_axis: int = SAMPLES_PER_AXIS) -> DemoScene:
    """Render the demo scene at any size (deterministic: same arguments, same arrays)."""
    width, height, n_axis = int(width), int(height), int(samples_per_axis)
    if not (1 <= width <= 16384 and 1 <= height <= 16384):
        raise ValueError(f"demo size must be within 1..16384, got {width}x{height}")
    if not 1 <= n_axis <= 32:
        raise ValueError(f"samples_per_axis must be within 1..32, got {n_axis}")
    table = build_scene()
    n_pix = width * height
    bx0, bx1, by0, by1 = pixel_bounds(table, width, height)
    cover = np.zeros((height + 1, width + 1), dtype=np.int64)
    for k in range(table.f.shape[0]):
        if bx0[k] <= bx1[k] and by0[k] <= by1[k]:
            cover[by0[k]:by1[k] + 1, bx0[k]:bx1[k] + 1] += 1
    cap = max(1, int(cover.max()))

    out_n = np.zeros(n_pix, dtype=np.int64)
    out_z = np.zeros((n_pix, cap))
    out_zb = np.zeros((n_pix, cap))
    out_rgba = np.zeros((n_pix, cap, 4))
    out_v = np.zeros((n_pix, cap))
    out_prim = np.zeros((n_pix, cap), dtype=np.int64)
    beauty = np.zeros((n_pix, 4))
    _render_kernel(width, height, n_axis, SEED, ASPECT, table.f, table.i, bx0, bx1, by0, by1,
                   out_n, out_z, out_zb, out_rgba, out_v, out_prim, beauty)

    used = np.arange(cap)[None, :] < out_n[:, None]
    offsets = np.zeros(n_pix + 1, dtype=np.int64)
    np.cumsum(out_n, out=offsets[1:])
    prim = out_prim[used]
    obj = table.i[prim, I_OBJ]
    mat = table.i[prim, I_MAT]
    sample_pixel = np.repeat(np.arange(n_pix, dtype=np.int64), out_n)
    visible = out_v[used]

    names_obj = table.objects
    names_mat = table.materials
    obj_ids = np.array([deepid_hash([n], "MurmurHash3_32") for n in names_obj], dtype=np.uint32)
    mat_ids = np.array([deepid_hash([n], "MurmurHash3_32") for n in names_mat], dtype=np.uint32)
    rgba = out_rgba[used]
    window = Box(0, 0, width - 1, height - 1)
    deep = DeepImage(
        data_window=window,
        display_window=window,
        offsets=offsets,
        channels={
            "R": _half(rgba[:, 0]), "G": _half(rgba[:, 1]), "B": _half(rgba[:, 2]), "A": _half(rgba[:, 3]),
            "Z": out_z[used].astype(np.float32), "ZBack": out_zb[used].astype(np.float32),
            "objectid": obj_ids[obj], "materialid": mat_ids[mat],
        },
        pixel_types={
            "R": PixelType.HALF, "G": PixelType.HALF, "B": PixelType.HALF, "A": PixelType.HALF,
            "Z": PixelType.FLOAT, "ZBack": PixelType.FLOAT,
            "objectid": PixelType.UINT, "materialid": PixelType.UINT,
        },
    )

    # ground truth: coverage per (pixel, object) and (pixel, material)
    o_pix, o_idx, o_cov = _aggregate(sample_pixel, obj, visible, len(names_obj))
    m_pix, m_idx, m_cov = _aggregate(sample_pixel, mat, visible, len(names_mat))
    coverage = CoverageMaps(
        names_obj + names_mat, (height, width),
        np.concatenate([o_pix, m_pix]), np.concatenate([o_idx, m_idx + len(names_obj)]),
        np.concatenate([o_cov, m_cov]),
    )

    # flat image: beauty + two Cryptomatte layers computed from the same truth
    shape = (height, width)
    channels: dict[str, np.ndarray] = {
        "R": _half(beauty[:, 0]).reshape(shape), "G": _half(beauty[:, 1]).reshape(shape),
        "B": _half(beauty[:, 2]).reshape(shape), "A": _half(beauty[:, 3]).reshape(shape),
    }
    pixel_types = {c: PixelType.HALF for c in "RGBA"}
    attributes: dict[str, str] = {}
    for layer, names, pix, idx, cov in (
        (CRYPTO_LAYERS[0], names_obj, o_pix, o_idx, o_cov),
        (CRYPTO_LAYERS[1], names_mat, m_pix, m_idx, m_cov),
    ):
        hashes = np.array([crypto_hash(n) for n in names], dtype=np.uint32)
        rank_id, rank_cov = _crypto_ranks(pix, idx, cov.astype(np.float32), hashes, n_pix, CRYPTO_RANKS)
        preview = crypto_preview(rank_id, rank_cov)
        for c, letter in enumerate("RGB"):
            channels[f"{layer}.{letter}"] = preview[:, c].reshape(shape)
        id_float = rank_id.view(np.float32)
        for level in range(CRYPTO_RANKS // 2):
            stem = f"{layer}{level:02d}"
            channels[f"{stem}.R"] = id_float[:, 2 * level].reshape(shape).copy()
            channels[f"{stem}.G"] = rank_cov[:, 2 * level].reshape(shape).copy()
            channels[f"{stem}.B"] = id_float[:, 2 * level + 1].reshape(shape).copy()
            channels[f"{stem}.A"] = rank_cov[:, 2 * level + 1].reshape(shape).copy()
        for name in channels:
            if name.startswith(layer):
                pixel_types[name] = PixelType.FLOAT
        key = layer_key(layer)
        attributes[f"cryptomatte/{key}/name"] = layer
        attributes[f"cryptomatte/{key}/hash"] = "MurmurHash3_32"
        attributes[f"cryptomatte/{key}/conversion"] = "uint32_to_float32"
        attributes[f"cryptomatte/{key}/manifest"] = json.dumps(
            {n: f"{int(h):08x}" for n, h in zip(names, hashes, strict=True)}, sort_keys=True)
    flat = FlatImage(window, window, channels, pixel_types)

    manifest = IdManifest(groups=[
        ChannelGroup(channels={"objectid"}, components=["object"], lifetime="stable",
                     hash_scheme="MurmurHash3_32", encoding_scheme="id",
                     entries={int(h): (n,) for n, h in zip(names_obj, obj_ids, strict=True)}),
        ChannelGroup(channels={"materialid"}, components=["material"], lifetime="stable",
                     hash_scheme="MurmurHash3_32", encoding_scheme="id",
                     entries={int(h): (n,) for n, h in zip(names_mat, mat_ids, strict=True)}),
    ])
    comment = f"Deepscope demo scene v{DEMO_VERSION}, {n_axis}x{n_axis} samples per pixel"
    return DemoScene(
        deep=deep,
        flat=flat,
        flat_attributes={**attributes, "comments": comment},
        deep_attributes={"comments": comment},
        id_manifest=manifest,
        coverage=coverage,
        objects=names_obj,
        materials=names_mat,
        object_material={n: names_mat[m] for n, m in zip(names_obj, table.object_material, strict=True)},
        samples_per_pixel=n_axis * n_axis,
    )


def _truth_bytes(coverage: CoverageMaps) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(
        buf, version=np.int64(DEMO_VERSION), names=np.array(coverage.names), shape=np.array(coverage.shape),
        pixel=coverage.pixel.astype(np.int32), index=coverage.index.astype(np.int32), coverage=coverage.value,
    )
    return buf.getvalue()


def read_truth(path: str | os.PathLike) -> CoverageMaps:
    """The coverage maps stored in a ``demo_truth.npz`` by :func:`write_demo`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return CoverageMaps(data["names"].tolist(), data["shape"], data["pixel"], data["index"],
                                data["coverage"])
    except (OSError, ValueError, KeyError) as exc:
        raise ExrError(path, f"not a demo truth file: {exc}") from None


def write_demo(directory: str | os.PathLike, scene: DemoScene | None = None) -> dict[str, Path]:
    """Write ``demo.deep.exr``, ``demo.exr`` and ``demo_truth.npz`` into ``directory`` (each atomically).

    Returns their paths under the keys ``deep``, ``flat`` and ``truth``.
    """
    folder = Path(os.fspath(directory))
    if scene is None:
        scene = render_demo()
    paths = {"deep": folder / DEEP_FILE, "flat": folder / FLAT_FILE, "truth": folder / TRUTH_FILE}
    write_deep(paths["deep"], scene.deep, compression="ZIPS", attributes=scene.deep_attributes,
               id_manifest=scene.id_manifest)
    write_flat(paths["flat"], scene.flat.channels, scene.flat.data_window, scene.flat.display_window,
               pixel_types=scene.flat.pixel_types, compression="ZIP", attributes=scene.flat_attributes)
    data = _truth_bytes(scene.coverage)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(paths["truth"], write)
    return paths


def default_cache_dir() -> Path:
    """``$DEEPSCOPE_CACHE`` if set, else ``~/.cache/deepscope``."""
    env = os.environ.get("DEEPSCOPE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "deepscope"


def demo_paths(cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """The cached demo files (keys ``deep``, ``flat``, ``truth``), rendered first if missing.

    They live in ``<cache>/demo-v<DEMO_VERSION>/``, so a new generator version renders anew.
    """
    folder = (Path(os.fspath(cache_dir)) if cache_dir is not None else default_cache_dir())
    folder = folder / f"demo-v{DEMO_VERSION}"
    paths = {"deep": folder / DEEP_FILE, "flat": folder / FLAT_FILE, "truth": folder / TRUTH_FILE}
    if all(p.is_file() and p.stat().st_size > 0 for p in paths.values()):
        return paths
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExrError(folder, f"cannot create the demo cache folder: {exc.strerror or exc}") from None
    return write_demo(folder, render_demo(DEFAULT_WIDTH, DEFAULT_HEIGHT))
