/*
 * segtrack.c -- segment tracking: what each guest segment register holds,
 * and whether it is still reversible.
 *
 * A segment register has a visible part, the selector, and a hidden part
 * the CPU loads from the descriptor table at the moment the selector is
 * loaded (SDM Vol. 3A §3.4.3, Segment Registers).  The hidden part is not
 * reloaded when the guest later rewrites the descriptor, changes GDTR or
 * LDTR, or switches between real and protected mode, and it cannot be
 * read back.  The patent calls a segment whose hidden part no longer
 * matches what reloading its selector would give "non-reversible": the
 * monitor cannot let the hardware reload it (as it does on every entry to
 * direct execution), so it keeps the hidden part itself (the "cached
 * descriptor", shadow.c) and translates until the guest reloads the
 * register.  This file owns v->seg[], v->ldtr, v->tr and v->cpl, does
 * every segment load the monitor emulates with the CPU's checks and
 * faults, and answers the decision's question "is this register
 * reversible?" (US 6,397,242, abstract: "segment tracking").
 *
 * How a register becomes non-reversible: the guest rewrites the
 * descriptor it was loaded from, loads another GDT or LDT, or changes
 * mode (real to protected, or back).  Segment tracking finds each case
 * the same way, by comparing the hidden part with what the guest's table
 * holds now - the copy shadow.c keeps current through write traces on
 * the tables' pages (H:015), or the table itself where it has no copy -
 * which is the patent's "segment tracking" comparing shadow and guest
 * descriptors (Bugnion et al., TOCS 2012, §5).  A register that was
 * non-reversible becomes reversible again when the guest reloads it, or
 * writes the old descriptor back.
 *
 * Hardware:   SDM Vol. 3A §3.4 (Logical and Linear Addresses), §5.5-5.8
 *             (privilege checks), SDM Vol. 2B MOV (to segment register),
 *             LLDT, LTR.
 * Runs in:    VMM, ring 0, interrupts off.
 * Read after: vmm.c (vmm_decide).
 */
#include "vmm.h"

/* Read the descriptor a selector names, from the guest's GDT or LDT.
 * Returns OK, FAULT (a #PF reading the table is pending), or 1 if the
 * index is past the table's limit.  *dla gets the descriptor's linear
 * address, for setting its accessed or busy bit. */
int
segtrack_read_desc(struct vcpu *v, u16 sel, struct desc *d, u32 *dla)
{
    u32 base, limit;
    if (sel & ERR_TI) {
        if (!(v->ldtr.attr & SEG_P))
            return 1;
        base = v->ldtr.base;
        limit = v->ldtr.limit;
    } else {
        base = v->gdtr.base;
        limit = v->gdtr.limit;
    }
    u32 off = sel & ~7u;
    if (off + 7 > limit)
        return 1;
    if (dla)
        *dla = base + off;
    if (shadow_copy_desc(v, sel, d))
        return OK;
    return vmem_read(v, base + off, d, 8, ACC_SYS);
}

/* The CPU sets a descriptor's accessed bit the first time it is loaded
 * (SDM Vol. 3A §3.4.5.1).  The shadow has it preset, so we set the
 * guest's. */
int
segtrack_set_accessed(struct vcpu *v, u16 sel)
{
    struct desc d;
    u32 dla;
    if (segtrack_read_desc(v, sel, &d, &dla) != OK)
        return OK;
    if ((d.hi & (SEG_S << 8)) && !(d.hi & (STA_A << 8))) {
        d.hi |= STA_A << 8;
        return vmem_write(v, dla + 4, &d.hi, 4, ACC_SYS);
    }
    return OK;
}

/* The same for the CS and SS that far transfers, IRET and interrupts
 * load.  The SDM says the CPU sets the bit for those too; QEMU's does
 * not, and the monitor does what the CPU under it does (vmm.c,
 * far_sets_accessed), since a guest can see the bit. */
int
segtrack_set_accessed_far(struct vcpu *v, u16 sel)
{
    return far_sets_accessed ? segtrack_set_accessed(v, sel) : OK;
}

