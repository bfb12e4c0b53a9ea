/*
 * bt.c -- the binary translation sub-system.
 *
 * Guest code that cannot run directly - the guest kernel (CPL 0-2), real
 * mode, user code with IOPL or IF set in ways the hardware would act on -
 * is translated into a translation cache (TC) and run from there at ring
 * 1 (docs/00-overview.md; US 6,397,242, claim 1: "binary translation
 * sub-system").  A translation unit is a run of up to a dozen guest
 * instructions (AA §3.2) ending at a control transfer or at an
 * instruction only the monitor can carry out.
 *
 * Most instructions are copied unchanged ("IDENT"): the registers, the
 * status flags and DS, ES, SS and FS are all the guest's while translated
 * code runs - the segment registers hold shadow or cached descriptors
 * with the guest's bases (shadow.c).  The others become one of:
 *  - an inline sequence in the TC, with the guest's virtual state in the
 *    page %gs addresses (B:050): CLI, STI, PUSHF, POPF, MOV and PUSH of
 *    segment registers, I/O to ports with no side effects, and the
 *    indirect branches RET, JMP and CALL through a register or memory,
 *    whose targets are found through a dispatch table (C:030);
 *  - jumps to the target's translation, for direct branches, at first
 *    through an execute-once continuation that translates the target and
 *    patches the jump (chaining, C:010), across pages too (C:020);
 *  - a callout, `int $T_CALLOUT` and a record, after which the monitor
 *    emulates the instruction (emulate.c) and translated code carries on
 *    without a new decision when the guest stays in the kernel (B:070).
 * Instructions with a GS or CS prefix are almost IDENT: %gs belongs to the
 * monitor and %cs to the TC, so they run with the prefix changed to FS
 * and FS briefly loaded with the cached descriptor of the named segment.
 *
 * Every memory access of translated code is checked against the monitor's
 * region where the CPU does not check segment limits (software truncation,
 * H:030); the checks are specialized for the segment bases a unit runs
 * with and elided where the translator can prove them unnecessary.
 *
 * A fault in translated code is turned back into guest state at a guest
 * instruction boundary by the unit's map from TC offsets to guest
 * offsets, restoring the registers an inline sequence borrowed ("precise"
 * state, AA §5).  Every page a unit comes from is traced (trace.c): a
 * write to its code drops the unit and unchains every jump into it.  An
 * instruction that keeps trapping - writes to traced pages, accesses to
 * the monitor's region - is retranslated as an emulating callout
 * (adaptive translation, B:060).
 *
 * Hardware:   SDM Vol. 3A §5.5 (Privilege Levels), §6.12; SDM Vol. 2
 *             §2.1.1 (Instruction Prefixes); SDM Vol. 2A BOUND, JECXZ,
 *             LAHF; Vol. 2B PUSHF, POPF, SAHF.
 * Runs in:    VMM, ring 0, interrupts off; translated code at ring 1.
 * Read after: vmm.c (vmm_decide), direct.c.
 */
#include "vmm.h"

/* The bounds of the translator's memory (all fixed at build time):
 * 896 KiB of 32-bit and 64 KiB of 16-bit translation cache, 8192 units,
 * 64 contexts, 256 cross-page link targets; with the shadow page tables
 * they fill the monitor's 4 MiB window (`size build/vmm.elf`).  Any of
 * them full flushes everything (bt_flush); no guest can make them grow. */
#define MAXI      12            /* guest instructions per unit (AA §3.2) */
#define TC_SIZE   (896 << 10)
#define TC16_SIZE 0x10000
#define MAXBLOCKS 8192
#define NHASH     8192
#define NPHASH    1024          /* units by guest-physical page */
#define TC_SLACK  2048          /* room one unit and its stubs can need, at most */
/* The single-step unit's place: the last TC_SLACK bytes of each cache, so
 * that the units and the dispatch stubs appended between them stay
 * contiguous, as in_dispatch_stub expects. */
#define TC_STEP(code32) ((code32) ? TC_SIZE - TC_SLACK : TC16_SIZE - TC_SLACK)
#define NCTX      64
#define NDCTX     8             /* contexts with dispatch tables of their own */
#define NDISP     256
#define NXPAGE    256

enum term { TERM_EMULATE = 1, TERM_CONTINUE, TERM_BRANCH, TERM_INDIRECT };

/* What a guest instruction became; for the precise state at a fault
 * inside it (scratch registers) and for the translation dump. */
enum kind { K_IDENT = 0, K_WRAP, K_CLI, K_STI, K_PUSHF, K_POPF, K_SREG, K_IO, K_CR, K_RET, K_IND };

/* An exit of a unit: a jump whose target is another guest address.  It
 * first leads to its continuation stub (a callout); once chained, to the
 * target's translation. */
struct exit {
    u32 target;         /* guest EIP */
    u32 site;           /* TC offset of the jump's rel32 (rel16 in tc16); 0: no exit */
    u32 stub;           /* TC offset of the continuation */
    s16 chained;        /* the unit it now jumps to, or -1 */
    s16 in_next;        /* next exit chained to the same unit (id = unit * 2 + exit) */
};

/* The callout record: the four bytes after `int $T_CALLOUT` say which
 * unit, what kind of callout, and for a check which instruction. */
enum rec { R_EMULATE = 0, R_EXIT0, R_EXIT1, R_CHECK, R_MISS, R_IRQ, R_POPF, R_ADAPT, R_CR };
#define REC(unit, kind, i) ((u32)(unit) | ((u32)(kind) << 16) | ((u32)(i) << 20))
#define REC_UNIT(r) ((r) & 0xffff)
#define REC_KIND(r) (((r) >> 16) & 0xf)
#define REC_INSN(r) (((r) >> 20) & 0xf)

/* A translation unit, as translated.  Written only here. */
struct block {
    gpa_t pa;           /* guest-physical address of its first byte */
    u32 eip;            /* the key: (pa, eip, ctx) */
    u8 ctx;             /* the context it was translated for (ctx_of) */
    u8 code32;
    u8 ninsn;           /* instructions before the terminator */
    u8 term;            /* enum term */
    u8 glen;            /* guest bytes covered, terminator included */
    u8 valid;           /* cleared when the guest writes its code (trace.c) */
    u8 flips;           /* stack-check guesses found wrong (check_fired) */
    u32 tc;             /* offset of its code in tc[] or tc16[] */
    u16 tclen;
    u16 mi;             /* its instructions: binsn[mi .. mi + ninsn] */
    u16 bcend;          /* ... and after the check of a CALL's return-address push */
    s16 next;           /* hash chain */
    s16 pnext;          /* chain of units in the same guest-physical page */
    gpa_t pa2;          /* the second page, for a lone instruction that straddles; else ~0 */
    struct exit exit[2];
    s16 in_head;        /* exits of other units chained to this one */
    u32 stub[2];        /* TC offsets of its dispatch stubs (C:030): ret, other; or 0 */
    u32 serial;         /* which translation this is (the decoded-terminator cache) */
};

/* What each guest instruction of a unit became, ninsn + 1 entries (the
 * last for the terminator, or for where the unit goes on), kept apart
 * from struct block because most units are much shorter than MAXI:
 * Linux's kernel averages under six records and about 75 bytes of
 * translation per unit.  Allocated in translation order, reset by a
 * flush like the cache itself; the single-step unit has its own. */
struct binsn {
    u16 tend;           /* TC offset just past guest instruction i itself */
    u16 istart;         /* TC offset where guest instruction i's own code starts */
    u16 cend;           /* TC offset just after instruction i's truncation check */
    u8 goff;            /* guest offset of instruction i; [ninsn]: the terminator or next */
    u8 kind;            /* enum kind of instruction i (and of the terminator) */
    u8 sv;              /* registers an inline sequence keeps in %gs (SV_*) */
} __attribute__((packed));
#define NBINSN (6 * MAXBLOCKS)
static struct binsn binsn[NBINSN + MAXI + 1];   /* the last MAXI + 1: the single-step unit's */
static u32 binsn_used;
#define BI(b, i) binsn[(b)->mi + (i)]

#define SV_EAX 1        /* EAX in tcdata.save_eax */
#define SV_ECX 2        /* ECX in tcdata.save_ecx */
#define SV_REG(r) (((r) + 1) << 4)      /* register r in save_eax */

/* Decoded terminators of recently run units, so that a callout does not
 * fetch and decode its instruction again each time: an entry is good for
 * the translation whose serial number it holds. */
#define NTERM 1024
static struct {
    u32 serial;
    struct insn in;
} term_cache[NTERM];
static u32 next_serial = 1;

static void code_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new);

static u8 tc[TC_SIZE] __attribute__((aligned(PGSIZE)));
static u8 tc16[TC16_SIZE] __attribute__((aligned(PGSIZE)));

/*B:050 The pages of monitor data translated code may touch, through %gs:
 * scratch words, the guest's virtual flags and selectors that inline
 * sequences read and write, and the dispatch tables of indirect branches.
 * The monitor fills them before each entry and reads them back after.  At
 * ring 1 only translated code's own instructions reach them; at ring 3 (no
 * checks) the guest could write them too, so they hold nothing the monitor
 * relies on for its own safety. :*/
static struct tcdata {
    u32 save_fs;        /* FS while an instruction runs with FS borrowed */
    u32 sel_gs;         /* the hardware selector standing for the guest's GS */
    u32 sel_cs;         /* ... and for its CS */
    u32 save_eax, save_ecx, save_flags;         /* registers a sequence borrows */
    u32 vif;            /* the guest's IF: 0 or EFLAGS_IF */
    u32 vflags;         /* its other virtual flags: TF IOPL NT AC ID, and bit 1 */
    u32 pending;        /* nonzero: a virtual interrupt waits for IF (dev.c) */
    u32 ind_target;     /* guest EIP of the indirect branch being dispatched */
    u32 cr[5];          /* the guest's CR0, CR2, CR3, CR4 ([1] unused), for MOV from them */
    u32 ncr0;           /* minus its CR0, for MOV to CR0 of the same value */
    u32 sel[NSEG];      /* the guest's selectors, for MOV from and PUSH of them */
    u32 bias[NSEG];     /* segment base + 2^31, for checks through GS and CS */
    s32 bnd[2];         /* BOUND's pair for a linear address + 2^31 */
    s32 bnd_pos[2];     /* ... for a register holding a positive address (H:035) */
    s32 bnd_neg[2];     /* ... and a negative one */
    u32 disp[NDCTX][2][NDISP];  /* dispatch: [context][ret or other][index] -> TC address */
    u32 count[MAXBLOCKS + 1];   /* unit entries, with count=1 (make tcdump) */
} tcdata __attribute__((aligned(PGSIZE)));
static u8 tcdata_pad[(PGSIZE - sizeof(struct tcdata) % PGSIZE) % PGSIZE] __attribute__((used));
#define TCD(f) ((u32)offsetof(struct tcdata, f))

/*B:076 Writing the translation cache.  Translated code must not write
 * the cache it runs from, so its pages are mapped read-only (and, for
 * translated code at ring 3, user-readable).  The monitor writes them
 * through a second, writable mapping of the same frame, one page at a
 * time in the temporary slot SLOT_TC (an INVLPG when the page changes),
 * rather than by clearing CR0.WP around each write: CR0.WP is one of
 * the bits whose change invalidates every TLB entry (SDM Vol. 3A
 * §4.10.4.1, "Operations that Invalidate TLBs"), and the monitor writes
 * the cache at every translation and every chained link.
 *
 * A unit is first emitted into a scratch buffer and copied into the
 * cache when it is complete, four bytes per store.  Only the bytes'
 * destination changes: emit_p still moves through the cache's own
 * addresses, so the offsets every emitter takes (emit_p - base) are
 * those the code will have.  The copy matters under an emulator that
 * tracks code pages, as QEMU does for the monitor's own host: each store
 * to a page it has translated code for takes its slow path. :*/
#define EBUF 4096
static u8 ebuf[EBUF];           /* the unit being emitted ... */
static u8 *emit_at;             /* ... whose first byte goes here in the cache; NULL when none */
static u8 *emit_p;

static void
tc_write(u8 *dst, const void *src, u32 n)
{
    const u8 *s = src;
    while (n) {
        u32 room = PGSIZE - ((u32)dst & (PGSIZE - 1)), k = n < room ? n : room;
        u8 *w = hpa_map((u32)dst - VMM_BASE + VMM_PHYS, SLOT_TC);
        u32 j = 0;
        for (; j + 4 <= k; j += 4)
            *(u32 *)(w + j) = *(const u32 *)(s + j);
        for (; j < k; j++)
            w[j] = s[j];
        dst += k, s += k, n -= k;
    }
}

/* Start emitting at `at` in the cache; emit_end copies what was emitted. */
static void
emit_begin(u8 *at)
{
    emit_at = emit_p = at;
}
static void
emit_end(void)
{
    if (emit_at && emit_p > emit_at)
        tc_write(emit_at, ebuf, emit_p - emit_at);
    emit_at = NULL;
}
static void
emit_cancel(void)
{
    emit_at = NULL;
}
static u32 tc_used, tc16_used;
static struct block blocks[MAXBLOCKS + 1];     /* the last one: single-step scratch */
static int nblocks;

/* Units and cache bytes in use, for the statistics (vmm_stats). */
void
bt_usage(u32 u[4])
{
    u[0] = nblocks;
    u[1] = MAXBLOCKS;
    u[2] = tc_used;
    u[3] = TC_SIZE;
}
static s16 hash[NHASH];
static s16 phash[NPHASH];
static int nstraddle;           /* valid units (not the step unit) with a pa2 */
static u16 order[2][MAXBLOCKS];         /* units in TC order: [0] tc16, [1] tc */
static int norder[2];
static u32 tc_generation;               /* bumped by every flush */
#define STEP_BLOCK MAXBLOCKS
#define MISS_STUB(k) (8 * (k))          /* TC offsets of the dispatch miss callouts: ret, other */
#define MARGIN 256                      /* the largest access checked by its first byte */

/* Options (vmm.c): the ablation switches. */
extern int opt_chain, opt_inline, opt_adapt, opt_count;

/* ---- Contexts ---- */

/*B:005 A context is what a unit's translation depends on beyond its
 * bytes: the code segment's base and size, the CPL, and the bases of ES,
 * SS, DS and FS, which its truncation checks have built in (H:030).  GS
 * is left out: its checks read its base from %gs, so a guest kernel that
 * never touches the GS user code loaded does not get a translation per
 * process.  Units are looked up by (physical address, EIP, context). :*/
static struct ctx {
    u32 cs_base;
    u8 code32, cpl;
    u32 base[4];        /* ES, SS, DS, FS; zero for 16-bit code, which has no checks */
} ctxs[NCTX];
static int nctx;
static const int ctx_seg[4] = { SEG_ES, SEG_SS, SEG_DS, SEG_FS };

/*B:090 The hottest fragments, without instrumenting the code: every
 * host interrupt that lands in translated code is a sample of where the
 * guest's time goes, and the unit it landed in is charged for it.  Units
 * are renumbered at every flush, so the samples are kept by the guest
 * address, CPL and code size a unit was translated for, in a table of
 * NTOP entries filled by the "space-saving" rule (Metwally, Agrawal and
 * El Abbadi, ICDT 2005): a new key replaces the entry with the fewest
 * samples and inherits its count, so any fragment with more than
 * 1/NTOP of the samples is certain to be in the table.  vmm_stats
 * prints the first few (`stat top`); `tcdump=N` gives exact counts, at
 * the price of a counter in every unit. :*/
#define NTOP 32
static struct top { u32 eip, samples; u8 cpl, code32; } top[NTOP];
static u32 top_samples;

static void
sample(struct block *b)
{
    top_samples++;
    if (!b || b == &blocks[STEP_BLOCK])
        return;
    u8 cpl = ctxs[b->ctx].cpl;
    struct top *min = &top[0];
    for (int i = 0; i < NTOP; i++) {
        struct top *t = &top[i];
        if (t->samples && t->eip == b->eip && t->cpl == cpl && t->code32 == b->code32) {
            t->samples++;
            return;
        }
        if (t->samples < min->samples)
            min = t;
    }
    min->eip = b->eip;
    min->cpl = cpl;
    min->code32 = b->code32;
    min->samples++;
}

/* The n most sampled fragments, most first, for the statistics. */
void
bt_print_top(int n)
{
    static u8 shown[NTOP];
    memset(shown, 0, sizeof shown);
    cprintf("stat top fragments (host interrupts that landed in translated code: %u)", top_samples);
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int i = 0; i < NTOP; i++)
            if (!shown[i] && top[i].samples && (best < 0 || top[i].samples > top[best].samples))
                best = i;
        if (best < 0)
            break;
        shown[best] = 1;
        cprintf(" cpl%u:%08x%s=%u", top[best].cpl, top[best].eip, top[best].code32 ? "" : "(16)",
                top[best].samples);
    }
    cprintf("\n");
}

