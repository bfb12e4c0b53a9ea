# qemu.sh -- the two ways every guest is run (sourced by the test scripts).
#
# The same machine both ways: the same CPU model, whose CPUID shows only
# what the monitor virtualizes (scripts/qemu-cpu.sh), the same guest RAM.
# Native: the guest is QEMU's Multiboot kernel.  Under the monitor: the
# monitor is, and the guest is its first module.
. scripts/qemu-cpu.sh
QEMU_COMMON="-nodefaults -M pc -cpu $QEMU_CPU -display none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4"
GUEST_MEM=${GUEST_MEM:-64}

# run_native OUTPREFIX TIMEOUT GUEST.elf [ARGS] -> OUTPREFIX.com1 .com2 .status
run_native() {
    local o=$1 t=$2 elf=$3
    shift 3
    timeout "$t" qemu-system-i386 $QEMU_COMMON -m "$GUEST_MEM" $QEMU_EXTRA \
        -serial "file:$o.com1" -serial "file:$o.com2" \
        -kernel "$elf" -append "$*" </dev/null >"$o.qemu" 2>&1
    echo $? >"$o.status"
}

# run_vmm OUTPREFIX TIMEOUT GUEST.elf [ARGS] -> same files
run_vmm() {
    local o=$1 t=$2 elf=$3 mod
    shift 3
    mod="$elf"
    [ $# -gt 0 ] && mod="$elf $*"
    timeout "$t" qemu-system-i386 $QEMU_COMMON -m 256 $QEMU_EXTRA \
        -serial "file:$o.com1" -serial "file:$o.com2" \
        -kernel build/vmm.elf -append "mem=$GUEST_MEM $VMM_OPTS" \
        -initrd "$mod" </dev/null >"$o.qemu" 2>&1
    echo $? >"$o.status"
}
