#!/usr/bin/env bash
# Creates .build/venv for the Python adapter (adapter/python): the exact pins
# of adapter/python/requirements-dev.txt from PyPI, then veto-crm installed
# editable. Needs Python >= 3.10 (PYTHON, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
venv=.build/venv
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "veto-crm needs Python >= 3.10, found " + sys.version.split()[0])'
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
"${pip[@]}" install --no-deps -r adapter/python/requirements-dev.txt
"${pip[@]}" install --no-deps --no-build-isolation -e adapter/python
"${pip[@]}" check
touch "$venv/.stamp"
echo "python: $venv ($("$venv/bin/python" --version)), veto-crm installed editable"