/* The base each check of the unit being translated builds in: the
 * segment's, or for a relocated step its alias's (H:050). */
static u32 tr_base[NSEG];
static int tr_relocated;

static int
ctx_of(struct vcpu *v)
{
    static u32 gen = ~0u;
    static int last;
    if (gen == v->seg_gen && last < nctx)
        return last;
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.cs_base = v->seg[SEG_CS].base;
    c.code32 = vcpu_code32(v);
    c.cpl = v->cpl;
    if (c.code32)
        for (int k = 0; k < 4; k++)
            c.base[k] = v->seg[ctx_seg[k]].base;
    for (int i = 0; i < nctx; i++)
        if (!memcmp(&ctxs[i], &c, sizeof c)) {
            gen = v->seg_gen;
            return last = i;
        }
    if (nctx == NCTX)
        bt_flush("contexts full");
    ctxs[nctx] = c;
    gen = v->seg_gen;
    return last = nctx++;
}

/* ---- Flushing ---- */

static void reset_dispatch(void);

void
bt_flush(const char *why)
{
    if (opt_log & LOG_TRANSLATE)
        cprintf("translate: flush (%s)\n", why);
    vcpu0.st.tc_flushes++;
    for (int k = 0; k < 2; k++) {       /* int $T_CALLOUT; R_MISS, which table */
        u8 stub[6] = { 0xcd, T_CALLOUT };
        u32 rec = REC(0, R_MISS, k);
        memcpy(stub + 2, &rec, 4);
        tc_write(&tc[MISS_STUB(k)], stub, sizeof stub);
    }
    tc_used = 16;
    tc16_used = 0;
    binsn_used = 0;
    for (int i = 0; i <= MAXBLOCKS; i++)
        blocks[i].valid = 0;
    nblocks = 0;
    nctx = 0;
    norder[0] = norder[1] = 0;
    tc_generation++;
    for (u32 pa = 0; pa < ram_size; pa += PGSIZE)
        trace_remove(pa, TR_CODE);
    for (int i = 0; i < NHASH; i++)
        hash[i] = -1;
    for (int i = 0; i < NPHASH; i++)
        phash[i] = -1;
    nstraddle = 0;
    reset_dispatch();
}

void
bt_init(void)
{
    /* The 16-bit translation cache gets a code segment of its own based
     * at tc16, so its offsets fit in IP. */
    vmm_gdt[GDT_BT_CS16] = desc_make((u32)tc16, TC16_SIZE - 1,
                                     SEG_S | SEG_P | (bt_ring << 5) | STA_X | STA_R | STA_A);
    vmm_gdt[GDT_BT_GS] = desc_make((u32)&tcdata, sizeof tcdata - 1,
                                   SEG_S | SEG_P | SEG_DB | (bt_ring << 5) | STA_W | STA_A);
    if (bt_ring == 3) {
        /* Translated code at ring 3 must reach its own code and %gs pages
         * through user-accessible pages; at ring 1 they stay
         * supervisor-only, and the truncation checks keep the guest's
         * own accesses away from them. */
        mmu_expose((u32)tc, TC_SIZE, 0);
        mmu_expose((u32)tc16, TC16_SIZE, 0);
        mmu_expose((u32)&tcdata, (sizeof tcdata + PGSIZE - 1) & ~(PGSIZE - 1), 1);
    }
    tcdata.bnd[0] = (s32)0x80000000;
    tcdata.bnd[1] = (s32)(0x80000000u + VMM_BASE - MARGIN - 1);
    tcdata.bnd_pos[0] = MARGIN;
    tcdata.bnd_pos[1] = 0x7fffffff;
    tcdata.bnd_neg[0] = (s32)0x80000000;
    tcdata.bnd_neg[1] = (s32)(VMM_BASE - 2 * MARGIN);
    bt_flush("init");
    vcpu0.st.tc_flushes = 0;
    trace_register(TR_CODE, code_written);
}

static u32
hash_of(gpa_t pa, u32 eip)
{
    return (pa ^ (eip * 2654435761u) ^ (pa >> 12)) % NHASH;
}

/* ---- Emitting ---- */

static void
emit1(u8 b)
{
    if (!emit_at || emit_p - emit_at >= EBUF)
        panic("translation: emitting %s", emit_at ? "past the scratch buffer" : "outside a unit");
    ebuf[emit_p++ - emit_at] = b;
}
static void emit2(u32 w) { emit1(w); emit1(w >> 8); }
static void emit4(u32 w) { for (int i = 0; i < 4; i++) emit1(w >> (8 * i)); }

/* A few instructions the sequences below are built from, all of them
 * leaving EFLAGS alone. */
static void emit_mov_to_gs(int reg, u32 off)   /* mov %reg, %gs:off (7 bytes) */
{
    emit1(0x65); emit1(0x89); emit1(0x05 | (reg << 3)); emit4(off);
}
static void emit_mov_from_gs(int reg, u32 off) /* mov %gs:off, %reg (7 bytes) */
{
    emit1(0x65); emit1(0x8b); emit1(0x05 | (reg << 3)); emit4(off);
}
static void emit_store_gs_imm(u32 off, u32 imm) /* movl $imm, %gs:off */
{
    emit1(0x65); emit1(0xc7); emit1(0x05); emit4(off); emit4(imm);
}
static void emit_callout(int unit, int kind, int i)
{
    emit1(0xcd);
    emit1(T_CALLOUT);
    emit4(REC(unit, kind, i));
}

static u8 *
cache_of(int code32)
{
    return code32 ? tc : tc16;
}

/* Point the jump of exit x of unit b at TC offset `to`. */
static void
patch_exit(struct block *b, int x, u32 to)
{
    u8 *p = cache_of(b->code32) + b->exit[x].site;
    u32 rel = to - (b->exit[x].site + (b->code32 ? 4 : 2));
    if (emit_at && p >= emit_at && p < emit_p)
        memcpy(ebuf + (p - emit_at), &rel, b->code32 ? 4 : 2);    /* still in the scratch buffer */
    else
        tc_write(p, &rel, b->code32 ? 4 : 2);
}

/* Emit a jump (opcode bytes already emitted) to a new continuation stub
 * for exit x; the stubs themselves follow the unit (emit_stubs). */
static void
emit_exit_jump(struct block *b, int x, u32 target)
{
    u8 *base = cache_of(b->code32);
    b->exit[x].target = target;
    b->exit[x].site = emit_p - base;
    b->exit[x].chained = -1;
    if (b->code32)
        emit4(0);
    else
        emit2(0);
}

static void
emit_stubs(struct block *b, int idx)
{
    u8 *base = cache_of(b->code32);
    for (int x = 0; x < 2; x++) {
        if (!b->exit[x].site)
            continue;
        b->exit[x].stub = emit_p - base;
        patch_exit(b, x, b->exit[x].stub);
        emit_callout(idx, R_EXIT0 + x, 0);
    }
}

/* mov %fs, %gs:off  /  mov %gs:off, %fs, with 32-bit addressing even in
 * 16-bit code (67h prefix). */
static void
emit_fs_gs(int code32, int load, u32 off)
{
    if (!code32)
        emit1(0x67);
    emit1(0x65);
    emit1(load ? 0x8e : 0x8c);
    emit1(0x25);        /* ModRM: mod 00, reg 4 (FS), r/m 101: disp32 */
    emit4(off);
}

/* ---- Software truncation ---- */

/*H:030 Software truncation.  Where the CPU does not check segment
 * limits, a truncated segment keeps nothing out of the monitor, so the
 * translator checks every memory access itself before the instruction
 * runs: the access's linear address must lie below VMM_BASE - MARGIN.
 * The checks may not touch EFLAGS (the guest's status flags are live),
 * so they are built from LEA and BOUND, cheapest first:
 *  - none at all, when the translator can prove the address clear of the
 *    monitor: a constant one, or one whose registers it knows the range
 *    of (H:033);
 *  - `bound %reg, %gs:bnd_pos` (or bnd_neg): for [reg+disp] with a small
 *    displacement in a segment based at 0, one instruction that holds
 *    while the register stays on the side of 2^31 it was on when the unit
 *    was translated (H:035);
 *  - for any other address in ES, SS, DS or FS, whose base the unit's
 *    context fixes:
 *        mov  %eax, %gs:save_eax
 *        lea  <the instruction's own address + base + 2^31>, %eax
 *        bound %eax, %gs:bnd             ; #BR unless below VMM_BASE - MARGIN
 *        mov  %gs:save_eax, %eax
 *    (adding 2^31 turns "unsigned below VMM_BASE - MARGIN" into the
 *    signed range BOUND tests);
 *  - through GS or CS, whose base is not part of the context, the same
 *    with the base + 2^31 read from %gs:bias into ECX;
 *  - a callout, for what LEA cannot express - string instructions, XLAT,
 *    BT with a register bit offset, ENTER with nesting - after which the
 *    monitor checks the exact footprint (footprint_ok).
 * 16-bit code has no inline checks: run_block refuses to run it with a
 * segment within reach of the monitor. :*/
enum { MC_NONE, MC_INLINE, MC_CALLOUT };
enum { CK_REG, CK_LEA, CK_LEA16, CK_BIAS };

struct check {
    int n;
    struct {
        u8 kind;                /* CK_* */
        u8 reg;                 /* CK_REG: the register; its sign */
        u8 neg;
        u8 bytes[12];           /* CK_LEA*, CK_BIAS: the LEA */
        int len;
        int seg;
    } c[2];
};

static void
check_add(struct check *c, int kind, const u8 *b, int len, int seg)
{
    c->c[c->n].kind = kind;
    if (len)
        memcpy(c->c[c->n].bytes, b, len);
    c->c[c->n].len = len;
    c->c[c->n].seg = seg;
    c->n++;
}

/*H:035 The one-instruction check.  An address [reg+disp] with a small
 * displacement, in a segment based at 0, stays clear of the monitor
 * whenever reg lies in [256, 2^31) or in [2^31, VMM_BASE - 512]: BOUND
 * tests one of the two ranges, the one the register was in when the unit
 * was translated (its current value, or its known range, H:033).  A
 * kernel's stack pointer and pointers stay on their side; one that
 * crosses trips the check, and the unit is translated again (H:040). :*/
static void
check_add_reg(struct check *c, int reg, int neg)
{
    c->c[c->n].kind = CK_REG;
    c->c[c->n].reg = reg;
    c->c[c->n].neg = neg;
    c->c[c->n].len = 0;
    c->n++;
}

/*H:033 What the translator knows of the registers, instruction by
 * instruction within a unit: a range [lo, hi] for a register just loaded
 * with a constant, masked with AND, zero-extended from a byte or word,
 * shifted right, or copied from another known register; anything else
 * the instruction might write is forgotten (regs_written).  An address
 * built only from known registers, a displacement and a known segment base
 * whose whole range stays clear of the monitor needs no check - the
 * common `table[i & 63]`. :*/
static struct range {
    u32 lo, hi;
    u8 known;
} rr[8];

static void range_forget_all(void) { memset(rr, 0, sizeof rr); }
static void range_set(int r, u32 lo, u32 hi) { rr[r].lo = lo, rr[r].hi = hi, rr[r].known = 1; }

/* The general registers an instruction may write (one bit each), or
 * 0xff when the translator does not know. */
static u32
regs_written(struct insn *in)
{
    u32 op = in->map == 0 ? in->op : in->map == 1 ? 0x100 | in->op : 0xfff;
    u32 rm = in->has_modrm && in->mod == 3 ? 1u << (in->rm & (in->opsize == 1 ? 3 : 7)) : 0;
    u32 reg = in->has_modrm ? 1u << in->reg : 0;
    int byte = (op < 0x100) && !(op & 1);
    if (byte && in->has_modrm) {            /* 8-bit forms: AH-BH are parts of EAX-EBX */
        rm = in->mod == 3 ? 1u << (in->rm & 3) : 0;
        reg = 1u << (in->reg & 3);
    }
    if (op < 0x40 && (op & 7) < 4 && (op & 0x38) != 0x38)
        return (op & 2) ? reg : rm;                             /* ALU r/m, r */
    if (op < 0x40 && (op & 7) < 6 && (op & 7) >= 4)
        return (op & 0x38) == 0x38 ? 0 : 1;                     /* ALU AL/EAX, imm */
    if (op < 0x40 && (op & 7) == 7 && op >= 0x27)
        return 1;                                               /* DAA DAS AAA AAS */
    if (op < 0x40)
        return (op & 0x38) == 0x38 ? 0 : 0xff;
    if (op >= 0x40 && op < 0x50)
        return 1u << (op & 7);                                  /* INC, DEC */
    if (op >= 0x50 && op < 0x58)
        return 0;                                               /* PUSH */
    if (op >= 0x58 && op < 0x60)
        return 1u << (op & 7);                                  /* POP */
    switch (op) {
    case 0x68: case 0x6a: case 0x84: case 0x85: case 0x9e:
    case 0xa2: case 0xa3: case 0x9c: case 0x90:
        return 0;
    case 0x69: case 0x6b: case 0x8d: case 0x10f:
        return reg;
    case 0x80: case 0x81: case 0x83:
        return in->reg == 7 ? 0 : rm;
    case 0x86: case 0x87:
        return reg | rm;
    case 0x88: case 0x89: case 0x8c: case 0x8f:
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
    case 0xc6: case 0xc7:
        return rm;
    case 0x8a: case 0x8b:
        return reg;
    case 0x98: case 0x9f: case 0xa0: case 0xa1: case 0xd4: case 0xd5: case 0xd6: case 0xd7:
        return 1;
    case 0x99:
        return 4;
    case 0xf6: case 0xf7:
        return in->reg < 2 ? 0 : in->reg < 4 ? rm : 5;          /* TEST; NOT, NEG; MUL..IDIV: EAX, EDX */
    case 0xfe: case 0xff:
        return in->reg < 2 ? rm : 0;
    case 0x131:
        return 5;                                               /* RDTSC */
    case 0x1a3: case 0x1ba:
        return op == 0x1ba && in->reg == 4 ? 0 : op == 0x1a3 ? 0 : rm;
    case 0x1ab: case 0x1b3: case 0x1bb: case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad:
        return rm;
    case 0x1af: case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf: case 0x1bc: case 0x1bd:
        return reg;
    case 0x1b0: case 0x1b1:
        return rm | 1;
    case 0x1c0: case 0x1c1:
        return rm | reg;
    }
    if (op >= 0x91 && op <= 0x97)
        return 1 | (1u << (op & 7));                            /* XCHG EAX, r */
    if (op >= 0xb0 && op < 0xb8)
        return 1u << (op & 3);                                  /* MOV r8, imm */
    if (op >= 0xb8 && op < 0xc0)
        return 1u << (op & 7);
    if (op >= 0x140 && op < 0x150)
        return reg;                                             /* CMOVcc */
    if (op >= 0x190 && op < 0x1a0)
        return rm;                                              /* SETcc */
    if (op >= 0x1c8 && op < 0x1d0)
        return 1u << (op & 7);                                  /* BSWAP */
    if (in->flags & D_STRING)
        return 0x83 | 0x40;                                     /* EAX ECX ESI EDI */
    if (in->flags & D_X87)
        return in->op == 0xdf && in->reg == 4 && in->mod == 3 ? 1 : 0;  /* FNSTSW AX */
    return 0xff;
}

/* After instruction `in`: what is known of the registers. */
static void
range_update(struct insn *in, const u8 *b)
{
    u32 op = in->map == 0 ? in->op : in->map == 1 ? 0x100 | in->op : 0xfff;
    int r32 = in->opsize == 4;
    u32 w = regs_written(in);
    if (w == 0xff) {
        range_forget_all();
        return;
    }
    struct range save[8];
    memcpy(save, rr, sizeof rr);
    for (int r = 0; r < 8; r++)
        if (w & (1u << r))
            rr[r].known = 0;
    if (!r32)
        return;
    if (op >= 0xb8 && op < 0xc0) {
        range_set(op & 7, in->imm, in->imm);
    } else if ((op == 0x31 || op == 0x33 || op == 0x29 || op == 0x2b) && in->mod == 3 && in->reg == in->rm) {
        range_set(in->rm, 0, 0);
    } else if ((op == 0x81 || op == 0x83) && in->reg == 4 && in->mod == 3) {
        u32 hi = in->imm, r = in->rm;
        if (save[r].known && save[r].hi < hi)
            hi = save[r].hi;
        range_set(r, 0, hi);
    } else if (op == 0x25) {
        range_set(0, 0, save[0].known && save[0].hi < in->imm ? save[0].hi : in->imm);
    } else if (op == 0x1b6 && in->mod == 3 && !in->has_sib) {
        range_set(in->reg, 0, 0xff);
    } else if (op == 0x1b7) {
        range_set(in->reg, 0, 0xffff);
    } else if (op == 0x1b6) {
        range_set(in->reg, 0, 0xff);
    } else if (op == 0xc1 && in->reg == 5 && in->mod == 3) {
        u32 n = in->imm & 31, r = in->rm;
        if (save[r].known)
            range_set(r, save[r].lo >> n, save[r].hi >> n);
        else
            range_set(r, 0, 0xffffffffu >> n);
    } else if ((op == 0x89 || op == 0x8b) && in->mod == 3) {
        int dst = op == 0x89 ? in->rm : in->reg, src = op == 0x89 ? in->reg : in->rm;
        if (save[src].known)
            rr[dst] = save[src];
    }
    (void)b;
}

