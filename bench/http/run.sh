#!/usr/bin/env bash
# `make bench-http`: Puff's HTTP server against granian, socketify, uvicorn, gunicorn and uWSGI
# (bench/http/README.md). Brings the bench venv up to date (the pinned peers and frameworks, Puff
# editable) and the WebSocket client, then runs main.py. BENCH_QUICK=1 gives a smoke run; the
# other BENCH_* settings are listed in main.py.
set -euo pipefail
cd "$(dirname "$0")/../.."

source bench/common/venv.sh
bench_venv
bench_pins granian socketify uvicorn uvloop httptools websockets gunicorn gevent greenlet uwsgi \
  flask django fastapi
bench_puff

client=build/bench-http/ws_echo_client
if [ ! -x "$client" ] || [ bench/http/ws_echo_client.c -nt "$client" ]; then
  mkdir -p build/bench-http
  cc -O2 -Wall -Wextra -o "$client" bench/http/ws_echo_client.c
fi
export WS_CLIENT="$PWD/$client"
exec "$BENCH_PY" bench/http/main.py "$@"
