#!/usr/bin/env bash
# Installs what the browser tests of the Link page and the dashboard need: Debian's Chromium and
# playwright-core (pinned) to drive it. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/../tests/browser"

PLAYWRIGHT_CORE=1.65.1

if ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version 2>/dev/null

# playwright-core downloads no browser: the tests launch /usr/bin/chromium. It goes into the
# gitignored node_modules beside the scripts.
installed=$(node -p "try { require('playwright-core/package.json').version } catch { '' }")
if [ "$installed" != "$PLAYWRIGHT_CORE" ]; then
  npm install --no-save --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_CORE"
fi
node -p "'playwright-core ' + require('playwright-core/package.json').version"
