"""``deepscope defocus`` and ``deepscope recolor``: real files in, RGBA float32 EXRs out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.cli import main
from core.deepid import parse_query, resolve
from core.defocus import SimpleBlur, ThinLens, defocus
from core.exr_read import open_exr
from core.idmanifest import manifest_from_header
from core.kernels import flatten
from core.model import Box, DeepImage, PixelType
from core.recolor import Grade, recolor, select_ids
from core.writer import write_deep, write_flat
from tests.shared_data import shared_path

RGBA = ("R", "G", "B", "A")


def run(capsys, *argv) -> tuple[int, str, str]:
    """``deepscope ARGV``: exit status, stdout, stderr (usage errors exit through SystemExit)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def synthetic(tmp_path, attributes=None, with_z=True) -> tuple:
    """A small deep file with an offset data window (and its image)."""
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, (12, 16))
    n = int(counts.sum())
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts.reshape(-1), out=offsets[1:])
    a = rng.uniform(0.2, 1.0, n).astype(np.float32)
    chans = {"R": (rng.random(n) * a).astype(np.float32), "G": (rng.random(n) * a).astype(np.float32),
             "B": (rng.random(n) * a).astype(np.float32), "A": a}
    if with_z:
        chans["Z"] = np.sort(rng.uniform(1, 9, n)).astype(np.float32)  # any order within pixels is fine
    types = {k: PixelType.FLOAT for k in chans}
    image = DeepImage(Box(10, 20, 25, 31), Box(0, 0, 63, 47), offsets, chans, types)
    from core.kernels import sort_samples

    image = sort_samples(image)
    path = tmp_path / "in.deep.exr"
    write_deep(path, image, attributes=attributes)
    return path, open_exr(path).parts[0].image


def read_rgba(path) -> tuple[DeepImage, dict]:
    part = open_exr(path).parts[0]
    assert list(part.image.channels) == list(RGBA) or set(part.image.channels) == set(RGBA)
    assert all(part.image.pixel_types[c] == PixelType.FLOAT for c in RGBA)
    return part.image, part.image.channels


# --------------------------------------------------------------------------- defocus


def test_defocus_writes_the_core_result_with_the_same_windows(tmp_path, capsys):
    src, image = synthetic(tmp_path)
    out = tmp_path / "out.exr"
    code, stdout, err = run(capsys, "defocus", src, "--focus-distance", 4, "--fstop", 2, "--focal-length", 85,
                            "--units-to-m", 0.1, "--max-radius", 8, "-o", out)
    assert code == 0, err
    assert "wrote" in stdout
    flat, channels = read_rgba(out)
    assert flat.data_window == image.data_window and flat.display_window == image.display_window
    want = defocus(image, ThinLens(4.0, 2.0, 85.0, 36.0, 0.1), max_radius=8.0)
    for c in RGBA:
        np.testing.assert_array_equal(channels[c], want[c])


def test_defocus_with_a_closed_aperture_is_the_flattened_image(tmp_path, capsys):
    src, image = synthetic(tmp_path)
    out = tmp_path / "out.exr"
    code, _, err = run(capsys, "defocus", src, "--focus-distance", 4, "--fstop", "inf", "-o", out)
    assert code == 0, err
    _, channels = read_rgba(out)
    want = flatten(image, list(RGBA))
    for c in RGBA:
        np.testing.assert_array_equal(channels[c], want[c])


def test_defocus_simple_mode(tmp_path, capsys):
    src, image = synthetic(tmp_path)
    out = tmp_path / "out.exr"
    code, _, err = run(capsys, "defocus", src, "--focus-distance", 3, "--blur-per-unit", 0.5, "-o", out)
    assert code == 0, err
    _, channels = read_rgba(out)
    want = defocus(image, SimpleBlur(3.0, 0.5))
    for c in RGBA:
        np.testing.assert_array_equal(channels[c], want[c])


