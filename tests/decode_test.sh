#!/bin/sh
# decode_test.sh -- build and run the decoder's host test (tests/decode_test.c).
#
# Checks decode.c against hand-written cases and against GNU objdump, in
# 32-bit and 16-bit default modes, over:
#   - assembled code: many opcodes with every addressing form
#     (decode_test gen-asm, assembled with as --32 as .code32 and .code16);
#   - pseudo-random bytes with a fixed seed (decode_test gen-bytes).
# Run as sh tests/decode_test.sh (it works from the top of the tree).
# Prints one line per failure and "decode: N passed, N failed"; exits
# non-zero if anything failed.
set -e
cd "$(dirname "$0")/.."

mkdir -p build
gcc -O2 -Wall -Wextra -I. tests/decode_test.c decode.c -o build/decode_test

tmp=$(mktemp -d /tmp/decode_test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

dis() {     # dis MACHINE FILE: objdump's disassembly of raw bytes
    objdump -D -z -w --insn-width=15 -b binary -m "$1" "$2"
}

set --
for bits in 32 16; do
    if [ $bits = 32 ]; then machine=i386; else machine=i8086; fi

    # Assembled code.
    build/decode_test gen-asm $bits > "$tmp/asm$bits.s"
    as --32 -W -o "$tmp/asm$bits.o" "$tmp/asm$bits.s"
    objcopy -O binary -j .text "$tmp/asm$bits.o" "$tmp/asm$bits.bin"
    dis $machine "$tmp/asm$bits.bin" > "$tmp/asm$bits.dis"

    # Pseudo-random bytes, a different fixed seed per mode.
    build/decode_test gen-bytes $bits > "$tmp/rand$bits.bin"
    dis $machine "$tmp/rand$bits.bin" > "$tmp/rand$bits.dis"

    set -- "$@" $bits "$tmp/asm$bits.bin" "$tmp/asm$bits.dis" \
                $bits "$tmp/rand$bits.bin" "$tmp/rand$bits.dis"
done

set +e
build/decode_test check "$@"
