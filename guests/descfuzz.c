/*
 * descfuzz -- a differential fuzzer of the descriptor tables.  For each
 * operation the guest fills part of its GDT, an LDT and eight IDT vectors
 * with random descriptors (every type, DPL, present bit, base, limit,
 * granularity and size; gates pointing anywhere in the tables), then does
 * one random thing with them from ring 0 or ring 3 and prints a digest
 * line of everything that came out: the fault (vector, error code, where),
 * or where control landed (CS, EIP, EFLAGS, the stack and the segment
 * registers, what the transfer pushed), or what the instruction computed,
 * and the tables afterwards (accessed and busy bits).  Nothing is checked
 * here: the test is that bare QEMU and the monitor print the same lines
 * (tests/fuzz.sh with FUZZ_GUEST=descfuzz, `make fuzz`).
 *
 * Tests:   MOV to DS, ES, FS, GS and SS of random selectors (GDT, LDT,
 *          null, past the limit, every RPL) and a byte read through the
 *          segment at an offset inside its limit (which shows the base the
 *          CPU took); a load, then the descriptor rewritten in memory
 *          while loaded, a read through the stale hidden part, and a
 *          reload; LAR, LSL, VERR and VERW; far JMP and CALL (32- and
 *          16-bit) to code segments, call gates (16- and 32-bit, parameter
 *          copy, to rings 0, 1, 2 and 3) and everything else; INT n
 *          through interrupt, trap and task gates and descriptors that are
 *          not gates; IRET (32- and 16-bit) to the same ring, to outer
 *          rings, to virtual-8086 mode, with NT set; far RET, with and
 *          without an immediate; LLDT of random selectors and a load
 *          through the new LDT.  From ring 0 (translated), and from ring 3
 *          with IF=0 or 1 and IOPL 0 or 3 (direct or translated).
 * Left out (Deviations in emulate.c and shadow.c): task switches to a
 *          16-bit TSS (no available 16-bit TSS is ever made), and LAR at
 *          ring 3 on an available 32-bit TSS of DPL 3 (made DPL 2 there).
 *          Left out where bare QEMU, the reference, is not the CPU the SDM
 *          describes (the monitor follows the SDM; each case is marked
 *          where the generator avoids it): any data access outside a
 *          segment's limit, and a new EIP past CS's limit except for a
 *          far JMP straight to a code segment (QEMU checks only far JMP
 *          and CALL, and gives CALL the wrong error code); EIP above
 *          0xffff in a 16-bit code segment; the reserved upper offset
 *          word of a 16-bit gate; a gate to a conforming segment of lower
 *          DPL (QEMU changes CPL); a JMP through a call gate to a segment
 *          not present (QEMU: #GP, SDM: #NP); a return to an outer ring
 *          with its SS not present (QEMU: #NP, SDM: #SS); an inner stack
 *          (TSS SS1, SS2) not present (QEMU: #TS, SDM: #SS); an INT3 at
 *          IP 0xffff of 16-bit code (QEMU pushes 0x10000).  Every offset a
 *          transfer can end at is either past the target's limit or inside
 *          one of the two "sleds" of INT3 bytes (0-0xffff and SLED), so
 *          that no random memory is ever executed.
 * Exercises: the emulator's segment loads, far transfers and interrupt
 *          delivery against the guest's tables (emulate.c), the shadow GDT
 *          and LDT and their traces (shadow.c, segtrack.c), direct
 *          execution's view of the shadow tables (LAR at ring 3 reads the
 *          shadow descriptor), execution decisions on every landing.
 * Monitor exits expected: many per operation: traced writes to the tables,
 *          #GP exits for every privileged transfer from ring 3, callouts
 *          for far transfers in translated code, reflected faults.
 *
 * Arguments: seed=N count=N first=N verbose.  One line per operation,
 * "INDEX DIGEST OUTCOME" (OUTCOME: D done, L landed, Fv:e a fault); with
 * `verbose` also the operation and everything in the digest, spelled out.
 * Every operation is made afresh from (seed, index) alone, so `first=N
 * count=1 verbose` shows operation N exactly as it ran in the long run.
 */
#include "guest.h"

/* ------------------------------------------------------------ layout */

#define SLED      0x00300000u   /* 64 KiB of INT3; and 0-0xffff too */
#define SLED_SIZE 0x10000u
#define PROBE     0x00200000u   /* data segments' bases: a known pattern from */
#define PROBE_LO  (PROBE - 0x10000u)    /* PROBE_LO to PROBE_HI */
#define PROBE_HI  (PROBE + 0x30000u)
#define STK1      0x00318400u   /* TSS esp1 */
#define STK2      0x00318800u   /* TSS esp2 */
#define STKX      0x00318c00u   /* outer stacks IRET and RET return to (+0x400) */
#define KOPSTK    0x0031a000u   /* the stack ring-0 operations run on */
#define USTK      0x0031a800u   /* ... ring-3 operations */
#define FRAME     0x0031b000u   /* frames IRET and RET pop */
#define STK0      0x0031e000u   /* TSS esp0: traps from rings 1-3 and v86 */
#define STK_AREA  0x00318000u   /* all of the above, refilled every operation */
#define STK_AREA_SIZE 0x6000u

#define NRAND_LO 9              /* GDT slots 9-15 are random */
#define SLOT_LDT 6              /* the LDT's descriptor */
#define SLOT_D1  7              /* flat data, DPL 1: TSS ss1 */
#define SLOT_D2  8              /* flat data, DPL 2: TSS ss2 */
#define SEL_LDT  SEL(SLOT_LDT, 0)
#define NLDT     8
#define IVEC     0x40           /* vectors 0x40-0x47 are random */
#define VEC_DONE 0x81           /* an operation that ran to its end */

