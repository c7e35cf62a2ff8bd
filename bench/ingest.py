#!/usr/bin/env python3
"""End-to-end ingestion benchmark: the fast batch path against the naive one.

    .venv/bin/python bench/ingest.py [--decisions 200000] [--naive-decisions 5000]
                                     [--concurrency 4] [--workers NPROC] [--worker-class sync]

What it does, in order:

1. Drops and recreates a throwaway database (`routerops_bench_<pid>` by default) on the
   PostgreSQL server of this checkout (var/services.env), migrates it, and creates
   two applications with an ingest key each (one per path, so row counts are separate).
2. Pre-generates realistic decisions (attributes, ~200-character prompts, a response,
   shadow decisions on about a third) with unique ids, and pre-encodes every request
   body, so the client only sends bytes.
3. Starts gunicorn (production WSGI server, `--workers` = cores) on a free port with
   the production settings, posts the decisions in batches of 1000 to
   POST /api/v1/decisions from `--concurrency` client threads, and stops the clock
   when the rows counted in PostgreSQL equal what was sent (a 2xx is only answered
   after commit, so this is a check as much as a wait).
4. Same through the naive path (bench/naive.py: one decision per request, a plain DRF
   ModelSerializer), served by the same gunicorn with ROOT_URLCONF=bench.naive_urls.
5. Prints path, decisions, seconds, decisions/s, p50/p99 request latency, the client's
   own CPU time, and the ratio. Exits non-zero if any request fails or a row is missing.

Servers are stopped on exit, also on Ctrl-C. The bench database is dropped at the end
unless --keep-db. The per-key ingest throttle is raised for the run (THROTTLE_INGEST),
since one key sending 200 batches a few seconds apart is what is being measured.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BATCH = 1000

# --------------------------------------------------------------------------- setup


def services_database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    env_file = ROOT / "var" / "services.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("DATABASE_URL="):
                return line.partition("=")[2].strip()
    raise SystemExit("No DATABASE_URL: run `make services` first (it writes var/services.env).")


def with_database(url: str, name: str) -> str:
    return urlunparse(urlparse(url)._replace(path="/" + name))


def database_recreate(url: str, name: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def databases_stale_drop(url: str, prefix: str) -> None:
    """Drop `<prefix>_<pid>` databases left by runs that were killed (their pid is gone)."""
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        names = [
            row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "_%",))
        ]
        for name in names:
            suffix = name[len(prefix) + 1 :]
            if not suffix.isdigit():
                continue
            try:
                os.kill(int(suffix), 0)
                continue  # that run is still going
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_drop(url: str, name: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SETUP_SCRIPT = """
import json
from router_ops.applications.models import ApiKey
from router_ops.applications.services import api_key_create, application_create
from router_ops.rollouts.models import RouterVersion
out = {}
for slug in ("bench-fast", "bench-naive"):
    app, _ = application_create(slug=slug, name=slug)
    for name in VERSIONS:
        RouterVersion.objects.get_or_create(application=app, name=name)
    _, key = api_key_create(application=app, scopes=[ApiKey.SCOPE_INGEST], name="bench")
    out[slug] = {"id": app.id, "key": key}
