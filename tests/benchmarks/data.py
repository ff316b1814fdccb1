"""Realistic benchmark inputs, generated once and cached (never part of the test run).

The deep image is 1920x1080 with about 10 million samples: most pixels hold 1-3 surface
samples, about 8% are volume pixels with 30-60 contiguous segments, ids are coherent
(one id per 48x48 block of "objects", particles as their own ids). Channels: R, G, B, A
(HALF), Z, ZBack (FLOAT), id (UINT): 7 channels, as a production beauty + depth + id.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 1920, 1080
CACHE = Path(os.environ.get("DEEPSCOPE_BENCH_CACHE", Path(__file__).resolve().parents[2] / "bench-cache"))
SEED = 20261121


def deep_arrays(width: int = WIDTH, height: int = HEIGHT, seed: int = SEED):
    """(counts (H, W), {channel: 1-D array}) of the benchmark scene, samples sorted by Z."""
    rng = np.random.default_rng(seed)
    n = width * height
    yy, xx = np.divmod(np.arange(n), width)
    counts = rng.integers(1, 4, n)
    # volume pixels: a few soft blobs of fog
    vol = np.zeros(n, bool)
    for _ in range(11):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(40, 90)
        vol |= (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    counts[vol] = rng.integers(30, 61, int(vol.sum()))
    counts[rng.random(n) < 0.02] = 0  # some empty pixels (sky)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    pix = np.repeat(np.arange(n), counts)
    k = np.arange(total) - offsets[pix]  # sample index within its pixel
    is_vol = vol[pix]
    z0 = 5.0 + 0.002 * xx[pix] + 0.001 * yy[pix]
    z = np.where(is_vol, z0 + 0.05 * k, z0 + 1.5 * k + rng.random(total) * 0.1).astype(np.float32)
    zback = np.where(is_vol, z + 0.05, z).astype(np.float32)
    alpha = np.where(is_vol, 0.03, np.where(k == counts[pix] - 1, 1.0, rng.uniform(0.2, 0.9, total)))
    colour = rng.random((3, total)) * alpha
    block = (yy[pix] // 48) * 64 + (xx[pix] // 48)
    ids = np.where(is_vol, 7_000_000 + 0 * block, block * 2654435761 % (2**32)).astype(np.uint64)
    particles = rng.random(total) < 0.01
    ids[particles] = 9_000_000 + rng.integers(0, 5000, int(particles.sum()))
    chans = {
        "R": colour[0].astype(np.float16),
        "G": colour[1].astype(np.float16),
        "B": colour[2].astype(np.float16),
        "A": alpha.astype(np.float16),
        "Z": z,
        "ZBack": zback,
        "id": ids.astype(np.uint32),
    }
    return counts.reshape(height, width), chans


def deep_file(compression: str = "ZIPS", tiled: bool = False) -> Path:
    """The cached benchmark deep file, written with the OpenEXR binding on first use."""
    import OpenEXR

    CACHE.mkdir(parents=True, exist_ok=True)
    kind = "tiled" if tiled else "scan"
    path = CACHE / f"deep_{WIDTH}x{HEIGHT}_{compression}_{kind}.exr"
    if path.exists():
        return path
    counts, chans = deep_arrays()
    cuts = np.cumsum(counts.ravel())[:-1]
    objs = {}
    for name, values in chans.items():
        cells = np.empty(counts.size, dtype=object)
        cells[:] = np.split(values, cuts)
        objs[name] = cells.reshape(counts.shape)
    comp = {"NONE": OpenEXR.NO_COMPRESSION, "RLE": OpenEXR.RLE_COMPRESSION, "ZIPS": OpenEXR.ZIPS_COMPRESSION}
    header = {"compression": comp[compression], "type": OpenEXR.deeptile if tiled else OpenEXR.deepscanline}
    if tiled:
        td = OpenEXR.TileDescription()
        td.xSize, td.ySize = 64, 64
        header["tiles"] = td
    tmp = path.with_suffix(".tmp.exr")
    OpenEXR.File(header, objs).write(str(tmp))
    os.replace(tmp, path)
    return path
