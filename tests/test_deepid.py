"""core.deepid: id channels, the deepidselect query language, masks, deep selections and coverage.

Real-data tests reproduce OpenEXR's ``deepidselect`` (its masks, deep output and "adding match"
stderr lines, in the shared test data); every kernel is also checked against a slow, obvious
Python reference on random inputs.
"""

from __future__ import annotations

import shlex

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.deepid import (
    IdChannel,
    IdSelection,
    Query,
    SelectionGroup,
    deep_mask,
    deep_select,
    find_id_channel,
    id_channels,
    id_coverage,
    id_totals,
    parse_query,
    parse_term,
    rank_ids,
    resolve,
    select_samples,
    split_and,
    visible_weights,
)
from core.errors import SelectionError
from core.exr_read import open_exr
from core.idmanifest import ChannelGroup, IdManifest, manifest_from_header
from core.model import Attribute, Box, ChannelInfo, DeepImage, FlatImage, PartHeader, PixelType
from tests.shared_data import TESTDATA, shared_path

# --------------------------------------------------------------------------- the deepidselect log


def deepidselect_runs() -> list[tuple[str, bool, str, list[str], str, list[str]]]:
    """(id, mask?, input, terms, output, stderr lines) for each deepidselect command in the log."""
    log = TESTDATA / "deepid" / "commands_and_stderr.log"
    if not log.is_file():
        return []
    runs = []
    for block in log.read_text().split("$ ")[1:]:
        lines = block.strip().split("\n")
        argv = shlex.split(lines[0])
        if argv[0] != "deepidselect":
            continue
        args = argv[1:]
        mask = args[0] == "--mask"
        if mask:
            args = args[1:]
        stderr = [line for line in lines[1:] if not line.startswith("[exit")]
        runs.append((args[-1].split("/")[-1], mask, args[0], args[1:-1], args[-1], stderr))
    return runs


RUNS = deepidselect_runs()
RUN_IDS = [r[0] for r in RUNS]


def load(rel: str):
    doc = open_exr(shared_path("deepid", rel))
    part = doc.parts[0]
    return part.image, manifest_from_header(part.header)


def test_log_has_every_command():
    if not RUNS:
        pytest.skip(f"shared testdata not found at {TESTDATA}")
    assert len(RUNS) == 15 and sum(1 for r in RUNS if r[1]) == 14


@pytest.mark.parametrize("run", RUNS, ids=RUN_IDS)
def test_matches_are_deepidselects_stderr(run):
    _, _, inp, terms, _, stderr = run
    image, manifest = load(inp)
    selection = resolve(parse_query(split_and(terms)), manifest, image)
    assert selection.log_lines() == stderr


@pytest.mark.parametrize("run", [r for r in RUNS if r[1]], ids=[r[0] for r in RUNS if r[1]])
def test_masks_reproduce_deepidselect(run):
    _, _, inp, terms, out, _ = run
    image, manifest = load(inp)
    selected = select_samples(image, resolve(parse_query(split_and(terms)), manifest, image))
    mask = deep_mask(image, selected)
    ref = open_exr(shared_path("deepid", out)).parts[0]
    assert ref.image.pixel_types["A"] == PixelType.HALF
    assert ref.image.data_window == image.data_window
    expected = ref.image.channels["A"]
    assert mask.dtype == np.float32 and mask.shape == expected.shape
    # deepidselect writes HALF: ours rounded to half must be the same bits
    np.testing.assert_array_equal(mask.astype(np.float16).view(np.uint16),
                                  expected.astype(np.float16).view(np.uint16))
    assert np.abs(mask - expected).max() <= 2.0**-11  # and nowhere further than half rounding


def test_mask_table_in_readme():
    """Selected-sample counts and nonzero mask pixels as the testdata README tabulates them."""
    image, manifest = load("openexr/42.deep.exr")
    for terms, n_selected, n_pixels in ((["blue"], 6913, 6194), (["particleid:3"], 39, 39),
                                        (["model:circle/big"], 14312, 12043)):
        selected = select_samples(image, resolve(parse_query([terms]), manifest, image))
        assert int(selected.sum()) == n_selected
        assert int((deep_mask(image, selected) > 0).sum()) == n_pixels


