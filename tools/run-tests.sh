#!/bin/bash
# The one test command: prepare the machine and a virtualenv, then run
# the style checks and every test tier. Usage:
#
#   tools/run-tests.sh [TIER ...]  (tiers: unit nova watcher system cloud)
#
# Each tier is a separate stestr run, because nova and watcher cannot be
# imported into one Python process. The cloud tier runs against the
# one-machine cloud of tools/cloud, started before the tier and stopped
# after it. A tier without tests is reported and skipped. The last line
# sums up all tiers: "secmig: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(unit nova watcher system cloud)

tools/test-setup.sh

venv=$(tools/venv.sh)
export PATH="$venv/bin:$PATH"

echo "== style: flake8 and bashate"
flake8 secmig tests tools
bashate -i E006 tools/*.sh tools/cloud/*.sh tools/cloud/guest/build.sh \
    .ci/run devstack/plugin.sh devstack/settings devstack/lib/secmig

passed=0 failed=0 skipped=0 status=0
count() {
    local n
    n=$(sed -n "s/^ - $1: \([0-9]*\).*/\1/p" "$log" | tail -n 1)
    echo "${n:-0}"
}
log=$(mktemp)
cloud_up=
cleanup() {
    rm -f "$log"
    if [ -n "$cloud_up" ]; then
        python tools/cloud/cloud.py down || true
    fi
}
trap cleanup EXIT
for tier in "${tiers[@]}"; do
    if [ -z "$(find "tests/$tier" -name 'test_*.py' 2>/dev/null)" ]; then
        echo "== tier $tier: no tests yet"
        continue
    fi
    echo "== tier $tier"
    concurrency=2
    [ "$tier" = system ] && concurrency=1
    if [ "$tier" = cloud ]; then
        concurrency=1
        cloud_up=1
        if ! python tools/cloud/cloud.py up; then
            echo "== tier cloud: the cloud did not start"
            failed=$((failed + 1))
            status=1
            continue
        fi
    fi
    if ! stestr --test-path "./tests/$tier" run \
            --concurrency "$concurrency" 2>&1 | tee "$log"; then
        status=1
    fi
    passed=$((passed + $(count Passed)))
    failed=$((failed + $(count Failed)))
    skipped=$((skipped + $(count Skipped)))
    if [ "$tier" = cloud ]; then
        python tools/cloud/cloud.py down
        cloud_up=
    fi
done
echo "secmig: $passed passed, $failed failed, $skipped skipped"
exit $status