#define NOREAD   0xffffffffu

static uint64_t ldt[NLDT] ALIGNED(4096);
static uint64_t ldt2[NLDT] ALIGNED(64);

/* ------------------------------------------------------------ arguments */

static struct {
    uint32_t seed, count, first, verbose;
} opt = { 1, 1000, 0, 0 };

static uint32_t
parse_u32(const char *s, int *ok)
{
    uint32_t v = 0;
    *ok = *s != 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            *ok = 0;
            return 0;
        }
        v = v * 10 + (uint32_t)(*s - '0');
    }
    return v;
}

static void
parse_args(uint32_t magic, const struct multiboot_info *mbi)
{
    char buf[256];
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
        int ok = 1;
        if (!strcmp(w, "verbose"))
            opt.verbose = 1;
        else if (!memcmp(w, "seed=", 5))
            opt.seed = parse_u32(w + 5, &ok);
        else if (!memcmp(w, "count=", 6))
            opt.count = parse_u32(w + 6, &ok);
        else if (!memcmp(w, "first=", 6))
            opt.first = parse_u32(w + 6, &ok);
        else
            ok = 0;
        if (!ok) {
            printf("descfuzz: bad argument \"%s\"\n", w);
            exit(0x7e);
        }
    }
}

/* ------------------------------------------------------------ randomness */

static uint32_t rs;

static uint32_t
rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 17;
    rs ^= rs << 5;
    return rs;
}

static uint32_t rn(uint32_t n) { return rnd() % n; }

/* The pattern every probe byte holds: a function of its address. */
static uint8_t pattern(uint32_t a) { return (uint8_t)((a * 2654435761u) >> 24); }

/* ------------------------------------------------------------ descriptors */

static uint64_t
mkdesc(uint32_t base, uint32_t limit, uint32_t type, uint32_t s, uint32_t dpl,
       uint32_t p, uint32_t flags)
{
    uint32_t lo = (limit & 0xffff) | (base << 16);
    uint32_t hi = ((base >> 16) & 0xff) | (type << 8) | (s << 12) | (dpl << 13) |
                  (p << 15) | (limit & 0xf0000) | (flags << 20) | (base & 0xff000000);
    return (uint64_t)hi << 32 | lo;
}

static uint64_t
mkgate(uint16_t sel, uint32_t off, uint32_t type, uint32_t dpl, uint32_t p, uint32_t params)
{
    uint32_t lo = (off & 0xffff) | ((uint32_t)sel << 16);
    uint32_t hi = (off & 0xffff0000) | (params & 31) | (type << 8) | (dpl << 13) | (p << 15);
    return (uint64_t)hi << 32 | lo;
}

static uint32_t d_hi(uint64_t d) { return (uint32_t)(d >> 32); }
static uint32_t d_type(uint64_t d) { return (d_hi(d) >> 8) & 15; }
static uint32_t d_s(uint64_t d) { return (d_hi(d) >> 12) & 1; }
static uint32_t d_base(uint64_t d) { return desc_base(d); }

static uint32_t
d_limit(uint64_t d)
{
    uint32_t l = ((uint32_t)d & 0xffff) | (d_hi(d) & 0xf0000);
    return (d_hi(d) & (1u << 23)) ? (l << 12) | 0xfff : l;
}

static int d_is_code(uint64_t d) { return d_s(d) && (d_type(d) & 8); }

/* The descriptor a selector names, as the tables hold it now (0 when it
 * names nothing).  The LDT is the one LDTR holds during the operation. */
static uint64_t *cur_ldt = ldt;

static uint64_t *
desc_of(uint16_t sel)
{
    uint32_t i = sel >> 3;
    if (sel & 4)
        return i < NLDT ? &cur_ldt[i] : 0;
    return i < GDT_ENTRIES ? &gdt[i] : 0;
}

/* A random selector: mostly the random slots, sometimes a fixed one, the
 * null selector or one past a table's limit; any RPL. */
static uint16_t
rsel(void)
{
    uint32_t r = rn(16), i;
    if (r < 8)
        i = NRAND_LO + rn(GDT_ENTRIES - NRAND_LO);
    else if (r < 12)
        return (uint16_t)(SEL(rn(NLDT + 1), rn(4)) | 4);
    else if (r < 15)
        i = rn(NRAND_LO);
    else
        i = r & 1 ? GDT_ENTRIES + rn(4) : 0;
    return SEL(i, rn(4));
}

/* A selector that names a code descriptor, if one of the random slots
 * holds one (mostly), else any. */
static uint16_t
rsel_code(void)
{
    for (int t = 0; t < 6; t++) {
        uint16_t s = rsel();
        uint64_t *d = desc_of(s);
        if (d && d_is_code(*d))
            return s;
    }
    return rsel();
}

/* An offset to go to in the segment sel names: into a sled (both sleds:
 * the 16-bit truncation of a 32-bit offset into SLED from base 0 lands in
 * 0-0xffff), or, if past is set, just past the limit.  A 16-bit transfer
 * keeps the low 16 bits only, which from base 0 or SLED is in a sled
 * again.  Past the limit only for a far JMP or CALL straight to a code
 * segment: QEMU checks the new EIP against CS's limit there, but not in a
 * far RET, an IRET or a transfer through a gate, where the SDM has #GP(0)
 * too - an outcome this guest must not depend on. */
