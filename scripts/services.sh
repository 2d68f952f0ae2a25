#!/usr/bin/env bash
# Private Postgres and Redis for Puff's tests, benchmarks and demo (docs/services.md).
#
#   scripts/services.sh start    start both (idempotent: a running, answering pair is reused)
#   scripts/services.sh stop     stop both (data is kept for a fast restart)
#   scripts/services.sh status   show both; exit 0 only when both answer
#   scripts/services.sh env      print `export PUFF_*_URL=...` lines:  eval "$(scripts/services.sh env)"
#   scripts/services.sh reset    stop both and delete their data and state
#
# The servers come from the system packages (postgresql 15, redis-server), listen on 127.0.0.1
# only, on free ports picked at first start (and kept while they stay free). State lives in
# <repo>/.puff/services/. Postgres refuses to run as root, so as root initdb/pg_ctl run as the
# `postgres` system user; its data directory is /tmp/puff-pg-<hash of the repo path>/, which that
# user can reach whatever folder the repo was cloned into.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
STATE="$REPO/.puff/services"
PG_BIN="${PUFF_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT_BASE="${PUFF_PG_PORT_BASE:-25432}"
REDIS_PORT_BASE="${PUFF_REDIS_PORT_BASE:-26379}"
START_TIMEOUT="${PUFF_SERVICES_TIMEOUT:-30}"   # seconds to wait for each server to answer
PG_DB="puff"

HASH="$(printf '%s' "$REPO" | sha1sum | cut -c1-12)"
PG_BASE="/tmp/puff-pg-$HASH"      # owned by the user Postgres runs as
PG_DATA="$PG_BASE/data"           # also the unix socket directory
PG_LOG="$PG_BASE/postgres.log"
REDIS_DIR="$STATE/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"

if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

die() {
  echo "services.sh: $*" >&2
  exit 1
}
say() { echo "services: $*" >&2; }

# ---- who runs Postgres ------------------------------------------------------------------------

if [ "$(id -u)" -eq 0 ]; then
  PG_USER=postgres
  id -u "$PG_USER" >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (apt-get install postgresql)"
else
  PG_USER="$(id -un)"
fi

# Runs a command as the Postgres user, from / (its cwd may be unreadable to that user).
# fd 9 is our lock: a server started from here must not inherit it.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u "$PG_USER" -- "$@") 9>&-
  else
    (cd / && "$@") 9>&-
  fi
}

# ---- small helpers ------------------------------------------------------------------------------

read_state() { # name -> value or empty
  if [ -f "$STATE/$1" ]; then cat "$STATE/$1"; fi
}
write_state() { printf '%s\n' "$2" >"$STATE/$1"; }

# First port >= $1 that no socket is bound to on 127.0.0.1 (and is not $2).
free_port() {
  "$PY" - "$1" "${2:-0}" <<'EOF'
import socket, sys
start, avoid = int(sys.argv[1]), int(sys.argv[2])
for port in range(start, start + 2000):
    if port == avoid:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Like the servers: connections in TIME_WAIT on the port do not make it busy.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("no free port in %d..%d" % (start, start + 2000))
EOF
}

port_is_free() { [ "$(free_port "$1")" = "$1" ]; }

# A live process (a zombie waiting for its reaper does not count).
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
  [ "$state" != "Z" ]
}

proc_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }

log_tail() { # file, title
  echo "---- last lines of $1 ----" >&2
  if [ -r "$1" ]; then tail -n 25 "$1" >&2; else echo "(no log)" >&2; fi
  echo "----" >&2
}

pg_url() { echo "postgres://postgres@127.0.0.1:$1/$PG_DB"; }
redis_url() { echo "redis://127.0.0.1:$1/0"; }

# ---- Postgres -----------------------------------------------------------------------------------

# Bounded waits everywhere: a foreign program may hold a recorded port and never answer.
rcli() { # port, args...
  local port="$1"
  shift
  timeout 3 redis-cli -h 127.0.0.1 -p "$port" "$@"
}

pg_psql() { # port, sql, [db]
  PGCONNECT_TIMEOUT=3 timeout 10 psql -X -q -A -t -w -h 127.0.0.1 -p "$1" -U postgres -d "${3:-postgres}" -c "$2"
}

# True when our server answers on the recorded port (and it really is ours: same data dir).
pg_running() {
  local port
  port="$(read_state pg.port)"
  [ -n "$port" ] || return 1
  timeout 5 pg_isready -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2 >/dev/null 2>&1 || return 1
  local dir
  dir="$(pg_psql "$port" "show data_directory" 2>/dev/null)" || return 1
  [ "$dir" = "$PG_DATA" ]
}

