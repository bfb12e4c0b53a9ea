/*
 * decode_test.c -- host unit test for decode.c.
 *
 * Two kinds of checks.  Hand-written cases pin down lengths, flags, emu
 * kinds and operand fields of instructions the monitor cares about.  The
 * cross-check compares the decoder's length with GNU objdump's at every
 * instruction start objdump reports, over assembled code (every
 * addressing form, many opcodes) and over pseudo-random bytes, in 32-bit
 * and 16-bit default modes.  tests/decode_test.sh drives it:
 *
 *   decode_test                          hand-written cases only
 *   decode_test gen-asm BITS             print the assembler source
 *   decode_test gen-bytes SEED           print pseudo-random code bytes
 *   decode_test check BITS BIN DIS ...   hand cases, then each BIN against
 *                                        objdump's disassembly DIS of it
 *
 * Output: one line per failure, then "decode: N passed, N failed".
 * Exit status 1 if anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "decode.h"

static unsigned long npass, nfail;

/* objdump lines not compared, by reason (see check_file). */
enum { SKIP_BAD, SKIP_PREFIX, SKIP_EOF, SKIP_VEX, SKIP_FWAIT, SKIP_SSE4A, NSKIP_REASONS };
static const char *const skip_reason[NSKIP_REASONS] = {
    "(bad) or .byte", "lone prefix", "end of file", "VEX/EVEX/XOP", "fwait folded", "SSE4a",
};
static unsigned long nskip[NSKIP_REASONS];

/* ------------------------------------------------------------------------
 * Hand-written cases.
 *
 * Each case is the instruction bytes in hex, the default operand size
 * (32 or 16), the expected return value (length or DECODE_*), and a list
 * of field=value checks.  flags= is compared exactly; names are the D_*
 * names without "D_", joined by '|', or 0.
 * ---------------------------------------------------------------------- */
struct hcase {
    const char *hex;
    int bits;
    int ret;
    const char *expect;
};

#define SHORT   DECODE_SHORT
#define TOOLONG DECODE_TOOLONG

