"""Recolor and defocus previews on the 10 M-sample deep image (issue 7's targets), when those
modules exist: recolor well under 100 ms, defocus proxy well under 300 ms, full resolution under 2 s."""

from __future__ import annotations

import importlib.util

import numpy as np

from tests.benchmarks.harness import Row, measure

RECOLOR_TARGET = 0.100
DEFOCUS_PROXY_TARGET = 0.300
DEFOCUS_FULL_TARGET = 2.0


def _exists(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def bench_preview(quick: bool) -> list[Row]:
    from tests.benchmarks.bench_kernels import deep_image

    image = deep_image()
    rows: list[Row] = []
    if _exists("core.recolor"):
        rows.extend(_recolor(image, quick))
    else:
        rows.append(Row("recolor", "recolor preview", "<= 100 ms", note="not measured: core/recolor.py is missing"))
    if _exists("core.defocus"):
        rows.extend(_defocus(image, quick))
    else:
        rows.append(Row("defocus", "defocus preview", "<= 300 ms", note="not measured: core/defocus.py is missing"))
    return rows


def _recolor(image, quick: bool) -> list[Row]:
    from core.recolor import Grade, recolor, select_ids

    present = np.unique(image.channels["id"])
    chosen = np.random.default_rng(11).choice(present, 50, replace=False)
    selection = select_ids(image, channel="id", ids=chosen)
    gains = iter(np.linspace(0.5, 2.0, 1000).tolist() * 2)

    def full():
        g = next(gains)
        return recolor(image, selection, Grade(gain=(g, 1.0, 1.0 / g), saturation=0.8))

    def proxy():
        g = next(gains)
        return recolor(image, selection, Grade(gain=(g, 1.0, 1.0 / g), saturation=0.8), proxy=0.5)

    runs = 5 if quick else 15
    rows = []
    for key, label, fn in (("recolor", "recolor, full resolution, 50 ids (grade change)", full),
                           ("recolor_proxy", "recolor, proxy 0.5 (grade change)", proxy)):
        r = Row(key, label, f"<= {RECOLOR_TARGET * 1000:.0f} ms", "ms", measure(fn, runs))
        r.met = r.median <= RECOLOR_TARGET
        rows.append(r)
    sel_t = measure(lambda: select_ids(image, channel="id", ids=chosen), 3 if quick else 7)
    rows.append(Row("recolor_select", "recolor: select 50 ids (once per selection change)", "(info)", "ms", sel_t))
    return rows


def _defocus(image, quick: bool) -> list[Row]:
    """The focus steps through the scene from run to run (the rows take consecutive cameras, so
    each resolution sees its own focus range: times depend on how much lies near the focus, on
    the finest grid). Notes: proxy 0.5 costs about 350 ms of single-thread work (was about 620
    before the slice passes were fused, bit for bit the same result), so about 220 ms on the
    2-core machine when it is quiet, but about 350 ms while another process keeps one core busy."""
    from core.defocus import SimpleBlur, defocus

    z = image.channels["Z"]
    focus = float(np.median(z))
    cameras = iter([SimpleBlur(focus_depth=focus + d, blur_per_unit=4.0) for d in np.linspace(-0.5, 0.5, 50)] * 4)
    rows = []
    for proxy, target, runs in ((0.25, DEFOCUS_PROXY_TARGET, 5 if quick else 11),
                                (0.5, DEFOCUS_PROXY_TARGET, 5 if quick else 11),
                                (1.0, DEFOCUS_FULL_TARGET, 2 if quick else 5)):
        times = measure(lambda proxy=proxy: defocus(image, next(cameras), proxy=proxy, max_radius=32.0), runs)
        label = "full resolution" if proxy == 1.0 else f"proxy {proxy}"
        r = Row(f"defocus_{proxy}", f"defocus, {label} (focus change, radii up to 32 px)",
                f"<= {target * 1000:.0f} ms" if target < 1 else f"<= {target:.0f} s", "ms", times)
        r.met = r.median <= target
        rows.append(r)
    return rows
