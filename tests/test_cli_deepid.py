"""``deepscope select`` and ``deepscope convert --to-cryptomatte`` on the shared Deep ID files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main
from core.deepid import deep_mask, find_id_channel, id_channels, parse_query, resolve, select_samples
from core.exr_read import open_exr
from core.hashing import crypto_hash, layer_key, murmur3_32
from core.idmanifest import manifest_from_header
from core.kernels import flatten
from core.model import PixelType
from tests.shared_data import shared_path
from tests.test_deepid import RUNS


def run(capsys, *argv) -> tuple[int, str, str]:
    """``deepscope ARGV``: exit status, stdout, stderr (argparse usage errors exit through SystemExit)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("run_", [r for r in RUNS if r[1]], ids=[r[0] for r in RUNS if r[1]])
def test_select_mask_reproduces_deepidselect(run_, tmp_path, capsys):
    _, _, inp, terms, out, stderr = run_
    src = shared_path("deepid", inp)
    target = tmp_path / "mask.exr"
    code, _, err = run(capsys, "select", "--mask", src, *terms, "-o", target, "-v")
    assert code == 0, err
    assert err.splitlines() == stderr  # -v prints deepidselect's "adding match" lines
    ours = open_exr(target).parts[0]
    ref = open_exr(shared_path("deepid", out)).parts[0]
    assert list(ours.image.channels) == ["A"]
    assert ours.image.pixel_types["A"] == PixelType.FLOAT
    assert ours.image.data_window == ref.image.data_window
    assert ours.image.display_window == ref.image.display_window
    got = ours.image.channels["A"]
    np.testing.assert_array_equal(got.astype(np.float16).view(np.uint16),
                                  ref.image.channels["A"].astype(np.float16).view(np.uint16))


def test_select_deep_reproduces_deepidselect(tmp_path, capsys):
    target = tmp_path / "sel.deep.exr"
    code, out, err = run(capsys, "select", shared_path("deepid", "openexr", "42.deep.exr"), "material:blue",
                         "--and", "model:blob", "-o", target)
    assert code == 0, err
    assert "3921 of 67605 samples" in out
    ours = open_exr(target).parts[0]
    ref = open_exr(shared_path("deepid", "masks", "42_material-blue_AND_model-blob.deep.exr")).parts[0]
    np.testing.assert_array_equal(ours.image.offsets, ref.image.offsets)
    assert set(ours.image.channels) == set(ref.image.channels)
    for name, arr in ref.image.channels.items():
        np.testing.assert_array_equal(ours.image.channels[name], arr, err_msg=name)
        assert ours.image.pixel_types[name] == ref.image.pixel_types[name]
    assert ours.header.compression == "ZIPS"
    # the manifest is carried over (re-encoded by the binding: same content)
    assert manifest_from_header(ours.header).groups == manifest_from_header(ref.header).groups


def test_select_negation_after_double_dash(tmp_path, capsys):
    src = shared_path("deepid", "openexr", "42.deep.exr")
    a, b = tmp_path / "a.exr", tmp_path / "b.exr"
    assert run(capsys, "select", "--mask", src, "-o", a, "--", "material:blue", "-model:blob", "--and",
               "not:particleid:3")[0] == 0
    assert run(capsys, "select", "--mask", src, "material:blue", "not:model:blob", "--and", "-particleid:3",
               "-o", b)[0] == 2  # '-particleid:3' after --and is taken for an option: a usage error
    part = open_exr(src).parts[0]
    manifest = manifest_from_header(part.header)
    query = parse_query([["material:blue", "not:model:blob"], ["not:particleid:3"]])
    expected = deep_mask(part.image, select_samples(part.image, resolve(query, manifest, part.image)))
    np.testing.assert_array_equal(open_exr(a).parts[0].image.channels["A"], expected)


def test_select_errors_are_one_line(tmp_path, capsys):
    src = shared_path("deepid", "openexr", "42.deep.exr")
    flat = shared_path("deepid", "openexr", "manifest_id.exr")
    cases = [
        ("select", tmp_path / "missing.exr", "blue", "-o", tmp_path / "x.exr"),
        ("select", src, "blue", "-o", src),
        ("select", flat, "wool", "-o", tmp_path / "x.exr"),
        ("select", src, "blue", "--part", "3", "-o", tmp_path / "x.exr"),
        ("select", src, "not:", "-o", tmp_path / "x.exr"),
        ("select", "--mask", src, "blue", "-o", tmp_path / "no-such-dir" / "x.exr"),
    ]
    for argv in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "x.exr").exists()


