/*
 * decode.c -- table-driven x86 instruction decoder.
 *
 * Owns the opcode tables for the one-byte map, the 0F two-byte map, the
 * ModRM.reg groups and the 0F 38 / 0F 3A three-byte maps, and the code
 * that walks prefixes, opcode, ModRM, SIB, displacement and immediate to
 * find an instruction's length and its table row.  The monitor needs both
 * on every guest instruction it scans: bt.c to know where an instruction
 * ends and whether it can be copied IDENT, emulate.c to find its operands.
 *
 * Hardware:   SDM Vol. 2, Appendix A (Opcode Map), §2.1 (Instruction Format).
 * Runs in:    VMM (bt.c, emulate.c) and on the host (tests/decode_test.c).
 * Read after: decode.h.
 */
#include "decode.h"

/*
 * How the tables are laid out
 * ---------------------------
 * Every map is an array of struct opinfo indexed by the opcode byte, one
 * row per opcode, in the order of the SDM's opcode maps.  A row says
 * whether a ModRM byte follows (D_MODRM), what immediate follows
 * (enum imm_kind), which emulation routine handles it (enum emu_kind) and
 * what the monitor must know about it (the other D_* flags).
 *
 * The row's `pad` field is not used outside this file, so the decoder keeps
 * two private things in it:
 *
 *   - a group number (X_GROUP bits): the opcode's meaning depends on
 *     ModRM.reg, and the real row is groups[n][reg].  Group rows are
 *     complete rows of their own (name, immediate, emu, flags), so an
 *     opcode like F6 whose immediate exists only for /0 and /1 needs no
 *     special code.
 *   - X_LOCK: a LOCK prefix is allowed on this row when ModRM names memory
 *     (SDM Vol. 2, LOCK -- "Assert LOCK# Signal Prefix").  LOCK anywhere
 *     else is #UD.
 *
 * Rows for opcodes our guest CPU does not implement (MMX, SSE, 3DNow!,
 * SYSENTER, VMX, ...) still give the right ModRM and immediate so that the
 * length is what a later CPU would decode; they are marked D_INVALID |
 * D_ENDS, which makes the monitor raise #UD instead of running them.  Byte
 * values that are no instruction on any CPU get no ModRM: the CPU faults
 * at the opcode, so the length only has to be sensible.
 *
 * The guest CPU the monitor presents is a P6 (Pentium II class) *without*
 * MMX, SSE, FXSR and SEP, but with CMOV, RDPMC, RDTSC, CPUID and the
 * 0F 18-1F hint NOPs.  If CPUID ever offers one of those features, its
 * rows below must lose D_INVALID.
 */

#define MAX_INSN_LEN 15         /* a longer instruction raises #GP */

/* Private bits in struct opinfo's pad field (see above). */
#define X_GROUP   0x00ffu       /* nonzero: index into groups[] */
#define X_LOCK    0x8000u       /* LOCK allowed with a memory operand */

/* Group numbers for the X_GROUP bits. */
enum group {
    G_NONE = 0,
    G_1_IB,         /* 80, 82, 83: Grp 1 Eb/Ev, Ib */
    G_1_IZ,         /* 81: Grp 1 Ev, Iz */
    G_1A,           /* 8F: Grp 1A, pop Ev */
    G_2_IB,         /* C0, C1: Grp 2 Eb/Ev, Ib */
    G_2,            /* D0-D3: Grp 2 Eb/Ev, 1 or CL */
    G_3_B,          /* F6: Grp 3 Eb */
    G_3_Z,          /* F7: Grp 3 Ev */
    G_4,            /* FE: Grp 4 */
    G_5,            /* FF: Grp 5 */
    G_11_IB,        /* C6: Grp 11 mov Eb, Ib */
    G_11_IZ,        /* C7: Grp 11 mov Ev, Iz */
    G_SR_FROM,      /* 8C: mov Ev, Sw (reg names the segment register) */
    G_SR_TO,        /* 8E: mov Sw, Ew */
    G_6,            /* 0F 00: Grp 6 */
    G_7,            /* 0F 01: Grp 7 */
    G_8,            /* 0F BA: Grp 8 */
    G_9,            /* 0F C7: Grp 9 */
    G_COUNT
};

/* Shorthands for the flag column and for repetitive rows. */
#define MRM     D_MODRM
#define UD      (D_INVALID | D_ENDS)

/* Not an opcode on any CPU we care about: #UD at the opcode byte(s). */
#define NONE_ROW        { "(bad)", I_NONE, E_NONE, 0, UD }
/* An opcode of a later CPU (or of a feature ours lacks), with its ModRM
 * and immediate, so that the length is right: #UD on our CPU. */
#define LATER(n)        { n, I_NONE, E_NONE, 0, UD }
#define LATER_M(n)      { n, I_NONE, E_NONE, 0, UD | MRM }
#define LATER_MIB(n)    { n, I_B, E_NONE, 0, UD | MRM }
/* A group row that is #UD on every CPU; keeps the group's immediate. */
#define GRP_BAD(imm)    { "(bad)", imm, E_NONE, 0, UD | MRM }
/* A prefix byte.  decode() consumes prefixes before it looks at a row,
 * so these rows are never returned; they are here to keep the map whole. */
#define PREFIX(n)       { n, I_NONE, E_NONE, 0, UD }
/* An escape to another map, also consumed before any row is returned. */
#define ESCAPE(n)       { n, I_NONE, E_NONE, 0, UD }
/* The row of an opcode that is a group: the real row is groups[g][reg]. */
#define GROUP(n, imm, g) { n, imm, E_NONE, g, MRM }

/* The flag sets shared by many rows. */
#define F_JCC       (D_BRANCH | D_ENDS)
#define F_PUSH_SR   (D_SENSITIVE | D_SEGREAD | D_STACK)
#define F_POP_SR    (D_SENSITIVE | D_SEGLOAD | D_STACK | D_ENDS)
#define F_LOAD_FAR  (D_SENSITIVE | D_SEGLOAD | D_MEMONLY | D_ENDS | MRM)
#define F_INT       (D_BRANCH | D_ENDS | D_SEGLOAD | D_STACK)
#define F_PRIV      (D_PRIV | D_ENDS)
#define F_IO        (D_IOPL | D_IO | D_ENDS)
#define F_IO_STR    (D_IOPL | D_IO | D_STRING | D_ENDS)
#define F_X87       (MRM | D_X87)

/* ------------------------------------------------------------------------
 * Groups: opcodes whose ModRM.reg field selects the instruction.
 * SDM Vol. 2, Appendix A, Table A-6 (Opcode Extensions for One- and
 * Two-byte Opcodes by Group Number).  Each table has 8 rows, /0 to /7.
 * ---------------------------------------------------------------------- */

/* Grp 1 (80, 82, 83: Ib; 81: Iz).  cmp (/7) does not write, so no LOCK. */
static const struct opinfo grp1_ib[8] = {
    [0] = { "add", I_B, E_NONE, X_LOCK, MRM },
    [1] = { "or",  I_B, E_NONE, X_LOCK, MRM },
    [2] = { "adc", I_B, E_NONE, X_LOCK, MRM },
    [3] = { "sbb", I_B, E_NONE, X_LOCK, MRM },
    [4] = { "and", I_B, E_NONE, X_LOCK, MRM },
    [5] = { "sub", I_B, E_NONE, X_LOCK, MRM },
    [6] = { "xor", I_B, E_NONE, X_LOCK, MRM },
    [7] = { "cmp", I_B, E_NONE, 0,      MRM },
};

static const struct opinfo grp1_iz[8] = {
    [0] = { "add", I_Z, E_NONE, X_LOCK, MRM },
    [1] = { "or",  I_Z, E_NONE, X_LOCK, MRM },
    [2] = { "adc", I_Z, E_NONE, X_LOCK, MRM },
    [3] = { "sbb", I_Z, E_NONE, X_LOCK, MRM },
    [4] = { "and", I_Z, E_NONE, X_LOCK, MRM },
    [5] = { "sub", I_Z, E_NONE, X_LOCK, MRM },
    [6] = { "xor", I_Z, E_NONE, X_LOCK, MRM },
    [7] = { "cmp", I_Z, E_NONE, 0,      MRM },
};

/* Grp 1A (8F): only /0 pop Ev exists.  (AMD's XOP prefix reuses 8F with
 * reg != 0; our CPU has no XOP.) */
static const struct opinfo grp1a[8] = {
    [0] = { "pop", I_NONE, E_NONE, 0, MRM | D_STACK },
    [1] = GRP_BAD(I_NONE),
    [2] = GRP_BAD(I_NONE),
    [3] = GRP_BAD(I_NONE),
    [4] = GRP_BAD(I_NONE),
    [5] = GRP_BAD(I_NONE),
    [6] = GRP_BAD(I_NONE),
    [7] = GRP_BAD(I_NONE),
};

/* Grp 2, shifts and rotates (C0, C1: Ib; D0, D1: by 1; D2, D3: by CL).
 * /6 is not in Table A-6, but every IA-32 CPU executes it as shl
 * (SAL and SHL are one instruction); it is kept valid. */