static uint32_t
landing_off(uint16_t sel, int past)
{
    uint64_t *d = desc_of(sel);
    if (!d || !d_is_code(*d))
        return SLED + rn(SLED_SIZE);
    uint32_t base = d_base(*d), lim = d_limit(*d);
    if (past && rn(6) == 0)
        return lim + 1 + rn(3);
    /* A 16-bit code segment is entered below 64 KiB: where an EIP above
     * 0xffff would go next in one is not something to depend on (QEMU
     * keeps all 32 bits, the monitor's emulation of 16-bit code 16). */
    if (!(d_hi(*d) & (1u << 22)) && lim > 0xfffe)
        lim = 0xfffe;                   /* and not at 0xffff: IP wraps after it (QEMU: not) */
    if (base == 0 && lim >= SLED + SLED_SIZE - 1)
        return SLED + rn(SLED_SIZE);
    return rn(lim < SLED_SIZE - 1 ? lim + 1 : SLED_SIZE);
}

/* A random descriptor for a GDT or LDT slot. */
static uint64_t
rdesc(void)
{
    uint32_t kind = rn(24), dpl = rn(4), p = rn(8) != 0;
    uint32_t g = rn(2), flags = (g << 3) | (rn(4) != 0) << 2 | rn(2);
    uint32_t limit;
    switch (rn(5)) {
    case 0:  limit = rn(0x100); break;
    case 1:  limit = 0xfff; break;
    case 2:  limit = 0xffff; break;
    case 3:  limit = rn(0x100000); break;
    default: limit = 0xfffff; break;
    }
    if (kind < 8) {                     /* data: A, W, E */
        uint32_t type = rn(8), base;
        if (type & 4)                   /* expand-down: offsets above the limit */
            base = PROBE + 0x10000 + rn(0x8000);
        else
            base = rn(3) ? PROBE + rn(0x10000) : 0;
        return mkdesc(base, limit, type, 1, dpl, p, flags);
    }
    if (kind < 14) {                    /* code: A, R, C */
        uint32_t base = rn(2) ? 0 : SLED;
        return mkdesc(base, limit, 8 | rn(8), 1, dpl, p, flags);
    }
    uint32_t r = rn(10);
    switch (kind) {
    case 14: case 15: case 16:          /* call gates, 32- and 16-bit */
        return mkgate(0, 0, r < 7 ? 0xc : 4, dpl, p, rn(4) ? rn(4) : rn(32));
    case 17:                            /* task gate */
        return mkgate(rsel(), rnd(), 5, dpl, p, 0);
    case 18:                            /* interrupt and trap gates: not for the GDT */
        return mkgate(rsel(), rnd(), 6 | (r & 1) | (r & 2) << 2, dpl, p, 0);
    case 19: case 20:                   /* an LDT: ours, the other one */
        return mkdesc((uint32_t)(r & 1 ? ldt2 : ldt), r < 6 ? NLDT * 8 - 1 : rn(0x80),
                      2, 0, dpl, p, flags & 9);
    case 21:                            /* a busy TSS, 16- or 32-bit */
        return mkdesc((uint32_t)&tss, sizeof tss - 1, r & 1 ? 0xb : 3, 0, dpl, p, 0);
    default:                            /* the reserved system types */
        return mkdesc(rnd(), rnd(), "\x00\x08\x0a\x0d"[r & 3], 0, dpl, p, flags);
    }
}

/* A gate's target selector.  Never a conforming segment of DPL 0-2:
 * through a gate, QEMU makes CPL the conforming segment's DPL, where the
 * SDM keeps CPL (Vol. 3A §5.8.6), so that outcome is not QEMU's to give. */
static uint16_t
gate_target(void)
{
    for (int t = 0; t < 8; t++) {
        uint16_t s = rn(4) ? rsel_code() : rsel();
        uint64_t *d = desc_of(s);
        if (!d || !d_is_code(*d) || !(d_type(*d) & 4) || ((d_hi(*d) >> 13) & 3) == 3)
            return s;
    }
    return 0;
}

/* Fill in the call gates' targets once every slot holds its descriptor.
 * A 16-bit gate's offset has 16 bits (the upper word is reserved, and
 * QEMU would use it). */
static void
aim_gates(uint64_t *t, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t type = d_type(t[i]);
        if (d_s(t[i]) || (type != 0xc && type != 4))
            continue;
        uint16_t sel = gate_target();
        uint32_t off = landing_off(sel, 0);
        if (type == 4)
            off &= 0xffff;
        uint64_t g = t[i] & ~0xffff0000ffffffffull;     /* keep type, DPL, P, count */
        t[i] = g | mkgate(sel, off, 0, 0, 0, 0);
    }
}

/* ------------------------------------------------------------ the harness */

/* The registers an operation starts with; offsets known to the assembly. */
struct dregs {
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;    /* 0 .. 28 */
    uint32_t eflags, eip, ring, fs, gs, ds;             /* 32 .. 52 */
};

/* What came out. */
struct result {
    uint32_t vector, err, eip, cs, eflags;
    uint32_t eax, ecx, edx, ebx, ebp, esi, edi;
    uint32_t ds, es, fs, gs, esp, ss;
    uint32_t v86[4];
    uint32_t stack[6];                  /* at the landing: what the transfer pushed */
    uint32_t ldtr;
};

static struct dregs in;
static struct result R;
static struct kctx hctx;
static volatile uint32_t active;
uint32_t df_target;                     /* where df_enter goes */
uint16_t df_far_ptr[3];                 /* for JMP/CALL m16:32 and m16:16 */

