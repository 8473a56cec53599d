#!/bin/bash
# Create or update the project's virtualenv (default .venv, or
# $SECMIG_VENV) with secmig installed editable and the test
# requirements; print its path. Usage: venv=$(tools/venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SECMIG_VENV:-.venv}
# The distribution's Python where there is one: the cloud tier runs
# nova-compute as user nova, which cannot run an interpreter kept in a
# private directory (a pyenv build under /root, say).
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv" >&2
"$venv/bin/pip" install -q -U pip >&2
"$venv/bin/pip" install -q -r requirements.txt -r test-requirements.txt \
    -e . >&2
echo "$PWD/$venv"
