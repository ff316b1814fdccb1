"""Realistic benchmark inputs, generated once and cached (never part of the test run).

The deep image is 1920x1080 with about 10 million samples: most pixels hold 1-3 surface
samples, about 8% are volume pixels with 30-60 contiguous segments, ids are coherent
(one id per 48x48 block of "objects", particles as their own ids). Channels: R, G, B, A
(HALF), Z, ZBack (FLOAT), id (UINT): 7 channels, as a production beauty + depth + id.
It is written in ZIPS, RLE and NONE scanlines and as ZIPS deep tiles (64x64).

The Cryptomatte image is 2K (2048x1080), one layer ``CryptoObject`` of 6 ranks (3 rank
channel groups) plus a beauty RGBA, with a 100,000-name manifest embedded as Cryptomatte
1.2 metadata. Objects are coherent blobs (jittered Voronoi cells coverage-sampled 3x3 per
pixel, plus small semi-transparent particles on top); each pixel's ranks are sorted by
coverage, unused ranks are id 0 with coverage 0.

Everything lands in ``bench-cache/`` at the repository root (git-ignored), or in
``$DEEPSCOPE_BENCH_CACHE``.
"""

from __future__ import annotations

import json
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


def small_deep_file() -> Path:
    """A 64x48 deep file with the benchmark's channels: warms the reader's kernels up cheaply."""
    import OpenEXR

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "deep_small_ZIPS_scan.exr"
    if path.exists():
        return path
    counts, chans = deep_arrays(64, 48, seed=SEED + 1)
    cuts = np.cumsum(counts.ravel())[:-1]
    objs = {}
    for name, values in chans.items():
        cells = np.empty(counts.size, dtype=object)
        cells[:] = np.split(values, cuts)
        objs[name] = cells.reshape(counts.shape)
    header = {"compression": OpenEXR.ZIPS_COMPRESSION, "type": OpenEXR.deepscanline}
    tmp = path.with_suffix(".tmp.exr")
    OpenEXR.File(header, objs).write(str(tmp))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- Cryptomatte

CRYPTO_WIDTH, CRYPTO_HEIGHT = 2048, 1080
CRYPTO_LAYER = "CryptoObject"
CRYPTO_RANKS = 6
MANIFEST_NAMES = 100_000
_SUPER = 3  # coverage samples per pixel side


def manifest_names(count: int = MANIFEST_NAMES, seed: int = SEED) -> list[str]:
    """Production-looking object paths, unique: ``/set/<area>/<asset>_<n>/geo/<part>``."""
    rng = np.random.default_rng(seed)
    areas = ["street", "plaza", "market", "harbour", "tower", "alley", "bridge", "park"]
    assets = ["building", "lamp", "car", "tree", "bench", "sign", "window", "crowd_agent", "crate", "barrel",
              "fence", "awning", "bollard", "bicycle", "pigeon"]
    parts = ["body", "glass", "trim", "leaf", "wheel", "frame", "cloth", "hair", "eye", "base"]
    a = rng.integers(0, len(areas), count)
    b = rng.integers(0, len(assets), count)
    c = rng.integers(0, len(parts), count)
    return [f"/set/{areas[a[i]]}/{assets[b[i]]}_{i:05d}/geo/{parts[c[i]]}" for i in range(count)]


def manifest_json(names: list[str] | None = None) -> str:
    """The Cryptomatte manifest text ``{"name": "hex id"}`` of the benchmark names."""
    from core.hashing import crypto_hash

    names = manifest_names() if names is None else names
    return json.dumps({n: f"{crypto_hash(n):08x}" for n in names}, separators=(",", ":"))