static const struct hcase hcases[] = {
    /* prefixes, 16-bit addressing under 67, segment override */
    { "66 67 26 8b 40 10", 32, 6, "flags=MODRM emu=NONE opsize=2 adsize=2 seg=ES disp=0x10 disp_len=1 disp_off=5 nprefix=3 op=0x8b mod=1 rm=0" },
    { "67 8b 46 02", 32, 4, "flags=MODRM adsize=2 opsize=4 disp=2 disp_len=1" },
    { "8b 46 02", 16, 3, "flags=MODRM adsize=2 opsize=2 disp=2" },
    { "8b 46 fe", 16, 3, "disp=-2" },
    { "8b 06 34 12", 16, 4, "disp=0x1234 disp_len=2 disp_off=2" },
    { "8b 80 34 12", 16, 4, "disp=0x1234 disp_len=2" },
    { "8b 86 00 80", 16, 4, "disp=-32768 disp_len=2" },
    { "8b 07", 16, 2, "disp_len=0 has_sib=0" },
    { "67 8b 00", 16, 3, "adsize=4 has_sib=0 disp_len=0" },
    { "67 8b 04 24", 16, 4, "adsize=4 has_sib=1 sib=0x24" },
    { "2e 8b 07", 16, 3, "seg=CS" },
    { "2e 3e 26 64 65 36 90", 32, 7, "seg=SS nprefix=6" },
    /* 32-bit ModRM / SIB forms */
    { "8b 04 24", 32, 3, "has_sib=1 sib=0x24 disp_len=0" },
    { "8b 04 25 78 56 34 12", 32, 7, "has_sib=1 disp=0x12345678 disp_len=4 disp_off=3" },
    { "8b 44 24 08", 32, 4, "disp=8 disp_len=1" },
    { "8b 84 24 00 01 00 00", 32, 7, "disp=0x100 disp_len=4" },
    { "8b 05 78 56 34 12", 32, 6, "has_sib=0 disp=0x12345678" },
    { "8b 45 00", 32, 3, "disp=0 disp_len=1" },
    { "8b 44 c5 80", 32, 4, "disp=-128" },
    { "8b 0c 8d 00 00 00 80", 32, 7, "disp=-2147483648 reg=1" },
    { "8b c1", 32, 2, "mod=3 reg=0 rm=1 has_sib=0" },
    /* segment registers */
    { "8e d8", 32, 2, "flags=MODRM|SENSITIVE|SEGLOAD|ENDS emu=MOV_TO_SR reg=3 name=mov" },
    { "8e d0", 32, 2, "flags=MODRM|SENSITIVE|SEGLOAD|ENDS emu=MOV_TO_SR reg=2" },
    { "8e 1d 78 56 34 12", 32, 6, "flags=MODRM|SENSITIVE|SEGLOAD|ENDS emu=MOV_TO_SR disp=0x12345678" },
    { "8e c8", 32, 2, "flags=MODRM|INVALID|ENDS emu=NONE" },      /* mov cs */
    { "8e f0", 32, 2, "flags=MODRM|INVALID|ENDS" },
    { "8c c8", 32, 2, "flags=MODRM|SENSITIVE|SEGREAD emu=MOV_FROM_SR reg=1" },
    { "66 8c 28", 32, 3, "flags=MODRM|SENSITIVE|SEGREAD emu=MOV_FROM_SR reg=5" },
    { "8c f8", 32, 2, "flags=MODRM|INVALID|ENDS" },
    { "06", 32, 1, "flags=SENSITIVE|SEGREAD|STACK emu=PUSH_SR" },
    { "17", 32, 1, "flags=SENSITIVE|SEGLOAD|STACK|ENDS emu=POP_SR" },
    { "0f a0", 32, 2, "flags=SENSITIVE|SEGREAD|STACK emu=PUSH_SR map=1 op=0xa0" },
    { "0f a9", 32, 2, "flags=SENSITIVE|SEGLOAD|STACK|ENDS emu=POP_SR" },
    { "c4 06", 32, 2, "flags=MODRM|SENSITIVE|SEGLOAD|MEMONLY|ENDS emu=LOAD_FAR" },
    { "c5 c0", 32, 2, "flags=MODRM|SENSITIVE|SEGLOAD|MEMONLY|ENDS|INVALID emu=LOAD_FAR" },
    { "0f b2 06", 32, 3, "flags=MODRM|SENSITIVE|SEGLOAD|MEMONLY|ENDS emu=LOAD_FAR name=lss" },
    { "0f b5 46 10", 16, 4, "flags=MODRM|SENSITIVE|SEGLOAD|MEMONLY|ENDS emu=LOAD_FAR name=lgs" },
    /* system instructions */
    { "0f 01 15 78 56 34 12", 32, 7, "flags=MODRM|PRIV|ENDS|MEMONLY emu=GRP7 name=lgdt disp=0x12345678" },
    { "0f 01 1e 34 12", 16, 5, "flags=MODRM|PRIV|ENDS|MEMONLY emu=GRP7 name=lidt" },
    { "0f 01 00", 32, 3, "flags=MODRM|SENSITIVE|MEMONLY emu=GRP7 name=sgdt" },
    { "0f 01 e0", 32, 3, "flags=MODRM|SENSITIVE emu=GRP7 name=smsw" },
    { "0f 01 f0", 32, 3, "flags=MODRM|PRIV|ENDS emu=GRP7 name=lmsw" },
    { "0f 01 38", 32, 3, "flags=MODRM|PRIV|ENDS|MEMONLY emu=GRP7 name=invlpg" },
    { "0f 01 c8", 32, 3, "flags=MODRM|SENSITIVE|MEMONLY|INVALID|ENDS" },   /* monitor */
    { "0f 01 d0", 32, 3, "flags=MODRM|PRIV|ENDS|MEMONLY|INVALID" },        /* xgetbv */
    { "0f 01 f8", 32, 3, "flags=MODRM|PRIV|ENDS|MEMONLY|INVALID" },        /* swapgs */
    { "0f 01 28", 32, 3, "flags=MODRM|INVALID|ENDS" },                     /* /5 */
    { "0f 00 d0", 32, 3, "flags=MODRM|PRIV|ENDS emu=GRP6 name=lldt" },
    { "0f 00 18", 32, 3, "flags=MODRM|PRIV|ENDS emu=GRP6 name=ltr" },
    { "0f 00 c0", 32, 3, "flags=MODRM|SENSITIVE emu=GRP6 name=sldt" },
    { "0f 00 08", 32, 3, "flags=MODRM|SENSITIVE emu=GRP6 name=str" },
    { "0f 00 e0", 32, 3, "flags=MODRM|SENSITIVE emu=GRP6 name=verr" },
    { "0f 00 f0", 32, 3, "flags=MODRM|INVALID|ENDS emu=NONE" },
    { "0f 22 d8", 32, 3, "flags=MODRM|CRDR|PRIV|ENDS emu=MOV_CR reg=3 rm=0" },
    { "0f 20 05", 32, 3, "flags=MODRM|CRDR|PRIV|ENDS emu=MOV_CR mod=0 disp_len=0" },
    { "0f 23 f8", 32, 3, "flags=MODRM|CRDR|PRIV|ENDS emu=MOV_DR reg=7" },
    { "f0 0f 20 c0", 32, 4, "flags=MODRM|CRDR|PRIV|ENDS|INVALID lock=1" },  /* AMD's cr8 */
    { "0f 02 c1", 32, 3, "flags=MODRM|SENSITIVE emu=LAR" },
    { "0f 03 06", 32, 3, "flags=MODRM|SENSITIVE emu=LSL" },
    { "0f 06", 32, 2, "flags=PRIV|ENDS emu=CLTS" },
    { "0f 08", 32, 2, "flags=PRIV|ENDS emu=INVD" },
    { "0f 09", 32, 2, "flags=PRIV|ENDS emu=INVD" },
    { "0f 30", 32, 2, "flags=PRIV|ENDS emu=WRMSR" },
    { "0f 31", 32, 2, "flags=0 emu=RDTSC" },
    { "0f 32", 32, 2, "flags=PRIV|ENDS emu=RDMSR" },
    { "0f 33", 32, 2, "flags=PRIV|ENDS emu=RDPMC" },
    { "0f 34", 32, 2, "flags=INVALID|ENDS emu=SYSENTER" },
    { "0f 35", 32, 2, "flags=INVALID|ENDS emu=SYSEXIT" },
    { "0f a2", 32, 2, "flags=SENSITIVE|ENDS emu=CPUID" },
    { "0f aa", 32, 2, "flags=INVALID|ENDS emu=RSM" },
    { "f4", 32, 1, "flags=PRIV|ENDS emu=HLT" },
    { "9c", 32, 1, "flags=SENSITIVE|STACK emu=PUSHF" },
    { "66 9d", 32, 2, "flags=SENSITIVE|STACK|ENDS emu=POPF opsize=2" },
    { "fa", 32, 1, "flags=IOPL|ENDS emu=CLI" },
    { "fb", 16, 1, "flags=IOPL|ENDS emu=STI" },
    { "e4 60", 32, 2, "flags=IOPL|IO|ENDS emu=IN imm=0x60 imm_len=1 imm_off=1" },
    { "e7 80", 32, 2, "flags=IOPL|IO|ENDS emu=OUT imm=0x80" },
    { "ec", 32, 1, "flags=IOPL|IO|ENDS emu=IN" },
    { "66 ef", 32, 2, "flags=IOPL|IO|ENDS emu=OUT opsize=2" },
    { "f3 6c", 32, 2, "flags=IOPL|IO|STRING|ENDS emu=INS rep=0xf3" },
    { "f3 66 6f", 32, 3, "flags=IOPL|IO|STRING|ENDS emu=OUTS rep=0xf3 opsize=2" },
    /* control flow */
    { "cd 80", 32, 2, "flags=BRANCH|ENDS|SEGLOAD|STACK emu=INT imm=0x80 imm_len=1" },
    { "cc", 32, 1, "flags=BRANCH|ENDS|SEGLOAD|STACK emu=INT3" },
    { "ce", 32, 1, "flags=BRANCH|ENDS|SEGLOAD|STACK emu=INTO" },
    { "f1", 32, 1, "flags=BRANCH|ENDS|SEGLOAD|STACK emu=INT1" },
    { "cf", 32, 1, "flags=BRANCH|ENDS|STACK|SEGLOAD|SENSITIVE emu=IRET" },
    { "ea 78 56 34 12 08 00", 32, 7, "flags=BRANCH|ENDS|SEGLOAD emu=JMPF imm=0x12345678 imm2=8 imm_len=6 imm_off=1" },
    { "66 ea 34 12 08 00", 32, 6, "emu=JMPF imm=0x1234 imm2=8 imm_len=4 imm_off=2" },
    { "ea 34 12 00 f0", 16, 5, "emu=JMPF imm=0x1234 imm2=0xf000" },
    { "9a 78 56 34 12 10 00", 32, 7, "flags=BRANCH|ENDS|SEGLOAD|STACK emu=CALLF imm=0x12345678 imm2=0x10" },
    { "e8 00 01 00 00", 32, 5, "flags=BRANCH|ENDS|STACK emu=CALL imm=0x100 imm_len=4" },
    { "66 e8 00 01", 32, 4, "emu=CALL imm=0x100 imm_len=2" },
    { "e8 fd ff", 16, 3, "emu=CALL imm=-3" },
    { "e9 fb ff ff ff", 32, 5, "flags=BRANCH|ENDS emu=JMP imm=-5" },
    { "eb fe", 32, 2, "flags=BRANCH|ENDS emu=JMP imm=-2 imm_len=1" },
    { "70 80", 32, 2, "flags=BRANCH|ENDS emu=JCC imm=-128" },
    { "7f 7f", 32, 2, "emu=JCC imm=127" },
    { "0f 84 fe ff ff ff", 32, 6, "flags=BRANCH|ENDS emu=JCC imm=-2 imm_len=4 imm_off=2" },
    { "0f 8f fc ff", 16, 4, "emu=JCC imm=-4 imm_len=2" },
    { "e2 fe", 32, 2, "flags=BRANCH|ENDS emu=LOOP imm=-2" },
    { "67 e3 10", 32, 3, "flags=BRANCH|ENDS emu=JCXZ imm=16 adsize=2" },
    { "c3", 32, 1, "flags=BRANCH|ENDS|STACK emu=RET" },
    { "c2 08 00", 32, 3, "flags=BRANCH|ENDS|STACK emu=RET imm=8 imm_len=2" },
    { "66 c2 08 00", 32, 4, "imm=8 imm_len=2" },
    { "cb", 32, 1, "flags=BRANCH|ENDS|STACK|SEGLOAD emu=RETF" },
    { "ca 04 00", 16, 3, "flags=BRANCH|ENDS|STACK|SEGLOAD emu=RETF imm=4" },
    { "ff 15 78 56 34 12", 32, 6, "flags=MODRM|BRANCH|ENDS|STACK emu=GRP5 name=call" },
    { "ff d0", 32, 2, "flags=MODRM|BRANCH|ENDS|STACK emu=GRP5 name=call" },
    { "ff 1e 34 12", 16, 4, "flags=MODRM|BRANCH|ENDS|STACK|SEGLOAD|MEMONLY emu=GRP5 name=callf" },
    { "ff 20", 32, 2, "flags=MODRM|BRANCH|ENDS emu=GRP5 name=jmp" },
    { "ff 2d 78 56 34 12", 32, 6, "flags=MODRM|BRANCH|ENDS|SEGLOAD|MEMONLY emu=GRP5 name=jmpf" },
    { "ff e8", 32, 2, "flags=MODRM|BRANCH|ENDS|SEGLOAD|MEMONLY|INVALID emu=GRP5" },
    { "ff 30", 32, 2, "flags=MODRM|STACK emu=NONE name=push" },
    { "ff f8", 32, 2, "flags=MODRM|INVALID|ENDS" },
    { "ff 00", 32, 2, "flags=MODRM emu=NONE name=inc" },
    /* immediates */
    { "f7 05 78 56 34 12 ef be ad de", 32, 10, "flags=MODRM name=test disp=0x12345678 disp_off=2 imm=0xdeadbeef imm_len=4 imm_off=6" },
    { "66 f7 c0 34 12", 32, 5, "name=test imm=0x1234 imm_len=2" },
    { "f7 c0 34 12", 16, 4, "name=test imm=0x1234" },
    { "f7 c8 34 12 00 00", 32, 6, "name=test imm=0x1234" },     /* /1 alias */
    { "f6 c3 01", 32, 3, "flags=MODRM name=test imm=1 imm_len=1" },
    { "f6 d3", 32, 2, "name=not imm_len=0" },
    { "f7 d8", 32, 2, "name=neg imm_len=0" },
    { "f7 34 24", 32, 3, "name=div has_sib=1 imm_len=0" },
    { "c8 10 00 01", 32, 4, "flags=STACK emu=NONE imm=0x10 imm2=1 imm_len=3 imm_off=1" },
    { "66 c8 10 00 01", 32, 5, "imm=0x10 imm2=1 imm_len=3" },
    { "a1 78 56 34 12", 32, 5, "imm=0x12345678 imm_len=4" },
    { "67 a1 34 12", 32, 4, "imm=0x1234 imm_len=2" },
    { "66 a3 78 56 34 12", 32, 6, "imm_len=4 opsize=2" },
    { "a0 34 12", 16, 3, "imm=0x1234" },
    { "67 a2 78 56 34 12", 16, 6, "imm_len=4" },
    { "b8 78 56 34 12", 32, 5, "imm=0x12345678" },
    { "b8 34 12", 16, 3, "imm=0x1234" },
    { "66 b8 78 56 34 12", 16, 6, "imm=0x12345678 opsize=4" },
    { "68 78 56 34 12", 32, 5, "flags=STACK imm=0x12345678" },
    { "6a ff", 32, 2, "flags=STACK imm=0xff" },
    { "69 c0 78 56 34 12", 32, 6, "flags=MODRM imm=0x12345678" },
    { "6b 40 04 ff", 32, 4, "flags=MODRM disp=4 imm=0xff imm_off=3" },
    { "81 84 88 78 56 34 12 ef be ad de", 32, 11, "name=add imm=0xdeadbeef disp=0x12345678" },
    { "83 c0 ff", 32, 3, "name=add imm=0xff" },
    { "82 c0 01", 32, 3, "flags=MODRM name=add imm=1" },
    { "c6 00 12", 32, 3, "flags=MODRM name=mov imm=0x12" },
    { "c7 00 78 56 34 12", 32, 6, "flags=MODRM name=mov imm=0x12345678" },
    { "c6 f8 01", 32, 3, "flags=MODRM|INVALID|ENDS" },
    { "c1 e0 04", 32, 3, "name=shl imm=4" },
    { "d1 e0", 32, 2, "name=shl imm_len=0" },
    { "d4 0a", 32, 2, "flags=0 imm=10" },
    { "d5 0a", 32, 2, "flags=0 imm=10" },
    { "0f a4 c0 04", 32, 4, "flags=MODRM imm=4" },
    { "0f ba e0 1f", 32, 4, "flags=MODRM name=bt imm=31" },
    { "0f ba 20 1f", 32, 4, "flags=MODRM name=bt" },
    { "0f ba 00 1f", 32, 4, "flags=MODRM|INVALID|ENDS imm=31" },
    /* ordinary IDENT instructions */
    { "90", 32, 1, "flags=0 emu=NONE name=nop" },
    { "f3 90", 32, 2, "flags=0 rep=0xf3" },
    { "9b", 32, 1, "flags=0 name=wait" },
    { "d6", 32, 1, "flags=0 name=salc" },
    { "d7", 32, 1, "flags=0 name=xlat" },
    { "62 06", 32, 2, "flags=MODRM|MEMONLY name=bound" },
    { "63 c0", 32, 2, "flags=MODRM name=arpl" },
    { "8d 04 24", 32, 3, "flags=MODRM|MEMONLY name=lea" },
    { "8d c0", 32, 2, "flags=MODRM|MEMONLY|INVALID|ENDS" },
    { "f3 a5", 32, 2, "flags=STRING rep=0xf3" },
    { "f2 f3 a4", 32, 3, "flags=STRING rep=0xf3" },
    { "f3 f2 ae", 32, 3, "flags=STRING rep=0xf2" },
    { "60", 32, 1, "flags=STACK" },
    { "c9", 32, 1, "flags=STACK" },
    { "0f c8", 32, 2, "flags=0 name=bswap" },
    { "0f af c1", 32, 3, "flags=MODRM name=imul" },
    { "0f 44 c1", 32, 3, "flags=MODRM name=cmove" },
    { "0f 94 c0", 32, 3, "flags=MODRM name=sete" },
    { "0f b6 c0", 32, 3, "flags=MODRM name=movzx" },
    { "0f c1 03", 32, 3, "flags=MODRM name=xadd" },
    /* x87 */
    { "dd 05 78 56 34 12", 32, 6, "flags=MODRM|X87 disp=0x12345678" },
    { "d9 c9", 32, 2, "flags=MODRM|X87" },
    { "de 46 08", 16, 3, "flags=MODRM|X87 disp=8" },
    /* LOCK */
    { "f0 01 00", 32, 3, "flags=MODRM lock=1" },
    { "f0 01 c0", 32, 3, "flags=MODRM|INVALID|ENDS lock=1" },
    { "f0 03 00", 32, 3, "flags=MODRM|INVALID|ENDS" },
    { "f0 90", 32, 2, "flags=INVALID|ENDS" },
    { "f0 87 00", 32, 3, "flags=MODRM" },
    { "f0 80 30 01", 32, 4, "flags=MODRM" },
    { "f0 80 38 01", 32, 4, "flags=MODRM|INVALID|ENDS" },
    { "f0 83 08 01", 32, 4, "flags=MODRM" },
    { "f0 f6 10", 32, 3, "flags=MODRM" },
    { "f0 f6 00 01", 32, 4, "flags=MODRM|INVALID|ENDS" },
    { "f0 fe 00", 32, 3, "flags=MODRM" },
    { "f0 ff 08", 32, 3, "flags=MODRM" },
    { "f0 ff 30", 32, 3, "flags=MODRM|STACK|INVALID|ENDS" },
    { "f0 0f ab 00", 32, 4, "flags=MODRM" },
    { "f0 0f a3 00", 32, 4, "flags=MODRM|INVALID|ENDS" },
    { "f0 0f ba 28 01", 32, 5, "flags=MODRM" },
    { "f0 0f ba 20 01", 32, 5, "flags=MODRM|INVALID|ENDS" },
    { "f0 0f b1 0b", 32, 4, "flags=MODRM" },
    { "f0 0f c7 0e", 32, 4, "flags=MODRM|MEMONLY" },
    { "0f c7 0e", 32, 3, "flags=MODRM|MEMONLY name=cmpxchg8b" },
    { "0f c7 c8", 32, 3, "flags=MODRM|MEMONLY|INVALID|ENDS" },
    { "0f c7 f0", 32, 3, "flags=MODRM|INVALID|ENDS" },       /* rdrand */
    /* 0F map: #UD, hint NOPs, later extensions */
    { "0f 0b", 32, 2, "flags=INVALID|ENDS name=ud2" },
    { "0f b9 c0", 32, 3, "flags=MODRM|INVALID|ENDS name=ud1" },
    { "0f ff 00", 32, 3, "flags=MODRM|INVALID|ENDS name=ud0" },
    { "0f 04", 32, 2, "flags=INVALID|ENDS" },
    { "0f 1f 44 00 00", 32, 5, "flags=MODRM name=nop" },
    { "66 0f 1f 84 00 00 00 00 00", 32, 9, "flags=MODRM" },
    { "0f 18 06", 32, 3, "flags=MODRM" },
    { "0f 70 c1 08", 32, 4, "flags=MODRM|INVALID|ENDS imm=8" },
    { "66 0f 71 d0 02", 32, 5, "flags=MODRM|INVALID|ENDS imm=2" },
    { "0f c6 c1 01", 32, 4, "flags=MODRM|INVALID|ENDS imm=1" },
    { "0f 0f c1 9e", 32, 4, "flags=MODRM|INVALID|ENDS imm=0x9e" },
    { "0f 77", 32, 2, "flags=INVALID|ENDS" },
    { "0f 10 04 24", 32, 4, "flags=MODRM|INVALID|ENDS" },
    { "0f ae 00", 32, 3, "flags=MODRM|INVALID|ENDS" },       /* fxsave */
    /* three-byte maps */
    { "0f 3a 0f c1 08", 32, 5, "flags=MODRM|INVALID|ENDS map=3 op=0x0f imm=8" },
    { "66 0f 3a 0f 44 24 08 04", 32, 8, "map=3 disp=8 imm=4" },
    { "0f 38 00 c1", 32, 4, "flags=MODRM|INVALID|ENDS map=2 op=0x00 imm_len=0" },
    { "0f 38 00 04 25 78 56 34 12", 32, 9, "map=2 disp=0x12345678" },
    { "0f 38 f0 46 02", 16, 5, "map=2 op=0xf0 disp=2" },
    /* 15-byte limit */
    { "2e 3e 26 64 65 66 81 84 88 78 56 34 12 34 12", 32, 15, "seg=GS opsize=2 imm=0x1234 disp=0x12345678 nprefix=6" },
    { "2e 2e 3e 26 64 65 66 81 84 88 78 56 34 12 34 12", 32, TOOLONG, "" },
    { "26 26 26 26 26 26 26 26 26 26 26 26 26 26 90", 32, 15, "nprefix=14" },
    { "26 26 26 26 26 26 26 26 26 26 26 26 26 26 26 90", 32, TOOLONG, "" },
    { "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 66", 16, TOOLONG, "" },
    /* truncated buffers */
    { "", 32, SHORT, "" },
    { "66", 32, SHORT, "" },
    { "0f", 32, SHORT, "" },
    { "0f 38", 32, SHORT, "" },
    { "0f 38 00", 32, SHORT, "" },
    { "8b", 32, SHORT, "" },
    { "8b 04", 32, SHORT, "" },
    { "8b 80 78 56", 32, SHORT, "" },
    { "8b 80 78 56", 16, 4, "" },
    { "e8 00 00", 32, SHORT, "" },
    { "e8 00 00", 16, 3, "" },
    { "ea 78 56 34 12 08", 32, SHORT, "" },
    { "c8 10 00", 32, SHORT, "" },
};

