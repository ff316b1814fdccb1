"""Where the shared third-party test data lives, and how tests skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTDATA = Path(os.environ.get("DEEPSCOPE_TESTDATA", REPO.parent / "shared" / "testdata"))


def shared_path(*parts: str) -> Path:
    """A path inside the shared test data; skips the test when the folder is absent."""
    if not TESTDATA.is_dir():
        pytest.skip(f"shared testdata not found at {TESTDATA} (set DEEPSCOPE_TESTDATA)")
    path = TESTDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is missing from the shared testdata")
    return path


def shared_files(pattern: str) -> list[str]:
    """Relative paths of test data files matching a glob, for parametrize (empty when absent)."""
    if not TESTDATA.is_dir():
        return []
    return sorted(str(p.relative_to(TESTDATA)) for p in TESTDATA.glob(pattern) if p.is_file())
