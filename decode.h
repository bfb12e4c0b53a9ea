/*
 * decode.h -- the x86 instruction decoder's interface.
 *
 * One table row per opcode says how long the instruction is and what the
 * monitor cares about: is it privileged, sensitive, does it end a
 * translation block, does it load a segment register, which emulation
 * routine handles it when it cannot run IDENT.  The decoder itself is pure
 * code with no monitor state, so tests/decode_test.c runs it on the host.
 *
 * Hardware:   SDM Vol. 2, Chapter 2 (Instruction Format) and Appendix A
 *             (Opcode Map).
 * Runs in:    VMM (bt.c, emulate.c) and on the host (tests/).
 */
#ifndef DECODE_H
#define DECODE_H

#include <stdint.h>

/* Properties of an instruction, as flags in its table row. */
#define D_MODRM     (1u << 0)   /* a ModRM byte follows the opcode */
#define D_INVALID   (1u << 1)   /* #UD on our CPU (or not an opcode at all) */
#define D_PRIV      (1u << 2)   /* faults with #GP unless CPL = 0 */
#define D_IOPL      (1u << 3)   /* faults unless CPL <= IOPL (cli, sti, in, out, ins, outs) */
#define D_SENSITIVE (1u << 4)   /* reads or writes privileged state without faulting */
#define D_BRANCH    (1u << 5)   /* changes EIP other than by falling through */
#define D_ENDS      (1u << 6)   /* ends a translation block (branches, mode changes) */
#define D_SEGLOAD   (1u << 7)   /* loads a segment register (segtrack.c must know) */
#define D_SEGREAD   (1u << 8)   /* reads a segment selector (mov r/m,sreg; push sreg) */
#define D_STRING    (1u << 9)   /* string instruction: REP prefixes apply */
#define D_IO        (1u << 10)  /* port I/O */
#define D_STACK     (1u << 11)  /* implicitly pushes or pops through SS:ESP */
#define D_MEMONLY   (1u << 12)  /* ModRM must name memory (mod != 3), else #UD */
#define D_REGONLY   (1u << 13)  /* ModRM must name a register (mod == 3), else #UD */
#define D_X87       (1u << 14)  /* x87 escape (D8-DF) */
#define D_CRDR      (1u << 15)  /* mov to/from CRn/DRn: mod is ignored, always register */

/* Immediate operand kinds (SDM Vol. 2 §A.2.1, Codes for Addressing Method,
 * and §A.2.2, Codes for Operand Type). */
enum imm_kind {
    I_NONE = 0,
    I_B,        /* Ib: one byte */
    I_W,        /* Iw: two bytes (ret imm16, far ret imm16) */
    I_Z,        /* Iz: two or four bytes by operand size */
    I_V,        /* Iv: same as Iz on 32-bit CPUs (mov r, imm: B8-BF) */
    I_JB,       /* Jb: one-byte relative branch offset */
    I_JZ,       /* Jz: two- or four-byte relative offset by operand size */
    I_AP,       /* Ap: far pointer, offset (2 or 4 by operand size) + selector (2) */
    I_O,        /* Ob/Ov moffs: two or four bytes by *address* size */
    I_WB,       /* Iw then Ib: ENTER */
};

/* How emulate.c handles an instruction that cannot be copied IDENT.  The
 * names follow the instruction, not the reason: bt.c decides from the
 * flags above and the vCPU whether to copy or to call out. */
