#!/bin/bash
# Build the secmig test guest from Debian 12 packages.
#
#   tools/cloud/guest/build.sh OUTDIR
#
# Writes into OUTDIR:
#   vmlinuz         the kernel of linux-image-cloud-amd64's dependency
#   initramfs.img   gzip'd newc cpio: busybox-static, /init, secmig-load
#   disk.raw        1 MiB of zeros, the machine image Nova attaches
#   stamp           the inputs the artefacts were built from
# Idempotent: when OUTDIR/stamp matches the inputs (kernel package and
# version, busybox-static, gcc and libc6-dev versions, sha256 of load.c,
# init and this script) nothing is rebuilt. The stamp is written last,
# so an interrupted build is redone. Installs the Debian packages it needs
# with apt-get when they are missing (which needs root).
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
KERNEL_META=linux-image-cloud-amd64
PACKAGES="gcc libc6-dev binutils busybox-static cpio gzip"
ARTEFACTS="vmlinuz initramfs.img disk.raw"
APT_UPDATED=

say() {
    echo "guest: $*"
}

die() {
    echo "guest: error: $*" >&2
    exit 1
}

apt_update_once() {
    if [ -z "$APT_UPDATED" ]; then
        say "apt-get update"
        apt-get -q update >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
}

ensure_packages() {
    local missing="" pkg
    for pkg in $PACKAGES; do
        if [ "$(dpkg-query -W -f '${db:Status-Status}' "$pkg" \
            2>/dev/null)" != installed ]; then
            missing="$missing $pkg"
        fi
    done
    if [ -z "$missing" ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        die "missing Debian packages:$missing (install them as root)"
    fi
    apt_update_once
    say "installing$missing"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get -q install -y \
        --no-install-recommends $missing >/dev/null \
        || die "apt-get install$missing failed"
}

# Print "NAME VERSION" of the kernel package KERNEL_META depends on.
kernel_package() {
    local depends
    depends=$(apt-cache show --no-all-versions "$KERNEL_META" 2>/dev/null \
        | sed -n 's/^Depends: //p' | head -n 1) || true
    if [ -z "$depends" ]; then
        apt_update_once
        depends=$(apt-cache show --no-all-versions "$KERNEL_META" \
            | sed -n 's/^Depends: //p' | head -n 1)
    fi
    # "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"
    echo "$depends" | sed -n 's/^\(linux-image-[^ ,]*\) (= \([^)]*\)).*/\1 \2/p'
}

sha() {
    sha256sum "$1" | cut -d ' ' -f 1
}

version_of() {
    dpkg-query -W -f '${Version}' "$1"
}

# Fetch the kernel package NAME=VERSION and extract its vmlinuz to DEST.
fetch_kernel() {
    local name=$1 version=$2 dest=$3 dir deb
    dir=$(dirname "$dest")/kernel
    mkdir -p "$dir"
    say "downloading $name $version"
    (cd "$dir" && apt-get -q -o APT::Sandbox::User=root \
        download "$name=$version" >/dev/null) \
        || die "apt-get download $name=$version failed"
    deb=$(ls "$dir"/*.deb)
    dpkg-deb --fsys-tarfile "$deb" \
        | tar -x -C "$dir" "./boot/vmlinuz-${name#linux-image-}" \
        || die "no /boot/vmlinuz-${name#linux-image-} in $deb"
    mv "$dir/boot/vmlinuz-${name#linux-image-}" "$dest"
    rm -rf "$dir"
}

# A bzImage begins with a legacy boot sector, which ends in the MBR
# signature. Nova inspects an aki image it fetches (a live migration's
# destination does) and refuses it as an MBR with invalid partition
# entries. Zero the entries' bytes up to the setup header (0x1f1): they
# hold the boot sector's "use a boot loader" message, which no loader
# runs. Idempotent.
clear_boot_sector_entries() {
    dd if=/dev/zero of="$1" bs=1 seek=446 count=51 conv=notrunc \
        status=none || die "cannot patch $1"
}

# Build the initramfs from busybox, init and load.c into DEST.
build_initramfs() {
    local dest=$1 root applet
    root=$(dirname "$dest")/root
    mkdir -p "$root"/bin "$root"/dev "$root"/proc "$root"/sys "$root"/tmp
    cp /bin/busybox "$root"/bin/busybox
    if readelf -l "$root"/bin/busybox | grep -q 'INTERP'; then
        die "/bin/busybox is not static (install busybox-static)"
    fi
    for applet in $("$root"/bin/busybox --list); do
        if [ ! -e "$root/bin/$applet" ]; then
            ln -s busybox "$root/bin/$applet"
        fi
    done
    say "compiling secmig-load"
    gcc -static -O2 -Wall -Wextra -Werror -pthread \
        -o "$root"/bin/secmig-load "$HERE"/load.c \
        || die "gcc failed on $HERE/load.c"
    strip "$root"/bin/secmig-load
    install -m 0755 "$HERE"/init "$root"/init
    # Fixed times, owners and order: the same inputs give the same bytes.
    find "$root" -exec touch -h -d @0 {} +
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort \
        | cpio -o -H newc -R 0:0 --reproducible --quiet) \
        | gzip -9 -n >"$dest"
    rm -rf "$root"
}

main() {
    local outdir stamp kernel name version work old_kernel artefact
    if [ $# -ne 1 ] || [ -z "$1" ]; then
        echo "guest: usage: $0 OUTDIR" >&2
        exit 2
    fi
    mkdir -p "$1" || die "cannot create $1"
    outdir=$(cd "$1" && pwd)
    # One build at a time per OUTDIR; the next one then finds it done.
    exec 9>"$outdir"/.lock
    flock 9

    ensure_packages
    kernel=$(kernel_package)
    if [ -z "$kernel" ]; then
        die "cannot resolve the kernel package of $KERNEL_META"
    fi
    name=${kernel% *}
    version=${kernel#* }
    stamp="kernel=$name $version
busybox-static=$(version_of busybox-static)
gcc=$(gcc -dumpfullversion)
libc6-dev=$(version_of libc6-dev)
load.c=$(sha "$HERE"/load.c)
init=$(sha "$HERE"/init)
build.sh=$(sha "$HERE"/build.sh)"

    local complete=1
    for artefact in $ARTEFACTS; do
        if [ ! -s "$outdir/$artefact" ]; then
            complete=
        fi
    done
    if [ -n "$complete" ] && [ -f "$outdir"/stamp ] \
        && [ "$(cat "$outdir"/stamp)" = "$stamp" ]; then
        say "up to date in $outdir ($name $version)"
        return 0
    fi

    work=$(mktemp -d "$outdir/.build.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    old_kernel=
    if [ -f "$outdir"/stamp ]; then
        old_kernel=$(sed -n 's/^kernel=//p' "$outdir"/stamp)
    fi
    rm -f "$outdir"/stamp
    if [ "$old_kernel" = "$name $version" ] && [ -s "$outdir"/vmlinuz ]; then
        say "kernel $name $version already in $outdir"
    else
        fetch_kernel "$name" "$version" "$work"/vmlinuz
        mv -f "$work"/vmlinuz "$outdir"/vmlinuz
    fi
    clear_boot_sector_entries "$outdir"/vmlinuz
    build_initramfs "$work"/initramfs.img
    mv -f "$work"/initramfs.img "$outdir"/initramfs.img
    if [ ! -s "$outdir"/disk.raw ]; then
        truncate -s 1M "$work"/disk.raw
        mv -f "$work"/disk.raw "$outdir"/disk.raw
    fi
    echo "$stamp" >"$work"/stamp
    mv -f "$work"/stamp "$outdir"/stamp
    say "built in $outdir: vmlinuz ($name $version)," \
        "initramfs.img ($(stat -c %s "$outdir"/initramfs.img) bytes)," \
        "disk.raw"
}

main "$@"
