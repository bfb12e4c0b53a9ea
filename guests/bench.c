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
 *   in80         10000 inb from port 0x80 (no device: reads all ones) at ring 0
 *   clisti       100000 cli; sti pairs at ring 0 (all IRQs masked at the PIC)
 *   pgfault      10000 true page faults at ring 0: a read (movl (%eax),%ecx,
 *                2 bytes) of a not-present page (its page table present,
 *                the PTE zero); the #PF handler maps nothing, counts the
 *                fault and adds 2 to the saved EIP
 *   ptemod       10000 stores at ring 0 into a live PTE -- the PTE of an
 *                otherwise unused page (touched once before the loop) in
 *                the page table that maps the kernel -- alternately setting
 *                and clearing PG_PCD; no invlpg
 *   ctxsw        10000 mov to CR3 at ring 0 (5000 iterations of two
 *                switches; iters and cycles count switches), alternating
 *                between two page directories that map the kernel
 *                identically and 0x40000000 to different frames; a read of
 *                0x40000000 after each switch
 *   smc          10000 iterations of: store a new immediate into
 *                `movl $imm, %eax; ret` (alone in a page of a writable data
 *                section), call it, at ring 0
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
 * instruction emulation (cr_write) and port I/O (in_port); shadow paging:
 * true #PF delivery (pgfault), traced writes to the guest's page tables
 * (ptemod), CR3 switches between cached shadows (ctxsw), and code traces
 * that invalidate a translation on every write (smc).
 * The first seven run without paging; ring-3 code runs on the library's
 * flat user segments.  The last four build their own page directory
 * (identity map of the first 4 MiB: the image, its stacks and the library's
 * page-table pool) and turn paging on before the warm-up and off after the
 * timed loop, outside the rdtsc pair.  Each checks its result afterwards
 * (faults counted, PTE restored, values read after the switches, values
 * returned by the patched code) and prints "FAIL ..." if it is wrong; main
 * returns the failure count.
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
extern char bench_iret[], bench_skip_div[], bench_ret[], bench_skip_pf[];
volatile uint32_t bench_pf_count;       /* #PFs taken by bench_skip_pf */
__asm__(".text\n"
        "bench_iret:\n\t"               /* int $0x80: straight back */
        "iret\n"
        "bench_skip_div:\n\t"           /* #DE: skip the 2-byte divl %ecx */
        "addl $2, (%esp)\n\t"
        "iret\n"
        "bench_ret:\n\t"
        "ret\n"
        "bench_skip_pf:\n\t"            /* #PF: drop the error code, count, */
        "addl $4, %esp\n\t"             /* skip the 2-byte movl (%eax),%ecx */
        "incl bench_pf_count\n\t"
        "addl $2, (%esp)\n\t"
        "iret\n");

/* smc's code: `movl $imm32, %eax; ret`, alone in a writable page (nothing
 * else in the page is written, so every trace hit is a patch). */
extern char bench_smc_fn[];
__asm__(".pushsection .data.bench_smc, \"aw\", @progbits\n"
        ".p2align 12\n"
        "bench_smc_fn:\n\t"
        ".byte 0xb8\n\t"                /* movl $imm32, %eax */
        ".long 0\n\t"
        "ret\n"
        ".p2align 12\n"
        ".popsection\n");

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

__attribute__((noinline)) static void in80_loop(uint32_t n)
{
    __asm__ volatile("1:\tinb $0x80, %%al\n\t"
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n) : : "eax", "memory", "cc");
}

__attribute__((noinline)) static void clisti_loop(uint32_t n)
{
    __asm__ volatile("1:\tcli\n\t"
                     "sti\n\t"
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n) : : "memory", "cc");
    __asm__ volatile("cli");    /* the library runs the kernel with IF = 0 */
}

/* Paging benchmarks: the loops take their addresses from these. */
#define KERNEL_MAP  (4u << 20)          /* identity-mapped in every directory */
#define PF_VA       0x40000000u         /* pgfault: page table present, PTE 0 */
#define PTEMOD_VA   (KERNEL_MAP - PG_SIZE)      /* ptemod: last PTE of the kernel's table */
#define CTX_VA      0x40000000u         /* ctxsw: frame A in pd A, frame B in pd B */

