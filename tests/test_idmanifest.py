"""core.idmanifest: OpenEXR idManifest payloads, against exrmanifest's output, OpenEXR's bytes and the binding."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ExrError
from core.exr_read import read_headers
from core.hashing import murmur3_32
from core.idmanifest import (
    ChannelGroup,
    IdManifest,
    ManifestError,
    decode_id_manifest,
    encode_id_manifest,
    format_exrmanifest,
    format_exrmanifest_file,
    manifest_from_header,
    manifest_from_object_id,
    parse_id_manifest,
    serialize_id_manifest,
)
from core.model import Box
from tests.shared_data import shared_files, shared_path

REFERENCE_TEXTS = shared_files("deepid/openexr/*.deep.exr.txt")
MANIFEST_FILES = [f for f in shared_files("deepid/**/*.exr") if not f.endswith(".mask.exr")
                  and not f.endswith("objectid.deep.exr")]
# written by our deepidexample build against OpenEXR 3.1 + zlib (see the testdata README); the
# deepidselect output in masks/ copies the upstream attribute (libdeflate, with 4 stray bytes after it)
ZLIB_WRITTEN = [f for f in MANIFEST_FILES if "/generated/" in f]


def raw_payload(path) -> bytes:
    raw = read_headers(path)[0].get("idManifest")
    assert isinstance(raw, bytes)
    return raw


def expected_stdout(txt_path: Path) -> str:
    """The test's rule (OpenEXR src/test/bin/test_exrmanifest.py): drop the licence lines."""
    lines = txt_path.read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("rel", REFERENCE_TEXTS)
def test_exrmanifest_text_matches_reference(rel):
    txt = shared_path(rel)
    exr = txt.with_suffix("")  # x.deep.exr.txt -> x.deep.exr
    headers = read_headers(exr)
    expected = expected_stdout(txt)
    assert format_exrmanifest_file(headers, str(exr)) == expected
    manifest = manifest_from_header(headers[0], exr)
    if "idManifest" in headers[0].attributes:
        assert format_exrmanifest(manifest) == expected
    else:
        assert expected == "no manifest found\n"
        assert manifest is not None and manifest.source == "objectID"
        assert format_exrmanifest(manifest) == expected
    assert len(REFERENCE_TEXTS) == 5


@pytest.mark.parametrize("rel", MANIFEST_FILES)
def test_serialization_is_byte_identical_to_openexr(rel):
    payload = raw_payload(shared_path(rel))
    size = struct.unpack("<Q", payload[:8])[0]
    data = zlib.decompress(payload[8:])
    assert len(data) == size
    manifest = decode_id_manifest(payload)
    assert manifest.uncompressed_size == size
    assert manifest.compressed_size == len(payload) - 8
    assert serialize_id_manifest(manifest) == data
    assert parse_id_manifest(data).groups == manifest.groups


@pytest.mark.parametrize("rel", ZLIB_WRITTEN)
def test_encoded_payload_is_byte_identical_for_zlib_builds(rel):
    payload = raw_payload(shared_path(rel))
    assert encode_id_manifest(decode_id_manifest(payload)) == payload


def test_42_groups_and_hashes():
    manifest = decode_id_manifest(raw_payload(shared_path("deepid/openexr/42.deep.exr")))
    model, material, particle = manifest.groups
    assert model.channels == {"modelid"} and model.components == ["model"]
    assert (model.hash_scheme, model.encoding_scheme, model.lifetime) == ("MurmurHash3_32", "id", "stable")
    assert material.entries[3905155331] == ("blue",)
    for group in (model, material):
        for value, text in group.entries.items():
            assert group.hash_of(text) == value
    assert particle.channels == {"particleid"} and particle.components == []
    assert (particle.hash_scheme, particle.lifetime, particle.entries) == ("none", "shot", {})
    assert manifest.group_for_channel("materialid") is material
    assert manifest.index_of_channel("nope") is None


