#!/usr/bin/env bash
# Debian's Chromium for the browser tests (test/inbox/browser.test.ts), which
# playwright-core drives through its executablePath (it never downloads one).
#   scripts/chromium.sh          install (apt) when missing; prints the binary's path
#   scripts/chromium.sh path     print the path, or exit 3 when there is none
# VETO_CHROMIUM=/path/to/chromium picks another binary.
set -euo pipefail

find_chromium() {
  local candidate
  for candidate in "${VETO_CHROMIUM:-}" /usr/lib/chromium/chromium /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

case "${1:-install}" in
  path)
    find_chromium || { echo "chromium.sh: no Chromium installed (run scripts/chromium.sh)" >&2; exit 3; }
    ;;
  install)
    if ! find_chromium >/dev/null; then
      echo "chromium.sh: installing Chromium from Debian's packages" >&2
      sudo=""
      [ "$(id -u)" -ne 0 ] && sudo="sudo"
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
    fi
    find_chromium || { echo "chromium.sh: Chromium is not installed" >&2; exit 1; }
    ;;
  *)
    echo "usage: scripts/chromium.sh [install|path]" >&2
    exit 2
    ;;
esac