/* The range of a 32-bit ModRM address: 1 if every part is known. */
static int
ea_range(struct insn *in, u64 *lo, u64 *hi)
{
    s64 l = in->disp, h = in->disp;
    int base = -1, index = -1, scale = 0;
    if (in->has_sib) {
        base = (in->sib & 7) == 5 && in->mod == 0 ? -1 : in->sib & 7;
        index = ((in->sib >> 3) & 7) == 4 ? -1 : (in->sib >> 3) & 7;
        scale = in->sib >> 6;
    } else if (!(in->rm == 5 && in->mod == 0)) {
        base = in->rm;
    }
    if (base >= 0) {
        if (base == 4 || !rr[base].known)
            return 0;
        l += rr[base].lo, h += rr[base].hi;
    }
    if (index >= 0) {
        if (!rr[index].known)
            return 0;
        l += (s64)rr[index].lo << scale, h += (s64)rr[index].hi << scale;
    }
    *lo = (u64)l;
    *hi = (u64)h;
    return l >= 0;
}

/* Is [base + lo, base + hi + 16) clear of the monitor, with no wrap? */
static int
range_clear(u32 base, u64 lo, u64 hi)
{
    return (u64)base + hi + 16 <= VMM_BASE - MARGIN && lo <= hi;
}

/* The base register and displacement of a simple [reg+disp] address, or
 * -1. */
static int
simple_base(struct insn *in)
{
    if (in->adsize != 4 || in->has_sib || (in->rm == 5 && in->mod == 0))
        return in->has_sib && (in->sib & 7) != 5 && ((in->sib >> 3) & 7) == 4 ? in->sib & 7 : -1;
    return in->rm;
}

static int adapt_slow_check(gpa_t pa);

/* lea <the address of `in`, with base + 2^31 added>, %eax */
static int
lea_for(struct insn *in, const u8 *b, u32 k, u8 *l)
{
    int n = 0, opl = in->map == 0 ? 1 : in->map == 1 ? 2 : 3;
    int m = in->nprefix + opl;
    u8 modrm = b[m];
    int mod = modrm >> 6, rm = modrm & 7;
    int nobase = (rm == 5 && mod == 0) || (rm == 4 && (b[m + 1] & 7) == 5 && mod == 0);
    l[n++] = 0x8d;
    l[n++] = ((nobase ? 0 : 2) << 6) | rm;      /* reg = EAX, disp32 */
    if (rm == 4)
        l[n++] = b[m + 1];
    u32 d = (u32)in->disp + k;
    memcpy(l + n, &d, 4);
    return n + 4;
}

/* How does instruction `in` (bytes `b`, at guest-physical `ipa`) touch
 * memory, and what check does it need?  Fills `c` for MC_INLINE. */
static int
classify(struct vcpu *v, struct insn *in, const u8 *b, int code32, u32 cs_base, gpa_t ipa, struct check *c)
{
    c->n = 0;
    if (!bt_checks)
        return MC_NONE;
    u32 op = in->map == 0 ? in->op : 0x100 | in->op;
    int mem = in->has_modrm && in->mod != 3;
    if ((in->flags & D_STRING) && (in->rep || in->adsize != 4 || op < 0xa4 || !code32))
        return MC_CALLOUT;                              /* REP, I/O: the footprint is checked after */
    if (op == 0xd7 || (op == 0xc8 && (in->imm2 & 0x1f)))
        return MC_CALLOUT;                              /* xlat; enter with nesting */
    if (mem && (op == 0x1a3 || op == 0x1ab || op == 0x1b3 || op == 0x1bb))
        return MC_CALLOUT;                              /* bt* with a register bit offset */
    if (!code32) {
        /* 16-bit code has no inline checks: run_block refuses to run it
         * with a data segment within 64 KiB of the monitor.  CS is part
         * of the unit's key, so a CS-prefixed access through a CS based
         * there (the reset vector's F000 based at FFFF0000) is known here
         * and checked by a callout. */
        int cs_near = in->seg == SEG_CS && (u64)cs_base + 0x10000 + MARGIN > VMM_BASE;
        return (mem || (op >= 0xa0 && op <= 0xa3)) && (in->adsize == 4 || cs_near) ? MC_CALLOUT : MC_NONE;
    }
    int slow = tr_relocated || adapt_slow_check(ipa);
    if (mem && op != 0x8d && !(op >= 0x118 && op <= 0x11f)) {
        int s = emulate_ea_seg(in);
        int fixed = s != SEG_GS && s != SEG_CS;         /* its base is part of the context */
        u64 lo, hi;
        int r = simple_base(in);
        if (fixed && !tr_relocated && in->adsize == 4 && ea_range(in, &lo, &hi) && range_clear(tr_base[s], lo, hi)) {
            v->st.checks_elided++;
        } else if (fixed && !slow && tr_base[s] == 0 && r >= 0 && in->disp >= -128 && in->disp <= 128) {
            int neg = rr[r].known ? rr[r].lo >= 0x80000000u : *gpr(v, r) >= 0x80000000u;
            check_add_reg(c, r, neg);
        } else if (fixed && in->adsize == 4) {
            u8 l[12];
            int n = lea_for(in, b, tr_base[s] + 0x80000000u, l);
            check_add(c, CK_LEA, l, n, s);
        } else {
            /* The instruction's own ModRM, SIB and displacement, reg = EAX. */
            u8 l[12];
            int n = 0, opl = in->map == 0 ? 1 : in->map == 1 ? 2 : 3;
            int m = in->nprefix + opl;
            if (in->adsize == 2)
                l[n++] = 0x67;
            l[n++] = 0x8d;
            l[n++] = b[m] & 0xc7;
            for (int k = m + 1; k < m + 1 + in->has_sib + in->disp_len; k++)
                l[n++] = b[k];
            check_add(c, fixed ? CK_LEA16 : CK_BIAS, l, n, s);
        }
    }
    if (in->flags & D_STRING) {
        /* One element of MOVS, CMPS, STOS, LODS or SCAS (no REP): at most
         * four bytes at DS:ESI (any segment override) and ES:EDI, each
         * checked like a [reg] operand - a kernel's strcmp is LODSB and
         * SCASB in a loop, and a callout per byte would dominate it. */
        int src = op == 0xa4 || op == 0xa5 || op == 0xa6 || op == 0xa7 || op == 0xac || op == 0xad;
        int dst = !(op == 0xac || op == 0xad);
        for (int k = 0; k < 2; k++) {
            if (!(k ? dst : src))
                continue;
            int s = k ? SEG_ES : in->seg >= 0 ? in->seg : SEG_DS, r = k ? 7 : 6;
            int fixed = s != SEG_GS && s != SEG_CS;
            if (fixed && !slow && tr_base[s] == 0) {
                check_add_reg(c, r, *gpr(v, r) >= 0x80000000u);
            } else if (fixed) {
                u8 l[6] = { 0x8d, 0x80 | r };
                u32 d = tr_base[s] + 0x80000000u;
                memcpy(l + 2, &d, 4);
                check_add(c, CK_LEA, l, 6, s);
            } else {
                u8 l[2] = { 0x8d, r };
                check_add(c, CK_BIAS, l, 2, s);
            }
        }
        return MC_INLINE;
    }
    if (op >= 0xa0 && op <= 0xa3) {                     /* mov with a moffs */
        int s = in->seg >= 0 ? in->seg : SEG_DS;
        u32 off = in->adsize == 2 ? in->imm & 0xffff : in->imm;
        if (s != SEG_GS && s != SEG_CS && !tr_relocated) {
            if (!range_clear(tr_base[s], off, off))
                return MC_CALLOUT;                      /* the monitor relocates it */
            v->st.checks_elided++;
        } else {
            u8 l[6] = { 0x8d, 0x05 };
            memcpy(l + 2, &off, 4);
            check_add(c, CK_BIAS, l, 6, s);
        }
    }
    if (in->flags & D_STACK) {
        int d = op == 0x60 ? -32 : (op >= 0x58 && op <= 0x5f) || op == 0x61 || op == 0x8f ||
                                   op == 0xc3 || op == 0xc2 || op == 0x9d ? 0 : -4;
        int r = op == 0xc9 ? 5 : 4;                     /* leave reads (%ebp) */
        if (op == 0xc9)
            d = 0;
        if (!slow && tr_base[SEG_SS] == 0) {
            int neg = r == 4 ? v->f.esp >= 0x80000000u : v->f.ebp >= 0x80000000u;
            check_add_reg(c, r, neg);
        } else {
            u8 l[7] = { 0x8d, r == 4 ? 0x84 : 0x85 };
            int n = 2;
            if (r == 4)
                l[n++] = 0x24;
            u32 k = tr_base[SEG_SS] + 0x80000000u + (u32)d;
            memcpy(l + n, &k, 4);
            check_add(c, CK_LEA, l, n + 4, SEG_SS);
        }
    }
    return c->n ? MC_INLINE : MC_NONE;
}

static void
emit_check(struct check *c)
{
    for (int k = 0; k < c->n; k++) {
        switch (c->c[k].kind) {
        case CK_REG:            /* bound %reg, %gs:bnd_pos / bnd_neg */
            emit1(0x65); emit1(0x62); emit1(0x05 | (c->c[k].reg << 3));
            emit4(c->c[k].neg ? TCD(bnd_neg) : TCD(bnd_pos));
            vcpu0.st.checks_reg++;
            break;
        case CK_LEA:
        case CK_LEA16:
            emit_mov_to_gs(0, TCD(save_eax));
            for (int j = 0; j < c->c[k].len; j++)
                emit1(c->c[k].bytes[j]);
            if (c->c[k].kind == CK_LEA16) {             /* lea base+2^31(%eax), %eax */
                emit1(0x8d); emit1(0x80); emit4(tr_base[c->c[k].seg] + 0x80000000u);
            }
            emit1(0x65); emit1(0x62); emit1(0x05); emit4(TCD(bnd));
            emit_mov_from_gs(0, TCD(save_eax));
            vcpu0.st.checks_inline++;
            break;
        case CK_BIAS:
            emit_mov_to_gs(0, TCD(save_eax));
            emit_mov_to_gs(1, TCD(save_ecx));
            for (int j = 0; j < c->c[k].len; j++)
                emit1(c->c[k].bytes[j]);
            emit_mov_from_gs(1, TCD(bias[c->c[k].seg]));
            emit1(0x8d); emit1(0x04); emit1(0x08);      /* lea (%eax,%ecx), %eax */
            emit_mov_from_gs(1, TCD(save_ecx));
            emit1(0x65); emit1(0x62); emit1(0x05); emit4(TCD(bnd));
            emit_mov_from_gs(0, TCD(save_eax));
            vcpu0.st.checks_inline++;
            break;
        }
    }
}

/* The check before instruction i of unit b, or its callout. */
static void
emit_check_for(struct vcpu *v, struct block *b, int i, struct insn *in, const u8 *bytes, gpa_t ipa)
{
    struct check c;
    int mc = classify(v, in, bytes, b->code32, ctxs[b->ctx].cs_base, ipa, &c);
    if (mc == MC_INLINE) {
        emit_check(&c);
    } else if (mc == MC_CALLOUT) {
        emit_callout(b - blocks, R_CHECK, i);
        vcpu0.st.checks_callout++;
    }
}

/*B:020 An IDENT instruction is copied byte for byte, after its software
 * truncation check if it needs one.  If it has a GS or CS segment prefix
 * it is wrapped: save FS, load FS with the hardware selector standing for
 * the named segment (kept in tcdata, which %gs addresses), run the
 * instruction with an FS prefix instead, restore FS. :*/
static void
emit_ident(struct block *b, int i, const u8 *bytes, struct insn *in, int code32)
{
    u8 *base = cache_of(code32) + b->tc;
    int wrap = in->seg == SEG_GS || in->seg == SEG_CS;
    BI(b, i).kind = wrap ? K_WRAP : K_IDENT;
    if (wrap) {
        emit_fs_gs(code32, 0, TCD(save_fs));
        emit_fs_gs(code32, 1, in->seg == SEG_GS ? TCD(sel_gs) : TCD(sel_cs));
    }
    BI(b, i).istart = emit_p - base;
    for (int k = 0; k < in->len; k++) {
        u8 c = bytes[k];
        if (wrap && k < in->nprefix && (c == 0x65 || c == 0x2e))
            c = 0x64;
        emit1(c);
    }
    BI(b, i).tend = emit_p - base;
    if (wrap)
        emit_fs_gs(code32, 1, TCD(save_fs));
}

/* ---- Inline emulation ---- */

/*B:052 Inline sequences, for guest code at CPL 0 (at other CPLs these
 * instructions can fault, and call out).  None touches EFLAGS except as
 * the instruction itself would; each saves what it borrows in %gs first
 * (a 7-byte MOV), so that a fault inside it can put the register back
 * (SV_*, precise_regs), and does everything that can fault before
 * anything the guest could see.
 *   CLI     movl $0, %gs:vif
 *   STI     movl $IF, %gs:vif; then if %gs:pending, a callout (R_IRQ)
 *   PUSHF   pushfl; keep the status flags and DF of the image, add the
 *           virtual ones (vflags, vif); LAHF/SETO and SAHF/ADD put the
 *           hardware's status flags back
 *   POPF    if only IF and the status flags change: the new IF into vif,
 *           then POPFL (at ring 1 the CPU ignores IF and IOPL in it);
 *           anything else calls out (R_POPF); then the pending check
 *   MOV r, sreg / PUSH sreg   from %gs:sel[], the guest's selectors
 *   IN, OUT with a port that has no device behind it (dev.c): the
 *           value unclaimed ports read, or nothing at all
 *   MOV r, CRn          from %gs:cr[n], the guest's control registers
 *   MOV CR0, r          nothing if r holds CR0 already (found without
 *           touching EFLAGS: LEA adds r to minus CR0, JECXZ), else a
 *           callout (R_CR).  Other writes to control registers call out:
 *           they change the mode or the address space. :*/
static int
inline_ok(struct vcpu *v, int code32)
{
    return opt_inline && code32 && v->cpl == 0 && (v->cr0 & CR0_PE) && !(v->eflags & EFLAGS_VM);
}

/* Can `in` be emulated inline, here and now? */
static int
inline_kind(struct vcpu *v, struct insn *in, int code32)
{
    if (!inline_ok(v, code32) || in->lock)
        return K_IDENT;
    switch (in->info->emu) {
    case E_CLI: return K_CLI;
    case E_STI: return K_STI;
    case E_PUSHF: return in->opsize == 4 ? K_PUSHF : K_IDENT;
    case E_POPF: return in->opsize == 4 ? K_POPF : K_IDENT;
    case E_MOV_FROM_SR:
        if (in->reg >= NSEG)
            return K_IDENT;
        if (in->mod != 3 && (in->seg == SEG_GS || in->seg == SEG_CS))
            return K_IDENT;
        return K_SREG;
    case E_PUSH_SR:
        return K_SREG;
    case E_IN:
    case E_OUT:
        if (in->op & 8)
            return K_IDENT;                 /* port in DX: not known here */
        return dev_port_is_empty(in->imm & 0xff) ? K_IO : K_IDENT;
    case E_MOV_CR:
        if (in->op == 0x20)
            return in->reg == 0 || (in->reg >= 2 && in->reg <= 4) ? K_CR : K_IDENT;
        return in->reg == 0 && in->rm != 1 ? K_CR : K_IDENT;    /* not from ECX: it is borrowed */
    }
    return K_IDENT;
}

/* The pending-interrupt check after STI or POPF: a callout if a virtual
 * interrupt is waiting (dev.c raises tcdata.pending only while IF = 0, so
 * IF has just been set).  It is always the last PENDING_CHECK bytes of
 * the instruction's sequence: that is how an exit inside it is told from
 * one before it.  (Layout facts, checked as each sequence is emitted.) */
