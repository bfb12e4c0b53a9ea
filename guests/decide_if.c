/*
 * decide_if -- ring 3 entered with IF=0 and with IF=1.
 *
 * Tests:   the kernel irets to ring 3 with IF=0 in the pushed EFLAGS; the
 *          user code reads EFLAGS with pushf, computes, reports through a
 *          system call and returns; then the same with IF=1; then IF=1 with
 *          IOPL=0 and some arithmetic flags (CF, ZF, SF, OF, DF) set in the
 *          iret image.  Prints the EFLAGS images seen in ring 3, in the
 *          trap frame of the system call, and the results.  All IRQs are
 *          masked at the PIC, so IF=1 delivers nothing.
 * Exercises: the execution-mode decision on EFLAGS.IF (docs/02-decision.md):
 *          ring-3 code with IF=0 cannot run in direct execution (the real
 *          IF must stay 1), so the monitor binary-translates it
 *          (docs/08-translation.md); with IF=1 it runs directly
 *          (docs/03-direct.md).
 *          The virtual EFLAGS image seen by pushf must be the guest's.
 * Monitor exits expected: iret callouts (entry to ring 3), #GP exits for
 *          int $0x80 in direct execution (IF=1 runs), in-translator
 *          handling of int $0x80 in the IF=0 run; COM1 port I/O callouts.
 */
#include "guest.h"

#define SYS_REPORT 16

static uint32_t frame_eflags[4];
static int nreport;

static int report(struct trapframe *f)
{
    if (f->eax != SYS_REPORT)
        return 0;
    printf("kernel: user reports eflags=0x%08x result=0x%08x; trap frame eflags=0x%08x cs=0x%04x\n",
           f->ebx, f->ecx, f->eflags, f->cs);
    if (nreport < 4)
        frame_eflags[nreport] = f->eflags;
    nreport++;
    f->eax = f->ebx ^ f->ecx;
    return 1;
}

static uint32_t user_code(uint32_t seed)
{
    uint32_t efl = read_eflags();
    uint32_t x = seed, acc = 0;
    for (int i = 0; i < 1000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        acc += x;
    }
    uint32_t r = syscall3(SYS_REPORT, efl, acc, 0);
    uprintf("user: pushf=0x%08x acc=0x%08x syscall->0x%08x\n", efl, acc, r);
    return efl;
}

/* Entered with the arithmetic flags set in the iret image: pushf first. */
extern char user_flags_entry[];
__asm__(".text\n"
        "user_flags_entry:\n\t"
        "pushfl\n\t"
        "popl %ebx\n\t"
        "cld\n\t"                       /* C code below needs DF=0 */
        "pushl %ebx\n\t"                /* argument */
        "pushl $0\n\t"                  /* fake return address */
        "jmp user_flags_c\n");

NORETURN void user_flags_c(uint32_t efl);
NORETURN void user_flags_c(uint32_t efl)
{
    syscall3(SYS_REPORT, efl, 0xf1a95, 0);
    sys_exit(efl);
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("decide_if: ring 3 with IF=0 and IF=1\n");
    cpu_init();
    syscall_hook = report;

    printf("kernel: eflags=0x%08x\n", read_eflags());
    uint32_t e0 = run_user(user_code, 0x12345678, 0);
    printf("IF=0 run: user eflags=0x%08x, kernel eflags after=0x%08x\n", e0, read_eflags());
    check_eq("user_if0", e0 & (EFL_IF | EFL_IOPL_MASK), 0);

    uint32_t e1 = run_user(user_code, 0x12345678, EFL_IF);
    printf("IF=1 run: user eflags=0x%08x, kernel eflags after=0x%08x\n", e1, read_eflags());
    check_eq("user_if1", e1 & (EFL_IF | EFL_IOPL_MASK), EFL_IF);

    uint32_t e2 = run_user(user_code, 0x9abcdef0, 0);
    printf("IF=0 again: user eflags=0x%08x\n", e2);
    check_eq("user_if0_again", e2 & EFL_IF, 0);

    uint32_t want = EFL_IF | EFL_CF | EFL_ZF | EFL_SF | EFL_OF | EFL_DF;
    uint32_t e3 = enter_user((uint32_t)user_flags_entry, (uint32_t)ustack_top, want);
    printf("IF=1|CF|ZF|SF|OF|DF entry: user pushf=0x%08x\n", e3);
    check_eq("user_entry_flags", e3, want | EFL_1);
    uint32_t e4 = enter_user((uint32_t)user_flags_entry, (uint32_t)ustack_top, EFL_CF | EFL_PF | EFL_AF);
    printf("IF=0|CF|PF|AF entry: user pushf=0x%08x\n", e4);
    check_eq("user_entry_flags_if0", e4, EFL_CF | EFL_PF | EFL_AF | EFL_1);

    for (int i = 0; i < nreport && i < 4; i++)
        printf("frame eflags[%d]=0x%08x\n", i, frame_eflags[i]);
    check_eq("frame_if0", frame_eflags[0] & EFL_IF, 0);
    check_eq("frame_if1", frame_eflags[1] & EFL_IF, EFL_IF);
    check_eq("kernel_if_after", read_eflags() & EFL_IF, 0);
    printf("decide_if: done, %d failures\n", failures);
    return failures;
}
