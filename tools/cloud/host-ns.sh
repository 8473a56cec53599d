#!/bin/bash
# The namespace of one containerised compute host: run under
#   unshare --mount --uts --propagation private -- host-ns.sh NAME DIR
# Gives the host its own hostname and its own /etc/libvirt, /etc/pki,
# /etc/nova, /etc/secmig, /etc/sudoers.d, /etc/hosts, /run and
# /var/lib/{libvirt,nova,secmig}, bound from DIR, then holds the
# namespace open until killed.
# Everything else of the host (libvirtd, virtlogd, nova-compute, the
# secmig commands) is started inside it with nsenter.
set -eu
name=$1
dir=$2

for d in etc/libvirt etc/pki etc/nova etc/secmig etc/sudoers.d run \
        var/lib/libvirt \
        var/lib/nova var/lib/secmig var/log/libvirt var/cache/libvirt; do
    mkdir -p "$dir/$d" "/$d"
    mount --bind "$dir/$d" "/$d"
done
mount --bind "$dir/hosts" /etc/hosts
hostname "$name"
exec sleep infinity
