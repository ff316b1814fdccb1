"""The Cryptomatte model of the viewer: manifest rows and their filter, selections with and
without wildcards, picking, preview images, mattes and exports, on real files.

Third-party facts come from /work/shared/testdata/README.md ("Psyop Nuke test expectations",
"Expected matte extraction"). The name filter is checked against an fnmatch/str reference on
random names.
"""

from __future__ import annotations

import fnmatch
import os
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto_model import (
    HEX_MIN_DIGITS,
    PREVIEW_MODES,
    CryptoModel,
    ManifestIndex,
    check_template,
    literal_token,
    plan_export_all,
    preview_rgba,
    sanitize_filename,
)
from app.document import DocumentModel
from core.cryptomatte import (
    crypto_edges,
    crypto_matte,
    crypto_preview,
    crypto_ranks,
    find_document_crypto_layers,
    id_coverage,
    layer_matte,
)
from core.display import display_transform
from core.errors import SelectionError
from core.exr_read import open_exr
from core.hashing import crypto_hash
from core.model import FlatImage
from core.selection import Selection, format_id
from tests.shared_data import shared_files, shared_path

pytestmark = pytest.mark.gui

PSYOP = "cryptomatte/psyop"
CAPI = "cryptomatte/cryptomatte-api"
CORNELL1 = f"{PSYOP}/cornellBox_CryptoWildcard.0001.exr"
HALF_FILE = f"{CAPI}/images/karma_cpu_solaris_one_crypto_16bit.exr"


# ============================================================ helpers


@pytest.fixture
def crypto_for(qtbot):
    """Factory: a CryptoModel on a DocumentModel holding the shared file ``rel``, settled."""
    made = []

    def make(rel: str) -> CryptoModel:
        path = shared_path(*rel.split("/"))
        doc_model = DocumentModel()
        crypto = CryptoModel(doc_model)
        made.append((crypto, doc_model))
        doc_model.set_document(open_exr(path))
        settle(qtbot, crypto)
        return crypto

    yield make
    for crypto, _doc in made:
        crypto.shutdown()


def settle(qtbot, crypto: CryptoModel, timeout: int = 30000) -> None:
    """Wait until layers, ranks, counts and the matte are all done."""
    qtbot.waitUntil(lambda: not crypto.busy, timeout=timeout)


def ref_filter(names: list[str], ids: np.ndarray, text: str) -> list[int]:
    """Obvious reference of ManifestIndex.filter."""
    if not text or not text.strip():
        return list(range(len(names)))
    if "*" in text or "?" in text:
        pattern = "".join("[[]" if c == "[" else "[]]" if c == "]" else c for c in text)
        return [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, pattern)]
    q = text.lower()
    hexq = q[2:] if q.startswith("0x") else q
    use_hex = 0 < len(hexq) <= 8 and all(c in string.hexdigits for c in hexq) and (
        q.startswith("0x") or len(hexq) >= HEX_MIN_DIGITS)
    return [i for i, n in enumerate(names)
            if q in n.lower() or (use_hex and f"{int(ids[i]):08x}".startswith(hexq))]


# ============================================================ manifest rows and filter

ALPHABET = "aAbB/_*?[]\\ .é İ\n0x5d"
names_st = st.lists(st.text(alphabet=ALPHABET, max_size=8), max_size=30)
query_st = st.text(alphabet=ALPHABET + "*?", max_size=6)


@settings(max_examples=300, deadline=None)
@given(names=names_st, query=query_st, nul=st.booleans())
def test_filter_matches_reference(names, query, nul):
    if nul and names:  # a NUL in a name takes the one-by-one path
        names = names + ["a\x00b"]
    ids = np.array([crypto_hash(n) for n in names], dtype=np.uint32)
    index = ManifestIndex(names, ids)
    assert index.filter(query).tolist() == ref_filter(names, ids, query)


