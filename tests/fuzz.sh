#!/bin/sh
# fuzz.sh -- `make fuzz`: the differential instruction fuzzer
# (guests/fuzz.c) on bare QEMU and under the monitor, compared.
#
# Usage: tests/fuzz.sh [SEED [COUNT [GUEST ARGS...]]]   (defaults 1, 100000)
#   e.g. tests/fuzz.sh 7 20000 paging      VMM_OPTS="ring=3" tests/fuzz.sh
# FUZZ_GUEST=descfuzz or ptfuzz runs the descriptor-table or page-table
# fuzzer instead (guests/descfuzz.c, guests/ptfuzz.c): one line per
# operation or round, the same comparison and the same rerun of the
# first that differs, with `verbose`.
#
# Both runs print one line per sequence: "INDEX DIGEST [kV[:E]] [uV[:E]]"
# (digest of both runs, ring 0 and ring 3; kV/uV a fault at ring 0/3 with
# its vector and error code).  If the transcripts or exit statuses
# differ, the script names the first sequence that differs (and counts
# the others), runs that one again on both sides with `verbose` -- every
# register, EFLAGS, the x87 state, the fault, the scratch words changed --
# shows the two side by side and disassembles the sequence's bytes, with
# the `code=` argument that reruns exactly them.  The last line is
# PASS or FAIL, like the other tests.
cd "$(dirname "$0")/.." || exit 2
. tests/qemu.sh
seed=${1:-1}
count=${2:-100000}
[ $# -gt 2 ] && shift 2 || set --
g=${FUZZ_GUEST:-fuzz}
out=build/$g
mkdir -p "$out"

# Timeouts: generous multiples of what the runs take (about 0.1 ms a
# sequence natively and 1 ms under the monitor), never unbounded.
tn=$((60 + count / 1000))
tv=$((120 + count / 100))

# What one line of each fuzzer stands for.
what() {
    case $g in
    descfuzz) echo "operations" ;;
    ptfuzz)   echo "rounds of 8 steps" ;;
    *)        echo "sequences" ;;
    esac
}

t0=$(date +%s)
run_native "$out/native" "$tn" build/guests/$g.elf seed="$seed" count="$count" "$@"
t1=$(date +%s)
run_vmm "$out/vmm" "$tv" build/guests/$g.elf seed="$seed" count="$count" "$@"
t2=$(date +%s)
ns=$(cat "$out/native.status") vs=$(cat "$out/vmm.status")
echo "$g: seed=$seed count=$count $*: native ${ns:+status $ns} in $((t1 - t0)) s, monitor status $vs in $((t2 - t1)) s"
grep -a "^$g: [0-9]" "$out/native.com1" | sed 's/^/  native:  /'
grep -a "^$g: [0-9]" "$out/vmm.com1" | sed 's/^/  monitor: /'
grep -a "^stat \(entries\|translations\|traces\|reflected\|pagefaults\|checks\)" "$out/vmm.com2" | sed 's/^/  /'

if [ ! -s "$out/native.com1" ] || [ "$ns" = 124 ]; then
    echo "FAIL $g: no output or timeout on bare QEMU (status $ns)"
    exit 1
fi
if cmp -s "$out/native.com1" "$out/vmm.com1" && [ "$ns" = "$vs" ]; then
    echo "PASS $g (seed $seed, $count $(what), status $ns)"
    exit 0
fi

# Where they part.  Lines are "INDEX ..." after the header; the first
# differing line, or the first line one side lacks, names the sequence.
diff "$out/native.com1" "$out/vmm.com1" | grep -a '^[<>] [0-9]' | awk '{print $2}' | sort -n -u >"$out/differ"
ndiff=$(wc -l <"$out/differ")
first=$(head -n 1 "$out/differ")
if [ -z "$first" ]; then
    # No sequence line differs: one side stopped early or printed else.
    first=$(grep -a -c '^[0-9]' "$out/vmm.com1")
    first=$((first))
    echo "  no sequence line differs; the monitor's transcript stops after $first sequence lines (status $vs)"
    tail -n 5 "$out/vmm.com2" | sed 's/^/    monitor: /'
