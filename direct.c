/*
 * direct.c -- the direct execution sub-system.
 *
 * Guest user code (CPL 3) and virtual-8086 code run natively on the CPU,
 * at the real ring 3 (or in real virtual-8086 mode), with the real IF set
 * and IOPL below 3, on the CPL-3 shadow page table (mmu.c) and the shadow
 * GDT (shadow.c).  This is trap-and-emulate: everything the guest may do
 * there either behaves exactly as on bare hardware or traps to the
 * monitor, which vmm_decide() has made sure of before calling us
 * (US 6,397,242, claim 1: "direct execution sub-system").
 *
 * Every exception and interrupt comes back here.  Most are the guest's
 * own and are reflected through its IDT exactly as the CPU would have
 * delivered them (emulate.c); the guest kernel then runs translated.  Two
 * kinds the monitor handles itself: hidden page faults (the shadow was
 * merely missing an entry) and general-protection faults that only the
 * deprivileging caused - `int n`, whose gate in the monitor's IDT has DPL
 * 0, and segment loads the shadow GDT cannot serve (LDT selectors) -
 * which are emulated.
 *
 * Hardware:   SDM Vol. 3A §6.12 (Exception and Interrupt Handling),
 *             §20.2 (Virtual-8086 Mode), SDM Vol. 2A INT n.
 * Runs in:    VMM, ring 0, interrupts off; the guest at ring 3.
 * Read after: vmm.c.
 */
#include "vmm.h"

/*E:010 Entering direct execution.  The hardware gets the guest's own
 * registers, selectors and EIP.  EFLAGS is the guest's except IF, which
 * is really 1 (the decision guarantees the guest's is 1 too), and IOPL,
 * which is the guest's (below 3, so CLI, STI and port I/O still trap).
 * The CPU's TSS sends traps to the vCPU's frame; in virtual-8086 mode
 * the CPU also pushes ES, DS, FS and GS, so the frame ends 16 bytes
 * later. :*/
static void
enter(struct vcpu *v)
{
    struct frame *f = &v->f;
    int v86 = (v->eflags & EFLAGS_VM) != 0;
    f->eip = v->eip;
    f->cs = v->seg[SEG_CS].sel;
    f->ss = v->seg[SEG_SS].sel;
    f->eflags = (v->eflags & ~(EFLAGS_RF | EFLAGS_VIF | EFLAGS_VIP)) | EFLAGS_IF | EFLAGS_FIXED;
    if (v86) {
        f->v86_es = v->seg[SEG_ES].sel;
        f->v86_ds = v->seg[SEG_DS].sel;
        f->v86_fs = v->seg[SEG_FS].sel;
        f->v86_gs = v->seg[SEG_GS].sel;
        f->es = f->ds = f->fs = f->gs = 0;
        vmm_tss.esp0 = (u32)(f + 1);
    } else {
        f->es = v->seg[SEG_ES].sel;
        f->ds = v->seg[SEG_DS].sel;
        f->fs = v->seg[SEG_FS].sel;
        f->gs = v->seg[SEG_GS].sel;
        vmm_tss.esp0 = (u32)&f->v86_es;
    }
    u32 cr0 = (rcr0() & ~(CR0_TS | CR0_EM | CR0_MP | CR0_AM)) |
              (v->cr0 & (CR0_TS | CR0_EM | CR0_MP | CR0_AM));
    if (cr0 != rcr0())
        lcr0(cr0);
    /* RDTSC at CPL 3 must fault if the guest set CR4.TSD. */
    u32 cr4 = (rcr4() & ~CR4_TSD) | (v->cr4 & CR4_TSD);
    if (cr4 != rcr4())
        lcr4(cr4);
    shadow_engine(1);
    v->st.de_entries++;
}

/* Is the instruction at eip a PUSHF? */
static int
pushes_flags(struct vcpu *v, u32 eip)
{
    u8 bytes[16];
    int avail;
    struct insn in;
    if (emulate_fetch(v, eip, bytes, &avail) != OK) {
        vfault.pending = 0;
        return 0;
    }
    return decode(bytes, avail, vcpu_code32(v), &in) > 0 && in.info->emu == E_PUSHF;
}

/* Would entering the guest again as it stands lose state?  After a
 * hidden fault, or before a traced write, a guest that has just loaded
 * a null selector with a non-zero RPL must not be resumed here: the
 * IRET would make it 0000 (shadow_iret_nulls).  The main loop decides
 * again, and translates until the register is reloaded. */
static int
reentry_nulls_a_selector(struct frame *f)
{
    if (f->eflags & EFLAGS_VM)
        return 0;
    return shadow_iret_nulls(f->es) || shadow_iret_nulls(f->ds) ||
           shadow_iret_nulls(f->fs) || shadow_iret_nulls(f->gs);
}

/*E:020 One stretch of direct execution, ended by one trap that is not a
 * hidden page fault. :*/
