"""Start the viewer: ``run_gui(path)`` opens a file, ``run_gui()`` the built-in demo scene."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from app.qt_compat import guard_pyside_refcount_bugs
from app.settings import APPLICATION, ORGANISATION


def dark_palette() -> QPalette:
    """A neutral dark palette: images are judged against grey, not against white chrome."""
    p = QPalette()
    base, window, text = QColor(37, 37, 40), QColor(48, 48, 52), QColor(220, 220, 220)
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, window)
    p.setColor(QPalette.ColorRole.ToolTipBase, window)
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.Button, window)
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor(255, 80, 80))
    p.setColor(QPalette.ColorRole.Highlight, QColor(62, 110, 170))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.Link, QColor(110, 160, 230))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 120))
    return p


def make_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (the existing one if there is one), styled for image work."""
    guard_pyside_refcount_bugs()  # PySide6 6.12.0 + CPython 3.11 abort after a few hundred calls otherwise
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    return app


def run_gui(path: str | os.PathLike | None = None, argv: Sequence[str] | None = None) -> int:
    """Open the viewer on ``path`` (or on the demo scene when None) and run the event loop."""
    app = make_application(argv)
    from app.main_window import MainWindow  # after the QApplication exists (pyqtgraph reads it)

    window = MainWindow()
    window.show()
    if path is not None:
        window.open_file(path)
    else:
        window.open_demo("deep")
    from app.warmup import start_kernel_warmup

    start_kernel_warmup(window)  # cold numba cache (first start): compile in the background, progress shown
    return app.exec()
