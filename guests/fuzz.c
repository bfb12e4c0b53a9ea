/*
 * fuzz -- a differential instruction fuzzer.  The guest writes seeded
 * random sequences of machine code, runs each one at ring 0 and at ring 3
 * from random registers, flags and memory, and prints one short digest
 * line per sequence of everything the sequence left behind.  Nothing is
 * checked here: the test is that bare QEMU and the monitor print the same
 * lines (tests/fuzz.sh, `make fuzz`).
 *
 * Tests:   integer ALU (ADD OR ADC SBB AND SUB XOR CMP in every form, INC
 *          DEC NEG NOT TEST, MUL IMUL in all three forms, DIV IDIV with
 *          operands chosen to divide and with random ones that raise #DE);
 *          shifts and rotates by 1, imm8 and CL, SHLD SHRD; DAA DAS AAA
 *          AAS AAM AAD (AAM 0: #DE); MOVS STOS LODS CMPS SCAS, byte, word
 *          and dword, with and without REP/REPE/REPNE, segment overrides,
 *          both directions; PUSH POP of registers, immediates, memory and
 *          segment registers, PUSHA POPA, PUSHF POPF (arithmetic flags and
 *          DF only), ENTER with nesting levels 0-4, LEAVE, CALL to the next
 *          instruction; LEA with any addressing form, 0x66 and 0x67;
 *          CLC STC CMC CLD STD LAHF SAHF SETcc CMOVcc; BT BTS BTR BTC
 *          (register and immediate offsets), BSF BSR; XCHG XADD CMPXCHG
 *          CMPXCHG8B (with and without LOCK); MOVZX MOVSX CBW CWDE CWD CDQ
 *          BSWAP XLAT; MOV in all forms and from segment registers; x87
 *          loads of constants, integers, BCD and reals, arithmetic,
 *          compares (also FCOMI and FCMOVcc), stores, FXCH, FNSTSW;
 *          forward branches (Jcc, JMP, JECXZ, LOOPcc) inside a sequence;
 *          the 0x66 prefix throughout; SMSW STR SLDT SGDT SIDT LAR LSL VERR
 *          VERW; and now and then INT3 INTO INT1 UD2 CLI STI and a LOCK
 *          that must raise #UD.  Memory operands use every ModRM and SIB
 *          form (disp8, disp32, base + index * scale, effective addresses
 *          that wrap around 2^32), all landing in one 4 KiB scratch area
 *          that straddles a page boundary.
 * Exercises: binary translation of ring-0 code instruction by instruction
 *          (docs/08-translation.md): IDENT copies, the inline sequences for
 *          PUSHF/POPF/CLI/STI/segment-register reads, CS and GS prefixes,
 *          the truncation checks of every addressing form, precise state
 *          at faults in translated code; direct execution of the same code
 *          at ring 3 (docs/03-direct.md) with every fault reflected through
 *          the guest's IDT; the emulator for SMSW, SGDT and friends under
 *          UMIP (docs/04-segments.md).
 * Monitor exits expected: ring 0: one dispatch miss and one or more
 *          translations per sequence (every sequence is new code), callouts
 *          for what the translator does not copy, faults raised in
 *          translated code; ring 3: one entry per batch of 128 sequences,
 *          a #GP exit for the SYS_EXIT at its end, one exit per faulting
 *          sequence (reflected to the guest and returned from with IRET),
 *          #GP exits for the UMIP-protected instructions; COM1 port I/O.
 *
 * Arguments (Multiboot command line): seed=N count=N first=N len=N
 * ring=0|3 verbose paging code=HEX -- see parse_args().
 *
 * How the cost is kept down under the monitor (a write to a page of
 * translated code traps; so does every COM1 byte and every ring change):
 *  - generated code lives in a 32 MiB ring of 256-byte slots, one slot per
 *    sequence index, that holds nothing else.  A batch of 128 sequences
 *    fills 8 fresh pages, so the generator's writes seldom meet a page the
 *    translator still traces (its cache fills and is flushed long before
 *    the ring wraps);
 *  - the harness code that enters a sequence and saves its state sits in a
 *    page of its own (.text.fz_harness), as do the data it writes;
 *  - ring 3 is entered once per batch; a fault costs one round trip;
 *  - one line of about 15 bytes per sequence, written 16 bytes per poll of
 *    the line status register.
 */
#include "guest.h"

/* ------------------------------------------------------------ layout */

/*
 * The scratch area: every memory operand, the stack included, lands in
 * these 4 KiB.  They straddle the page boundary at 0x402000 (accesses that
 * split across two pages) but no 64 KiB boundary, so that the 16-bit forms
 * of ENTER and LEAVE, which replace only BP, keep EBP a valid pointer.
 * The pages around it are left unmapped with `paging`, so that a generator
 * bug shows up as a #PF.
 */
#define SCR_BASE   0x00401800u
#define SCR_SIZE   0x1000u
#define SCR_END    (SCR_BASE + SCR_SIZE)
#define STK_LO     (SCR_BASE + 64)      /* ESP never goes lower: room for a ring-0 fault frame */

/* The ring of code slots, one per sequence index modulo RING_SLOTS. */
#define CODE_BASE  0x00800000u
#define SLOT_SIZE  256u
#define RING_SLOTS 0x20000u             /* 32 MiB */
#define NSLOT      128                  /* sequences per batch: 8 pages */
#define MAXGROUP   64                   /* most bytes one generated instruction and its set-up take */

#define NOFAULT    0xffffffffu

/* The arithmetic flags and DF: what POPF in a sequence may change, and
 * what the digest keeps of EFLAGS (IF differs between the rings; bit 1 is
 * always set). */
#define AFL (EFL_CF | EFL_PF | EFL_AF | EFL_ZF | EFL_SF | EFL_OF)
#define AFL_DF (AFL | EFL_DF)

/* ------------------------------------------------------------ the interface with the harness */

/*
 * The harness (assembly below) loads `in` into the CPU, jumps to in.eip,
 * and on the way back stores the CPU into `out`.  Offsets are spelled out
 * for the assembly and checked against the structures.
 */
struct regs {
    uint32_t r[8];              /* EAX ECX EDX EBX ESP EBP ESI EDI: ModRM order */
    uint32_t eflags, eip;
};

struct outstate {
    struct regs g;              /* g.eip: where a fault happened (0: none) */
    uint32_t vector, err, cs;   /* vector NOFAULT: the sequence ran to its end */
    uint16_t fsw, pad;          /* x87 status word */
    uint8_t st[2][10];          /* ST(0) and ST(1), as FSTP m80 stores them */
    uint32_t pad2;
};

struct fzdata {
    struct regs in;             /* offset 0 */
    struct outstate out;        /* offset 40 */
    uint32_t ctx_esp;           /* the harness's ESP while a sequence runs */
    uint32_t active;            /* 1 while a sequence runs: its faults are ours */
    /* The batch being run, written by the generator (ring 0), read by both rings. */
    struct regs init[NSLOT];
    uint32_t memseed[NSLOT];
    uint16_t codelen[NSLOT];
    uint32_t lo, hi;            /* slots to run */
    uint32_t bad_eflags;        /* runs that ended with reserved EFLAGS bits set */
    /* Results, [0] ring 0, [1] ring 3. */
    uint32_t dig[2][NSLOT], vec[2][NSLOT], err[2][NSLOT];
    char line[NSLOT * 48];
};

#define FZ_IN(i)    (4 * (i))
#define FZ_IN_EFL   32
#define FZ_IN_EIP   36
#define FZ_OUT(i)   (40 + 4 * (i))
#define FZ_OUT_EFL  72
#define FZ_OUT_EIP  76
#define FZ_OUT_VEC  80
#define FZ_OUT_ERR  84
#define FZ_OUT_CS   88
#define FZ_OUT_FSW  92
#define FZ_OUT_ST0  96
#define FZ_OUT_ST1  106
#define FZ_CTX      120
#define FZ_ACTIVE   124
_Static_assert(offsetof(struct fzdata, in.eflags) == FZ_IN_EFL, "harness offsets");
_Static_assert(offsetof(struct fzdata, in.eip) == FZ_IN_EIP, "harness offsets");
_Static_assert(offsetof(struct fzdata, out.g.r) == FZ_OUT(0), "harness offsets");
_Static_assert(offsetof(struct fzdata, out.g.eflags) == FZ_OUT_EFL, "harness offsets");
_Static_assert(offsetof(struct fzdata, out.g.eip) == FZ_OUT_EIP, "harness offsets");
_Static_assert(offsetof(struct fzdata, out.vector) == FZ_OUT_VEC, "harness offsets");
_Static_assert(offsetof(struct fzdata, out.err) == FZ_OUT_ERR, "harness offsets");
_Static_assert(offsetof(struct fzdata, out.cs) == FZ_OUT_CS, "harness offsets");
_Static_assert(offsetof(struct fzdata, out.fsw) == FZ_OUT_FSW, "harness offsets");
_Static_assert(offsetof(struct fzdata, out.st) == FZ_OUT_ST0, "harness offsets");
_Static_assert(offsetof(struct fzdata, ctx_esp) == FZ_CTX, "harness offsets");
_Static_assert(offsetof(struct fzdata, active) == FZ_ACTIVE, "harness offsets");

/* Page-aligned, so no code shares a page with anything the harness writes. */
struct fzdata fz ALIGNED(4096);

#define S_(x) #x
#define S(x) S_(x)
#define FZ(off) "fz+" S(off)

/*
 * The harness, in a page of its own.
 *
 * fz_run (called from C, at ring 0 or ring 3): saves the callee-saved
 * registers and ESP, resets the x87 (FNINIT: an empty stack, all
 * exceptions masked, SDM Vol. 2A, FINIT/FNINIT), loads EFLAGS and the
 * eight registers from fz.in and jumps to the sequence.  FNINIT only tags
 * the registers empty; what they held stays, and QEMU, unlike the SDM
 * (Vol. 1 §8.5.1.1, Stack Overflow or Underflow Exception), reads an
 * empty register's old contents instead of signalling underflow.  So
 * first eight FLDZ fill every physical register with +0 -- each push
 * moves TOP on to the next one -- and a second FNINIT empties the stack
 * again: every sequence starts from the same x87 bits, whatever ran
 * before it.  At ring 3, POPF leaves IF and IOPL alone (SDM Vol. 2B, POPF),
 * so the sequence runs with IF=1 there and IF=0 at ring 0.
 *
 * fz_epilogue: every slot ends with a JMP here.  MOV does not touch the
 * flags, so the registers are stored first, then the harness stack is
 * back and PUSHF takes EFLAGS as the sequence left them.
 *
 * fz_finish: the x87 status word and ST(0), ST(1) (FSTP m80 of an empty
 * register stores the indefinite QNaN: the invalid-operation exception is
 * masked), CLD for the C code, and back to fz_run's caller.
 *
 * The exception stubs, one per vector 0-31, 32 bytes apart (fz_stubs +
 * 32 * v): while no sequence is active they pass the exception to the
 * library's stub (an unexpected trap in the harness is reported there).
 * Otherwise they record the vector and the registers, and take the error
 * code (if the CPU pushed one: vectors 8, 10-14, 17, SDM Vol. 3A §6.13,
 * Error Code), EIP, CS and EFLAGS off the stack without pushing anything
 * themselves: at ring 0 the exception frame lands on the sequence's own
 * stack, inside the scratch area, and only the CPU's 12 or 16 bytes may
 * be written there, or the digest would depend on the stubs.  From ring 0
 * they go straight to fz_finish on the harness stack, dropping the frame
 * (nothing to IRET to).  From ring 3 the CPU switched to the TSS's ESP0
 * stack and pushed ESP and SS as well (SDM Vol. 3A §6.12.1); the stub
 * IRETs to fz_finish at ring 3 on the ring-3 harness stack.
 */
extern void fz_run(void);
extern char fz_epilogue[], fz_stubs[], isr_stubs[];

