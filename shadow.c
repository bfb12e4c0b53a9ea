/*
 * shadow.c -- shadow descriptor tables and cached descriptors.
 *
 * The CPU never loads the guest's GDT.  GDTR always points at the
 * monitor's table, whose low part holds "shadow descriptors" (US
 * 6,397,242, abstract): copies of the guest's, entry for entry, so that a
 * guest selector means the same thing to the hardware as to the guest,
 * adjusted so the guest cannot reach the monitor.  The adjustments
 * (docs/00-overview.md):
 *  - DPL 0 becomes DPL 1: translated guest kernel code runs at ring 1 and
 *    must be able to load its own segments;
 *  - the limit is cut below the monitor's 4 MiB ("truncation"); the base
 *    is never changed;
 *  - the accessed bit is preset, so the CPU never writes the table;
 *  - system descriptors (TSS, LDT, gates) are not shadowed: the
 *    hardware's TR and LDTR are the monitor's.
 * Above the shadows sit the six "cached descriptors", one per segment
 * register: the hidden part of a virtual segment register that is not
 * reversible (segtrack.c), or simply the one translated code uses.
 *
 * The shadows are kept coherent with write traces on the guest's GDT and
 * LDT pages (H:015, H:017) and refreshed whole when they may be stale.
 * Deviation: expand-down segments are not truncated.
 *
 * Hardware:   SDM Vol. 3A §3.4.5 (Segment Descriptors), §3.5.1 (Segment
 *             Descriptor Tables).
 * Runs in:    VMM, ring 0, interrupts off.
 * Read after: segtrack.c.
 */
#include "vmm.h"

/* What the guest's GDT held at the last refresh, entry for entry; the
 * hardware loads the shadow of exactly these in direct execution.
 * Written only here. */
static struct desc guest_copy[GDT_VMM_FIRST];
static u8 shadowed[GDT_VMM_FIRST];
static void gdt_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new);      /* 1 if vmm_gdt[i] is a shadow of guest_copy[i] */
static u32 nsynced;                     /* entries refreshed last time */

void
shadow_init(void)
{
    memset(guest_copy, 0, sizeof guest_copy);
    memset(shadowed, 0, sizeof shadowed);
    nsynced = 0;
    trace_register(TR_DESC, gdt_written);
}

/*H:010 Truncation.  A segment that would reach the monitor's 4 MiB gets
 * its limit cut to end just below VMM_BASE.  Where the CPU checks limits,
 * any access past it raises #GP and the monitor can emulate it instead.
 * The DPL is raised to at least `ring`. :*/
struct desc
shadow_truncate(struct desc d, int ring)
{
    u32 base = desc_base(d), limit = desc_limit(d), attr = desc_attr(d);
    if ((int)SEG_DPL(attr) < ring)
        attr = (attr & ~(3u << 5)) | (ring << 5);
    attr |= STA_A;
    int expand_down = !(attr & STA_X) && (attr & STA_E);
    if (!expand_down && base < VMM_BASE && limit > VMM_BASE - 1 - base) {
        limit = VMM_BASE - 1 - base;
        if (limit > 0xfffff)
            limit = (limit & ~0xfffu) | 0xfff;      /* page-granular, still below */
        if ((u64)base + limit >= VMM_BASE)
            limit -= PGSIZE;
    }
    return desc_make(base, limit, attr);
}

/*H:015 Keeping the shadow GDT coherent.  The guest-physical frames
 * that hold the guest's GDT carry TR_DESC traces (trace.c): a write to
 * them, by either engine or by the monitor itself (an accessed bit),
 * marks the shadow stale.  Before direct execution the shadow is
 * refreshed only if it is stale, if the guest loaded another table, or if
 * its page tables now map the table's linear range to other frames. :*/
#define GDT_MAX_PAGES 17
static gpa_t gdt_frames[GDT_MAX_PAGES];
static int ngdt_frames;
static u32 synced_base, synced_limit;
static int gdt_stale = 1;

/* The shadow LDT: the guest's current LDT, entry for entry, loaded in
 * the hardware LDTR while the guest runs directly.  Deviation: at most
 * LDT_MAX entries are shadowed; selectors past them keep the guest in
 * translation. */
#define LDT_MAX 512
static struct desc shadow_ldt[LDT_MAX] __attribute__((aligned(PGSIZE)));
static struct desc guest_ldt[LDT_MAX];
static u8 ldt_shadowed[LDT_MAX];
static u32 nldt;
static gpa_t ldt_frames[GDT_MAX_PAGES];
static int nldt_frames;
static u32 ldt_synced_base, ldt_synced_limit;
static int ldt_stale = 1;

static void
gdt_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new)
{
    gdt_stale = 1;              /* the page may hold the LDT too: both are reread */
    ldt_stale = 1;
}

void *
shadow_ldt_page(void)
{
    return shadow_ldt;
}

/* The frames behind the guest GDT's linear range now; 0 if some page is
 * not mapped. */