static const struct opinfo grp2_ib[8] = {
    [0] = { "rol", I_B, E_NONE, 0, MRM },
    [1] = { "ror", I_B, E_NONE, 0, MRM },
    [2] = { "rcl", I_B, E_NONE, 0, MRM },
    [3] = { "rcr", I_B, E_NONE, 0, MRM },
    [4] = { "shl", I_B, E_NONE, 0, MRM },
    [5] = { "shr", I_B, E_NONE, 0, MRM },
    [6] = { "sal", I_B, E_NONE, 0, MRM },
    [7] = { "sar", I_B, E_NONE, 0, MRM },
};

static const struct opinfo grp2[8] = {
    [0] = { "rol", I_NONE, E_NONE, 0, MRM },
    [1] = { "ror", I_NONE, E_NONE, 0, MRM },
    [2] = { "rcl", I_NONE, E_NONE, 0, MRM },
    [3] = { "rcr", I_NONE, E_NONE, 0, MRM },
    [4] = { "shl", I_NONE, E_NONE, 0, MRM },
    [5] = { "shr", I_NONE, E_NONE, 0, MRM },
    [6] = { "sal", I_NONE, E_NONE, 0, MRM },
    [7] = { "sar", I_NONE, E_NONE, 0, MRM },
};

/* Grp 3 (F6 Eb, F7 Ev): only test (/0, and its undocumented alias /1)
 * has an immediate, Ib for F6 and Iz for F7. */
static const struct opinfo grp3_b[8] = {
    [0] = { "test", I_B,    E_NONE, 0,      MRM },
    [1] = { "test", I_B,    E_NONE, 0,      MRM },
    [2] = { "not",  I_NONE, E_NONE, X_LOCK, MRM },
    [3] = { "neg",  I_NONE, E_NONE, X_LOCK, MRM },
    [4] = { "mul",  I_NONE, E_NONE, 0,      MRM },
    [5] = { "imul", I_NONE, E_NONE, 0,      MRM },
    [6] = { "div",  I_NONE, E_NONE, 0,      MRM },
    [7] = { "idiv", I_NONE, E_NONE, 0,      MRM },
};

static const struct opinfo grp3_z[8] = {
    [0] = { "test", I_Z,    E_NONE, 0,      MRM },
    [1] = { "test", I_Z,    E_NONE, 0,      MRM },
    [2] = { "not",  I_NONE, E_NONE, X_LOCK, MRM },
    [3] = { "neg",  I_NONE, E_NONE, X_LOCK, MRM },
    [4] = { "mul",  I_NONE, E_NONE, 0,      MRM },
    [5] = { "imul", I_NONE, E_NONE, 0,      MRM },
    [6] = { "div",  I_NONE, E_NONE, 0,      MRM },
    [7] = { "idiv", I_NONE, E_NONE, 0,      MRM },
};

/* Grp 4 (FE): inc/dec Eb. */
static const struct opinfo grp4[8] = {
    [0] = { "inc", I_NONE, E_NONE, X_LOCK, MRM },
    [1] = { "dec", I_NONE, E_NONE, X_LOCK, MRM },
    [2] = GRP_BAD(I_NONE),
    [3] = GRP_BAD(I_NONE),
    [4] = GRP_BAD(I_NONE),
    [5] = GRP_BAD(I_NONE),
    [6] = GRP_BAD(I_NONE),
    [7] = GRP_BAD(I_NONE),
};

/* Grp 5 (FF): the indirect branches go to emulate.c's E_GRP5. */
static const struct opinfo grp5[8] = {
    [0] = { "inc",   I_NONE, E_NONE, X_LOCK, MRM },
    [1] = { "dec",   I_NONE, E_NONE, X_LOCK, MRM },
    [2] = { "call",  I_NONE, E_GRP5, 0, MRM | D_BRANCH | D_ENDS | D_STACK },
    [3] = { "callf", I_NONE, E_GRP5, 0, MRM | D_BRANCH | D_ENDS | D_STACK | D_SEGLOAD | D_MEMONLY },
    [4] = { "jmp",   I_NONE, E_GRP5, 0, MRM | D_BRANCH | D_ENDS },
    [5] = { "jmpf",  I_NONE, E_GRP5, 0, MRM | D_BRANCH | D_ENDS | D_SEGLOAD | D_MEMONLY },
    [6] = { "push",  I_NONE, E_NONE, 0, MRM | D_STACK },
    [7] = GRP_BAD(I_NONE),
};

/* Grp 11 (C6 Eb, Ib; C7 Ev, Iz): only /0 mov.  The other rows keep the
 * immediate, as later CPUs do (C6 F8 xabort Ib, C7 F8 xbegin Jz). */
static const struct opinfo grp11_ib[8] = {
    [0] = { "mov", I_B, E_NONE, 0, MRM },
    [1] = GRP_BAD(I_B),
    [2] = GRP_BAD(I_B),
    [3] = GRP_BAD(I_B),
    [4] = GRP_BAD(I_B),
    [5] = GRP_BAD(I_B),
    [6] = GRP_BAD(I_B),
    [7] = GRP_BAD(I_B),
};

static const struct opinfo grp11_iz[8] = {
    [0] = { "mov", I_Z, E_NONE, 0, MRM },
    [1] = GRP_BAD(I_Z),
    [2] = GRP_BAD(I_Z),
    [3] = GRP_BAD(I_Z),
    [4] = GRP_BAD(I_Z),
    [5] = GRP_BAD(I_Z),
    [6] = GRP_BAD(I_Z),
    [7] = GRP_BAD(I_Z),
};

/* 8C and 8E are not groups in Table A-6, but ModRM.reg names a segment
 * register (ES CS SS DS FS GS, then two that do not exist), and the ones
 * that do not exist are #UD, as is mov to CS (SDM Vol. 2, MOV -- "Move",
 * and Appendix B, sreg field encoding).  Tables say so without code. */
#define MOV_FROM_SR { "mov", I_NONE, E_MOV_FROM_SR, 0, MRM | D_SENSITIVE | D_SEGREAD }
#define MOV_TO_SR   { "mov", I_NONE, E_MOV_TO_SR, 0, MRM | D_SENSITIVE | D_SEGLOAD | D_ENDS }

static const struct opinfo sr_from[8] = {
    [SEG_ES] = MOV_FROM_SR,
    [SEG_CS] = MOV_FROM_SR,
    [SEG_SS] = MOV_FROM_SR,
    [SEG_DS] = MOV_FROM_SR,
    [SEG_FS] = MOV_FROM_SR,
    [SEG_GS] = MOV_FROM_SR,
    [6]      = GRP_BAD(I_NONE),
    [7]      = GRP_BAD(I_NONE),
};

static const struct opinfo sr_to[8] = {
    [SEG_ES] = MOV_TO_SR,
    [SEG_CS] = GRP_BAD(I_NONE),         /* mov cs, r/m is #UD */
    [SEG_SS] = MOV_TO_SR,
    [SEG_DS] = MOV_TO_SR,
    [SEG_FS] = MOV_TO_SR,
    [SEG_GS] = MOV_TO_SR,
    [6]      = GRP_BAD(I_NONE),
    [7]      = GRP_BAD(I_NONE),
};

/* Grp 6 (0F 00): LDT and task register, segment checks. */
static const struct opinfo grp6[8] = {
    [0] = { "sldt", I_NONE, E_GRP6, 0, MRM | D_SENSITIVE },
    [1] = { "str",  I_NONE, E_GRP6, 0, MRM | D_SENSITIVE },
    [2] = { "lldt", I_NONE, E_GRP6, 0, MRM | F_PRIV },
    [3] = { "ltr",  I_NONE, E_GRP6, 0, MRM | F_PRIV },
    [4] = { "verr", I_NONE, E_GRP6, 0, MRM | D_SENSITIVE },
    [5] = { "verw", I_NONE, E_GRP6, 0, MRM | D_SENSITIVE },
    [6] = GRP_BAD(I_NONE),              /* jmpe on IA-64 only */
    [7] = GRP_BAD(I_NONE),
};

/* Grp 7 (0F 01): descriptor-table registers, MSW, invlpg.  With mod = 3
 * later CPUs put single instructions here (monitor, mwait, vmcall,
 * xgetbv, swapgs, rdtscp, ...); our CPU has none of them.  They fall out
 * of D_MEMONLY on /0-/3 and /7 and of the invalid /5; smsw and lmsw take
 * a register operand. */
static const struct opinfo grp7[8] = {
    [0] = { "sgdt",   I_NONE, E_GRP7, 0, MRM | D_SENSITIVE | D_MEMONLY },
    [1] = { "sidt",   I_NONE, E_GRP7, 0, MRM | D_SENSITIVE | D_MEMONLY },
    [2] = { "lgdt",   I_NONE, E_GRP7, 0, MRM | F_PRIV | D_MEMONLY },
    [3] = { "lidt",   I_NONE, E_GRP7, 0, MRM | F_PRIV | D_MEMONLY },
    [4] = { "smsw",   I_NONE, E_GRP7, 0, MRM | D_SENSITIVE },
    [5] = GRP_BAD(I_NONE),
    [6] = { "lmsw",   I_NONE, E_GRP7, 0, MRM | F_PRIV },
    [7] = { "invlpg", I_NONE, E_GRP7, 0, MRM | F_PRIV | D_MEMONLY },
};

