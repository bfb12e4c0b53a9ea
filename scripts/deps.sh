#!/bin/sh
# deps.sh -- install the tools the build and the tests need, if missing:
# QEMU (qemu-system-i386), a 32-bit-capable gcc, GNU binutils, and gdb
# for make debug.
need=""
command -v qemu-system-i386 >/dev/null 2>&1 || need="$need qemu-system-x86"
command -v objdump >/dev/null 2>&1 || need="$need binutils"
command -v gcc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
command -v gdb >/dev/null 2>&1 || need="$need gdb"
if ! echo 'int main(void){return 0;}' | gcc -m32 -x c - -o /tmp/vmm-m32-check.$$ >/dev/null 2>&1; then
    need="$need gcc-multilib"
fi
rm -f /tmp/vmm-m32-check.$$
[ -z "$need" ] && exit 0
echo "deps: installing$need"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need