struct name { const char *name; uint32_t val; };

static const struct name flag_names[] = {
    { "MODRM", D_MODRM }, { "INVALID", D_INVALID }, { "PRIV", D_PRIV },
    { "IOPL", D_IOPL }, { "SENSITIVE", D_SENSITIVE }, { "BRANCH", D_BRANCH },
    { "ENDS", D_ENDS }, { "SEGLOAD", D_SEGLOAD }, { "SEGREAD", D_SEGREAD },
    { "STRING", D_STRING }, { "IO", D_IO }, { "STACK", D_STACK },
    { "MEMONLY", D_MEMONLY }, { "REGONLY", D_REGONLY }, { "X87", D_X87 },
    { "CRDR", D_CRDR }, { "0", 0 }, { 0, 0 }
};

static const struct name emu_names[] = {
    { "NONE", E_NONE }, { "JCC", E_JCC }, { "JMP", E_JMP }, { "CALL", E_CALL },
    { "RET", E_RET }, { "RETF", E_RETF }, { "IRET", E_IRET }, { "INT", E_INT },
    { "INT3", E_INT3 }, { "INTO", E_INTO }, { "INT1", E_INT1 },
    { "LOOP", E_LOOP }, { "JCXZ", E_JCXZ }, { "JMPF", E_JMPF },
    { "CALLF", E_CALLF }, { "GRP5", E_GRP5 }, { "PUSHF", E_PUSHF },
    { "POPF", E_POPF }, { "CLI", E_CLI }, { "STI", E_STI }, { "HLT", E_HLT },
    { "IN", E_IN }, { "OUT", E_OUT }, { "INS", E_INS }, { "OUTS", E_OUTS },
    { "MOV_FROM_SR", E_MOV_FROM_SR }, { "MOV_TO_SR", E_MOV_TO_SR },
    { "PUSH_SR", E_PUSH_SR }, { "POP_SR", E_POP_SR },
    { "LOAD_FAR", E_LOAD_FAR }, { "GRP6", E_GRP6 }, { "GRP7", E_GRP7 },
    { "LAR", E_LAR }, { "LSL", E_LSL }, { "CLTS", E_CLTS }, { "INVD", E_INVD },
    { "MOV_CR", E_MOV_CR }, { "MOV_DR", E_MOV_DR }, { "WRMSR", E_WRMSR },
    { "RDTSC", E_RDTSC }, { "RDMSR", E_RDMSR }, { "RDPMC", E_RDPMC },
    { "SYSENTER", E_SYSENTER }, { "SYSEXIT", E_SYSEXIT },
    { "CPUID", E_CPUID }, { "RSM", E_RSM }, { 0, 0 }
};