enum emu_kind {
    E_NONE = 0,     /* no emulation routine (copied IDENT, or #UD) */
    E_JCC,          /* 70-7F, 0F 80-8F */
    E_JMP,          /* E9, EB */
    E_CALL,         /* E8 */
    E_RET,          /* C3, C2 */
    E_RETF,         /* CB, CA */
    E_IRET,         /* CF */
    E_INT,          /* CD ib */
    E_INT3,         /* CC */
    E_INTO,         /* CE */
    E_INT1,         /* F1 (ICEBP) */
    E_LOOP,         /* E0-E2 */
    E_JCXZ,         /* E3 */
    E_JMPF,         /* EA */
    E_CALLF,        /* 9A */
    E_GRP5,         /* FF: /2 call r/m, /3 call far m, /4 jmp r/m, /5 jmp far m */
    E_PUSHF,        /* 9C */
    E_POPF,         /* 9D */
    E_CLI,          /* FA */
    E_STI,          /* FB */
    E_HLT,          /* F4 */
    E_IN,           /* E4, E5, EC, ED */
    E_OUT,          /* E6, E7, EE, EF */
    E_INS,          /* 6C, 6D */
    E_OUTS,         /* 6E, 6F */
    E_MOV_FROM_SR,  /* 8C */
    E_MOV_TO_SR,    /* 8E */
    E_PUSH_SR,      /* 06, 0E, 16, 1E, 0F A0, 0F A8 */
    E_POP_SR,       /* 07, 17, 1F, 0F A1, 0F A9 */
    E_LOAD_FAR,     /* C4 les, C5 lds, 0F B2 lss, 0F B4 lfs, 0F B5 lgs */
    E_GRP6,         /* 0F 00: sldt, str, lldt, ltr, verr, verw */
    E_GRP7,         /* 0F 01: sgdt, sidt, lgdt, lidt, smsw, lmsw, invlpg */
    E_LAR,          /* 0F 02 */
    E_LSL,          /* 0F 03 */
    E_CLTS,         /* 0F 06 */
    E_INVD,         /* 0F 08, 0F 09 (wbinvd) */
    E_MOV_CR,       /* 0F 20, 0F 22 */
    E_MOV_DR,       /* 0F 21, 0F 23 */
    E_WRMSR,        /* 0F 30 */
    E_RDTSC,        /* 0F 31 */
    E_RDMSR,        /* 0F 32 */
    E_RDPMC,        /* 0F 33 */
    E_SYSENTER,     /* 0F 34 */
    E_SYSEXIT,      /* 0F 35 */
    E_CPUID,        /* 0F A2 */
    E_RSM,          /* 0F AA */
    E_COUNT
};

/* One row of an opcode table. */
struct opinfo {
    const char *name;       /* mnemonic, for logs and translation dumps */
    uint8_t imm;            /* enum imm_kind */
    uint8_t emu;            /* enum emu_kind */
    uint16_t pad;
    uint32_t flags;         /* D_* */
};

/* A decoded instruction.  Offsets and lengths are in bytes from the first
 * prefix; the caller keeps the bytes. */
struct insn {
    uint8_t len;            /* total length, 1..15 */
    uint8_t opsize;         /* 2 or 4: operand size after 66h */
    uint8_t adsize;         /* 2 or 4: address size after 67h */
    int8_t  seg;            /* segment override: SEG_ES..SEG_GS, or -1 */
    uint8_t rep;            /* 0, 0xF2 (REPNE) or 0xF3 (REP/REPE) */
    uint8_t lock;           /* 1 if an F0 prefix was seen */
    uint8_t nprefix;        /* number of prefix bytes */
    uint8_t map;            /* 0 one-byte, 1 = 0F xx, 2 = 0F 38 xx, 3 = 0F 3A xx */
    uint8_t op;             /* the opcode byte within its map */
    uint8_t has_modrm, modrm, mod, reg, rm;
    uint8_t has_sib, sib;
    uint8_t disp_len;       /* 0, 1, 2 or 4 */
    uint8_t disp_off;       /* offset of the displacement within the instruction */
    int32_t disp;           /* sign-extended */
    uint8_t imm_len;        /* total immediate bytes (both parts for I_AP, I_WB) */
    uint8_t imm_off;        /* offset of the first immediate byte */
    uint32_t imm;           /* first immediate (sign-extended for I_JB/I_JZ) */
    uint32_t imm2;          /* second immediate: selector for I_AP, Ib for I_WB */
    const struct opinfo *info;  /* the row, after group resolution */
    uint32_t flags;         /* info->flags, plus D_SEGLOAD etc. that depend on ModRM */
};

/* Segment register numbers, in the order the ModRM reg field encodes them
 * for mov sreg (SDM Vol. 2, Table 3-? "Segment register" encoding). */
enum { SEG_ES = 0, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, NSEG };

/* Decode one instruction.
 *   bytes:     up to 15 bytes starting at the instruction
 *   avail:     how many of them are valid (fewer than 15 at the end of
 *              readable memory)
 *   default32: 1 if the code segment's D bit is set (32-bit code)
 * Returns the length (1..15), or a negative DECODE_* error. */
int decode(const uint8_t *bytes, unsigned avail, int default32, struct insn *out);

#define DECODE_SHORT   (-1)     /* ran past avail: need more bytes */
#define DECODE_TOOLONG (-2)     /* more than 15 bytes: #GP on the CPU */

#endif
