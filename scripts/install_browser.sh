#!/usr/bin/env bash
# Headless Chromium for the report test (Debian's package). Idempotent; without root or apt
# it says so and the browser test is skipped, the rest of the suite still runs.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the report test (about a minute, once)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || echo "warning: could not install chromium; the browser test will be skipped"
else
  echo "note: chromium not found and cannot be installed here (needs root + apt); the browser test will be skipped"
fi
exit 0
