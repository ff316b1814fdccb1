"""The core kernels on the benchmark images: flatten with the depth sort, Cryptomatte mattes,
deep id masks and the display transform, each against a plain numpy reference where one exists."""

from __future__ import annotations

import dataclasses

import numpy as np

from tests.benchmarks.data import CRYPTO_LAYER, crypto_file, crypto_ids_in_view, deep_file
from tests.benchmarks.harness import Row, measure, measure_pair

FLATTEN_TARGET = 0.100
MATTE_TARGET = 0.015
MASK_TARGET = 0.100
EXPOSURE_TARGET = 0.016
N_IDS = 50


def deep_image():
    from core.exr_read import open_exr

    return open_exr(deep_file("ZIPS")).parts[0].image


def reversed_samples(image):
    """The image with every pixel's samples in reverse depth order: the sort has real work to do."""
    offsets = image.offsets
    counts = np.diff(offsets)
    pix = np.repeat(np.arange(counts.size), counts)
    k = np.arange(offsets[-1]) - offsets[pix]
    perm = offsets[pix + 1] - 1 - k
    channels = {n: np.ascontiguousarray(a[perm]) for n, a in image.channels.items()}
    return dataclasses.replace(image, channels=channels, pixel_types=dict(image.pixel_types))


def numpy_flatten(image) -> dict[str, np.ndarray]:
    """Reference in plain numpy: lexsort by (pixel, Z), then a segmented *over* through log-transmittance."""
    offsets = image.offsets
    counts = np.diff(offsets)
    pix = np.repeat(np.arange(counts.size), counts)
    ch = image.channels
    order = np.lexsort((ch["ZBack"], ch["Z"], pix))
    a = np.abs(ch["A"][order]).astype(np.float64).clip(0.0, 1.0 - 1e-7)
    log_t = np.log1p(-a)
    csum = np.cumsum(log_t)
    start = np.concatenate([[0.0], csum])[offsets[:-1]]  # sum before each pixel's first sample
    before = np.exp(csum - log_t - start[pix])  # transmittance in front of each sample
    out = {}
    for name in ("R", "G", "B", "A"):
        v = ch[name][order].astype(np.float64) * before
        out[name] = np.bincount(pix, weights=v, minlength=counts.size).astype(np.float32)
    return {k: v.reshape(image.height, image.width) for k, v in out.items()}


def shuffled_samples(image, seed: int = 0):
    """The image with every pixel's samples in random order."""
    counts = np.diff(image.offsets)
    pix = np.repeat(np.arange(counts.size), counts)
    perm = np.argsort(pix * 2.0 + np.random.default_rng(seed).random(pix.size), kind="stable")
    channels = {n: np.ascontiguousarray(a[perm]) for n, a in image.channels.items()}
    return dataclasses.replace(image, channels=channels, pixel_types=dict(image.pixel_types))


def bench_flatten(quick: bool, image=None) -> list[Row]:
    """``flatten(image, sort=True)``: the file as rendered (samples already front to back, as
    renderers write them: the sort is the full sortedness check), then the same samples stored
    back to front and in random order (every pixel really sorted)."""
    from core.kernels import flatten, sort_samples

    runs = 5 if quick else 11
    image = image if image is not None else deep_image()
    rows = []
    ordered = measure(lambda: flatten(image, sort=True), runs)
    row = Row("flatten_sort", "flatten, including the depth sort (file as rendered)",
              f"<= {FLATTEN_TARGET * 1000:.0f} ms", "ms", ordered)
    row.met = row.median <= FLATTEN_TARGET
    row.note = (f"R,G,B,A,Z,ZBack over {image.total_samples / 1e6:.1f} M samples already in depth order: "
                "the sort step is the check that they are, one vectorised pass per chunk of pixels")
    rows.append(row)
    reversed_image = reversed_samples(image)
    rev = measure(lambda: flatten(reversed_image, sort=True), runs)
    ref_t = measure(lambda: numpy_flatten(reversed_image), 1, warmup=0)
    got, ref = flatten(reversed_image, ["R", "G", "B", "A"], sort=True), numpy_flatten(reversed_image)
    err = max(float(np.nanmax(np.abs(got[k] - ref[k]))) for k in ref)
    rrow = Row("flatten_sort_reversed", "flatten, including the depth sort (every pixel back to front)",
               f"<= {FLATTEN_TARGET * 1000:.0f} ms", "ms", rev, "numpy", ref_t)
    rrow.met = rrow.median <= FLATTEN_TARGET
    rrow.note = (f"every pixel reordered, chunk by chunk inside the over pass (no image-sized permutation); "
                 f"numpy reference (lexsort + log-transmittance) run once, max diff {err:.1e}")
    rows.append(rrow)
    shuffled = shuffled_samples(image)
    rnd = measure(lambda: flatten(shuffled, sort=True), 3 if quick else 7)
    srow = Row("flatten_sort_random", "flatten, including the depth sort (random order in every pixel)",
               f"<= {FLATTEN_TARGET * 1000:.0f} ms", "ms", rnd)
    srow.met = srow.median <= FLATTEN_TARGET
    srow.note = ("the same ordering inside the over pass: 1-3 samples placed by rank from three independent "
                 "compares, volumes by a rank sort")
    rows.append(srow)
    split = measure(lambda: flatten(image, split_volumes=True), 3 if quick else 7)
    rows.append(Row("flatten_split", "flatten with volume splitting (the viewer's), file as rendered", "(info)", "ms",
                    split))
    srt = measure(lambda: sort_samples(shuffled), 3 if quick else 5)
    rows.append(Row("sort_samples", "sort_samples at load of an unsorted file (random order, 7 channels)", "(info)",
                    "ms", srt))
    return rows


