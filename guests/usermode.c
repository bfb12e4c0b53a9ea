/*
 * usermode -- ring 0 <-> ring 3 round trips.
 *
 * Tests:   GDT/TSS/IDT setup, entering ring 3 with iret (CS=0x1b, SS=0x23,
 *          all GPRs zero), system calls with int $0x80 (arguments and
 *          results in registers: add, multiply with a 64-bit result in
 *          EDX:EAX, write a string, a kernel counter), what ring-3 code sees
 *          of its own CS/SS/DS/ESP/EFLAGS, the trap frame the kernel gets
 *          (CS, SS, ESP, EFLAGS pushed by the CPU on the ring-3 -> ring-0
 *          transition through TSS.esp0), and the return to the kernel with
 *          the SYS_EXIT call.  Several excursions, with IF=0 and IF=1.
 * Exercises: direct execution of guest user code and the switch between
 *          direct execution and binary translation on iret/interrupts
 *          (docs/03-direct.md, docs/02-decision.md), virtual IDT delivery of
 *          software interrupts (docs/03-direct.md).
 * Monitor exits expected: #GP exits from int $0x80 in direct execution
 *          (the monitor's IDT gate 0x80 is not DPL 3), reflected to the
 *          guest IDT; callouts/emulation for the guest kernel's iret to
 *          ring 3 (back to direct execution); COM1 port I/O callouts.
 */
#include "guest.h"

#define SYS_ADD     16
#define SYS_MUL     17
#define SYS_COUNTER 18
#define SYS_SEGS    19
#define SYS_FRAME   20

static uint32_t counter;
static uint32_t nsyscalls;

static int usermode_syscalls(struct trapframe *f)
{
    nsyscalls++;
    switch (f->eax) {
    case SYS_ADD:
        printf("kernel: add(%u, %u) from cs=0x%04x ss=0x%04x\n", f->ebx, f->ecx, f->cs, f->ss);
        f->eax = f->ebx + f->ecx;
        return 1;
    case SYS_MUL: {
        uint64_t p = (uint64_t)f->ebx * f->ecx;
        printf("kernel: mul(0x%08x, 0x%08x)\n", f->ebx, f->ecx);
        f->eax = (uint32_t)p;
        f->edx = (uint32_t)(p >> 32);
        return 1;
    }
    case SYS_COUNTER:
        f->eax = ++counter;
        return 1;
    case SYS_SEGS:
        printf("kernel: user reports cs=0x%04x ss=0x%04x eflags=0x%08x\n", f->ebx, f->ecx, f->edx);
        f->eax = 0;
        return 1;
    case SYS_FRAME:
        printf("kernel: trap frame cs=0x%04x ss=0x%04x eflags=0x%08x esp=0x%08x ds=0x%04x es=0x%04x fs=0x%04x gs=0x%04x\n",
               f->cs, f->ss, f->eflags, f->esp, f->ds, f->es, f->fs, f->gs);
        printf("kernel: trap frame eip=0x%08x (expected 0x%08x) ebx=0x%08x esi=0x%08x edi=0x%08x ebp=0x%08x\n",
               f->eip, f->ecx, f->ebx, f->esi, f->edi, f->ebp);
        f->eax = (f->cs == SEG_UCODE && f->ss == SEG_UDATA && f->eip == f->ecx);
        return 1;
    }
    nsyscalls--;
    return 0;
}

static inline uint32_t sys_add(uint32_t a, uint32_t b) { return syscall3(SYS_ADD, a, b, 0); }
static inline uint32_t sys_counter(void) { return syscall3(SYS_COUNTER, 0, 0, 0); }

static inline uint64_t sys_mul(uint32_t a, uint32_t b)
{
    uint32_t lo, hi;
    __asm__ volatile("int $0x80" : "=a"(lo), "=d"(hi) : "a"(SYS_MUL), "b"(a), "c"(b) : "memory");
    return ((uint64_t)hi << 32) | lo;
}

/* ------------------------------------------------------------ ring 3 code */

static uint32_t user_main(uint32_t arg)
{
    uint32_t cs = READ_SEG(cs), ss = READ_SEG(ss), ds = READ_SEG(ds);
    uint32_t es = READ_SEG(es), fs = READ_SEG(fs), gs = READ_SEG(gs);
    uint32_t efl = read_eflags();

    uprintf("user: hello from ring 3, arg=0x%08x\n", arg);
    uprintf("user: cs=0x%04x ss=0x%04x ds=0x%04x es=0x%04x fs=0x%04x gs=0x%04x\n", cs, ss, ds, es, fs, gs);
    uprintf("user: eflags=0x%08x cpl=%u\n", efl, cs & 3);
    syscall3(SYS_SEGS, cs, ss, efl);

    uint32_t s = sys_add(40, 2);
    uprintf("user: add(40, 2) = %u\n", s);
    s = sys_add(0xfffffff0u, 0x20);
    uprintf("user: add(0xfffffff0, 0x20) = 0x%08x\n", s);
    uint64_t p = sys_mul(0xdeadbeefu, 0x1000u);
    uprintf("user: mul(0xdeadbeef, 0x1000) = 0x%08x%08x\n", (uint32_t)(p >> 32), (uint32_t)p);
    p = sys_mul(123456789u, 987654321u);
    uprintf("user: mul(123456789, 987654321) = 0x%08x%08x\n", (uint32_t)(p >> 32), (uint32_t)p);

    static const char msg[] = "user: this line went through SYS_WRITE\n";
    uint32_t n = syscall3(SYS_WRITE, (uint32_t)msg, sizeof msg - 1, 0);
    uprintf("user: SYS_WRITE returned %u\n", n);
    sys_puts("user: this line went through SYS_PUTS\n");

    uint32_t c1 = sys_counter(), c2 = sys_counter(), c3 = sys_counter();
    uprintf("user: counter %u %u %u\n", c1, c2, c3);

    /* Let the kernel check the frame: ECX = where it should say we were. */
    uint32_t ok;
    __asm__ volatile("movl $1f, %%ecx\n\t"
                     "int $0x80\n"
                     "1:"
                     : "=a"(ok)
                     : "a"(SYS_FRAME), "b"(0x11223344), "S"(0x55667788), "D"(0x99aabbcc)
                     : "ecx", "memory");
    uprintf("user: frame check says %u\n", ok);

    return arg ^ c3 ^ s;
}

