/*
 * tasks -- hardware task switches.
 *
 * Tests:   the kernel (task A, the library's TSS) switches to other
 *          tasks, each with its own TSS, stack and registers:
 *          (1) JMP to task B's TSS; B records its registers and EFLAGS
 *          and jumps back to A: busy bits move, A's registers and EIP
 *          were saved in its TSS, NT stays clear;
 *          (2) CALL through a task gate in the GDT to task C: C sees NT
 *          set and A in its back link, returns with IRET, which clears
 *          C's busy bit and resumes A after the CALL;
 *          (3) INT $0x90 through a task gate in the IDT to task D, which
 *          returns with IRET; twice, so D resumes after its IRET;
 *          (4) a #GP with an error code, delivered through a task gate to
 *          task E, which finds the error code on its own stack, makes A
 *          resume past the faulting instruction and IRETs;
 *          (5) with paging on, task G's TSS has another CR3, under which
 *          one page reads differently; A's CR3 comes back from A's TSS;
 *          (6) ring 3 (run directly) calls a DPL-3 task gate to task F,
 *          a ring-0 task, which IRETs back to ring 3;
 *          (7) faults: JMP to a busy TSS, a task gate naming a data
 *          segment, a not-present TSS, a TSS whose limit is too small,
 *          IRET with NT set and a back link to an available TSS, ring 3
 *          jumping to a DPL-0 TSS; each vector and error code.
 * Exercises: the monitor's task switch (emulate.c, E:057) in translated
 *          code and, for (6), from direct execution, where the DPL-3 task
 *          gate in the shadow GDT leads to a trap (shadow.c, H:012).  The
 *          decision sends code with NT set to translation ("NT=1").
 * Monitor exits expected: callouts for the far JMP and CALL, INT and
 *          IRET; #GP for (6) in direct execution; #GP and #TS raised by
 *          the emulator for (7).
 */
#include "guest.h"

#define T_B     6
#define T_C     7
#define G_C     8               /* task gate to C */
#define T_D     9
#define T_E     10
#define T_F     11
#define G_F     12              /* DPL-3 task gate to F */
#define T_G     13
#define T_BAD   14              /* a TSS made bad in various ways for (7) */
#define G_BAD   15              /* a task gate naming a data segment */
#define VEC_TASK 0x90

extern uint64_t gdt[];
static struct tss tb, tc, td, te, tf, tg, tbad;
static uint8_t stacks[7][4096] ALIGNED(16);
volatile uint32_t seen[8], seen_eflags, err_seen, task_count[8], iret_esp;

static void tss_init(struct tss *t, void (*entry)(void), int stack)
{
    memset(t, 0, sizeof *t);
    t->eip = (uint32_t)entry;
    t->esp = (uint32_t)stacks[stack] + sizeof stacks[stack];
    t->eflags = EFL_1;
    t->cs = SEG_KCODE;
    t->ss = t->ds = t->es = t->fs = t->gs = SEG_KDATA;
    t->cr3 = read_cr3();
    t->eax = 0xa0000000 + stack;
    t->ebx = 0xb0000000 + stack;
    t->iomap_base = sizeof *t;
}

static void tss_desc(int index, struct tss *t)
{
    gdt_set(index, (uint32_t)t, sizeof *t - 1, ACC_P | ACC_TSS32, 0);
}

static void task_gate(int index, uint16_t tss_sel, int dpl)
{
    gdt[index] = (uint64_t)tss_sel << 16 | (uint64_t)(0x80 | (dpl << 5) | 0x05) << 40;
}

static unsigned busy(int index)
{
    return (unsigned)(gdt[index] >> 41) & 1;
}

/* Task bodies.  Each starts at its TSS's EIP with its own stack; the
 * first instructions record EAX and EBX as the TSS gave them, then
 * record_regs the rest. */
