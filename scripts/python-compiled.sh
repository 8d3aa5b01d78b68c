#!/usr/bin/env bash
# The compiled build of the Python adapter, for make test and make bench:
# veto-crm's wheel built with VETO_CRM_COMPILE=1 (adapter/python/hatch_build.py:
# the hot-path modules compiled by mypyc, with gcc and the interpreter's
# headers) from .build/venv's pinned tools, then unpacked into .build/pyc.
# PYTHONPATH=.build/pyc puts it before the editable (pure Python) install.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build/venv
out=.build/pyc
wheels=.build/wheels
rm -rf "$wheels" "$out"
mkdir -p "$wheels"
VETO_CRM_COMPILE=1 "$venv/bin/python" -m pip --disable-pip-version-check --no-input -q \
  wheel --no-deps --no-build-isolation -w "$wheels" adapter/python
wheel=$(ls "$wheels"/veto_crm-*.whl)
case "$wheel" in
  *-none-any.whl) echo "python-compiled: $wheel is pure Python; the compiled build failed" >&2; exit 1 ;;
esac
"$venv/bin/python" -m pip --disable-pip-version-check --no-input -q install --no-deps --target "$out" "$wheel"
touch "$out/.stamp"
echo "python-compiled: $out ($(basename "$wheel"))"