# A postmaster.pid left behind by a crash or a reboot: is its pid still our postmaster?
pg_clear_stale_pidfile() {
  local pidfile="$PG_DATA/postmaster.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
  if pid_alive "$pid" && [ "$(proc_comm "$pid")" = "postgres" ] &&
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null || true)" = "$PG_DATA" ]; then
    return 0 # a live postmaster of this data dir (maybe still starting or shutting down)
  fi
  say "postgres: removing stale $pidfile (pid ${pid:-?} is not our server)"
  rm -f "$pidfile" "$PG_DATA"/.s.PGSQL.*.lock
}

pg_prepare_dirs() {
  if [ -e "$PG_BASE" ] || [ -L "$PG_BASE" ]; then
    [ -d "$PG_BASE" ] && [ ! -L "$PG_BASE" ] || die "$PG_BASE exists and is not a directory"
    local owner
    owner="$(stat -c %U "$PG_BASE")"
    if [ "$owner" != "$PG_USER" ]; then
      if [ "$(id -u)" -eq 0 ]; then
        chown -R "$PG_USER": "$PG_BASE"
      else
        die "$PG_BASE belongs to $owner, not $PG_USER (remove it, or run as the same user as before)"
      fi
    fi
  else
    mkdir -m 700 "$PG_BASE"
    if [ "$(id -u)" -eq 0 ]; then chown "$PG_USER": "$PG_BASE"; fi
  fi
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    rm -rf "$PG_DATA"
    say "postgres: initdb $PG_DATA"
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 \
      >"$STATE/initdb.log" 2>&1; then
      log_tail "$STATE/initdb.log"
      die "postgres: initdb failed"
    fi
    # Trust, but only on the unix socket and 127.0.0.1.
    as_pg sh -c "cat > '$PG_DATA/pg_hba.conf'" <<'EOF'
# Puff's private test server (scripts/services.sh): trust, loopback only.
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
EOF
  fi
  write_state pg.datadir "$PG_DATA"
  write_state pg.log "$PG_LOG"
}

pg_start_on() { # port
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$START_TIMEOUT" -s \
    -o "-p $1 -k $PG_DATA -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
    start >/dev/null 2>&1
}

pg_start() {
  if pg_running; then
    say "postgres: already running on 127.0.0.1:$(read_state pg.port)"
    return 0
  fi
  pg_prepare_dirs
  pg_clear_stale_pidfile
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    # Our postmaster is alive but does not answer where recorded: stop it cleanly first.
    say "postgres: restarting a server that does not answer as expected"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$START_TIMEOUT" -s stop >/dev/null 2>&1 || true
    pg_clear_stale_pidfile
  fi
  local port attempt started=""
  port="$(read_state pg.port)"
  for attempt in 1 2 3; do
    if [ -z "$port" ] || ! port_is_free "$port"; then
      port="$(free_port "$PG_PORT_BASE" "$(read_state redis.port)")"
    fi
    local before=0
    [ -f "$PG_LOG" ] && before="$(wc -l <"$PG_LOG")"
    if pg_start_on "$port"; then
      started=1
      break
    fi
    # Another program took the port between our check and the bind: pick another one.
    if tail -n +"$((before + 1))" "$PG_LOG" 2>/dev/null | grep -q "Address already in use"; then
      say "postgres: port $port was taken meanwhile, retrying"
      port=""
      continue
    fi
    break
  done
  if [ -z "$started" ]; then
    log_tail "$PG_LOG"
    die "postgres: pg_ctl start failed (data dir $PG_DATA)"
  fi
  write_state pg.port "$port"
  local deadline=$((SECONDS + START_TIMEOUT))
  until timeout 5 pg_isready -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 1 >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log_tail "$PG_LOG"
      die "postgres: no answer on 127.0.0.1:$port after ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
  if [ "$(pg_psql "$port" "select count(*) from pg_database where datname = '$PG_DB'")" != "1" ]; then
    pg_psql "$port" "create database $PG_DB" >/dev/null || die "postgres: could not create database $PG_DB"
  fi
  pg_running || { log_tail "$PG_LOG"; die "postgres: started but 127.0.0.1:$port is not our server"; }
  say "postgres: running on 127.0.0.1:$port (data $PG_DATA)"
}

pg_stop() {
  if [ -f "$PG_DATA/PG_VERSION" ]; then
    pg_clear_stale_pidfile
    if [ -f "$PG_DATA/postmaster.pid" ]; then
      as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$START_TIMEOUT" -s stop >/dev/null ||
        die "postgres: pg_ctl stop failed"
      say "postgres: stopped"
      return 0
    fi
  fi
  say "postgres: not running"
}

# ---- Redis ---------------------------------------------------------------------------------------

redis_running() {
  local port
  port="$(read_state redis.port)"
  [ -n "$port" ] || return 1
  [ "$(rcli "$port" ping 2>/dev/null)" = "PONG" ] || return 1
  # Ours: its pid file is our pid file.
  [ "$(rcli "$port" config get pidfile 2>/dev/null | sed -n 2p)" = "$REDIS_PIDFILE" ]
}

