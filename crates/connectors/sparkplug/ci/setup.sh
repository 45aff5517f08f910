#!/usr/bin/env bash
# Installs the Sparkplug B test peers: Mosquitto (the broker the tests start on free ports) and
# the Python `pysparkplug` edge node publisher, pinned, in a virtual environment outside the
# clone. Idempotent: a second run checks the versions and returns.
set -euo pipefail

PEERS="${MILLRACE_PEERS_DIR:-/var/tmp/millrace-peers}/sparkplug"
PYSPARKPLUG=0.6.1

if ! command -v mosquitto >/dev/null 2>&1 && ! [ -x /usr/sbin/mosquitto ]; then
  echo "installing mosquitto"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients
fi

if "$PEERS/venv/bin/python" -c "import importlib.metadata as m, sys; \
    sys.exit(m.version('pysparkplug') != '$PYSPARKPLUG')" 2>/dev/null; then
  echo "pysparkplug $PYSPARKPLUG already installed in $PEERS/venv"
  exit 0
fi

mkdir -p "$PEERS"
rm -rf "$PEERS/venv"
python3 -m venv "$PEERS/venv"
"$PEERS/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "pysparkplug==$PYSPARKPLUG"
echo "pysparkplug $PYSPARKPLUG installed in $PEERS/venv"