#define PENDING_CHECK 29
/* In an inline PUSHF: after the PUSHFL and the save of EAX; save_flags
 * holds LAHF/SETO; SAHF has put the status flags back; the length. */
#define PUSHF_SAVED_EAX   8
#define PUSHF_SAVED_FLAGS 19
#define PUSHF_FLAGS_BACK  54
#define PUSHF_LEN         61
/* An indirect branch's sequence ends with the store of its target (7
 * bytes), the MOVZBL and the JMP through the dispatch table: its last
 * DISPATCH_TAIL bytes. */
#define DISPATCH_TAIL 18
static void
emit_pending_check(struct block *b, int i, int kind)
{
    u8 *start = emit_p;
    emit_mov_to_gs(1, TCD(save_ecx));
    emit_mov_from_gs(1, TCD(pending));
    emit1(0xe3); emit1(6);                      /* jecxz over the callout */
    emit_callout(b - blocks, kind, i);
    emit_mov_from_gs(1, TCD(save_ecx));
    assert(emit_p - start == PENDING_CHECK);
}

static void
emit_inline(struct block *b, int i, int kind, struct insn *in, const u8 *bytes)
{
    u8 *base = cache_of(b->code32) + b->tc;
    BI(b, i).kind = kind;
    BI(b, i).sv = 0;
    BI(b, i).istart = emit_p - base;
    switch (kind) {
    case K_CLI:
        emit_store_gs_imm(TCD(vif), 0);
        break;
    case K_STI:
        emit_store_gs_imm(TCD(vif), EFLAGS_IF);
        emit_pending_check(b, i, R_IRQ);
        break;
    case K_PUSHF:
        /* Its layout: PUSHF_* above. */
        emit1(0x9c);                                    /* pushfl: the only fault point */
        emit_mov_to_gs(0, TCD(save_eax));
        emit1(0x9f);                                    /* lahf */
        emit1(0x0f); emit1(0x90); emit1(0xc0);          /* seto %al */
        emit_mov_to_gs(0, TCD(save_flags));
        emit1(0x8b); emit1(0x04); emit1(0x24);          /* mov (%esp), %eax */
        emit1(0x25); emit4(EFLAGS_STATUS | EFLAGS_DF);  /* and */
        emit1(0x65); emit1(0x0b); emit1(0x05); emit4(TCD(vflags));     /* or */
        emit1(0x65); emit1(0x0b); emit1(0x05); emit4(TCD(vif));
        emit1(0x89); emit1(0x04); emit1(0x24);          /* mov %eax, (%esp) */
        emit_mov_from_gs(0, TCD(save_flags));
        emit1(0x04); emit1(0x7f);                       /* add $0x7f, %al: OF */
        emit1(0x9e);                                    /* sahf */
        emit_mov_from_gs(0, TCD(save_eax));
        assert(emit_p - (base + BI(b, i).istart) == PUSHF_LEN);
        break;
    case K_POPF: {
        BI(b, i).sv = SV_EAX;
        emit_mov_to_gs(0, TCD(save_eax));
        emit1(0x8b); emit1(0x04); emit1(0x24);          /* mov (%esp), %eax: may fault */
        emit1(0x65); emit1(0x33); emit1(0x05); emit4(TCD(vflags));     /* xor */
        emit1(0x25); emit4(EFLAGS_TF | EFLAGS_IOPL | EFLAGS_NT | EFLAGS_AC | EFLAGS_ID);
        emit1(0x74); emit1(6);                          /* jz: no other virtual flag changes */
        emit_callout(b - blocks, R_POPF, i);
        emit1(0x8b); emit1(0x04); emit1(0x24);
        emit1(0x25); emit4(EFLAGS_IF);
        emit_mov_to_gs(0, TCD(vif));
        emit_mov_from_gs(0, TCD(save_eax));
        emit1(0x9d);                                    /* popfl */
        emit_pending_check(b, i, R_IRQ);
        break;
    }
    case K_SREG:
        if (in->info->emu == E_PUSH_SR) {
            int s = in->map == 0 ? (in->op >> 3) & 3 : in->op == 0xa0 ? SEG_FS : SEG_GS;
            if (in->opsize == 2)
                emit1(0x66);
            emit1(0x65); emit1(0xff); emit1(0x35); emit4(TCD(sel[s]));     /* pushl %gs:sel[s] */
        } else if (in->mod == 3) {
            if (in->opsize == 2)
                emit1(0x66);
            emit1(0x65); emit1(0x0f); emit1(0xb7);      /* movzwl %gs:sel[s], %reg */
            emit1(0x05 | (in->rm << 3)); emit4(TCD(sel[in->reg]));
        } else {
            /* A 16-bit store: through a scratch register the address
             * does not use. */
            int scr = 0;
            u32 used = 0;
            if (in->has_sib)
                used |= (1u << (in->sib & 7)) | (1u << ((in->sib >> 3) & 7));
            else
                used |= 1u << in->rm;
            while (used & (1u << scr))
                scr++;
            BI(b, i).sv = SV_REG(scr);
            emit_mov_to_gs(scr, TCD(save_eax));
            emit1(0x65); emit1(0x0f); emit1(0xb7); emit1(0x05 | (scr << 3)); emit4(TCD(sel[in->reg]));
            int opl = 1, m = in->nprefix + opl;
            for (int k = 0; k < in->nprefix; k++)
                if (bytes[k] != 0x66)
                    emit1(bytes[k]);
            emit1(0x66);
            emit1(0x89);
            emit1((bytes[m] & 0xc7) | (scr << 3));
            for (int k = m + 1; k < in->len; k++)
                emit1(bytes[k]);
            emit_mov_from_gs(scr, TCD(save_eax));
        }
        break;
    case K_CR:
        if (in->op == 0x20) {
            emit_mov_from_gs(in->rm, TCD(cr[in->reg]));
            break;
        }
        BI(b, i).sv = SV_ECX;
        emit_mov_to_gs(1, TCD(save_ecx));
        emit_mov_from_gs(1, TCD(ncr0));
        emit1(0x8d); emit1(0x0c);                       /* lea (base,index), %ecx */
        emit1(in->rm == 4 ? 0x0c : 0x01 | (in->rm << 3));       /* SIB: (%esp,%ecx) or (%ecx,%r) */
        emit1(0xe3); emit1(6);                          /* jecxz over the callout: the same value */
        emit_callout(b - blocks, R_CR, i);
        emit_mov_from_gs(1, TCD(save_ecx));
        break;
    case K_IO:
        if (in->info->emu == E_IN) {
            int size = (in->op & 1) ? in->opsize : 1;
            if (size == 1) {
                emit1(0xb0); emit1(0xff);               /* mov $0xff, %al */
            } else if (size == 2) {
                emit1(0x66); emit1(0xb8); emit2(0xffff);
            } else {
                emit1(0xb8); emit4(0xffffffff);
            }
        }
        vcpu0.st.io_inline++;
        break;
    }
    BI(b, i).tend = emit_p - base;
    vcpu0.st.inline_emitted++;
}

/* ---- Indirect branches ---- */

/*C:030 Indirect branches: RET, RET imm16, and JMP and CALL through a
 * register or memory (near, 32-bit) find their target's translation
 * without leaving the TC when it has been seen before:
 *     mov  %ecx, %gs:save_ecx
 *     pop  %ecx                    ; (JMP/CALL: mov <operand>, %ecx; CALL: push $return)
 *     mov  %ecx, %gs:ind_target
 *     movzbl %cl, %ecx             ; (JMP/CALL: %ch, since their targets are 16-byte aligned)
 *     jmp  *%gs:disp[ctx][kind](,%ecx,4)
 * The table entry leads to the target unit's stub, which confirms the
 * whole address without touching EFLAGS (LEA, JECXZ) and jumps into the
 * unit; an empty or wrong entry leads to the miss callout, after which the
 * monitor fills the entry (AA §3.2's "256-way dispatch").  There is a
 * table per context, since a unit's translation holds only in its own;
 * contexts beyond the first NDCTX call out instead. :*/
static int
ind_kind(struct vcpu *v, struct insn *in, int code32, int ctx)
{
    if (!inline_ok(v, code32) || ctx >= NDCTX || in->opsize != 4 || in->adsize != 4)
        return 0;
    if (in->info->emu == E_RET)
        return K_RET;
    if (in->info->emu == E_GRP5 && (in->reg == 2 || in->reg == 4) && in->seg != SEG_GS && in->seg != SEG_CS)
        return K_IND;
    return 0;
}

static void
emit_indirect(struct block *b, int i, int kind, struct insn *in, const u8 *bytes, u32 next)
{
    u8 *base = cache_of(b->code32) + b->tc;
    BI(b, i).kind = kind;
    BI(b, i).sv = SV_ECX;
    BI(b, i).istart = emit_p - base;
    emit_mov_to_gs(1, TCD(save_ecx));
    if (kind == K_RET) {
        emit1(0x59);                                    /* pop %ecx: may fault */
        if (in->op == 0xc2) {                           /* lea imm16(%esp), %esp */
            emit1(0x8d); emit1(0xa4); emit1(0x24); emit4(in->imm & 0xffff);
        }
    } else {
        /* mov <r/m>, %ecx: the instruction's own operand, reg = ECX. */
        int m = in->nprefix + 1;
        for (int k = 0; k < in->nprefix; k++)
            emit1(bytes[k]);
        emit1(0x8b);
        emit1((bytes[m] & 0xc7) | (1 << 3));
        for (int k = m + 1; k < in->len; k++)
            emit1(bytes[k]);
        if (in->reg == 2) {                             /* call: push the return address */
            emit1(0x68); emit4(next);
        }
    }
    u8 *tail = emit_p;
    emit_mov_to_gs(1, TCD(ind_target));
    emit1(0x0f); emit1(0xb6); emit1(kind == K_RET ? 0xc9 : 0xcd);     /* movzbl %cl or %ch, %ecx */
    emit1(0x65); emit1(0xff); emit1(0x24); emit1(0x8d);
    emit4(TCD(disp[b->ctx][kind == K_RET ? 0 : 1]));
    assert(emit_p - tail == DISPATCH_TAIL);
    BI(b, i).tend = emit_p - base;
    vcpu0.st.indirect_emitted++;
}

static u32
disp_index(int kind, u32 target)
{
    return kind == K_RET ? target & 0xff : (target >> 8) & 0xff;
}

static void
reset_dispatch(void)
{
    for (int c = 0; c < NDCTX; c++)
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < NDISP; j++)
                tcdata.disp[c][k][j] = (u32)tc + MISS_STUB(k);
}

/* Take unit b out of its context's dispatch tables. */
static void
undispatch(struct block *b)
{
    if (b->ctx >= NDCTX)
        return;
    for (int k = 0; k < 2; k++) {
        if (!b->stub[k])
            continue;
        u32 to = (u32)tc + b->stub[k];
        for (int j = 0; j < NDISP; j++)
            if (tcdata.disp[b->ctx][k][j] == to)
                tcdata.disp[b->ctx][k][j] = (u32)tc + MISS_STUB(k);
    }
}

/* The stub that confirms a dispatch to unit b:
 *     mov  %gs:ind_target, %ecx
 *     lea  -EIP(%ecx), %ecx
 *     jecxz 1f
 *     jmp  miss
 * 1:  mov  %gs:save_ecx, %ecx
 *     jmp  unit */
#define STUB_LEN 32
static u32
make_stub(struct block *b, int k)
{
    if (b->stub[k])
        return b->stub[k];
    if (tc_used + 64 > TC_STEP(1))
        return 0;
    emit_begin(tc + tc_used);
    u32 at = tc_used;
    emit_mov_from_gs(1, TCD(ind_target));
    emit1(0x8d); emit1(0x89); emit4(-b->eip);
    emit1(0xe3); emit1(5);
    emit1(0xe9); emit4(MISS_STUB(k) - (emit_p - tc + 4));
    emit_mov_from_gs(1, TCD(save_ecx));
    emit1(0xe9); emit4(b->tc - (emit_p - tc + 4));
    if (emit_p - tc - at != STUB_LEN)
        panic("a dispatch stub of %d bytes", (int)(emit_p - tc - at));
    tc_used = emit_p - tc;
    emit_end();
    b->stub[k] = at;
    return at;
}

/* Is TC offset off inside a dispatch stub or a miss callout?  Stubs are
 * appended to the TC between units, STUB_LEN bytes each, so the gap
 * after the unit below off holds whole stubs; each starts with the
 * same MOV from %gs:ind_target. */
