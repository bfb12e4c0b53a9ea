/*
 * shadow.c -- shadow descriptor tables and cached descriptors.
 *
 * The CPU never loads the guest's GDT or LDT.  GDTR always points at one
 * of the monitor's tables, whose low part holds "shadow descriptors" (US
 * 6,397,242, abstract): copies of the guest's, entry for entry, so that
 * a guest selector means the same thing to the hardware as to the guest.
 * The patent's monitor GDT has three groups (Bugnion et al., TOCS 2012):
 * the shadows, six "cached descriptors" (the hidden part of each virtual
 * segment register, H:020), and the monitor's own descriptors.
 *
 * There are two such tables here, one for each engine - the "two
 * shadows" that VMware's later US 7,281,102 describes:
 *
 *  - vmm_gdt, the one translated code runs on (the patent's): each guest
 *    code or data descriptor with DPL 0 raised to the ring translated
 *    code runs at (1), its limit cut below the monitor's 4 MiB with the
 *    base kept ("truncation", H:010), its accessed bit preset; system
 *    descriptors left out, since translated code never lets the hardware
 *    follow a gate or switch tasks (emulate.c does).  Translated code
 *    loads a shadow for each reversible segment register and a cached
 *    descriptor for the others (H:025).
 *
 *  - de_gdt, the one direct execution runs on: the guest's descriptors
 *    exactly as they are, untruncated and with their own DPLs.  Guest
 *    code there runs at CPL 3, where paging alone keeps it out of the
 *    monitor (its pages are supervisor-only), and an exact copy is what
 *    makes LAR, LSL, VERR and VERW, which cannot be made to trap, give
 *    the guest's answers.  The only entries changed are those CPL 3 could
 *    make the hardware follow into the monitor's hands: DPL-3 call gates,
 *    task gates and TSS descriptors (H:012).
 *
 * Both are kept coherent with write traces on the guest's GDT and LDT
 * pages (H:015, H:017) and refreshed whole when they may be stale.
 *
 * Hardware:   SDM Vol. 3A §3.4.5 (Segment Descriptors), §3.5.1 (Segment
 *             Descriptor Tables), §5.8.3 (Call Gates), §7.2.2 (TSS
 *             Descriptor), SDM Vol. 2A LAR, LSL.
 * Runs in:    VMM, ring 0, interrupts off.
 * Read after: segtrack.c.
 */
#include "vmm.h"

/* Direct execution's GDT and the two shadow LDTs.  vmm_gdt (vmm.c) is
 * translated code's and the monitor's.  Written only here (and the
 * monitor's entries of vmm_gdt by vmm.c and bt.c at boot). */
static struct desc de_gdt[NGDT] __attribute__((aligned(PGSIZE)));
#define LDT_MAX 512
static struct desc bt_ldt[LDT_MAX] __attribute__((aligned(PGSIZE)));
static struct desc de_ldt[LDT_MAX] __attribute__((aligned(PGSIZE)));

/* What the guest's tables held at the last refresh, entry for entry. */
static struct desc guest_copy[GDT_VMM_FIRST];
static struct desc guest_ldt[LDT_MAX];
/* What direct execution's entry i is: DE_COPY, an exact copy of a
 * present code or data descriptor; DE_LOADABLE, one the hardware can
 * also load without writing the table (its accessed bit is set); or 0. */
#define DE_COPY 1
#define DE_LOADABLE 2
static u8 de_ok[GDT_VMM_FIRST], de_ldt_ok[LDT_MAX];
static u32 nsynced, nldt;               /* entries refreshed last time */
static u32 generation = 1;                 /* bumped by every refresh (H:025) */
static void table_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new);

/* The trap target that DPL-3 gates in direct execution's table are
 * pointed at: a conforming code segment, not present, so that a far CALL
 * or JMP through such a gate stops with #NP on it (H:012). */
#define GDT_DE_TRAP 8190

void
shadow_init(void)
{
    memset(guest_copy, 0, sizeof guest_copy);
    nsynced = nldt = 0;
    /* The monitor's descriptors direct execution needs: the CPU loads
     * CS and SS from them when a trap enters the monitor, and TR was
     * loaded from the TSS descriptor once at boot.  The translated-code
     * descriptors are absent, so guest code running directly cannot load
     * them: it gets #GP(selector), as past the end of its own GDT. */
    de_gdt[GDT_VMM_CS] = vmm_gdt[GDT_VMM_CS];
    de_gdt[GDT_VMM_DS] = vmm_gdt[GDT_VMM_DS];
    de_gdt[GDT_VMM_TSS] = vmm_gdt[GDT_VMM_TSS];
    de_gdt[GDT_DE_TRAP] = desc_make(0, 0, SEG_S | STA_X | STA_R | STA_C | STA_A);
    trace_register(TR_DESC, table_written);
}

