"""core._numba's process-wide options: OpenMP threads wait passively unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "import os, core._numba; print(os.environ.get('OMP_WAIT_POLICY'))"


def _run(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120, check=True)
    return out.stdout.strip()


def test_openmp_waits_passively_by_default():
    assert _run({}) == "PASSIVE"


def test_the_users_choice_is_kept():
    assert _run({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