void
direct_run(struct vcpu *v)
{
    struct frame *f = &v->f;
    u32 esp_hi = f->esp & 0xffff0000;
    enter(v);
    int guest_tf = f->eflags & EFLAGS_TF;
    for (;;) {
        /* The shadow directory, in direct execution's view; asked for
         * every time, since filling a fault may have replaced it. */
        mmu_de_view(1);
        u32 cr3 = mmu_hw_cr3(v);
        mmu_de_view(0);
        vm_enter(f, cr3);
        v->st.traps[f->trapno & 0xff]++;
        if (f->trapno == T_PF && (f->err & (PFE_W | PFE_U)) == PFE_W && shadow_de_table_write(rcr2())) {
            /* The CPU setting a descriptor's accessed bit, in direct
             * execution's copy of the guest's table (shadow.c, H:012):
             * let the emulator load the segment from the guest's own
             * table, setting the bit there. */
            f->trapno = T_EMULATE;
            break;
        }
        if (f->trapno == T_PF) {
            int r = mmu_page_fault(v, rcr2(), f->err);
            if ((r == PF_HIDDEN || r == PF_TRACED) && reentry_nulls_a_selector(f)) {
                if (r == PF_TRACED)
                    trace_end_write(v);     /* nothing written yet: only puts the protection back */
                f->trapno = T_DECIDE;
                break;
            }
            if (r == PF_HIDDEN)
                continue;
            if (r == PF_TRACED && pushes_flags(v, f->eip)) {
                /* PUSHF single-stepped would push the monitor's TF: let
                 * the emulator push the guest's flags instead (its write
                 * reports to the trace owners too). */
                trace_end_write(v);
                f->trapno = T_EMULATE;
                break;
            }
            if (r == PF_TRACED) {
                f->eflags |= EFLAGS_TF;
                continue;       /* (a write that straddles two traced pages comes here twice) */
            }
            if (r == PF_WINDOW)
                f->trapno = T_RELOC;
        }
        if (f->trapno >= T_IRQ0 && f->trapno < T_IRQ0 + 16 && trace_in_flight()) {
            dev_host_irq(v, f->trapno);     /* before the traced write: let it finish first */
            continue;
        }
        if (trace_in_flight()) {
            /* A traced write has been carried out (trace.c): report it,
             * and if the single-step trap was only ours, go back to the
             * main loop, since the owners may have changed what the
             * decision depends on. */
            trace_end_write(v);
            f->eflags = (f->eflags & ~EFLAGS_TF) | guest_tf;
            if (f->trapno == T_DB && !guest_tf && (rdr6() & 0x4000)) {
                ldr6(0);
                f->trapno = T_TRACED;
            }
        }
        break;
    }
    if (rcr4() & CR4_TSD)
        lcr4(rcr4() & ~CR4_TSD);
    if (f->trapno == T_ENTRYFAIL) {
        vm_stop(v, "could not enter direct execution (vector %d, error %x)", f->err >> 16, f->err & 0xffff);
        return;
    }

    /* Take the guest's state back from the hardware.  With a 16-bit stack
     * segment only SP is the guest's (see run_block in bt.c). */
    if (!(v->seg[SEG_SS].attr & SEG_DB) && !(f->eflags & EFLAGS_VM))
        f->esp = esp_hi | (f->esp & 0xffff);
    segtrack_after_direct(v);
    v->eip = f->eip;
    v->eflags = (f->eflags & ~(EFLAGS_IF | EFLAGS_IOPL | EFLAGS_RF)) |
                (v->eflags & (EFLAGS_IF | EFLAGS_IOPL));
    if (v->stop_reason)
        return;

    /*E:030 What came back.  A #GP may be one only the deprivileging
     * caused: `int n` (our IDT gates have DPL 0) or a segment load the
     * shadow GDT cannot serve.  The emulator carries such an instruction
     * out exactly as the CPU would at the guest's privilege; if the
     * instruction is not one it emulates, the #GP was the guest's own. :*/
    switch (f->trapno) {
    case T_TRACED:
    case T_DECIDE:
        return;
    case T_EMULATE:
        if (emulate_one(v) == NOT_EMULATED)
            vm_stop(v, "direct execution trapped at %08x on an instruction the monitor expected to emulate",
                    v->eip);
        return;
    case T_RELOC: {
        /* An access to the monitor's top 4 MiB, where the guest may have
         * a mapping of its own: this one instruction runs translated and
         * relocated (bt.c, H:050).  A fault fetching the instruction
         * itself needs nothing more: code there is always translated
         * (vmm_decide), and the translator fetches it through the guest's
         * own tables. */
        u32 la = rcr2(), pc = v->seg[SEG_CS].base + v->eip;
        if (la - pc < 16)
            return;
        bt_window_fault(v, la);
        return;
    }
    case T_CALLOUT:
        /* With translated code at ring 3 the callout gate is open to
         * ring 3: this is the guest's own `int $0x40`.  Emulate it from
         * its first byte, through the guest's IDT. */
        v->eip -= 2;
        emulate_one(v);
        return;
    case T_GP:
    case T_NP:
        /* #NP: a shadow entry kept absent until its accessed bit is set
         * (shadow.c); the emulator loads the guest's descriptor. */
        if (emulate_one(v) != NOT_EMULATED)
            return;
        raise_fault(v, f->trapno, f->err);
        break;
    case T_PF:
        break;                          /* the guest's #PF is pending (mmu.c) */
    case T_DB: {
        u32 dr6 = rdr6();
        ldr6(0);
        emulate_deliver_debug(v, dr6 & 0xe00f);
        return;
    }
    default:
        if (f->trapno >= T_IRQ0 && f->trapno < T_IRQ0 + 16) {
            dev_host_irq(v, f->trapno); /* a host interrupt: the main loop looks at the devices */
            return;
        }
        if (f->trapno >= 32)
            return;
        raise_fault(v, f->trapno, f->err);
        break;
    }
    /*E:040 Reflect the guest's own exception through its IDT (emulate.c);
     * its handler will run translated, at guest CPL 0. :*/
    emulate_deliver_pending(v);
}
