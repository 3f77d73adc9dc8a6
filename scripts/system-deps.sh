#!/usr/bin/env bash
# Install the Debian packages the test suite needs, when missing:
#   chromium  - Playwright drives /usr/bin/chromium for the browser tests (never `playwright install`)
#   a JDK 17  - PySpark's local mode for the Spark engine tests
# Safe to run repeatedly; does nothing when both are present.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