@settings(max_examples=200, deadline=None)
@given(names=names_st, query=query_st)
def test_pattern_token_keys_what_the_filter_shows(names, query):
    names = sorted(set(names))
    manifest = {n: crypto_hash(n) for n in names}
    index = ManifestIndex.from_manifest(manifest)
    token = ManifestIndex.pattern_token(query)
    if token is None:
        assert "*" not in query and "?" not in query
        return
    shown = {index.names[r] for r in index.filter(query)}
    assert set(Selection(manifest=manifest).matches(token)) == shown


def test_rows_sorted_and_stats_add_unnamed_ids():
    manifest = {"b": 3, "A": 5, "a": 7}
    index = ManifestIndex.from_manifest(manifest)
    assert index.names == ["A", "a", "b"] and index.ids.tolist() == [5, 7, 3]
    assert not index.has_stats
    present = np.array([0, 3, 9, 0x80000000, 11], dtype=np.uint32)
    sums = np.array([1.0, 2.5, 0.5, 9.0, 1.0])
    counts = np.array([4, 3, 1, 9, 2])
    full = index.with_stats(present, sums, counts)
    # id 0 and -0.0 are background: not listed; 9 and 11 have no name
    assert full.names == ["A", "a", "b", format_id(9), format_id(11)]
    assert full.named.tolist() == [True, True, True, False, False]
    assert full.pixels.tolist() == [0, 0, 3, 1, 2]
    assert full.coverage.tolist() == [0.0, 0.0, 2.5, 0.5, 1.0]
    again = full.with_stats(present[:2], sums[:2], counts[:2])  # a recount replaces the unnamed rows
    assert again.names == ["A", "a", "b"] and again.pixels.tolist() == [0, 0, 3]
    assert full.filter("<").tolist() == [3, 4]
    assert full.row_of_id(3) == 2 and full.row_of_id(12345) is None


def test_filter_of_100k_names_is_fast():

    rng = np.random.default_rng(4)
    letters = np.array(list(string.ascii_letters + "_/0123456789"))
    names = ["".join(rng.choice(letters, size=int(k))) for k in rng.integers(5, 40, 100_000)]
    index = ManifestIndex(names, rng.integers(0, 2**32, len(names), dtype=np.uint64).astype(np.uint32))
    index.filter("x")  # builds the search arrays once
    index.filter("*x")
    for query in ("a", "ab_", "*a*", "a*", "*_?_*", "*q/z*", "0x1f", "*"):
        best = min(_timed(index.filter, query) for _ in range(3))
        assert best < 0.05, f"filter {query!r} took {best * 1000:.0f} ms"


def _timed(fn, *args) -> float:
    import time

    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


# ============================================================ pure helpers


def test_sanitize_filename():
    assert sanitize_filename("/char/hero/body") == "_char_hero_body"
    assert sanitize_filename("has_*_asterisk") == "has___asterisk"
    assert sanitize_filename('name containing a "quote"  ') == "name_containing_a__quote___"
    assert sanitize_filename("равнина") == "равнина"
    assert sanitize_filename("build://project/x:y") == "build___project_x_y"
    assert sanitize_filename("..hidden") == "hidden" and sanitize_filename("..") == "__"
    assert sanitize_filename("") == "_"
    assert len(sanitize_filename("x" * 1000)) == 150


def test_template_checks():
    assert check_template("{layer}_{name}.exr") == ".exr"
    assert check_template("{hex}.PNG") == ".png"
    assert check_template("m_{index:04d}.exr") == ".exr"
    for bad, words in (("{layer}.exr", "needs"), ("{name}.tif", ".exr or .png"), ("{nam}.exr", "unknown"),
                       ("a/{name}.exr", "file name"), ("{name.exr", "malformed"), ("", "empty")):
        with pytest.raises(SelectionError, match=words):
            check_template(bad)


