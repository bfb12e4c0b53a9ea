/*
 * emulate.c -- the instruction emulator: the virtual CPU's slow path.
 *
 * Whatever cannot run on the real CPU as it is - a privileged or
 * sensitive instruction, a control transfer in translated code, a
 * software interrupt from directly executed code - is carried out here,
 * in C, against struct vcpu, with exactly the checks, faults and side
 * effects the SDM gives the instruction.  Both engines use it: bt.c
 * "calls out" to it for every non-IDENT instruction (AA §3.2: "callout"),
 * direct.c for the few traps it must emulate rather than reflect.  It
 * also delivers exceptions and interrupts through the guest's IDT, as the
 * CPU would, which is how every fault reaches the guest.
 *
 * Deviation: task switches to or from a 16-bit (80286) TSS stop the
 * guest with a message (32-bit ones are carried out, E:057); debug
 * registers are stored but their breakpoints are not armed.
 *
 * Hardware:   SDM Vol. 2 (each instruction's Operation section), SDM
 *             Vol. 3A §6.12 (Exception and Interrupt Handling), §6.15
 *             (Exception and Interrupt Reference), §5.8 (Privilege Level
 *             Checking When Transferring Program Control).
 * Runs in:    VMM, ring 0, interrupts off.
 * Read after: bt.c.
 */
#include "vmm.h"

struct fault vfault;


/* ---- Raising faults ---- */

int
raise_fault(struct vcpu *v, int vector, u32 err)
{
    (void)v;
    vfault.pending = 1;
    vfault.vector = vector;
    vfault.has_err = T_HAS_ERRCODE(vector);
    vfault.err = err;
    return FAULT;
}

int
raise_gp(struct vcpu *v, u32 err)
{
    return raise_fault(v, T_GP, err);
}

int
raise_pf(struct vcpu *v, u32 cr2, u32 err)
{
    raise_fault(v, T_PF, err);
    vfault.cr2 = cr2;
    return FAULT;
}

/* ---- Registers ---- */

/* General registers by their encoding: eax ecx edx ebx esp ebp esi edi
 * (SDM Vol. 2 Table 2-1). */
static const u8 gpr_offset[8] = {
    offsetof(struct frame, eax), offsetof(struct frame, ecx),
    offsetof(struct frame, edx), offsetof(struct frame, ebx),
    offsetof(struct frame, esp), offsetof(struct frame, ebp),
    offsetof(struct frame, esi), offsetof(struct frame, edi),
};

u32 *
gpr(struct vcpu *v, int n)
{
    return (u32 *)((u8 *)&v->f + gpr_offset[n]);
}

static u32
reg_get(struct vcpu *v, int n, int size)
{
    if (size == 1)
        return n < 4 ? *gpr(v, n) & 0xff : (*gpr(v, n - 4) >> 8) & 0xff;
    if (size == 2)
        return *gpr(v, n) & 0xffff;
    return *gpr(v, n);
}

static void
reg_set(struct vcpu *v, int n, int size, u32 val)
{
    if (size == 1) {
        u32 *r = gpr(v, n & 3);
        if (n < 4)
            *r = (*r & ~0xffu) | (val & 0xff);
        else
            *r = (*r & ~0xff00u) | ((val & 0xff) << 8);
    } else if (size == 2) {
        *gpr(v, n) = (*gpr(v, n) & ~0xffffu) | (val & 0xffff);
    } else {
        *gpr(v, n) = val;
    }
}

/* ---- Memory through segments ---- */

/* QEMU makes the stack accesses of far CALL, far RET and IRET as
 * supervisor accesses whatever the CPL (its helpers use the "kernel" MMU
 * index), so a page fault there has U/S = 0 in its error code.  Bare QEMU
 * is what guests are compared with, so the emulator does the same while
 * far_stack is set.  (A real CPU would report U/S = 1 at CPL 3.) */
static int far_stack;

static int
acc_cpl(struct vcpu *v)
{
    return v->cpl == 3 && !far_stack ? ACC_U : 0;
}

/* Check an access of n bytes at sreg:off against the hidden descriptor
 * (SDM Vol. 3A §5.3, Limit Checking; §5.4, Type Checking) and give its
 * linear address. */
static int
seg_check(struct vcpu *v, int sreg, u32 off, u32 n, int write, u32 *la)
{
    struct seg *s = &v->seg[sreg];
    int fault = sreg == SEG_SS ? T_SS : T_GP;
    if (v->cr0 & CR0_PE && !(v->eflags & EFLAGS_VM)) {
        if (!(s->attr & SEG_P))
            return raise_fault(v, fault, 0);
        u32 type = SEG_TYPE(s->attr);
        if (write && ((type & STA_X) || !(type & STA_W)))
            return raise_fault(v, fault, 0);
        if (!write && (type & STA_X) && !(type & STA_R))
            return raise_fault(v, fault, 0);
    }
    u32 last = off + n - 1;
    u32 upper = (s->attr & SEG_DB) ? 0xffffffff : 0xffff;
    if (!(s->attr & STA_X) && (s->attr & STA_E) && (s->attr & SEG_S) && (v->cr0 & CR0_PE)) {
        if (off <= s->limit || last > upper || last < off)
            return raise_fault(v, fault, 0);
    } else if (last > s->limit || last < off) {
        return raise_fault(v, fault, 0);
    }
    *la = s->base + off;
    return OK;
}

int
seg_read(struct vcpu *v, int sreg, u32 off, void *buf, u32 n)
{
    u32 la;
    if (seg_check(v, sreg, off, n, 0, &la) != OK)
        return FAULT;
    return vmem_read(v, la, buf, n, acc_cpl(v));
}

int
seg_write(struct vcpu *v, int sreg, u32 off, const void *buf, u32 n)
{
    u32 la;
    if (seg_check(v, sreg, off, n, 1, &la) != OK)
        return FAULT;
    return vmem_write(v, la, buf, n, acc_cpl(v));
}

/* ---- The stack ---- */

/* In real mode the CPU under the monitor (QEMU) delivers interrupts and
 * carries out IRET on SP alone, even with a "big" stack segment left
 * from protected mode, whose B flag every other stack access honours;
 * deliver_real and IRET set this meanwhile. */
static int sp16_only;

static int
stack32(struct vcpu *v)
{
    return !sp16_only && (v->seg[SEG_SS].attr & SEG_DB) != 0;
}

static u32
sp_get(struct vcpu *v)
{
    return stack32(v) ? v->f.esp : v->f.esp & 0xffff;
}

static void
sp_set(struct vcpu *v, u32 sp)
{
    if (stack32(v))
        v->f.esp = sp;
    else
        v->f.esp = (v->f.esp & ~0xffffu) | (sp & 0xffff);
}

int
stack_push(struct vcpu *v, u32 val, int size)
{
    u32 sp = sp_get(v) - size;
    if (!stack32(v))
        sp &= 0xffff;
    if (seg_write(v, SEG_SS, sp, &val, size) != OK)
        return FAULT;
    sp_set(v, sp);
    return OK;
}

/* Read the stack `skip` bytes above the top without popping. */
static int
stack_peek(struct vcpu *v, u32 skip, u32 *val, int size)
{
    u32 sp = sp_get(v) + skip;
    if (!stack32(v))
        sp &= 0xffff;
    *val = 0;
    return seg_read(v, SEG_SS, sp, val, size);
}

/*E:012 Frames in one access.  An interrupt pushes three to five words
 * and IRET pops three or five; each word on its own would be a limit
 * check, a translation and a copy.  When the frame lies within the
 * limit and in one page, one access does: either all of it succeeds, or
 * the first word would have faulted on that same page, with nothing
 * written.  Then, and in every other case, the words go one at a time in
 * the CPU's order, so the fault the guest sees, CR2 included, is the one
 * the first failing word raises. :*/
static int
stack_peek_n(struct vcpu *v, u32 skip, u32 *vals, int count, int size)
{
    u32 n = count * size;
    if (stack32(v) && n <= 24) {
        u32 off = sp_get(v) + skip, la;
        u8 buf[24];
        if (off + n - 1 >= off && seg_check(v, SEG_SS, off, n, 0, &la) == OK &&
            (la & 0xfff) + n <= PGSIZE && vmem_read(v, la, buf, n, acc_cpl(v)) == OK) {
            for (int i = 0; i < count; i++)
                vals[i] = size == 4 ? ((u32 *)buf)[i] : ((u16 *)buf)[i];
            return OK;
        }
        vfault.pending = 0;
    }
    for (int i = 0; i < count; i++)
        if (stack_peek(v, skip + i * size, &vals[i], size) != OK)
            return FAULT;
    return OK;
}

/* Push `count` words, vals[0] first, on the current stack. */
static int
stack_push_n(struct vcpu *v, const u32 *vals, int count, int size)
{
    u32 n = count * size, sp = v->f.esp, la;
    if (stack32(v) && n <= 40 && sp >= n && seg_check(v, SEG_SS, sp - n, n, 1, &la) == OK &&
        (la & 0xfff) + n <= PGSIZE) {
        u8 buf[40];
        for (int i = 0; i < count; i++) {
            u32 at = (count - 1 - i) * size;
            if (size == 4)
                *(u32 *)(buf + at) = vals[i];
            else
                *(u16 *)(buf + at) = vals[i];
        }
        if (vmem_write(v, la, buf, n, acc_cpl(v)) == OK) {
            v->f.esp = sp - n;
            return OK;
        }
    }
    vfault.pending = 0;
    for (int i = 0; i < count; i++)
        if (stack_push(v, vals[i], size) != OK)
            return FAULT;
    return OK;
}

/* Write `count` words of `size` bytes below `top` in segment (base,
 * limit, attr), vals[0] highest, as a push sequence would; *ntop is the
 * new top.  The same one-access rule as above. */
static int
frame_write(struct vcpu *v, u32 base, u32 limit, u32 attr, u32 top, const u32 *vals, int count,
            int size, int fault, u32 err, u32 *ntop)
{
    int s32 = (attr & SEG_DB) != 0, down = !(attr & STA_X) && (attr & STA_E);
    u32 n = count * size, low = top - n;
    if (s32 && !down && n <= 40 && top >= n && top - 1 <= limit && low <= limit) {
        u32 la = base + low;
        u8 buf[40];
        if ((la & 0xfff) + n <= PGSIZE) {
            for (int i = 0; i < count; i++) {
                u32 at = (count - 1 - i) * size;
                if (size == 4)
                    *(u32 *)(buf + at) = vals[i];
                else
                    *(u16 *)(buf + at) = vals[i];
            }
            if (vmem_write(v, la, buf, n, ACC_SYS) == OK) {
                *ntop = low;
                return OK;
            }
            vfault.pending = 0;
        }
    }
    for (int i = 0; i < count; i++) {
        top -= size;
        if (!s32)
            top &= 0xffff;
        if (top > limit && !down)
            return raise_fault(v, fault, err);
        if (vmem_write(v, base + top, &vals[i], size, ACC_SYS) != OK)
            return FAULT;
    }
    *ntop = top;
    return OK;
}