/*H:010 Truncation.  A segment that would reach the monitor's 4 MiB gets
 * its limit changed so that no offset in it does; the base is never
 * changed.  Where the CPU checks limits, an access past the new limit
 * raises #GP and the monitor can emulate it instead.
 *  - Expand-up: the valid offsets are [0, limit]; the limit is cut to end
 *    just below VMM_BASE.
 *  - Expand-down: the valid offsets are (limit, upper], where upper is
 *    0xffff or 0xffffffff by the B flag (SDM Vol. 3A §3.4.5.1), and the
 *    limit can only move up, cutting offsets from the bottom.  So if the
 *    monitor's offsets lie below the top of the segment, the limit is
 *    raised past them (keeping the top part, where a downward stack
 *    lives); if they reach the top, a data segment that is not a stack
 *    can drop to a 64 KiB upper bound, and otherwise nothing of the
 *    segment is left: every access through it faults and is emulated.
 * The DPL is raised to at least `ring`, and the accessed bit is set so
 * that the CPU never writes the table. :*/
static int
expand_down_truncate(u32 base, u32 *limit, u32 *attr, int stack)
{
    u32 upper = (*attr & SEG_DB) ? 0xffffffffu : 0xffff;
    u32 m0 = VMM_BASE - base;                   /* first offset in the monitor (mod 2^32) */
    u32 m1 = m0 + VMM_SIZE - 1;                 /* last */
    int based_inside = m1 < m0;                 /* then offsets [0, m1] are in it too */
    u32 lo = *limit;                            /* the valid offsets: (lo, upper] */
    if (lo >= upper)
        return 0;                               /* empty already */
    if (based_inside ? !(upper >= m0 || lo < m1) : !(m0 <= upper && lo < m1))
        return 0;                               /* clear of the monitor */
    if (based_inside ? upper < m0 : m1 < upper) {
        *limit = m1;                            /* keep (m1, upper] */
        return 1;
    }
    if (!stack && !based_inside && upper == 0xffffffffu && m0 > 0xffff && lo < 0xffff) {
        *attr &= ~SEG_DB;                       /* keep (lo, 0xffff] */
        return 1;
    }
    *limit = upper;                             /* nothing left */
    return 1;
}

struct desc
shadow_truncate(struct desc d, int ring, int stack)
{
    u32 base = desc_base(d), limit = desc_limit(d), attr = desc_attr(d);
    if ((int)SEG_DPL(attr) < ring)
        attr = (attr & ~(3u << 5)) | (ring << 5);
    attr |= STA_A;
    if (!(attr & STA_X) && (attr & STA_E)) {
        if (expand_down_truncate(base, &limit, &attr, stack) && limit > 0xfffff)
            limit |= 0xfff;                     /* rounded up: still clear of the monitor */
    } else if (base < VMM_BASE && limit > VMM_BASE - 1 - base) {
        limit = VMM_BASE - 1 - base;
        if (limit > 0xfffff)
            limit = (limit & ~0xfffu) | 0xfff;  /* page-granular, still below */
        if ((u64)base + limit >= VMM_BASE)
            limit -= PGSIZE;
    }
    /* Deviation: an expand-up segment based inside the monitor's region
     * is left as it is: only offsets that wrap past 4 GiB are clear of
     * the monitor, and a limit cannot say "from offset n on".  The
     * software checks (bt.c, H:030) keep translated code out of it. */
    return desc_make(base, limit, attr);
}

/*H:012 Direct execution's entries.  A code or data descriptor is copied
 * as it is.  A system descriptor with DPL below 3 is copied too: at CPL 3
 * every use of it - a far CALL or JMP through it, LAR, LSL - fails the
 * DPL check before anything else happens (SDM Vol. 2A, CALL, LAR).  With
 * DPL 3, three kinds would lead the hardware somewhere only the monitor
 * may go, and are changed so that using them faults instead, after which
 * emulate.c carries out the instruction against the guest's own tables:
 *  - a call gate: its target becomes GDT_DE_TRAP, a not-present
 *    conforming code segment (#NP on it, after the gate's own checks);
 *  - a task gate: its TSS selector becomes GDT_DE_TRAP, not a TSS (#GP);
 *  - an available TSS: shown busy, so a task switch to it raises #GP.
 * Deviation: LAR on a DPL-3 available TSS in direct execution reads it
 * as busy. :*/
