"""Block codecs and the fused decode kernels of the EXR reader.

OpenEXR's NONE, RLE, ZIPS and ZIP compressions share one layout once a block is
inflated: a byte predictor and an even/odd byte interleave. Unpacked chunk data is, for
each line, for each channel in header order, all the line's samples. The scatter kernels
write those values straight into one ``(channels, samples)`` uint32 block: float32 bits
for HALF and FLOAT (HALF widened through a lookup table), plain uint32 for UINT.

For RLE/ZIPS/ZIP chunks :func:`decode_scatter` runs one fused kernel that undoes the
predictor, de-interleaves and scatters in a single pass over the inflated bytes (no
intermediate buffers): every value of the unpacked stream starts at an even offset (all
pixel types are 2 or 4 bytes), so its bytes are ``lo[m], hi[m](, lo[m+1], hi[m+1])`` of the
interleaved halves, and the predictor runs as two independent running sums over the halves.
Inflating releases the GIL (libdeflate through ``deflate``, else zlib), so chunks decode in
parallel threads.
"""

from __future__ import annotations

import zlib

import numpy as np

from core._numba import kernel

try:  # libdeflate inflates about twice as fast as zlib
    import deflate as _deflate
except ImportError:  # pragma: no cover - deflate is a declared dependency
    _deflate = None

#: HALF bits -> float32 bits, exact (NaN payloads kept as numpy converts them).
HALF_TO_FLOAT_BITS = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(
    np.float32
).view(np.uint32)

#: The largest ratio of unpacked to packed size each codec can produce; used to refuse
#: absurd sizes in damaged files before anything is allocated.
MAX_RATIO = {"NONE": 1, "RLE": 64, "ZIPS": 1100, "ZIP": 1100}


class CodecError(Exception):
    """A block does not decode; the reader turns it into an ExrError naming the file."""


@kernel
def _unpredict_deinterleave_kernel(src, dst):
    n = src.shape[0]
    if n == 0:
        return
    # predictor: t[i] = t[i-1] + s[i] - 128 (mod 256), in place on src
    prev = np.int32(src[0])
    for i in range(1, n):
        prev = (prev + np.int32(src[i]) - 128) & 0xFF
        src[i] = prev
    half = (n + 1) // 2
    for i in range(half):
        dst[2 * i] = src[i]
    for i in range(n - half):
        dst[2 * i + 1] = src[half + i]


@kernel
def _rle_decode_kernel(src, dst):
    """Returns the number of bytes written, or -1 if the stream is malformed."""
    i = 0
    o = 0
    n = src.shape[0]
    m = dst.shape[0]
    while i < n:
        c = np.int32(src[i])
        if c > 127:
            c -= 256
        i += 1
        if c < 0:
            count = -c
            if i + count > n or o + count > m:
                return -1
            for k in range(count):
                dst[o + k] = src[i + k]
            i += count
            o += count
        else:
            count = c + 1
            if i >= n or o + count > m:
                return -1
            v = src[i]
            i += 1
            for k in range(count):
                dst[o + k] = v
            o += count
    return o


def inflate(packed: bytes, unpacked_size: int) -> bytes:
    """zlib-inflate a block to exactly ``unpacked_size`` bytes."""
    try:
        if _deflate is not None:
            out = _deflate.zlib_decompress(packed, unpacked_size)
        else:
            d = zlib.decompressobj()
            out = d.decompress(packed, unpacked_size)
    except Exception as exc:  # both libraries raise their own types
        raise CodecError(f"zlib data is corrupt ({exc})") from None
    if len(out) != unpacked_size:
        raise CodecError(f"block inflates to {len(out)} bytes, expected {unpacked_size}")
    return out


def decode_block(packed: bytes, unpacked_size: int, compression: str) -> np.ndarray:
    """Decode one compressed block to its unpacked bytes (uint8 array)."""
    if unpacked_size == 0:
        return np.zeros(0, np.uint8)
    if len(packed) == unpacked_size or compression == "NONE":
        # OpenEXR stores a block raw (no predictor) when compression would not shrink it.
        if len(packed) != unpacked_size:
            raise CodecError(f"uncompressed block is {len(packed)} bytes, expected {unpacked_size}")
        return np.frombuffer(packed, np.uint8)
    if len(packed) > unpacked_size:
        raise CodecError(f"packed block ({len(packed)} bytes) is larger than unpacked ({unpacked_size})")
    tmp = _expand(packed, unpacked_size, compression)
    if not tmp.flags.writeable:
        tmp = tmp.copy()
    out = np.empty(unpacked_size, np.uint8)
    _unpredict_deinterleave_kernel(tmp, out)
    return out


def _expand(packed: bytes, unpacked_size: int, compression: str) -> np.ndarray:
    """Inflate (ZIPS/ZIP) or run-length decode (RLE) a block to its predicted, interleaved bytes."""
    if compression in ("ZIPS", "ZIP"):
        return np.frombuffer(inflate(packed, unpacked_size), np.uint8)
    if compression == "RLE":
        tmp = np.empty(unpacked_size, np.uint8)
        written = _rle_decode_kernel(np.frombuffer(packed, np.uint8), tmp)
        if written != unpacked_size:
            raise CodecError(f"RLE block decodes to {max(written, 0)} bytes, expected {unpacked_size}")
        return tmp
    raise CodecError(f"compression {compression} is not decoded by Deepscope's reader")