static void
stack_drop(struct vcpu *v, u32 n)
{
    sp_set(v, sp_get(v) + n);
}

/* ---- Operands ---- */

/* The default segment of a memory operand: SS when the base register is
 * ESP or EBP (BP in 16-bit addressing), DS otherwise; a prefix overrides
 * (SDM Vol. 1 §3.7.4, Specifying a Segment Selector). */
static int
ea_seg(struct insn *in)
{
    if (in->seg >= 0)
        return in->seg;
    if (in->adsize == 4) {
        int base = in->has_sib ? (in->sib & 7) : in->rm;
        if (base == 4 || (base == 5 && in->mod != 0))
            return SEG_SS;
        return SEG_DS;
    }
    if (in->rm == 2 || in->rm == 3 || (in->rm == 6 && in->mod != 0))
        return SEG_SS;
    return SEG_DS;
}

static u32
ea_off(struct vcpu *v, struct insn *in)
{
    if (in->adsize == 4) {
        u32 a = in->disp;
        if (in->has_sib) {
            int base = in->sib & 7, index = (in->sib >> 3) & 7, scale = in->sib >> 6;
            if (!(base == 5 && in->mod == 0))
                a += *gpr(v, base);
            if (index != 4)
                a += *gpr(v, index) << scale;
        } else if (!(in->rm == 5 && in->mod == 0)) {
            a += *gpr(v, in->rm);
        }
        return a;
    }
    static const s8 r1[8] = { 3, 3, 5, 5, 6, 7, 5, 3 };    /* bx bx bp bp si di bp bx */
    static const s8 r2[8] = { 6, 7, 6, 7, -1, -1, -1, -1 }; /* si di si di */
    u32 a = in->disp;
    if (!(in->rm == 6 && in->mod == 0))
        a += *gpr(v, r1[in->rm]);
    if (r2[in->rm] >= 0)
        a += *gpr(v, r2[in->rm]);
    return a & 0xffff;
}

/* The segment and offset of an instruction's ModRM memory operand, for
 * bt.c's footprint checks. */
int
emulate_ea_seg(struct insn *in)
{
    return ea_seg(in);
}

void
emulate_ea(struct vcpu *v, struct insn *in, int *seg, u32 *off)
{
    *seg = ea_seg(in);
    *off = ea_off(v, in);
}

static int
rm_read(struct vcpu *v, struct insn *in, int size, u32 *val)
{
    if (in->mod == 3) {
        *val = reg_get(v, in->rm, size);
        return OK;
    }
    *val = 0;
    return seg_read(v, ea_seg(in), ea_off(v, in), val, size);
}

static int
rm_write(struct vcpu *v, struct insn *in, int size, u32 val)
{
    if (in->mod == 3) {
        reg_set(v, in->rm, size, val);
        return OK;
    }
    return seg_write(v, ea_seg(in), ea_off(v, in), &val, size);
}

static u32
ip_mask(struct insn *in, u32 eip)
{
    return in->opsize == 2 ? eip & 0xffff : eip;
}

/* ---- Instruction fetch ---- */

/* Read up to 15 bytes of the instruction at CS:eip.  *avail says how many
 * were readable; FAULT only if not even the first byte was. */
int
emulate_fetch(struct vcpu *v, u32 eip, u8 *buf, int *avail)
{
    u32 la = v->seg[SEG_CS].base + eip;
    int acc = ACC_X | acc_cpl(v);
    u32 first = PGSIZE - (la & 0xfff);
    if (first > 15)
        first = 15;
    if (vmem_read(v, la, buf, first, acc) != OK)
        return FAULT;
    *avail = first;
    if (first < 15) {
        if (vmem_read(v, la + first, buf + first, 15 - first, acc) == OK)
            *avail = 15;
        else
            vfault.pending = 0;
    }
    return OK;
}

/* Fetch and decode the instruction at the guest's EIP.  On a short read
 * re-raise the fault of the page the instruction runs into. */
static int
fetch_decode(struct vcpu *v, struct insn *in)
{
    u8 bytes[16];
    int avail;
    if (emulate_fetch(v, v->eip, bytes, &avail) != OK)
        return FAULT;
    int n = decode(bytes, avail, vcpu_code32(v), in);
    if (n == DECODE_SHORT) {
        u32 la = v->seg[SEG_CS].base + v->eip + avail;
        return vmem_read(v, la, bytes, 1, ACC_X | acc_cpl(v));
    }
    if (n == DECODE_TOOLONG)
        return raise_gp(v, 0);
    return OK;
}

/* ---- Exception and interrupt delivery ---- */

/* Contributory exceptions, for the double-fault rule (SDM Vol. 3A Table 6-5). */
static int
contributory(int vec)
{
    return vec == T_DE || (vec >= T_TS && vec <= T_GP);
}

/* Read an entry of the guest's IDT. */
static int
read_gate(struct vcpu *v, int vec, u32 ext, struct desc *g)
{
    if ((u32)vec * 8 + 7 > v->idtr.limit)
        return raise_gp(v, vec * 8 + ERR_IDT + ext);
    return vmem_read(v, v->idtr.base + vec * 8, g, 8, ACC_SYS);
}

/* Real-address mode: the IVT (SDM Vol. 3A §20.1.4, Interrupt and
 * Exception Handling). */
static int
deliver_real(struct vcpu *v, int vec, u32 ret_eip)
{
    u32 ivt;
    if ((u32)vec * 4 + 3 > v->idtr.limit)
        return raise_gp(v, 0);
    if (vmem_read(v, v->idtr.base + vec * 4, &ivt, 4, ACC_SYS) != OK)
        return FAULT;
    sp16_only = 1;
    int r = stack_push(v, v->eflags & 0xffff, 2) == OK && stack_push(v, v->seg[SEG_CS].sel, 2) == OK &&
            stack_push(v, ret_eip & 0xffff, 2) == OK;
    sp16_only = 0;
    if (!r)
        return FAULT;
    v->eflags &= ~(EFLAGS_IF | EFLAGS_TF | EFLAGS_AC | EFLAGS_RF);
    segtrack_load_real(v, SEG_CS, ivt >> 16);
    v->eip = ivt & 0xffff;
    return OK;
}

/* The stack for privilege level dpl, from the guest's TSS, with the
 * checks of SDM Vol. 3A §6.12.1 and CALL (call gate): #TS for a bad SS
 * selector or descriptor, #SS if it is not present. */
static int
inner_stack(struct vcpu *v, int dpl, u32 ext, u32 *nss, u32 *nesp, struct desc *sd)
{
    u32 tss_off = 4 + dpl * 8;
    *nss = 0;
    if (!(v->tr.attr & SEG_P) || tss_off + 5 > v->tr.limit)
        return raise_fault(v, T_TS, (v->tr.sel & ~3u) + ext);
    if (vmem_read(v, v->tr.base + tss_off, nesp, 4, ACC_SYS) != OK ||
        vmem_read(v, v->tr.base + tss_off + 4, nss, 2, ACC_SYS) != OK)
        return FAULT;
    if ((*nss & ~3u) == 0)
        return raise_fault(v, T_TS, ext);
    int r = segtrack_read_desc(v, *nss, sd, NULL);
    if (r == FAULT)
        return FAULT;
    u32 sattr = desc_attr(*sd);
    if (r || (int)(*nss & 3) != dpl || (int)SEG_DPL(sattr) != dpl || !(sattr & SEG_S) ||
        (sattr & STA_X) || !(sattr & STA_W))
        return raise_fault(v, T_TS, (*nss & ~3u) + ext);
    if (!(sattr & SEG_P))
        return raise_fault(v, T_SS, (*nss & ~3u) + ext);
    return OK;
}

/*E:057 A hardware task switch (SDM Vol. 3A §7.3, Task Switching): a far
 * JMP or CALL to a TSS or a task gate, an interrupt or exception through
 * a task gate, or IRET with NT set.  The current state goes into the old
 * TSS, the new task's comes from the new one - registers, EFLAGS, EIP,
 * CR3, LDTR, and the six segment registers, each loaded with the checks
 * of Table 7-1 (segtrack_load_task), after the switch, so that a fault
 * there is the new task's.  JMP and IRET clear the old TSS's busy bit;
 * CALL and interrupts set NT and the new TSS's back link instead.  The
 * order of the checks, and what the CPU writes where, are those of the
 * CPU under the monitor (QEMU), which is what a guest can compare.
 * `sel` and `td` name the TSS itself. :*/
enum { TS_JMP, TS_CALL, TS_IRET };

static int
tss_busy(struct vcpu *v, u16 sel, int busy)
{
    u32 hi;
    u32 la = v->gdtr.base + (sel & ~7u) + 4;
    if (vmem_read(v, la, &hi, 4, ACC_SYS) != OK)
        return FAULT;
    hi = busy ? hi | (2u << 8) : hi & ~(2u << 8);
    return vmem_write(v, la, &hi, 4, ACC_SYS);
}

