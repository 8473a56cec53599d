#!/bin/bash
#
# Stand-ins for the devstack functions devstack/lib/secmig calls, so that
# the tests can run its functions outside a devstack run.
#
# The ini functions are real implementations with devstack's semantics
# (inc/ini-config): iniset replaces an option's lines or adds the option
# after its section header, iniget_multiline prints every value separated
# by spaces, iniadd appends values, inidelete removes the option.
#
# The service and process functions are stubs (named as such): they only
# log their arguments to $STUB_LOG, which the tests read.

PYTHON=${PYTHON:-python3}

# _stub_ini OP FILE SECTION OPTION [VALUE...]
function _stub_ini {
    $PYTHON - "$@" <<'EOF'
import os
import sys

op, path, section, option = sys.argv[1:5]
values = sys.argv[5:]
lines = []
if os.path.exists(path):
    with open(path) as f:
        lines = f.read().splitlines()


def bounds():
    start = None
    for i, line in enumerate(lines):
        if line.strip() == '[%s]' % section:
            start = i
        elif start is not None and line.startswith('['):
            return start, i
    return start, len(lines)


def key(line):
    name, sep, _ = line.partition('=')
    return name.strip() if sep and not line.lstrip().startswith('#') else None


start, end = bounds()
found = [] if start is None else [
    i for i in range(start + 1, end) if key(lines[i]) == option]
if op in ('get', 'get_multiline'):
    got = [lines[i].partition('=')[2].strip() for i in found]
    print(' '.join(got[:1] if op == 'get' else got))
    sys.exit(0)
if op == 'set' and found:
    for i in found:
        lines[i] = '%s = %s' % (option, values[0])
else:
    for i in reversed(found):
        del lines[i]
    if op in ('set', 'set_multiline'):
        if start is None:
            lines += ['', '[%s]' % section]
            start = len(lines) - 1
        for offset, value in enumerate(values):
            lines.insert(start + 1 + offset, '%s = %s' % (option, value))
with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
EOF
}

function iniset {
    _stub_ini set "$1" "$2" "$3" "$4"
}

function iniget {
    _stub_ini get "$1" "$2" "$3"
}

function iniget_multiline {
    _stub_ini get_multiline "$1" "$2" "$3"
}

function iniset_multiline {
    local file=$1
    local section=$2
    local option=$3
    shift 3
    _stub_ini set_multiline $file $section $option "$@"
}

function iniadd {
    local file=$1
    local section=$2
    local option=$3
    shift 3
    iniset_multiline $file $section $option $(iniget_multiline $file $section $option) "$@"
}

function inidelete {
    _stub_ini delete "$1" "$2" "$3"
}

function trueorfalse {
    local default=$1
    local value=${!2:-$default}
    case "$value" in
        [Tt]rue|[Yy]es|1|[Oo]n) echo True ;;
        [Ff]alse|[Nn]o|0|[Oo]ff) echo False ;;
        *) echo $default ;;
    esac
}

function is_service_enabled {
    local service
    for service in "$@"; do
        if [[ ",$ENABLED_SERVICES," == *",$service,"* ]]; then
            return 0
        fi
    done
    return 1
}

# Stand-in for lib/keystone's configure_keystoneauth: the same options,
# from the same variables (given defaults here).
function configure_keystoneauth {
    local conf_file=$1
    local admin_user=$2
    local section=$3

    iniset $conf_file $section auth_type password
    iniset $conf_file $section interface public
    iniset $conf_file $section auth_url ${KEYSTONE_SERVICE_URI:-http://127.0.0.1/identity}
    iniset $conf_file $section username $admin_user
    iniset $conf_file $section password ${SERVICE_PASSWORD:-secret}
    iniset $conf_file $section user_domain_name "${SERVICE_DOMAIN_NAME:-Default}"
    iniset $conf_file $section project_name ${SERVICE_PROJECT_NAME:-service}
    iniset $conf_file $section project_domain_name "${SERVICE_DOMAIN_NAME:-Default}"
}

# Stub: the tests run as a user that may write the temporary files.
function sudo {
    "$@"
}

# Stubs: record the call.
function _stub_log {
    echo "$*" >> $STUB_LOG
}

function define_plugin {
    _stub_log define_plugin "$@"
}

function add_user_to_group {
    _stub_log add_user_to_group "$@"
}

function restart_service {
    _stub_log restart_service "$@"
}

function stop_process {
    _stub_log stop_process "$@"
}

function run_process {
    _stub_log run_process "$@"
}

function systemctl {
    _stub_log systemctl "$@"
}

function get_python_exec_prefix {
    dirname $PYTHON
}

function echo_summary {
    echo "$@"
}

# Stub: a stand-in for the CA host reached over ssh, which runs the remote
# command (the last argument) here, without its leading sudo.
function ssh {
    local command=${*: -1}
    _stub_log ssh "$@"
    bash -c "${command#sudo }"
}