def test_64bit_groups():
    manifest = decode_id_manifest(raw_payload(shared_path("deepid/openexr/64.deep.exr")))
    model = manifest.groups[0]
    assert model.sorted_channels == ["model.id0", "model.id1"]
    assert model.encoding_scheme == "id2" and model.hash_scheme == "MurmurHash3_64"
    assert model.entries[0xF304BEBBB758C254] == ("blob/small",)
    assert all(model.hash_of(t) == v for v, t in model.entries.items())


def test_manifest_id_exr_matches_the_binding():
    path = shared_path("deepid/openexr/manifest_id.exr")
    ours = decode_id_manifest(raw_payload(path))
    theirs = OpenEXR.File(str(path), header_only=True).header()["idManifest"]
    assert theirs.size() == len(ours.groups) == 2
    for i, group in enumerate(ours.groups):
        ref = theirs[i]
        assert group.channels == set(ref.getChannels())
        assert group.components == list(ref.getComponents())
        assert group.hash_scheme == ref.getHashScheme()
        assert group.encoding_scheme == ref.getEncodingScheme()
        assert group.lifetime == {0: "frame", 1: "shot", 2: "stable"}[int(ref.getLifetime())]
        assert group.entries == {e.id(): tuple(e.text()) for e in ref}
    # the facts the OpenEXR Python test asserts
    assert ours.groups[0].entries == {1: ("merino/body", "wool"), 2: ("merino/body", "skin"),
                                      3: ("merino/body", "skin"), 4: ("merino/eye", "eye")}
    assert ours.groups[1].channels == {"instance1", "instance2"}


def test_object_id_list_reads_into_the_same_structure():
    headers = read_headers(shared_path("deepid/openexr/objectid.deep.exr"))
    strings = headers[0].get("objectID")
    assert len(strings) == 100 and strings[0] == "circle/small,green,3182339638"
    manifest = manifest_from_header(headers[0])
    assert manifest.source == "objectID"
    (group,) = manifest.groups
    assert group.channels == {"id"} and group.components == ["model", "material"]
    assert group.hash_scheme == "MurmurHash3_32" and group.encoding_scheme == "id"
    expected = {}
    for s in strings:
        model, material, value = s.split(",")
        expected[int(value)] = (model, material)
    assert group.entries == expected
    # the same scene with a real manifest (upstream multivariate.deep.exr) names the same ids
    multi = decode_id_manifest(raw_payload(shared_path("deepid/openexr/multivariate.deep.exr")))
    assert group.entries == multi.groups[0].entries


def test_object_id_custom_ids_and_errors():
    m = manifest_from_object_id(["a,1", "b,2", "a,1"])
    assert m.groups[0].components == ["name"] and m.groups[0].hash_scheme == "custom"
    assert m.groups[0].entries == {1: ("a",), 2: ("b",)}
    value = murmur3_32("x;y;z")
    m = manifest_from_object_id([f"x,y,z,{value}"], channel="objectid")
    assert m.groups[0].components == ["component0", "component1", "component2"]
    assert m.groups[0].hash_scheme == "MurmurHash3_32" and m.groups[0].channels == {"objectid"}
    for bad in (["noid"], ["a,b,c"], ["a,4294967296"], ["a,1", "b,c,2"]):
        with pytest.raises(ValueError):
            manifest_from_object_id(bad)


def test_manifest_summary():
    from core.idmanifest import manifest_summary

    summary = manifest_summary(read_headers(shared_path("deepid/openexr/42.deep.exr"))[0], max_entries=2)
    assert summary["source"] == "idManifest" and summary["compressed_size"] == 261
    model = summary["groups"][0]
    assert model["channels"] == ["modelid"] and model["entries"] == 6
    assert model["first_entries"] == [{"id": 147148503, "names": ["circle/medium"]},
                                      {"id": 1252544961, "names": ["blob/medium"]}]
    objectid = manifest_summary(read_headers(shared_path("deepid/openexr/objectid.deep.exr"))[0])
    assert objectid["source"] == "objectID" and objectid["groups"][0]["entries"] == 39
    assert manifest_summary(read_headers(shared_path("deepid/masks/42_blue.mask.exr"))[0]) is None


# --------------------------------------------------------------------------- text details