__asm__(
    ".text\n"
    /* df_enter(struct dregs *): the operation's registers, then its code
     * at its ring (ring 3 by IRET, with SS 0x23 and CS 0x1b). */
    ".globl df_enter\n"
    "df_enter:\n"
    "    movl 4(%esp), %ebp\n"
    "    movl 36(%ebp), %eax\n"
    "    movl %eax, df_target\n"
    "    cmpl $0, 40(%ebp)\n"
    "    jne 1f\n"
    "    movw 44(%ebp), %fs\n"
    "    movw 48(%ebp), %gs\n"
    "    movw 52(%ebp), %es\n"
    "    movl 0(%ebp), %eax\n"
    "    movl 4(%ebp), %ecx\n"
    "    movl 8(%ebp), %edx\n"
    "    movl 12(%ebp), %ebx\n"
    "    movl 24(%ebp), %esi\n"
    "    movl 28(%ebp), %edi\n"
    "    movl 16(%ebp), %esp\n"
    "    movl 20(%ebp), %ebp\n"
    "    jmp *df_target\n"
    "1:  pushl $0x23\n"
    "    pushl 16(%ebp)\n"
    "    pushl 32(%ebp)\n"
    "    pushl $0x1b\n"
    "    pushl 36(%ebp)\n"
    "    movw 44(%ebp), %fs\n"
    "    movw 48(%ebp), %gs\n"
    "    movw 52(%ebp), %es\n"
    "    movl 0(%ebp), %eax\n"
    "    movl 4(%ebp), %ecx\n"
    "    movl 8(%ebp), %edx\n"
    "    movl 12(%ebp), %ebx\n"
    "    movl 24(%ebp), %esi\n"
    "    movl 28(%ebp), %edi\n"
    "    pushl 20(%ebp)\n"
    "    movw 52(%ebp), %ds\n"
    "    popl %ebp\n"
    "    iret\n"

    /* Segment loads: EAX the selector, EDX an offset to read a byte at
     * (EDI 0: none), ECX the selector to put back.  Out: EAX the selector
     * read back, EBX the byte. */
#define DF_LOAD(r, pfx)                                                     \
    ".globl df_ld_" #r "\n"                                                 \
    "df_ld_" #r ":\n"                                                       \
    "    movw %ax, %" #r "\n"                                               \
    "    testl %edi, %edi\n"                                                \
    "    jz 1f\n"                                                           \
    "    movzbl " pfx "(%edx), %ebx\n"                                      \
    "1:  movl %" #r ", %eax\n"                                              \
    "    movw %cx, %" #r "\n"                                               \
    "    int $0x81\n"
    DF_LOAD(ds, "%ds:")
    DF_LOAD(es, "%es:")
    DF_LOAD(fs, "%fs:")
    DF_LOAD(gs, "%gs:")
    DF_LOAD(ss, "%ss:")

    /* Load FS, rewrite a descriptor (EBP its address, ESI:EDI the new
     * one), read through FS again (the hidden part: EBX = ECX), reload
     * FS, read (ESI).  EDX the offset, valid for both. */
    ".globl df_rw_fs\n"
    "df_rw_fs:\n"
    "    movw %ax, %fs\n"
    "    movzbl %fs:(%edx), %ebx\n"
    "    movl %esi, (%ebp)\n"
    "    movl %edi, 4(%ebp)\n"
    "    movzbl %fs:(%edx), %ecx\n"
    "    movl %fs, %eax\n"
    "    movw %ax, %fs\n"
    "    movzbl %fs:(%edx), %esi\n"
    "    int $0x81\n"

    /* LAR, LSL, VERR, VERW of ESI.  EBX, EDX preset; ECX and EAX the ZFs. */
    ".globl df_lar\n"
    "df_lar:\n"
    "    lar %esi, %ebx\n"
    "    setz %cl\n"
    "    lsl %esi, %edx\n"
    "    setz %ch\n"
    "    verr %si\n"
    "    setz %al\n"
    "    verw %si\n"
    "    setz %ah\n"
    "    int $0x81\n"

    /* Far transfers through far_ptr (df_far holds its address). */
    ".globl df_jmp, df_jmpw, df_call, df_callw\n"
    "df_jmp:   ljmp *df_far_ptr\n    int $0x81\n"
    "df_jmpw:  ljmpw *df_far_ptr\n    int $0x81\n"
    "df_call:  lcall *df_far_ptr\n    int $0x81\n"
    "df_callw: lcallw *df_far_ptr\n    int $0x81\n"

    /* INT 0x40 + n: eight entries of four bytes each. */
    ".globl df_int\n"
    "df_int:\n"
    "    int $0x40\n    int $0x81\n"
    "    int $0x41\n    int $0x81\n"
    "    int $0x42\n    int $0x81\n"
    "    int $0x43\n    int $0x81\n"
    "    int $0x44\n    int $0x81\n"
    "    int $0x45\n    int $0x81\n"
    "    int $0x46\n    int $0x81\n"
    "    int $0x47\n    int $0x81\n"

    /* Returns: ESP at the frame. */
    ".globl df_iret, df_iretw, df_lret, df_lret8, df_lretw, df_lretw4\n"
    "df_iret:   iret\n    int $0x81\n"
    "df_iretw:  iretw\n    int $0x81\n"
    "df_lret:   lret\n    int $0x81\n"
    "df_lret8:  lret $8\n    int $0x81\n"
    "df_lretw:  lretw\n    int $0x81\n"
    "df_lretw4: lretw $4\n    int $0x81\n"

    /* LLDT of EAX, then FS loaded with ESI (an LDT selector). */
    ".globl df_lldt\n"
    "df_lldt:\n"
    "    lldt %ax\n"
    "    sldt %ebx\n"
    "    movw %si, %fs\n"
    "    movl %fs, %eax\n"
    "    int $0x81\n"
);
#undef DF_LOAD

