"""OpenEXR ID manifests (the ``idManifest`` attribute), decoded and encoded without the binding.

The OpenEXR Python binding refuses every file with a ``deepImageState`` attribute, which is
every file ``deepidexample`` writes, so Deepscope reads the manifest payload itself:

* attribute payload: uint64 LE uncompressed size, then a zlib stream;
* uncompressed serialization (``ImfIDManifest.cpp``, version 0): a table of every unique string
  (sorted, each stored as "length of the prefix shared with the previous string" + the rest),
  a run-length table that maps the codes used by entries to string indices (codes are handed out
  by frequency so common strings get one-byte codes), then the channel groups: channel names,
  component names, lifetime, hash scheme, encoding scheme, and the id table (delta coded ids,
  one string code per component).

The older ``objectID`` stringvector convention (``"model,material,id"``) is read into the same
structure. :func:`format_exrmanifest` prints exactly what OpenEXR's ``exrmanifest`` prints.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.errors import ExrError
from core.hashing import deepid_hash
from core.model import PartHeader, RawAttribute

# hash and encoding scheme names used by OpenEXR
UNKNOWN = "unknown"
NOT_HASHED = "none"
CUSTOM_HASH = "custom"
MURMURHASH3_32 = "MurmurHash3_32"
MURMURHASH3_64 = "MurmurHash3_64"
ID_SCHEME = "id"
ID2_SCHEME = "id2"

LIFETIMES = ("frame", "shot", "stable")
"""Lifetime names by their code in the file (``IDManifest::IdLifetime``)."""

_OBJECT_ID_COMPONENTS = ("model", "material")
_MAX_MANIFEST_BYTES = 1 << 30


@dataclass
class ChannelGroup:
    """One channel group of a manifest: which channels hold ids, and the name of every id.

    ``lifetime`` is ``"frame"``, ``"shot"`` or ``"stable"`` (an unknown code is kept as its
    decimal text). ``entries`` maps each id (uint64) to one string per component.
    """

    channels: set[str] = field(default_factory=set)
    components: list[str] = field(default_factory=list)
    lifetime: str = "stable"
    hash_scheme: str = UNKNOWN
    encoding_scheme: str = UNKNOWN
    entries: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def sorted_channels(self) -> list[str]:
        """The channels in EXR (byte) order: for ``id2`` the low word channel comes first."""
        return sorted(self.channels, key=_byte_key)

    @property
    def is_hashed(self) -> bool:
        return self.hash_scheme in (MURMURHASH3_32, MURMURHASH3_64)

    def name_of(self, id_value: int, separator: str = ";") -> str | None:
        """The entry's components joined by ``separator`` (";" is what the hash is computed over)."""
        text = self.entries.get(int(id_value))
        return None if text is None else separator.join(text)

    def hash_of(self, components: str | Sequence[str]) -> int:
        """The id this group's hash scheme gives a name (one string or one per component)."""
        parts = [components] if isinstance(components, str) else list(components)
        return deepid_hash(parts, self.hash_scheme)

    def insert(self, components: str | Sequence[str], id_value: int | None = None) -> int:
        """Add an entry, hashing it when no id is given; returns the id."""
        parts = (components,) if isinstance(components, str) else tuple(components)
        if len(parts) != len(self.components):
            raise ValueError(f"entry has {len(parts)} components, the group has {len(self.components)}")
        value = self.hash_of(parts) if id_value is None else int(id_value)
        self.entries[value] = parts
        return value

    def sorted_entries(self) -> list[tuple[int, tuple[str, ...]]]:
        return sorted(self.entries.items())


@dataclass
class IdManifest:
    """A decoded manifest: its channel groups, where it came from and its stored sizes.

    ``source`` is ``"idManifest"`` or ``"objectID"``. ``uncompressed_size`` and
    ``compressed_size`` are those of the attribute in the file (``None`` when built in memory).
    """

    groups: list[ChannelGroup] = field(default_factory=list)
    source: str = "idManifest"
    uncompressed_size: int | None = None
    compressed_size: int | None = None

    def group_for_channel(self, channel: str) -> ChannelGroup | None:
        """The first group that lists ``channel`` (like ``IDManifest::find``)."""
        for group in self.groups:
            if channel in group.channels:
                return group
        return None

    def index_of_channel(self, channel: str) -> int | None:
        for i, group in enumerate(self.groups):
            if channel in group.channels:
                return i
        return None

    def __len__(self) -> int:
        return len(self.groups)