def test_deep_selection_reproduces_deepidselect():
    image, manifest = load("openexr/42.deep.exr")
    query = parse_query([["material:blue"], ["model:blob"]])
    subset = deep_select(image, select_samples(image, resolve(query, manifest, image)))
    ref = open_exr(shared_path("deepid", "masks", "42_material-blue_AND_model-blob.deep.exr")).parts[0].image
    assert subset.total_samples == ref.total_samples == 3921
    np.testing.assert_array_equal(subset.offsets, ref.offsets)
    assert set(subset.channels) == set(ref.channels)
    for name in ref.channels:
        np.testing.assert_array_equal(subset.channels[name], ref.channels[name], err_msg=name)
    assert subset.pixel_types == image.pixel_types


# --------------------------------------------------------------------------- id channels


def test_id_channels_of_the_test_files():
    image, manifest = load("openexr/42.deep.exr")
    chans = id_channels(image, manifest)
    assert [(c.name, c.low, c.high, c.group_index) for c in chans] == [
        ("modelid", "modelid", None, 0), ("materialid", "materialid", None, 1),
        ("particleid", "particleid", None, 2)]
    image, manifest = load("openexr/64.deep.exr")
    chans = id_channels(image, manifest)
    assert [(c.name, c.low, c.high, c.bits) for c in chans] == [
        ("model", "model.id0", "model.id1", 64), ("material", "material.id0", "material.id1", 64),
        ("particleid", "particleid", None, 32)]
    model = chans[0]
    values = model.values(image.channels)
    expected = (image.channels["model.id1"].astype(np.uint64) << np.uint64(32)) | image.channels["model.id0"]
    np.testing.assert_array_equal(values, expected)
    assert set(np.unique(values).tolist()) <= set(manifest.groups[0].entries)
    assert find_id_channel(chans, "material.id1") is chans[1]
    assert find_id_channel(chans, "nope") is None


def test_id_channels_without_manifest():
    names = ["R", "A", "objectid", "crypto.materialID", "x.id0", "x.id1", "lone.id0", "id0", "id1", "custom"]
    chans = id_channels(names)
    assert [(c.name, c.low, c.high) for c in chans] == [
        ("crypto.materialID", "crypto.materialID", None), ("id", "id0", "id1"), ("objectid", "objectid", None),
        ("x", "x.id0", "x.id1")]
    # a manifest group can name any channel, and an id2 group with channels not in the image is skipped
    manifest = IdManifest([ChannelGroup(channels={"custom"}), ChannelGroup(channels={"i1", "i2"},
                                                                           encoding_scheme="id2")])
    chans = id_channels(names, manifest)
    assert chans[0] == IdChannel("custom", "custom", None, 0)
    # only UINT channels hold ids
    header = PartHeader(0, {"channels": Attribute("channels", "chlist", [ChannelInfo("id", PixelType.HALF),
                                                                         ChannelInfo("modelid", PixelType.UINT)])})
    assert [c.name for c in id_channels(header)] == ["modelid"]
    flat = FlatImage(Box(0, 0, 1, 0), Box(0, 0, 1, 0), {"id": np.zeros((1, 2), np.float32),
                                                        "materialid": np.zeros((1, 2), np.uint32)}, {})
    assert [c.name for c in id_channels(flat)] == ["materialid"]


# --------------------------------------------------------------------------- query language


@pytest.mark.parametrize("text, kind, pattern, component, negated", [
    ("blue", "substring", "blue", None, False),
    ("material:blue", "substring", "blue", "material", False),
    ("particleid:3", "number", "3", "particleid", False),
    ("3", "number", "3", None, False),
    ("material:", "number", "", "material", False),
    (":blue", "substring", "blue", "", False),
    ("blob*", "glob", "blob*", None, False),
    ("model:b?ob/*", "glob", "b?ob/*", "model", False),
    ("=blob/big", "exact", "blob/big", None, False),
    ("model:=blob*", "exact", "blob*", "model", False),
    ("-blob", "substring", "blob", None, True),
    ("not:material:blue", "substring", "blue", "material", True),
    ("-particleid:3", "number", "3", "particleid", True),
    ("-", "substring", "-", None, False),
    ("a:b:c", "substring", "b:c", "a", False),
])
def test_parse_term(text, kind, pattern, component, negated):
    term = parse_term(text)
    assert (term.kind, term.pattern, term.component, term.negated) == (kind, pattern, component, negated)


