"""The reader's block codecs and fused kernels against slow, obvious references.

Blocks are encoded here the way OpenEXR does (byte interleave, delta predictor, then zlib or
RLE) from random channel values, and decoded both by the fused kernel and by a plain numpy
pipeline: predictor, de-interleave, then per line, per channel, values into their slots.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.exr_codec import HALF_TO_FLOAT_BITS, CodecError, decode_block, decode_scatter, scatter

SIZES = {"HALF": 2, "FLOAT": 4, "UINT": 4}


# --------------------------------------------------------------------------- reference encoders


def predict_interleave(raw: bytes) -> bytes:
    """OpenEXR's ZIP/RLE pre-pass: even bytes then odd bytes, then byte deltas + 128."""
    a = np.frombuffer(raw, np.uint8)
    t = np.concatenate([a[0::2], a[1::2]]).astype(np.int64)
    d = t.copy()
    d[1:] = (t[1:] - t[:-1] + 128) & 0xFF
    return d.astype(np.uint8).tobytes()


def rle_encode(data: bytes) -> bytes:
    """OpenEXR RLE: a run of n >= 3 equal bytes is (n - 1, byte); literals are (-len, bytes...)."""
    out = bytearray()
    i, n = 0, len(data)
    lit = bytearray()

    def flush():
        while lit:
            piece = lit[:127]
            out.append((256 - len(piece)) & 0xFF)
            out.extend(piece)
            del lit[:127]

    while i < n:
        j = i
        while j < n and j - i < 128 and data[j] == data[i]:
            j += 1
        if j - i >= 3:
            flush()
            out.append(j - i - 1)
            out.append(data[i])
            i = j
        else:
            lit.append(data[i])
            i += 1
    flush()
    return bytes(out)


def encode(raw: bytes, compression: str) -> bytes:
    if compression == "NONE":
        return raw
    pre = predict_interleave(raw)
    packed = zlib.compress(pre) if compression in ("ZIPS", "ZIP") else rle_encode(pre)
    return packed if len(packed) < len(raw) else raw  # as OpenEXR: stored raw when it would not shrink


# --------------------------------------------------------------------------- reference decoder


def reference_scatter(raw: bytes, line_counts, line_starts, types, total: int) -> np.ndarray:
    """out[c, s] as uint32 (float32 bits for HALF and FLOAT) by plain numpy, line by line."""
    out = np.zeros((len(types), total), np.uint32)
    pos = 0
    for n, start in zip(line_counts, line_starts, strict=True):
        for c, t in enumerate(types):
            size = SIZES[t]
            chunk = raw[pos : pos + n * size]
            pos += n * size
            if t == "HALF":
                vals = np.frombuffer(chunk, "<f2").astype(np.float32).view(np.uint32)
            else:
                vals = np.frombuffer(chunk, "<u4")
            out[c, start : start + n] = vals
    assert pos == len(raw)
    return out


def random_chunk(rng, types, line_counts, special: bool = True) -> bytes:
    """Random channel values of a chunk in unpacked layout (line, channel, samples)."""
    parts = []
    for n in line_counts:
        for t in types:
            if t == "HALF":
                v = rng.integers(0, 65536, n, dtype=np.uint32).astype(np.uint16)
                if special and n:
                    v[rng.integers(0, n)] = 0x7E00  # NaN
                parts.append(v.astype("<u2").tobytes())
            else:
                v = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
                if special and n and t == "FLOAT":
                    v[rng.integers(0, n)] = 0x7F800000  # inf
                parts.append(v.astype("<u4").tobytes())
    return b"".join(parts)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    types=st.lists(st.sampled_from(["HALF", "FLOAT", "UINT"]), min_size=1, max_size=6),
    line_counts=st.lists(st.integers(0, 40), min_size=1, max_size=5),
    compression=st.sampled_from(["ZIPS", "RLE", "NONE"]),
    repetitive=st.booleans(),
)
def test_decode_scatter_equals_reference(seed, types, line_counts, compression, repetitive):
    rng = np.random.default_rng(seed)
    raw = random_chunk(rng, types, line_counts)
    if repetitive:  # long runs: RLE and zlib produce their run codes
        a = np.frombuffer(raw, np.uint8)
        raw = np.repeat(a[::8], 8)[: a.size].tobytes()
    counts = np.array(line_counts, np.int64)
    gaps = rng.integers(0, 3, counts.size)  # lines need not be adjacent in the output
    starts = np.concatenate([[0], np.cumsum(counts + gaps)[:-1]]).astype(np.int64)
    total = int(starts[-1] + counts[-1] + 2)
    sizes = np.array([SIZES[t] for t in types], np.int64)
    out = np.zeros((len(types), total), np.uint32)
    decode_scatter(encode(raw, compression), len(raw), compression, counts, starts, sizes, out)
    np.testing.assert_array_equal(out, reference_scatter(raw, counts, starts, types, total))
    # and the two-step path (decode_block then scatter) agrees
    out2 = np.zeros_like(out)
    scatter(decode_block(encode(raw, compression), len(raw), compression), counts, starts, sizes, out2)
    np.testing.assert_array_equal(out2, out)