static int
task_switch(struct vcpu *v, u16 sel, struct desc td, int source, u32 next_eip)
{
    u32 attr = desc_attr(td);
    if (!(attr & SEG_P))
        return raise_fault(v, T_NP, sel & ~3u);
    u32 base = desc_base(td), limit = desc_limit(td);
    if ((sel & ERR_TI) || limit < ((attr & 8) ? 0x67u : 0x2bu))
        return raise_fault(v, T_TS, sel & ~3u);
    if (!(attr & 8) || !(v->tr.attr & 8)) {
        vm_stop(v, "task switch %s a 16-bit TSS (selector %x): not supported",
                (attr & 8) ? "from" : "to", (attr & 8) ? v->tr.sel : sel);
        return STOP;
    }
    /* Everything that can fault before the switch is committed: the
     * whole new TSS, and the old one, which is about to be written. */
    u32 n[0x68 / 4];
    u8 first, last;
    if (vmem_read(v, base, n, sizeof n, ACC_SYS) != OK ||
        vmem_read(v, v->tr.base, &first, 1, ACC_SYS) != OK ||
        vmem_read(v, v->tr.base + 0x67, &last, 1, ACC_SYS) != OK ||
        vmem_write(v, v->tr.base, &first, 1, ACC_SYS) != OK ||
        vmem_write(v, v->tr.base + 0x67, &last, 1, ACC_SYS) != OK)
        return FAULT;
    if (source != TS_CALL && tss_busy(v, v->tr.sel, 0) != OK)
        return FAULT;

    /* The old task's state, into its TSS. */
    struct frame *f = &v->f;
    u32 old[10] = { next_eip, v->eflags & ~(source == TS_IRET ? EFLAGS_NT : 0),
                    f->eax, f->ecx, f->edx, f->ebx, f->esp, f->ebp, f->esi, f->edi };
    if (vmem_write(v, v->tr.base + 0x20, old, sizeof old, ACC_SYS) != OK)
        return FAULT;
    for (int s = 0; s < NSEG; s++) {
        u16 sl = v->seg[s].sel;
        if (vmem_write(v, v->tr.base + 0x48 + 4 * s, &sl, 2, ACC_SYS) != OK)
            return FAULT;
    }
    u32 eflags = n[0x24 / 4];
    if (source == TS_CALL) {
        u16 link = v->tr.sel;
        if (vmem_write(v, base, &link, 2, ACC_SYS) != OK)
            return FAULT;
        eflags |= EFLAGS_NT;
    }
    if (source != TS_IRET && tss_busy(v, sel, 1) != OK)
        return FAULT;

    /* From here on the new task runs: a fault is its own. */
    v->cr0 |= CR0_TS;
    v->tr.sel = sel;
    v->tr.base = base;
    v->tr.limit = limit;
    v->tr.attr = attr & ~2u;                    /* as it was loaded: available */
    if ((v->cr0 & CR0_PG) && v->cr3 != n[0x1c / 4]) {
        v->cr3 = n[0x1c / 4];
        mmu_code_mappings_changed();
    }
    v->eip = n[0x20 / 4];
    v->eflags = (eflags & 0x277fd5) | EFLAGS_FIXED;       /* all but VIF, VIP */
    f->eax = n[10], f->ecx = n[11], f->edx = n[12], f->ebx = n[13];
    f->esp = n[14], f->ebp = n[15], f->esi = n[16], f->edi = n[17];
    u16 segs[NSEG];
    for (int s = 0; s < NSEG; s++)
        segs[s] = n[0x48 / 4 + s] & 0xffff;
    if (v->eflags & EFLAGS_VM) {
        for (int s = 0; s < NSEG; s++)
            segtrack_load_real(v, s, segs[s]);
    } else {
        for (int s = 0; s < NSEG; s++)
            segtrack_null(v, s, segs[s]);
        v->cpl = segs[SEG_CS] & 3;
    }
    u16 ldt = n[0x60 / 4] & 0xffff;
    memset(&v->ldtr, 0, sizeof v->ldtr);
    v->ldtr.sel = ldt & ~4u;
    if (ldt & ERR_TI)
        return raise_fault(v, T_TS, ldt & ~3u);
    if (ldt & ~3u) {
        struct desc ld;
        if ((ldt & ~7u) + 7 > v->gdtr.limit)
            return raise_fault(v, T_TS, ldt & ~3u);
        if (vmem_read(v, v->gdtr.base + (ldt & ~7u), &ld, 8, ACC_SYS) != OK)
            return FAULT;
        if ((desc_attr(ld) & (SEG_S | 0xf)) != STS_LDT || !(desc_attr(ld) & SEG_P))
            return raise_fault(v, T_TS, ldt & ~3u);
        v->ldtr.base = desc_base(ld);
        v->ldtr.limit = desc_limit(ld);
        v->ldtr.attr = desc_attr(ld);
    }
    if (!(v->eflags & EFLAGS_VM)) {
        static const int order[NSEG] = { SEG_CS, SEG_SS, SEG_ES, SEG_DS, SEG_FS, SEG_GS };
        for (int i = 0; i < NSEG; i++)
            if (segtrack_load_task(v, order[i], segs[order[i]], segs[SEG_CS] & 3) != OK)
                return FAULT;
    }
    if (v->eip > v->seg[SEG_CS].limit)
        return raise_gp(v, 0);
    return OK;
}

/* Through a task gate (in the GDT, LDT or IDT): its TSS selector must
 * name an available TSS in the GDT. */
static int
through_task_gate(struct vcpu *v, struct desc g, int source, u32 next_eip)
{
    u16 sel = gate_sel(g);
    struct desc td;
    if (sel & ERR_TI)
        return raise_fault(v, T_TS, sel & ~3u);
    int r = segtrack_read_desc(v, sel, &td, NULL);
    if (r == FAULT)
        return FAULT;
    u32 t = desc_attr(td) & (SEG_S | 0xf);
    if (r || (t != STS_T32A && t != STS_T16A))
        return raise_gp(v, sel & ~3u);
    return task_switch(v, sel, td, source, next_eip);
}

/*E:050 Delivering an exception or interrupt to the guest, through its
 * own IDT, exactly as the CPU would (SDM Vol. 3A §6.12.1): the gate's
 * type, present bit and (for software interrupts) DPL; the handler's
 * code segment; for a handler more privileged than the interrupted code,
 * a switch to the stack named in the guest's TSS; the frame, with an
 * error code when the vector has one; TF, NT, VM and RF cleared, and IF
 * too for an interrupt gate.  Any fault on the way is raised in its own
 * right, and emulate_deliver_pending turns it into #DF or a triple fault
 * where the CPU would. :*/
int
emulate_interrupt(struct vcpu *v, int vec, int soft, int has_err, u32 err, u32 ret_eip)
{
    u32 ext = soft ? 0 : ERR_EXT;
    struct desc g, cd;
    int cpl = v->cpl, from_v86 = (v->eflags & EFLAGS_VM) != 0;

    v->st.reflected++;
    if (!(v->cr0 & CR0_PE))
        return deliver_real(v, vec, ret_eip);
    if (read_gate(v, vec, ext, &g) != OK)
        return FAULT;
    u32 type = gate_type(g);
    int gate32 = (type & 8) != 0;
    if (type != STS_TG && type != STS_IG16 && type != STS_TRG16 && type != STS_IG32 && type != STS_TRG32)
        return raise_gp(v, vec * 8 + ERR_IDT + ext);
    if (soft && (int)gate_dpl(g) < cpl)
        return raise_gp(v, vec * 8 + ERR_IDT);
    if (!gate_present(g))
        return raise_fault(v, T_NP, vec * 8 + ERR_IDT + ext);
    if (type == STS_TG) {
        /* The new task gets the error code on its own stack. */
        int r = through_task_gate(v, g, TS_CALL, ret_eip);
        if (r != OK || !has_err)
            return r;
        return stack_push(v, err, (v->tr.attr & 8) ? 4 : 2);
    }
    u16 sel = gate_sel(g);
    if ((sel & ~3u) == 0)
        return raise_gp(v, ext);
    int r = segtrack_read_desc(v, sel, &cd, NULL);
    if (r == FAULT)
        return FAULT;
    u32 attr = desc_attr(cd);
    if (r || !(attr & SEG_S) || !(attr & STA_X) || (int)SEG_DPL(attr) > cpl)
        return raise_gp(v, (sel & ~3u) + ext);
    if (!(attr & SEG_P))
        return raise_fault(v, T_NP, (sel & ~3u) + ext);

    int dpl = SEG_DPL(attr), conforming = (attr & STA_C) != 0;
    int size = gate32 ? 4 : 2;
    u32 words[10];
    /* The handler's EIP inside its CS's limit (SDM Vol. 2A, INT n,
     * #GP(EXT)); checked here, before either stack is touched. */
    if ((gate32 ? gate_offset(g) : gate_offset(g) & 0xffff) > desc_limit(cd))
        return raise_gp(v, ext);
    int n = 0;
    u32 eflags = v->eflags;

    if (!conforming && dpl < cpl) {
        /* Inter-privilege: the new stack comes from the guest's TSS. */
        u32 nesp, nss;
        struct desc sd;
        if (inner_stack(v, dpl, ext, &nss, &nesp, &sd) != OK)
            return FAULT;
        u32 sattr = desc_attr(sd);
        if (from_v86) {
            words[n++] = v->seg[SEG_GS].sel;
            words[n++] = v->seg[SEG_FS].sel;
            words[n++] = v->seg[SEG_DS].sel;
            words[n++] = v->seg[SEG_ES].sel;
        }
        words[n++] = v->seg[SEG_SS].sel;
        words[n++] = v->f.esp;
        words[n++] = eflags;
        words[n++] = v->seg[SEG_CS].sel;
        words[n++] = ret_eip;
        if (has_err)
            words[n++] = err;
        /* Write the frame on the new stack before changing anything. */
        u32 top;
        int s32 = (sattr & SEG_DB) != 0;
        if (frame_write(v, desc_base(sd), desc_limit(sd), sattr, nesp, words, n, size, T_SS,
                        (nss & ~3u) + ext, &top) != OK)
            return FAULT;
        if (from_v86) {
            for (int s = 0; s < NSEG; s++)
                if (s != SEG_CS && s != SEG_SS)
                    segtrack_null(v, s, 0);
        }
        segtrack_set_accessed_far(v, nss);
        segtrack_set(v, SEG_SS, nss, sd, SM_PROT);
        v->f.esp = s32 ? top : (v->f.esp & ~0xffffu) | top;
        v->eflags &= ~EFLAGS_VM;
        if (segtrack_load_cs(v, sel, cd, dpl) != OK)
            return FAULT;
    } else {
        if (from_v86)
            return raise_gp(v, (sel & ~3u) + ext);
        if (!conforming && dpl != cpl)
            return raise_gp(v, (sel & ~3u) + ext);
        /* Same privilege: push on the current stack. */
        u32 save_esp = v->f.esp;
        u32 frame[4] = { eflags, v->seg[SEG_CS].sel, ret_eip, err };
        if (stack_push_n(v, frame, has_err ? 4 : 3, size) != OK) {
            v->f.esp = save_esp;
            return FAULT;
        }
        if (segtrack_load_cs(v, sel, cd, cpl) != OK)
            return FAULT;
    }
    v->eip = gate32 ? gate_offset(g) : gate_offset(g) & 0xffff;
    v->eflags &= ~(EFLAGS_TF | EFLAGS_NT | EFLAGS_VM | EFLAGS_RF);
    if ((type & 7) == 6)        /* interrupt gate, not trap gate */
        v->eflags &= ~EFLAGS_IF;
    return OK;
}

/* Deliver the fault pending in vfault, applying the double-fault rules:
 * a contributory fault (or a #PF) during delivery of a contributory fault
 * or a #PF becomes #DF; a fault while delivering #DF shuts the CPU down
 * (a triple fault).  The return address is the guest's current EIP. */
int
emulate_deliver_pending(struct vcpu *v)
{
    struct fault cur = vfault;
    vfault.pending = 0;
    for (;;) {
        if (opt_log & LOG_FAULT)
            cprintf("fault: vector %d err %x at %04x:%08x\n", cur.vector, cur.err,
                    v->seg[SEG_CS].sel, v->eip);
        if (cur.vector == T_PF)
            v->cr2 = cur.cr2;
        int r = emulate_interrupt(v, cur.vector, 0, cur.has_err, cur.err, v->eip);
        if (r != FAULT)
            return r;
        struct fault next = vfault;
        vfault.pending = 0;
        if (next.vector == T_PF)
            v->cr2 = next.cr2;  /* CR2 is written when a #PF is detected, even one that becomes #DF */
        if (cur.vector == T_DF) {
            v->stop_status = EXIT_TRIPLE;
            vm_stop(v, "triple fault (vector %d while delivering #DF)", next.vector);
            return STOP;
        }
        if ((contributory(cur.vector) || cur.vector == T_PF) &&
            (contributory(next.vector) || next.vector == T_PF) &&
            !(cur.vector != T_PF && next.vector == T_PF)) {
            next.vector = T_DF;
            next.has_err = 1;
            next.err = 0;
        }
        cur = next;
    }
}

