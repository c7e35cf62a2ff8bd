"""Demo traffic: the simulated production router reporting its decisions over real HTTP.

Runs forever (until Ctrl-C or SIGTERM, which flush what is buffered first), or
stops after --count decisions. A rerun with the same --seed and --start-index
sends the same decision ids, so the server counts them as duplicates.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from router_ops.simulation.scenario import Scenario
from router_ops.simulation.traffic import DEFAULT_SEED, decision_build
from routerops_client import IngestSummary, RouterOpsClient, RouterOpsError, RouterOpsTransportError

# At demo rates a full batch takes a while to fill; the dashboard should not lag by more than this.
FLUSH_INTERVAL_S = 1.0
# After a stall (server down, retries), restart the schedule instead of bursting to catch up.
MAX_LAG_S = 1.0


class _ProgressBar:
    """One self-overwriting line on stderr: `[#####.....] 100/200  50% 19.9/s`."""

    WIDTH = 30

    def __init__(self, total: int, stream, *, min_interval: float = 0.1):
        self.total = total
        self.stream = stream
        self.min_interval = min_interval
        self.started = time.monotonic()
        self._last_drawn = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_drawn < self.min_interval:
            return
        self._last_drawn = now
        fraction = done / self.total if self.total else 1.0
        filled = int(self.WIDTH * fraction)
        rate = done / max(now - self.started, 1e-9)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {fraction:4.0%} {rate:.1f}/s", ending="")
        self.stream.flush()

    def finish(self, done: int) -> None:
        self.update(done, force=True)
        self.stream.write("")


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Send simulated routing decisions to a RouterOps server at a steady rate. The primary router "
        "(--router-version) routes on the scenario's score; the candidate (--candidate, logged as a shadow "
        'decision) also sends enterprise scripted-API prompts ("BULK-…") to the strong tier.'
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="RouterOps base URL")
        key = parser.add_mutually_exclusive_group()
        key.add_argument("--api-key", help="an API key with the ingest scope")
        key.add_argument(
            "--key-file", type=Path, help="file holding the API key (default: var/demo_api_key, see bootstrap_demo)"
        )
        parser.add_argument("--rate", type=float, default=20.0, help="decisions per second; 0 = as fast as possible")
        parser.add_argument("--count", type=int, help="stop after this many decisions (default: run until Ctrl-C)")
        parser.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help="scenario seed: the same seed sends the same decisions"
        )
        parser.add_argument("--start-index", type=int, default=0, help="index of the first scenario request")
        parser.add_argument("--threshold", type=float, default=0.5, help="router threshold: strong when score >= it")
        parser.add_argument("--router-version", default="v1", help="the primary (served) router version")
        parser.add_argument("--candidate", default="v2", help='shadow router version name; "" for none')
        parser.add_argument("--batch-size", type=int, default=50, help="decisions per request (1–1000)")

    def handle(self, *args, **options):
        api_key = self._api_key(options["api_key"], options["key_file"])
        rate, count, batch_size = options["rate"], options["count"], options["batch_size"]
        if rate < 0:
            raise CommandError("--rate must be >= 0")
        if count is not None and count < 0:
            raise CommandError("--count must be >= 0")
        if not 1 <= batch_size <= 1000:
            raise CommandError("--batch-size must be between 1 and 1000")
        if options["start_index"] < 0:
            raise CommandError("--start-index must be >= 0")

        scenario = Scenario(seed=options["seed"])
        candidate = options["candidate"] or None
        totals = IngestSummary()
        generated = 0
        in_main_thread = threading.current_thread() is threading.main_thread()
        # None when a C library installed it; SIG_DFL is the closest we can restore.
        previous_term = signal.getsignal(signal.SIGTERM) or signal.SIG_DFL
        previous_int = signal.getsignal(signal.SIGINT) or signal.SIG_DFL
        if in_main_thread:
            # honcho and `make run` stop us with SIGTERM: flush as on Ctrl-C.
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
            # Python leaves SIGINT ignored when the parent started us with it ignored (a
            # background job of a non-interactive shell): handle it explicitly.
            signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
        client = RouterOpsClient(options["url"], api_key, batch_size=batch_size)
        progress = _ProgressBar(count, self.stderr) if count is not None else None
        try:
            try:
                index = options["start_index"]
                next_at = last_flush = time.monotonic()
                while count is None or generated < count:
                    decision = decision_build(
                        scenario.request(index),
                        seed=scenario.seed,
                        occurred_at=datetime.now(UTC),
                        threshold=options["threshold"],
                        router_version=options["router_version"],
                        candidate=candidate,
                    )
                    index += 1
                    generated += 1
                    # add() sends by itself once batch_size are buffered (and then empties the buffer).
                    self._deliver(lambda d=decision: client.add(d), totals)
                    now = time.monotonic()
                    if client.pending == 0:
                        last_flush = now
                    elif now - last_flush >= FLUSH_INTERVAL_S:
                        self._deliver(client.flush, totals)
                        last_flush = now
                    if progress:
                        progress.update(generated)
                    if rate:
                        next_at += 1.0 / rate
                        delay = next_at - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        elif delay < -MAX_LAG_S:
                            next_at = time.monotonic()
            except KeyboardInterrupt:
                if progress:
                    progress.finish(generated)
                    progress = None
                self.stderr.write(f"Interrupted; sending {client.pending} buffered decisions (Ctrl-C again to drop).")
                # Shut down promptly even if the server is down: a full retry cycle can take a minute.
                client.retry.max_retries = min(client.retry.max_retries, 2)
                if in_main_thread:
                    # A supervisor (honcho) follows the terminal's SIGINT with its own SIGTERM;
                    # that one must not abort the flush. A second Ctrl-C still does.
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if progress:
                progress.finish(generated)
            try:
                if client.pending and not self._deliver(client.flush, totals, final=True):
                    raise CommandError(f"{client.pending} decisions were not delivered; rerun with the same seed.")
            except KeyboardInterrupt:
                raise CommandError(f"Dropped {client.pending} buffered decisions.") from None
        finally:
            client.close()
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous_term)
                signal.signal(signal.SIGINT, previous_int)
        # What the server acknowledged: an interrupt can land between building a decision and buffering it.
        self.stdout.write(
            f"Sent {totals.total} decisions to {options['url']}: {totals.accepted} accepted, "
            f"{totals.duplicates} duplicates, {totals.rejected} rejected."
        )

    def _deliver(self, send: Callable[[], IngestSummary | None], totals: IngestSummary, *, final: bool = False) -> bool:
        """Run one send; fold its summary into `totals`. False when the server could not be reached.

        A transient failure that outlasted the client's retries only warns: the
        decisions stay buffered and go out with the next flush (a resend is safe).
        A refusal (bad key, bad request) cannot get better by waiting: it stops the command.
        """
        try:
            summary = send()
        except RouterOpsError as error:
            transient = isinstance(error, RouterOpsTransportError) or error.status == 429 or (error.status or 0) >= 500
            if not transient:
                raise CommandError(f"RouterOps refused the decisions: {error}") from None
            if not final:
                self.stderr.write(f"RouterOps unavailable ({error}); will retry with the next batch.")
            return False
        if summary is None:
            return True
        totals.accepted += summary.accepted
        totals.duplicates += summary.duplicates
        totals.rejected += summary.rejected
        if summary.errors:
            first = summary.errors[0]
            self.stderr.write(
                f"{summary.rejected} decisions rejected, e.g. {first.get('decision_id')}: {first['errors']}"
            )
        return True

    def _api_key(self, api_key: str | None, key_file: Path | None) -> str:
        if api_key:
            return api_key.strip()
        path = key_file or Path(settings.BASE_DIR) / "var" / "demo_api_key"
        try:
            key = path.read_text().strip()
        except OSError as exc:
            raise CommandError(
                f"Cannot read the API key from {path} ({exc.strerror}). Give --api-key, or create the demo key "
                "with: manage.py bootstrap_demo"
            ) from None
        if not key:
            raise CommandError(f"{path} is empty; it should hold an API key with the ingest scope.")
        return key