void record_regs(int id);
void record_regs(int id)
{
    uint32_t cs, ss, tr;
    __asm__ volatile("movl %%cs, %0\n\tmovl %%ss, %1\n\tstr %w2" : "=r"(cs), "=r"(ss), "=r"(tr));
    seen[2] = cs & 0xffff, seen[3] = ss & 0xffff, seen[4] = tr & 0xffff;
    seen_eflags = read_eflags();
    task_count[id]++;
}
#define TASK_BODY(name, id, leave)                                           \
    extern char name[];                                                      \
    __asm__(".text\n" #name ":\n\t"                                          \
            "movl %eax, seen\n\tmovl %ebx, seen+4\n\t"                      \
            "pushl $" #id "\n\tcall record_regs\n\taddl $4, %esp\n\t"       \
            leave "\n\t"                                                     \
            "jmp " #name "\n");
TASK_BODY(task_b, 1, "ljmp $0x28, $0")
TASK_BODY(task_c, 2, "iret")
TASK_BODY(task_d, 3, "iret")
TASK_BODY(task_f, 5, "iret")

/* Task E: #GP's handler.  The error code is on its stack. */
extern char task_e[], resume_after_gp[];
volatile uint32_t gp_resume;
__asm__(".text\n"
        "task_e:\n\t"
        "popl err_seen\n\t"
        "movl gp_resume, %eax\n\t"
        "movl %eax, tss+0x20\n\t"       /* A resumes past the faulting instruction */
        "incl task_count+16\n\t"
        "iret\n\t"
        "jmp task_e\n");

/* Task G: reads the test page under its own CR3. */
#define TEST_VA 0x00600000u
static uint32_t page_a[1024] ALIGNED(4096), page_g[1024] ALIGNED(4096);
volatile uint32_t g_read, g_cr3;
extern char task_g[];
__asm__(".text\n"
        "task_g:\n\t"
        "movl 0x00600000, %eax\n\tmovl %eax, g_read\n\t"
        "movl %cr3, %eax\n\tmovl %eax, g_cr3\n\t"
        "incl task_count+24\n\t"
        "ljmp $0x28, $0\n\t"
        "jmp task_g\n");

static void print_seen(const char *what, int id)
{
    printf("%s: task ran %u times; eax=%08x ebx=%08x cs=%04x ss=%04x tr=%04x eflags=%08x\n", what,
           task_count[id], seen[0], seen[1], seen[2], seen[3], seen[4], seen_eflags);
}

static void part_jmp(void)
{
    tss_init(&tb, (void (*)(void))task_b, 0);
    tss_desc(T_B, &tb);
    uint32_t before_tr = str();
    __asm__ volatile("movl $0x11111111, %%esi\n\tljmp $0x30, $0" : : : "esi", "memory");
    print_seen("jmp to B", 1);
    printf("jmp to B: back in A: tr=%04x (was %04x), busy A=%u B=%u, eflags=%08x, A's TSS eip saved=%s esi=%08x\n",
           str(), before_tr, busy(5), busy(T_B), read_eflags(),
           tss.eip ? "yes" : "no", tss.esi);
    check_eq("jmp_b_ran", task_count[1], 1);
    check_eq("jmp_b_regs", seen[0] == 0xa0000000 && seen[1] == 0xb0000000, 1);
    check_eq("jmp_b_busy", busy(5) == 1 && busy(T_B) == 0, 1);
    /* Again: B resumes after its LJMP, runs its body once more. */
    __asm__ volatile("ljmp $0x30, $0" : : : "memory");
    check_eq("jmp_b_again", task_count[1], 2);
    printf("jmp to B again: B's saved esp=%08x eip is after its ljmp: %s\n", tb.esp,
           tb.eip > (uint32_t)task_b ? "yes" : "no");
}

static void part_call(void)
{
    tss_init(&tc, (void (*)(void))task_c, 1);
    tss_desc(T_C, &tc);
    task_gate(G_C, SEL(T_C, 0), 0);
    uint32_t r;
    __asm__ volatile("movl $0x22222222, %%eax\n\tlcall $0x40, $0\n\tmovl %%eax, %0" : "=r"(r) : : "eax", "memory");
    print_seen("call through gate to C", 2);
    printf("call to C: back in A: eax=%08x tr=%04x busy A=%u C=%u eflags=%08x; C's link=%04x NT in C=%u\n", r,
           str(), busy(5), busy(T_C), read_eflags(), tc.link, (seen_eflags >> 14) & 1);
    check_eq("call_c_nt", (seen_eflags >> 14) & 1, 1);
    check_eq("call_c_link", tc.link, SEG_TSS);
    check_eq("call_c_busy_after_iret", busy(T_C), 0);
    check_eq("call_c_eax_kept", r, 0x22222222);
    check_eq("call_a_nt_clear", (read_eflags() >> 14) & 1, 0);
}

static void part_int(void)
{
    tss_init(&td, (void (*)(void))task_d, 2);
    tss_desc(T_D, &td);
    idt[VEC_TASK] = (uint64_t)SEL(T_D, 0) << 16 | (uint64_t)(0x80 | 0x05) << 40;
    for (int i = 0; i < 2; i++) {
        __asm__ volatile("int $0x90" : : : "memory");
        print_seen("int through task gate to D", 3);
    }
    printf("int to D: D's saved eip after its iret: %s, td.link=%04x\n",
           td.eip > (uint32_t)task_d ? "yes" : "no", td.link);
    check_eq("int_d_twice", task_count[3], 2);
}

static void part_exception(void)
{
    tss_init(&te, (void (*)(void))task_e, 3);
    tss_desc(T_E, &te);
    uint64_t saved = idt[VEC_GP];
    idt[VEC_GP] = (uint64_t)SEL(T_E, 0) << 16 | (uint64_t)(0x80 | 0x05) << 40;
    gp_resume = (uint32_t)resume_after_gp;
    __asm__ volatile("movw $0x1234, %%ax\n\t"
                     "movw %%ax, %%ds\n\t"           /* #GP(0x1234): past the GDT's limit */
                     ".globl resume_after_gp\n"
                     "resume_after_gp:\n\t" : : : "eax", "memory");
    idt[VEC_GP] = saved;
    printf("#GP through task gate to E: ran %u times, error code %04x, ds=%04x\n", task_count[4], err_seen,
           READ_SEG(ds));
    check_eq("gp_task_err", err_seen, 0x1234);
}

static void part_cr3(void)
{
    uint32_t *pd_a = pg_new_dir(), *pd_g = pg_new_dir();
    pg_identity(pd_a, 8u << 20, PG_W | PG_U);
    pg_identity(pd_g, 8u << 20, PG_W | PG_U);
    page_a[0] = 0xaaaa6666;
    page_g[0] = 0x66666666;
    pg_map(pd_a, TEST_VA, (uint32_t)page_a, PG_W);
    pg_map(pd_g, TEST_VA, (uint32_t)page_g, PG_W);
    paging_enable(pd_a, 1);
    tss.cr3 = (uint32_t)pd_a;               /* the CPU never saves CR3 */
    tss_init(&tg, (void (*)(void))task_g, 4);
    tg.cr3 = (uint32_t)pd_g;
    tss_desc(T_G, &tg);
    __asm__ volatile("ljmp $0x68, $0" : : : "memory");
    uint32_t mine = *(volatile uint32_t *)TEST_VA;
    printf("cr3: G read %08x with cr3 %s; A reads %08x with cr3 %s\n", g_read,
           g_cr3 == (uint32_t)pd_g ? "G's" : "?", mine, read_cr3() == (uint32_t)pd_a ? "A's" : "?");
    check_eq("cr3_g", g_read, 0x66666666);
    check_eq("cr3_a", mine, 0xaaaa6666);
    paging_disable();
    tss.cr3 = 0;
}

static uint32_t user_call_f(uint32_t arg)
{
    (void)arg;
    __asm__ volatile("lcall $0x63, $0" : : : "memory");    /* G_F, RPL 3 */
    return 0x33;
}

static void part_user(void)
{
    tss_init(&tf, (void (*)(void))task_f, 5);
    tss_desc(T_F, &tf);
    task_gate(G_F, SEL(T_F, 0), 3);
    for (int i = 0; i < 2; i++) {
        uint32_t r = run_user(user_call_f, 0, EFL_IF);
        print_seen("ring 3 through DPL-3 task gate to F", 5);
        printf("ring 3 to F: user returned %x; F's link=%04x; A's saved cs=%04x ss=%04x\n", r, tf.link,
               tss.cs & 0xffff, tss.ss & 0xffff);
    }
    check_eq("user_f_twice", task_count[5], 2);
}

static uint32_t user_jmp(uint32_t sel)
{
    volatile struct { uint32_t off; uint16_t sel; } __attribute__((packed)) fp = { 0, (uint16_t)sel };
    __asm__ volatile(FAULT_ARM "1: ljmp *%0\n2:" : : "m"(fp) : "memory");
    fault_armed = 0;
    return 0;
}

static void try_jmp(const char *name, uint16_t sel)
{
    uint32_t before = last_fault.count;
    volatile struct { uint32_t off; uint16_t sel; } __attribute__((packed)) fp = { 0, sel };
    __asm__ volatile(FAULT_ARM "1: ljmp *%0\n2:" : : "m"(fp) : "memory");
    fault_armed = 0;
    if (last_fault.count == before)
        printf("%s: no fault\n", name);
    else
        printf("%s: vector=%u err=%04x\n", name, last_fault.vector, last_fault.err);
}

static void part_faults(void)
{
    try_jmp("jmp to the busy TSS of A", SEG_TSS);
    gdt[G_BAD] = (uint64_t)SEG_KDATA << 16 | (uint64_t)(0x80 | 0x05) << 40;
    try_jmp("task gate to a data segment", SEL(G_BAD, 0));
    tss_init(&tbad, (void (*)(void))task_b, 6);
    gdt_set(T_BAD, (uint32_t)&tbad, sizeof tbad - 1, ACC_TSS32, 0);
    try_jmp("not-present TSS", SEL(T_BAD, 0));
    gdt_set(T_BAD, (uint32_t)&tbad, 0x40, ACC_P | ACC_TSS32, 0);
    try_jmp("TSS limit 0x40", SEL(T_BAD, 0));
    gdt_set(T_BAD, (uint32_t)&tbad, sizeof tbad - 1, ACC_P | ACC_TSS32, 0);
    /* IRET with NT set, back link to an available TSS: #TS(link). */
    tss.link = SEL(T_BAD, 0);
    uint32_t before = last_fault.count;
    __asm__ volatile("movl %%esp, iret_esp\n\t" FAULT_ARM
                     "pushfl\n\torl $0x4000, (%%esp)\n\tpopfl\n\t"
                     "pushfl\n\tpushl %%cs\n\tpushl $2f\n"
                     "1: iret\n"
                     "2:\tmovl iret_esp, %%esp\n\t"
                     "pushfl\n\tandl $~0x4000, (%%esp)\n\tpopfl" : : : "memory");
    fault_armed = 0;
    printf("iret with NT to an available TSS: %s vector=%u err=%04x\n",
           last_fault.count == before ? "no fault" : "fault", last_fault.vector, last_fault.err);
    tss.link = 0;
    before = last_fault.count;
    run_user(user_jmp, SEG_TSS | 3, EFL_IF);
    printf("ring 3 jmp to the DPL-0 TSS: %s vector=%u err=%04x\n",
           last_fault.count == before ? "no fault" : "fault", last_fault.vector, last_fault.err);
    check_eq("faults_counted", last_fault.count, 6);
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("tasks: hardware task switches\n");
    cpu_init();
    last_fault.count = 0;
    part_jmp();
    part_call();
    part_int();
    part_exception();
    part_cr3();
    part_user();
    part_faults();
    printf("tasks: done, %d failures\n", failures);
    return failures;
}