/* A single-step trap after an instruction (SDM Vol. 3A §17.3.1.4). */
void
emulate_deliver_debug(struct vcpu *v, u32 dr6_bits)
{
    v->dr[6] |= dr6_bits;
    if (emulate_interrupt(v, T_DB, 0, 0, 0, v->eip) == FAULT)
        emulate_deliver_pending(v);
}

/* ---- Far transfers and IRET ---- */

#define CALL_GATE 2     /* check_far_target: the selector names a call gate */
#define TASK_GATE 3     /* ... a task gate */
#define TASK_TSS  4     /* ... an available TSS */

/* Check a code-segment descriptor for a far JMP or CALL to it (SDM Vol.
 * 3A §5.8.1, Direct Calls or Jumps to Code Segments). */
static int
check_far_target(struct vcpu *v, u16 sel, struct desc *cd)
{
    if ((sel & ~3u) == 0)
        return raise_gp(v, 0);
    int r = segtrack_read_desc(v, sel, cd, NULL);
    if (r == FAULT)
        return FAULT;
    if (r)
        return raise_gp(v, sel & ~3u);
    u32 attr = desc_attr(*cd);
    int dpl = SEG_DPL(attr), rpl = sel & 3;
    if (!(attr & SEG_S)) {
        u32 t = SEG_TYPE(attr);
        if (t == STS_CG32 || t == STS_CG16) {
            /* A call gate: its DPL admits the caller, then the gate leads on. */
            if (dpl < v->cpl || dpl < rpl)
                return raise_gp(v, sel & ~3u);
            if (!(attr & SEG_P))
                return raise_fault(v, T_NP, sel & ~3u);
            return CALL_GATE;
        }
        if (t == STS_TG || t == STS_T32A || t == STS_T16A) {
            if (dpl < v->cpl || dpl < rpl)
                return raise_gp(v, sel & ~3u);
            return t == STS_TG ? TASK_GATE : TASK_TSS;
        }
        return raise_gp(v, sel & ~3u);
    }
    if (!(attr & STA_X))
        return raise_gp(v, sel & ~3u);
    if (attr & STA_C) {
        if (dpl > v->cpl)
            return raise_gp(v, sel & ~3u);
    } else if (rpl > v->cpl || dpl != v->cpl) {
        return raise_gp(v, sel & ~3u);
    }
    if (!(attr & SEG_P))
        return raise_fault(v, T_NP, sel & ~3u);
    return OK;
}

/*E:055 A far CALL or JMP through a call gate (SDM Vol. 3A §5.8.4, Call
 * Gates; SDM Vol. 2A, CALL).  The gate names the code segment and the
 * entry point.  A CALL to a more privileged non-conforming segment
 * switches to the stack the guest's TSS gives for that level and copies
 * the gate's parameter count of words across; JMP never changes
 * privilege. :*/
static int
through_call_gate(struct vcpu *v, struct desc g, int call, u32 next)
{
    int gate32 = SEG_TYPE(desc_attr(g)) == STS_CG32;
    int size = gate32 ? 4 : 2;
    u16 csel = gate_sel(g);
    u32 off = gate32 ? gate_offset(g) : gate_offset(g) & 0xffff;
    struct desc cd;
    if ((csel & ~3u) == 0)
        return raise_gp(v, 0);
    int r = segtrack_read_desc(v, csel, &cd, NULL);
    if (r == FAULT)
        return FAULT;
    u32 attr = desc_attr(cd);
    int dpl = SEG_DPL(attr), conforming = (attr & STA_C) != 0;
    if (r || !(attr & SEG_S) || !(attr & STA_X) || dpl > v->cpl ||
        (!call && !conforming && dpl != v->cpl))
        return raise_gp(v, csel & ~3u);
    if (!(attr & SEG_P))
        return raise_fault(v, T_NP, csel & ~3u);
    if (off > desc_limit(cd))                   /* SDM Vol. 2A, CALL: #GP(0) */
        return raise_gp(v, 0);
    if (call && !conforming && dpl < v->cpl) {
        u32 nss, nesp;
        struct desc sd;
        if (inner_stack(v, dpl, 0, &nss, &nesp, &sd) != OK)
            return FAULT;
        u32 words[4 + 31];
        int n = 0, count = g.hi & 0x1f;
        words[n++] = v->seg[SEG_SS].sel;
        words[n++] = v->f.esp;
        for (int i = count - 1; i >= 0; i--)
            if (stack_peek(v, i * size, &words[n++], size) != OK)
                return FAULT;
        words[n++] = v->seg[SEG_CS].sel;
        words[n++] = next;
        u32 sbase = desc_base(sd), top = nesp;
        int s32 = (desc_attr(sd) & SEG_DB) != 0;
        for (int i = 0; i < n; i++) {
            top -= size;
            if (!s32)
                top &= 0xffff;
            if (vmem_write(v, sbase + top, &words[i], size, ACC_SYS) != OK)
                return FAULT;
        }
        if (segtrack_set_accessed_far(v, nss) != OK || segtrack_load_cs(v, csel, cd, dpl) != OK)
            return FAULT;
        segtrack_set(v, SEG_SS, nss, sd, SM_PROT);
        v->f.esp = s32 ? top : (v->f.esp & ~0xffffu) | top;
    } else {
        u32 save = v->f.esp;
        if (call && (stack_push(v, v->seg[SEG_CS].sel, size) != OK || stack_push(v, next, size) != OK)) {
            v->f.esp = save;
            return FAULT;
        }
        if (segtrack_load_cs(v, csel, cd, v->cpl) != OK)
            return FAULT;
    }
    v->eip = off;
    return OK;
}

static int far_transfer1(struct vcpu *v, struct insn *in, u16 sel, u32 off, int call, u32 next);

static int
far_transfer(struct vcpu *v, struct insn *in, u16 sel, u32 off, int call, u32 next)
{
    far_stack = 1;
    int r = far_transfer1(v, in, sel, off, call, next);
    far_stack = 0;
    return r;
}

static int
far_transfer1(struct vcpu *v, struct insn *in, u16 sel, u32 off, int call, u32 next)
{
    int size = in->opsize;
    if (!(v->cr0 & CR0_PE) || (v->eflags & EFLAGS_VM)) {
        if (call && (stack_push(v, v->seg[SEG_CS].sel, size) != OK || stack_push(v, next, size) != OK))
            return FAULT;
        segtrack_load_real(v, SEG_CS, sel);
        v->eip = ip_mask(in, off);
        return OK;
    }
    struct desc cd;
    int r = check_far_target(v, sel, &cd);
    if (r == CALL_GATE)
        return through_call_gate(v, cd, call, next);
    if (r == TASK_GATE) {
        if (!(desc_attr(cd) & SEG_P))
            return raise_fault(v, T_NP, sel & ~3u);
        return through_task_gate(v, cd, call ? TS_CALL : TS_JMP, next);
    }
    if (r == TASK_TSS)
        return task_switch(v, sel, cd, call ? TS_CALL : TS_JMP, next);
    if (r != OK)
        return r;
    /* The new EIP must lie inside the new CS's limit (SDM Vol. 2A, JMP
     * and CALL: #GP(0)).  The check is the CPU's, not QEMU's choice: QEMU
     * checks it on JMP with the same error code, on CALL with the
     * selector as error code. */
    if (ip_mask(in, off) > desc_limit(cd))
        return raise_gp(v, 0);
    u32 save = v->f.esp;
    if (call && (stack_push(v, v->seg[SEG_CS].sel, size) != OK || stack_push(v, next, size) != OK)) {
        v->f.esp = save;
        return FAULT;
    }
    if (segtrack_load_cs(v, sel, cd, v->cpl) != OK)
        return FAULT;
    v->eip = ip_mask(in, off);
    return OK;
}

/* After a return to an outer privilege level, data segment registers the
 * new CPL may not use are nulled (SDM Vol. 2A, IRET / RET Operation). */
static void
null_inaccessible(struct vcpu *v)
{
    static const int segs[4] = { SEG_ES, SEG_DS, SEG_FS, SEG_GS };
    for (int i = 0; i < 4; i++) {
        struct seg *s = &v->seg[segs[i]];
        int conforming_code = (s->attr & STA_X) && (s->attr & STA_C);
        if ((s->attr & SEG_P) && !conforming_code && (int)SEG_DPL(s->attr) < v->cpl)
            segtrack_null(v, segs[i], 0);
    }
}

/* Check the CS of a far return or IRET, and for a return to an outer
 * level also its SS.  `skip` is where on the stack SS:ESP sit. */
static int
far_return(struct vcpu *v, u16 cs, u32 eip, u32 skip, int size, u32 imm)
{
    struct desc cd, sd;
    int rpl = cs & 3;
    if ((cs & ~3u) == 0)
        return raise_gp(v, 0);
    if (rpl < v->cpl)
        return raise_gp(v, cs & ~3u);
    int r = segtrack_read_desc(v, cs, &cd, NULL);
    if (r == FAULT)
        return FAULT;
    u32 attr = desc_attr(cd);
    if (r || !(attr & SEG_S) || !(attr & STA_X))
        return raise_gp(v, cs & ~3u);
    if ((attr & STA_C) ? (int)SEG_DPL(attr) > rpl : (int)SEG_DPL(attr) != rpl)
        return raise_gp(v, cs & ~3u);
    if (!(attr & SEG_P))
        return raise_fault(v, T_NP, cs & ~3u);
    if (rpl == v->cpl) {
        if (eip > desc_limit(cd))               /* SDM Vol. 2A, RET and IRET: #GP(0) */
            return raise_gp(v, 0);
        if (segtrack_load_cs(v, cs, cd, rpl) != OK)
            return FAULT;
        stack_drop(v, skip + imm);
        v->eip = eip;
        return OK;
    }
    /* Return to an outer level: SS:ESP follow. */
    u32 nesp, nss;
    if (stack_peek(v, skip + imm, &nesp, size) != OK || stack_peek(v, skip + imm + size, &nss, size) != OK)
        return FAULT;
    nss &= 0xffff;
    if ((nss & ~3u) == 0)
        return raise_gp(v, 0);
    r = segtrack_read_desc(v, nss, &sd, NULL);
    if (r == FAULT)
        return FAULT;
    u32 sattr = desc_attr(sd);
    if (r || (int)(nss & 3) != rpl || (int)SEG_DPL(sattr) != rpl || !(sattr & SEG_S) ||
        (sattr & STA_X) || !(sattr & STA_W))
        return raise_gp(v, nss & ~3u);
    if (!(sattr & SEG_P))
        return raise_fault(v, T_SS, nss & ~3u);
    if (eip > desc_limit(cd))
        return raise_gp(v, 0);
    if (segtrack_load_cs(v, cs, cd, rpl) != OK || segtrack_set_accessed_far(v, nss) != OK)
        return FAULT;
    segtrack_set(v, SEG_SS, nss, sd, SM_PROT);
    /* The popped ESP (16 bits, zero-extended, from a 16-bit frame) goes
     * into ESP as the new SS's size says: all of it for a 32-bit stack,
     * SP alone for a 16-bit one, whose upper half keeps the inner level's
     * bits (the leak Linux's "espfix" hides). */
    if (size == 2)
        nesp &= 0xffff;
    v->f.esp = (sattr & SEG_DB) ? nesp : (v->f.esp & ~0xffffu) | (nesp & 0xffff);
    if (imm)
        sp_set(v, sp_get(v) + imm);
    v->eip = eip;
    null_inaccessible(v);
    return OK;
}

