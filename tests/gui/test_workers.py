"""Task lanes: latest wins, stale results dropped, cancel, errors and progress reach the GUI thread."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread

from app.workers import TaskLane, make_pool, wait_for_pool
from core.errors import Cancelled, ExrError

pytestmark = pytest.mark.gui


@pytest.fixture
def lane(qtbot):
    pool = make_pool(2)
    lane = TaskLane("test", pool)
    yield lane
    lane.shutdown()
    assert wait_for_pool(pool, 10000)


def _blocking_job(gate: threading.Event, value, seen_cancel: list | None = None):
    def job(progress, cancelled):
        progress(0.5)
        while not gate.wait(0.005):
            if cancelled():
                if seen_cancel is not None:
                    seen_cancel.append(value)
                raise Cancelled()
        return value

    return job


def test_result_arrives_in_gui_thread_with_tag(qtbot, lane):
    threads = []

    def job(progress, cancelled):
        threads.append(QThread.currentThread())
        return 42

    gui_thread = QThread.currentThread()
    received = []
    lane.finished.connect(lambda tag, result: received.append((tag, result, QThread.currentThread())))
    with qtbot.waitSignal(lane.finished, timeout=5000):
        lane.submit(job, tag="t1")
    assert received == [("t1", 42, gui_thread)]
    assert threads and threads[0] is not gui_thread
    assert not lane.busy


def test_newer_request_supersedes_older(qtbot, lane):
    gate_old = threading.Event()
    seen_cancel = []
    results = []
    lane.finished.connect(lambda tag, result: results.append(result))
    lane.submit(_blocking_job(gate_old, "old", seen_cancel), tag="old")
    with qtbot.waitSignal(lane.finished, timeout=5000):
        lane.submit(lambda p, c: "new", tag="new")
    qtbot.waitUntil(lambda: seen_cancel == ["old"], timeout=5000)  # the superseded job was asked to stop
    gate_old.set()
    qtbot.waitUntil(lambda: lane.running_count == 0, timeout=5000)
    assert results == ["new"]


def test_stale_result_of_finished_job_is_dropped(qtbot, lane):
    """A superseded job that ignores the cancel flag still never reports its result."""
    gate = threading.Event()
    results = []
    lane.finished.connect(lambda tag, result: results.append(result))

    def stubborn(progress, cancelled):
        gate.wait(5)
        return "stale"

    lane.submit(stubborn, tag=1)
    new_gate = threading.Event()
    lane.submit(_blocking_job(new_gate, "fresh"), tag=2)
    gate.set()
    qtbot.waitUntil(lambda: lane.running_count == 1, timeout=5000)  # the stubborn job has reported
    assert results == []
    with qtbot.waitSignal(lane.finished, timeout=5000):
        new_gate.set()
    assert results == ["fresh"]


def test_cancel_drops_result_and_signals(qtbot, lane):
    gate = threading.Event()
    results, cancelled_tags, busy = [], [], []
    lane.finished.connect(lambda tag, result: results.append(result))
    lane.cancelled.connect(cancelled_tags.append)
    lane.busy_changed.connect(busy.append)
    lane.submit(_blocking_job(gate, "x"), tag="job")
    assert lane.busy
    lane.cancel()
    assert not lane.busy
    qtbot.waitUntil(lambda: lane.running_count == 0, timeout=5000)
    assert results == [] and cancelled_tags == ["job"] and busy == [True, False]


def test_errors_are_reported_not_raised(qtbot, lane):
    def bad(progress, cancelled):
        raise ExrError("/x.exr", "truncated file")

    with qtbot.waitSignal(lane.failed, timeout=5000) as blocker:
        lane.submit(bad, tag="bad")
    tag, exc = blocker.args
    assert tag == "bad" and isinstance(exc, ExrError) and str(exc) == "/x.exr: truncated file"
    assert not lane.busy


def test_job_raising_cancelled_reports_cancelled(qtbot, lane):
    def job(progress, cancelled):
        raise Cancelled()

    failed = []
    lane.failed.connect(lambda *a: failed.append(a))
    with qtbot.waitSignal(lane.cancelled, timeout=5000):
        lane.submit(job, tag="c")
    assert failed == []


def test_progress_is_forwarded_and_throttled(qtbot, lane):
    def job(progress, cancelled):
        for i in range(1001):
            progress(i / 1000)
        return "done"

    values = []
    lane.progress.connect(values.append)
    with qtbot.waitSignal(lane.finished, timeout=5000):
        lane.submit(job)
    qtbot.wait(20)
    assert values[0] == 0.0 and values[-1] == 1.0
    assert values == sorted(values)
    assert len(values) <= 110  # ~1% steps, not a thousand queued signals


def test_task_progress_shows_late_and_cancels(qtbot, lane):
    from widgets.task_progress import SHOW_DELAY_MS, TaskProgress

    bar = TaskProgress({"loading": lane})
    qtbot.addWidget(bar)
    assert bar.isHidden()
    gate = threading.Event()
    lane.submit(_blocking_job(gate, "x"), tag="slow")
    assert bar.isHidden()  # quick jobs never flash a progress bar
    qtbot.waitUntil(lambda: not bar.isHidden(), timeout=SHOW_DELAY_MS + 2000)
    assert bar.label.text() == "Loading…"
    qtbot.waitUntil(lambda: bar.bar.value() == 500, timeout=2000)  # the job reported 0.5
    with qtbot.waitSignal(lane.cancelled, timeout=2000):
        bar.cancel_button.click()
    assert bar.isHidden() and not lane.busy
    gate.set()
