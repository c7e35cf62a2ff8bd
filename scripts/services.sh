#!/usr/bin/env bash
# Start / stop / report PostgreSQL and Redis for *this checkout*.
#
#   scripts/services.sh start    idempotent; writes var/services.env
#   scripts/services.sh stop
#   scripts/services.sh status
#
# Ports are derived from the checkout's path, so two checkouts on one machine
# (a developer's and a CI-like clone) never fight over a port. The chosen
# connection settings are written to var/services.env, which settings.py and
# Celery read, so nothing needs extra flags.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# ROUTEROPS_VAR_DIR: another folder for the cluster, pid files and services.env (the
# fault suite runs private services this way, next to the checkout's own). Ports then
# derive from that folder's path, so give ROUTEROPS_PG_PORT / ROUTEROPS_REDIS_PORT too.
# ROUTEROPS_PG_OPTS: extra server options for a throwaway cluster (e.g. "-c fsync=off").
VAR="${ROUTEROPS_VAR_DIR:-$ROOT/var}"
mkdir -p "$VAR"
VAR=$(cd "$VAR" && pwd)

if [ -n "${ROUTEROPS_VAR_DIR:-}" ]; then key=$VAR; else key=$ROOT; fi
offset=$(( $(printf '%s' "$key" | cksum | cut -d' ' -f1) % 900 ))
PG_PORT=${ROUTEROPS_PG_PORT:-$(( 54000 + offset ))}
REDIS_PORT=${ROUTEROPS_REDIS_PORT:-$(( 56000 + offset ))}

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
    # Only as root, only when missing. apt-get update once per call.
    is_root || die "$1 is missing. Install it (Debian: sudo apt-get install -y $1) and run again."
    command -v apt-get >/dev/null || die "$1 is missing and this machine has no apt-get; install it by hand."
    log "installing $1 from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

pg_bin() {
    local d
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    apt_install postgresql >/dev/null
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    die "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin)."
}

# PostgreSQL refuses to run as root: as root, run it as the 'postgres' user on a
# data folder that user owns. That user must be able to traverse the project's
# parents; if it cannot, the cluster lives under /tmp instead.
pg_datadir() {
    if is_root; then
        id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
        if runuser -u postgres -- test -x "$VAR"; then
            echo "$VAR/pg"
        else
            echo "/tmp/routerops-pg-$offset"
        fi
    else
        echo "$VAR/pg"
    fi
}

as_pg() {
    if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
    local bin data
    bin=$(pg_bin)
    data=$(pg_datadir)
    if [ ! -f "$data/PG_VERSION" ]; then
        log "initialising PostgreSQL cluster in $data"
        mkdir -p "$data"
        is_root && chown postgres:postgres "$data"
        chmod 700 "$data"
        as_pg "$bin/initdb" ${ROUTEROPS_PG_OPTS:+--no-sync} -D "$data" -U routerops --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "PostgreSQL already running ($data)"
    else
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        local logfile="$data/server.log"
        as_pg "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 \
            -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB ${ROUTEROPS_PG_OPTS:-}" \
            start >/dev/null || { tail -20 "$logfile" >&2; die "PostgreSQL did not start"; }
    fi
    # The application database; createdb fails harmlessly when it exists.
    "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U routerops -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='routerops'" | grep -q 1 ||
        "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U routerops routerops
    echo "$data" > "$VAR/pg.datadir"
}

pg_stop() {
    local bin data
    [ -f "$VAR/pg.datadir" ] || return 0
    data=$(cat "$VAR/pg.datadir")
    bin=$(pg_bin)
    if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "stopping PostgreSQL"
        as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
}

redis_running() {
    [ -f "$VAR/redis.pid" ] && kill -0 "$(cat "$VAR/redis.pid")" 2>/dev/null
}

redis_start() {
    command -v redis-server >/dev/null || apt_install redis-server
    if redis_running; then
        log "Redis already running (pid $(cat "$VAR/redis.pid"))"
        return
    fi
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$VAR/redis.pid" --logfile "$VAR/redis.log" --dir "$VAR"
    for _ in $(seq 50); do
        redis_running && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "Redis did not start; see $VAR/redis.log"
}

redis_stop() {
    if redis_running; then
        log "stopping Redis"
        kill "$(cat "$VAR/redis.pid")"
        for _ in $(seq 50); do redis_running || break; sleep 0.1; done
    fi
    rm -f "$VAR/redis.pid"
}

write_env() {
    cat > "$VAR/services.env" <<EOF
# Written by scripts/services.sh for this checkout; environment variables override it.
DATABASE_URL=postgresql://routerops@127.0.0.1:$PG_PORT/routerops
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
EOF
}

case "${1:-start}" in
    start) pg_start; redis_start; write_env; log "ready: PostgreSQL :$PG_PORT, Redis :$REDIS_PORT" ;;
    stop) redis_stop; pg_stop ;;
    status)
        data=$(cat "$VAR/pg.datadir" 2>/dev/null || echo none)
        as_pg "$(pg_bin)/pg_ctl" -D "$data" status >/dev/null 2>&1 && echo "postgres: running ($data, :$PG_PORT)" || echo "postgres: stopped"
        redis_running && echo "redis: running (:$REDIS_PORT)" || echo "redis: stopped" ;;
    pg-stop) pg_stop ;;
    pg-start) pg_start ;;
    pg-restart) pg_stop; pg_start ;;
    redis-stop) redis_stop ;;
    redis-start) redis_start ;;
    *) die "usage: $0 start|stop|status" ;;
esac
