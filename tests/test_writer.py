"""core.writer: deep/flat EXR round trips through the OpenEXR binding and OpenImageIO, PNG, atomicity."""

from __future__ import annotations

import os
import stat

import numpy as np
import OpenEXR
import pytest

from core import writer
from core.errors import ExrError
from core.exr_read import read_headers
from core.idmanifest import ChannelGroup, IdManifest
from core.model import Box, DeepImage, FlatImage, PixelType
from core.writer import ExrPart, png16_bytes, write_deep, write_flat, write_parts, write_png16

oiio = pytest.importorskip("OpenImageIO")


# --------------------------------------------------------------------------- helpers


def random_deep(rng: np.random.Generator, window: Box, display: Box | None = None, max_samples: int = 4,
                empty_fraction: float = 0.3) -> DeepImage:
    n = window.width * window.height
    counts = rng.integers(1, max_samples + 1, n)
    counts[rng.random(n) < empty_fraction] = 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    channels = {
        "R": rng.normal(0.5, 2.0, total).astype(np.float32),
        "A": rng.random(total).astype(np.float32),
        "Z": rng.uniform(1.0, 100.0, total).astype(np.float32),
        "id": rng.integers(0, 2**32, total, dtype=np.uint64).astype(np.uint32),
    }
    types = {"R": PixelType.HALF, "A": PixelType.HALF, "Z": PixelType.FLOAT, "id": PixelType.UINT}
    return DeepImage(window, display or window, offsets, channels, types)


def expected_values(image: DeepImage, name: str) -> np.ndarray:
    """What a channel must read back as: HALF values rounded through float16."""
    values = image.channels[name]
    if image.pixel_types[name] is PixelType.HALF:
        return values.astype(np.float16).astype(np.float32)
    return values


def binding_deep_pixels(path, name: str, shape) -> list[np.ndarray]:
    """Per-pixel arrays of one deep channel read with the binding (None -> empty)."""
    with OpenEXR.File(str(path), separate_channels=True) as f:
        pixels = f.channels()[name].pixels
        assert pixels.shape == shape
        return [np.zeros(0) if p is None else np.asarray(p) for p in pixels.ravel()]


def oiio_deep(path) -> tuple[object, np.ndarray, dict[str, np.ndarray]]:
    """Spec, per-pixel counts and per-channel flat sample arrays read with OpenImageIO."""
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    try:
        spec = inp.spec()
        deep = inp.read_native_deep_image()
    finally:
        inp.close()
    n = spec.width * spec.height
    counts = np.array([deep.samples(p) for p in range(n)], dtype=np.int64)
    values: dict[str, np.ndarray] = {}
    for c, name in enumerate(spec.channelnames):
        is_uint = str(spec.channelformats[c]) == "uint" if spec.channelformats else False
        get = deep.deep_value_uint if is_uint else deep.deep_value
        values[name] = np.array([get(p, c, s) for p in range(n) for s in range(counts[p])],
                                dtype=np.uint32 if is_uint else np.float32)
    return spec, counts, values


def no_temp_files(folder) -> bool:
    return not [n for n in os.listdir(folder) if n.endswith(".tmp")]


# --------------------------------------------------------------------------- per-pixel arrays