class ManifestError(ExrError):
    """A malformed ``idManifest`` payload."""


# --------------------------------------------------------------------------- helpers


def _byte_key(text: str) -> bytes:
    """Sort key matching ``std::string`` ordering (unsigned bytes of the UTF-8 text)."""
    return _encode(text)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _varint_size(value: int) -> int:
    size = 1
    while value >= 1 << (7 * size) and size < 10:
        size += 1
    return size


def _write_varint(out: bytearray, value: int) -> None:
    while True:
        byte = value & 127
        value >>= 7
        if value:
            out.append(byte | 128)
        else:
            out.append(byte)
            return


class _Reader:
    """Bounds-checked little-endian reads over the uncompressed serialization."""

    def __init__(self, data: bytes, path: str | None):
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, problem: str):
        return ManifestError(self.path, f"malformed idManifest: {problem}")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"too small for {what}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int32(self, what: str) -> int:
        return struct.unpack("<i", self.take(4, what))[0]

    def uint32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def uint64(self, what: str) -> int:
        return struct.unpack("<Q", self.take(8, what))[0]

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        value = 0
        shift = 0
        while True:
            if shift >= 64:
                raise self.fail(f"invalid variable-length integer in {what}")
            byte = self.byte(what)
            value |= (byte & 127) << shift
            shift += 7
            if not byte & 128:
                return value & 0xFFFFFFFFFFFFFFFF

    def string_list(self, what: str) -> list[bytes]:
        count = self.int32(f"{what} count")
        if count < 0 or count > len(self.data):
            raise self.fail(f"bad {what} count {count}")
        lengths = [self.varint(f"{what} lengths") for _ in range(count)]
        return [self.take(n, what) for n in lengths]

    def pascal_string(self, what: str) -> bytes:
        return self.take(self.uint32(f"{what} length"), what)


# --------------------------------------------------------------------------- decoding


def parse_id_manifest(data: bytes, path: str | os.PathLike | None = None) -> IdManifest:
    """Decode OpenEXR's uncompressed manifest serialization (version 0)."""
    path = os.fspath(path) if path is not None else None
    r = _Reader(bytes(data), path)
    version = r.uint32("version")
    if version != 0:
        raise r.fail(f"unrecognized version {version}")

    strings = r.string_list("string table")
    for i in range(1, len(strings)):
        prev = strings[i - 1]
        cur = strings[i]
        width = 2 if len(prev) > 255 else 1
        if len(cur) < width:
            raise r.fail("string too small for its common prefix length")
        common = (cur[0] << 8) + cur[1] if width == 2 else cur[0]
        if common > len(prev):
            raise r.fail("bad common prefix length in the string table")
        strings[i] = prev[:common] + cur[width:]
    texts = [_decode(s) for s in strings]

    runs = r.int32("mapping table size")
    if runs < 0:
        raise r.fail(f"bad mapping table size {runs}")
    mapping = [0] * len(texts)
    seen = [False] * len(texts)
    current = 0
    for _ in range(runs):
        first = r.int32("mapping table")
        last = r.int32("mapping table")
        if first < 0 or last < 0 or first > last or first >= len(texts) or last >= len(texts):
            raise r.fail("bad mapping table entry")
        for entry in range(first, last + 1):
            if not seen[entry]:
                mapping[current] = entry
                seen[entry] = True
                current += 1

    n_groups = r.int32("group count")
    if n_groups < 0:
        raise r.fail(f"bad group count {n_groups}")
    manifest = IdManifest(groups=[])
    for _ in range(n_groups):
        channels = {_decode(s) for s in r.string_list("channel list")}
        components = [_decode(s) for s in r.string_list("component list")]
        code = r.byte("lifetime")
        lifetime = LIFETIMES[code] if code < len(LIFETIMES) else str(code)
        hash_scheme = _decode(r.pascal_string("hash scheme"))
        encoding = _decode(r.pascal_string("encoding scheme"))
        storage = r.byte("id storage scheme")
        table_size = r.int32("id table size")
        if table_size < 0:
            raise r.fail(f"bad id table size {table_size}")
        group = ChannelGroup(channels=channels, components=components, lifetime=lifetime,
                             hash_scheme=hash_scheme, encoding_scheme=encoding, entries={})
        previous = 0
        for _ in range(table_size):
            if storage == 0:
                delta = r.uint64("id table")
            elif storage == 1:
                delta = r.uint32("id table")
            else:
                delta = r.varint("id table")
            value = (previous + delta) & 0xFFFFFFFFFFFFFFFF
            previous = value
            if value in group.entries:
                raise r.fail(f"several entries for id {value}")
            text = []
            for _ in components:
                index = r.varint("string index")
                if index >= len(texts):
                    raise r.fail(f"bad string index {index}")
                text.append(texts[mapping[index]])
            group.entries[value] = tuple(text)
        manifest.groups.append(group)
    manifest.uncompressed_size = len(data)
    return manifest


