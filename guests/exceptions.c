/*
 * exceptions -- every exception class, delivered from ring 0 and from
 * ring 3, with the vector, error code, faulting EIP (and CR2 for #PF)
 * printed and checked, then resumed.  The ring-3 tests run twice: with
 * IF=1 (the monitor can use direct execution) and with IF=0 (suffix _if0:
 * the monitor must translate ring-3 code); the ring-3 #PF tests use IF=1.
 *
 * Tests:   #DE (div by 0), #DB (EFLAGS.TF single-stepping: each trapping
 *          EIP and DR6 read in the handler), #BP (int3: EIP after it), #OF
 *          (into with OF=1), #UD (ud2), #GP (selector past the GDT limit,
 *          TI=1 selector with a null LDT, system descriptor into DS,
 *          mismatched SS, from ring 3: int $N through a DPL-0 gate, hlt,
 *          mov from CR0, lidt, cli and out with IOPL=0, a DPL-0 data
 *          selector), #NP (not-present data descriptor into DS, int $N
 *          through a not-present gate), #SS (not-present writable data
 *          descriptor into SS), #PF (paging on: not-present read/write from
 *          ring 0 with PTE and with PDE missing, write to a read-only page
 *          with CR0.WP=1, and from ring 3: write to a read-only user page,
 *          read/write of a supervisor page, read of a not-present page).
 * Exercises: exception reflection into the guest IDT for faults raised in
 *          direct execution (ring 3) and in translated code (ring 0):
 *          docs/03-direct.md; precise guest EIP for faults in translated
 *          code (docs/08-translation.md); shadow page tables and guest #PF
 *          (docs/06-memory.md); the trap flag under binary translation.
 * Monitor exits expected: in direct execution (IF=1 ring-3 passes) one
 *          exception exit per test (#DE, #DB, #BP, #OF, #UD, #GP, #NP, #SS,
 *          #PF), each reflected to the guest with the error code and EIP
 *          above; in translated code (ring 0 and the _if0 pass) the same
 *          faults raised by the translator/emulator with the guest EIP;
 *          #GP exits from int $0x80 (system calls used to come back from
 *          ring 3); hidden page faults while the shadow page tables fill;
 *          COM1 port I/O callouts.
 */
#include "guest.h"

#define SEL_NP_K   SEL(6, 0)    /* DPL 0 data, not present */
#define SEL_NPSS_K SEL(7, 0)    /* DPL 0 writable data, not present */
#define SEL_NP_U   SEL(8, 3)    /* DPL 3 data, not present */
#define SEL_NPSS_U SEL(9, 3)    /* DPL 3 writable data, not present */
#define VEC_DPL0   0x40         /* present gate, DPL 0 */
#define VEC_NP_K   0x41         /* not-present gate, DPL 0 */
#define VEC_NP_U   0x42         /* not-present gate, DPL 3 */

#define NOINL __attribute__((noinline, noclone))

/* ------------------------------------------------------------ #DB */

static volatile uint32_t step_eip[16], step_dr6[16], nsteps, step_end;

static void db_handler(struct trapframe *f)
{
    uint32_t dr6 = read_dr6();
    if (nsteps < 16) {
        step_eip[nsteps] = f->eip;
        step_dr6[nsteps] = dr6;
    }
    nsteps++;
    write_dr6(0);
    if (f->eip == step_end || nsteps >= 16)
        f->eflags &= ~EFL_TF;
}

/* Single-step sequences (file-scope asm so the labels are unique).  TF is
 * set by popfl; the first trap comes after the instruction following it. */
extern char db0_s1[], db0_s2[], db0_s3[], db0_s4[], db0_s5[], db0_end[];
extern char db3_s1[], db3_s2[], db3_s3[], db3_s4[], db3_s5[], db3_end[];
void db_seq_ring0(void);
void db_seq_ring3(void);
__asm__(".text\n"
        "db_seq_ring0:\n\t"
        "pushl %ebx\n\t"
        "pushfl\n\t"
        "orl $0x100, (%esp)\n\t"
        "popfl\n"
        "db0_s1: nop\n"
        "db0_s2: movl $5, %eax\n"
        "db0_s3: addl %eax, %eax\n"
        "db0_s4: jmp db0_s5\n\t"
        "ud2\n"
        "db0_s5: leal 1(%eax), %ebx\n"
        "db0_end: popl %ebx\n\t"
        "ret\n"
        "db_seq_ring3:\n\t"
        "pushl %ebx\n\t"
        "pushfl\n\t"
        "orl $0x100, (%esp)\n\t"
        "popfl\n"
        "db3_s1: xorl %eax, %eax\n"
        "db3_s2: incl %eax\n"
        "db3_s3: shll $4, %eax\n"
        "db3_s4: jmp db3_s5\n\t"
        "ud2\n"
        "db3_s5: movl %eax, %ebx\n"
        "db3_end: popl %ebx\n\t"
        "ret\n");