__asm__(
    ".pushsection .text.fz_harness, \"ax\", @progbits\n"
    ".p2align 12\n"
    ".globl fz_run\n"
    "fz_run:\n"
    "   pushl %ebp\n"
    "   pushl %ebx\n"
    "   pushl %esi\n"
    "   pushl %edi\n"
    "   movl %esp, " FZ(FZ_CTX) "\n"
    "   fninit\n"
    "   fldz\n   fldz\n   fldz\n   fldz\n   fldz\n   fldz\n   fldz\n   fldz\n"
    "   fninit\n"
    "   movl $1, " FZ(FZ_ACTIVE) "\n"
    "   pushl " FZ(FZ_IN_EFL) "\n"
    "   popfl\n"
    "   movl " FZ(FZ_IN(0)) ", %eax\n"
    "   movl " FZ(FZ_IN(1)) ", %ecx\n"
    "   movl " FZ(FZ_IN(2)) ", %edx\n"
    "   movl " FZ(FZ_IN(3)) ", %ebx\n"
    "   movl " FZ(FZ_IN(5)) ", %ebp\n"
    "   movl " FZ(FZ_IN(6)) ", %esi\n"
    "   movl " FZ(FZ_IN(7)) ", %edi\n"
    "   movl " FZ(FZ_IN(4)) ", %esp\n"
    "   jmp *" FZ(FZ_IN_EIP) "\n"

    ".globl fz_epilogue\n"
    "fz_epilogue:\n"
    "   movl %eax, " FZ(FZ_OUT(0)) "\n"
    "   movl %ecx, " FZ(FZ_OUT(1)) "\n"
    "   movl %edx, " FZ(FZ_OUT(2)) "\n"
    "   movl %ebx, " FZ(FZ_OUT(3)) "\n"
    "   movl %esp, " FZ(FZ_OUT(4)) "\n"
    "   movl %ebp, " FZ(FZ_OUT(5)) "\n"
    "   movl %esi, " FZ(FZ_OUT(6)) "\n"
    "   movl %edi, " FZ(FZ_OUT(7)) "\n"
    "   movl " FZ(FZ_CTX) ", %esp\n"
    "   pushfl\n"
    "   popl " FZ(FZ_OUT_EFL) "\n"
    "   movl $" S(NOFAULT) ", " FZ(FZ_OUT_VEC) "\n"
    "   movl $0, " FZ(FZ_OUT_ERR) "\n"
    "   movl $0, " FZ(FZ_OUT_EIP) "\n"
    "   movl $0, " FZ(FZ_OUT_CS) "\n"
    "fz_finish:\n"
    "   cld\n"
    "   fnstsw " FZ(FZ_OUT_FSW) "\n"
    "   fstpt " FZ(FZ_OUT_ST0) "\n"
    "   fstpt " FZ(FZ_OUT_ST1) "\n"
    "   fninit\n"
    "   movl $0, " FZ(FZ_ACTIVE) "\n"
    "   popl %edi\n"
    "   popl %esi\n"
    "   popl %ebx\n"
    "   popl %ebp\n"
    "   ret\n"

    /* A fault while a sequence runs; the stub stored the vector. */
    "fz_trap_err:\n"
    "   movl %eax, " FZ(FZ_OUT(0)) "\n"
    "   popl " FZ(FZ_OUT_ERR) "\n"
    "   jmp 1f\n"
    "fz_trap_noerr:\n"
    "   movl %eax, " FZ(FZ_OUT(0)) "\n"
    "   movl $0, " FZ(FZ_OUT_ERR) "\n"
    "1: movl %ecx, " FZ(FZ_OUT(1)) "\n"
    "   movl %edx, " FZ(FZ_OUT(2)) "\n"
    "   movl %ebx, " FZ(FZ_OUT(3)) "\n"
    "   movl %ebp, " FZ(FZ_OUT(5)) "\n"
    "   movl %esi, " FZ(FZ_OUT(6)) "\n"
    "   movl %edi, " FZ(FZ_OUT(7)) "\n"
    "   popl " FZ(FZ_OUT_EIP) "\n"
    "   popl " FZ(FZ_OUT_CS) "\n"
    "   popl " FZ(FZ_OUT_EFL) "\n"
    "   testl $3, " FZ(FZ_OUT_CS) "\n"
    "   jnz 2f\n"
    "   movl %esp, " FZ(FZ_OUT(4)) "\n"     /* ring 0: ESP as it was at the fault */
    "   movl " FZ(FZ_CTX) ", %esp\n"
    "   jmp fz_finish\n"
    "2: popl " FZ(FZ_OUT(4)) "\n"           /* ring 3: ESP and SS from the frame */
    "   addl $4, %esp\n"
    "   pushl $" S(SEG_UDATA) "\n"
    "   pushl " FZ(FZ_CTX) "\n"
    "   pushl $0x202\n"                     /* IF=1, DF=0 */
    "   pushl $" S(SEG_UCODE) "\n"
    "   pushl $fz_finish\n"
    "   iret\n"

    ".p2align 5\n"
    ".globl fz_stubs\n"
    "fz_stubs:\n"
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
    ".p2align 5\n"
    "   cmpl $0, " FZ(FZ_ACTIVE) "\n"
    "   je isr_stubs + 16 * \\v\n"
    "   movl $\\v, " FZ(FZ_OUT_VEC) "\n"
    ".if (\\v == 8) || (\\v == 10) || (\\v == 11) || (\\v == 12) || (\\v == 13) || (\\v == 14) || (\\v == 17)\n"
    "   jmp fz_trap_err\n"
    ".else\n"
    "   jmp fz_trap_noerr\n"
    ".endif\n"
    ".endr\n"
    ".p2align 12\n"
    ".popsection\n");

/* ------------------------------------------------------------ random numbers */

/* Marsaglia's xorshift32 (J. Stat. Software 8(14), 2003): the state must
 * not be 0. */
