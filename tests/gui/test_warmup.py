"""The first-start kernel warm-up: it runs only on a cold numba cache, shows its progress in the
status bar, and compiles every kernel the GUI thread calls directly."""

from __future__ import annotations

import pytest

from app import warmup


def test_every_step_runs_without_error():
    seen = []
    failed = warmup.run_steps(warmup.STEPS, lambda k, n, name: seen.append((k, n, name)))
    assert failed == []
    assert [s[2] for s in seen[:-1]] == [name for name, _ in warmup.STEPS]
    assert seen[-1] == (len(warmup.STEPS), len(warmup.STEPS), "")


def test_steps_compile_the_kernels_they_name():
    warmup.run_steps(warmup.STEPS)
    dispatchers = warmup._dispatchers()
    assert len(dispatchers) == sum(len(v) for v in warmup.KERNELS.values()), "a kernel named there was renamed"
    for disp in dispatchers:
        assert disp.signatures, f"{disp.__name__} was not compiled by the warm-up"


def test_gui_thread_kernels_come_first():
    names = [name for name, _ in warmup.STEPS]
    assert names[:2] == ["id colours", "display"]


def test_a_failing_step_is_reported_not_raised():
    def boom():
        raise RuntimeError("no")

    assert warmup.run_steps([("ok", lambda: None), ("boom", boom)]) == ["boom"]


def test_stop_before_a_step_skips_the_rest():
    ran = []
    warmup.run_steps([("a", lambda: ran.append("a")), ("b", lambda: ran.append("b"))], stop=lambda: bool(ran))
    assert ran == ["a"]


def test_cold_cache_is_detected(monkeypatch):
    disp = warmup._dispatchers()[0]
    assert warmup.cache_is_warm()  # the test run compiled (or loaded) every kernel already
    monkeypatch.setattr(type(disp._cache._cache_file), "_load_index", lambda self: {})
    assert not warmup.cache_is_warm()


def test_nothing_starts_on_a_warm_cache(main_window, monkeypatch):
    monkeypatch.setattr(warmup, "cache_is_warm", lambda: True)
    window = main_window()
    assert warmup.start_kernel_warmup(window) is None


@pytest.mark.gui
def test_cold_start_shows_progress_then_removes_it(main_window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QLabel

    monkeypatch.setattr(warmup, "cache_is_warm", lambda: False)
    window = main_window()
    job = warmup.start_kernel_warmup(window)
    assert job is not None
    label = window.findChild(QLabel, "kernel_warmup_label")
    assert label is not None and "first start only" in label.text()
    # the label goes when the thread's queued "finished" arrives
    qtbot.waitUntil(lambda: window.findChild(QLabel, "kernel_warmup_label") is None, timeout=120000)
    job.stop()
    assert not job.running
