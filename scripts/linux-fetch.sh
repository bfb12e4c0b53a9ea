#!/bin/sh
# linux-fetch.sh -- get Debian's i386 Linux kernel and a static busybox
# for the Linux guest, once, and keep them.
#
#   scripts/linux-fetch.sh            use the cache; download only if empty
#   scripts/linux-fetch.sh --refresh  ask Debian for the current versions
#
# Products (copied from the cache on every run, so `make clean` loses
# nothing that costs a download):
#   build/linux/vmlinuz      the bzImage of linux-image-*-686 (non-PAE)
#   build/linux/config       the kernel's .config, to check options against
#   build/linux/busybox      the static i386 busybox of busybox-static
#   build/linux/release      the kernel release, what `uname -r` prints
#
# The packages: `linux-image-686` is a metapackage whose one dependency
# names the current kernel, linux-image-6.1.0-NN-686 (NN, the ABI number,
# changes with Debian's updates, so it is looked up, not written here);
# `busybox-static` holds one static i386 busybox.  Both come from Debian
# 12 (bookworm) for i386 whatever the host runs: the reference notes were
# taken with its 6.1 kernel, and Debian 13 builds no i386 kernel.
#
# Neither the system's apt configuration nor dpkg's architecture list is
# touched (no `dpkg --add-architecture`): apt runs with a private sources
# list, package lists and archive cache under the cache directory, and is
# told that i386 is the only architecture.  The .debs are unpacked with
# dpkg-deb, never installed.
#
# The cache lives outside the work tree, in ${XDG_CACHE_HOME:-~/.cache}/
# vmm-linux (override with VMM_LINUX_CACHE): `make clean` removes build/,
# and CI works in a fresh clone each time, but on the same machine the
# home directory stays, so the 53 MB are downloaded once per machine.
#
# Environment: VMM_LINUX_CACHE, LINUX_SUITE (default bookworm),
# LINUX_MIRROR, LINUX_SECURITY_MIRROR.
set -e
cd "$(dirname "$0")/.."

