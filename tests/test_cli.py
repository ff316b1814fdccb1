"""The headless commands: info, flatten, demo; errors as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from app.cli import main
from core.exr_read import open_exr
from core.kernels import flatten
from core.model import DeepImage
from tests.shared_data import shared_files, shared_path

ALL_EXR = shared_files("**/*.exr")


@pytest.mark.parametrize("rel", ALL_EXR)
def test_info_on_every_file(rel, capsys):
    path = shared_path(rel)
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert str(path) in text and "part 0" in text and "channels" in text
    assert main(["info", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    doc = open_exr(path)
    assert len(info["parts"]) == len(doc.parts)
    for part, got in zip(doc.parts, info["parts"], strict=True):
        assert [c["name"] for c in got["channels"]] == [c.name for c in part.header.channels]
        if isinstance(part.image, DeepImage):
            assert got["samples"]["total_samples"] == part.image.total_samples
            assert got["samples"]["max_samples_per_pixel"] == int(np.diff(part.image.offsets).max(initial=0))


@pytest.mark.parametrize("rel", ALL_EXR)
def test_flatten_on_every_file(rel, tmp_path):
    path = shared_path(rel)
    out = tmp_path / "flat.exr"
    doc = open_exr(path)
    part = next((p for p in doc.parts if p.is_deep), doc.parts[0])
    image = part.image
    assert main(["flatten", str(path), "-o", str(out)]) == 0
    flat = open_exr(out).parts[0].image
    assert flat.data_window == image.data_window and flat.display_window == image.display_window
    assert all(a.dtype == np.float32 for a in flat.channels.values())
    if isinstance(image, DeepImage):
        colours = [c for c in ("R", "G", "B") if c in image.channels]
        ref = flatten(image, channels=colours + ["A"] if "A" in image.channels else colours)
        for c in colours + (["A"] if "A" in image.channels else []):
            np.testing.assert_array_equal(flat.channels[c], ref[c])
        if "A" not in image.channels:  # opaque samples: covered wherever a pixel has one
            np.testing.assert_array_equal(flat.channels["A"], image.sample_counts() > 0)
    else:
        for c, arr in flat.channels.items():
            np.testing.assert_array_equal(arr, image.channels[c].astype(np.float32))


def test_flatten_matches_openimageio_reference(tmp_path):
    out = tmp_path / "flat.exr"
    assert main(["flatten", str(shared_path("deep/oiio/deepalpha.exr")), "-o", str(out)]) == 0
    ours = open_exr(out).parts[0].image.channels["A"]
    ref = open_exr(shared_path("deep/oiio/deepalpha_flatten.ref.exr")).parts[0].image.channels["A"]
    assert np.abs(ours - ref).max() <= 1e-6


def test_flatten_part_option_on_two_part_file(tmp_path):
    path = shared_path("deep/openexr-images/Stereo/Trunks.exr")
    out = tmp_path / "right.exr"
    assert main(["flatten", str(path), "--part", "1", "-o", str(out)]) == 0
    right = open_exr(path, parts=[1]).parts[1].image
    flat = open_exr(out).parts[0].image
    assert flat.data_window == right.data_window
    np.testing.assert_array_equal(flat.channels["A"], flatten(right, channels=["A"])["A"])
    assert main(["flatten", str(path), "--part", "7", "-o", str(out)]) == 2


def test_flatten_refuses_to_overwrite_its_input(tmp_path, capsys):
    src = shared_path("deep/oiio/tinydeep.exr")
    copy = tmp_path / "tiny.exr"
    copy.write_bytes(src.read_bytes())
    before = copy.read_bytes()
    assert main(["flatten", str(copy), "-o", str(copy)]) == 2
    assert copy.read_bytes() == before
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("rel", shared_files("damaged/**/*"))
def test_damaged_files_exit_2_with_one_line(rel, tmp_path, capsys):
    path = shared_path(rel)
    assert main(["info", str(path)]) == 2
    assert main(["flatten", str(path), "-o", str(tmp_path / "x.exr")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("deepscope: ") and str(path) in line for line in err)
    assert not (tmp_path / "x.exr").exists()


def test_demo_command_writes_readable_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--width", "64", "--height", "36"]) == 0
    deep = open_exr(out / "demo.deep.exr").parts[0].image
    flat = open_exr(out / "demo.exr").parts[0].image
    assert (deep.width, deep.height) == (64, 36) and deep.total_samples > 0
    assert "CryptoObject00.R" in flat.channels


def test_entry_point_errors_have_no_traceback(tmp_path):
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"v/1\x01" + b"\0" * 20)
    proc = subprocess.run([sys.executable, "-m", "app.cli", "info", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and str(bad) in proc.stderr


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for cmd in ("info", "flatten", "demo", "view"):
        assert cmd in text