def decode_id_manifest(payload: bytes, path: str | os.PathLike | None = None) -> IdManifest:
    """Decode an ``idManifest`` attribute payload (uint64 LE size + zlib stream)."""
    path = os.fspath(path) if path is not None else None
    payload = bytes(payload)
    if len(payload) < 8:
        raise ManifestError(path, f"malformed idManifest: attribute has only {len(payload)} bytes")
    (size,) = struct.unpack("<Q", payload[:8])
    try:
        dec = zlib.decompressobj()
        data = dec.decompress(payload[8:], min(size, _MAX_MANIFEST_BYTES) + 1)
    except zlib.error as exc:
        raise ManifestError(path, f"malformed idManifest: zlib decompression failed ({exc})") from None
    if len(data) != size:
        raise ManifestError(path, f"malformed idManifest: it decompresses to {len(data)} bytes, "
                            f"the header says {size}")
    manifest = parse_id_manifest(data, path)
    manifest.compressed_size = len(payload) - 8
    manifest.uncompressed_size = size
    return manifest


# --------------------------------------------------------------------------- encoding


def serialize_id_manifest(manifest: IdManifest) -> bytes:
    """OpenEXR's uncompressed serialization of ``manifest`` (byte-identical to ``IDManifest::serialize``)."""
    counts: dict[bytes, int] = {}
    for group in manifest.groups:
        for _, text in sorted(group.entries.items()):
            if len(text) != len(group.components):
                raise ValueError("an entry's number of strings differs from its group's components")
            for s in text:
                b = _encode(s)
                counts[b] = counts.get(b, 0) + 1
    unique = sorted(counts)
    index_of = {s: i for i, s in enumerate(unique)}

    prefixed: list[bytes] = []
    prev = b""
    for i, s in enumerate(unique):
        if i == 0:
            prefixed.append(s)
        else:
            common = 0
            limit = min(65535, len(prev), len(s))
            while common < limit and prev[common] == s[common]:
                common += 1
            if len(prev) > 255:
                prefixed.append(bytes((common >> 8, common & 255)) + s[common:])
            else:
                prefixed.append(bytes((common,)) + s[common:])
        prev = s

    by_count = sorted(range(len(unique)), key=lambda i: (-counts[unique[i]], i))
    # the most common strings get the codes that need the fewest varint bytes
    size_class = {i: _varint_size(rank) for rank, i in enumerate(by_count)}
    order = sorted(range(len(unique)), key=lambda i: (size_class[i], i))

    code_of = [-1] * len(unique)
    runs: list[list[int]] = []
    # OpenEXR seeds the first run with "code of the first string + 1", i.e. 1, whatever the
    # first string's index; kept so the bytes match (it only splits a run, never breaks one)
    next_to_include = 1
    for code, i in enumerate(order):
        code_of[i] = code
        if code == 0:
            runs.append([i, i])
            continue
        if i == next_to_include:
            runs[-1][1] = i
        else:
            runs.append([i, i])
        next_to_include = i + 1
        while next_to_include < len(unique) and code_of[next_to_include] >= 0:
            next_to_include += 1

    out = bytearray()
    out += struct.pack("<i", 0)
    _write_string_list(out, prefixed)
    out += struct.pack("<i", len(runs))
    for first, last in runs:
        out += struct.pack("<ii", first, last)
    out += struct.pack("<i", len(manifest.groups))
    for group in manifest.groups:
        _write_string_list(out, [_encode(c) for c in sorted(group.channels, key=_byte_key)])
        _write_string_list(out, [_encode(c) for c in group.components])
        out.append(_lifetime_code(group.lifetime))
        for scheme in (group.hash_scheme, group.encoding_scheme):
            b = _encode(scheme)
            out += struct.pack("<I", len(b)) + b
        table = sorted(group.entries.items())
        deltas = []
        previous = 0
        for value, _ in table:
            if not 0 <= value < 1 << 64:
                raise ValueError(f"id {value} does not fit in 64 bits")
            deltas.append(value - previous)
            previous = value
        variable = sum(_varint_size(d) for d in deltas)
        if all(d < 1 << 32 for d in deltas):
            storage = 2 if variable < len(table) * 4 else 1
        else:
            storage = 2 if variable < len(table) * 8 else 0
        out.append(storage)
        out += struct.pack("<i", len(table))
        for delta, (_, text) in zip(deltas, table, strict=True):
            if storage == 0:
                out += struct.pack("<Q", delta)
            elif storage == 1:
                out += struct.pack("<I", delta)
            else:
                _write_varint(out, delta)
            for s in text:
                _write_varint(out, code_of[index_of[_encode(s)]])
    return bytes(out)