def test_plan_export_all_names_and_collisions(tmp_path):
    entries = [("a/b", 1), ("a:b", 2), ("A/B", 3), (None, 0x00800000), ("x", 4)]
    items = plan_export_all(tmp_path, "{layer}_{name}.exr", "my layer", entries)
    names = [os.path.basename(i.path) for i in items]
    assert names == ["my_layer_a_b.exr", "my_layer_a_b_00000002.exr", "my_layer_A_B_00000003.exr",
                     "my_layer_00800000.exr", "my_layer_x.exr"]  # A_B clashes on case-insensitive systems
    assert items[3].name == format_id(0x00800000)
    numbered = plan_export_all(tmp_path, "m{index:03d}_{hex}.png", "L", entries[:2])
    assert [os.path.basename(i.path) for i in numbered] == ["m000_00000001.png", "m001_00000002.png"]
    source = tmp_path / "L_x.exr"
    source.write_bytes(b"x")
    with pytest.raises(SelectionError, match="replace the file being read"):
        plan_export_all(tmp_path, "L_{name}.exr", "L", [("x", 4)], source)
    with pytest.raises(SelectionError, match="does not exist"):
        plan_export_all(tmp_path / "missing", "{name}.exr", "L", entries)


def test_literal_token():
    assert literal_token("has_*_asterisk") == r"has_\*_asterisk"
    assert literal_token(r"has_\*_asterisk") == r"has_\*_asterisk"
    assert literal_token("<1.5>") == "<1.5>"
    assert literal_token("plain") == "plain"


def test_preview_images_match_the_core_functions():
    rng = np.random.default_rng(3)
    pool = np.array([0, crypto_hash("a"), crypto_hash("b"), crypto_hash("c")], np.uint32)
    ids = pool[rng.integers(0, 4, (4, 5, 6))]
    cov = rng.uniform(0, 1, (4, 5, 6)).astype(np.float32)
    from core.cryptomatte import CryptoRanks
    from core.model import Box

    ranks = CryptoRanks(ids, cov, Box(0, 0, 5, 4))
    matte = crypto_matte(ids, cov, [crypto_hash("a")])
    assert preview_rgba("off", ranks, matte) is None
    np.testing.assert_array_equal(preview_rgba("id colours", ranks, matte),
                                  display_transform(crypto_preview(ids, cov), transfer="srgb"))
    edges = preview_rgba("edges", ranks, matte)
    np.testing.assert_array_equal(edges[..., 3], np.rint(crypto_edges(ids, cov) * 255).astype(np.uint8))
    over = preview_rgba("matte overlay", ranks, matte).astype(np.float64) / 255.0
    # what the canvas shows over any beauty: the beauty darkened outside the matte, tinted inside
    m = np.clip(matte, 0, 1)[..., None].astype(np.float64)
    amber = np.array([255, 204, 0]) / 255.0
    for beauty in (np.zeros(3), np.ones(3), np.array([0.2, 0.5, 0.9])):
        shown = beauty * (1 - over[..., 3:]) + over[..., :3] * over[..., 3:]
        want = beauty * (1 - (0.45 * (1 - m) + 0.55 * m)) + amber * 0.55 * m
        np.testing.assert_allclose(shown, want, atol=2.5 / 255)
    empty = preview_rgba("matte overlay", ranks, np.zeros_like(matte))
    assert not empty.any()  # nothing selected: the beauty as it is
    only = preview_rgba("matte only", ranks, matte)
    np.testing.assert_array_equal(only, display_transform(np.clip(matte, 0, 1), transfer="srgb"))
    assert set(PREVIEW_MODES) == {"off", "id colours", "edges", "matte overlay", "matte only"}


# ============================================================ the model on real files


def test_psyop_picks_and_names(crypto_for):
    crypto = crypto_for(CORNELL1)
    assert [la.name for la in crypto.layers] == ["uCryptoWildcard"]
    assert crypto.error == "" and crypto.ranks is not None
    # README: Nuke (600,150) = EXR (600,389) -> has_*_asterisk; (350,150) -> sphere_?_2
    assert crypto.pick(600, 389) == crypto.layer.manifest["has_*_asterisk"]
    assert crypto.selected_names() == ["has_*_asterisk"]
    assert crypto.pick(600, 389) is None  # nothing else there: the background does not count
    assert "no id not yet selected" in crypto.message
    crypto.pick(350, 389)
    assert crypto.selected_names() == ["has_*_asterisk", "sphere_?_2"]
    assert crypto.pick(350, 389, remove=True) == crypto.layer.manifest["sphere_?_2"]
    assert crypto.selected_names() == ["has_*_asterisk"]
    crypto.set_single_selection(True)
    crypto.pick(350, 389)
    assert crypto.selected_names() == ["sphere_?_2"]
    crypto.pick(350, 389)
    assert crypto.selected_names() == ["sphere_?_2"]  # single mode: the top id again, alone