def bench_crypto_matte(quick: bool) -> list[Row]:
    from core.cryptomatte import crypto_matte, crypto_ranks, find_document_crypto_layers
    from core.exr_read import open_exr

    path = crypto_file()
    doc = open_exr(path)
    layers = find_document_crypto_layers([p.header for p in doc.parts], path)
    layer = next(la for la in layers if la.name == CRYPTO_LAYER)
    ranks = crypto_ranks(layer, doc.parts[0].image, path)
    selected = crypto_ids_in_view(N_IDS)
    ids, cov = ranks.ids, ranks.coverage

    def reference():
        return (np.isin(ids, selected) * cov).sum(0, dtype=np.float32)

    runs = 11 if quick else 41
    ours, ref = measure_pair(lambda: crypto_matte(ids, cov, selected), reference, runs, peer_runs=5, warmup=2)
    same = np.allclose(crypto_matte(ids, cov, selected), reference(), atol=1e-6)
    row = Row("crypto_matte", "Cryptomatte matte, 6 ranks, 50 ids", f"<= {MATTE_TARGET * 1000:.0f} ms", "ms", ours,
              "np.isin", ref)
    row.met = row.median <= MATTE_TARGET
    row.note = f"2048x1080, {len(layer.manifest)} names; equal to the np.isin reference: {same}"
    return [row]


def bench_deep_mask(quick: bool, image=None) -> list[Row]:
    from core.deepid import deep_mask, parse_query, resolve, select_samples

    image = image if image is not None else deep_image()
    present = np.unique(image.channels["id"])
    chosen = np.random.default_rng(7).choice(present, N_IDS, replace=False)
    selection = resolve(parse_query([[f"id:{int(i)}" for i in chosen]]), None, image)

    def ours():
        return deep_mask(image, select_samples(image, selection))

    def reference():
        return np.isin(image.channels["id"], chosen)

    runs = 7 if quick else 21
    a, b = measure_pair(ours, reference, runs, peer_runs=3, warmup=1)
    picked = int(select_samples(image, selection).sum())
    same = picked == int(reference().sum())
    row = Row("deep_mask", "deep id mask, 50 ids", f"<= {MASK_TARGET * 1000:.0f} ms", "ms", a,
              "np.isin (selection only)", b)
    row.met = row.median <= MASK_TARGET
    row.note = (f"select_samples + deep_mask over {image.total_samples / 1e6:.1f} M samples, {picked} selected "
                f"(np.isin agrees: {same}); the peer does only the membership test")
    return [row]


def bench_display(quick: bool) -> list[Row]:
    from core.display import display_transform

    rng = np.random.default_rng(3)
    rgb = (rng.random((1080, 1920, 3), dtype=np.float32) * 4.0).astype(np.float32)
    exposures = iter(np.linspace(-3, 3, 10000))

    def ours():
        return display_transform(rgb, exposure=float(next(exposures)))

    def reference():
        e = float(next(exposures))
        v = np.clip(rgb * np.float32(2.0**e), 0.0, 1.0)
        v = np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)
        out = np.empty((1080, 1920, 4), np.uint8)
        out[..., :3] = np.floor(v * 255 + 0.5)
        out[..., 3] = 255
        return out

    runs = 21 if quick else 61
    a, b = measure_pair(ours, reference, runs, peer_runs=3, warmup=2)
    row = Row("display", "exposure change to new uint8 frame (display_transform)",
              f"<= {EXPOSURE_TARGET * 1000:.0f} ms", "ms", a, "numpy sRGB", b)
    row.met = row.median <= EXPOSURE_TARGET
    row.note = "1920x1080 RGB float32 -> RGBA uint8, sRGB, a new exposure every run"
    return rows_with_render(row, quick)


def rows_with_render(row: Row, quick: bool) -> list[Row]:
    """Add the viewer's render path for a view change (app.render.render_frame, part data cached)."""
    try:
        from app.render import RenderRequest, Tone, compute_part_data, default_view, render_frame
    except ImportError as exc:  # pragma: no cover - the GUI package is part of the repo
        row.note += f"; render_frame not measured ({exc})"
        return [row]
    image = deep_image()
    part = compute_part_data(image)
    view = default_view(image)
    exposures = iter(np.linspace(-3, 3, 10000))

    def render():
        return render_frame(RenderRequest(("bench", 0.0, 0), image, view, Tone(exposure=float(next(exposures))),
                                          part))

    runs = 21 if quick else 61
    times = measure(render, runs, warmup=2)
    r = Row("render_frame", "exposure change: render_frame (the viewer's worker job)",
            f"<= {EXPOSURE_TARGET * 1000:.0f} ms", "ms", times)
    r.met = r.median <= EXPOSURE_TARGET
    r.note = "colour view of the flattened 1920x1080 deep image: stack RGB + display transform"
    return [row, r]