/* Every change to a segment register goes through here: seg_gen moves
 * only when something did change, so that what was decided about the
 * registers (vmm.c, bt.c) stands across reloads of the same values, as
 * every IRET back to the same user code makes. */
static void
seg_store(struct vcpu *v, int sreg, u16 sel, u32 base, u32 limit, u32 attr, int mode)
{
    struct seg *s = &v->seg[sreg];
    if (s->sel == sel && s->base == base && s->limit == limit && s->attr == attr && s->mode == mode)
        return;
    s->sel = sel;
    s->base = base;
    s->limit = limit;
    s->attr = attr;
    s->mode = mode;
    v->seg_gen++;
}

void
segtrack_set(struct vcpu *v, int sreg, u16 sel, struct desc d, int mode)
{
    seg_store(v, sreg, sel, desc_base(d), desc_limit(d), desc_attr(d) | STA_A, mode);
}

/* A null selector in DS, ES, FS or GS: loadable, unusable: not present,
 * so any access through it is #GP(0). */
void
segtrack_null(struct vcpu *v, int sreg, u16 sel)
{
    seg_store(v, sreg, sel, 0, 0, 0, SM_PROT);
}

/* Real mode and virtual-8086 mode: the base is the selector times 16.  In
 * real mode the limit and attributes stay as they were (which is what
 * makes "unreal mode" possible); virtual-8086 mode forces them
 * (SDM Vol. 3A §20.1.1, Address Translation in Real-Address Mode). */
void
segtrack_load_real(struct vcpu *v, int sreg, u16 sel)
{
    struct seg *s = &v->seg[sreg];
    if (v->eflags & EFLAGS_VM)
        seg_store(v, sreg, sel, (u32)sel << 4, 0xffff,
                  SEG_S | SEG_P | (3 << 5) | STA_W | STA_A | (sreg == SEG_CS ? STA_X : 0), SM_V86);
    else
        seg_store(v, sreg, sel, (u32)sel << 4, s->limit, s->attr | SEG_P, SM_REAL);
    if (sreg == SEG_CS)
        v->cpl = (v->eflags & EFLAGS_VM) ? 3 : 0;
}

/*S:010 Loading DS, ES, FS, GS or SS in protected mode, with the checks of
 * SDM Vol. 2B, MOV (Operation): the index within the table, a data or
 * readable code segment, the privilege rule max(CPL, RPL) <= DPL (exactly
 * CPL = RPL = DPL and writable data for SS), present.  Each failure
 * raises the fault the CPU would, with the selector as error code. :*/
int
segtrack_load(struct vcpu *v, int sreg, u16 sel)
{
    struct desc d;
    u32 err = sel & ~3u;
    int cpl = v->cpl, rpl = sel & 3;

    if (!(v->cr0 & CR0_PE) || (v->eflags & EFLAGS_VM)) {
        segtrack_load_real(v, sreg, sel);
        return OK;
    }
    if ((sel & ~3u) == 0) {
        if (sreg == SEG_SS)
            return raise_gp(v, 0);
        segtrack_null(v, sreg, sel);
        return OK;
    }
    int r = segtrack_read_desc(v, sel, &d, NULL);
    if (r == FAULT)
        return FAULT;
    if (r)
        return raise_gp(v, err);
    u32 attr = desc_attr(d);
    int dpl = SEG_DPL(attr), type = SEG_TYPE(attr);
    if (!(attr & SEG_S))
        return raise_gp(v, err);
    if (sreg == SEG_SS) {
        if (rpl != cpl || (type & STA_X) || !(type & STA_W) || dpl != cpl)
            return raise_gp(v, err);
        if (!(attr & SEG_P))
            return raise_fault(v, T_SS, err);
    } else {
        if ((type & STA_X) && !(type & STA_R))
            return raise_gp(v, err);
        /* Data and non-conforming code: max(CPL, RPL) <= DPL. */
        if (!((type & STA_X) && (type & STA_C)) && (rpl > dpl || cpl > dpl))
            return raise_gp(v, err);
        if (!(attr & SEG_P))
            return raise_fault(v, T_NP, err);
    }
    if (segtrack_set_accessed(v, sel) != OK)
        return FAULT;
    segtrack_set(v, sreg, sel, d, SM_PROT);
    return OK;
}