def test_wildcard_facts_and_the_wildcards_toggle(crypto_for, qtbot):
    crypto = crypto_for(CORNELL1)
    manifest = crypto.layer.manifest
    crypto.set_matte_list(r'"has_\*_asterisk", sphere_*')
    assert crypto.selected_names() == ["has_*_asterisk", "sphere_?_2"]  # the escaped * does not expand
    crypto.set_matte_list("*Rect*")
    assert crypto.selected_names() == ["Rect_[]_right", "Rect_]_left"]
    crypto.set_matte_list("*rect*")
    assert crypto.selected_names() == ["rect_[_top", "rect_][_bot"]
    crypto.set_matte_list("has_*_asterisk")
    assert crypto.selected_names() == ["has_*_asterisk", "has_n_asterisk"]
    assert crypto.matte_list() == "has_*_asterisk"  # kept unexpanded
    crypto.set_wildcards(False)  # now * is a character of the name
    assert crypto.selected_names() == ["has_*_asterisk"]
    assert crypto.matte_list() == "has_*_asterisk"  # the text is not rewritten
    crypto.set_wildcards(True)
    # removing one id a wildcard matched keeps the others, by name (the gizmo's expansion)
    crypto.remove_ids([manifest["has_n_asterisk"]])
    assert crypto.selected_names() == ["has_*_asterisk"]
    assert crypto.selection.tokens == [r"has_\*_asterisk"]
    with pytest.raises(SelectionError):
        crypto.set_matte_list('"unterminated')
    assert crypto.selection.tokens == [r"has_\*_asterisk"]  # unchanged
    settle(qtbot, crypto)
    ranks = crypto.ranks
    np.testing.assert_array_equal(crypto.matte.matte, crypto_matte(ranks.ids, ranks.coverage,
                                                                   [manifest["has_*_asterisk"]]))


def test_selection_is_kept_per_layer_and_for_the_next_frame(crypto_for, qtbot):
    crypto = crypto_for(CORNELL1)
    crypto.pick(350, 389)
    assert crypto.selected_names() == ["sphere_?_2"]
    crypto.add_tokens(["has_n_asterisk"])
    frame2 = open_exr(shared_path(*f"{PSYOP}/cornellBox_CryptoWildcard.0002.exr".split("/")))
    crypto.document_model.set_document(frame2)
    settle(qtbot, crypto)
    # the matte list carries over; sphere_?_2 is not in frame 2's manifest (keyed by its hash, absent)
    assert crypto.selection.tokens == ["has_n_asterisk", r"sphere_\?_2"]
    assert crypto.layer.name_of(crypto.pick(350, 389, remove=True)) == "has_n_asterisk"


def test_matte_and_preview_follow_the_selection(crypto_for, qtbot):
    crypto = crypto_for(f"{PSYOP}/multichannel.exr")
    assert [la.name for la in crypto.layers] == ["crypto_asset", "crypto_material", "crypto_object"]
    crypto.set_layer("crypto_asset")
    settle(qtbot, crypto)
    crypto.set_matte_list("ball_asset")
    settle(qtbot, crypto)
    assert crypto.matte.pixels == 4069 and crypto.matte.total == pytest.approx(2713.312, abs=1e-3)
    for mode in PREVIEW_MODES:
        crypto.set_preview_mode(mode)
        settle(qtbot, crypto)
        if mode == "off":
            assert crypto.overlay is None
        else:
            assert crypto.overlay.mode == mode and crypto.overlay.rgba.shape == (128, 128, 4)
    with pytest.raises(ValueError):
        crypto.set_preview_mode("sepia")
    index = crypto.index
    assert index.has_stats and index.names == ["ball_asset", "toroidal_asset"]
    assert index.pixels.tolist() == [4069, 6665]