def test_select_without_manifest(tmp_path, capsys):
    from core.writer import write_deep

    part = open_exr(shared_path("deepid", "openexr", "42.deep.exr")).parts[0]
    bare = tmp_path / "bare.exr"
    write_deep(bare, part.image)
    code, _, err = run(capsys, "select", bare, "blue", "-o", tmp_path / "x.exr")
    assert code == 2 and "no ID manifest" in err
    code, _, err = run(capsys, "select", "--mask", bare, "particleid:3", "-o", tmp_path / "x.exr")
    assert code == 0, err
    mask = open_exr(tmp_path / "x.exr").parts[0].image.channels["A"]
    assert int((mask > 0).sum()) == 39
    code, _, err = run(capsys, "select", "--mask", bare, "particleid:99999", "-o", tmp_path / "y.exr")
    assert code == 0 and "warning" in err and "no sample has the ids of 'particleid:99999'" in err
    assert not open_exr(tmp_path / "y.exr").parts[0].image.channels["A"].any()
    code, _, err = run(capsys, "select", "--mask", shared_path("deepid", "openexr", "42.deep.exr"), "zebra",
                       "-o", tmp_path / "z.exr")
    assert code == 0 and "no id in the manifest matches 'zebra'" in err


# --------------------------------------------------------------------------- convert


def crypto_key(flat: dict[str, np.ndarray], layer: str, name: str, ranks: int) -> np.ndarray:
    """A plain Cryptomatte matte: the coverage of every rank whose id is the name's hash."""
    target = np.uint32(crypto_hash(name))
    out = np.zeros(next(iter(flat.values())).shape, np.float32)
    for rank in range(ranks):
        k, pair = divmod(rank, 2)
        ids = flat[f"{layer}{k:02d}.{'RB'[pair]}"].view(np.uint32)
        cov = flat[f"{layer}{k:02d}.{'GA'[pair]}"]
        out += np.where(ids == target, cov, np.float32(0))
    return out


def test_convert_42_to_cryptomatte_keys_like_the_deep_mask(tmp_path, capsys, record_property):
    src = shared_path("deepid", "openexr", "42.deep.exr")
    target = tmp_path / "crypto.exr"
    code, out, err = run(capsys, "convert", src, "--to-cryptomatte", "-o", target, "--group", "material")
    assert code == 0, err
    doc = open_exr(target)
    part = doc.parts[0]
    flat = part.image.channels
    layer = "CryptoMaterial"
    key = layer_key(layer)
    assert part.header.get(f"cryptomatte/{key}/name") == layer
    assert part.header.get(f"cryptomatte/{key}/hash") == "MurmurHash3_32"
    assert part.header.get(f"cryptomatte/{key}/conversion") == "uint32_to_float32"
    manifest = json.loads(part.header.get(f"cryptomatte/{key}/manifest"))
    assert manifest == {n: f"{crypto_hash(n):08x}" for n in
                        ("blue", "cyan", "green", "magenta", "red", "white", "yellow")}
    expected_channels = {"R", "G", "B", "A"} | {f"{layer}{k:02d}.{c}" for k in range(3) for c in "RGBA"}
    assert set(flat) == expected_channels
    assert all(part.image.pixel_types[c] == PixelType.FLOAT for c in flat)

    deep = open_exr(src).parts[0]
    deep_manifest = manifest_from_header(deep.header)
    beauty = flatten(deep.image, ["R", "G", "B", "A"])
    for c in "RGBA":
        np.testing.assert_array_equal(flat[c], beauty[c])
    alpha = flat["A"]
    selected = select_samples(deep.image, resolve(parse_query([["material:blue"]]), deep_manifest, deep.image))
    mask = deep_mask(deep.image, selected)
    keyed = crypto_key(flat, layer, "blue", 6)
    # coverage is premultiplied (ranks sum to alpha), the deep mask is normalised by alpha
    premult_diff = float(np.abs(keyed - mask * alpha).max())
    covered = alpha > 0
    normalised_diff = float(np.abs(keyed[covered] / alpha[covered] - mask[covered]).max())
    record_property("max_abs_key_minus_mask_times_alpha", premult_diff)
    record_property("max_abs_key_over_alpha_minus_mask", normalised_diff)
    print(f"42.deep.exr blue: max |key - mask*A| = {premult_diff:.3g}, max |key/A - mask| = {normalised_diff:.3g}")
    assert premult_diff < 1e-6
    assert normalised_diff < 1e-5
    # no pixel of this file has more than 5 materials, so the 6 ranks hold all the coverage
    total = sum(flat[f"{layer}{k:02d}.{c}"] for k in range(3) for c in "GA")
    np.testing.assert_allclose(total, alpha, atol=2e-6)


