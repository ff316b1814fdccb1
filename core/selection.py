"""Cryptomatte selections and Nuke-style matte lists.

A matte list is what the Cryptomatte gizmo for Nuke shows in its ``matteList`` knob, e.g.
``bunny, "name, with, comma", <3.36000126251e-27>, *flower*``. Three levels of text meet here:

* a **raw name**: the manifest name exactly as hashed (``has_*_asterisk``);
* a **token**: one matte-list entry. In a token ``\\`` escapes ``\\ * ? [ ]`` so that a
  name containing wildcard characters is not a pattern (``has_\\*_asterisk``); unescaped
  ``* ? [...]`` are fnmatch-style wildcards, matched case-sensitively against the manifest
  when the selection is keyed; ``<float>`` is an id with no name (the float32 whose bits
  are the id, printed with 12 significant digits like the gizmo);
* the **matte list text**: tokens joined with ``", "``, a token in double quotes when it
  contains a space, comma, quote or backslash, with ``\\"`` for a quote inside quotes.
  Sorted case-insensitively, as the gizmo writes it. This is the text the knob shows.

A :class:`Selection` keeps the tokens (wildcards unexpanded) and resolves them to id bits
(uint32) against a layer's manifest: a name in the manifest gets the manifest's id, any
other name its MurmurHash3 id, a wildcard the ids of the names it matches.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping

import numpy as np

from core.errors import SelectionError
from core.hashing import bits_to_float, crypto_hash, float_to_bits

#: Characters a backslash escapes inside a token.
ESCAPED = "\\*?[]"
#: Unescaped, these make a token a wildcard pattern (as in the gizmo).
WILDCARDS = "*?[]"
_NEEDS_QUOTES = ' ,"\\\t\n\r'


# ----------------------------------------------------------------------- tokens


def _scan(token: str) -> list[tuple[str, bool]]:
    """A token as (character, escaped) pairs: ``\\x`` is an escaped x for x in ESCAPED."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(token)
    while i < n:
        c = token[i]
        if c == "\\" and i + 1 < n and token[i + 1] in ESCAPED:
            out.append((token[i + 1], True))
            i += 2
        else:
            out.append((c, False))
            i += 1
    return out


def escape_name(name: str) -> str:
    """The token that stands for exactly this raw name (wildcard characters escaped)."""
    return "".join("\\" + c if c in ESCAPED else c for c in name)


def unescape_token(token: str) -> str:
    """The raw name a non-wildcard token stands for (escapes removed)."""
    return "".join(c for c, _ in _scan(token))


def has_wildcards(token: str) -> bool:
    """True when the token has an unescaped ``*``, ``?``, ``[`` or ``]``."""
    return any(c in WILDCARDS and not escaped for c, escaped in _scan(token))


def wildcard_regex(token: str) -> re.Pattern[str]:
    """The compiled, case-sensitive full-match regex of a wildcard token (fnmatch rules)."""
    literal = {"*": "[*]", "?": "[?]", "[": "[[]", "]": "[]]"}
    pattern = "".join(literal.get(c, c) if escaped else c for c, escaped in _scan(token))
    return re.compile(fnmatch.translate(pattern), re.DOTALL)


def format_id(id_bits: int) -> str:
    """The ``<float>`` token of an id with no name, formatted like the Nuke gizmo (``%.12g``)."""
    return f"<{bits_to_float(int(id_bits)):.12g}>"


def parse_id_token(token: str) -> int | None:
    """The id bits of a ``<float>`` token, or None when the token is not one.

    Like the gizmo, anything Python's ``float`` accepts between the brackets is a number;
    it is rounded to float32 and its bits are the id.
    """
    raw = unescape_token(token)
    if len(raw) < 3 or raw[0] != "<" or raw[-1] != ">":
        return None
    try:
        value = float(raw[1:-1])
    except ValueError:
        return None
    if math.isfinite(value) and abs(value) > float(np.finfo(np.float32).max):
        # float32 rounding would overflow to inf; keep it rather than warn from numpy
        value = math.copysign(math.inf, value)
    return float_to_bits(value)


# ----------------------------------------------------------------------- matte list text