/* Grp 8 (0F BA): bit test with an immediate bit number. */
static const struct opinfo grp8[8] = {
    [0] = GRP_BAD(I_B),
    [1] = GRP_BAD(I_B),
    [2] = GRP_BAD(I_B),
    [3] = GRP_BAD(I_B),
    [4] = { "bt",  I_B, E_NONE, 0,      MRM },
    [5] = { "bts", I_B, E_NONE, X_LOCK, MRM },
    [6] = { "btr", I_B, E_NONE, X_LOCK, MRM },
    [7] = { "btc", I_B, E_NONE, X_LOCK, MRM },
};

/* Grp 9 (0F C7): only cmpxchg8b on our CPU (rdrand, vmptrld, xsaves and
 * friends came later). */
static const struct opinfo grp9[8] = {
    [0] = GRP_BAD(I_NONE),
    [1] = { "cmpxchg8b", I_NONE, E_NONE, X_LOCK, MRM | D_MEMONLY },
    [2] = GRP_BAD(I_NONE),
    [3] = GRP_BAD(I_NONE),
    [4] = GRP_BAD(I_NONE),
    [5] = GRP_BAD(I_NONE),
    [6] = GRP_BAD(I_NONE),
    [7] = GRP_BAD(I_NONE),
};

static const struct opinfo *const groups[G_COUNT] = {
    [G_1_IB]    = grp1_ib,
    [G_1_IZ]    = grp1_iz,
    [G_1A]      = grp1a,
    [G_2_IB]    = grp2_ib,
    [G_2]       = grp2,
    [G_3_B]     = grp3_b,
    [G_3_Z]     = grp3_z,
    [G_4]       = grp4,
    [G_5]       = grp5,
    [G_11_IB]   = grp11_ib,
    [G_11_IZ]   = grp11_iz,
    [G_SR_FROM] = sr_from,
    [G_SR_TO]   = sr_to,
    [G_6]       = grp6,
    [G_7]       = grp7,
    [G_8]       = grp8,
    [G_9]       = grp9,
};

/* ------------------------------------------------------------------------
 * One-byte opcodes.  SDM Vol. 2, Appendix A, Table A-2 (One-byte Opcode
 * Map).  In the ALU blocks the first two rows (Eb,Gb and Ev,Gv) write
 * memory and may take LOCK; the Gb,Eb / Gv,Ev forms write a register.
 * ---------------------------------------------------------------------- */
