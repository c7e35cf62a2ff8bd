#!/usr/bin/env python3
"""Run a command and start it again when it dies: a tiny supervisor (stdlib only).

    scripts/respawn.py [--max-restarts N] [--backoff S] -- command args…

What systemd's `Restart=on-failure` or a Kubernetes pod does in production, for
`make run` (the Procfile's worker) and the fault suite's workers:

1. Runs the command as a child in the same process group, so a signal sent to the
   group (honcho's SIGKILL after its grace period) still reaches it. A TERM sent to the
   group reaches the child twice (directly and forwarded); celery and gunicorn take a
   second TERM as the same warm shutdown.
2. When the child exits non-zero or is killed by a signal it did not get from us,
   logs one `[respawn]` line to stderr and starts it again after a backoff: --backoff
   seconds, doubled after each quick crash up to 10 s, back to --backoff once the child
   had stayed up 30 s. After --max-restarts restarts it gives up.
3. SIGTERM or SIGINT is forwarded to the child; the supervisor waits for it and exits
   with its status, without restarting. A child that exits 0 is not restarted either.

The exit status is the child's: its exit code, or 128 + the signal that killed it.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time

MAX_BACKOFF_S = 10.0
STABLE_S = 30.0


def exit_status(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode


def describe(returncode: int) -> str:
    if returncode >= 0:
        return f"exit {returncode}"
    return f"killed by {signal.Signals(-returncode).name}"


class Supervisor:
    def __init__(self, command: list[str], *, backoff: float, max_restarts: int | None):
        self.command, self.backoff, self.max_restarts = command, backoff, max_restarts
        self.child: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.stop_signal: int | None = None

    def forward(self, signum: int, frame) -> None:
        self.stop_signal = signum
        self.stopping.set()
        if self.child is not None:
            self.child.send_signal(signum)  # a no-op once the child has been reaped

    def run(self) -> int:
        restarts, delay = 0, self.backoff
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.command)
            if self.stopping.is_set():  # the signal came while the child was being started
                self.child.send_signal(self.stop_signal)
            returncode = self.child.wait()
            if self.stopping.is_set() or returncode == 0:
                return exit_status(returncode)
            if self.max_restarts is not None and restarts >= self.max_restarts:
                log(f"{self.name} {describe(returncode)}; {restarts} restart(s) made, giving up")
                return exit_status(returncode)
            up = time.monotonic() - started
            if up >= STABLE_S:
                delay = self.backoff
            restarts += 1
            log(
                f"{self.name} (pid {self.child.pid}) {describe(returncode)} after {up:.1f}s; "
                f"restart {restarts} in {delay:g}s"
            )
            if self.stopping.wait(delay):  # a signal during the backoff: nothing to forward it to
                return exit_status(returncode)
            delay = min(delay * 2, MAX_BACKOFF_S)

    @property
    def name(self) -> str:
        return self.command[0].rsplit("/", 1)[-1]


def log(message: str) -> None:
    print(f"[respawn] {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(usage="%(prog)s [--max-restarts N] [--backoff S] -- command args…")
    parser.add_argument("--max-restarts", type=int, default=None, help="give up after N restarts (default: never)")
    parser.add_argument("--backoff", type=float, default=1.0, help="first restart delay in seconds (doubles to 10)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    supervisor = Supervisor(command, backoff=args.backoff, max_restarts=args.max_restarts)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, supervisor.forward)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