/* Ring 3 entered with enter_user() directly, in asm: reports the registers
 * it finds at entry (all should be zero, ESP as given) and returns. */
extern char raw_user_entry[];
__asm__(".text\n"
        "raw_user_entry:\n\t"
        "pushfl\n\t"                    /* report eflags, esp (after pushfl), ebp..eax */
        "pushl %esp\n\t"
        "pushl %ebp\n\t"
        "pushl %edi\n\t"
        "pushl %esi\n\t"
        "pushl %edx\n\t"
        "pushl %ecx\n\t"
        "pushl %ebx\n\t"
        "pushl %eax\n\t"
        "movl $raw_regs, %edi\n\t"
        "movl $9, %ecx\n"
        "1:\tpopl %eax\n\t"
        "stosl\n\t"
        "loop 1b\n\t"
        "movl $0, %eax\n\t"             /* SYS_EXIT */
        "movl $0x600d, %ebx\n\t"
        "int $0x80\n\t"
        "ud2\n");
uint32_t raw_regs[9];

static uint32_t user_loop(uint32_t n)
{
    uint32_t acc = 0;
    for (uint32_t i = 0; i < n; i++)
        acc = sys_add(acc, i * i);
    return acc;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("usermode: ring 0 <-> ring 3 round trips\n");
    cpu_init();
    syscall_hook = usermode_syscalls;

    printf("kernel: cs=0x%04x ds=0x%04x ss=0x%04x tr=0x%04x eflags=0x%08x\n",
           READ_SEG(cs), READ_SEG(ds), READ_SEG(ss), str(), read_eflags());

    /* 1: raw entry, registers at the ring transition. */
    uint32_t r = enter_user((uint32_t)raw_user_entry, (uint32_t)ustack_top - 64, 0);
    static const char *const rn[9] = { "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eflags" };
    for (int i = 0; i < 9; i++)
        printf("raw entry: %s=0x%08x\n", rn[i], raw_regs[i]);
    check_eq("raw_entry_value", r, 0x600d);
    check_eq("raw_entry_esp", raw_regs[7], (uint32_t)ustack_top - 64 - 4); /* after pushfl */
    check_eq("raw_entry_eflags", raw_regs[8], 0x00000002);
    int zero = 1;
    for (int i = 0; i < 7; i++)
        zero &= raw_regs[i] == 0;
    check_true("raw_entry_gprs_zero", zero, "some general register was not 0");
    printf("raw entry: exit frame eip=0x%08x cs=0x%04x eflags=0x%08x esp=0x%08x ss=0x%04x\n",
           user_exit_frame.eip, user_exit_frame.cs, user_exit_frame.eflags,
           user_exit_frame.esp, user_exit_frame.ss);

    /* 2: C code in ring 3 with IF=0. */
    r = run_user(user_main, 0x1234, 0);
    printf("kernel: user_main returned 0x%08x\n", r);
    check_eq("user_main_if0", r, 0x1234 ^ 3 ^ 0x10);
    printf("kernel: back in ring 0: cs=0x%04x ds=0x%04x ss=0x%04x eflags=0x%08x\n",
           READ_SEG(cs), READ_SEG(ds), READ_SEG(ss), read_eflags());
    check_eq("back_in_ring0_cs", READ_SEG(cs), SEG_KCODE);

    /* 3: the same with IF=1 in ring 3 (all IRQs are masked at the PIC). */
    r = run_user(user_main, 0xabcd0000, EFL_IF);
    printf("kernel: user_main returned 0x%08x\n", r);
    check_eq("user_main_if1", r, 0xabcd0000 ^ 6 ^ 0x10);
    check_eq("kernel_if_after", read_eflags() & EFL_IF, 0);

    /* 4: many short round trips. */
    uint32_t total = 0;
    for (uint32_t i = 1; i <= 8; i++) {
        r = run_user(user_loop, i, 0);
        total += r;
        printf("kernel: user_loop(%u) = %u\n", i, r);
    }
    check_eq("user_loop_total", total, 336);

    printf("summary: %u syscalls handled by the guest hook, counter=%u, user stack top=0x%08x\n",
           nsyscalls, counter, (uint32_t)ustack_top);
    check_eq("counter", counter, 6);
    printf("usermode: done, %d failures\n", failures);
    return failures;
}