static inline uint32_t
xs(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* The 32-bit finalizer of MurmurHash3: every input bit affects every
 * output bit, so neighbouring indices give unrelated streams. */
static uint32_t
fmix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* Each sequence's randomness depends only on the seed and its index, so
 * first=N generates sequence N exactly as a run from 0 does.  Three
 * streams: the initial registers, the scratch memory, the code. */
#define STREAM_INIT 1
#define STREAM_MEM  2
#define STREAM_CODE 3
static uint32_t
stream(uint32_t seed, uint32_t idx, uint32_t which)
{
    uint32_t s = fmix(fmix(seed ^ 0x5eed0000u) ^ fmix(idx * 4 + which));
    return s ? s : 1;
}

/* One word of scratch memory: random, one in eight a small number (bit
 * offsets, counts and x87 integers want some of those). */
static inline uint32_t
mem_word(uint32_t *s)
{
    uint32_t w = xs(s);
    return (w & 0x70000000u) == 0 ? (w & 0xff) : w;
}

static void
scratch_fill(uint32_t s)
{
    uint32_t *p = (uint32_t *)SCR_BASE;
    for (uint32_t i = 0; i < SCR_SIZE / 4; i++)
        p[i] = mem_word(&s);
}

/* FNV-1a (Fowler, Noll, Vo), taken a 32-bit word at a time. */
#define FNV_BASIS 0x811c9dc5u
#define FNV_PRIME 0x01000193u
static inline uint32_t
fnv(uint32_t h, uint32_t w)
{
    return (h ^ w) * FNV_PRIME;
}

/* ------------------------------------------------------------ the generator: state and encoding */

/*
 * What the generator knows while it writes a sequence.  Register values
 * are random, so a memory operand gets its base and index registers set
 * with MOV imm32 just before the instruction (MOV does not change flags,
 * so the flags flow on from instruction to instruction).  Two registers
 * are followed exactly: ESP, which only pushes, pops, ENTER, LEAVE and
 * CALL move (nothing else is ever given ESP as a destination), and EBP,
 * whose value is known until something writes it.
 */
struct gen {
    uint8_t *p;                 /* next code byte */
    uint8_t *end;               /* end of the room (the slot less its final JMP) */
    uint32_t rng;
    uint32_t esp;               /* always exact */
    int ebp_known;
    uint32_t ebp;
    int fdepth;                 /* x87 registers in use, roughly: prefer loads when empty */
    /* The one forward branch that may be pending: it skips the next
     * jleft instructions.  While one is pending, no instruction may move
     * ESP (both paths must meet with the same ESP); at the target, EBP is
     * known only if both paths agree. */
    uint8_t *jsite;             /* its displacement; 0: none pending */
    int jwide;                  /* 1: rel8, 4: rel32 */
    int jleft;
    int jebp_known;
    uint32_t jebp;
};

static uint32_t rnd(struct gen *g) { return xs(&g->rng); }
static uint32_t rn(struct gen *g, uint32_t n) { return rnd(g) % n; }
static int one_in(struct gen *g, uint32_t n) { return rn(g, n) == 0; }

static void put1(struct gen *g, uint32_t v) { *g->p++ = (uint8_t)v; }
static void put2(struct gen *g, uint32_t v) { put1(g, v); put1(g, v >> 8); }
static void put4(struct gen *g, uint32_t v) { put2(g, v); put2(g, v >> 16); }

/* A random operand value: often one of the edge cases of the flags. */
static uint32_t
rval(struct gen *g)
{
    static const uint32_t edge[16] = {
        0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000,
        0x7fffffff, 0x80000000u, 0x80000001u, 0xfffffffeu, 0xffffffffu,
    };
    switch (rn(g, 4)) {
    case 0:  return edge[rn(g, 16)];
    case 1:  return rn(g, 64) - 32;
    default: return rnd(g);
    }
}

/* Registers: any (a source), or any but ESP (a destination). */
static int anyreg(struct gen *g) { return rn(g, 8); }
static int
dreg(struct gen *g)
{
    static const uint8_t notsp[7] = { 0, 1, 2, 3, 5, 6, 7 };
    return notsp[rn(g, 7)];
}

/* Note a write to register r of `size` bytes (8-bit registers 4-7 are
 * AH..BH and do not touch ESP or EBP). */
static void
clob(struct gen *g, int r, int size)
{
    if (size > 1 && r == 5)
        g->ebp_known = 0;
}

/* Set-up instructions: MOV imm to a register, flags untouched. */
static void
set_reg(struct gen *g, int r, uint32_t v)
{
    put1(g, 0xb8 + r);
    put4(g, v);
    if (r == 5) {
        g->ebp_known = 1;
        g->ebp = v;
    }
}

static void
set_reg16(struct gen *g, int r, uint32_t v)
{
    put1(g, 0x66);
    put1(g, 0xb8 + r);
    put2(g, v);
    if (r == 5 && g->ebp_known)
        g->ebp = (g->ebp & 0xffff0000u) | (v & 0xffff);
}

static void
set_reg8(struct gen *g, int r8, uint32_t v)
{
    put1(g, 0xb0 + r8);
    put1(g, v);
}

/* Legacy prefixes of one instruction, written in a random order (SDM
 * Vol. 2A §2.1.1: the order of prefixes from different groups does not
 * matter). */
struct pfx {
    uint8_t b[4];
    int n;
};

static void
pfx_add(struct pfx *x, uint8_t b)
{
    if (x->n < 4)
        x->b[x->n++] = b;
}

/* Operand size v: 16 bits (a 0x66 prefix) one time in four. */
static int
vsize(struct gen *g, struct pfx *x)
{
    if (one_in(g, 4)) {
        pfx_add(x, 0x66);
        return 2;
    }
    return 4;
}

/* A ModRM operand: a register, or memory with its encoding. */
struct ea {
    int isreg, reg;
    uint8_t mod, rm, sib, has_sib, dsize, seg;
    uint32_t disp;
};

/* Write one instruction: prefixes, nop opcode bytes (op's high byte
 * first), ModRM (if e), SIB, displacement, an immediate of isz bytes. */
static void
emit(struct gen *g, const struct pfx *x, int nop, uint32_t op, const struct ea *e,
     int reg, int isz, uint32_t imm)
{
    uint8_t pre[6];
    int n = 0;
    for (int i = 0; i < x->n; i++)
        pre[n++] = x->b[i];
    if (e && !e->isreg && e->seg)
        pre[n++] = e->seg;
    for (int i = n - 1; i > 0; i--) {
        int j = rn(g, i + 1);
        uint8_t t = pre[i];
        pre[i] = pre[j];
        pre[j] = t;
    }
    for (int i = 0; i < n; i++)
        put1(g, pre[i]);
    for (int i = nop - 1; i >= 0; i--)
        put1(g, op >> (8 * i));
    if (e) {
        if (e->isreg) {
            put1(g, 0xc0 | (reg << 3) | e->reg);
        } else {
            put1(g, (e->mod << 6) | (reg << 3) | e->rm);
            if (e->has_sib)
                put1(g, e->sib);
            if (e->dsize == 1)
                put1(g, e->disp);
            else if (e->dsize == 4)
                put4(g, e->disp);
        }
    }
    if (isz == 1)
        put1(g, imm);
    else if (isz == 2)
        put2(g, imm);
    else if (isz == 4)
        put4(g, imm);
}

/* Flags for memory operands. */
#define M_WRITE 1       /* written: never a CS override (seg_override) */
#define M_POP   2       /* POP to memory: an ESP base is read after the increment */
#define M_NOSEG 4       /* no segment override */

/* A segment override, one time in five: ES CS SS DS FS GS are all flat
 * 4 GiB segments in this guest, at both rings. */
static uint8_t
seg_override(struct gen *g, int flags)
{
    static const uint8_t segs[6] = { 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65 };
    if ((flags & M_NOSEG) || !one_in(g, 5))
        return 0;
    uint8_t s = segs[rn(g, 6)];
    /* Never a store through CS: the SDM has it #GP (a code segment is not
     * writable), QEMU's TCG does not check segment access rights and
     * lets it through, and the monitor's emulator (for the instructions
     * it emulates: SMSW, SGDT, SLDT, MOV from a segment register, ...)
     * follows the SDM.  Like a segment-limit check (guests/README.md),
     * that is a difference between QEMU and the CPU it models, which no
     * guest outcome here may depend on. */
    if (s == 0x2e && (flags & M_WRITE))
        s = 0x3e;
    return s;
}

/* A register the set-up may load: not ESP, not in `avoid`. */
static int
setup_reg(struct gen *g, uint32_t avoid)
{
    for (int tries = 0; tries < 16; tries++) {
        int r = rn(g, 8);
        if (r != 4 && !(avoid & (1u << r)))
            return r;
    }
    return -1;
}

/* An index value: small, or anything (the product wraps around 2^32 and
 * the base makes up for it). */
static uint32_t
index_value(struct gen *g)
{
    return one_in(g, 3) ? rnd(g) : rn(g, 64);
}

static uint32_t
disp_value(struct gen *g, int dsize)
{
    if (dsize == 1)
        return (uint32_t)(int32_t)(int8_t)rnd(g);
    if (dsize == 4)
        return one_in(g, 2) ? rnd(g) : rn(g, 512) - 256;
    return 0;
}

/*
 * A memory operand whose effective address lands in [lo, hi] (hi: the
 * highest first byte the operand may have).  Picks a target, a form
 * (SDM Vol. 2A §2.1.5, Tables 2-2 and 2-3: disp32 alone, [reg], [reg +
 * disp8/32], SIB with or without base, index and displacement), and
 * solves for the register values and the displacement, writing the
 * set-up MOVs.  ESP as a base is used as it is, EBP too if known.  The
 * registers in `avoid` are neither set up nor used as they are (the
 * instruction needs them for something else).  With M_POP, an ESP base counts popsize bytes higher.
 */
static void
pick_mem_in(struct gen *g, struct ea *e, uint32_t lo, uint32_t hi, int flags,
            uint32_t avoid, int popsize)
{
    uint32_t t;
    memset(e, 0, sizeof *e);
    lo += 8;                    /* room to round the target down to a multiple of the scale */
    if (one_in(g, 4) && g->esp >= lo + 32 && g->esp + 32 <= hi)
        t = g->esp - 32 + rn(g, 64);                    /* near the stack */
    else
        t = lo + rn(g, hi - lo + 1);
    if (one_in(g, 2) && (t & ~3u) >= lo)
        t &= ~3u;

    uint32_t espval = g->esp + ((flags & M_POP) ? popsize : 0);
    int form = rn(g, 8), base = -1, index = -1, s = 0, fixed = 0;
    uint32_t bval = 0;
    if (form == 0) {                                    /* disp32 */
        e->mod = 0;
        e->rm = 5;
    } else if (form <= 3) {                             /* [base], [base+d8], [base+d32] */
        e->mod = form - 1;
        if (e->mod > 0 && g->ebp_known && !(avoid & (1u << 5)) && !one_in(g, 3)) {
            base = 5;
            fixed = 1;
            bval = g->ebp;
        } else {
            base = setup_reg(g, avoid | (e->mod == 0 ? 1u << 5 : 0));
            if (base < 0) {
                e->mod = 0;
                e->rm = 5;
            }
        }
        if (base >= 0)
            e->rm = base;
    } else {                                            /* SIB */
        e->mod = rn(g, 3);
        e->rm = 4;
        e->has_sib = 1;
        s = rn(g, 4);
        int b = rn(g, 8), i = rn(g, 8);
        if (b == 4) {
            base = 4;
            fixed = 1;
            bval = espval;
        } else if (b == 5 && e->mod == 0) {
            base = -1;                                  /* no base: disp32 */
        } else if (b == 5 && g->ebp_known && !(avoid & (1u << 5)) && !one_in(g, 3)) {
            base = 5;
            fixed = 1;
            bval = g->ebp;
        } else if (!(avoid & (1u << b))) {
            base = b;
        } else {
            b = 4;                                      /* fall back to ESP */
            base = 4;
            fixed = 1;
            bval = espval;
        }
        if (i != 4 && (avoid & (1u << i)))
            i = 4;
        if (fixed && i == base)
            i = 4;                                      /* setting it would move the fixed base */
        index = i == 4 ? -1 : i;
        e->sib = (uint8_t)((s << 6) | (i << 3) | b);
    }
    e->dsize = e->mod == 1 ? 1 : e->mod == 2 ? 4 : (e->rm == 5 || (e->has_sib && base < 0)) ? 4 : 0;

    uint32_t d = disp_value(g, e->dsize), x = 0;
    if (base < 0) {                                     /* disp32 [+ index * scale] */
        if (index >= 0) {
            x = index_value(g);
            set_reg(g, index, x);
        }
        d = t - (x << s);
    } else if (!fixed) {                                /* the base absorbs everything */
        if (index == base) {
            if (e->dsize != 4) {                        /* [r + r*2^s + disp32] */
                e->mod = 2;
                e->dsize = 4;
            }
            x = index_value(g);
            d = t - x - (x << s);
            set_reg(g, base, x);
        } else {
            if (index >= 0) {
                x = index_value(g);
                set_reg(g, index, x);
            }
            set_reg(g, base, t - (x << s) - d);
        }
    } else if (index >= 0) {                            /* fixed base, index set up */
        if (e->dsize == 1)
            d = (uint32_t)((int32_t)rn(g, 249) - 128);  /* leaves room for the remainder */
        uint32_t rem = t - bval - d;
        t -= rem & ((1u << s) - 1);
        rem = t - bval - d;
        x = rem >> s;
        if (s && one_in(g, 4))
            x |= rnd(g) << (32 - s);                    /* high bits the scaling shifts out */
        set_reg(g, index, x);
    } else {                                            /* fixed base alone */
        uint32_t a = bval + d;
        if (e->dsize == 4 || a < lo - 8 || a > hi) {
            if (e->dsize != 4) {
                e->mod = 2;
                e->dsize = 4;
            }
            d = t - bval;
        }
    }
    e->disp = d;
    e->seg = seg_override(g, flags);
}

static void
pick_mem(struct gen *g, struct ea *e, int size, int flags, uint32_t avoid)
{
    pick_mem_in(g, e, SCR_BASE, SCR_END - size, flags, avoid, 0);
}

/* A register (half the time) or memory operand of `size` bytes. */
static void
pick_rm(struct gen *g, struct ea *e, int size, int flags, uint32_t avoid)
{
    if (one_in(g, 2)) {
        memset(e, 0, sizeof *e);
        e->isreg = 1;
        e->reg = (flags & M_WRITE) && size > 1 ? dreg(g) : anyreg(g);
    } else {
        pick_mem(g, e, size, flags, avoid);
    }
}

/* LOCK, one time in six, where it is allowed: a memory destination of a
 * read-modify-write instruction (SDM Vol. 2A, LOCK). */
static void
lock_maybe(struct gen *g, struct pfx *x, const struct ea *e, int lockable)
{
    if (lockable && !e->isreg && one_in(g, 6))
        pfx_add(x, 0xf0);
}

/* ------------------------------------------------------------ the generator: instruction classes */

/*
 * Each class writes one instruction (with its set-up) and returns 1, or
 * returns 0 if it cannot here (the stack has no room, a branch is
 * pending); the generator then undoes whatever it wrote.  Opcodes are
 * from SDM Vol. 2, Appendix A (Tables for the groups).
 */
static void patch_branch(struct gen *g);

static uint32_t
imm_of(struct gen *g, int isz)
{
    uint32_t v = rval(g);
    return isz == 1 ? (v & 0xff) : isz == 2 ? (v & 0xffff) : v;
}

/* ADD OR ADC SBB AND SUB XOR CMP: 00-3D (low 3 bits: Eb,Gb Ev,Gv Gb,Eb
 * Gv,Ev AL,Ib eAX,Iz) and group 1 (80 81 83, and 82, the 8-bit alias of
 * 80 that 32-bit mode still decodes). */
static int
c_alu(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int k = rn(g, 8), wr = k != 7, form = rn(g, 10), sz, r;
    switch (form) {
    case 0: case 1:                             /* E is the destination */
        sz = form ? vsize(g, &x) : 1;
        pick_rm(g, &e, sz, wr ? M_WRITE : 0, 0);
        lock_maybe(g, &x, &e, wr);
        emit(g, &x, 1, 8 * k + form, &e, anyreg(g), 0, 0);
        if (wr && e.isreg)
            clob(g, e.reg, sz);
        return 1;
    case 2: case 3:                             /* G is */
        sz = form == 3 ? vsize(g, &x) : 1;
        r = sz > 1 && wr ? dreg(g) : anyreg(g);
        pick_rm(g, &e, sz, 0, 0);
        emit(g, &x, 1, 8 * k + form, &e, r, 0, 0);
        if (wr)
            clob(g, r, sz);
        return 1;
    case 4:                                     /* AL, imm8 */
        emit(g, &x, 1, 8 * k + 4, 0, 0, 1, imm_of(g, 1));
        return 1;
    case 5:                                     /* eAX, imm16/32 */
        sz = vsize(g, &x);
        emit(g, &x, 1, 8 * k + 5, 0, 0, sz, imm_of(g, sz));
        return 1;
    default: {
        int op = form == 6 ? 0x80 : form == 7 ? 0x81 : form == 8 ? 0x83 : one_in(g, 3) ? 0x82 : 0x80;
        int isz;
        sz = (op == 0x81 || op == 0x83) ? vsize(g, &x) : 1;
        isz = op == 0x81 ? sz : 1;
        pick_rm(g, &e, sz, wr ? M_WRITE : 0, 0);
        lock_maybe(g, &x, &e, wr);
        emit(g, &x, 1, op, &e, k, isz, imm_of(g, isz));
        if (wr && e.isreg)
            clob(g, e.reg, sz);
        return 1;
    }
    }
}

/* MOV: 88-8C, A0-A3 (moffs), B0-BF, C6 C7. */
static int
c_mov(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int sz, r;
    switch (rn(g, 11)) {
    case 0: case 1:                             /* 88 Eb,Gb / 89 Ev,Gv */
        sz = one_in(g, 3) ? 1 : vsize(g, &x);
        pick_rm(g, &e, sz, M_WRITE, 0);
        emit(g, &x, 1, sz == 1 ? 0x88 : 0x89, &e, anyreg(g), 0, 0);
        if (e.isreg)
            clob(g, e.reg, sz);
        return 1;
    case 2: case 3:                             /* 8A Gb,Eb / 8B Gv,Ev */
        sz = one_in(g, 3) ? 1 : vsize(g, &x);
        r = sz == 1 ? anyreg(g) : dreg(g);
        pick_rm(g, &e, sz, 0, 0);
        emit(g, &x, 1, sz == 1 ? 0x8a : 0x8b, &e, r, 0, 0);
        clob(g, r, sz);
        return 1;
    case 4:                                     /* C6 /0 Eb,Ib / C7 /0 Ev,Iz */
        sz = one_in(g, 3) ? 1 : vsize(g, &x);
        pick_rm(g, &e, sz, M_WRITE, 0);
        emit(g, &x, 1, sz == 1 ? 0xc6 : 0xc7, &e, 0, sz, imm_of(g, sz));
        if (e.isreg)
            clob(g, e.reg, sz);
        return 1;
    case 5:                                     /* B0+r Ib */
        emit(g, &x, 1, 0xb0 + anyreg(g), 0, 0, 1, imm_of(g, 1));
        return 1;
    case 6:                                     /* B8+r Iv */
        sz = vsize(g, &x);
        r = dreg(g);
        emit(g, &x, 1, 0xb8 + r, 0, 0, sz, imm_of(g, sz));
        clob(g, r, sz);
        return 1;
    case 7: case 8: {                           /* A0-A3: AL/eAX <-> moffs32 */
        int store = rn(g, 2), op;
        sz = one_in(g, 3) ? 1 : vsize(g, &x);
        op = 0xa0 + 2 * store + (sz > 1);
        uint8_t sg = seg_override(g, store ? M_WRITE : 0);
        if (sg)
            pfx_add(&x, sg);
        emit(g, &x, 1, op, 0, 0, 4, SCR_BASE + rn(g, SCR_SIZE - sz + 1));
        return 1;
    }
    default: {                                  /* 8C Ev,Sreg: ES CS SS DS FS GS */
        int sr = rn(g, 6);
        if (one_in(g, 2)) {
            memset(&e, 0, sizeof e);
            e.isreg = 1;
            e.reg = dreg(g);
            sz = vsize(g, &x);
            clob(g, e.reg, sz);
        } else {
            pick_mem(g, &e, 2, M_WRITE, 0);     /* always a 16-bit store */
            if (one_in(g, 4))
                pfx_add(&x, 0x66);
        }
        emit(g, &x, 1, 0x8c, &e, sr, 0, 0);
        return 1;
    }
    }
}

/* INC DEC: 40-4F, FE /0 /1, FF /0 /1. */
static int
c_incdec(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 3), sz;
    if (f == 0) {
        sz = vsize(g, &x);
        int r = dreg(g);
        emit(g, &x, 1, 0x40 + 8 * rn(g, 2) + r, 0, 0, 0, 0);
        clob(g, r, sz);
        return 1;
    }
    sz = f == 1 ? 1 : vsize(g, &x);
    pick_rm(g, &e, sz, M_WRITE, 0);
    lock_maybe(g, &x, &e, 1);
    emit(g, &x, 1, sz == 1 ? 0xfe : 0xff, &e, rn(g, 2), 0, 0);
    if (e.isreg)
        clob(g, e.reg, sz);
    return 1;
}