@pytest.mark.parametrize("seed", range(5))
def test_per_pixel_views_match_slices(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    counts = rng.integers(0, 4, h * w)
    if seed == 0:
        counts[:] = 2  # every pixel the same length: must not become a 2-D array
    if seed == 1:
        counts[:] = 0
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    values = rng.random(int(offsets[-1])).astype(np.float32)
    out = writer._per_pixel(values, offsets[1:-1], (h, w))
    assert out.shape == (h, w) and out.dtype == object
    for i in range(h * w):  # the obvious reference: one slice per pixel
        np.testing.assert_array_equal(out.ravel()[i], values[offsets[i]:offsets[i + 1]])


# --------------------------------------------------------------------------- deep round trips


@pytest.mark.parametrize("compression", ["NONE", "RLE", "ZIPS"])
@pytest.mark.parametrize("tiled", [None, (4, 3)])
def test_deep_round_trip(tmp_path, compression, tiled):
    rng = np.random.default_rng(len(compression) + (7 if tiled else 0))
    window = Box(3, -2, 11, 4)  # 9x7 with offsets (negative y too)
    display = Box(0, -5, 20, 10)
    image = random_deep(rng, window, display)
    path = tmp_path / "deep.exr"
    write_deep(path, image, compression=compression, tiled=tiled, attributes={"owner": "test"})
    assert no_temp_files(tmp_path)

    with OpenEXR.File(str(path), header_only=True) as f:
        header = dict(f.header())
    assert header["type"] == (OpenEXR.deeptile if tiled else OpenEXR.deepscanline)
    want = "NO_COMPRESSION" if compression == "NONE" else f"{compression}_COMPRESSION"
    assert header["compression"].name == want
    assert [tuple(v) for v in header["dataWindow"]] == [(3, -2), (11, 4)]
    assert [tuple(v) for v in header["displayWindow"]] == [(0, -5), (20, 10)]
    assert header["owner"] == "test"
    if tiled:
        assert (header["tiles"].xSize, header["tiles"].ySize) == tiled
    assert "deepImageState" not in header

    shape = (window.height, window.width)
    for name in image.channels:
        pixels = binding_deep_pixels(path, name, shape)
        expected = expected_values(image, name)
        for i, got in enumerate(pixels):
            a, b = image.offsets[i], image.offsets[i + 1]
            np.testing.assert_array_equal(got.astype(expected.dtype), expected[a:b],
                                          err_msg=f"{name} pixel {i}")
    with OpenEXR.File(str(path), separate_channels=True) as f:
        types = {n: c.type() for n, c in f.channels().items()}
    assert types == {"R": OpenEXR.HALF, "A": OpenEXR.HALF, "Z": OpenEXR.FLOAT, "id": OpenEXR.UINT}

    spec, counts, values = oiio_deep(path)
    assert (spec.x, spec.y, spec.width, spec.height) == (3, -2, 9, 7)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, -5, 21, 16)
    assert spec.deep
    np.testing.assert_array_equal(counts, np.diff(image.offsets))
    for name in image.channels:
        np.testing.assert_array_equal(values[name], expected_values(image, name), err_msg=name)


def test_deep_with_no_samples_at_all(tmp_path):
    window = Box(0, 0, 3, 2)
    image = DeepImage(window, window, np.zeros(13, dtype=np.int64),
                      {"Z": np.zeros(0, np.float32), "A": np.zeros(0, np.float32)},
                      {"Z": PixelType.FLOAT, "A": PixelType.HALF})
    path = tmp_path / "empty.exr"
    write_deep(path, image)
    assert all(p.size == 0 for p in binding_deep_pixels(path, "Z", (3, 4)))
    _, counts, values = oiio_deep(path)
    assert counts.sum() == 0 and values["Z"].size == 0


def test_deep_single_pixel_single_sample(tmp_path):
    window = Box(5, 5, 5, 5)
    image = DeepImage(window, window, np.array([0, 1], dtype=np.int64),
                      {"Z": np.array([42.0], np.float32)}, {"Z": PixelType.FLOAT})
    path = tmp_path / "one.exr"
    write_deep(path, image, compression="NONE")
    _, counts, values = oiio_deep(path)
    assert counts.tolist() == [1] and values["Z"].tolist() == [42.0]


def test_deep_nan_inf_survive(tmp_path):
    window = Box(0, 0, 1, 0)
    z = np.array([np.nan, np.inf, -np.inf], np.float32)
    image = DeepImage(window, window, np.array([0, 1, 3], dtype=np.int64),
                      {"Z": z, "R": z.copy()}, {"Z": PixelType.FLOAT, "R": PixelType.HALF})
    path = tmp_path / "nan.exr"
    write_deep(path, image)
    _, _, values = oiio_deep(path)
    for name in ("Z", "R"):
        got = values[name]
        assert np.isnan(got[0]) and got[1] == np.inf and got[2] == -np.inf


