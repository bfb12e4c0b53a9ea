#!/bin/sh
# linux.sh -- Debian's i386 Linux booting to a busybox shell: natively on
# bare QEMU now, under the monitor once it can load a Linux kernel.
#
#   tests/linux.sh [native]   fetch (cached), build the initramfs, boot on
#                             bare QEMU twice (plain, for the wall time, and
#                             with -icount and the counting plugin, for the
#                             instruction counts), check /init's lines
#   tests/linux.sh vmm        boot under the monitor and check the same
#   tests/linux.sh both       native, then the monitor, then compare the
#                             two transcripts' "linux: " lines
#   tests/linux.sh test       as both, with one native boot (make test)
#   tests/linux.sh bench      make bench's linux_boot and forkwait rows
#   tests/linux.sh soak       make soak: under the monitor, /init's soak
#                             workload until SOAK_SECONDS (default 780) of
#                             uptime, every round's results checked, the
#                             monitor's resource statistics every minute
#   tests/linux.sh shell [vmm]  an interactive busybox shell on this
#                             terminal (Ctrl-A X leaves QEMU)
#
# The guest is guests/linux/init (the facts it prints are its "linux: "
# lines) in an initramfs from scripts/linux-initramfs.sh, booted by the
# kernel that scripts/linux-fetch.sh fetches.  One PASS/FAIL line per
# check, then "N passed, N failed", as tests/run.sh does.  Products in
# build/linux/test/.  Environment: LINUX_MEM (guest MiB, default 128,
# natively too, so that both guests have the same RAM; the monitor
# itself runs in 256 and holds at most 240 for its guest),
# LINUX_APPEND (more kernel options), LINUX_TIMEOUT (seconds for one native
# boot, default 120), LINUX_VMM_TIMEOUT (for the boot under the monitor,
# default 1500: it takes about 400 s here), VMM_OPTS, QEMU_EXTRA.
cd "$(dirname "$0")/.." || exit 2
. tests/qemu.sh
lx=build/linux
out=$lx/test
mode=${1:-native}
mem=${LINUX_MEM:-128}
tmo=${LINUX_TIMEOUT:-120}

# The kernel command line, the same natively and under the monitor:
#   console=ttyS0      kernel messages and /dev/console on COM1, the only
#                      console there is (no VGA: -display none)
#   noapic nolapic     the 8259 PIC only: the CPU model hides the local
#                      APIC and the monitor emulates no I/O APIC
#   acpi=off           no ACPI tables to look for (the monitor has none);
#                      also makes `poweroff` a halt, hence the exit port
#   pci=off            no probing of PCI configuration space (0xcf8/0xcfc)
#   lpj=1000000        skips the delay-loop calibration, a timing loop
#                      whose result would differ from run to run
#   panic=-1           a panic reboots at once, and QEMU's -no-reboot ends
#                      the run: no waiting for the timeout
#   cryptomgr.notests  skips the crypto self-tests: 3.7 of the 4.1 billion
#                      instructions the kernel runs before /init without it
#   noisapnp           skips the ISA Plug and Play scan (90 million
#                      instructions and port I/O to 0x279, 0xa79, 0x203..)
#   pnpbios=off        no calls into the BIOS's 16-bit PnP entry point,
#                      which SeaBIOS has and the monitor's machine has not
# Not given: `quiet` (the boot log is what to read when a boot hangs, and
# a hang shows the last lines), `tsc=unstable` or `clocksource=pit` (the
# CPU model has a TSC, and the kernel calibrates it against the PIT).
LINUX_CMDLINE="console=ttyS0 noapic nolapic acpi=off pci=off lpj=1000000 panic=-1 cryptomgr.notests noisapnp pnpbios=off${LINUX_APPEND:+ $LINUX_APPEND}"

