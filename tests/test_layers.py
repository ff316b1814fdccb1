"""Channel grouping (core.layers): tev-like layer order, colour/alpha/depth picks, windows."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.layers import (
    Layer,
    alpha_channel,
    box_contains,
    channel_sort_key,
    depth_channel,
    find_layer,
    group_channels,
    half_open,
    split_channel,
)
from core.model import Box


def test_split_channel():
    assert split_channel("R") == ("", "R")
    assert split_channel("diffuse.R") == ("diffuse", "R")
    assert split_channel("a.b.R") == ("a.b", "R")
    assert split_channel("crypto_asset00.red") == ("crypto_asset00", "red")


def test_within_layer_order_is_rgb_xyz_uv_singles_alpha():
    names = ["A", "Z", "B", "V", "G", "zdepth", "U", "R", "Y", "X", "id", "AO"]
    random.Random(1).shuffle(names)
    (root,) = group_channels(names)
    assert root.name == ""
    assert root.channels == ("R", "G", "B", "X", "Y", "Z", "U", "V", "AO", "id", "zdepth", "A")


def test_layers_grouped_by_last_dot_root_first():
    names = ["diffuse.B", "A", "a.b.R", "diffuse.R", "B", "G", "R", "diffuse.G", "a.b.A", "Z", "ZBack"]
    layers = group_channels(names)
    assert [layer.name for layer in layers] == ["", "a.b", "diffuse"]
    assert layers[0].channels == ("R", "G", "B", "Z", "ZBack", "A")
    assert layers[1].channels == ("a.b.R", "a.b.A")
    assert layers[2].channels == ("diffuse.R", "diffuse.G", "diffuse.B")
    assert layers[0].label == "(root)" and layers[2].label == "diffuse"


def test_long_names_sort_like_short_ones():
    (layer,) = group_channels(["c00.alpha", "c00.blue", "c00.green", "c00.red"])
    assert layer.channels == ("c00.red", "c00.green", "c00.blue", "c00.alpha")
    assert layer.rgb == ("c00.red", "c00.green", "c00.blue")
    assert layer.alpha == "c00.alpha"


def test_velocity_is_not_v():
    assert channel_sort_key("velocity")[0] > channel_sort_key("V")[0]


@given(st.lists(st.sampled_from(["R", "G", "B", "A", "X", "Y", "Z", "U", "V", "id", "mask", "alpha"]),
                unique=True, min_size=1))
def test_grouping_is_a_permutation_and_alpha_is_last(shorts):
    names = [f"layer.{s}" for s in shorts] + shorts
    layers = group_channels(names)
    flat = [c for layer in layers for c in layer.channels]
    assert sorted(flat) == sorted(names)
    for layer in layers:
        ranks = [channel_sort_key(c)[0] for c in layer.channels]
        assert ranks == sorted(ranks)
        alphas = [c for c in layer.channels if split_channel(c)[1].lower() in ("a", "alpha")]
        if alphas:
            assert set(layer.channels[-len(alphas):]) == set(alphas)


def test_rgb_picks():
    assert Layer("", ("R", "G", "B", "A")).rgb == ("R", "G", "B")
    assert Layer("n", ("n.X", "n.Y", "n.Z")).rgb == ("n.X", "n.Y", "n.Z")
    assert Layer("uv", ("uv.U", "uv.V")).rgb == ("uv.U", "uv.V", None)
    assert Layer("", ("R", "G", "A")).rgb == ("R", "G", None)
    assert Layer("", ("R", "A")).rgb == ("R", "R", "R")
    assert Layer("", ("Y",)).rgb == ("Y", "Y", "Y")
    grey = Layer("depth", ("depth.Z",))
    assert grey.rgb == ("depth.Z", "depth.Z", "depth.Z") and grey.is_grey
    only_alpha = Layer("m", ("m.A",))
    assert only_alpha.rgb == ("m.A", "m.A", "m.A")
    assert not Layer("", ("R", "G", "B")).is_grey


def test_alpha_falls_back_to_root():
    layers = group_channels(["R", "G", "B", "A", "spec.R", "spec.G", "spec.B", "own.R", "own.A"])
    assert alpha_channel(layers, "spec") == "A"
    assert alpha_channel(layers, "own") == "own.A"
    assert alpha_channel(group_channels(["R"]), "") is None
    assert find_layer(layers, "nope") is None


def test_depth_channel():
    assert depth_channel(["R", "Z", "depth.Z"]) == "Z"
    assert depth_channel(["R", "depth.Z"]) == "depth.Z"
    assert depth_channel(["N.Z", "R"]) is None


@pytest.mark.parametrize("box", [Box(0, 0, 0, 0), Box(-3, 5, 10, 7), Box(167, 0, 792, 539)])
def test_half_open_and_contains(box):
    x0, y0, x1, y1 = half_open(box)
    assert (x1 - x0, y1 - y0) == (box.width, box.height)
    assert box_contains(box, x0, y0) and box_contains(box, x1 - 1, y1 - 1)
    assert not box_contains(box, x1, y0) and not box_contains(box, x0, y1)
    assert not box_contains(box, x0 - 1, y0) and not box_contains(box, x0, y0 - 1)