static int
in_dispatch_stub(u32 off)
{
    if (off < MISS_STUB(2))
        return 1;
    u32 end = 0;
    for (int lo = 0, hi = norder[1] - 1; lo <= hi;) {
        int mid = (lo + hi) / 2;
        struct block *m = &blocks[order[1][mid]];
        if (m->tc <= off) {
            end = m->tc + m->tclen;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    if (!end || off < end)
        return 0;
    u32 at = end + (off - end) / STUB_LEN * STUB_LEN;
    return tc[at] == 0x65 && tc[at + 1] == 0x8b && tc[at + 2] == 0x0d;
}

/* ---- Relocated execution and exact footprints ---- */

/* Does an access of n bytes at sreg:off stay clear of the monitor?  If
 * not, the access is remembered for relocated execution: up to two, in
 * different segment registers. */
#define NRELOC 2
static int nwin;
static struct { int seg; u32 la; } win[NRELOC];
static int win_unrelocatable;   /* an offending access that cannot be relocated */

static int
clear_of_monitor(struct vcpu *v, int sreg, u32 off, u32 n, u32 amask)
{
    u32 la = v->seg[sreg].base + (off & amask);
    if ((u64)la + n <= VMM_BASE - MARGIN)
        return 1;
    for (int j = 0; j < nwin; j++)
        if (win[j].seg == sreg)
            return 0;
    if (nwin < NRELOC) {
        win[nwin].seg = sreg;
        win[nwin].la = la;
        nwin++;
    } else {
        win_unrelocatable = 1;
    }
    return 0;
}

/* The exact memory footprint of the instruction a check guards, tested
 * against the monitor's region.  1: clear, the instruction may run as it
 * is; 0: it reaches the monitor's region. */
static int
footprint_ok(struct vcpu *v, u32 geip)
{
    u8 bytes[16];
    int avail;
    struct insn in;
    nwin = 0;
    win_unrelocatable = 0;
    if (emulate_fetch(v, geip, bytes, &avail) != OK || decode(bytes, avail, vcpu_code32(v), &in) < 0) {
        vfault.pending = 0;
        win_unrelocatable = 1;
        return 0;
    }
    struct frame *f = &v->f;
    u32 amask = in.adsize == 2 ? 0xffff : 0xffffffff;
    u32 op = in.map == 0 ? in.op : 0x100 | in.op;
    int seg, ok = 1;
    u32 off;
    if (in.flags & D_STRING) {
        /* The current element of each operand: one in the monitor's
         * region is relocated.  If only later elements are, this
         * iteration may simply run, single-stepped (nwin 0). */
        int size = (in.op & 1) ? in.opsize : 1;
        u32 count = in.rep ? f->ecx & amask : 1;
        int down = (v->eflags & EFLAGS_DF) != 0;
        int src = in.op == 0xa4 || in.op == 0xa5 || in.op == 0xa6 || in.op == 0xa7 || in.op == 0xac || in.op == 0xad;
        int dst = in.op != 0xac && in.op != 0xad;
        if (!count)
            return 1;
        if (src)
            ok &= clear_of_monitor(v, in.seg >= 0 ? in.seg : SEG_DS, f->esi, size, amask);
        if (dst)
            ok &= clear_of_monitor(v, SEG_ES, f->edi, size, amask);
        if (!ok)
            return 0;
        u64 span = (u64)count * size;
        for (int k = 0; k < 2; k++) {
            if (!(k == 0 ? src : dst))
                continue;
            int s = k == 0 ? (in.seg >= 0 ? in.seg : SEG_DS) : SEG_ES;
            u32 start = (k == 0 ? f->esi : f->edi) & amask;
            u32 lo = down ? start + size - (u32)span : start;
            int clear;
            if (span > 0xffffffffull)
                clear = 0;
            else if (amask == 0xffff)
                clear = (u64)v->seg[s].base + 0x10000 <= VMM_BASE - MARGIN;
            else
                clear = !((down && (u64)start + size < span) || (!down && (u64)start + span > 0x100000000ull)) &&
                        (u64)(u32)(v->seg[s].base + lo) + span <= VMM_BASE - MARGIN;
            if (!clear) {
                nwin = 0;       /* a later element: step this one as it is */
                return 0;
            }
        }
        return 1;
    }
    if (op == 0xd7)                                             /* xlat */
        ok &= clear_of_monitor(v, in.seg >= 0 ? in.seg : SEG_DS, f->ebx + (f->eax & 0xff), 1, amask);
    if (op == 0xc8) {                                           /* enter with nesting */
        /* ENTER imm16, L (SDM Vol. 2A, "ENTER"): push EBP, then for
         * L > 1 copy L-1 frame pointers read from just below the old
         * EBP, then push the new frame pointer: L+1 pushes below ESP and
         * reads of [EBP - 4(L-1), EBP).  Level 1 reads nothing through
         * EBP, so an EBP pointing into the monitor's region is no access
         * there - counting it would send a harmless ENTER to the
         * relocated path, which must not see EBP at all. */
        u32 level = in.imm2 & 0x1f;
        ok &= clear_of_monitor(v, SEG_SS, f->esp - 4 * (level + 1), 4 * (level + 1), 0xffffffff);
        if (level > 1)
            ok &= clear_of_monitor(v, SEG_SS, f->ebp - 4 * (level - 1), 4 * (level - 1), 0xffffffff);
    }
    if (in.has_modrm && in.mod != 3 && op != 0x8d) {
        emulate_ea(v, &in, &seg, &off);
        if (op == 0x1a3 || op == 0x1ab || op == 0x1b3 || op == 0x1bb) {
            s32 bit = in.opsize == 2 ? (s16)*gpr(v, in.reg) : (s32)*gpr(v, in.reg);
            off += (u32)((bit >> 3) & ~(in.opsize - 1));
        }
        ok &= clear_of_monitor(v, seg, off, 16, amask);
    }
    if (op >= 0xa0 && op <= 0xa3)
        ok &= clear_of_monitor(v, in.seg >= 0 ? in.seg : SEG_DS, in.imm, 16, amask);
    if (op == 0xc9) {
        /* LEAVE pops from where EBP points: ESP is loaded from it first
         * (SDM Vol. 2A, LEAVE), so the old ESP says nothing. */
        u32 smask = (v->seg[SEG_SS].attr & SEG_DB) ? 0xffffffff : 0xffff;
        ok &= clear_of_monitor(v, SEG_SS, f->ebp & smask, in.opsize, smask);
    } else if (in.flags & D_STACK) {
        int before = nwin;
        if (!clear_of_monitor(v, SEG_SS, f->esp - 32, 64, 0xffffffff)) {
            ok = 0;
            if (nwin > before)        /* the aliases start at the lowest byte PUSHA may write */
                win[nwin - 1].la = v->seg[SEG_SS].base + f->esp - 32;
        }
    }
    return ok;
}

/* ---- Relocated execution ---- */

/*H:050 Relocated execution: a guest instruction whose access falls in
 * the monitor's top 4 MiB, where the guest may have mappings of its own
 * (Linux keeps its fixmap there).  The guest's pages cannot be mapped at
 * their own addresses, so the instruction runs once, alone and
 * single-stepped, with each segment register whose access falls there
 * re-based so that the access lands in two alias pages of the monitor's
 * (temporary slots 4 and 5, and 6 and 7 for a second register).
 * The aliases start empty: each first access faults, and the monitor
 * walks the guest's tables for it with the access's own rights - which
 * sets the guest's Accessed and Dirty bits and raises the guest's own #PF
 * exactly as the CPU would - and maps the guest frame there.  Traced
 * frames are compared before and after, like any traced write.
 * Deviation: at most two segment registers are relocated per
 * instruction, each over the two pages from its access onwards; the
 * step keeps its truncation checks, so an access outside those pages
 * that would reach the monitor stops the guest instead. :*/
#define ALIAS_SLOT 5             /* slots 5, 6: first segment; 7, 8: second */
static struct reloc {
    int pending;        /* the next BT step relocates (or just steps unchecked) */
    int active;         /* a relocated step is running */
    int n;              /* relocated segment registers: 0 to NRELOC */
    struct {
        int seg;
        u32 la_page;    /* guest-linear page behind this pair's first alias */
        gpa_t pa[2];
        u8 *old[2];     /* saved contents of a traced frame mapped writable */
    } r[NRELOC];
    u32 geip;
    int absent;         /* the sink page took a write */
} rl;
static u8 rl_old[NRELOC][2][PGSIZE] __attribute__((aligned(4)));

static u32
alias_va(int j, int k)
{
    return 0xffffffffu - (NSLOTS - (ALIAS_SLOT + 2 * j + k)) * PGSIZE + 1;
}

int
bt_window_pending(void)
{
    return rl.pending;
}

/* Ask for the instruction at v->eip to run relocated: the accesses
 * footprint_ok found in the monitor's region (win[]). */
static void
window_access(struct vcpu *v)
{
    rl.pending = 1;
    rl.n = nwin;
    for (int j = 0; j < nwin; j++) {
        rl.r[j].seg = win[j].seg;
        rl.r[j].la_page = win[j].la & PTE_FRAME;
    }
    rl.geip = v->eip;
}

/* A page fault at linear `la`, in the monitor's region, by the guest
 * instruction at v->eip (direct execution, or translated code without
 * checks): find the access and ask for it to run relocated. */
void
bt_window_fault(struct vcpu *v, u32 la)
{
    if (footprint_ok(v, v->eip) || win_unrelocatable || !nwin) {
        vm_stop(v, "the instruction at %04x:%08x touched linear %x in the monitor's region "
                "through an access the monitor cannot relocate", v->seg[SEG_CS].sel, v->eip, la);
        return;
    }
    window_access(v);
}

/* A fault on an alias page during a relocated step. */
static int
reloc_fault(struct vcpu *v, u32 cr2, u32 err)
{
    int idx = (cr2 - alias_va(0, 0)) >> PGSHIFT, j = idx / 2, k = idx % 2;
    if (j >= rl.n)
        return 0;
    u32 la = rl.r[j].la_page + k * PGSIZE + (cr2 & 0xfff);
    gpa_t pa;
    int acc = ((err & PFE_W) ? ACC_W : 0) | (v->cpl == 3 ? ACC_U : 0);
    if (mmu_translate(v, la, acc, &pa) != OK)
        return 0;               /* the guest's own #PF, with its CR2 */
    int w = (err & PFE_W) != 0;
    hpa_t not_ram = mmu_not_ram(pa);
    if (not_ram) {
        /* Absent memory or ROM: read-only; writes land in the sink, cleared after. */
        extern u8 absent_sink[];
        mmu_alias(ALIAS_SLOT + idx, w ? (u32)absent_sink - VMM_BASE + VMM_PHYS : not_ram, w);
        rl.absent |= w;
        return 1;
    }
    pa &= PTE_FRAME;
    if (w && trace_is_traced(pa) && !rl.r[j].old[k]) {
        rl.r[j].old[k] = rl_old[j][k];
        gpa_read(pa, rl.r[j].old[k], PGSIZE);
    }
    rl.r[j].pa[k] = pa;
    mmu_alias(ALIAS_SLOT + idx, ram_base + pa, w);
    return 1;
}

/* End of a relocated step: report traced writes, remove the aliases. */
static void
reloc_finish(struct vcpu *v)
{
    for (int j = 0; j < NRELOC; j++)
        for (int k = 0; k < 2; k++) {
            mmu_alias(ALIAS_SLOT + 2 * j + k, 0, 0);
            u8 *old = rl.r[j].old[k];
            if (!old)
                continue;
            static u8 now[PGSIZE];
            gpa_read(rl.r[j].pa[k], now, PGSIZE);
            for (u32 off = 0; off < PGSIZE; off++) {
                if (now[off] == old[off])
                    continue;
                u32 end = off;
                while (end < PGSIZE && now[end] != old[end])
                    end++;
                trace_notify(v, rl.r[j].pa[k] + off, end - off, old + off, now + off);
                off = end;
            }
            rl.r[j].old[k] = NULL;
        }
    if (rl.absent) {
        extern u8 absent_sink[];
        memset(absent_sink, 0, PGSIZE);
        rl.absent = 0;
    }
    rl.active = 0;
    v->seg_gen++;               /* the cached descriptors are rebuilt on the next entry */
}

/* ---- Adaptive translation ---- */

/*B:060 Adaptive translation (AA §3.3).  Instructions start IDENT,
 * "innocent until proven guilty".  One that keeps trapping - a store that
 * hits a traced page (a guest page table, say), a load or store that
 * reaches the guest's own mappings in the monitor's region - is noted
 * here by its guest-physical address; after ADAPT_AFTER such traps its
 * unit is dropped, and the retranslation ends the unit at it with a
 * callout that emulates the access against the guest's page tables
 * (emulate_data), at a small fraction of a trap's cost.  The callout keeps
 * watching: after ADAPT_BACK executions that touch nothing special the
 * instruction is made innocent again (hysteresis: quick to adapt, slow to
 * go back).  A register-sign check that keeps guessing wrong (H:035) is
 * adapted the same way, to the general form. :*/
#define NADAPT 256
#define ADAPT_AFTER 4
#define ADAPT_BACK 64
static struct adapt {
    gpa_t pa;           /* the instruction's first byte; ~0: free */
    u16 hits;           /* traps seen */
    u16 clean;          /* emulations in a row that met nothing special */
    u8 emulate;         /* translate as an emulating callout */
    u8 slow_check;      /* translate with general checks */
} adapt[NADAPT];

static struct adapt *
adapt_find(gpa_t pa, int make)
{
    struct adapt *a = &adapt[(pa * 2654435761u >> 24) % NADAPT];
    if (a->pa == pa)
        return a;
    if (!make)
        return NULL;
    memset(a, 0, sizeof *a);
    a->pa = pa;
    return a;
}

static int
adapt_slow_check(gpa_t pa)
{
    struct adapt *a = adapt_find(pa, 0);
    return a && a->slow_check;
}

static int
adapt_emulated(gpa_t pa)
{
    struct adapt *a = adapt_find(pa, 0);
    return opt_adapt && a && a->emulate;
}

/* Only plain data moves are adapted to emulation (emulate_data). */
static int
adaptable(struct insn *in)
{
    u32 op = in->map == 0 ? in->op : 0x100;
    int mem = in->has_modrm && in->mod != 3;
    return !in->rep && !in->lock &&
           (((op == 0x88 || op == 0x89 || op == 0x8a || op == 0x8b || op == 0xc6 || op == 0xc7 ||
              op == 0x86 || op == 0x87) && mem) || (op >= 0xa0 && op <= 0xa3));
}

static void drop_unit(struct vcpu *v, struct block *b);

/* A trap at instruction i of unit b; adapt it after enough of them. */
static void
adapt_trap(struct vcpu *v, struct block *b, int i)
{
    if (!opt_adapt || b == &blocks[STEP_BLOCK] || i >= b->ninsn || b->pa2 != ~0u)
        return;
    gpa_t pa = b->pa + BI(b, i).goff;
    if ((pa ^ b->pa) & PTE_FRAME)
        return;
    struct adapt *a = adapt_find(pa, 1);
    if (a->emulate || ++a->hits < ADAPT_AFTER)
        return;
    u8 bytes[16];
    int avail;
    struct insn in;
    if (emulate_fetch(v, b->eip + BI(b, i).goff, bytes, &avail) != OK) {
        vfault.pending = 0;
        return;
    }
    if (decode(bytes, avail, b->code32, &in) < 0 || !adaptable(&in))
        return;
    a->emulate = 1;
    a->clean = 0;
    v->st.adapted++;
    if (opt_log & LOG_TRANSLATE)
        cprintf("translate: adapt the instruction at %08x (pa %08x) to a callout\n", b->eip + BI(b, i).goff, pa);
    drop_unit(v, b);
}

/* ---- Translating ---- */

/* A direct branch the translator can lay out as jumps: JMP, Jcc or CALL
 * with a relative target, at the code's own operand size. */
static int
is_direct_branch(struct insn *in, int code32)
{
    int k = in->info->emu;
    return (k == E_JCC || k == E_JMP || k == E_CALL) && in->opsize == (code32 ? 4 : 2);
}

/*B:015 The instructions that make x86 not classically virtualizable
 * (Robin and Irvine, USENIX Security 2000): they read or change
 * privileged state yet do not fault at CPL 1, so a kernel run directly
 * at ring 1 would see ring 1 instead of ring 0 - PUSHF and POPF (IF and
 * IOPL: SDM Vol. 2B, POPF), MOV from and PUSH of a segment register (the
 * RPL of CS and SS is the CPL), LAR and LSL (the shadow descriptor's
 * raised DPL), SGDT, SIDT, SLDT, STR and SMSW (the monitor's tables).
 * The translator never copies them.  The ablation `naive=1` copies them
 * as they are (is_ident), which is exactly what direct execution of the
 * kernel at ring 1 would do; guests/naive.c shows the difference
 * (docs/labs/1-ring-compression.md).  Deviation: `naive=1` is a
 * teaching switch that gives up equivalence on purpose; it never
 * weakens the monitor's protection, since each of these instructions
 * only reads, or (POPF) changes flags the CPU itself guards at ring 1. :*/
static int
sensitive_unprivileged(struct insn *in)
{
    switch (in->info->emu) {
    case E_PUSHF: case E_POPF: case E_PUSH_SR: case E_MOV_FROM_SR: case E_LAR: case E_LSL:
        return 1;
    case E_GRP6: return in->reg <= 1 || in->reg == 4 || in->reg == 5;  /* sldt str verr verw */
    case E_GRP7: return in->reg <= 1 || in->reg == 4;                  /* sgdt sidt smsw */
    }
    return 0;
}

static int
is_ident(struct insn *in)
{
    if (in->flags & D_INVALID)
        return 1;   /* the host CPU is the guest's CPU model: it faults the same way */
    if (opt_naive && sensitive_unprivileged(in))
        return 1;
    return in->info->emu == E_NONE || in->info->emu == E_RDTSC;
}

/* The check of a CALL's push of the return address (at ESP - 4). */
static void
emit_push_check(struct vcpu *v)
{
    struct check c = { 0 };
    if (!bt_checks)
        return;
    if (tr_base[SEG_SS] == 0 && !tr_relocated) {
        check_add_reg(&c, 4, v->f.esp >= 0x80000000u);
    } else {
        u8 l[7] = { 0x8d, 0x84, 0x24 };
        u32 k = tr_base[SEG_SS] + 0x80000000u - 4;
        memcpy(l + 3, &k, 4);
        check_add(&c, CK_LEA, l, 7, SEG_SS);
    }
    emit_check(&c);
}

/* The count of entries into unit idx, for the translation dump:
 * mov %eax, save; mov count, %eax; lea 1(%eax), %eax; mov %eax, count;
 * mov save, %eax - with no effect on EFLAGS. */
static void
emit_count(int idx)
{
    emit_mov_to_gs(0, TCD(save_eax));
    emit_mov_from_gs(0, TCD(count[idx]));
    emit1(0x8d); emit1(0x40); emit1(1);
    emit_mov_to_gs(0, TCD(count[idx]));
    emit_mov_from_gs(0, TCD(save_eax));
}

/*B:010 Translate the unit at the guest's CS:EIP, whose first byte is at
 * guest-physical `pa`.  `max` is MAXI, or 1 for single-stepping.  The
 * unit stops after the first instruction that has to leave it (which
 * becomes the callout or the jumps), after `max` instructions, at the end
 * of a page (so the unit depends on one physical page only), or before an
 * instruction whose bytes cannot be fetched (the fault is raised when the
 * guest gets there).  Returns NULL with a fault pending if not even the
 * first instruction can be fetched. :*/
static struct block *
translate(struct vcpu *v, gpa_t pa, struct block *b, int max, int ctx)
{
    int code32 = vcpu_code32(v);
    u32 eip = v->eip, geip = eip;
    u32 cs_base = v->seg[SEG_CS].base;
    u32 glen = 0;
    u32 mask = code32 ? 0xffffffff : 0xffff;
    struct insn in;
    int idx = b - blocks;

    b->pa = pa;
    b->eip = eip;
    b->ctx = ctx;
    b->code32 = code32;
    int step = b == &blocks[STEP_BLOCK];
    b->tc = step ? TC_STEP(code32) : code32 ? tc_used : tc16_used;
    b->mi = step ? NBINSN : binsn_used;
    b->exit[0].site = b->exit[1].site = 0;
    b->in_head = -1;
    b->stub[0] = b->stub[1] = 0;
    b->flips = 0;
    u8 *base = cache_of(code32);
    emit_begin(base + b->tc);
    b->term = TERM_CONTINUE;
    range_forget_all();
    if (opt_count && code32 && idx != STEP_BLOCK)
        emit_count(idx);
    int i = 0, term_rec = R_EMULATE;
    const char *what = "continue";
    for (;;) {
        u8 bytes[16];
        int avail;
        u32 la = cs_base + geip;
        /* Record i starts clean: whichever way the unit ends, it holds
         * nothing an earlier unit left there (precise_regs trusts sv). */
        memset(&BI(b, i), 0, sizeof(struct binsn));
        if (emulate_fetch(v, geip, bytes, &avail) != OK) {
            if (i == 0)
                return NULL;
            vfault.pending = 0;
            break;
        }
        int n = decode(bytes, avail, code32, &in);
        if (n < 0) {
            if (i > 0)
                break;
            if (n == DECODE_TOOLONG) {
                raise_gp(v, 0);
                return NULL;
            }
            /* The instruction runs into a page that cannot be fetched. */
            vmem_read(v, la + avail, bytes, 1, ACC_X | (v->cpl == 3 ? ACC_U : 0));
            return NULL;
        }
        if (i > 0 && (la & 0xfff) + n > PGSIZE)
            break;                              /* would straddle a page */
        if (i == max)
            break;
        BI(b, i).goff = geip - eip;
        BI(b, i).kind = K_IDENT;
        BI(b, i).sv = 0;
        gpa_t ipa = pa + (geip - eip);
        int adapted = max > 1 && adapt_emulated(ipa) && adaptable(&in);
        int ik = adapted ? K_IDENT : is_ident(&in) ? K_IDENT : inline_kind(v, &in, code32);
        int xk = adapted || ik != K_IDENT || is_ident(&in) ? 0 : ind_kind(v, &in, code32, ctx);
        if (!adapted && (is_ident(&in) || ik != K_IDENT || xk)) {
            emit_check_for(v, b, i, &in, bytes, ipa);
            BI(b, i).cend = emit_p - (base + b->tc);
            if (xk) {
                /* An indirect branch ends the unit (C:030). */
                emit_indirect(b, i, xk, &in, bytes, (geip + n) & mask);
                b->term = TERM_INDIRECT;
                glen += n;
                what = in.info->name;
                break;
            }
            if (ik != K_IDENT)
                emit_inline(b, i, ik, &in, bytes);
            else
                emit_ident(b, i, bytes, &in, code32);
            range_update(&in, bytes);
            glen += n;
            i++;
            geip = (geip + n) & mask;
            /* An inline CLI, STI, POPF or MOV CR need not end the unit:
             * what would make it (TF, IOPL, an interrupt now deliverable,
             * a new CR0) calls out.
             * Other instructions that end units do. */
            if (((in.flags & D_ENDS) && ik != K_POPF && ik != K_STI && ik != K_CLI && ik != K_CR) ||
                ((cs_base + geip) & 0xfff) == 0)
                break;
            continue;
        }
        glen += n;
        what = adapted ? "adapted" : in.info->name;
        if (!adapted && max > 1 && is_direct_branch(&in, code32)) {
            /*B:040 A direct branch becomes jumps to continuations:
             * Jcc to the taken exit, then JMP to the fall-through
             * exit; a CALL first pushes the guest's return address
             * (a fault there restarts the CALL). :*/
            u32 next = (geip + n) & mask, target = (next + in.imm) & mask;
            b->term = TERM_BRANCH;
            BI(b, i).cend = emit_p - (base + b->tc);
            if (in.info->emu == E_CALL) {
                if (code32)
                    emit_push_check(v);
                b->bcend = emit_p - (base + b->tc);
                emit1(0x68);
                if (code32)
                    emit4(next);
                else
                    emit2(next);
            }
            if (in.info->emu == E_JCC) {
                emit1(0x0f);
                emit1(0x80 | (in.op & 0xf));
                emit_exit_jump(b, 0, target);
                emit1(0xe9);
                emit_exit_jump(b, 1, next);
            } else {
                emit1(0xe9);
                emit_exit_jump(b, 0, target);
            }
        } else {
            b->term = TERM_EMULATE;
            b->serial = next_serial++;
            term_cache[idx % NTERM].serial = b->serial;
            term_cache[idx % NTERM].in = in;
            if (adapted)
                term_rec = R_ADAPT;
        }
        break;
    }
    b->ninsn = i;
    if (b->term != TERM_BRANCH && b->term != TERM_INDIRECT)
        BI(b, i).goff = geip - eip;
    if (b->term == TERM_EMULATE) {
        BI(b, i).cend = BI(b, i).istart = emit_p - (base + b->tc);
        emit_callout(idx, term_rec, i);
        BI(b, i).tend = emit_p - (base + b->tc);
    } else if (b->term == TERM_CONTINUE) {
        /* Record ninsn is where the unit goes on: no instruction of it
         * is translated here (its sv, 0, matters: once it was left as an
         * earlier unit had it, and precise_regs put that unit's borrowed
         * registers into the guest's at a host interrupt here). */
        BI(b, i).cend = BI(b, i).istart = BI(b, i).tend = emit_p - (base + b->tc);
        emit1(0xe9);
        emit_exit_jump(b, 0, geip);
    }
    emit_stubs(b, idx);
    b->tclen = emit_p - (base + b->tc);
    if (!step) {                        /* (the step unit has its own place: TC_STEP) */
        if (code32)
            tc_used = emit_p - tc;
        else
            tc16_used = emit_p - tc16;
    }
    b->glen = glen;
    b->valid = 1;
    b->pa2 = ~0u;
    trace_add(v, pa, TR_CODE);
    if ((pa & 0xfff) + glen > PGSIZE) {
        gpa_t pa2;
        if (mmu_translate(v, cs_base + eip + (PGSIZE - (pa & 0xfff)), ACC_X | (v->cpl == 3 ? ACC_U : 0), &pa2) == OK) {
            b->pa2 = pa2 & PTE_FRAME;
            trace_add(v, pa2, TR_CODE);
            if (b != &blocks[STEP_BLOCK])
                nstraddle++;
        }
        vfault.pending = 0;
    }
    v->st.blocks++;
    if (opt_log & LOG_TRANSLATE)
        cprintf("translate: %04x:%08x pa %08x, %d + %s, %d bytes -> %s+%x\n",
                v->seg[SEG_CS].sel, eip, pa, i, what, glen, code32 ? "tc32" : "tc16", b->tc);
    return b;
}

static void
hash_remove(struct block *b)
{
    int idx = b - blocks;
    s16 *p = &hash[hash_of(b->pa, b->eip)];
    while (*p >= 0 && *p != idx)
        p = &blocks[*p].next;
    if (*p == idx)
        *p = b->next;
}

/* The segment bases checks are specialized for: the guest's own. */
static void
set_tr_base(struct vcpu *v)
{
    for (int s = 0; s < NSEG; s++)
        tr_base[s] = v->seg[s].base;
    tr_relocated = 0;
}

/*C:025 Where guest code lives: the translation of the last few code
 * pages looked up, good while the generation of code mappings (mmu.c,
 * T:075) stays the same, so that a unit found again does not cost a walk
 * of the guest's page tables. :*/
static struct {
    u32 la_page, gen;
    gpa_t pa_page;
    u8 user;
} code_tlb[4];

static int
code_page(struct vcpu *v, u32 la, gpa_t *pa)
{
    int user = v->cpl == 3;
    u32 gen = mmu_code_generation();
    int e = (la >> PGSHIFT) & 3;
    if (code_tlb[e].gen == gen && code_tlb[e].la_page == (la & PTE_FRAME) && code_tlb[e].user == user) {
        *pa = code_tlb[e].pa_page | (la & 0xfff);
        return OK;
    }
    if (mmu_translate_code(v, la, ACC_X | (user ? ACC_U : 0), pa) != OK)
        return FAULT;
    code_tlb[e].gen = mmu_code_generation();
    code_tlb[e].la_page = la & PTE_FRAME;
    code_tlb[e].pa_page = *pa & PTE_FRAME;
    code_tlb[e].user = user;
    return OK;
}

/* Find or make the unit for the guest's CS:EIP.  NULL with a fault
 * pending if the code cannot be fetched. */
static struct block *
lookup(struct vcpu *v)
{
    gpa_t pa;
    int ctx = ctx_of(v);
    if (code_page(v, v->seg[SEG_CS].base + v->eip, &pa) != OK)
        return NULL;
    u32 h = hash_of(pa, v->eip);
    for (s16 i = hash[h]; i >= 0; i = blocks[i].next) {
        struct block *b = &blocks[i];
        if (b->pa == pa && b->eip == v->eip && b->ctx == ctx)
            return b;
    }
    if (nblocks >= MAXBLOCKS || binsn_used + MAXI + 1 > NBINSN ||
        tc_used + TC_SLACK > TC_STEP(1) || tc16_used + TC_SLACK > TC_STEP(0)) {
        bt_flush("full");
        ctx = ctx_of(v);
    }
    set_tr_base(v);
    struct block *b = translate(v, pa, &blocks[nblocks], MAXI, ctx);
    b ? emit_end() : emit_cancel();
    if (!b)
        return NULL;
    nblocks++;
    binsn_used += b->ninsn + 1;
    b->next = hash[h];
    hash[h] = b - blocks;
    b->pnext = phash[(pa >> PGSHIFT) % NPHASH];
    phash[(pa >> PGSHIFT) % NPHASH] = b - blocks;
    order[b->code32][norder[b->code32]++] = b - blocks;
    return b;
}

/* The unit whose translation holds TC offset `off` of cache `code32`. */
static int in_dispatch_stub(u32 off);
static int at_boundary(int code32, u32 eip);

static struct block *
find_block(int code32, u32 off)
{
    struct block *s = &blocks[STEP_BLOCK];
    if (s->valid && s->code32 == code32 && off >= s->tc && off < s->tc + s->tclen)
        return s;
    int lo = 0, hi = norder[code32] - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (blocks[order[code32][mid]].tc <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (hi < 0)
        return NULL;
    struct block *b = &blocks[order[code32][lo]];
    return off >= b->tc && off < b->tc + b->tclen ? b : NULL;
}

/* Undo every chained jump into unit b: each goes back to its stub. */
static void
unchain_into(struct block *b)
{
    int idx = b - blocks;
    for (s16 e = b->in_head; e >= 0;) {
        struct block *src = &blocks[e >> 1];
        int x = e & 1;
        s16 next = src->exit[x].in_next;
        if (src->exit[x].chained == idx) {
            patch_exit(src, x, src->exit[x].stub);
            src->exit[x].chained = -1;
        }
        e = next;
    }
    b->in_head = -1;
}

/* Take unit b out of use: no lookup finds it, no jump or dispatch entry
 * leads to it.  Its code stays in the TC until the next flush. */
static void
drop_unit(struct vcpu *v, struct block *b)
{
    if (!b->valid)
        return;
    b->valid = 0;
    if (b != &blocks[STEP_BLOCK]) {
        hash_remove(b);
        if (b->pa2 != ~0u)
            nstraddle--;
    }
    unchain_into(b);
    undispatch(b);
    v->st.tc_invalidated++;
}

/*C:020 Links across pages.  A chained jump or a dispatch entry leads
 * from one unit straight to another without looking the target up, which
 * within a page is safe whatever the guest's page tables say - both units
 * come from the same physical page - but across pages holds only while the
 * guest maps the target's page where it did.  So each target page of such
 * a link is noted with the frame it mapped to, and when the generation of
 * code mappings moves (mmu.c, T:075) - a new CR3, INVLPG, a write to a
 * page table behind translated code - each noted page is walked again;
 * links into a page that now maps elsewhere are undone.  For a guest whose
 * kernel is mapped the same in every address space, as Linux's is, a
 * context switch finds every page where it was and undoes nothing. :*/
static struct xpage {
    u32 la_page;
    gpa_t pa_page;
    u8 user;
} xpages[NXPAGE];
static int nxpages;
static u32 xgen;

static int
note_xpage(struct vcpu *v, struct block *t)
{
    u32 la = (ctxs[t->ctx].cs_base + t->eip) & PTE_FRAME;
    u8 user = ctxs[t->ctx].cpl == 3;
    for (int i = 0; i < nxpages; i++)
        if (xpages[i].la_page == la && xpages[i].user == user)
            return xpages[i].pa_page == (t->pa & PTE_FRAME);
    if (nxpages == NXPAGE)
        return 0;
    xpages[nxpages].la_page = la;
    xpages[nxpages].pa_page = t->pa & PTE_FRAME;
    xpages[nxpages].user = user;
    nxpages++;
    return 1;
}

static void
verify_xpages(struct vcpu *v)
{
    xgen = mmu_code_generation();
    for (int i = 0; i < nxpages; i++) {
        gpa_t pa;
        int ok = mmu_translate(v, xpages[i].la_page, ACC_X | ACC_PEEK | (xpages[i].user ? ACC_U : 0), &pa) == OK &&
                 (pa & PTE_FRAME) == xpages[i].pa_page;
        vfault.pending = 0;
        if (ok)
            continue;
        /* Undo every link into the units of that page. */
        for (int k = 0; k < nblocks; k++) {
            struct block *b = &blocks[k];
            if (b->valid && ((ctxs[b->ctx].cs_base + b->eip) & PTE_FRAME) == xpages[i].la_page &&
                (ctxs[b->ctx].cpl == 3) == xpages[i].user) {
                unchain_into(b);
                undispatch(b);
            }
        }
        v->st.xlinks_undone++;
        xpages[i--] = xpages[--nxpages];
    }
}

/*C:010 Chaining.  Exit x of unit src has just run its continuation:
 * v->eip is its target.  Translate it (if need be) and patch src's jump
 * to go straight there next time.  A target in another page is noted
 * first (C:020). :*/
static void
chain(struct vcpu *v, struct block *src, int x)
{
    u32 gen = tc_generation;
    if (!opt_chain || src == &blocks[STEP_BLOCK] || src->pa2 != ~0u ||
        ctxs[src->ctx].cs_base != v->seg[SEG_CS].base || src->code32 != vcpu_code32(v))
        return;
    struct block *t = lookup(v);
    if (!t) {
        vfault.pending = 0;     /* the main loop looks it up again and delivers it */
        return;
    }
    if (gen != tc_generation || !src->valid || t->pa2 != ~0u || t->code32 != src->code32 || t->ctx != src->ctx)
        return;
    int cross = ((ctxs[src->ctx].cs_base + src->eip) ^ (ctxs[t->ctx].cs_base + t->eip)) & PTE_FRAME;
    if (cross && !note_xpage(v, t))
        return;
    patch_exit(src, x, t->tc);
    src->exit[x].chained = t - blocks;
    src->exit[x].in_next = t->in_head;
    t->in_head = (src - blocks) * 2 + x;
    v->st.chained++;
    if (cross)
        v->st.chained_xpage++;
}

/* Fill the dispatch entry for the indirect branch that just missed. */
static void
dispatch_fill(struct vcpu *v, struct block *t, int kind)
{
    if (!t->code32 || t->ctx >= NDCTX || t->pa2 != ~0u || !note_xpage(v, t))
        return;
    int k = kind == K_RET ? 0 : 1;
    u32 s = make_stub(t, k);
    if (!s)
        return;
    tcdata.disp[t->ctx][k][disp_index(kind, t->eip)] = (u32)tc + s;
    v->st.dispatch_filled++;
}

/*B:030 Translation-cache coherency.  Every page a unit was translated
 * from carries a TR_CODE trace (trace.c); a write that changes any of a
 * unit's guest bytes - through any linear alias, from either engine or
 * from the monitor itself - drops exactly the units it overlaps
 * (US 6,704,925: trace-based conflict detection).  A page left with no
 * unit loses its trace, so that further writes to it cost nothing until
 * code there is translated again. :*/
static int
overlaps(gpa_t a, u32 alen, gpa_t b, u32 blen)
{
    return a < b + blen && b < a + alen;
}

static int
unit_overlaps(struct block *b, gpa_t pa, u32 n)
{
    u32 len1 = PGSIZE - (b->pa & 0xfff);
    if (len1 > b->glen)
        len1 = b->glen;
    return overlaps(b->pa, len1, pa, n) || (b->pa2 != ~0u && overlaps(b->pa2, b->glen - len1, pa, n));
}

static void
code_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new)
{
    gpa_t page = pa & PTE_FRAME;
    int left = 0;
    /* Units stay in their page's chain when dropped; the walk unlinks
     * them, so that code rewritten again and again (each write dropping
     * one unit and a retranslation adding one) keeps a short chain. */
    for (s16 *link = &phash[(page >> PGSHIFT) % NPHASH]; *link >= 0;) {
        struct block *b = &blocks[*link];
        if (!b->valid) {
            *link = b->pnext;
            continue;
        }
        link = &b->pnext;
        if ((b->pa & PTE_FRAME) != page)
            continue;
        if (!unit_overlaps(b, pa, n)) {
            left = 1;
            continue;
        }
        drop_unit(v, b);
        if (opt_log & LOG_TRANSLATE)
            cprintf("translate: unit at %08x invalidated by a write to %08x\n", b->eip, pa);
    }
    /* Units that straddle into this page (rare: a lone instruction
     * across a page boundary; counted, so that the common write costs no
     * walk over every unit), and the single-step unit. */
    for (int k = nstraddle ? 0 : MAXBLOCKS; k <= MAXBLOCKS; k++) {
        if (k == nblocks)
            k = STEP_BLOCK;
        struct block *b = &blocks[k];
        if (!b->valid || b->pa2 == ~0u || (k != STEP_BLOCK && b->pa2 != page))
            continue;
        if (unit_overlaps(b, pa, n))
            drop_unit(v, b);
        else
            left = 1;
    }
    struct block *s = &blocks[STEP_BLOCK];
    if (s->valid && unit_overlaps(s, pa, n))
        drop_unit(v, s);
    if (!left)
        trace_remove(page, TR_CODE);
}

/* ---- Precise state ---- */

/* The guest offset of a TC offset inside unit b: instruction i if its
 * guest instruction has not completed, the next one if it has.  *ins
 * gets i. */
static u32
tc_to_guest(struct block *b, u32 off, int *ins)
{
    int last = b->term == TERM_INDIRECT || b->term == TERM_EMULATE ? b->ninsn : b->ninsn - 1;
    for (int i = 0; i <= last; i++)
        if (off < BI(b, i).tend) {
            *ins = i;
            return BI(b, i).goff;
        }
    *ins = b->ninsn;
    return BI(b, b->ninsn).goff;
}

/* A fault at TC offset off inside instruction i's inline sequence: put
 * back the registers it keeps in %gs (B:052). */
static void
precise_regs(struct vcpu *v, struct block *b, int i, u32 off)
{
    if (!BI(b, i).sv || off < BI(b, i).istart + 7u)
        return;
    if (BI(b, i).sv & SV_ECX)
        v->f.ecx = tcdata.save_ecx;
    if (BI(b, i).sv & SV_EAX)
        v->f.eax = tcdata.save_eax;
    if (BI(b, i).sv >> 4)
        *gpr(v, (BI(b, i).sv >> 4) - 1) = tcdata.save_eax;
}

/* The status flags and DF live in the hardware EFLAGS while translated
 * code runs; IF in tcdata.vif, the other virtual flags in tcdata.vflags. */
#define HW_FLAGS (EFLAGS_STATUS | EFLAGS_DF)
#define V_FLAGS  (~(HW_FLAGS | EFLAGS_IF | EFLAGS_RF | EFLAGS_VM))

static void
host_cr0(struct vcpu *v)
{
    u32 want = (rcr0() & ~(CR0_TS | CR0_EM | CR0_MP | CR0_AM)) |
               (v->cr0 & (CR0_TS | CR0_EM | CR0_MP | CR0_AM));
    if (want != rcr0())
        lcr0(want);
}

/*H:040 A check fired: a checking callout, or #BR at one of our BOUNDs
 * (not the guest's own BOUND instruction).  Work out the instruction's
 * exact footprint; if it stays clear of the monitor, let it run as it is
 * (with EAX as the guest had it) and return 1 - and if the check was one
 * that guessed a register's side of 2^31 (H:035), drop the unit, so that
 * it is translated again with the register as it is now; an instruction
 * that keeps being guessed wrong gets the general check.  An access that
 * really reaches the monitor's region leaves translated code (T_RELOC)
 * to be run relocated (H:050). :*/
static int
check_fired(struct vcpu *v, int code32)
{
    struct frame *f = &v->f;
    u32 off = code32 ? f->eip - (u32)tc : f->eip;
    u32 geip;
    struct block *b;
    int i, guessed = 0;
    if (f->trapno == T_CALLOUT) {
        u8 *r = cache_of(code32) + off;
        u32 rec = r[0] | (r[1] << 8) | (r[2] << 16) | ((u32)r[3] << 24);
        if (REC_KIND(rec) != R_CHECK)
            return 0;
        b = &blocks[REC_UNIT(rec)];
        i = REC_INSN(rec);
        if (REC_UNIT(rec) > MAXBLOCKS || i > b->ninsn)
            panic("check callout with a bad record %x", rec);
    } else {
        b = find_block(code32, off);
        if (!b)
            return 0;
        u32 o = off - b->tc;
        for (i = 0; i < b->ninsn && o >= BI(b, i).tend; i++)
            ;
        if (i == b->ninsn && !(b->term == TERM_BRANCH && o < b->bcend) &&
            !(b->term == TERM_INDIRECT && o < BI(b, i).istart))
            return 0;
        if (i < b->ninsn && o >= BI(b, i).istart)
            return 0;                   /* the guest's own BOUND: its #BR */
        u8 *p = cache_of(code32) + off;
        u32 pair = p[3] | (p[4] << 8) | (p[5] << 16) | ((u32)p[6] << 24);
        if (p[0] != 0x65 || p[1] != 0x62)
            return 0;
        if (pair == TCD(bnd))
            f->eax = tcdata.save_eax;   /* the general form borrows EAX */
        else
            guessed = 1;
    }
    geip = (b->eip + BI(b, i).goff) & (code32 ? ~0u : 0xffff);
    v->st.checks_tripped++;
    u32 save_eip = v->eip;
    v->eip = geip;
    int ok = footprint_ok(v, geip);
    if (!ok) {
        if (win_unrelocatable) {
            vm_stop(v, "the instruction at %04x:%08x reaches the monitor's region through more "
                    "than two segment registers: not supported", v->seg[SEG_CS].sel, geip);
            return 0;
        }
        /* Leave translated code; the next step runs it relocated. */
        window_access(v);
        f->trapno = T_RELOC;
        adapt_trap(v, b, i);
        return 0;
    }
    v->eip = save_eip;
    if (guessed && b != &blocks[STEP_BLOCK]) {
        struct adapt *a = adapt_find(b->pa + BI(b, i).goff, 1);
        if (++a->hits >= 2)
            a->slow_check = 1;
        v->st.checks_reguessed++;
        drop_unit(v, b);
    }
    u32 resume = i == b->ninsn && b->term == TERM_BRANCH ? b->bcend : BI(b, i).cend;
    f->eip = (code32 ? (u32)tc : 0) + b->tc + resume;
    return 1;
}

/* A check fired inside a relocated step.  Its footprint was verified
 * before the step (every access in the monitor's region is relocated),
 * so a checking callout just lets the instruction run; a #BR from one of
 * our BOUNDs means an access the footprint did not foresee: stop. */
static int
relocated_check(struct vcpu *v, struct block *b)
{
    struct frame *f = &v->f;
    u32 off = (b->code32 ? f->eip - (u32)tc : f->eip) - b->tc;
    if (f->trapno == T_CALLOUT) {
        u8 *r = cache_of(b->code32) + b->tc + off;
        u32 rec = r[0] | (r[1] << 8) | (r[2] << 16) | ((u32)r[3] << 24);
        if (REC_KIND(rec) != R_CHECK)
            return 0;
        f->eip += 4;
        return 1;
    }
    if (b->ninsn && off < BI(b, 0).istart) {
        vm_stop(v, "relocated instruction at %08x made an access the monitor did not foresee", v->eip);
        return 0;
    }
    return 0;                   /* the guest's own BOUND */
}

/*B:070 Entering translated code.  The hardware gets the guest's
 * general registers, its status flags and DF, and the selectors standing
 * for its segment registers (shadow.c, H:025); the %gs pages get the
 * virtual flags and the guest's selectors.  What depends only on the
 * segment registers and the shadows is set up again only when one of
 * them changed. :*/
static struct {
    u32 seg_gen, sgen;
    int valid;
    u16 sel[NSEG];
    struct seg seg[NSEG];       /* the registers they were made from */
} en;

static void
enter_setup(struct vcpu *v, struct block *b, int step)
{
    struct frame *f = &v->f;
    f->eip = b->code32 ? (u32)tc + b->tc : b->tc;
    f->cs = SEL(b->code32 ? GDT_BT_CS32 : GDT_BT_CS16, bt_ring);
    f->eflags = (v->eflags & HW_FLAGS) | EFLAGS_IF | EFLAGS_FIXED | (step ? EFLAGS_TF : 0);
    /* Alignment checks and CR4.TSD apply at CPL 3 only: with translated
     * code at ring 3 they can be the guest's own for guest user code, and
     * must be off for guest kernel code. */
    int user3 = bt_ring == 3 && v->cpl == 3;
    if (user3 && (v->cr0 & CR0_AM))
        f->eflags |= v->eflags & EFLAGS_AC;
    u32 cr4 = rcr4(), want = (cr4 & ~CR4_TSD) | (user3 ? v->cr4 & CR4_TSD : 0);
    if (want != cr4)
        lcr4(want);
    tcdata.vif = v->eflags & EFLAGS_IF;
    tcdata.vflags = (v->eflags & V_FLAGS) | EFLAGS_FIXED;
    tcdata.pending = dev_irq_pending(v);
    tcdata.cr[0] = v->cr0;
    tcdata.cr[2] = v->cr2;
    tcdata.cr[3] = v->cr3;
    tcdata.cr[4] = v->cr4;
    tcdata.ncr0 = -v->cr0;
    if (xgen != mmu_code_generation())
        verify_xpages(v);
    shadow_sync_for_bt(v);
    shadow_engine(0);
    if (!en.valid || en.seg_gen != v->seg_gen || en.sgen != shadow_generation() || rl.active) {
        int all = !en.valid || en.sgen != shadow_generation() || rl.active;
        for (int s = 0; s < NSEG; s++) {
            if (!all && seg_equal(&en.seg[s], &v->seg[s]))
                continue;               /* this register has not changed */
            int from_shadow;
            en.sel[s] = shadow_hw_selector(v, s, &from_shadow);
            if (from_shadow)
                v->st.seg_shadow++;
            else if (en.sel[s])
                v->st.seg_cached++;
            en.seg[s] = v->seg[s];
            tcdata.sel[s] = v->seg[s].sel;
            tcdata.bias[s] = v->seg[s].base + 0x80000000u;
        }
        en.seg_gen = v->seg_gen;
        en.sgen = shadow_generation();
        en.valid = 1;
        if (rl.active) {
            /* Re-base each relocated segment so its access lands on its
             * aliases, and let its checks pass there (H:050). */
            for (int j = 0; j < rl.n; j++) {
                int sr = rl.r[j].seg;
                struct seg *sg = &v->seg[sr];
                u32 attr = (sg->attr | SEG_S | SEG_P | STA_A) & ~(3u << 5);
                if (sr == SEG_CS)
                    attr |= STA_R;
                else if (sr == SEG_SS || sg->mode != SM_PROT)
                    attr = (attr & ~(STA_X | STA_E)) | STA_W;
                vmm_gdt[GDT_CACHED + sr] = desc_make(sg->base + alias_va(j, 0) - rl.r[j].la_page, 0xffffffff,
                                                     attr | (bt_ring << 5));
                en.sel[sr] = SEL(GDT_CACHED + sr, bt_ring);
                tcdata.bias[sr] = sg->base + 0x80000000u - rl.r[j].la_page;
            }
            en.valid = 0;
        }
    }
    f->ss = en.sel[SEG_SS];
    f->ds = en.sel[SEG_DS];
    f->es = en.sel[SEG_ES];
    f->fs = en.sel[SEG_FS];
    f->gs = SEL(GDT_BT_GS, bt_ring);
    tcdata.sel_gs = en.sel[SEG_GS];
    tcdata.sel_cs = en.sel[SEG_CS];
    vmm_tss.esp0 = (u32)&f->v86_es;
    host_cr0(v);
    mmu_de_view(0);
}

/* Enter unit b and run until the guest exits for something the monitor
 * must see; hidden page faults are filled and the unit resumed. */
static void
run_block(struct vcpu *v, struct block *b, int step)
{
    struct frame *f = &v->f;
    enter_setup(v, b, step);
    if (bt_checks && !b->code32)
        for (int s = 0; s < NSEG; s++)
            if (s != SEG_CS && (v->seg[s].attr & SEG_P) && (u64)v->seg[s].base + 0x10000 + MARGIN > VMM_BASE) {
                vm_stop(v, "16-bit code at %04x:%04x with %s based at %08x, within reach of the "
                        "monitor: not supported", v->seg[SEG_CS].sel, v->eip,
                        "a segment", v->seg[s].base);
                return;
            }
    v->st.bt_entries++;
    u32 esp_hi = f->esp & 0xffff0000;
    int at_insn = 0, rolling = 0;
    for (;;) {
        vm_enter(f, mmu_hw_cr3(v));    /* asked each time: a fault may replace it */
        v->st.traps[f->trapno & 0xff]++;
        if (f->trapno >= T_IRQ0 && f->trapno < T_IRQ0 + 16) {
            /*B:075 A host interrupt in translated code comes at a
             * hardware instruction boundary, which need not be a guest
             * one: inside an inline sequence (after a RET's POP, say, but
             * before its dispatch), in an FS swap or a truncation check.
             * Rather than undo half a sequence, the monitor rolls
             * forward: it single-steps the translated code until it
             * reaches a guest instruction boundary, and reports the
             * interrupt there.  A single step, a relocated instruction
             * or a traced write in progress just finishes first. :*/
            int vec = f->trapno;
            if (!rolling)
                sample(find_block(b->code32, b->code32 ? f->eip - (u32)tc : f->eip));
            dev_host_irq(v, vec);
            if (step || rl.active || trace_in_flight())
                continue;
            if (!at_boundary(b->code32, f->eip)) {
                /* (A POPFL in the sequence may clear TF: then the next
                 * host interrupt tries again.) */
                rolling = vec;
                v->st.rolled++;
                f->eflags |= EFLAGS_TF;
                continue;
            }
            if (rolling)
                f->eflags &= ~EFLAGS_TF;
            break;
        }
        if (rolling && f->trapno == T_DB && (rdr6() & 0x4000) && !trace_in_flight()) {
            ldr6(0);
            if (!at_boundary(b->code32, f->eip))
                continue;
            f->eflags &= ~EFLAGS_TF;
            f->trapno = rolling;
            break;
        }
        if (step && f->trapno == T_DB && !trace_in_flight() && b->ninsn == 1) {
            /* Single-stepping one guest instruction: traps after the
             * check and the FS swap that precede it are not the guest's.
             * The instruction is done once EIP has passed it - or, for a
             * REP string instruction, has come back to it once more. */
            u32 off = (b->code32 ? f->eip - (u32)tc : f->eip) - b->tc;
            if (off < BI(b, 0).istart || (off == BI(b, 0).istart && !at_insn)) {
                at_insn = off == BI(b, 0).istart;
                ldr6(0);
                continue;
            }
        }
        if (rl.active && f->trapno == T_PF && rcr2() - alias_va(0, 0) < 2 * NRELOC * PGSIZE) {
            if (reloc_fault(v, rcr2(), f->err))
                continue;
            break;              /* the guest's #PF is pending */
        }
        if (rl.active && (f->trapno == T_CALLOUT || f->trapno == T_BR) && relocated_check(v, b))
            continue;
        if (v->stop_reason)
            return;
        if (!rl.active && (f->trapno == T_CALLOUT || f->trapno == T_BR) && check_fired(v, b->code32))
            continue;
        if (v->stop_reason)
            return;
        if (f->trapno == T_PF) {
            int r = mmu_page_fault(v, rcr2(), f->err);
            if (r == PF_HIDDEN)
                continue;       /* hidden: resume the unit where it faulted */
            u32 off = b->code32 ? f->eip - (u32)tc : f->eip;
            struct block *cur = find_block(b->code32, off);
            int ins = 0;
            if (cur)
                tc_to_guest(cur, off - cur->tc, &ins);
            if (r == PF_TRACED) {
                if (cur && !step)
                    adapt_trap(v, cur, ins);
                f->eflags |= EFLAGS_TF;
                continue;       /* (a write that straddles two traced pages comes here twice) */
            }
            if (r == STOP)
                return;
            if (r == PF_WINDOW) {
                u32 save = v->eip;
                if (cur) {
                    v->eip = (cur->eip + tc_to_guest(cur, off - cur->tc, &ins)) & (b->code32 ? ~0u : 0xffff);
                    precise_regs(v, cur, ins, off - cur->tc);
                }
                v->eflags = (v->eflags & ~HW_FLAGS) | (f->eflags & HW_FLAGS);
                bt_window_fault(v, rcr2());
                v->eip = save;
                f->trapno = T_RELOC;
                if (cur && !step)
                    adapt_trap(v, cur, ins);
                break;
            }
            /* true: walk() left the guest's #PF pending for exit_block */
        }
        if (trace_in_flight()) {
            /* A traced write has been carried out (trace.c).  If the
             * single-step trap was only ours, carry on in this unit -
             * unless the write changed the unit's own code. */
            trace_end_write(v);
            if (f->trapno == T_DB && !step && (rdr6() & 0x4000)) {
                ldr6(0);
                f->eflags &= ~EFLAGS_TF;
                struct block *cur = find_block(b->code32, b->code32 ? f->eip - (u32)tc : f->eip);
                if (cur && cur->valid)
                    continue;
                f->trapno = T_TRACED;
                break;
            }
            if (!step)
                f->eflags &= ~EFLAGS_TF;
        }
        break;
    }
    if (rl.active)
        reloc_finish(v);
    if (rcr4() & CR4_TSD)
        lcr4(rcr4() & ~CR4_TSD);
    v->eflags = (v->eflags & ~(HW_FLAGS | EFLAGS_IF)) | (f->eflags & HW_FLAGS) | tcdata.vif;
    /* With a 16-bit stack segment, IRET into the guest loads only SP;
     * the upper half of ESP keeps the monitor's (SDM Vol. 2A, IRET; the
     * reason for Linux's "espfix").  The guest's upper half is its own. */
    if (!(v->seg[SEG_SS].attr & SEG_DB))
        f->esp = esp_hi | (f->esp & 0xffff);
}

/* May translated code go on after this exit without a new decision?  At
 * CPL 0 the decision would choose translation again (vmm.c, D:010).  Not
 * if the exit made a virtual interrupt deliverable (an OUT that unmasked
 * or ended one, or enabled a device's; an IRET or POPF that set IF):
 * only the main loop delivers it (vmm.c, D:020), and translated code
 * never looks for one while IF = 1. */
static int
still_kernel(struct vcpu *v)
{
    return !v->stop_reason && !v->halted && !v->intr_shadow && !v->irq_seen && v->cpl == 0 &&
           (v->cr0 & CR0_PE) && !(v->eflags & (EFLAGS_VM | EFLAGS_TF)) &&
           !rl.pending && v->seg[SEG_CS].base + v->eip < VMM_BASE - PGSIZE &&
           !((v->eflags & EFLAGS_IF) && dev_irq_pending(v));
}

/* After an exit from translated code that was entered at unit b (and
 * may have run on through chained units): put the guest state back at an
 * instruction boundary and handle what made it exit.  Returns 1 if
 * translated code may go on at once (B:070); *fill is set after a
 * dispatch miss, to the kind of table to fill (C:030). */
static int
exit_block(struct vcpu *v, struct block *entered, int *fill)
{
    struct frame *f = &v->f;
    int code32 = entered->code32;
    u32 off = code32 ? f->eip - (u32)tc : f->eip;
    u32 trap = f->trapno;
    int ins;

    *fill = 0;
    if (trap == T_ENTRYFAIL) {
        vm_stop(v, "could not enter translated code (vector %d, error %x)", f->err >> 16, f->err & 0xffff);
        return 0;
    }
    if (trap == T_CALLOUT) {
        u8 *r = cache_of(code32) + off;
        u32 rec = r[0] | (r[1] << 8) | (r[2] << 16) | ((u32)r[3] << 24);
        int kind = REC_KIND(rec), i = REC_INSN(rec);
        if (off + 4 > (code32 ? TC_SIZE : TC16_SIZE) ||
            (REC_UNIT(rec) >= (u32)nblocks && REC_UNIT(rec) != STEP_BLOCK) || kind == R_CHECK)
            panic("callout from TC offset %x with a bad record %x", off, rec);
        struct block *b = &blocks[REC_UNIT(rec)];
        u32 mask = code32 ? ~0u : 0xffff;
        v->st.callout_exits++;
        switch (kind) {
        case R_EMULATE: {
            v->eip = (b->eip + BI(b, b->ninsn).goff) & mask;
            /* The terminator as decoded at translation, unless the unit
             * rewrote it meanwhile (NOT_EMULATED then: it is an ordinary
             * instruction now, translated next). */
            int t = (b - blocks) % NTERM;
            if (b->valid && term_cache[t].serial == b->serial)
                emulate_insn(v, &term_cache[t].in);
            else
                emulate_one(v);
            break;
        }
        case R_EXIT0:
        case R_EXIT1:
            v->eip = b->exit[kind - R_EXIT0].target;
            chain(v, b, kind - R_EXIT0);
            break;
        case R_MISS: {
            /* The indirect branch is done; its target was not in the
             * table (C:030).  Which table: the one the dispatching
             * instruction reads. */
            f->ecx = tcdata.save_ecx;
            v->eip = tcdata.ind_target;
            v->st.dispatch_miss++;
            *fill = i == 0 ? K_RET : K_IND;
            break;
        }
        case R_IRQ:
            /* STI or POPF set IF with a virtual interrupt waiting: the
             * main loop delivers it, after STI's one-instruction shadow. */
            f->ecx = tcdata.save_ecx;
            v->eip = (b->eip + BI(b, i + 1).goff) & mask;
            v->intr_shadow = BI(b, i).kind == K_STI;
            return 0;
        case R_POPF:
            f->eax = tcdata.save_eax;
            v->eip = (b->eip + BI(b, i).goff) & mask;
            emulate_one(v);
            break;
        case R_CR:
            f->ecx = tcdata.save_ecx;
            v->eip = (b->eip + BI(b, i).goff) & mask;
            emulate_one(v);
            break;
        case R_ADAPT: {
            v->eip = (b->eip + BI(b, b->ninsn).goff) & mask;
            int t = (b - blocks) % NTERM, special = 0, r2 = NOT_EMULATED;
            if (b->valid && term_cache[t].serial == b->serial)
                r2 = emulate_data(v, &term_cache[t].in, &special);
            struct adapt *a = adapt_find(b->pa + BI(b, b->ninsn).goff, 0);
            if (r2 == NOT_EMULATED || !a) {
                if (a)
                    a->emulate = 0;
                drop_unit(v, b);
                break;
            }
            if (special)
                a->clean = 0;
            else if (++a->clean >= ADAPT_BACK) {
                a->emulate = 0;
                a->hits = 0;
                v->st.unadapted++;
                drop_unit(v, b);
            }
            break;
        }
        }
        return still_kernel(v);
    }
    struct block *b = find_block(code32, off);
    if (!b && trap >= 32 && code32 && in_dispatch_stub(off)) {
        /* A host interrupt in a dispatch stub (C:030): the indirect
         * branch is done, its target in ind_target, ECX saved. */
        v->eip = tcdata.ind_target;
        f->ecx = tcdata.save_ecx;
        return 0;
    }
    if (!b)
        panic("exit %d at TC offset %x belongs to no unit", trap, off);
    v->eip = (b->eip + tc_to_guest(b, off - b->tc, &ins)) & (code32 ? ~0u : 0xffff);
    for (int x = 0; x < 2; x++) {
        /* At a continuation stub, its 6-byte callout not yet run (a host
         * interrupt taken as the stub was reached): the unit's branch is
         * done - a CALL has pushed its return address - so resume at the
         * exit's target, not at the branch. */
        if (b->exit[x].site && off >= b->exit[x].stub && off < b->exit[x].stub + 6)
            v->eip = b->exit[x].target;
    }
    if (trap == T_TRACED) {
        /* The unit's code changed: retranslate from v->eip, with the
         * registers an inline sequence borrowed put back first. */
        precise_regs(v, b, ins, off - b->tc);
        return still_kernel(v);
    }
    if (trap == T_RELOC) {
        v->eip = rl.geip;               /* the next step runs it relocated */
        return 0;
    }
    precise_regs(v, b, ins, off - b->tc);
    if (trap == T_DB) {
        /* Single-stepping: TF was set only for this unit - for the guest's
         * own TF (bt_step), or to end an interrupt shadow (bt_step_one). */
        u32 dr6 = rdr6();
        ldr6(0);
        if (v->eflags & EFLAGS_TF)
            emulate_deliver_debug(v, dr6 & 0x400f ? dr6 & 0x400f : 0x4000);
        return 0;
    }
    if (trap < 32) {
        /* A fault in the guest's own code: a true #PF is already
         * pending, with the guest's error code (mmu.c). */
        if (trap != T_PF)
            raise_fault(v, trap, f->err);
        emulate_deliver_pending(v);
        return still_kernel(v);
    }
    /* A host interrupt (taken in run_block, at an instruction boundary):
     * back to the main loop, which brings the devices up to date and
     * delivers what they raised (vmm.c, D:020).  Just after an inline
     * STI the next instruction is in its shadow: the main loop runs it
     * first.  (Had IF already been 1, that delays the interrupt by one
     * instruction, which no guest can tell.) */
    if (ins > 0 && ins <= b->ninsn && off - b->tc == BI(b, ins - 1).tend && BI(b, ins - 1).kind == K_STI)
        v->intr_shadow = 1;
    return 0;
}

/* Is hardware EIP eip (in the TC) at a guest instruction boundary: the
 * start of an instruction's translation, or the instruction proper of an
 * IDENT one once its checks are done, or an exit stub?  Outside every
 * unit it is a dispatch stub, where exit_block knows the state. */
static int
at_boundary(int code32, u32 eip)
{
    u32 off = code32 ? eip - (u32)tc : eip;
    struct block *b = find_block(code32, off);
    if (!b)
        return 1;
    u32 o = off - b->tc;
    int last = b->term == TERM_INDIRECT || b->term == TERM_EMULATE ? b->ninsn : b->ninsn - 1;
    for (int i = 0; i <= last; i++)
        if (o < BI(b, i).tend)
            return o == (i ? BI(b, i - 1).tend : 0u) || (BI(b, i).kind == K_IDENT && o == BI(b, i).istart);
    if (b->term == TERM_BRANCH && b->exit[0].site) {
        /* The branch's own code (B:040), up to the first continuation
         * stub: only its start is a boundary - a CALL has pushed its
         * return address after it, and only the stubs say where the
         * branch went. */
        u32 stubs = b->exit[0].stub - b->tc, start = b->ninsn ? BI(b, b->ninsn - 1).tend : 0u;
        if (b->exit[1].site && b->exit[1].stub - b->tc < stubs)
            stubs = b->exit[1].stub - b->tc;
        if (o > start && o < stubs)
            return 0;
    }
    return 1;
}

/* Translate the one instruction at the guest's CS:EIP into the
 * single-step unit; NULL (with the fault delivered) if it cannot be
 * fetched. */
static struct block *
translate_step(struct vcpu *v)
{
    gpa_t pa;
    if (mmu_translate(v, v->seg[SEG_CS].base + v->eip, ACC_X | (v->cpl == 3 ? ACC_U : 0), &pa) != OK) {
        emulate_deliver_pending(v);
        return NULL;
    }
    int ctx = ctx_of(v);
    if (tc_used + TC_SLACK > TC_STEP(1) || tc16_used + TC_SLACK > TC_STEP(0)) {
        bt_flush("full");
        ctx = ctx_of(v);
    }
    set_tr_base(v);
    if (rl.active || rl.pending) {
        for (int j = 0; j < rl.n; j++)
            tr_base[rl.r[j].seg] = v->seg[rl.r[j].seg].base - rl.r[j].la_page;
        tr_relocated = 1;
    }
    struct block *b = translate(v, pa, &blocks[STEP_BLOCK], 1, ctx);
    tr_relocated = 0;
    b ? emit_end() : emit_cancel();
    if (!b)
        emulate_deliver_pending(v);
    return b;
}

/* TF is set: run exactly one guest instruction, then deliver #DB. */
static void
bt_step(struct vcpu *v)
{
    int r = emulate_one(v);
    if (r != NOT_EMULATED)
        return;
    struct block *b = translate_step(v);
    if (!b)
        return;
    /* A host interrupt already waiting is taken as the unit is entered,
     * before the instruction: take it and run the instruction again, so
     * that it does run (the main loop relies on that to end a shadow). */
    struct frame *f = &v->f;
    for (;;) {
        run_block(v, b, 1);
        if (v->stop_reason || f->trapno < T_IRQ0 || f->trapno >= T_IRQ0 + 16 ||
            f->eip != (b->code32 ? (u32)tc + b->tc : b->tc))
            break;
        dev_host_irq(v, f->trapno);
    }
    int fill;
    if (!v->stop_reason)
        exit_block(v, b, &fill);
}

/* Run exactly one guest instruction, whatever the mode (the main loop,
 * to end the interrupt shadow of an STI or MOV SS before delivering an
 * interrupt).  With the guest's TF set, its #DB follows, as in bt_step. */
static void relocated_step(struct vcpu *v);

void
bt_step_one(struct vcpu *v)
{
    if (rl.pending)
        relocated_step(v);
    else
        bt_step(v);
}

/* Run the instruction at v->eip once, alone, single-stepped, with the
 * segments in rl.r[] relocated (none: just this one step, for a string
 * instruction whose later elements reach the monitor's region). */
static void
relocated_step(struct vcpu *v)
{
    v->st.relocated++;
    struct block *b = translate_step(v);
    rl.pending = 0;
    if (!b)
        return;
    if (b->ninsn != 1 || (BI(b, 0).kind != K_IDENT && BI(b, 0).kind != K_WRAP)) {
        /* Not an IDENT instruction: the emulator reaches any address
         * through the guest's own tables. */
        emulate_one(v);
        return;
    }
    u32 tf = v->eflags & EFLAGS_TF;
    rl.active = 1;
    run_block(v, b, 1);
    if (v->stop_reason)
        return;
    if (v->f.trapno == T_DB) {
        struct frame *f = &v->f;
        u32 off = (b->code32 ? f->eip - (u32)tc : f->eip) - b->tc;
        int ins;
        ldr6(0);
        v->eip = (b->eip + tc_to_guest(b, off, &ins)) & (b->code32 ? ~0u : 0xffff);
        if (tf)
            emulate_deliver_debug(v, 0x4000);
        return;
    }
    int fill;
    exit_block(v, b, &fill);
}

/*B:000 Run the guest by translation until it needs the monitor: a unit,
 * then whatever made it exit, and on again while the guest stays in the
 * kernel (B:070). :*/
void
bt_run(struct vcpu *v)
{
    if (rl.pending) {
        relocated_step(v);
        return;
    }
    if (v->eflags & EFLAGS_TF) {
        bt_step(v);
        return;
    }
    struct block *b = lookup(v);
    if (!b) {
        emulate_deliver_pending(v);
        return;
    }
    for (;;) {
        run_block(v, b, 0);
        if (v->stop_reason)
            return;
        int fill;
        if (!exit_block(v, b, &fill))
            return;
        v->st.bt_continued++;
        b = lookup(v);
        if (!b) {
            emulate_deliver_pending(v);
            return;
        }
        if (fill)
            dispatch_fill(v, b, fill);
    }
}

/*B:080 The translation dump (`make tcdump`): with count=1 every 32-bit
 * unit counts its entries; at exit the monitor writes the hottest n to
 * COM2 - the guest bytes, the translation, and where each guest
 * instruction's translation starts - for tests/tcdump.sh to disassemble
 * side by side. :*/
void
bt_dump(int n)
{
    static u8 done[MAXBLOCKS];
    memset(done, 0, sizeof done);
    cprintf("tcdump: %d units, %u bytes of 32-bit translation cache in use\n", nblocks, tc_used);
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int j = 0; j < nblocks; j++)
            if (!done[j] && blocks[j].code32 && tcdata.count[j] &&
                (best < 0 || tcdata.count[j] > tcdata.count[best]))
                best = j;
        if (best < 0)
            break;
        done[best] = 1;
        struct block *b = &blocks[best];
        u8 g[16 * MAXI];
        u32 glen = b->glen > sizeof g ? sizeof g : b->glen;
        gpa_read(b->pa, g, glen);
        cprintf("tcdump unit %d eip=%08x pa=%08x count=%u ninsn=%d%s\n", best, b->eip, b->pa,
                tcdata.count[best], b->ninsn, b->valid ? "" : " (invalid)");
        cprintf("tcdump guest");
        for (u32 j = 0; j < glen; j++)
            cprintf(" %02x", g[j]);
        cprintf("\ntcdump marks");
        for (int j = 0; j <= b->ninsn && j <= MAXI; j++)
            cprintf(" %u:%u:%u", BI(b, j).goff, BI(b, j).cend, BI(b, j).tend);
        cprintf("\ntcdump tc");
        for (u32 j = 0; j < b->tclen; j++)
            cprintf(" %02x", tc[b->tc + j]);
        cprintf("\n");
    }
}