static uint32_t user_db(uint32_t a)
{
    (void)a;
    db_seq_ring3();
    return read_eflags();
}

static void report_steps(const char *name, const char *const *want, int nwant)
{
    for (uint32_t i = 0; i < nsteps && i < 16; i++)
        printf("%s: step %u eip=0x%08x dr6=0x%08x\n", name, i, step_eip[i], step_dr6[i]);
    int ok = (int)nsteps == nwant;
    for (int i = 0; ok && i < nwant; i++)
        ok = step_eip[i] == (uint32_t)want[i] && (step_dr6[i] & 0x4000);
    if (ok)
        pass(name);
    else
        fail(name, "%u steps, expected %d at the labels with DR6.BS", nsteps, nwant);
}

/* ------------------------------------------------------------ ring 0 faults */

NOINL static void k_de(void)
{
    __asm__ volatile("movl $1, %%eax\n\t"
                     "xorl %%edx, %%edx\n\t"
                     "xorl %%ecx, %%ecx\n\t"
                     FAULT_ARM "1: divl %%ecx\n2:" ::: "eax", "ecx", "edx", "memory");
}

NOINL static void k_bp(void)
{
    __asm__ volatile(FAULT_ARM "1: int3\n2:" ::: "memory");
}

NOINL static void k_of(void)
{
    __asm__ volatile("movl $0x7fffffff, %%eax\n\t"
                     "addl $1, %%eax\n\t"
                     FAULT_ARM "1: into\n2:" ::: "eax", "memory", "cc");
}

NOINL static void k_ud(void)
{
    __asm__ volatile(FAULT_ARM "1: ud2\n2:" ::: "memory");
}

NOINL static void k_load_ds(uint32_t sel)
{
    __asm__ volatile(FAULT_ARM "1: movw %w0, %%ds\n2:\n\t"
                     "movw $0x10, %w0\n\t"
                     "movw %w0, %%ds" : "+r"(sel) : : "memory");
}

NOINL static void k_load_ss(uint32_t sel)
{
    __asm__ volatile(FAULT_ARM "1: movw %w0, %%ss\n2:\n\t"
                     "movw $0x10, %w0\n\t"
                     "movw %w0, %%ss" : "+r"(sel) : : "memory");
}

NOINL static void k_int_np(void)
{
    __asm__ volatile(FAULT_ARM "1: int $0x41\n2:" ::: "memory");
}

NOINL static void k_read(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: movl (%0), %0\n2:" : "+r"(va) : : "memory");
}

NOINL static void k_write(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: movl $0x5a5a5a5a, (%0)\n2:" : : "r"(va) : "memory");
}

/* ------------------------------------------------------------ ring 3 faults */

static uint32_t u_de(uint32_t a)
{
    (void)a;
    __asm__ volatile("movl $7, %%eax\n\t"
                     "xorl %%edx, %%edx\n\t"
                     "xorl %%ecx, %%ecx\n\t"
                     FAULT_ARM "1: idivl %%ecx\n2:" ::: "eax", "ecx", "edx", "memory");
    return 0;
}

static uint32_t u_bp(uint32_t a)
{
    (void)a;
    __asm__ volatile(FAULT_ARM "1: int3\n2:" ::: "memory");
    return 0;
}

static uint32_t u_of(uint32_t a)
{
    (void)a;
    __asm__ volatile("movl $0x80000000, %%eax\n\t"
                     "subl $1, %%eax\n\t"
                     FAULT_ARM "1: into\n2:" ::: "eax", "memory", "cc");
    return 0;
}

static uint32_t u_ud(uint32_t a)
{
    (void)a;
    __asm__ volatile(FAULT_ARM "1: ud2\n2:" ::: "memory");
    return 0;
}

