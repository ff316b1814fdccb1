"""DeepIdModel: manifests and id sources of real files, picking, selections, masks, previews, exports.

References are independent of the code under test where they can be: the ``exrmanifest`` text
files, the masks and deep selection OpenEXR's own ``deepidselect`` wrote, numpy membership
(``np.isin``) for selections, a plain loop for visible weights and a plain PNG decoder.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest

from app.deepid_model import (
    PREVIEW_MODES,
    DeepIdModel,
    IdSource,
    checkerboard,
    format_id,
    mask_on_display_window,
    source_rows,
)
from app.document import DocumentModel
from core.deepid import deep_mask, deep_select
from core.exr_read import open_exr
from core.idmanifest import ChannelGroup, IdManifest, encode_id_manifest
from core.kernels import flatten
from core.model import Attribute, Box, DeepImage, ExrDocument, PixelType
from tests.gui.helpers import make_deep, make_document
from tests.shared_data import shared_path

pytestmark = pytest.mark.gui


def deepid_file(*parts: str):
    return shared_path("deepid", *parts)


def wait_idle(qtbot, model: DeepIdModel, timeout: int = 30000) -> None:
    qtbot.waitUntil(lambda: not model.busy, timeout=timeout)


def open_model(qtbot, path) -> tuple[DocumentModel, DeepIdModel]:
    doc = DocumentModel()
    ids = DeepIdModel(doc)
    doc.set_document(open_exr(path))
    wait_idle(qtbot, ids)
    return doc, ids


def exrmanifest_groups(path) -> list[dict[int, tuple[str, ...]]]:
    """The id -> names tables of an ``exrmanifest`` reference text, group by group."""
    groups: list[dict[int, tuple[str, ...]]] = []
    for line in open(path, encoding="utf-8").read().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(" channels"):
            groups.append({})
            continue
        fields = line.split()
        if groups and fields and line.startswith("     ") and fields[0].isdigit():
            groups[-1][int(fields[0])] = tuple(fields[1:])
    return groups


def isin_ids(image, channel: str, ids) -> np.ndarray:
    return np.isin(image.channels[channel].astype(np.uint64), np.array(sorted(ids), dtype=np.uint64))


def front_visible_reference(image: DeepImage, lx: int, ly: int) -> int | None:
    """First sample, in stored order, that adds visibly: |alpha| * (1 - accumulated alpha) > 0."""
    i = ly * image.width + lx
    acc = 0.0
    for s in range(int(image.offsets[i]), int(image.offsets[i + 1])):
        a = abs(float(image.channels["A"][s]))
        if a * (1.0 - acc) > 0:
            return s - int(image.offsets[i])
        acc += a * (1.0 - acc)
    return None


def half(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(np.float32)


# ---------------------------------------------------------------------- manifests and sources


@pytest.mark.parametrize("name", ["42.deep.exr", "64.deep.exr", "multivariate.deep.exr", "11.deep.exr"])
def test_sources_list_every_manifest_entry(qtbot, name):
    path = deepid_file("openexr", name)
    doc, ids = open_model(qtbot, path)
    reference = exrmanifest_groups(str(path) + ".txt")
    assert ids.manifest is not None and ids.manifest.source == "idManifest"
    assert len(ids.sources) == len(reference)
    image = doc.image
    for source, entries in zip(ids.sources, reference, strict=True):
        rows = source_rows(source, ids.id_stats[source.key])
        named = {r.id: r.names for r in rows if r.names is not None}
        assert named == entries
        # every id found in the image has a row, with its numpy sample count
        values = np.concatenate([ch.values(image.channels) for ch in source.channels])
        present, counts = np.unique(values, return_counts=True)
        by_id = {r.id: r for r in rows}
        assert {int(v) for v in present} <= set(by_id)
        for v, c in zip(present.tolist(), counts.tolist(), strict=True):
            assert by_id[v].samples == c
        assert source.bits == (64 if "64" in name and source.title != "particleid" else 32)
        for r in rows:
            assert len(format_id(r.id, source.bits)) == source.bits // 4


def test_coverage_is_the_visible_weight_sum(qtbot):
    rng = np.random.default_rng(3)
    image = make_deep(rng.integers(0, 5, (3, 4)), rng=rng)
    image.channels["id"] = rng.integers(0, 4, image.total_samples).astype(np.uint32)
    doc = DocumentModel()
    ids = DeepIdModel(doc)
    doc.set_document(make_document(image))
    wait_idle(qtbot, ids)
    (source,) = ids.sources
    assert source.key == "channel:id" and source.group is None
    expected: dict[int, float] = {}
    for p in range(image.width * image.height):
        acc = 0.0
        for s in range(int(image.offsets[p]), int(image.offsets[p + 1])):
            a = abs(float(image.channels["A"][s]))
            w = a * (1.0 - acc)
            acc += w
            expected[int(image.channels["id"][s])] = expected.get(int(image.channels["id"][s]), 0.0) + w
    rows = {r.id: r for r in source_rows(source, ids.id_stats[source.key])}
    assert set(rows) == set(expected)
    for v, w in expected.items():
        assert rows[v].coverage == pytest.approx(w, rel=1e-5, abs=1e-6)


def test_object_id_convention_and_loose_channels(qtbot):
    doc, ids = open_model(qtbot, deepid_file("openexr", "objectid.deep.exr"))
    assert ids.manifest.source == "objectID"
    group_source, particles = ids.sources
    assert group_source.components == ("model", "material")
    assert [c.name for c in group_source.channels] == ["id"]
    assert particles.group is None and particles.title == "particleid"
    image = doc.image
    # the objectID strings are "model,material,id": check a few against the header text directly
    strings = doc.document.parts[0].header.get("objectID")
    for text in strings[:5]:
        model, material, value = text.split(",")
        assert group_source.entry(int(value)) == (model, material)
    # picking works on the objectID manifest's channel
    counts = image.sample_counts()
    ly, lx = map(int, np.argwhere(counts > 0)[0])
    picked = ids.pick((lx, ly))
    s = front_visible_reference(image, lx, ly)
    assert picked == {int(image.pixel_samples(lx, ly)["id"][s])}


def test_image_without_ids(qtbot):
    image = make_deep([[1, 2], [0, 3]], with_id=False)
    doc = DocumentModel()
    ids = DeepIdModel(doc)
    doc.set_document(make_document(image))
    wait_idle(qtbot, ids)
    assert ids.sources == [] and ids.manifest is None and ids.id_channels == []
    assert ids.pick((1, 1)) is None
    assert ids.can_export() == (False, False)
    failures = []
    ids.export_failed.connect(lambda p, m: failures.append(m))
    ids.export_mask("/nonexistent/mask.exr")
    assert failures and "no id channels" in failures[0]
    ids.set_preview_mode("mask overlay")
    wait_idle(qtbot, ids)
    assert ids.mask is None and ids.overlay is None


def test_malformed_manifest_is_reported_and_ids_still_work(qtbot):
    image = make_deep([[2, 1]])
    doc = DocumentModel()
    ids = DeepIdModel(doc)
    messages = []
    ids.message.connect(messages.append)
    document = make_document(image)
    document.parts[0].header.attributes["idManifest"] = Attribute("idManifest", "idManifest", b"\x01\x02")
    doc.set_document(document)
    wait_idle(qtbot, ids)
    assert ids.manifest is None and messages and "idManifest" in messages[0]
    assert [s.key for s in ids.sources] == ["channel:id"]


# ---------------------------------------------------------------------- picking and selection


def _manifest_document(image: DeepImage, names: dict[int, str]) -> ExrDocument:
    group = ChannelGroup(channels={"id"}, components=["name"], hash_scheme="custom", encoding_scheme="id",
                         entries={v: (n,) for v, n in names.items()})
    doc = make_document(image)
    doc.parts[0].header.attributes["idManifest"] = Attribute(
        "idManifest", "idManifest", encode_id_manifest(IdManifest([group])))
    return doc


def test_pick_skips_samples_that_do_not_show(qtbot):
    """The front sample has alpha 0: picking takes the one behind it; Ctrl-pick removes."""
    rng = np.random.default_rng(7)
    image = make_deep([[3, 2]], rng=rng, with_zback=False)
    image.channels["A"][0] = 0.0  # invisible front sample of pixel (0, 0)
    image.channels["id"][:] = np.arange(image.total_samples, dtype=np.uint32) + 10
    doc = DocumentModel()
    ids = DeepIdModel(doc)
    doc.set_document(_manifest_document(image, {10: "ghost", 11: "wall", 12: "floor"}))
    wait_idle(qtbot, ids)
    assert ids.front_visible_sample((0, 0)) == front_visible_reference(image, 0, 0) == 1
    assert ids.pick((0, 0)) == {11}
    assert ids.checked_ids("group:0") == {11}
    assert ids.pick((1, 0)) == {13}
    assert ids.checked_ids("group:0") == {11, 13}
    ids.pick((0, 0), remove=True)
    assert ids.checked_ids("group:0") == {13}
    assert ids.pick((5, 5)) is None  # outside the data window
    wait_idle(qtbot, ids)
    np.testing.assert_array_equal(ids.mask, deep_mask(image, isin_ids(image, "id", {13})))


def test_id_selection_mask_and_samples(qtbot):
    rng = np.random.default_rng(11)
    image = make_deep(rng.integers(0, 6, (5, 7)), rng=rng)
    image.channels["id"] = rng.integers(0, 5, image.total_samples).astype(np.uint32)
    doc = DocumentModel()
    ids = DeepIdModel(doc)
    doc.set_document(make_document(image))
    wait_idle(qtbot, ids)
    changes = []
    ids.mask_changed.connect(changes.append)
    ids.set_ids("channel:id", {1, 3})
    wait_idle(qtbot, ids)
    expected = isin_ids(image, "id", {1, 3})
    np.testing.assert_array_equal(ids.selected_samples, expected)
    np.testing.assert_array_equal(ids.mask, deep_mask(image, expected))
    assert changes and changes[-1] is ids.mask
    ids.set_checked("channel:id", [3], False)
    wait_idle(qtbot, ids)
    np.testing.assert_array_equal(ids.selected_samples, isin_ids(image, "id", {1}))
    ids.clear_selection()
    wait_idle(qtbot, ids)
    assert not ids.selected_samples.any() and not ids.has_selection
    with pytest.raises(ValueError):
        ids.set_ids("channel:nope", {1})


def test_query_mask_equals_deepidselect(qtbot):
    """material:blue --and model:blob, as OpenEXR's deepidselect --mask wrote it (HALF)."""
    doc, ids = open_model(qtbot, deepid_file("openexr", "42.deep.exr"))
    ids.apply_query("material:blue --and model:blob")
    assert ids.query == "material:blue --and model:blob"
    wait_idle(qtbot, ids)
    image = doc.image
    manifest_ids = {name: v for g in ids.manifest.groups for v, e in g.entries.items() for name in e}
    blobs = {v for v, e in ids.manifest.groups[0].entries.items() if "blob" in e[0]}
    expected = isin_ids(image, "materialid", {manifest_ids["blue"]}) & isin_ids(image, "modelid", blobs)
    np.testing.assert_array_equal(ids.selected_samples, expected)
    reference = open_exr(deepid_file("masks", "42_material-blue_AND_model-blob.mask.exr")).parts[0].image
    np.testing.assert_array_equal(half(ids.mask), reference.channels["A"])
    # the tables show what the positive terms matched
    assert ids.checked_ids("group:1") == {manifest_ids["blue"]}
    assert ids.checked_ids("group:0") == blobs
    # editing ids replaces the query with the ids it matched
    ids.set_checked("group:2", [3], True)
    assert ids.query == "" and ids.checked_ids("group:0") == blobs and ids.checked_ids("group:2") == {3}


