"""Timing and reporting for the benchmarks: medians over several runs, ratios against a peer
measured in the same run (interleaved, so machine noise hits both alike), one row per target."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One line of the results table.

    ``values`` are what was measured (seconds for times, or the unit's number), ``peer_values``
    the peer's in the same run. ``ratio`` is median(ours) / median(peer) unless the benchmark sets
    it (memory: bytes over the arrays' bytes). ``met`` says whether ``target`` holds.
    """

    key: str
    work: str
    target: str = ""
    unit: str = "ms"
    values: list[float] = field(default_factory=list)
    peer: str | None = None
    peer_values: list[float] = field(default_factory=list)
    ratio: float | None = None
    met: bool | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def best(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def peer_median(self) -> float | None:
        return statistics.median(self.peer_values) if self.peer_values else None

    def ratio_of_medians(self) -> float | None:
        if self.median is None or not self.peer_median:
            return None
        return self.median / self.peer_median

    def shown(self, value: float | None) -> str:
        if value is None:
            return "-"
        if self.unit == "ms":
            v = value * 1000.0
            return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"
        if self.unit == "s":
            return f"{value:.2f} s"
        if self.unit == "MB":
            return f"{value / 1e6:.0f} MB"
        if self.unit == "x":
            return f"{value:.2f}x"
        return f"{value:.3g} {self.unit}"

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(median=self.median, best=self.best, peer_median=self.peer_median)
        return d


def time_once(fn: Callable[[], object]) -> float:
    gc.collect()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(fn: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    """Wall times of ``runs`` calls after ``warmup`` untimed ones (the result is dropped each time)."""
    for _ in range(warmup):
        fn()
    return [time_once(fn) for _ in range(runs)]


def measure_pair(ours: Callable[[], object], peer: Callable[[], object], runs: int, peer_runs: int | None = None,
                 warmup: int = 1) -> tuple[list[float], list[float]]:
    """Alternate ours and the peer (ours first each round) so load changes hit both."""
    peer_runs = runs if peer_runs is None else peer_runs
    for _ in range(warmup):
        ours()
        if peer_runs:
            peer()
    a, b = [], []
    for i in range(max(runs, peer_runs)):
        if i < runs:
            a.append(time_once(ours))
        if i < peer_runs:
            b.append(time_once(peer))
    return a, b


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - not on Linux
        return (float("nan"),) * 3


def cpu_busy_fraction(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy (any process) over ``seconds``, from /proc/stat."""

    def read():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return idle, sum(vals)

    try:
        i0, t0 = read()
        time.sleep(seconds)
        i1, t1 = read()
    except OSError:  # pragma: no cover
        return float("nan")
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def machine() -> dict:
    """CPU, cores, RAM and the versions that matter for these numbers."""
    info: dict = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    info["cores"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["ram_gb"] = round(kb / 1024 / 1024, 1)
    except OSError:  # pragma: no cover
        pass
    for mod in ("numpy", "numba", "OpenEXR", "OpenImageIO", "deflate", "PySide6", "pyqtgraph"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", getattr(m, "VERSION_STRING", "?"))
        except Exception:  # noqa: BLE001 - only for the report
            info[mod] = None
    try:
        import numba

        info["threading_layer"] = numba.config.THREADING_LAYER
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except Exception:  # noqa: BLE001
        pass
    return info


# --------------------------------------------------------------------------- reporting

HEADER = ("work", "median", "min", "runs", "peer (median)", "ratio", "target", "met")


def _cells(row: Row) -> tuple[str, ...]:
    ratio = row.ratio if row.ratio is not None else row.ratio_of_medians()
    peer = f"{row.peer} {row.shown(row.peer_median)}" if row.peer else "-"
    met = "-" if row.met is None else ("yes" if row.met else "NO")
    runs = f"{len(row.values)}" + (f"/{len(row.peer_values)}" if row.peer_values else "")
    return (row.work, row.shown(row.median), row.shown(row.best), runs, peer,
            "-" if ratio is None else f"{ratio:.2f}x", row.target or "-", met)


def print_row(row: Row, stream=sys.stdout) -> None:
    c = _cells(row)
    print(f"  {c[0]:<52} median {c[1]:>9}  min {c[2]:>9}  runs {c[3]:>5}  peer {c[4]:<22} "
          f"ratio {c[5]:>7}  target {c[6]}  -> {c[7]}", file=stream)
    if row.note:
        print(f"      {row.note}", file=stream)
    stream.flush()


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines)


def save(rows: list[Row], path, meta: dict) -> None:
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": [r.as_dict() for r in rows]}, f, indent=1, default=str)
