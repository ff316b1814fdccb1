"""``deepscope matte``: reference masks through the command line, listings and clean errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from app import cli_matte
from core.cryptomatte import crypto_matte, crypto_ranks, find_document_crypto_layers, select_layer
from core.exr_read import open_exr
from core.hashing import crypto_hash
from core.selection import escape_name
from tests.shared_data import shared_files, shared_path

CAPI = "cryptomatte/cryptomatte-api"
PSYOP = "cryptomatte/psyop"


def run(*argv: str) -> int:
    """Parse with a parser that only knows ``matte`` (as app/cli.py registers it) and run."""
    parser = argparse.ArgumentParser(prog="deepscope")
    sub = parser.add_subparsers(dest="command")
    cli_matte.add_parser(sub)
    args = parser.parse_args(["matte", *argv])
    return args.func(args)


def data(rel: str) -> str:
    return str(shared_path(*rel.split("/")))


def sanitize(name: str) -> str:
    for c in "/\\\n:":
        name = name.replace(c, "_")
    return name


# one source image per reference folder is enough here: test_cryptomatte covers every image
SOURCES = {
    "arnold": (
        "arnold_three_crypto.exr",
        {"crypto_object": "crypto_object", "crypto_material": "crypto_material"},
    ),
    "clarisse": (
        "clarisse_two_crypto.exr",
        {"crypto_object": "cryptomatte_asset", "crypto_material": "cryptomatte_material"},
    ),
    "hou_karma_cpu": ("karma_cpu_solaris_one_crypto_sidecar_manif.exr", {"crypto_object": "CryptoObject"}),
    "hou_karma_xpu": ("karma_xpu_solaris_one_crypto.exr", {"crypto_object": "CryptoObject"}),
}


def _cases():
    out = []
    for folder, (image, layers) in SOURCES.items():
        for ref in shared_files(f"{CAPI}/reference/{folder}/*.exr"):
            stem = Path(ref).stem
            prefix = "crypto_material" if stem.startswith("crypto_material") else "crypto_object"
            out.append(
                pytest.param(
                    f"{CAPI}/images/{image}",
                    layers[prefix],
                    ref,
                    stem[len(prefix) + 1 :],
                    id=f"{folder}-{stem}",
                )
            )
    return out


CASES = _cases()


@pytest.mark.parametrize(("image", "layer_name", "ref", "sanitized"), CASES)
def test_reference_masks_through_the_cli(tmp_path, capsys, image, layer_name, ref, sanitized):
    src = data(image)
    headers = [p.header for p in open_exr(src, load=False).parts]
    layer = select_layer(find_document_crypto_layers(headers, src), layer_name)
    names = [n for n in layer.manifest if sanitize(n) == sanitized] or [sanitized]
    token = escape_name(names[0])
    out = tmp_path / "matte.exr"
    assert run(src, "--layer", layer_name, "--select", token, "-o", str(out)) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    got = open_exr(out).parts[0]
    want = open_exr(data(ref)).parts[0].image
    source = headers[layer.part_index]
    assert list(got.image.channels) == ["A"]
    assert got.image.channels["A"].dtype == np.float32
    assert got.header.channels[0].pixel_type.name == "FLOAT"
    assert got.image.data_window == source.data_window and got.image.display_window == source.display_window
    np.testing.assert_array_equal(got.image.channels["A"], want.channels["Y"])


def test_cli_cases_cover_every_reference_mask():
    if not CASES:
        pytest.skip("shared testdata not found")
    assert {c.values[2] for c in CASES} == set(shared_files(f"{CAPI}/reference/*/*.exr"))


def test_png_is_the_display_window(tmp_path):
    oiio = pytest.importorskip("OpenImageIO")
    src = data(f"{PSYOP}/cornellBox_CryptoWildcard.0001.exr")
    out = tmp_path / "rect.png"
    assert run(src, "--select", "*rect*", "-o", str(out)) == 0
    buf = oiio.ImageBuf(str(out))
    spec = buf.spec()
    assert (spec.width, spec.height, spec.nchannels, str(spec.format)) == (960, 540, 1, "uint16")
    pixels = buf.get_pixels(oiio.UINT16)[:, :, 0].astype(np.int64)
    doc = open_exr(src)
    header = doc.parts[0].header
    layer = select_layer(find_document_crypto_layers([header], src), None)
    ranks = crypto_ranks(layer, doc.parts[0].image)
    matte = crypto_matte(ranks.ids, ranks.coverage, [crypto_hash("rect_[_top"), crypto_hash("rect_][_bot")])
    want = np.zeros((540, 960))
    want[0:540, 167:793] = np.rint(np.clip(matte.astype(np.float64), 0, 1) * 65535)
    np.testing.assert_array_equal(pixels, want)


def test_numeric_and_matte_list_selections_agree(tmp_path):
    src = data("cryptomatte/oiio/cryptoasset.exr")
    a, b, c = (tmp_path / f"{n}.exr" for n in "abc")
    assert run(src, "--select", "<3.36000126251e-27>", "<7.36562399642e+18>", "-o", str(a)) == 0
    assert run(src, "--matte-list", "set, bunny", "-o", str(b)) == 0
    assert run(src, "--select", "bunny", "--matte-list", "<7.36562399642e+18>", "-o", str(c)) == 0
    ma, mb, mc = (open_exr(p).parts[0].image.channels["A"] for p in (a, b, c))
    assert ma.any()
    np.testing.assert_array_equal(ma, mb)
    np.testing.assert_array_equal(ma, mc)


def test_special_names_through_a_matte_list(tmp_path):
    src = data(f"{PSYOP}/special_chars.exr")
    out = tmp_path / "q.exr"
    text = r'"name containing a \"quote\"  ", "name, with, comma"'
    assert run(src, "--matte-list", text, "--strict", "-o", str(out)) == 0
    got = open_exr(out).parts[0].image.channels["A"]
    assert float(got.sum(dtype=np.float64)) == pytest.approx(107.033 + 93.325, abs=2e-3)


def test_list_prints_names_and_ids(capsys):
    assert run(data(f"{PSYOP}/special_chars.exr"), "--list") == 0
    text = capsys.readouterr().out
    assert "special_chars (key fbb35e3" in text
    assert "9623511e  <-1.31926312124e-25>" in text and "равнина" in text
    assert 'name containing a "quote"  ' in text
    assert run(data(f"{CAPI}/images/arnold_three_crypto.exr"), "--list") == 0
    text = capsys.readouterr().out
    for name in ("crypto_asset", "crypto_material", "crypto_object", "Box001", "6d15e631"):
        assert name in text
    assert "00800000  <1.17549435082e-38>" in text and 'hash of the empty name ""' in text


def _one_line_error(capsys, *argv) -> str:
    assert run(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_errors_are_one_line_with_status_2(tmp_path, capsys):
    three = data(f"{CAPI}/images/arnold_three_crypto.exr")
    out = str(tmp_path / "x.exr")
    err = _one_line_error(capsys, three, "--layer", "nope", "--select", "Box001", "-o", out)
    assert "no Cryptomatte layer 'nope'; available: crypto_asset, crypto_material, crypto_object" in err
    err = _one_line_error(capsys, three, "--select", "Box001", "-o", out)
    assert "several Cryptomatte layers" in err
    err = _one_line_error(capsys, str(tmp_path / "missing.exr"), "--select", "a", "-o", out)
    assert "missing.exr: no such file" in err
    half = data(f"{CAPI}/images/karma_cpu_solaris_one_crypto_16bit.exr")
    err = _one_line_error(capsys, half, "--select", "/cube1", "-o", out)
    assert "HALF" in err and "CryptoObject00.R" in err
    assert not (tmp_path / "x.exr").exists()
    err = _one_line_error(
        capsys, three, "--layer", "crypto_object", "--select", "Box001", "-o", str(tmp_path / "x.tif")
    )
    assert ".exr or .png" in err
    err = _one_line_error(capsys, three, "--layer", "crypto_object", "-o", out)
    assert "nothing selected" in err
    err = _one_line_error(
        capsys, three, "--layer", "crypto_object", "--strict", "--select", "Nope*", "-o", out
    )
    assert "Nope*: no manifest name matches" in err
    err = _one_line_error(capsys, three, "--layer", "crypto_object", "--select", "Box001", "-o", three)
    assert "arnold_three_crypto.exr" in err
    err = _one_line_error(capsys, data("deep/oiio/tinydeep.exr"), "--list")
    assert "no Cryptomatte layer found" in err


def test_unknown_names_warn_and_key_by_hash(tmp_path, capsys):
    src = data(f"{CAPI}/images/arnold_one_crypto_three_levels.exr")
    out = tmp_path / "x.exr"
    assert run(src, "--select", "cdcdcdcd", "-o", str(out)) == 0
    captured = capsys.readouterr()
    assert "cdcdcdcd: not in the manifest, keyed by the hash of the name" in captured.err
    assert not open_exr(out).parts[0].image.channels["A"].any()


def test_wired_into_the_deepscope_command(tmp_path, capsys):
    cli = pytest.importorskip("app.cli")
    src = data(f"{CAPI}/images/karma_cpu_solaris_one_crypto.exr")
    out = tmp_path / "cube.exr"
    assert cli.main(["matte", src, "--select", "/cube1", "-o", str(out)]) == 0
    want = open_exr(data(f"{CAPI}/reference/hou_karma_cpu/crypto_object__cube1.exr")).parts[0].image
    np.testing.assert_array_equal(open_exr(out).parts[0].image.channels["A"], want.channels["Y"])