static struct desc
de_image(struct desc g)
{
    u32 attr = desc_attr(g), type = SEG_TYPE(attr);
    if ((attr & SEG_S) || SEG_DPL(attr) < 3)
        return g;
    if (type == STS_CG16 || type == STS_CG32 || type == STS_TG)
        g.lo = (g.lo & 0xffff) | ((u32)SEL(GDT_DE_TRAP, 0) << 16);
    else if (type == STS_T16A || type == STS_T32A)
        g.hi |= 2u << 8;                        /* busy */
    return g;
}

/* Translated code's entry: a truncated shadow of a code or data
 * descriptor (present only if the guest's is), nothing for the rest. */
static struct desc
bt_image(struct desc g)
{
    struct desc z = { 0, 0 };
    if (!(desc_attr(g) & SEG_S))
        return z;
    return shadow_truncate(g, bt_ring, 0);
}

/* Can the hardware reload this entry in direct execution without writing
 * the table?  A descriptor with a clear accessed bit would have the CPU
 * set it - in the shadow, which is read-only there (direct.c). */
static int
de_kind(struct desc g)
{
    u32 a = desc_attr(g);
    if (!(a & SEG_S) || !(a & SEG_P))
        return 0;
    return (a & STA_A) ? DE_LOADABLE : DE_COPY;
}

/*H:015 Keeping the shadows coherent.  The guest-physical frames that
 * hold the guest's GDT carry TR_DESC traces (trace.c): a write to them,
 * by either engine or by the monitor itself (an accessed bit), marks the
 * shadows stale.  Before direct execution they are refreshed only if
 * stale, if the guest loaded another table, or if its page tables now map
 * the table's linear range to other frames. :*/
#define TABLE_MAX_PAGES 17
struct table_state {
    gpa_t frames[TABLE_MAX_PAGES];
    int nframes;
    u32 base, limit;
    int present;                        /* the guest had such a table at the last refresh */
    int stale;
    u32 dgen;                           /* mmu_data_generation() when its frames were found */
};
static struct table_state gdt_st = { .stale = 1 }, ldt_st = { .stale = 1 };

/* Does a write of n bytes at pa touch the table t?  Its frames hold its
 * linear range [base, base + limit], page by page. */
static int
table_hit(struct table_state *t, gpa_t pa, u32 n)
{
    for (int i = 0; i < t->nframes; i++) {
        u32 lo = i == 0 ? t->base & 0xfff : 0;
        u32 hi = i == t->nframes - 1 ? ((t->base + t->limit) & 0xfff) + 1 : PGSIZE;
        if (pa + n > t->frames[i] + lo && pa < t->frames[i] + hi)
            return 1;
    }
    return 0;
}

static void
table_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new)
{
    /* A page may hold both tables, or data besides: each is reread only
     * if the write reached its own bytes. */
    if (table_hit(&gdt_st, pa, n))
        gdt_st.stale = 1;
    if (table_hit(&ldt_st, pa, n))
        ldt_st.stale = 1;
}

/* The frames behind a table's linear range now; 0 if some page is not
 * mapped. */
static int
table_frames_now(struct vcpu *v, u32 base, u32 limit, gpa_t *frames, int *nf)
{
    u32 first = base & PTE_FRAME, last = (base + limit) & PTE_FRAME;
    *nf = 0;
    for (u32 la = first;; la += PGSIZE) {
        gpa_t pa;
        if (*nf == TABLE_MAX_PAGES || mmu_translate_watched(v, la, ACC_SYS | ACC_PEEK, &pa) != OK) {
            vfault.pending = 0;
            return 0;
        }
        frames[(*nf)++] = pa & PTE_FRAME;
        if (la == last)
            break;
    }
    return 1;
}

/* Is the copy of the table at (base, limit) current?  If not, move its
 * traces to the frames behind it now and return 0: the caller rereads. */
