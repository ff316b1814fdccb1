"""core.demo: the built-in demo scene, checked against a slow reference render and its own ground truth."""

from __future__ import annotations

import json
import os

import numba
import numpy as np
import OpenEXR
import pytest

from core import demo
from core.demo import ASPECT, SEED, build_scene, crypto_preview, read_truth, render_demo, write_demo
from core.hashing import crypto_hash, deepid_hash, layer_key, murmur3_32

M32 = 0xFFFFFFFF
SMALL = (64, 36)


# --------------------------------------------------------------------------- references


def fmix32(h: int) -> int:
    h &= M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def rand01(seed: int, a: int, b: int, c: int) -> float:
    h = fmix32((seed + a * 0x9E3779B1) & M32)
    h = fmix32(h ^ ((b * 0x85EBCA77) & M32))
    h = fmix32(h ^ ((c * 0xC2B2AE3D) & M32))
    return (h >> 8) / 16777216.0


def reference_render(width: int, height: int, n_axis: int):
    """The demo rendered the slow, obvious way: every primitive tested at every sub-sample.

    Only the per-primitive shape test (``_hit``, the scene's definition) is shared with the
    code under test, run as plain Python. Returns per pixel a list of samples
    ``(Z, ZBack, r, g, b, a, coverage, object)`` and the beauty ``(H*W, 4)``.
    """
    table = build_scene()
    f, ic = table.f, table.i
    hit = demo._hit.py_func
    n_sub = n_axis * n_axis
    pixels = []
    beauty = np.zeros((width * height, 4))
    for y in range(height):
        for x in range(width):
            p = y * width + x
            shift = fmix32(p ^ SEED) % n_sub
            acc: dict[int, list[float]] = {}
            for s in range(n_sub):
                u = (x + ((s % n_axis) + rand01(SEED, p, s, 0)) / n_axis) / width * ASPECT
                v = (y + ((s // n_axis) + rand01(SEED, p, s, 1)) / n_axis) / height
                t = (((s * 37 + shift) % n_sub) + rand01(SEED, p, s, 2)) / n_sub
                hits = []
                for k in range(f.shape[0]):
                    ok, z, a, r, g, b = hit(f, ic, k, u, v, t, ASPECT)
                    if ok and a > 0.0:
                        hits.append((z, k, a, (r, g, b)))
                hits.sort(key=lambda item: (item[0], item[1]))
                trans = 1.0
                for z, k, a, colour in hits:
                    w = trans * a
                    sums = acc.setdefault(k, [0.0] * 5)
                    sums[0] += w
                    sums[1] += w * z
                    for c in range(3):
                        sums[2 + c] += w * colour[c]
                        beauty[p, c] += w * colour[c]
                    beauty[p, 3] += w
                    if a >= 1.0:
                        break
                    trans *= 1.0 - a
            beauty[p] /= n_sub
            samples = []
            for k, (vsum, vz, vr, vg, vb) in acc.items():
                if vsum <= 0.0:
                    continue
                volume = ic[k, demo.I_VOL] != 0
                z = f[k, demo.F_Z0] if volume else vz / vsum
                zback = f[k, demo.F_Z1] if volume else z
                samples.append([z, k, zback, vsum / n_sub, (vr / vsum, vg / vsum, vb / vsum)])
            samples.sort(key=lambda item: (item[0], item[1]))
            out = []
            front = 0.0
            for z, k, zback, cov, colour in samples:
                left = 1.0 - front
                alpha = 1.0 if left <= 1e-12 else min(1.0, cov / left)
                out.append((z, zback, *(alpha * c for c in colour), alpha, cov, int(ic[k, demo.I_OBJ])))
                front += cov
            pixels.append(out)
    return pixels, beauty


def over(scene_deep):
    """Front-to-back *over* of the deep samples (premultiplied): (H*W, 4) RGBA."""
    d = scene_deep
    out = np.zeros((d.width * d.height, 4))
    for p in range(d.width * d.height):
        trans = 1.0
        for i in range(d.offsets[p], d.offsets[p + 1]):
            for c, name in enumerate("RGBA"):
                out[p, c] += trans * float(d.channels[name][i])
            trans *= 1.0 - float(d.channels["A"][i])
    return out


def deep_mask(scene_deep, object_id: int) -> np.ndarray:
    """OpenEXR Deep-ID shallow mask: what the selected samples contribute to the flattened alpha."""
    d = scene_deep
    out = np.zeros(d.width * d.height)
    ids = d.channels["objectid"]
    alpha = d.channels["A"]
    for p in range(d.width * d.height):
        trans = 1.0
        for i in range(d.offsets[p], d.offsets[p + 1]):
            if ids[i] == object_id:
                out[p] += trans * float(alpha[i])
            trans *= 1.0 - float(alpha[i])
    return out.reshape(d.height, d.width)


def dense_truth(scene, names) -> np.ndarray:
    return np.stack([scene.coverage[n].ravel() for n in names], axis=1).astype(np.float64)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scene():
    return render_demo(*SMALL)


@pytest.fixture(scope="module")
def full_scene():
    return render_demo()


# --------------------------------------------------------------------------- hashing helpers


def test_jitter_hash_matches_python_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b, c = (int(v) for v in rng.integers(0, 2**31, 3))
        seed = int(rng.integers(0, 2**32))
        assert demo._rand01(seed, a, b, c) == rand01(seed, a, b, c)
        assert demo._fmix32(a) == fmix32(a)
    a = rng.integers(0, 2**31, 50)
    np.testing.assert_array_equal(demo._rand01_np(SEED, a, 3, 1), [rand01(SEED, int(v), 3, 1) for v in a])


def test_crypto_ranks_against_reference():
    rng = np.random.default_rng(1)
    n_pixels, n_names = 12, 15
    triplets = {}
    for _ in range(80):
        p, k = int(rng.integers(0, n_pixels)), int(rng.integers(0, n_names))
        triplets[(p, k)] = float(rng.choice([0.25, 0.5, 0.125, rng.random()]))  # many ties
    pix = np.array([t[0] for t in triplets], dtype=np.int64)
    idx = np.array([t[1] for t in triplets], dtype=np.int64)
    cov = np.array(list(triplets.values()), dtype=np.float32)
    ids = rng.integers(1, 2**32, n_names, dtype=np.uint64).astype(np.uint32)
    got_id, got_cov = demo._crypto_ranks(pix, idx, cov, ids, n_pixels, 6)
    for p in range(n_pixels):
        entries = sorted(((-c, int(ids[k])) for (q, k), c in zip(triplets, cov, strict=True) if q == p))[:6]
        want_id = [e[1] for e in entries] + [0] * (6 - len(entries))
        want_cov = [-e[0] for e in entries] + [0.0] * (6 - len(entries))
        assert got_id[p].tolist() == want_id
        np.testing.assert_array_equal(got_cov[p], np.array(want_cov, dtype=np.float32))
    empty_id, empty_cov = demo._crypto_ranks(pix[:0], idx[:0], cov[:0], ids, 3, 6)
    assert not empty_id.any() and not empty_cov.any()


def test_crypto_preview_against_reference():
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2**32, (7, 6), dtype=np.uint64).astype(np.uint32)
    bits[0, 0] = 0
    cov = rng.random((7, 6)).astype(np.float32)
    cov[1, 1] = 1e-6
    got = crypto_preview(bits, cov)
    for p in range(7):
        want = [0.0, 0.0, 0.0]
        for r in range(6):
            if bits[p, r] == 0 or cov[p, r] < 1e-5:
                continue
            h = fmix32(int(bits[p, r]))
            want[0] += float(cov[p, r]) * h / 4294967295.0
            h = fmix32(h + 0x0101)
            want[1] += float(cov[p, r]) * h / 4294967295.0
            h = fmix32(h + 0x020000)
            want[2] += float(cov[p, r]) * h / 4294967295.0
        np.testing.assert_allclose(got[p], want, rtol=1e-6)


# --------------------------------------------------------------------------- the render vs. the reference


@pytest.mark.parametrize("width,height,n_axis", [(16, 9, 2), (11, 7, 3)])
def test_render_matches_reference(width, height, n_axis):
    got = render_demo(width, height, samples_per_axis=n_axis)
    pixels, beauty = reference_render(width, height, n_axis)
    d = got.deep
    np.testing.assert_array_equal(np.diff(d.offsets), [len(p) for p in pixels])
    flat = [s for p in pixels for s in p]
    if flat:
        ref = np.array([s[:7] for s in flat])
        np.testing.assert_allclose(d.channels["Z"], ref[:, 0].astype(np.float32), rtol=1e-6)
        np.testing.assert_allclose(d.channels["ZBack"], ref[:, 1].astype(np.float32), rtol=1e-6)
        for c, name in enumerate("RGBA"):
            want = ref[:, 2 + c].astype(np.float16).astype(np.float32)
            np.testing.assert_allclose(d.channels[name], want, rtol=1e-3, atol=1e-7, err_msg=name)
        objects = [got.objects[s[7]] for s in flat]
        np.testing.assert_array_equal(d.channels["objectid"],
                                      [deepid_hash([n], "MurmurHash3_32") for n in objects])
        materials = [got.object_material[n] for n in objects]
        np.testing.assert_array_equal(d.channels["materialid"],
                                      [deepid_hash([m], "MurmurHash3_32") for m in materials])
    truth = {name: np.zeros(width * height) for name in got.coverage}
    for p, samples in enumerate(pixels):
        for s in samples:
            name = got.objects[s[7]]
            truth[name][p] += s[6]
            truth[got.object_material[name]][p] += s[6]
    for name, values in truth.items():
        np.testing.assert_allclose(got.coverage[name].ravel(), values, rtol=1e-6, atol=1e-9, err_msg=name)
    for c, name in enumerate("RGBA"):
        want = beauty[:, c].astype(np.float16).astype(np.float32).reshape(height, width)
        np.testing.assert_allclose(got.flat.channels[name], want, rtol=1e-3, atol=1e-7)


def test_deterministic_and_thread_independent():
    a = render_demo(*SMALL)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = render_demo(*SMALL)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(a.deep.offsets, b.deep.offsets)
    for name in a.deep.channels:
        np.testing.assert_array_equal(a.deep.channels[name], b.deep.channels[name])
    for name in a.flat.channels:
        np.testing.assert_array_equal(a.flat.channels[name], b.flat.channels[name])
    assert a.flat_attributes == b.flat_attributes
    assert [g.entries for g in a.id_manifest.groups] == [g.entries for g in b.id_manifest.groups]
    for name in a.coverage:
        np.testing.assert_array_equal(a.coverage[name], b.coverage[name])


# --------------------------------------------------------------------------- the scene's content


def test_names_and_ids(scene):
    required = {"/set/floor", "/set/wall", "/char/hero/body", "/char/hero/hair", "/props/crate",
                "/props/glass", "/fx/fog"}
    assert required <= set(scene.objects)
    dust = [n for n in scene.objects if n.startswith("/fx/dust/p")]
    assert len(dust) >= 200 and dust[0] == "/fx/dust/p0001"
    assert set(scene.object_material.values()) == set(scene.materials)
    assert all(m.startswith("mtl/") for m in scene.materials)
    deep_ids = [deepid_hash([n], "MurmurHash3_32") for n in scene.objects + scene.materials]
    assert len(set(deep_ids)) == len(deep_ids)
    crypto_ids = [crypto_hash(n) for n in scene.objects + scene.materials]
    assert len(set(crypto_ids)) == len(crypto_ids)
    assert set(scene.coverage) == set(scene.objects) | set(scene.materials)


def test_deep_structure(scene):
    d = scene.deep
    assert d.pixel_types["R"].name == "HALF" and d.pixel_types["Z"].name == "FLOAT"
    assert d.pixel_types["objectid"].name == "UINT" and d.channels["objectid"].dtype == np.uint32
    z, zb, a = d.channels["Z"], d.channels["ZBack"], d.channels["A"]
    assert np.all(zb >= z) and np.all((a > 0) & (a <= 1))
    for p in range(d.width * d.height):  # sorted front to back
        assert np.all(np.diff(z[d.offsets[p]:d.offsets[p + 1]]) >= 0)
    # every id in the deep image is in the manifest, under the hash of its name
    for group, channel in zip(scene.id_manifest.groups, ("objectid", "materialid"), strict=True):
        assert group.channels == {channel} and group.hash_scheme == "MurmurHash3_32"
        assert group.encoding_scheme == "id" and group.lifetime == "stable"
        assert set(np.unique(d.channels[channel]).tolist()) <= set(group.entries)
        for id_value, (name,) in group.entries.items():
            assert id_value == murmur3_32(name)
    assert scene.id_manifest.groups[0].components == ["object"]
    assert scene.id_manifest.groups[1].components == ["material"]


def test_volume_is_contiguous_segments(scene):
    d = scene.deep
    fog = deepid_hash(["/fx/fog"], "MurmurHash3_32")
    ids, z, zb = d.channels["objectid"], d.channels["Z"], d.channels["ZBack"]
    assert np.array_equal(zb > z, ids == fog)
    full = 0
    for p in range(d.width * d.height):
        a, b = d.offsets[p], d.offsets[p + 1]
        is_fog = ids[a:b] == fog
        if not is_fog.any():
            continue
        where = np.flatnonzero(is_fog)
        assert np.all(np.diff(where) == 1), "fog segments are consecutive samples"
        fz, fzb = z[a:b][is_fog], zb[a:b][is_fog]
        np.testing.assert_array_equal(fzb[:-1], fz[1:])  # contiguous in depth
        assert fz[0] >= 7.0 and fzb[-1] <= 9.4
        others = z[a:b][~is_fog]
        assert not np.any((others > fz[0]) & (others < fzb[-1])), "nothing lies inside the fog"
        full += len(fz) == 4
    assert full > 50


def test_coverage_sums_to_alpha(scene):
    n_sub = scene.samples_per_pixel
    truth = dense_truth(scene, scene.objects)
    total = truth.sum(axis=1).reshape(SMALL[1], SMALL[0])
    alpha = scene.flat.channels["A"]
    np.testing.assert_allclose(alpha, total, atol=1e-3)
    # right of the wall's left edge every sub-sample ends on an opaque surface
    x0 = int(np.ceil(0.45 / ASPECT * SMALL[0]))
    np.testing.assert_allclose(total[:, x0:], 1.0, atol=1e-6)
    # top-left corner: nothing at all
    x1, y1 = int(0.14 / ASPECT * SMALL[0]) - 1, int(0.54 * SMALL[1]) - 1
    assert x1 > 0 and y1 > 0
    assert not scene.deep.sample_counts()[:y1, :x1].any() and not total[:y1, :x1].any()
    assert (total < 1 - 1e-3).any() and (total == 0).any()
    # materials are the sums of their objects
    for material in scene.materials:
        members = [n for n in scene.objects if scene.object_material[n] == material]
        np.testing.assert_allclose(scene.coverage[material], sum(scene.coverage[n].astype(np.float64)
                                                                 for n in members), atol=1e-6)
    # where nothing semi-transparent is seen, every coverage is a whole number of sub-samples
    clear = (scene.coverage["/props/glass"] == 0) & (scene.coverage["/fx/fog"] == 0)
    counts = truth[clear.ravel()] * n_sub
    np.testing.assert_array_equal(counts, np.round(counts))
    assert clear.sum() > 100 and (~clear).sum() > 100


def test_deep_flattens_to_the_beauty(scene):
    flat = over(scene.deep)
    for c, name in enumerate("RGBA"):
        np.testing.assert_allclose(flat[:, c].reshape(SMALL[1], SMALL[0]), scene.flat.channels[name],
                                   atol=2e-3, err_msg=name)


def test_deep_masks_give_the_truth(scene):
    visible = [n for n in scene.objects if scene.coverage.total(n) > 0]
    for name in visible[:8] + visible[-4:]:
        mask = deep_mask(scene.deep, deepid_hash([name], "MurmurHash3_32"))
        np.testing.assert_allclose(mask, scene.coverage[name], atol=1e-3, err_msg=name)


def test_cryptomatte_layers(scene):
    ch, attrs = scene.flat.channels, scene.flat_attributes
    n = SMALL[0] * SMALL[1]
    for layer, names in (("CryptoObject", scene.objects), ("CryptoMaterial", scene.materials)):
        key = layer_key(layer)
        assert attrs[f"cryptomatte/{key}/name"] == layer
        assert attrs[f"cryptomatte/{key}/hash"] == "MurmurHash3_32"
        assert attrs[f"cryptomatte/{key}/conversion"] == "uint32_to_float32"
        manifest = json.loads(attrs[f"cryptomatte/{key}/manifest"])
        assert manifest == {name: f"{crypto_hash(name):08x}" for name in names}
        for suffix in ("R", "G", "B"):
            assert scene.flat.pixel_types[f"{layer}.{suffix}"].name == "FLOAT"
        ids = np.zeros((n, 6), dtype=np.uint32)
        cov = np.zeros((n, 6), dtype=np.float32)
        for level in range(3):
            stem = f"{layer}{level:02d}"
            assert all(scene.flat.pixel_types[f"{stem}.{c}"].name == "FLOAT" for c in "RGBA")
            ids[:, 2 * level] = ch[f"{stem}.R"].ravel().view(np.uint32)
            cov[:, 2 * level] = ch[f"{stem}.G"].ravel()
            ids[:, 2 * level + 1] = ch[f"{stem}.B"].ravel().view(np.uint32)
            cov[:, 2 * level + 1] = ch[f"{stem}.A"].ravel()
        assert np.all(np.diff(cov, axis=1) <= 0), "ranks by coverage, descending"
        # reference: per pixel, the top 6 of the truth by coverage (ties: smaller id first)
        truth = dense_truth(scene, names).astype(np.float32)
        hashes = np.array([crypto_hash(x) for x in names], dtype=np.uint32)
        crowded = 0
        for p in range(n):
            nz = np.flatnonzero(truth[p])
            crowded += nz.size > 6
            top = sorted((-truth[p, k], int(hashes[k])) for k in nz)[:6]
            assert ids[p].tolist() == [t[1] for t in top] + [0] * (6 - len(top))
            np.testing.assert_array_equal(cov[p], [-t[0] for t in top] + [0.0] * (6 - len(top)))
        if layer == "CryptoObject":
            assert crowded > 0, "the dust swarm puts more than 6 ids in some pixel"
        # a matte read from the ranks equals the truth wherever the pixel holds at most 6 ids
        few = (truth > 0).sum(axis=1) <= 6
        for k, name in enumerate(names[:10]):
            matte = np.where(ids == hashes[k], cov, 0).sum(axis=1)
            np.testing.assert_array_equal(matte[few], truth[few, k], err_msg=name)
        preview = crypto_preview(ids, cov)
        for c, letter in enumerate("RGB"):
            np.testing.assert_array_equal(ch[f"{layer}.{letter}"].ravel(), preview[:, c])


def test_motion_blur_particles_and_overlaps(full_scene):
    cov = full_scene.coverage
    h = full_scene.deep.height
    row = int(0.69 * h)  # through the middle of the moving crate
    crate = cov["/props/crate"][row]
    partial = (crate > 0.02) & (crate < 0.98)
    assert partial.sum() >= 12, "the crate moves 0.06 scene units during the shutter"
    glass_row = cov["/props/glass"][int(0.5 * h)]
    assert ((glass_row > 0.01) & (glass_row < 0.39)).sum() <= 3, "static edges are about a pixel wide"
    # the blurred crate edge passes over the hero's body
    body = cov["/char/hero/body"]
    assert ((cov["/props/crate"] > 0.05) & (cov["/props/crate"] < 0.95) & (body > 0.05)).sum() >= 5
    # the glass lets 60% through, over the wall and over empty space
    glass = cov["/props/glass"]
    assert np.isclose(glass.max(), 0.4, atol=1e-6)
    assert ((glass > 0.39) & (cov["/set/wall"] > 0.5)).any()
    assert ((glass > 0.39) & (full_scene.flat.channels["A"] < 0.45)).any()
    # the hero hides the fog; the hair overlaps the head
    assert ((cov["/fx/fog"] > 0) & (body > 0)).sum() < ((cov["/fx/fog"] > 0) & (body == 0)).sum()
    hair = cov["/char/hero/hair"]
    assert (hair == 1).sum() > 20 and (body[hair == 1] == 0).all()
    assert ((hair > 0.1) & (hair < 0.9) & (body > 0.1)).sum() > 5
    # dust: sub-pixel particles, each its own id
    dust = [n for n in full_scene.objects if n.startswith("/fx/dust/")]
    visible = [n for n in dust if cov.total(n) > 0]
    assert len(visible) >= 200
    assert max(cov.total(n) for n in visible) < 1.0
    assert max(float(cov[n].max()) for n in visible[:50]) < 1.0
    assert full_scene.deep.sample_counts().max() > 6


def test_render_arguments():
    with pytest.raises(ValueError):
        render_demo(0, 10)
    with pytest.raises(ValueError):
        render_demo(10, 10, samples_per_axis=0)
    one = render_demo(1, 1, samples_per_axis=1)
    assert one.deep.width == 1 and one.flat.channels["R"].shape == (1, 1)


# --------------------------------------------------------------------------- files


def test_written_files(tmp_path, scene):
    oiio = pytest.importorskip("OpenImageIO")
    paths = write_demo(tmp_path, scene)
    assert {k: p.name for k, p in paths.items()} == {"deep": "demo.deep.exr", "flat": "demo.exr",
                                                       "truth": "demo_truth.npz"}
    assert sorted(os.listdir(tmp_path)) == ["demo.deep.exr", "demo.exr", "demo_truth.npz"]

    # the flat file through the binding
    with OpenEXR.File(str(paths["flat"]), separate_channels=True) as f:
        header = dict(f.header())
        channels = {n: (c.type(), np.array(c.pixels)) for n, c in f.channels().items()}
    assert header["compression"] == OpenEXR.ZIP_COMPRESSION
    assert set(channels) == set(scene.flat.channels)
    for name, (ptype, pixels) in channels.items():
        assert ptype.name == scene.flat.pixel_types[name].name, name
        np.testing.assert_array_equal(pixels.astype(np.float32), scene.flat.channels[name], err_msg=name)
    for key, value in scene.flat_attributes.items():
        assert header[key] == value

    # the deep file's header through the binding (it has no deepImageState, so the binding reads it)
    with OpenEXR.File(str(paths["deep"]), header_only=True) as f:
        header = dict(f.header())
        manifest = header["idManifest"]
        groups = {}
        for i in range(manifest.size()):
            g = manifest[i]
            groups[tuple(g.getChannels())] = (
                list(g.getComponents()), g.getHashScheme(), g.getEncodingScheme(), g.getLifetime(),
                {int(e.id()): tuple(e.text()) for e in g},
            )
    assert "deepImageState" not in header
    assert header["type"] == OpenEXR.deepscanline and header["compression"] == OpenEXR.ZIPS_COMPRESSION
    stable = OpenEXR.IdLifetime.LIFETIME_STABLE
    assert groups == {
        ("objectid",): (["object"], "MurmurHash3_32", "id", stable, scene.id_manifest.groups[0].entries),
        ("materialid",): (["material"], "MurmurHash3_32", "id", stable, scene.id_manifest.groups[1].entries),
    }
    # OpenEXR's own hashing gives the ids we wrote
    check = OpenEXR.IDManifest().add("objectid")
    check.setHashScheme("MurmurHash3_32")
    check.setComponent("object")
    for id_value, (name,) in list(groups[("objectid",)][4].items())[:20]:
        assert int(check.insert(name)) == id_value

    # the deep pixels through OpenImageIO
    inp = oiio.ImageInput.open(str(paths["deep"]))
    spec = inp.spec()
    data = inp.read_native_deep_image()
    inp.close()
    assert spec.deep and (spec.width, spec.height) == SMALL
    names = list(spec.channelnames)
    assert set(names) == set(scene.deep.channels)
    formats = {n: str(spec.channelformats[i]) for i, n in enumerate(names)}
    assert formats == {"R": "half", "G": "half", "B": "half", "A": "half", "Z": "float", "ZBack": "float",
                       "objectid": "uint", "materialid": "uint"}
    d = scene.deep
    counts = [data.samples(p) for p in range(SMALL[0] * SMALL[1])]
    np.testing.assert_array_equal(counts, np.diff(d.offsets))
    for c, name in enumerate(names):
        is_uint = formats[name] == "uint"
        get = data.deep_value_uint if is_uint else data.deep_value
        values = [get(p, c, s) for p in range(len(counts)) for s in range(counts[p])]
        np.testing.assert_array_equal(np.array(values, dtype=d.channels[name].dtype), d.channels[name],
                                      err_msg=name)

    # the truth
    truth = read_truth(paths["truth"])
    assert set(truth) == set(scene.coverage)
    for name in scene.coverage:
        np.testing.assert_array_equal(truth[name], scene.coverage[name])


def test_demo_paths_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEFAULT_WIDTH", 24)
    monkeypatch.setattr(demo, "DEFAULT_HEIGHT", 14)
    paths = demo.demo_paths(tmp_path)
    folder = tmp_path / f"demo-v{demo.DEMO_VERSION}"
    assert all(p.parent == folder and p.is_file() for p in paths.values())
    stamps = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    assert demo.demo_paths(tmp_path) == paths
    assert {k: p.stat().st_mtime_ns for k, p in paths.items()} == stamps  # not rendered again
    paths["truth"].unlink()
    demo.demo_paths(tmp_path)
    assert paths["truth"].is_file()
    with OpenEXR.File(str(paths["flat"]), separate_channels=True) as f:
        assert f.channels()["R"].pixels.shape == (14, 24)

    monkeypatch.setattr(demo, "DEMO_VERSION", demo.DEMO_VERSION + 1)
    newer = demo.demo_paths(tmp_path)
    assert newer["deep"].parent.name == f"demo-v{demo.DEMO_VERSION}" and newer["deep"].is_file()

    monkeypatch.setenv("DEEPSCOPE_CACHE", str(tmp_path / "env"))
    from_env = demo.demo_paths()
    assert from_env["flat"].is_relative_to(tmp_path / "env") and from_env["flat"].is_file()
    assert not [n for n in os.listdir(from_env["flat"].parent) if n.endswith(".tmp")]