def _voronoi_labels(h: int, w: int, cell: float, rng) -> np.ndarray:
    """Label of the nearest jittered seed for every point of an (h, w) grid (seeds on a cell grid)."""
    gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    seeds = (np.stack(np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij"), -1) - 1 + rng.random((gh, gw, 2)))
    seeds *= cell
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5, indexing="ij")
    cy, cx = (yy // cell).astype(np.int32) + 1, (xx // cell).astype(np.int32) + 1
    best = np.full((h, w), np.inf, np.float32)
    label = np.zeros((h, w), np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            sy, sx = np.clip(cy + dy, 0, gh - 1), np.clip(cx + dx, 0, gw - 1)
            s = seeds[sy, sx]
            d = (s[..., 0] - yy) ** 2 + (s[..., 1] - xx) ** 2
            closer = d < best
            best[closer] = d[closer]
            label[closer] = (sy * gw + sx)[closer]
    return label


def crypto_arrays(width: int = CRYPTO_WIDTH, height: int = CRYPTO_HEIGHT, seed: int = SEED):
    """(rank ids uint32 (6, H, W), rank coverage float32 (6, H, W), beauty {R,G,B,A}, manifest names)."""
    from core.hashing import crypto_hash

    rng = np.random.default_rng(seed)
    names = manifest_names()
    ids_of = np.array([crypto_hash(n) for n in names], np.uint32)
    # objects: Voronoi blobs, 3x3 coverage samples per pixel
    labels = _voronoi_labels(height * _SUPER, width * _SUPER, 26.0 * _SUPER, rng)
    obj_of_label = rng.permutation(len(names))[: labels.max() + 1] if labels.max() + 1 <= len(names) else None
    if obj_of_label is None:  # pragma: no cover - the grid is far smaller than the manifest
        raise ValueError("more cells than names")
    sub = ids_of[obj_of_label[labels]]
    sub = sub.reshape(height, _SUPER, width, _SUPER).transpose(0, 2, 1, 3).reshape(height, width, _SUPER**2)
    sub = np.sort(sub, axis=-1)
    first = np.ones(sub.shape, bool)
    first[..., 1:] = sub[..., 1:] != sub[..., :-1]
    # coverage of each distinct id = run length, kept on the run's first entry
    idx = np.arange(_SUPER**2)
    run_start = np.maximum.accumulate(np.where(first, idx, 0), axis=-1)
    counts = np.zeros(sub.shape, np.float32)
    np.add.at(counts.reshape(-1, _SUPER**2), (np.arange(height * width)[:, None].repeat(_SUPER**2, 1),
                                              run_start.reshape(-1, _SUPER**2)), 1.0)
    cand_ids = [sub[..., k] for k in range(_SUPER**2)]
    cand_cov = [counts[..., k] / _SUPER**2 for k in range(_SUPER**2)]
    # particles: small soft disks with their own ids, over the objects
    for _layer in range(2):
        pid = np.zeros((height, width), np.uint32)
        pa = np.zeros((height, width), np.float32)
        n = 6000
        cx, cy = rng.uniform(0, width, n), rng.uniform(0, height, n)
        rad = rng.uniform(1.5, 6.0, n)
        opac = rng.uniform(0.15, 0.6, n)
        who = ids_of[rng.integers(0, len(names), n)]
        for i in range(n):
            x0, x1 = max(int(cx[i] - rad[i]), 0), min(int(cx[i] + rad[i]) + 1, width)
            y0, y1 = max(int(cy[i] - rad[i]), 0), min(int(cy[i] + rad[i]) + 1, height)
            if x0 >= x1 or y0 >= y1:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1]
            d = np.sqrt((xx + 0.5 - cx[i]) ** 2 + (yy + 0.5 - cy[i]) ** 2)
            a = np.clip(rad[i] - d + 0.5, 0, 1) * opac[i]
            box_id, box_a = pid[y0:y1, x0:x1], pa[y0:y1, x0:x1]
            take = a > box_a
            box_id[take] = who[i]
            box_a[take] = a[take]
        keep = 1.0 - pa
        cand_cov = [c * keep for c in cand_cov]
        cand_ids.append(pid)
        cand_cov.append(np.where(pid != 0, pa, 0).astype(np.float32))
    ids = np.stack(cand_ids, -1)
    cov = np.stack(cand_cov, -1).astype(np.float32)
    cov[ids == 0] = 0.0
    order = np.argsort(-cov, axis=-1, kind="stable")[..., :CRYPTO_RANKS]
    rank_ids = np.take_along_axis(ids, order, -1)
    rank_cov = np.take_along_axis(cov, order, -1)
    rank_ids[rank_cov == 0] = 0
    rank_ids = np.ascontiguousarray(rank_ids.transpose(2, 0, 1))
    rank_cov = np.ascontiguousarray(rank_cov.transpose(2, 0, 1))
    # a beauty: each id's colour from its bits, weighted by coverage
    rgb = np.zeros((3, height, width), np.float32)
    for r in range(CRYPTO_RANKS):
        bits = rank_ids[r]
        for k in range(3):
            rgb[k] += rank_cov[r] * (((bits >> (8 * k)) & 255).astype(np.float32) / 255.0)
    alpha = rank_cov.sum(0).clip(0, 1).astype(np.float32)
    beauty = {"R": rgb[0], "G": rgb[1], "B": rgb[2], "A": alpha}
    return rank_ids, rank_cov, beauty, names


def crypto_file() -> Path:
    """The cached 2K Cryptomatte benchmark file (written with ``core.writer.write_flat``)."""
    from core.hashing import layer_key
    from core.model import Box, PixelType
    from core.writer import write_flat

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"crypto_{CRYPTO_WIDTH}x{CRYPTO_HEIGHT}_{CRYPTO_RANKS}ranks_{MANIFEST_NAMES // 1000}k.exr"
    if path.exists():
        return path
    rank_ids, rank_cov, beauty, names = crypto_arrays()
    channels: dict[str, np.ndarray] = dict(beauty)
    types = {n: PixelType.HALF for n in beauty}
    for g in range(CRYPTO_RANKS // 2):
        for k, (id_c, cov_c) in enumerate((("R", "G"), ("B", "A"))):
            r = 2 * g + k
            channels[f"{CRYPTO_LAYER}{g:02d}.{id_c}"] = rank_ids[r].view(np.float32)
            channels[f"{CRYPTO_LAYER}{g:02d}.{cov_c}"] = rank_cov[r]
    for name in channels:
        types.setdefault(name, PixelType.FLOAT)
    key = layer_key(CRYPTO_LAYER)
    attributes = {
        f"cryptomatte/{key}/name": CRYPTO_LAYER,
        f"cryptomatte/{key}/hash": "MurmurHash3_32",
        f"cryptomatte/{key}/conversion": "uint32_to_float32",
        f"cryptomatte/{key}/manifest": manifest_json(names),
    }
    box = Box(0, 0, CRYPTO_WIDTH - 1, CRYPTO_HEIGHT - 1)
    write_flat(path, channels, box, box, types, compression="ZIP", attributes=attributes)
    return path


def crypto_ids_in_view(count: int, seed: int = SEED) -> np.ndarray:
    """``count`` distinct ids that are visible in the Cryptomatte image (uint32 bits), as picked by hand."""
    rank_ids = crypto_rank0()
    present = np.unique(rank_ids)
    present = present[present != 0]
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(present, size=min(count, present.size), replace=False)).astype(np.uint32)


def crypto_rank0() -> np.ndarray:
    """Rank-0 ids of the cached Cryptomatte file, read back with our reader."""
    from core.exr_read import open_exr

    image = open_exr(crypto_file()).parts[0].image
    return np.ascontiguousarray(image.channels[f"{CRYPTO_LAYER}00.R"]).view(np.uint32)


def crypto_arrays_cached(count: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rank ids (6, H, W) uint32, coverage (6, H, W) float32, ``count`` visible ids) of the cached
    Cryptomatte file, as an .npz next to it (quick to load in subprocesses)."""
    path = CACHE / f"crypto_ranks_{count}.npz"
    if not path.exists():
        from core.cryptomatte import crypto_ranks, find_document_crypto_layers
        from core.exr_read import open_exr

        src = crypto_file()
        doc = open_exr(src)
        layers = find_document_crypto_layers([p.header for p in doc.parts], src)
        layer = next(la for la in layers if la.name == CRYPTO_LAYER)
        ranks = crypto_ranks(layer, doc.parts[0].image, src)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=ranks.ids, cov=ranks.coverage, selected=crypto_ids_in_view(count))
        os.replace(tmp, path)
    with np.load(path) as z:
        return z["ids"], z["cov"], z["selected"]
