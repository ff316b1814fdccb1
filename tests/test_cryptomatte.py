"""Cryptomatte in core: finding layers, manifests, mattes, the picker and previews.

Third-party facts come from /work/shared/testdata (README sections 1-3 and "Reference facts");
every kernel is checked against a plain Python reference on random inputs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.cryptomatte import (
    CryptoError,
    CryptoRanks,
    ManifestError,
    crypto_edges,
    crypto_id_at,
    crypto_matte,
    crypto_preview,
    crypto_ranks,
    find_crypto_layers,
    find_document_crypto_layers,
    id_colour,
    id_colours,
    id_coverage,
    id_stack,
    layer_matte,
    load_manifest,
    matte_overlay,
    read_manifest_file,
    select_layer,
)
from core.errors import SelectionError
from core.exr_read import open_exr
from core.hashing import crypto_hash, layer_key
from core.model import Box, ChannelInfo, FlatImage, PixelType
from core.selection import Selection
from tests.shared_data import shared_files, shared_path

CAPI = "cryptomatte/cryptomatte-api"
PSYOP = "cryptomatte/psyop"

# ============================================================ helpers


class Docs:
    """Opened test files, read once per module (the explicit cache of this test module)."""

    def __init__(self):
        self._docs = {}

    def __call__(self, rel: str):
        if rel not in self._docs:
            path = shared_path(*rel.split("/"))
            doc = open_exr(path)
            layers = find_document_crypto_layers([p.header for p in doc.parts], path)
            self._docs[rel] = (doc, layers)
        return self._docs[rel]

    def layer(self, rel: str, name: str | None = None):
        doc, layers = self(rel)
        layer = select_layer(layers, name)
        return layer, doc.parts[layer.part_index].image


@pytest.fixture(scope="module")
def docs():
    return Docs()


def ref_matte(ids: np.ndarray, cov: np.ndarray, selected) -> np.ndarray:
    """Obvious reference: per pixel, float32 sum in rank order of selected coverage."""
    chosen = {int(s) for s in selected}
    r_count, h, w = ids.shape
    out = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            acc = np.float32(0.0)
            for r in range(r_count):
                if int(ids[r, y, x]) in chosen:
                    with np.errstate(invalid="ignore", over="ignore"):
                        acc = np.float32(acc + cov[r, y, x])
            out[y, x] = acc
    return out


def fmix32(h: int) -> int:
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def ref_preview(ids: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """The OIIO --cryptomatte-colors formula (testdata README section 3), pixel by pixel in float64.
    Which side of the 1e-5 threshold a float32 coverage of exactly 1e-5 falls is not
    documented; we compare with the float32 1e-5 as C++ code with ``1e-5f`` would."""
    r_count, h, w = ids.shape
    out = np.zeros((h, w, 3))
    for y in range(h):
        for x in range(w):
            for r in range(r_count):
                bits, c = int(ids[r, y, x]), float(cov[r, y, x])
                if bits & 0x7FFFFFFF == 0 or not c >= float(np.float32(1e-5)):  # a float32 threshold
                    continue
                m = fmix32(bits)
                out[y, x, 0] += c * m / 4294967295.0
                m = fmix32(m + 0x0101)
                out[y, x, 1] += c * m / 4294967295.0
                m = fmix32(m + 0x020000)
                out[y, x, 2] += c * m / 4294967295.0
    return out


def ref_pick(ids_px, cov_px, selected, remove=False):
    """The Nuke gizmo's picker, written as its loops are: per channel group, (R,G) then (B,A)."""
    saw_bg = False
    for g in range(0, len(ids_px), 2):
        for k in (g, g + 1):
            if k >= len(ids_px):
                break
            idv = np.uint32(ids_px[k]).view(np.float32)
            if idv == 0.0 or cov_px[k] == 0.0:
                if saw_bg:
                    break
                saw_bg = True
                continue
            if (int(ids_px[k]) in selected) == remove:
                return int(ids_px[k])
    return None


def sanitize(name: str) -> str:
    for c in "/\\\n:":
        name = name.replace(c, "_")
    return name


def write_exr(path, channels: dict, attrs: dict | None = None, parts=None):
    """A small FLOAT scanline EXR written with the OpenEXR binding (one part, or several)."""

    def header(extra):
        h = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        h.update(extra or {})
        return h

    if parts is None:
        OpenEXR.File(header(attrs), channels).write(str(path))
    else:
        OpenEXR.File([OpenEXR.Part(header(a), c, n) for n, c, a in parts]).write(str(path))


def rank_channels(base: str, ids: np.ndarray, cov: np.ndarray, style: str = "RGBA") -> dict:
    """Rank channels <base>NN.<suffix> from (ranks, H, W) ids (uint32 bits) and coverage."""
    suffixes = {"RGBA": "RGBA", "long": ("red", "green", "blue", "alpha"), "lower": "rgba"}[style]
    out = {}
    for r in range(ids.shape[0]):
        group, second = divmod(r, 2)
        id_sfx, cov_sfx = (suffixes[2], suffixes[3]) if second else (suffixes[0], suffixes[1])
        out[f"{base}{group:02d}.{id_sfx}"] = np.ascontiguousarray(ids[r].view(np.float32))
        out[f"{base}{group:02d}.{cov_sfx}"] = np.ascontiguousarray(cov[r])
    return out


def crypto_attrs(
    name: str, manifest: str | None = None, key: str | None = None, prefix="cryptomatte/", **extra
) -> dict:
    key = key or layer_key(name)
    out = {
        f"{prefix}{key}/name": name,
        f"{prefix}{key}/hash": "MurmurHash3_32",
        f"{prefix}{key}/conversion": "uint32_to_float32",
    }
    if manifest is not None:
        out[f"{prefix}{key}/manifest"] = manifest
    out.update({f"{prefix}{key}/{k}": v for k, v in extra.items()})
    return out


