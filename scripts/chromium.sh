#!/usr/bin/env bash
# The browser of the console tests: Debian's chromium, driven by playwright-core with
# executablePath /usr/bin/chromium (a browser download cannot work here). Installs it with
# apt-get when missing (root); `path` prints where it is.
set -euo pipefail
SERVICE=chromium
SERVICES_DIR="${BUSBAR_SERVICES_DIR:-${TMPDIR:-/tmp}/busbar-services}"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=service-lib.sh
. "$here/service-lib.sh"

find_chromium() {
  for c in "${BUSBAR_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

case "${1:-install}" in
  install|start)
    if ! find_chromium >/dev/null; then
      with_lock apt_get_install chromium "chromium is missing" "the console browser tests need it"
    fi
    find_chromium >/dev/null || die "chromium is still missing after apt-get install"
    ;;
  path) find_chromium || die "chromium is not installed (run scripts/chromium.sh install)" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
