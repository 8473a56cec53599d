#!/bin/bash
# Install what the test suite needs on Debian/Ubuntu and start the
# services it talks to. Needs root (runs itself through sudo if it can).
# Safe to run again: installed packages and running services are left
# alone.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    exec sudo -n "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive

apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# bindep needs Python with venv before it can say what else is missing.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install python3 python3-venv python3-dev gcc
fi
bindep_venv=${BINDEP_VENV:-/tmp/secmig-bindep}
if [ ! -x "$bindep_venv/bin/bindep" ]; then
    python3 -m venv "$bindep_venv"
    "$bindep_venv/bin/pip" install -q bindep
fi
missing=$("$bindep_venv/bin/bindep" -b test || true)
if [ -n "$missing" ]; then
    echo "test-setup: installing $(echo $missing)"
    # shellcheck disable=SC2086
    apt_install $missing
fi

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {
    local i
    for i in $(seq 1 60); do
        port_open "$1" && return 0
        sleep 1
    done
    echo "test-setup: $2 did not open port $1 within 60 s" >&2
    return 1
}

if ! port_open 5672; then
    echo "test-setup: starting RabbitMQ"
    rabbitmq-server -detached
    wait_port 5672 RabbitMQ
fi

if ! port_open 3306; then
    echo "test-setup: starting MariaDB"
    service mariadb start >/dev/null
    wait_port 3306 MariaDB
fi

if ! port_open 5432; then
    echo "test-setup: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
    wait_port 5432 PostgreSQL
fi
# The Gnocchi tests connect as this role over TCP with a password, which
# works under Debian's default authentication and under "trust" alike.
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'secmig') THEN
    CREATE ROLE secmig LOGIN CREATEDB PASSWORD 'secmig';
  END IF;
END $$;
SQL