@kernel
def _scatter_kernel(raw, line_counts, line_starts, ch_sizes, half_lut, out):
    """Scatter one chunk's unpacked data into ``out[channel, sample]``.

    ``line_counts[l]`` samples of line ``l`` go to ``out[:, line_starts[l]:...]``;
    ``ch_sizes[c]`` is 2 for HALF (widened through ``half_lut``) or 4.
    Returns 0, or -1 if ``raw`` does not hold exactly the expected bytes.
    """
    nch = ch_sizes.shape[0]
    total = 0
    for l in range(line_counts.shape[0]):
        for c in range(nch):
            total += line_counts[l] * ch_sizes[c]
    if total != raw.shape[0]:
        return -1
    pos = 0
    for l in range(line_counts.shape[0]):
        n = line_counts[l]
        start = line_starts[l]
        for c in range(nch):
            if ch_sizes[c] == 2:
                for k in range(n):
                    h = np.uint32(raw[pos]) | (np.uint32(raw[pos + 1]) << 8)
                    out[c, start + k] = half_lut[h]
                    pos += 2
            else:
                for k in range(n):
                    out[c, start + k] = (
                        np.uint32(raw[pos])
                        | (np.uint32(raw[pos + 1]) << 8)
                        | (np.uint32(raw[pos + 2]) << 16)
                        | (np.uint32(raw[pos + 3]) << 24)
                    )
                    pos += 4
    return 0


def scatter(raw: np.ndarray, line_counts: np.ndarray, line_starts: np.ndarray, ch_sizes: np.ndarray,
            out: np.ndarray) -> None:
    """Scatter a chunk into the channel block; raises CodecError on a size mismatch."""
    if _scatter_kernel(raw, line_counts, line_starts, ch_sizes, HALF_TO_FLOAT_BITS, out) != 0:
        raise CodecError("chunk data size does not match its sample counts")


@kernel
def _unpredict_scatter_kernel(src, line_counts, line_starts, ch_sizes, half_lut, out):
    """Predictor, de-interleave and scatter in one pass (see the module docstring).

    ``src`` holds the inflated (still predicted and interleaved) bytes of one chunk.
    Returns 0, or -1 if ``src`` does not hold exactly the expected bytes.
    """
    nch = ch_sizes.shape[0]
    total = 0
    for l in range(line_counts.shape[0]):
        for c in range(nch):
            total += line_counts[l] * ch_sizes[c]
    n = src.shape[0]
    if total != n:
        return -1
    if n == 0:
        return 0
    half = (n + 1) // 2  # n is even: every value is 2 or 4 bytes
    # the predicted stream is one running byte sum t[i] = t[i-1] + src[i] - 128; the high half
    # starts from t[half - 1], which is the low half's sum (all arithmetic mod 256)
    c128 = np.uint32(128)
    ff = np.uint32(255)
    hi = np.uint32(src[0])
    for i in range(1, half):
        hi += np.uint32(src[i]) + c128  # + 128 == - 128 (mod 256)
    lo = c128  # so that the first low byte comes out as src[0]
    m = 0
    for l in range(line_counts.shape[0]):
        cnt = line_counts[l]
        start = line_starts[l]
        for c in range(nch):
            row = out[c, start : start + cnt]
            if ch_sizes[c] == 2:
                for k in range(cnt):
                    lo += np.uint32(src[m]) + c128
                    hi += np.uint32(src[half + m]) + c128
                    m += 1
                    row[k] = half_lut[(lo & ff) | ((hi & ff) << np.uint32(8))]
            else:
                for k in range(cnt):
                    lo0 = lo + np.uint32(src[m]) + c128
                    hi0 = hi + np.uint32(src[half + m]) + c128
                    lo = lo0 + np.uint32(src[m + 1]) + c128
                    hi = hi0 + np.uint32(src[half + m + 1]) + c128
                    m += 2
                    row[k] = ((lo0 & ff) | ((hi0 & ff) << np.uint32(8)) | ((lo & ff) << np.uint32(16))
                              | ((hi & ff) << np.uint32(24)))
    return 0


def decode_scatter(packed: bytes, unpacked_size: int, compression: str, line_counts: np.ndarray,
                   line_starts: np.ndarray, ch_sizes: np.ndarray, out: np.ndarray) -> None:
    """Decode one chunk and scatter it into ``out[channel, sample]`` (see :func:`scatter`).

    Same result as ``scatter(decode_block(...), ...)`` with one pass over the data for
    RLE/ZIPS/ZIP. Raises :class:`CodecError` for a corrupt block or a size mismatch.
    """
    if unpacked_size == 0 or len(packed) == unpacked_size or compression == "NONE":
        scatter(decode_block(packed, unpacked_size, compression), line_counts, line_starts, ch_sizes, out)
        return
    if len(packed) > unpacked_size:
        raise CodecError(f"packed block ({len(packed)} bytes) is larger than unpacked ({unpacked_size})")
    raw = _expand(packed, unpacked_size, compression)
    if _unpredict_scatter_kernel(raw, line_counts, line_starts, ch_sizes, HALF_TO_FLOAT_BITS, out) != 0:
        raise CodecError("chunk data size does not match its sample counts")
