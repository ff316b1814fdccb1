"""One start of the viewer on the demo scene, timed from process start (run by bench_startup).

The parent passes its ``time.time()`` just before spawning in ``DEEPSCOPE_BENCH_T0``. This
script does what ``deepscope`` with no file does (``app.gui.run_gui()``), with settings in a
temporary folder, and prints JSON: seconds from process start to the window shown, to the
demo frame drawn on the canvas, and the longest stall of the GUI event loop meanwhile
(a 10 ms timer that should fire every 10 ms).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

T0 = float(os.environ.get("DEEPSCOPE_BENCH_T0", time.time()))


def main() -> None:
    marks = {"python_ready": time.time() - T0}
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QLabel

    from app.gui import make_application

    app = make_application(sys.argv[:1])
    from app.main_window import MainWindow
    from app.settings import ViewerSettings

    marks["imports_done"] = time.time() - T0
    folder = tempfile.mkdtemp(prefix="deepscope-start-")
    settings = ViewerSettings(QSettings(os.path.join(folder, "s.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings=settings)
    window.show()
    window.open_demo(os.environ.get("DEEPSCOPE_BENCH_DEMO", "deep"))
    from app.warmup import start_kernel_warmup

    warmup = start_kernel_warmup(window)  # as app.gui.run_gui does
    marks["cold_cache"] = warmup is not None
    stalls = {"last": time.perf_counter(), "max": 0.0, "max_at": 0.0}
    state = {"shown": None, "drawn": None}

    def tick() -> None:
        now = time.perf_counter()
        gap = now - stalls["last"]
        if gap > stalls["max"]:
            stalls["max"], stalls["max_at"] = gap, time.time() - T0
        stalls["last"] = now

    def first_paint() -> None:
        window.repaint()
        state["shown"] = time.time() - T0

    def poll() -> None:
        m = window.model
        f = m.frame
        if f is not None and f.key == m.part_key and f.view == m.view and not window.controller.busy:
            window.canvas.viewport().repaint()
            state["drawn"] = time.time() - T0
            tick()
            timer.stop()  # stalls count until the frame is drawn (quitting waits for a compile in flight)
            app.quit()

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    poller = QTimer()
    poller.setInterval(2)
    poller.timeout.connect(poll)
    poller.start()
    QTimer.singleShot(0, first_paint)
    QTimer.singleShot(120_000, app.quit)
    app.exec()
    label = window.findChild(QLabel, "kernel_warmup_label")
    status = label.text() if label is not None else ""
    if warmup is not None:
        warmup.stop()
    window.close()
    print(json.dumps({**marks, "shown": state["shown"], "drawn": state["drawn"], "max_stall": stalls["max"],
                      "max_stall_at": stalls["max_at"], "status": status}))


if __name__ == "__main__":
    main()