def parse_matte_list(text: str) -> list[str]:
    """The tokens of a matte list text, in order, empty entries dropped.

    Entries are separated by commas (or newlines); spaces after a separator are skipped;
    an entry may be double-quoted; ``\\"`` is a literal quote; ``\\\\`` (the token's own
    escaped backslash) and any other backslash are kept as written. Raises
    :class:`SelectionError` for an unterminated quote.
    """
    tokens: list[str] = []
    i, n = 0, len(text)

    def take(i: int, field: list[str]) -> int:
        """Append the character(s) at i to field, handling backslashes; return the next index."""
        c = text[i]
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == '"':
                field.append('"')
                return i + 2
            if nxt == "\\":
                field.append("\\\\")
                return i + 2
        field.append(c)
        return i + 1

    while i <= n:
        while i < n and text[i] in " \t":
            i += 1
        field: list[str] = []
        if i < n and text[i] == '"':
            start = i
            i += 1
            closed = False
            while i < n:
                if text[i] == '"':
                    closed = True
                    i += 1
                    break
                i = take(i, field)
            if not closed:
                raise SelectionError(
                    f"matte list has an unterminated quote at character {start + 1}: {text!r}"
                )
        while i < n and text[i] not in ",\n":
            i = take(i, field)
        token = "".join(field)
        if token:
            tokens.append(token)
        i += 1
    return tokens


def _quote(token: str) -> str:
    if not any(c in _NEEDS_QUOTES for c in token):
        return token
    return '"' + token.replace('"', '\\"') + '"'


def sort_tokens(tokens: Iterable[str]) -> list[str]:
    """Tokens in the gizmo's order: case-insensitive, ties broken by the exact text."""
    return sorted(set(tokens), key=lambda t: (t.lower(), t))


def format_matte_list(tokens: Iterable[str], sort: bool = True) -> str:
    """Matte list text of tokens, sorted like the gizmo unless ``sort`` is False."""
    items = sort_tokens(tokens) if sort else [t for t in tokens if t]
    return ", ".join(_quote(t) for t in items)


# ----------------------------------------------------------------------- selection