def test_parse_errors_and_split():
    for bad in ([], [[]], [["blue"], []], [["not:"]]):
        with pytest.raises(SelectionError):
            parse_query(bad)
    assert split_and(["a", "b", "--and", "c", "--and", "d"]) == [["a", "b"], ["c"], ["d"]]
    assert str(parse_query([["a", "b"], ["c"]])) == "a b --and c"


def ids_of(selection: IdSelection, group: int = 0) -> dict[str, set[int]]:
    return {ch.name: set(v.tolist()) for ch, v in selection.groups[group].include.items()}


def test_extensions_on_a_real_manifest():
    image, manifest = load("openexr/42.deep.exr")
    model, material = manifest.groups[0].entries, manifest.groups[1].entries

    def named(entries, pred):
        return {v for v, t in entries.items() if pred(t[0])}

    sel = resolve(parse_query([["blob*"]]), manifest, image)
    assert ids_of(sel) == {"modelid": named(model, lambda s: s.startswith("blob"))}
    sel = resolve(parse_query([["*/big", "material:?ed"]]), manifest, image)
    assert ids_of(sel) == {"modelid": named(model, lambda s: s.endswith("/big")),
                           "materialid": named(material, lambda s: s == "red")}
    assert resolve(parse_query([["=blob"]]), manifest, image).matches == []
    sel = resolve(parse_query([["model:=blob/big"]]), manifest, image)
    assert ids_of(sel) == {"modelid": named(model, lambda s: s == "blob/big")}
    assert resolve(parse_query([["Blue"]]), manifest, image).matches == []  # case-sensitive
    # numeric terms: a 32-bit value that does not fit, an unknown channel, a non-UINT channel
    for text in ("particleid:4294967296", "nochannel:3", "A:0", "3"):
        assert resolve(parse_query([[text]]), manifest, image).matches == []


def test_negation_semantics():
    image, manifest = load("openexr/42.deep.exr")
    ch = {c.name: c.values(image.channels) for c in id_channels(image, manifest)}
    model, material = manifest.groups[0], manifest.groups[1]
    blue = ch["materialid"] == material.hash_of("blue")
    blob = np.isin(ch["modelid"], [v for v, t in model.entries.items() if "blob" in t[0]])
    big_blob = ch["modelid"] == model.hash_of("blob/big")

    def run(groups):
        return select_samples(image, resolve(parse_query(groups), manifest, image))

    np.testing.assert_array_equal(run([["material:blue"], ["not:model:blob"]]), blue & ~blob)
    np.testing.assert_array_equal(run([["material:blue", "not:model:blob"]]), blue & ~blob)
    np.testing.assert_array_equal(run([["blob", "-blob/big"]]), blob & ~big_blob)
    np.testing.assert_array_equal(run([["not:blue"]]), ~blue)
    np.testing.assert_array_equal(run([["-particleid:3"]]), image.channels["particleid"] != 3)
    # a positive term that matches nothing selects nothing, even with a negation beside it
    assert not run([["nothing-is-called-this", "-blue"]]).any()
    sel = resolve(parse_query([["material:blue"], ["not:model:blob"]]), manifest, image)
    assert len(sel.log_lines()) == 1  # deepidselect would only print positive matches


def test_numeric_64bit_pair_and_half_pair():
    image, manifest = load("openexr/64.deep.exr")
    value = manifest.groups[0].hash_of("blob/small")
    by_name = select_samples(image, resolve(parse_query([["model:blob/small"]]), manifest, image))
    by_number = select_samples(image, resolve(parse_query([[f"model:{value}"]]), manifest, image))
    np.testing.assert_array_equal(by_name, by_number)
    assert by_name.sum() == 1237
    low = select_samples(image, resolve(parse_query([[f"model.id0:{value & 0xFFFFFFFF}"]]), manifest, image))
    np.testing.assert_array_equal(low, image.channels["model.id0"] == (value & 0xFFFFFFFF))