pass=0
fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# run_linux_native OUTPREFIX TIMEOUT [QEMU ARGS] -> OUTPREFIX.com1 .com2
# .status .qemu .wall.  The same machine as run_native in tests/qemu.sh
# (its CPU model, two serial ports), with the kernel and initramfs given
# the Linux way: QEMU's -kernel recognizes a bzImage and loads it itself.
run_linux_native() {
    local o=$1 t=$2 t0
    shift 2
    t0=$(now)
    timeout "$t" qemu-system-i386 $QEMU_COMMON -m "$mem" $QEMU_EXTRA "$@" \
        -serial "file:$o.com1" -serial "file:$o.com2" \
        -kernel $lx/vmlinuz -initrd $lx/initramfs.cpio.gz \
        -append "$LINUX_CMDLINE" </dev/null >"$o.qemu" 2>&1
    echo $? >"$o.status"
    elapsed "$t0" "$(now)" >"$o.wall"
}

# ---------------------------------------------------------------------
# run_linux_vmm OUTPREFIX TIMEOUT -> the same files, under the monitor.
#
# TO BE ADJUSTED with the monitor's Linux loader.  Like run_vmm in
# tests/qemu.sh: the monitor is QEMU's Multiboot kernel, and the guest
# its modules.  QEMU's -initrd takes comma-separated modules for a
# Multiboot kernel, each "FILE ARGS": module 1 is the bzImage, its string
# the file name and then the kernel command line; module 2 the
# initramfs.  Assumed here: the monitor recognizes a bzImage by its setup
# header ("HdrS" at 0x202), passes the rest of module 1's string as the
# command line, and module 2 as the initrd (boot_params ramdisk_image).
# If it wants a boot= option instead, it goes into the -append below.
run_linux_vmm() {
    local o=$1 t=$2 t0
    t0=$(now)
    timeout "$t" qemu-system-i386 $QEMU_COMMON -m 256 $QEMU_EXTRA \
        -serial "file:$o.com1" -serial "file:$o.com2" \
        -kernel build/vmm.elf -append "mem=$mem $VMM_OPTS" \
        -initrd "$lx/vmlinuz $LINUX_CMDLINE,$lx/initramfs.cpio.gz" </dev/null >"$o.qemu" 2>&1
    echo $? >"$o.status"
    elapsed "$t0" "$(now)" >"$o.wall"
}
# ---------------------------------------------------------------------

# The "linux: " lines /init must print, computed here where they can be
# (the CPU flags are checked separately: they are QEMU's CPU model's).
expected() {
    echo "linux: uname -r: $(cat $lx/release)"
    echo "linux: timer counting: yes"
    echo "linux: serial counting: yes"
    echo "linux: sum 1..1000: 500500"
    echo "linux: exec /bin/true: 40 of 40"
    echo "linux: forks counted: yes"
    echo "linux: expr 6 * 7: 42"
    echo "linux: tmpfs file: $(seq 1 2000 | wc -c) bytes, md5 $(seq 1 2000 | md5sum | cut -d' ' -f1)"
    echo "linux: tmpfs copy: same"
    echo "linux: pipe seq|wc: 1000"
    echo "linux: pipe seq|grep|tail: 997"
    echo "linux: done"
}

# lines OUTPREFIX: the transcript's "linux: " lines (the serial console
# ends lines with CR LF) -> OUTPREFIX.linux
lines() {
    tr -d '\r' <"$1.com1" | grep '^linux: ' >"$1.linux"
}