fi
echo "  $ndiff sequences differ; the first is $first$( [ "$ndiff" -gt 1 ] && echo ", then $(sed -n '2,11p' "$out/differ" | tr '\n' ' ')")"
grep -a "^$first " "$out/native.com1" | sed 's/^/  native:  /'
grep -a "^$first " "$out/vmm.com1" | sed 's/^/  monitor: /'

# The first one again, in full, on both sides.
run_native "$out/one.native" 60 build/guests/$g.elf seed="$seed" first="$first" count=1 verbose "$@"
run_vmm "$out/one.vmm" 120 build/guests/$g.elf seed="$seed" first="$first" count=1 verbose "$@"
echo "  --- bare QEMU, sequence $first"
grep -a -v "^$g:" "$out/one.native.com1" | sed 's/^/  /'
echo "  --- under the monitor (status $(cat "$out/one.vmm.status"))"
grep -a -v "^$g:" "$out/one.vmm.com1" | sed 's/^/  /'
echo "  --- what differs (< bare QEMU, > monitor)"
diff "$out/one.native.com1" "$out/one.vmm.com1" | grep -a '^[<>]' | sed 's/^/  /'
code=$(grep -a "^seq $first ring" "$out/one.native.com1" | head -n 1 | sed 's/.* code //')
addr=$(grep -a "^seq $first ring" "$out/one.native.com1" | head -n 1 | sed 's/.* at \([0-9a-f]*\) code.*/\1/')
if [ -n "$code" ]; then
    echo "  --- the sequence (reproduce: seed=$seed first=$first verbose; code=$code)"
    if command -v objdump >/dev/null 2>&1; then
        printf '%s' "$code" | sed 's/../\\x&/g' | xargs -0 printf >"$out/one.bin"
        objdump -D -b binary -mi386 --adjust-vma="0x$addr" "$out/one.bin" | sed -n '8,$p' | sed 's/^/  /'
    fi
fi

# The shortest prefix of the sequence that already differs (each prefix
# run with code=, so with the same registers and memory): its last
# instruction is where the two part.  Cuts that would leave a forward
# branch aiming past the end are skipped.
if [ -n "$code" ] && command -v objdump >/dev/null 2>&1; then
    objdump -D -b binary -mi386 --adjust-vma="0x$addr" "$out/one.bin" | sed -n '8,$p' |
        awk -F'\t' 'NF >= 2 { a = $1; gsub(/[ :]/, "", a); b = $2; gsub(/ /, "", b)
                     if ($3 == "" && n) { by[n] = by[n] b; next }
                     n++; ad[n] = a; by[n] = b; tx[n] = $3 }
                     END { for (i = 1; i <= n; i++) print ad[i], by[i], tx[i] }' >"$out/one.insns"
    prefix="" reach=0 found=""
    while read -r a b t; do
        prefix="$prefix$b"
        end=$((0x$a + ${#b} / 2))
        cut=$((end - 0x$addr))
        case $t in
        j*|loop*) tgt=$(echo "$t" | sed -n 's/.*0x\([0-9a-f]*\).*/\1/p')
                  [ -n "$tgt" ] && [ $((0x$tgt)) -gt "$reach" ] && reach=$((0x$tgt)) ;;
        esac
        [ "$end" -lt "$reach" ] && continue
        run_native "$out/cut.native" 60 build/guests/$g.elf seed="$seed" first="$first" verbose cut="$cut" "$@" &
        run_vmm "$out/cut.vmm" 120 build/guests/$g.elf seed="$seed" first="$first" verbose cut="$cut" "$@"
        wait
        if ! cmp -s "$out/cut.native.com1" "$out/cut.vmm.com1" ||
           [ "$(cat "$out/cut.native.status")" != "$(cat "$out/cut.vmm.status")" ]; then
            found="$a: $t"
            break
        fi
    done <"$out/one.insns"
    if [ -n "$found" ]; then
        echo "  --- they part at $found (reproduce: seed=$seed first=$first cut=$cut, or code=$prefix)"
        diff "$out/cut.native.com1" "$out/cut.vmm.com1" | grep -a '^[<>]' | grep -a -v "^. $g:" | sed 's/^/  /'
    else
        echo "  --- no prefix of the sequence differs by itself: the difference needs the whole run before it"
    fi
fi
echo "FAIL $g: seed $seed, $ndiff of $count $(what) differ (first $first${found:+, at $found}), native status $ns, monitor status $vs"
exit 1