redis_start() {
  if redis_running; then
    say "redis: already running on 127.0.0.1:$(read_state redis.port)"
    return 0
  fi
  mkdir -p "$REDIS_DIR"
  if [ -f "$REDIS_PIDFILE" ]; then
    local pid
    pid="$(cat "$REDIS_PIDFILE" 2>/dev/null || true)"
    if pid_alive "$pid" && [ "$(proc_comm "$pid")" = "redis-server" ] &&
      grep -qF -- "$REDIS_DIR" "/proc/$pid/environ" 2>/dev/null; then
      die "redis: our server (pid $pid) is alive but does not answer; stop it with: $0 stop"
    fi
    say "redis: removing stale $REDIS_PIDFILE (pid ${pid:-?} is not our server)"
    rm -f "$REDIS_PIDFILE"
  fi
  local port attempt deadline
  port="$(read_state redis.port)"
  for attempt in 1 2 3; do
    if [ -z "$port" ] || ! port_is_free "$port"; then
      port="$(free_port "$REDIS_PORT_BASE" "$(read_state pg.port)")"
    fi
    local before=0
    [ -f "$REDIS_LOG" ] && before="$(wc -l <"$REDIS_LOG")"
    # PUFF_REDIS_DIR in the environment marks the process as ours (see the stale check above).
    PUFF_REDIS_DIR="$REDIS_DIR" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize yes --dir "$REDIS_DIR" --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" 9>&- \
      || { log_tail "$REDIS_LOG"; die "redis: redis-server failed to start"; }
    deadline=$((SECONDS + START_TIMEOUT))
    until [ "$(rcli "$port" ping 2>/dev/null)" = "PONG" ]; do
      if tail -n +"$((before + 1))" "$REDIS_LOG" 2>/dev/null | grep -q "Address already in use"; then
        break
      fi
      if [ "$SECONDS" -ge "$deadline" ]; then
        log_tail "$REDIS_LOG"
        die "redis: no answer on 127.0.0.1:$port after ${START_TIMEOUT}s"
      fi
      sleep 0.1
    done
    if [ "$(rcli "$port" ping 2>/dev/null)" = "PONG" ]; then
      write_state redis.port "$port"
      if redis_running; then
        say "redis: running on 127.0.0.1:$port"
        return 0
      fi
    fi
    say "redis: port $port was taken meanwhile, retrying"
    port=""
  done
  log_tail "$REDIS_LOG"
  die "redis: could not start"
}

redis_stop() {
  if redis_running; then
    local port pid
    port="$(read_state redis.port)"
    pid="$(cat "$REDIS_PIDFILE" 2>/dev/null || true)"
    rcli "$port" shutdown nosave >/dev/null 2>&1 || true
    local deadline=$((SECONDS + START_TIMEOUT))
    while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
    rm -f "$REDIS_PIDFILE"
    say "redis: stopped"
  else
    say "redis: not running"
  fi
}

# ---- commands ------------------------------------------------------------------------------------

lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 120 9 || die "another services.sh holds $STATE/lock"
}

cmd_start() {
  command -v redis-server >/dev/null || die "redis-server not found (run: make deps)"
  command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
  [ -x "$PG_BIN/pg_ctl" ] || die "$PG_BIN/pg_ctl not found (run: make deps)"
  command -v psql >/dev/null || die "psql not found (apt-get install postgresql-client)"
  lock
  pg_start
  redis_start
}

cmd_stop() {
  lock
  redis_stop
  pg_stop
}

cmd_status() {
  local ok=0
  if pg_running; then
    echo "postgres: running  $(pg_url "$(read_state pg.port)")  data=$PG_DATA  log=$PG_LOG"
  else
    echo "postgres: stopped  data=$PG_DATA"
    ok=3
  fi
  if redis_running; then
    echo "redis:    running  $(redis_url "$(read_state redis.port)")  pid=$(cat "$REDIS_PIDFILE" 2>/dev/null)  log=$REDIS_LOG"
  else
    echo "redis:    stopped"
    ok=3
  fi
  return "$ok"
}

cmd_env() {
  pg_running || die "postgres is not running (scripts/services.sh start)"
  redis_running || die "redis is not running (scripts/services.sh start)"
  local pg rd
  pg="$(pg_url "$(read_state pg.port)")"
  rd="$(redis_url "$(read_state redis.port)")"
  echo "export PUFF_DEFAULT_POSTGRES_URL=$pg"
  echo "export PUFF_DEFAULT_REDIS_URL=$rd"
  echo "export PUFF_TEST_POSTGRES_URL=$pg"
  echo "export PUFF_TEST_REDIS_URL=$rd"
}

cmd_reset() {
  cmd_stop
  rm -rf "$PG_BASE" "$REDIS_DIR"
  rm -f "$STATE"/pg.* "$STATE"/redis.* "$STATE"/initdb.log
  say "data removed"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  reset) cmd_reset ;;
  *)
    echo "usage: $0 start|stop|status|env|reset" >&2
    exit 2
    ;;
esac