/* Which EFLAGS bits POPF or IRET may change (SDM Vol. 2B, POPF). */
static u32
eflags_writable(struct vcpu *v, int cpl)
{
    u32 m = EFLAGS_STATUS | EFLAGS_TF | EFLAGS_DF | EFLAGS_NT | EFLAGS_AC | EFLAGS_ID;
    if (v->eflags & EFLAGS_VM)
        return m | EFLAGS_IF;           /* v86 with IOPL 3: IOPL stays */
    if (cpl == 0)
        m |= EFLAGS_IOPL;
    if (cpl <= vcpu_iopl(v))
        m |= EFLAGS_IF;
    return m;
}

static void
eflags_load(struct vcpu *v, u32 val, u32 mask, int size)
{
    if (size == 2)
        mask &= 0xffff;
    v->eflags = (v->eflags & ~mask) | (val & mask) | EFLAGS_FIXED;
}

static int
do_iret(struct vcpu *v, struct insn *in, u32 next)
{
    int size = in->opsize;
    u32 eip, cs, fl;
    sp16_only = !(v->cr0 & CR0_PE);
    u32 w[3];
    int ok = stack_peek_n(v, 0, w, 3, size) == OK;
    eip = w[0], cs = w[1], fl = w[2];
    sp16_only = 0;
    if (!ok)
        return FAULT;
    cs &= 0xffff;
    if (!(v->cr0 & CR0_PE) || (v->eflags & EFLAGS_VM)) {
        if ((v->eflags & EFLAGS_VM) && vcpu_iopl(v) < 3)
            return raise_gp(v, 0);
        if (eip > 0xffff && size == 4)
            return raise_gp(v, 0);
        sp16_only = !(v->cr0 & CR0_PE);
        stack_drop(v, 3 * size);
        sp16_only = 0;
        segtrack_load_real(v, SEG_CS, cs);
        v->eip = eip;
        u32 mask = (v->eflags & EFLAGS_VM) ? eflags_writable(v, 3) : 0x257fd5;
        eflags_load(v, fl, mask, size);
        return OK;
    }
    if (v->eflags & EFLAGS_NT) {
        /* A return to the task in the back link of the current TSS,
         * which must be busy (SDM Vol. 2A, IRET, TASK-RETURN). */
        u16 link;
        struct desc td;
        if (vmem_read(v, v->tr.base, &link, 2, ACC_SYS) != OK)
            return FAULT;
        if (link & ERR_TI)
            return raise_fault(v, T_TS, link & ~3u);
        int r = segtrack_read_desc(v, link, &td, NULL);
        if (r == FAULT)
            return FAULT;
        u32 t = desc_attr(td) & (SEG_S | 0x7);
        if (r || t != 3)
            return raise_fault(v, T_TS, link & ~3u);
        return task_switch(v, link, td, TS_IRET, next);
    }
    if ((fl & EFLAGS_VM) && v->cpl == 0 && size == 4) {
        /* Return to virtual-8086 mode (SDM Vol. 2A, IRET, RETURN-TO-VIRTUAL-8086-MODE). */
        u32 w[6];
        if (stack_peek_n(v, 12, w, 6, 4) != OK)
            return FAULT;
        v->eflags = (fl & 0x3f7fd5) | EFLAGS_FIXED;
        v->f.esp = w[0];
        segtrack_load_real(v, SEG_CS, cs);
        segtrack_load_real(v, SEG_SS, w[1]);
        segtrack_load_real(v, SEG_ES, w[2]);
        segtrack_load_real(v, SEG_DS, w[3]);
        segtrack_load_real(v, SEG_FS, w[4]);
        segtrack_load_real(v, SEG_GS, w[5]);
        v->eip = eip & 0xffff;
        return OK;
    }
    int old_cpl = v->cpl;
    u32 mask = eflags_writable(v, old_cpl);
    int r = far_return(v, cs, ip_mask(in, eip), 3 * size, size, 0);
    if (r != OK)
        return r;
    eflags_load(v, fl, mask, size);
    return OK;
}

/*E:070 Ordinary data moves, for adaptive translation (bt.c, B:060): MOV
 * between a register or an immediate and memory, and XCHG with memory,
 * carried out against the guest's own page tables.  Like the CPU under
 * the monitor (QEMU), which checks no segment limit or type on ordinary
 * accesses, only paging is checked here.  A write to a traced page tells
 * its owners (gpa_write); one to the guest's own mappings in the
 * monitor's top 4 MiB goes where the guest's page tables say.  *special
 * tells the caller whether the access met either. :*/
int
emulate_data(struct vcpu *v, struct insn *in, int *special)
{
    u32 op = in->map == 0 ? in->op : 0x100 | in->op;
    int size = (op & 1) ? in->opsize : 1, seg;
    u32 off;
    if (op >= 0xa0 && op <= 0xa3) {
        seg = in->seg >= 0 ? in->seg : SEG_DS;
        off = in->adsize == 2 ? in->imm & 0xffff : in->imm;
    } else if ((op == 0x88 || op == 0x89 || op == 0x8a || op == 0x8b || op == 0xc6 || op == 0xc7 ||
                op == 0x86 || op == 0x87) && in->has_modrm && in->mod != 3) {
        emulate_ea(v, in, &seg, &off);
    } else {
        return NOT_EMULATED;
    }
    u32 la = v->seg[seg].base + off, val = 0;
    int acc = v->cpl == 3 ? ACC_U : 0;
    gpa_t pa;
    int load = op == 0x8a || op == 0x8b || op == 0xa0 || op == 0xa1;
    int one_page = (la & 0xfff) + size <= PGSIZE;
    if (mmu_translate(v, la, acc | (load ? 0 : ACC_W), &pa) != OK)
        return emulate_deliver_pending(v);
    *special = trace_is_traced(pa) || la >= VMM_BASE - 0x1000 || (u64)la + size > VMM_BASE - 0x1000;
    if (op == 0x86 || op == 0x87 || load) {
        if (one_page)
            gpa_read(pa, &val, size);
        else if (vmem_read(v, la, &val, size, acc) != OK)
            return emulate_deliver_pending(v);
    }
    u32 out;
    if (load) {
        reg_set(v, (op >= 0xa0) ? 0 : in->reg, size, val);
    } else {
        out = op == 0xc6 || op == 0xc7 ? in->imm : op >= 0xa0 ? reg_get(v, 0, size) : reg_get(v, in->reg, size);
        if (one_page)
            gpa_write(pa, &out, size);  /* translated for writing above: A and D are set */
        else if (vmem_write(v, la, &out, size, acc | ACC_W) != OK)
            return emulate_deliver_pending(v);
        if (op == 0x86 || op == 0x87)
            reg_set(v, in->reg, size, val);
    }
    u32 next = v->eip + in->len;
    v->eip = vcpu_code32(v) ? next : next & 0xffff;
    v->st.callouts[E_NONE]++;
    return OK;
}

/* ---- The emulation routines, one per enum emu_kind ---- */

typedef int (*emu_fn)(struct vcpu *v, struct insn *in, u32 next);

static int
cond(u32 fl, int cc)
{
    int r;
    switch (cc >> 1) {
    case 0: r = fl & EFLAGS_OF; break;
    case 1: r = fl & EFLAGS_CF; break;
    case 2: r = fl & EFLAGS_ZF; break;
    case 3: r = fl & (EFLAGS_CF | EFLAGS_ZF); break;
    case 4: r = fl & EFLAGS_SF; break;
    case 5: r = fl & EFLAGS_PF; break;
    case 6: r = !(fl & EFLAGS_SF) != !(fl & EFLAGS_OF); break;
    default: r = (fl & EFLAGS_ZF) || (!(fl & EFLAGS_SF) != !(fl & EFLAGS_OF)); break;
    }
    return (cc & 1) ? !r : !!r;
}

static int
emu_jcc(struct vcpu *v, struct insn *in, u32 next)
{
    v->eip = cond(v->eflags, in->op & 0xf) ? ip_mask(in, next + in->imm) : next;
    return OK;
}

static int
emu_jmp(struct vcpu *v, struct insn *in, u32 next)
{
    v->eip = ip_mask(in, next + in->imm);
    return OK;
}

static int
emu_call(struct vcpu *v, struct insn *in, u32 next)
{
    if (stack_push(v, next, in->opsize) != OK)
        return FAULT;
    v->eip = ip_mask(in, next + in->imm);
    return OK;
}

static int
emu_ret(struct vcpu *v, struct insn *in, u32 next)
{
    (void)next;
    u32 eip;
    if (stack_peek(v, 0, &eip, in->opsize) != OK)
        return FAULT;
    stack_drop(v, in->opsize + (in->op == 0xc2 ? (in->imm & 0xffff) : 0));
    v->eip = eip;
    return OK;
}

static int emu_retf1(struct vcpu *v, struct insn *in);

static int
emu_retf(struct vcpu *v, struct insn *in, u32 next)
{
    (void)next;
    far_stack = 1;
    int r = emu_retf1(v, in);
    far_stack = 0;
    return r;
}

static int
emu_retf1(struct vcpu *v, struct insn *in)
{
    int size = in->opsize;
    u32 imm = in->op == 0xca ? in->imm & 0xffff : 0;
    u32 eip, cs;
    if (stack_peek(v, 0, &eip, size) != OK || stack_peek(v, size, &cs, size) != OK)
        return FAULT;
    if (!(v->cr0 & CR0_PE) || (v->eflags & EFLAGS_VM)) {
        stack_drop(v, 2 * size + imm);
        segtrack_load_real(v, SEG_CS, cs);
        v->eip = eip;
        return OK;
    }
    return far_return(v, cs & 0xffff, ip_mask(in, eip), 2 * size, size, imm);
}

static int
emu_iret(struct vcpu *v, struct insn *in, u32 next)
{
    far_stack = 1;
    int r = do_iret(v, in, next);
    far_stack = 0;
    return r;
}

static int
soft_int(struct vcpu *v, int vec, u32 next)
{
    int r = emulate_interrupt(v, vec, 1, 0, 0, next);
    return r;
}

/* In virtual-8086 mode with IOPL < 3, INT n raises #GP(0).  The SDM says
 * the same of INT3 and INTO; the CPU under the monitor (QEMU) delivers
 * those two through the IDT whatever IOPL, and the monitor follows it,
 * as a guest can tell the difference. */
