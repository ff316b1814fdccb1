"""Work around PySide6 6.12.0 reference-count bugs that abort the interpreter on CPython 3.11.

PySide6 6.12.0 returns ``None`` from void methods (``setObjectName``, ``resize``,
``setText``...) and ``True`` from ``SignalInstance.emit()`` without taking a reference. Each
such call made from Python (ours and pyqtgraph's: building a plot, every mouse move) drops
one reference to ``None`` or ``True``. They start with a few thousand and a few hundred
references; once one reaches zero CPython aborts with "Fatal Python error: none_dealloc" /
"bool_dealloc". PySide6 6.11.3 does not have the bugs, and on CPython 3.12+ these
singletons are immortal, so their counts cannot reach zero.

``guard_pyside_refcount_bugs()`` measures whether this PySide6 leaks and, only then, gives
``None``, ``True`` and ``False`` a huge reference count: what CPython 3.12 does for them.
They are static singletons that are never freed, so the extra count is harmless. It is a
no-op on fixed PySide6 versions and newer Pythons. Call it once before any other Qt work.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_PROBE_CALLS = 64
_BUMP = 1 << 40
_applied = False


class _Probe(QObject):
    ping = Signal()


def _add_refs(obj: object, n: int) -> None:
    # ob_refcnt is the first field of every CPython object
    ctypes.c_ssize_t.from_address(id(obj)).value += n


def _lost(obj: object, call) -> int:
    """References to ``obj`` that ``_PROBE_CALLS`` calls of ``call`` dropped (given back at once)."""
    before = sys.getrefcount(obj)
    for _ in range(_PROBE_CALLS):
        call()
    lost = before - sys.getrefcount(obj)
    if lost > 0:
        _add_refs(obj, lost)
    return lost


def pyside_leaks_references() -> bool:
    """True when this PySide6 drops references to ``None`` or ``True`` (the 6.12.0 bugs)."""
    if sys.version_info >= (3, 12):
        return False
    probe = _Probe()
    leaks_none = _lost(None, lambda: probe.setObjectName("probe")) >= _PROBE_CALLS
    leaks_true = _lost(True, probe.ping.emit) >= _PROBE_CALLS
    return leaks_none or leaks_true


def guard_pyside_refcount_bugs() -> bool:
    """Make the leaks harmless when this PySide6 has them; returns True when the guard is on."""
    global _applied
    if _applied:
        return True
    if not pyside_leaks_references():
        return False
    for singleton in (None, True, False):
        _add_refs(singleton, _BUMP)
    _applied = True
    return True
