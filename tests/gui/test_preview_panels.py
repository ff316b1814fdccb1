"""The Defocus and Recolor panels and their sliders: widget -> model -> preview, and model -> widget."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor

from app.deepid_model import DeepIdModel
from app.document import DocumentModel
from app.preview_model import DefocusSettings, PreviewModel
from core.defocus import SimpleBlur, defocus
from core.recolor import Grade
from tests.gui.helpers import make_deep, make_document
from widgets.defocus_panel import UNITS, DefocusPanel
from widgets.param_slider import STEPS, ParamSlider
from widgets.recolor_panel import RecolorPanel, linear_to_srgb8, srgb8_to_linear

pytestmark = pytest.mark.gui


@pytest.fixture
def models(qtbot):
    made = []

    def make():
        doc = DocumentModel()
        ids = DeepIdModel(doc)
        preview = PreviewModel(doc, ids, None, settle_ms=100)
        doc.set_document(make_document(make_deep(np.random.default_rng(4).integers(0, 4, (16, 24)))))
        made.append((preview, ids))
        return doc, ids, preview

    yield make
    for preview, ids in made:
        ids.shutdown()
        preview.shutdown()


def wait_current(qtbot, preview, timeout=60000):
    qtbot.waitUntil(lambda: preview.is_current and not preview.busy, timeout=timeout)


# ---------------------------------------------------------------------- ParamSlider
def test_param_slider_mapping_and_signals(qtbot):
    s = ParamSlider("f", 0.5, 64.0, 2.8, log=True, decimals=2)
    qtbot.addWidget(s)
    assert s.value_at(0) == pytest.approx(0.5) and s.value_at(STEPS) == pytest.approx(64.0)
    assert s.value_at(STEPS // 2) == pytest.approx(np.sqrt(0.5 * 64.0))
    for v in (0.5, 1.0, 2.8, 11.0, 64.0):
        assert s.value_at(s.position_of(v)) == pytest.approx(v, rel=0.01)
    emitted = []
    s.value_changed.connect(emitted.append)
    s.set_value(4.0)  # from the model: no signal
    assert emitted == [] and s.spin.value() == 4.0 and s.slider.value() == s.position_of(4.0)
    s.slider.setValue(STEPS)
    assert emitted == [64.0] and s.spin.value() == 64.0
    wide = ParamSlider("f", 0.5, 64.0, 2.8, log=True, spin_maximum=1000.0)
    qtbot.addWidget(wide)
    got = []
    wide.value_changed.connect(got.append)
    wide.spin.setValue(100.0)  # beyond the slider: the spin takes it, the slider rests at its end
    assert got == [100.0] and wide.value() == 100.0 and wide.slider.value() == STEPS
    lin = ParamSlider("g", 0.0, 4.0, 1.0)
    qtbot.addWidget(lin)
    assert lin.value_at(STEPS // 4) == pytest.approx(1.0)


# ---------------------------------------------------------------------- Defocus panel
def test_defocus_slider_gives_a_proxy_then_the_full_resolution(qtbot, models):
    doc, _ids, preview = models()
    panel = DefocusPanel(preview)
    qtbot.addWidget(panel)
    assert preview.defocus.simple and panel.simple_check.isChecked()  # no camera in the header
    assert not panel.fstop_slider.isEnabled() and panel.blur_slider.isEnabled()
    frames = []
    preview.preview_changed.connect(lambda f: f is not None and frames.append(f))
    slider = panel.blur_slider
    slider.slider.setValue(slider.position_of(0.7))
    value = slider.value()
    assert preview.effect == "defocus" and panel.enable_check.isChecked()
    assert preview.defocus.blur_per_unit == value
    wait_current(qtbot, preview)
    assert frames[0].proxy == 0.25 and frames[-1].is_full and len([f for f in frames if f.is_full]) == 1
    s = preview.defocus
    ref = defocus(doc.image, SimpleBlur(s.focus_distance, value), max_radius=s.max_radius)
    assert np.array_equal(frames[-1].result["R"], ref["R"])
    assert panel.status_label.text() == preview.status and "full resolution" in preview.status


def test_defocus_rapid_slider_moves_latest_wins(qtbot, models):
    doc, _ids, preview = models()
    panel = DefocusPanel(preview)
    qtbot.addWidget(panel)
    frames = []
    preview.preview_changed.connect(lambda f: f is not None and frames.append(f))
    slider = panel.focus_slider
    for k, pos in enumerate(range(300, 700, 20)):
        slider.slider.setValue(pos)
        if k % 3 == 0:
            qtbot.wait(5)
    last = slider.value()
    wait_current(qtbot, preview)
    full = [f for f in frames if f.is_full]
    assert len(full) == 1 and full[0].target.defocus.focus_distance == last
    assert frames[-1] is full[0]


def test_defocus_panel_follows_the_model(qtbot, models):
    _doc, _ids, preview = models()
    panel = DefocusPanel(preview)
    qtbot.addWidget(panel)
    preview.set_defocus(DefocusSettings(focus_distance=3.25, f_stop=1.4, focal_length_mm=85.0, sensor_width_mm=24.0,
                                        units_to_m=0.01, max_radius=20.0, simple=False, blur_per_unit=0.3))
    assert panel.focus_slider.spin.value() == 3.25 and panel.fstop_slider.spin.value() == 1.4
    assert panel.focal_slider.spin.value() == 85.0 and panel.sensor_slider.spin.value() == 24.0
    assert panel.units_combo.currentText() == "centimetres" and panel.units_spin.value() == 0.01
    assert panel.fstop_slider.isEnabled() and not panel.blur_slider.isEnabled()
    assert not panel.simple_check.isChecked() and preview.effect == "off"
    feet = [label for label, _v in UNITS].index("feet")
    panel.units_combo.setCurrentIndex(feet)
    panel.units_combo.activated.emit(feet)
    assert preview.defocus.units_to_m == 0.3048 and preview.effect == "defocus"
    panel.simple_check.setChecked(True)
    assert preview.defocus.simple and not panel.focal_slider.isEnabled()
    panel.focus_button.setChecked(True)
    assert preview.focus_tool
    preview.set_focus_tool(False)
    assert not panel.focus_button.isChecked()
    preview.set_effect("off")
    assert not panel.enable_check.isChecked()
    panel.enable_check.setChecked(True)
    assert preview.effect == "defocus"
    assert "No camera data" in panel.camera_label.text()


# ---------------------------------------------------------------------- Recolor panel
def test_recolor_panel_writes_the_grade(qtbot, models):
    doc, ids, preview = models()
    panel = RecolorPanel(preview)
    qtbot.addWidget(panel)
    assert panel.source_combo.currentData() == "deep ids" and panel.compare_check.isEnabled()
    assert "nothing selected" in panel.selection_label.text()
    ids.set_ids("channel:id", np.unique(doc.image.channels["id"])[:3].tolist())
    assert "3 ids selected" in panel.selection_label.text()
    panel.gain_sliders[1].slider.setValue(panel.gain_sliders[1].position_of(2.0))
    assert preview.grade.gain == (1.0, 2.0, 1.0) and preview.effect == "recolor"
    panel.saturation_slider.spin.setValue(0.25)
    panel.hue_slider.spin.setValue(-90.0)
    assert (preview.grade.saturation, preview.grade.hue) == (0.25, -90.0)
    panel.set_tint_colour(QColor(255, 0, 0))
    assert preview.grade.tint == (1.0, 0.0, 0.0) and preview.grade.mix == 1.0
    panel.vary_slider.spin.setValue(0.5)
    assert preview.grade.vary_amount == 0.5 and preview.grade.vary_seed == 1
    panel.seed_spin.setValue(42)
    assert preview.grade.vary_seed == 42
    panel.keep_slider.spin.setValue(30.0)
    assert preview.grade.keep_percent == 30.0
    panel.remove_check.setChecked(True)
    assert preview.grade.remove and not panel.gain_sliders[0].isEnabled()
    panel.compare_check.setChecked(False)
    assert not preview.compare
    wait_current(qtbot, preview)
    assert preview.preview.compare_rgba is None
    panel.reset_button.click()
    assert preview.grade == Grade() and panel.gain_sliders[1].value() == 1.0 and not panel.remove_check.isChecked()


def test_recolor_panel_follows_the_model(qtbot, models):
    _doc, _ids, preview = models()
    panel = RecolorPanel(preview)
    qtbot.addWidget(panel)
    preview.set_grade(Grade(gain=(0.5, 1.5, 3.0), saturation=1.2, hue=45.0, mix=0.3, tint=(0.0, 1.0, 0.0),
                            keep_percent=60.0, vary_seed=9, vary_amount=0.2))
    assert [s.value() for s in panel.gain_sliders] == [0.5, 1.5, 3.0]
    assert panel.hue_slider.value() == 45.0 and panel.mix_slider.value() == 0.3
    assert panel.keep_slider.value() == 60.0 and panel.seed_spin.value() == 9
    assert "rgb(0, 255, 0)" in panel.tint_button.styleSheet()
    preview.set_source("cryptomatte")
    assert panel.source_combo.currentData() == "cryptomatte" and not panel.compare_check.isEnabled()
    preview.set_compare(False)
    assert not panel.compare_check.isChecked()


def test_srgb_conversions_round_trip():
    for code in (0, 1, 10, 128, 200, 255):
        assert linear_to_srgb8(srgb8_to_linear(code)) == code
