"""Cryptomatte layers: finding them, their manifests, mattes, picking and previews.

A Cryptomatte layer is a set of *ranks*: pairs of (id, coverage) channels. Rank channel
group ``<name>NN`` holds two ranks, ``NN.R`` id / ``NN.G`` coverage then ``NN.B`` id /
``NN.A`` coverage; groups are in number order. An id is the float32 whose bits are
MurmurHash3_32 of a name (see :mod:`core.hashing`); Deepscope always works with those
bits as uint32, never with float comparisons. ``cryptomatte/<key>/name|hash|conversion|
manifest|manif_file`` metadata names the layer and maps names to hex ids.

Everything here takes the document model (:class:`~core.model.PartHeader`,
:class:`~core.model.FlatImage`) and returns values or raises typed errors. Pixel
coordinates are EXR pixel coordinates (the space of ``dataWindow``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core._numba import kernel, prange
from core.errors import ExrError, SelectionError
from core.hashing import bits_to_float, crypto_hash, layer_key
from core.model import Box, ChannelInfo, FlatImage, PartHeader, PixelType

METADATA_PREFIXES = ("cryptomatte/", "exr/cryptomatte/")
METADATA_FIELDS = ("name", "hash", "conversion", "manifest", "manif_file")
EXPECTED_HASH = "MurmurHash3_32"
EXPECTED_CONVERSION = "uint32_to_float32"
#: channel suffix (lower case) -> role: 0 id, 1 coverage (first rank), 2 id, 3 coverage (second)
SUFFIX_ROLE = {"r": 0, "red": 0, "g": 1, "green": 1, "b": 2, "blue": 2, "a": 3, "alpha": 3}
PREVIEW_ORDER = ("r", "g", "b", "a")
#: OIIO's --cryptomatte-colors ignores coverage below this
PREVIEW_MIN_COVERAGE = 1e-5


class CryptoError(ExrError):
    """A Cryptomatte layer that cannot be keyed (HALF ids, no rank channels...).

    ``str(err)`` is one line: ``path: problem`` (or just the problem without a path).
    """

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        super().__init__(path, problem)


class ManifestError(CryptoError):
    """A manifest that is not UTF-8, not JSON, or not ``{name: hex id}``."""


# ===================================================================== manifests


_HEX_LUT = np.full(128, 255, dtype=np.uint8)
for _i, _c in enumerate("0123456789abcdef"):
    _HEX_LUT[ord(_c)] = _i
    _HEX_LUT[ord(_c.upper())] = _i


def _parse_hex_ids(values: list, names: list[str], source: str) -> np.ndarray:
    """Hex id strings to uint32, vectorised; odd entries fall back to ``int(v, 16)``."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ManifestError(f"{source}: the id of {names[i]!r} is {v!r}, expected a hex string")
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    short = lengths <= 8  # only these go through the (n, 8) code point table
    out = np.zeros(n, dtype=np.uint64)
    bad = ~short | (lengths == 0)
    idx = np.flatnonzero(short)
    if idx.size:
        arr = np.array([values[i] for i in idx] if idx.size < n else values, dtype="<U8")
        codes = arr.view(np.uint32).reshape(idx.size, 8)
        vals = np.zeros(idx.size, dtype=np.uint64)
        wrong = np.zeros(idx.size, dtype=bool)
        for j in range(8):
            c = codes[:, j]
            live = j < lengths[idx]
            nib = _HEX_LUT[np.minimum(c, 127)]
            wrong |= live & ((c > 127) | (nib == 255))
            vals = np.where(live, vals * 16 + nib, vals)
        out[idx] = vals
        bad[idx] |= wrong
    for i in np.flatnonzero(bad):
        v = values[i]
        try:
            if len(v) > 32:
                raise ValueError
            value = int(v.strip(), 16)
        except ValueError:
            shown = v if len(v) <= 40 else v[:40] + "..."
            raise ManifestError(f"{source}: the id of {names[i]!r} is {shown!r}, not a hex number") from None
        if not 0 <= value <= 0xFFFFFFFF:
            raise ManifestError(f"{source}: the id of {names[i]!r} is {v!r}, more than 32 bits")
        out[i] = value
    return out.astype(np.uint32)


def load_manifest_arrays(data: str | bytes, source: str = "manifest") -> tuple[list[str], np.ndarray]:
    """Manifest names (file order) and their uint32 ids. Raises :class:`ManifestError`."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{source} is not UTF-8 text (bad byte at offset {exc.start})") from None
    else:
        text = data
    text = text.lstrip("\ufeff")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{source} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise ManifestError(f"{source} is not valid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{source} is a JSON {type(obj).__name__}, expected an object of name: hex id")
    names = list(obj.keys())
    return names, _parse_hex_ids(list(obj.values()), names, source)


def load_manifest(data: str | bytes, source: str = "manifest") -> dict[str, int]:
    """Parse a Cryptomatte manifest (JSON ``{"name": "hex id"}``) to ``{name: uint32 id}``.

    ``data`` is the text (an embedded manifest) or the bytes of a sidecar file, which must
    be UTF-8. Raises :class:`ManifestError` naming ``source`` and the problem.
    """
    names, ids = load_manifest_arrays(data, source)
    return dict(zip(names, ids.tolist(), strict=True))


def read_manifest_file(path: str | os.PathLike) -> dict[str, int]:
    """Load a sidecar manifest file. Raises :class:`ManifestError` (with the path)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ManifestError(f"cannot read sidecar manifest: {exc.strerror or exc}", path) from None
    try:
        return load_manifest(data, "sidecar manifest")
    except ManifestError as exc:
        raise ManifestError(exc.problem, path) from None


def hash_mismatches(manifest: Mapping[str, int]) -> list[tuple[str, int, int]]:
    """Entries whose id is not the Cryptomatte hash of their name: (name, id, hash)."""
    out = []
    for name, value in manifest.items():
        try:
            h = crypto_hash(name)
        except UnicodeEncodeError:
            h = -1
        if h != value:
            out.append((name, int(value), h))
    return out


# ===================================================================== layers