static const struct name seg_names[] = {
    { "ES", SEG_ES }, { "CS", SEG_CS }, { "SS", SEG_SS }, { "DS", SEG_DS },
    { "FS", SEG_FS }, { "GS", SEG_GS }, { "NONE", (uint32_t)-1 }, { 0, 0 }
};

static int lookup(const struct name *t, const char *s, size_t n, uint32_t *val)
{
    for (; t->name; t++) {
        if (strlen(t->name) == n && strncmp(t->name, s, n) == 0) {
            *val = t->val;
            return 1;
        }
    }
    return 0;
}

static int parse_hex(const char *hex, uint8_t *buf, unsigned max)
{
    unsigned n = 0;
    char *end;

    while (*hex) {
        unsigned long v;
        while (*hex == ' ')
            hex++;
        if (!*hex)
            break;
        v = strtoul(hex, &end, 16);
        if (end == hex || n >= max) {
            fprintf(stderr, "bad hex in test case\n");
            exit(2);
        }
        buf[n++] = (uint8_t)v;
        hex = end;
    }
    return (int)n;
}

static void flags_str(uint32_t f, char *out, size_t size)
{
    const struct name *t;

    out[0] = 0;
    for (t = flag_names; t->name; t++) {
        if (t->val && (f & t->val)) {
            if (out[0])
                strncat(out, "|", size - strlen(out) - 1);
            strncat(out, t->name, size - strlen(out) - 1);
        }
    }
    if (!out[0])
        strncat(out, "0", size - 1);
}

