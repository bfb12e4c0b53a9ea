/*
 * demo -- a tiny multitasking kernel, the guest that `make run` boots.
 *
 * The kernel builds its own GDT (kernel and user code/data, one TSS), its
 * own IDT, and one page directory per process.  Four user processes share
 * one program text (the functions in section "user_text", copied into each
 * process's own frames at 0x40000000), each with a private data page at
 * 0x40100000 and a stack just below 0x40400000.  The kernel's identity map
 * of the first 4 MiB is in every address space but supervisor-only.  The
 * processes print through system calls (int $0x80: write, getpid, yield,
 * exit, uptime) and yield between steps; the kernel switches between them
 * round robin (new CR3, new TSS.esp0, new kernel stack).  Process 3 stores
 * to kernel memory: the #PF handler reports it and kills only that process.
 * At the end the kernel prints exit codes, system calls and switches.
 *
 * What a student sees in it, about the monitor (docs/02-decision.md,
 * docs/03-direct.md, docs/06-memory.md, docs/08-translation.md):
 *   - The user processes run by DIRECT EXECUTION: their loops (fib, the
 *     sieve, the checksum) are executed by the real CPU at ring 3, and the
 *     monitor does not see a single one of those instructions.
 *   - The kernel runs under BINARY TRANSLATION: it runs at (virtual) ring 0,
 *     so its code is translated; lgdt, ltr, mov to CR3, iret... become
 *     callouts into the monitor's emulator.
 *   - Every system call is an EXIT from one to the other: int $0x80 in
 *     direct execution traps to the monitor, which delivers it through the
 *     guest's IDT and continues in the translator; the kernel's iret back
 *     to ring 3 resumes direct execution.  Compare the number of system
 *     calls printed at the end with the trap statistics on COM2.
 *   - A context switch is a mov to CR3: the monitor switches shadow page
 *     tables.  The kernel page's protection against the user store in
 *     process 3 is enforced by the shadow page table, and the monitor must
 *     tell that TRUE page fault (reflected to the guest) from the HIDDEN
 *     ones that merely fill shadow entries.
 */
#include "guest.h"

#define NPROC           4
#define USER_TEXT       0x40000000u     /* program text, read-only */
#define USER_DATA       0x40100000u     /* one private read/write page */
#define USER_STACK_TOP  0x40400000u     /* two stack pages below this */
#define TEXT_PAGES      2               /* room for the user program */
#define STACK_PAGES     2
#define PROC_PAGES      (TEXT_PAGES + 1 + STACK_PAGES)
#define KSTACK_BYTES    8192

enum { SYS_WRITE_ = 1, SYS_GETPID, SYS_YIELD, SYS_EXIT_, SYS_UPTIME };

/* ==================================================================== *
 *  User side.  These functions run at ring 3 from a COPY at 0x40000000, *
 *  so they must not contain a single absolute address: no globals, no   *
 *  calls into the kernel's functions, no string literals in .rodata.    *
 *  A string comes from S("..."), the classic position-independent       *
 *  idiom: `call` pushes the address of the bytes that follow it, `pop`  *
 *  takes it.  (Verify with: readelf -r build/guests/demo.o -- section   *
 *  user_text must have no relocations.)                                 *
 * ==================================================================== */
#define USER    __attribute__((section("user_text"), noinline))
#define UINLINE static inline __attribute__((always_inline))
#define S(lit) ({ const char *s_;                                           \
                  __asm__("call 1f\n\t.asciz \"" lit "\"\n1:\tpopl %0" : "=r"(s_)); \
                  s_; })

UINLINE uint32_t usys(uint32_t n, uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b) : "memory");
    return r;
}
UINLINE void yield(void) { usys(SYS_YIELD, 0, 0); }
UINLINE void uexit(uint32_t code) { usys(SYS_EXIT_, code, 0); }

/* One output line, built on the user stack and written in one system call. */
struct line {
    uint32_t n;
    char buf[100];
};