/* TEST NOT NEG: F6/F7 /0 /2 /3, 84 85, A8 A9. */
static int
c_unary(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 5), sz = one_in(g, 3) ? 1 : vsize(g, &x);
    switch (f) {
    case 0:                                     /* TEST E, imm */
        pick_rm(g, &e, sz, 0, 0);
        emit(g, &x, 1, sz == 1 ? 0xf6 : 0xf7, &e, 0, sz, imm_of(g, sz));
        return 1;
    case 1: case 2:                             /* NOT, NEG */
        pick_rm(g, &e, sz, M_WRITE, 0);
        lock_maybe(g, &x, &e, 1);
        emit(g, &x, 1, sz == 1 ? 0xf6 : 0xf7, &e, f + 1, 0, 0);
        if (e.isreg)
            clob(g, e.reg, sz);
        return 1;
    case 3:                                     /* TEST E, G */
        pick_rm(g, &e, sz, 0, 0);
        emit(g, &x, 1, sz == 1 ? 0x84 : 0x85, &e, anyreg(g), 0, 0);
        return 1;
    default:                                    /* TEST AL/eAX, imm */
        emit(g, &x, 1, sz == 1 ? 0xa8 : 0xa9, 0, 0, sz, imm_of(g, sz));
        return 1;
    }
}

static int32_t
sext(uint32_t v, int bits)
{
    return (int32_t)(v << (32 - bits)) >> (32 - bits);
}

/*
 * MUL IMUL DIV IDIV: F6/F7 /4-/7.  Three times in four a division gets
 * operands that divide: a divisor d, a quotient q that fits and a
 * remainder r with |r| < |d| and the dividend's sign (DIV and IDIV
 * truncate toward zero, SDM Vol. 2A, IDIV), dividend = q * d + r.  The
 * divisor is written to its register or memory with MOV, the dividend to
 * (E)DX:(E)AX or AX.  The fourth time the operands are random and #DE is
 * likely.
 */
static int
c_muldiv(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int op = 4 + rn(g, 4), sz = one_in(g, 3) ? 1 : vsize(g, &x);
    int fit = op >= 6 && !one_in(g, 4), bits = 8 * sz;
    if (!fit) {
        pick_rm(g, &e, sz, 0, 0);
        emit(g, &x, 1, sz == 1 ? 0xf6 : 0xf7, &e, op, 0, 0);
        return 1;
    }
    /* The divisor is neither in the dividend's registers nor addressed
     * through them: they are set after it. */
    if (one_in(g, 2)) {
        static const uint8_t r8[4] = { 1, 3, 5, 7 };            /* CL BL CH BH */
        static const uint8_t r32[5] = { 1, 3, 5, 6, 7 };        /* ECX EBX EBP ESI EDI */
        memset(&e, 0, sizeof e);
        e.isreg = 1;
        e.reg = sz == 1 ? r8[rn(g, 4)] : r32[rn(g, 5)];
    } else {
        pick_mem(g, &e, sz, M_WRITE, (1u << 0) | (1u << 2));
    }
    uint32_t mask = bits == 32 ? 0xffffffffu : (1u << bits) - 1, d;
    int64_t dividend;
    do
        d = (one_in(g, 2) ? rn(g, 16) : rnd(g)) & mask;
    while (d == 0);
    if (op == 6) {                              /* unsigned */
        uint32_t q = rnd(g) & mask, r = rnd(g) % d;
        dividend = (int64_t)((uint64_t)q * d + r);
    } else {                                    /* signed */
        int32_t sd = sext(d, bits), sq = sext(rnd(g), bits);
        uint32_t ad = sd < 0 ? -(uint32_t)sd : (uint32_t)sd;
        int64_t prod = (int64_t)sq * sd;
        int64_t r = (int64_t)(rnd(g) % ad);
        if (prod < 0 || (prod == 0 && one_in(g, 2)))
            r = -r;
        dividend = prod + r;
    }
    if (e.isreg) {
        if (sz == 1)
            set_reg8(g, e.reg, d);
        else if (sz == 2)
            set_reg16(g, e.reg, d);
        else
            set_reg(g, e.reg, d);
    } else {
        struct pfx y = { { 0 }, 0 };
        if (sz == 2)
            pfx_add(&y, 0x66);
        emit(g, &y, 1, sz == 1 ? 0xc6 : 0xc7, &e, 0, sz, d);
    }
    uint64_t u = (uint64_t)dividend;
    if (sz == 1) {
        set_reg16(g, 0, (uint32_t)u);
    } else if (sz == 2) {
        set_reg16(g, 2, (uint32_t)(u >> 16));
        set_reg16(g, 0, (uint32_t)u);
    } else {
        set_reg(g, 2, (uint32_t)(u >> 32));
        set_reg(g, 0, (uint32_t)u);
    }
    emit(g, &x, 1, sz == 1 ? 0xf6 : 0xf7, &e, op, 0, 0);
    return 1;
}

/* IMUL Gv,Ev (0F AF), Gv,Ev,Iz (69), Gv,Ev,Ib (6B). */
static int
c_imul(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 3), sz = vsize(g, &x), r = dreg(g);
    pick_rm(g, &e, sz, 0, 0);
    if (f == 0)
        emit(g, &x, 2, 0x0faf, &e, r, 0, 0);
    else if (f == 1)
        emit(g, &x, 1, 0x69, &e, r, sz, imm_of(g, sz));
    else
        emit(g, &x, 1, 0x6b, &e, r, 1, imm_of(g, 1));
    clob(g, r, sz);
    return 1;
}

/* ROL ROR RCL RCR SHL SHR SAR (group 2, /6 left out: no mnemonic in the
 * SDM) by imm8 (C0 C1), by 1 (D0 D1), by CL (D2 D3). */
static int
c_shift(struct gen *g)
{
    static const uint8_t ops[7] = { 0, 1, 2, 3, 4, 5, 7 };
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 3), sz = one_in(g, 3) ? 1 : vsize(g, &x), avoid = 0;
    int opc = (f == 0 ? 0xc0 : f == 1 ? 0xd0 : 0xd2) + (sz > 1);
    if (f == 2 && one_in(g, 2)) {
        set_reg8(g, 1, one_in(g, 4) ? rnd(g) : rn(g, 40));     /* CL */
        avoid = 1u << 1;
    }
    pick_rm(g, &e, sz, M_WRITE, avoid);
    emit(g, &x, 1, opc, &e, ops[rn(g, 7)], f == 0, one_in(g, 4) ? rnd(g) & 0xff : rn(g, 40));
    if (e.isreg)
        clob(g, e.reg, sz);
    return 1;
}

/* SHLD SHRD by imm8 and by CL: 0F A4 A5 AC AD. */
static int
c_shxd(struct gen *g)
{
    static const uint16_t ops[4] = { 0x0fa4, 0x0fa5, 0x0fac, 0x0fad };
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 4), sz = vsize(g, &x);
    pick_rm(g, &e, sz, M_WRITE, 0);
    emit(g, &x, 2, ops[f], &e, anyreg(g), (f & 1) ? 0 : 1, one_in(g, 4) ? rnd(g) & 0xff : rn(g, 40));
    if (e.isreg)
        clob(g, e.reg, sz);
    return 1;
}

/* DAA DAS AAA AAS AAM AAD (AAM 0 raises #DE, SDM Vol. 2A, AAM). */
static int
c_bcd(struct gen *g)
{
    static const uint8_t ops[6] = { 0x27, 0x2f, 0x37, 0x3f, 0xd4, 0xd5 };
    int op = ops[rn(g, 6)];
    put1(g, op);
    if (op >= 0xd4)
        put1(g, !one_in(g, 4) ? 10 : one_in(g, 6) ? 0 : rnd(g));
    return 1;
}

/*
 * MOVS CMPS STOS LODS SCAS (A4-AF), byte, word and dword, alone or with
 * REP (F3) or, for CMPS and SCAS, REPNE (F2).  ESI, EDI and ECX are set up
 * so that up to ECX elements in either direction stay in the scratch
 * area (DF is whatever the flags are).  A segment override names the
 * source segment (DS:ESI); ES:EDI cannot be overridden and the prefix is
 * then ignored (SDM Vol. 2A §3.3 string instructions, MOVS).
 */
static int
c_string(struct gen *g)
{
    static const uint8_t ops[5] = { 0xa4, 0xa6, 0xaa, 0xac, 0xae };
    struct pfx x = { { 0 }, 0 };
    int k = rn(g, 5), op = ops[k], w = rn(g, 3), size = w == 0 ? 1 : w == 1 ? 2 : 4;
    int uses_si = op == 0xa4 || op == 0xa6 || op == 0xac;
    int uses_di = op != 0xac;
    int rep = rn(g, 3);
    uint32_t cnt = 1;
    if (rep) {
        cnt = one_in(g, 8) ? 0 : one_in(g, 4) ? rn(g, 33) : rn(g, 9);
        pfx_add(&x, (rep == 2 && (op == 0xa6 || op == 0xae)) ? 0xf2 : 0xf3);
    }
    if (w == 1)
        pfx_add(&x, 0x66);
    if (one_in(g, 3)) {
        static const uint8_t segs[6] = { 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65 };
        pfx_add(&x, segs[rn(g, 6)]);
    }
    uint32_t span = cnt * size + 8, lo = SCR_BASE + span, hi = SCR_END - span - size;
    uint32_t si = lo + rn(g, hi - lo + 1), di = lo + rn(g, hi - lo + 1);
    if (op == 0xa4 && one_in(g, 3)) {           /* overlapping source and destination */
        di = si + (rn(g, 17) - 8) * size;
        if (di < lo || di > hi)
            di = si;
    }
    if (uses_si)
        set_reg(g, 6, si);
    if (uses_di)
        set_reg(g, 7, di);
    if (rep)
        set_reg(g, 1, cnt);
    emit(g, &x, 1, op + (size > 1), 0, 0, 0, 0);
    return 1;
}

/* Can the stack take n more bytes, or give back n? */
static int can_push(struct gen *g, uint32_t n) { return g->esp >= STK_LO + n; }
static int can_pop(struct gen *g, uint32_t n) { return g->esp + n <= SCR_END; }

/*
 * PUSH and POP: registers (50-5F; PUSH ESP pushes the value before the
 * push), immediates (6A 68), memory (FF /6, 8F /0: an ESP base is read
 * after POP has incremented ESP, SDM Vol. 2B, POP), PUSHA POPA (60 61),
 * segment registers (06 0E 16 1E 0F A0 0F A8), and CALL to the next
 * instruction (E8 0), which pushes its own address.
 */