static int
table_frames_now(struct vcpu *v, u32 base, u32 limit, gpa_t *frames, int *nf)
{
    u32 first = base & PTE_FRAME, last = (base + limit) & PTE_FRAME;
    *nf = 0;
    for (u32 la = first;; la += PGSIZE) {
        gpa_t pa;
        if (*nf == GDT_MAX_PAGES || mmu_translate(v, la, ACC_SYS | ACC_PEEK, &pa) != OK) {
            vfault.pending = 0;
            return 0;
        }
        frames[(*nf)++] = pa & PTE_FRAME;
        if (la == last)
            break;
    }
    return 1;
}

/* Refresh the shadow GDT from the guest's, if it may differ. */
void
shadow_sync_gdt(struct vcpu *v)
{
    gpa_t now[GDT_MAX_PAGES];
    int nnow;
    int mapped = table_frames_now(v, v->gdtr.base, v->gdtr.limit, now, &nnow);
    if (!gdt_stale && mapped && v->gdtr.base == synced_base && v->gdtr.limit == synced_limit &&
        nnow == ngdt_frames && !memcmp(now, gdt_frames, nnow * sizeof now[0]))
        return;
    for (int i = 0; i < ngdt_frames; i++)
        trace_remove(gdt_frames[i], TR_DESC);
    ngdt_frames = 0;
    if (mapped) {
        for (int i = 0; i < nnow; i++) {
            trace_add(v, now[i], TR_DESC);
            gdt_frames[i] = now[i];
        }
        ngdt_frames = nnow;
    }
    synced_base = v->gdtr.base;
    synced_limit = v->gdtr.limit;
    gdt_stale = !mapped;        /* a table not fully mapped is read afresh each time */
    u32 n = (v->gdtr.limit + 1) / 8;
    if (n > GDT_VMM_FIRST)
        n = GDT_VMM_FIRST;
    v->st.gdt_syncs++;
    /* One read of the whole table (a page walk per page, not per entry). */
    if (n && vmem_read(v, v->gdtr.base, guest_copy, n * 8, ACC_SYS) != OK) {
        vfault.pending = 0;
        for (u32 i = 0; i < n; i++) {
            if (vmem_read(v, v->gdtr.base + i * 8, &guest_copy[i], 8, ACC_SYS) != OK) {
                vfault.pending = 0;
                guest_copy[i].lo = guest_copy[i].hi = 0;
            }
        }
    }
    for (u32 i = 0; i < n; i++) {
        struct desc d = guest_copy[i];
        if (i == 0)
            guest_copy[0].lo = guest_copy[0].hi = d.lo = d.hi = 0;
        if ((desc_attr(d) & SEG_S) && (desc_attr(d) & STA_A) && i) {
            vmm_gdt[i] = shadow_truncate(d, 1);
            shadowed[i] = 1;
        } else if ((desc_attr(d) & SEG_S) && i) {
            /* Accessed bit clear: the CPU would write it into the guest's
             * table on the first load, which may fault (a read-only GDT).
             * Not present in the shadow, so that load traps and the
             * monitor does it (emulate.c), accessed bit and all. */
            vmm_gdt[i] = shadow_truncate(d, 1);
            vmm_gdt[i].hi &= ~(SEG_P << 8);
            shadowed[i] = 0;
        } else {
            vmm_gdt[i].lo = vmm_gdt[i].hi = 0;
            shadowed[i] = 0;
        }
    }
    for (u32 i = n; i < nsynced; i++) {
        vmm_gdt[i].lo = vmm_gdt[i].hi = 0;
        shadowed[i] = 0;
    }
    nsynced = n;
}

/* The shadow of one guest code or data descriptor, present only if its
 * accessed bit is set (see shadow_sync_gdt).  Returns 1 if shadowed. */
static int
shadow_one(struct desc d, struct desc *sd)
{
    if (!(desc_attr(d) & SEG_S)) {
        sd->lo = sd->hi = 0;
        return 0;
    }
    *sd = shadow_truncate(d, 1);
    if (desc_attr(d) & STA_A)
        return 1;
    sd->hi &= ~(SEG_P << 8);
    return 0;
}

/*H:017 The shadow LDT, kept like the shadow GDT: refreshed when a trace
 * marks it stale, when the guest loads another LDT, or when its pages
 * move; loaded into the hardware LDTR (shadow_load_ldtr) before direct
 * execution, so that an LDT selector means the same to the hardware as
 * to the guest. :*/