def test_single_sample_and_empty_lines():
    rng = np.random.default_rng(1)
    types = ["HALF", "FLOAT", "UINT"]
    counts = np.array([0, 1, 0], np.int64)
    starts = np.array([0, 0, 1], np.int64)
    raw = random_chunk(rng, types, counts, special=False)
    sizes = np.array([2, 4, 4], np.int64)
    out = np.zeros((3, 1), np.uint32)
    decode_scatter(encode(raw, "ZIPS"), len(raw), "ZIPS", counts, starts, sizes, out)
    np.testing.assert_array_equal(out, reference_scatter(raw, counts, starts, types, 1))


def test_half_widening_keeps_nan_and_inf():
    halves = np.array([0x7E00, 0x7C00, 0xFC00, 0x0001, 0x8000], np.uint16)
    raw = halves.astype("<u2").tobytes() * 3  # enough bytes for zlib to shrink
    counts = np.array([15], np.int64)
    out = np.zeros((1, 15), np.uint32)
    decode_scatter(encode(raw, "ZIPS"), len(raw), "ZIPS", counts, np.zeros(1, np.int64), np.array([2]), out)
    got = out[0, :5].view(np.float32)
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == -np.inf
    assert got[3] == np.float32(np.float16(2**-24)) and np.signbit(got[4])
    np.testing.assert_array_equal(out[0, :5], HALF_TO_FLOAT_BITS[halves])


def test_stored_raw_block_is_not_unpredicted():
    # OpenEXR stores a block as is when compression would not shrink it
    rng = np.random.default_rng(2)
    raw = random_chunk(rng, ["FLOAT"], [8], special=False)
    out = np.zeros((1, 8), np.uint32)
    decode_scatter(raw, len(raw), "ZIPS", np.array([8]), np.zeros(1, np.int64), np.array([4]), out)
    np.testing.assert_array_equal(out[0], np.frombuffer(raw, "<u4"))


@pytest.mark.parametrize("compression", ["ZIPS", "RLE"])
def test_size_mismatch_and_corrupt_data_raise(compression):
    raw = np.full(6, 0x3C00, "<u2").tobytes() + np.full(6, 7, "<u4").tobytes()  # compressible
    sizes = np.array([2, 4], np.int64)
    out = np.zeros((2, 10), np.uint32)
    packed = encode(raw, compression)
    assert len(packed) < len(raw)
    with pytest.raises(CodecError):  # the counts say 5 samples, the block holds 6
        decode_scatter(packed, len(raw), compression, np.array([5]), np.zeros(1, np.int64), sizes, out)
    with pytest.raises(CodecError):  # declared size wrong
        decode_scatter(packed, len(raw) + 6, compression, np.array([6]), np.zeros(1, np.int64), sizes, out)
    with pytest.raises(CodecError):
        decode_scatter(packed[: len(packed) // 2], len(raw), compression, np.array([6]), np.zeros(1, np.int64),
                       sizes, out)