def _write_string_list(out: bytearray, strings: Sequence[bytes]) -> None:
    out += struct.pack("<i", len(strings))
    for s in strings:
        _write_varint(out, len(s))
    for s in strings:
        out += s


def _lifetime_code(lifetime: str) -> int:
    if lifetime in LIFETIMES:
        return LIFETIMES.index(lifetime)
    if lifetime.isdigit() and int(lifetime) < 256:
        return int(lifetime)
    raise ValueError(f"unknown lifetime {lifetime!r} (expected one of {', '.join(LIFETIMES)})")


def encode_id_manifest(manifest: IdManifest, level: int = -1) -> bytes:
    """The ``idManifest`` attribute payload for ``manifest``: uint64 LE size + zlib stream.

    The default zlib level (-1) gives the bytes OpenEXR 3.1 writes with zlib.
    """
    data = serialize_id_manifest(manifest)
    return struct.pack("<Q", len(data)) + zlib.compress(data, level)


# --------------------------------------------------------------------------- objectID convention


def manifest_from_object_id(strings: Iterable[str], channel: str = "id") -> IdManifest:
    """Read the older ``objectID`` stringvector (``"model,material,id"`` per object).

    Each string's last comma-separated field is the decimal 32-bit id held in ``channel``;
    the fields before it are the components (``model``, ``material`` when there are two, as
    ``deepidexample --objectid`` writes). The hash scheme is ``MurmurHash3_32`` when every id
    is the hash of its components joined by ";", else ``custom``.
    """
    entries: dict[int, tuple[str, ...]] = {}
    width = None
    for text in strings:
        head, sep, tail = text.rpartition(",")
        tail = tail.strip()
        if not sep or not tail.isdigit() or int(tail) >= 1 << 32:
            raise ValueError(f"objectID entry {text!r} does not end with a 32-bit id")
        fields = tuple(head.split(","))
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise ValueError(f"objectID entry {text!r} has {len(fields)} names, others have {width}")
        entries.setdefault(int(tail), fields)
    width = width or 0
    if width == len(_OBJECT_ID_COMPONENTS):
        components = list(_OBJECT_ID_COMPONENTS)
    elif width == 1:
        components = ["name"]
    else:
        components = [f"component{i}" for i in range(width)]
    hashed = bool(entries) and all(deepid_hash(t, MURMURHASH3_32) == v for v, t in entries.items())
    group = ChannelGroup(channels={channel}, components=components, lifetime="stable",
                         hash_scheme=MURMURHASH3_32 if hashed else CUSTOM_HASH,
                         encoding_scheme=ID_SCHEME, entries=dict(sorted(entries.items())))
    return IdManifest(groups=[group], source="objectID")


def manifest_from_header(header: PartHeader, path: str | os.PathLike | None = None) -> IdManifest | None:
    """The manifest of a part: its ``idManifest`` attribute, else its ``objectID`` list, else None."""
    raw = header.get("idManifest")
    if isinstance(raw, RawAttribute):
        raw = raw.data
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return decode_id_manifest(bytes(raw), path)
    object_id = header.get("objectID")
    if isinstance(object_id, (list, tuple)) and object_id:
        names = {c.name for c in header.channels}
        channel = "id" if "id" in names or not names else _guess_object_id_channel(names)
        try:
            return manifest_from_object_id([str(s) for s in object_id], channel)
        except ValueError as exc:
            raise ManifestError(os.fspath(path) if path else None, f"malformed objectID: {exc}") from None
    return None


def _guess_object_id_channel(names: set[str]) -> str:
    for name in sorted(names):
        if re.fullmatch(r"(.*\.)?(object)?id", name, flags=re.IGNORECASE):
            return name
    return "id"