static int
c_stack(struct gen *g)
{
    static const uint16_t pushseg[6] = { 0x06, 0x0e, 0x16, 0x1e, 0x0fa0, 0x0fa8 };
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 11), osz = 4, r;
    if (f != 10 && one_in(g, 6)) {
        pfx_add(&x, 0x66);
        osz = 2;
    }
    switch (f) {
    case 0:                                     /* PUSH r */
        if (!can_push(g, osz))
            return 0;
        emit(g, &x, 1, 0x50 + anyreg(g), 0, 0, 0, 0);
        g->esp -= osz;
        return 1;
    case 1: case 2:                             /* POP r */
        if (!can_pop(g, osz))
            return 0;
        r = dreg(g);
        emit(g, &x, 1, 0x58 + r, 0, 0, 0, 0);
        g->esp += osz;
        clob(g, r, osz);
        return 1;
    case 3:                                     /* PUSH imm8 (sign-extended), PUSH imm */
        if (!can_push(g, osz))
            return 0;
        if (one_in(g, 2))
            emit(g, &x, 1, 0x6a, 0, 0, 1, imm_of(g, 1));
        else
            emit(g, &x, 1, 0x68, 0, 0, osz, imm_of(g, osz));
        g->esp -= osz;
        return 1;
    case 4:                                     /* PUSH m */
        if (!can_push(g, osz))
            return 0;
        pick_mem(g, &e, osz, 0, 0);
        emit(g, &x, 1, 0xff, &e, 6, 0, 0);
        g->esp -= osz;
        return 1;
    case 5:                                     /* POP m */
        if (!can_pop(g, osz))
            return 0;
        pick_mem_in(g, &e, SCR_BASE, SCR_END - osz, M_WRITE | M_POP, 0, osz);
        emit(g, &x, 1, 0x8f, &e, 0, 0, 0);
        g->esp += osz;
        return 1;
    case 6:                                     /* PUSHA */
        if (!can_push(g, 8 * osz))
            return 0;
        emit(g, &x, 1, 0x60, 0, 0, 0, 0);
        g->esp -= 8 * osz;
        return 1;
    case 7:                                     /* POPA: EBP from the stack */
        if (!can_pop(g, 8 * osz))
            return 0;
        emit(g, &x, 1, 0x61, 0, 0, 0, 0);
        g->esp += 8 * osz;
        g->ebp_known = 0;
        return 1;
    case 8: case 9: {                           /* PUSH Sreg */
        uint16_t op = pushseg[rn(g, 6)];
        if (!can_push(g, osz))
            return 0;
        emit(g, &x, op > 0xff ? 2 : 1, op, 0, 0, 0, 0);
        g->esp -= osz;
        return 1;
    }
    default:                                    /* CALL +0 (never with 0x66: EIP would be cut to 16 bits) */
        if (!can_push(g, 4))
            return 0;
        put1(g, 0xe8);
        put4(g, 0);
        g->esp -= 4;
        return 1;
    }
}

/*
 * ENTER imm16, imm8 and LEAVE (C8, C9), 32- and 16-bit.  ENTER with
 * nesting level L pushes EBP, then for L >= 2 copies L-1 frame pointers
 * from below EBP, then for L >= 1 pushes the new frame pointer, sets EBP
 * to it and subtracts imm16 from ESP; the level is imm8 mod 32 (SDM
 * Vol. 2A, ENTER), and a few times higher bits are set to show that.  With
 * a 16-bit operand size only BP is replaced.  LEAVE: ESP = EBP, then pop
 * EBP (BP).  EBP is set up first where the instruction needs it to point
 * into the scratch area.
 */
static int
c_enter(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    int osz = 4;
    if (one_in(g, 5)) {
        pfx_add(&x, 0x66);
        osz = 2;
    }
    if (one_in(g, 3)) {                         /* LEAVE */
        if (!(g->ebp_known && g->ebp >= STK_LO && g->ebp <= SCR_END - osz)) {     /* (no overflow) */
            uint32_t lo = g->esp > STK_LO + 128 ? g->esp - 128 : STK_LO;
            uint32_t hi = g->esp + 128 < SCR_END - 4 ? g->esp + 128 : SCR_END - 4;
            set_reg(g, 5, lo + rn(g, hi - lo + 1));
        }
        emit(g, &x, 1, 0xc9, 0, 0, 0, 0);
        g->esp = g->ebp + osz;
        g->ebp_known = 0;
        return 1;
    }
    uint32_t r = rn(g, 10), lvl = r < 4 ? 0 : r < 7 ? 1 : r < 9 ? 2 : 3 + rn(g, 2);
    uint32_t size = one_in(g, 4) ? 0 : rn(g, 64);
    uint32_t npush = lvl == 0 ? 1 : lvl + 1, total = npush * osz + size;
    if (!can_push(g, total))
        return 0;
    if (lvl >= 2 && !(g->ebp_known && g->ebp >= SCR_BASE + osz * (lvl - 1) && g->ebp <= SCR_END - osz))
        set_reg(g, 5, SCR_BASE + 64 + rn(g, SCR_SIZE - 128));
    emit(g, &x, 1, 0xc8, 0, 0, 2, size);
    put1(g, lvl | (one_in(g, 16) ? rn(g, 8) << 5 : 0));
    uint32_t frame = g->esp - osz;
    if (osz == 4) {
        g->ebp = frame;
        g->ebp_known = 1;
    } else if (g->ebp_known) {
        g->ebp = (g->ebp & 0xffff0000u) | (frame & 0xffff);
    }
    g->esp -= total;
    return 1;
}

/*
 * Flags: CLC STC CMC CLD STD (F8 F9 F5 FC FD), LAHF SAHF (9F 9E), PUSHF
 * (9C), and POPF (9D) only of values whose other bits are those EFLAGS
 * already has or zero: PUSH imm; POPF with arithmetic flags and DF (IF=0,
 * IOPL=0: what ring 0 runs with; at ring 3 POPF keeps IF and IOPL), or
 * PUSHF; XOR/OR/AND of arithmetic flags and DF on the pushed image; POPF.
 * Never TF, NT, AC: they would reach the harness.
 */
static int
c_flags(struct gen *g)
{
    static const uint8_t simple[7] = { 0xf8, 0xf9, 0xf5, 0xfc, 0xfd, 0x9f, 0x9e };
    struct pfx x = { { 0 }, 0 };
    int f = rn(g, 10), osz = 4;
    if (f < 7) {
        put1(g, simple[f]);
        return 1;
    }
    if (one_in(g, 5)) {
        pfx_add(&x, 0x66);
        osz = 2;
    }
    if (!can_push(g, osz))
        return 0;
    if (f == 7) {                               /* PUSHF */
        emit(g, &x, 1, 0x9c, 0, 0, 0, 0);
        g->esp -= osz;
        return 1;
    }
    if (f == 8) {                               /* PUSH imm; POPF */
        emit(g, &x, 1, 0x68, 0, 0, osz, (rnd(g) & AFL_DF) | EFL_1);
        emit(g, &x, 1, 0x9d, 0, 0, 0, 0);
        return 1;
    }
    /* PUSHF; XOR/OR/AND $imm, (%esp); POPF */
    static const uint8_t ops[3] = { 6, 1, 4 };  /* group 1: /6 XOR, /1 OR, /4 AND */
    struct ea e;
    int k = ops[rn(g, 3)];
    uint32_t v = rnd(g) & AFL_DF;
    memset(&e, 0, sizeof e);
    e.mod = 0;
    e.rm = 4;
    e.has_sib = 1;
    e.sib = 0x24;                               /* [ESP] */
    emit(g, &x, 1, 0x9c, 0, 0, 0, 0);
    emit(g, &x, 1, 0x81, &e, k, osz, k == 4 ? ~v : v);
    emit(g, &x, 1, 0x9d, 0, 0, 0, 0);
    return 1;
}

/* SETcc Eb: 0F 90-9F. */
static int
c_setcc(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    pick_rm(g, &e, 1, M_WRITE, 0);
    emit(g, &x, 2, 0x0f90 + rn(g, 16), &e, 0, 0, 0);
    return 1;
}

/* CMOVcc Gv,Ev: 0F 40-4F (the source is read even when the condition is
 * false, SDM Vol. 2A, CMOVcc). */
static int
c_cmov(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int sz = vsize(g, &x), r = dreg(g);
    pick_rm(g, &e, sz, 0, 0);
    emit(g, &x, 2, 0x0f40 + rn(g, 16), &e, r, 0, 0);
    clob(g, r, sz);
    return 1;
}

/*
 * BT BTS BTR BTC with an imm8 offset (0F BA /4-/7: the offset is taken
 * mod the operand size) or a register offset (0F A3 AB B3 BB).  A register
 * offset into memory is a signed bit string index that can reach far from
 * the operand (SDM Vol. 2A, BT: "bit base, bit offset"), so it is set up
 * small, -256..255 bits, and the operand kept 40 bytes from the edges.
 */
static int
c_bt(struct gen *g)
{
    static const uint16_t rops[4] = { 0x0fa3, 0x0fab, 0x0fb3, 0x0fbb };
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int k = rn(g, 4), sz = vsize(g, &x), wr = k != 0;
    if (!can_push(g, 4))
        return 0;                               /* no room for the PUSHF below */
    if (one_in(g, 2)) {                         /* imm8 */
        pick_rm(g, &e, sz, wr ? M_WRITE : 0, 0);
        lock_maybe(g, &x, &e, wr);
        emit(g, &x, 2, 0x0fba, &e, 4 + k, 1, one_in(g, 2) ? rnd(g) : rn(g, 40));
    } else if (one_in(g, 2)) {                  /* register offset, register operand */
        memset(&e, 0, sizeof e);
        e.isreg = 1;
        e.reg = wr ? dreg(g) : anyreg(g);
        emit(g, &x, 2, rops[k], &e, anyreg(g), 0, 0);
    } else {                                    /* register offset into memory */
        int r = dreg(g);
        pick_mem_in(g, &e, SCR_BASE + 40, SCR_END - 40 - sz, wr ? M_WRITE : 0, 1u << r, 0);
        set_reg(g, r, rn(g, 512) - 256);
        lock_maybe(g, &x, &e, wr);
        emit(g, &x, 2, rops[k], &e, r, 0, 0);
    }
    if (wr && e.isreg)
        clob(g, e.reg, sz);
    /* BT leaves OF, SF, AF and PF undefined (SDM Vol. 2A, BT, "Flags
     * Affected"), and QEMU's TCG - the hardware both runs are compared on
     * - computes them from whatever its lazy flag state holds from earlier
     * instructions: whether the previous instruction ended one of its
     * translation blocks (any exit to the monitor does) changes them.  No
     * monitor can preserve that, and no program may rely on it, so the
     * sequence defines them at once: PUSHF; AND $~(OF|SF|AF|PF), (%esp);
     * POPF, which leaves CF (the result) and ZF (unchanged) as they are. */
    struct ea top;
    memset(&top, 0, sizeof top);
    top.rm = 4;
    top.has_sib = 1;
    top.sib = 0x24;                             /* [ESP] */
    struct pfx none = { { 0 }, 0 };
    emit(g, &none, 1, 0x9c, 0, 0, 0, 0);
    emit(g, &none, 1, 0x81, &top, 4, 4, ~(uint32_t)(EFL_OF | EFL_SF | EFL_AF | EFL_PF));
    emit(g, &none, 1, 0x9d, 0, 0, 0, 0);
    return 1;
}

/* BSF BSR Gv,Ev (0F BC BD); a zero source now and then (ZF=1, the
 * destination undefined, SDM Vol. 2A, BSF). */
static int
c_bitscan(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int sz = vsize(g, &x), r = dreg(g);
    pick_rm(g, &e, sz, 0, 0);
    if (one_in(g, 5)) {
        if (e.isreg && e.reg != 4) {
            set_reg(g, e.reg, 0);
        } else if (!e.isreg) {
            struct pfx y = { { 0 }, 0 };
            if (sz == 2)
                pfx_add(&y, 0x66);
            struct ea w = e;
            if (w.seg == 0x2e)
                w.seg = 0;
            emit(g, &y, 1, 0xc7, &w, 0, sz, 0);
        }
    }
    emit(g, &x, 2, 0x0fbc + rn(g, 2), &e, r, 0, 0);
    clob(g, r, sz);
    return 1;
}

/* XCHG (86 87, 90+r) and XADD (0F C0 C1): both operands written. */
static int
c_xchg(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 3), sz = one_in(g, 3) ? 1 : vsize(g, &x), r;
    if (f == 0) {                               /* 90+r: XCHG eAX, r (90 itself is NOP) */
        if (sz == 1)
            sz = vsize(g, &x);
        r = dreg(g);
        emit(g, &x, 1, 0x90 + r, 0, 0, 0, 0);
        clob(g, r, sz);
        return 1;
    }
    r = sz == 1 ? anyreg(g) : dreg(g);
    pick_rm(g, &e, sz, M_WRITE, 0);
    lock_maybe(g, &x, &e, 1);
    if (f == 1)
        emit(g, &x, 1, sz == 1 ? 0x86 : 0x87, &e, r, 0, 0);
    else
        emit(g, &x, 2, sz == 1 ? 0x0fc0 : 0x0fc1, &e, r, 0, 0);
    clob(g, r, sz);
    if (e.isreg)
        clob(g, e.reg, sz);
    return 1;
}

/*
 * CMPXCHG (0F B0 B1) and CMPXCHG8B (0F C7 /1).  Half the time the
 * accumulator is first loaded from the operand, so that the comparison
 * succeeds; CMPXCHG8B is then written twice: the first fails and loads
 * EDX:EAX from memory, the second succeeds and stores ECX:EBX.  The
 * register form of CMPXCHG8B, now and then, raises #UD.
 *
 * Every CMPXCHG8B comes right after a JMP to itself (EB 00), which
 * changes nothing.  It is there for the reference CPU, not the monitor:
 * QEMU 7.2's TCG (as packaged, 7.2.22) keeps the flags lazily, as the
 * operation that last set them plus its operands (cc_op, cc_src, cc_dst),
 * and stores cc_op into the CPU state only when something needs it.  Its
 * CMPXCHG8B calls a helper that computes EFLAGS from the stored cc_op
 * without storing the pending one first (seen in `-d op_opt`: no `mov
 * cc_op` before `call cmpxchg8b_unlocked`), so after, say, CMP; CMPXCHG8B
 * in one translation block EFLAGS comes out as garbage -- bare QEMU, no
 * monitor: `cmp %eax,%eax; cmpxchg8b m` gives EFLAGS = 0x2bf, reserved
 * bits set, and other cases set TF or VM and take the harness down.
 * Where blocks begin differs between a native run and one under the
 * monitor, so the garbage would too.  A JMP ends QEMU's block, and a
 * block's end stores cc_op; a new block starting at CMPXCHG8B gives its
 * helper the right one.
 */