/* Value of one field of struct insn, by name.  Returns 0 if unknown. */
static int field(const struct insn *in, const char *key, size_t n, long long *v)
{
#define F(name) if (strlen(#name) == n && !strncmp(key, #name, n)) { *v = in->name; return 1; }
    F(len) F(opsize) F(adsize) F(seg) F(rep) F(lock) F(nprefix) F(map)
    F(op) F(has_modrm) F(modrm) F(mod) F(reg) F(rm) F(has_sib) F(sib)
    F(disp_len) F(disp_off) F(disp) F(imm_len) F(imm_off) F(flags)
#undef F
    if (n == 3 && !strncmp(key, "imm", 3)) { *v = (int32_t)in->imm; return 1; }
    if (n == 4 && !strncmp(key, "imm2", 4)) { *v = (int32_t)in->imm2; return 1; }
    if (n == 3 && !strncmp(key, "emu", 3)) { *v = in->info ? in->info->emu : -1; return 1; }
    return 0;
}

/* Check one "key=value" against the decoded instruction.  Returns 1 if it
 * holds; otherwise writes a description into why. */
static int check_item(const struct insn *in, const char *item, size_t n, char *why, size_t wsize)
{
    const char *eq = memchr(item, '=', n);
    size_t klen, vlen;
    const char *val;
    long long got, want;
    uint32_t u;

    if (!eq) {
        fprintf(stderr, "bad expectation '%.*s'\n", (int)n, item);
        exit(2);
    }
    klen = (size_t)(eq - item);
    val = eq + 1;
    vlen = n - klen - 1;

    if (klen == 4 && !strncmp(item, "name", 4)) {
        const char *name = in->info ? in->info->name : "(null)";
        if (strlen(name) == vlen && !strncmp(name, val, vlen))
            return 1;
        snprintf(why, wsize, "name %s, want %.*s", name, (int)vlen, val);
        return 0;
    }
    if (!field(in, item, klen, &got)) {
        fprintf(stderr, "unknown field '%.*s'\n", (int)klen, item);
        exit(2);
    }
    if (klen == 5 && !strncmp(item, "flags", 5)) {
        const char *p = val, *end = val + vlen;
        char have[128], wanted[128];
        want = 0;
        while (p < end) {
            const char *bar = memchr(p, '|', (size_t)(end - p));
            size_t len = bar ? (size_t)(bar - p) : (size_t)(end - p);
            if (!lookup(flag_names, p, len, &u)) {
                fprintf(stderr, "unknown flag '%.*s'\n", (int)len, p);
                exit(2);
            }
            want |= u;
            p += len + (bar ? 1 : 0);
        }
        if (got == want)
            return 1;
        flags_str((uint32_t)got, have, sizeof have);
        flags_str((uint32_t)want, wanted, sizeof wanted);
        snprintf(why, wsize, "flags %s, want %s", have, wanted);
        return 0;
    }
    if (klen == 3 && !strncmp(item, "emu", 3) && lookup(emu_names, val, vlen, &u))
        want = u;
    else if (klen == 3 && !strncmp(item, "seg", 3) && lookup(seg_names, val, vlen, &u))
        want = (int32_t)u;
    else {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%.*s", (int)vlen, val);
        want = strtoll(tmp, 0, 0);
        if (klen == 3 && !strncmp(item, "imm", 3))
            want = (int32_t)(uint32_t)want;
    }
    if (got == want)
        return 1;
    snprintf(why, wsize, "%.*s %lld (0x%llx), want %lld (0x%llx)",
             (int)klen, item, got, (unsigned long long)got, want, (unsigned long long)want);
    return 0;
}

static void run_hand_cases(void)
{
    unsigned i;

    for (i = 0; i < sizeof hcases / sizeof hcases[0]; i++) {
        const struct hcase *c = &hcases[i];
        uint8_t buf[32];
        struct insn in;
        int n = parse_hex(c->hex, buf, sizeof buf);
        int ret = decode(buf, (unsigned)n, c->bits == 32, &in);
        char why[300] = "";
        int ok = 1;

        if (ret != c->ret) {
            snprintf(why, sizeof why, "returned %d, want %d", ret, c->ret);
            ok = 0;
        } else if (ret > 0) {
            const char *p = c->expect;
            while (ok && *p) {
                size_t len;
                while (*p == ' ')
                    p++;
                len = strcspn(p, " ");
                if (len)
                    ok = check_item(&in, p, len, why, sizeof why);
                p += len;
            }
        }
        if (ok) {
            npass++;
        } else {
            nfail++;
            printf("FAIL hand %d-bit [%s]: %s\n", c->bits, c->hex, why);
        }
    }
}

/* ------------------------------------------------------------------------
 * Assembler source: many opcodes with every addressing form.  The same
 * source is assembled as .code32 and .code16 by the script; gas adds the
 * 66/67 prefixes the other mode needs.
 * ---------------------------------------------------------------------- */

/* Memory operands: every 32-bit ModRM/SIB shape (no base, ebp base, esp
 * base, index scales, disp8/disp32, negative displacements), every
 * 16-bit shape, and segment overrides. */
static const char *const mem_forms[] = {
    "(%eax)", "(%ecx)", "(%edx)", "(%ebx)", "(%esp)", "(%ebp)", "(%esi)", "(%edi)",
    "0x12(%eax)", "-0x80(%ebp)", "0x7f(%esp)", "0x12345678(%ecx)", "0x1000(%esp)",
    "-0x12345678(%ebp)", "0x12345678", "0x10",
    "(%eax,%ebx)", "(%ebp,%esi,2)", "0x10(%eax,%ecx,4)", "0x10000(%edx,%edi,8)",
    "(,%esi,4)", "0x12(,%eax,8)", "(%esp,%eax,1)", "(%ebp,%ebp,8)", "-4(%esp,%ebp,2)",
    "%es:(%eax)", "%fs:0x10(%ebx)", "%gs:0x12345678", "%ss:(%ebp,%eax)", "%cs:0x4(%esp)",
    "(%bx,%si)", "(%bx,%di)", "(%bp,%si)", "(%bp,%di)", "(%si)", "(%di)", "(%bp)", "(%bx)",
    "0x1234", "0x12(%bx,%si)", "-0x7f(%bp,%di)", "0x1234(%bp,%si)", "0x7fff(%di)",
    "-0x2(%bp)", "0x80(%bx)", "%es:(%bx)", "%ss:0x10(%si)", "%ds:0x1234(%bp)",
};

