/*
 * naive -- what a guest kernel sees of its own privilege.
 *
 * Tests:   at CPL 0, with interrupts disabled by CLI, the kernel reads
 *          back the state the x86's sensitive but unprivileged
 *          instructions expose: PUSHF after CLI (IF and IOPL), PUSHF
 *          after STI and a POPF that tried to clear IF, PUSH CS and MOV from SS
 *          (the selectors' RPL: the CPL), LAR of its own code selector
 *          (the descriptor's DPL), and SGDT (where the GDT is).  None of
 *          these instructions faults at CPL 1 or 2 on a CPU without UMIP;
 *          SGDT does with UMIP (SDM Vol. 3A §2.5, CR4.UMIP), and a fault
 *          is printed as its vector.  One line each, with the value.
 * Exercises: why the monitor cannot simply run a guest kernel directly at
 *          ring 1 (docs/02-decision.md, docs/labs/1-ring-compression.md):
 *          under the monitor these lines equal bare QEMU's because the
 *          translator emulates each instruction (inline, bt.c B:052, or
 *          by callout); with the ablation `naive=1` it copies them as they
 *          are, which is what direct execution at ring 1 would do, and
 *          the lines differ.
 * Monitor exits expected: none of interest; the lab compares COM1.
 */
#include "guest.h"

static void show_sgdt(void)
{
    struct dtr d = { 0, 0 };
    __asm__ volatile(FAULT_ARM "1: sgdt %0\n2:\n\t" : "=m"(d) : : "memory");
    if (fault_armed) {
        fault_disarm();
        printf("sgdt: base=0x%08x limit=0x%04x\n", d.base, d.limit);
    } else {
        printf("sgdt: fault vector %u error 0x%x\n", last_fault.vector, last_fault.err);
    }
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("naive: a kernel's view of its own privilege\n");
    cpu_init();
    cli();

    uint32_t f = read_eflags();
    printf("pushf after cli: IF=%u IOPL=%u\n", (f >> 9) & 1, (f >> 12) & 3);

    /* POPF with IF clear, after STI: at CPL 0 it disables interrupts;
     * at a CPL above IOPL the CPU leaves IF as it was, without a fault
     * (SDM Vol. 2B, POPF).  Every IRQ is masked at the PIC, so nothing is
     * delivered while IF is 1. */
    sti();
    write_eflags(f & ~(1u << 9));
    uint32_t g = read_eflags();
    cli();
    printf("pushf after sti, popf of IF=0: IF=%u\n", (g >> 9) & 1);

    uint32_t cs, ss;
    __asm__ volatile("pushl %%cs\n\tpopl %0" : "=r"(cs));
    __asm__ volatile("movl %%ss, %0" : "=r"(ss));
    printf("push cs: 0x%04x (RPL %u); mov from ss: 0x%04x (RPL %u)\n", cs & 0xffff, cs & 3, ss & 0xffff, ss & 3);

    uint32_t ar = 0, zf = 0;
    __asm__ volatile("larl %2, %0\n\tsetz %b1" : "=r"(ar), "=q"(zf) : "r"(cs), "0"(0), "1"(0) : "cc");
    printf("lar cs: %s, DPL %u\n", zf & 1 ? "valid" : "invalid", (ar >> 13) & 3);

    show_sgdt();
    extern uint64_t gdt[];
    printf("the kernel's GDT is at 0x%08x\n", (uint32_t)gdt);
    return 0;
}