static int
c_cmpxchg(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    if (one_in(g, 3)) {
        if (one_in(g, 32)) {
            memset(&e, 0, sizeof e);
            e.isreg = 1;
            e.reg = anyreg(g);
            emit(g, &x, 2, 0x0fc7, &e, 1, 0, 0);
            return 1;
        }
        /* Not addressed through EAX or EDX: the first one may load them. */
        pick_mem(g, &e, 8, M_WRITE, (1u << 0) | (1u << 2));
        lock_maybe(g, &x, &e, 1);
        int twice = one_in(g, 2);
        put2(g, 0x00eb);                        /* JMP +0: see above */
        emit(g, &x, 2, 0x0fc7, &e, 1, 0, 0);
        if (twice) {
            put2(g, 0x00eb);
            emit(g, &x, 2, 0x0fc7, &e, 1, 0, 0);
        }
        return 1;
    }
    int sz = one_in(g, 3) ? 1 : vsize(g, &x), r = sz == 1 ? anyreg(g) : dreg(g);
    int preload = one_in(g, 2);
    pick_rm(g, &e, sz, M_WRITE, preload ? 1u << 0 : 0);
    if (preload) {                              /* MOV the operand into AL/AX/EAX */
        struct pfx y = { { 0 }, 0 };
        if (sz == 2)
            pfx_add(&y, 0x66);
        emit(g, &y, 1, sz == 1 ? 0x8a : 0x8b, &e, 0, 0, 0);
    }
    lock_maybe(g, &x, &e, 1);
    emit(g, &x, 2, sz == 1 ? 0x0fb0 : 0x0fb1, &e, r, 0, 0);
    if (e.isreg)
        clob(g, e.reg, sz);
    return 1;
}

/* MOVZX MOVSX (0F B6 B7 BE BF), CBW/CWDE (98), CWD/CDQ (99), BSWAP (0F C8+r:
 * with a 16-bit operand the result is undefined, SDM Vol. 2A, BSWAP). */
static int
c_movx(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 6), r, sz;
    if (f < 4) {
        static const uint16_t ops[4] = { 0x0fb6, 0x0fb7, 0x0fbe, 0x0fbf };
        sz = vsize(g, &x);
        r = dreg(g);
        pick_rm(g, &e, (f & 1) ? 2 : 1, 0, 0);
        emit(g, &x, 2, ops[f], &e, r, 0, 0);
        clob(g, r, sz);
        return 1;
    }
    if (f == 4) {
        vsize(g, &x);
        emit(g, &x, 1, 0x98 + rn(g, 2), 0, 0, 0, 0);
        return 1;
    }
    if (one_in(g, 8))
        pfx_add(&x, 0x66);
    r = dreg(g);
    emit(g, &x, 2, 0x0fc8 + r, 0, 0, 0, 0);
    clob(g, r, 4);
    return 1;
}

/*
 * LEA Gv,M (8D): any ModRM, SIB and displacement, with the registers as
 * they are -- LEA does not touch memory, so nothing needs to be kept in
 * range, and a 0x67 prefix switches to 16-bit addressing (SDM Vol. 2A
 * Table 2-1).  Now and then mod = 3, which raises #UD.
 */
static int
c_lea(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    int sz = vsize(g, &x), a16 = one_in(g, 6), r = dreg(g);
    int mod = one_in(g, 40) ? 3 : rn(g, 3), rm = rn(g, 8), dsize = 0, sib = 0;
    if (a16)
        pfx_add(&x, 0x67);
    if (one_in(g, 8))
        pfx_add(&x, 0x3e);                      /* a segment override: ignored */
    for (int i = x.n - 1; i > 0; i--) {
        int j = rn(g, i + 1);
        uint8_t t = x.b[i];
        x.b[i] = x.b[j];
        x.b[j] = t;
    }
    for (int i = 0; i < x.n; i++)
        put1(g, x.b[i]);
    put1(g, 0x8d);
    put1(g, (mod << 6) | (r << 3) | rm);
    if (mod == 3) {
        clob(g, r, sz);
        return 1;
    }
    if (a16) {
        dsize = mod == 1 ? 1 : (mod == 2 || (mod == 0 && rm == 6)) ? 2 : 0;
    } else {
        if (rm == 4) {
            sib = rnd(g) & 0xff;
            put1(g, sib);
        }
        dsize = mod == 1 ? 1 : mod == 2 ? 4 : (rm == 5 || (rm == 4 && (sib & 7) == 5)) ? 4 : 0;
    }
    uint32_t d = rval(g);
    if (dsize == 1)
        put1(g, d);
    else if (dsize == 2)
        put2(g, d);
    else if (dsize == 4)
        put4(g, d);
    clob(g, r, sz);
    return 1;
}

/*
 * x87 (SDM Vol. 1 ch. 8; opcodes Vol. 2, Appendix A.4, Tables A-7 to
 * Every sequence starts from FNINIT: an empty stack, all
 * exceptions masked, so overflow, underflow, invalid and zero-divide give
 * their masked results and nothing faults.  The control word is never
 * loaded (an unmasked exception would be signalled at the next x87
 * instruction, #MF or FERR#), nor the environment stored (FSTENV/FSAVE
 * record the linear address of the last x87 instruction, which is where
 * the monitor's translation of it ran).
 */
static int
c_x87(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int i = rn(g, 8), f = rn(g, g->fdepth == 0 ? 3 : 16);
    switch (f) {
    case 0:                                     /* FLD1 FLDL2T FLDL2E FLDPI FLDLG2 FLDLN2 FLDZ */
        put1(g, 0xd9);
        put1(g, 0xe8 + rn(g, 7));
        g->fdepth++;
        return 1;
    case 1: {                                   /* FLD m32/m64/m80, FILD m16/m32/m64, FBLD */
        static const struct { uint8_t op, reg, size; } ld[7] = {
            { 0xd9, 0, 4 }, { 0xdd, 0, 8 }, { 0xdb, 5, 10 }, { 0xdf, 0, 2 },
            { 0xdb, 0, 4 }, { 0xdf, 5, 8 }, { 0xdf, 4, 10 },
        };
        int k = rn(g, 7);
        pick_mem(g, &e, ld[k].size, 0, 0);
        emit(g, &x, 1, ld[k].op, &e, ld[k].reg, 0, 0);
        g->fdepth++;
        return 1;
    }
    case 2:                                     /* FLD ST(i) */
        put1(g, 0xd9);
        put1(g, 0xc0 + i);
        g->fdepth++;
        return 1;
    case 3: case 4:                             /* FADD FMUL FCOM FCOMP FSUB FSUBR FDIV FDIVR ST(0),ST(i) */
        put1(g, 0xd8);
        put1(g, 0xc0 + 8 * rn(g, 8) + i);
        return 1;
    case 5: {                                   /* ST(i),ST(0) forms and the popping ones */
        static const uint8_t ops[6] = { 0, 1, 4, 5, 6, 7 };
        put1(g, one_in(g, 2) ? 0xdc : 0xde);
        put1(g, 0xc0 + 8 * ops[rn(g, 6)] + i);
        return 1;
    }
    case 6: {                                   /* arithmetic with m32/m64 real, m32/m16 integer */
        static const uint8_t ops[4] = { 0xd8, 0xdc, 0xda, 0xde };
        static const uint8_t sizes[4] = { 4, 8, 4, 2 };
        int k = rn(g, 4);
        pick_mem(g, &e, sizes[k], 0, 0);
        emit(g, &x, 1, ops[k], &e, rn(g, 8), 0, 0);
        return 1;
    }
    case 7: case 8: {                           /* FST(P) m32/m64, FSTP m80, FIST(P) m16/m32, FISTP m64, FBSTP */
        static const struct { uint8_t op, reg, size; } st[11] = {
            { 0xd9, 2, 4 }, { 0xd9, 3, 4 }, { 0xdd, 2, 8 }, { 0xdd, 3, 8 },
            { 0xdb, 7, 10 }, { 0xdf, 2, 2 }, { 0xdf, 3, 2 }, { 0xdb, 2, 4 },
            { 0xdb, 3, 4 }, { 0xdf, 7, 8 }, { 0xdf, 6, 10 },
        };
        int k = rn(g, 11);
        pick_mem(g, &e, st[k].size, M_WRITE, 0);
        emit(g, &x, 1, st[k].op, &e, st[k].reg, 0, 0);
        if (st[k].reg & 1 || st[k].reg == 6)
            g->fdepth--;
        return 1;
    }
    case 9: {                                   /* FST ST(i), FSTP ST(i), FXCH, FFREE */
        static const uint16_t ops[4] = { 0xddd0, 0xddd8, 0xd9c8, 0xddc0 };
        uint16_t op = ops[rn(g, 4)];
        put1(g, op >> 8);
        put1(g, (op & 0xff) + i);
        return 1;
    }
    case 10: {                                  /* one-byte-operand arithmetic, D9 E0-FF */
        static const uint8_t ops[20] = {
            0xe0, 0xe1, 0xe4, 0xe5, 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5,
            0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
        };
        put1(g, 0xd9);
        put1(g, ops[rn(g, 20)]);
        return 1;
    }
    case 11: {                                  /* FCOMI FUCOMI (P): EFLAGS; FUCOM(P); FCOMPP FUCOMPP */
        static const uint16_t ops[6] = { 0xdbf0, 0xdbe8, 0xdff0, 0xdfe8, 0xdde0, 0xdde8 };
        if (one_in(g, 4)) {
            put2(g, one_in(g, 2) ? 0xd9de : 0xe9da);           /* DE D9, DA E9 */
            return 1;
        }
        uint16_t op = ops[rn(g, 6)];
        put1(g, op >> 8);
        put1(g, (op & 0xff) + i);
        return 1;
    }
    case 12:                                    /* FCMOVcc: DA/DB C0-DF */
        put1(g, one_in(g, 2) ? 0xda : 0xdb);
        put1(g, 0xc0 + 8 * rn(g, 4) + i);
        return 1;
    case 13:                                    /* FNSTSW AX, FNSTSW m16, FNSTCW m16 */
        if (one_in(g, 2)) {
            put2(g, 0xe0df);
            return 1;
        }
        pick_mem(g, &e, 2, M_WRITE, 0);
        emit(g, &x, 1, one_in(g, 2) ? 0xdd : 0xd9, &e, 7, 0, 0);
        return 1;
    case 14:                                    /* FWAIT, FNCLEX, FNOP, FNINIT */
        switch (rn(g, 4)) {
        case 0: put1(g, 0x9b); break;
        case 1: put2(g, 0xe2db); break;
        case 2: put2(g, 0xd0d9); break;
        default: put2(g, 0xe3db); g->fdepth = 0; break;
        }
        return 1;
    default:                                    /* FINCSTP FDECSTP, FCHS FABS again */
        put1(g, 0xd9);
        put1(g, (const uint8_t[]){ 0xf6, 0xf7, 0xe0, 0xe1 }[rn(g, 4)]);
        return 1;
    }
}

/*
 * Forward branches inside the sequence: Jcc rel8 (70-7F) and rel32
 * (0F 80-8F), JMP rel8 and rel32 (EB E9), JECXZ and LOOP LOOPE LOOPNE
 * (E3 E0-E2, with 0x67 the CX forms), now and then with a branch-hint
 * prefix (2E, 3E).  The target is the start of the instruction after
 * the next 0-3 instructions; never 0x66, which would cut EIP to 16 bits.
 */
static int
c_jump(struct gen *g)
{
    if (g->jsite)
        return 0;
    if (one_in(g, 8))
        put1(g, one_in(g, 2) ? 0x2e : 0x3e);
    switch (rn(g, 8)) {
    case 0: case 1: case 2:
        put1(g, 0x70 + rn(g, 16));
        g->jwide = 1;
        break;
    case 3:
        put1(g, 0x0f);
        put1(g, 0x80 + rn(g, 16));
        g->jwide = 4;
        break;
    case 4:
        put1(g, 0xeb);
        g->jwide = 1;
        break;
    case 5:
        put1(g, 0xe9);
        g->jwide = 4;
        break;
    default:
        if (one_in(g, 3))
            put1(g, 0x67);
        put1(g, 0xe0 + rn(g, 4));
        g->jwide = 1;
        break;
    }
    g->jsite = g->p;
    for (int k = 0; k < g->jwide; k++)
        put1(g, 0);
    g->jleft = rn(g, 4);
    g->jebp_known = g->ebp_known;
    g->jebp = g->ebp;
    if (g->jleft == 0)
        patch_branch(g);
    return 1;
}