static int
emu_int(struct vcpu *v, struct insn *in, u32 next)
{
    if ((v->eflags & EFLAGS_VM) && vcpu_iopl(v) < 3)
        return raise_gp(v, 0);
    return soft_int(v, in->imm & 0xff, next);
}

static int
emu_int3(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    return soft_int(v, T_BP, next);
}

static int
emu_into(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    if (!(v->eflags & EFLAGS_OF)) {
        v->eip = next;
        return OK;
    }
    return soft_int(v, T_OF, next);
}

static int
emu_int1(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    /* ICEBP: a #DB trap that is not a software interrupt: no DPL check
     * (SDM Vol. 2A, INT n/INTO/INT3/INT1) - or #UD on a CPU that does
     * not implement it, as the monitor found at boot (vmm.c). */
    if (host_icebp_ud)
        return raise_fault(v, T_UD, 0);
    return emulate_interrupt(v, T_DB, 0, 0, 0, next);
}

static int
emu_loop(struct vcpu *v, struct insn *in, u32 next)
{
    u32 mask = in->adsize == 2 ? 0xffff : 0xffffffff;
    u32 c = (v->f.ecx - 1) & mask;
    v->f.ecx = (v->f.ecx & ~mask) | c;
    int take = c != 0;
    if (in->op == 0xe0)
        take = take && !(v->eflags & EFLAGS_ZF);
    else if (in->op == 0xe1)
        take = take && (v->eflags & EFLAGS_ZF);
    v->eip = take ? ip_mask(in, next + in->imm) : next;
    return OK;
}

static int
emu_jcxz(struct vcpu *v, struct insn *in, u32 next)
{
    u32 mask = in->adsize == 2 ? 0xffff : 0xffffffff;
    v->eip = (v->f.ecx & mask) == 0 ? ip_mask(in, next + in->imm) : next;
    return OK;
}

static int
emu_jmpf(struct vcpu *v, struct insn *in, u32 next)
{
    return far_transfer(v, in, in->imm2, in->imm, 0, next);
}

static int
emu_callf(struct vcpu *v, struct insn *in, u32 next)
{
    return far_transfer(v, in, in->imm2, in->imm, 1, next);
}

static int
emu_grp5(struct vcpu *v, struct insn *in, u32 next)
{
    u32 target = 0, sel = 0;
    int size = in->opsize;
    switch (in->reg) {
    case 2:     /* call near r/m */
    case 4:     /* jmp near r/m */
        if (rm_read(v, in, size, &target) != OK)
            return FAULT;
        if (in->reg == 2 && stack_push(v, next, size) != OK)
            return FAULT;
        v->eip = target;
        return OK;
    case 3:     /* call far m16:16/32 */
    case 5:     /* jmp far m16:16/32 */
        if (in->mod == 3)
            return raise_fault(v, T_UD, 0);
        if (seg_read(v, ea_seg(in), ea_off(v, in), &target, size) != OK ||
            seg_read(v, ea_seg(in), ea_off(v, in) + size, &sel, 2) != OK)
            return FAULT;
        return far_transfer(v, in, sel, target, in->reg == 3, next);
    }
    return NOT_EMULATED;
}

static int
emu_pushf(struct vcpu *v, struct insn *in, u32 next)
{
    if ((v->eflags & EFLAGS_VM) && vcpu_iopl(v) < 3)
        return raise_gp(v, 0);
    if (stack_push(v, v->eflags & ~(EFLAGS_VM | EFLAGS_RF), in->opsize) != OK)
        return FAULT;
    v->eip = next;
    return OK;
}

static int
emu_popf(struct vcpu *v, struct insn *in, u32 next)
{
    u32 fl;
    if ((v->eflags & EFLAGS_VM) && vcpu_iopl(v) < 3)
        return raise_gp(v, 0);
    if (stack_peek(v, 0, &fl, in->opsize) != OK)
        return FAULT;
    stack_drop(v, in->opsize);
    u32 mask = (v->cr0 & CR0_PE) ? eflags_writable(v, v->cpl) : 0x257fd5;
    eflags_load(v, fl, mask & ~EFLAGS_RF, in->opsize);
    v->eip = next;
    return OK;
}

/* CLI and STI are allowed when CPL <= IOPL (always in real mode). */
static int
iopl_ok(struct vcpu *v)
{
    return !(v->cr0 & CR0_PE) || v->cpl <= vcpu_iopl(v);
}

/*E:065 Port I/O is allowed when CPL <= IOPL, except in virtual-8086
 * mode, where - as at any CPL > IOPL - the CPU consults the I/O
 * permission bitmap of the current TSS: every bit for the ports the
 * access touches must be clear (SDM Vol. 1 §19.5.2, I/O Permission Bit
 * Map).  The bitmap starts at the offset the TSS holds at 0x66; a port
 * whose bits lie past the TSS's limit is refused, and so is everything
 * when TR holds no available 32-bit TSS (as at reset).  Direct execution
 * runs on the monitor's TSS, which has no bitmap, so every port access
 * there traps and comes here. :*/
static int
io_allowed(struct vcpu *v, u16 port, int size)
{
    if (!(v->cr0 & CR0_PE) || (!(v->eflags & EFLAGS_VM) && v->cpl <= vcpu_iopl(v)))
        return OK;
    u16 base, bits;
    if (!(v->tr.attr & SEG_P) || SEG_TYPE(v->tr.attr) != STS_T32A || v->tr.limit < 0x67)
        return raise_gp(v, 0);
    if (vmem_read(v, v->tr.base + 0x66, &base, 2, ACC_SYS) != OK)
        return FAULT;
    u32 off = (u32)base + (port >> 3);
    if (off + 1 > v->tr.limit)
        return raise_gp(v, 0);
    if (vmem_read(v, v->tr.base + off, &bits, 2, ACC_SYS) != OK)
        return FAULT;
    if ((bits >> (port & 7)) & ((1u << size) - 1))
        return raise_gp(v, 0);
    return OK;
}

static int
emu_cli(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    if (!iopl_ok(v))
        return raise_gp(v, 0);
    v->eflags &= ~EFLAGS_IF;
    v->eip = next;
    return OK;
}

static int
emu_sti(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    if (!iopl_ok(v))
        return raise_gp(v, 0);
    /* STI with IF clear holds interrupts off until after the next
     * instruction (SDM Vol. 2B, STI): the main loop honours this. */
    if (!(v->eflags & EFLAGS_IF))
        v->intr_shadow = 1;
    v->eflags |= EFLAGS_IF;
    v->eip = next;
    return OK;
}

static int
emu_hlt(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    /* The main loop idles until an interrupt can be delivered (vmm.c,
     * D:020; dev.c, dev_idle), and ends the run if none ever can. */
    v->eip = next;
    v->halted = 1;
    return OK;
}

static int
io_size(struct insn *in)
{
    return (in->op & 1) ? in->opsize : 1;
}

static int
emu_in(struct vcpu *v, struct insn *in, u32 next)
{
    u16 port = (in->op & 8) ? v->f.edx & 0xffff : in->imm & 0xff;
    u32 val;
    int size = io_size(in);
    if (io_allowed(v, port, size) != OK)
        return FAULT;
    if (dev_in(v, port, size, &val) != OK)
        return STOP;
    reg_set(v, 0, size, val);
    v->eip = next;
    return OK;
}

static int
emu_out(struct vcpu *v, struct insn *in, u32 next)
{
    u16 port = (in->op & 8) ? v->f.edx & 0xffff : in->imm & 0xff;
    int size = io_size(in);
    if (io_allowed(v, port, size) != OK)
        return FAULT;
    v->eip = next;
    if (dev_out(v, port, size, reg_get(v, 0, size)) != OK)
        return STOP;
    return OK;
}

/* INS and OUTS, with or without REP: one element at a time, registers
 * updated after each, so a fault part-way leaves the state the CPU would
 * (SDM Vol. 2B, REP). */
static int
emu_string_io(struct vcpu *v, struct insn *in, u32 next, int out)
{
    int size = io_size(in);
    u32 amask = in->adsize == 2 ? 0xffff : 0xffffffff;
    u16 port = v->f.edx & 0xffff;
    if (io_allowed(v, port, size) != OK)
        return FAULT;
    int step = (v->eflags & EFLAGS_DF) ? -size : size;
    u32 *idx = out ? &v->f.esi : &v->f.edi;
    while (!in->rep || (v->f.ecx & amask)) {
        u32 val = 0;
        if (out) {
            if (seg_read(v, in->seg >= 0 ? in->seg : SEG_DS, *idx & amask, &val, size) != OK)
                return FAULT;
            if (dev_out(v, port, size, val) != OK)
                return STOP;
        } else {
            if (dev_in(v, port, size, &val) != OK)
                return STOP;
            if (seg_write(v, SEG_ES, *idx & amask, &val, size) != OK)
                return FAULT;
        }
        *idx = (*idx & ~amask) | ((*idx + step) & amask);
        if (!in->rep)
            break;
        v->f.ecx = (v->f.ecx & ~amask) | ((v->f.ecx - 1) & amask);
    }
    v->eip = next;
    return OK;
}

static int
emu_ins(struct vcpu *v, struct insn *in, u32 next)
{
    return emu_string_io(v, in, next, 0);
}

static int
emu_outs(struct vcpu *v, struct insn *in, u32 next)
{
    return emu_string_io(v, in, next, 1);
}

/* MOV r/m, Sreg: a 16-bit store to memory; to a register, zero-extended
 * to the operand size (SDM Vol. 2B, MOV). */
static int
emu_mov_from_sr(struct vcpu *v, struct insn *in, u32 next)
{
    if (in->reg >= NSEG)
        return raise_fault(v, T_UD, 0);
    u32 sel = v->seg[in->reg].sel;
    if (rm_write(v, in, in->mod == 3 ? in->opsize : 2, sel) != OK)
        return FAULT;
    v->eip = next;
    return OK;
}

static int
emu_mov_to_sr(struct vcpu *v, struct insn *in, u32 next)
{
    u32 sel;
    if (in->reg >= NSEG || in->reg == SEG_CS)
        return raise_fault(v, T_UD, 0);
    if (rm_read(v, in, 2, &sel) != OK)
        return FAULT;
    if (segtrack_load(v, in->reg, sel) != OK)
        return FAULT;
    if (in->reg == SEG_SS)
        v->intr_shadow = 1;     /* as after STI: SS and ESP are loaded as a pair */
    v->eip = next;
    return OK;
}

/* Which segment register a PUSH or POP names, from its opcode: 06/07 ES,
 * 0E CS, 16/17 SS, 1E/1F DS, 0F A0/A1 FS, 0F A8/A9 GS. */
static int
stack_sreg(struct insn *in)
{
    if (in->map == 1)
        return in->op < 0xa8 ? SEG_FS : SEG_GS;
    return in->op >> 3;
}

static int
emu_push_sr(struct vcpu *v, struct insn *in, u32 next)
{
    if (stack_push(v, v->seg[stack_sreg(in)].sel, in->opsize) != OK)
        return FAULT;
    v->eip = next;
    return OK;
}

