#!/bin/bash
# The demo in one command, on a fresh Debian/Ubuntu machine: install what
# it needs (tools/test-setup.sh: packages, PostgreSQL, RabbitMQ), create
# or update the virtualenv, then run "secmig demo" with any arguments
# given here, e.g.:
#
#   tools/demo.sh                      (Gnocchi if PostgreSQL runs, QEMU)
#   tools/demo.sh --metrics embedded --skip-qemu
#
# Exits with the demo's status: 0 when every step behaved as shown.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/test-setup.sh
venv=$(tools/venv.sh)
exec "$venv/bin/secmig" demo "$@"
