#!/usr/bin/env bash
# Installs the Sparkplug B test peers: Mosquitto (the broker the tests start on free ports),
# openssl (certificates for the TLS test) and the Python `pysparkplug` edge node, pinned, in a
# virtual environment outside the clone. Idempotent: a second run checks and returns.
set -euo pipefail

PEERS="${MILLRACE_PEERS_DIR:-/var/tmp/millrace-peers}/sparkplug"
PYSPARKPLUG=0.6.1
# The edge node script speaks paho's 1.x API; pysparkplug 0.6.1 resolves to it, pinned here.
PAHO=1.6.1

# Mosquitto (with mosquitto_passwd) runs the test brokers; openssl makes the TLS test's
# certificates. Both are usually there; install what is missing.
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if "$PEERS/venv/bin/python" -c "import importlib.metadata as m, sys; \
    sys.exit(m.version('pysparkplug') != '$PYSPARKPLUG' or m.version('paho-mqtt') != '$PAHO')" \
    2>/dev/null; then
  echo "pysparkplug $PYSPARKPLUG already installed in $PEERS/venv"
  exit 0
fi

mkdir -p "$PEERS"
rm -rf "$PEERS/venv"
python3 -m venv "$PEERS/venv"
"$PEERS/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "pysparkplug==$PYSPARKPLUG" "paho-mqtt==$PAHO"
echo "pysparkplug $PYSPARKPLUG installed in $PEERS/venv"