static int
table_current(struct vcpu *v, struct table_state *t, u32 base, u32 limit, int present)
{
    gpa_t now[TABLE_MAX_PAGES];
    if (!present && !t->present)
        return 1;                       /* still no table */
    int same = !t->stale && present && t->present && base == t->base && limit == t->limit;
    if (same && t->dgen == mmu_data_generation())
        return 1;                       /* no entry that maps it has changed since (T:077) */
    int nnow = 0, mapped = present && table_frames_now(v, base, limit, now, &nnow);
    u32 dgen = mmu_data_generation();
    t->dgen = 0;
    if (same && mapped && nnow == t->nframes && !memcmp(now, t->frames, nnow * sizeof now[0])) {
        t->dgen = dgen;
        return 1;
    }
    for (int i = 0; i < t->nframes; i++)
        trace_remove(t->frames[i], TR_DESC);
    t->nframes = 0;
    if (mapped)
        for (int i = 0; i < nnow; i++) {
            trace_add(v, now[i], TR_DESC);
            t->frames[t->nframes++] = now[i];
        }
    t->base = base;
    t->limit = limit;
    t->present = present;
    t->stale = present && !mapped;      /* a table not fully mapped is read afresh each time */
    t->dgen = mapped ? dgen : 0;
    return 0;
}

/* Read n descriptors from the guest's linear address la; entries that
 * cannot be read become null. */
static void
read_table(struct vcpu *v, u32 la, struct desc *to, u32 n)
{
    /* One read of the whole table (a page walk per page, not per entry). */
    if (!n || vmem_read(v, la, to, n * 8, ACC_SYS) == OK)
        return;
    vfault.pending = 0;
    for (u32 i = 0; i < n; i++)
        if (vmem_read(v, la + i * 8, &to[i], 8, ACC_SYS) != OK) {
            vfault.pending = 0;
            to[i].lo = to[i].hi = 0;
        }
}

/* Refresh both shadow GDTs from the guest's, if it may differ. */
void
shadow_sync_gdt(struct vcpu *v)
{
    if (table_current(v, &gdt_st, v->gdtr.base, v->gdtr.limit, 1))
        return;
    u32 n = (v->gdtr.limit + 1) / 8;
    if (n > GDT_VMM_FIRST)
        n = GDT_VMM_FIRST;      /* Deviation: guest entries 8176 and up are never shadowed */
    v->st.gdt_syncs++;
    generation++;
    read_table(v, v->gdtr.base, guest_copy, n);
    if (n)
        guest_copy[0].lo = guest_copy[0].hi = 0;        /* the null descriptor */
    for (u32 i = 0; i < n; i++) {
        vmm_gdt[i] = bt_image(guest_copy[i]);
        de_gdt[i] = de_image(guest_copy[i]);
        de_ok[i] = i ? de_kind(guest_copy[i]) : 0;
    }
    for (u32 i = n; i < nsynced; i++) {
        vmm_gdt[i].lo = vmm_gdt[i].hi = de_gdt[i].lo = de_gdt[i].hi = 0;
        de_ok[i] = 0;
    }
    nsynced = n;
}

/*H:017 The shadow LDTs, kept like the shadow GDTs: refreshed when a
 * trace marks them stale, when the guest loads another LDT, or when its
 * pages move.  Each engine's table has a descriptor for its own, which
 * the hardware LDTR holds while that engine runs (shadow_engine), so an
 * LDT selector means the same to the hardware as to the guest.
 * Deviation: at most LDT_MAX entries are shadowed; selectors past them
 * keep the guest in translation, on cached descriptors. :*/
void
shadow_sync_ldt(struct vcpu *v)
{
    int present = (v->ldtr.attr & SEG_P) && (v->ldtr.sel & ~3u);
    if (table_current(v, &ldt_st, v->ldtr.base, v->ldtr.limit, present))
        return;
    generation++;
    u32 n = 0;
    if (ldt_st.nframes) {
        n = (v->ldtr.limit + 1) / 8;
        if (n > LDT_MAX)
            n = LDT_MAX;
        read_table(v, v->ldtr.base, guest_ldt, n);
    }
    u32 upto = n > nldt ? n : nldt;
    for (u32 i = 0; i < upto; i++) {
        struct desc z = { 0, 0 }, g = i < n ? guest_ldt[i] : z;
        bt_ldt[i] = bt_image(g);
        de_ldt[i] = de_image(g);
        de_ldt_ok[i] = i < n ? de_kind(g) : 0;
    }
    nldt = n;
    vmm_gdt[GDT_SHADOW_LDT] = n ? desc_make((u32)bt_ldt, n * 8 - 1, SEG_P | STS_LDT)
                                : desc_make(0, 0, STS_LDT);
    de_gdt[GDT_SHADOW_LDT] = n ? desc_make((u32)de_ldt, n * 8 - 1, SEG_P | STS_LDT)
                               : desc_make(0, 0, STS_LDT);
}