NAMES = ["alpha", "beta", "gamma/δ", "with, comma"]
MANIFEST = {n: crypto_hash(n) for n in NAMES}
MANIFEST_JSON = json.dumps({n: f"{v:08x}" for n, v in MANIFEST.items()})


def small_ranks(seed=0, ranks=4, h=6, w=5):
    rng = np.random.default_rng(seed)
    pool = np.array([0] + list(MANIFEST.values()), dtype=np.uint32)
    ids = pool[rng.integers(0, len(pool), size=(ranks, h, w))]
    cov = rng.random((ranks, h, w), dtype=np.float32)
    cov[ids == 0] = 0
    return ids, cov


# ============================================================ reference masks (CAPI), exact


def _reference_cases():
    groups = {
        "arnold": (
            [
                "arnold_one_crypto_sidecar_manif.exr",
                "arnold_one_crypto_three_levels.exr",
                "arnold_three_crypto.exr",
            ],
            {"crypto_object": "crypto_object", "crypto_material": "crypto_material"},
        ),
        "clarisse": (
            ["clarisse_two_crypto.exr"],
            {"crypto_object": "cryptomatte_asset", "crypto_material": "cryptomatte_material"},
        ),
        "hou_karma_cpu": (
            ["karma_cpu_solaris_one_crypto.exr", "karma_cpu_solaris_one_crypto_sidecar_manif.exr"],
            {"crypto_object": "CryptoObject"},
        ),
        "hou_karma_xpu": (
            ["karma_xpu_solaris_one_crypto.exr", "karma_xpu_solaris_one_crypto_sidecar_manif.exr"],
            {"crypto_object": "CryptoObject"},
        ),
    }
    cases = []
    for folder, (images, layers) in groups.items():
        for ref in shared_files(f"{CAPI}/reference/{folder}/*.exr"):
            stem = Path(ref).stem
            prefix = "crypto_material" if stem.startswith("crypto_material") else "crypto_object"
            for image in images:
                if prefix == "crypto_material" and image != "arnold_three_crypto.exr" and folder == "arnold":
                    continue  # only arnold_three_crypto has a crypto_material layer
                cases.append(
                    pytest.param(
                        f"{CAPI}/images/{image}",
                        layers[prefix],
                        ref,
                        stem[len(prefix) + 1 :],
                        id=f"{image}-{stem}",
                    )
                )
    return cases


REFERENCE_CASES = _reference_cases()


def reference_selection(layer, sanitized: str) -> Selection:
    names = [n for n in layer.manifest if sanitize(n) == sanitized]
    assert len(names) <= 1
    return Selection.from_names(names or [sanitized], layer.manifest)


@pytest.mark.parametrize(("image", "layer_name", "ref", "sanitized"), REFERENCE_CASES)
def test_reference_masks_exact(docs, image, layer_name, ref, sanitized):
    layer, img = docs.layer(image, layer_name)
    expected = open_exr(shared_path(*ref.split("/"))).parts[0].image
    matte = layer_matte(layer, img, reference_selection(layer, sanitized))
    assert expected.data_window == img.data_window
    assert matte.dtype == np.float32
    np.testing.assert_array_equal(matte, expected.channels["Y"])


def test_reference_cases_cover_every_mask():
    if not REFERENCE_CASES:
        pytest.skip("shared testdata not found")
    refs = {c.values[2] for c in REFERENCE_CASES}
    assert refs == set(shared_files(f"{CAPI}/reference/*/*.exr"))
    assert len(refs) == 15


@pytest.mark.parametrize(
    ("image", "layer", "name", "total", "pixels"),
    [
        ("arnold_three_crypto.exr", "crypto_object", "Box001", 2354.6143, 2538),
        ("arnold_three_crypto.exr", "crypto_object", "Plane001", 45241.879, 45799),
        ("arnold_three_crypto.exr", "crypto_object", "Sphere001", 1224.7378, 1349),
        ("arnold_three_crypto.exr", "crypto_material", "Material__25", 48821.234, 49120),
        ("karma_cpu_solaris_one_crypto.exr", "CryptoObject", "/grid1/mesh_0", 3645.564, 4099),
        ("karma_cpu_solaris_one_crypto.exr", "CryptoObject", "/sphere1", 215.756, 272),
        ("karma_cpu_solaris_one_crypto.exr", "CryptoObject", "/cube1", 499.943, 588),
        ("karma_xpu_solaris_one_crypto.exr", "CryptoObject", "/grid1/mesh_0", 3647.209, 4115),
        ("karma_xpu_solaris_one_crypto.exr", "CryptoObject", "/sphere1", 215.369, 276),
        ("karma_xpu_solaris_one_crypto.exr", "CryptoObject", "/cube1", 498.562, 601),
    ],
)
def test_capi_quick_checks(docs, image, layer, name, total, pixels):
    la, img = docs.layer(f"{CAPI}/images/{image}", layer)
    m = layer_matte(la, img, Selection.from_names([name], la.manifest))
    assert float(m.sum(dtype=np.float64)) == pytest.approx(total, rel=1e-7, abs=2e-3)
    assert int((m > 0).sum()) == pixels