static const struct opinfo onebyte[256] = {
    /* 0x00 - 0x07 */
    [0x00] = { "add",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x01] = { "add",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x02] = { "add",  I_NONE, E_NONE, 0, MRM },
    [0x03] = { "add",  I_NONE, E_NONE, 0, MRM },
    [0x04] = { "add",  I_B,    E_NONE, 0, 0 },
    [0x05] = { "add",  I_Z,    E_NONE, 0, 0 },
    [0x06] = { "push", I_NONE, E_PUSH_SR, 0, F_PUSH_SR },
    [0x07] = { "pop",  I_NONE, E_POP_SR,  0, F_POP_SR },
    /* 0x08 - 0x0F */
    [0x08] = { "or",   I_NONE, E_NONE, X_LOCK, MRM },
    [0x09] = { "or",   I_NONE, E_NONE, X_LOCK, MRM },
    [0x0a] = { "or",   I_NONE, E_NONE, 0, MRM },
    [0x0b] = { "or",   I_NONE, E_NONE, 0, MRM },
    [0x0c] = { "or",   I_B,    E_NONE, 0, 0 },
    [0x0d] = { "or",   I_Z,    E_NONE, 0, 0 },
    [0x0e] = { "push", I_NONE, E_PUSH_SR, 0, F_PUSH_SR },
    [0x0f] = ESCAPE("(0f escape)"),     /* two-byte map, Table A-3 */
    /* 0x10 - 0x17 */
    [0x10] = { "adc",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x11] = { "adc",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x12] = { "adc",  I_NONE, E_NONE, 0, MRM },
    [0x13] = { "adc",  I_NONE, E_NONE, 0, MRM },
    [0x14] = { "adc",  I_B,    E_NONE, 0, 0 },
    [0x15] = { "adc",  I_Z,    E_NONE, 0, 0 },
    [0x16] = { "push", I_NONE, E_PUSH_SR, 0, F_PUSH_SR },
    [0x17] = { "pop",  I_NONE, E_POP_SR,  0, F_POP_SR },
    /* 0x18 - 0x1F */
    [0x18] = { "sbb",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x19] = { "sbb",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x1a] = { "sbb",  I_NONE, E_NONE, 0, MRM },
    [0x1b] = { "sbb",  I_NONE, E_NONE, 0, MRM },
    [0x1c] = { "sbb",  I_B,    E_NONE, 0, 0 },
    [0x1d] = { "sbb",  I_Z,    E_NONE, 0, 0 },
    [0x1e] = { "push", I_NONE, E_PUSH_SR, 0, F_PUSH_SR },
    [0x1f] = { "pop",  I_NONE, E_POP_SR,  0, F_POP_SR },
    /* 0x20 - 0x27 */
    [0x20] = { "and",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x21] = { "and",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x22] = { "and",  I_NONE, E_NONE, 0, MRM },
    [0x23] = { "and",  I_NONE, E_NONE, 0, MRM },
    [0x24] = { "and",  I_B,    E_NONE, 0, 0 },
    [0x25] = { "and",  I_Z,    E_NONE, 0, 0 },
    [0x26] = PREFIX("es"),
    [0x27] = { "daa",  I_NONE, E_NONE, 0, 0 },
    /* 0x28 - 0x2F */
    [0x28] = { "sub",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x29] = { "sub",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x2a] = { "sub",  I_NONE, E_NONE, 0, MRM },
    [0x2b] = { "sub",  I_NONE, E_NONE, 0, MRM },
    [0x2c] = { "sub",  I_B,    E_NONE, 0, 0 },
    [0x2d] = { "sub",  I_Z,    E_NONE, 0, 0 },
    [0x2e] = PREFIX("cs"),
    [0x2f] = { "das",  I_NONE, E_NONE, 0, 0 },
    /* 0x30 - 0x37 */
    [0x30] = { "xor",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x31] = { "xor",  I_NONE, E_NONE, X_LOCK, MRM },
    [0x32] = { "xor",  I_NONE, E_NONE, 0, MRM },
    [0x33] = { "xor",  I_NONE, E_NONE, 0, MRM },
    [0x34] = { "xor",  I_B,    E_NONE, 0, 0 },
    [0x35] = { "xor",  I_Z,    E_NONE, 0, 0 },
    [0x36] = PREFIX("ss"),
    [0x37] = { "aaa",  I_NONE, E_NONE, 0, 0 },
    /* 0x38 - 0x3F */
    [0x38] = { "cmp",  I_NONE, E_NONE, 0, MRM },
    [0x39] = { "cmp",  I_NONE, E_NONE, 0, MRM },
    [0x3a] = { "cmp",  I_NONE, E_NONE, 0, MRM },
    [0x3b] = { "cmp",  I_NONE, E_NONE, 0, MRM },
    [0x3c] = { "cmp",  I_B,    E_NONE, 0, 0 },
    [0x3d] = { "cmp",  I_Z,    E_NONE, 0, 0 },
    [0x3e] = PREFIX("ds"),
    [0x3f] = { "aas",  I_NONE, E_NONE, 0, 0 },
    /* 0x40 - 0x47: inc r16/r32 */
    [0x40] = { "inc",  I_NONE, E_NONE, 0, 0 },
    [0x41] = { "inc",  I_NONE, E_NONE, 0, 0 },
    [0x42] = { "inc",  I_NONE, E_NONE, 0, 0 },
    [0x43] = { "inc",  I_NONE, E_NONE, 0, 0 },
    [0x44] = { "inc",  I_NONE, E_NONE, 0, 0 },
    [0x45] = { "inc",  I_NONE, E_NONE, 0, 0 },
    [0x46] = { "inc",  I_NONE, E_NONE, 0, 0 },
    [0x47] = { "inc",  I_NONE, E_NONE, 0, 0 },
    /* 0x48 - 0x4F: dec r16/r32 */
    [0x48] = { "dec",  I_NONE, E_NONE, 0, 0 },
    [0x49] = { "dec",  I_NONE, E_NONE, 0, 0 },
    [0x4a] = { "dec",  I_NONE, E_NONE, 0, 0 },
    [0x4b] = { "dec",  I_NONE, E_NONE, 0, 0 },
    [0x4c] = { "dec",  I_NONE, E_NONE, 0, 0 },
    [0x4d] = { "dec",  I_NONE, E_NONE, 0, 0 },
    [0x4e] = { "dec",  I_NONE, E_NONE, 0, 0 },
    [0x4f] = { "dec",  I_NONE, E_NONE, 0, 0 },
    /* 0x50 - 0x57: push r16/r32 */
    [0x50] = { "push", I_NONE, E_NONE, 0, D_STACK },
    [0x51] = { "push", I_NONE, E_NONE, 0, D_STACK },
    [0x52] = { "push", I_NONE, E_NONE, 0, D_STACK },
    [0x53] = { "push", I_NONE, E_NONE, 0, D_STACK },
    [0x54] = { "push", I_NONE, E_NONE, 0, D_STACK },
    [0x55] = { "push", I_NONE, E_NONE, 0, D_STACK },
    [0x56] = { "push", I_NONE, E_NONE, 0, D_STACK },
    [0x57] = { "push", I_NONE, E_NONE, 0, D_STACK },
    /* 0x58 - 0x5F: pop r16/r32 */
    [0x58] = { "pop",  I_NONE, E_NONE, 0, D_STACK },
    [0x59] = { "pop",  I_NONE, E_NONE, 0, D_STACK },
    [0x5a] = { "pop",  I_NONE, E_NONE, 0, D_STACK },
    [0x5b] = { "pop",  I_NONE, E_NONE, 0, D_STACK },
    [0x5c] = { "pop",  I_NONE, E_NONE, 0, D_STACK },
    [0x5d] = { "pop",  I_NONE, E_NONE, 0, D_STACK },
    [0x5e] = { "pop",  I_NONE, E_NONE, 0, D_STACK },
    [0x5f] = { "pop",  I_NONE, E_NONE, 0, D_STACK },
    /* 0x60 - 0x67 */
    [0x60] = { "pusha", I_NONE, E_NONE, 0, D_STACK },
    [0x61] = { "popa",  I_NONE, E_NONE, 0, D_STACK },
    [0x62] = { "bound", I_NONE, E_NONE, 0, MRM | D_MEMONLY },
    [0x63] = { "arpl",  I_NONE, E_NONE, 0, MRM },   /* #UD in real mode and VM86 */
    [0x64] = PREFIX("fs"),
    [0x65] = PREFIX("gs"),
    [0x66] = PREFIX("data16"),          /* operand size */
    [0x67] = PREFIX("addr16"),          /* address size */
    /* 0x68 - 0x6F */
    [0x68] = { "push", I_Z,    E_NONE, 0, D_STACK },
    [0x69] = { "imul", I_Z,    E_NONE, 0, MRM },
    [0x6a] = { "push", I_B,    E_NONE, 0, D_STACK },
    [0x6b] = { "imul", I_B,    E_NONE, 0, MRM },
    [0x6c] = { "insb", I_NONE, E_INS,  0, F_IO_STR },
    [0x6d] = { "ins",  I_NONE, E_INS,  0, F_IO_STR },
    [0x6e] = { "outsb", I_NONE, E_OUTS, 0, F_IO_STR },
    [0x6f] = { "outs", I_NONE, E_OUTS, 0, F_IO_STR },
    /* 0x70 - 0x77: Jcc Jb */
    [0x70] = { "jo",   I_JB, E_JCC, 0, F_JCC },
    [0x71] = { "jno",  I_JB, E_JCC, 0, F_JCC },
    [0x72] = { "jb",   I_JB, E_JCC, 0, F_JCC },
    [0x73] = { "jae",  I_JB, E_JCC, 0, F_JCC },
    [0x74] = { "je",   I_JB, E_JCC, 0, F_JCC },
    [0x75] = { "jne",  I_JB, E_JCC, 0, F_JCC },
    [0x76] = { "jbe",  I_JB, E_JCC, 0, F_JCC },
    [0x77] = { "ja",   I_JB, E_JCC, 0, F_JCC },
    /* 0x78 - 0x7F */
    [0x78] = { "js",   I_JB, E_JCC, 0, F_JCC },
    [0x79] = { "jns",  I_JB, E_JCC, 0, F_JCC },
    [0x7a] = { "jp",   I_JB, E_JCC, 0, F_JCC },
    [0x7b] = { "jnp",  I_JB, E_JCC, 0, F_JCC },
    [0x7c] = { "jl",   I_JB, E_JCC, 0, F_JCC },
    [0x7d] = { "jge",  I_JB, E_JCC, 0, F_JCC },
    [0x7e] = { "jle",  I_JB, E_JCC, 0, F_JCC },
    [0x7f] = { "jg",   I_JB, E_JCC, 0, F_JCC },
    /* 0x80 - 0x87 */
    [0x80] = GROUP("grp1", I_B, G_1_IB),
    [0x81] = GROUP("grp1", I_Z, G_1_IZ),
    [0x82] = GROUP("grp1", I_B, G_1_IB),   /* alias of 80 (invalid only in 64-bit mode) */
    [0x83] = GROUP("grp1", I_B, G_1_IB),   /* Ib sign-extended by the CPU; imm keeps the raw byte */
    [0x84] = { "test", I_NONE, E_NONE, 0, MRM },
    [0x85] = { "test", I_NONE, E_NONE, 0, MRM },
    [0x86] = { "xchg", I_NONE, E_NONE, X_LOCK, MRM },
    [0x87] = { "xchg", I_NONE, E_NONE, X_LOCK, MRM },
    /* 0x88 - 0x8F */
    [0x88] = { "mov",  I_NONE, E_NONE, 0, MRM },
    [0x89] = { "mov",  I_NONE, E_NONE, 0, MRM },
    [0x8a] = { "mov",  I_NONE, E_NONE, 0, MRM },
    [0x8b] = { "mov",  I_NONE, E_NONE, 0, MRM },
    [0x8c] = GROUP("mov", I_NONE, G_SR_FROM),   /* mov Ev, Sw */
    [0x8d] = { "lea",  I_NONE, E_NONE, 0, MRM | D_MEMONLY },
    [0x8e] = GROUP("mov", I_NONE, G_SR_TO),     /* mov Sw, Ew */
    [0x8f] = GROUP("grp1a", I_NONE, G_1A),
    /* 0x90 - 0x97: nop (pause with F3), xchg eAX, r */
    [0x90] = { "nop",  I_NONE, E_NONE, 0, 0 },
    [0x91] = { "xchg", I_NONE, E_NONE, 0, 0 },
    [0x92] = { "xchg", I_NONE, E_NONE, 0, 0 },
    [0x93] = { "xchg", I_NONE, E_NONE, 0, 0 },
    [0x94] = { "xchg", I_NONE, E_NONE, 0, 0 },
    [0x95] = { "xchg", I_NONE, E_NONE, 0, 0 },
    [0x96] = { "xchg", I_NONE, E_NONE, 0, 0 },
    [0x97] = { "xchg", I_NONE, E_NONE, 0, 0 },
    /* 0x98 - 0x9F */
    [0x98] = { "cwde",  I_NONE, E_NONE,  0, 0 },   /* cbw with 16-bit operands */
    [0x99] = { "cdq",   I_NONE, E_NONE,  0, 0 },   /* cwd with 16-bit operands */
    [0x9a] = { "callf", I_AP,   E_CALLF, 0, D_BRANCH | D_ENDS | D_SEGLOAD | D_STACK },
    [0x9b] = { "wait",  I_NONE, E_NONE,  0, 0 },
    [0x9c] = { "pushf", I_NONE, E_PUSHF, 0, D_SENSITIVE | D_STACK },
    [0x9d] = { "popf",  I_NONE, E_POPF,  0, D_SENSITIVE | D_STACK | D_ENDS },
    [0x9e] = { "sahf",  I_NONE, E_NONE,  0, 0 },
    [0x9f] = { "lahf",  I_NONE, E_NONE,  0, 0 },
    /* 0xA0 - 0xA7 */
    [0xa0] = { "mov",   I_O,    E_NONE, 0, 0 },
    [0xa1] = { "mov",   I_O,    E_NONE, 0, 0 },
    [0xa2] = { "mov",   I_O,    E_NONE, 0, 0 },
    [0xa3] = { "mov",   I_O,    E_NONE, 0, 0 },
    [0xa4] = { "movsb", I_NONE, E_NONE, 0, D_STRING },
    [0xa5] = { "movs",  I_NONE, E_NONE, 0, D_STRING },
    [0xa6] = { "cmpsb", I_NONE, E_NONE, 0, D_STRING },
    [0xa7] = { "cmps",  I_NONE, E_NONE, 0, D_STRING },
    /* 0xA8 - 0xAF */
    [0xa8] = { "test",  I_B,    E_NONE, 0, 0 },
    [0xa9] = { "test",  I_Z,    E_NONE, 0, 0 },
    [0xaa] = { "stosb", I_NONE, E_NONE, 0, D_STRING },
    [0xab] = { "stos",  I_NONE, E_NONE, 0, D_STRING },
    [0xac] = { "lodsb", I_NONE, E_NONE, 0, D_STRING },
    [0xad] = { "lods",  I_NONE, E_NONE, 0, D_STRING },
    [0xae] = { "scasb", I_NONE, E_NONE, 0, D_STRING },
    [0xaf] = { "scas",  I_NONE, E_NONE, 0, D_STRING },
    /* 0xB0 - 0xB7: mov r8, Ib */
    [0xb0] = { "mov",  I_B, E_NONE, 0, 0 },
    [0xb1] = { "mov",  I_B, E_NONE, 0, 0 },
    [0xb2] = { "mov",  I_B, E_NONE, 0, 0 },
    [0xb3] = { "mov",  I_B, E_NONE, 0, 0 },
    [0xb4] = { "mov",  I_B, E_NONE, 0, 0 },
    [0xb5] = { "mov",  I_B, E_NONE, 0, 0 },
    [0xb6] = { "mov",  I_B, E_NONE, 0, 0 },
    [0xb7] = { "mov",  I_B, E_NONE, 0, 0 },
    /* 0xB8 - 0xBF: mov r16/r32, Iv */
    [0xb8] = { "mov",  I_V, E_NONE, 0, 0 },
    [0xb9] = { "mov",  I_V, E_NONE, 0, 0 },
    [0xba] = { "mov",  I_V, E_NONE, 0, 0 },
    [0xbb] = { "mov",  I_V, E_NONE, 0, 0 },
    [0xbc] = { "mov",  I_V, E_NONE, 0, 0 },
    [0xbd] = { "mov",  I_V, E_NONE, 0, 0 },
    [0xbe] = { "mov",  I_V, E_NONE, 0, 0 },
    [0xbf] = { "mov",  I_V, E_NONE, 0, 0 },
    /* 0xC0 - 0xC7 */
    [0xc0] = GROUP("grp2", I_B, G_2_IB),
    [0xc1] = GROUP("grp2", I_B, G_2_IB),
    [0xc2] = { "ret",  I_W,    E_RET, 0, D_BRANCH | D_ENDS | D_STACK },
    [0xc3] = { "ret",  I_NONE, E_RET, 0, D_BRANCH | D_ENDS | D_STACK },
    [0xc4] = { "les",  I_NONE, E_LOAD_FAR, 0, F_LOAD_FAR },  /* mod = 3 is VEX on later CPUs */
    [0xc5] = { "lds",  I_NONE, E_LOAD_FAR, 0, F_LOAD_FAR },
    [0xc6] = GROUP("grp11", I_B, G_11_IB),
    [0xc7] = GROUP("grp11", I_Z, G_11_IZ),
    /* 0xC8 - 0xCF */
    [0xc8] = { "enter", I_WB,   E_NONE, 0, D_STACK },
    [0xc9] = { "leave", I_NONE, E_NONE, 0, D_STACK },
    [0xca] = { "retf",  I_W,    E_RETF, 0, D_BRANCH | D_ENDS | D_STACK | D_SEGLOAD },
    [0xcb] = { "retf",  I_NONE, E_RETF, 0, D_BRANCH | D_ENDS | D_STACK | D_SEGLOAD },
    [0xcc] = { "int3",  I_NONE, E_INT3, 0, F_INT },
    [0xcd] = { "int",   I_B,    E_INT,  0, F_INT },
    [0xce] = { "into",  I_NONE, E_INTO, 0, F_INT },
    [0xcf] = { "iret",  I_NONE, E_IRET, 0, D_BRANCH | D_ENDS | D_STACK | D_SEGLOAD | D_SENSITIVE },
    /* 0xD0 - 0xD7 */
    [0xd0] = GROUP("grp2", I_NONE, G_2),
    [0xd1] = GROUP("grp2", I_NONE, G_2),
    [0xd2] = GROUP("grp2", I_NONE, G_2),
    [0xd3] = GROUP("grp2", I_NONE, G_2),
    [0xd4] = { "aam",  I_B,    E_NONE, 0, 0 },
    [0xd5] = { "aad",  I_B,    E_NONE, 0, 0 },
    [0xd6] = { "salc", I_NONE, E_NONE, 0, 0 },      /* undocumented, on every IA-32 CPU */
    [0xd7] = { "xlat", I_NONE, E_NONE, 0, 0 },
    /* 0xD8 - 0xDF: x87 escapes, Tables A-7 to A-22 (always a ModRM) */
    [0xd8] = { "esc0", I_NONE, E_NONE, 0, F_X87 },
    [0xd9] = { "esc1", I_NONE, E_NONE, 0, F_X87 },
    [0xda] = { "esc2", I_NONE, E_NONE, 0, F_X87 },
    [0xdb] = { "esc3", I_NONE, E_NONE, 0, F_X87 },
    [0xdc] = { "esc4", I_NONE, E_NONE, 0, F_X87 },
    [0xdd] = { "esc5", I_NONE, E_NONE, 0, F_X87 },
    [0xde] = { "esc6", I_NONE, E_NONE, 0, F_X87 },
    [0xdf] = { "esc7", I_NONE, E_NONE, 0, F_X87 },
    /* 0xE0 - 0xE7 */
    [0xe0] = { "loopne", I_JB, E_LOOP, 0, D_BRANCH | D_ENDS },
    [0xe1] = { "loope",  I_JB, E_LOOP, 0, D_BRANCH | D_ENDS },
    [0xe2] = { "loop",   I_JB, E_LOOP, 0, D_BRANCH | D_ENDS },
    [0xe3] = { "jcxz",   I_JB, E_JCXZ, 0, D_BRANCH | D_ENDS },  /* jecxz with 32-bit addresses */
    [0xe4] = { "in",     I_B,  E_IN,   0, F_IO },
    [0xe5] = { "in",     I_B,  E_IN,   0, F_IO },
    [0xe6] = { "out",    I_B,  E_OUT,  0, F_IO },
    [0xe7] = { "out",    I_B,  E_OUT,  0, F_IO },
    /* 0xE8 - 0xEF */
    [0xe8] = { "call", I_JZ,   E_CALL, 0, D_BRANCH | D_ENDS | D_STACK },
    [0xe9] = { "jmp",  I_JZ,   E_JMP,  0, D_BRANCH | D_ENDS },
    [0xea] = { "jmpf", I_AP,   E_JMPF, 0, D_BRANCH | D_ENDS | D_SEGLOAD },
    [0xeb] = { "jmp",  I_JB,   E_JMP,  0, D_BRANCH | D_ENDS },
    [0xec] = { "in",   I_NONE, E_IN,   0, F_IO },
    [0xed] = { "in",   I_NONE, E_IN,   0, F_IO },
    [0xee] = { "out",  I_NONE, E_OUT,  0, F_IO },
    [0xef] = { "out",  I_NONE, E_OUT,  0, F_IO },
    /* 0xF0 - 0xF7 */
    [0xf0] = PREFIX("lock"),
    [0xf1] = { "int1", I_NONE, E_INT1, 0, F_INT },  /* icebp */
    [0xf2] = PREFIX("repne"),
    [0xf3] = PREFIX("rep"),
    [0xf4] = { "hlt",  I_NONE, E_HLT,  0, F_PRIV },
    [0xf5] = { "cmc",  I_NONE, E_NONE, 0, 0 },
    [0xf6] = GROUP("grp3", I_NONE, G_3_B),
    [0xf7] = GROUP("grp3", I_NONE, G_3_Z),
    /* 0xF8 - 0xFF */
    [0xf8] = { "clc",  I_NONE, E_NONE, 0, 0 },
    [0xf9] = { "stc",  I_NONE, E_NONE, 0, 0 },
    [0xfa] = { "cli",  I_NONE, E_CLI,  0, D_IOPL | D_ENDS },
    [0xfb] = { "sti",  I_NONE, E_STI,  0, D_IOPL | D_ENDS },
    [0xfc] = { "cld",  I_NONE, E_NONE, 0, 0 },
    [0xfd] = { "std",  I_NONE, E_NONE, 0, 0 },
    [0xfe] = GROUP("grp4", I_NONE, G_4),
    [0xff] = GROUP("grp5", I_NONE, G_5),
};