def test_format_in_memory_manifest_and_parts():
    group = ChannelGroup(channels={"b", "a"}, components=["name", "x"], lifetime="frame",
                         hash_scheme="MurmurHash3_32", encoding_scheme="id")
    big = group.insert(["long-name", "é"])
    group.insert(["s", "t"], id_value=7)
    width = len(str(big))
    manifest = IdManifest([group, ChannelGroup(channels={"c"}, lifetime="9")])
    text = format_exrmanifest(manifest)
    lines = text.split("\n")
    assert lines[0] == " channels  : a,b"
    assert lines[3] == " lifetime  : frame"
    # columns are padded by byte length (std::string::size), so "é" (2 bytes) takes 2 columns
    assert lines[4] == "     " + " " * (width + 1) + "name      x  "
    assert lines[5] == "     7" + " " * width + "s         t  "
    assert lines[6] == f"     {big} long-name é "
    assert " lifetime" not in text.split("\n\n\n")[1]  # unknown lifetime code: no line, like exrmanifest
    payload = encode_id_manifest(manifest)
    assert text.endswith(f"uncompressed size: {struct.unpack('<Q', payload[:8])[0]}\n"
                         f"compressed size  : {len(payload) - 8}\n")
    assert decode_id_manifest(payload).groups == manifest.groups
    assert format_exrmanifest(None) == "no manifest found\n"


def test_format_file_titles_parts():
    from core.model import Attribute, PartHeader

    payload = encode_id_manifest(IdManifest([ChannelGroup(channels={"id"}, components=["n"],
                                                          entries={1: ("a",)})]))
    with_manifest = PartHeader(0, {"idManifest": Attribute("idManifest", "idmanifest", payload)})
    without = PartHeader(1, {})
    text = format_exrmanifest_file([with_manifest, without], "f.exr")
    assert text.startswith("f.exr part 0:\n channels  : id\n")
    assert text.endswith("f.exr part 1:\nno manifest found\n")


# --------------------------------------------------------------------------- round trips


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
long_names = st.text(alphabet="ab/", min_size=250, max_size=300)


@st.composite
def manifests(draw):
    groups = []
    for _ in range(draw(st.integers(0, 3))):
        n_comp = draw(st.integers(0, 3))
        id2 = draw(st.booleans())
        channels = draw(st.sets(st.text(alphabet="abcxyz.019", min_size=1, max_size=6), min_size=1, max_size=3))
        ids = draw(st.lists(st.integers(0, 2**64 - 1) if id2 else st.integers(0, 2**32 - 1),
                            max_size=30, unique=True))
        pool = draw(st.lists(names | long_names, min_size=1, max_size=8))
        entries = {v: tuple(draw(st.sampled_from(pool)) for _ in range(n_comp)) for v in ids}
        groups.append(ChannelGroup(
            channels=channels, components=[draw(names) for _ in range(n_comp)],
            lifetime=draw(st.sampled_from(["frame", "shot", "stable"])),
            hash_scheme=draw(st.sampled_from(["none", "MurmurHash3_32", "MurmurHash3_64", "custom"])),
            encoding_scheme="id2" if id2 else "id", entries=entries))
    return IdManifest(groups)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_encode_decode_round_trip(manifest):
    payload = encode_id_manifest(manifest)
    back = decode_id_manifest(payload)
    assert back.groups == manifest.groups
    assert serialize_id_manifest(back) == zlib.decompress(payload[8:])


def many_strings_manifest(n: int) -> IdManifest:
    """Many distinct strings (multi-byte string codes, several mapping runs) and long (> 255) strings.

    "a-rare" sorts first but is used once: past 128 strings it no longer gets a one-byte code,
    so the string-code mapping does not start at string 0.
    """
    rng = np.random.default_rng(n)
    group = ChannelGroup(channels={"id"}, components=["model", "material"], hash_scheme="MurmurHash3_32",
                         encoding_scheme="id")
    pool = [f"obj{i:04d}/" + "x" * int(rng.integers(0, 300)) for i in range(n)]
    for i in range(n):
        group.insert([pool[i], pool[(i + 1 + int(rng.integers(0, 3))) % n]])
    group.insert(["a-rare", pool[0]])
    big = ChannelGroup(channels={"p.id0", "p.id1"}, components=["p"], hash_scheme="MurmurHash3_64",
                       encoding_scheme="id2", lifetime="shot")
    for i in range(40):
        big.insert([pool[(i * 37) % n]])
    big.insert(["spread"], id_value=2**64 - 1)
    return IdManifest([group, big])


