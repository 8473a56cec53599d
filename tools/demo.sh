#!/bin/bash
# The demo in one command, on a fresh Debian/Ubuntu machine, as root:
# install what it needs (tools/test-setup.sh: packages, MariaDB,
# PostgreSQL, RabbitMQ), create or update the virtualenv, then show
# secmig on the one-machine cloud of tools/cloud (started if none runs):
#
#   tools/demo.sh                  a real guest moved between two libvirt
#                                  hosts over TLS, refusals, audit trail
#   tools/demo.sh --keep           the same, and leave the cloud running
#   tools/demo.sh --quick [ARGS]   the in-process variant ("secmig demo":
#                                  Nova's fake libvirt, Watcher, Gnocchi)
#
# Exits with the demo's status: 0 when every step behaved as shown.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/test-setup.sh
venv=$(tools/venv.sh)
if [ "${1:-}" = --quick ]; then
    shift
    exec "$venv/bin/secmig" demo "$@"
fi
exec "$venv/bin/python" tools/cloud/demo.py "$@"
