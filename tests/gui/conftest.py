"""pytest-qt fixtures for the viewer: isolated QSettings, a main-window factory that fails on
leaked windows, and the demo files rendered once per session (helpers live in helpers.py)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QEvent, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.qt_compat import guard_pyside_refcount_bugs  # noqa: E402
from app.settings import ViewerSettings  # noqa: E402

# PySide6 6.12.0 on CPython 3.11 drops references to None and True on many calls (see app.qt_compat).
guard_pyside_refcount_bugs()


@pytest.fixture(autouse=True)
def isolated_qsettings(tmp_path_factory):
    """Every QSettings the code under test makes lands in a temporary folder."""
    folder = str(tmp_path_factory.mktemp("qsettings"))
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, folder)
        QSettings.setPath(fmt, QSettings.Scope.SystemScope, folder)
    yield folder


@pytest.fixture
def settings(tmp_path) -> ViewerSettings:
    return ViewerSettings(QSettings(str(tmp_path / "deepscope.ini"), QSettings.Format.IniFormat))


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """The demo scene rendered once per session into a temporary cache folder."""
    from core.demo import demo_paths

    folder = tmp_path_factory.mktemp("demo_cache")
    demo_paths(folder)
    return folder


@pytest.fixture
def main_window(qtbot, settings, demo_dir):
    """Factory: ``main_window()`` builds a shown MainWindow with isolated settings.

    At teardown every window is closed (which stops its workers) and deleted; the test
    fails if any new top-level window is left behind.
    """
    from app.main_window import MainWindow

    before = {id(w) for w in QApplication.topLevelWidgets()}
    windows = []

    def make(**kwargs) -> MainWindow:
        kwargs.setdefault("settings", settings)
        window = MainWindow(**kwargs)
        window.controller.demo_cache_dir = str(demo_dir)
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    yield make
    for window in windows:
        window.close()
        window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets() if id(w) not in before]
    assert not leaked, f"top-level windows leaked: {leaked}"
