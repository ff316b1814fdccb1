"""OpenEXR Deep IDs: id channels, selection by name, deep masks, deep selections, id coverage.

**Id channels.** A 32-bit id is one UINT channel (``id``, ``objectid``, ``materialid``,
``particleid``, ``instanceid``, ``modelid``, or any channel a manifest group names); a 64-bit
id is a pair of UINT channels (``x.id0``/``x.id1``, or a group with encoding ``id2``) whose
alphabetically first channel holds the low 32 bits. :func:`id_channels` finds them.

**Query language** (:func:`parse_query`), a superset of OpenEXR's ``deepidselect``. A query is
a list of groups; a sample is selected when it matches **every** group (``--and``), and it
matches a group when it matches **any** of the group's positive terms and none of its negative
terms (a group with only negative terms starts from every sample). A term is one of:

* ``text``: substring of any component of any manifest entry (``blob`` matches ``blob/small``);
* ``component:text``: substring of the named component only (``material:blue``);
* ``channel:number``: that decimal id in the named UINT channel (``particleid:3``), or, an
  extension, in the named 64-bit pair (``model:17511330964567540308`` for ``model.id0/.id1``);
  a number with no known channel before it matches nothing, as in ``deepidselect``;
* extensions: ``*`` and ``?`` make ``text`` a wildcard pattern that must match the **whole**
  component (``blob*``, ``*/big``); ``=text`` (or ``component:=text``) matches the whole
  component exactly, with no wildcards (``=blob/big``); a leading ``-`` or ``not:`` negates a
  term (``not:material:blue``, ``-blob``).

Matching is case-sensitive, as in ``deepidselect``.

**Masks.** :func:`deep_mask` is the shallow mask of the Deep IDs spec, exactly as
``deepidselect --mask`` computes it: per pixel, samples in stored (depth) order,
``mask += (1 - acc) * a`` for selected samples and ``acc += (1 - acc) * a`` for all, then
``mask /= acc`` where ``acc > 0``; both accumulators are float32 and each update is computed
in double, as in the C++ (``1.0`` is a double literal there), so the result is bit for bit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core._numba import kernel, prange
from core.errors import SelectionError
from core.idmanifest import ID2_SCHEME, IdManifest
from core.model import DeepImage, FlatImage, PartHeader, PixelType

KNOWN_ID_CHANNELS = ("id", "objectid", "materialid", "particleid", "instanceid", "modelid")
"""Base names (after the last ``.``, any case) of UINT channels taken as 32-bit ids."""

_PAIR_RE = re.compile(r"^(?:(.*)\.)?id([01])$")


# --------------------------------------------------------------------------- id channels


@dataclass(frozen=True)
class IdChannel:
    """Where one kind of id lives: a 32-bit channel (``high is None``) or a 64-bit pair.

    ``name`` is the short name used in queries and the UI (the channel itself, or the pair's
    base, ``model`` for ``model.id0``/``model.id1``); ``group_index`` is the manifest group
    that names these ids, if any.
    """

    name: str
    low: str
    high: str | None = None
    group_index: int | None = None

    @property
    def bits(self) -> int:
        return 32 if self.high is None else 64

    @property
    def channel_names(self) -> tuple[str, ...]:
        return (self.low,) if self.high is None else (self.low, self.high)

    def values(self, channels: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ids as uint64 (``low | high << 32``), same shape as the channels."""
        low = np.asarray(channels[self.low])
        if self.high is None:
            return low.astype(np.uint64)
        high = np.asarray(channels[self.high])
        return low.astype(np.uint64) | (high.astype(np.uint64) << np.uint64(32))


def _uint_channels(source) -> tuple[list[str], set[str]]:
    """All channel names of ``source`` (sorted as in the file) and those holding UINT data."""
    if isinstance(source, (DeepImage, FlatImage)):
        names = list(source.channels)
        uints = {n for n, a in source.channels.items() if a.dtype == np.uint32}
    elif isinstance(source, PartHeader):
        names = [c.name for c in source.channels]
        uints = {c.name for c in source.channels if c.pixel_type == PixelType.UINT}
    else:
        names = [str(n) for n in source]
        uints = set(names)
    return sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape")), uints


