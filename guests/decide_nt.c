/*
 * decide_nt -- the two decision conditions the other decide_* guests do
 * not reach: EFLAGS.NT set in user mode, and a user segment register
 * that has no shadow descriptor.
 *
 * Tests:   (1) the kernel irets to ring 3 with NT=1 in the EFLAGS image
 *          (allowed: the kernel's own NT is 0, so its IRET is an ordinary
 *          return that loads NT); the user code reads its EFLAGS,
 *          computes, and reports through a system call; then the same
 *          with NT=0.  (2) An LDT with one DPL-3 data segment based at a
 *          buffer: ring-3 code loads DS with the LDT selector 0x07, reads
 *          through it, reloads DS with the GDT's user data selector and
 *          reads again; the same values come back both ways.  (3) Ring-3
 *          code loads DS from a GDT entry of its own, clears that entry's
 *          accessed bit through ES (the GDT is in memory it may write),
 *          reads through DS (the hidden descriptor is unchanged), reloads
 *          DS (the CPU sets the bit again) and prints the bit.
 * Exercises: the execution decision (docs/02-decision.md).  With NT=1 an
 *          IRET at ring 3 would follow the back link of the TSS the CPU
 *          holds - the monitor's - so the monitor translates such user
 *          code ("NT=1").  The LDT is shadowed (shadow.c), so (2) runs
 *          directly.  A descriptor whose accessed bit is clear has no
 *          present shadow (a load must write the bit), so in (3) DS has
 *          no shadow: the code runs translated ("unshadowed segment")
 *          until it reloads DS.
 * Monitor exits expected: #GP for the LDT load in direct execution
 *          (emulated), callouts for the DS reloads under translation.
 */
#include "guest.h"

#define SYS_REPORT 16
#define LDT_INDEX 6             /* a spare GDT slot: the LDT's descriptor */
#define DS_INDEX 12             /* a spare GDT slot: a user data segment for DS alone */

extern uint64_t gdt[];
static uint64_t ldt[2];
static uint32_t ldt_data[4] = { 0x5eedface, 0x0ddba11, 0xcafef00d, 0x8badf00d };

static int report(struct trapframe *f)
{
    if (f->eax != SYS_REPORT)
        return 0;
    printf("kernel: user reports 0x%08x 0x%08x; trap frame eflags=0x%08x\n", f->ebx, f->ecx, f->eflags);
    f->eax = f->ebx + f->ecx;
    return 1;
}

static uint32_t user_nt(uint32_t seed)
{
    uint32_t efl = read_eflags();
    uint32_t x = seed, acc = 0;
    for (int i = 0; i < 500; i++) {
        x = x * 1103515245u + 12345u;
        acc ^= x >> 7;
    }
    uint32_t r = syscall3(SYS_REPORT, efl, acc, 0);
    uprintf("user: pushf=0x%08x acc=0x%08x syscall->0x%08x\n", efl, acc, r);
    return efl;
}

static uint32_t user_ldt(uint32_t arg)
{
    uint32_t a, b, c, ds;
    (void)arg;
    __asm__ volatile("movw $0x07, %%ax\n\t"
                     "movw %%ax, %%ds\n\t"
                     "movl %%ds:4, %0\n\t"
                     "movl %%ds:8, %1\n\t"
                     "movw %%ds, %%ax\n\t"
                     "movzwl %%ax, %3\n\t"
                     "movw $0x23, %%ax\n\t"
                     "movw %%ax, %%ds\n\t"
                     : "=&r"(a), "=&r"(b), "=&r"(c), "=&r"(ds) : : "eax", "memory");
    c = ldt_data[3];
    syscall3(SYS_REPORT, a, b, 0);
    uprintf("user: through LDT DS=0x%04x: 0x%08x 0x%08x; through GDT DS: 0x%08x\n", ds, a, b, c);
    return a ^ b ^ c;
}

static uint32_t user_abit(uint32_t arg)
{
    uint32_t a, before, after;
    uint32_t *hi = (uint32_t *)&gdt[DS_INDEX] + 1;
    (void)arg;
    __asm__ volatile("movw $0x63, %%ax\n\tmovw %%ax, %%ds\n\t"
                     "andl $0xfffffeff, %%es:(%3)\n\t"      /* clear the accessed bit */
                     "movl %%es:(%3), %1\n\t"
                     "movl %%ds:0, %0\n\t"                  /* the hidden part is unchanged */
                     "movw %%ds, %%ax\n\tmovw %%ax, %%ds\n\t"   /* reload: the bit is set again */
                     "movl %%es:(%3), %2\n\t"
                     "movw $0x23, %%ax\n\tmovw %%ax, %%ds"
                     : "=&r"(a), "=&r"(before), "=&r"(after) : "r"(hi) : "eax", "memory");
    uprintf("user: read 0x%08x through DS; accessed bit %u after clearing, %u after the reload\n",
            a, (before >> 8) & 1, (after >> 8) & 1);
    return (after >> 8) & 1;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("decide_nt: NT=1 in user mode, and a segment with no shadow\n");
    cpu_init();
    syscall_hook = report;

    uint32_t e1 = run_user(user_nt, 0x2468ace0, EFL_IF | EFL_NT);
    printf("NT=1 run: user eflags=0x%08x\n", e1);
    check_eq("user_nt1", e1 & (EFL_NT | EFL_IF), EFL_NT | EFL_IF);
    uint32_t e0 = run_user(user_nt, 0x2468ace0, EFL_IF);
    printf("NT=0 run: user eflags=0x%08x\n", e0);
    check_eq("user_nt0", e0 & (EFL_NT | EFL_IF), EFL_IF);
    printf("kernel: eflags after=0x%08x\n", read_eflags());

    /* An LDT whose entry 0 is a DPL-3 data segment over ldt_data. */
    ldt[0] = make_desc((uint32_t)ldt_data, sizeof ldt_data - 1, 0xf2, 0x4);
    gdt_set(LDT_INDEX, (uint32_t)ldt, sizeof ldt - 1, 0x82, 0);
    __asm__ volatile("lldt %w0" : : "r"(LDT_INDEX << 3));
    uint32_t sel;
    __asm__ volatile("sldt %0" : "=r"(sel));
    printf("kernel: ldtr=0x%04x\n", sel & 0xffff);
    uint32_t r = run_user(user_ldt, 0, EFL_IF);
    printf("LDT run: result 0x%08x\n", r);
    check_eq("ldt_reads", r, 0x0ddba11 ^ 0xcafef00d ^ 0x8badf00d);
    __asm__ volatile("lldt %w0" : : "r"(0));

    gdt_set(DS_INDEX, (uint32_t)ldt_data, sizeof ldt_data - 1, 0xf3, 0x4);
    r = run_user(user_abit, 0, EFL_IF);
    check_eq("abit_set_again", r, 1);
    printf("decide_nt: done, %d failures\n", failures);
    return failures;
}