def manifest_summary(header: PartHeader, max_entries: int = 50) -> dict | None:
    """A JSON-ready description of a part's manifest (for ``deepscope info``), or None without one.

    Each group lists its channels, components, schemes, lifetime, its number of ``entries`` and
    its first ``max_entries`` entries (by id) as ``first_entries``: ``{"id": int, "names": [...]}``.
    """
    manifest = manifest_from_header(header)
    if manifest is None:
        return None
    groups = []
    for group in manifest.groups:
        entries = group.sorted_entries()
        groups.append({
            "channels": group.sorted_channels,
            "components": list(group.components),
            "hash_scheme": group.hash_scheme,
            "encoding_scheme": group.encoding_scheme,
            "lifetime": group.lifetime,
            "entries": len(entries),
            "first_entries": [{"id": v, "names": list(t)} for v, t in entries[:max_entries]],
        })
    out: dict = {"source": manifest.source, "groups": groups}
    if manifest.source == "idManifest":
        out["uncompressed_size"] = manifest.uncompressed_size
        out["compressed_size"] = manifest.compressed_size
    return out


# --------------------------------------------------------------------------- exrmanifest text


def raw_text_size(manifest: IdManifest) -> int:
    """The "raw text size" exrmanifest reports: bytes of every name, id and channel, one separator each."""
    total = 0
    for group in manifest.groups:
        total += sum(len(_encode(c)) + 1 for c in group.channels)
        total += sum(len(_encode(c)) + 1 for c in group.components)
        for value, text in group.entries.items():
            total += len(str(value))
            total += sum(len(_encode(s)) + 1 for s in text)
    return total


def _format_group(group: ChannelGroup) -> str:
    lines = []
    lines.append(" channels  : " + ",".join(sorted(group.channels, key=_byte_key)))
    lines.append(" hashScheme: " + group.hash_scheme)
    lines.append(" encoding  : " + group.encoding_scheme)
    text = "\n".join(lines) + "\n"
    if group.lifetime in LIFETIMES:
        text += f" lifetime  : {group.lifetime}\n"
    entries = sorted(group.entries.items())
    widths = [len(_encode(c)) for c in group.components]
    num_width = 0
    for value, names in entries:
        num_width = max(num_width, len(str(value)))
        for i, s in enumerate(names):
            widths[i] = max(widths[i], len(_encode(s)))

    def cells(names: Sequence[str]) -> str:
        return "".join(s + " " * (widths[i] + 1 - len(_encode(s))) for i, s in enumerate(names))

    text += "     " + " " * (num_width + 1) + cells(group.components) + "\n"
    for value, names in entries:
        number = str(value)
        text += "     " + number + " " * (num_width + 1 - len(number)) + cells(names) + "\n"
    return text


def format_exrmanifest(manifest: IdManifest | None) -> str:
    """Exactly what OpenEXR's ``exrmanifest`` prints for one part's manifest.

    ``None`` (no ``idManifest`` attribute) gives ``"no manifest found\\n"``. A manifest read from
    an ``objectID`` list is not an idManifest either, so it gives the same text. When the
    manifest was built in memory the sizes are those :func:`encode_id_manifest` produces.
    """
    if manifest is None or manifest.source != "idManifest":
        return "no manifest found\n"
    text = "\n\n".join(_format_group(g) for g in manifest.groups)
    uncompressed = manifest.uncompressed_size
    compressed = manifest.compressed_size
    if uncompressed is None or compressed is None:
        payload = encode_id_manifest(manifest)
        uncompressed = struct.unpack("<Q", payload[:8])[0] if uncompressed is None else uncompressed
        compressed = len(payload) - 8 if compressed is None else compressed
    text += f"raw text size    : {raw_text_size(manifest)}\n"
    text += f"uncompressed size: {uncompressed}\n"
    text += f"compressed size  : {compressed}\n"
    return text


def format_exrmanifest_file(headers: Sequence[PartHeader], file_name: str) -> str:
    """``exrmanifest FILE`` for a whole file: every part, each titled when there are several."""
    out = []
    for i, header in enumerate(headers):
        if len(headers) > 1:
            out.append(f"{file_name} part {i}:\n")
        raw = header.get("idManifest")
        if isinstance(raw, RawAttribute):
            raw = raw.data
        manifest = decode_id_manifest(bytes(raw), file_name) if raw is not None else None
        out.append(format_exrmanifest(manifest))
    return "".join(out)
