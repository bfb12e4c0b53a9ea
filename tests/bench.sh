#!/bin/sh
# bench.sh -- `make bench`: nanobenchmarks natively and under the monitor.
#
# Both runs use `-icount shift=0,sleep=off`: QEMU then advances its clock
# one nanosecond per retired instruction and the guest's TSC follows it,
# so a guest's rdtsc delta is exactly the number of instructions retired,
# the monitor's included (docs/00-overview.md).  Instruction counts charge
# nothing for a trap, a page walk or a TLB flush, so each row also shows
# the monitor's own event counts per iteration (from its COM2 statistics:
# exits by vector, callouts, translations).
#
# Output: one line per benchmark,
#   bench NAME native=N vmm=N ratio=R exits=E callouts=C blocks=B
# N are instructions per iteration; E, C, B are monitor events per iteration.
cd "$(dirname "$0")/.." || exit 2
. tests/qemu.sh
out=build/bench
mkdir -p "$out"
QEMU_EXTRA="-icount shift=0,sleep=off"
BENCHES=${BENCHES:-"user_loop kernel_loop syscall in80 clisti cr_write callret pgfault divzero ptemod smc in_port ctxsw"}
echo "# instructions per iteration under -icount shift=0,sleep=off; events are the monitor's, per iteration"
# Ablations: the same benchmark under other monitor options, one row each,
# so that what each mechanism buys shows: chain=0 (no chaining: every
# branch goes through its continuation), inline=0 (every privileged or
# sensitive instruction and every indirect branch calls out), adapt=0 (no
# adaptive translation), direct=0 (no direct execution: user code is
# translated too), checks=0 (translated code at ring 1 without software
# truncation checks: unsafe where the CPU does not check segment limits),
# ring=3 (translated code at ring 3, protected by paging instead).
ABLATIONS=${ABLATIONS-"kernel_loop:chain=0 callret:chain=0 clisti:inline=0 in80:inline=0 callret:inline=0 ptemod:adapt=0 user_loop:direct=0 syscall:direct=0 kernel_loop:checks=0 kernel_loop:ring=3 syscall:ring=3"}

# The software VMM of Adams and Agesen (ASPLOS 2006, Figure 4; Pentium 4,
# cycles per iteration, native / translated), beside the rows they share.
ref() {
    case $1 in
    syscall) echo "ref=AA:240/2240cyc" ;;
    in80|in_port) echo "ref=AA:3209/214cyc" ;;
    cr_write) echo "ref=AA(cr8wr):150/35cyc" ;;
    callret) echo "ref=AA:11/51cyc" ;;
    pgfault) echo "ref=AA:1093/3927cyc" ;;
    divzero) echo "ref=AA:889/3223cyc" ;;
    ptemod) echo "ref=AA:1/391cyc" ;;
    esac
}
rows="$BENCHES"
[ -n "$ABLATIONS" ] && rows="$rows $ABLATIONS"
for row in $rows; do
    b=${row%%:*}
    opts=""
    case $row in *:*) opts=${row#*:} ;; esac
    tag=$b
    [ -n "$opts" ] && tag="$b[$opts]"
    [ -n "$opts" ] || run_native "$out/$b.native" 120 build/guests/bench.elf "$b" &
    VMM_OPTS="$opts" run_vmm "$out/$tag.vmm" 300 build/guests/bench.elf "$b"
    wait
    [ -n "$opts" ] && [ -f "$out/$b.native.com1" ] || [ -z "$opts" ] || run_native "$out/$b.native" 120 build/guests/bench.elf "$b"
    awk -v name="$b" -v tag="$tag" -v ref="$(ref "$b")" '
        FNR == 1 { file++ }
        file == 1 && $1 == "bench" && $2 == name { split($3, a, "="); iters = a[2]; split($4, c, "="); native = c[2] }
        file == 2 && $1 == "bench" && $2 == name { split($4, c, "="); vmm = c[2] }
        file == 3 && $1 == "stat" && $2 == "trap" { exits += $NF }
        file == 3 && $1 == "stat" && $2 == "callout" { callouts += $NF }
        file == 3 && $1 == "stat" && $2 == "translations" { split($3, t, "="); blocks = t[2] }
        END {
            if (!iters || native == "" || vmm == "") { printf "bench %s FAILED (see %s)\n", tag, "build/bench"; exit 1 }
            printf "bench %-24s native=%.1f vmm=%.1f ratio=%.2f extra=%.1f exits=%.3f callouts=%.3f blocks=%.4f %s\n",
                   tag, native / iters, vmm / iters, vmm / native, (vmm - native) / iters, exits / iters,
                   callouts / iters, blocks / iters, ref
        }' "$out/$b.native.com1" "$out/$tag.vmm.com1" "$out/$tag.vmm.com2"
done

# Debian's Linux: boot to /init and forkwait, natively and under the
# monitor (tests/linux.sh bench; four boots, the longest part of make
# bench).  LINUX_BENCH=0 leaves them out.
if [ "${LINUX_BENCH:-1}" != 0 ]; then
    sh tests/linux.sh bench | grep -v '^PASS \|^[0-9]* passed, [0-9]* failed$'
fi