def test_three_levels_equals_three_groups_and_cdcdcdcd_is_empty(docs):
    three, img3 = docs.layer(f"{CAPI}/images/arnold_one_crypto_three_levels.exr")
    full, imgf = docs.layer(f"{CAPI}/images/arnold_three_crypto.exr", "crypto_object")
    assert three.num_ranks == 4 and full.num_ranks == 6
    for name in ("Box001", "Plane001", "Sphere001"):
        np.testing.assert_array_equal(layer_matte(three, img3, name), layer_matte(full, imgf, name))
    assert not layer_matte(full, imgf, [123456]).any()
    assert not layer_matte(full, imgf, [0xCDCDCDCD]).any()


# ============================================================ finding layers


EVERY_FILE = {
    f"{CAPI}/images/arnold_three_crypto.exr": {"crypto_asset": 0, "crypto_material": 1, "crypto_object": 3},
    f"{CAPI}/images/arnold_one_crypto_three_levels.exr": {"crypto_object": 3},
    f"{CAPI}/images/arnold_one_crypto_sidecar_manif.exr": {"crypto_object": 3},
    f"{CAPI}/images/clarisse_two_crypto.exr": {"cryptomatte_asset": 2, "cryptomatte_material": 2},
    f"{CAPI}/images/karma_cpu_solaris_one_crypto.exr": {"CryptoObject": 3},
    f"{CAPI}/images/karma_cpu_solaris_one_crypto_sidecar_manif.exr": {"CryptoObject": 3},
    f"{CAPI}/images/karma_xpu_solaris_one_crypto.exr": {"CryptoObject": 3},
    f"{CAPI}/images/karma_xpu_solaris_one_crypto_sidecar_manif.exr": {"CryptoObject": 3},
    f"{PSYOP}/multichannel.exr": {"crypto_asset": 2, "crypto_material": 4, "crypto_object": 407},
    f"{PSYOP}/sidecar_manifest.exr": {"crypto_asset": 8},
    f"{PSYOP}/special_chars.exr": {"special_chars": 4},
    f"{PSYOP}/cornellBox_CryptoWildcard.0001.exr": {"uCryptoWildcard": 7},
    f"{PSYOP}/cornellBox_CryptoWildcard.0002.exr": {"uCryptoWildcard": 7},
    "cryptomatte/oiio/cryptoasset.exr": {"uCryptoAsset": 7},
}


def isin_matte(ids: np.ndarray, cov: np.ndarray, selected) -> np.ndarray:
    """A second, vectorised reference (np.isin per rank; adding +0.0 leaves a float32 sum unchanged)."""
    out = np.zeros(ids.shape[1:], np.float32)
    for r in range(ids.shape[0]):
        out = (
            out + np.where(np.isin(ids[r], np.asarray(selected, np.uint32)), cov[r], np.float32(0))
        ).astype(np.float32)
    return out


@pytest.mark.parametrize("rel", list(EVERY_FILE))
def test_every_cryptomatte_file_lists_its_layers_and_keys(docs, rel):
    _, found = docs(rel)
    assert {la.name: len(la.manifest) for la in found} == EVERY_FILE[rel]
    for la in found:
        assert la.keyable, la.problems
        assert la.num_ranks == (4 if "three_levels" in rel else 6)
        assert len(la.preview_channels) >= 3
        assert not any("manifest ids are not" in p for p in la.problems)  # ids are their names' hashes
        doc, _ = docs(rel)
        ranks = crypto_ranks(la, doc.parts[la.part_index].image)
        present, _, _ = id_coverage(ranks.ids, ranks.coverage)
        # every non-zero id in the pixels is named, except the empty name's 00800000 (README)
        assert set(present.tolist()) - set(la.names_by_id) <= {0, crypto_hash("")}
        names = sorted(la.manifest)[:40]
        sel = Selection.from_names(names, la.manifest)
        np.testing.assert_array_equal(
            crypto_matte(ranks.ids, ranks.coverage, sel.ids), isin_matte(ranks.ids, ranks.coverage, sel.ids)
        )


def test_clarisse_keys_and_long_names(docs):
    _, layers = docs(f"{CAPI}/images/clarisse_two_crypto.exr")
    by_name = {la.name: la for la in layers}
    assert by_name["cryptomatte_asset"].key == "2" and by_name["cryptomatte_material"].key == "0"
    assert by_name["cryptomatte_asset"].ranks[1] == ("cryptomatte_asset00.blue", "cryptomatte_asset00.alpha")
    assert any("not the hash prefix" in p for p in by_name["cryptomatte_asset"].problems)
    assert "cryptomatte_asset.red" in by_name["cryptomatte_asset"].preview_channels


def test_sidecar_manifests_resolve_next_to_the_image(docs):
    la, _ = docs.layer(f"{PSYOP}/sidecar_manifest.exr")
    assert la.manifest_source.startswith("sidecar:")
    assert la.manifest_source.endswith("sidecar_manifest.crypto_asset.json")
    assert la.ranks[0] == ("crypto_asset00.red", "crypto_asset00.green")
    la, _ = docs.layer(f"{CAPI}/images/karma_cpu_solaris_one_crypto_sidecar_manif.exr")
    assert la.manifest == {"/grid1/mesh_0": 0xFF21A168, "/sphere1": 0xA8294CD8, "/cube1": 0x5145171A}


def test_special_char_and_escaped_json_names(docs):
    la, _ = docs.layer(f"{PSYOP}/special_chars.exr")
    assert set(la.manifest) == {
        'name containing a "quote"  ',
        "name_containing/slash",
        "равнина",
        "name, with, comma",
    }
    assert la.manifest["равнина"] == 0x9623511E
    mat, _ = docs.layer(f"{PSYOP}/multichannel.exr", "crypto_material")
    assert all(n.startswith("/shop/") for n in mat.manifest)  # "\/" in the JSON is "/"