static int
emu_pop_sr(struct vcpu *v, struct insn *in, u32 next)
{
    u32 sel;
    if (stack_peek(v, 0, &sel, in->opsize) != OK)
        return FAULT;
    if (segtrack_load(v, stack_sreg(in), sel & 0xffff) != OK)
        return FAULT;
    stack_drop(v, in->opsize);
    if (stack_sreg(in) == SEG_SS)
        v->intr_shadow = 1;
    v->eip = next;
    return OK;
}

/* LES, LDS, LSS, LFS, LGS: offset then selector from memory. */
static int
emu_load_far(struct vcpu *v, struct insn *in, u32 next)
{
    static const u8 sreg_of_c4[2] = { SEG_ES, SEG_DS };
    int sreg = in->map == 0 ? sreg_of_c4[in->op & 1] : in->op == 0xb2 ? SEG_SS : in->op == 0xb4 ? SEG_FS : SEG_GS;
    u32 off = 0, sel = 0;
    if (in->mod == 3)
        return raise_fault(v, T_UD, 0);
    if (seg_read(v, ea_seg(in), ea_off(v, in), &off, in->opsize) != OK ||
        seg_read(v, ea_seg(in), (ea_off(v, in) + in->opsize) & (in->adsize == 2 ? 0xffff : ~0u), &sel, 2) != OK)
        return FAULT;
    if (segtrack_load(v, sreg, sel) != OK)
        return FAULT;
    reg_set(v, in->reg, in->opsize, off);
    v->eip = next;
    return OK;
}

static int
need_cpl0(struct vcpu *v)
{
    if ((v->cr0 & CR0_PE) && v->cpl != 0)
        return raise_gp(v, 0);
    return OK;
}

/* SGDT, SIDT, SLDT, STR and SMSW at CPL > 0 with the guest's CR4.UMIP
 * set (virtual-8086 mode is CPL 3): #GP(0). */
static int
umip_check(struct vcpu *v)
{
    if ((v->cr4 & CR4_UMIP) && (v->cr0 & CR0_PE) && (v->cpl != 0 || (v->eflags & EFLAGS_VM)))
        return raise_gp(v, 0);
    return OK;
}

/* SLDT, STR, LLDT, LTR, VERR, VERW (SDM Vol. 2B). */
static int
emu_grp6(struct vcpu *v, struct insn *in, u32 next)
{
    u32 sel;
    struct desc d;
    u32 dla;
    int r;
    if (!(v->cr0 & CR0_PE) || (v->eflags & EFLAGS_VM))
        return raise_fault(v, T_UD, 0);
    switch (in->reg) {
    case 0:     /* sldt */
    case 1:     /* str */
        if (umip_check(v) != OK)
            return FAULT;
        sel = in->reg == 0 ? v->ldtr.sel : v->tr.sel;
        if (rm_write(v, in, in->mod == 3 ? in->opsize : 2, sel) != OK)
            return FAULT;
        break;
    case 2:     /* lldt */
        if (need_cpl0(v) != OK || rm_read(v, in, 2, &sel) != OK)
            return FAULT;
        if ((sel & ~3u) == 0) {
            memset(&v->ldtr, 0, sizeof v->ldtr);
            v->ldtr.sel = sel;
            break;
        }
        if (sel & ERR_TI)
            return raise_gp(v, sel & ~3u);
        r = segtrack_read_desc(v, sel, &d, NULL);
        if (r == FAULT)
            return FAULT;
        if (r || (desc_attr(d) & (SEG_S | 0xf)) != STS_LDT)
            return raise_gp(v, sel & ~3u);
        if (!(desc_attr(d) & SEG_P))
            return raise_fault(v, T_NP, sel & ~3u);
        v->ldtr.sel = sel;
        v->ldtr.base = desc_base(d);
        v->ldtr.limit = desc_limit(d);
        v->ldtr.attr = desc_attr(d);
        break;
    case 3:     /* ltr */
        if (need_cpl0(v) != OK || rm_read(v, in, 2, &sel) != OK)
            return FAULT;
        if ((sel & ~3u) == 0)
            return raise_gp(v, 0);
        if (sel & ERR_TI)
            return raise_gp(v, sel & ~3u);
        r = segtrack_read_desc(v, sel, &d, &dla);
        if (r == FAULT)
            return FAULT;
        u32 t = desc_attr(d) & (SEG_S | 0xf);
        if (r || (t != STS_T32A && t != STS_T16A))
            return raise_gp(v, sel & ~3u);
        if (!(desc_attr(d) & SEG_P))
            return raise_fault(v, T_NP, sel & ~3u);
        /* TR's hidden part keeps the type it was loaded with; the
         * descriptor in memory becomes busy. */
        v->tr.attr = desc_attr(d);
        d.hi |= 2 << 8;
        if (vmem_write(v, dla + 4, &d.hi, 4, ACC_SYS) != OK)
            return FAULT;
        v->tr.sel = sel;
        v->tr.base = desc_base(d);
        v->tr.limit = desc_limit(d);
        break;
    case 4:     /* verr */
    case 5: {   /* verw */
        if (rm_read(v, in, 2, &sel) != OK)
            return FAULT;
        int ok = 0;
        r = OK;
        if ((sel & ~3u) != 0 && (r = segtrack_read_desc(v, sel, &d, NULL)) == OK) {
            u32 a = desc_attr(d);
            int dpl = SEG_DPL(a), rpl = sel & 3;
            int conf_code = (a & STA_X) && (a & STA_C);
            if ((a & SEG_S) && (conf_code || (dpl >= v->cpl && dpl >= rpl)))
                ok = in->reg == 4 ? (!(a & STA_X) || (a & STA_R)) : (!(a & STA_X) && (a & STA_W));
        } else if (r == FAULT) {
            return FAULT;
        }
        v->eflags = (v->eflags & ~EFLAGS_ZF) | (ok ? EFLAGS_ZF : 0);
        break;
    }
    default:
        return raise_fault(v, T_UD, 0);
    }
    v->eip = next;
    return OK;
}

/* SGDT, SIDT, LGDT, LIDT, SMSW, LMSW, INVLPG (SDM Vol. 2B). */
static int
emu_grp7(struct vcpu *v, struct insn *in, u32 next)
{
    u32 lim = 0, base = 0, w;
    struct dtr *t = in->reg == 0 || in->reg == 2 ? &v->gdtr : &v->idtr;
    switch (in->reg) {
    case 0:     /* sgdt */
    case 1:     /* sidt */
        if (in->mod == 3)
            return raise_fault(v, T_UD, 0);
        if (umip_check(v) != OK)
            return FAULT;
        base = in->opsize == 2 ? t->base & 0xffffff : t->base;
        lim = t->limit;
        if (seg_write(v, ea_seg(in), ea_off(v, in), &lim, 2) != OK ||
            seg_write(v, ea_seg(in), ea_off(v, in) + 2, &base, 4) != OK)
            return FAULT;
        break;
    case 2:     /* lgdt */
    case 3:     /* lidt */
        if (in->mod == 3)
            return raise_fault(v, T_UD, 0);
        if (need_cpl0(v) != OK)
            return FAULT;
        if (seg_read(v, ea_seg(in), ea_off(v, in), &lim, 2) != OK ||
            seg_read(v, ea_seg(in), ea_off(v, in) + 2, &base, 4) != OK)
            return FAULT;
        t->limit = lim;
        t->base = in->opsize == 2 ? base & 0xffffff : base;
        if (in->reg == 2)
            shadow_gdt_changed(v);
        break;
    case 4:     /* smsw */
        if (umip_check(v) != OK)
            return FAULT;
        if (rm_write(v, in, in->mod == 3 ? in->opsize : 2, v->cr0) != OK)
            return FAULT;
        break;
    case 6:     /* lmsw: PE can be set but not cleared */
        if (need_cpl0(v) != OK || rm_read(v, in, 2, &w) != OK)
            return FAULT;
        v->cr0 = (v->cr0 & ~0xeu) | (w & 0xf) | (v->cr0 & CR0_PE);
        break;
    case 7:     /* invlpg */
        if (in->mod == 3)
            return raise_fault(v, T_UD, 0);
        if (need_cpl0(v) != OK)
            return FAULT;
        mmu_invlpg(v, v->seg[ea_seg(in)].base + ea_off(v, in));
        break;
    default:
        return raise_fault(v, T_UD, 0);
    }
    v->eip = next;
    return OK;
}

/* LAR and LSL: ZF says whether the descriptor is visible at this CPL and
 * RPL and of a type the instruction accepts (SDM Vol. 2A, LAR; LSL). */
static int
emu_lar_lsl(struct vcpu *v, struct insn *in, u32 next)
{
    u32 sel;
    struct desc d;
    if (!(v->cr0 & CR0_PE) || (v->eflags & EFLAGS_VM))
        return raise_fault(v, T_UD, 0);
    if (rm_read(v, in, 2, &sel) != OK)
        return FAULT;
    int ok = 0, r = 1;
    if ((sel & ~3u) != 0) {
        r = segtrack_read_desc(v, sel, &d, NULL);
        if (r == FAULT)
            return FAULT;
    }
    if (r == OK) {
        u32 a = desc_attr(d);
        int dpl = SEG_DPL(a), rpl = sel & 3, type = SEG_TYPE(a);
        int conf_code = (a & SEG_S) && (a & STA_X) && (a & STA_C);
        if (a & SEG_S)
            ok = 1;
        else if (in->op == 0x02)        /* lar: also gates and LDT */
            ok = type == 1 || type == 2 || type == 3 || type == 4 || type == 5 ||
                 type == 9 || type == 0xb || type == 0xc;
        else                            /* lsl */
            ok = type == 1 || type == 2 || type == 3 || type == 9 || type == 0xb;
        if (ok && !conf_code && (dpl < v->cpl || dpl < rpl))
            ok = 0;
        if (ok) {
            u32 val = in->op == 0x02 ? d.hi & 0x00f0ff00 : desc_limit(d);
            reg_set(v, in->reg, in->opsize, in->opsize == 2 ? val & 0xffff : val);
        }
    }
    v->eflags = (v->eflags & ~EFLAGS_ZF) | (ok ? EFLAGS_ZF : 0);
    v->eip = next;
    return OK;
}

static int
emu_clts(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    if (need_cpl0(v) != OK)
        return FAULT;
    v->cr0 &= ~CR0_TS;
    v->eip = next;
    return OK;
}

static int
emu_invd(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    if (need_cpl0(v) != OK)
        return FAULT;
    v->eip = next;              /* caches are the host's business */
    return OK;
}

/* The CR4 bits a guest may set: the ones QEMU accepts on this CPU model
 * whatever its CPUID says (the rest raise #GP(0)).  Of those, PAE paging,
 * VME and PVI are not virtualized: a guest that relies on them is
 * stopped (vmm_decide, emu_mov_cr). */
#define CR4_VALID (CR4_VME | CR4_PVI | CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_MCE | \
                   CR4_PGE | CR4_PCE | CR4_OSFXSR | CR4_OSXMMEXCPT | (host_umip ? CR4_UMIP : 0))

