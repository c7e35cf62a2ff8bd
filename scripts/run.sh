#!/usr/bin/env bash
# `make run`: migrate, create the demo data, then run web, worker, beat, the simulated
# provider and the demo traffic generator together under honcho. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export ROUTEROPS_WEB_PORT=${ROUTEROPS_WEB_PORT:-8000}
export ROUTEROPS_SIM_PORT=${ROUTEROPS_SIM_PORT:-8100}

mkdir -p var/static
$PY manage.py migrate --noinput -v0
$PY manage.py createcachetable
$PY manage.py bootstrap_demo --sim-url "http://127.0.0.1:${ROUTEROPS_SIM_PORT}/v1"
# Where the demo traffic resumes (bootstrap_demo wrote it: after what an earlier run sent).
ROUTEROPS_DEMO_START=$(cat var/demo_next_index)
export ROUTEROPS_DEMO_START

cat <<MSG

  RouterOps is starting.
  Dashboard:  http://127.0.0.1:${ROUTEROPS_WEB_PORT}/   (log in with the admin user above)
  API docs:   http://127.0.0.1:${ROUTEROPS_WEB_PORT}/api/v1/docs/
  Admin:      http://127.0.0.1:${ROUTEROPS_WEB_PORT}/admin/
  Press Ctrl-C to stop everything (PostgreSQL and Redis keep running: 'make stop').

MSG

# honcho in the background, so that INT/TERM sent to this script (or to make)
# reach it and we wait for its children to stop before exiting.
.venv/bin/honcho start -f Procfile &
honcho_pid=$!
trap 'kill -TERM "$honcho_pid" 2>/dev/null || true' INT TERM
wait "$honcho_pid" || true
wait "$honcho_pid" 2>/dev/null || true