def test_convert_multivariate_names_and_rank_truncation(tmp_path, capsys):
    src = shared_path("deepid", "openexr", "multivariate.deep.exr")
    target = tmp_path / "crypto.exr"
    code, out, err = run(capsys, "convert", src, "--to-cryptomatte", "-o", target, "--ranks", "1",
                         "--layer", "uniqueIds")
    assert code == 0, err
    part = open_exr(target).parts[0]
    key = layer_key("uniqueIds")
    manifest = json.loads(part.header.get(f"cryptomatte/{key}/manifest"))
    deep = open_exr(src).parts[0]
    deep_manifest = manifest_from_header(deep.header)
    group = deep_manifest.groups[0]
    present = set(np.unique(deep.image.channels["id"]).tolist())
    assert manifest == {";".join(group.entries[v]): f"{crypto_hash(';'.join(group.entries[v])):08x}"
                        for v in present}
    # the name is the text the Deep ID hashes: same MurmurHash3_32 unless the fix-up flips bit 23
    for v in present:
        assert murmur3_32(";".join(group.entries[v])) == v
    assert "circle/medium;blue" in manifest
    # one rank: channels 00.R/G hold it, 00.B/A are empty; the kept rank is each pixel's largest
    flat = part.image.channels
    assert not flat["uniqueIds00.B"].any() and not flat["uniqueIds00.A"].any()
    channel = find_id_channel(id_channels(deep.image, deep_manifest), "id")
    from core.deepid import id_coverage

    cov = id_coverage(deep.image, channel, ranks=4)
    np.testing.assert_array_equal(flat["uniqueIds00.G"], cov.rank_weights[:, :, 0])
    assert np.all(flat["uniqueIds00.G"] <= flat["A"] + 1e-6)


def test_convert_errors(tmp_path, capsys):
    src = shared_path("deepid", "openexr", "42.deep.exr")
    for argv, text in [
        (("convert", src, "--to-cryptomatte", "-o", tmp_path / "c.exr"), "choose one with --group"),
        (("convert", src, "--to-cryptomatte", "-o", tmp_path / "c.exr", "--group", "nope"), "no id channel"),
        (("convert", src, "--to-cryptomatte", "-o", tmp_path / "c.exr", "--group", "material", "--ranks", "0"),
         "--ranks"),
        (("convert", src, "--to-cryptomatte", "-o", src, "--group", "material"), "refusing to overwrite"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2 and text in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run(capsys, "convert", src, "-o", tmp_path / "c.exr")
    assert code == 2  # --to-cryptomatte is required
    assert not (tmp_path / "c.exr").exists()


def test_convert_64bit_pairs(tmp_path, capsys):
    src = shared_path("deepid", "openexr", "64.deep.exr")
    target = tmp_path / "c.exr"
    code, _, err = run(capsys, "convert", src, "--to-cryptomatte", "-o", target, "--group", "model")
    assert code == 0, err
    part = open_exr(target).parts[0]
    manifest = json.loads(part.header.get(f"cryptomatte/{layer_key('CryptoModel')}/manifest"))
    assert set(manifest) == {"blob/small", "blob/medium", "blob/big", "circle/small", "circle/medium",
                             "circle/big"}
    deep = open_exr(src).parts[0]
    deep_manifest = manifest_from_header(deep.header)
    selected = select_samples(deep.image, resolve(parse_query([["model:blob/small"]]), deep_manifest, deep.image))
    keyed = crypto_key(part.image.channels, "CryptoModel", "blob/small", 6)
    np.testing.assert_allclose(keyed, deep_mask(deep.image, selected) * part.image.channels["A"], atol=1e-6)
