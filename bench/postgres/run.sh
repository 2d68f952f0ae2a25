#!/usr/bin/env bash
# `make bench-postgres`: puff.postgres against asyncpg (uvloop), psycopg 3 and psycopg2 on the
# project's private Postgres (docs/bench.md). Brings the bench venv up to date (the pinned peers,
# Puff editable), starts the services, then runs main.py. BENCH_QUICK=1 gives a smoke run; the
# other BENCH_* settings are listed in main.py.
set -euo pipefail
cd "$(dirname "$0")/../.."

source bench/common/venv.sh
bench_venv
bench_pins asyncpg uvloop psycopg psycopg-binary psycopg-pool psycopg2-binary greenlet \
  django gunicorn gevent granian uvicorn httptools
bench_puff
bash scripts/services.sh start >&2
eval "$(bash scripts/services.sh env | grep PUFF_TEST_POSTGRES_URL)"
export PUFF_TEST_POSTGRES_URL
exec "$BENCH_PY" bench/postgres/main.py "$@"