def test_metadata_without_channels_is_reported(docs):
    path = shared_path("cryptomatte", "oiio", "cmcolors.ref.exr")
    layers = find_document_crypto_layers([p.header for p in open_exr(path, load=False).parts], path)
    assert [la.name for la in layers] == ["uCryptoAsset"]
    assert not layers[0].ranks and not layers[0].keyable
    assert any("no rank channels" in p for p in layers[0].problems)
    with pytest.raises(CryptoError, match="no rank channels"):
        crypto_ranks(layers[0], open_exr(path).parts[0].image)


def test_describe_states_the_mapping(docs):
    la, _ = docs.layer(f"{CAPI}/images/clarisse_two_crypto.exr", "cryptomatte_asset")
    text = la.describe()
    assert "metadata name 'cryptomatte_asset' -> channels 'cryptomatte_asset'" in text
    assert "cryptomatte_asset00.red/cryptomatte_asset00.green" in text
    assert "key 2" in text and "problem:" in text


def test_half_ids_refuse_to_key(docs):
    la, img = docs.layer(f"{CAPI}/images/karma_cpu_solaris_one_crypto_16bit.exr")
    assert la.half_id_channels == [
        "CryptoObject00.R",
        "CryptoObject00.B",
        "CryptoObject01.R",
        "CryptoObject01.B",
        "CryptoObject02.R",
        "CryptoObject02.B",
    ]
    assert any("HALF" in p for p in la.problems)
    with pytest.raises(CryptoError, match=r"HALF channels \(CryptoObject00.R, CryptoObject00.B"):
        layer_matte(la, img, "/cube1")
    with pytest.raises(CryptoError):
        crypto_id_at(la, img, 70, 40)
    # also when the header did not say so (a FlatImage that remembers HALF only in pixel_types)
    la.half_id_channels = []
    with pytest.raises(CryptoError, match="HALF"):
        crypto_ranks(la, img)


SPELLINGS = [
    # (metadata name, channel base, suffix style)
    ("ViewLayer.CryptoObject", "ViewLayer.CryptoObject", "RGBA"),  # Blender, full name in metadata
    ("CryptoObject", "ViewLayer.CryptoObject", "RGBA"),  # pass name only in metadata
    ("CryptoObject", "ViewLayer_CryptoObject", "RGBA"),  # '_' between view layer and pass
    ("ViewLayer.CryptoObject", "ViewLayer_CryptoObject", "RGBA"),  # Nuke's legal spelling of the name
    ("ViewLayer.CryptoObject", "CryptoObject", "lower"),  # view layer only in the metadata
    ("crypto_object", "crypto_object", "long"),
]


@pytest.mark.parametrize(("meta_name", "base", "style"), SPELLINGS)
def test_channel_spellings(meta_name, base, style):
    ids, cov = small_ranks()
    channels = list(rank_channels(base, ids, cov, style)) + [
        f"{base}.R",
        f"{base}.G",
        f"{base}.B",
        "R",
        "G",
        "B",
    ]
    header = crypto_attrs(meta_name, MANIFEST_JSON, key="7")  # keys need not be hash prefixes
    layers = find_crypto_layers(header, channels)
    assert len(layers) == 1
    la = layers[0]
    assert la.name == meta_name and la.key == "7" and la.channel_base == base
    assert la.num_ranks == 4
    assert la.ranks[0][0].startswith(f"{base}00.") and la.ranks[3][1].startswith(f"{base}01.")
    assert la.manifest == MANIFEST and la.manifest_source == "embedded"
    assert la.preview_channels == [f"{base}.R", f"{base}.G", f"{base}.B"]
    spelled_differently = meta_name != base
    assert any("spelled" in p for p in la.problems) == spelled_differently


def test_similar_layer_names_do_not_steal_channels():
    ids, cov = small_ranks()
    channels = list(rank_channels("cryLyr", ids, cov)) + list(rank_channels("cryLyrSecond", ids, cov))
    header = {**crypto_attrs("cryLyr", "{}"), **crypto_attrs("cryLyrSecond", "{}")}
    layers = {la.name: la for la in find_crypto_layers(header, channels)}
    assert layers["cryLyr"].channel_base == "cryLyr"
    assert layers["cryLyrSecond"].channel_base == "cryLyrSecond"
    assert all(c.startswith("cryLyr0") for c in layers["cryLyr"].channels)


def test_old_exr_prefix_and_many_ranks():
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 2**31, size=(10, 2, 3)).astype(np.uint32)
    cov = rng.random((10, 2, 3), dtype=np.float32)
    header = crypto_attrs("uCryptoObject", "{}", prefix="exr/cryptomatte/")
    layers = find_crypto_layers(header, list(rank_channels("uCryptoObject", ids, cov)))
    assert layers[0].num_ranks == 10 and layers[0].metadata_prefix == "exr/cryptomatte/"
    assert [i for i, _ in layers[0].ranks][-1] == "uCryptoObject04.B"


def test_gaps_and_incomplete_groups_are_problems():
    channels = ["L00.R", "L00.G", "L00.B", "L00.A", "L02.R", "L02.G"]
    la = find_crypto_layers(crypto_attrs("L", "{}"), channels)[0]
    assert la.num_ranks == 3
    assert any("not consecutive" in p for p in la.problems)


