#!/bin/bash
#
# devstack/plugin.sh: secmig, secure live migration for Nova and Watcher.
#
# A thin dispatcher over devstack/lib/secmig. devstack calls it in these
# phases, in this order:
#
#   stack install      install secmig (pip) where Nova and Watcher run
#   stack post-config  CA and enrollment, /etc/secmig/secmig.conf, the
#                      policy file, nova.conf ([filter_scheduler],
#                      [libvirt] native TLS, [secmig]), qemu.conf and
#                      libvirtd TLS, watcher.conf
#   stack extra        run n-cpu as secmig-nova-compute
#   unstack            nothing: secmig runs inside Nova's processes
#   clean              remove secmig's files, certificates and CA
#
# Enable it in local.conf with "enable_plugin secmig <repository URL>"
# (see devstack/README.rst).

source $SECMIG_DIR/devstack/lib/secmig

if [[ "$1" == "stack" && "$2" == "install" ]]; then
    echo_summary "Installing secmig"
    install_secmig

elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    echo_summary "Configuring secmig"
    configure_secmig

elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
    echo_summary "Starting nova-compute with secmig"
    start_secmig
fi

if [[ "$1" == "unstack" ]]; then
    :
fi

if [[ "$1" == "clean" ]]; then
    cleanup_secmig
fi