/* Run the next entry on this engine's tables: LGDT, then LLDT, since
 * LDTR caches the descriptor of the table it was loaded from. */
void
shadow_engine(int direct)
{
    static int cur = -1;
    static u32 cur_gen = ~0u;
    if (cur == direct && cur_gen == generation)
        return;
    struct pseudo_desc gd = { NGDT * 8 - 1, direct ? (u32)de_gdt : (u32)vmm_gdt };
    lgdt(&gd);
    u16 sel = nldt ? SEL(GDT_SHADOW_LDT, 0) : 0;
    __asm__ volatile("lldt %0" : : "r"(sel));
    cur = direct;
    cur_gen = generation;
}

/* The pages of direct execution's tables, for its view (mmu.c). */
void
shadow_de_tables(u32 *gdt, u32 *gdt_len, u32 *ldt, u32 *ldt_len)
{
    *gdt = (u32)de_gdt;
    *gdt_len = sizeof de_gdt;
    *ldt = (u32)de_ldt;
    *ldt_len = sizeof de_ldt;
}

/* Is linear address la in direct execution's tables? */
int
shadow_de_table_write(u32 la)
{
    return la - (u32)de_gdt < sizeof de_gdt || la - (u32)de_ldt < sizeof de_ldt;
}

/* The guest's descriptor behind an entry of direct execution's tables,
 * as of the last refresh: what the hardware loads for `sel`.  With
 * `loadable`, only if the hardware can load it without writing the
 * table; without, any code or data descriptor it holds an exact copy of
 * (a far transfer may have loaded one whose accessed bit is clear:
 * vmm.c, far_sets_accessed). */
int
shadow_guest_desc(u16 sel, struct desc *d, int loadable)
{
    u32 i = sel >> 3;
    int need = loadable ? DE_LOADABLE : DE_COPY;
    if (sel & ERR_TI) {
        if (i >= nldt || de_ldt_ok[i] < need)
            return 0;
        *d = guest_ldt[i];
        return 1;
    }
    if (i >= nsynced || de_ok[i] < need)
        return 0;
    *d = guest_copy[i];
    return 1;
}

/* The guest's descriptor for `sel`, from the copy the shadows keep of
 * its table (refreshed first if a trace has marked it stale), so that
 * emulation reads it without a page walk.  0 if the copy cannot answer:
 * the table is not fully mapped (the read must fault as the CPU's
 * would), or the entry lies beyond what is shadowed.  The caller has
 * checked the selector against the table's limit. */
int
shadow_copy_desc(struct vcpu *v, u16 sel, struct desc *d)
{
    u32 i = sel >> 3;
    if (sel & ERR_TI) {
        shadow_sync_ldt(v);
        if (ldt_st.stale || !ldt_st.nframes || i >= nldt)
            return 0;
        *d = guest_ldt[i];
        return 1;
    }
    shadow_sync_gdt(v);
    if (gdt_st.stale || !i || i >= nsynced)
        return 0;
    *d = guest_copy[i];
    return 1;
}

/* Does an IRET to ring 3 change this data selector?  IRET to an outer
 * ring replaces a null selector in ES, DS, FS or GS with 0000 (SDM Vol.
 * 2A, IRET, RETURN-TO-OUTER-PRIVILEGE-LEVEL: "IF SegmentSelector = NULL
 * ... SegmentSelector <- 0"), so one with a non-zero RPL does not
 * survive entering direct execution: a guest that loaded 0003 into DS
 * and was interrupted (a host interrupt, a hidden page fault) would read
 * back 0000, where on bare hardware no IRET happened.  shadow_has
 * refuses such a register, so it is translated until the guest reloads
 * it, and direct_run does not resume a guest holding one.  (Found by
 * descfuzz under hostirq=20000; decide_seg test (d).) */
int
shadow_iret_nulls(u16 sel)
{
    return (sel & ~3u) == 0 && (sel & 3) != 0;
}

