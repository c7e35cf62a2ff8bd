#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (no browser download
# works here). Install it when missing; without root, say what to install.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "[browser] installing Debian's chromium for the browser tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "[browser] chromium is missing: install it (sudo apt-get install -y chromium); browser tests will be skipped" >&2
fi
