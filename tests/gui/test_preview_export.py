"""The preview panels' export dialog: where it starts and what it suggests."""

from types import SimpleNamespace

from PySide6.QtWidgets import QFileDialog, QWidget

from widgets.preview_export import ask_preview_export_path


def test_suggests_stem_and_effect_next_to_the_file(qtbot, monkeypatch, tmp_path):
    seen = {}

    def fake(parent, title, start, filters):
        seen.update(title=title, start=start)
        return (str(tmp_path / "out.exr"), "")

    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake)
    parent = QWidget()
    qtbot.addWidget(parent)
    doc = SimpleNamespace(path="/shots/a/demo.deep.exr", name="demo.deep.exr")
    assert ask_preview_export_path(parent, doc, "defocus", None) == str(tmp_path / "out.exr")
    assert seen == {"title": "Export the defocus preview", "start": "/shots/a/demo_defocus.exr"}
    ask_preview_export_path(parent, doc, "recolor", "/elsewhere")
    assert seen["start"] == "/elsewhere/demo_recolor.exr"


def test_cancel_gives_none(qtbot, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: ("", ""))
    parent = QWidget()
    qtbot.addWidget(parent)
    assert ask_preview_export_path(parent, None, "recolor", None) is None