def test_flat_image_selection():
    doc = open_exr(shared_path("deepid", "openexr", "manifest_id.exr"))
    part = doc.parts[0]
    manifest = manifest_from_header(part.header)
    sel = resolve(parse_query([["merino/body"], ["-skin"]]), manifest, part.image)
    picked = select_samples(part.image, sel)
    ids = part.image.channels["id"]
    np.testing.assert_array_equal(picked, ids == 1)
    assert picked.shape == (100, 100) and picked[:50, :50].all() and picked.sum() == 2500
    # group 1 names channels the image does not have: nothing to add
    assert resolve(parse_query([["instance:1"]]), manifest, part.image).matches == []


def test_missing_channels_and_alpha():
    image = DeepImage(Box(0, 0, 0, 0), Box(0, 0, 0, 0), np.array([0, 1], np.int64),
                      {"id": np.array([5], np.uint32)}, {})
    sel = IdSelection(Query(()), [SelectionGroup({IdChannel("other", "other"): np.array([1], np.uint64)})],
                      [], ("id",))
    with pytest.raises(SelectionError):
        select_samples(image, sel)
    with pytest.raises(SelectionError):
        deep_mask(image, np.array([True]))
    with pytest.raises(SelectionError):
        deep_mask(image, np.array([True, False]))


# --------------------------------------------------------------------------- random inputs vs references


