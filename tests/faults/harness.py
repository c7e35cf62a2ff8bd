"""A private RouterOps stack of real processes, faults to inject into it, and the counts.

Used by `scripts/faults.py` (`make test-faults`), the failure tests in this folder and
`bench/load.py`. Nothing here imports Django: the harness talks to the stack the way an
operator would — HTTP (RouterOpsClient, the provider's /admin routes), signals, the
services script, and SQL (psycopg) for the counts — so it runs the same inside pytest
(whose Django points at the checkout's own database) and in a plain script.

    stack = Stack.start(workers=2)          # private PostgreSQL + Redis + web + workers + beat + provider
    app = stack.application_create(budget=3)
    producer = Producer(stack, app, rate=40); producer.start()
    stack.worker_kill("worker1")           # SIGKILL its celery process; the supervisor restarts it
    report = Report.collect(stack, app, producer); report.print(); report.ok
    stack.stop()

Workers run under scripts/respawn.py, as production runs them under a restarting
supervisor: a worker that exits on a broker outage comes back, and each restart is a
`[respawn]` line in its log (`worker_restarts()`).

Only 127.0.0.1; every wait is bounded by a deadline; `stop()` ends exactly the
processes it started (by pid, each in its own process group) and the private
PostgreSQL/Redis (by their pid files).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
from celery import Celery

# Imported here, in the importing thread: importing them first from two threads at once
# (producer and duplicator) can see a half-initialised `celery` module.
from router_ops.simulation.scenario import Scenario
from router_ops.simulation.traffic import decisions_build
from routerops_client import RouterOpsClient, RouterOpsError

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
SERVICES = ROOT / "scripts" / "services.sh"
RESPAWN = ROOT / "scripts" / "respawn.py"
# What scripts/respawn.py logs when it restarts its child.
RESTART_LINE = re.compile(r"\[respawn\] .* \(pid \d+\) (?P<reason>.+) after [\d.]+s; restart \d+ in ")
PG_OPTS = "-c fsync=off -c full_page_writes=off"
TEMPLATE_ROOT = Path(tempfile.gettempdir())

log = logging.getLogger("faults")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing is not up yet
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last_exc})" if last_exc else ""))


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from /proc (parent pid → child pids)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    return children


def _migrations_digest() -> str:
    digest = hashlib.sha256()
    for path in [ROOT / "router_ops" / "settings.py", *sorted(ROOT.glob("**/migrations/*.py"))]:
        if ".venv" in path.parts:
            continue
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class App:
    id: int
    api_key: str
    slug: str
    budget: Decimal


class Stack:
    """PostgreSQL + Redis (scripts/services.sh on a private folder), gunicorn, Celery
    workers, beat and the simulated provider, all on free 127.0.0.1 ports."""

    def __init__(self, *, web_workers: int = 2, provider_latency_ms: float = 50.0, extra_env: dict | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="routerops-faults-"))
        self.dir.chmod(0o755)  # the postgres user must traverse it
        self.var = self.dir / "var"
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.pg_port, self.redis_port = free_port(), free_port()
        self.web_port, self.provider_port = free_port(), free_port()
        self.web_workers = web_workers
        self.provider_latency_ms = provider_latency_ms
        self.database_url = f"postgresql://routerops@127.0.0.1:{self.pg_port}/routerops"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.provider_url = f"http://127.0.0.1:{self.provider_port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.faults.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": "WARNING",
            "CELERY_VISIBILITY_TIMEOUT": "30",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.env.pop("TEST_DB_NAME", None)
        self.services_env = {
            **os.environ,
            "ROUTEROPS_VAR_DIR": str(self.var),
            "ROUTEROPS_PG_PORT": str(self.pg_port),
            "ROUTEROPS_REDIS_PORT": str(self.redis_port),
            "ROUTEROPS_PG_OPTS": PG_OPTS,
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.workers: list[str] = []
        self._worker_seq = 0
        self._db: psycopg.Connection | None = None

    # -- services ------------------------------------------------------------------

    def services(self, command: str) -> None:
        subprocess.run(
            [str(SERVICES), command],
            env=self.services_env,
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
            stderr=open(self.logs / "services.log", "a"),  # noqa: SIM115
        )

    def _database_prepare(self) -> None:
        """A migrated cluster: copied from a cached template (keyed by the migrations),
        else initialised, migrated, and saved as the template for the next run."""
        template = TEMPLATE_ROOT / f"routerops-faults-template-{_migrations_digest()}"
        self.var.mkdir()
        if (template / "PG_VERSION").exists():
            subprocess.run(["cp", "-a", str(template), str(self.var / "pg")], check=True)
            self.services("pg-start")
            # A no-op when the template is current; catches apps enabled since it was made.
            self.manage("migrate", "--noinput", "-v0", timeout=300)
            return
        self.services("pg-start")
        self.manage("migrate", "--noinput", "-v0", timeout=300)
        self.services("pg-stop")
        staging = Path(tempfile.mkdtemp(prefix="routerops-faults-template-staging-", dir=TEMPLATE_ROOT))
        subprocess.run(["cp", "-a", str(self.var / "pg"), str(staging / "pg")], check=True)
        for stale in ("postmaster.pid", "server.log"):
            (staging / "pg" / stale).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # another run saved it first
            (staging / "pg").rename(template)
        shutil.rmtree(staging, ignore_errors=True)
        self.services("pg-start")

    # -- processes ------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115
        # Its own process group: stop() can SIGKILL a process with all its children.
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env or self.env, stdout=out, stderr=subprocess.STDOUT, process_group=0
        )
        self.procs[name] = proc
        return proc

    def web_start(self) -> None:
        self.spawn(
            "web",
            [
                str(VENV_BIN / "gunicorn"),
                "router_ops.wsgi",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                str(self.web_workers),
                "--threads",
                "4",
                "--log-level",
                "warning",
                "--timeout",
                "60",
            ],
        )
        wait_for(lambda: httpx.get(f"{self.web_url}/healthz", timeout=5).status_code == 200, 120, "gunicorn")

    def provider_start(self) -> None:
        self.spawn(
            "provider",
            [
                str(VENV_BIN / "python"),
                "manage.py",
                "run_simulated_provider",
                "--port",
                str(self.provider_port),
                "--latency-ms",
                str(self.provider_latency_ms),
            ],
        )
        wait_for(lambda: httpx.get(f"{self.provider_url}/healthz", timeout=2).status_code == 200, 120, "provider")

    def worker_start(self, concurrency: int = 8) -> str:
        self._worker_seq += 1
        name = f"worker{self._worker_seq}"
        self.spawn(
            name,
            [
                str(VENV_BIN / "python"),
                str(RESPAWN),
                "--",
                str(VENV_BIN / "celery"),
                "-A",
                "router_ops",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--queues",
                "celery,judge",
                "-n",
                f"{name}@faults-{self.redis_port}",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
            ],
        )
        self.workers.append(name)
        return name

    def beat_start(self) -> None:
        self.spawn(
            "beat",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "router_ops",
                "beat",
                "--schedule",
                str(self.dir / "celerybeat-schedule"),
                "--loglevel",
                "WARNING",
            ],
        )

    @classmethod
    def start(cls, *, workers: int = 1, **kwargs) -> Stack:
        stack = cls(**kwargs)
        try:
            stack._database_prepare()
            stack.services("redis-start")
            stack.provider_start()
            for _ in range(workers):
                stack.worker_start()
            stack.beat_start()
            stack.web_start()
        except BaseException:
            for log_file in sorted(stack.logs.glob("*.log")):
                tail = log_file.read_text(errors="replace")[-1500:]
                print(f"--- {log_file.name} (last lines)\n{tail}", file=sys.stderr)
            stack.stop()
            raise
        return stack

    def _end(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self, keep_dir: bool = False) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
        for proc in list(self.procs.values()):
            with contextlib.suppress(Exception):
                self._end(proc)
        with contextlib.suppress(Exception):
            self.services("stop")
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- faults ---------------------------------------------------------------------------

    def worker_pid(self, name: str) -> int | None:
        """The celery process of a worker (the supervisor's child); None between restarts."""
        proc = self.procs[name]
        if proc.poll() is not None:
            return None
        children = children_by_parent().get(proc.pid, [])
        return children[0] if children else None

    def worker_kill(self, name: str) -> int:
        """SIGKILL a worker's celery process (no warm shutdown, no acks: its tasks die
        mid-call); its supervisor restarts it as it would in production."""
        pid = self.worker_pid(name)
        if pid is None:
            raise RuntimeError(f"{name} has no celery process to kill")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.worker_pid(name) != pid, 10, f"{name} (pid {pid}) to die")
        return pid

    def worker_restarts(self) -> dict[str, list[str]]:
        """Why each worker's supervisor restarted it (`killed by SIGKILL`, `exit 1`, …)."""
        restarts = {}
        for name in self.workers:
            lines = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()
            restarts[name] = [match["reason"] for match in map(RESTART_LINE.match, lines) if match]
        return restarts

    def provider_stats(self) -> dict:
        return httpx.get(f"{self.provider_url}/admin/stats", timeout=5).json()

    def provider_fault(self, **fault) -> None:
        response = httpx.post(f"{self.provider_url}/admin/faults", json=fault, timeout=5)
        response.raise_for_status()

    def provider_fault_clear(self) -> None:
        httpx.delete(f"{self.provider_url}/admin/faults", timeout=5)

    def redis_llen(self, *queues: str) -> dict[str, int]:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
        try:
            return {q: int(client.llen(q)) for q in queues}
        finally:
            client.close()

    # -- database -------------------------------------------------------------------------

    def sql(self, query: str, params=None) -> list[tuple]:
        """One query on the private database (reconnecting after a PostgreSQL restart)."""
        for attempt in range(3):
            try:
                if self._db is None or self._db.closed:
                    self._db = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
                return self._db.execute(query, params).fetchall()
            except psycopg.OperationalError:
                self._db = None
                if attempt == 2:
                    raise
                time.sleep(0.5)
        return []

    def application_create(self, *, slug: str = "faults", budget: Decimal | str = "1000", **policy) -> App:
        args = ["--slug", slug, "--provider-url", f"{self.provider_url}/v1", "--budget", str(budget)]
        for name, value in policy.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        result = subprocess.run(
            [str(VENV_BIN / "python"), "-m", "tests.faults.setup_app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"setup_app failed: {result.stderr[-2000:]}")
        data = json.loads(result.stdout.strip().splitlines()[-1])
        return App(id=data["application_id"], api_key=data["api_key"], slug=slug, budget=Decimal(str(budget)))

    def open_jobs(self, app: App) -> int:
        """Shadow or judge jobs not finished: pending, enqueued or running."""
        return self.sql(
            "SELECT count(*) FROM shadow_shadowsample WHERE application_id = %s AND (status IN "
            "('pending','enqueued','running') OR judge_status IN ('pending','enqueued','running'))",
            [app.id],
        )[0][0]

    def running_ids(self, app: App) -> set[int]:
        """Samples whose shadow or judge job is running right now."""
        rows = self.sql(
            "SELECT id FROM shadow_shadowsample WHERE application_id = %s "
            "AND (status = 'running' OR judge_status = 'running')",
            [app.id],
        )
        return {row[0] for row in rows}

    def drain(self, app: App, timeout: float) -> float:
        """Wait until no job of the application is open; returns the seconds it took."""
        started = time.monotonic()
        wait_for(lambda: self.open_jobs(app) == 0, timeout, "the outbox to drain", interval=0.5)
        return time.monotonic() - started

    def rss_mb(self, name: str) -> float:
        """RSS of a started process and all its descendants (gunicorn's workers, a worker's celery), in MB."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return 0.0
        pids = [proc.pid]
        children = children_by_parent()
        index = 0
        while index < len(pids):
            pids.extend(children.get(pids[index], []))
            index += 1
        total_kb = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        return total_kb / 1024


# -- the producer: decisions through the SDK, every acknowledgement recorded ---------------


class Producer(threading.Thread):
    """Sends simulated decisions through RouterOpsClient at a steady rate until stopped.

    A batch counts as acknowledged only when the API answered it with a 2xx (the
    client retries 429/5xx and connection errors itself); a batch whose retries ran
    out is sent again, same ids, until the stop deadline. `acked` holds every
    acknowledged decision_id.
    """

    def __init__(self, stack: Stack, app: App, *, rate: float = 40.0, batch: int = 20, seed: int = 11):
        super().__init__(name="producer", daemon=True)
        self.stack, self.app = stack, app
        self.rate, self.batch, self.seed = rate, batch, seed
        self.acked: set[str] = set()
        self.sent = 0
        self.batches_failed = 0  # retries exhausted (then sent again)
        self.rejected = 0
        self.gave_up: list[str] = []  # ids never acknowledged (stop deadline reached)
        self.latencies: list[float] = []
        self._halt = threading.Event()
        self._give_up_at = float("inf")
        self.error: BaseException | None = None

    def stop(self, give_up_after: float = 60.0) -> None:
        self._give_up_at = time.monotonic() + give_up_after
        self._halt.set()

    def run(self) -> None:
        from datetime import UTC, datetime

        scenario = Scenario(seed=self.seed)
        client = RouterOpsClient(
            self.stack.web_url, self.app.api_key, batch_size=self.batch, timeout=10, max_retries=6, backoff_cap=2.0
        )
        index = 0
        interval = self.batch / self.rate
        next_at = time.monotonic()
        try:
            while not self._halt.is_set():
                items = decisions_build(scenario, start_index=index, count=self.batch, occurred_at=datetime.now(UTC))
                index += self.batch
                ids = [item["decision_id"] for item in items]
                while True:
                    started = time.perf_counter()
                    try:
                        summary = client.send_decisions(items)
                    except RouterOpsError as exc:
                        self.batches_failed += 1
                        log.warning("producer: batch failed after retries (%s); sending it again", exc)
                        if time.monotonic() > self._give_up_at:
                            self.gave_up.extend(ids)
                            break
                        time.sleep(0.5)
                        continue
                    self.latencies.append(time.perf_counter() - started)
                    self.rejected += summary.rejected
                    rejected_idx = {e["index"] for e in summary.errors}
                    self.acked.update(i for n, i in enumerate(ids) if n not in rejected_idx)
                    break
                self.sent += len(ids)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._halt.wait(delay)
                else:
                    next_at = time.monotonic()  # after a stall: no burst to catch up
        except BaseException as exc:  # surfaced by the report
            self.error = exc
        finally:
            client.close()


# -- (e) every message delivered twice --------------------------------------------------------


class Duplicator(threading.Thread):
    """Publishes a second copy of every shadow.run and judging.judge_pair message.

    It watches the outbox: as soon as the relay (or a shadow task) has enqueued a job,
    the same task name with the job's sample id (in a batch of its own) goes to the same queue once more,
    through the broker as any producer would. The pipeline must run each job once:
    one ShadowRun, one Judgment per (sample, judge). Copies that could not be sent
    (broker down) are tried again on the next poll.
    """

    BATCH = 7

    def __init__(self, stack: Stack, app: App, interval: float = 0.3):
        super().__init__(name="duplicator", daemon=True)
        self.stack, self.app, self.interval = stack, app, interval
        self.shadow_sent: set[int] = set()
        self.judge_sent: set[int] = set()
        self.send_errors = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        celery = Celery("faults-duplicator", broker=self.stack.redis_url)
        celery.conf.broker_connection_retry_on_startup = False
        celery.conf.broker_connection_timeout = 2
        celery.conf.task_serializer = "json"
        while not self._halt.wait(self.interval):
            try:
                rows = self.stack.sql(
                    "SELECT id, status <> 'pending', judge_status NOT IN ('', 'pending') "
                    "FROM shadow_shadowsample WHERE application_id = %s",
                    [self.app.id],
                )
            except Exception as exc:  # PostgreSQL restarting: next poll
                log.debug("duplicator: outbox not readable: %s", exc)
                continue
            for column, sent, task, queue in (
                (1, self.shadow_sent, "shadow.run", "celery"),
                (2, self.judge_sent, "judging.judge_pair", "judge"),
            ):
                fresh = sorted(row[0] for row in rows if row[column] and row[0] not in sent)
                # Copies batched as the relay batches, but cut differently: the copy of a
                # job usually travels with other jobs than its original did.
                for start in range(0, len(fresh), self.BATCH):
                    batch = fresh[start : start + self.BATCH]
                    try:
                        celery.send_task(task, args=[batch], queue=queue, retry=False)
                        sent.update(batch)
                    except Exception:
                        self.send_errors += 1
                        break
        with contextlib.suppress(Exception):
            celery.close()


# -- the counts ------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    left: str
    right: str
    ok: bool


@dataclass
class Report:
    rows: list[Check] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def print(self, out=None) -> None:
        out = out or sys.stdout
        width = max(len(r.name) for r in self.rows) + 2
        print(f"\n{'check':<{width}} {'expected':>28} {'actual':>28}  result", file=out)
        print("-" * (width + 68), file=out)
        for r in self.rows:
            print(f"{r.name:<{width}} {r.left:>28} {r.right:>28}  {'OK' if r.ok else 'FAIL'}", file=out)
        print("", file=out)
        for key, value in self.info.items():
            print(f"  {key}: {value}", file=out)
        print(f"\nRESULT: {'PASS' if self.ok else 'FAIL'}", file=out)

    @classmethod
    def collect(cls, stack: Stack, app: App, producer: Producer | None = None) -> Report:
        report = cls()
        q = stack.sql
        stored = {row[0] for row in q("SELECT decision_id FROM ingest_decision WHERE application_id = %s", [app.id])}
        if producer is not None:
            acked = producer.acked
            lost = len(acked - stored)
            report.rows.append(
                Check(
                    "decisions acked (2xx) = stored",
                    f"{len(acked)} acked",
                    f"{len(stored)} stored",
                    len(acked) == len(stored) and lost == 0,
                )
            )
            report.rows.append(Check("acked but not stored (lost)", "0", str(lost), lost == 0))
            report.info["producer"] = (
                f"sent {producer.sent}, acked {len(acked)}, rejected {producer.rejected}, "
                f"batches whose retries ran out (re-sent) {producer.batches_failed}, never acked {len(producer.gave_up)}, "
                f"stored-but-unacked {len(stored - acked)}"
            )
            if producer.error is not None:
                report.rows.append(Check("producer ran without error", "no error", repr(producer.error)[:28], False))
        (sampled,) = q("SELECT count(*) FROM shadow_shadowsample WHERE application_id = %s", [app.id])[0]
        status = dict(
            q("SELECT status, count(*) FROM shadow_shadowsample WHERE application_id = %s GROUP BY 1", [app.id])
        )
        judge_status = dict(
            q("SELECT judge_status, count(*) FROM shadow_shadowsample WHERE application_id = %s GROUP BY 1", [app.id])
        )
        (failed_no_reason,) = q(
            "SELECT count(*) FROM shadow_shadowsample WHERE application_id = %s AND "
            "((status = 'failed' AND error = '') OR (judge_status = 'failed' AND judge_error = ''))",
            [app.id],
        )[0]
        done, failed = status.get("done", 0), status.get("failed", 0)
        stuck = sum(status.get(s, 0) for s in ("pending", "enqueued", "running"))
        judge_stuck = sum(judge_status.get(s, 0) for s in ("pending", "enqueued", "running"))
        report.rows.append(
            Check(
                "sampled = shadow done + failed",
                f"{sampled} sampled",
                f"{done} done + {failed} failed",
                sampled == done + failed and sampled > 0,
            )
        )
        report.rows.append(Check("shadow jobs stuck (pending/enq/run)", "0", str(stuck), stuck == 0))
        report.rows.append(Check("judge jobs stuck (pending/enq/run)", "0", str(judge_stuck), judge_stuck == 0))
        report.rows.append(Check("failed without a reason", "0", str(failed_no_reason), failed_no_reason == 0))
        (dup_judgments,) = q(
            "SELECT count(*) FROM (SELECT 1 FROM judging_judgment WHERE application_id = %s "
            "GROUP BY sample_id, judge_id HAVING count(*) > 1) g",
            [app.id],
        )[0]
        (dup_runs,) = q(
            "SELECT count(*) FROM (SELECT 1 FROM shadow_shadowrun r JOIN shadow_shadowsample s "
            "ON s.id = r.sample_id WHERE s.application_id = %s GROUP BY r.sample_id "
            "HAVING count(*) > 1) g",
            [app.id],
        )[0]
        (runs,) = q(
            "SELECT count(*) FROM shadow_shadowrun r JOIN shadow_shadowsample s ON s.id = r.sample_id "
            "WHERE s.application_id = %s",
            [app.id],
        )[0]
        report.rows.append(Check("duplicate judgments (sample,judge)", "0", str(dup_judgments), dup_judgments == 0))
        report.rows.append(Check("samples with >1 shadow run", "0", str(dup_runs), dup_runs == 0))
        report.rows.append(Check("shadow runs = shadow done", str(done), str(runs), runs == done))
        spent, reserved, refused = q(
            "SELECT coalesce(sum(shadow_spent_usd + judge_spent_usd), 0), coalesce(sum(reserved_usd), 0), "
            "coalesce(sum(refused), 0) FROM shadow_budgetday WHERE application_id = %s",
            [app.id],
        )[0]
        run_cost, run_max = q(
            "SELECT coalesce(sum(cost_usd), 0), coalesce(max(cost_usd), 0) FROM shadow_shadowrun r "
            "JOIN shadow_shadowsample s ON s.id = r.sample_id WHERE s.application_id = %s",
            [app.id],
        )[0]
        judge_cost, judge_max = q(
            "SELECT coalesce(sum(cost_usd), 0), coalesce(max(cost_usd), 0) FROM judging_judgment "
            "WHERE application_id = %s",
            [app.id],
        )[0]
        one_call = max(run_max, judge_max)
        # The cap is per UTC day: a run that crosses midnight has two ledger rows, each under it.
        by_day = q(
            "SELECT day, shadow_spent_usd + judge_spent_usd FROM shadow_budgetday WHERE application_id = %s "
            "ORDER BY day",
            [app.id],
        )
        overspend = max((day_spent - app.budget for _, day_spent in by_day), default=-app.budget)
        report.rows.append(
            Check("budget overspend <= one call", f"<= {one_call:.6f}", f"{overspend:.6f}", overspend <= one_call)
        )
        (budget_failed,) = q(
            "SELECT count(*) FROM shadow_shadowsample WHERE application_id = %s AND "
            "(error LIKE 'budget:%%' OR judge_error LIKE '%%budget:%%')",
            [app.id],
        )[0]
        (multi_claim,) = q(
            "SELECT count(*) FROM shadow_shadowsample WHERE application_id = %s AND attempts > 1", [app.id]
        )[0]
        reasons = q(
            "SELECT left(error, 70), count(*) FROM shadow_shadowsample WHERE application_id = %s AND "
            "status = 'failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
            [app.id],
        )
        judge_reasons = q(
            "SELECT left(judge_error, 70), count(*) FROM shadow_shadowsample WHERE application_id = %s "
            "AND judge_status = 'failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
            [app.id],
        )
        report.info.update(
            {
                "budget": f"cap {app.budget} USD, spent {spent:.6f} (ledger) vs rows {run_cost + judge_cost:.6f} "
                f"(runs {run_cost:.6f} + judgments {judge_cost:.6f}), still reserved {reserved:.6f}, "
                f"calls refused {refused}, samples failed for budget {budget_failed}"
                + (
                    "; per UTC day: " + ", ".join(f"{day} {day_spent:.6f}" for day, day_spent in by_day)
                    if len(by_day) > 1
                    else ""
                ),
                "largest single call": f"shadow run {run_max:.6f}, judgment {judge_max:.6f} USD",
                "shadow status": dict(status),
                "judge status": dict(judge_status),
                "samples claimed more than once (redelivered/re-leased)": multi_claim,
                "shadow failure reasons": reasons,
                "judge failure reasons": judge_reasons,
            }
        )
        return report