/* ------------------------------------------------------------------------
 * Two-byte opcodes, 0F xx.  SDM Vol. 2, Appendix A, Table A-3 (Two-byte
 * Opcode Map: 00H - 77H, and its second part, 80H - FFH).
 * The 66/F2/F3 columns of those tables (SSE) only change the instruction,
 * never its length, and are all #UD on our CPU.
 * ---------------------------------------------------------------------- */
static const struct opinfo twobyte[256] = {
    /* 0x00 - 0x07 */
    [0x00] = GROUP("grp6", I_NONE, G_6),
    [0x01] = GROUP("grp7", I_NONE, G_7),
    [0x02] = { "lar",  I_NONE, E_LAR,  0, MRM | D_SENSITIVE },
    [0x03] = { "lsl",  I_NONE, E_LSL,  0, MRM | D_SENSITIVE },
    [0x04] = NONE_ROW,
    [0x05] = LATER("syscall"),
    [0x06] = { "clts", I_NONE, E_CLTS, 0, F_PRIV },
    [0x07] = LATER("sysret"),
    /* 0x08 - 0x0F */
    [0x08] = { "invd",   I_NONE, E_INVD, 0, F_PRIV },
    [0x09] = { "wbinvd", I_NONE, E_INVD, 0, F_PRIV },
    [0x0a] = NONE_ROW,
    [0x0b] = { "ud2",    I_NONE, E_NONE, 0, UD },   /* defined to raise #UD */
    [0x0c] = NONE_ROW,
    [0x0d] = LATER_M("prefetch"),       /* 3DNow!/prefetchw */
    [0x0e] = LATER("femms"),            /* 3DNow! */
    [0x0f] = LATER_MIB("3dnow"),        /* 3DNow!: the Ib suffix is the opcode */
    /* 0x10 - 0x17: SSE */
    [0x10] = LATER_M("movups"),
    [0x11] = LATER_M("movups"),
    [0x12] = LATER_M("movlps"),
    [0x13] = LATER_M("movlps"),
    [0x14] = LATER_M("unpcklps"),
    [0x15] = LATER_M("unpckhps"),
    [0x16] = LATER_M("movhps"),
    [0x17] = LATER_M("movhps"),
    /* 0x18 - 0x1F: hint NOPs (0F 18 is prefetch on SSE CPUs, 0F 1F /0 is
     * the multi-byte NOP); P6 CPUs execute them all as NOPs. */
    [0x18] = { "nop", I_NONE, E_NONE, 0, MRM },
    [0x19] = { "nop", I_NONE, E_NONE, 0, MRM },
    [0x1a] = { "nop", I_NONE, E_NONE, 0, MRM },
    [0x1b] = { "nop", I_NONE, E_NONE, 0, MRM },
    [0x1c] = { "nop", I_NONE, E_NONE, 0, MRM },
    [0x1d] = { "nop", I_NONE, E_NONE, 0, MRM },
    [0x1e] = { "nop", I_NONE, E_NONE, 0, MRM },
    [0x1f] = { "nop", I_NONE, E_NONE, 0, MRM },
    /* 0x20 - 0x27: mov to/from control and debug registers.  The ModRM
     * always names a register whatever mod says (D_CRDR).  0F 24 and
     * 0F 26 moved test registers on the 386/486 and are #UD since the
     * Pentium; they keep that ModRM shape. */
    [0x20] = { "mov", I_NONE, E_MOV_CR, 0, MRM | D_CRDR | F_PRIV },
    [0x21] = { "mov", I_NONE, E_MOV_DR, 0, MRM | D_CRDR | F_PRIV },
    [0x22] = { "mov", I_NONE, E_MOV_CR, 0, MRM | D_CRDR | F_PRIV },
    [0x23] = { "mov", I_NONE, E_MOV_DR, 0, MRM | D_CRDR | F_PRIV },
    [0x24] = { "mov", I_NONE, E_NONE,   0, MRM | D_CRDR | UD },
    [0x25] = NONE_ROW,
    [0x26] = { "mov", I_NONE, E_NONE,   0, MRM | D_CRDR | UD },
    [0x27] = NONE_ROW,
    /* 0x28 - 0x2F: SSE */
    [0x28] = LATER_M("movaps"),
    [0x29] = LATER_M("movaps"),
    [0x2a] = LATER_M("cvtpi2ps"),
    [0x2b] = LATER_M("movntps"),
    [0x2c] = LATER_M("cvttps2pi"),
    [0x2d] = LATER_M("cvtps2pi"),
    [0x2e] = LATER_M("ucomiss"),
    [0x2f] = LATER_M("comiss"),
    /* 0x30 - 0x37 */
    [0x30] = { "wrmsr",    I_NONE, E_WRMSR,    0, F_PRIV },
    [0x31] = { "rdtsc",    I_NONE, E_RDTSC,    0, 0 },   /* CR4.TSD is emulate.c's business */
    [0x32] = { "rdmsr",    I_NONE, E_RDMSR,    0, F_PRIV },
    [0x33] = { "rdpmc",    I_NONE, E_RDPMC,    0, F_PRIV },
    [0x34] = { "sysenter", I_NONE, E_SYSENTER, 0, UD },  /* no SEP on our CPU */
    [0x35] = { "sysexit",  I_NONE, E_SYSEXIT,  0, UD },
    [0x36] = NONE_ROW,
    [0x37] = LATER("getsec"),
    /* 0x38 - 0x3F */
    [0x38] = ESCAPE("(0f 38 escape)"),  /* three-byte map, Table A-4 */
    [0x39] = NONE_ROW,
    [0x3a] = ESCAPE("(0f 3a escape)"),  /* three-byte map, Table A-5 */
    [0x3b] = NONE_ROW,
    [0x3c] = NONE_ROW,
    [0x3d] = NONE_ROW,
    [0x3e] = NONE_ROW,
    [0x3f] = NONE_ROW,
    /* 0x40 - 0x47: cmovcc Gv, Ev (P6) */
    [0x40] = { "cmovo",  I_NONE, E_NONE, 0, MRM },
    [0x41] = { "cmovno", I_NONE, E_NONE, 0, MRM },
    [0x42] = { "cmovb",  I_NONE, E_NONE, 0, MRM },
    [0x43] = { "cmovae", I_NONE, E_NONE, 0, MRM },
    [0x44] = { "cmove",  I_NONE, E_NONE, 0, MRM },
    [0x45] = { "cmovne", I_NONE, E_NONE, 0, MRM },
    [0x46] = { "cmovbe", I_NONE, E_NONE, 0, MRM },
    [0x47] = { "cmova",  I_NONE, E_NONE, 0, MRM },
    /* 0x48 - 0x4F */
    [0x48] = { "cmovs",  I_NONE, E_NONE, 0, MRM },
    [0x49] = { "cmovns", I_NONE, E_NONE, 0, MRM },
    [0x4a] = { "cmovp",  I_NONE, E_NONE, 0, MRM },
    [0x4b] = { "cmovnp", I_NONE, E_NONE, 0, MRM },
    [0x4c] = { "cmovl",  I_NONE, E_NONE, 0, MRM },
    [0x4d] = { "cmovge", I_NONE, E_NONE, 0, MRM },
    [0x4e] = { "cmovle", I_NONE, E_NONE, 0, MRM },
    [0x4f] = { "cmovg",  I_NONE, E_NONE, 0, MRM },
    /* 0x50 - 0x57: SSE */
    [0x50] = LATER_M("movmskps"),
    [0x51] = LATER_M("sqrtps"),
    [0x52] = LATER_M("rsqrtps"),
    [0x53] = LATER_M("rcpps"),
    [0x54] = LATER_M("andps"),
    [0x55] = LATER_M("andnps"),
    [0x56] = LATER_M("orps"),
    [0x57] = LATER_M("xorps"),
    /* 0x58 - 0x5F: SSE */
    [0x58] = LATER_M("addps"),
    [0x59] = LATER_M("mulps"),
    [0x5a] = LATER_M("cvtps2pd"),
    [0x5b] = LATER_M("cvtdq2ps"),
    [0x5c] = LATER_M("subps"),
    [0x5d] = LATER_M("minps"),
    [0x5e] = LATER_M("divps"),
    [0x5f] = LATER_M("maxps"),
    /* 0x60 - 0x67: MMX */
    [0x60] = LATER_M("punpcklbw"),
    [0x61] = LATER_M("punpcklwd"),
    [0x62] = LATER_M("punpckldq"),
    [0x63] = LATER_M("packsswb"),
    [0x64] = LATER_M("pcmpgtb"),
    [0x65] = LATER_M("pcmpgtw"),
    [0x66] = LATER_M("pcmpgtd"),
    [0x67] = LATER_M("packuswb"),
    /* 0x68 - 0x6F: MMX */
    [0x68] = LATER_M("punpckhbw"),
    [0x69] = LATER_M("punpckhwd"),
    [0x6a] = LATER_M("punpckhdq"),
    [0x6b] = LATER_M("packssdw"),
    [0x6c] = LATER_M("punpcklqdq"),
    [0x6d] = LATER_M("punpckhqdq"),
    [0x6e] = LATER_M("movd"),
    [0x6f] = LATER_M("movq"),
    /* 0x70 - 0x77: MMX; 71-73 are Grp 12-14 (shift by Ib) */
    [0x70] = LATER_MIB("pshufw"),
    [0x71] = LATER_MIB("grp12"),
    [0x72] = LATER_MIB("grp13"),
    [0x73] = LATER_MIB("grp14"),
    [0x74] = LATER_M("pcmpeqb"),
    [0x75] = LATER_M("pcmpeqw"),
    [0x76] = LATER_M("pcmpeqd"),
    [0x77] = LATER("emms"),
    /* 0x78 - 0x7F */
    [0x78] = LATER_M("vmread"),
    [0x79] = LATER_M("vmwrite"),
    [0x7a] = NONE_ROW,
    [0x7b] = NONE_ROW,
    [0x7c] = LATER_M("haddpd"),
    [0x7d] = LATER_M("hsubpd"),
    [0x7e] = LATER_M("movd"),
    [0x7f] = LATER_M("movq"),
    /* 0x80 - 0x87: Jcc Jz */
    [0x80] = { "jo",   I_JZ, E_JCC, 0, F_JCC },
    [0x81] = { "jno",  I_JZ, E_JCC, 0, F_JCC },
    [0x82] = { "jb",   I_JZ, E_JCC, 0, F_JCC },
    [0x83] = { "jae",  I_JZ, E_JCC, 0, F_JCC },
    [0x84] = { "je",   I_JZ, E_JCC, 0, F_JCC },
    [0x85] = { "jne",  I_JZ, E_JCC, 0, F_JCC },
    [0x86] = { "jbe",  I_JZ, E_JCC, 0, F_JCC },
    [0x87] = { "ja",   I_JZ, E_JCC, 0, F_JCC },
    /* 0x88 - 0x8F */
    [0x88] = { "js",   I_JZ, E_JCC, 0, F_JCC },
    [0x89] = { "jns",  I_JZ, E_JCC, 0, F_JCC },
    [0x8a] = { "jp",   I_JZ, E_JCC, 0, F_JCC },
    [0x8b] = { "jnp",  I_JZ, E_JCC, 0, F_JCC },
    [0x8c] = { "jl",   I_JZ, E_JCC, 0, F_JCC },
    [0x8d] = { "jge",  I_JZ, E_JCC, 0, F_JCC },
    [0x8e] = { "jle",  I_JZ, E_JCC, 0, F_JCC },
    [0x8f] = { "jg",   I_JZ, E_JCC, 0, F_JCC },
    /* 0x90 - 0x97: setcc Eb */
    [0x90] = { "seto",  I_NONE, E_NONE, 0, MRM },
    [0x91] = { "setno", I_NONE, E_NONE, 0, MRM },
    [0x92] = { "setb",  I_NONE, E_NONE, 0, MRM },
    [0x93] = { "setae", I_NONE, E_NONE, 0, MRM },
    [0x94] = { "sete",  I_NONE, E_NONE, 0, MRM },
    [0x95] = { "setne", I_NONE, E_NONE, 0, MRM },
    [0x96] = { "setbe", I_NONE, E_NONE, 0, MRM },
    [0x97] = { "seta",  I_NONE, E_NONE, 0, MRM },
    /* 0x98 - 0x9F */
    [0x98] = { "sets",  I_NONE, E_NONE, 0, MRM },
    [0x99] = { "setns", I_NONE, E_NONE, 0, MRM },
    [0x9a] = { "setp",  I_NONE, E_NONE, 0, MRM },
    [0x9b] = { "setnp", I_NONE, E_NONE, 0, MRM },
    [0x9c] = { "setl",  I_NONE, E_NONE, 0, MRM },
    [0x9d] = { "setge", I_NONE, E_NONE, 0, MRM },
    [0x9e] = { "setle", I_NONE, E_NONE, 0, MRM },
    [0x9f] = { "setg",  I_NONE, E_NONE, 0, MRM },
    /* 0xA0 - 0xA7 */
    [0xa0] = { "push",  I_NONE, E_PUSH_SR, 0, F_PUSH_SR },
    [0xa1] = { "pop",   I_NONE, E_POP_SR,  0, F_POP_SR },
    [0xa2] = { "cpuid", I_NONE, E_CPUID,   0, D_SENSITIVE | D_ENDS },
    [0xa3] = { "bt",    I_NONE, E_NONE,    0, MRM },
    [0xa4] = { "shld",  I_B,    E_NONE,    0, MRM },
    [0xa5] = { "shld",  I_NONE, E_NONE,    0, MRM },
    [0xa6] = LATER_M("(0f a6)"),        /* 486 A-step cmpxchg; VIA PadLock */
    [0xa7] = LATER_M("(0f a7)"),        /* 486 A-step cmpxchg; VIA PadLock */
    /* 0xA8 - 0xAF */
    [0xa8] = { "push",  I_NONE, E_PUSH_SR, 0, F_PUSH_SR },
    [0xa9] = { "pop",   I_NONE, E_POP_SR,  0, F_POP_SR },
    [0xaa] = { "rsm",   I_NONE, E_RSM,     0, UD },      /* #UD outside SMM */
    [0xab] = { "bts",   I_NONE, E_NONE,    X_LOCK, MRM },
    [0xac] = { "shrd",  I_B,    E_NONE,    0, MRM },
    [0xad] = { "shrd",  I_NONE, E_NONE,    0, MRM },
    [0xae] = LATER_M("grp15"),          /* fxsave, ldmxcsr, clflush, fences */
    [0xaf] = { "imul",  I_NONE, E_NONE,    0, MRM },
    /* 0xB0 - 0xB7 */
    [0xb0] = { "cmpxchg", I_NONE, E_NONE,     X_LOCK, MRM },
    [0xb1] = { "cmpxchg", I_NONE, E_NONE,     X_LOCK, MRM },
    [0xb2] = { "lss",     I_NONE, E_LOAD_FAR, 0, F_LOAD_FAR },
    [0xb3] = { "btr",     I_NONE, E_NONE,     X_LOCK, MRM },
    [0xb4] = { "lfs",     I_NONE, E_LOAD_FAR, 0, F_LOAD_FAR },
    [0xb5] = { "lgs",     I_NONE, E_LOAD_FAR, 0, F_LOAD_FAR },
    [0xb6] = { "movzx",   I_NONE, E_NONE,     0, MRM },
    [0xb7] = { "movzx",   I_NONE, E_NONE,     0, MRM },
    /* 0xB8 - 0xBF */
    [0xb8] = LATER_M("popcnt"),         /* with F3; jmpe on IA-64 */
    [0xb9] = { "ud1",   I_NONE, E_NONE, 0, UD | MRM },   /* defined to raise #UD */
    [0xba] = GROUP("grp8", I_B, G_8),
    [0xbb] = { "btc",   I_NONE, E_NONE, X_LOCK, MRM },
    [0xbc] = { "bsf",   I_NONE, E_NONE, 0, MRM },
    [0xbd] = { "bsr",   I_NONE, E_NONE, 0, MRM },
    [0xbe] = { "movsx", I_NONE, E_NONE, 0, MRM },
    [0xbf] = { "movsx", I_NONE, E_NONE, 0, MRM },
    /* 0xC0 - 0xC7 */
    [0xc0] = { "xadd",  I_NONE, E_NONE, X_LOCK, MRM },
    [0xc1] = { "xadd",  I_NONE, E_NONE, X_LOCK, MRM },
    [0xc2] = LATER_MIB("cmpps"),
    [0xc3] = LATER_M("movnti"),
    [0xc4] = LATER_MIB("pinsrw"),
    [0xc5] = LATER_MIB("pextrw"),
    [0xc6] = LATER_MIB("shufps"),
    [0xc7] = GROUP("grp9", I_NONE, G_9),
    /* 0xC8 - 0xCF: bswap r32 */
    [0xc8] = { "bswap", I_NONE, E_NONE, 0, 0 },
    [0xc9] = { "bswap", I_NONE, E_NONE, 0, 0 },
    [0xca] = { "bswap", I_NONE, E_NONE, 0, 0 },
    [0xcb] = { "bswap", I_NONE, E_NONE, 0, 0 },
    [0xcc] = { "bswap", I_NONE, E_NONE, 0, 0 },
    [0xcd] = { "bswap", I_NONE, E_NONE, 0, 0 },
    [0xce] = { "bswap", I_NONE, E_NONE, 0, 0 },
    [0xcf] = { "bswap", I_NONE, E_NONE, 0, 0 },
    /* 0xD0 - 0xD7: MMX/SSE */
    [0xd0] = LATER_M("addsubpd"),
    [0xd1] = LATER_M("psrlw"),
    [0xd2] = LATER_M("psrld"),
    [0xd3] = LATER_M("psrlq"),
    [0xd4] = LATER_M("paddq"),
    [0xd5] = LATER_M("pmullw"),
    [0xd6] = LATER_M("movq"),
    [0xd7] = LATER_M("pmovmskb"),
    /* 0xD8 - 0xDF */
    [0xd8] = LATER_M("psubusb"),
    [0xd9] = LATER_M("psubusw"),
    [0xda] = LATER_M("pminub"),
    [0xdb] = LATER_M("pand"),
    [0xdc] = LATER_M("paddusb"),
    [0xdd] = LATER_M("paddusw"),
    [0xde] = LATER_M("pmaxub"),
    [0xdf] = LATER_M("pandn"),
    /* 0xE0 - 0xE7 */
    [0xe0] = LATER_M("pavgb"),
    [0xe1] = LATER_M("psraw"),
    [0xe2] = LATER_M("psrad"),
    [0xe3] = LATER_M("pavgw"),
    [0xe4] = LATER_M("pmulhuw"),
    [0xe5] = LATER_M("pmulhw"),
    [0xe6] = LATER_M("cvttpd2dq"),
    [0xe7] = LATER_M("movntq"),
    /* 0xE8 - 0xEF */
    [0xe8] = LATER_M("psubsb"),
    [0xe9] = LATER_M("psubsw"),
    [0xea] = LATER_M("pminsw"),
    [0xeb] = LATER_M("por"),
    [0xec] = LATER_M("paddsb"),
    [0xed] = LATER_M("paddsw"),
    [0xee] = LATER_M("pmaxsw"),
    [0xef] = LATER_M("pxor"),
    /* 0xF0 - 0xF7 */
    [0xf0] = LATER_M("lddqu"),
    [0xf1] = LATER_M("psllw"),
    [0xf2] = LATER_M("pslld"),
    [0xf3] = LATER_M("psllq"),
    [0xf4] = LATER_M("pmuludq"),
    [0xf5] = LATER_M("pmaddwd"),
    [0xf6] = LATER_M("psadbw"),
    [0xf7] = LATER_M("maskmovq"),
    /* 0xF8 - 0xFF */
    [0xf8] = LATER_M("psubb"),
    [0xf9] = LATER_M("psubw"),
    [0xfa] = LATER_M("psubd"),
    [0xfb] = LATER_M("psubq"),
    [0xfc] = LATER_M("paddb"),
    [0xfd] = LATER_M("paddw"),
    [0xfe] = LATER_M("paddd"),
    [0xff] = { "ud0", I_NONE, E_NONE, 0, UD | MRM },    /* defined to raise #UD */
};

