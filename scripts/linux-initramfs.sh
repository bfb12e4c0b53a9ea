#!/bin/sh
# linux-initramfs.sh -- build the Linux guest's initramfs,
# build/linux/initramfs.cpio.gz, from build/linux/busybox (see
# scripts/linux-fetch.sh) and guests/linux/init.
#
# An initramfs is a gzip-compressed cpio archive in the "newc" format
# (the kernel's Documentation/driver-api/early-userspace/buffer-format.rst)
# that the kernel unpacks into a tmpfs and whose /init it runs as process
# 1.  This one holds:
#   /init                 guests/linux/init, a busybox sh script
#   /bin/busybox          the static i386 busybox
#   /bin/sh -> busybox    the interpreter /init names
#   /dev/console          character device 5:1, the kernel opens it for
#                         /init's standard input and output before /init
#                         can mount devtmpfs
#   /proc /sys /tmp /sbin /usr/bin /usr/sbin /root  empty directories
# The other applets' links are made by /init (`busybox --install -s`).
#
# The archive is written by GNU cpio if it is there or can be installed
# (as scripts/deps.sh installs tools); otherwise, or with
# LINUX_CPIO=builtin, by newc() below.  Either way every entry has owner
# 0:0 and time 0, so the same inputs give the same archive.
set -e
cd "$(dirname "$0")/.."
out=build/linux
[ -s "$out/busybox" ] || { echo "linux-initramfs: no $out/busybox (run scripts/linux-fetch.sh)" >&2; exit 1; }

dirs="bin sbin usr usr/bin usr/sbin dev proc sys tmp root"

if [ "${LINUX_CPIO:-cpio}" = cpio ] && ! command -v cpio >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "linux-initramfs: installing cpio"
    export DEBIAN_FRONTEND=noninteractive
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends cpio; } ||
        echo "linux-initramfs: could not install cpio; writing the archive without it" >&2
fi

# --- With GNU cpio: stage the tree, then archive it ----------------------
with_cpio() {
    s="$out/initramfs.root"
    rm -rf "$s"
    mkdir -p "$s"
    for d in $dirs; do mkdir -p "$s/$d"; done
    cp guests/linux/init "$s/init"
    cp "$out/busybox" "$s/bin/busybox"
    chmod 0755 "$s/init" "$s/bin/busybox"
    ln -s busybox "$s/bin/sh"
    # A device node needs root; without it /init reopens its console
    # once devtmpfs is mounted (the kernel then warns "unable to open an
    # initial console").
    mknod -m 0600 "$s/dev/console" c 5 1 2>/dev/null ||
        echo "linux-initramfs: not root: no /dev/console in the archive" >&2
    find "$s" -exec touch -h -d @0 {} +
    (cd "$s" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9 -n >"$out/initramfs.cpio.gz"
    rm -rf "$s"
}

# --- Without it: write the newc records ourselves ------------------------
# Each record is "070701", thirteen 8-digit hexadecimal fields (inode,
# mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
# rdevminor, namesize with its NUL, check), the name and a NUL padded to
# a multiple of 4 bytes, then the data padded likewise.  An entry named
# TRAILER!!! ends the archive.
ino=0
pad() {         # pad N: zero bytes up to the next multiple of 4 after N
    head -c $(( (4 - $1 % 4) % 4 )) /dev/zero
}
record() {      # record NAME MODE SIZE RDEVMAJOR RDEVMINOR
    ino=$((ino + 1))
    namesize=$(( ${#1} + 1 ))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        $ino $(( $2 )) 0 0 1 0 $3 0 0 $4 $5 $namesize 0
    printf '%s\000' "$1"
    pad $(( 110 + namesize ))
}
entry_dir()  { record "$1" 040755 0 0 0; }
entry_node() { record "$1" 020600 0 $2 $3; }            # character device
entry_file() {                                          # entry_file NAME SOURCE
    size=$(wc -c <"$2")
    record "$1" 0100755 $size 0 0
    cat "$2"
    pad $size
}
entry_link() {                                          # entry_link NAME TARGET
    record "$1" 0120777 ${#2} 0 0
    printf '%s' "$2"
    pad ${#2}
}
newc() {
    for d in $dirs; do entry_dir "$d"; done
    entry_node dev/console 5 1
    entry_file init guests/linux/init
    entry_file bin/busybox "$out/busybox"
    entry_link bin/sh busybox
    ino=-1          # the trailer's inode is 0
    record TRAILER!!! 0 0 0 0
}

if [ "${LINUX_CPIO:-cpio}" = cpio ] && command -v cpio >/dev/null 2>&1; then
    with_cpio
else
    newc | gzip -9 -n >"$out/initramfs.cpio.gz"
fi
echo "linux-initramfs: $out/initramfs.cpio.gz ($(wc -c <"$out/initramfs.cpio.gz") bytes)"
