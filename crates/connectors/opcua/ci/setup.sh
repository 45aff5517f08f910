#!/usr/bin/env bash
# Installs the OPC UA peer the connector's tests start: the Python `asyncua` server (PyPI), pinned,
# into a virtualenv outside the clone. Idempotent: a venv that already holds these versions is
# left alone. The tests find it through MILLRACE_OPCUA_PYTHON, else the default path below.
set -euo pipefail

VENV="${MILLRACE_OPCUA_VENV:-/var/tmp/millrace-peers/opcua-venv}"
ASYNCUA=1.1.8
CRYPTOGRAPHY=44.0.3

want() {
  "$VENV/bin/python" - "$ASYNCUA" "$CRYPTOGRAPHY" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("asyncua") == sys.argv[1] and m.version("cryptography") == sys.argv[2] else 1)
PY
}

if [ -x "$VENV/bin/python" ] && want; then
  echo "asyncua $ASYNCUA already in $VENV"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "asyncua==$ASYNCUA" "cryptography==$CRYPTOGRAPHY"
want
echo "asyncua $ASYNCUA installed in $VENV"