def _pair_name(low: str, high: str) -> str:
    m0, m1 = _PAIR_RE.match(low), _PAIR_RE.match(high)
    if m0 and m1 and m0.group(1) == m1.group(1) and m0.group(2) == "0" and m1.group(2) == "1":
        return m0.group(1) or "id"
    if len(low) == len(high) and low[:-1] == high[:-1] and low[:-1]:
        return low[:-1].rstrip(".") or low[:-1]
    return f"{low}+{high}"


def id_channels(source: DeepImage | FlatImage | PartHeader | Iterable[str],
                manifest: IdManifest | None = None) -> list[IdChannel]:
    """The ids an image holds, manifest groups first (in manifest order), then by naming convention.

    ``source`` is an image, a header or plain channel names (then all are taken as UINT).
    Only UINT channels hold ids. For an ``id2`` group, its channels are paired in sorted
    order (the first of each pair holds the low word), like ``deepidselect``; a pair with a
    channel missing from the image is left out. Channels no group names are ids when their
    base name is in :data:`KNOWN_ID_CHANNELS`, and ``x.id0``/``x.id1`` UINT pairs are 64-bit ids.
    """
    names, uints = _uint_channels(source)
    present = set(names)
    found: list[IdChannel] = []
    used: set[str] = set()
    if manifest is not None:
        for gi, group in enumerate(manifest.groups):
            chans = group.sorted_channels
            if group.encoding_scheme == ID2_SCHEME:
                for low, high in zip(chans[0::2], chans[1::2], strict=False):
                    if low in uints and high in uints and low not in used and high not in used:
                        found.append(IdChannel(_pair_name(low, high), low, high, gi))
                        used.update((low, high))
            else:
                for ch in chans:
                    if ch in uints and ch not in used:
                        found.append(IdChannel(ch, ch, None, gi))
                        used.add(ch)
    extra: list[IdChannel] = []
    for name in names:
        if name in used or name not in uints:
            continue
        m = _PAIR_RE.match(name)
        if m and m.group(2) == "0":
            high = (m.group(1) + "." if m.group(1) else "") + "id1"
            if high in uints and high not in used and high in present:
                extra.append(IdChannel(_pair_name(name, high), name, high, None))
                used.update((name, high))
                continue
        if name.rsplit(".", 1)[-1].lower() in KNOWN_ID_CHANNELS:
            extra.append(IdChannel(name, name, None, None))
            used.add(name)
    return found + sorted(extra, key=lambda c: c.low)


def find_id_channel(channels: Sequence[IdChannel], name: str) -> IdChannel | None:
    """The id channel called ``name`` (its short name, or one of its channels)."""
    for ch in channels:
        if ch.name == name:
            return ch
    for ch in channels:
        if name in ch.channel_names:
            return ch
    return None


# --------------------------------------------------------------------------- query


@dataclass(frozen=True)
class Term:
    """One parsed query term. ``kind`` is ``substring``, ``glob``, ``exact`` or ``number``."""

    text: str
    kind: str
    pattern: str
    component: str | None = None
    negated: bool = False

    def matches(self, value: str) -> bool:
        if self.kind == "substring":
            return self.pattern in value
        if self.kind == "exact":
            return value == self.pattern
        if self.kind == "glob":
            return _glob_regex(self.pattern).fullmatch(value) is not None
        return False


@dataclass(frozen=True)
class Query:
    """Groups of terms: a sample must match every group (see the module docstring)."""

    groups: tuple[tuple[Term, ...], ...]

    def __str__(self) -> str:
        return " --and ".join(" ".join(t.text for t in g) for g in self.groups)


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern:
    """The compiled expression of a pattern where only ``*`` and ``?`` are special (cached by pattern)."""
    text = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(text, re.DOTALL)