# check NAME OUTPREFIX: one PASS/FAIL line for one boot.  QEMU's status
# 1 is /init's `end 0` through isa-debug-exit; 0 a reset (a panic, or
# the port did not work); 124 the timeout.
check() {
    local name=$1 o=$2 st missing init flags
    st=$(cat "$o.status")
    lines "$o"
    missing=$(expected | grep -Fxv -f "$o.linux")
    flags=$(sed -n 's/^linux: cpu flags: //p' "$o.linux")
    for f in fpu cx8 cmov; do
        echo " $flags " | grep -q " $f " || missing="$missing
linux: cpu flags: (no $f)"
    done
    init=$(tr -d '\r' <"$o.com1" | sed -n 's/^\[ *\([0-9.]*\)\] Run \/init as init process.*/\1/p')
    if [ "$st" = 1 ] && [ -z "$missing" ]; then
        ok "$name (status 1, $(wc -l <"$o.linux") linux: lines, /init at ${init:-?} s uptime, $(cat "$o.wall") s wall)"
        return 0
    fi
    if [ "$st" = 124 ]; then
        bad "$name: timed out ($(cat "$o.wall") s); the last lines on COM1:"
        tr -d '\r' <"$o.com1" | tail -n 15 | sed 's/^/    /'
    elif [ ! -s "$o.linux" ]; then
        bad "$name: status $st, and /init printed nothing"
        tr -d '\r' <"$o.com1" | tail -n 8 | sed 's/^/    /'
        [ -s "$o.qemu" ] && sed 's/^/    qemu: /' "$o.qemu" | head -n 5
    else
        bad "$name: status $st"
        [ -n "$missing" ] && echo "$missing" | sed 's/^/    missing: /'
        tr -d '\r' <"$o.com1" | tail -n 8 | sed 's/^/    /'
        [ -s "$o.qemu" ] && sed 's/^/    qemu: /' "$o.qemu" | head -n 5
    fi
    [ "$o" = "$out/vmm" ] && [ -s "$o.com2" ] && {
        echo "    the last lines of the monitor's log:"
        tail -n 12 "$o.com2" | sed 's/^/    /'
    }
    return 1
}

prepare() {
    mkdir -p "$out"
    if scripts/linux-fetch.sh >"$out/fetch.log" 2>&1; then
        ok "linux fetch ($(tail -n 1 "$out/fetch.log" | sed 's/^linux-fetch: [^:]*: //'))"
    else
        bad "linux fetch"; tail -n 15 "$out/fetch.log" | sed 's/^/    /'; finish
    fi
    if scripts/linux-initramfs.sh >"$out/initramfs.log" 2>&1; then
        ok "linux initramfs ($(wc -c <$lx/initramfs.cpio.gz) bytes)"
    else
        bad "linux initramfs"; tail -n 15 "$out/initramfs.log" | sed 's/^/    /'; finish
    fi
}

# The counting plugin (scripts/qemu-count.c), split at PAGE_OFFSET and
# marked at busybox's entry point, the first instruction of /init.
plugin_args() {
    gcc -shared -fPIC -O2 -o $lx/qemu-count.so scripts/qemu-count.c >"$out/plugin.log" 2>&1 || return 1
    entry=$(od -An -t x4 -j 24 -N 4 $lx/busybox | tr -d ' ')
    echo "-plugin $lx/qemu-count.so,split=0xc0000000,mark=0x$entry -d plugin -D $out/icount.count"
}