static uint32_t u_load_ds(uint32_t sel)
{
    __asm__ volatile(FAULT_ARM "1: movw %w0, %%ds\n2:\n\t"
                     "movw $0x23, %w0\n\t"
                     "movw %w0, %%ds" : "+r"(sel) : : "memory");
    return 0;
}

static uint32_t u_load_ss(uint32_t sel)
{
    __asm__ volatile(FAULT_ARM "1: movw %w0, %%ss\n2:\n\t"
                     "movw $0x23, %w0\n\t"
                     "movw %w0, %%ss" : "+r"(sel) : : "memory");
    return 0;
}

static uint32_t u_int_dpl0(uint32_t a)
{
    (void)a;
    __asm__ volatile(FAULT_ARM "1: int $0x40\n2:" ::: "memory");
    return 0;
}

static uint32_t u_int_np(uint32_t a)
{
    (void)a;
    __asm__ volatile(FAULT_ARM "1: int $0x42\n2:" ::: "memory");
    return 0;
}

static uint32_t u_hlt(uint32_t a)
{
    (void)a;
    __asm__ volatile(FAULT_ARM "1: hlt\n2:" ::: "memory");
    return 0;
}

static uint32_t u_mov_cr0(uint32_t a)
{
    (void)a;
    __asm__ volatile(FAULT_ARM "1: movl %%cr0, %%eax\n2:" ::: "eax", "memory");
    return 0;
}

static uint32_t u_lidt(uint32_t a)
{
    static struct dtr d;
    (void)a;
    __asm__ volatile(FAULT_ARM "1: lidt %0\n2:" : : "m"(d) : "memory");
    return 0;
}

static uint32_t u_cli(uint32_t a)
{
    (void)a;
    __asm__ volatile(FAULT_ARM "1: cli\n2:" ::: "memory");
    return read_eflags();
}

static uint32_t u_out(uint32_t a)
{
    (void)a;
    __asm__ volatile("movb $0x77, %%al\n\t"
                     "movw $0x3ff, %%dx\n\t"
                     FAULT_ARM "1: outb %%al, %%dx\n2:" ::: "eax", "edx", "memory");
    return 0;
}

/* A fault that ends the ring-3 excursion instead of resuming in ring 3. */
static uint32_t u_ud_exit(uint32_t a)
{
    (void)a;
    fault_arm(FAULT_RESUME_KERNEL);
    __asm__ volatile("movl $1f, fault_site\n1: ud2" ::: "memory");
    return 0x1234;
}

static uint32_t u_read(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: movl (%0), %0\n2:" : "+r"(va) : : "memory");
    return va;
}

static uint32_t u_write(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: movl $0xa5a5a5a5, (%0)\n2:" : : "r"(va) : "memory");
    return 0;
}

/* The ring-3 tests, run with IF=1 (the monitor can execute them directly)
 * and again with IF=0 (the monitor must translate them); test names get
 * the suffix (none, or "_if0"). */
static const char *name_sfx;
static const char *N(const char *base)
{
    static char buf[4][64];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 64, "%s%s", base, name_sfx);
    return b;
}