@pytest.mark.parametrize("bad", ["ZIP", "PIZ", "DWAA", "nonsense"])
def test_deep_rejects_compressions_openexr_refuses(tmp_path, bad):
    image = random_deep(np.random.default_rng(0), Box(0, 0, 2, 2))
    with pytest.raises(ExrError, match="compression"):
        write_deep(tmp_path / "x.exr", image, compression=bad)
    assert os.listdir(tmp_path) == []


def test_deep_uint_channel_must_hold_integers(tmp_path):
    image = random_deep(np.random.default_rng(0), Box(0, 0, 2, 2))
    image.channels["id"] = image.channels["id"].astype(np.float32)
    with pytest.raises(ExrError, match="UINT"):
        write_deep(tmp_path / "x.exr", image)
    assert os.listdir(tmp_path) == []


def test_deep_large_is_fast_enough(tmp_path):
    """A 320x180 image with ~6 samples per pixel and 8 channels is written in well under a second."""
    import time

    rng = np.random.default_rng(3)
    image = random_deep(rng, Box(0, 0, 319, 179), max_samples=10, empty_fraction=0.1)
    for extra in ("G", "B", "ZBack"):
        image.channels[extra] = rng.random(image.total_samples).astype(np.float32)
        image.pixel_types[extra] = PixelType.FLOAT
    start = time.perf_counter()
    write_deep(tmp_path / "big.exr", image)
    assert time.perf_counter() - start < 3.0


# --------------------------------------------------------------------------- id manifest


def test_deep_with_core_id_manifest(tmp_path):
    rng = np.random.default_rng(5)
    image = random_deep(rng, Box(0, 0, 4, 3))
    manifest = IdManifest(groups=[
        ChannelGroup(channels={"id"}, components=["model", "material"], lifetime="stable",
                     hash_scheme="MurmurHash3_32", encoding_scheme="id",
                     entries={7: ("a/b", "wool"), 2**32 - 1: ("c", "skin")}),
        ChannelGroup(channels={"inst0", "inst1"}, components=["instance"], lifetime="shot",
                     hash_scheme="MurmurHash3_64", encoding_scheme="id2",
                     entries={2**63 + 9: ("x",)}),
    ])
    path = tmp_path / "m.exr"
    write_deep(path, image, id_manifest=manifest)
    with OpenEXR.File(str(path), header_only=True) as f:
        got = f.header()["idManifest"]
    assert got.size() == 2
    g0, g1 = got[0], got[1]
    assert set(g0.getChannels()) == {"id"} and list(g0.getComponents()) == ["model", "material"]
    assert (g0.getHashScheme(), g0.getEncodingScheme()) == ("MurmurHash3_32", "id")
    assert g0.getLifetime() == OpenEXR.IdLifetime.LIFETIME_STABLE
    assert {int(e.id()): tuple(e.text()) for e in g0} == {7: ("a/b", "wool"), 2**32 - 1: ("c", "skin")}
    assert set(g1.getChannels()) == {"inst0", "inst1"}
    assert g1.getLifetime() == OpenEXR.IdLifetime.LIFETIME_SHOT
    assert {int(e.id()): tuple(e.text()) for e in g1} == {2**63 + 9: ("x",)}


def test_id_manifest_entry_with_wrong_component_count(tmp_path):
    manifest = IdManifest(groups=[ChannelGroup(channels={"id"}, components=["a", "b"], entries={1: ("x",)})])
    with pytest.raises(ExrError):
        write_deep(tmp_path / "m.exr", random_deep(np.random.default_rng(0), Box(0, 0, 1, 1)),
                   id_manifest=manifest)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- flat


