"""The PySide6 refcount guard: after it, many emits and void calls cannot abort the interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.gui


def test_many_emits_and_void_calls_survive_in_a_fresh_interpreter():
    code = textwrap.dedent("""
        import sys
        from app.qt_compat import guard_pyside_refcount_bugs
        guard_pyside_refcount_bugs()
        from PySide6.QtCore import QObject, Signal
        class S(QObject):
            ping = Signal(int)
        s = S()
        got = []
        s.ping.connect(got.append)
        for i in range(20000):
            s.ping.emit(i)
            s.setObjectName("x")  # a void method: returns None
        assert len(got) == 20000
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