def test_layers_without_metadata():
    ids, cov = small_ranks()
    chans = rank_channels("CryptoMaterial", ids, cov)
    layers = find_crypto_layers({}, list(chans))
    assert [la.name for la in layers] == ["CryptoMaterial"]
    assert layers[0].key is None and layers[0].manifest_source == "none"
    assert any("no Cryptomatte metadata" in p for p in layers[0].problems)
    # a group not called Crypto*: only found when the pixels look like ids
    generic = rank_channels("objid", ids, cov)
    image = FlatImage(Box(0, 0, 4, 5), Box(0, 0, 4, 5), generic, {c: PixelType.FLOAT for c in generic})
    assert find_crypto_layers({}, list(generic)) == []
    found = find_crypto_layers({}, list(generic), image=image)
    assert [la.name for la in found] == ["objid"]
    np.testing.assert_array_equal(
        layer_matte(found[0], image, [MANIFEST["beta"]]), ref_matte(ids, cov, [MANIFEST["beta"]])
    )
    not_ids = {c: np.full((6, 5), 0.5 if c.endswith((".R", ".B")) else 0.25, np.float32) for c in generic}
    not_ids["objid00.R"][0, 0] = 1e-40  # a denormal: never a Cryptomatte id
    image2 = FlatImage(image.data_window, image.display_window, not_ids, image.pixel_types)
    assert find_crypto_layers({}, list(not_ids), image=image2) == []


def test_half_channel_types_from_channel_infos():
    infos = [ChannelInfo(f"C00.{s}", PixelType.HALF) for s in "RGBA"]
    la = find_crypto_layers(crypto_attrs("C", "{}"), infos)[0]
    assert la.half_id_channels == ["C00.R", "C00.B"] and not la.keyable


# ============================================================ manifests


def test_load_manifest_errors():
    assert load_manifest('{"a": "00000001", "b": "ABCDEF12", "c": "ff"}') == {
        "a": 1,
        "b": 0xABCDEF12,
        "c": 255,
    }
    assert load_manifest(b'{"x": "0x10"}') == {"x": 16}  # lenient like int(v, 16)
    cases = [
        ('{"a": "0000001"', "not valid JSON"),
        (b'{"a\xff": "00000001"}', "not UTF-8"),
        ('["a", "b"]', "JSON list"),
        ('{"a": 5}', "expected a hex string"),
        ('{"a": "zz"}', "not a hex number"),
        ('{"a": ""}', "not a hex number"),
        ('{"a": "123456789"}', "more than 32 bits"),
        (json.dumps({"a": "1" * 100_000, "b": "00000001"}), "not a hex number"),  # no (n, 100000) table
    ]
    for data, message in cases:
        with pytest.raises(ManifestError, match=message):
            load_manifest(data)


def test_bunny_sidecar_manifest_is_fast_and_consistent():
    path = shared_path(*PSYOP.split("/"), "bunny_CryptoObject_manifest.json")
    best = min(_timed(lambda: read_manifest_file(path)) for _ in range(3))
    manifest = read_manifest_file(path)
    assert len(manifest) == 32166
    assert best < 1.0
    raw = json.loads(path.read_text("utf-8"))
    sample = list(raw.items())[::997]
    assert all(manifest[n] == int(v, 16) == crypto_hash(n) for n, v in sample)


def test_100k_manifest_parses_under_300ms():
    text = json.dumps(
        {f"/scene/group_{i % 97}/object_{i}": f"{(i * 2654435761) & 0xFFFFFFFF:08x}" for i in range(100_000)}
    )
    best = min(_timed(lambda: load_manifest(text)) for _ in range(3))
    assert best < 0.3, f"{best * 1000:.0f} ms"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_broken_and_missing_manifests_are_problems_not_failures(tmp_path):
    ids, cov = small_ranks(seed=5)
    chans = rank_channels("CryptoObject", ids, cov)
    cases = {
        "broken.exr": crypto_attrs("CryptoObject", '{"alpha": "not json'),
        "missing_sidecar.exr": crypto_attrs("CryptoObject", manif_file="nowhere.json"),
        "bad_sidecar.exr": crypto_attrs("CryptoObject", manif_file="bad.json"),
        "latin1_sidecar.exr": crypto_attrs("CryptoObject", manif_file="latin1.json"),
        "mismatch.exr": crypto_attrs("CryptoObject", json.dumps({"alpha": "12345678"})),
    }
    (tmp_path / "bad.json").write_text("{'alpha': 1}", "utf-8")
    (tmp_path / "latin1.json").write_bytes('{"caf\u00e9": "00000001"}'.encode("latin-1"))
    expected_problem = {
        "broken.exr": "embedded manifest is not valid JSON",
        "missing_sidecar.exr": "nowhere.json is missing",
        "bad_sidecar.exr": "not valid JSON",
        "latin1_sidecar.exr": "not UTF-8",
        "mismatch.exr": "1 manifest ids are not the hash of their name: 'alpha' 12345678",
    }
    for fname, attrs in cases.items():
        path = tmp_path / fname
        write_exr(path, chans, attrs)
        doc = open_exr(path)
        layers = find_document_crypto_layers([p.header for p in doc.parts], path)
        assert len(layers) == 1, fname
        la = layers[0]
        assert any(expected_problem[fname] in p for p in la.problems), (fname, la.problems)
        # the layer still keys: names by their hash
        matte = layer_matte(la, doc.parts[0].image, Selection.from_names(["beta"], la.manifest))
        np.testing.assert_array_equal(matte, ref_matte(ids, cov, [MANIFEST["beta"]]))
    # the manifest's own id wins over the hash (that is what the renderer wrote in the pixels)
    la = find_document_crypto_layers([p.header for p in open_exr(tmp_path / "mismatch.exr").parts])[0]
    assert la.id_of("alpha") == 0x12345678 and la.id_of("beta") == crypto_hash("beta")