/* ------------------------------------------------------------------------
 * Three-byte opcodes.  SDM Vol. 2, Appendix A, Table A-4 (Three-byte
 * Opcode Map: 0F 38 xx) and Table A-5 (0F 3A xx).  Everything in them is
 * SSSE3 or later, so one row per map is enough: every 0F 38 opcode has a
 * ModRM and no immediate, every 0F 3A opcode a ModRM and an Ib.
 * ---------------------------------------------------------------------- */
static const struct opinfo map0f38 = LATER_M("(0f 38 xx)");
static const struct opinfo map0f3a = LATER_MIB("(0f 3a xx)");

/* ------------------------------------------------------------------------
 * The decoder.
 * ---------------------------------------------------------------------- */

/* A read position in the caller's bytes. */
struct cursor {
    const uint8_t *bytes;
    unsigned avail;
    unsigned pos;
};

/* Take n (1, 2 or 4) little-endian bytes.  An instruction may not run past
 * 15 bytes, whatever the caller has; within that it may not run past
 * avail. */
static int take(struct cursor *c, unsigned n, uint32_t *val)
{
    uint32_t v = 0;
    unsigned i;

    if (c->pos + n > MAX_INSN_LEN)
        return DECODE_TOOLONG;
    if (c->pos + n > c->avail)
        return DECODE_SHORT;
    for (i = 0; i < n; i++)
        v |= (uint32_t)c->bytes[c->pos + i] << (8 * i);
    c->pos += n;
    *val = v;
    return 0;
}