/* Templates with a memory operand; '@' stands for it. */
static const char *const mem_templates[] = {
    "addl $1, @", "addl $0x12345678, @", "addw $0x1234, @", "addw $1, @", "addb $1, @",
    "orl %eax, @", "adcb %al, @", "sbbw %ax, @", "andl @, %ecx", "subb @, %dl",
    "xorw @, %si", "cmpl $5, @", "cmpl %eax, @", "cmpb $0x80, @",
    "lock addl %eax, @", "lock orl $0x1000, @", "lock incl @", "lock decb @",
    "lock notw @", "lock negl @", "lock xchg %eax, @", "lock btsl $3, @",
    "lock btrl %eax, @", "lock cmpxchg %ecx, @", "lock xaddl %eax, @",
    "lock cmpxchg8b @", "lock sbbw $-3, @",
    "testl $0x12345678, @", "testw $0x1234, @", "testb $0x12, @", "testl %eax, @",
    "notl @", "negb @", "mull @", "imulw @", "divl @", "idivb @",
    "incl @", "decw @", "incb @", "decb @",
    "call *@", "jmp *@", "callw *@", "jmpw *@", "lcall *@", "ljmp *@", "lcallw *@",
    "pushl @", "pushw @", "popl @", "popw @",
    "movl $0x12345678, @", "movw $0x1234, @", "movb $0x12, @", "movl %eax, @",
    "movb @, %al", "movw @, %dx", "movw %es, @", "mov @, %ds", "mov @, %ss", "mov %gs, @",
    "lea @, %eax", "leaw @, %ax", "les @, %eax", "lds @, %ebx", "lss @, %ecx",
    "lfs @, %edx", "lgs @, %esi", "lesw @, %ax",
    "bound %eax, @", "boundw %ax, @", "arpl %ax, @",
    "shll $3, @", "shrl @", "sarb %cl, @", "rolw $1, @", "rcrl $7, @", "rclb @", "rorw %cl, @",
    "imul $0x12345, @, %eax", "imul $3, @, %eax", "imulw $0x1234, @, %ax", "imul @, %eax",
    "sgdt @", "sidt @", "lgdt @", "lidt @", "sldt @", "str @", "lldt @", "ltr @",
    "verr @", "verw @", "smsw @", "lmsw @", "invlpg @",
    "lar @, %eax", "lsl @, %eax", "larw @, %ax",
    "btl $3, @", "btsl $3, @", "btrw $3, @", "btcl $31, @", "btl %eax, @",
    "btsw %ax, @", "btr %eax, @", "btc %eax, @",
    "shldl $3, %eax, @", "shrdl $3, %eax, @", "shldl %cl, %eax, @", "shrdw %cl, %ax, @",
    "cmpxchg %eax, @", "cmpxchgb %al, @", "cmpxchg8b @", "xaddl %eax, @", "xaddb %al, @",
    "xchgw %ax, @", "xchgb %al, @",
    "movzbl @, %eax", "movzwl @, %eax", "movsbl @, %eax", "movswl @, %eax",
    "movzbw @, %ax", "movsbw @, %ax",
    "bsf @, %eax", "bsr @, %ecx", "cmove @, %eax", "cmovnbe @, %edx", "cmovlw @, %ax",
    "sete @", "setnz @", "setg @",
    "nopl @", "nopw @", "prefetchnta @", "prefetcht0 @",
    "fldl @", "flds @", "fldt @", "fstpl @", "fildl @", "fistpll @", "fnstcw @",
    "fldcw @", "fnstenv @", "fldenv @", "fnsave @", "frstor @", "fnstsw @",
    "fiadds @", "faddl @", "fmuls @", "fcomps @", "fidivrl @", "fbld @", "fbstp @",
    "movq @, %mm0", "movd %mm1, @", "paddb @, %mm2", "pshufw $1, @, %mm0",
    "pinsrw $1, @, %mm0", "psrlw @, %mm3",
    "movaps @, %xmm0", "movups %xmm1, @", "shufps $3, @, %xmm1", "cmpps $2, @, %xmm3",
    "addpd @, %xmm0", "addsd @, %xmm0", "addss @, %xmm1", "lddqu @, %xmm0",
    "palignr $4, @, %xmm1", "pshufb @, %xmm2", "pmovzxbw @, %xmm0", "pextrb $1, %xmm0, @",
    "movbe @, %eax", "crc32l @, %eax", "crc32b @, %eax",
    "fxsave @", "fxrstor @", "clflush @", "ldmxcsr @", "stmxcsr @", "xsave @",
    "prefetch @", "prefetchw @", "pfadd @, %mm0", "pi2fd @, %mm1",
    "movnti %eax, @", "vmptrld @", "vmread %eax, @",
};