def _add_attribute(exr: bytes, name: str, type_name: str, value: bytes) -> bytes:
    """Insert one attribute into a single-part scanline file (shifting its offset table)."""
    pos = 8
    while exr[pos] != 0:
        end = exr.index(b"\0", exr.index(b"\0", pos) + 1) + 1
        size = struct.unpack("<i", exr[end:end + 4])[0]
        pos = end + 4 + size
    attr = name.encode() + b"\0" + type_name.encode() + b"\0" + struct.pack("<i", len(value)) + value
    table_start = pos + 1
    # a ZIP-compressed 16-line chunk scanline file of height h has ceil(h / 16) offsets; here h = 4
    n_chunks = 1
    offsets = np.frombuffer(exr[table_start:table_start + 8 * n_chunks], "<u8") + len(attr)
    return exr[:pos] + attr + b"\0" + offsets.astype("<u8").tobytes() + exr[table_start + 8 * n_chunks:]


@pytest.mark.parametrize("n", [5, 200, 600])
def test_binding_reads_what_we_encode(tmp_path, n):
    manifest = many_strings_manifest(n)
    plain = tmp_path / "plain.exr"
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                 {"A": np.zeros((4, 3), np.float32)}).write(str(plain))
    patched = tmp_path / "patched.exr"
    patched.write_bytes(_add_attribute(plain.read_bytes(), "idManifest", "idmanifest",
                                       encode_id_manifest(manifest)))
    f = OpenEXR.File(str(patched))
    np.testing.assert_array_equal(f.channels()["A"].pixels, np.zeros((4, 3), np.float32))
    theirs = f.header()["idManifest"]
    assert theirs.size() == 2
    for i, group in enumerate(manifest.groups):
        assert {e.id(): tuple(e.text()) for e in theirs[i]} == group.entries
        assert set(theirs[i].getChannels()) == group.channels
    # and we read the file back through our own header parser
    assert manifest_from_header(read_headers(patched)[0]).groups == manifest.groups


@pytest.mark.parametrize("n", [5, 300])
def test_we_read_what_the_binding_encodes(tmp_path, n):
    from core.writer import write_flat

    manifest = many_strings_manifest(n)
    path = tmp_path / "m.exr"
    write_flat(path, {"A": np.zeros((2, 2), np.float32)}, Box(0, 0, 1, 1), Box(0, 0, 1, 1),
               id_manifest=manifest)
    ours = manifest_from_header(read_headers(path)[0], path)
    assert ours.groups == manifest.groups
    raw = raw_payload(path)
    assert serialize_id_manifest(ours) == zlib.decompress(raw[8:])


# --------------------------------------------------------------------------- malformed input


def test_malformed_payloads_raise_one_line_errors():
    good = encode_id_manifest(many_strings_manifest(5))
    cases = {
        "short": good[:5],
        "truncated zlib": good[:40],
        "size mismatch": struct.pack("<Q", 5) + good[8:],
        "not zlib": good[:8] + b"garbage" * 5,
        "version": struct.pack("<Q", 4) + zlib.compress(struct.pack("<I", 1)),
        "huge size": struct.pack("<Q", 2**63) + good[8:],
    }
    for what, payload in cases.items():
        with pytest.raises(ManifestError) as info:
            decode_id_manifest(payload, "/x/file.exr")
        message = str(info.value)
        assert message.startswith("/x/file.exr: malformed idManifest"), what
        assert "\n" not in message
        assert isinstance(info.value, ExrError)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_serialization_never_crashes(data):
    raw = bytearray(serialize_id_manifest(many_strings_manifest(5)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        parse_id_manifest(bytes(raw[:cut]))
    except ManifestError:
        pass