cache=${VMM_LINUX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-linux}
suite=${LINUX_SUITE:-bookworm}
mirror=${LINUX_MIRROR:-http://deb.debian.org/debian}
secmirror=${LINUX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
out=build/linux

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
install_pkg() {
    echo "linux-fetch: installing $*"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

# apt with everything it reads or writes redirected into the cache.
# Dir::State::status=/dev/null: what the host has installed is no
# concern of an i386 download.  APT::Sandbox::User=root: the private
# directories belong to root, not to apt's usual _apt download user.
apt_private() {
    cmd=$1
    shift
    $cmd -q \
        -o APT::Architectures::=i386 \
        -o Dir::Etc::sourcelist="$cache/apt/sources.list" \
        -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$cache/apt/lists" \
        -o Dir::State::status=/dev/null \
        -o Dir::Cache="$cache/apt/cache" \
        -o APT::Sandbox::User=root \
        "$@"
}

# The cache's record of the last resolution: the two package names and
# versions.  With it and the unpacked files present, nothing is fetched.
resolved="$cache/resolved"

resolve_and_download() {
    command -v apt-get >/dev/null 2>&1 || { echo "linux-fetch: apt-get is needed" >&2; exit 1; }
    command -v dpkg-deb >/dev/null 2>&1 || { echo "linux-fetch: dpkg-deb is needed" >&2; exit 1; }
    [ -r "$keyring" ] || install_pkg debian-archive-keyring
    mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/debs"
    cat >"$cache/apt/sources.list" <<EOF
deb [arch=i386 signed-by=$keyring] $mirror $suite main
deb [arch=i386 signed-by=$keyring] $secmirror $suite-security main
EOF
    # The security suite's index can fail to verify while a mirror is
    # syncing; the main archive alone is enough (with an older kernel).
    if ! apt_private apt-get update; then
        ls "$cache/apt/lists/"*"_${suite}_main_binary-i386_Packages"* >/dev/null 2>&1 ||
            { echo "linux-fetch: no i386 package list for $suite" >&2; exit 1; }
        echo "linux-fetch: some index failed; going on with what arrived" >&2
    fi
    kpkg=$(apt_private apt-cache depends linux-image-686:i386 |
           sed -n 's/^ *Depends: \(linux-image-[0-9][^ :]*-686\).*/\1/p' | head -n 1)
    [ -n "$kpkg" ] || { echo "linux-fetch: linux-image-686 names no kernel" >&2; exit 1; }
    kver=$(apt_private apt-cache show --no-all-versions "$kpkg:i386" | sed -n 's/^Version: //p' | head -n 1)
    bver=$(apt_private apt-cache show --no-all-versions busybox-static:i386 | sed -n 's/^Version: //p' | head -n 1)
    echo "linux-fetch: $kpkg $kver, busybox-static $bver"
    want=""
    [ -s "$(deb_file "$kpkg" "$kver")" ] || want="$kpkg:i386"
    [ -s "$(deb_file busybox-static "$bver")" ] || want="$want busybox-static:i386"
    [ -z "$want" ] || (cd "$cache/debs" && apt_private apt-get download $want)
    printf '%s %s\nbusybox-static %s\n' "$kpkg" "$kver" "$bver" >"$resolved"
    # Older versions, left from an earlier --refresh, are not kept.
    for f in "$cache/debs/"*.deb; do
        [ "$f" = "$(deb_file "$kpkg" "$kver")" ] || [ "$f" = "$(deb_file busybox-static "$bver")" ] || rm -f "$f"
    done
}

# deb_file PACKAGE VERSION: the .deb apt-get download wrote (it spells
# the epoch's colon as %3a).
deb_file() {
    v=$(echo "$2" | sed 's/:/%3a/')
    echo "$cache/debs/${1}_${v}_i386.deb"
}

unpack() {
    kpkg=$(sed -n 1p "$resolved" | cut -d' ' -f1)
    kver=$(sed -n 1p "$resolved" | cut -d' ' -f2)
    bver=$(sed -n 2p "$resolved" | cut -d' ' -f2)
    release=${kpkg#linux-image-}
    x="$cache/unpacked/$kpkg-$kver"
    if [ ! -s "$x/vmlinuz" ]; then
        rm -rf "$x.tmp" && mkdir -p "$x.tmp"
        # Only /boot: the modules (most of the 50 MB) are not needed, the
        # initramfs has no module loader and the kernel needs none to boot.
        dpkg-deb --fsys-tarfile "$(deb_file "$kpkg" "$kver")" | tar -x -C "$x.tmp" ./boot
        mv "$x.tmp/boot/vmlinuz-$release" "$x.tmp/vmlinuz"
        mv "$x.tmp/boot/config-$release" "$x.tmp/config"
        echo "$release" >"$x.tmp/release"
        rm -rf "$x.tmp/boot" "$x" && mv "$x.tmp" "$x"
    fi
    b="$cache/unpacked/busybox-static-$bver"
    if [ ! -s "$b/busybox" ]; then
        rm -rf "$b.tmp" && mkdir -p "$b.tmp"
        dpkg-deb --fsys-tarfile "$(deb_file busybox-static "$bver")" | tar -x -C "$b.tmp" ./bin/busybox
        mv "$b.tmp/bin/busybox" "$b.tmp/busybox" && rmdir "$b.tmp/bin"
        rm -rf "$b" && mv "$b.tmp" "$b"
    fi
    mkdir -p "$out"
    cp "$x/vmlinuz" "$x/config" "$x/release" "$b/busybox" "$out/"
    echo "linux-fetch: $out: kernel $release ($kver), busybox $bver"
}

# Everything the cache should hold: the record and the two .debs.
have_cache() {
    [ -s "$resolved" ] || return 1
    [ -s "$(deb_file "$(sed -n 1p "$resolved" | cut -d' ' -f1)" "$(sed -n 1p "$resolved" | cut -d' ' -f2)")" ] &&
        [ -s "$(deb_file busybox-static "$(sed -n 2p "$resolved" | cut -d' ' -f2)")" ]
}

if [ "$1" = --refresh ] || ! have_cache; then
    resolve_and_download
fi
unpack
