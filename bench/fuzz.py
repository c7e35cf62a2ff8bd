"""Fuzz the whole API with schemathesis against a live server on a throwaway database.

    .venv/bin/python bench/fuzz.py [--max-examples 50] [--workers 2] [--keep-db] [-- extra schemathesis args]

1. Create a database `routerops_fuzz_<pid>` next to the configured one, migrate it,
   create an application `fuzz` and a key with the ingest, read and admin scopes.
2. Start gunicorn on a free local port (throttles raised, a private Redis
   database so no real worker picks up its shadow jobs).
3. Run `schemathesis run <server>/api/v1/schema/` over every operation with all
   checks (no 5xx, status codes, content types and bodies as the schema says).
4. Print the number of generated cases and of failures per check, leave the
   JUnit and NDJSON reports in var/fuzz/, stop the server, drop the database.
Exit status: schemathesis's (0 = no failure).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENV_BIN = Path(sys.executable).parent
REPORTS = ROOT / "var" / "fuzz"


def _settings_env() -> dict[str, str]:
    values = {}
    path = ROOT / "var" / "services.env"
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    values.update({k: v for k, v in os.environ.items() if k in ("DATABASE_URL", "REDIS_URL")})
    return values


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _admin_url(database_url: str) -> str:
    return urlunparse(urlparse(database_url)._replace(path="/postgres"))


def _manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - a fixed http://127.0.0.1 URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the server did not answer {url} within {timeout:.0f}s")


def _summary(output: str) -> tuple[str, str]:
    """(the "N generated, …" line, the failure lines) of schemathesis's summary."""
    generated = re.search(r"^\s*(\d+ generated.*)$", output, re.MULTILINE)
    failures = re.findall(r"^\s*❌ (ST\d+ .*: \d+)$", output, re.MULTILINE)
    return (generated.group(1) if generated else "no summary line"), "; ".join(failures) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("extra", nargs="*", help="more schemathesis arguments (after --)")
    args = parser.parse_args()

    base = _settings_env()
    database_url = base.get("DATABASE_URL", "postgresql://routerops@127.0.0.1:54329/routerops")
    redis_url = base.get("REDIS_URL", "redis://127.0.0.1:56379/0")
    name = f"routerops_fuzz_{os.getpid()}"
    fuzz_db = urlunparse(urlparse(database_url)._replace(path=f"/{name}"))
    # A private Redis database: the shadow jobs the fuzzer causes reach no real worker.
    fuzz_redis = urlunparse(urlparse(redis_url)._replace(path="/13"))
    env = {
        **os.environ,
        "DATABASE_URL": fuzz_db,
        "REDIS_URL": fuzz_redis,
        "DJANGO_SETTINGS_MODULE": "router_ops.settings",
        "THROTTLE_INGEST": "1000000/min",
        "THROTTLE_READ": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }
    with psycopg.connect(_admin_url(database_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    server = None
    try:
        _manage(env, "migrate", "--noinput")
        _manage(env, "create_application", "fuzz")
        key = _manage(env, "create_api_key", "fuzz", "--scopes", "ingest,read,admin").strip().splitlines()[-1]
        port = _free_port()
        server = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "router_ops.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        _wait_for(f"http://127.0.0.1:{port}/healthz")
        REPORTS.mkdir(parents=True, exist_ok=True)
        ndjson = REPORTS / "events.ndjson"
        command = [
            str(VENV_BIN / "schemathesis"),
            "run",
            f"http://127.0.0.1:{port}/api/v1/schema/",
            "-H",
            f"Authorization: Bearer {key}",
            "--checks",
            "all",
            # ignored_auth sends requests without the key and expects 401: kept (it is the auth test).
            "--max-examples",
            str(args.max_examples),
            "--workers",
            str(args.workers),
            "--seed",
            str(args.seed),
            "--request-timeout",
            "30",
            "--report",
            "junit,ndjson",
            "--report-junit-path",
            str(REPORTS / "junit.xml"),
            "--report-ndjson-path",
            str(ndjson),
            "--generation-database",
            "none",
            "--no-color",
            *args.extra,
        ]
        started = time.monotonic()
        run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, errors="replace")
        output = []
        for line in run.stdout:
            sys.stdout.write(line)
            output.append(line)
        status = run.wait()
        generated, failures = _summary("".join(output))
        print(f"\nfuzz: {generated} in {time.monotonic() - started:.0f}s; failures: {failures}; exit {status}")
        print(f"fuzz: reports in {REPORTS.relative_to(ROOT)}/ (junit.xml, events.ndjson)")
        return status
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if not args.keep_db:
            with psycopg.connect(_admin_url(database_url), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