/*E:060 MOV to and from control registers.  The guest's CR0, CR3 and CR4
 * are virtual: the real ones belong to the monitor.  A CR3 write only
 * selects another cached shadow directory (mmu.c); changes to how every
 * address is translated (CR0.PG, WP, PE; CR4.PSE, PAE) discard all
 * shadows. :*/
static int
emu_mov_cr(struct vcpu *v, struct insn *in, u32 next)
{
    int cr = in->reg;
    if (need_cpl0(v) != OK)
        return FAULT;
    if (cr == 1 || cr > 4)
        return raise_fault(v, T_UD, 0);
    if (in->op == 0x20) {       /* read */
        u32 val = cr == 0 ? v->cr0 : cr == 2 ? v->cr2 : cr == 3 ? v->cr3 : v->cr4;
        *gpr(v, in->rm) = val;
        v->eip = next;
        return OK;
    }
    u32 val = *gpr(v, in->rm);
    switch (cr) {
    case 0:
        if ((val & CR0_PG) && !(val & CR0_PE))
            return raise_gp(v, 0);
        if ((val & CR0_NW) && !(val & CR0_CD))
            return raise_gp(v, 0);
        val |= CR0_ET;
        if ((val ^ v->cr0) & (CR0_PG | CR0_WP | CR0_PE)) {
            mmu_flush(v);
            mmu_code_mappings_changed();
        }
        v->cr0 = val;
        break;
    case 2:
        v->cr2 = val;
        break;
    case 3:
        if (val != v->cr3)
            mmu_code_mappings_changed();
        v->cr3 = val;
        break;
    case 4:
        if (val & ~CR4_VALID)
            return raise_gp(v, 0);
        if ((val ^ v->cr4) & (CR4_PSE | CR4_PAE | CR4_PGE)) {
            mmu_flush(v);
            mmu_code_mappings_changed();
        }
        v->cr4 = val;
        break;
    }
    if ((v->cr0 & CR0_PG) && (v->cr4 & CR4_PAE)) {
        vm_stop(v, "PAE paging at %08x: the monitor shadows 32-bit paging only", v->eip);
        return STOP;
    }
    v->eip = next;
    return OK;
}

/* Debug registers: stored and read back.  DR4/DR5 alias DR6/DR7 with
 * CR4.DE clear; DR6 and DR7 have bits that always read 1. */
static int
emu_mov_dr(struct vcpu *v, struct insn *in, u32 next)
{
    int dr = in->reg;
    if (need_cpl0(v) != OK)
        return FAULT;
    if ((dr == 4 || dr == 5) && (v->cr4 & CR4_DE))
        return raise_fault(v, T_UD, 0);
    if (dr == 4 || dr == 5)
        dr += 2;
    if (in->op == 0x21) {
        *gpr(v, in->rm) = v->dr[dr];
    } else {
        u32 val = *gpr(v, in->rm);
        if (dr == 6)
            val |= 0xffff0ff0;
        else if (dr == 7)
            val |= 0x400;
        v->dr[dr] = val;
    }
    v->eip = next;
    return OK;
}

/* RDMSR and WRMSR: this CPU offers no MSRs (CPUID.1:EDX.MSR is clear). */
static int
emu_msr(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    (void)next;
    if (need_cpl0(v) != OK)
        return FAULT;
    return raise_gp(v, 0);
}

static int
emu_rdtsc(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    if ((v->cr4 & CR4_TSD) && v->cpl != 0 && (v->cr0 & CR0_PE))
        return raise_gp(v, 0);
    u64 t = rdtsc();
    v->f.eax = (u32)t;
    v->f.edx = (u32)(t >> 32);
    v->eip = next;
    return OK;
}

static int
emu_rdpmc(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    (void)next;
    if (!(v->cr4 & CR4_PCE) && v->cpl != 0 && (v->cr0 & CR0_PE))
        return raise_gp(v, 0);
    return raise_fault(v, T_UD, 0);
}

static int
emu_ud(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    (void)next;
    return raise_fault(v, T_UD, 0);
}

/* CPUID: the host's answer, filtered to the features the monitor
 * virtualizes (docs/00-overview.md). */
#define CPUID1_EDX_VALID 0x00008111u    /* fpu (0), tsc (4), cx8 (8), cmov (15) */
static int
emu_cpuid(struct vcpu *v, struct insn *in, u32 next)
{
    (void)in;
    u32 a, b, c, d, leaf = v->f.eax;
    cpuid2(leaf, v->f.ecx, &a, &b, &c, &d);     /* ECX: the subleaf, for leaves that have them */
    if (leaf == 1) {
        d &= CPUID1_EDX_VALID;
        c &= 0x80000000;        /* only "a hypervisor is present": true both ways */
    } else if (leaf == 7) {
        b = d = 0;              /* structured extended features: only UMIP (vmm.c, E:005) */
        c &= 1u << 2;
    }
    v->f.eax = a;
    v->f.ebx = b;
    v->f.ecx = c;
    v->f.edx = d;
    v->eip = next;
    return OK;
}

static const emu_fn emu_table[E_COUNT] = {
    [E_JCC] = emu_jcc, [E_JMP] = emu_jmp, [E_CALL] = emu_call, [E_RET] = emu_ret,
    [E_RETF] = emu_retf, [E_IRET] = emu_iret, [E_INT] = emu_int, [E_INT3] = emu_int3,
    [E_INTO] = emu_into, [E_INT1] = emu_int1, [E_LOOP] = emu_loop, [E_JCXZ] = emu_jcxz,
    [E_JMPF] = emu_jmpf, [E_CALLF] = emu_callf, [E_GRP5] = emu_grp5,
    [E_PUSHF] = emu_pushf, [E_POPF] = emu_popf, [E_CLI] = emu_cli, [E_STI] = emu_sti,
    [E_HLT] = emu_hlt, [E_IN] = emu_in, [E_OUT] = emu_out, [E_INS] = emu_ins,
    [E_OUTS] = emu_outs, [E_MOV_FROM_SR] = emu_mov_from_sr, [E_MOV_TO_SR] = emu_mov_to_sr,
    [E_PUSH_SR] = emu_push_sr, [E_POP_SR] = emu_pop_sr, [E_LOAD_FAR] = emu_load_far,
    [E_GRP6] = emu_grp6, [E_GRP7] = emu_grp7, [E_LAR] = emu_lar_lsl, [E_LSL] = emu_lar_lsl,
    [E_CLTS] = emu_clts, [E_INVD] = emu_invd, [E_MOV_CR] = emu_mov_cr, [E_MOV_DR] = emu_mov_dr,
    [E_WRMSR] = emu_msr, [E_RDTSC] = emu_rdtsc, [E_RDMSR] = emu_msr, [E_RDPMC] = emu_rdpmc,
    [E_SYSENTER] = emu_ud, [E_SYSEXIT] = emu_ud, [E_CPUID] = emu_cpuid, [E_RSM] = emu_ud,
};

const char *emu_names[E_COUNT] = {
    [E_NONE] = "data move (adapted)",
    [E_JCC] = "jcc", [E_JMP] = "jmp", [E_CALL] = "call", [E_RET] = "ret", [E_RETF] = "retf",
    [E_IRET] = "iret", [E_INT] = "int", [E_INT3] = "int3", [E_INTO] = "into", [E_INT1] = "int1",
    [E_LOOP] = "loop", [E_JCXZ] = "jcxz", [E_JMPF] = "jmpf", [E_CALLF] = "callf",
    [E_GRP5] = "call/jmp r/m", [E_PUSHF] = "pushf", [E_POPF] = "popf", [E_CLI] = "cli",
    [E_STI] = "sti", [E_HLT] = "hlt", [E_IN] = "in", [E_OUT] = "out", [E_INS] = "ins",
    [E_OUTS] = "outs", [E_MOV_FROM_SR] = "mov from sreg", [E_MOV_TO_SR] = "mov to sreg",
    [E_PUSH_SR] = "push sreg", [E_POP_SR] = "pop sreg", [E_LOAD_FAR] = "lds/les/lss/lfs/lgs",
    [E_GRP6] = "sldt/str/lldt/ltr/verr/verw", [E_GRP7] = "sgdt/sidt/lgdt/lidt/smsw/lmsw/invlpg",
    [E_LAR] = "lar", [E_LSL] = "lsl", [E_CLTS] = "clts", [E_INVD] = "invd/wbinvd",
    [E_MOV_CR] = "mov cr", [E_MOV_DR] = "mov dr", [E_WRMSR] = "wrmsr", [E_RDTSC] = "rdtsc",
    [E_RDMSR] = "rdmsr", [E_RDPMC] = "rdpmc", [E_SYSENTER] = "sysenter", [E_SYSEXIT] = "sysexit",
    [E_CPUID] = "cpuid", [E_RSM] = "rsm",
};

/*E:045 Emulate the one instruction at the guest's CS:EIP.  The checks
 * every privileged instruction shares (CPL 0 for D_PRIV) come from the
 * decoder's flags; the rest is in the instruction's routine.  On success
 * EIP has moved on (or to the branch target); on a fault EIP still names
 * the instruction and the fault has been delivered to the guest, as the
 * CPU would.  Returns OK, STOP, or NOT_EMULATED for an ordinary
 * instruction that should simply be run. :*/
int
emulate_one(struct vcpu *v)
{
    struct insn in;
    int r = fetch_decode(v, &in);
    if (r == FAULT)
        return emulate_deliver_pending(v);
    return emulate_insn(v, &in);
}

/* The same for an instruction already decoded: the terminator of a
 * translation unit, decoded when it was translated (bt.c).  Its bytes are
 * still the guest's: a write to them would have dropped the unit. */
int
emulate_insn(struct vcpu *v, struct insn *inp)
{
    struct insn in = *inp;
    u32 tf = v->eflags & EFLAGS_TF;
    int r;
    u32 next = v->eip + in.len;
    if (!vcpu_code32(v))
        next &= 0xffff;
    if (!in.info->emu || !emu_table[in.info->emu] || (in.flags & D_INVALID))
        return NOT_EMULATED;
    if ((in.flags & D_PRIV) && need_cpl0(v) != OK)
        r = FAULT;
    else
        r = emu_table[in.info->emu](v, &in, next);
    if (r == NOT_EMULATED)
        return r;
    v->st.callouts[in.info->emu]++;
    if (opt_log & LOG_CALLOUT)
        cprintf("callout: %s at %08x -> %d\n", in.info->name, v->eip, r);
    /* A single-step trap follows any instruction that began with TF
     * set, except a software interrupt, whose handler starts with TF
     * clear (SDM Vol. 3A §17.3.1.4). */
    int soft = in.info->emu == E_INT || in.info->emu == E_INT3 || in.info->emu == E_INTO;
    if (r == OK && tf && !soft)
        emulate_deliver_debug(v, 0x4000);
    if (r == FAULT)
        return emulate_deliver_pending(v);
    return r;
}
