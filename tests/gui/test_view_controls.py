"""View controls, channel list and part selector: model -> widget and widget -> model."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.document import DocumentModel
from app.render import View
from tests.gui.helpers import make_deep, make_document, make_flat
from widgets.channel_list import ChannelList
from widgets.part_selector import PartSelector
from widgets.view_controls import ViewControls

pytestmark = pytest.mark.gui


@pytest.fixture
def model(qtbot):
    m = DocumentModel()
    m.set_document(make_document(make_deep(np.ones((2, 3), int)), make_flat()))
    return m


def test_exposure_slider_spin_and_model_follow_each_other(qtbot, model):
    controls = ViewControls(model)
    qtbot.addWidget(controls)
    model.set_exposure(1.5)
    assert controls.exposure_spin.value() == 1.5 and controls.exposure_slider.value() == 15
    controls.exposure_slider.setValue(-23)
    assert model.exposure == pytest.approx(-2.3)
    assert controls.exposure_spin.value() == pytest.approx(-2.3)
    controls.exposure_spin.setValue(0.75)
    assert model.exposure == 0.75
    controls.reset_button.click()
    assert model.exposure == 0.0 and controls.exposure_slider.value() == 0


def test_transfer_and_gamma(qtbot, model):
    controls = ViewControls(model)
    qtbot.addWidget(controls)
    assert not controls.gamma_spin.isEnabled()  # sRGB has no gamma
    index = controls.transfer_combo.findData("gamma")
    controls.transfer_combo.setCurrentIndex(index)
    controls.transfer_combo.activated.emit(index)
    assert model.transfer == "gamma" and controls.gamma_spin.isEnabled()
    controls.gamma_spin.setValue(1.8)
    assert model.gamma == 1.8
    model.set_transfer("linear")
    assert controls.transfer_combo.currentData() == "linear"


def test_mode_combo(qtbot, model):
    controls = ViewControls(model)
    qtbot.addWidget(controls)
    combo = controls.mode_combo
    i = combo.findData("samples")
    assert combo.model().item(i).isEnabled()  # part 0 is deep
    combo.setCurrentIndex(i)
    combo.activated.emit(i)
    assert model.view.mode == "samples"
    model.set_part(1)  # flat: no sample count; the model falls back to colour
    assert not combo.model().item(i).isEnabled()
    assert combo.currentData() == "color"
    model.set_view(View("depth"))
    assert combo.currentData() == "depth"


def test_channel_list_groups_and_sets_view(qtbot, model):
    model.set_part(1)
    tree = ChannelList(model)
    qtbot.addWidget(tree)
    layers = [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]
    assert layers == ["(root)", "spec"]
    root = tree.topLevelItem(0)
    assert [root.child(j).text(0) for j in range(root.childCount())] == ["R", "G", "B", "Z", "id", "A"]
    assert root.child(4).text(1) == "uint"
    spec_g = tree.item_for("spec", "spec.G")
    tree.itemClicked.emit(spec_g, 0)
    assert model.view == View("channel", "spec", "spec.G")
    tree.itemClicked.emit(tree.item_for("spec", None), 0)
    assert model.view == View("color", "spec", None)
    model.set_view(View("channel", "", "Z"))
    assert tree.currentItem() is tree.item_for("", "Z")


def test_channel_list_keyboard_navigation(qtbot, model):
    tree = ChannelList(model)
    qtbot.addWidget(tree)
    tree.show()
    tree.setFocus()
    tree.setCurrentItem(tree.item_for("", None))
    qtbot.keyClick(tree, Qt.Key.Key_Down)
    assert model.view == View("channel", "", "R")


def test_part_selector(qtbot, model):
    selector = PartSelector(model)
    qtbot.addWidget(selector)
    assert selector.count() == 2 and selector.isEnabled()
    assert selector.itemText(0).startswith("0: part0 · deepscanline 3×2")
    selector.setCurrentIndex(1)
    assert model.part_index == 1
    model.set_part(0)
    assert selector.currentIndex() == 0
    model.set_document(make_document(make_flat()))
    assert selector.count() == 1 and not selector.isEnabled()