@dataclass
class CryptoLayer:
    """One Cryptomatte layer found in a file.

    ``ranks`` lists ``(id_channel, coverage_channel)`` in rank order (00.R/G, 00.B/A,
    01.R/G, ...), all in part ``part_index``. ``manifest`` maps names to uint32 id bits
    and ``names_by_id`` is its reverse. ``manifest_source`` is ``"embedded"``,
    ``"sidecar:<path>"`` or ``"none"``. ``key`` is the metadata key (None when the layer
    was found from channel names only). ``problems`` says, in words, everything that is
    not as the specification wants it.
    """

    name: str
    key: str | None
    hash: str | None
    conversion: str | None
    manifest: dict[str, int]
    manifest_source: str
    ranks: list[tuple[str, str]]
    part_index: int = 0
    preview_channels: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: the channel prefix the ranks were found under (e.g. ``ViewLayer.CryptoObject``)
    channel_base: str | None = None
    #: the metadata prefix used (``cryptomatte/`` or ``exr/cryptomatte/``)
    metadata_prefix: str | None = None
    #: id channels stored as HALF (from the header): keying refuses them
    half_id_channels: list[str] = field(default_factory=list)
    names_by_id: dict[int, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.names_by_id and self.manifest:
            by_id: dict[int, str] = {}
            for name, value in self.manifest.items():
                by_id.setdefault(int(value), name)
            self.names_by_id = by_id

    @property
    def num_ranks(self) -> int:
        return len(self.ranks)

    @property
    def id_channels(self) -> list[str]:
        return [i for i, _ in self.ranks]

    @property
    def coverage_channels(self) -> list[str]:
        return [c for _, c in self.ranks]

    @property
    def channels(self) -> list[str]:
        """Every rank channel, rank order (id, coverage, id, coverage, ...)."""
        return [c for pair in self.ranks for c in pair]

    @property
    def keyable(self) -> bool:
        return bool(self.ranks) and not self.half_id_channels

    def name_of(self, id_bits: int) -> str | None:
        """The manifest name of an id, or None."""
        return self.names_by_id.get(int(id_bits))

    def id_of(self, name: str) -> int:
        """The id of a name: the manifest's when it has the name, else its hash."""
        value = self.manifest.get(name)
        return int(value) if value is not None else crypto_hash(name)

    def manifest_arrays(self) -> tuple[np.ndarray, list[str]]:
        """Manifest ids (sorted uint32) and the names in the same order, for fast lookups."""
        names = list(self.manifest)
        ids = np.fromiter((self.manifest[n] for n in names), dtype=np.uint32, count=len(names))
        order = np.argsort(ids, kind="stable")
        return ids[order], [names[i] for i in order]

    def selection(self, text_or_tokens: str | Iterable[str] = ()):
        """A :class:`core.selection.Selection` on this layer's manifest."""
        from core.selection import Selection

        if isinstance(text_or_tokens, str):
            return Selection.from_matte_list(text_or_tokens, self.manifest)
        return Selection(text_or_tokens, self.manifest)

    def describe(self) -> str:
        """A few lines saying what was found and how metadata maps to channels."""
        lines = []
        where = f"key {self.key}" if self.key is not None else "no metadata"
        lines.append(
            f"Cryptomatte {self.name!r} ({where}, hash {self.hash or '?'}, "
            f"conversion {self.conversion or '?'}), part {self.part_index}"
        )
        if self.ranks:
            groups = sorted({c.rsplit(".", 1)[0] for c in self.channels}, key=_natural_key)
            src = f"metadata name {self.name!r}" if self.key is not None else "channel names"
            lines.append(
                f"  {src} -> channels {self.channel_base!r}: {len(groups)} groups "
                f"({', '.join(groups)}), {self.num_ranks} ranks"
            )
            lines.append("  ranks (id, coverage): " + ", ".join(f"{i}/{c}" for i, c in self.ranks))
        else:
            lines.append(f"  metadata name {self.name!r} -> no rank channels")
        if self.preview_channels:
            lines.append("  preview: " + ", ".join(self.preview_channels))
        lines.append(f"  manifest: {self.manifest_source}, {len(self.manifest)} names")
        lines.extend(f"  problem: {p}" for p in self.problems)
        return "\n".join(lines)


def _natural_key(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def _legal_nuke_name(name: str) -> str:
    """Nuke's spelling of a layer name: only [A-Za-z0-9_-], never a leading digit."""
    out = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return "_" + out if out[:1].isdigit() else out


@dataclass
class _Group:
    """Channels ``<base><digits>.<suffix>``: rank number -> role -> channel name."""

    base: str
    numbers: dict[int, dict[int, str]] = field(default_factory=dict)
    spellings: dict[int, str] = field(default_factory=dict)  # rank number -> digits text
    duplicates: list[str] = field(default_factory=list)

    def add(self, digits: str, role: int, channel: str) -> None:
        number = int(digits)
        roles = self.numbers.setdefault(number, {})
        if role in roles:
            self.duplicates.append(channel)
            return
        roles[role] = channel
        self.spellings.setdefault(number, digits)


def _split_channel(name: str) -> tuple[str, str] | None:
    """``layer.part00.R`` -> (``layer.part00``, ``r``) when the suffix is a known component."""
    if "." not in name:
        return None
    head, suffix = name.rsplit(".", 1)
    suffix = suffix.lower()
    if suffix not in SUFFIX_ROLE or not head:
        return None
    return head, suffix


def _groups_for(channels: Sequence[str], base_ok) -> dict[str, _Group]:
    """Rank channel groups whose base passes ``base_ok(base)``; every digit split tried."""
    groups: dict[str, _Group] = {}
    for ch in channels:
        split = _split_channel(ch)
        if split is None:
            continue
        head, suffix = split
        m = re.search(r"\d+$", head)
        if m is None:
            continue
        for k in range(m.start(), len(head)):
            base, digits = head[:k], head[k:]
            if base and base_ok(base):
                groups.setdefault(base, _Group(base)).add(digits, SUFFIX_ROLE[suffix], ch)
    return groups


def _group_ranks(group: _Group) -> tuple[list[tuple[str, str]], list[str]]:
    """Rank pairs of a group in order, and the problems with its numbering or components."""
    ranks: list[tuple[str, str]] = []
    problems: list[str] = []
    numbers = sorted(group.numbers)
    if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        problems.append(
            f"rank channel groups of {group.base!r} are not consecutive: "
            + ", ".join(group.spellings[n] for n in numbers)
        )
    elif numbers and numbers[0] != 0:
        problems.append(
            f"rank channel groups of {group.base!r} start at {group.spellings[numbers[0]]}, not 00"
        )
    for n in numbers:
        roles = group.numbers[n]
        for id_role, cov_role in ((0, 1), (2, 3)):
            if id_role in roles and cov_role in roles:
                ranks.append((roles[id_role], roles[cov_role]))
            elif id_role in roles or cov_role in roles:
                have = roles.get(id_role) or roles.get(cov_role)
                problems.append(f"{have} has no matching {'coverage' if id_role in roles else 'id'} channel")
    if group.duplicates:
        problems.append("channels spelled twice, ignored: " + ", ".join(group.duplicates))
    return ranks, problems


def _attributes(header: PartHeader | Mapping[str, object]) -> dict[str, object]:
    if isinstance(header, PartHeader):
        return {name: attr.value for name, attr in header.attributes.items()}
    return dict(header)


def _channel_infos(
    header: PartHeader | Mapping[str, object], channel_names: Iterable[str | ChannelInfo] | None
) -> tuple[list[str], dict[str, PixelType]]:
    if channel_names is None:
        if isinstance(header, PartHeader):
            channel_names = header.channels
        else:
            channel_names = header.get("channels") or []  # type: ignore[assignment]
    names: list[str] = []
    types: dict[str, PixelType] = {}
    for ch in channel_names:  # type: ignore[union-attr]
        if isinstance(ch, ChannelInfo):
            names.append(ch.name)
            types[ch.name] = ch.pixel_type
        elif isinstance(ch, str):
            names.append(ch)
        else:  # e.g. an OpenEXR binding Channel: has .name
            names.append(str(getattr(ch, "name", ch)))
    return names, types


@dataclass
class _Meta:
    key: str
    prefix: str
    fields: dict[str, object]
    problems: list[str]


def _crypto_metadata(attrs: Mapping[str, object]) -> dict[str, _Meta]:
    """``cryptomatte/<key>/<field>`` (and ``exr/cryptomatte/...``) grouped by key."""
    metas: dict[str, _Meta] = {}
    for attr_name, value in attrs.items():
        for prefix in METADATA_PREFIXES:
            if not attr_name.startswith(prefix):
                continue
            rest = attr_name[len(prefix) :]
            if "/" not in rest:
                break
            key, fld = rest.rsplit("/", 1)
            meta = metas.get(key)
            if meta is None:
                meta = metas[key] = _Meta(key, prefix, {}, [])
            if fld in meta.fields and meta.prefix != prefix:
                if meta.fields[fld] != value:
                    meta.problems.append(
                        f"{prefix}{key}/{fld} differs from {meta.prefix}{key}/{fld}; using {meta.prefix}"
                    )
                break
            if fld not in METADATA_FIELDS:
                meta.problems.append(f"unknown metadata field {attr_name!r}")
            meta.fields[fld] = value
            break
    return metas


def _manifest_for(meta: _Meta, image_path: str | None, problems: list[str]) -> tuple[dict[str, int], str]:
    fields = meta.fields
    sidecar = fields.get("manif_file")
    embedded = fields.get("manifest")
    if sidecar is not None:
        if embedded is not None:
            problems.append("both an embedded manifest and manif_file: using the sidecar file")
        if not isinstance(sidecar, str) or not sidecar.strip():
            problems.append(f"manif_file is {sidecar!r}, not a file name")
            return {}, "none"
        rel = sidecar
        if "\\" in rel:
            problems.append(
                f"manif_file {sidecar!r} has back-slashes (the specification wants '/'); read as '/'"
            )
            rel = rel.replace("\\", "/")
        if image_path is None:
            problems.append(f"sidecar manifest {sidecar!r} cannot be found without the image's path")
            return {}, "none"
        path = os.path.normpath(os.path.join(os.path.dirname(os.fspath(image_path)), rel))
        if not os.path.isfile(path):
            problems.append(f"sidecar manifest {path} is missing")
            return {}, "none"
        try:
            return read_manifest_file(path), f"sidecar:{path}"
        except ManifestError as exc:
            problems.append(str(exc))
            return {}, "none"
    if embedded is not None:
        if not isinstance(embedded, (str, bytes)):
            problems.append(f"embedded manifest is a {type(embedded).__name__}, not text")
            return {}, "none"
        try:
            manifest = load_manifest(embedded, "embedded manifest")
        except ManifestError as exc:
            problems.append(str(exc))
            return {}, "none"
        if isinstance(embedded, str) and "\ufffd" in embedded:
            problems.append(
                "embedded manifest was not valid UTF-8 (bytes shown as U+FFFD): names may be wrong"
            )
        return manifest, "embedded"
    problems.append("no manifest (neither 'manifest' nor 'manif_file'): ids have no names")
    return {}, "none"


def _check_manifest(manifest: Mapping[str, int], problems: list[str]) -> None:
    bad = hash_mismatches(manifest)
    if bad:
        examples = ", ".join(f"{n!r} {v:08x} (hash {h & 0xFFFFFFFF:08x})" for n, v, h in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        problems.append(f"{len(bad)} manifest ids are not the hash of their name: {examples}{more}")
    if len(manifest) > 1:
        ids = np.fromiter(manifest.values(), dtype=np.uint32, count=len(manifest))
        uniq, counts = np.unique(ids, return_counts=True)
        dup = uniq[counts > 1]
        if len(dup):
            problems.append(
                f"{len(dup)} ids are shared by several manifest names (hash collisions), "
                f"e.g. {int(dup[0]):08x}"
            )


def _looks_like_ids(image: FlatImage, ranks: list[tuple[str, str]]) -> bool:
    """Do the first rank channels hold Cryptomatte ids? Non-zero ids have exponent 1..254
    (the hash fix-up), coverage is finite and near [0, 1], and there is some id."""
    seen = False
    for id_ch, cov_ch in ranks[:4]:
        ids = image.channels.get(id_ch)
        cov = image.channels.get(cov_ch)
        if ids is None or cov is None or ids.dtype != np.float32:
            return False
        bits = np.ascontiguousarray(ids).view(np.uint32)
        nz = bits[(bits & 0x7FFFFFFF) != 0]
        if nz.size:
            exp = (nz >> 23) & 0xFF
            if np.any((exp == 0) | (exp == 255)):
                return False
            seen = True
        c = cov[np.isfinite(cov)]
        if c.size != cov.size or (c.size and (c.min() < -1.0 or c.max() > 2.0)):
            return False
    return seen


@dataclass
class _Found:
    base: str
    ranks: list[tuple[str, str]]
    problems: list[str]


def _claim(name: str, channels: list[str], claimed: set[str]) -> tuple[_Found | None, list[str]]:
    """Find the rank channels of metadata name ``name`` (strictest spelling first)."""
    legal = _legal_nuke_name(name)
    tests = [
        ("exact", lambda b: b == name),
        ("nuke", lambda b: _legal_nuke_name(b) == legal),
        ("view layer prefix", lambda b: b.endswith("." + name) or b.endswith("_" + name)),
        ("metadata has a view layer", lambda b: name.endswith("." + b) or name.endswith("_" + b)),
    ]
    for how, test in tests:
        groups = _groups_for(channels, lambda b, test=test: b not in claimed and test(b))
        groups = {b: g for b, g in groups.items() if any(len(r) >= 2 for r in g.numbers.values())}
        if not groups:
            continue
        notes: list[str] = []
        bases = sorted(groups, key=lambda b: (-len(groups[b].numbers), b))
        base = bases[0]
        if len(bases) > 1:
            notes.append(
                f"metadata name {name!r} matches several channel layers ({', '.join(bases)}); using {base!r}"
            )
        if how != "exact":
            notes.append(f"metadata name {name!r} is spelled {base!r} in the channel names")
        ranks, problems = _group_ranks(groups[base])
        return _Found(base, ranks, notes + problems), bases
    return None, []


def _preview_channels(base: str, channels: list[str]) -> list[str]:
    found: dict[str, str] = {}
    for ch in channels:
        split = _split_channel(ch)
        if split and split[0] == base:
            found.setdefault(split[1][0], ch)
    return [found[k] for k in PREVIEW_ORDER if k in found]


def _half_ids(ranks: list[tuple[str, str]], types: Mapping[str, PixelType]) -> list[str]:
    return [i for i, _ in ranks if types.get(i) == PixelType.HALF]


def _layer_from_meta(
    meta: _Meta,
    found: _Found | None,
    part_index: int,
    channels: list[str],
    types: Mapping[str, PixelType],
    image_path: str | None,
    check_hashes: bool,
) -> CryptoLayer:
    problems = list(meta.problems)
    raw_name = meta.fields.get("name")
    name = raw_name if isinstance(raw_name, str) else ""
    if not name:
        problems.append(f"metadata key {meta.key!r} has no name")
    hash_name = meta.fields.get("hash")
    conversion = meta.fields.get("conversion")
    if hash_name is None:
        problems.append("no 'hash' metadata (assuming MurmurHash3_32)")
    elif hash_name != EXPECTED_HASH:
        problems.append(f"hash is {hash_name!r}; Deepscope hashes names with {EXPECTED_HASH}")
    if conversion is None:
        problems.append("no 'conversion' metadata (assuming uint32_to_float32)")
    elif conversion != EXPECTED_CONVERSION:
        problems.append(f"conversion is {conversion!r}, not {EXPECTED_CONVERSION}")
    if name and meta.key != layer_key(name):
        problems.append(f"metadata key {meta.key!r} is not the hash prefix of the name ({layer_key(name)!r})")
    ranks: list[tuple[str, str]] = []
    base = None
    if found is not None:
        ranks, base = found.ranks, found.base
        problems.extend(found.problems)
    if not ranks:
        problems.append(f"metadata name {name!r} (key {meta.key}) has no rank channels ({name}00.R, ...)")
    manifest, source = _manifest_for(meta, image_path, problems)
    if check_hashes and manifest:
        _check_manifest(manifest, problems)
    half = _half_ids(ranks, types)
    if half:
        problems.append(
            "id channels are HALF (16-bit floats cannot hold ids; keying refused): " + ", ".join(half)
        )
    return CryptoLayer(
        name=name,
        key=meta.key,
        hash=hash_name if isinstance(hash_name, str) else None,
        conversion=conversion if isinstance(conversion, str) else None,
        manifest=manifest,
        manifest_source=source,
        ranks=ranks,
        part_index=part_index,
        preview_channels=_preview_channels(base, channels) if base else [],
        problems=problems,
        channel_base=base,
        metadata_prefix=meta.prefix,
        half_id_channels=half,
    )


def _layers_without_metadata(
    channels: list[str],
    types: Mapping[str, PixelType],
    claimed: set[str],
    part_index: int,
    image: FlatImage | None,
) -> list[CryptoLayer]:
    """Rank channel groups no metadata claims: ``...Crypto...00.R`` by name; any other
    ``<x>00`` + ``<x>01`` group when ``image`` shows its ids look like ids."""
    out = []
    groups: dict[str, _Group] = {}
    for ch in channels:
        split = _split_channel(ch)
        if split is None:
            continue
        m = re.fullmatch(r"(.+?)(\d\d)", split[0])
        if m is None or m.group(1) in claimed or ch in claimed:
            continue
        groups.setdefault(m.group(1), _Group(m.group(1))).add(m.group(2), SUFFIX_ROLE[split[1]], ch)
    # a base claimed through another digit split (``x1`` + ``00`` for metadata ``x1``) is taken
    for base in sorted(groups, key=_natural_key):
        group = groups[base]
        if 0 not in group.numbers or len(group.numbers[0]) < 4:
            continue
        ranks, problems = _group_ranks(group)
        if not ranks:
            continue
        by_name = "crypto" in base.lower()
        if not by_name:
            if len(group.numbers) < 2 or image is None or not _looks_like_ids(image, ranks):
                continue
        half = _half_ids(ranks, types)
        notes = [f"no Cryptomatte metadata for channels {base}00...: found from channel names, no manifest"]
        if half:
            notes.append(
                "id channels are HALF (16-bit floats cannot hold ids; keying refused): " + ", ".join(half)
            )
        out.append(
            CryptoLayer(
                name=base,
                key=None,
                hash=None,
                conversion=None,
                manifest={},
                manifest_source="none",
                ranks=ranks,
                part_index=part_index,
                preview_channels=_preview_channels(base, channels),
                problems=notes + problems,
                channel_base=base,
                half_id_channels=half,
            )
        )
    return out


def find_crypto_layers(
    header: PartHeader | Mapping[str, object],
    channel_names: Iterable[str | ChannelInfo] | None = None,
    image_path: str | os.PathLike | None = None,
    image: FlatImage | None = None,
    part_index: int | None = None,
    check_hashes: bool = True,
) -> list[CryptoLayer]:
    """The Cryptomatte layers of one part, sorted by name.

    ``header`` is a :class:`PartHeader` or a plain ``{attribute: value}`` mapping;
    ``channel_names`` defaults to the header's channel list (``ChannelInfo`` entries also
    give pixel types, used to flag HALF ids). ``image_path`` resolves sidecar manifests.
    Layers come from metadata (matched to rank channels with any of the spellings real
    files use) and, without metadata, from channel names; with ``image`` also from any
    ``<x>00``/``<x>01`` group whose values look like ids. Never raises for a bad layer:
    what is wrong goes into ``CryptoLayer.problems``.
    """
    attrs = _attributes(header)
    channels, types = _channel_infos(header, channel_names)
    if part_index is None:
        part_index = header.index if isinstance(header, PartHeader) else 0
    path = os.fspath(image_path) if image_path is not None else None
    metas = _crypto_metadata(attrs)
    layers, claimed = _match_metas(list(metas.values()), channels, types, part_index, path, check_hashes)
    layers.extend(_layers_without_metadata(channels, types, claimed, part_index, image))
    return sorted(layers, key=lambda la: (la.name, la.part_index))


def _match_metas(
    metas: list[_Meta],
    channels: list[str],
    types: Mapping[str, PixelType],
    part_index: int,
    path: str | None,
    check_hashes: bool,
    only_found: bool = False,
) -> tuple[list[CryptoLayer], set[str]]:
    claimed: set[str] = set()
    found: dict[str, _Found | None] = {}
    # exact names first so a fuzzy spelling never steals another layer's channels
    order = sorted(metas, key=lambda m: (not _claim_exact(m, channels), m.key))
    for meta in order:
        name = meta.fields.get("name")
        result = None
        if isinstance(name, str) and name:
            result, _ = _claim(name, channels, claimed)
        if result is not None:
            claimed.add(result.base)
        found[meta.key] = result
    layers = []
    for meta in metas:
        if only_found and found[meta.key] is None:
            continue
        layers.append(
            _layer_from_meta(meta, found[meta.key], part_index, channels, types, path, check_hashes)
        )
    # channels (and bases) claimed through any spelling are not layers without metadata
    for layer in layers:
        if layer.channel_base:
            claimed.add(layer.channel_base)
        claimed.update(layer.channels)
    return layers, claimed


def _claim_exact(meta: _Meta, channels: list[str]) -> bool:
    name = meta.fields.get("name")
    if not isinstance(name, str) or not name:
        return False
    return any(
        (s := _split_channel(ch)) is not None and s[0].startswith(name) and s[0][len(name) :].isdigit()
        for ch in channels
    )


def find_document_crypto_layers(
    headers: Sequence[PartHeader],
    image_path: str | os.PathLike | None = None,
    images: Sequence[FlatImage | None] | None = None,
    check_hashes: bool = True,
) -> list[CryptoLayer]:
    """The Cryptomatte layers of every part of a file.

    Metadata may sit in one part while the rank channels are in another (or in every
    part, as multi-part writers copy it): each part is matched against its own metadata
    and, failing that, the metadata of the other parts. Metadata no part has channels for
    gives one layer whose problems say so.
    """
    path = os.fspath(image_path) if image_path is not None else None
    per_part = [_crypto_metadata(_attributes(h)) for h in headers]
    all_metas: dict[str, _Meta] = {}
    owner: dict[str, int] = {}
    for idx, metas in enumerate(per_part):
        for key, meta in metas.items():
            if key not in all_metas:
                all_metas[key] = meta
                owner[key] = idx
    layers: list[CryptoLayer] = []
    matched: set[str] = set()
    for idx, header in enumerate(headers):
        channels, types = _channel_infos(header, None)
        own = per_part[idx]
        metas = list(own.values()) + [m for k, m in all_metas.items() if k not in own]
        part_layers, claimed = _match_metas(metas, channels, types, header.index, path, check_hashes, True)
        layers.extend(part_layers)
        matched.update(la.key for la in part_layers if la.key is not None)
        image = images[idx] if images is not None and idx < len(images) else None
        layers.extend(_layers_without_metadata(channels, types, claimed, header.index, image))
    for key, meta in all_metas.items():
        if key not in matched:
            h = headers[owner[key]]
            channels, types = _channel_infos(h, None)
            layers.append(_layer_from_meta(meta, None, h.index, channels, types, path, check_hashes))
    return sorted(layers, key=lambda la: (la.name, la.part_index))


def select_layer(layers: Sequence[CryptoLayer], name: str | None, part: int | None = None) -> CryptoLayer:
    """Pick a layer by name (or metadata key, or the pass name after a view layer).

    With ``name`` None the only layer is returned. Raises :class:`SelectionError` listing
    the layers available when there is no single match.
    """
    pool = [la for la in layers if part is None or la.part_index == part]
    available = ", ".join(_layer_label(la, layers) for la in layers) or "none"
    if name is None:
        if len(pool) == 1:
            return pool[0]
        if not pool:
            raise SelectionError(
                "no Cryptomatte layer found" + (f" in part {part}" if part is not None else "")
            )
        raise SelectionError(f"several Cryptomatte layers, choose one: {available}")
    for test in (
        lambda la: la.name == name,
        lambda la: la.key == name,
        lambda la: la.channel_base == name,
        lambda la: la.name.endswith("." + name) or la.name.endswith("_" + name),
        lambda la: la.name.lower() == name.lower(),
    ):
        hits = [la for la in pool if test(la)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise SelectionError(
                f"layer {name!r} is ambiguous: " + ", ".join(_layer_label(la, layers) for la in hits)
            )
    raise SelectionError(f"no Cryptomatte layer {name!r}; available: {available}")


def _layer_label(layer: CryptoLayer, layers: Sequence[CryptoLayer]) -> str:
    same = [la for la in layers if la.name == layer.name]
    return f"{layer.name} (part {layer.part_index})" if len(same) > 1 else layer.name


# ===================================================================== pixels


@dataclass
class CryptoRanks:
    """A layer's rank data stacked for kernels: ``ids`` uint32 bits and ``coverage``
    float32, both ``(ranks, height, width)`` over ``data_window``. Build once per layer
    (:func:`crypto_ranks`) and reuse for every matte, pick and preview."""

    ids: np.ndarray
    coverage: np.ndarray
    data_window: Box

    @property
    def shape(self) -> tuple[int, int]:
        return self.ids.shape[1], self.ids.shape[2]

    def pixel(self, x: int, y: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The (ids, coverage) of every rank at EXR pixel (x, y), or None outside the data window."""
        dw = self.data_window
        col, row = x - dw.xmin, y - dw.ymin
        h, w = self.shape
        if not (0 <= col < w and 0 <= row < h):
            return None
        return self.ids[:, row, col], self.coverage[:, row, col]


def _check_keyable(layer: CryptoLayer, image: FlatImage, path: str | os.PathLike | None) -> None:
    """Raise :class:`CryptoError` unless the image holds the layer's ranks with 32-bit ids."""
    if not layer.ranks:
        raise CryptoError(f"Cryptomatte layer {layer.name!r} has no rank channels", path)
    half = list(layer.half_id_channels) + [
        i
        for i, _ in layer.ranks
        if image.pixel_types.get(i) == PixelType.HALF and i not in layer.half_id_channels
    ]
    if half:
        raise CryptoError(
            f"Cryptomatte layer {layer.name!r} stores ids in HALF channels ({', '.join(half)}): "
            "16-bit floats cannot hold 32-bit ids, refusing to key",
            path,
        )
    missing = [c for c in layer.channels if c not in image.channels]
    if missing:
        raise CryptoError(
            f"Cryptomatte layer {layer.name!r}: channels missing from the image: " + ", ".join(missing), path
        )


def crypto_ranks(layer: CryptoLayer, image: FlatImage, path: str | os.PathLike | None = None) -> CryptoRanks:
    """Stack a layer's rank channels from its part's image (one copy; keep it for the layer).

    Raises :class:`CryptoError` when the layer has no ranks, a channel is missing, or the id
    channels are HALF (a 16-bit float cannot hold a 32-bit id: keying would give a partly
    right matte, so Deepscope refuses).
    """
    _check_keyable(layer, image, path)
    h, w = image.height, image.width
    ids = np.empty((layer.num_ranks, h, w), dtype=np.uint32)
    cov = np.empty((layer.num_ranks, h, w), dtype=np.float32)
    for r, (id_ch, cov_ch) in enumerate(layer.ranks):
        a = image.channels[id_ch]
        ids[r] = a if a.dtype == np.uint32 else np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
        cov[r] = image.channels[cov_ch]
    return CryptoRanks(ids, cov, image.data_window)


def _as_rank_stack(arrays, dtype, what: str) -> np.ndarray:
    if isinstance(arrays, np.ndarray):
        stack = arrays
    else:
        arrays = list(arrays)
        if not arrays:
            raise ValueError(f"{what}: no ranks")
        stack = np.stack([np.asarray(a) for a in arrays])
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise ValueError(f"{what} must be (ranks, height, width), got shape {stack.shape}")
    if dtype == np.uint32:
        if stack.dtype == np.float32:
            return np.ascontiguousarray(stack).view(np.uint32)
        if stack.dtype != np.uint32:
            raise ValueError(f"{what} must be float32 ids or uint32 id bits, got {stack.dtype}")
        return np.ascontiguousarray(stack)
    if stack.dtype != np.float32:
        raise ValueError(f"{what} must be float32, got {stack.dtype}")
    return np.ascontiguousarray(stack)


def _id_table(selected: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The selected ids as a 64 Kbit prefilter (bits 8..23 of the id; ids are hashes, so
    nearly every unselected id is rejected by one L1 load) plus an open-addressing hash
    set (0 marks an empty slot; whether 0 itself is selected is ``has_zero``)."""
    sel = np.unique(np.asarray(selected, dtype=np.uint32))
    has_zero = bool(sel.size and sel[0] == 0)
    size = 16
    while size < 4 * sel.size:
        size *= 2
    table = np.zeros(size, dtype=np.uint32)
    bitmap = np.zeros(1 << 13, dtype=np.uint8)
    _fill_table_kernel(sel, table, bitmap)
    return bitmap, table, has_zero


@kernel
def _slot(bits, mask):
    return ((np.uint64(bits) * np.uint64(2654435761)) >> np.uint64(7)) & np.uint64(mask)


@kernel
def _prefilter_key(bits):
    return (np.uint32(bits) >> np.uint32(8)) & np.uint32(0xFFFF)


@kernel
def _fill_table_kernel(sel, table, bitmap):
    mask = table.shape[0] - 1
    for v in sel:
        k = _prefilter_key(v)
        bitmap[k >> np.uint32(3)] |= np.uint8(1) << np.uint8(k & np.uint32(7))
        if v == 0:
            continue
        i = _slot(v, mask)
        while table[i] != 0 and table[i] != v:
            i = (i + np.uint64(1)) & np.uint64(mask)
        table[i] = v


@kernel
def _in_table(v, bitmap, table, has_zero):
    k = _prefilter_key(v)
    if not (bitmap[k >> np.uint32(3)] >> np.uint8(k & np.uint32(7))) & np.uint8(1):
        return False
    if v == 0:
        return has_zero
    mask = table.shape[0] - 1
    i = _slot(v, mask)
    while True:
        t = table[i]
        if t == v:
            return True
        if t == 0:
            return False
        i = (i + np.uint64(1)) & np.uint64(mask)


@kernel(parallel=True)
def _crypto_matte_kernel(ids, cov, bitmap, table, has_zero, out):
    # per row, rank by rank: contiguous reads; each pixel still sums its ranks in order
    ranks, h, w = ids.shape
    for y in prange(h):
        row = out[y]
        for x in range(w):
            row[x] = np.float32(0.0)
        for r in range(ranks):
            id_row = ids[r, y]
            cov_row = cov[r, y]
            for x in range(w):
                if _in_table(id_row[x], bitmap, table, has_zero):
                    row[x] += cov_row[x]


def crypto_matte(ids_ranks, cov_ranks, selected_ids) -> np.ndarray:
    """The matte of the selected ids: per pixel the float32 sum, in rank order, of the
    coverage of every rank whose id bits are selected. ``(height, width)`` float32.

    ``ids_ranks`` is ``(ranks, H, W)`` (or a list of ``(H, W)``) float32 ids or uint32 bits;
    ``cov_ranks`` the matching float32 coverage; ``selected_ids`` uint32 id bits (or float32
    ids). Building the ``(ranks, H, W)`` stack once (:func:`crypto_ranks`) and re-keying with
    new ids is the fast path: a 1920x1080, 6-rank layer keys in a few milliseconds.
    """
    ids = _as_rank_stack(ids_ranks, np.uint32, "ids_ranks")
    cov = _as_rank_stack(cov_ranks, np.float32, "cov_ranks")
    if ids.shape != cov.shape:
        raise ValueError(f"ids {ids.shape} and coverage {cov.shape} differ in shape")
    out = np.zeros(ids.shape[1:], dtype=np.float32)
    selected = np.asarray(selected_ids)
    if selected.dtype == np.float32:  # ids as stored in the file
        selected = selected.view(np.uint32)
    if selected.dtype != np.uint32:
        if selected.size and (
            selected.dtype.kind not in "iu" or selected.min() < 0 or selected.max() > 0xFFFFFFFF
        ):
            raise ValueError("selected_ids must be uint32 id bits")
        selected = selected.astype(np.uint32)
    if selected.size == 0 or out.size == 0:
        return out
    bitmap, table, has_zero = _id_table(selected.ravel())
    _crypto_matte_kernel(ids, cov, bitmap, table, has_zero, out)
    return out


def layer_matte(
    layer: CryptoLayer, image: FlatImage, selection, path: str | os.PathLike | None = None
) -> np.ndarray:
    """Matte of a layer over its image's data window for a Selection, matte list text or ids."""
    from core.selection import Selection

    if isinstance(selection, str):
        ids = Selection.from_matte_list(selection, layer.manifest).ids
    elif isinstance(selection, Selection):
        ids = selection.ids
    else:
        ids = np.asarray(selection, dtype=np.uint32)
    ranks = crypto_ranks(layer, image, path)
    return crypto_matte(ranks.ids, ranks.coverage, ids)


# ----------------------------------------------------------------------- per-pixel queries


@dataclass(frozen=True)
class IdEntry:
    """One rank at a pixel: its id bits, manifest name (None if unknown) and coverage."""

    rank: int
    id_bits: int
    name: str | None
    coverage: float

    @property
    def id_float(self) -> float:
        return bits_to_float(self.id_bits)

    @property
    def hex(self) -> str:
        return f"{self.id_bits:08x}"


@dataclass(frozen=True)
class IdStack:
    """The ids at one pixel, in rank order, and the float32 sum of all their coverage."""

    entries: list[IdEntry]
    total: float


def _pixel_ranks(
    layer: CryptoLayer, image: FlatImage | CryptoRanks, x: int, y: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, coverage) of every rank at EXR pixel (x, y); from a FlatImage only that pixel is read."""
    if isinstance(image, CryptoRanks):
        return image.pixel(x, y)
    _check_keyable(layer, image, None)
    dw = image.data_window
    col, row = x - dw.xmin, y - dw.ymin
    if not (0 <= col < image.width and 0 <= row < image.height):
        return None
    ids = np.empty(layer.num_ranks, dtype=np.uint32)
    cov = np.empty(layer.num_ranks, dtype=np.float32)
    for r, (id_ch, cov_ch) in enumerate(layer.ranks):
        v = image.channels[id_ch][row, col]
        ids[r] = v if isinstance(v, np.uint32) else np.float32(v).view(np.uint32)
        cov[r] = image.channels[cov_ch][row, col]
    return ids, cov


def id_stack(
    layer: CryptoLayer, image: FlatImage | CryptoRanks, x: int, y: int, include_empty: bool = False
) -> IdStack:
    """What the ranks hold at EXR pixel (x, y). Ranks with id 0 and no coverage are left
    out unless ``include_empty``. Outside the data window the stack is empty.
    Pass a :class:`CryptoRanks` (built once) for fast repeated queries."""
    px = _pixel_ranks(layer, image, x, y)
    if px is None:
        return IdStack([], 0.0)
    ids, cov = px
    entries = []
    total = np.float32(0.0)
    for r in range(len(ids)):
        bits = int(ids[r])
        c = cov[r]
        total = np.float32(total + c)
        if not include_empty and bits == 0 and c == 0:
            continue
        entries.append(IdEntry(r, bits, layer.name_of(bits), float(c)))
    return IdStack(entries, float(total))


def crypto_id_at(
    layer: CryptoLayer,
    image: FlatImage | CryptoRanks,
    x: int,
    y: int,
    selected_ids: Iterable[int] | np.ndarray = (),
    remove: bool = False,
) -> int | None:
    """The id the Nuke gizmo's picker takes at EXR pixel (x, y), or None.

    Adding (``remove`` False): the first rank, in rank order (highest coverage first), whose
    id is not already selected; removing: the first whose id is selected. As in the gizmo, a
    rank with id 0.0 or coverage 0.0 is background and skipped; from the second such rank on,
    the rest of its channel group (its ``.B/.A`` rank) is skipped too.
    """
    px = _pixel_ranks(layer, image, x, y)
    if px is None:
        return None
    ids, cov = px
    if hasattr(selected_ids, "ids"):  # a Selection
        selected_ids = selected_ids.ids  # type: ignore[union-attr]
    chosen = {
        int(i)
        for i in np.asarray(
            list(selected_ids) if isinstance(selected_ids, (set, frozenset)) else selected_ids,
            dtype=np.uint64,
        ).ravel()
    }
    saw_background = False
    r = 0
    n = len(ids)
    while r < n:
        bits = int(ids[r])
        if (bits & 0x7FFFFFFF) == 0 or cov[r] == 0:
            if saw_background:
                r = (r // 2) * 2 + 2  # leave this channel group, as the gizmo's ``break`` does
                continue
            saw_background = True
            r += 1
            continue
        if (bits in chosen) == remove:
            return bits
        r += 1
    return None


# ----------------------------------------------------------------------- previews


@kernel
def _fmix32(h):
    h = h & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    return h


@kernel(parallel=True)
def _preview_kernel(ids, cov, min_cov, out):
    ranks, h, w = ids.shape
    scale = 1.0 / 4294967295.0
    for y in prange(h):
        for x in range(w):
            r_acc = np.float32(0.0)
            g_acc = np.float32(0.0)
            b_acc = np.float32(0.0)
            for r in range(ranks):
                bits = ids[r, y, x]
                c = cov[r, y, x]
                if (bits & np.uint32(0x7FFFFFFF)) == 0 or not c >= min_cov:
                    continue
                m = _fmix32(np.uint64(bits))
                r_acc += c * np.float32(np.float64(m) * scale)
                m = _fmix32(m + np.uint64(0x0101))
                g_acc += c * np.float32(np.float64(m) * scale)
                m = _fmix32(m + np.uint64(0x020000))
                b_acc += c * np.float32(np.float64(m) * scale)
            out[y, x, 0] = r_acc
            out[y, x, 1] = g_acc
            out[y, x, 2] = b_acc


def crypto_preview(ids_ranks, cov_ranks, min_coverage: float = PREVIEW_MIN_COVERAGE) -> np.ndarray:
    """A stable colour per id, blended by coverage: ``(H, W, 3)`` float32.

    OpenImageIO's ``--cryptomatte-colors`` rule: for each rank with id != 0 and coverage
    >= 1e-5 (float32), ``h = fmix32(bits)`` gives red ``h / (2^32 - 1)``, ``h = fmix32(h + 0x0101)``
    green and ``h = fmix32(h + 0x020000)`` blue, each weighted by coverage.
    """
    ids = _as_rank_stack(ids_ranks, np.uint32, "ids_ranks")
    cov = _as_rank_stack(cov_ranks, np.float32, "cov_ranks")
    if ids.shape != cov.shape:
        raise ValueError(f"ids {ids.shape} and coverage {cov.shape} differ in shape")
    out = np.zeros(ids.shape[1:] + (3,), dtype=np.float32)
    if out.size:
        _preview_kernel(ids, cov, np.float32(min_coverage), out)
    return out


def _fmix32_np(h: np.ndarray) -> np.ndarray:
    """murmur3's 32-bit finaliser on a uint64 array holding 32-bit values (vectorised numpy)."""
    mask = np.uint64(0xFFFFFFFF)
    h = h & mask
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & mask
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & mask
    h ^= h >> np.uint64(16)
    return h


def id_colours(ids: np.ndarray) -> np.ndarray:
    """Preview colours of many ids at full coverage: ``(N, 3)`` float32 (id 0 is black).

    The same colours as :func:`crypto_preview` at coverage 1, in plain numpy: the manifest
    panel calls this in the GUI thread, where a numba kernel could compile on a cold cache.
    """
    ids = np.ascontiguousarray(np.asarray(ids, dtype=np.uint32).ravel())
    out = np.zeros((ids.size, 3), dtype=np.float32)
    if not ids.size:
        return out
    scale = 1.0 / 4294967295.0
    m = _fmix32_np(ids.astype(np.uint64))
    out[:, 0] = (m.astype(np.float64) * scale).astype(np.float32)
    m = _fmix32_np(m + np.uint64(0x0101))
    out[:, 1] = (m.astype(np.float64) * scale).astype(np.float32)
    m = _fmix32_np(m + np.uint64(0x020000))
    out[:, 2] = (m.astype(np.float64) * scale).astype(np.float32)
    out[(ids & np.uint32(0x7FFFFFFF)) == 0] = 0.0
    return out


def id_colour(id_bits: int) -> tuple[float, float, float]:
    """The preview colour of one id at full coverage (for a swatch next to a name)."""
    r, g, b = id_colours(np.array([id_bits], dtype=np.uint32))[0]
    return float(r), float(g), float(b)


def crypto_edges(ids_ranks, cov_ranks) -> np.ndarray:
    """Where ids mix: ``1 - coverage`` of the top rank, clipped to [0, 1], wherever the top
    rank holds something (a non-zero id or coverage); 0 elsewhere. ``(H, W)`` float32."""
    ids = _as_rank_stack(ids_ranks, np.uint32, "ids_ranks")
    cov = _as_rank_stack(cov_ranks, np.float32, "cov_ranks")
    if ids.shape != cov.shape:
        raise ValueError(f"ids {ids.shape} and coverage {cov.shape} differ in shape")
    top_id, top_cov = ids[0], cov[0]
    present = ((top_id & np.uint32(0x7FFFFFFF)) != 0) | (top_cov > 0)
    edge = np.clip(np.float32(1.0) - np.nan_to_num(top_cov, nan=0.0), 0.0, 1.0).astype(np.float32)
    return np.where(present, edge, np.float32(0.0)).astype(np.float32)


def matte_overlay(
    rgb: np.ndarray,
    matte: np.ndarray,
    colour: tuple[float, float, float] = (1.0, 0.8, 0.0),
    opacity: float = 0.5,
) -> np.ndarray:
    """``rgb`` (H, W, 3) with ``colour`` laid over where the matte is, by ``opacity * matte``
    (the matte clipped to [0, 1]; NaN counts as 0). Returns a new float32 (H, W, 3) image."""
    rgb = np.asarray(rgb, dtype=np.float32)
    m = np.clip(np.nan_to_num(np.asarray(matte, dtype=np.float32), nan=0.0), 0.0, 1.0)
    if rgb.shape[:2] != m.shape or rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"rgb {rgb.shape} and matte {m.shape} do not match")
    a = (np.float32(opacity) * m)[..., None]
    c = np.asarray(colour, dtype=np.float32)[None, None, :]
    out = rgb[..., :3] * (np.float32(1.0) - a) + c * a
    return out.astype(np.float32)


def id_coverage(ids_ranks, cov_ranks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every id present with non-zero coverage: (sorted uint32 ids, coverage sum as
    float64, number of pixels where it appears). For listings and "which ids are visible"."""
    ids = _as_rank_stack(ids_ranks, np.uint32, "ids_ranks")
    cov = _as_rank_stack(cov_ranks, np.float32, "cov_ranks")
    live = (cov != 0) & ~np.isnan(cov)
    flat_ids = ids[live]
    if flat_ids.size == 0:
        return np.zeros(0, np.uint32), np.zeros(0), np.zeros(0, np.int64)
    uniq, inverse = np.unique(flat_ids, return_inverse=True)
    sums = np.bincount(inverse, weights=cov[live].astype(np.float64), minlength=len(uniq))
    # pixel counts: an id counted once per pixel even if it fills two ranks
    _, h, w = ids.shape
    pix = np.broadcast_to(np.arange(h * w).reshape(h, w), ids.shape)[live]
    pairs = np.unique(inverse.astype(np.int64) * (h * w) + pix)
    counts = np.bincount(pairs // (h * w), minlength=len(uniq))
    return uniq.astype(np.uint32), sums, counts