def parse_term(text: str) -> Term:
    """Parse one query term (see the module docstring for the syntax)."""
    original = text
    negated = False
    if text.startswith("not:"):
        negated, text = True, text[4:]
    elif text.startswith("-") and len(text) > 1:
        negated, text = True, text[1:]
    if not text:
        raise SelectionError(f"empty query term {original!r}")
    component = None
    pos = text.find(":")
    if pos >= 0:
        component, text = text[:pos], text[pos + 1:]
    if text.startswith("="):
        return Term(original, "exact", text[1:], component, negated)
    if text == "" or text.isdigit() and text.isascii():
        return Term(original, "number", text, component, negated)
    if "*" in text or "?" in text:
        return Term(original, "glob", text, component, negated)
    return Term(original, "substring", text, component, negated)


def parse_query(groups: Sequence[Sequence[str]]) -> Query:
    """Parse ``[[term, ...], ...]`` (one list per ``--and`` group) into a :class:`Query`."""
    if not groups:
        raise SelectionError("empty query: give at least one term")
    parsed = []
    for i, group in enumerate(groups):
        if not group:
            raise SelectionError(f"query group {i + 1} has no terms")
        parsed.append(tuple(parse_term(str(t)) for t in group))
    return Query(tuple(parsed))


def split_and(args: Sequence[str], separator: str = "--and") -> list[list[str]]:
    """Split a flat ``deepidselect``-style argument list on ``--and`` into groups."""
    groups: list[list[str]] = [[]]
    for a in args:
        if a == separator:
            groups.append([])
        else:
            groups[-1].append(a)
    return groups


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Match:
    """One id a term matched: the same facts as ``deepidselect``'s "adding match" lines.

    ``text`` is the matched component string and ``entry`` the whole manifest entry (both
    ``None`` for a numeric term); ``group_index`` is the manifest group (``None`` if numeric).
    """

    term: str
    negated: bool
    id: int
    channel: IdChannel
    text: str | None = None
    entry: tuple[str, ...] | None = None
    group_index: int | None = None


@dataclass
class SelectionGroup:
    """One ``--and`` group resolved to ids: sorted unique uint64 arrays per id channel."""

    include: dict[IdChannel, np.ndarray] = field(default_factory=dict)
    exclude: dict[IdChannel, np.ndarray] = field(default_factory=dict)
    has_positive: bool = True


@dataclass
class IdSelection:
    """A query resolved against a manifest and an image's channels."""

    query: Query
    groups: list[SelectionGroup]
    matches: list[Match]
    channel_names: tuple[str, ...]

    def channel_position(self, name: str) -> int:
        """Index of a channel in the file's (sorted) channel list, as deepidselect prints it."""
        return self.channel_names.index(name)

    def log_lines(self) -> list[str]:
        """``deepidselect``'s stderr lines: one per positive name match, in its order."""
        out = []
        for m in self.matches:
            if m.text is None or m.negated:
                continue
            ch = m.channel
            if ch.high is None:
                out.append(f"adding match {m.id:x} for string {m.text} in channel "
                           f"{self.channel_position(ch.low)}({ch.low})")
            else:
                # deepidselect leaves its stream in hex here, so these channel numbers print in hex
                out.append(f"adding match {m.id:x} for string {m.text}: {m.id & 0xFFFFFFFF:x} in channel "
                           f"{self.channel_position(ch.low):x}({ch.low}), {m.id >> 32:x} in channel "
                           f"{self.channel_position(ch.high):x}({ch.high})")
        return out

    def selected_ids(self) -> dict[IdChannel, np.ndarray]:
        """Every id a positive term picked, per id channel (for highlighting in a manifest list)."""
        merged: dict[IdChannel, list[np.ndarray]] = {}
        for g in self.groups:
            for ch, ids in g.include.items():
                merged.setdefault(ch, []).append(ids)
        return {ch: np.unique(np.concatenate(v)) for ch, v in merged.items()}

    @property
    def id_channels(self) -> list[IdChannel]:
        seen: dict[IdChannel, None] = {}
        for g in self.groups:
            for ch in (*g.include, *g.exclude):
                seen.setdefault(ch, None)
        return list(seen)