USER static void put_c(struct line *l, char c)
{
    if (l->n < sizeof l->buf)
        l->buf[l->n++] = c;
}

USER static void put_s(struct line *l, const char *s)
{
    while (*s)
        put_c(l, *s++);
}

USER static void put_u(struct line *l, uint32_t v)
{
    char d[10];
    int k = 0;
    do {
        d[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        put_c(l, d[--k]);
}

USER static void put_x(struct line *l, uint32_t v)
{
    put_s(l, S("0x"));
    for (int sh = 28; sh >= 0; sh -= 4) {
        uint32_t d = (v >> sh) & 15;
        put_c(l, (char)(d < 10 ? '0' + d : 'a' + d - 10));
    }
}

USER static void begin(struct line *l, uint32_t pid)
{
    l->n = 0;
    put_s(l, S("[pid "));
    put_u(l, pid);
    put_s(l, S("] "));
}

USER static void send(struct line *l)
{
    put_c(l, '\n');
    usys(SYS_WRITE_, (uint32_t)l->buf, l->n);
}

USER static void say(uint32_t pid, const char *s)
{
    struct line l;
    begin(&l, pid);
    put_s(&l, s);
    send(&l);
}

/* Process: Fibonacci numbers, one per time slice. */
USER static void prog_fib(void)
{
    uint32_t pid = usys(SYS_GETPID, 0, 0);
    struct line l;
    for (uint32_t n = 10; n <= 40; n += 10) {
        uint32_t a = 0, b = 1;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t t = a + b;
            a = b;
            b = t;
        }
        begin(&l, pid);
        put_s(&l, S("fib("));
        put_u(&l, n);
        put_s(&l, S(") = "));
        put_u(&l, a);
        send(&l);
        yield();
    }
    begin(&l, pid);
    put_s(&l, S("done; uptime is "));
    put_u(&l, usys(SYS_UPTIME, 0, 0));
    put_s(&l, S(" ticks"));
    send(&l);
    uexit(0);
}

/* Process: sieve of Eratosthenes in its private data page. */
USER static void prog_primes(void)
{
    uint32_t pid = usys(SYS_GETPID, 0, 0);
    uint8_t *composite = (uint8_t *)USER_DATA;
    struct line l;
    for (uint32_t i = 0; i < 1000; i++)
        composite[i] = 0;
    for (uint32_t i = 2; i * i < 1000; i++)
        if (!composite[i])
            for (uint32_t j = i * i; j < 1000; j += i)
                composite[j] = 1;
    begin(&l, pid);
    put_s(&l, S("primes below 60:"));
    for (uint32_t i = 2; i < 60; i++)
        if (!composite[i]) {
            put_c(&l, ' ');
            put_u(&l, i);
        }
    send(&l);
    yield();
    uint32_t count = 0, last = 0;
    for (uint32_t i = 2; i < 1000; i++)
        if (!composite[i]) {
            count++;
            last = i;
        }
    begin(&l, pid);
    put_s(&l, S("there are "));
    put_u(&l, count);
    put_s(&l, S(" primes below 1000, the largest is "));
    put_u(&l, last);
    send(&l);
    yield();
    say(pid, S("exiting with the count as exit code"));
    uexit(count);
}

/* Process: tries to get at the kernel, first politely, then not. */
USER static void prog_intruder(void)
{
    uint32_t pid = usys(SYS_GETPID, 0, 0);
    struct line l;
    uint32_t r = usys(SYS_WRITE_, 0x00100000u, 16);
    begin(&l, pid);
    put_s(&l, S("write() of 16 bytes at kernel address 0x00100000 returned "));
    put_x(&l, r);
    send(&l);
    yield();
    say(pid, S("storing to kernel address 0x00100000..."));
    *(volatile uint32_t *)0x00100000u = 0xdeadbeefu;
    say(pid, S("still alive?! the kernel is not protected"));
    uexit(1);
}

/* Process: fills its data page, checksums it, and checks it again after the
 * others have run (they use the same linear address for their own data). */
USER static uint32_t checksum(const uint32_t *p, uint32_t words)
{
    uint32_t s1 = 1, s2 = 0;
    for (uint32_t i = 0; i < words; i++) {
        s1 += p[i];
        s2 += s1;
    }
    return s1 ^ (s2 << 7 | s2 >> 25);
}

USER static void prog_memsum(void)
{
    uint32_t pid = usys(SYS_GETPID, 0, 0);
    uint32_t *page = (uint32_t *)USER_DATA;
    uint32_t x = pid;
    struct line l;
    for (uint32_t i = 0; i < 1024; i++) {
        x = x * 1103515245u + 12345u;
        page[i] = x;
    }
    uint32_t sum = checksum(page, 1024);
    begin(&l, pid);
    put_s(&l, S("filled 4096 bytes at "));
    put_x(&l, USER_DATA);
    put_s(&l, S(", checksum "));
    put_x(&l, sum);
    send(&l);
    yield();
    uint32_t again = checksum(page, 1024);
    begin(&l, pid);
    put_s(&l, S("after the others ran: checksum "));
    put_x(&l, again);
    put_s(&l, again == sum ? S(" (my page is private)") : S(" (CHANGED!)"));
    send(&l);
    yield();
    begin(&l, pid);
    put_s(&l, S("checksum of my own text page: "));
    put_x(&l, checksum((const uint32_t *)USER_TEXT, 1024));
    put_s(&l, S("; uptime is "));
    put_u(&l, usys(SYS_UPTIME, 0, 0));
    put_s(&l, S(" ticks"));
    send(&l);
    uexit(again == sum ? 0 : 1);
}

/* ==================================================================== *
 *  Kernel side.                                                        *
 * ==================================================================== */
extern const uint8_t __start_user_text[], __stop_user_text[];
extern char trap_return[];      /* isr.S: pop a trap frame and iret */

static uint64_t kgdt[6] ALIGNED(8);
static uint64_t kidt[256] ALIGNED(8);
static struct tss ktss ALIGNED(16);

enum pstate { RUNNABLE = 1, EXITED, KILLED };

struct proc {
    uint32_t pid;
    const char *name;
    void (*entry)(void);
    enum pstate state;
    uint32_t exit_code;
    uint32_t *pd;               /* this process's page directory */
    struct kctx ctx;            /* kernel registers while switched out */
    uint8_t kstack[KSTACK_BYTES] ALIGNED(16);
};

static const struct { const char *name; void (*entry)(void); } programs[NPROC] = {
    { "fib", prog_fib }, { "primes", prog_primes },
    { "intruder", prog_intruder }, { "memsum", prog_memsum },
};
static struct proc procs[NPROC];
static uint8_t frames[NPROC][PROC_PAGES][PG_SIZE] ALIGNED(4096);
static uint32_t *kernel_pd;
static struct proc *cur;
static struct kctx boot_ctx;    /* main()'s context, resumed at the end */
static uint32_t nsyscalls, nswitches;

static uint64_t gate(uint32_t handler, int dpl)
{
    return (handler & 0xffff) | (uint64_t)SEG_KCODE << 16 |
           (uint64_t)(0x80 | dpl << 5 | GATE_INTR32) << 40 |
           (uint64_t)(handler >> 16) << 48;
}

static void setup_cpu(void)
{
    kgdt[1] = make_desc(0, 0xfffff, ACC_KCODE, FLG_32);     /* 0x08 */
    kgdt[2] = make_desc(0, 0xfffff, ACC_KDATA, FLG_32);     /* 0x10 */
    kgdt[3] = make_desc(0, 0xfffff, ACC_UCODE, FLG_32);     /* 0x1b */
    kgdt[4] = make_desc(0, 0xfffff, ACC_UDATA, FLG_32);     /* 0x23 */
    ktss.ss0 = SEG_KDATA;
    ktss.iomap_base = sizeof ktss;                          /* no I/O bitmap */
    kgdt[5] = make_desc((uint32_t)&ktss, sizeof ktss - 1, ACC_P | ACC_TSS32, 0);
    struct dtr g = { sizeof kgdt - 1, (uint32_t)kgdt };
    lgdt(&g);
    reload_segments();
    ltr(SEG_TSS);
    /* Every vector goes to the library's stub (which builds a struct
     * trapframe and calls our handler); only int $0x80 may come from ring 3. */
    for (int v = 0; v < 256; v++)
        kidt[v] = gate(idt_stub(v), v == VEC_SYSCALL ? 3 : 0);
    struct dtr i = { sizeof kidt - 1, (uint32_t)kidt };
    lidt(&i);
}

static void setup_kernel_paging(void)
{
    /* One page table maps the kernel's first 4 MiB, supervisor only, page 0
     * left out.  Every address space shares it. */
    uint32_t *kpt = pg_alloc();
    for (uint32_t i = 1; i < 1024; i++)
        kpt[i] = i * PG_SIZE | PG_P | PG_W;
    kernel_pd = pg_new_dir();
    kernel_pd[0] = (uint32_t)kpt | PG_P | PG_W;
    paging_enable(kernel_pd, 1);
}

static void proc_create(struct proc *p, uint32_t pid)
{
    uint32_t text_len = (uint32_t)(__stop_user_text - __start_user_text);
    uint8_t (*f)[PG_SIZE] = frames[pid - 1];
    int k = 0;

    p->pid = pid;
    p->name = programs[pid - 1].name;
    p->entry = programs[pid - 1].entry;
    p->pd = pg_new_dir();
    p->pd[0] = kernel_pd[0];
    for (uint32_t off = 0; off < text_len; off += PG_SIZE, k++) {
        uint32_t n = text_len - off < PG_SIZE ? text_len - off : PG_SIZE;
        memcpy(f[k], __start_user_text + off, n);
        pg_map(p->pd, USER_TEXT + off, (uint32_t)f[k], PG_U);           /* r/o */
    }
    k = TEXT_PAGES;
    pg_map(p->pd, USER_DATA, (uint32_t)f[k++], PG_U | PG_W);
    for (uint32_t i = 1; i <= STACK_PAGES; i++)
        pg_map(p->pd, USER_STACK_TOP - i * PG_SIZE, (uint32_t)f[k++], PG_U | PG_W);

    /* The first entry to ring 3 is the return from a trap that never
     * happened: a made-up frame on the kernel stack, popped by trap_return. */
    struct trapframe *tf = (struct trapframe *)(p->kstack + KSTACK_BYTES) - 1;
    memset(tf, 0, sizeof *tf);
    tf->ds = tf->es = tf->fs = tf->gs = SEG_UDATA;
    tf->eip = USER_TEXT + (uint32_t)((const uint8_t *)p->entry - __start_user_text);
    tf->cs = SEG_UCODE;
    tf->eflags = EFL_1 | EFL_IF;
    tf->esp = USER_STACK_TOP - 16;
    tf->ss = SEG_UDATA;
    memset(&p->ctx, 0, sizeof p->ctx);
    p->ctx.esp = (uint32_t)tf;
    p->ctx.eip = (uint32_t)trap_return;
    p->ctx.eflags = EFL_1;
    p->state = RUNNABLE;
    printf("kernel: pid %u (%s): page directory 0x%08x, entry 0x%08x, %u bytes of text\n",
           p->pid, p->name, (uint32_t)p->pd, tf->eip, text_len);
}

/* The context switch: address space, ring-0 stack for the next trap from
 * ring 3, and the kernel registers (ctx_save returns a second time, with 1,
 * when somebody switches back to us). */
static void switch_to(struct proc *next)
{
    struct kctx *save = cur ? &cur->ctx : &boot_ctx;
    nswitches++;
    cur = next;
    ktss.esp0 = (uint32_t)(next->kstack + KSTACK_BYTES);
    write_cr3((uint32_t)next->pd);
    if (ctx_save(save) == 0)
        ctx_restore(&next->ctx, 1);
}

/* Round robin: the next runnable process after the current one (possibly
 * the current one itself); when there is none, back to main(). */
static void schedule(void)
{
    int me = cur ? (int)(cur - procs) : NPROC - 1;
    for (int i = 1; i <= NPROC; i++) {
        struct proc *p = &procs[(me + i) % NPROC];
        if (p->state == RUNNABLE) {
            if (p != cur)
                switch_to(p);
            return;
        }
    }
    ctx_restore(&boot_ctx, 1);
}

/* May the kernel read len bytes at va on behalf of the current process? */
static int user_readable(uint32_t va, uint32_t len)
{
    if (len > PG_SIZE || va < USER_TEXT || va + len > USER_STACK_TOP || va + len < va)
        return 0;
    for (uint32_t pg = PG_FRAME(va); len && pg <= va + len - 1; pg += PG_SIZE) {
        uint32_t *pte = pg_pte(cur->pd, pg);
        if (!pte || (*pte & (PG_P | PG_U)) != (PG_P | PG_U))
            return 0;
    }
    return 1;
}

static void syscall(struct trapframe *f)
{
    nsyscalls++;
    switch (f->eax) {
    case SYS_WRITE_:
        if (!user_readable(f->ebx, f->ecx)) {
            f->eax = (uint32_t)-1;
            break;
        }
        for (uint32_t i = 0; i < f->ecx; i++)
            serial_putc(((const char *)f->ebx)[i]);
        f->eax = f->ecx;
        break;
    case SYS_GETPID:
        f->eax = cur->pid;
        break;
    case SYS_YIELD:
        f->eax = 0;
        schedule();
        break;
    case SYS_EXIT_:
        cur->state = EXITED;
        cur->exit_code = f->ebx;
        printf("kernel: pid %u (%s) exited with code %u\n", cur->pid, cur->name, f->ebx);
        schedule();             /* never returns */
        break;
    case SYS_UPTIME:
        f->eax = nsyscalls;     /* our clock: one tick per system call */
        break;
    default:
        f->eax = (uint32_t)-1;
        break;
    }
}

static void exception(struct trapframe *f)
{
    static const char *const names[32] = {
        [VEC_DE] = "divide error", [VEC_UD] = "invalid opcode",
        [VEC_GP] = "general protection fault", [VEC_PF] = "page fault",
    };
    if (!tf_from_user(f)) {
        print_trapframe("kernel: PANIC", f);
        exit(EXIT_UNEXPECTED_TRAP);
    }
    printf("kernel: pid %u (%s) killed: %s", cur->pid, cur->name,
           names[f->vector] ? names[f->vector] : "exception");
    if (f->vector == VEC_PF)
        printf(" at 0x%08x", read_cr2());
    printf(" err=0x%x eip=0x%08x\n", f->err, f->eip);
    cur->state = KILLED;
    cur->exit_code = (uint32_t)-1;
    schedule();                 /* never returns */
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("demo: a tiny multitasking kernel\n");
    setup_cpu();
    for (int v = 0; v < 32; v++)
        set_trap_handler(v, exception);
    set_trap_handler(VEC_SYSCALL, syscall);
    setup_kernel_paging();
    if ((uint32_t)(__stop_user_text - __start_user_text) > TEXT_PAGES * PG_SIZE) {
        print("demo: user program too large\n");
        return 2;
    }
    for (int i = 0; i < NPROC; i++)
        proc_create(&procs[i], (uint32_t)i + 1);

    print("kernel: starting the processes\n");
    cur = 0;
    schedule();                 /* comes back when all have exited */

    write_cr3((uint32_t)kernel_pd);
    print("kernel: all processes have exited\n");
    for (int i = 0; i < NPROC; i++) {
        struct proc *p = &procs[i];
        if (p->state == KILLED)
            printf("kernel:   pid %u %-8s killed\n", p->pid, p->name);
        else
            printf("kernel:   pid %u %-8s exit code %u\n", p->pid, p->name, p->exit_code);
    }
    printf("kernel: %u system calls, %u context switches\n", nsyscalls, nswitches);
    return 0;
}
