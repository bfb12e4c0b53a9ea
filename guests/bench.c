/*
 * bench -- nanobenchmarks for `make bench` (tests/bench.sh).
 *
 * The Multiboot command line is "PATH ARGS"; the first word of ARGS names
 * one benchmark, anything else (or nothing) runs them all in turn:
 *   user_loop    100000 iterations of a small ALU + memory loop at ring 3
 *   kernel_loop  the same loop (the same function) at ring 0
 *   syscall      10000 int $0x80 round trips from ring 3 to a one-instruction
 *                kernel handler (iret)
 *   divzero      10000 #DE faults at ring 0, the handler skips the divl
 *   callret      100000 call/ret pairs at ring 0
 *   cr_write     10000 mov %cr0,%eax; mov %eax,%cr0 at ring 0
 *   in_port      10000 inb from the COM1 scratch register 0x3ff at ring 0
 * Each loop runs once with iters/100 iterations to warm up (translation
 * cache, shadow page tables, TLB), then once between two rdtsc.  Output on
 * COM1, parsed by tests/bench.sh:
 *   bench: START
 *   bench NAME iters=N cycles=C        (C: the rdtsc delta, decimal)
 *   bench: done
 * Under QEMU's -icount shift=0,sleep=off the TSC counts retired
 * instructions, so C is the number of instructions the loop cost: the
 * guest's own natively, the guest's plus the monitor's under the monitor.
 *
 * Exercises: direct execution (user_loop), the translator (kernel_loop,
 * callret: calls and returns are callouts or chained translations), the
 * ring-3 -> ring-0 -> ring-3 round trip through the monitor (syscall),
 * exception reflection from translated code (divzero), privileged
 * instruction emulation (cr_write) and port I/O (in_port).
 * No paging; ring-3 code runs on the library's flat user segments.
 */
#include "guest.h"

#define BENCH_EXIT_VEC 0x81     /* ring 3 comes back to the kernel with this */

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

/* Trivial handlers, installed in the IDT only while their benchmark runs. */
extern char bench_iret[], bench_skip_div[], bench_ret[];
__asm__(".text\n"
        "bench_iret:\n\t"               /* int $0x80: straight back */
        "iret\n"
        "bench_skip_div:\n\t"           /* #DE: skip the 2-byte divl %ecx */
        "addl $2, (%esp)\n\t"
        "iret\n"
        "bench_ret:\n\t"
        "ret\n");

/* ------------------------------------------------------------- the loops */

static volatile uint32_t work[64];

__attribute__((noinline)) static void compute_loop(uint32_t n)
{
    uint32_t a = 1, b = 0x9e3779b9u;
    for (uint32_t i = 0; i < n; i++) {
        a = a * 5 + i;
        b ^= a >> 3;
        work[i & 63] += b;
    }
    work[0] += a;
}

__attribute__((noinline)) static void syscall_loop(uint32_t n)
{
    __asm__ volatile("1:\tint $0x80\n\t"
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n) : : "memory", "cc");
}

__attribute__((noinline)) static void divzero_loop(uint32_t n)
{
    __asm__ volatile("xorl %%ecx, %%ecx\n\t"
                     "movl $1, %%eax\n\t"
                     "xorl %%edx, %%edx\n"
                     "1:\tdivl %%ecx\n\t"       /* f7 f1: #DE, skipped */
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n) : : "eax", "ecx", "edx", "memory", "cc");
}

__attribute__((noinline)) static void callret_loop(uint32_t n)
{
    __asm__ volatile("1:\tcall bench_ret\n\t"
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n) : : "memory", "cc");
}

__attribute__((noinline)) static void cr_write_loop(uint32_t n)
{
    __asm__ volatile("1:\tmovl %%cr0, %%eax\n\t"
                     "movl %%eax, %%cr0\n\t"
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n) : : "eax", "memory", "cc");
}

__attribute__((noinline)) static void in_port_loop(uint32_t n)
{
    __asm__ volatile("movl $0x3ff, %%edx\n"
                     "1:\tinb %%dx, %%al\n\t"
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n) : : "eax", "edx", "memory", "cc");
}

/* ------------------------------------------------------------- timing */

static uint64_t t_begin, t_end;

/* Warm up, then time; the same code whichever ring it runs in. */
static void timed(void (*loop)(uint32_t), uint32_t iters)
{
    loop(iters / 100);
    uint64_t t0 = rdtsc();
    loop(iters);
    uint64_t t1 = rdtsc();
    t_begin = t0;
    t_end = t1;
}