@st.composite
def deep_images(draw, max_pixels=12, max_samples=6, with_specials=True):
    w = draw(st.integers(1, 4))
    h = draw(st.integers(1, max(1, max_pixels // w)))
    counts = draw(st.lists(st.integers(0, max_samples), min_size=w * h, max_size=w * h))
    n = sum(counts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    specials = [np.nan, np.inf, -np.inf, 0.0, 1.0, -0.5, 1.5] if with_specials else [0.0, 1.0]
    alpha = draw(st.lists(st.one_of(st.floats(0, 1, width=32), st.sampled_from(specials)), min_size=n, max_size=n))
    pool = draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=5))
    low = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    high = draw(st.lists(st.sampled_from([0, 1, 2**32 - 1]), min_size=n, max_size=n))
    channels = {"A": np.array(alpha, np.float32), "id": np.array(low, np.uint32),
                "p.id0": np.array(low, np.uint32), "p.id1": np.array(high, np.uint32)}
    box = Box(3, -2, 3 + w - 1, -2 + h - 1)
    return DeepImage(box, box, offsets, channels, {k: PixelType.FLOAT for k in channels}), pool


def ref_mask(image: DeepImage, selected: np.ndarray) -> np.ndarray:
    """deepidselect's loop, literally: float accumulators, double arithmetic for each update."""
    out = np.zeros(image.width * image.height, np.float32)
    alpha = image.channels["A"]
    for p in range(image.width * image.height):
        total = np.float32(0)
        mask = np.float32(0)
        for s in range(image.offsets[p], image.offsets[p + 1]):
            a = float(alpha[s])
            if selected[s]:
                mask = np.float32(float(mask) + (1.0 - float(total)) * a)
            total = np.float32(float(total) + (1.0 - float(total)) * a)
        if total > 0:
            with np.errstate(invalid="ignore"):  # inf / inf is NaN, as in C++
                mask = np.float32(mask / total)
        out[p] = mask
    return out.reshape(image.height, image.width)


def ref_select(image: DeepImage, selection: IdSelection) -> np.ndarray:
    """Each sample against each group with Python sets."""

    def hit(sets, s):
        for ch, ids in sets.items():
            v = int(image.channels[ch.low][s])
            if ch.high is not None:
                v |= int(image.channels[ch.high][s]) << 32
            if v in set(ids.tolist()):
                return True
        return False

    out = []
    for s in range(image.total_samples):
        ok = True
        for g in selection.groups:
            group_ok = (hit(g.include, s) if g.has_positive else True) and not hit(g.exclude, s)
            ok = ok and group_ok
        out.append(ok)
    return np.array(out, bool)


channel_kinds = st.sampled_from([IdChannel("id", "id"), IdChannel("p", "p.id0", "p.id1")])


@st.composite
def selections(draw, pool):
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        values = st.lists(st.sampled_from(pool + [7, 2**32 + pool[0], 2**64 - 1]), max_size=4)
        include = {draw(channel_kinds): np.unique(np.array(draw(values), np.uint64))
                   for _ in range(draw(st.integers(0, 2)))}
        exclude = {draw(channel_kinds): np.unique(np.array(draw(values), np.uint64))
                   for _ in range(draw(st.integers(0, 2)))}
        groups.append(SelectionGroup(include, exclude, draw(st.booleans()) or bool(include)))
    return IdSelection(Query(()), groups, [], ("A", "id", "p.id0", "p.id1"))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_kernels_match_references(data):
    image, pool = data.draw(deep_images())
    selection = data.draw(selections(pool))
    selected = select_samples(image, selection)
    np.testing.assert_array_equal(selected, ref_select(image, selection))

    mask = deep_mask(image, selected)
    np.testing.assert_array_equal(mask.view(np.uint32), ref_mask(image, selected).view(np.uint32))

    subset = deep_select(image, selected)
    counts = [int(selected[image.offsets[p]:image.offsets[p + 1]].sum()) for p in range(image.width * image.height)]
    np.testing.assert_array_equal(subset.offsets, np.concatenate([[0], np.cumsum(counts)]))
    for name, arr in image.channels.items():
        np.testing.assert_array_equal(subset.channels[name], arr[selected])
    assert subset.data_window == image.data_window


def ref_weights(image: DeepImage) -> np.ndarray:
    out = np.zeros(image.total_samples, np.float32)
    alpha = image.channels["A"]
    for p in range(image.width * image.height):
        acc = np.float32(0)
        for s in range(image.offsets[p], image.offsets[p + 1]):
            w = (1.0 - float(acc)) * abs(float(alpha[s]))
            out[s] = np.float32(w)
            acc = np.float32(float(acc) + w)
    return out


def ref_ranks(image: DeepImage, ids: np.ndarray, weights: np.ndarray, ranks: int):
    out_ids = np.zeros((image.width * image.height, ranks), np.uint64)
    out_w = np.zeros((image.width * image.height, ranks), np.float32)
    for p in range(image.width * image.height):
        sums: dict[int, float] = {}
        for s in range(image.offsets[p], image.offsets[p + 1]):
            w = float(weights[s])
            if w != 0 and not np.isnan(w):
                sums[int(ids[s])] = sums.get(int(ids[s]), 0.0) + w
        ranked = sorted(((v, k) for k, v in sums.items() if not np.isnan(v)), key=lambda t: (-t[0], t[1]))
        for r, (w, k) in enumerate(ranked[:ranks]):
            out_ids[p, r] = k
            out_w[p, r] = np.float32(w)
    return out_ids.reshape(image.height, image.width, ranks), out_w.reshape(image.height, image.width, ranks)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_coverage_matches_references(data):
    image, _ = data.draw(deep_images(with_specials=data.draw(st.booleans())))
    weights = visible_weights(image)
    np.testing.assert_array_equal(weights.view(np.uint32), ref_weights(image).view(np.uint32))
    ranks = data.draw(st.integers(1, 4))
    channel = data.draw(channel_kinds)
    values = channel.values(image.channels)
    got_ids, got_w = rank_ids(image.offsets, values, weights, ranks, (image.height, image.width))
    ref_ids, ref_w = ref_ranks(image, values, weights, ranks)
    np.testing.assert_array_equal(got_ids, ref_ids)
    np.testing.assert_array_equal(got_w, ref_w)
    cov = id_coverage(image, channel, ranks)
    np.testing.assert_array_equal(cov.rank_ids, ref_ids)
    sums: dict[int, float] = {}
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        if w != 0 and not np.isnan(w):
            sums[v] = sums.get(v, 0.0) + w
    assert cov.ids.tolist() == sorted(sums)
    np.testing.assert_allclose(cov.totals, [sums[k] for k in sorted(sums)], rtol=1e-12)


def test_coverage_of_a_real_file_sums_to_alpha():
    from core.kernels import flatten

    image, manifest = load("openexr/42.deep.exr")
    material = find_id_channel(id_channels(image, manifest), "materialid")
    cov = id_coverage(image, material, ranks=8)
    alpha = flatten(image, ["A"])["A"]
    # at most 7 materials, so 8 ranks hold everything: the ranks sum to the flattened alpha
    np.testing.assert_allclose(cov.rank_weights.sum(-1), alpha, atol=2e-6)
    assert set(cov.ids.tolist()) <= set(manifest.groups[1].entries)
    np.testing.assert_allclose(cov.totals.sum(), alpha.sum(dtype=np.float64), rtol=1e-5)
    assert np.all(np.diff(cov.rank_weights, axis=-1) <= 0)
    blue = manifest.groups[1].hash_of("blue")
    keyed = np.where(cov.rank_ids == blue, cov.rank_weights, 0).sum(-1)
    selected = select_samples(image, resolve(parse_query([["material:blue"]]), manifest, image))
    np.testing.assert_allclose(keyed, deep_mask(image, selected) * alpha, atol=1e-6)


def test_edge_cases():
    empty = DeepImage(Box(0, 0, 1, 1), Box(0, 0, 1, 1), np.zeros(5, np.int64),
                      {"A": np.zeros(0, np.float32), "id": np.zeros(0, np.uint32)}, {})
    assert deep_mask(empty, np.zeros(0, bool)).tolist() == [[0, 0], [0, 0]]
    assert deep_select(empty, np.zeros(0, bool)).total_samples == 0
    ids, w = rank_ids(empty.offsets, np.zeros(0, np.uint64), np.zeros(0, np.float32), 2, (2, 2))
    assert ids.shape == (2, 2, 2) and not w.any()
    with pytest.raises(SelectionError):
        rank_ids(empty.offsets, np.zeros(0, np.uint64), np.zeros(0, np.float32), 0, (2, 2))
    with pytest.raises(SelectionError):
        rank_ids(empty.offsets, np.zeros(1, np.uint64), np.zeros(1, np.float32), 1, (2, 2))
    u, t = id_totals(np.array([3, 3, 1], np.uint64), np.array([0.5, np.nan, 0.0], np.float32))
    assert u.tolist() == [3] and t.tolist() == [0.5]
    # an empty include set selects nothing; a UINT-less id channel is refused
    image = DeepImage(Box(0, 0, 0, 0), Box(0, 0, 0, 0), np.array([0, 2], np.int64),
                      {"id": np.array([1, 2], np.uint32), "f": np.array([1, 2], np.float32)}, {})
    sel = IdSelection(Query(()), [SelectionGroup({IdChannel("id", "id"): np.zeros(0, np.uint64)})], [], ())
    assert not select_samples(image, sel).any()
    sel = IdSelection(Query(()), [SelectionGroup({IdChannel("f", "f"): np.array([1], np.uint64)})], [], ())
    with pytest.raises(SelectionError):
        select_samples(image, sel)


def test_many_ids_select_like_isin():
    rng = np.random.default_rng(1)
    n = 200_000
    pool = rng.integers(0, 2**32, 5000, dtype=np.uint64)
    values = pool[rng.integers(0, 5000, n)].astype(np.uint32)
    image = DeepImage(Box(0, 0, 999, 199), Box(0, 0, 999, 199), np.arange(n + 1, dtype=np.int64),
                      {"id": values}, {})
    chosen = np.unique(pool[:1500])
    sel = IdSelection(Query(()), [SelectionGroup({IdChannel("id", "id"): chosen})], [], ())
    np.testing.assert_array_equal(select_samples(image, sel), np.isin(values, chosen.astype(np.uint32)))
    # id totals through a hash table that has to grow several times
    weights = rng.random(n).astype(np.float32)
    weights[::5] = 0
    keep = weights != 0
    unique, inverse = np.unique(values[keep], return_inverse=True)
    got_ids, got_totals = id_totals(values, weights)
    np.testing.assert_array_equal(got_ids, unique)
    np.testing.assert_array_equal(got_totals, np.bincount(inverse, weights=weights[keep].astype(np.float64)))


def test_ranks_of_deep_pixels():
    """Pixels with many samples (the sort path past insertion sort) against the reference."""
    rng = np.random.default_rng(2)
    counts = np.array([0, 1, 33, 200, 7, 64])
    n = int(counts.sum())
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    alpha = rng.random(n).astype(np.float32) * 0.05
    alpha[::11] = 0
    values = rng.integers(0, 12, n).astype(np.uint32)
    image = DeepImage(Box(0, 0, 2, 1), Box(0, 0, 2, 1), offsets, {"A": alpha, "id": values}, {})
    weights = visible_weights(image)
    for ranks in (1, 6, 20):
        got = rank_ids(offsets, values.astype(np.uint64), weights, ranks, (2, 3))
        ref = ref_ranks(image, values.astype(np.uint64), weights, ranks)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