/* Can the hardware load this register's selector in direct execution? */
int
shadow_has(struct vcpu *v, int sreg)
{
    u16 sel = v->seg[sreg].sel;
    if (v->eflags & EFLAGS_VM)
        return 1;
    if ((sel & ~3u) == 0)
        return sreg != SEG_CS && sreg != SEG_SS && !shadow_iret_nulls(sel);
    /* Entering direct execution, the monitor loads DS, ES, FS and GS
     * itself (boot.S), which sets a clear accessed bit; IRET loads CS
     * and SS, which sets it only where far transfers do. */
    struct desc d;
    int cs_ss = sreg == SEG_CS || sreg == SEG_SS;
    return shadow_guest_desc(sel, &d, !cs_ss || far_sets_accessed);
}

void
shadow_gdt_changed(struct vcpu *v)
{
    (void)v;
    gdt_st.stale = 1;           /* LGDT: the next refresh reads the new table */
}

/* Refresh the shadows for translated code, if a trace or LGDT says they
 * may be stale.  Translated code compares each entry with the hidden part
 * it needs before using it (H:025), so here nothing more is needed. */
void
shadow_sync_for_bt(struct vcpu *v)
{
    if (gdt_st.stale)
        shadow_sync_gdt(v);
    if (ldt_st.stale || v->ldtr.base != ldt_st.base || v->ldtr.limit != ldt_st.limit)
        shadow_sync_ldt(v);
}

u32
shadow_generation(void)
{
    return generation;
}

/*H:020 Cached descriptors: the hidden part of each virtual segment
 * register, truncated, with the DPL of the ring translated code runs at,
 * so that ring can load it - for SS the CPU demands DPL = CPL exactly.
 * Using the hidden part rather than the guest's table is what lets
 * translated code run correctly with non-reversible segments, and in
 * real mode, where there is no table at all. :*/
static struct desc
cached_image(struct vcpu *v, int sreg)
{
    struct seg *s = &v->seg[sreg];
    u32 attr = s->attr | SEG_S | SEG_P | STA_A;
    if (sreg == SEG_CS) {
        attr |= STA_R;                          /* read through a CS override (bt.c) */
    } else if (sreg == SEG_SS || s->mode != SM_PROT) {
        attr = (attr & ~STA_X) | STA_W;
        if (s->mode != SM_PROT)
            attr &= ~STA_E;
    }
    attr = (attr & ~(3u << 5)) | (bt_ring << 5);
    return shadow_truncate(desc_make(s->base, s->limit, attr), bt_ring, sreg == SEG_SS);
}

/*H:025 The selector translated code runs on for each register.  A
 * reversible register is loaded from its shadow, exactly as the patent
 * has it; its shadow must still describe what the register holds, which
 * is checked by comparing the two descriptors (the access rights aside:
 * the shadow's DPL is the guest's, raised).  SS can use its shadow only
 * if the shadow's DPL is the ring translated code runs at, and CS is the
 * translation cache's.  Everything else - a non-reversible register, one
 * loaded in real or virtual-8086 mode, and CS (whose cached descriptor
 * serves instructions with a CS prefix, bt.c) - gets its cached
 * descriptor.
 * Returns the selector, or 0 for a null selector. :*/
u16
shadow_hw_selector(struct vcpu *v, int sreg, int *from_shadow)
{
    struct seg *s = &v->seg[sreg];
    *from_shadow = 0;
    if (!(s->attr & SEG_P))
        return 0;
    struct desc c = cached_image(v, sreg);
    u16 sel = s->sel;
    u32 i = sel >> 3;
    if (s->mode == SM_PROT && sreg != SEG_CS && (sel & ~3u) &&
        ((sel & ERR_TI) ? i < nldt : i < nsynced)) {
        struct desc sh = (sel & ERR_TI) ? bt_ldt[i] : vmm_gdt[i];
        u32 rights = (3u << 13) | (STA_A << 8);         /* DPL and accessed */
        int dpl_ok = sreg != SEG_SS || (int)((sh.hi >> 13) & 3) == bt_ring;
        if (sh.lo == c.lo && !((sh.hi ^ c.hi) & ~rights) && dpl_ok) {
            *from_shadow = 1;
            return (sel & ~3u) | bt_ring;
        }
    }
    vmm_gdt[GDT_CACHED + sreg] = c;
    return SEL(GDT_CACHED + sreg, bt_ring);
}

/* Fold the monitor's own entries of direct execution's GDT into the
 * integrity checksum (vmm.c). */
u32
shadow_integrity(u32 h)
{
    for (int i = GDT_VMM_FIRST; i < NGDT; i++)
        if (i != GDT_SHADOW_LDT)
            h = (h ^ de_gdt[i].lo ^ (de_gdt[i].hi << 1)) * 16777619u;
    return h;
}
