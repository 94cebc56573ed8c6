#!/usr/bin/env bash
# Installs what the test suite drives from outside Python, when missing:
#   - Debian's Chromium, for the browser tests (Playwright drives /usr/bin/chromium; its own
#     browser download does not work everywhere);
#   - kcat, a librdkafka command-line client: the tests write records with it, as a learner
#     would, to show that the page reads the topic and not what the app produced;
#   - PostgreSQL (Debian's `postgresql`), the classroom's database: the suite runs a server of
#     its own with initdb and pg_ctl (tests/harness/postgres.py), which Debian keeps off PATH;
#   - Redis (Debian's `redis-server`), the classroom's channel layer: the suite runs a server of
#     its own (tests/harness/redis.py) for the classroom-stack test.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && return 0
  done
  return 1
}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
have_postgres || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "The tests need: ${missing[*]} (Chromium at /usr/bin/chromium; PostgreSQL's initdb and pg_ctl; redis-server). Install them with your package manager." >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing ${missing[*]} for the tests…"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