class Selection:
    """The tokens picked for one layer's matte, resolved to uint32 id bits.

    ``manifest`` maps names to id bits (a layer's manifest, or empty). Tokens are kept as
    given (a set, shown sorted); wildcards stay unexpanded until :meth:`expanded`.
    ``ids`` is recomputed only when the tokens change.
    """

    def __init__(self, tokens: Iterable[str] = (), manifest: Mapping[str, int] | None = None):
        self._manifest: Mapping[str, int] = manifest if manifest is not None else {}
        self._names: list[str] | None = None
        self._by_id: dict[int, str] | None = None
        self._tokens: set[str] = {t for t in tokens if t}
        self._ids: np.ndarray | None = None

    # construction --------------------------------------------------------------------
    @classmethod
    def from_matte_list(cls, text: str, manifest: Mapping[str, int] | None = None) -> Selection:
        """A selection from matte list text (see :func:`parse_matte_list`)."""
        return cls(parse_matte_list(text), manifest)

    @classmethod
    def from_names(cls, names: Iterable[str], manifest: Mapping[str, int] | None = None) -> Selection:
        """A selection of exact raw names (escaped, never wildcards)."""
        return cls((escape_name(n) for n in names), manifest)

    @classmethod
    def from_ids(cls, ids: Iterable[int], manifest: Mapping[str, int] | None = None) -> Selection:
        """A selection of ids, each named from the manifest or written ``<float>``."""
        sel = cls((), manifest)
        for i in ids:
            sel.add_id(int(i))
        return sel

    def with_manifest(self, manifest: Mapping[str, int] | None) -> Selection:
        """The same tokens resolved against another manifest."""
        return Selection(self._tokens, manifest)

    def copy(self) -> Selection:
        return Selection(self._tokens, self._manifest)

    # views ---------------------------------------------------------------------------
    @property
    def manifest(self) -> Mapping[str, int]:
        return self._manifest

    @property
    def tokens(self) -> list[str]:
        """The tokens in matte-list order."""
        return sort_tokens(self._tokens)

    def matte_list(self) -> str:
        """The Nuke matte list text."""
        return format_matte_list(self._tokens)

    def __str__(self) -> str:
        return self.matte_list()

    def __repr__(self) -> str:
        return f"Selection({self.matte_list()!r}, {len(self._manifest)} manifest names)"

    def __len__(self) -> int:
        return len(self._tokens)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def __iter__(self):
        return iter(self.tokens)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        return self._tokens == other._tokens

    def __hash__(self) -> int:
        return hash(frozenset(self._tokens))

    def _manifest_names(self) -> list[str]:
        if self._names is None:
            self._names = list(self._manifest)
        return self._names

    def _name_of(self, id_bits: int) -> str | None:
        if self._by_id is None:
            by_id: dict[int, str] = {}
            for name, value in self._manifest.items():
                by_id.setdefault(int(value), name)
            self._by_id = by_id
        return self._by_id.get(int(id_bits))

    # resolution ----------------------------------------------------------------------
    def matches(self, token: str) -> list[str]:
        """Manifest names a wildcard token matches, in manifest order."""
        rx = wildcard_regex(token)
        return [n for n in self._manifest_names() if rx.fullmatch(n)]

    def token_ids(self, token: str) -> list[int]:
        """The id bits one token selects."""
        number = parse_id_token(token)
        if number is not None:
            return [number]
        if has_wildcards(token):
            return [int(self._manifest[n]) for n in self.matches(token)]
        name = unescape_token(token)
        value = self._manifest.get(name)
        return [int(value) if value is not None else crypto_hash(name)]

    @property
    def ids(self) -> np.ndarray:
        """Selected id bits: sorted, unique uint32 (ready for :func:`core.cryptomatte.crypto_matte`)."""
        if self._ids is None:
            found: set[int] = set()
            for token in self._tokens:
                found.update(self.token_ids(token))
            self._ids = np.array(sorted(found), dtype=np.uint32)
            self._ids.setflags(write=False)
        return self._ids

    def __contains__(self, id_bits: object) -> bool:
        ids = self.ids
        i = int(np.searchsorted(ids, np.uint32(int(id_bits))))  # type: ignore[arg-type]
        return i < len(ids) and int(ids[i]) == int(id_bits)  # type: ignore[arg-type]

    def unmatched(self) -> list[str]:
        """Tokens that select nothing the manifest knows: empty wildcards and unknown names.

        Unknown names still key by their hash; ``<float>`` ids are never reported.
        """
        out = []
        for token in self.tokens:
            if parse_id_token(token) is not None:
                continue
            if has_wildcards(token):
                if not self.matches(token):
                    out.append(token)
            elif unescape_token(token) not in self._manifest:
                out.append(token)
        return out

    def expanded(self) -> Selection:
        """The same selection with each wildcard replaced by the names it matches."""
        out: set[str] = set()
        for token in self._tokens:
            if parse_id_token(token) is None and has_wildcards(token):
                out.update(escape_name(n) for n in self.matches(token))
            else:
                out.add(token)
        return Selection(out, self._manifest)

    # editing (what the picker does) --------------------------------------------------
    def _changed(self) -> None:
        self._ids = None

    def add_token(self, token: str) -> None:
        """Add one token as written (a name with escapes, a wildcard or ``<float>``)."""
        if token and token not in self._tokens:
            self._tokens.add(token)
            self._changed()

    def add_name(self, name: str) -> None:
        """Add one exact raw name."""
        self.add_token(escape_name(name))

    def add_id(self, id_bits: int) -> bool:
        """Add an id as the gizmo's picker does: by name when the manifest has one, else
        ``<float>``. Does nothing (returns False) when the id is already selected."""
        id_bits = int(id_bits)
        if id_bits in self:
            return False
        name = self._name_of(id_bits)
        self.add_token(escape_name(name) if name is not None else format_id(id_bits))
        return True

    def remove_token(self, token: str) -> bool:
        if token in self._tokens:
            self._tokens.discard(token)
            self._changed()
            return True
        return False

    def remove_id(self, id_bits: int) -> bool:
        """Deselect an id whichever way it was selected: by name, by ``<float>`` or by a
        wildcard (which is then replaced by the other names it matches, as the gizmo has
        them once its wildcards are expanded). Returns True when something changed."""
        id_bits = int(id_bits)
        changed = False
        for token in list(self._tokens):
            ids = self.token_ids(token)
            if id_bits not in ids:
                continue
            self._tokens.discard(token)
            changed = True
            if parse_id_token(token) is None and has_wildcards(token):
                for name in self.matches(token):
                    if int(self._manifest[name]) != id_bits:
                        self._tokens.add(escape_name(name))
        if changed:
            self._changed()
        return changed

    def toggle_id(self, id_bits: int) -> bool:
        """Add the id when it is not selected, else remove it. Returns True when now selected."""
        if int(id_bits) in self:
            self.remove_id(id_bits)
            return False
        self.add_id(id_bits)
        return True

    def clear(self) -> None:
        if self._tokens:
            self._tokens.clear()
            self._changed()