@pytest.mark.parametrize("compression", ["NONE", "RLE", "ZIPS", "ZIP", "PIZ"])
def test_flat_round_trip(tmp_path, compression):
    rng = np.random.default_rng(11)
    window = Box(-3, 2, 6, 7)  # 10x6
    display = Box(0, 0, 15, 15)
    shape = (6, 10)
    channels = {
        "R": rng.random(shape).astype(np.float32),
        "Y": rng.normal(0, 100, shape),  # float64: written as FLOAT
        "half": rng.random(shape).astype(np.float32),
        "id": rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32),
    }
    path = tmp_path / "flat.exr"
    write_flat(path, channels, window, display, pixel_types={"half": "HALF"}, compression=compression)
    with OpenEXR.File(str(path), separate_channels=True) as f:
        got = {n: (c.type(), c.pixels) for n, c in f.channels().items()}
        header = dict(f.header())
    assert [tuple(v) for v in header["dataWindow"]] == [(-3, 2), (6, 7)]
    assert [tuple(v) for v in header["displayWindow"]] == [(0, 0), (15, 15)]
    assert got["R"][0] == OpenEXR.FLOAT and got["Y"][0] == OpenEXR.FLOAT
    assert got["half"][0] == OpenEXR.HALF and got["id"][0] == OpenEXR.UINT
    np.testing.assert_array_equal(got["R"][1], channels["R"])
    np.testing.assert_array_equal(got["Y"][1], channels["Y"].astype(np.float32))
    np.testing.assert_array_equal(got["half"][1], channels["half"].astype(np.float16))
    np.testing.assert_array_equal(got["id"][1], channels["id"])

    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    assert (spec.x, spec.y, spec.width, spec.height) == (-3, 2, 10, 6)
    data = inp.read_image(oiio.FLOAT)
    inp.close()
    names = list(spec.channelnames)
    np.testing.assert_array_equal(data[:, :, names.index("R")], channels["R"])


def test_flat_tiled_and_lossy_compressions_write(tmp_path):
    window = Box(0, 0, 39, 19)
    values = np.linspace(0, 1, 800, dtype=np.float32).reshape(20, 40)
    for comp in ("PXR24", "B44", "DWAA"):
        path = tmp_path / f"{comp}.exr"
        write_flat(path, {"R": values, "G": values, "B": values}, window, window, compression=comp,
                   pixel_types={c: PixelType.HALF for c in "RGB"}, tiled=(16, 8))
        with OpenEXR.File(str(path), separate_channels=True) as f:
            assert f.header()["type"] == OpenEXR.tiledimage
            np.testing.assert_allclose(f.channels()["G"].pixels, values, atol=0.02)


def test_flat_shape_must_match_window(tmp_path):
    with pytest.raises(ExrError, match="shape"):
        write_flat(tmp_path / "x.exr", {"R": np.zeros((3, 3), np.float32)}, Box(0, 0, 3, 2), Box(0, 0, 3, 2))
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- attributes


def test_attribute_types(tmp_path):
    m33 = np.arange(9, dtype=np.float32).reshape(3, 3)
    m44 = np.arange(16, dtype=np.float64).reshape(4, 4) / 3
    attributes = {
        "s": "hello wörld",
        "sv": ["a", "b c"],
        "i": -7,
        "i_np": np.int64(2**31 - 1),
        "f": 0.25,
        "f_np": np.float32(1.5),
        "m33": m33,
        "m44": m44,
        "box": Box(-1, 2, 30, 40),
        "v2i": (3, 4),
        "v2f": (0.5, 1.5),
        "v3f": np.array([1.0, 2.0, 3.0]),
        "v3i": np.array([1, 2, 3]),
    }
    path = tmp_path / "attrs.exr"
    write_flat(path, {"Y": np.zeros((2, 2), np.float32)}, Box(0, 0, 1, 1), Box(0, 0, 1, 1),
               attributes=attributes)
    part = read_headers(path)[0]
    types = {name: part.attributes[name].type_name for name in attributes}
    assert types == {
        "s": "string", "sv": "stringvector", "i": "int", "i_np": "int", "f": "float", "f_np": "float",
        "m33": "m33f", "m44": "m44d", "box": "box2i", "v2i": "v2i", "v2f": "v2f", "v3f": "v3f", "v3i": "v3i",
    }
    assert part.get("s") == "hello wörld" and part.get("sv") == ["a", "b c"]
    assert part.get("i") == -7 and part.get("i_np") == 2**31 - 1
    assert part.get("f") == 0.25 and part.get("f_np") == 1.5
    np.testing.assert_array_equal(part.get("m33"), m33)
    np.testing.assert_array_equal(part.get("m44"), m44)
    assert part.get("box") == Box(-1, 2, 30, 40)
    assert tuple(part.get("v2i")) == (3, 4) and tuple(part.get("v2f")) == (0.5, 1.5)
    assert tuple(part.get("v3f")) == (1.0, 2.0, 3.0) and tuple(part.get("v3i")) == (1, 2, 3)


