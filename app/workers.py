"""Background work for the viewer: a thread pool and "latest wins" task lanes.

A job is a plain function ``fn(progress, cancelled) -> result`` that runs in a
``QThreadPool`` thread: ``progress(fraction)`` reports how far it got and ``cancelled()``
tells it to stop early (it may return anything or raise ``core.errors.Cancelled``). A
:class:`TaskLane` runs one kind of work (loading, rendering): submitting a new job
supersedes the one before it, which is asked to cancel and whose result is dropped. Results
and errors come back to the GUI thread through queued signals, so slots connected to a
lane always run in the GUI thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QDeadlineTimer, QObject, QRunnable, QThreadPool, Signal, Slot

from core.errors import Cancelled

ProgressFn = Callable[[float], None]
CancelledFn = Callable[[], bool]
JobFn = Callable[[ProgressFn, CancelledFn], Any]

_job_ids = itertools.count(1)


class CancelToken:
    """A flag a job polls between chunks; thread safe."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def is_cancelled(self) -> bool:
        return self._event.is_set()


class _JobSignals(QObject):
    """Emitted from the pool thread; queued to the lane in the GUI thread."""

    finished = Signal(int, object)
    failed = Signal(int, object)
    progress = Signal(int, float)


class _Job(QRunnable):
    def __init__(self, job_id: int, fn: JobFn, token: CancelToken, signals: _JobSignals):
        super().__init__()
        self.setAutoDelete(False)  # the lane keeps the Python object alive until it reports
        self.job_id = job_id
        self.token = token
        self._fn = fn
        self._signals = signals
        self._last_progress = -1.0

    def _progress(self, fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        # Throttle: a job may call this per chunk; the GUI needs about a hundred steps.
        if fraction - self._last_progress >= 0.01 or fraction >= 1.0 > self._last_progress:
            self._last_progress = fraction
            self._emit(self._signals.progress, fraction)

    def _emit(self, signal, payload) -> None:
        try:
            signal.emit(self.job_id, payload)
        except RuntimeError:  # the lane was deleted while the job ran (app shutting down)
            pass

    def run(self) -> None:
        try:
            result = self._fn(self._progress, self.token.is_cancelled)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the GUI thread
            self._emit(self._signals.failed, exc)
        else:
            self._emit(self._signals.finished, result)


class TaskLane(QObject):
    """One kind of background work where a newer request supersedes the older one.

    ``finished(tag, result)`` and ``failed(tag, exception)`` are emitted only for the
    latest job, in the GUI thread; a superseded or cancelled job's outcome is dropped.
    ``busy_changed`` and ``progress`` drive a progress bar.
    """

    finished = Signal(object, object)
    failed = Signal(object, object)
    cancelled = Signal(object)
    progress = Signal(float)
    busy_changed = Signal(bool)

    def __init__(self, name: str, pool: QThreadPool | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self._pool = pool if pool is not None else QThreadPool.globalInstance()
        self._signals = _JobSignals()
        self._signals.finished.connect(self._on_finished)
        self._signals.failed.connect(self._on_failed)
        self._signals.progress.connect(self._on_progress)
        self._running: dict[int, tuple[_Job, Any]] = {}  # every job not yet reported, latest or not
        self._latest: int | None = None

    @property
    def busy(self) -> bool:
        """True while the latest job has not reported."""
        return self._latest is not None

    @property
    def running_count(self) -> int:
        """Jobs started and not yet reported, including superseded ones."""
        return len(self._running)

    def submit(self, fn: JobFn, tag: Any = None) -> int:
        """Run ``fn`` in the pool, superseding the current job; returns the job id."""
        was_busy = self.busy
        self._cancel_latest()
        job_id = next(_job_ids)
        job = _Job(job_id, fn, CancelToken(), self._signals)
        self._running[job_id] = (job, tag)
        self._latest = job_id
        self._pool.start(job)
        if not was_busy:
            self.busy_changed.emit(True)
        self.progress.emit(0.0)
        return job_id

    def cancel(self) -> None:
        """Ask the latest job to stop and drop its result."""
        if self._latest is None:
            return
        tag = self._running[self._latest][1]
        self._cancel_latest()
        self.cancelled.emit(tag)
        self.busy_changed.emit(False)

    def _cancel_latest(self) -> None:
        if self._latest is not None:
            self._running[self._latest][0].token.cancel()
            self._latest = None

    def _take(self, job_id: int) -> tuple[bool, Any]:
        job, tag = self._running.pop(job_id, (None, None))
        latest = job is not None and job_id == self._latest and not job.token.is_cancelled()
        if latest:
            self._latest = None
        return latest, tag

    @Slot(int, object)
    def _on_finished(self, job_id: int, result: Any) -> None:
        latest, tag = self._take(job_id)
        if latest:
            self.busy_changed.emit(False)
            self.finished.emit(tag, result)

    @Slot(int, object)
    def _on_failed(self, job_id: int, exc: BaseException) -> None:
        latest, tag = self._take(job_id)
        if latest:
            self.busy_changed.emit(False)
            if isinstance(exc, Cancelled):
                self.cancelled.emit(tag)
            else:
                self.failed.emit(tag, exc)

    @Slot(int, float)
    def _on_progress(self, job_id: int, fraction: float) -> None:
        if job_id == self._latest:
            self.progress.emit(fraction)

    def shutdown(self) -> None:
        """Cancel every job; call before the lane goes away."""
        for job, _tag in self._running.values():
            job.token.cancel()
        self._latest = None


def make_pool(max_threads: int = 2) -> QThreadPool:
    """A private pool so shutting the viewer down can wait for exactly its own jobs."""
    pool = QThreadPool()
    pool.setMaxThreadCount(max_threads)
    return pool


def wait_for_pool(pool: QThreadPool, timeout_ms: int = 30000) -> bool:
    """Block until the pool's jobs have returned (their signals may still be queued)."""
    return pool.waitForDone(QDeadlineTimer(timeout_ms))
