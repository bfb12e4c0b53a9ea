# qemu.sh -- the two ways every guest is run (sourced by the test scripts).
#
# The same machine both ways: the same CPU model, whose CPUID shows only
# what the monitor virtualizes (scripts/qemu-cpu.sh), the same guest RAM.
# Native: the guest is QEMU's Multiboot kernel.  Under the monitor: the
# monitor is, and the guest is its first module.
. scripts/qemu-cpu.sh
QEMU_COMMON="-nodefaults -M pc -cpu $QEMU_CPU -display none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4"
GUEST_MEM=${GUEST_MEM:-64}

# How bare QEMU starts a guest image, by its suffix: a Multiboot kernel
# (.elf), a disk with a boot sector (.img), a ROM at the reset vector (.rom).
native_boot() {
    case $1 in
    *.img) echo "-drive file=$1,format=raw,if=ide" ;;
    *.rom) echo "-bios $1" ;;
    esac
}

# ... and the monitor option that tells the monitor the same.
vmm_boot() {
    case $1 in
    *.rom) echo "boot=rom" ;;
    esac
}

# run_native OUTPREFIX TIMEOUT GUEST [ARGS] -> OUTPREFIX.com1 .com2 .status
run_native() {
    local o=$1 t=$2 elf=$3
    shift 3
    if [ -n "$(native_boot "$elf")" ]; then
        timeout "$t" qemu-system-i386 $QEMU_COMMON -m "$GUEST_MEM" $QEMU_EXTRA \
            -serial "file:$o.com1" -serial "file:$o.com2" \
            $(native_boot "$elf") </dev/null >"$o.qemu" 2>&1
    else
        timeout "$t" qemu-system-i386 $QEMU_COMMON -m "$GUEST_MEM" $QEMU_EXTRA \
            -serial "file:$o.com1" -serial "file:$o.com2" \
            -kernel "$elf" -append "$*" </dev/null >"$o.qemu" 2>&1
    fi
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
        -kernel build/vmm.elf -append "mem=$GUEST_MEM $(vmm_boot "$elf") $VMM_OPTS" \
        -initrd "$mod" </dev/null >"$o.qemu" 2>&1
    echo $? >"$o.status"
}