extern char df_ld_ds[], df_ld_es[], df_ld_fs[], df_ld_gs[], df_ld_ss[], df_rw_fs[], df_lar[];
extern char df_jmp[], df_jmpw[], df_call[], df_callw[], df_int[];
extern char df_iret[], df_iretw[], df_lret[], df_lret8[], df_lretw[], df_lretw4[], df_lldt[];
void df_enter(struct dregs *r);

/* Linear address of seg:off as the tables say (for reading the stack a
 * trap left; 0 if unknown). */
static uint32_t
lin(uint16_t sel, uint32_t off)
{
    if ((sel & ~3) == 0x10 || (sel & ~3) == 0x20)
        return off;
    uint64_t *d = desc_of(sel);
    if (!d)
        return 0;
    if (!(d_hi(*d) & (1u << 22)))
        off &= 0xffff;
    return d_base(*d) + off;
}

/* Every trap comes here while an operation runs: vector 3 from a sled is
 * a landing, VEC_DONE the end of an operation, anything else a fault. */
static void
df_trap(struct trapframe *f)
{
    if (!active) {
        print_trapframe("descfuzz: trap outside an operation", f);
        exit(EXIT_UNEXPECTED_TRAP);
    }
    active = 0;
    R.vector = f->vector;
    R.err = f->err;
    R.eip = f->eip;
    R.cs = f->cs;
    R.eflags = f->eflags;
    R.eax = f->eax; R.ecx = f->ecx; R.edx = f->edx; R.ebx = f->ebx;
    R.ebp = f->ebp; R.esi = f->esi; R.edi = f->edi;
    R.ds = f->ds; R.es = f->es; R.fs = f->fs; R.gs = f->gs;
    uint32_t a;
    if (f->eflags & EFL_VM) {
        R.esp = f->esp;
        R.ss = f->ss;
        R.v86[0] = f->v86_es; R.v86[1] = f->v86_ds;
        R.v86[2] = f->v86_fs; R.v86[3] = f->v86_gs;
        a = (f->ss << 4) + (f->esp & 0xffff);
    } else if (f->cs & 3) {
        R.esp = f->esp;
        R.ss = f->ss;
        a = lin((uint16_t)f->ss, f->esp);
    } else {
        R.esp = (uint32_t)&f->esp;
        R.ss = READ_SEG(ss);
        a = R.esp;
    }
    if (f->vector == VEC_BP && a >= STK_AREA && a + 24 <= STK_AREA + STK_AREA_SIZE)
        for (int i = 0; i < 6; i++)
            R.stack[i] = ((uint32_t *)a)[i];
    R.ldtr = sldt();
    ctx_restore(&hctx, 1);
}

/* ------------------------------------------------------------ one operation */

enum { OP_LOAD, OP_REWRITE, OP_LAR, OP_FAR, OP_INT, OP_IRET, OP_LRET, OP_LLDT, NOPS };
static const char *const op_name[NOPS] = { "load", "rewrite", "lar", "far", "int", "iret", "lret", "lldt" };
static const char *const sreg_name[5] = { "ds", "es", "fs", "gs", "ss" };

struct op {
    int kind, ring, sub;
    uint16_t sel, sel2;
    uint32_t off;
    const char *what;
};

/* An offset inside the limit of the data or readable code segment *d
 * whose linear address is in a sled or the probe area (NOREAD: none). */
static uint32_t
read_off(uint64_t d)
{
    if (!d_s(d))
        return NOREAD;
    uint32_t base = d_base(d), lim = d_limit(d), off, lo, hi;
    uint32_t upper = (d_hi(d) & (1u << 22)) ? 0xffffffffu : 0xffff;
    if (!d_is_code(d) && (d_type(d) & 4)) {       /* expand-down: (lim, upper] */
        if (lim >= upper)
            return NOREAD;
        uint32_t room = upper - lim;
        off = upper - rn(room < 0x8000 ? room : 0x8000);
    } else if (base == 0 && lim >= PROBE_HI) {
        off = PROBE + rn(0x10000);
    } else {
        off = rn(lim < 0xffff ? lim + 1 : 0x10000);
    }
    uint32_t a = base + off;
    lo = a, hi = a + 1;
    if ((hi <= SLED_SIZE) || (lo >= SLED && hi <= SLED + SLED_SIZE) ||
        (lo >= PROBE_LO && hi <= PROBE_HI))
        return off;
    return NOREAD;
}

