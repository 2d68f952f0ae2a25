#!/usr/bin/env bash
# `make bench-runtime`: Puff's native round trip against gevent's threadpool, asyncio's
# run_in_executor and the floors (bench/runtime/README.md). Brings the bench venv up to date
# (pinned gevent, greenlet, uvloop; Puff editable), then runs main.py.
# BENCH_QUICK=1 gives a ~20 s smoke run; other BENCH_* settings are listed in main.py.
set -euo pipefail
cd "$(dirname "$0")/../.."

source bench/common/venv.sh
bench_venv
bench_pins gevent greenlet uvloop
bench_puff
exec "$BENCH_PY" bench/runtime/main.py "$@"
