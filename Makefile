# Puff: the two commands a user needs are `make run` (the demo) and `make test` (every suite).
# Both install what is missing first: Debian packages (idempotent), the project venv with pinned
# Python packages, and the native core (incremental, ccache'd).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# ccache keys on absolute paths unless told the repo root; CI clones elsewhere.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
JOBS ?= 2

.PHONY: all deps venv build native-ext cpp-tests test test-cpp test-py run hello bench-runtime \
        services-start services-stop clean

all: build

deps:
	@bash scripts/install-system-deps.sh

$(VENV)/.stamp: requirements/build.txt requirements/runtime.txt requirements/test.txt requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip==24.3.1
	$(PIP) install -q -c requirements/constraints.txt -r requirements/build.txt -r requirements/runtime.txt -r requirements/test.txt
	touch $@

venv: deps $(VENV)/.stamp

# Editable install; build/<wheel tag>/ keeps the CMake tree, so rebuilds are incremental.
build: venv
	$(PIP) install -q --no-build-isolation --no-deps -e . -Cbuild.verbose=false

native-ext: build
	$(PIP) install -q --no-build-isolation --no-deps examples/native_ext

# The C++ core's unit tests, three ways: Release with -Werror, ASan+UBSan, TSan (CMakePresets.json).
CPP_PRESETS := werror debug-asan debug-tsan

cpp-tests: deps
	@for p in $(CPP_PRESETS); do \
	  cmake --preset $$p >/dev/null && cmake --build --preset $$p -j $(JOBS) >/dev/null || exit 1; \
	done

# Suites that talk to Postgres/Redis get the private servers' URLs (PUFF_TEST_*_URL) from
# scripts/services.sh; they are real servers, started here, never mocks.
SERVICES_ENV = eval "$$(bash scripts/services.sh env | grep PUFF_TEST_)"

test-cpp: cpp-tests services-start
	@$(SERVICES_ENV); for p in $(CPP_PRESETS); do echo "== C++ unit tests ($$p)"; ctest --preset $$p || exit 1; done

# The HTTP suites run three times: with the default thread model (for one worker on a multi-core
# machine, each connection placed by the app's measured cost), then with every server's
# connections on its Python thread, then on its I/O threads.
HTTP_SUITES = $(addprefix tests/py/,test_serve_http.py test_serve_wsgi.py test_serve_asgi.py \
  test_serve_frameworks.py test_serve_cli.py test_websocket.py test_http2.py test_sendfile.py \
  test_static_cors.py test_asgi.py test_demo_site.py)

test-py: build native-ext services-start
	@$(SERVICES_ENV); $(PY) -m pytest -q tests/py
	@echo "== the HTTP suites again, connections on the Python thread (http_thread = python)"
	@$(SERVICES_ENV); PUFF_TEST_HTTP_THREAD=python $(PY) -m pytest -q $(HTTP_SUITES)
	@echo "== the HTTP suites again, connections on the I/O threads (http_thread = io)"
	@$(SERVICES_ENV); PUFF_TEST_HTTP_THREAD=io $(PY) -m pytest -q $(HTTP_SUITES)

test: test-cpp test-py fuzz-smoke

services-start: deps
	@bash scripts/services.sh start

services-stop:
	@bash scripts/services.sh stop

# The demo site: a Flask page, a FastAPI JSON endpoint and a WebSocket echo page, one server.
run: build native-ext services-start
	cd examples/site && ../../$(VENV)/bin/puff serve

# The foundation demo: greenlets, asyncio, native I/O and a C++ extension in one command.
hello: build native-ext
	cd examples/hello && ../../$(VENV)/bin/puff hello

bench-runtime: build
	@bash bench/runtime/run.sh

clean:
	rm -rf build $(VENV)

# libFuzzer smoke run (preset `fuzz`, clang-14): each parser's target replays its seed corpus
# (fuzz/corpus/<name>/), then fuzzes for FUZZ_SECONDS. New inputs go to build/fuzz/corpus/<name>/,
# so the committed seeds only change by hand. A crash or a failed invariant stops with non-zero
# status and leaves the input in build/fuzz/artifacts/.
FUZZERS := http1_parser chunked ws_frame pg_binary http_fields
FUZZ_SECONDS ?= 20

.PHONY: fuzz-smoke
fuzz-smoke: deps
	@cmake --preset fuzz >/dev/null && cmake --build --preset fuzz -j $(JOBS) >/dev/null
	@mkdir -p build/fuzz/artifacts
	@for f in $(FUZZERS); do \
	  echo "== fuzz $$f: seed corpus, then $(FUZZ_SECONDS)s"; \
	  mkdir -p build/fuzz/corpus/$$f; \
	  build/fuzz/$${f}_fuzz -runs=0 fuzz/corpus/$$f >build/fuzz/$$f.log 2>&1 && \
	  build/fuzz/$${f}_fuzz -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/$$f.dict \
	    -artifact_prefix=build/fuzz/artifacts/$$f- build/fuzz/corpus/$$f fuzz/corpus/$$f >>build/fuzz/$$f.log 2>&1 || \
	  { tail -n 30 build/fuzz/$$f.log; echo "fuzz-smoke: $$f failed (log: build/fuzz/$$f.log)"; exit 1; }; \
	  tail -n 1 build/fuzz/$$f.log; \
	done

# Puff's HTTP server against granian, socketify, uvicorn, gunicorn and uWSGI (bench/http/README.md).
.PHONY: bench-http
bench-http: build
	@bash bench/http/run.sh

# puff.postgres against asyncpg, psycopg 3 and psycopg2 (docs/bench.md); not part of `make test`.
.PHONY: bench-postgres
bench-postgres: build
	@bash bench/postgres/run.sh