def resolve(query: Query, manifest: IdManifest | None,
            channels: DeepImage | FlatImage | PartHeader | Iterable[str]) -> IdSelection:
    """Turn a query into id sets per ``--and`` group, with ``deepidselect``'s matching rules.

    Name terms are looked up in every manifest group (entries in id order, components in
    order); a match adds the entry's id to each of the group's id channels present in the
    image. Numeric terms name a channel or 64-bit pair directly.
    """
    names, uints = _uint_channels(channels)
    ids_here = id_channels(channels, manifest)
    groups: list[SelectionGroup] = []
    matches: list[Match] = []
    for terms in query.groups:
        include: dict[IdChannel, list[int]] = {}
        exclude: dict[IdChannel, list[int]] = {}
        for term in terms:
            found = _resolve_term(term, manifest, ids_here, uints)
            matches.extend(found)
            target = exclude if term.negated else include
            for m in found:
                target.setdefault(m.channel, []).append(m.id)
        groups.append(SelectionGroup(
            include={ch: np.unique(np.array(v, dtype=np.uint64)) for ch, v in include.items()},
            exclude={ch: np.unique(np.array(v, dtype=np.uint64)) for ch, v in exclude.items()},
            has_positive=any(not t.negated for t in terms),
        ))
    return IdSelection(query, groups, matches, tuple(names))


def _resolve_term(term: Term, manifest: IdManifest | None, ids_here: list[IdChannel],
                  uints: set[str]) -> list[Match]:
    if term.kind == "number":
        if not term.component or not term.pattern:
            return []
        value = int(term.pattern)
        if term.component in uints:
            channel = next((c for c in ids_here if c.high is None and c.low == term.component),
                           IdChannel(term.component, term.component))
            bits = 32
        else:
            channel = next((c for c in ids_here if c.high is not None and c.name == term.component), None)
            if channel is None:
                return []
            bits = 64
        if value >= 1 << bits:
            return []
        return [Match(term.text, term.negated, value, channel)]
    if manifest is None:
        return []
    found = []
    for gi, group in enumerate(manifest.groups):
        targets = [c for c in ids_here if c.group_index == gi]
        if not targets:
            continue
        comps = group.components
        for value, entry in sorted(group.entries.items()):
            for k, text in enumerate(entry):
                if term.component and (k >= len(comps) or comps[k] != term.component):
                    continue
                if term.matches(text):
                    for ch in targets:
                        found.append(Match(term.text, term.negated, value, ch, text, entry, gi))
    return found


# --------------------------------------------------------------------------- kernels


_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)


@kernel
def _build_id_table_kernel(ids, table, used, shift):
    mask = table.shape[0] - 1
    for i in range(ids.shape[0]):
        v = ids[i]
        h = np.int64((v * _HASH_MUL) >> np.uint64(shift))
        while used[h] and table[h] != v:
            h = (h + 1) & mask
        table[h] = v
        used[h] = True


@kernel(parallel=True)
def _member_kernel(low, high, use_high, table, used, shift, out, mode):
    """Look each sample's id up in an open-addressing table (Fibonacci hashing, linear probing).

    ``mode`` 0: out = found; 1: out |= found; 2: out &= not found.
    """
    mask = table.shape[0] - 1
    for i in prange(low.shape[0]):
        v = np.uint64(low[i])
        if use_high:
            v = v | (np.uint64(high[i]) << np.uint64(32))
        h = np.int64((v * _HASH_MUL) >> np.uint64(shift))
        found = False
        while used[h]:
            if table[h] == v:
                found = True
                break
            h = (h + 1) & mask
        if mode == 0:
            out[i] = found
        elif mode == 1:
            if found:
                out[i] = True
        elif found:
            out[i] = False