def test_half_ids_give_an_error_and_never_key(crypto_for, tmp_path):
    crypto = crypto_for(HALF_FILE)
    assert [la.name for la in crypto.layers] == ["CryptoObject"]
    assert "HALF" in crypto.error and "CryptoObject00.R" in crypto.error and "refusing to key" in crypto.error
    assert crypto.ranks is None and crypto.matte is None and crypto.overlay is None
    assert crypto.pick(70, 40) is None
    assert "cannot be keyed" in crypto.message or "refusing" in crypto.message
    assert len(crypto.selection) == 0
    failures = []
    crypto.export_failed.connect(failures.append)
    assert not crypto.export_matte(tmp_path / "m.exr")
    assert failures and "HALF" in failures[0]
    assert not list(tmp_path.iterdir())


ALL_FILES = [f for f in shared_files("cryptomatte/*/*.exr") + shared_files(f"{CAPI}/images/*.exr")]


@pytest.mark.parametrize("rel", ALL_FILES)
def test_every_file_opens_lists_its_layers_and_keys(crypto_for, qtbot, rel):
    crypto = crypto_for(rel)
    doc = crypto.document
    images = [p.image if isinstance(p.image, FlatImage) else None for p in doc.parts]
    expected = find_document_crypto_layers([p.header for p in doc.parts], doc.path, images)
    assert [la.name for la in crypto.layers] == [la.name for la in expected]
    for i, layer in enumerate(expected):
        crypto.set_layer(i)
        settle(qtbot, crypto)
        if not layer.keyable:  # HALF ids, or metadata without rank channels
            assert crypto.error and crypto.ranks is None
            continue
        assert crypto.error == ""
        index = crypto.index
        assert index.named.sum() == len(layer.manifest)
        assert sorted(index.names[:len(layer.manifest)]) == sorted(layer.manifest)
        ranks = crypto_ranks(layer, doc.parts[layer.part_index].image)
        present = id_coverage(ranks.ids, ranks.coverage)[0]
        present = present[(present & 0x7FFFFFFF) != 0]
        assert set(index.ids.tolist()) >= set(present.tolist())  # every id seen is listed
        pick = int(present[len(present) // 2])  # key one id through its manifest row
        crypto.set_selection([])
        crypto.add_ids([pick])
        settle(qtbot, crypto)
        np.testing.assert_array_equal(crypto.matte.matte, layer_matte(layer, doc.parts[layer.part_index].image,
                                                                       np.array([pick], np.uint32)))
        assert crypto.matte.pixels > 0


def test_export_matte_exr_and_png(crypto_for, qtbot, tmp_path):
    crypto = crypto_for(CORNELL1)
    crypto.set_matte_list("sphere_?_2")
    settle(qtbot, crypto)
    reports = []
    crypto.export_finished.connect(reports.append)
    for name in ("m.exr", "m.png"):
        assert crypto.export_matte(tmp_path / name)
        qtbot.waitUntil(lambda: not crypto.export_lane.busy, timeout=30000)
    assert [r.paths for r in reports] == [[str(tmp_path / "m.exr")], [str(tmp_path / "m.png")]]
    out = open_exr(tmp_path / "m.exr").parts[0].image
    src = crypto.layer_image
    assert list(out.channels) == ["A"] and out.channels["A"].dtype == np.float32
    assert out.data_window == src.data_window and out.display_window == src.display_window
    np.testing.assert_array_equal(out.channels["A"], layer_matte(crypto.layer, src, "sphere_?_2"))
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # never over the input
    failures = []
    crypto.export_failed.connect(failures.append)
    before = os.path.getmtime(crypto.document.path)
    assert crypto.export_matte(crypto.document.path)
    qtbot.waitUntil(lambda: not crypto.export_lane.busy, timeout=30000)
    assert failures and "refusing to overwrite" in failures[0]
    assert os.path.getmtime(crypto.document.path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