@pytest.mark.parametrize("name,value", [
    ("big", 2**31), ("neg", -(2**31) - 1), ("b", b"bytes"), ("none", None), ("empty", []), ("flag", True),
    ("mixed", ["a", 1]), ("m", np.zeros((2, 5))), ("v4", (1, 2, 3, 4)), ("d", {"a": 1}),
    ("compression", "ZIP"), ("dataWindow", Box(0, 0, 1, 1)), ("", "x"),
])
def test_attribute_refused(tmp_path, name, value):
    with pytest.raises(ExrError):
        write_flat(tmp_path / "x.exr", {"Y": np.zeros((2, 2), np.float32)}, Box(0, 0, 1, 1), Box(0, 0, 1, 1),
                   attributes={name: value})
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- multi-part


def test_write_parts_mixed(tmp_path):
    rng = np.random.default_rng(2)
    display = Box(0, 0, 9, 9)
    deep = random_deep(rng, Box(2, 2, 6, 5), display)
    flat = FlatImage(display, display, {"Y": rng.random((10, 10)).astype(np.float32)}, {"Y": PixelType.HALF})
    path = tmp_path / "multi.exr"
    write_parts(path, [ExrPart("beauty", flat, attributes={"note": "x"}),
                       ExrPart("deep", deep, tiled=(4, 4))])
    with OpenEXR.File(str(path), separate_channels=True) as f:
        assert [p.name() for p in f.parts] == ["beauty", "deep"]
        assert f.parts[1].type() == OpenEXR.deeptile
        np.testing.assert_array_equal(f.parts[0].channels["Y"].pixels, flat.channels["Y"].astype(np.float16))
        z = f.parts[1].channels["Z"].pixels
    for i, p in enumerate(z.ravel()):
        got = np.zeros(0) if p is None else p
        np.testing.assert_array_equal(got, deep.channels["Z"][deep.offsets[i]:deep.offsets[i + 1]])


def test_write_parts_checks(tmp_path):
    a = FlatImage(Box(0, 0, 1, 1), Box(0, 0, 1, 1), {"Y": np.zeros((2, 2), np.float32)}, {})
    b = FlatImage(Box(0, 0, 1, 1), Box(0, 0, 5, 5), {"Y": np.zeros((2, 2), np.float32)}, {})
    with pytest.raises(ExrError, match="display window"):
        write_parts(tmp_path / "x.exr", [ExrPart("a", a), ExrPart("b", b)])
    with pytest.raises(ExrError, match="unique"):
        write_parts(tmp_path / "x.exr", [ExrPart("a", a), ExrPart("a", a)])
    with pytest.raises(ExrError):
        write_parts(tmp_path / "x.exr", [])
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- atomicity and safety


class _FailingFile:
    """Stands in for OpenEXR.File: writes half a file, then fails like a full disk would."""

    def __init__(self, *args, **kwargs):
        pass

    def write(self, path):
        with open(path, "wb") as fh:
            fh.write(b"v/1\x01partial")
        raise RuntimeError("No space left on device")


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.exr"
    path.write_bytes(b"previous content")
    monkeypatch.setattr(writer.OpenEXR, "File", _FailingFile)
    with pytest.raises(ExrError, match="No space left"):
        write_flat(path, {"Y": np.zeros((2, 2), np.float32)}, Box(0, 0, 1, 1), Box(0, 0, 1, 1))
    with pytest.raises(ExrError) as err:
        write_deep(tmp_path / "new.exr", random_deep(np.random.default_rng(0), Box(0, 0, 1, 1)))
    assert str(err.value).startswith(str(tmp_path / "new.exr"))
    assert ".tmp" not in str(err.value)
    assert path.read_bytes() == b"previous content"
    assert sorted(os.listdir(tmp_path)) == ["out.exr"]


def test_overwrite_existing_target_and_permissions(tmp_path):
    path = tmp_path / "out.exr"
    path.write_bytes(b"old")
    write_flat(path, {"Y": np.ones((2, 2), np.float32)}, Box(0, 0, 1, 1), Box(0, 0, 1, 1))
    assert path.read_bytes()[:4] == b"v/1\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert no_temp_files(tmp_path)


