#!/usr/bin/env bash
# Set up PumpTwin on a fresh Debian 12 machine with Python 3.11.
#
#   scripts/bootstrap.sh run    Python virtualenv only (enough for `pumptwin demo`: embedded broker).
#   scripts/bootstrap.sh test   also the Debian packages the tests run for real (mosquitto, influxdb,
#                               postgresql, chromium, node, openssl) and the AsyncAPI validator (npm).
#
# Idempotent and quick when nothing changed: the venv is rebuilt only when requirements.lock or
# pyproject.toml change. Works non-interactively (CI=true, no stdin). As root it installs missing
# Debian packages with apt-get; otherwise it says exactly what to install and stops.
set -euo pipefail

purpose="${1:-run}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-.venv}"

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

missing_debs=()
need_deb() {  # need_deb <command> <package>
  command -v "$1" >/dev/null 2>&1 || missing_debs+=("$2")
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  need_deb python3.11 python3.11
fi
if command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing_debs+=(python3.11-venv)
fi
if [ "$purpose" = "test" ]; then
  need_deb mosquitto mosquitto   # also provides mosquitto_passwd (pumptwin broker)
  need_deb openssl openssl       # certificates for the broker's TLS listener test
  need_deb influxd influxdb
  need_deb chromium chromium
  need_deb node nodejs
  need_deb npm npm
  # initdb and postgres for the PostgreSQL store tests (Debian keeps them off PATH, per major version)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing_debs+=(postgresql)
fi

if [ "${#missing_debs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    say "installing Debian packages: ${missing_debs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing_debs[*]}"
    say "install them with:  sudo apt-get install -y ${missing_debs[*]}"
    exit 1
  fi
fi
# Debian starts services from postinst on some machines; the tests start their own servers on free
# ports, so a system-wide mosquitto, influxd or postgresql is neither needed nor in the way.

stamp="$VENV/.pumptwin-installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
  fi
  say "installing locked Python dependencies (requirements.lock)"
  "$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
  "$VENV/bin/python" -m pip install --quiet --require-hashes --no-deps -r requirements.lock
  "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation --editable .
  echo "$want" >"$stamp"
fi

if [ "$purpose" = "test" ]; then
  lock_hash="$(sha256sum tools/asyncapi/package-lock.json | cut -d' ' -f1)"
  npm_stamp="tools/asyncapi/node_modules/.pumptwin-installed"
  if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$lock_hash" ]; then
    say "installing the AsyncAPI validator (npm ci in tools/asyncapi)"
    (cd tools/asyncapi && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock_hash" >"$npm_stamp"
  fi
fi
say "ready ($purpose)"