def test_bad_query_changes_nothing(qtbot):
    from core.errors import SelectionError

    doc, ids = open_model(qtbot, deepid_file("openexr", "42.deep.exr"))
    ids.set_ids("group:2", {3})
    version = ids.selection_version
    with pytest.raises(SelectionError):
        ids.apply_query("not:")
    assert ids.selection_version == version and ids.checked_ids("group:2") == {3}
    ids.apply_query("")
    assert not ids.has_selection


def test_filter_ids_plain_text_and_queries(qtbot):
    doc, ids = open_model(qtbot, deepid_file("openexr", "42.deep.exr"))
    model, material, particles = ids.sources
    model_names = {v: e[0] for v, e in model.group.entries.items()}
    material_names = {v: e[0] for v, e in material.group.entries.items()}
    blue = next(v for v, n in material_names.items() if n == "blue")

    def shown(text):
        return ids.filter_ids(text)

    assert shown("") is None and shown("   ") is None
    assert shown("blue") == {model.key: set(), material.key: {blue}, particles.key: set()}
    assert shown("BLUE")[material.key] == {blue}  # the plain filter ignores case
    assert shown("material:blue")[material.key] == {blue}
    assert shown(format_id(blue)[:5])[material.key] == {blue}  # hex prefix
    assert shown(str(blue))[material.key] == {blue}  # decimal
    assert shown("blob*")[model.key] == {v for v, n in model_names.items() if n.startswith("blob")}
    negated = shown("-blob")
    assert negated[model.key] == {v for v, n in model_names.items() if "blob" not in n}
    assert negated[material.key] == set(material_names)
    assert 3 in shown("particleid:3")[particles.key]
    both = shown("material:blue --and model:=blob/big")
    assert both[material.key] == {blue}
    assert {model_names[v] for v in both[model.key]} == {"blob/big"}


