"""Progress of background work: a bar and a cancel button for the task lanes."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from app.workers import TaskLane

SHOW_DELAY_MS = 250


class TaskProgress(QWidget):
    """Shows while any of its lanes is busy (after a short delay: quick renders don't flash);
    Cancel cancels them all."""

    def __init__(self, lanes: dict[str, TaskLane], parent=None):
        super().__init__(parent)
        self.setObjectName("task_progress")
        self.lanes = lanes
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setMaximumWidth(180)
        self.bar.setMaximumHeight(16)
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop loading / rendering")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.setInterval(SHOW_DELAY_MS)
        self._show_timer.timeout.connect(lambda: self.setVisible(bool(self.busy_lanes())))
        for name, lane in lanes.items():
            lane.busy_changed.connect(self._update)
            lane.progress.connect(lambda f, name=name: self._on_progress(name, f))
        self._update()

    def busy_lanes(self) -> list[str]:
        return [name for name, lane in self.lanes.items() if lane.busy]

    def _on_progress(self, name: str, fraction: float) -> None:
        busy = self.busy_lanes()
        if busy and busy[0] == name:  # show the first busy lane (loading before rendering)
            self.bar.setValue(int(fraction * 1000))

    def _update(self, *_args) -> None:
        busy = self.busy_lanes()
        if busy and self.isHidden() and not self._show_timer.isActive():
            self._show_timer.start()
        elif not busy:
            self._show_timer.stop()
            self.setVisible(False)
        self.label.setText(f"{busy[0].capitalize()}…" if busy else "")
        if not busy:
            self.bar.setValue(0)

    def cancel(self) -> None:
        for lane in self.lanes.values():
            lane.cancel()