# bench: make bench's Linux rows.  Four boots under -icount with the
# counting plugin: natively and under the monitor, each plain and with
# forkwait=N (/init then forks N subshells that exit at once, and waits
# for each).  Rows:
#   bench linux_boot  instructions to /init's first, natively and under
#                     the monitor, and their ratio
#   bench forkwait    (instructions of the forkwait boot - of the plain
#                     one) / N, natively and under the monitor
# then the monitor's statistics for the plain boot.  Under the monitor
# the plugin splits at the monitor's base, 0xffc00000: below it runs
# only directly executed guest code (and the firmware), above it the
# monitor and translated code - the direct-execution share.
bench() {
    fwn=${FORKWAIT:-2000}
    gcc -shared -fPIC -O2 -o $lx/qemu-count.so scripts/qemu-count.c >"$out/plugin.log" 2>&1 ||
        { bad "linux bench: the counting plugin does not build"; head -n 3 "$out/plugin.log"; finish; }
    entry=$(od -An -t x4 -j 24 -N 4 $lx/busybox | tr -d ' ')
    base_cmdline=$LINUX_CMDLINE
    make -s build/vmm.elf >"$out/make.log" 2>&1 || { bad "linux bench: build/vmm.elf does not build"; finish; }
    for fw in 0 "$fwn"; do
        LINUX_CMDLINE=$base_cmdline
        [ "$fw" != 0 ] && LINUX_CMDLINE="$base_cmdline forkwait=$fw"
        rm -f "$out/bn$fw.count" "$out/bv$fw.count"
        QEMU_EXTRA="-icount shift=0,sleep=off -rtc base=2025-01-01T00:00:00,clock=vm -plugin $lx/qemu-count.so,split=0xc0000000,mark=0x$entry -d plugin -D $out/bn$fw.count" \
            run_linux_native "$out/bn$fw" "$tmo"
        check "linux bench native forkwait=$fw" "$out/bn$fw" >/dev/null || bad "linux bench native forkwait=$fw"
        QEMU_EXTRA="-icount shift=0,sleep=off -rtc base=2025-01-01T00:00:00,clock=vm -plugin $lx/qemu-count.so,split=0xffc00000,mark=0x$entry -d plugin -D $out/bv$fw.count" \
            run_linux_vmm "$out/bv$fw" "${LINUX_VMM_TIMEOUT:-3000}"
        check "linux bench under the monitor forkwait=$fw" "$out/bv$fw" >/dev/null || bad "linux bench under the monitor forkwait=$fw"
    done
    # count: total=T low=L high=H mark: total=t low=l high=h
    field() { sed -n 's/[a-z]*=//g; s/count: //; s/mark: //p' "$1" 2>/dev/null | awk -v k="$2" '{ print $k }'; }
    n0=$(field "$out/bn0.count" 4) v0=$(field "$out/bv0.count" 4)
    nt0=$(field "$out/bn0.count" 1) nt1=$(field "$out/bn$fwn.count" 1)
    vt0=$(field "$out/bv0.count" 1) vt1=$(field "$out/bv$fwn.count" 1)
    vlow=$(field "$out/bv0.count" 2)
    awk -v n="$n0" -v v="$v0" -v vl="$vlow" -v vt="$vt0" 'BEGIN {
        if (n == "" || v == "") { print "bench linux_boot FAILED (see build/linux/test)"; exit }
        printf "bench linux_boot        native=%.0f vmm=%.0f ratio=%.2f (instructions to /init; whole boot under the monitor: %.1f%% directly executed)\n", n, v, v / n, 100 * vl / vt }'
    awk -v a="$nt0" -v b="$nt1" -v c="$vt0" -v d="$vt1" -v k="$fwn" 'BEGIN {
        if (a == "" || b == "" || c == "" || d == "") { print "bench forkwait FAILED (see build/linux/test)"; exit }
        printf "bench forkwait          native=%.0f vmm=%.0f ratio=%.2f (instructions per fork, exit and wait, %d of them)\n", (b - a) / k, (d - c) / k, (d - c) / (b - a), k }'
    echo "# the monitor's statistics, plain boot (build/linux/test/bv0.com2):"
    grep '^stat ' "$out/bv0.com2" | sed 's/^/#   /'
}