def test_sidecar_without_image_path_is_a_problem():
    la = find_crypto_layers(crypto_attrs("X", manif_file="x.json"), ["X00.R", "X00.G", "X00.B", "X00.A"])[0]
    assert la.manifest_source == "none"
    assert any("without the image's path" in p for p in la.problems)


def test_multipart_layer_in_its_own_part(tmp_path):
    ids, cov = small_ranks(seed=7)
    beauty = {c: np.full((6, 5), 0.5, np.float32) for c in "RGBA"}
    path = tmp_path / "multi.exr"
    common = {"dataWindow": ((0, 0), (4, 5)), "displayWindow": ((0, 0), (4, 5))}
    write_exr(
        path,
        None,
        parts=[
            ("beauty", beauty, {**common, **crypto_attrs("CryptoAsset", MANIFEST_JSON)}),
            ("crypto", rank_channels("CryptoAsset", ids, cov), dict(common)),
        ],
    )
    doc = open_exr(path)
    layers = find_document_crypto_layers([p.header for p in doc.parts], path)
    assert [(la.name, la.part_index) for la in layers] == [("CryptoAsset", 1)]
    la = layers[0]
    assert la.manifest == MANIFEST and not any("no rank channels" in p for p in la.problems)
    sel = Selection.from_matte_list("alpha, *δ", la.manifest)
    np.testing.assert_array_equal(layer_matte(la, doc.parts[1].image, sel), ref_matte(ids, cov, sel.ids))


def test_select_layer():
    ids, cov = small_ranks()
    chans = list(rank_channels("ViewLayer.CryptoObject", ids, cov)) + list(
        rank_channels("ViewLayer.CryptoAsset", ids, cov)
    )
    header = {**crypto_attrs("ViewLayer.CryptoObject", "{}"), **crypto_attrs("ViewLayer.CryptoAsset", "{}")}
    layers = find_crypto_layers(header, chans)
    assert select_layer(layers, "CryptoObject").name == "ViewLayer.CryptoObject"
    assert select_layer(layers, layer_key("ViewLayer.CryptoAsset")).name == "ViewLayer.CryptoAsset"
    with pytest.raises(SelectionError, match="available: ViewLayer.CryptoAsset, ViewLayer.CryptoObject"):
        select_layer(layers, "nope")
    with pytest.raises(SelectionError, match="several"):
        select_layer(layers, None)


# ============================================================ the matte kernel


@st.composite
def rank_stacks(draw):
    r = draw(st.integers(1, 5))
    h = draw(st.integers(0, 5))
    w = draw(st.integers(0, 5))
    pool = draw(st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=6))
    pool += [0, 0x80000000]  # +0.0 and -0.0 ids
    idx = draw(st.lists(st.integers(0, len(pool) - 1), min_size=r * h * w, max_size=r * h * w))
    ids = np.array([pool[i] for i in idx], dtype=np.uint32).reshape(r, h, w)
    special = [0.0, -0.0, 1.0, 0.5, 1e-8, -0.25, np.inf, -np.inf, np.nan, 1e30]
    vals = draw(
        st.lists(
            st.sampled_from(special) | st.floats(-2, 2, width=32), min_size=r * h * w, max_size=r * h * w
        )
    )
    cov = np.array(vals, dtype=np.float32).reshape(r, h, w)
    selected = draw(st.lists(st.sampled_from(pool), max_size=4)) + draw(
        st.lists(st.integers(0, 0xFFFFFFFF), max_size=2)
    )
    return ids, cov, np.array(selected, dtype=np.uint32)


@settings(max_examples=150, deadline=None)
@given(rank_stacks())
def test_crypto_matte_matches_reference(data):
    ids, cov, selected = data
    got = crypto_matte(ids, cov, selected)
    want = ref_matte(ids, cov, selected)
    assert got.dtype == np.float32 and got.shape == ids.shape[1:]
    np.testing.assert_array_equal(got, want)
    # the same from a list of float32 id planes
    np.testing.assert_array_equal(crypto_matte([i.view(np.float32) for i in ids], list(cov), selected), want)
    np.testing.assert_array_equal(crypto_matte(ids, cov, selected.view(np.float32)), want)


def test_crypto_matte_sums_in_rank_order():
    # float32 addition is not associative: 1 + 3e-8 + 3e-8 is 1.0 in rank order, not reversed
    ids = np.full((3, 1, 1), crypto_hash("x"), np.uint32)
    cov = np.array([1.0, 3e-8, 3e-8], np.float32).reshape(3, 1, 1)
    forward = np.float32(np.float32(cov[0, 0, 0] + cov[1, 0, 0]) + cov[2, 0, 0])
    backward = np.float32(np.float32(cov[2, 0, 0] + cov[1, 0, 0]) + cov[0, 0, 0])
    assert forward != backward
    assert crypto_matte(ids, cov, [crypto_hash("x")])[0, 0] == forward


def test_crypto_matte_many_ids_and_collisions():
    rng = np.random.default_rng(11)
    pool = rng.integers(0, 2**32, size=3000, dtype=np.uint64).astype(np.uint32)
    pool[:50] = np.arange(50, dtype=np.uint32) << 8  # same bits 8..23 prefix family: prefilter collisions
    ids = pool[rng.integers(0, len(pool), size=(6, 20, 30))]
    cov = rng.random((6, 20, 30), dtype=np.float32)
    selected = np.concatenate([pool[::3], pool[:50:7]])
    np.testing.assert_array_equal(crypto_matte(ids, cov, selected), ref_matte(ids, cov, selected))
    assert not crypto_matte(ids, cov, np.zeros(0, np.uint32)).any()