static void
make_tables(void)
{
    for (int i = NRAND_LO; i < GDT_ENTRIES; i++)
        gdt[i] = rdesc();
    gdt[SLOT_LDT] = mkdesc((uint32_t)ldt, NLDT * 8 - 1, 2, 0, 0, 1, 0);
    gdt[SLOT_D1] = mkdesc(0, 0xfffff, 3, 1, 1, 1, 0xc);
    gdt[SLOT_D2] = mkdesc(0, 0xfffff, 3, 1, 2, 1, 0xc);
    for (int i = 0; i < NLDT; i++) {
        ldt[i] = rdesc();
        ldt2[i] = rdesc();
    }
    aim_gates(gdt + NRAND_LO, GDT_ENTRIES - NRAND_LO);
    aim_gates(ldt, NLDT);
    cur_ldt = ldt2;
    aim_gates(ldt2, NLDT);
    cur_ldt = ldt;
    for (int v = IVEC; v < IVEC + 8; v++) {
        uint32_t r = rn(16), type;
        if (r < 5) type = 0xe;
        else if (r < 9) type = 0xf;
        else if (r < 11) type = 6;
        else if (r < 12) type = 7;
        else if (r < 13) type = 5;
        else type = "\x0c\x04\x02\x09"[r & 3];
        uint16_t sel = gate_target();
        uint32_t off = landing_off(sel, 0);
        if (type == 6 || type == 7)     /* a 16-bit gate: only 16 bits of offset */
            off &= 0xffff;
        idt[v] = mkgate(sel, off, type, rn(4), rn(8) != 0, 0);
    }
    /* The inner stacks of call gates and interrupts to rings 1 and 2:
     * mostly the flat DPL-1 and DPL-2 data segments. */
    tss.ss1 = rn(4) ? SEL(SLOT_D1, 1) : rsel();
    tss.esp1 = STK1 - 4 * rn(4);
    tss.ss2 = rn(4) ? SEL(SLOT_D2, 2) : rsel();
    tss.esp2 = STK2 - 4 * rn(4);
    tss.link = rsel();
    /* An inner stack whose segment is not present: QEMU raises #TS where
     * the SDM has #SS (Vol. 2A, CALL and INT n); so they are present. */
    uint64_t *d1 = desc_of((uint16_t)tss.ss1), *d2 = desc_of((uint16_t)tss.ss2);
    if (d1 && d_s(*d1))
        *d1 |= 1ull << 47;
    if (d2 && d_s(*d2))
        *d2 |= 1ull << 47;
}

