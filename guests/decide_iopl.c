/*
 * decide_iopl -- IOPL-sensitive instructions in ring 3 with IOPL=3 and
 * IOPL=0.
 *
 * Tests:   ring-3 code run with IOPL=3 executes cli, sti, pushf/popf
 *          changing IF (and trying to change IOPL), in/out on the COM1
 *          scratch register, and records its EFLAGS images; the same code
 *          run with IOPL=0: cli, sti, in and out each raise #GP(0) (vector,
 *          error code and EIP printed), popf silently leaves IF and IOPL
 *          unchanged (EFLAGS image printed).
 * Exercises: the execution-mode decision on IOPL (docs/02-decision.md):
 *          with IOPL=3 ring-3 code may change the virtual IF, so the
 *          monitor cannot run it directly with the real IF; with IOPL=0 it
 *          runs directly and the CPU faults on the sensitive instructions
 *          (docs/03-direct.md); the virtual IF/IOPL as seen by pushf.
 * Monitor exits expected: IOPL=3 run: translated (or emulated) cli, sti,
 *          popf, in, out (port I/O callouts to the 16550 emulation).
 *          IOPL=0 run: #GP exits for cli, sti, in, out reflected to the
 *          guest; #GP exits for int $0x80.
 */
#include "guest.h"

struct rec {
    uint32_t vector, err, eip, site;
};

static volatile uint32_t ue[8];     /* EFLAGS images seen in ring 3 */
static volatile uint32_t uin;       /* value read back from 0x3ff */
static volatile struct rec frec[4];
static volatile uint32_t nfaults;

#define RECORD(i)                                                           \
    do {                                                                    \
        frec[i].vector = fault_armed ? 0xffffffffu : last_fault.vector;     \
        frec[i].err = last_fault.err;                                       \
        frec[i].eip = last_fault.eip;                                       \
        frec[i].site = fault_site;                                          \
        fault_armed = 0;                                                    \
    } while (0)

/* IOPL=3: everything works. */
static uint32_t user_iopl3(uint32_t arg)
{
    uint32_t v;
    ue[0] = read_eflags();
    cli();
    ue[1] = read_eflags();
    sti();
    ue[2] = read_eflags();
    write_eflags(ue[2] & ~EFL_IF);
    ue[3] = read_eflags();
    write_eflags(ue[3] | EFL_IF);
    ue[4] = read_eflags();
    /* Try to lower IOPL to 0 from CPL 3: ignored (CPL > 0). */
    write_eflags(ue[4] & ~EFL_IOPL_MASK);
    ue[5] = read_eflags();
    outb(0x3ff, (uint8_t)arg);
    v = inb(0x3ff);
    uin = v;
    ue[6] = read_eflags();
    return v;
}

/* IOPL=0: cli, sti, in, out fault; popf ignores IF and IOPL. */
static uint32_t user_iopl0(uint32_t arg)
{
    (void)arg;
    ue[0] = read_eflags();
    __asm__ volatile(FAULT_ARM "1: cli\n2:" ::: "memory");
    RECORD(0);
    ue[1] = read_eflags();
    __asm__ volatile(FAULT_ARM "1: sti\n2:" ::: "memory");
    RECORD(1);
    __asm__ volatile("movw $0x3ff, %%dx\n\t"
                     FAULT_ARM "1: inb %%dx, %%al\n2:" ::: "eax", "edx", "memory");
    RECORD(2);
    __asm__ volatile("movw $0x3ff, %%dx\n\tmovb $0x99, %%al\n\t"
                     FAULT_ARM "1: outb %%al, %%dx\n2:" ::: "eax", "edx", "memory");
    RECORD(3);
    ue[2] = read_eflags();
    write_eflags((ue[2] & ~EFL_IF) | EFL_IOPL(3));     /* clear IF, raise IOPL */
    ue[3] = read_eflags();
    write_eflags(ue[3] & ~EFL_IF & ~EFL_IOPL_MASK);
    ue[4] = read_eflags();
    write_eflags(ue[4] | EFL_CF | EFL_AC);             /* these do change */
    ue[5] = read_eflags();
    write_eflags(ue[5] & ~(EFL_CF | EFL_AC));
    ue[6] = read_eflags();
    return ue[6];
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("decide_iopl: IOPL-sensitive instructions in ring 3\n");
    cpu_init();

    print("--- IOPL=3 ---\n");
    uint32_t v = run_user(user_iopl3, 0x3c, EFL_IF | EFL_IOPL(3));
    static const char *const n3[7] = { "entry", "after cli", "after sti", "after popf IF=0",
                                       "after popf IF=1", "after popf IOPL=0", "after in/out" };
    for (int i = 0; i < 7; i++)
        printf("iopl3: eflags %-18s = 0x%08x\n", n3[i], ue[i]);
    printf("iopl3: in 0x3ff -> 0x%02x\n", v);
    check_eq("iopl3_entry", ue[0] & (EFL_IF | EFL_IOPL_MASK), EFL_IF | EFL_IOPL(3));
    check_eq("iopl3_cli", ue[1] & EFL_IF, 0);
    check_eq("iopl3_sti", ue[2] & EFL_IF, EFL_IF);
    check_eq("iopl3_popf_if0", ue[3] & EFL_IF, 0);
    check_eq("iopl3_popf_if1", ue[4] & EFL_IF, EFL_IF);
    check_eq("iopl3_popf_iopl_kept", ue[5] & EFL_IOPL_MASK, EFL_IOPL(3));
    check_eq("iopl3_scratch", v, 0x3c);
    printf("kernel: eflags after=0x%08x, scratch=0x%02x\n", read_eflags(), inb(0x3ff));

    print("--- IOPL=0 ---\n");
    outb(0x3ff, 0x11);
    v = run_user(user_iopl0, 0, EFL_IF);
    static const char *const f0[4] = { "cli", "sti", "in", "out" };
    for (int i = 0; i < 4; i++) {
        printf("iopl0_%s: vector=%u err=0x%04x eip=0x%08x\n", f0[i], frec[i].vector, frec[i].err, frec[i].eip);
        char name[32];
        snprintf(name, sizeof name, "iopl0_%s_gp", f0[i]);
        check_eq(name, frec[i].vector == VEC_GP && frec[i].err == 0 && frec[i].eip == frec[i].site, 1);
    }
    static const char *const n0[7] = { "entry", "after cli", "after sti/in/out", "after popf IF=0 IOPL=3",
                                       "after popf IOPL=0", "after popf CF|AC", "after popf ~CF~AC" };
    for (int i = 0; i < 7; i++)
        printf("iopl0: eflags %-24s = 0x%08x\n", n0[i], ue[i]);
    check_eq("iopl0_entry", ue[0] & (EFL_IF | EFL_IOPL_MASK), EFL_IF);
    check_eq("iopl0_cli_no_effect", ue[1] & EFL_IF, EFL_IF);
    check_eq("iopl0_popf_ignores_if_iopl", ue[3] & (EFL_IF | EFL_IOPL_MASK), EFL_IF);
    check_eq("iopl0_popf_cf_ac", ue[5] & (EFL_CF | EFL_AC), EFL_CF | EFL_AC);
    check_eq("iopl0_final", v & (EFL_IF | EFL_IOPL_MASK | EFL_CF | EFL_AC), EFL_IF);
    printf("kernel: scratch after IOPL=0 run=0x%02x\n", inb(0x3ff));
    check_eq("iopl0_out_blocked", inb(0x3ff), 0x11);
    printf("decide_iopl: done, %d failures\n", failures);
    return failures;
}