static uint32_t sign_extend(uint32_t v, unsigned n)
{
    if (n == 1)
        return (uint32_t)(int32_t)(int8_t)v;
    if (n == 2)
        return (uint32_t)(int32_t)(int16_t)v;
    return v;
}

static void reset(struct insn *in, int default32)
{
    in->len = 0;
    in->opsize = default32 ? 4 : 2;
    in->adsize = default32 ? 4 : 2;
    in->seg = -1;
    in->rep = 0;
    in->lock = 0;
    in->nprefix = 0;
    in->map = 0;
    in->op = 0;
    in->has_modrm = 0;
    in->modrm = 0;
    in->mod = 0;
    in->reg = 0;
    in->rm = 0;
    in->has_sib = 0;
    in->sib = 0;
    in->disp_len = 0;
    in->disp_off = 0;
    in->disp = 0;
    in->imm_len = 0;
    in->imm_off = 0;
    in->imm = 0;
    in->imm2 = 0;
    in->info = 0;
    in->flags = 0;
}

/* If b is a legacy prefix (SDM Vol. 2 §2.1.1), record it and return 1.
 * Any number in any order; within a kind the last one wins.  66 and 67
 * select the size that is not the default, however often they appear. */
static int prefix(struct insn *in, uint8_t b, int default32)
{
    switch (b) {
    case 0x26: in->seg = SEG_ES; return 1;
    case 0x2e: in->seg = SEG_CS; return 1;
    case 0x36: in->seg = SEG_SS; return 1;
    case 0x3e: in->seg = SEG_DS; return 1;
    case 0x64: in->seg = SEG_FS; return 1;
    case 0x65: in->seg = SEG_GS; return 1;
    case 0x66: in->opsize = default32 ? 2 : 4; return 1;
    case 0x67: in->adsize = default32 ? 2 : 4; return 1;
    case 0xf0: in->lock = 1; return 1;
    case 0xf2: in->rep = 0xf2; return 1;
    case 0xf3: in->rep = 0xf3; return 1;
    default:   return 0;
    }
}