/*S:015 Loading a segment register from a new task's TSS, after a task
 * switch (SDM Vol. 3A §7.3, Task Switching, step 12, and Table 7-1), with
 * the new CPL `cpl` (the RPL of the new CS).  A bad selector or
 * descriptor raises #TS with the selector, a not-present one #NP - also
 * for SS, where the CPU under the monitor (QEMU) raises #NP and the SDM
 * #SS.  CS and SS may not be null.  The CPU does not set accessed bits
 * here either. :*/
int
segtrack_load_task(struct vcpu *v, int sreg, u16 sel, int cpl)
{
    struct desc d;
    u32 err = sel & ~3u;
    int rpl = sel & 3;
    if ((sel & ~3u) == 0) {
        if (sreg == SEG_CS || sreg == SEG_SS)
            return raise_fault(v, T_TS, err);
        segtrack_null(v, sreg, sel);
        return OK;
    }
    int r = segtrack_read_desc(v, sel, &d, NULL);
    if (r == FAULT)
        return FAULT;
    u32 attr = desc_attr(d);
    int dpl = SEG_DPL(attr), type = SEG_TYPE(attr);
    if (r || !(attr & SEG_S))
        return raise_fault(v, T_TS, err);
    if (sreg == SEG_CS) {
        if (!(type & STA_X) || dpl != rpl)
            return raise_fault(v, T_TS, err);
    } else if (sreg == SEG_SS) {
        if ((type & STA_X) || !(type & STA_W) || dpl != cpl || dpl != rpl)
            return raise_fault(v, T_TS, err);
    } else {
        if ((type & STA_X) && !(type & STA_R))
            return raise_fault(v, T_TS, err);
        if (!((type & STA_X) && (type & STA_C)) && (dpl < cpl || dpl < rpl))
            return raise_fault(v, T_TS, err);
    }
    if (!(attr & SEG_P))
        return raise_fault(v, T_NP, err);
    segtrack_set(v, sreg, sel, d, SM_PROT);
    if (sreg == SEG_CS)
        v->cpl = cpl;
    return OK;
}

/* Load CS from a code descriptor the caller has checked; the new CPL is
 * `cpl`, which also becomes the selector's RPL (SDM Vol. 3A §5.8.1). */
int
segtrack_load_cs(struct vcpu *v, u16 sel, struct desc d, int cpl)
{
    if (segtrack_set_accessed_far(v, sel) != OK)
        return FAULT;
    segtrack_set(v, SEG_CS, (sel & ~3u) | cpl, d, SM_PROT);
    v->cpl = cpl;
    return OK;
}

/* The state Multiboot leaves (Multiboot spec §3.2), with the selectors
 * QEMU's loader uses: flat 4 GiB code at 0x08 and data at 0x10. */
void
segtrack_reset(struct vcpu *v)
{
    struct desc code = desc_make(0, 0xffffffff, SEG_S | SEG_P | SEG_DB | STA_X | STA_R | STA_A);
    struct desc data = desc_make(0, 0xffffffff, SEG_S | SEG_P | SEG_DB | STA_W | STA_A);
    for (int s = 0; s < NSEG; s++)
        segtrack_set(v, s, 0x10, data, SM_PROT);
    segtrack_set(v, SEG_CS, 0x08, code, SM_PROT);
    v->cpl = 0;
    memset(&v->ldtr, 0, sizeof v->ldtr);
    memset(&v->tr, 0, sizeof v->tr);
    v->tr.attr = SEG_P | STS_T32B;
    v->tr.limit = 0xffff;
}

/* The state at reset, or as firmware leaves it for a boot sector: real
 * mode, every segment based at its selector times 16 with a 64 KiB
 * limit, except CS, whose base may be given (F000 based at FFFF0000 at
 * reset); LDTR and TR empty (SDM Vol. 3A Table 9-1, IA-32 Processor
 * States Following Power-up, Reset, or INIT). */
