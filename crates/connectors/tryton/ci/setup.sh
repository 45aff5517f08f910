#!/usr/bin/env bash
# Installs the Tryton server the connector's tests run against: trytond 8.0 and the modules the
# connector reads, pinned, into a virtualenv outside the clone. Idempotent: a venv that already
# holds exactly these versions is left alone.
set -euo pipefail

VENV="${MILLRACE_TRYTON_VENV:-/var/tmp/millrace-peers/tryton-venv}"
REQUIREMENTS="$(cd "$(dirname "$0")" && pwd)/requirements.txt"
STAMP="$VENV/.millrace-requirements"

if [ -x "$VENV/bin/trytond" ] && [ -f "$STAMP" ] && cmp -s "$REQUIREMENTS" "$STAMP"; then
  echo "tryton: $VENV is up to date"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
mkdir -p "$(dirname "$VENV")"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
"$VENV/bin/trytond" --version
cp "$REQUIREMENTS" "$STAMP"
