"""Persistent viewer settings (QSettings, organisation "Deepscope"): recent files, window layout.

Tests pass their own ``QSettings`` (an ini file in a temporary folder) so they never touch
the user's settings.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

ORGANISATION = "Deepscope"
APPLICATION = "Deepscope"
MAX_RECENT = 10


class ViewerSettings:
    """Typed access to the few values the viewer keeps between runs."""

    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings if qsettings is not None else QSettings(ORGANISATION, APPLICATION)

    # ------------------------------------------------------------------ recent files
    def recent_files(self) -> list[str]:
        """Most recent first; at most ``MAX_RECENT``."""
        value = self.q.value("recent_files", [])
        if value is None:
            return []
        if isinstance(value, str):  # an ini file stores a one-item list as a plain string
            value = [value]
        return [str(v) for v in value if v][:MAX_RECENT]

    def add_recent(self, path: str | os.PathLike) -> list[str]:
        path = os.path.abspath(os.fspath(path))
        files = [path] + [f for f in self.recent_files() if f != path]
        self._store_recent(files[:MAX_RECENT])
        return self.recent_files()

    def remove_recent(self, path: str | os.PathLike) -> None:
        path = os.path.abspath(os.fspath(path))
        self._store_recent([f for f in self.recent_files() if f != path])

    def clear_recent(self) -> None:
        self._store_recent([])

    def _store_recent(self, files: list[str]) -> None:
        self.q.setValue("recent_files", files)
        self.q.sync()

    # ------------------------------------------------------------------ behaviour
    @property
    def reload_on_change(self) -> bool:
        return str(self.q.value("reload_on_change", "true")).lower() in ("true", "1")

    @reload_on_change.setter
    def reload_on_change(self, value: bool) -> None:
        self.q.setValue("reload_on_change", bool(value))

    # ------------------------------------------------------------------ window layout
    def save_window(self, window: QMainWindow) -> None:
        self.q.setValue("window/geometry", window.saveGeometry())
        self.q.setValue("window/state", window.saveState())
        self.q.sync()

    def restore_window(self, window: QMainWindow) -> bool:
        """Restore geometry and dock layout; False when nothing was saved."""
        geometry = self.q.value("window/geometry")
        state = self.q.value("window/state")
        restored = False
        if isinstance(geometry, QByteArray | bytes) and len(geometry):
            restored = window.restoreGeometry(QByteArray(geometry)) or restored
        if isinstance(state, QByteArray | bytes) and len(state):
            restored = window.restoreState(QByteArray(state)) or restored
        return restored