def test_refuses_to_overwrite_its_source(tmp_path):
    window = Box(0, 0, 1, 1)
    source = tmp_path / "in.exr"
    write_flat(source, {"Y": np.zeros((2, 2), np.float32)}, window, window)
    before = source.read_bytes()
    link = tmp_path / "alias.exr"
    os.link(source, link)
    for target in (source, link, tmp_path / "." / "in.exr"):
        with pytest.raises(ExrError, match="overwrite"):
            write_flat(target, {"Y": np.ones((2, 2), np.float32)}, window, window, source=source)
        with pytest.raises(ExrError, match="overwrite"):
            write_png16(target, np.zeros((2, 2)), source=source)
    assert source.read_bytes() == before
    # another file is fine even when a source is given
    write_flat(tmp_path / "other.exr", {"Y": np.ones((2, 2), np.float32)}, window, window, source=source)
    assert no_temp_files(tmp_path)


def test_bad_targets(tmp_path):
    window = Box(0, 0, 1, 1)
    with pytest.raises(ExrError, match="directory"):
        write_flat(tmp_path, {"Y": np.zeros((2, 2), np.float32)}, window, window)
    with pytest.raises(ExrError, match="does not exist"):
        write_flat(tmp_path / "missing" / "x.exr", {"Y": np.zeros((2, 2), np.float32)}, window, window)


# --------------------------------------------------------------------------- PNG


def read_png_oiio(path) -> np.ndarray:
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)  # do not premultiply on read
    inp = oiio.ImageInput.open(str(path), config)
    assert inp is not None, oiio.geterror()
    try:
        assert inp.spec().format == oiio.TypeDesc("uint16")
        return inp.read_image(oiio.UINT16)
    finally:
        inp.close()


def read_png_qt(path, channels: int) -> np.ndarray:
    pytest.importorskip("PySide6")
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    assert not image.isNull()
    fmt = QImage.Format.Format_Grayscale16 if channels == 1 else QImage.Format.Format_RGBA64
    image = image.convertToFormat(fmt)
    h, w = image.height(), image.width()
    row = image.bytesPerLine() // 2
    data = np.frombuffer(image.constBits(), dtype=np.uint16, count=row * h).reshape(h, row)
    return data[:, : w * channels].reshape(h, w, channels).copy()


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (16, 5)])
def test_png16_grey_from_float(tmp_path, shape):
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    values = rng.uniform(-0.2, 1.2, shape)
    values.flat[0] = np.nan
    path = tmp_path / "g.png"
    write_png16(path, values)
    expected = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * 65535).astype(np.uint16)
    np.testing.assert_array_equal(read_png_oiio(path)[:, :, 0], expected)
    np.testing.assert_array_equal(read_png_qt(path, 1)[:, :, 0], expected)
    assert path.read_bytes()[25] == 0  # colour type 0: greyscale
    assert path.read_bytes()[24] == 16  # bit depth


def test_png16_rgba_from_uint16(tmp_path):
    rng = np.random.default_rng(4)
    values = rng.integers(0, 65536, (5, 9, 4)).astype(np.uint16)
    values[0, 0] = (0, 65535, 1, 256)
    path = tmp_path / "c.png"
    write_png16(path, values)
    np.testing.assert_array_equal(read_png_oiio(path), values)
    np.testing.assert_array_equal(read_png_qt(path, 4), values)
    assert path.read_bytes()[25] == 6


def test_png16_rejects_bad_input(tmp_path):
    for bad in (np.zeros((2, 2, 5)), np.zeros(4), np.zeros((0, 3)), np.full((2, 2), 70000),
                np.array([["a"]])):
        with pytest.raises(ExrError):
            write_png16(tmp_path / "x.png", bad)
    assert os.listdir(tmp_path) == []


def test_png16_bytes_is_a_valid_stream():
    import struct
    import zlib

    data = png16_bytes(np.array([[0.0, 1.0]]))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    kinds = []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        if kind == b"IDAT":
            assert zlib.decompress(body) == b"\x00\x00\x00\xff\xff"
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
