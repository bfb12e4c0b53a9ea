#!/bin/sh
# run_native.sh NAME [ARGS] -- run build/guests/NAME.elf on bare QEMU with the
# same machine the monitor harness uses.  COM1 goes to /tmp/NAME.com1, COM2
# to /tmp/NAME.com2; prints "exit=STATUS" (1 means the guest did exit(0)).
name=$1
shift
. "$(dirname "$0")/../scripts/qemu-cpu.sh"
timeout 30 qemu-system-i386 -nodefaults -M pc \
    -cpu "$QEMU_CPU" \
    -m 64 -display none -no-reboot \
    -serial file:/tmp/$name.com1 -serial file:/tmp/$name.com2 \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -kernel build/guests/$name.elf -append "$*"
echo "exit=$?"