def test_crypto_matte_validates_inputs():
    ids, cov = small_ranks()
    with pytest.raises(ValueError, match="differ in shape"):
        crypto_matte(ids, cov[:2], [1])
    with pytest.raises(ValueError, match="float32"):
        crypto_matte(ids, cov.astype(np.float64), [1])
    with pytest.raises(ValueError, match="uint32 id bits"):
        crypto_matte(ids, cov, [-1])


# ============================================================ third-party sums and picks


@pytest.mark.parametrize(
    ("rel", "layer", "expected"),
    [
        (
            "cryptomatte/oiio/cryptoasset.exr",
            None,
            {
                "bunny": (266.576, 303),
                "heroflower": (28.052, 202),
                "set": (225.461, 340),
                "default": (0, 0),
                "flowerA": (0, 0),
                "flowerB": (0, 0),
                "plant": (0, 0),
            },
        ),
        (
            f"{PSYOP}/special_chars.exr",
            None,
            {
                'name containing a "quote"  ': (107.033, 147),
                "name, with, comma": (93.325, 122),
                "name_containing/slash": (109.343, 148),
                "равнина": (108.118, 147),
            },
        ),
        (
            f"{PSYOP}/sidecar_manifest.exr",
            None,
            {
                "default": (434.508, 800),
                "default_111": (21.905, 46),
                "default_444": (22.425, 41),
                "leftAsset": (107.033, 147),
                "rightAsset": (109.343, 148),
                "default_222": (0, 0),
                "default_333": (0, 0),
                "default_555": (0, 0),
            },
        ),
        (
            f"{PSYOP}/multichannel.exr",
            "crypto_asset",
            {"ball_asset": (2713.312, 4069), "toroidal_asset": (4459.221, 6665)},
        ),
        (
            f"{PSYOP}/cornellBox_CryptoWildcard.0001.exr",
            None,
            {
                "has_n_asterisk": (105228.75, None),
                "Rect_]_left": (60322.08, None),
                "Rect_[]_right": (51411.45, None),
                "rect_[_top": (37942.06, None),
                "has_*_asterisk": (37868.62, None),
                "rect_][_bot": (30633.28, None),
                "sphere_?_2": (12589.88, None),
            },
        ),
    ],
)
def test_per_name_coverage_sums(docs, rel, layer, expected):
    la, img = docs.layer(rel, layer)
    ranks = crypto_ranks(la, img)
    for name, (total, pixels) in expected.items():
        assert name in la.manifest
        m = crypto_matte(ranks.ids, ranks.coverage, [la.manifest[name]])
        assert float(m.sum(dtype=np.float64)) == pytest.approx(total, rel=1e-6, abs=2e-3), name
        if pixels is not None:
            assert int((m > 0).sum()) == pixels, name


def test_multichannel_object_ids_all_named(docs):
    la, img = docs.layer(f"{PSYOP}/multichannel.exr", "crypto_object")
    ranks = crypto_ranks(la, img)
    ids, _, _ = id_coverage(ranks.ids, ranks.coverage)
    named = [i for i in ids.tolist() if i in la.names_by_id]
    assert len(named) == 300
    assert set(ids.tolist()) - set(named) <= {0}


def test_cornellbox_picks_and_wildcard_keying(docs):
    la, img = docs.layer(f"{PSYOP}/cornellBox_CryptoWildcard.0001.exr")
    assert img.data_window == Box(167, 0, 792, 539)  # picks are in EXR pixel coordinates
    ranks = crypto_ranks(la, img)
    # Nuke (x, y) is from the bottom left: EXR y = 539 - y
    assert la.name_of(crypto_id_at(la, ranks, 600, 539 - 150)) == "has_*_asterisk"
    assert la.name_of(crypto_id_at(la, ranks, 350, 539 - 150)) == "sphere_?_2"
    stack = id_stack(la, ranks, 600, 389)
    assert stack.entries[0].name == "has_*_asterisk" and stack.entries[0].coverage == 1.0
    la2, img2 = docs.layer(f"{PSYOP}/cornellBox_CryptoWildcard.0002.exr")
    assert la2.name_of(crypto_id_at(la2, img2, 350, 389)) == "has_n_asterisk"
    assert "sphere_*_1" in la2.manifest and "sphere_?_2" not in la2.manifest
    # picking the same spot with its id selected gives nothing new (the background does not count)
    picked = crypto_id_at(la, ranks, 600, 389)
    assert crypto_id_at(la, ranks, 600, 389, [picked]) is None
    assert crypto_id_at(la, ranks, 600, 389, Selection.from_ids([picked], la.manifest), remove=True) == picked
    # wildcard keying: the escaped asterisk does not expand
    sel = Selection.from_matte_list(r'"has_\*_asterisk", sphere_*', la.manifest)
    want = crypto_matte(ranks.ids, ranks.coverage, [la.manifest["has_*_asterisk"], la.manifest["sphere_?_2"]])
    np.testing.assert_array_equal(layer_matte(la, img, sel), want)
    outside = id_stack(la, ranks, 10, 10)  # left of the data window
    assert outside.entries == [] and outside.total == 0.0
    assert crypto_id_at(la, ranks, 10, 10) is None


def test_picker_rule_matches_reference_on_random_pixels():
    rng = np.random.default_rng(21)
    pool = np.array(
        [0, 0x80000000, crypto_hash("a"), crypto_hash("b"), crypto_hash("c"), crypto_hash("d")],
        dtype=np.uint32,
    )
    for _ in range(400):
        r = int(rng.integers(1, 7))
        ids = pool[rng.integers(0, len(pool), size=(r, 1, 1))]
        cov = rng.choice(np.array([0.0, 0.0, 0.3, 0.7, 1.0, -0.1], np.float32), size=(r, 1, 1))
        selected = {int(x) for x in rng.choice(pool[2:], size=int(rng.integers(0, 3)))}
        ranks = CryptoRanks(ids, cov, Box(0, 0, 0, 0))
        for remove in (False, True):
            got = crypto_id_at(None, ranks, 0, 0, selected, remove=remove)  # type: ignore[arg-type]
            assert got == ref_pick(ids[:, 0, 0], cov[:, 0, 0], selected, remove), (ids.ravel(), cov.ravel())