def _id_table(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A hash set of ``ids`` at most 1/4 full: (keys, used flags, hash shift)."""
    bits = 6
    while (1 << bits) < 4 * ids.shape[0]:
        bits += 1
    table = np.zeros(1 << bits, dtype=np.uint64)
    used = np.zeros(1 << bits, dtype=np.bool_)
    _build_id_table_kernel(np.ascontiguousarray(ids, dtype=np.uint64), table, used, 64 - bits)
    return table, used, 64 - bits


def _member(channels: Mapping[str, np.ndarray], ch: IdChannel, ids: np.ndarray, out: np.ndarray,
            mode: int) -> None:
    if ids.size == 0:
        if mode == 0:
            out[:] = False
        return
    low = np.ascontiguousarray(channels[ch.low]).reshape(-1)
    high = np.ascontiguousarray(channels[ch.high]).reshape(-1) if ch.high is not None else low
    if low.dtype != np.uint32 or high.dtype != np.uint32:
        raise SelectionError(f"id channel {ch.name!r} is not UINT")
    table, used, shift = _id_table(ids)
    _member_kernel(low, high, ch.high is not None, table, used, shift, out, mode)


def select_samples(image: DeepImage | FlatImage, selection: IdSelection) -> np.ndarray:
    """Which samples (deep: 1-D per sample) or pixels (flat: ``(height, width)``) the selection picks."""
    channels = image.channels
    for ch in selection.id_channels:
        for name in ch.channel_names:
            if name not in channels:
                raise SelectionError(f"the image has no id channel {name!r}")
    if isinstance(image, DeepImage):
        shape: tuple[int, ...] = (image.total_samples,)
    else:
        shape = (image.height, image.width)
    n = int(np.prod(shape))
    selected = None
    for group in selection.groups:
        group_ok = np.empty(n, dtype=np.bool_)
        if group.has_positive:
            mode = 0
            for ch, ids in group.include.items():
                _member(channels, ch, ids, group_ok, mode)
                mode = 1
            if mode == 0:
                group_ok[:] = False
        else:
            group_ok[:] = True
        for ch, ids in group.exclude.items():
            _member(channels, ch, ids, group_ok, 2)
        if selected is None:
            selected = group_ok
        else:
            selected &= group_ok
    if selected is None:
        selected = np.ones(n, dtype=np.bool_)
    return selected.reshape(shape)


@kernel(parallel=True)
def _deep_mask_kernel(offsets, alpha, selected, out):
    npix = offsets.shape[0] - 1
    for p in prange(npix):
        acc = np.float32(0.0)
        mask = np.float32(0.0)
        for s in range(offsets[p], offsets[p + 1]):
            w = (1.0 - np.float64(acc)) * np.float64(alpha[s])
            if selected[s]:
                mask = np.float32(np.float64(mask) + w)
            acc = np.float32(np.float64(acc) + w)
        if acc > np.float32(0.0):
            mask = np.float32(mask / acc)
        out[p] = mask


def _alpha(image: DeepImage, name: str = "A") -> np.ndarray:
    if name not in image.channels:
        raise SelectionError(f"the deep image has no {name!r} channel")
    return np.ascontiguousarray(image.channels[name], dtype=np.float32)


def _check_selected(image: DeepImage, selected: np.ndarray) -> np.ndarray:
    selected = np.ascontiguousarray(selected, dtype=np.bool_).reshape(-1)
    if selected.shape[0] != image.total_samples:
        raise SelectionError(f"selection has {selected.shape[0]} samples, the image {image.total_samples}")
    return selected


def deep_mask(image: DeepImage, selected: np.ndarray) -> np.ndarray:
    """The Deep IDs shallow mask of the selected samples, float32 ``(height, width)``.

    Visible selected alpha over total alpha, exactly as ``deepidselect --mask`` (samples in
    stored order: the image must be depth sorted, which the reader guarantees).
    """
    selected = _check_selected(image, selected)
    out = np.zeros(image.width * image.height, dtype=np.float32)
    if out.size:
        _deep_mask_kernel(image.offsets, _alpha(image), selected, out)
    return out.reshape(image.height, image.width)


def deep_select(image: DeepImage, selected: np.ndarray) -> DeepImage:
    """A new deep image holding only the selected samples (order kept, offsets rebuilt)."""
    selected = _check_selected(image, selected)
    kept = np.zeros(selected.shape[0] + 1, dtype=np.int64)
    np.cumsum(selected, out=kept[1:])
    offsets = kept[image.offsets]
    channels = {name: arr[selected] for name, arr in image.channels.items()}
    return DeepImage(image.data_window, image.display_window, offsets, channels, dict(image.pixel_types))


# --------------------------------------------------------------------------- coverage


@kernel(parallel=True)
def _visible_weight_kernel(offsets, alpha, out):
    npix = offsets.shape[0] - 1
    for p in prange(npix):
        acc = np.float32(0.0)
        for s in range(offsets[p], offsets[p + 1]):
            w = (1.0 - np.float64(acc)) * abs(np.float64(alpha[s]))
            out[s] = np.float32(w)
            acc = np.float32(np.float64(acc) + w)


def visible_weights(image: DeepImage, alpha: str = "A") -> np.ndarray:
    """Per sample, how much of it shows in the flattened pixel: ``|a| * (1 - acc)`` (float32).

    Samples in stored (depth) order; ``|a|`` as in :func:`core.kernels.flatten`, so a pixel's
    weights sum to its flattened alpha.
    """
    out = np.zeros(image.total_samples, dtype=np.float32)
    if out.size:
        _visible_weight_kernel(image.offsets, _alpha(image, alpha), out)
    return out


_RANK_CHUNK = 1024  # pixels per parallel work item (each item has its own scratch arrays)
_SMALL_SORT = 32  # pixels with at most this many weighted samples are sorted by insertion


@kernel(parallel=True)
def _rank_kernel(offsets, ids, weights, max_count, out_ids, out_w):
    npix = offsets.shape[0] - 1
    n_ranks = out_ids.shape[1]
    n_chunks = (npix + _RANK_CHUNK - 1) // _RANK_CHUNK
    for c in prange(n_chunks):
        sid = np.empty(max_count, dtype=np.uint64)
        sw = np.empty(max_count, dtype=np.float64)
        for p in range(c * _RANK_CHUNK, min(npix, (c + 1) * _RANK_CHUNK)):
            # gather the samples that show (skip zero and NaN weights)
            m = 0
            for s in range(offsets[p], offsets[p + 1]):
                w = np.float64(weights[s])
                if w != 0.0 and w == w:
                    sid[m] = ids[s]
                    sw[m] = w
                    m += 1
            if m == 0:
                continue
            # stable sort by id, so each id's weights are summed in stored order
            if m <= _SMALL_SORT:
                for j in range(1, m):
                    kid = sid[j]
                    kw = sw[j]
                    i = j - 1
                    while i >= 0 and sid[i] > kid:
                        sid[i + 1] = sid[i]
                        sw[i + 1] = sw[i]
                        i -= 1
                    sid[i + 1] = kid
                    sw[i + 1] = kw
            else:
                order = np.argsort(sid[:m], kind="mergesort")
                sid[:m] = sid[:m][order]
                sw[:m] = sw[:m][order]
            nu = 0
            for j in range(m):
                if nu > 0 and sid[nu - 1] == sid[j]:
                    sw[nu - 1] += sw[j]
                else:
                    sid[nu] = sid[j]
                    sw[nu] = sw[j]
                    nu += 1
            # top n_ranks by weight; ties go to the smaller id (first in id order)
            for r in range(min(n_ranks, nu)):
                best = -1
                for j in range(nu):
                    if sw[j] == sw[j] and (best < 0 or sw[j] > sw[best]):
                        best = j
                if best < 0:
                    break
                out_ids[p, r] = sid[best]
                out_w[p, r] = np.float32(sw[best])
                sw[best] = np.nan


@kernel
def _table_add_kernel(ids, weights, skip_empty, start, keys, used, sums, count, shift):
    """Add ``weights[i]`` to the entry of ``ids[i]`` from ``i = start`` on (open addressing).

    With ``skip_empty`` zero and NaN weights are ignored. Stops before the table would pass
    half load; returns (next index, number of keys).
    """
    cap = keys.shape[0]
    mask = cap - 1
    for i in range(start, ids.shape[0]):
        w = np.float64(weights[i])
        if skip_empty and not (w != 0.0 and w == w):
            continue
        v = ids[i]
        h = np.int64((v * _HASH_MUL) >> np.uint64(shift))
        while used[h] and keys[h] != v:
            h = (h + 1) & mask
        if not used[h]:
            if 2 * (count + 1) > cap:
                return i, count
            used[h] = True
            keys[h] = v
            count += 1
        sums[h] += w
    return ids.shape[0], count


def _totals(ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the weights of each id in a hash table that doubles when half full (ids unsorted)."""
    bits = 10
    keys = np.zeros(1 << bits, dtype=np.uint64)
    used = np.zeros(1 << bits, dtype=np.bool_)
    sums = np.zeros(1 << bits, dtype=np.float64)
    start, count = _table_add_kernel(ids, weights, True, 0, keys, used, sums, 0, 64 - bits)
    while start < ids.shape[0]:
        old_keys, old_sums = keys[used], sums[used]
        bits += 1
        keys = np.zeros(1 << bits, dtype=np.uint64)
        used = np.zeros(1 << bits, dtype=np.bool_)
        sums = np.zeros(1 << bits, dtype=np.float64)
        _, count = _table_add_kernel(old_keys, old_sums, False, 0, keys, used, sums, 0, 64 - bits)
        start, count = _table_add_kernel(ids, weights, True, start, keys, used, sums, count, 64 - bits)
    return keys[used], sums[used]


@dataclass
class IdCoverage:
    """Visible coverage of every id: per pixel the top ``ranks`` ids, and image totals.

    ``rank_ids`` (uint64) and ``rank_weights`` (float32) are ``(height, width, ranks)``, by
    descending weight (ties: smaller id first); unused ranks have id 0 and weight 0.
    ``ids``/``totals`` list every id with a nonzero visible weight and its summed weight
    over the image (float64), by id.
    """

    rank_ids: np.ndarray
    rank_weights: np.ndarray
    ids: np.ndarray
    totals: np.ndarray


def rank_ids(offsets: np.ndarray, ids: np.ndarray, weights: np.ndarray, ranks: int,
             shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the ``ranks`` ids with the largest summed weight (see :class:`IdCoverage`)."""
    if ranks < 1:
        raise SelectionError(f"ranks must be at least 1, got {ranks}")
    h, w = shape
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    ids = np.ascontiguousarray(ids, dtype=np.uint64)
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    if offsets.shape != (h * w + 1,) or ids.shape != weights.shape or ids.shape[0] != offsets[-1]:
        raise SelectionError("offsets, ids and weights do not describe the same samples")
    out_ids = np.zeros((h * w, ranks), dtype=np.uint64)
    out_w = np.zeros((h * w, ranks), dtype=np.float32)
    if h * w:
        max_count = int(np.diff(offsets).max())
        _rank_kernel(offsets, ids, weights, max_count, out_ids, out_w)
    return out_ids.reshape(h, w, ranks), out_w.reshape(h, w, ranks)


def id_totals(ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every id with nonzero (non-NaN) weight and its summed weight (float64), by id."""
    ids = np.ascontiguousarray(ids, dtype=np.uint64).reshape(-1)
    weights = np.ascontiguousarray(weights).reshape(-1)
    if weights.dtype not in (np.float32, np.float64):
        weights = weights.astype(np.float64)
    if ids.shape != weights.shape:
        raise SelectionError(f"{ids.shape[0]} ids but {weights.shape[0]} weights")
    keys, sums = _totals(ids, weights)
    order = np.argsort(keys)
    return keys[order], sums[order]


def id_coverage(image: DeepImage, channel: IdChannel, ranks: int = 6,
                weights: np.ndarray | None = None) -> IdCoverage:
    """The visible coverage of every id of ``channel`` (weights from :func:`visible_weights`)."""
    for name in channel.channel_names:
        if name not in image.channels:
            raise SelectionError(f"the image has no id channel {name!r}")
    w = visible_weights(image) if weights is None else weights
    values = channel.values(image.channels)
    r_ids, r_w = rank_ids(image.offsets, values, w, ranks, (image.height, image.width))
    unique, totals = id_totals(values, w)
    return IdCoverage(r_ids, r_w, unique, totals)
