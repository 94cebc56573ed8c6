#!/usr/bin/env bash
# Installs what the test suite drives from outside Python, when missing:
#   - Debian's Chromium, for the browser tests (Playwright drives /usr/bin/chromium; its own
#     browser download does not work everywhere);
#   - kcat, a librdkafka command-line client: the tests write records with it, as a learner
#     would, to show that the page reads the topic and not what the app produced.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "The tests need: ${missing[*]} (Chromium at /usr/bin/chromium). Install them with your package manager." >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing ${missing[*]} for the tests…"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