/* The pending branch lands here. */
static void
patch_branch(struct gen *g)
{
    int32_t rel = g->p - (g->jsite + g->jwide);
    if (g->jwide == 1) {
        g->jsite[0] = (uint8_t)rel;
    } else {
        for (int k = 0; k < 4; k++)
            g->jsite[k] = (uint8_t)(rel >> (8 * k));
    }
    g->ebp_known = g->ebp_known && g->jebp_known && g->ebp == g->jebp;
    g->jsite = 0;
}

/* NOP (90, F3 90 PAUSE, 66 90, 0F 1F /0 with any addressing form), XLAT
 * (D7: AL = [EBX + AL]), CPUID (0F A2, leaves 0, 1, 2 and beyond the
 * last). */
static int
c_misc(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    switch (rn(g, 6)) {
    case 0:
        put1(g, 0x90);
        return 1;
    case 1:
        put2(g, one_in(g, 2) ? 0x90f3 : 0x9066);
        return 1;
    case 2:                                     /* NOP Ev: decoded, not executed */
        pick_mem(g, &e, 4, 0, 0);
        emit(g, &x, 2, 0x0f1f, &e, 0, 0, 0);
        return 1;
    case 3: case 4: {
        uint8_t sg = seg_override(g, 0);
        set_reg(g, 3, SCR_BASE + rn(g, SCR_SIZE - 256));
        if (sg)
            put1(g, sg);
        put1(g, 0xd7);
        return 1;
    }
    default: {
        static const uint32_t leaf[5] = { 0, 1, 2, 3, 0x80000000u };
        set_reg(g, 0, leaf[rn(g, 5)]);
        put2(g, 0xa20f);
        return 1;
    }
    }
}

/*
 * The instructions that read system state without being privileged --
 * the holes of x86 virtualization (docs/00-overview.md): SMSW (0F 01 /4),
 * SLDT STR (0F 00 /0 /1), SGDT SIDT (0F 01 /0 /1), LAR LSL (0F 02 03),
 * VERR VERW (0F 00 /4 /5) of the guest's selectors and of random ones.
 * At ring 3 the monitor makes the first five trap with UMIP and answers
 * with the guest's values.
 */
static int
c_sys(struct gen *g)
{
    static const uint16_t sels[8] = { 0, 0x08, 0x10, 0x1b, 0x23, 0x28, 0x30, 0x7b };
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    int f = rn(g, 6), sz;
    switch (f) {
    case 0: case 1: {                           /* SMSW, SLDT, STR */
        static const struct { uint16_t op; uint8_t reg; } ops[3] = {
            { 0x0f01, 4 }, { 0x0f00, 0 }, { 0x0f00, 1 },
        };
        int k = rn(g, 3);
        if (one_in(g, 2)) {
            sz = vsize(g, &x);
            memset(&e, 0, sizeof e);
            e.isreg = 1;
            e.reg = dreg(g);
            clob(g, e.reg, sz);
        } else {
            pick_mem(g, &e, 2, M_WRITE, 0);
        }
        emit(g, &x, 2, ops[k].op, &e, ops[k].reg, 0, 0);
        return 1;
    }
    case 2:                                     /* SGDT, SIDT */
        if (one_in(g, 6))
            pfx_add(&x, 0x66);
        pick_mem(g, &e, 6, M_WRITE, 0);
        emit(g, &x, 2, 0x0f01, &e, rn(g, 2), 0, 0);
        return 1;
    case 3: case 4: {                           /* LAR, LSL Gv, Ew */
        int r = dreg(g);
        sz = vsize(g, &x);
        uint32_t sel = one_in(g, 4) ? rnd(g) & 0xffff : sels[rn(g, 8)];
        pick_rm(g, &e, 2, 0, 0);
        if (e.isreg && e.reg != 4)
            set_reg(g, e.reg, sel);
        else if (!e.isreg) {
            struct pfx y = { { 0 }, 0 };
            struct ea w = e;
            pfx_add(&y, 0x66);
            if (w.seg == 0x2e)
                w.seg = 0;
            emit(g, &y, 1, 0xc7, &w, 0, 2, sel);
        }
        emit(g, &x, 2, 0x0f02 + (f == 4), &e, r, 0, 0);
        clob(g, r, sz);
        return 1;
    }
    default:                                    /* VERR, VERW Ew */
        pick_rm(g, &e, 2, 0, 0);
        if (e.isreg && e.reg != 4)
            set_reg(g, e.reg, sels[rn(g, 8)]);
        emit(g, &x, 2, 0x0f00, &e, 4 + rn(g, 2), 0, 0);
        return 1;
    }
}

/* Rarely: INT3 (CC), INTO (CE), INT1 (F1), UD2 (0F 0B), CLI STI (FA FB;
 * #GP at ring 3 with IOPL 0), LOCK on an instruction that does not allow
 * it (#UD).  Gates are DPL 0, so INT3 and INTO at ring 3 give #GP. */
static int
c_trap(struct gen *g)
{
    struct pfx x = { { 0 }, 0 };
    struct ea e;
    switch (rn(g, 7)) {
    case 0: put1(g, 0xcc); return 1;
    case 1: put1(g, 0xce); return 1;
    case 2: put1(g, 0xf1); return 1;
    case 3: put2(g, 0x0b0f); return 1;
    case 4: put1(g, 0xfa); return 1;
    case 5: put1(g, 0xfb); return 1;
    default:                                    /* LOCK ADD reg, or LOCK CMP mem */
        pfx_add(&x, 0xf0);
        if (one_in(g, 2)) {
            memset(&e, 0, sizeof e);
            e.isreg = 1;
            e.reg = dreg(g);
            emit(g, &x, 1, 0x01, &e, anyreg(g), 0, 0);
            clob(g, e.reg, 4);
        } else {
            pick_mem(g, &e, 4, 0, 0);
            emit(g, &x, 1, 0x39, &e, anyreg(g), 0, 0);
        }
        return 1;
    }
}

/* The classes and how often each is chosen. */
static const struct cls {
    const char *name;
    int (*fn)(struct gen *);
    int weight;
} classes[] = {
    { "alu",     c_alu,     16 },
    { "mov",     c_mov,      6 },
    { "incdec",  c_incdec,   4 },
    { "unary",   c_unary,    4 },
    { "muldiv",  c_muldiv,   5 },
    { "imul",    c_imul,     3 },
    { "shift",   c_shift,    8 },
    { "shxd",    c_shxd,     3 },
    { "bcd",     c_bcd,      3 },
    { "string",  c_string,   6 },
    { "stack",   c_stack,    7 },
    { "enter",   c_enter,    4 },
    { "flags",   c_flags,    5 },
    { "setcc",   c_setcc,    2 },
    { "cmov",    c_cmov,     3 },
    { "bt",      c_bt,       5 },
    { "bitscan", c_bitscan,  2 },
    { "xchg",    c_xchg,     3 },
    { "cmpxchg", c_cmpxchg,  3 },
    { "movx",    c_movx,     4 },
    { "lea",     c_lea,      4 },
    { "x87",     c_x87,     10 },
    { "jump",    c_jump,     4 },
    { "misc",    c_misc,     2 },
    { "sys",     c_sys,      1 },
    { "trap",    c_trap,     1 },
};
#define NCLASS ((int)(sizeof classes / sizeof classes[0]))

static const struct cls *
pick_class(struct gen *g)
{
    static int total;
    if (!total)
        for (int i = 0; i < NCLASS; i++)
            total += classes[i].weight;
    int w = rn(g, total);
    for (int i = 0; i < NCLASS; i++) {
        if (w < classes[i].weight)
            return &classes[i];
        w -= classes[i].weight;
    }
    return &classes[0];
}

/* ------------------------------------------------------------ one sequence */

static uint32_t
slot_addr(uint32_t idx)
{
    return CODE_BASE + (idx % RING_SLOTS) * SLOT_SIZE;
}

/* The initial state of sequence idx: random registers (edge values among
 * them), ESP in the middle of the scratch area, EBP anywhere in it, random
 * arithmetic flags and DF. */
static void
make_init(uint32_t seed, uint32_t idx, struct regs *in)
{
    struct gen g;
    g.rng = stream(seed, idx, STREAM_INIT);
    for (int r = 0; r < 8; r++)
        in->r[r] = rval(&g);
    in->r[4] = SCR_BASE + 1024 + rn(&g, 2048);
    if (!one_in(&g, 4))
        in->r[4] &= ~3u;
    in->r[5] = SCR_BASE + rn(&g, SCR_SIZE);
    in->eflags = EFL_1 | (rnd(&g) & AFL) | (one_in(&g, 3) ? EFL_DF : 0);
    in->eip = slot_addr(idx);
}

/* The final JMP to fz_epilogue. */
static void
put_final_jmp(uint8_t *p)
{
    uint32_t rel = (uint32_t)fz_epilogue - ((uint32_t)p + 5);
    p[0] = 0xe9;
    memcpy(p + 1, &rel, 4);
}

/* Write sequence idx (1..maxlen instructions) at its slot; its length. */
static uint32_t
generate(uint32_t seed, uint32_t idx, const struct regs *in, int maxlen)
{
    struct gen g;
    uint8_t *code = (uint8_t *)slot_addr(idx);
    memset(&g, 0, sizeof g);
    g.rng = stream(seed, idx, STREAM_CODE);
    g.p = code;
    g.end = code + SLOT_SIZE - 5;
    g.esp = in->r[4];
    g.ebp = in->r[5];
    g.ebp_known = 1;
    int n = 1 + rn(&g, maxlen);
    for (int done = 0, tries = 0; done < n && tries < 1000 && g.p + MAXGROUP <= g.end; tries++) {
        if (g.jsite && g.jwide == 1 && g.p + MAXGROUP - (g.jsite + 1) > 127)
            patch_branch(&g);                   /* a rel8 cannot reach further */
        struct gen snap = g;
        const struct cls *c = pick_class(&g);
        if (!c->fn(&g) || (snap.jsite && g.esp != snap.esp)) {
            uint32_t r = g.rng;
            g = snap;
            g.rng = r;
            continue;
        }
        if (g.p > snap.p + MAXGROUP) {
            printf("fuzz: BUG: class %s wrote %u bytes\n", c->name, (uint32_t)(g.p - snap.p));
            exit(3);
        }
        done++;
        if (snap.jsite && g.jsite && --g.jleft <= 0)
            patch_branch(&g);
    }
    if (g.jsite)
        patch_branch(&g);
    put_final_jmp(g.p);
    return g.p - code;
}

/* ------------------------------------------------------------ running and digesting */

/* Everything a sequence left: registers, EFLAGS (arithmetic flags and
 * DF), the fault (vector, error code, EIP), the x87 status word and top
 * two registers, and every word of the scratch area. */
static uint32_t
digest(void)
{
    const struct outstate *o = &fz.out;
    uint32_t h = FNV_BASIS;
    for (int i = 0; i < 8; i++)
        h = fnv(h, o->g.r[i]);
    h = fnv(h, o->g.eflags & (AFL_DF | EFL_1));
    h = fnv(h, o->vector);
    h = fnv(h, o->err);
    h = fnv(h, o->g.eip);
    h = fnv(h, o->fsw);
    for (int i = 0; i < 20; i++)
        h = fnv(h, o->st[i / 10][i % 10]);
    const uint32_t *m = (const uint32_t *)SCR_BASE;
    for (uint32_t i = 0; i < SCR_SIZE / 4; i++)
        h = fnv(h, m[i]);
    return h;
}

/* Run slot s of the batch at the ring we are at; ring3 = 0 or 1. */
static void
run_slot(int ring3, uint32_t s)
{
    scratch_fill(fz.memseed[s]);
    fz.in = fz.init[s];
    fz_run();
    if (!ring3)
        cli();                  /* a sequence may have run STI */
    /* Bits 3, 5, 15 and 22-31 of EFLAGS are reserved, 0 on every CPU
     * (SDM Vol. 1 §3.4.3, EFLAGS Register).  Seeing one set means the CPU
     * running the guest -- QEMU, natively too -- computed EFLAGS wrongly:
     * counted for the summary line. */
    if (fz.out.g.eflags & 0xffc08028u)
        fz.bad_eflags++;
    fz.dig[ring3][s] = digest();
    fz.vec[ring3][s] = fz.out.vector;
    fz.err[ring3][s] = fz.out.err;
}