print("BENCH-SETUP " + json.dumps(out))
"""

ROUTER_VERSIONS = ["v12", "v13", "v14-candidate"]


def bench_setup(env: dict) -> dict:
    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    script = f"VERSIONS = {ROUTER_VERSIONS!r}\n" + SETUP_SCRIPT
    done = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH-SETUP "):
            return orjson.loads(line.partition(" ")[2])
    raise SystemExit(f"setup printed no keys:\n{done.stdout}\n{done.stderr}")


# ------------------------------------------------------------------------ payloads

TENANTS = [f"tenant-{i:03d}" for i in range(40)]
TIERS = ["free", "pro", "team", "enterprise"]
CLIENTS = ["web-ui", "ios", "android", "python-requests", "node-fetch", "curl"]
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR"]
WORDS = (
    "summarise the quarterly report and list the three largest risks for the board explain why the "
    "deployment failed translate this paragraph into formal german write a sql query that joins orders "
    "with customers compare these two contracts and flag clauses about liability draft a polite reply"
).split()


def _text(rng: random.Random, length: int) -> str:
    out: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:length]


def decisions_generate(count: int, *, seed: int, tag: str) -> list[dict]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    run = uuid.uuid4().hex[:8]
    decisions = []
    for i in range(count):
        tier = rng.choices(TIERS, weights=[50, 30, 15, 5])[0]
        channel = "api" if rng.random() < 0.3 else "ui"
        score = round(rng.random(), 4)
        routed_to = "strong" if score > 0.62 else "cheap"
        prompt = _text(rng, rng.randint(150, 250))
        prompt_tokens = len(prompt) // 4
        completion_tokens = rng.randint(20, 400)
        decision = {
            "decision_id": f"{tag}-{run}-{i:08d}",
            "occurred_at": (start + timedelta(milliseconds=i * 7)).isoformat().replace("+00:00", "Z"),
            "router_version": "v13" if rng.random() < 0.9 else "v12",
            "unit_id": f"user-{rng.randint(1, 50_000)}",
            "routed_to": routed_to,
            "model": "gpt-4o" if routed_to == "strong" else "gpt-4o-mini",
            "router_score": score,
            "prompt": prompt,
            "response": _text(rng, rng.randint(60, 160)),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "latency_ms": round(rng.uniform(150, 4000), 1),
            "attributes": {
                "tenant": rng.choice(TENANTS),
                "user_tier": tier,
                "channel": channel,
                "client": rng.choice(CLIENTS[3:] if channel == "api" else CLIENTS[:3]),
                "locale": rng.choice(LOCALES),
                "prompt_chars": len(prompt),
                "is_admin": tier == "enterprise" and rng.random() < 0.2,
            },
        }
        if rng.random() < 0.35:
            decision["shadow_decisions"] = [
                {
                    "router_version": "v14-candidate",
                    "routed_to": "strong" if score > 0.55 else "cheap",
                    "router_score": round(min(1.0, score + rng.uniform(-0.1, 0.1)), 4),
                }
            ]
        decisions.append(decision)
    return decisions


# -------------------------------------------------------------------------- server

_servers: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_start(
    *, env: dict, settings: str, workers: int, worker_class: str, threads: int, config: str | None = None
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        PYTHON,
        "-m",
        "gunicorn",
        "router_ops.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--backlog",
        "2048",
        "--timeout",
        "120",
        "--log-level",
        "warning",
    ]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    if config:
        command += ["--config", config]
    # The server's own output (e.g. "Bad Request" for the warm-up) goes to a log, shown on failure.
    log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": settings},
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    proc.log_path = log.name
    _servers.append(proc)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode} while starting:\n{server_log_tail(proc)}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def server_log_tail(proc: subprocess.Popen, lines: int = 30) -> str:
    try:
        return "\n".join(Path(proc.log_path).read_text(errors="replace").splitlines()[-lines:])
    except (OSError, AttributeError):
        return ""


def server_stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc in _servers:
        _servers.remove(proc)
    Path(proc.log_path).unlink(missing_ok=True)


def servers_stop_all() -> None:
    for proc in list(_servers):
        server_stop(proc)


# -------------------------------------------------------------------------- client


class Failure(Exception):
    pass


def requests_send(
    base: str, key: str, bodies: list[tuple[bytes, int]], *, concurrency: int, expect: int, check_accepted: bool
) -> tuple[float, list[float], float]:
    """Send every body; return (wall start, per-request latencies, client CPU seconds).

    The stdlib's http.client, one connection per thread (kept alive when the server
    allows): measured at ~0.2 ms of client CPU per request against httpx's ~0.55 ms,
    which matters on a 2-core machine where the client shares the cores with the server.
    """
    host, port = urlparse(base).hostname, urlparse(base).port
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    local = threading.local()

    def post(body: bytes) -> tuple[int, bytes]:
        reused = getattr(local, "conn", None) is not None
        if not reused:
            local.conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            local.conn.request("POST", "/api/v1/decisions", body, headers)
            response = local.conn.getresponse()
            data = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            local.conn.close()
            local.conn = None
            if reused:  # the server closed an idle kept-alive connection: nothing was processed
                return post(body)
            raise
        if response.will_close:
            local.conn.close()
            local.conn = None
        return response.status, data

    def send(body: bytes, count: int) -> float:
        began = time.perf_counter()
        status, data = post(body)
        elapsed = time.perf_counter() - began
        if status != expect:
            raise Failure(f"HTTP {status}: {data[:500]!r}")
        if check_accepted:
            result = orjson.loads(data)
            if result.get("accepted") != count or result.get("rejected"):
                raise Failure(f"batch of {count}: {data[:500]!r}")
        return elapsed

    cpu0 = time.process_time()
    start = time.perf_counter()
    latencies: list[float] = []
    pool = ThreadPoolExecutor(max_workers=concurrency)
    futures = [pool.submit(send, body, count) for body, count in bodies]
    try:
        for future in as_completed(futures):
            latencies.append(future.result())
    except BaseException:  # a failed request, or Ctrl-C: drop what has not started, then re-raise
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return start, latencies, time.process_time() - cpu0


def rows_wait(db_url: str, application_id: int, expected: int, timeout: float = 120) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while True:
            (count,) = conn.execute(
                "SELECT count(*) FROM ingest_decision WHERE application_id = %s", (application_id,)
            ).fetchone()
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(0.02)


def warm_up(base: str, key: str, *, workers: int, body: bytes, expect: int) -> None:
    """Invalid items only: every worker imports, authenticates and connects; nothing is stored."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for _ in range(workers * 4):
            response = c.post("/api/v1/decisions", content=body)
            if response.status_code != expect:
                raise Failure(f"warm-up: HTTP {response.status_code}: {response.text[:300]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def path_run(
    name: str,
    *,
    env: dict,
    settings: str,
    args,
    bench_db_url: str,
    app: dict,
    bodies: list[tuple[bytes, int]],
    expect: int,
    check_accepted: bool,
    warm_body: bytes,
    warm_expect: int,
) -> dict:
    decisions = sum(count for _, count in bodies)
    proc, base = server_start(
        env=env,
        settings=settings,
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads,
        config=args.gunicorn_config,
    )
    try:
        warm_up(base, app["key"], workers=args.workers, body=warm_body, expect=warm_expect)
        print(f"  {name}: sending {decisions:,} decisions in {len(bodies):,} requests …", flush=True)
        meter = CpuMeter(proc.pid, bench_db_url, urlparse(bench_db_url).path.strip("/"))
        start, latencies, client_cpu = requests_send(
            base, app["key"], bodies, concurrency=args.concurrency, expect=expect, check_accepted=check_accepted
        )
        responded = time.perf_counter()
        stored = rows_wait(bench_db_url, app["id"], decisions)
        durable = time.perf_counter()
        server_cpu, db_cpu = meter.stop()
    except Failure as exc:
        tail = server_log_tail(proc)
        raise Failure(f"{name}: {exc}" + (f"\n--- server log (tail) ---\n{tail}" if tail else "")) from None
    finally:
        server_stop(proc)
    if stored != decisions:
        raise Failure(f"{name}: {stored:,} rows stored, {decisions:,} sent")
    seconds = durable - start
    return {
        "path": name,
        "decisions": decisions,
        "requests": len(bodies),
        "seconds": seconds,
        "rate": decisions / seconds,
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
        "db_cpu": db_cpu,
        "wait_after_last_response": durable - responded,
    }


TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


class CpuMeter:
    """CPU seconds used by the gunicorn master + workers, and by the PostgreSQL backends
    serving the bench database (Linux /proc; zeros elsewhere). Sampled every 0.25 s so
    that a backend that exits during the run (CONN_MAX_AGE) still counts up to then."""

    def __init__(self, server_pid: int, db_url: str, db_name: str):
        self.server_pid, self.db_url, self.db_name = server_pid, db_url, db_name
        self.conn = psycopg.connect(db_url, autocommit=True)
        self.start: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self._sample(first=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self, first: bool = False) -> None:
        pids = {pid: "server" for pid in (self.server_pid, *_children(self.server_pid))}
        try:
            for (pid,) in self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.db_name,)
            ):
                pids[pid] = "db"
        except psycopg.Error:
            pass
        for pid, kind in pids.items():
            used = _cpu_seconds(pid)
            if used == 0.0 and pid in self.last:
                continue  # gone: keep its last value
            if first:
                self.start[pid] = used
            self.last[pid] = used
            self.kind[pid] = kind

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def stop(self) -> tuple[float, float]:
        """(server CPU s, PostgreSQL CPU s) since the start."""
        self._stop.set()
        self._thread.join()
        self._sample()
        self.conn.close()
        used = {"server": 0.0, "db": 0.0}
        for pid, last in self.last.items():
            used[self.kind[pid]] += last - self.start.get(pid, 0.0)
        return used["server"], used["db"]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=200_000, help="decisions through the fast path")
    parser.add_argument("--naive-decisions", type=int, default=5_000, help="decisions through the naive path (0: skip)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers (default: cores)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"], help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker with --worker-class gthread")
    parser.add_argument(
        "--fast-settings", default="router_ops.settings", help="settings module of the fast path's server"
    )
    parser.add_argument("--gunicorn-config", default=None, help="a gunicorn config file for both servers")
    parser.add_argument(
        "--db-name",
        default=f"routerops_bench_{os.getpid()}",
        help="throwaway database, dropped and recreated (default: one per run, so parallel runs do not collide)",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.decisions < BATCH:
        parser.error(f"--decisions must be at least {BATCH}")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    atexit.register(servers_stop_all)

    services_url = services_database_url()
    bench_db_url = with_database(services_url, args.db_name)
    if urlparse(bench_db_url).path.strip("/") == urlparse(services_url).path.strip("/"):
        raise SystemExit("--db-name must differ from the development database")
    env = {
        **os.environ,
        "DATABASE_URL": bench_db_url,
        "THROTTLE_INGEST": "1000000/min",
        "DEBUG": "false",
        "LOG_LEVEL": "ERROR",
        "PYTHONWARNINGS": "ignore:No directory at:UserWarning",
        "PYTHONUNBUFFERED": "1",
    }

    print(f"RouterOps ingestion benchmark — {os.cpu_count()} cores, load average {load_average()}")
    print(
        f"  database {args.db_name} (recreated), gunicorn {args.workers} × {args.worker_class} workers, "
        f"{args.concurrency} client threads"
    )
    setup_began = time.perf_counter()
    databases_stale_drop(services_url, "routerops_bench")
    database_recreate(services_url, args.db_name)
    try:
        apps = bench_setup(env)
        fast = decisions_generate(args.decisions, seed=args.seed, tag="fast")
        fast_bodies = [
            (orjson.dumps({"decisions": fast[i : i + BATCH]}), len(fast[i : i + BATCH]))
            for i in range(0, len(fast), BATCH)
        ]
        naive = decisions_generate(args.naive_decisions, seed=args.seed + 1, tag="naive")
        naive_bodies = [(orjson.dumps(d), 1) for d in naive]
        size = sum(len(b) for b, _ in fast_bodies)
        print(
            f"  set-up {time.perf_counter() - setup_began:.1f} s; fast path payload {size / 1e6:.1f} MB "
            f"({size / args.decisions:.0f} bytes per decision)"
        )
        invalid = {"decision_id": "warm-up", "routed_to": "nowhere"}

        results = [
            path_run(
                "batch (fast)",
                env=env,
                settings=args.fast_settings,
                args=args,
                bench_db_url=bench_db_url,
                app=apps["bench-fast"],
                bodies=fast_bodies,
                expect=200,
                check_accepted=True,
                warm_body=orjson.dumps({"decisions": [invalid] * 10}),
                warm_expect=207,
            )
        ]
        if args.naive_decisions:
            results.append(
                path_run(
                    "naive (1/request)",
                    env=env,
                    settings="bench.settings_naive",
                    args=args,
                    bench_db_url=bench_db_url,
                    app=apps["bench-naive"],
                    bodies=naive_bodies,
                    expect=201,
                    check_accepted=False,
                    warm_body=orjson.dumps(invalid),
                    warm_expect=400,
                )
            )
    except Failure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        servers_stop_all()
        if not args.keep_db:
            database_drop(services_url, args.db_name)

    print()
    header = (
        f"{'path':<19} {'decisions':>10} {'requests':>9} {'seconds':>8} {'decisions/s':>12} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'CPU µs/decision: app':>21} {'postgres':>9} {'client':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['path']:<19} {r['decisions']:>10,} {r['requests']:>9,} {r['seconds']:>8.2f} {r['rate']:>12,.0f} "
            f"{r['p50']:>8.1f} {r['p99']:>8.1f} {r['server_cpu'] / r['decisions'] * 1e6:>21.0f} "
            f"{r['db_cpu'] / r['decisions'] * 1e6:>9.0f} {r['client_cpu'] / r['decisions'] * 1e6:>7.0f}"
        )
    if len(results) == 2:
        ratio = results[0]["rate"] / results[1]["rate"]
        print(f"\nratio fast/naive: {ratio:.1f}×   (bar: ≥ 10,000 decisions/s and ≥ 20×)")
    print(f"load average after: {load_average()}")
    ok = results[0]["rate"] >= 10_000 and (len(results) < 2 or results[0]["rate"] / results[1]["rate"] >= 20)
    print("bar met" if ok else "bar NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