/* SIB and displacement after a ModRM (SDM Vol. 2 §2.1.5, Table 2-1
 * 16-Bit Addressing Forms with the ModR/M Byte, Table 2-2 32-Bit
 * Addressing Forms with the ModR/M Byte, Table 2-3 with the SIB Byte). */
static int address(struct cursor *c, struct insn *in)
{
    uint32_t v;
    unsigned dlen = 0;
    int err;

    if (in->mod == 3 || (in->info->flags & D_CRDR))
        return 0;                       /* a register: nothing follows */

    if (in->adsize == 2) {
        if (in->mod == 1)
            dlen = 1;
        else if (in->mod == 2 || in->rm == 6)   /* mod 0, rm 6: [disp16] */
            dlen = 2;
    } else {
        if (in->rm == 4) {
            if ((err = take(c, 1, &v)) != 0)
                return err;
            in->has_sib = 1;
            in->sib = (uint8_t)v;
            if (in->mod == 0 && (v & 7) == 5)   /* no base: disp32 */
                dlen = 4;
        }
        if (in->mod == 1)
            dlen = 1;
        else if (in->mod == 2 || (in->mod == 0 && in->rm == 5))
            dlen = 4;
    }

    if (dlen) {
        in->disp_off = (uint8_t)c->pos;
        if ((err = take(c, dlen, &v)) != 0)
            return err;
        in->disp_len = (uint8_t)dlen;
        in->disp = (int32_t)sign_extend(v, dlen);
    }
    return 0;
}

/* The immediate, sized by its kind (SDM Vol. 2 §A.2.1, §A.2.2). */
static int immediate(struct cursor *c, struct insn *in)
{
    unsigned n1 = 0, n2 = 0;
    uint32_t v;
    int err;

    switch (in->info->imm) {
    case I_NONE: return 0;
    case I_B:    n1 = 1; break;
    case I_W:    n1 = 2; break;
    case I_Z:
    case I_V:    n1 = in->opsize; break;
    case I_JB:   n1 = 1; break;
    case I_JZ:   n1 = in->opsize; break;
    case I_AP:   n1 = in->opsize; n2 = 2; break;
    case I_O:    n1 = in->adsize; break;
    case I_WB:   n1 = 2; n2 = 1; break;
    }

    in->imm_off = (uint8_t)c->pos;
    if ((err = take(c, n1, &v)) != 0)
        return err;
    if (in->info->imm == I_JB || in->info->imm == I_JZ)
        v = sign_extend(v, n1);
    in->imm = v;
    if (n2) {
        if ((err = take(c, n2, &v)) != 0)
            return err;
        in->imm2 = v;
    }
    in->imm_len = (uint8_t)(n1 + n2);
    return 0;
}

/* Flags that depend on the operands rather than on the row alone: #UD
 * (D_INVALID, with D_ENDS as on the invalid rows) for a register operand
 * where the row needs memory or the reverse, and for a LOCK prefix that
 * the instruction does not allow. */
static uint32_t operand_flags(const struct insn *in)
{
    uint32_t f = in->info->flags;
    int mem = in->has_modrm && in->mod != 3 && !(f & D_CRDR);

    if ((f & D_MEMONLY) && !mem)
        f |= UD;
    if ((f & D_REGONLY) && mem)
        f |= UD;
    if (in->lock && !((in->info->pad & X_LOCK) && mem))
        f |= UD;                        /* LOCK on anything else is #UD */
    return f;
}

int decode(const uint8_t *bytes, unsigned avail, int default32, struct insn *out)
{
    struct cursor c = { bytes, avail, 0 };
    const struct opinfo *info;
    uint32_t b;
    int err;

    reset(out, default32);

    /* 1. Prefixes. */
    for (;;) {
        if ((err = take(&c, 1, &b)) != 0)
            return err;
        if (!prefix(out, (uint8_t)b, default32))
            break;
        out->nprefix++;
    }

    /* 2. Opcode, through the 0F, 0F 38 and 0F 3A escapes (§2.1.2). */
    info = &onebyte[b];
    if (b == 0x0f) {
        if ((err = take(&c, 1, &b)) != 0)
            return err;
        out->map = 1;
        info = &twobyte[b];
        if (b == 0x38 || b == 0x3a) {
            out->map = (b == 0x38) ? 2 : 3;
            info = (b == 0x38) ? &map0f38 : &map0f3a;
            if ((err = take(&c, 1, &b)) != 0)
                return err;
        }
    }
    out->op = (uint8_t)b;
    out->info = info;

    /* 3. ModRM; a group row hands over to the row its reg field picks. */
    if (info->flags & D_MODRM) {
        if ((err = take(&c, 1, &b)) != 0)
            return err;
        out->has_modrm = 1;
        out->modrm = (uint8_t)b;
        out->mod = (uint8_t)(b >> 6);
        out->reg = (uint8_t)((b >> 3) & 7);
        out->rm = (uint8_t)(b & 7);
        if (info->pad & X_GROUP)
            out->info = info = &groups[info->pad & X_GROUP][out->reg];

        /* 4. SIB and displacement. */
        if ((err = address(&c, out)) != 0)
            return err;
    }

    /* 5. Immediate. */
    if ((err = immediate(&c, out)) != 0)
        return err;

    out->len = (uint8_t)c.pos;
    out->flags = operand_flags(out);
    return out->len;
}
