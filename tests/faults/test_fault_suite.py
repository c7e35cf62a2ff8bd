"""The whole fault-injection suite (`make test-faults`, scripts/faults.py) as part of `make test`:
it fits CI's time limit (about 2.5 minutes), so CI runs it on every change.

It starts its own private stack (PostgreSQL, Redis, gunicorn, 2 supervised workers, beat,
the simulated provider), injects (a) a worker SIGKILL, (b) a Redis stop/start, (c) a
PostgreSQL restart, (d) provider 5xx/429 and (e) every message delivered twice during
steady ingestion, then counts. The script exits 1 if any count is off; its table is
shown here when it fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.slow


def test_the_fault_suite_loses_nothing_and_duplicates_nothing():
    result = subprocess.run(
        [sys.executable, "scripts/faults.py"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    table = result.stdout[-6000:] + ("\n--- stderr\n" + result.stderr[-3000:] if result.returncode else "")
    assert result.returncode == 0, table
    assert "RESULT: PASS" in result.stdout, table
    for check in ("acked but not stored (lost)", "duplicate judgments (sample,judge)", "budget overspend"):
        line = next(line for line in result.stdout.splitlines() if line.startswith(check))
        assert line.rstrip().endswith("OK"), line
