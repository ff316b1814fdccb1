"""A non-modal message banner above the canvas: errors stay visible without blocking the app."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

STYLES = {
    "error": "background: #5a1f1f; color: #ffd9d9; border: 1px solid #a33;",
    "info": "background: #1f3a5a; color: #d9ecff; border: 1px solid #357;",
}


class MessageBanner(QFrame):
    """One line of text with a close button; hidden until ``show_message``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("message_banner")
        self.label = QLabel("")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        self.kind = ""
        self.hide()

    @property
    def text(self) -> str:
        return self.label.text()

    def show_message(self, text: str, kind: str = "error") -> None:
        self.kind = kind
        self.setStyleSheet(f"QFrame#message_banner {{ {STYLES.get(kind, STYLES['info'])} }}")
        self.label.setText(text)
        self.show()

    def dismiss(self) -> None:
        self.label.setText("")
        self.kind = ""
        self.hide()
