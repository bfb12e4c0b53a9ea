#!/bin/sh
# tcdump.sh -- `make tcdump GUEST=NAME [ARGS=...] [N=8]`: run a guest under
# the monitor with tcdump=N and show its N most entered translation units,
# each guest instruction beside what the translator made of it.
#
# The monitor counts entries into every 32-bit unit (count=1, bt.c) and
# writes the hottest ones to COM2 as "tcdump" lines: the guest bytes, the
# translation's bytes, and for each guest instruction where its check ends
# and where its translation ends (B:080).  This script disassembles both
# with objdump and lines them up.  Instructions count: a unit that runs
# chained into others is entered through its first instruction either way.
cd "$(dirname "$0")/.." || exit 2
. tests/qemu.sh
guest=${1:?usage: tests/tcdump.sh GUEST [N] [ARGS...]}
n=${2:-8}
shift 2 2>/dev/null || shift $#
case $guest in */*) ;; *) guest=build/guests/$guest.elf ;; esac
[ -f "$guest" ] || { echo "tcdump: no guest $guest" >&2; exit 2; }
out=build/tcdump
mkdir -p "$out"
VMM_OPTS="tcdump=$n $VMM_OPTS" run_vmm "$out/run" 300 "$guest" "$@"
grep '^tcdump' "$out/run.com2" >"$out/units" || { echo "tcdump: no dump in $out/run.com2" >&2; exit 1; }

# Disassemble one hex byte string (file $1) at address $2 into "addr<TAB>insn"
# lines.  The four bytes after each callout (int $0x40) are its record, not
# code: disassembly starts again after them.
dis() {
    perl -ne 'print pack("H2", $_) for split' "$1" >"$1.bin"
    size=$(stat -c %s "$1.bin")
    start=0
    : >"$1.out"
    while [ "$start" -lt "$size" ]; do
        objdump -D -b binary -m i386 --adjust-vma="$2" --start-address=$(($2 + start)) "$1.bin" |
            awk -F'\t' '/^ *[0-9a-f]+:\t/ && $3 != "" { a = $1; sub(/^ */, "", a); sub(/:$/, "", a); print a "\t" $3 }' |
            awk -F'\t' '{ print } $2 ~ /^int +\$0x40/ { exit }' >"$1.part"
        cat "$1.part" >>"$1.out"
        last=$(tail -n 1 "$1.part")
        case $last in
        *'int '*'$0x40'*)
            a=$(printf '%d' "0x${last%%	*}")
            printf '%x\t(its record: four bytes)\n' $((a + 2)) >>"$1.out"
            start=$((a + 6 - $2)) ;;
        *) break ;;
        esac
    done
    cat "$1.out"
}

head -n 1 "$out/units"
unit=0
while read -r tag kind rest; do
    case $kind in
    unit) unit=$((unit + 1)); hdr=$rest ;;
    guest) echo "$rest" >"$out/g.hex" ;;
    marks) echo "$rest" >"$out/m.txt" ;;
    tc)
        echo "$rest" >"$out/t.hex"
        eip=$(echo "$hdr" | sed 's/.*eip=\([0-9a-f]*\).*/\1/')
        echo
        echo "unit $hdr"
        dis "$out/g.hex" "0x$eip" >"$out/g.dis"
        dis "$out/t.hex" 0 >"$out/t.dis"
        # For guest instruction j (at guest offset g), its translation
        # runs from the end of the previous one's to its own end (t).
        awk -v eip="$eip" -v marks="$(cat "$out/m.txt")" '
            function hex(s,   i, c, v) {
                v = 0
                for (i = 1; i <= length(s); i++) {
                    c = index("0123456789abcdef", substr(tolower(s), i, 1))
                    if (c == 0) break
                    v = v * 16 + c - 1
                }
                return v
            }
            BEGIN {
                FS = "\t"
                nm = split(marks, m, " ")
                for (j = 1; j <= nm; j++) { split(m[j], f, ":"); go[j] = f[1]; te[j] = f[3] }
                base = hex(eip)
            }
            FILENAME ~ /g.dis$/ { ga[++ng] = hex($1) - base; gi[ng] = $2; next }
            { ta[++nt] = hex($1); ti[nt] = $2 }
            END {
                k = 1
                # The entry counter of tcdump itself: five MOV and LEA, 31 bytes.
                while (k <= nt && ta[k] < 31) {
                    printf "  %-44s | %04x: %s\n", k == 1 ? "(entry counter, tcdump only)" : "", ta[k], ti[k]
                    k++
                }
                for (j = 1; j <= nm; j++) {
                    g = "";
                    for (x = 1; x <= ng; x++) if (ga[x] == go[j]) g = sprintf("%08x: %s", base + ga[x], gi[x])
                    if (g == "") g = "(to the next unit)"
                    first = 1
                    while (k <= nt && (j == nm || ta[k] < te[j])) {
                        if (j == nm && ti[k] ~ /^int +\$0x40/) {
                            printf "  %-44s | %04x: %s   (callout; what follows: continuation stubs)\n", first ? g : "", ta[k], ti[k]
                            k = nt + 1; first = 0
                            break
                        }
                        printf "  %-44s | %04x: %s\n", first ? g : "", ta[k], ti[k]
                        first = 0; k++
                    }
                    if (first) printf "  %-44s | (nothing)\n", g
                }
            }' "$out/g.dis" "$out/t.dis"
        ;;
    esac
done <"$out/units"