static void ring3_tests(uint32_t uefl, const char *sfx)
{
    uint32_t efl, r;
    name_sfx = sfx;
    printf("--- ring 3, eflags=0x%08x ---\n", uefl | EFL_1);
    run_user(u_de, 0, uefl);
    check_fault(N("de_ring3"), VEC_DE, 0, fault_site, 0);

    nsteps = 0;
    step_end = (uint32_t)db3_end;
    efl = run_user(user_db, 0, uefl);
    {
        static const char *const want[] = { db3_s2, db3_s3, db3_s4, db3_s5, db3_end };
        report_steps(N("db_ring3"), want, 5);
    }
    printf("%s: user eflags after=0x%08x\n", N("db_ring3"), efl);

    run_user(u_bp, 0, uefl);
    check_fault(N("bp_ring3"), VEC_BP, 0, fault_resume, 0);
    run_user(u_of, 0, uefl);
    check_fault(N("of_ring3"), VEC_OF, 0, fault_resume, 0);
    run_user(u_ud, 0, uefl);
    check_fault(N("ud_ring3"), VEC_UD, 0, fault_site, 0);
    run_user(u_load_ds, SEL(GDT_ENTRIES, 3), uefl);
    check_fault(N("gp_ring3_ds_past_gdt_limit"), VEC_GP, SEL(GDT_ENTRIES, 0), fault_site, 0);
    run_user(u_load_ds, SEG_KDATA, uefl);
    check_fault(N("gp_ring3_ds_dpl0"), VEC_GP, SEG_KDATA, fault_site, 0);
    run_user(u_int_dpl0, 0, uefl);
    check_fault(N("gp_ring3_int_dpl0_gate"), VEC_GP, VEC_DPL0 * 8 + 2, fault_site, 0);
    run_user(u_hlt, 0, uefl);
    check_fault(N("gp_ring3_hlt"), VEC_GP, 0, fault_site, 0);
    run_user(u_mov_cr0, 0, uefl);
    check_fault(N("gp_ring3_mov_from_cr0"), VEC_GP, 0, fault_site, 0);
    run_user(u_lidt, 0, uefl);
    check_fault(N("gp_ring3_lidt"), VEC_GP, 0, fault_site, 0);
    efl = run_user(u_cli, 0, uefl | EFL_IF);
    check_fault(N("gp_ring3_cli_iopl0"), VEC_GP, 0, fault_site, 0);
    printf("%s: user eflags after=0x%08x\n", N("gp_ring3_cli_iopl0"), efl);
    check_eq(N("gp_ring3_cli_if_kept"), efl & EFL_IF, EFL_IF);
    run_user(u_out, 0, uefl);
    check_fault(N("gp_ring3_out_iopl0"), VEC_GP, 0, fault_site, 0);
    r = run_user(u_ud_exit, 0, uefl);
    printf("%s: run_user returned 0x%08x\n", N("ud_ring3_ends_excursion"), r);
    check_eq(N("ud_ring3_ends_excursion_value"), r, USER_FAULTED);
    check_fault(N("ud_ring3_ends_excursion"), VEC_UD, 0, fault_site, 0);
    run_user(u_load_ds, SEL_NP_U, uefl);
    check_fault(N("np_ring3_ds"), VEC_NP, SEL_NP_U & ~3, fault_site, 0);
    run_user(u_int_np, 0, uefl);
    check_fault(N("np_ring3_gate"), VEC_NP, VEC_NP_U * 8 + 2, fault_site, 0);
    run_user(u_load_ss, SEL_NPSS_U, uefl);
    check_fault(N("ss_ring3_not_present"), VEC_SS, SEL_NPSS_U & ~3, fault_site, 0);
}

/* ------------------------------------------------------------ main */

static uint8_t pf_pages[2][4096] ALIGNED(4096);