/* Make the operation: set `in` and say what it is. */
static void
make_op(struct op *o)
{
    static char what[96];
    uint32_t r = rn(100);
    o->kind = r < 22 ? OP_LOAD : r < 30 ? OP_REWRITE : r < 40 ? OP_LAR : r < 58 ? OP_FAR :
              r < 72 ? OP_INT : r < 86 ? OP_IRET : r < 95 ? OP_LRET : OP_LLDT;
    o->ring = o->kind == OP_LLDT ? 0 : rn(2) ? 3 : 0;
    memset(&in, 0, sizeof in);
    in.ring = o->ring;
    in.esp = o->ring ? USTK : KOPSTK;
    in.ds = o->ring ? SEG_UDATA : SEG_KDATA;
    static const uint16_t fsgs[2][3] = { { 0, SEG_KDATA, SEG_UDATA }, { 0, SEG_UDATA, SEG_UDATA } };
    in.fs = fsgs[o->ring != 0][rn(3)];
    in.gs = fsgs[o->ring != 0][rn(3)];
    static const uint32_t fl3[4] = { EFL_IF, 0, EFL_IF | EFL_IOPL(3), EFL_IOPL(3) };
    in.eflags = EFL_1 | fl3[rn(4)];
    in.ebx = 0x5a5a5a5a;
    in.edx = 0x5a5a5a5a;
    o->sel = rsel();
    o->what = what;
    what[0] = 0;
    uint64_t *d = desc_of(o->sel);

    switch (o->kind) {
    case OP_LOAD: {
        static char *const fn[5] = { df_ld_ds, df_ld_es, df_ld_fs, df_ld_gs, df_ld_ss };
        o->sub = rn(5);
        in.eip = (uint32_t)fn[o->sub];
        in.eax = o->sel;
        in.ecx = o->sub == 4 ? (o->ring ? SEG_UDATA : SEG_KDATA) : o->sub < 2 ? in.ds : 0;
        o->off = d ? read_off(*d) : NOREAD;
        in.edi = o->off != NOREAD;
        in.edx = o->off;
        snprintf(what, sizeof what, "mov %s, %04x; read at %08x", sreg_name[o->sub], o->sel, o->off);
        break;
    }
    case OP_REWRITE: {
        /* A data selector (made so if need be) and a new descriptor that
         * maps the same offset somewhere readable - or does not. */
        uint16_t sel = rn(4) ? (uint16_t)SEL(NRAND_LO + rn(GDT_ENTRIES - NRAND_LO), rn(4))
                             : (uint16_t)(SEL(rn(NLDT), rn(4)) | 4);
        d = desc_of(sel);
        *d = mkdesc(rn(2) ? 0 : PROBE + rn(0x10000), 0xfffff, 2 | rn(2), 1, rn(4), 1, 0xc);
        o->sel = sel;
        o->off = read_off(*d);
        /* The descriptor rewritten: mostly the one loaded, sometimes
         * another random one (never a fixed slot the harness needs). */
        uint64_t *t = rn(4) ? d : desc_of(rsel());
        if (!t || (t < gdt + NRAND_LO && (t < ldt || t >= ldt + NLDT)))
            t = d;
        uint32_t off = o->off, nb;
        if (off >= PROBE_LO)
            nb = rn(2) ? 0 : rn(0x1000);
        else
            nb = PROBE + rn(0x10000);
        uint64_t nd = rn(5) ? mkdesc(nb, 0xfffff, 2 | rn(2), 1, rn(4), rn(6) != 0, 0xc) : rdesc();
        in.eip = (uint32_t)df_rw_fs;
        in.eax = sel;
        in.edx = off;
        in.ebp = (uint32_t)t;
        in.esi = (uint32_t)nd;
        in.edi = (uint32_t)(nd >> 32);
        snprintf(what, sizeof what, "mov fs, %04x; read at %08x; rewrite %08x to %08x:%08x",
                 sel, off, in.ebp, in.edi, in.esi);
        break;
    }
    case OP_LAR:
        in.eip = (uint32_t)df_lar;
        in.esi = o->sel;
        if (o->ring && d && !d_s(*d) && d_type(*d) == 9 && ((d_hi(*d) >> 13) & 3) == 3)
            *d &= ~(1ull << 45);        /* Deviation (shadow.c): DPL 3 -> 2 */
        snprintf(what, sizeof what, "lar/lsl/verr/verw %04x", o->sel);
        break;
    case OP_FAR: {
        static char *const fn[4] = { df_jmp, df_jmpw, df_call, df_callw };
        o->sub = rn(4);
        in.eip = (uint32_t)fn[o->sub];
        o->sel = rn(3) ? rsel_code() : rsel();
        d = desc_of(o->sel);
        /* A JMP through a call gate to a segment not present: QEMU raises
         * #GP where the SDM has #NP (Vol. 2A, JMP); made a CALL instead. */
        if (o->sub < 2 && d && !d_s(*d) && (d_type(*d) & 7) == 4) {
            uint64_t *c = desc_of((uint16_t)((uint32_t)*d >> 16));
            if (c && d_s(*c) && !(d_hi(*c) & (1u << 15)))
                o->sub += 2;
        }
        in.eip = (uint32_t)fn[o->sub];
        o->off = landing_off(o->sel, o->sub < 2);      /* JMP only: see landing_off */
        if (o->sub & 1) {
            df_far_ptr[0] = (uint16_t)o->off;
            df_far_ptr[1] = o->sel;
        } else {
            df_far_ptr[0] = (uint16_t)o->off;
            df_far_ptr[1] = (uint16_t)(o->off >> 16);
            df_far_ptr[2] = o->sel;
        }
        snprintf(what, sizeof what, "%s %04x:%08x", (const char *[]){ "ljmp", "ljmpw", "lcall", "lcallw" }[o->sub],
                 o->sel, o->off);
        break;
    }
    case OP_INT:
        o->sub = rn(8);
        in.eip = (uint32_t)df_int + 4 * o->sub;
        snprintf(what, sizeof what, "int $0x%x", IVEC + o->sub);
        break;
    case OP_IRET: case OP_LRET: {
        /* The frame at FRAME: EIP, CS, [EFLAGS,] [filler,] ESP, SS [, ES DS FS GS]. */
        int w = rn(4) == 0;             /* 16-bit form */
        uint32_t imm = 0, fr[12], n = 0;
        uint16_t cs = rn(4) ? rsel_code() : rsel();
        uint32_t eflags = 0;
        int vm = 0;
        if (o->kind == OP_IRET) {
            o->sub = w;
            in.eip = (uint32_t)(w ? df_iretw : df_iret);
            eflags = EFL_1 | (rnd() & (EFL_CF | EFL_ZF | EFL_SF | EFL_OF | EFL_IF | EFL_IOPL_MASK | EFL_AC));
            if (rn(24) == 0)
                eflags |= EFL_NT;
            if (!w && o->ring == 0 && rn(12) == 0) {
                vm = 1;
                eflags |= EFL_VM;
            }
        } else {
            o->sub = rn(2) * 2 + w;
            static char *const fn[4] = { df_lret, df_lret8, df_lretw, df_lretw4 };
            in.eip = (uint32_t)fn[o->sub];
            imm = (o->sub & 2) ? (w ? 4 : 8) : 0;
        }
        uint32_t eip = landing_off(cs, 0);
        if (vm) {                       /* v86: CS * 16 + IP inside the low sled */
            cs = (uint16_t)rn(0x100);
            eip = rn(SLED_SIZE - cs * 16u);
        }
        uint16_t ss = rn(3) ? rsel() : (uint16_t)(rn(2) ? SEG_UDATA : SEL(SLOT_D1 + rn(2), 1 + rn(2)));
        uint32_t esp = STKX + 0x400 - 4 * rn(8);
        /* A return to an outer ring whose SS is not present: the SDM has
         * #SS, QEMU raises #NP; so the SS is always present here. */
        uint64_t *sd = desc_of(ss);
        if (sd && d_s(*sd))
            *sd |= 1ull << 47;
        fr[n++] = eip;
        fr[n++] = cs;
        if (o->kind == OP_IRET)
            fr[n++] = eflags;
        for (uint32_t k = 0; k < imm / (w ? 2 : 4); k++)
            fr[n++] = 0xf111e000 + k;
        fr[n++] = vm ? 0x800 : esp;
        fr[n++] = vm ? 0x10 : ss;
        if (vm)
            for (int k = 0; k < 4; k++)
                fr[n++] = rn(0x10000);
        if (w) {
            uint16_t *p = (uint16_t *)FRAME;
            for (uint32_t k = 0; k < n; k++)
                p[k] = (uint16_t)fr[k];
        } else {
            for (uint32_t k = 0; k < n; k++)
                ((uint32_t *)FRAME)[k] = fr[k];
        }
        in.esp = FRAME;
        snprintf(what, sizeof what, "%s%s%s to %04x:%08x eflags %08x ss:esp %04x:%08x",
                 o->kind == OP_IRET ? "iret" : "lret", w ? "w" : "", imm ? " $imm" : "",
                 cs, eip, eflags, fr[n - (vm ? 5 : 1)] & 0xffff, fr[n - (vm ? 6 : 2)]);
        break;
    }
    case OP_LLDT:
        o->sel = rn(4) ? rsel() & ~4 : rsel();
        o->sel2 = (uint16_t)(SEL(rn(NLDT + 1), rn(4)) | 4);
        in.eip = (uint32_t)df_lldt;
        in.eax = o->sel;
        in.esi = o->sel2;
        snprintf(what, sizeof what, "lldt %04x; mov fs, %04x", o->sel, o->sel2);
        break;
    }
}

/* ------------------------------------------------------------ output */

static char line[128];
static uint32_t lpos;