void
segtrack_reset_real(struct vcpu *v, u16 cs, u32 cs_base)
{
    for (int s = 0; s < NSEG; s++) {
        struct seg *sg = &v->seg[s];
        sg->sel = s == SEG_CS ? cs : 0;
        sg->base = s == SEG_CS ? cs_base : 0;
        sg->limit = 0xffff;
        sg->attr = SEG_S | SEG_P | STA_W | STA_A | (s == SEG_CS ? STA_X : 0);
        sg->mode = SM_REAL;
    }
    v->seg_gen++;
    v->cpl = 0;
    memset(&v->ldtr, 0, sizeof v->ldtr);
    v->ldtr.limit = 0xffff;
    v->ldtr.attr = SEG_P | STS_LDT;
    memset(&v->tr, 0, sizeof v->tr);
    v->tr.limit = 0xffff;
    v->tr.attr = SEG_P | STS_T32B;
}

/*S:020 Is this register reversible?  It is if reloading its selector now,
 * in the current mode, would load exactly the hidden part it holds
 * (US 6,397,242 uses the word; the definition is Bugnion et al.'s, TOCS 2012):
 * loaded in the current mode, and equal to the guest's descriptor in
 * memory today.  A null data selector is trivially reversible. :*/
int
segtrack_reversible(struct vcpu *v, int sreg)
{
    struct seg *s = &v->seg[sreg];
    int mode = !(v->cr0 & CR0_PE) ? SM_REAL : (v->eflags & EFLAGS_VM) ? SM_V86 : SM_PROT;
    if (s->mode != mode)
        return 0;
    if (mode != SM_PROT)
        return s->base == (u32)s->sel << 4;
    if ((s->sel & ~3u) == 0)
        return sreg != SEG_CS && sreg != SEG_SS && !(s->attr & SEG_P);
    struct desc d;
    /* The decision has just refreshed the shadow GDT: its copy of the
     * guest's table is the guest's table now. */
    if (shadow_guest_desc(s->sel, &d, 1))
        ;
    else if (segtrack_read_desc(v, s->sel, &d, NULL) != OK) {
        vfault.pending = 0;     /* unreadable table: not reversible */
        return 0;
    }
    return desc_base(d) == s->base && desc_limit(d) == s->limit &&
           ((desc_attr(d) | STA_A) & ~SEG_G) == (s->attr & ~SEG_G);
}

/* After direct execution: the guest may have loaded segment registers
 * itself, from the shadow GDT, which holds the guest's descriptors as of
 * the entry.  Bring v->seg[] up to date from the hardware selectors. */
void
segtrack_after_direct(struct vcpu *v)
{
    struct frame *f = &v->f;
    u32 hw[NSEG];
    int v86 = f->eflags & EFLAGS_VM;
    hw[SEG_CS] = f->cs;
    hw[SEG_SS] = f->ss;
    hw[SEG_DS] = v86 ? f->v86_ds : f->ds;
    hw[SEG_ES] = v86 ? f->v86_es : f->es;
    hw[SEG_FS] = v86 ? f->v86_fs : f->fs;
    hw[SEG_GS] = v86 ? f->v86_gs : f->gs;
    for (int s = 0; s < NSEG; s++) {
        u16 sel = hw[s] & 0xffff;
        if (sel == v->seg[s].sel)
            continue;
        if (v86) {
            segtrack_load_real(v, s, sel);
        } else if ((sel & ~3u) == 0) {
            segtrack_null(v, s, sel);
        } else {
            struct desc d;
            if (!shadow_guest_desc(sel, &d, 0)) {
                vm_stop(v, "direct execution loaded selector %x, which shadows no guest descriptor", sel);
                return;
            }
            /* No accessed bit to set: a load that would have set it
             * wrote to the shadow, faulted and was emulated (direct.c). */
            segtrack_set(v, s, sel, d, SM_PROT);
        }
    }
}
