"""scripts/respawn.py with real processes: a child that records each start in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RESPAWN = Path(__file__).resolve().parents[1] / "scripts" / "respawn.py"

# Appends its pid to argv[1], then exits 1 until it has started argv[3] times; after
# that it exits with argv[2], or stays up if argv[2] is "up". TERM: records it, exits 7.
CHILD = """
import os, signal, sys, time
runs, outcome, times = sys.argv[1], sys.argv[2], int(sys.argv[3])
def on_term(signum, frame):
    open(runs + ".term", "w").close()
    sys.exit(7)
signal.signal(signal.SIGTERM, on_term)
with open(runs, "a") as f:
    f.write(f"{os.getpid()}\\n")
if len(open(runs).read().split()) < times:
    sys.exit(1)
if outcome != "up":
    sys.exit(int(outcome))
time.sleep(60)
"""


def respawn(tmp_path: Path, *, outcome: str, times: int, options: tuple[str, ...] = ()) -> subprocess.Popen:
    runs = tmp_path / "runs"
    return subprocess.Popen(
        [sys.executable, str(RESPAWN), "--backoff", "0.05", *options, "--"]
        + [sys.executable, "-c", CHILD, str(runs), outcome, str(times)],
        stderr=subprocess.PIPE,
        text=True,
    )


def starts(tmp_path: Path) -> list[int]:
    runs = tmp_path / "runs"
    return [int(pid) for pid in runs.read_text().split()] if runs.exists() else []


def wait_for_starts(tmp_path: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while len(starts(tmp_path)) < count:
        assert time.monotonic() < deadline, f"the child did not start {count} time(s)"
        time.sleep(0.02)
    return starts(tmp_path)


def test_it_restarts_a_child_that_exits_1_until_it_exits_0(tmp_path):
    proc = respawn(tmp_path, outcome="0", times=3)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert len(starts(tmp_path)) == 3
    lines = stderr.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("[respawn] python") and " exit 1 after " in line for line in lines)
    assert lines[1].endswith("; restart 2 in 0.1s")  # the backoff doubles


def test_it_gives_up_after_max_restarts_with_the_childs_status(tmp_path):
    proc = respawn(tmp_path, outcome="1", times=99, options=("--max-restarts", "2"))
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert len(starts(tmp_path)) == 3
    assert stderr.splitlines()[-1].endswith("exit 1; 2 restart(s) made, giving up")


def test_it_restarts_a_child_killed_by_a_signal_it_did_not_send(tmp_path):
    proc = respawn(tmp_path, outcome="up", times=1)
    (first,) = wait_for_starts(tmp_path, 1)
    os.kill(first, signal.SIGKILL)
    wait_for_starts(tmp_path, 2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 7
    assert f"(pid {first}) killed by SIGKILL after " in stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_it_forwards_a_stop_signal_and_exits_with_the_childs_status_without_restarting(tmp_path, signum):
    proc = respawn(tmp_path, outcome="up", times=1)
    wait_for_starts(tmp_path, 1)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=20)
    if signum == signal.SIGTERM:
        assert proc.returncode == 7  # the child's TERM handler ran: the signal was forwarded
        assert (tmp_path / "runs.term").exists()
    else:
        assert proc.returncode == 128 + signal.SIGINT  # the child died of the forwarded INT
    time.sleep(0.3)
    assert len(starts(tmp_path)) == 1
    assert "[respawn]" not in stderr
