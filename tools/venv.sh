#!/bin/bash
# Create or update the project's virtualenv (default .venv, or
# $SECMIG_VENV) with secmig installed editable and the test
# requirements; print its path. Usage: venv=$(tools/venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SECMIG_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q -U pip >&2
"$venv/bin/pip" install -q -r requirements.txt -r test-requirements.txt \
    -e . >&2
echo "$PWD/$venv"