static void
out_flush(void)
{
    const char *s = line;
    uint32_t n = lpos;
    while (n) {
        while (!(inb(COM1 + 5) & 0x20))
            ;
        uint32_t k = n < 16 ? n : 16;
        for (uint32_t i = 0; i < k; i++)
            outb(COM1, (uint8_t)s[i]);
        s += k;
        n -= k;
    }
    lpos = 0;
}

static uint32_t
fnv(uint32_t h, const void *p, uint32_t n)
{
    const uint8_t *b = p;
    while (n--)
        h = (h ^ *b++) * 16777619u;
    return h;
}

static void
show_desc(const char *what, int i, uint64_t d)
{
    printf("  %s[%d] %08x:%08x\n", what, i, d_hi(d), (uint32_t)d);
}

static void
run_one(uint32_t index)
{
    struct op o;
    rs = (opt.seed * 0x9e3779b9u) ^ (index * 0x85ebca6bu) ^ 0x6a09e667u;
    if (!rs)
        rs = 1;
    rnd();
    /* Fresh stacks, with a marker in every word a transfer may copy. */
    for (uint32_t a = STK_AREA; a < STK_AREA + STK_AREA_SIZE; a += 4)
        *(uint32_t *)a = 0xa0000000 | a;
    for (uint32_t a = USTK; a < USTK + 0x40; a += 4)
        *(uint32_t *)a = 0xbb000000 | (a & 0xfff);
    make_tables();
    make_op(&o);
    if (opt.verbose) {
        printf("op %u %s ring %d: %s\n", index, op_name[o.kind], o.ring, o.what);
        for (int i = NRAND_LO; i < GDT_ENTRIES; i++)
            show_desc("gdt", i, gdt[i]);
        for (int i = 0; i < NLDT; i++)
            show_desc("ldt", i, ldt[i]);
        for (int i = 0; i < NLDT; i++)
            show_desc("ldt2", i, ldt2[i]);
        for (int v = IVEC; v < IVEC + 8; v++)
            show_desc("idt", v, idt[v]);
        printf("  tss ss1:esp1 %04x:%08x ss2:esp2 %04x:%08x link %04x\n",
               tss.ss1, tss.esp1, tss.ss2, tss.esp2, tss.link);
    }
    memset(&R, 0, sizeof R);
    lldt(SEL_LDT);
    if (ctx_save(&hctx) == 0) {
        active = 1;
        df_enter(&in);
    }
    lldt(SEL_LDT);
    cur_ldt = ldt;
    uint32_t h = fnv(2166136261u, &R, sizeof R);
    h = fnv(h, &gdt[SLOT_LDT], (GDT_ENTRIES - SLOT_LDT) * 8);
    h = fnv(h, ldt, sizeof ldt);
    h = fnv(h, ldt2, sizeof ldt2);
    if (opt.verbose) {
        printf("  -> vector %u err %04x at %04x:%08x eflags %08x\n", R.vector, R.err, R.cs, R.eip, R.eflags);
        printf("  eax %08x ecx %08x edx %08x ebx %08x ebp %08x esi %08x edi %08x\n",
               R.eax, R.ecx, R.edx, R.ebx, R.ebp, R.esi, R.edi);
        printf("  ds %04x es %04x fs %04x gs %04x ss:esp %04x:%08x ldtr %04x\n",
               R.ds, R.es, R.fs, R.gs, R.ss, R.esp, R.ldtr);
        printf("  v86 es ds fs gs %04x %04x %04x %04x\n", R.v86[0], R.v86[1], R.v86[2], R.v86[3]);
        printf("  stack %08x %08x %08x %08x %08x %08x\n", R.stack[0], R.stack[1], R.stack[2],
               R.stack[3], R.stack[4], R.stack[5]);
        for (int i = SLOT_LDT; i < GDT_ENTRIES; i++)
            show_desc("gdt after", i, gdt[i]);
        for (int i = 0; i < NLDT; i++)
            show_desc("ldt after", i, ldt[i]);
        for (int i = 0; i < NLDT; i++)
            show_desc("ldt2 after", i, ldt2[i]);
    }
    if (R.vector == VEC_DONE)
        lpos = snprintf(line, sizeof line, "%u %08x D\n", index, h);
    else if (R.vector == VEC_BP)
        lpos = snprintf(line, sizeof line, "%u %08x L\n", index, h);
    else
        lpos = snprintf(line, sizeof line, "%u %08x F%u:%x\n", index, h, R.vector, R.err);
    out_flush();
}

int
main(uint32_t magic, struct multiboot_info *mbi)
{
    parse_args(magic, mbi);
    cpu_init();
    /* The sleds: a byte of INT3 everywhere a transfer may land. */
    __asm__ volatile("cld; rep stosb" : : "D"(0), "c"(SLED_SIZE), "a"(0xcc) : "memory");
    memset((void *)SLED, 0xcc, SLED_SIZE);
    tss.esp0 = STK0;
    for (uint32_t a = PROBE_LO; a < PROBE_HI; a++)
        *(uint8_t *)a = pattern(a);
    for (int v = 0; v < 32; v++)
        set_trap_handler(v, df_trap);
    set_trap_handler(VEC_DONE, df_trap);
    idt_set_dpl(VEC_BP, 3);
    idt_set_dpl(VEC_DONE, 3);
    printf("descfuzz: seed=%u first=%u count=%u\n", opt.seed, opt.first, opt.count);
    for (uint32_t i = opt.first; i < opt.first + opt.count; i++)
        run_one(i);
    printf("descfuzz: %u operations\n", opt.count);
    return 0;
}