# soak: make soak.  /init runs its soak workload (guests/linux/init) for
# SOAK_SECONDS of uptime from its start; each round's line must carry the answers
# computed here, the workload must have run at least 600 s of the
# kernel's clock, the standard lines must all be there, and the monitor,
# reporting its statistics every 60 s of virtual time (statsevery=60),
# must keep every fixed pool within its size, end with its integrity
# check passing, and not stop.  The resource lines are summarized: how
# full each pool was at the first report after /init and at the last,
# and how many flushes each minute of the workload's first and second
# halves took.
soak() {
    secs=${SOAK_SECONDS:-660}
    make -s build/vmm.elf >"$out/make.log" 2>&1 || { bad "linux soak: build/vmm.elf does not build"; finish; }
    LINUX_CMDLINE="$LINUX_CMDLINE soak=$secs"
    VMM_OPTS="$VMM_OPTS statsevery=60"
    run_linux_vmm "$out/soak" $((secs * 3 + 900))
    check "linux soak under the monitor" "$out/soak"
    want="exec 10/10 pipe $(seq 1 500 | grep 5 | md5sum | cut -d' ' -f1) file same $(seq 1 300 | md5sum | cut -d' ' -f1) squares 9045050 slept yes"
    tr -d '\r' <"$out/soak.com1" | grep '^soak: round ' >"$out/soak.rounds"
    n=$(wc -l <"$out/soak.rounds")
    wrong=$(grep -c -v -F ": $want" "$out/soak.rounds")
    t0=$(tr -d '\r' <"$out/soak.com1" | sed -n 's/^soak: from \([0-9.]*\) s.*/\1/p')
    t1=$(tr -d '\r' <"$out/soak.com1" | sed -n 's/^soak: [0-9]* rounds, until \([0-9.]*\) s.*/\1/p')
    span=$(awk -v a="${t0:-0}" -v b="${t1:-0}" 'BEGIN { printf "%d", b - a }')
    if [ "$n" -gt 0 ] && [ "$wrong" = 0 ] && [ "$span" -ge 600 ]; then
        ok "linux soak: $n rounds over $span s of uptime ($t0 to $t1), every one right"
    else
        bad "linux soak: $n rounds over $span s of uptime (${t0:-no start} to ${t1:-no end}; at least 600 s), $wrong wrong (each must read \"$want\")"
        grep -v -F ": $want" "$out/soak.rounds" | head -n 5 | sed 's/^/    /'
    fi
    # stat resources units=U/MU cache_bytes=B/MB shadow_pages=P/MP rmap=R/MR traced_frames=T
    grep '^stat resources' "$out/soak.com2" | sed 's/[a-z_]*=//g; s/^stat resources //; s/\// /g' >"$out/soak.res"
    over=$(awk '$1 > $2 || $3 > $4 || $5 > $6 || $7 > $8 { n++ } END { print n + 0 }' "$out/soak.res")
    reports=$(wc -l <"$out/soak.res")
    if [ "$reports" -ge 10 ] && [ "$over" = 0 ] && grep -q "^vmm: integrity ok" "$out/soak.com2" &&
       ! grep -q "guest stopped" "$out/soak.com2"; then
        ok "linux soak: the monitor's $reports reports keep every pool within its size; integrity ok"
    else
        bad "linux soak: $reports resource reports, $over past a pool's size, or the integrity check or a stop"
        grep "integrity\|guest stopped" "$out/soak.com2" | sed 's/^/    /'
    fi
    awk 'NR == 3 { a = $0 } END { print "info: pools at the third report (units, cache bytes, shadow pages, reverse map, traced frames): " a; print "info: pools at the last report: " $0 }' "$out/soak.res"
    grep '^stat translations' "$out/soak.com2" | sed 's/.*flushes=\([0-9]*\).*/\1/' >"$out/soak.flushes"
    grep '^stat pagefaults' "$out/soak.com2" | sed 's/.*shadow_flushes=\([0-9]*\).*/\1/' >"$out/soak.sflushes"
    paste "$out/soak.flushes" "$out/soak.sflushes" | awk '{ tc[NR] = $1; sh[NR] = $2 } END {
        h = int(NR / 2); if (h < 2) exit
        printf "info: translation-cache flushes a minute, first half %.1f, second half %.1f; shadow-pool flushes %.1f, %.1f\n",
            (tc[h] - tc[2]) / (h - 2 > 0 ? h - 2 : 1), (tc[NR] - tc[h]) / (NR - h),
            (sh[h] - sh[2]) / (h - 2 > 0 ? h - 2 : 1), (sh[NR] - sh[h]) / (NR - h) }'
}

# N in billions.
g() { awk -v n="$1" 'BEGIN { printf "%.2f billion", n / 1e9 }'; }

