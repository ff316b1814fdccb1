"""Print the README's performance table from a saved run: ``python -m tests.benchmarks.report [results.json]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.benchmarks.data import CACHE
from tests.benchmarks.harness import Row, markdown_table


def load(path: str | Path) -> tuple[dict, list[Row]]:
    with open(path) as f:
        data = json.load(f)
    rows = []
    for d in data["rows"]:
        for k in ("median", "best", "peer_median"):
            d.pop(k, None)
        rows.append(Row(**d))
    return data["meta"], rows


def machine_line(meta: dict) -> str:
    load = ", ".join(f"{v:.2f}" for v in meta.get("load_before", ()))
    return (f"{meta.get('cpu')} ({meta.get('cores')} cores), {meta.get('ram_gb')} GB RAM, Python {meta.get('python')}, "
            f"numpy {meta.get('numpy')}, numba {meta.get('numba')}, OpenEXR {meta.get('OpenEXR')}, "
            f"OpenImageIO {meta.get('OpenImageIO')}, deflate {meta.get('deflate')}, PySide6 {meta.get('PySide6')}; "
            f"load average before the run {load}, CPUs busy {meta.get('busy_before', float('nan')):.0%}")


def main(argv: list[str]) -> None:
    path = argv[0] if argv else CACHE / "results.json"
    meta, rows = load(path)
    print(machine_line(meta))
    print()
    print(markdown_table([r for r in rows if r.target != "(info)"]))
    print()
    print(markdown_table([r for r in rows if r.target == "(info)"]))


if __name__ == "__main__":
    main(sys.argv[1:])