def test_id_stack_lists_names_and_sums_coverage():
    ids, cov = small_ranks(seed=2)
    header = crypto_attrs("CryptoObject", MANIFEST_JSON)
    chans = rank_channels("CryptoObject", ids, cov)
    la = find_crypto_layers(header, list(chans))[0]
    img = FlatImage(Box(10, 20, 14, 25), Box(0, 0, 30, 30), chans, {c: PixelType.FLOAT for c in chans})
    for y in range(6):
        for x in range(5):
            stack = id_stack(la, img, 10 + x, 20 + y, include_empty=True)
            assert [e.id_bits for e in stack.entries] == ids[:, y, x].tolist()
            assert [e.name for e in stack.entries] == [la.names_by_id.get(int(i)) for i in ids[:, y, x]]
            total = np.float32(0)
            for c in cov[:, y, x]:
                total = np.float32(total + c)
            assert stack.total == float(total)
            short = id_stack(la, img, 10 + x, 20 + y)
            assert all(e.id_bits or e.coverage for e in short.entries)
    e = id_stack(la, img, 10, 20, include_empty=True).entries[0]
    assert e.hex == f"{e.id_bits:08x}"
    ranks = crypto_ranks(la, img)
    for x, y in ((10, 20), (14, 25), (12, 22), (9, 20), (15, 25)):
        assert id_stack(la, img, x, y) == id_stack(la, ranks, x, y)
        for sel in ([], [MANIFEST["alpha"]], list(MANIFEST.values())):
            for remove in (False, True):
                assert crypto_id_at(la, img, x, y, sel, remove) == crypto_id_at(la, ranks, x, y, sel, remove)


# ============================================================ previews


def test_preview_colours_match_oiio_reference(docs):
    la, img = docs.layer("cryptomatte/oiio/cryptoasset.exr")
    ranks = crypto_ranks(la, img)
    got = crypto_preview(ranks.ids, ranks.coverage)
    ref = open_exr(shared_path("cryptomatte", "oiio", "cmcolors.ref.exr")).parts[0].image
    want = np.stack([ref.channels[c] for c in "RGB"], axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(rank_stacks())
def test_preview_kernel_matches_reference(data):
    ids, cov, _ = data
    got = crypto_preview(ids, cov)
    want = ref_preview(ids, cov)
    assert got.shape == ids.shape[1:] + (3,) and got.dtype == np.float32
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-6)


def test_id_colours_vectorised():
    ids = np.array([crypto_hash(n) for n in NAMES] + [0], dtype=np.uint32)
    cols = id_colours(ids)
    assert cols.shape == (len(ids), 3) and not cols[-1].any()
    want = ref_preview(ids[None, None, :], np.ones((1, 1, len(ids)), np.float32))[0]
    np.testing.assert_allclose(cols, want, rtol=1e-6)


def test_id_colour_is_stable_and_distinct():
    a, b = id_colour(crypto_hash("bunny")), id_colour(crypto_hash("set"))
    assert a == id_colour(crypto_hash("bunny")) and a != b
    want = ref_preview(np.array([[[crypto_hash("bunny")]]], np.uint32), np.ones((1, 1, 1), np.float32))[0, 0]
    np.testing.assert_allclose(a, want, rtol=1e-6)


def test_edges_and_overlay():
    ids = np.array([[[0, 5, 5, 7]], [[0, 0, 9, 0]]], dtype=np.uint32)
    cov = np.array([[[0.0, 1.0, 0.6, 0.25]], [[0.0, 0.0, 0.4, 0.0]]], dtype=np.float32)
    np.testing.assert_allclose(crypto_edges(ids, cov), [[0.0, 0.0, 0.4, 0.75]], rtol=1e-6)
    rgb = np.zeros((1, 4, 3), np.float32)
    matte = np.array([[0.0, 1.0, 0.5, np.nan]], np.float32)
    out = matte_overlay(rgb, matte, (1.0, 0.0, 0.0), opacity=0.5)
    np.testing.assert_allclose(out[0, :, 0], [0.0, 0.5, 0.25, 0.0])
    assert not out[..., 1:].any()
    with pytest.raises(ValueError):
        matte_overlay(rgb, matte[:, :2])


def test_id_coverage_counts_pixels_once():
    ids = np.array([[[3, 3]], [[3, 4]]], dtype=np.uint32)
    cov = np.array([[[0.5, 1.0]], [[0.25, 0.0]]], dtype=np.float32)
    uniq, sums, counts = id_coverage(ids, cov)
    assert uniq.tolist() == [3] and sums.tolist() == [1.75] and counts.tolist() == [2]


def test_layers_of_one_file_key_independently(docs):
    # the same image, two layers: a name keys only where its id is
    (a, img), (b, _) = (
        docs.layer(f"{PSYOP}/multichannel.exr", "crypto_asset"),
        docs.layer(f"{PSYOP}/multichannel.exr", "crypto_material"),
    )
    assert "ball_asset" in a.manifest and "ball_asset" not in b.manifest
    assert layer_matte(a, img, "ball_asset").any()
    assert not layer_matte(b, img, "ball_asset").any()