/* Templates without a memory operand. */
static const char *const plain_templates[] = {
    "nop", "pause", "xchg %eax, %ebx", "xchg %ax, %cx", "xchg %al, %bl",
    "movl $0x12345678, %eax", "movw $0x1234, %ax", "movb $0x12, %al", "movb $1, %bh",
    "mov %eax, %ebx", "mov %ax, %bx", "mov %al, %bl",
    "addl $1, %eax", "addl $0x12345, %eax", "addl $0x12345, %ebx", "addb $1, %al",
    "addw $0x1234, %ax", "addb $0x80, %cl", "adcl $-1, %esi", "cmpw $0x7fff, %di",
    "orb $1, %al", "andl $0xff, %eax", "subw $2, %ax", "xorb $0x55, %dh",
    "pushl $1", "pushl $0x12345678", "pushw $0x1234", "pushw $1",
    "push %eax", "pop %ebx", "pushw %ax", "popw %cx",
    "push %es", "push %cs", "push %ss", "push %ds", "push %fs", "push %gs",
    "pop %es", "pop %ss", "pop %ds", "pop %fs", "pop %gs", "pushw %ds", "popw %es",
    "pushl %fs", "popl %gs",
    "pusha", "popa", "pushaw", "popal", "pushf", "popf", "pushfw", "popfl",
    "mov %es, %eax", "mov %cs, %ax", "mov %eax, %ds", "mov %ax, %ss", "mov %ebx, %fs",
    "mov %cr0, %eax", "mov %cr2, %ebx", "mov %cr3, %ecx", "mov %cr4, %edx",
    "mov %eax, %cr0", "mov %ebx, %cr3", "mov %ecx, %cr4",
    "mov %dr0, %eax", "mov %dr6, %ebx", "mov %dr7, %ecx", "mov %eax, %dr7", "mov %edx, %dr3",
    "in $0x60, %al", "in $0x60, %eax", "inw $0x60, %ax", "out %al, $0x80",
    "out %eax, $0x80", "outw %ax, $0x21",
    "in (%dx), %al", "in (%dx), %ax", "in (%dx), %eax",
    "out %al, (%dx)", "out %ax, (%dx)", "out %eax, (%dx)",
    "insb", "insw", "insl", "outsb", "outsw", "outsl", "rep insb", "rep outsl",
    "rep insw", "rep outsb",
    "movsb", "movsw", "movsl", "cmpsb", "cmpsl", "cmpsw", "stosb", "stosw", "stosl",
    "lodsb", "lodsw", "lodsl", "scasb", "scasw", "scasl",
    "rep movsl", "repe cmpsb", "repne scasb", "rep stosl", "rep lodsb", "rep movsw",
    "movsl %fs:(%esi), %es:(%edi)", "lodsb %cs:(%esi)", "movsb %ds:(%si), %es:(%di)",
    "rep stosb %al, %es:(%di)", "outsb %gs:(%esi), (%dx)",
    "int $0x80", "int $3", "int3", "into", ".byte 0xf1",
    "iret", "iretw", "iretl",
    "ret", "ret $8", "retw", "retw $4", "lret", "lret $4", "lretw", "lretw $2",
    "enter $0x10, $0", "enter $0x1234, $3", "enterw $8, $1", "enterl $8, $1",
    "leave", "leavew", "leavel",
    "hlt", "cli", "sti", "cld", "std", "clc", "stc", "cmc", "sahf", "lahf",
    "cbw", "cwde", "cwd", "cdq", "xlat", "wait",
    "aaa", "aas", "daa", "das", "aam", "aad", "aam $16", "aad $16", ".byte 0xd6",
    "cpuid", "rdtsc", "rdmsr", "wrmsr", "rdpmc", "clts", "invd", "wbinvd", "ud2",
    "sysenter", "sysexit", "rsm", "emms", "femms", "syscall",
    "bswap %eax", "bswap %edi", "bswap %ecx",
    "ljmpl $0x08, $0x12345678", "lcalll $0x10, $0x12345678",
    "ljmpw $0x08, $0x1234", "lcallw $0x10, $0x1234",
    "jmp 1f\n1:", "jmp far_away", "call far_away", "je far_away", "jne 1f\n1:",
    "jg far_away", "jo 1f\n1:",
    "loop 1f\n1:", "loope 1f\n1:", "loopne 1f\n1:", "jecxz 1f\n1:", "jcxz 1f\n1:",
    "call *%eax", "jmp *%ebx", "callw *%ax", "jmpw *%si",
    "mov 0x12345678, %eax", "mov %al, 0x12345678", "mov 0x1234, %ax",
    "movw %ax, 0x10", "movb 0x10, %al", "mov %eax, %fs:0x10",
    "shl %eax", "shl $3, %eax", "shl %cl, %eax", "sar $1, %al", "rol $4, %bx",
    "rcr %cl, %dh", "sal $2, %edi",
    "test $0x12345678, %eax", "test $1, %al", "test $0x1234, %ebx", "test %eax, %ebx",
    "testw $0x1234, %ax", "testb $1, %ah",
    "imul $0x1234, %eax, %ebx", "imul $3, %eax", "imul %ebx, %eax", "imulw $-2, %ax, %dx",
    "movzbl %al, %eax", "movsbw %al, %ax", "setc %al", "cmovz %eax, %ebx",
    "bt $3, %eax", "bt %eax, %ebx", "btsw $15, %ax", "shld $3, %eax, %ebx",
    "shrd %cl, %eax, %ebx", "xadd %eax, %ebx", "cmpxchg %eax, %ebx",
    "bsf %eax, %ebx", "bsrw %ax, %bx", "lar %eax, %ebx", "lsl %ax, %bx",
    "sldt %eax", "str %eax", "lldt %ax", "ltr %ax", "verr %ax", "verw %ax",
    "smsw %eax", "lmsw %ax", "smsw %ax",
    "inc %eax", "dec %ecx", "incw %ax", "inc %al", "not %eax", "neg %al",
    "mul %ecx", "div %bl", "idivw %cx", "incl %esi", "decb %dl",
    "push %esp", "pop %ebp", "nopl %eax", "nopw %ax",
    "fld %st(1)", "fxch %st(3)", "fadd %st(2), %st", "fninit", "fldz", "fsin",
    "fcomip %st(1), %st", "fucompp", "fnstsw %ax", "ffree %st(7)",
    "movq %mm0, %mm1", "movd %eax, %mm0", "psllw $3, %mm1", "pslld $3, %xmm1",
    "addps %xmm0, %xmm1", "pshufd $0x1b, %xmm0, %xmm1", "pextrw $1, %mm0, %eax",
    "palignr $3, %xmm0, %xmm1", "pmaddubsw %xmm1, %xmm2", "popcnt %eax, %ebx",
    "lfence", "mfence", "sfence", "monitor", "mwait", "rdtscp", "xgetbv",
    "vmcall", "rdrand %eax", "endbr32",
};

static void gen_asm(int bits)
{
    unsigned t, m;

    printf("# generated by decode_test gen-asm\n");
    printf(".code%d\n", bits);
    /* moffs with the other address size */
    printf("\t%s\n", bits == 32 ? "addr16 mov 0x1234, %al" : "addr32 mov 0x12345678, %eax");
    for (t = 0; t < sizeof plain_templates / sizeof plain_templates[0]; t++)
        printf("\t%s\n", plain_templates[t]);
    /* far enough for the jumps above to need rel16/rel32 */
    printf("\t.skip 256, 0x90\nfar_away:\n");
    for (t = 0; t < sizeof mem_templates / sizeof mem_templates[0]; t++) {
        for (m = 0; m < sizeof mem_forms / sizeof mem_forms[0]; m++) {
            const char *s = mem_templates[t];
            putchar('\t');
            for (; *s; s++) {
                if (*s == '@')
                    fputs(mem_forms[m], stdout);
                else
                    putchar(*s);
            }
            putchar('\n');
        }
    }
}

/* ------------------------------------------------------------------------
 * Pseudo-random code bytes (xorshift, fixed seed): uniform random bytes,
 * then for every opcode of every map a few instructions with random
 * prefixes and random ModRM/SIB/displacement/immediate bytes.
 * ---------------------------------------------------------------------- */
static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

#define RANDOM_BYTES    (192 * 1024)
#define VARIANTS        10
#define CHUNK           15      /* one directed instruction + random tail */
#define PADDING         16      /* NOPs after it, so objdump is back in step */

static void gen_bytes(unsigned long seed)
{
    static const uint8_t prefixes[] = {
        0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x66, 0x67,
    };
    unsigned long i;
    unsigned map, op, v, k;

    rng_state = 0x9e3779b97f4a7c15ull ^ seed;
    for (i = 0; i < RANDOM_BYTES; i++)
        putchar((int)(rnd() & 0xff));

    for (map = 0; map < 4; map++) {
        for (op = 0; op < 256; op++) {
            for (v = 0; v < VARIANTS; v++) {
                uint8_t c[CHUNK];
                unsigned n = 0, np = rnd() % 4;

                if (rnd() % 2)
                    np = 0;
                for (k = 0; k < np; k++)
                    c[n++] = prefixes[rnd() % sizeof prefixes];
                if (map >= 1)
                    c[n++] = 0x0f;
                if (map == 2)
                    c[n++] = 0x38;
                if (map == 3)
                    c[n++] = 0x3a;
                c[n++] = (uint8_t)op;
                while (n < CHUNK)
                    c[n++] = (uint8_t)rnd();
                fwrite(c, 1, CHUNK, stdout);
                for (k = 0; k < PADDING; k++)
                    putchar(0x90);
            }
        }
    }
}