def test_defocus_reads_the_camera_from_the_header(tmp_path, capsys):
    src, image = synthetic(tmp_path, attributes={"cameraFocalLength": 35.0, "cameraFNumber": 2.8,
                                                 "cameraTargetDistance": 5.0})
    out = tmp_path / "out.exr"
    code, _, err = run(capsys, "defocus", src, "-o", out)
    assert code == 0, err
    assert "f-stop 2.8 from cameraFNumber" in err and "focus distance 5 from cameraTargetDistance" in err
    _, channels = read_rgba(out)
    want = defocus(image, ThinLens(5.0, 2.8, 35.0))
    np.testing.assert_array_equal(channels["A"], want["A"])


@pytest.mark.parametrize("args, message", [
    (["--focus-distance", 4], "no f-stop"),
    (["--fstop", 2], "no focus distance"),
    (["--focus-distance", 4, "--fstop", -2], "f_stop must be a positive number"),
    (["--focus-distance", 0.01, "--fstop", 2], "beyond the focal length"),
    (["--focus-distance", 4, "--fstop", 2, "--max-radius", -1], "max_radius"),
    (["--focus-distance", 4, "--fstop", 2, "--part", 3], "no part 3"),
])
def test_defocus_errors_are_one_line(tmp_path, capsys, args, message):
    src, _ = synthetic(tmp_path)
    out = tmp_path / "out.exr"
    code, _, err = run(capsys, "defocus", src, *args, "-o", out)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_defocus_needs_depth_and_a_deep_part(tmp_path, capsys):
    src, _ = synthetic(tmp_path, with_z=False)
    code, _, err = run(capsys, "defocus", src, "--focus-distance", 4, "--fstop", 2, "-o", tmp_path / "o.exr")
    assert code == 2 and "no Z channel" in err
    flat = tmp_path / "flat.exr"
    write_flat(flat, {"R": np.zeros((2, 2), np.float32)}, Box(0, 0, 1, 1), Box(0, 0, 1, 1))
    code, _, err = run(capsys, "defocus", flat, "--focus-distance", 4, "--fstop", 2, "-o", tmp_path / "o.exr")
    assert code == 2 and "no deep part" in err
    code, _, err = run(capsys, "defocus", tmp_path / "missing.exr", "--focus-distance", 4, "--fstop", 2,
                       "-o", tmp_path / "o.exr")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_defocus_never_writes_over_its_input(tmp_path, capsys):
    src, _ = synthetic(tmp_path)
    before = src.read_bytes()
    code, _, err = run(capsys, "defocus", src, "--focus-distance", 4, "--fstop", 2, "-o", src)
    assert code == 2 and "refusing to overwrite" in err
    assert src.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [src.name]  # no temporary file left behind