native() {
    run_linux_native "$out/native" "$tmo"
    check "linux native" "$out/native"
    # Again with one guest instruction per virtual nanosecond and the
    # CMOS clock following QEMU's virtual clock from a fixed date: the
    # guest's time then depends on nothing but its own work, every run
    # executes the same instructions, and the plugin counts them.
    pa=$(plugin_args) || { echo "    (the counting plugin did not build: $(head -n 1 "$out/plugin.log"))"; pa=""; }
    rm -f "$out/icount.count"
    run_linux_native "$out/icount" "$tmo" -icount shift=0,sleep=off \
        -rtc base=2025-01-01T00:00:00,clock=vm $pa
    if check "linux native -icount shift=0,sleep=off" "$out/icount"; then
        if cmp -s "$out/native.linux" "$out/icount.linux"; then
            ok "linux native: the same linux: lines with and without -icount"
        else
            bad "linux native: the linux: lines differ with -icount"
            diff "$out/native.linux" "$out/icount.linux" | sed 's/^/    /'
        fi
    fi
    # count: total=T low=L high=H mark: total=t low=l high=h
    set -- $(sed -n 's/[a-z]*=//g; s/count: //; s/mark: //p' "$out/icount.count" 2>/dev/null)
    case $4 in
    [0-9]*) echo "info: instructions to /init's first: $4 ($(g $4)): $5 below 0xc0000000 (firmware, decompressor), $6 in the kernel"
            echo "info: instructions in the whole run: $1 ($(g $1)): $2 below 0xc0000000 (and user space), $3 in the kernel" ;;
    *)      echo "info: no instruction count (plugin: $(cat "$out/icount.count" "$out/plugin.log" 2>/dev/null | head -n 1))" ;;
    esac
    echo "info: kernel $(cat $lx/release), $(sed -n 's/^linux: cpu flags/cpu flags/p' "$out/native.linux")"
}

vmm() {
    make -s build/vmm.elf >"$out/make.log" 2>&1 || { bad "linux vmm: build/vmm.elf does not build"; tail -n 10 "$out/make.log"; finish; }
    run_linux_vmm "$out/vmm" "${LINUX_VMM_TIMEOUT:-1500}"
    check "linux under the monitor" "$out/vmm"
}

shell() {
    if [ "$1" = vmm ]; then
        make -s build/vmm.elf || exit 2
        exec qemu-system-i386 $QEMU_COMMON -m 256 $QEMU_EXTRA \
            -serial mon:stdio -serial file:/dev/stderr \
            -kernel build/vmm.elf -append "mem=$mem $VMM_OPTS" \
            -initrd "$lx/vmlinuz $LINUX_CMDLINE vmmshell,$lx/initramfs.cpio.gz"
    fi
    exec qemu-system-i386 $QEMU_COMMON -m "$mem" $QEMU_EXTRA -serial mon:stdio \
        -kernel $lx/vmlinuz -initrd $lx/initramfs.cpio.gz -append "$LINUX_CMDLINE vmmshell"
}

case $mode in
native) prepare; native ;;
vmm)    prepare; vmm ;;
both)
    prepare; native; vmm
    if cmp -s "$out/native.linux" "$out/vmm.linux"; then
        ok "linux: the same linux: lines natively and under the monitor"
    else
        bad "linux: the linux: lines differ natively and under the monitor"
        diff "$out/native.linux" "$out/vmm.linux" | sed 's/^/    /'
    fi ;;
test)
    # make test's form: one plain native boot (no -icount: make bench
    # counts instructions), one under the monitor, their lines compared.
    prepare
    run_linux_native "$out/native" "$tmo"
    check "linux native" "$out/native"
    vmm
    if cmp -s "$out/native.linux" "$out/vmm.linux"; then
        ok "linux: the same $(wc -l <"$out/vmm.linux") linux: lines natively and under the monitor"
    else
        bad "linux: the linux: lines differ natively and under the monitor"
        diff "$out/native.linux" "$out/vmm.linux" | sed 's/^/    /'
    fi ;;
bench)  prepare >/dev/null; bench ;;
soak)   prepare; soak ;;
shell)  prepare; shell "$2" ;;
*)      echo "usage: $0 [native|vmm|both|test|bench|soak|shell [vmm]]" >&2; exit 2 ;;
esac
finish