void
shadow_sync_ldt(struct vcpu *v)
{
    gpa_t now[GDT_MAX_PAGES];
    int nnow = 0, mapped = 0;
    int present = (v->ldtr.attr & SEG_P) && (v->ldtr.sel & ~3u);
    if (present)
        mapped = table_frames_now(v, v->ldtr.base, v->ldtr.limit, now, &nnow);
    if (!ldt_stale && present && mapped && v->ldtr.base == ldt_synced_base &&
        v->ldtr.limit == ldt_synced_limit && nnow == nldt_frames &&
        !memcmp(now, ldt_frames, nnow * sizeof now[0]))
        return;
    for (int i = 0; i < nldt_frames; i++)
        trace_remove(ldt_frames[i], TR_DESC);
    nldt_frames = 0;
    nldt = 0;
    ldt_stale = present && !mapped;
    ldt_synced_base = v->ldtr.base;
    ldt_synced_limit = v->ldtr.limit;
    if (present && mapped) {
        for (int i = 0; i < nnow; i++) {
            trace_add(v, now[i], TR_DESC);
            ldt_frames[i] = now[i];
        }
        nldt_frames = nnow;
        nldt = (v->ldtr.limit + 1) / 8;
        if (nldt > LDT_MAX)
            nldt = LDT_MAX;
        if (vmem_read(v, v->ldtr.base, guest_ldt, nldt * 8, ACC_SYS) != OK) {
            vfault.pending = 0;
            nldt = 0;
        }
    }
    for (u32 i = 0; i < LDT_MAX; i++) {
        if (i < nldt)
            ldt_shadowed[i] = shadow_one(guest_ldt[i], &shadow_ldt[i]);
        else {
            ldt_shadowed[i] = 0;
            shadow_ldt[i].lo = shadow_ldt[i].hi = 0;
        }
    }
    vmm_gdt[GDT_SHADOW_LDT] = nldt ? desc_make((u32)shadow_ldt, nldt * 8 - 1, SEG_P | STS_LDT)
                                   : desc_make(0, 0, STS_LDT);
}

/* Load the hardware LDTR with the shadow LDT (or none). */
void
shadow_load_ldtr(void)
{
    u16 sel = nldt ? SEL(GDT_SHADOW_LDT, 0) : 0;
    __asm__ volatile("lldt %0" : : "r"(sel));
}

/* The guest's descriptor behind a shadow entry, as of the last refresh. */
int
shadow_guest_desc(u16 sel, struct desc *d)
{
    u32 i = sel >> 3;
    if (sel & ERR_TI) {
        if (i >= nldt || !ldt_shadowed[i])
            return 0;
        *d = guest_ldt[i];
        return 1;
    }
    if (i >= nsynced || !shadowed[i])
        return 0;
    *d = guest_copy[i];
    return 1;
}

/* Can the hardware load this register's selector from the shadow GDT? */
int
shadow_has(struct vcpu *v, int sreg)
{
    u16 sel = v->seg[sreg].sel;
    if (v->eflags & EFLAGS_VM)
        return 1;
    if ((sel & ~3u) == 0)
        return sreg != SEG_CS && sreg != SEG_SS;
    struct desc d;
    return shadow_guest_desc(sel, &d);
}

void
shadow_gdt_changed(struct vcpu *v)
{
    (void)v;
    gdt_stale = 1;              /* LGDT: the next refresh reads the new table */
}

/*H:020 Cached descriptors.  Translated code runs at ring 1 with DS, ES,
 * SS and FS loaded from these: the hidden part of each virtual segment
 * register, truncated, with the DPL of the ring translated code runs at,
 * so that ring can load it.  Using the
 * hidden part rather than the guest's table is what lets translated code
 * run correctly with non-reversible segments.  Returns the selector to
 * load, or 0 for a register holding a null selector. :*/
u16
shadow_hw_selector(struct vcpu *v, int sreg)
{
    struct seg *s = &v->seg[sreg];
    if (!(s->attr & SEG_P))
        return 0;
    u32 attr = s->attr | SEG_S | SEG_P | STA_A;
    if (sreg == SEG_CS) {
        attr |= STA_R;          /* read through a CS override (bt.c) */
    } else if (sreg == SEG_SS || s->mode != SM_PROT) {
        attr = (attr & ~(STA_X | STA_E)) | STA_W;
    }
    attr = (attr & ~(3u << 5)) | (bt_ring << 5);
    vmm_gdt[GDT_CACHED + sreg] = shadow_truncate(desc_make(s->base, s->limit, attr), bt_ring);
    return SEL(GDT_CACHED + sreg, bt_ring);
}

/* The descriptors only translated code may load - its code segments, its
 * %gs, the cached descriptors - are usable only while it runs.  With
 * translated code at ring 3 they have DPL 3, and guest code in direct
 * execution could otherwise load them; during direct execution their DPL
 * is 0, so a load raises #GP(selector), as a selector past the end of the
 * guest's own GDT would on bare hardware. */
void
shadow_bt_descriptors(int on)
{
    static const int idx[] = { GDT_BT_CS32, GDT_BT_CS16, GDT_BT_GS, GDT_CACHED + 0, GDT_CACHED + 1,
                               GDT_CACHED + 2, GDT_CACHED + 3, GDT_CACHED + 4, GDT_CACHED + 5 };
    static int state = -1;
    if (state == on)
        return;
    state = on;
    for (unsigned i = 0; i < ARRAY_SIZE(idx); i++)
        vmm_gdt[idx[i]].hi = (vmm_gdt[idx[i]].hi & ~(3u << 13)) | ((on ? bt_ring : 0) << 13);
}