def test_defocus_on_the_oiio_deep_tiled_file(tmp_path, capsys):
    """deepalpha.exr (Arnold, deep tiled, A and Z only): the field of view comes from its worldToNDC."""
    src = shared_path("deep", "oiio", "deepalpha.exr")
    out = tmp_path / "out.exr"
    code, _, err = run(capsys, "defocus", src, "--focus-distance", 4, "--fstop", 1.4, "-o", out)
    assert code == 0, err
    assert "focal length" in err and "worldToNDC" in err
    part = open_exr(out).parts[0]
    assert set(part.image.channels) == {"A"}
    image = open_exr(src).parts[0].image
    f = 36.0 / (2.0 * math.tan(math.radians(22.5)))
    want = defocus(image, ThinLens(4.0, 1.4, f))
    np.testing.assert_allclose(part.image.channels["A"], want["A"], rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- recolor


def test_recolor_by_name_matches_core(tmp_path, capsys):
    src = shared_path("deepid", "openexr", "42.deep.exr")
    out = tmp_path / "out.exr"
    code, stdout, err = run(capsys, "recolor", src, "--select", "material:blue", "--and", "model:blob",
                            "--gain", "0.5,1,2", "--hue", 30, "-o", out)
    assert code == 0, err
    assert "recolored 3921 of 67605 samples" in stdout
    part = open_exr(src).parts[0]
    manifest = manifest_from_header(part.header, src)
    selection = resolve(parse_query([["material:blue"], ["model:blob"]]), manifest, part.image)
    want = recolor(part.image, select_ids(part.image, selection), Grade(gain=(0.5, 1.0, 2.0), hue=30.0))
    flat, channels = read_rgba(out)
    assert flat.data_window == part.image.data_window
    for c in RGBA:
        np.testing.assert_array_equal(channels[c], want[c])


@pytest.mark.parametrize("action, grade", [
    (["--remove"], Grade(remove=True)),
    (["--keep-percent", 50], Grade(keep_percent=50.0)),
    (["--vary", 3], Grade(vary_seed=3, vary_amount=0.5)),
    (["--vary", 3, "--vary-amount", 1], Grade(vary_seed=3, vary_amount=1.0)),
    (["--tint", "1,0,0"], Grade(tint=(1.0, 0.0, 0.0), mix=1.0)),
    (["--tint", "0.2", "--mix", 0.3, "--saturation", 0], Grade(tint=(0.2, 0.2, 0.2), mix=0.3, saturation=0.0)),
])
def test_recolor_actions(tmp_path, capsys, action, grade):
    src = shared_path("deepid", "generated", "shapes.0001.deep.exr")
    out = tmp_path / "out.exr"
    code, _, err = run(capsys, "recolor", src, "--select", "blob", "circle", "--id-channel", "particleid",
                       *action, "-o", out)
    assert code == 0, err
    part = open_exr(src).parts[0]
    manifest = manifest_from_header(part.header, src)
    selection = resolve(parse_query([["blob", "circle"]]), manifest, part.image)
    want = recolor(part.image, select_ids(part.image, selection, channel="particleid"), grade)
    _, channels = read_rgba(out)
    for c in RGBA:
        np.testing.assert_array_equal(channels[c], want[c])


def test_recolor_by_number_and_nothing_found(tmp_path, capsys):
    src = shared_path("deepid", "generated", "shapes.0001.deep.exr")
    out = tmp_path / "out.exr"
    code, stdout, err = run(capsys, "recolor", src, "--select", "particleid:4000000000", "--gain", 2, "-o", out)
    assert code == 0, err
    assert "warning" in err and "recolored 0 of" in stdout
    _, channels = read_rgba(out)
    image = open_exr(src).parts[0].image
    want = flatten(image, list(RGBA))
    for c in RGBA:
        np.testing.assert_array_equal(channels[c], want[c])


@pytest.mark.parametrize("args, message", [
    (["--select", "blob"], "say what to do"),
    (["--select", "blob", "--mix", 0.5, "--gain", 2], "--mix needs --tint"),
    (["--select", "blob", "--keep-percent", 120], "keep_percent"),
    (["--select", "blob", "--gain", 2, "--id-channel", "nope"], "no id channel 'nope'"),
])
def test_recolor_errors_are_one_line(tmp_path, capsys, args, message):
    src = shared_path("deepid", "generated", "shapes.0001.deep.exr")
    out = tmp_path / "out.exr"
    code, _, err = run(capsys, "recolor", src, *args, "-o", out)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_recolor_usage_errors(tmp_path, capsys):
    src = shared_path("deepid", "generated", "shapes.0001.deep.exr")
    code, _, err = run(capsys, "recolor", src, "--gain", 2, "-o", tmp_path / "o.exr")  # no --select
    assert code == 2
    code, _, err = run(capsys, "recolor", src, "--select", "blob", "--gain", "1,2", "-o", tmp_path / "o.exr")
    assert code == 2 and "R,G,B" in err


def test_recolor_names_need_a_manifest(tmp_path, capsys):
    src, _ = synthetic(tmp_path)
    code, _, err = run(capsys, "recolor", src, "--select", "blob", "--gain", 2, "-o", tmp_path / "o.exr")
    assert code == 2 and "no ID manifest" in err


def test_recolor_never_writes_over_its_input(tmp_path, capsys):
    src = tmp_path / "copy.deep.exr"
    src.write_bytes(shared_path("deepid", "generated", "shapes.0001.deep.exr").read_bytes())
    before = src.read_bytes()
    code, _, err = run(capsys, "recolor", src, "--select", "blob", "--remove", "-o", src)
    assert code == 2 and "refusing to overwrite" in err
    assert src.read_bytes() == before


def test_help_lists_the_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "defocus" in out and "recolor" in out
    code, out, _ = run(capsys, "recolor", "--help")
    assert code == 0 and "--keep-percent" in out and "deepidselect" in out
