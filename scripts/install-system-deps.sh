#!/usr/bin/env bash
# Installs the Debian 12 packages Puff needs to build, test and benchmark.
# Idempotent: packages already present are skipped, and apt is not touched at all
# when everything is installed. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # native libraries (DESIGN.md §5 of native-libraries.md)
  libboost1.81-dev libpq-dev libhiredis-dev libnghttp2-dev libcurl4-openssl-dev
  libsimdjson-dev libtomlplusplus-dev libgtest-dev libssl-dev zlib1g-dev
  # fuzzing (libFuzzer comes with clang)
  clang-14 libclang-rt-14-dev
  # Python (headers for the extension, venv for the project)
  python3-dev python3-venv
  # private services for tests, demo and benchmarks (scripts/services.sh)
  postgresql redis-server
  # load generators for bench/
  wrk nghttp2-client curl
  # a real browser for the demo-site test (headless)
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all ${#PACKAGES[@]} present"
  exit 0
fi

echo "system packages: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts a system redis/postgres on install; Puff uses private instances only.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