#define VA_NP     0x40000000u   /* PDE present, PTE not present */
#define VA_RO     0x40001000u   /* user, read-only */
#define VA_SUP    0x40002000u   /* supervisor, read/write */
#define VA_NOPDE  0x50000000u   /* PDE not present */

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("exceptions: every exception class from ring 0 and ring 3\n");
    cpu_init();

    gdt_set(6, 0, 0xfffff, ACC_S | ACC_DPL(0) | ACC_DATA_R, FLG_32);   /* P=0 */
    gdt_set(7, 0, 0xfffff, ACC_S | ACC_DPL(0) | ACC_DATA_W, FLG_32);   /* P=0 */
    gdt_set(8, 0, 0xfffff, ACC_S | ACC_DPL(3) | ACC_DATA_W, FLG_32);   /* P=0 */
    gdt_set(9, 0, 0xfffff, ACC_S | ACC_DPL(3) | ACC_DATA_W, FLG_32);   /* P=0 */
    idt_set_dpl(VEC_BP, 3);
    idt_set_dpl(VEC_OF, 3);
    idt_set_present(VEC_NP_K, 0);
    idt_set_present(VEC_NP_U, 0);
    idt_set_dpl(VEC_NP_U, 3);
    set_trap_handler(VEC_DB, db_handler);

    printf("dr6 at start=0x%08x dr7=0x%08x\n", read_dr6(), read_dr7());

    print("--- ring 0 ---\n");
    k_de();
    check_fault("de_ring0", VEC_DE, 0, fault_site, 0);

    nsteps = 0;
    step_end = (uint32_t)db0_end;
    db_seq_ring0();
    {
        static const char *const want[] = { db0_s2, db0_s3, db0_s4, db0_s5, db0_end };
        report_steps("db_ring0", want, 5);
    }
    printf("db_ring0: eflags after=0x%08x\n", read_eflags());

    k_bp();
    check_fault("bp_ring0", VEC_BP, 0, fault_resume, 0);
    k_of();
    check_fault("of_ring0", VEC_OF, 0, fault_resume, 0);
    k_ud();
    check_fault("ud_ring0", VEC_UD, 0, fault_site, 0);
    k_load_ds(SEL(GDT_ENTRIES, 0));
    check_fault("gp_ring0_ds_past_gdt_limit", VEC_GP, SEL(GDT_ENTRIES, 0), fault_site, 0);
    k_load_ds(0x000c);     /* TI=1, LDTR is null */
    check_fault("gp_ring0_ds_ldt_null", VEC_GP, 0x000c, fault_site, 0);
    k_load_ds(SEG_TSS);
    check_fault("gp_ring0_ds_system_desc", VEC_GP, SEG_TSS, fault_site, 0);
    k_load_ss(SEG_UDATA);  /* DPL 3 != CPL 0 */
    check_fault("gp_ring0_ss_dpl3", VEC_GP, SEG_UDATA & ~3, fault_site, 0);
    k_load_ss(SEG_KCODE);  /* code segment into SS */
    check_fault("gp_ring0_ss_code", VEC_GP, SEG_KCODE, fault_site, 0);
    k_load_ds(SEL_NP_K);
    check_fault("np_ring0_ds", VEC_NP, SEL_NP_K, fault_site, 0);
    k_int_np();
    check_fault("np_ring0_gate", VEC_NP, VEC_NP_K * 8 + 2, fault_site, 0);
    k_load_ss(SEL_NPSS_K);
    check_fault("ss_ring0_not_present", VEC_SS, SEL_NPSS_K, fault_site, 0);
    printf("ring0: after faults cs=0x%04x ds=0x%04x ss=0x%04x\n", READ_SEG(cs), READ_SEG(ds), READ_SEG(ss));

    ring3_tests(EFL_IF, "");
    ring3_tests(0, "_if0");

    print("--- page faults ---\n");
    uint32_t *pd = pg_new_dir();
    pg_identity(pd, 4u << 20, PG_W | PG_U);
    pg_map(pd, VA_RO, (uint32_t)pf_pages[0], PG_U);
    pg_map(pd, VA_SUP, (uint32_t)pf_pages[1], PG_W);
    pf_pages[0][0] = 0x11;
    pf_pages[1][0] = 0x22;
    paging_enable(pd, 1);
    printf("paging on: cr0=0x%08x cr3=0x%08x\n", read_cr0(), read_cr3());

    k_read(VA_NP + 0x10);
    check_fault("pf_ring0_read_not_present", VEC_PF, 0x0, fault_site, VA_NP + 0x10);
    k_write(VA_NOPDE + 0x234);
    check_fault("pf_ring0_write_no_pde", VEC_PF, 0x2, fault_site, VA_NOPDE + 0x234);
    k_write(VA_RO + 0x8);
    check_fault("pf_ring0_write_ro_wp1", VEC_PF, 0x3, fault_site, VA_RO + 0x8);
    run_user(u_write, VA_RO + 0x4, EFL_IF);
    check_fault("pf_ring3_write_ro", VEC_PF, 0x7, fault_site, VA_RO + 0x4);
    run_user(u_read, VA_SUP + 0xffc, EFL_IF);
    check_fault("pf_ring3_read_supervisor", VEC_PF, 0x5, fault_site, VA_SUP + 0xffc);
    run_user(u_write, VA_SUP, EFL_IF);
    check_fault("pf_ring3_write_supervisor", VEC_PF, 0x7, fault_site, VA_SUP);
    run_user(u_read, VA_NP + 0x100, EFL_IF);
    check_fault("pf_ring3_read_not_present", VEC_PF, 0x4, fault_site, VA_NP + 0x100);
    uint32_t v = run_user(u_read, VA_RO, EFL_IF);
    check_eq("ring3_read_ro_ok", v, 0x11);
    paging_disable();
    printf("paging off: cr0=0x%08x, faults taken=%u\n", read_cr0(), last_fault.count);

    printf("exceptions: done, %d failures\n", failures);
    return failures;
}