/* At ring 3: the slots fz.lo..fz.hi-1, then back with SYS_EXIT. */
static uint32_t
ring3_batch(uint32_t unused)
{
    (void)unused;
    for (uint32_t s = fz.lo; s < fz.hi; s++)
        run_slot(1, s);
    return 0;
}

static void
run_ring3(uint32_t lo, uint32_t hi)
{
    fz.lo = lo;
    fz.hi = hi;
    uint32_t r = run_user(ring3_batch, 0, EFL_IF);
    if (r != 0) {
        printf("fuzz: ring 3 batch came back with 0x%08x\n", r);
        exit(4);
    }
}

/* ------------------------------------------------------------ output */

/* COM1 with its FIFO on (lib_init): when the line status register says
 * the transmitter holding register is empty, the 16-byte FIFO is empty
 * and takes 16 bytes (16550A data sheet, FCR and LSR).  One poll per 16
 * bytes instead of one per byte: under the monitor each is an exit. */
static void
out_write(const char *s, uint32_t n)
{
    while (n) {
        while (!(inb(COM1 + 5) & 0x20))
            ;
        uint32_t k = n < 16 ? n : 16;
        for (uint32_t i = 0; i < k; i++)
            outb(COM1, (uint8_t)s[i]);
        s += k;
        n -= k;
    }
}

static char *
put_hex(char *p, uint32_t v)
{
    char t[8];
    int n = 0;
    do {
        t[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = t[--n];
    return p;
}

static char *
put_hex8(char *p, uint32_t v)
{
    for (int i = 7; i >= 0; i--)
        *p++ = "0123456789abcdef"[(v >> (4 * i)) & 15];
    return p;
}

static char *
put_dec(char *p, uint32_t v)
{
    char t[10];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = t[--n];
    return p;
}

static int
has_errcode(uint32_t v)
{
    return v == 8 || (v >= 10 && v <= 14) || v == 17;
}

static uint32_t rings = 3;              /* bit 0: ring 0, bit 1: ring 3 */
static uint32_t all_digest = FNV_BASIS;
static uint32_t nfaults[2];

/*
 * The line of sequence idx (slot s): "IDX DIGEST" and, for a ring whose
 * run faulted, " kV" (ring 0) or " uV" (ring 3), V the vector in hex,
 * ":E" the error code when the vector has one.  DIGEST covers both runs.
 */
static char *
put_line(char *p, uint32_t idx, uint32_t s)
{
    uint32_t h = FNV_BASIS;
    for (int k = 0; k < 2; k++)
        if (rings & (1u << k))
            h = fnv(h, fz.dig[k][s]);
    all_digest = fnv(all_digest, h);
    p = put_dec(p, idx);
    *p++ = ' ';
    p = put_hex8(p, h);
    for (int k = 0; k < 2; k++) {
        uint32_t v = fz.vec[k][s];
        if (!(rings & (1u << k)) || v == NOFAULT)
            continue;
        nfaults[k]++;
        *p++ = ' ';
        *p++ = k ? 'u' : 'k';
        p = put_hex(p, v);
        if (has_errcode(v)) {
            *p++ = ':';
            p = put_hex(p, fz.err[k][s]);
        }
    }
    *p++ = '\n';
    return p;
}

/* verbose: the whole state of one run, and the scratch words it changed. */
static void
print_state(uint32_t idx, uint32_t s, int ring3)
{
    static const char *const names[8] = { "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi" };
    const struct regs *in = &fz.init[s];
    const struct outstate *o = &fz.out;
    printf("seq %u ring %u at %08x code", idx, ring3 ? 3 : 0, in->eip);
    const uint8_t *c = (const uint8_t *)in->eip;
    for (uint32_t i = 0; i < fz.codelen[s]; i++)
        printf("%s%02x", i ? "" : " ", c[i]);
    print("\n in ");
    for (int i = 0; i < 8; i++)
        printf(" %s=%08x", names[i], in->r[i]);
    printf(" efl=%08x\n out", in->eflags);
    for (int i = 0; i < 8; i++)
        printf(" %s=%08x", names[i], o->g.r[i]);
    printf(" efl=%08x\n x87 fsw=%04x st0=", o->g.eflags, o->fsw);
    for (int i = 9; i >= 0; i--)
        printf("%02x", o->st[0][i]);
    print(" st1=");
    for (int i = 9; i >= 0; i--)
        printf("%02x", o->st[1][i]);
    if (o->vector == NOFAULT)
        print("\n no fault\n");
    else
        printf("\n fault vector=%u err=%04x eip=%08x (+%u) cs=%04x\n", o->vector, o->err,
               o->g.eip, o->g.eip - in->eip, o->cs);
    uint32_t ms = fz.memseed[s], changed = 0;
    const uint32_t *m = (const uint32_t *)SCR_BASE;
    for (uint32_t i = 0; i < SCR_SIZE / 4; i++) {
        uint32_t was = mem_word(&ms);
        if (m[i] != was && changed++ < 48)
            printf(" mem %08x: %08x -> %08x\n", SCR_BASE + 4 * i, was, m[i]);
    }
    if (changed > 48)
        printf(" mem ... %u words changed in all\n", changed);
    printf(" digest %08x\n", fz.dig[ring3][s]);
}

/* ------------------------------------------------------------ arguments */

static struct {
    uint32_t seed, count, first, len;
    int verbose, paging;
    uint8_t code[SLOT_SIZE - 5];
    uint32_t codelen;           /* 0: generate */
    uint32_t cut;               /* 0: the whole sequence */
} opt = { 1, 1000, 0, 16, 0, 0, { 0 }, 0, 0 };

static int
parse_num(const char *s, uint32_t *v)
{
    uint32_t x = 0, base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s)
        return 0;
    for (; *s; s++) {
        uint32_t d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = *s - 'A' + 10;
        else
            return 0;
        x = x * base + d;
    }
    *v = x;
    return 1;
}

static int
hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
           c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/*
 * seed=N     the seed (default 1); count=N sequences (default 1000)
 * first=N    start at sequence N (the same sequence N as a run from 0)
 * len=N      at most N instructions per sequence (default 16)
 * ring=0|3   run only at that ring (default both)
 * verbose    the whole state of every run instead of nothing but the lines
 * paging     run with paging on, the pages around the scratch area absent
 * code=HEX   run these bytes as sequence `first` (its registers and
 *            memory), count=1: to reproduce or to try a variation
 * cut=N      run sequence `first` as generated but ended after its first
 *            N bytes (an instruction boundary), count=1.  Short, where
 *            code= would not be: the monitor passes on at most 254
 *            characters of the command line, bare QEMU all of it.
 * The command line is "PATH ARGS..." (QEMU and the monitor both pass the
 * kernel's path first); it is copied before anything can overwrite it.
 */
static void
parse_args(uint32_t magic, const struct multiboot_info *mbi)
{
    char buf[1024];
    uint32_t n = 0;
    if (magic == MULTIBOOT_BOOT_MAGIC && (mbi->flags & MBI_FLAG_CMDLINE) && mbi->cmdline) {
        const char *p = (const char *)mbi->cmdline;
        while (*p && n + 1 < sizeof buf)
            buf[n++] = *p++;
    }
    buf[n] = 0;
    char *p = buf;
    while (*p && *p != ' ')             /* the path */
        p++;
    while (*p) {
        while (*p == ' ')
            *p++ = 0;
        if (!*p)
            break;
        char *w = p;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = 0;
        uint32_t v;
        int ok = 1;
        if (!strcmp(w, "verbose"))
            opt.verbose = 1;
        else if (!strcmp(w, "paging"))
            opt.paging = 1;
        else if (!memcmp(w, "seed=", 5))
            ok = parse_num(w + 5, &opt.seed);
        else if (!memcmp(w, "count=", 6))
            ok = parse_num(w + 6, &opt.count);
        else if (!memcmp(w, "first=", 6))
            ok = parse_num(w + 6, &opt.first);
        else if (!memcmp(w, "cut=", 4))
            ok = parse_num(w + 4, &opt.cut) && opt.cut >= 1;
        else if (!memcmp(w, "len=", 4))
            ok = parse_num(w + 4, &opt.len) && opt.len >= 1;
        else if (!memcmp(w, "ring=", 5)) {
            ok = parse_num(w + 5, &v) && (v == 0 || v == 3);
            rings = v == 0 ? 1 : 2;
        } else if (!memcmp(w, "code=", 5)) {
            const char *h = w + 5;
            opt.codelen = 0;
            while (ok && h[0] && h[1] && opt.codelen < sizeof opt.code) {
                int a = hexval(h[0]), b = hexval(h[1]);
                ok = a >= 0 && b >= 0;
                opt.code[opt.codelen++] = (uint8_t)(a << 4 | b);
                h += 2;
            }
            ok = ok && !*h && opt.codelen > 0;
        } else
            ok = 0;
        if (!ok) {
            printf("fuzz: bad argument \"%s\"\n", w);
            exit(2);
        }
    }
    if (opt.codelen || opt.cut)
        opt.count = 1;
}

/* ------------------------------------------------------------ main */

/* With `paging`: identity-map the first 4 MiB (the image and its stacks),
 * the two scratch pages and the code ring, user-accessible and writable;
 * the pages on either side of the scratch area stay absent. */
static void
paging_on(void)
{
    uint32_t *pd = pg_new_dir();
    pg_map_range(pd, 0, 0, 0x400000, PG_W | PG_U);
    pg_map_range(pd, SCR_BASE & ~0xfffu, SCR_BASE & ~0xfffu,
                 ((SCR_END + 0xfff) & ~0xfffu) - (SCR_BASE & ~0xfffu), PG_W | PG_U);
    pg_map_range(pd, CODE_BASE, CODE_BASE, RING_SLOTS * SLOT_SIZE, PG_W | PG_U);
    paging_enable(pd, 1);
}

int
main(uint32_t magic, struct multiboot_info *mbi)
{
    parse_args(magic, mbi);
    printf("fuzz: seed=%u first=%u count=%u len=%u rings=%s%s%s\n", opt.seed, opt.first,
           opt.count, opt.len, rings == 3 ? "0,3" : rings == 1 ? "0" : "3",
           opt.paging ? " paging" : "", opt.codelen ? " code" : opt.cut ? " cut" : "");
    if (!(mbi->flags & MBI_FLAG_MEM) || 0x100000 + mbi->mem_upper * 1024 < CODE_BASE + RING_SLOTS * SLOT_SIZE ||
        (uint32_t)__image_end > (SCR_BASE & ~0xfffu) - 0x1000) {
        print("fuzz: needs 40 MiB of RAM and an image below 4 MiB\n");
        return 1;
    }
    cpu_init();
    for (int v = 0; v < 32; v++)
        idt_set_gate(v, (uint32_t)fz_stubs + 32 * v, SEG_KCODE, GATE_INTR32, 0);
    if (opt.paging)
        paging_on();

    uint32_t end = opt.first + opt.count;
    for (uint32_t base = opt.first - opt.first % NSLOT; base < end; base += NSLOT) {
        uint32_t lo = opt.first > base ? opt.first - base : 0;
        uint32_t hi = end - base < NSLOT ? end - base : NSLOT;
        for (uint32_t s = lo; s < hi; s++) {
            uint32_t idx = base + s;
            make_init(opt.seed, idx, &fz.init[s]);
            fz.memseed[s] = stream(opt.seed, idx, STREAM_MEM);
            if (opt.codelen) {
                uint8_t *c = (uint8_t *)slot_addr(idx);
                memcpy(c, opt.code, opt.codelen);
                put_final_jmp(c + opt.codelen);
                fz.codelen[s] = opt.codelen;
            } else {
                fz.codelen[s] = generate(opt.seed, idx, &fz.init[s], opt.len);
                if (opt.cut && opt.cut < fz.codelen[s]) {
                    fz.codelen[s] = opt.cut;
                    put_final_jmp((uint8_t *)slot_addr(idx) + opt.cut);
                }
            }
        }
        char *p = fz.line;
        if (opt.verbose) {
            for (uint32_t s = lo; s < hi; s++) {
                if (rings & 1) {
                    run_slot(0, s);
                    print_state(base + s, s, 0);
                }
                if (rings & 2) {
                    run_ring3(s, s + 1);
                    print_state(base + s, s, 1);
                }
                p = put_line(fz.line, base + s, s);
                out_write(fz.line, p - fz.line);
            }
            continue;
        }
        if (rings & 1)
            for (uint32_t s = lo; s < hi; s++)
                run_slot(0, s);
        if (rings & 2)
            run_ring3(lo, hi);
        for (uint32_t s = lo; s < hi; s++)
            p = put_line(p, base + s, s);
        out_write(fz.line, p - fz.line);
    }
    printf("fuzz: %u sequences, faults ring0=%u ring3=%u, reserved EFLAGS bits %u, all %08x\n",
           opt.count, nfaults[0], nfaults[1], fz.bad_eflags, all_digest);
    return 0;
}