/* Ring-3 side: run_user() passes the benchmark in `arg`; the way back to
 * the kernel is int $BENCH_EXIT_VEC (int $0x80 is the benchmark itself). */
struct user_job {
    void (*loop)(uint32_t);
    uint32_t iters;
};

static uint32_t user_side(uint32_t arg)
{
    const struct user_job *job = (const struct user_job *)arg;
    timed(job->loop, job->iters);
    __asm__ volatile("int %0" : : "i"(BENCH_EXIT_VEC), "b"(0) : "memory");
    return 0;
}

static void back_to_kernel(struct trapframe *f)
{
    user_return(f, f->ebx);
}

/* ------------------------------------------------------------- output */

/* 64-bit decimal without libgcc: long division by 10 with 32-bit divl. */
static void print_u64(uint64_t v)
{
    char d[21];
    int k = 0;
    do {
        uint32_t hi = (uint32_t)(v >> 32), lo = (uint32_t)v, rem, qlo;
        uint32_t qhi = hi / 10;
        rem = hi % 10;
        __asm__("divl %4" : "=a"(qlo), "=d"(rem) : "a"(lo), "d"(rem), "r"(10u));
        d[k++] = (char)('0' + rem);
        v = (uint64_t)qhi << 32 | qlo;
    } while (v);
    while (k)
        serial_putc(d[--k]);
}

/* ------------------------------------------------------------- benchmarks */

enum ring { RING0, RING3 };

static const struct bench {
    const char *name;
    void (*loop)(uint32_t);
    uint32_t iters;
    enum ring ring;
} benches[] = {
    { "user_loop", compute_loop, 100000, RING3 },
    { "kernel_loop", compute_loop, 100000, RING0 },
    { "syscall", syscall_loop, 10000, RING3 },
    { "divzero", divzero_loop, 10000, RING0 },
    { "callret", callret_loop, 100000, RING0 },
    { "cr_write", cr_write_loop, 10000, RING0 },
    { "in_port", in_port_loop, 10000, RING0 },
};
#define NBENCH ((int)(sizeof benches / sizeof benches[0]))

static void run(const struct bench *b)
{
    if (b->loop == syscall_loop)
        idt_set_gate(VEC_SYSCALL, (uint32_t)bench_iret, SEG_KCODE, GATE_INTR32, 3);
    if (b->loop == divzero_loop)
        idt_set_gate(VEC_DE, (uint32_t)bench_skip_div, SEG_KCODE, GATE_INTR32, 0);

    t_begin = t_end = 0;
    if (b->ring == RING3) {
        struct user_job job = { b->loop, b->iters };
        /* IF=1: the monitor only runs ring 3 directly with interrupts
         * enabled (all IRQs are masked at the PIC, so none arrive). */
        run_user(user_side, (uint32_t)&job, EFL_IF);
    } else {
        timed(b->loop, b->iters);
    }

    idt_set_gate(VEC_SYSCALL, idt_stub(VEC_SYSCALL), SEG_KCODE, GATE_INTR32, 3);
    idt_set_gate(VEC_DE, idt_stub(VEC_DE), SEG_KCODE, GATE_INTR32, 0);

    printf("bench %s iters=%u cycles=", b->name, b->iters);
    print_u64(t_end - t_begin);
    print("\n");
}

/* The first word after the path on the Multiboot command line, in buf. */
static void get_arg(uint32_t magic, const struct multiboot_info *mbi, char *buf, size_t size)
{
    size_t n = 0;
    if (magic == MULTIBOOT_BOOT_MAGIC && (mbi->flags & MBI_FLAG_CMDLINE) && mbi->cmdline) {
        const char *p = (const char *)mbi->cmdline;
        while (*p && *p != ' ')
            p++;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ' && n + 1 < size)
            buf[n++] = *p++;
    }
    buf[n] = 0;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    char arg[32];
    get_arg(magic, mbi, arg, sizeof arg);
    cpu_init();
    idt_set_gate(BENCH_EXIT_VEC, idt_stub(BENCH_EXIT_VEC), SEG_KCODE, GATE_INTR32, 3);
    set_trap_handler(BENCH_EXIT_VEC, back_to_kernel);

    print("bench: START\n");
    int found = 0;
    for (int i = 0; i < NBENCH; i++)
        if (strcmp(arg, benches[i].name) == 0) {
            run(&benches[i]);
            found = 1;
        }
    if (!found)
        for (int i = 0; i < NBENCH; i++)
            run(&benches[i]);
    print("bench: done\n");
    return 0;
}
