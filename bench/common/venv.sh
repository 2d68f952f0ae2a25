# Sourced by bench/*/run.sh: the bench venv (.venv-bench) with pinned peers and Puff itself.
#
#   source bench/common/venv.sh
#   bench_venv                       # create .venv-bench if missing
#   bench_pins gevent greenlet uvloop  # install these, at their pins in requirements/bench.txt
#   bench_puff                       # editable install of Puff into .venv-bench
#
# Must be sourced from the repository root. BENCH_PYTHON picks the interpreter of a new venv
# (default python3, the same one the project venv uses).

BENCH_VENV=.venv-bench
BENCH_PY="$BENCH_VENV/bin/python"
# ccache keys on absolute paths unless told the repo root (the Makefile exports the same).
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
# Two cores on the CI-class machines: do not oversubscribe them.
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

bench_venv() {
  if [ ! -x "$BENCH_PY" ]; then
    echo "bench venv: creating $BENCH_VENV" >&2
    "${BENCH_PYTHON:-python3}" -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/pip" install -q --upgrade pip==24.3.1
  fi
}

# Installs requirements/build.txt plus the named packages at their `==` pins in
# requirements/bench.txt (one source of truth for versions). Skipped while nothing changed.
bench_pins() {
  local specs=() name line
  for name in "$@"; do
    line="$(grep -iE "^${name}==" requirements/bench.txt | head -n 1 || true)"
    if [ -z "$line" ]; then
      echo "bench venv: $name has no == pin in requirements/bench.txt" >&2
      return 1
    fi
    specs+=("$line")
  done
  local key stamp
  key="$(printf '%s\n' "${specs[@]}" | cat - requirements/build.txt | sha1sum | cut -c1-12)"
  stamp="$BENCH_VENV/.stamp-pins-$key"
  if [ ! -f "$stamp" ]; then
    echo "bench venv: installing ${specs[*]} and requirements/build.txt" >&2
    "$BENCH_VENV/bin/pip" install -q -r requirements/build.txt "${specs[@]}"
    touch "$stamp"
  fi
}

# Editable install of Puff (incremental). Its CMake tree is build/bench-venv/<wheel tag>/, not the
# project venv's build/<wheel tag>/: a tree configured by another venv's Python (and its greenlet
# headers) would be reconfigured and recompiled by each venv in turn.
bench_puff() {
  if ! "$BENCH_VENV/bin/pip" install -q --no-build-isolation --no-deps -e . \
    -Cbuild-dir="build/bench-venv/{wheel_tag}" -Cbuild.verbose=false; then
    echo "bench venv: building Puff failed" >&2
    return 1
  fi
}