static volatile uint32_t *ptemod_pte;
static uint32_t ptemod_val;             /* the PTE as set up (and as left) */
static uint32_t ctx_pd[2];
static uint32_t ctx_sum, smc_sum;

__attribute__((noinline)) static void pgfault_loop(uint32_t n)
{
    __asm__ volatile("movl %1, %%eax\n"
                     "1:\tmovl (%%eax), %%ecx\n\t"   /* 8b 08: #PF, skipped */
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n) : "i"(PF_VA) : "eax", "ecx", "memory", "cc");
}

/* n even: the PTE ends as it started. */
__attribute__((noinline)) static void ptemod_loop(uint32_t n)
{
    uint32_t v = ptemod_val ^ PG_PCD;
    __asm__ volatile("1:\tmovl %1, (%2)\n\t"
                     "xorl %3, %1\n\t"
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n), "+r"(v) : "r"(ptemod_pte), "i"(PG_PCD) : "memory", "cc");
}

/* n switches, n/2 iterations of two; runs in ctx_pd[0] and ends there. */
__attribute__((noinline)) static void ctxsw_loop(uint32_t n)
{
    uint32_t k = n / 2, sum = 0;
    __asm__ volatile("1:\tmovl %[b], %%cr3\n\t"
                     "addl (%[va]), %[sum]\n\t"
                     "movl %[a], %%cr3\n\t"
                     "addl (%[va]), %[sum]\n\t"
                     "decl %[k]\n\t"
                     "jnz 1b"
                     : [k] "+r"(k), [sum] "+r"(sum)
                     : [a] "r"(ctx_pd[0]), [b] "r"(ctx_pd[1]), [va] "r"(CTX_VA)
                     : "memory", "cc");
    ctx_sum = sum;
}

