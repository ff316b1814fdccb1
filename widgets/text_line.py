"""One line of status text that changes often (a caption above the deep graph or sample table).

A ``QLabel`` asks its layout to recompute on every ``setText`` (its size hint depends on the
text), and being see-through it makes its parents repaint behind it: on every click that
re-laid out and repainted the whole dock, title bar and icons included. This line has a
fixed height, takes whatever width the layout gives it (eliding text that does not fit, the
full text in its tooltip), paints its own background and only repaints itself.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

MARGIN = 2  # pixels left of the text and above and below it


class TextLine(QWidget):
    """A single line of plain text; ``setText``/``text`` like a ``QLabel``."""

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._text = text
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 2 * MARGIN)
        self.setToolTip(text)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 - like QLabel
        if text != self._text:
            self._text = text
            self.setToolTip(text)
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance(self._text) + 2 * MARGIN, fm.height() + 2 * MARGIN)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(0, self.fontMetrics().height() + 2 * MARGIN)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.type() == event.Type.FontChange:
            self.setFixedHeight(self.fontMetrics().height() + 2 * MARGIN)
        super().changeEvent(event)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Window))
        painter.setPen(palette.color(QPalette.ColorRole.WindowText))
        area = self.rect().adjusted(MARGIN, 0, -MARGIN, 0)
        shown = self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, area.width())
        painter.drawText(area, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), shown)