def test_64_bit_ids_pick_and_mask(qtbot):
    path = deepid_file("openexr", "64.deep.exr")
    doc, ids = open_model(qtbot, path)
    image = doc.image
    model = ids.sources[0]
    assert model.bits == 64 and [c.channel_names for c in model.channels] == [("model.id0", "model.id1")]
    counts = image.sample_counts()
    ly, lx = map(int, np.argwhere(counts >= 2)[len(np.argwhere(counts >= 2)) // 2])
    samples = image.pixel_samples(lx, ly)
    s = front_visible_reference(image, lx, ly)
    expected = int(samples["model.id0"][s]) | int(samples["model.id1"][s]) << 32
    assert ids.pick((lx, ly)) == {expected}
    assert expected in model.group.entries
    wait_idle(qtbot, ids)
    low = image.channels["model.id0"].astype(np.uint64)
    high = image.channels["model.id1"].astype(np.uint64)
    selected = (low | high << np.uint64(32)) == np.uint64(expected)
    np.testing.assert_array_equal(ids.mask, deep_mask(image, selected))
    reference = open_exr(deepid_file("masks", "64_model-blob-small.mask.exr")).parts[0].image
    ids.apply_query("model:blob/small")
    wait_idle(qtbot, ids)
    np.testing.assert_array_equal(half(ids.mask), reference.channels["A"])


def test_flat_part_with_ids(qtbot):
    doc, ids = open_model(qtbot, deepid_file("openexr", "manifest_id.exr"))
    image = doc.image
    (source,) = ids.sources
    assert source.components == ("model", "material")
    assert ids.can_export() == (True, False)
    value = int(image.channels["id"][50, 50])
    assert ids.pick((50, 50)) == {value}
    wait_idle(qtbot, ids)
    np.testing.assert_array_equal(ids.mask, (image.channels["id"] == value).astype(np.float32))


def test_document_and_part_changes_reset_or_keep_the_selection(qtbot):
    path = deepid_file("openexr", "42.deep.exr")
    doc, ids = open_model(qtbot, path)
    ids.set_ids("group:2", {3, 4})
    doc.set_document(open_exr(path), keep_state=True)  # a reload: same file, same part
    wait_idle(qtbot, ids)
    assert ids.checked_ids("group:2") == {3, 4}
    np.testing.assert_array_equal(ids.selected_samples, isin_ids(doc.image, "particleid", {3, 4}))
    doc.set_document(open_exr(deepid_file("openexr", "11.deep.exr")))
    wait_idle(qtbot, ids)
    assert not ids.has_selection and [s.title for s in ids.sources] == ["model / material", "particleid"]
    doc.set_document(None)
    wait_idle(qtbot, ids)
    assert ids.sources == [] and ids.mask is None


# ---------------------------------------------------------------------- previews


def test_preview_modes(qtbot):
    doc, ids = open_model(qtbot, deepid_file("openexr", "42.deep.exr"))
    image = doc.image
    ids.apply_query("red")
    wait_idle(qtbot, ids)
    assert ids.preview_mode == "off" and ids.overlay is None and ids.deep_selection is None
    ids.set_preview_mode("mask overlay")
    wait_idle(qtbot, ids)
    overlay = ids.overlay
    assert overlay.shape == (image.height, image.width, 4) and overlay.dtype == np.uint8
    inside, outside = ids.mask == 1, ids.mask == 0
    assert inside.any() and outside.any()
    # selected pixels tinted towards orange, the rest dimmed with black
    assert (overlay[inside][:, 0] > overlay[inside][:, 2]).all()
    assert (overlay[outside][:, :3] == 0).all() and (overlay[outside][:, 3] > 0).all()

    ids.set_preview_mode("selected objects only")
    wait_idle(qtbot, ids)
    selected = ids.selected_samples
    expected = flatten(deep_select(image, selected), ["R", "G", "B", "A"], split_volumes=True)
    flat = ids.deep_selection
    for c in "RGBA":
        np.testing.assert_array_equal(flat[c], expected[c])
    overlay = ids.overlay
    assert overlay.shape == (image.height, image.width, 4) and (overlay[..., 3] == 255).all()
    empty = expected["A"] == 0  # no selected sample: the checkerboard shows
    np.testing.assert_array_equal(overlay[empty][:, 0], checkerboard(image.height, image.width)[empty])
    # exposure changes only the display of the same flattened selection
    before = overlay.astype(np.int64).sum()
    doc.set_exposure(2.0)
    wait_idle(qtbot, ids)
    assert ids.deep_selection is flat and ids.overlay.astype(np.int64).sum() > before
    ids.set_preview_mode("off")
    assert ids.overlay is None
    with pytest.raises(ValueError):
        ids.set_preview_mode("sideways")
    assert PREVIEW_MODES == ("off", "mask overlay", "selected objects only")


# ---------------------------------------------------------------------- exports


def read_png16(path) -> np.ndarray:
    """A plain decoder for the 16-bit grey PNGs the export writes (filter 0 rows)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 16 and colour == 0
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + 2 * width)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].copy().view(">u2").astype(np.uint16).reshape(height, width)


def run_export(qtbot, ids: DeepIdModel, method, path) -> tuple[bool, str]:
    outcome = []
    ids.export_finished.connect(lambda p, m: outcome.append((True, m)))
    ids.export_failed.connect(lambda p, m: outcome.append((False, m)))
    method(path)
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    return outcome[0]


def test_export_mask_exr_and_png_and_deep_selection(qtbot, tmp_path):
    path = deepid_file("openexr", "42.deep.exr")
    doc, ids = open_model(qtbot, path)
    ids.apply_query("material:blue --and model:blob")
    wait_idle(qtbot, ids)
    image = doc.image

    ok, message = run_export(qtbot, ids, ids.export_mask, tmp_path / "mask.exr")
    assert ok, message
    back = open_exr(tmp_path / "mask.exr").parts[0]
    assert list(back.image.channels) == ["A"] and back.image.pixel_types["A"] == PixelType.FLOAT
    assert back.image.data_window == image.data_window and back.image.display_window == image.display_window
    np.testing.assert_array_equal(back.image.channels["A"], ids.mask)

    ok, message = run_export(qtbot, ids, ids.export_mask, tmp_path / "mask.png")
    assert ok, message
    png = read_png16(tmp_path / "mask.png")
    np.testing.assert_array_equal(png, np.rint(np.clip(ids.mask.astype(np.float64), 0, 1) * 65535).astype(np.uint16))

    ok, message = run_export(qtbot, ids, ids.export_deep_selection, tmp_path / "sel.deep.exr")
    assert ok, message
    got = open_exr(tmp_path / "sel.deep.exr").parts[0]
    expected = deep_select(image, ids.selected_samples)
    reference = open_exr(deepid_file("masks", "42_material-blue_AND_model-blob.deep.exr")).parts[0].image
    for want in (expected, reference):  # ours, and what OpenEXR's deepidselect wrote
        np.testing.assert_array_equal(got.image.offsets, want.offsets)
        assert set(got.image.channels) == set(want.channels)
        for name, arr in want.channels.items():
            np.testing.assert_array_equal(got.image.channels[name], arr)
    assert got.header.get("idManifest") is not None
    assert sorted(os.listdir(tmp_path)) == ["mask.exr", "mask.png", "sel.deep.exr"]  # no temporary files left


def test_export_never_writes_over_the_input(qtbot, tmp_path):
    import shutil

    src = tmp_path / "42.deep.exr"
    shutil.copy(deepid_file("openexr", "42.deep.exr"), src)
    before = src.read_bytes()
    doc, ids = open_model(qtbot, src)
    ids.set_ids("group:2", {3})
    for method in (ids.export_mask, ids.export_deep_selection):
        ok, message = run_export(qtbot, ids, method, src)
        assert not ok and "overwrite" in message
    assert src.read_bytes() == before
    ok, message = run_export(qtbot, ids, ids.export_mask, tmp_path / "missing" / "mask.exr")
    assert not ok and "missing" in message
    assert sorted(os.listdir(tmp_path)) == ["42.deep.exr"]


def test_mask_on_display_window():
    rng = np.random.default_rng(5)
    mask = rng.uniform(0, 1, (4, 6)).astype(np.float32)
    data, display = Box(-2, 1, 3, 4), Box(0, 0, 4, 5)
    out = mask_on_display_window(mask, data, display)
    expected = np.zeros((6, 5), np.float32)
    for y in range(data.ymin, data.ymax + 1):
        for x in range(data.xmin, data.xmax + 1):
            if display.xmin <= x <= display.xmax and display.ymin <= y <= display.ymax:
                expected[y - display.ymin, x - display.xmin] = mask[y - data.ymin, x - data.xmin]
    np.testing.assert_array_equal(out, expected)
    assert not mask_on_display_window(mask, Box(10, 10, 15, 13), display).any()


def test_sample_names_and_profile_selection(qtbot):
    from app.render import pixel_profile

    doc, ids = open_model(qtbot, deepid_file("openexr", "42.deep.exr"))
    image = doc.image
    counts = image.sample_counts()
    ly, lx = map(int, np.argwhere(counts == counts.max())[0])
    profile = pixel_profile(image, lx, ly)
    assert ids.profile_selected(image, profile) is None  # nothing selected: no emphasis
    ids.set_ids("group:1", {next(iter(ids.sources[1].group.entries))})
    columns = dict(ids.sample_columns(image, profile))
    samples = image.pixel_samples(lx, ly)
    groups = ids.manifest.groups
    for i in range(profile.count):
        model = groups[0].entries[int(samples["modelid"][i])][0]
        material = groups[1].entries[int(samples["materialid"][i])][0]
        assert columns["ids"][i] == f"model={model} · material={material} · particleid={samples['particleid'][i]}"
    chosen = ids.checked_ids("group:1")
    expected = np.isin(samples["materialid"], list(chosen))
    np.testing.assert_array_equal(ids.profile_selected(image, profile), expected)
    assert columns["sel"] == ["✓" if e else "" for e in expected]
    other = make_deep([[1]])
    assert ids.sample_columns(other, pixel_profile(other, 0, 0)) == []  # not the open image


def test_64_bit_pair_without_a_manifest(qtbot):
    image = make_deep([[2, 1]], with_id=False)
    image.channels["obj.id0"] = np.array([1, 2, 3], np.uint32)
    image.channels["obj.id1"] = np.array([5, 6, 7], np.uint32)
    image.pixel_types.update({"obj.id0": PixelType.UINT, "obj.id1": PixelType.UINT})
    doc = DocumentModel()
    ids = DeepIdModel(doc)
    doc.set_document(make_document(image))
    wait_idle(qtbot, ids)
    (source,) = ids.sources
    assert isinstance(source, IdSource) and source.title == "obj" and source.bits == 64
    assert ids.pick((1, 0)) == {7 << 32 | 3}
    assert format_id(7 << 32 | 3, source.bits) == "0000000700000003"
    rows = source_rows(source, ids.id_stats[source.key])
    assert [r.id for r in rows] == [5 << 32 | 1, 6 << 32 | 2, 7 << 32 | 3] and all(r.names is None for r in rows)
