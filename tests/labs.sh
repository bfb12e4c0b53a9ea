#!/bin/sh
# labs.sh -- run every lab's measuring commands (make labs; part of make
# test), so that no lab rots: each lab in docs/labs/ has one block
#
#   ```sh lab
#   command
#   ...
#   ```
#
# under its "Measure" heading, and a line
#
#   <!-- lab-check: EXTENDED-REGEX -->
#
# naming what the block's output must contain: the measurement the lab
# asks about, not its value (that is the student's to find, and the
# answers file's).  A lab passes if its block exits 0 within the timeout
# and prints a line matching every lab-check.
#   tests/labs.sh          every lab
#   tests/labs.sh 3        lab 3 only
cd "$(dirname "$0")/.." || exit 2
out=build/labs
mkdir -p "$out"
pass=0 fail=0
for lab in docs/labs/[0-9]*.md; do
    n=$(basename "$lab" .md)
    [ -n "$1" ] && [ "${n%%-*}" != "$1" ] && continue
    awk '/^```sh lab$/ { on = 1; next } on && /^```$/ { exit } on { print }' "$lab" >"$out/$n.sh"
    if [ ! -s "$out/$n.sh" ]; then
        echo "FAIL lab $n: no \`\`\`sh lab block"
        fail=$((fail + 1))
        continue
    fi
    timeout 600 sh -e "$out/$n.sh" >"$out/$n.out" 2>&1
    rc=$?
    missing=""
    checks=$(sed -n 's/^<!-- lab-check: \(.*\) -->$/\1/p' "$lab")
    [ -n "$checks" ] || missing="(no lab-check line)"
    while IFS= read -r re; do
        [ -z "$re" ] && continue
        grep -Eq -- "$re" "$out/$n.out" || missing="$missing /$re/"
    done <<CHECKS
$checks
CHECKS
    answer="docs/labs/answers/$n.md"
    if [ "$rc" = 0 ] && [ -z "$missing" ] && [ -f "$answer" ]; then
        echo "PASS lab $n ($(wc -l <"$out/$n.sh") commands, output in $out/$n.out)"
        pass=$((pass + 1))
    else
        echo "FAIL lab $n: status $rc${missing:+, output lacks $missing}$([ -f "$answer" ] || echo ", no $answer")"
        tail -n 5 "$out/$n.out" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