/* Patch in n, n-1, ..., 1 and call each: smc_sum = n(n+1)/2. */
__attribute__((noinline)) static void smc_loop(uint32_t n)
{
    uint32_t sum = 0;
    __asm__ volatile("1:\tmovl %0, bench_smc_fn+1\n\t"
                     "call bench_smc_fn\n\t"
                     "addl %%eax, %1\n\t"
                     "decl %0\n\t"
                     "jnz 1b" : "+r"(n), "+r"(sum) : : "eax", "memory", "cc");
    smc_sum = sum;
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

/* ------------------------------------------------------------- paging setup */

/* Silent when right: the output stays "bench NAME ..." lines only. */
static void verify(const char *what, uint32_t got, uint32_t want)
{
    if (got != want)
        fail(what, "got %u, expected %u", got, want);
}

/* A fresh directory mapping the first 4 MiB identically (the image, its
 * stacks and the page-table pool lie there). */
static uint32_t *kernel_dir(void)
{
    if ((uint32_t)__image_end > PTEMOD_VA) {
        print("bench: image overlaps the pages the benchmarks use\n");
        exit(EXIT_UNEXPECTED_TRAP);
    }
    uint32_t *pd = pg_new_dir();
    pg_identity(pd, KERNEL_MAP, PG_W);
    return pd;
}

static void pgfault_prepare(void)
{
    uint32_t *pd = kernel_dir();
    pg_map(pd, PF_VA, 0, 0);            /* creates the page table ... */
    *pg_pte(pd, PF_VA) = 0;             /* ... and leaves the page not present */
    bench_pf_count = 0;
    idt_set_gate(VEC_PF, (uint32_t)bench_skip_pf, SEG_KCODE, GATE_INTR32, 0);
    paging_enable(pd, 0);
}

static void pgfault_finish(uint32_t iters)
{
    paging_disable();
    idt_set_gate(VEC_PF, idt_stub(VEC_PF), SEG_KCODE, GATE_INTR32, 0);
    verify("pgfault: #PFs taken", bench_pf_count, iters + iters / 100);
}

static void ptemod_prepare(void)
{
    uint32_t *pd = kernel_dir();
    ptemod_pte = pg_pte(pd, PTEMOD_VA);
    ptemod_val = *ptemod_pte;
    paging_enable(pd, 0);
    (void)*(volatile uint32_t *)PTEMOD_VA;      /* a TLB (and shadow) entry */
}

static void ptemod_finish(uint32_t iters)
{
    (void)iters;
    paging_disable();
    verify("ptemod: PTE at the end", *ptemod_pte, ptemod_val);
}

static uint32_t ctx_frames[2][PG_SIZE / 4] ALIGNED(4096);

static void ctxsw_prepare(void)
{
    for (int i = 0; i < 2; i++) {
        uint32_t *pd = kernel_dir();
        ctx_frames[i][0] = i ? 0x10000u : 1u;
        pg_map(pd, CTX_VA, (uint32_t)ctx_frames[i], PG_W);
        ctx_pd[i] = (uint32_t)pd;
    }
    paging_enable((uint32_t *)ctx_pd[0], 0);
}

static void ctxsw_finish(uint32_t iters)
{
    paging_disable();
    verify("ctxsw: sum of the reads", ctx_sum, iters / 2 * 0x10001u);
}

static void smc_prepare(void)
{
    paging_enable(kernel_dir(), 0);
}

static void smc_finish(uint32_t iters)
{
    paging_disable();
    verify("smc: sum of the results", smc_sum, iters * (iters + 1) / 2);
}

/* ------------------------------------------------------------- benchmarks */

enum ring { RING0, RING3 };

static const struct bench {
    const char *name;
    void (*loop)(uint32_t);
    uint32_t iters;
    enum ring ring;
    void (*prepare)(void);              /* before the warm-up (paging on) */
    void (*finish)(uint32_t iters);     /* after the timed loop (paging off) */
} benches[] = {
    { "user_loop", compute_loop, 100000, RING3, 0, 0 },
    { "kernel_loop", compute_loop, 100000, RING0, 0, 0 },
    { "syscall", syscall_loop, 10000, RING3, 0, 0 },
    { "divzero", divzero_loop, 10000, RING0, 0, 0 },
    { "callret", callret_loop, 100000, RING0, 0, 0 },
    { "cr_write", cr_write_loop, 10000, RING0, 0, 0 },
    { "in_port", in_port_loop, 10000, RING0, 0, 0 },
    { "in80", in80_loop, 10000, RING0, 0, 0 },
    { "clisti", clisti_loop, 100000, RING0, 0, 0 },
    { "pgfault", pgfault_loop, 10000, RING0, pgfault_prepare, pgfault_finish },
    { "ptemod", ptemod_loop, 10000, RING0, ptemod_prepare, ptemod_finish },
    { "ctxsw", ctxsw_loop, 10000, RING0, ctxsw_prepare, ctxsw_finish },
    { "smc", smc_loop, 10000, RING0, smc_prepare, smc_finish },
};
#define NBENCH ((int)(sizeof benches / sizeof benches[0]))

static void run(const struct bench *b)
{
    if (b->loop == syscall_loop)
        idt_set_gate(VEC_SYSCALL, (uint32_t)bench_iret, SEG_KCODE, GATE_INTR32, 3);
    if (b->loop == divzero_loop)
        idt_set_gate(VEC_DE, (uint32_t)bench_skip_div, SEG_KCODE, GATE_INTR32, 0);
    if (b->prepare)
        b->prepare();

    t_begin = t_end = 0;
    if (b->ring == RING3) {
        struct user_job job = { b->loop, b->iters };
        /* IF=1: the monitor only runs ring 3 directly with interrupts
         * enabled (all IRQs are masked at the PIC, so none arrive). */
        run_user(user_side, (uint32_t)&job, EFL_IF);
    } else {
        timed(b->loop, b->iters);
    }

    if (b->finish)
        b->finish(b->iters);
    idt_set_gate(VEC_SYSCALL, idt_stub(VEC_SYSCALL), SEG_KCODE, GATE_INTR32, 3);
    idt_set_gate(VEC_DE, idt_stub(VEC_DE), SEG_KCODE, GATE_INTR32, 0);

    printf("bench %s iters=%u cycles=", b->name, b->iters);
    print_u64(t_end - t_begin);
    print("\n");
}

/* The first word after the path on the Multiboot command line, in buf. */
int main(uint32_t magic, struct multiboot_info *mbi)
{
    char arg[32];
    guest_arg(magic, mbi, arg, sizeof arg);
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
    return failures;
}
