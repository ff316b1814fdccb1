"""Matte lists and selections: the Nuke Cryptomatte gizmo's text format and picker rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import SelectionError
from core.hashing import crypto_hash, float_to_bits
from core.selection import (
    Selection,
    escape_name,
    format_id,
    format_matte_list,
    has_wildcards,
    parse_id_token,
    parse_matte_list,
    unescape_token,
)

# the manifests named in the testdata README (Psyop cornellBox frame 1, and the bunny asset manifest)
CORNELL = {
    n: crypto_hash(n)
    for n in (
        "rect_[_top",
        "has_*_asterisk",
        "rect_][_bot",
        "Rect_[]_right",
        "has_n_asterisk",
        "Rect_]_left",
        "sphere_?_2",
    )
}
BUNNY_ASSET = {
    n: crypto_hash(n) for n in ("bunny", "default", "flowerA", "flowerB", "heroflower", "plant", "set")
}
BUNNY, SET, HEROFLOWER = (crypto_hash(n) for n in ("bunny", "set", "heroflower"))


def names_of(sel: Selection) -> list[str]:
    return [unescape_token(t) for t in sel.expanded().tokens]


# ----------------------------------------------------------------------- escapes


@pytest.mark.parametrize(
    ("raw", "token"),
    [
        ("simple123", "simple123"),
        (r"1_back\slash", r"1_back\\slash"),
        (r"2_back\slash_brack[ets]", r"2_back\\slash_brack\[ets\]"),
        (r"3_literal\brack\[ets\]", r"3_literal\\brack\\\[ets\\\]"),
        ("has_*_asterisk", r"has_\*_asterisk"),
        ("sphere_?_2", r"sphere_\?_2"),
    ],
)
def test_escape_name_and_back(raw, token):
    assert escape_name(raw) == token
    assert unescape_token(token) == raw
    assert not has_wildcards(token)


@pytest.mark.parametrize(
    ("token", "wild"),
    [
        ("test_str", False),
        (r"test_\*", False),
        (r"test_\?", False),
        (r"\[\]", False),
        (r"\[", False),
        ("test_str*", True),
        ("test_str?", True),
        ("test_[*]", True),
        ("*", True),
        ("?", True),
        ("[]", True),
        (r"a\\*", True),  # an escaped backslash, then a real wildcard
    ],
)
def test_has_wildcards(token, wild):
    assert has_wildcards(token) is wild


# ----------------------------------------------------------------------- matte list text


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        # what the gizmo's matteList knob shows for one name (its getValue form)
        ("simple123", "simple123"),
        ('has"quote"', r'"has\"quote\""'),
        ("has\\escape", r'"has\\escape"'),
        ("\\brack*[et]", r'"\\brack\*\[et\]"'),
        (" has space?", r'" has space\?"'),
        ('name containing a "quote"  ', r'"name containing a \"quote\"  "'),
        ("name, with, comma", '"name, with, comma"'),
        ("name_containing/slash", "name_containing/slash"),
        ("равнина", "равнина"),
        ("Rect_[]_right", r'"Rect_\[\]_right"'),
    ],
)
def test_single_name_text(raw, text):
    assert format_matte_list([escape_name(raw)]) == text
    assert [unescape_token(t) for t in parse_matte_list(text)] == [raw]


@pytest.mark.parametrize(
    ("text", "token"),
    [
        (r"*ster\*sk", r"*ster\*sk"),
        (r"\?uestion?", r"\?uestion?"),
        ("brack[e]t", "brack[e]t"),
        (r"quote\"mark\"", 'quote"mark"'),
        ('"space in word"', "space in word"),
    ],
)
def test_parse_entries(text, token):
    assert parse_matte_list(text) == [token]


def test_parse_separators_and_empties():
    entries = [r"*ster\*sk", r"\?uestion?", "brack[e]t", r"quote\"mark\"", '"space in word"']
    expected = [r"*ster\*sk", r"\?uestion?", "brack[e]t", 'quote"mark"', "space in word"]
    for sep in (",", ", ", ",  ", "\n"):
        assert parse_matte_list(sep.join(entries)) == expected
    assert parse_matte_list("") == []
    assert parse_matte_list(" , a,,b ,") == ["a", "b "]  # trailing spaces belong to the name, as in CSV


def test_unterminated_quote_is_an_error():
    with pytest.raises(SelectionError, match="unterminated"):
        parse_matte_list('bunny, "open')


def test_format_sorts_case_insensitively_and_dedupes():
    assert (
        format_matte_list(["set", "Bunny", "<7.36562399642e+18>", "heroflower", "set"])
        == "<7.36562399642e+18>, Bunny, heroflower, set"
    )
    assert format_matte_list(["b", "a"], sort=False) == "b, a"


printable = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(printable, min_size=0, max_size=6))
def test_round_trip_any_names(names):
    tokens = [escape_name(n) for n in names]
    text = format_matte_list(tokens)
    parsed = parse_matte_list(text)
    assert sorted(parsed) == sorted(set(tokens))
    assert sorted(unescape_token(t) for t in parsed) == sorted(set(names))


# ----------------------------------------------------------------------- ids


def test_numeric_tokens_match_the_gizmo():
    assert format_id(BUNNY) == "<3.36000126251e-27>"
    assert format_id(SET) == "<7.36562399642e+18>"
    assert parse_id_token("<3.36000126251e-27>") == BUNNY == 0x13851A76
    assert parse_id_token("<7.36562399642e+18>") == SET == 0x5ECC6FE8
    assert parse_id_token("<1.5>") == float_to_bits(1.5)
    assert parse_id_token("<1e99>") == 0x7F800000  # rounds to float32 inf, no warning
    for not_numeric in ("bunny", "<bunny>", "<>", "3.3e-27", r"\<1\>"):
        assert parse_id_token(not_numeric) is None


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFFFFFF))
def test_numeric_token_round_trips_every_non_nan_id(bits):
    exponent = (bits >> 23) & 0xFF
    if exponent == 255 and bits & 0x7FFFFF:
        return  # NaN payloads do not survive %.12g (nor do they in the gizmo)
    assert parse_id_token(format_id(bits)) == bits


def test_selection_ids_prefer_the_manifest_then_the_hash():
    manifest = {"odd": 0x12345678}  # a renderer that wrote an id that is not the name's hash
    sel = Selection(["odd", "plain", "<1.5>"], manifest)
    assert list(sel.ids) == sorted([0x12345678, crypto_hash("plain"), float_to_bits(1.5)])
    assert sel.unmatched() == ["plain"]
    assert 0x12345678 in sel and crypto_hash("odd") not in sel


# ----------------------------------------------------------------------- wildcards (README facts)


def test_wildcards_are_case_sensitive():
    assert names_of(Selection.from_matte_list("*Rect*", CORNELL)) == ["Rect_[]_right", "Rect_]_left"]
    assert names_of(Selection.from_matte_list("*rect*", CORNELL)) == ["rect_[_top", "rect_][_bot"]
    assert (
        Selection.from_matte_list("*Rect*", CORNELL).expanded().matte_list()
        == r'"Rect_\[\]_right", "Rect_\]_left"'
    )
    assert (
        Selection.from_matte_list("*rect*", CORNELL).expanded().matte_list()
        == r'"rect_\[_top", "rect_\]\[_bot"'
    )


def test_escaped_asterisk_does_not_expand():
    sel = Selection.from_matte_list(r'"has_\*_asterisk", sphere_*', CORNELL)
    assert sel.tokens == [r"has_\*_asterisk", "sphere_*"]  # kept unexpanded in the list
    assert sel.matte_list() == r'"has_\*_asterisk", sphere_*'
    assert names_of(sel) == ["has_*_asterisk", "sphere_?_2"]
    assert sel.expanded().matte_list() == r'"has_\*_asterisk", "sphere_\?_2"'
    assert set(sel.ids) == {CORNELL["has_*_asterisk"], CORNELL["sphere_?_2"]}
    # unescaped, the same asterisk is a wildcard and also takes has_n_asterisk
    assert names_of(Selection(["has_*_asterisk"], CORNELL)) == ["has_*_asterisk", "has_n_asterisk"]


def test_flower_wildcard_on_the_bunny_asset_manifest():
    sel = Selection.from_matte_list("*flower*", BUNNY_ASSET)
    assert sel.expanded().matte_list() == "flowerA, flowerB, heroflower"
    assert sel.matte_list() == "*flower*"
    assert Selection.from_matte_list("nothing*", BUNNY_ASSET).unmatched() == ["nothing*"]
    assert len(Selection.from_matte_list("nothing*", BUNNY_ASSET).ids) == 0


# ----------------------------------------------------------------------- picker edits (gizmo behaviour)


def test_picking_without_manifest_writes_numbers_and_avoids_duplicates():
    sel = Selection((), {})
    assert sel.add_id(BUNNY)
    assert sel.matte_list() == "<3.36000126251e-27>"
    named = Selection.from_matte_list("bunny", {})
    assert not named.add_id(BUNNY)  # already selected by name: nothing redundant
    assert named.matte_list() == "bunny"
    assert named.remove_id(BUNNY)  # removing a named entry by its number
    assert named.matte_list() == ""
    both = Selection.from_matte_list("bunny, heroflower", {})
    both.add_id(SET)
    both.remove_id(BUNNY)
    assert both.matte_list() == "<7.36562399642e+18>, heroflower"
    both.add_id(BUNNY)
    assert both.matte_list() == "<3.36000126251e-27>, <7.36562399642e+18>, heroflower"


def test_removing_numbers_by_name_and_re_adding_by_picking():
    sel = Selection.from_matte_list("<3.36000126251e-27>, <7.36562399642e+18>, heroflower", BUNNY_ASSET)
    for i in (BUNNY, SET, HEROFLOWER, HEROFLOWER):
        sel.remove_id(i)
    assert sel.matte_list() == ""
    sel.add_id(BUNNY)
    sel.add_id(SET)
    assert sel.matte_list() == "bunny, set"


def test_picker_with_wildcards_in_the_list():
    sel = Selection.from_matte_list("*flower*", BUNNY_ASSET)
    sel.add_id(BUNNY)
    assert sel.matte_list() == "*flower*, bunny"
    assert not sel.add_id(crypto_hash("flowerB"))  # already selected through the wildcard
    assert sel.remove_id(crypto_hash("flowerB"))  # the wildcard gives way to the names it still means
    assert sel.matte_list() == "bunny, flowerA, heroflower"


def test_toggle_clear_equality_and_cached_ids():
    sel = Selection.from_names(["bunny"], BUNNY_ASSET)
    ids_before = sel.ids
    assert sel.ids is ids_before  # cached until the tokens change
    assert not sel.toggle_id(BUNNY)
    assert len(sel) == 0 and not sel
    assert sel.toggle_id(SET)
    assert sel == Selection(["set"])
    assert sel.ids is not ids_before
    sel.clear()
    assert sel.ids.size == 0
    assert Selection.from_ids([SET, BUNNY], BUNNY_ASSET).matte_list() == "bunny, set"


def test_picking_names_with_wildcard_characters_escapes_them():
    sel = Selection((), CORNELL)
    sel.add_id(CORNELL["has_*_asterisk"])
    assert sel.matte_list() == r'"has_\*_asterisk"'
    assert list(sel.ids) == [CORNELL["has_*_asterisk"]]  # the escaped token does not take has_n_asterisk
    sel.remove_id(CORNELL["has_*_asterisk"])
    assert sel.matte_list() == ""
    sel.add_id(CORNELL["sphere_?_2"])
    assert sel.matte_list() == r'"sphere_\?_2"'
