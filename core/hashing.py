"""Name hashing for Cryptomatte and OpenEXR Deep IDs.

Cryptomatte (spec 1.2): MurmurHash3_x86_32, seed 0, over the UTF-8 name; if the float32
with those bits would be denormal/zero or inf/NaN (exponent 0 or 255), bit 23 is flipped.
Deep IDs (ImfIDManifest): MurmurHash3_32 or the first 64-bit word of MurmurHash3_x64_128
over the components joined with ``;``, with no fix-up.
"""

from __future__ import annotations

from collections.abc import Iterable

import mmh3
import numpy as np


def murmur3_32(text: str | bytes) -> int:
    """MurmurHash3_x86_32 with seed 0, unsigned."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return mmh3.hash(data, 0, signed=False)


def murmur3_64(text: str | bytes) -> int:
    """The first 64-bit word of MurmurHash3_x64_128 with seed 0 (OpenEXR's MurmurHash3_64)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return mmh3.hash64(data, 0, signed=False)[0]


def crypto_hash(name: str) -> int:
    """The Cryptomatte id bits of a name: MurmurHash3_32 with the exponent fix-up."""
    h = murmur3_32(name)
    exponent = (h >> 23) & 0xFF
    if exponent == 0 or exponent == 255:
        h ^= 1 << 23
    return h


def bits_to_float(bits: int) -> float:
    """The float32 value whose bits are ``bits`` (as a Python float)."""
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def float_to_bits(value: float) -> int:
    """The uint32 bits of ``value`` rounded to float32."""
    return int(np.array([value], dtype=np.float32).view(np.uint32)[0])


def crypto_hash_float(name: str) -> float:
    """The Cryptomatte id of a name as the float32 stored in the rank channels."""
    return bits_to_float(crypto_hash(name))


def layer_key(layer_name: str) -> str:
    """The metadata key a Cryptomatte layer is conventionally stored under (7 hex digits)."""
    return f"{murmur3_32(layer_name):08x}"[:7]


def deepid_hash(components: Iterable[str], scheme: str) -> int:
    """The Deep ID of a manifest entry under the hash scheme of its group.

    ``scheme`` is OpenEXR's name: ``MurmurHash3_32`` or ``MurmurHash3_64``.
    """
    text = ";".join(components)
    if scheme == "MurmurHash3_32":
        return murmur3_32(text)
    if scheme == "MurmurHash3_64":
        return murmur3_64(text)
    raise ValueError(f"no hash function for scheme {scheme!r}")