/* ------------------------------------------------------------------------
 * The objdump cross-check.
 * ---------------------------------------------------------------------- */
struct dline {
    unsigned long addr;
    unsigned len;
    char text[160];         /* objdump's mnemonic and operands */
};

/* objdump's names for prefixes it prints on their own. */
static int all_prefix_names(const char *text)
{
    static const char *const names[] = {
        "es", "cs", "ss", "ds", "fs", "gs", "data16", "data32", "addr16", "addr32",
        "lock", "rep", "repz", "repnz", "repe", "repne", "bnd", "notrack",
        "xacquire", "xrelease", 0
    };
    const char *p = text;
    int any = 0;

    while (*p) {
        size_t n, i;
        int found = 0;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        n = strcspn(p, " ");
        for (i = 0; names[i]; i++)
            if (strlen(names[i]) == n && !strncmp(p, names[i], n))
                found = 1;
        if (!found)
            return 0;
        any = 1;
        p += n;
    }
    return any;
}

static unsigned long read_file(const char *path, uint8_t **out)
{
    FILE *f = fopen(path, "rb");
    unsigned long size;
    uint8_t *buf;

    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    size = (unsigned long)ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(size + 1);
    if (!buf || fread(buf, 1, size, f) != size) {
        fprintf(stderr, "%s: read error\n", path);
        exit(2);
    }
    fclose(f);
    *out = buf;
    return size;
}

/* Parse objdump -D -z -w --insn-width=15 output into lines.  An
 * instruction line is "  addr:\tbytes\ttext".  A line without text
 * continues the previous instruction's bytes. */
static struct dline *read_disasm(const char *path, unsigned long *count)
{
    FILE *f = fopen(path, "r");
    char line[512];
    struct dline *v = 0;
    unsigned long n = 0, cap = 0;

    if (!f) {
        perror(path);
        exit(2);
    }
    while (fgets(line, sizeof line, f)) {
        char *p = line, *end, *tab2;
        unsigned long addr;
        unsigned nbytes = 0;

        while (*p == ' ')
            p++;
        addr = strtoul(p, &end, 16);
        if (end == p || end[0] != ':' || end[1] != '\t')
            continue;
        p = end + 2;
        tab2 = strchr(p, '\t');
        if (tab2)
            *tab2 = 0;
        for (; *p; p++)
            if (p[0] != ' ' && p[0] != '\n' && (p[1] == ' ' || p[1] == 0 || p[1] == '\n'))
                nbytes++;
        if (!tab2) {
            if (n)
                v[n - 1].len += nbytes;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            v = realloc(v, cap * sizeof *v);
            if (!v) {
                fprintf(stderr, "out of memory\n");
                exit(2);
            }
        }
        v[n].addr = addr;
        v[n].len = nbytes;
        snprintf(v[n].text, sizeof v[n].text, "%s", tab2 + 1);
        v[n].text[strcspn(v[n].text, "\n")] = 0;
        n++;
    }
    fclose(f);
    *count = n;
    return v;
}

static void check_file(int bits, const char *binpath, const char *dispath)
{
    uint8_t *buf;
    unsigned long size = read_file(binpath, &buf);
    unsigned long n, i;
    struct dline *d = read_disasm(dispath, &n);
    unsigned long checked = 0;

    for (i = 0; i < n; i++) {
        struct insn in;
        unsigned long a = d[i].addr;
        int ret;

        if (a >= size)
            continue;
        /* objdump could not decode it, or printed a stray byte. */
        if (strstr(d[i].text, "(bad)") || !strncmp(d[i].text, ".byte", 5)) {
            nskip[SKIP_BAD]++;
            continue;
        }
        /* objdump prints a prefix on its own line when it cannot attach
         * it (a conflicting or repeated prefix, or a run of them up to the
         * 15-byte limit); the CPU would treat it as part of the next
         * instruction.  The next line is checked from its own start. */
        if (all_prefix_names(d[i].text)) {
            nskip[SKIP_PREFIX]++;
            continue;
        }
        /* The NOP padding of gen_bytes: not worth counting. */
        if (d[i].len == 1 && buf[a] == 0x90)
            continue;

        ret = decode(buf + a, (unsigned)(size - a), bits == 32, &in);

        if (ret == DECODE_SHORT && a + 15 > size) {
            nskip[SKIP_EOF]++;          /* ran off the end of the file */
            continue;
        }
        if (ret > 0 && in.map == 0) {
            /* VEX (C4, C5), EVEX (62) and XOP (8F) prefixes: objdump
             * decodes AVX instructions there; our CPU sees les, lds,
             * bound with a register operand (#UD) and pop with reg != 0
             * (#UD). */
            if (((in.op == 0xc4 || in.op == 0xc5 || in.op == 0x62) && in.mod == 3) ||
                (in.op == 0x8f && in.reg != 0)) {
                nskip[SKIP_VEX]++;
                continue;
            }
            /* objdump folds fwait (9B) into the x87 instruction after it
             * ("9b db e3" is finit); to the CPU 9B is an instruction of
             * its own. */
            if (in.op == 0x9b && (unsigned)ret != d[i].len) {
                nskip[SKIP_FWAIT]++;
                continue;
            }
        }
        /* AMD SSE4a extrq/insertq (66/F2 0F 78 with two Ib, F2 0F 79):
         * not on Intel CPUs, where 0F 78/79 are vmread/vmwrite. */
        if (strstr(d[i].text, "extrq ") || strstr(d[i].text, "insertq ")) {
            nskip[SKIP_SSE4A]++;
            continue;
        }

        checked++;
        if (ret == (int)d[i].len || (ret == DECODE_TOOLONG && d[i].len > 15)) {
            npass++;
        } else {
            unsigned k, show = d[i].len > 15 ? 15 : d[i].len;
            nfail++;
            printf("FAIL %d-bit at 0x%lx:", bits, a);
            if ((unsigned)ret > show && ret > 0)
                show = (unsigned)ret;
            for (k = 0; k < show && a + k < size; k++)
                printf(" %02x", buf[a + k]);
            printf(" -- objdump %u \"%s\", decode %d\n", d[i].len, d[i].text, ret);
        }
    }
    fprintf(stderr, "  %s (%d-bit): %lu instructions checked\n", binpath, bits, checked);
    free(d);
    free(buf);
}

int main(int argc, char **argv)
{
    int i;

    if (argc >= 3 && !strcmp(argv[1], "gen-asm")) {
        gen_asm(atoi(argv[2]));
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "gen-bytes")) {
        gen_bytes(strtoul(argv[2], 0, 0));
        return 0;
    }

    run_hand_cases();
    if (argc >= 2 && !strcmp(argv[1], "check")) {
        if ((argc - 2) % 3 != 0) {
            fprintf(stderr, "usage: %s check BITS BIN DIS [BITS BIN DIS ...]\n", argv[0]);
            return 2;
        }
        for (i = 2; i + 2 < argc; i += 3)
            check_file(atoi(argv[i]), argv[i + 1], argv[i + 2]);
    }
    fprintf(stderr, "  objdump lines skipped:");
    for (i = 0; i < NSKIP_REASONS; i++)
        fprintf(stderr, " %s %lu%s", skip_reason[i], nskip[i], i + 1 < NSKIP_REASONS ? "," : "\n");
    printf("decode: %lu passed, %lu failed\n", npass, nfail);
    return nfail ? 1 : 0;
}
