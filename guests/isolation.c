/*
 * isolation -- a guest that attacks the monitor: every way it can think of
 * to reach the top 4 MiB of the linear address space (0xffc00000 and up,
 * where the monitor lives), the monitor's own GDT selectors (0xff80-0xfff8),
 * its callout and IRQ vectors, and the host-physical range the monitor is
 * loaded at.  On bare QEMU there is no monitor, so each attack meets only
 * the guest's own machine: a fault with its vector, error code and CR2, or
 * the guest's own memory.  The output must be the same under the monitor,
 * and the monitor's integrity line must say "ok".
 *
 * Tests:   (a1) the monitor's range with no guest mapping there.  Paging
 *          off: reads and writes at 0xffc00000.. (absent physical memory:
 *          zeros, writes vanish), and the top of the BIOS ROM (printed, not
 *          checked).  Paging on, with PDE 1023 absent and with an empty page
 *          table: dword/byte reads and writes, a dword straddling
 *          0xffbffffe, a dword wrapping at 0xfffffffe, and instruction
 *          fetches (call rel32 to 0xffc01000, jmp rel32 to 0xfffff000, call
 *          and jmp through a register, ret, iret, ljmp, an instruction
 *          straddling 0xffc00000, code falling through into 0xffc00000),
 *          from ring 0 (translated), ring 3 with IF=1 (direct) and ring 3
 *          with IF=0 (translated): always #PF with the architectural error
 *          code and CR2.
 *          (a2) segments and odd instructions: data segments based at
 *          0xffc00000 and 0x80000000 with offsets into the region and
 *          offsets that wrap back to guest memory, expand-down segments,
 *          %ss/%cs overrides, rep movs/stos/lods/cmps/scas (DF=0 and DF=1,
 *          starting below the region and running into it, wrapping at
 *          4 GiB), xlat, bt/bts/btr/btw with huge register bit offsets,
 *          ins/outs, push/pop/call/enter/pushal with ESP at 0xffc00004 and
 *          at 2 (wrapping down), with guest pages mapped at 0xffc00000 and
 *          0xfffff000 the same stack games from ring 0, and far jumps into
 *          code segments based at 0xffc00000 and 0x80000000.
 *          (a3) the monitor's selectors 0xff80-0xfff8 with RPL 0-3 (and a
 *          TI=1 row) loaded into DS/ES/FS/GS/SS and used as far jmp/call
 *          targets from ring 0 and ring 3, with the guest GDT limit 0x7f
 *          (all #GP), 0xffff (the guest's own descriptors at 8176-8191:
 *          data, code, conforming, read-only, execute-only, not present,
 *          system, expand-down, region-based) and 0xff87; an iret to ring 3
 *          with CS=0xff9b SS=0xffab.
 *          (a4) int $0x20-$0x2f and $0x40 through DPL-3, DPL-0, not-present
 *          gates and past the IDT limit; gates whose selector is a monitor
 *          selector (small GDT: #GP; big GDT: the guest's descriptor);
 *          int $1 and int $5, and BOUND (#BR), which the monitor's software
 *          truncation checks use.
 *          (a5) the guest's IDT, GDT and TSS at 0xffc00000 and up: mapped
 *          copies (delivery through the copy, rewritten through the
 *          region), an IDT and a GDT half on an unmapped region page (#PF
 *          on the descriptor read, #PF -> #DF), an IDT and a TSS that wrap
 *          at 4 GiB, TSS.esp0 in the region.
 *          (a6) guest page tables that map guest-physical 0x00400000-
 *          0x007fffff (where the monitor sits in host memory) with 4 KiB and
 *          4 MiB pages, including a 4 MiB page at 0xffc00000, code run from
 *          there, a recursive page directory in slot 1023, guest-physical
 *          pages past the end of RAM, 0xffc00000 and 0xfffff000 (the last
 *          one is the BIOS ROM on bare QEMU).
 *          (a7) ring 0 and ring 3 read, and read-and-write-back, one dword
 *          in each of the 1024 pages of the region (no guest mapping: 1024
 *          #PF); ring-3 lret/iret with ESP at 0xffc00000 and 0xfffffff8.
 *          QEMU makes the stack accesses of far call, far return and iret
 *          with supervisor rights even at CPL 3 (error code without U/S);
 *          bare QEMU is the reference.
 *          (a8) ring-3 lret and lcall with ESP = GDT base + 0xff80 / 0xff98
 *          and a GDT of 8192 entries: they read and write the guest's own
 *          entries 8176 and 8178, where the monitor keeps its own
 *          descriptors in its GDT.
 *          `-append aN` runs sub-test N alone (no argument: all).
 * Exercises: software truncation checks and their callouts (bt.c), relocated
 *          execution (H:050), page-fault reflection from direct execution,
 *          the emulator's descriptor loads, far transfers and interrupt
 *          delivery against the guest's tables (emulate.c, segtrack.c,
 *          shadow.c), the double-fault rules, shadow page tables (mmu.c).
 * Monitor exits expected: many: #PF in the region, #GP from ring 3 for
 *          int n and selector loads, callouts for string instructions, I/O,
 *          descriptor-table loads; relocated steps; traced writes.
 */
#include "guest.h"

#define NOINL __attribute__((noinline, noclone))

/* ------------------------------------------------------------------------
 * Catching exceptions.  Every vector below 32 goes to catch_trap.  A probe
 * arms it in the asm statement that holds the instruction under test:
 * label 1 is the instruction (c_site), label 2 where to resume (c_resume).
 * The resume CS is the flat code segment of the ring that faulted, so a
 * fault taken with a strange CS comes back to normal code.  With c_kexit
 * set, a fault from ring 3 ends the ring-3 excursion instead.
 * ------------------------------------------------------------------------ */
struct outcome {
    uint32_t faulted, vec, err, eip, cs, cr2, esp, frame;
};
volatile struct outcome c_out;
volatile uint32_t c_armed, c_site, c_site2, c_resume, c_kexit, c_sp, c_ss;

#define ARM "movl $0, c_out\n\t" "movl $1f, c_site\n\t" "movl $0, c_site2\n\t" "movl $2f, c_resume\n\t" \
            "movl $1, c_armed\n\t"

/* Inputs and outputs of the probes (globals: ring 3 reads and writes them). */
volatile uint32_t g_val, g_sel, g_off, g_dsel, g_cs, g_esp, g_ss, g_fjcall, g_jmpto;
volatile uint32_t g_esi, g_edi, g_ecx, g_eax, g_ebx, g_df;
volatile uint32_t o_val, o_cs, o_pcs, o_esi, o_edi, o_ecx, o_esp;
struct farptr {
    uint32_t off;
    uint16_t sel;
} __attribute__((packed));
volatile struct farptr fp_go, fp_back;

static const char *const vnames[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
    "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "r15",
    "#MF", "#AC", "#MC", "#XM", "r20", "r21", "r22", "r23",
    "r24", "r25", "r26", "r27", "r28", "r29", "r30", "r31",
};

static const char *vshort(uint32_t v)
{
    static const char *const s[32] = {
        "DE", "DB", "NMI", "BP", "OF", "BR", "UD", "NM", "DF", "CSO", "TS", "NP", "SS", "GP", "PF", "r15",
        "MF", "AC", "MC", "XM", "r20", "r21", "r22", "r23", "r24", "r25", "r26", "r27", "r28", "r29", "r30", "r31",
    };
    return v < 32 ? s[v] : "??";
}

static void catch_trap(struct trapframe *f)
{
    if (!c_armed) {
        print_trapframe("UNEXPECTED trap", f);
        printf("UNEXPECTED trap: cr2=0x%08x\n", read_cr2());
        exit(EXIT_UNEXPECTED_TRAP);
    }
    c_armed = 0;
    c_out.vec = f->vector;
    c_out.err = f->err;
    c_out.eip = f->eip;
    c_out.cs = f->cs;
    c_out.cr2 = read_cr2();
    c_out.esp = tf_from_user(f) ? f->esp : (uint32_t)&f->esp;
    c_out.frame = (uint32_t)f;
    c_out.faulted = 1;
    if (c_kexit && (f->cs & 3) == 3)
        user_return(f, USER_FAULTED);
    f->eip = c_resume;
    f->cs = (f->cs & 3) == 3 ? SEG_UCODE : SEG_KCODE;
}

/* Software interrupts >= 32 land here: recorded, then back after the int. */
volatile uint32_t i_hits, i_vec, i_cs, i_hcs, i_frame, i_tag;
static void int_rec(struct trapframe *f)
{
    i_hits++;
    i_vec = f->vector;
    i_cs = f->cs;
    i_hcs = READ_SEG(cs);
    i_frame = (uint32_t)f;
    i_tag = 0xa;
}

/* ------------------------------------------------------------------------
 * Rings.  R0: ring 0 (translated under the monitor); R3: ring 3 with IF=1
 * (direct execution); R3T: ring 3 with IF=0 (translated).
 * ------------------------------------------------------------------------ */
enum { R0, R3, R3T, NRINGS };
static const char *const rname[NRINGS] = { "r0", "r3", "r3if0" };
static uint32_t ring_extra_eflags;      /* e.g. IOPL 3 for the I/O probes */

typedef uint32_t (*probe_t)(uint32_t);

static uint32_t run_in(int ring, probe_t p, uint32_t arg)
{
    uint32_t v;
    c_armed = 0;
    g_dsel = ring == R0 ? SEG_KDATA : SEG_UDATA;
    g_cs = ring == R0 ? SEG_KCODE : SEG_UCODE;
    if (ring == R0)
        v = p(arg);
    else
        v = run_user(p, arg, (ring == R3 ? EFL_IF : 0) | ring_extra_eflags);
    c_armed = 0;
    return v;
}

static uint32_t perr(int ring, uint32_t bits)
{
    return bits | (ring == R0 ? 0 : 4);
}

/* ------------------------------------------------------------------------
 * Reporting.
 * ------------------------------------------------------------------------ */
#define NOFAULT 0xffu
#define ANY     0xfffffffeu

static char namebuf[4][128];
static int namenext;
static const char *nm(const char *fmt, ...) PRINTF(1, 2);
static const char *nm(const char *fmt, ...)
{
    char *b = namebuf[namenext++ & 3];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof namebuf[0], fmt, ap);
    va_end(ap);
    return b;
}

static void outcome_str(char *b, size_t n)
{
    if (!c_out.faulted) {
        snprintf(b, n, "no fault");
        return;
    }
    char eip[24];
    if (c_out.eip == c_site)
        snprintf(eip, sizeof eip, "site");
    else if (c_site2 && c_out.eip == c_site2)
        snprintf(eip, sizeof eip, "site2");
    else
        snprintf(eip, sizeof eip, "0x%08x", c_out.eip);
    if (c_out.vec == VEC_PF)
        snprintf(b, n, "#PF err=0x%x eip=%s cr2=0x%08x", c_out.err, eip, c_out.cr2);
    else if (c_out.vec == VEC_DF)   /* saved CS:EIP undefined for #DF */
        snprintf(b, n, "#DF err=0x%x cr2=0x%08x from ring %u", c_out.err, c_out.cr2, c_out.cs & 3);
    else if (c_out.vec < 32)
        snprintf(b, n, "%s err=0x%04x eip=%s", vnames[c_out.vec], c_out.err, eip);
    else
        snprintf(b, n, "vector %u", c_out.vec);
}

/* Print "name: outcome" and check it.  vec NOFAULT: no fault expected.
 * eip ANY: not checked (site means c_site).  cr2 checked for #PF/#DF. */
#define SITE 0xfffffffdu
#define SITE2 0xfffffffcu
static int expect(const char *name, uint32_t vec, uint32_t err, uint32_t eip, uint32_t cr2)
{
    char o[96];
    outcome_str(o, sizeof o);
    printf("%s: %s\n", name, o);
    if (vec == NOFAULT) {
        if (c_out.faulted) {
            fail(name, "unexpected fault");
            return 0;
        }
        pass(name);
        return 1;
    }
    if (!c_out.faulted) {
        fail(name, "no fault, expected vector %u", vec);
        return 0;
    }
    if (eip == SITE)
        eip = c_site;
    else if (eip == SITE2)
        eip = c_site2;
    if (c_out.vec != vec || c_out.err != err || (eip != ANY && c_out.eip != eip) ||
        ((vec == VEC_PF || vec == VEC_DF) && cr2 != ANY && c_out.cr2 != cr2)) {
        fail(name, "expected vector %u err 0x%x cr2 0x%08x", vec, err, cr2);
        return 0;
    }
    pass(name);
    return 1;
}

static int expect_pf(const char *name, uint32_t err, uint32_t eip, uint32_t cr2)
{
    return expect(name, VEC_PF, err, eip, cr2);
}

/* No fault and a value. */
static int expect_val(const char *name, uint32_t got, uint32_t want)
{
    char o[96];
    outcome_str(o, sizeof o);
    printf("%s: %s value=0x%08x\n", name, o, got);
    if (c_out.faulted) {
        fail(name, "unexpected fault");
        return 0;
    }
    return check_eq(name, got, want);
}

/* ------------------------------------------------------------------------
 * Memory: frames, paging.
 * ------------------------------------------------------------------------ */
enum { F_BELOW, F_TOP, F_LAST, F_IDT, F_GDT, F_TSS, F_PAT, F_PAT2, F_CODE, NF };
static uint8_t frames[NF][4096] ALIGNED(4096);
#define FRAME(i) ((uint32_t)frames[i])
#define ID32(f, off) (*(volatile uint32_t *)(FRAME(f) + (off)))
#define ID8(f, off) (*(volatile uint8_t *)(FRAME(f) + (off)))
#define PAT(i) ((uint32_t)&((volatile uint32_t *)frames[F_PAT])[i])
/* Physical (identity-mapped) addresses near 0: hidden from the compiler,
 * which would otherwise treat them as null-pointer dereferences. */
static inline volatile uint32_t *phys(uint32_t a)
{
    __asm__("" : "+r"(a));
    return (volatile uint32_t *)a;
}
#define PHYS32(a) (*phys(a))
#define VEC_BR 5

static uint32_t *pd, *pt_below, *pt_top, *pt_a6;
static uint32_t pte_idx(uint32_t va) { return (va >> 12) & 0x3ff; }
static void flush(void) { write_cr3(read_cr3()); }

static void fill_frames(void)
{
    for (int f = 0; f < NF; f++)
        for (int i = 0; i < 1024; i++)
            ((uint32_t *)frames[f])[i] = 0x01000000u * (uint32_t)(f + 1) + 0x00010000u + (uint32_t)i * 4;
}

/* Low physical page 0 (identity mapped): a few known words. */
static void fill_page0(void)
{
    for (uint32_t a = 0; a < 0x40; a += 4)
        PHYS32(a) = 0x0f0f0000u + a;
}

/* The top: PDE 1022 maps F_BELOW at 0xffbff000 (user rw); PDE 1023 per test. */
static void top_none(void)
{
    pd[1023] = 0;
    for (int i = 0; i < 1024; i++)
        pt_top[i] = 0;
    flush();
}

static void top_empty(void)
{
    for (int i = 0; i < 1024; i++)
        pt_top[i] = 0;
    pd[1023] = (uint32_t)pt_top | PG_P | PG_W | PG_U;
    flush();
}

static void top_map(uint32_t va, uint32_t frame, uint32_t fl)
{
    pt_top[pte_idx(va)] = frame | fl | PG_P;
    invlpg(va);
}

static void paging_on(void)
{
    fill_frames();
    top_none();
    pt_below[pte_idx(0xffbff000)] = FRAME(F_BELOW) | PG_P | PG_W | PG_U;
    pd[1022] = (uint32_t)pt_below | PG_P | PG_W | PG_U;
    paging_enable(pd, 1);
    flush();
}

/* ------------------------------------------------------------------------
 * GDT slots 6..15 for a2.
 * ------------------------------------------------------------------------ */
#define S_TOP   SEL(6, 3)       /* data rw DPL3, base 0xffc00000 */
#define S_HIGH  SEL(7, 3)       /* data rw DPL3, base 0x80000000 */
#define S_ED    SEL(8, 3)       /* data rw expand-down DPL3, base 0, offsets >= 0x10000 */
#define S_EDHI  SEL(9, 3)       /* the same, base 0x40000000 */
#define S_KCTOP SEL(10, 0)      /* code DPL0, base 0xffc00000 */
#define S_KCHI  SEL(11, 0)      /* code DPL0, base 0x80000000 */
#define S_UCTOP SEL(12, 3)      /* code DPL3, base 0xffc00000 */
#define S_UCHI  SEL(13, 3)      /* code DPL3, base 0x80000000 */
#define S_KSTOP SEL(14, 0)      /* data rw DPL0, base 0xffc00000 (ring-0 SS) */
#define S_KSHI  SEL(15, 0)      /* data rw DPL0, base 0x80000000 (ring-0 SS) */
#define ACC_ED  0x04            /* data: expand-down */

static void a2_gdt(void)
{
    gdt_set(6, 0xffc00000u, 0xfffff, ACC_UDATA | ACC_ACCESSED, FLG_32);
    gdt_set(7, 0x80000000u, 0xfffff, ACC_UDATA | ACC_ACCESSED, FLG_32);
    gdt_set(8, 0, 0xf, ACC_UDATA | ACC_ED | ACC_ACCESSED, FLG_32);
    gdt_set(9, 0x40000000u, 0xf, ACC_UDATA | ACC_ED | ACC_ACCESSED, FLG_32);
    gdt_set(10, 0xffc00000u, 0xfffff, ACC_KCODE | ACC_ACCESSED, FLG_32);
    gdt_set(11, 0x80000000u, 0xfffff, ACC_KCODE | ACC_ACCESSED, FLG_32);
    gdt_set(12, 0xffc00000u, 0xfffff, ACC_UCODE | ACC_ACCESSED, FLG_32);
    gdt_set(13, 0x80000000u, 0xfffff, ACC_UCODE | ACC_ACCESSED, FLG_32);
    gdt_set(14, 0xffc00000u, 0xfffff, ACC_KDATA | ACC_ACCESSED, FLG_32);
    gdt_set(15, 0x80000000u, 0xfffff, ACC_KDATA | ACC_ACCESSED, FLG_32);
}

static void spare_clear(void)
{
    for (int i = GDT_FIRST_SPARE; i < GDT_ENTRIES; i++)
        gdt[i] = 0;
}

/* ------------------------------------------------------------------------
 * Probes: plain accesses and control transfers.
 * ------------------------------------------------------------------------ */
NOINL static uint32_t p_rd32(uint32_t a)
{
    uint32_t v = 0xcccccccc;
    __asm__ volatile(ARM "1: movl (%1), %0\n2:" : "+r"(v) : "r"(a) : "memory");
    return v;
}

NOINL static uint32_t p_rd8(uint32_t a)
{
    uint32_t v = 0xcccccccc;
    __asm__ volatile(ARM "1: movb (%1), %b0\n2:" : "+q"(v) : "r"(a) : "memory");
    return v;
}

NOINL static uint32_t p_wr32(uint32_t a)
{
    __asm__ volatile(ARM "1: movl %1, (%0)\n2:" : : "r"(a), "r"(g_val) : "memory");
    return 0;
}

NOINL static uint32_t p_call_rel(uint32_t a)
{
    (void)a;
    __asm__ volatile("movl %%esp, c_sp\n\t" ARM "1: call 0xffc01000\n2:\n\tmovl c_sp, %%esp"
                     : : : "memory", "eax", "ecx", "edx");
    return 0;
}

NOINL static uint32_t p_jmp_rel(uint32_t a)
{
    (void)a;
    __asm__ volatile("movl %%esp, c_sp\n\t" ARM "1: jmp 0xfffff000\n2:\n\tmovl c_sp, %%esp"
                     : : : "memory", "eax", "ecx", "edx");
    return 0;
}

NOINL static uint32_t p_call_ind(uint32_t a)
{
    __asm__ volatile("movl %%esp, c_sp\n\t" ARM "1: call *%0\n2:\n\tmovl c_sp, %%esp"
                     : "+a"(a) : : "memory", "ecx", "edx");
    return 0;
}

NOINL static uint32_t p_jmp_ind(uint32_t a)
{
    __asm__ volatile("movl %%esp, c_sp\n\t" ARM "1: jmp *%0\n2:\n\tmovl c_sp, %%esp"
                     : "+a"(a) : : "memory", "ecx", "edx");
    return 0;
}

NOINL static uint32_t p_ret_to(uint32_t a)
{
    __asm__ volatile("movl %%esp, c_sp\n\t" ARM "pushl %0\n1: ret\n2:\n\tmovl c_sp, %%esp"
                     : "+a"(a) : : "memory", "ecx", "edx");
    return 0;
}

NOINL static uint32_t p_iret_to(uint32_t a)
{
    __asm__ volatile("movl %%esp, c_sp\n\t" ARM
                     "pushfl\n\tpushl g_cs\n\tpushl %0\n1: iret\n2:\n\tmovl c_sp, %%esp"
                     : "+a"(a) : : "memory", "ecx", "edx", "cc");
    return 0;
}

NOINL static uint32_t p_ljmp_to(uint32_t a)
{
    fp_go.off = a;
    fp_go.sel = (uint16_t)g_cs;
    __asm__ volatile("movl %%esp, c_sp\n\t" ARM "1: ljmp *fp_go\n2:\n\tmovl c_sp, %%esp"
                     : : : "memory", "eax", "ecx", "edx");
    return 0;
}

NOINL static uint32_t p_ud(uint32_t a)
{
    (void)a;
    __asm__ volatile(ARM "1: ud2\n2:" ::: "memory");
    return 0;
}

/* ------------------------------------------------------------------------
 * a1: the monitor's range, no guest mapping.
 * ------------------------------------------------------------------------ */
static void a1_off(void)
{
    static const uint32_t addrs[] = { 0xffc00000u, 0xffc01000u, 0xffe00000u, 0xfffbfffcu };
    print("a1 paging off\n");
    for (int r = 0; r < NRINGS; r++) {
        for (unsigned i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
            uint32_t v = run_in(r, p_rd32, addrs[i]);
            expect_val(nm("a1.off.%s.read.%08x", rname[r], addrs[i]), v, 0);
        }
        g_val = 0x5a5aa5a5u;
        run_in(r, p_wr32, 0xffc01000u);
        expect(nm("a1.off.%s.write.ffc01000", rname[r]), NOFAULT, 0, 0, 0);
        uint32_t v = run_in(r, p_rd32, 0xffc01000u);
        expect_val(nm("a1.off.%s.readback.ffc01000", rname[r]), v, 0);
        run_in(r, p_wr32, 0xfffbfffcu);
        v = run_in(r, p_rd32, 0xfffbfffcu);
        expect_val(nm("a1.off.%s.readback.fffbfffc", rname[r]), v, 0);
    }
    /* The BIOS ROM at the top of the physical address space: printed only. */
    uint32_t a = run_in(R0, p_rd32, 0xfffffff0u);
    uint32_t b = run_in(R0, p_rd32, 0xfffc0000u);
    printf("a1.off.r0 rom: [0xfffffff0]=0x%08x [0xfffc0000]=0x%08x (not checked)\n", a, b);
}

static void a1_on(const char *cfg)
{
    for (int r = 0; r < NRINGS; r++) {
        const char *rn = rname[r];
        static const uint32_t rd[] = { 0xffc00000u, 0xffc01000u, 0xffe00000u, 0xfffff000u, 0xfffffffcu };
        for (unsigned i = 0; i < sizeof rd / sizeof rd[0]; i++) {
            run_in(r, p_rd32, rd[i]);
            expect_pf(nm("a1.%s.%s.read.%08x", cfg, rn, rd[i]), perr(r, 0), SITE, rd[i]);
        }
        g_val = 0x0badf00du;
        run_in(r, p_wr32, 0xffc01000u);
        expect_pf(nm("a1.%s.%s.write.ffc01000", cfg, rn), perr(r, 2), SITE, 0xffc01000u);
        run_in(r, p_wr32, 0xfffffffcu);
        expect_pf(nm("a1.%s.%s.write.fffffffc", cfg, rn), perr(r, 2), SITE, 0xfffffffcu);
        run_in(r, p_rd8, 0xffffffffu);
        expect_pf(nm("a1.%s.%s.readbyte.ffffffff", cfg, rn), perr(r, 0), SITE, 0xffffffffu);

        /* Straddling 0xffc00000 (0xffbff000 is the guest's F_BELOW). */
        ID32(F_BELOW, 0xffc) = 0x11223344u;
        run_in(r, p_rd32, 0xffbffffeu);
        expect_pf(nm("a1.%s.%s.read.straddle.ffbffffe", cfg, rn), perr(r, 0), SITE, 0xffc00000u);
        run_in(r, p_wr32, 0xffbffffeu);
        expect_pf(nm("a1.%s.%s.write.straddle.ffbffffe", cfg, rn), perr(r, 2), SITE, 0xffc00000u);
        printf("a1.%s.%s below+0xffc after the faulting write: 0x%08x\n", cfg, rn, ID32(F_BELOW, 0xffc));
        check_eq(nm("a1.%s.%s.no_partial_write", cfg, rn), ID32(F_BELOW, 0xffc), 0x11223344u);
        /* Wrapping at 4 GiB: 0xfffffffe..0x00000001. */
        run_in(r, p_rd32, 0xfffffffeu);
        expect_pf(nm("a1.%s.%s.read.wrap.fffffffe", cfg, rn), perr(r, 0), SITE, 0xfffffffeu);

        /* Instruction fetches. */
        run_in(r, p_call_rel, 0);
        expect_pf(nm("a1.%s.%s.call_rel.ffc01000", cfg, rn), perr(r, 0), 0xffc01000u, 0xffc01000u);
        run_in(r, p_jmp_rel, 0);
        expect_pf(nm("a1.%s.%s.jmp_rel.fffff000", cfg, rn), perr(r, 0), 0xfffff000u, 0xfffff000u);
        run_in(r, p_call_ind, 0xffe00000u);
        expect_pf(nm("a1.%s.%s.call_ind.ffe00000", cfg, rn), perr(r, 0), 0xffe00000u, 0xffe00000u);
        run_in(r, p_jmp_ind, 0xffc00ffeu);
        expect_pf(nm("a1.%s.%s.jmp_ind.ffc00ffe", cfg, rn), perr(r, 0), 0xffc00ffeu, 0xffc00ffeu);
        run_in(r, p_ret_to, 0xfffffff0u);
        expect_pf(nm("a1.%s.%s.ret.fffffff0", cfg, rn), perr(r, 0), 0xfffffff0u, 0xfffffff0u);
        run_in(r, p_iret_to, 0xffc03000u);
        expect_pf(nm("a1.%s.%s.iret.ffc03000", cfg, rn), perr(r, 0), 0xffc03000u, 0xffc03000u);
        run_in(r, p_ljmp_to, 0xffc02000u);
        expect_pf(nm("a1.%s.%s.ljmp.ffc02000", cfg, rn), perr(r, 0), 0xffc02000u, 0xffc02000u);

        /* mov $0x12345678,%eax at 0xffbffffd: three bytes below, two in. */
        ID8(F_BELOW, 0xffd) = 0xb8;
        ID8(F_BELOW, 0xffe) = 0x78;
        ID8(F_BELOW, 0xfff) = 0x56;
        run_in(r, p_call_ind, 0xffbffffdu);
        expect_pf(nm("a1.%s.%s.fetch.straddle.ffbffffd", cfg, rn), perr(r, 0), 0xffbffffdu, 0xffc00000u);
        /* Two nops at 0xffbffffe, then the next fetch is 0xffc00000. */
        ID8(F_BELOW, 0xffe) = 0x90;
        ID8(F_BELOW, 0xfff) = 0x90;
        run_in(r, p_call_ind, 0xffbffffeu);
        expect_pf(nm("a1.%s.%s.fetch.fallthrough.ffbffffe", cfg, rn), perr(r, 0), 0xffc00000u, 0xffc00000u);
    }
}

static void a1(void)
{
    print("--- a1: the monitor's range with no guest mapping\n");
    a1_off();
    paging_on();
    print("a1 paging on, PDE 1023 not present\n");
    top_none();
    a1_on("nopde");
    print("a1 paging on, PDE 1023 present, page table empty\n");
    top_empty();
    a1_on("nopte");
    paging_disable();
}

/* ------------------------------------------------------------------------
 * a2 probes: segments.
 * ------------------------------------------------------------------------ */
#define SEG_RD(name, reg)                                                   \
    NOINL static uint32_t name(uint32_t off)                                \
    {                                                                       \
        uint32_t v = 0xcccccccc;                                            \
        __asm__ volatile(ARM "movl $3f, c_site2\n"                         \
                         "1: movw %w2, %%" #reg "\n"                        \
                         "3: movl %%" #reg ":(%1), %0\n"                    \
                         "2:\n\tmovw %w3, %%" #reg                          \
                         : "+r"(v) : "r"(off), "r"(g_sel), "r"(g_dsel) : "memory"); \
        return v;                                                           \
    }
SEG_RD(p_rd_ds, ds)
SEG_RD(p_rd_es, es)
SEG_RD(p_rd_fs, fs)
SEG_RD(p_rd_gs, gs)

#define SEG_WR(name, reg)                                                   \
    NOINL static uint32_t name(uint32_t off)                                \
    {                                                                       \
        __asm__ volatile(ARM "movl $3f, c_site2\n"                         \
                         "1: movw %w1, %%" #reg "\n"                        \
                         "3: movl %3, %%" #reg ":(%0)\n"                    \
                         "2:\n\tmovw %w2, %%" #reg                          \
                         : : "r"(off), "r"(g_sel), "r"(g_dsel), "r"(g_val) : "memory"); \
        return 0;                                                           \
    }
SEG_WR(p_wr_es, es)
SEG_WR(p_wr_gs, gs)

NOINL static uint32_t p_rd_ssovr(uint32_t off)
{
    uint32_t v = 0xcccccccc;
    __asm__ volatile(ARM "1: movl %%ss:(%1), %0\n2:" : "+r"(v) : "r"(off) : "memory");
    return v;
}

NOINL static uint32_t p_rd_csovr(uint32_t off)
{
    uint32_t v = 0xcccccccc;
    __asm__ volatile(ARM "1: movl %%cs:(%1), %0\n2:" : "+r"(v) : "r"(off) : "memory");
    return v;
}

/* String instructions: ESI/EDI/ECX/EAX from g_*, DF from the argument,
 * ES from g_sel when nonzero (restored to g_dsel). */
enum { ST_MOVSL, ST_STOSL, ST_MOVSB_FS, ST_LODSL_GS, ST_CMPSB, ST_SCASL, ST_INSB, ST_OUTSB, ST_STOSL_ES };
NOINL static uint32_t p_str(uint32_t kind)
{
    uint32_t s = g_esi, d = g_edi, c = g_ecx, a = g_eax, df = g_df, sel = g_sel;
    switch (kind) {
    case ST_MOVSL:
        __asm__ volatile("cld\n\ttestl %4, %4\n\tjz 3f\n\tstd\n3:\n\t" ARM "1: rep movsl\n2:\n\tcld"
                         : "+S"(s), "+D"(d), "+c"(c) : "a"(a), "r"(df) : "memory", "cc");
        break;
    case ST_STOSL:
        __asm__ volatile("cld\n\ttestl %4, %4\n\tjz 3f\n\tstd\n3:\n\t" ARM "1: rep stosl\n2:\n\tcld"
                         : "+S"(s), "+D"(d), "+c"(c) : "a"(a), "r"(df) : "memory", "cc");
        break;
    case ST_STOSL_ES:   /* rep stosl with ES = g_sel */
        __asm__ volatile("cld\n\tmovw %w4, %%es\n\t" ARM "1: rep stosl\n2:\n\tcld\n\tmovw %w5, %%es"
                         : "+S"(s), "+D"(d), "+c"(c) : "a"(a), "r"(sel), "r"(g_dsel) : "memory", "cc");
        break;
    case ST_MOVSB_FS:
        __asm__ volatile("cld\n\tmovw %w4, %%fs\n\t" ARM "1: rep movsb %%fs:(%%esi), %%es:(%%edi)\n2:\n\t"
                         "movw %w5, %%fs"
                         : "+S"(s), "+D"(d), "+c"(c) : "a"(a), "r"(sel), "r"(g_dsel) : "memory", "cc");
        break;
    case ST_LODSL_GS:
        __asm__ volatile("cld\n\tmovw %w4, %%gs\n\t" ARM "1: lodsl %%gs:(%%esi), %%eax\n2:\n\t"
                         "movw %w5, %%gs"
                         : "+S"(s), "+D"(d), "+c"(c), "+a"(a) : "r"(sel), "r"(g_dsel) : "memory", "cc");
        break;
    case ST_CMPSB:
        __asm__ volatile("cld\n\t" ARM "1: repe cmpsb\n2:"
                         : "+S"(s), "+D"(d), "+c"(c) : "a"(a) : "memory", "cc");
        break;
    case ST_SCASL:
        __asm__ volatile("cld\n\t" ARM "1: repne scasl\n2:"
                         : "+S"(s), "+D"(d), "+c"(c) : "a"(a) : "memory", "cc");
        break;
    case ST_INSB:
        __asm__ volatile("cld\n\t" ARM "1: rep insb\n2:"
                         : "+S"(s), "+D"(d), "+c"(c) : "a"(a), "d"(COM1 + 7) : "memory", "cc");
        break;
    case ST_OUTSB:
        __asm__ volatile("cld\n\t" ARM "1: rep outsb\n2:"
                         : "+S"(s), "+D"(d), "+c"(c) : "a"(a), "d"(COM1 + 7) : "memory", "cc");
        break;
    }
    o_esi = s;
    o_edi = d;
    o_ecx = c;
    return a;
}

/* xlat through FS = g_sel (ebx = g_ebx, al = arg) */
NOINL static uint32_t p_xlat(uint32_t al)
{
    uint32_t a = al, b = g_ebx;
    __asm__ volatile("movw %w2, %%fs\n\t" ARM "1: .byte 0x64\n\txlatb\n2:\n\tmovw %w3, %%fs"
                     : "+a"(a) : "b"(b), "r"(g_sel), "r"(g_dsel) : "memory");
    return a;
}

/* bt family: base g_eax, bit offset g_ecx; returns CF */
enum { BT_L, BTS_L, BTR_L, BT_W };
NOINL static uint32_t p_bt(uint32_t kind)
{
    uint32_t cf = 0xcc, a = g_eax, c = g_ecx;
    switch (kind) {
    case BT_L:
        __asm__ volatile(ARM "1: btl %2, (%1)\n\tsetc %b0\n2:" : "+q"(cf) : "r"(a), "r"(c) : "memory", "cc");
        break;
    case BTS_L:
        __asm__ volatile(ARM "1: btsl %2, (%1)\n\tsetc %b0\n2:" : "+q"(cf) : "r"(a), "r"(c) : "memory", "cc");
        break;
    case BTR_L:
        __asm__ volatile(ARM "1: btrl %2, (%1)\n\tsetc %b0\n2:" : "+q"(cf) : "r"(a), "r"(c) : "memory", "cc");
        break;
    case BT_W:
        __asm__ volatile(ARM "1: btw %w2, (%1)\n\tsetc %b0\n2:" : "+q"(cf) : "r"(a), "r"(c) : "memory", "cc");
        break;
    }
    return cf & 0xff;
}

/* Stack probes: ESP = g_esp (and SS = g_ss when nonzero) for one
 * instruction; returns what a pop read, o_esp is ESP after. */
enum { K_PUSHL, K_POPL, K_CALL, K_PUSHW, K_PUSHAL, K_ENTER, K_PUSHFL, K_LCALL };
NOINL static uint32_t p_stk(uint32_t kind)
{
    uint32_t v = 0xcccccccc;
    if (g_ss)
        __asm__ volatile("movw %%ss, c_ss\n\t"
                         "movl %%esp, c_sp\n\t"
                         "movw g_ss, %%ss\n\t"
                         "movl g_esp, %%esp\n\t"
                         ARM
                         "1: pushl $0xd1d2d3d4\n"
                         "2:\n\tmovl %%esp, o_esp\n\t"
                         "movw c_ss, %%ss\n\t"
                         "movl c_sp, %%esp"
                         : : : "memory");
    else switch (kind) {
    case K_PUSHL:
        __asm__ volatile("movl %%esp, c_sp\n\tmovl g_esp, %%esp\n\t" ARM "1: pushl $0xa1a2a3a4\n"
                         "2:\n\tmovl %%esp, o_esp\n\tmovl c_sp, %%esp" : : : "memory");
        break;
    case K_POPL:
        __asm__ volatile("movl %%esp, c_sp\n\tmovl g_esp, %%esp\n\t" ARM "1: popl %0\n"
                         "2:\n\tmovl %%esp, o_esp\n\tmovl c_sp, %%esp" : "+r"(v) : : "memory");
        break;
    case K_CALL:
        __asm__ volatile("movl %%esp, c_sp\n\tmovl g_esp, %%esp\n\t" ARM "1: call 3f\n"
                         "3: popl %0\n\tsubl $4, %%esp\n"
                         "2:\n\tmovl %%esp, o_esp\n\tmovl c_sp, %%esp" : "+r"(v) : : "memory");
        break;
    case K_PUSHW:
        __asm__ volatile("movl %%esp, c_sp\n\tmovl g_esp, %%esp\n\t" ARM "1: pushw $0xc1c2\n"
                         "2:\n\tmovl %%esp, o_esp\n\tmovl c_sp, %%esp" : : : "memory");
        break;
    case K_PUSHAL:
        __asm__ volatile("movl %%esp, c_sp\n\tmovl g_esp, %%esp\n\t" ARM "1: pushal\n"
                         "2:\n\tmovl %%esp, o_esp\n\tmovl c_sp, %%esp" : : : "memory");
        break;
    case K_ENTER:
        __asm__ volatile("movl %%esp, c_sp\n\tmovl g_esp, %%esp\n\t" ARM "1: enter $8, $0\n\tleave\n"
                         "2:\n\tmovl %%esp, o_esp\n\tmovl c_sp, %%esp" : : : "memory");
        break;
    case K_PUSHFL:
        __asm__ volatile("movl %%esp, c_sp\n\tmovl g_esp, %%esp\n\t" ARM "1: pushfl\n"
                         "2:\n\tmovl %%esp, o_esp\n\tmovl c_sp, %%esp" : : : "memory");
        break;
    case K_LCALL:
        fp_go.off = 0;          /* never reached: the push faults first */
        fp_go.sel = (uint16_t)g_cs;
        __asm__ volatile("movl %%esp, c_sp\n\tmovl g_esp, %%esp\n\t" ARM "1: lcall *fp_go\n"
                         "2:\n\tmovl %%esp, o_esp\n\tmovl c_sp, %%esp" : : : "memory");
        break;
    }
    return v;
}

/* Far jumps into based code segments (file-scope asm: global labels).
 * fp_go = target; g_fjcall: lcall instead of ljmp; at the target the body
 * records the offset `call` pushes (o_val) and CS (o_cs), then jumps to
 * g_jmpto (an offset in that CS) if nonzero, else back with fp_back. */
extern char fj_ret[], fj_body[];
uint32_t fj_run(uint32_t arg);
__asm__(".text\n"
        ".globl fj_run, fj_body, fj_ret\n"
        "fj_run:\n\t"
        "pushl %ebx\n\t"
        "movl $fj_back, fp_back\n\t"
        "movw g_cs, %ax\n\t"
        "movw %ax, fp_back+4\n\t"
        "movl %esp, c_sp\n\t"
        "movl $0, c_out\n\t"
        "movl $fj_resume, c_resume\n\t"
        "cmpl $0, g_fjcall\n\t"
        "jne 5f\n\t"
        "movl $fj_site1, c_site\n\t"
        "movl $1, c_armed\n"
        "fj_site1: ljmp *fp_go\n"
        "5:\tmovl $fj_site2, c_site\n\t"
        "movl $1, c_armed\n"
        "fj_site2: lcall *fp_go\n"
        "fj_body:\n\t"
        "call fj_ret\n"
        "fj_ret:\tpopl %eax\n\t"
        "movl %eax, o_val\n\t"
        "movw %cs, %ax\n\t"
        "movzwl %ax, %eax\n\t"
        "movl %eax, o_cs\n\t"
        "movl g_jmpto, %eax\n\t"
        "testl %eax, %eax\n\t"
        "jz 6f\n\t"
        "jmp *%eax\n"
        "6:\tljmp *fp_back\n"
        "fj_resume:\n"
        "fj_back:\n\t"
        "movl c_sp, %esp\n\t"
        "popl %ebx\n\t"
        "ret\n");

/* ------------------------------------------------------------------------
 * a2.
 * ------------------------------------------------------------------------ */
static void a2_segments(void)
{
    print("a2 data segments, no guest mapping in the region\n");
    for (int r = 0; r < NRINGS; r++) {
        const char *rn = rname[r];
        uint32_t v;
        g_sel = S_TOP;
        run_in(r, p_rd_ds, 0x10);
        expect_pf(nm("a2.%s.ds=top:0x10", rn), perr(r, 0), SITE2, 0xffc00010u);
        g_val = 0x77777777u;
        run_in(r, p_wr_es, 0x1000);
        expect_pf(nm("a2.%s.es=top:0x1000.write", rn), perr(r, 2), SITE2, 0xffc01000u);
        g_sel = S_HIGH;
        run_in(r, p_rd_fs, 0x7fc00010u);
        expect_pf(nm("a2.%s.fs=high:0x7fc00010", rn), perr(r, 0), SITE2, 0xffc00010u);
        v = run_in(r, p_rd_fs, PAT(0) + 0x80000000u);
        expect_val(nm("a2.%s.fs=high:pat+0x80000000.wraps_to_guest", rn), v, ID32(F_PAT, 0));
        g_sel = S_TOP;
        run_in(r, p_rd_gs, 0x3ffffcu);
        expect_pf(nm("a2.%s.gs=top:0x3ffffc", rn), perr(r, 0), SITE2, 0xfffffffcu);
        v = run_in(r, p_rd_gs, PAT(1) + 0x400000u);
        expect_val(nm("a2.%s.gs=top:pat+0x400000.wraps_to_guest", rn), v, ID32(F_PAT, 4));
        g_val = 0x600d0000u + (uint32_t)r;
        run_in(r, p_wr_gs, PAT(2) + 0x400000u);
        expect_val(nm("a2.%s.gs=top:pat+0x400000.write_wraps_to_guest", rn), ID32(F_PAT, 8), g_val);
        run_in(r, p_rd_gs, 0x3ffffeu);
        expect_pf(nm("a2.%s.gs=top:0x3ffffe.dword_wraps", rn), perr(r, 0), SITE2, 0xfffffffeu);
        g_sel = S_HIGH;
        run_in(r, p_rd_ds, 0x7ffffffeu);
        expect_pf(nm("a2.%s.ds=high:0x7ffffffe", rn), perr(r, 0), SITE2, 0xfffffffeu);
        g_sel = S_ED;
        run_in(r, p_rd_es, 0xffc00010u);
        expect_pf(nm("a2.%s.es=expdown:0xffc00010", rn), perr(r, 0), SITE2, 0xffc00010u);
        g_sel = S_EDHI;
        run_in(r, p_rd_fs, 0xbfc00010u);
        expect_pf(nm("a2.%s.fs=expdown_hi:0xbfc00010", rn), perr(r, 0), SITE2, 0xffc00010u);
        v = run_in(r, p_rd_gs, PAT(3) + 0xc0000000u);
        expect_val(nm("a2.%s.gs=expdown_hi:pat+0xc0000000.wraps_to_guest", rn), v, ID32(F_PAT, 12));
        run_in(r, p_rd_ssovr, 0xffc00020u);
        expect_pf(nm("a2.%s.ss_override:0xffc00020", rn), perr(r, 0), SITE, 0xffc00020u);
        run_in(r, p_rd_csovr, 0xffc00030u);
        expect_pf(nm("a2.%s.cs_override:0xffc00030", rn), perr(r, 0), SITE, 0xffc00030u);
        g_sel = 0;
    }
}

static void str_report(const char *name, uint32_t esi, uint32_t edi, uint32_t ecx)
{
    printf("%s: esi=0x%08x edi=0x%08x ecx=%u\n", name, o_esi, o_edi, o_ecx);
    check_eq(nm("%s.regs", name), o_esi == esi && o_edi == edi && o_ecx == ecx, 1);
}

static void a2_strings(void)
{
    static uint32_t buf[16];
    print("a2 string instructions, no guest mapping in the region\n");
    for (int r = 0; r < NRINGS; r++) {
        const char *rn = rname[r];
        const char *n;
        uint32_t v;
        fill_frames();
        g_sel = 0;
        g_df = 0;
        g_eax = 0x51525354u;

        g_esi = PAT(0); g_edi = 0xffc00000u; g_ecx = 4;
        run_in(r, p_str, ST_MOVSL);
        expect_pf(n = nm("a2.%s.rep_movsl.to_ffc00000", rn), perr(r, 2), SITE, 0xffc00000u);
        str_report(n, PAT(0), 0xffc00000u, 4);

        g_esi = PAT(0); g_edi = 0xffbffff8u; g_ecx = 4;
        run_in(r, p_str, ST_MOVSL);
        expect_pf(n = nm("a2.%s.rep_movsl.from_below_into_region", rn), perr(r, 2), SITE, 0xffc00000u);
        str_report(n, PAT(2), 0xffc00000u, 2);
        printf("%s: below+0xff8=0x%08x +0xffc=0x%08x\n", n, ID32(F_BELOW, 0xff8), ID32(F_BELOW, 0xffc));
        check_eq(nm("%s.copied", n), ID32(F_BELOW, 0xff8) == ID32(F_PAT, 0) &&
                 ID32(F_BELOW, 0xffc) == ID32(F_PAT, 4), 1);

        for (int i = 0; i < 16; i++)
            buf[i] = 0;
        g_esi = 0xffbffff8u; g_edi = (uint32_t)buf; g_ecx = 4;
        run_in(r, p_str, ST_MOVSL);
        expect_pf(n = nm("a2.%s.rep_movsl.read_into_region", rn), perr(r, 0), SITE, 0xffc00000u);
        str_report(n, 0xffc00000u, (uint32_t)buf + 8, 2);
        check_eq(nm("%s.copied", n), buf[0] == ID32(F_BELOW, 0xff8) && buf[1] == ID32(F_BELOW, 0xffc) &&
                 buf[2] == 0, 1);

        g_edi = 0xffbffff8u; g_ecx = 4;
        run_in(r, p_str, ST_STOSL);
        expect_pf(n = nm("a2.%s.rep_stosl.df0.into_region", rn), perr(r, 2), SITE, 0xffc00000u);
        str_report(n, g_esi, 0xffc00000u, 2);

        fill_page0();
        g_df = 1; g_edi = 8; g_ecx = 4;
        run_in(r, p_str, ST_STOSL);
        expect_pf(n = nm("a2.%s.rep_stosl.df1.wraps_down_from_8", rn), perr(r, 2), SITE, 0xfffffffcu);
        str_report(n, g_esi, 0xfffffffcu, 1);
        printf("%s: phys 0..0xc = 0x%08x 0x%08x 0x%08x 0x%08x\n", n, PHYS32(0), PHYS32(4), PHYS32(8), PHYS32(12));
        check_eq(nm("%s.stored", n), PHYS32(0) == g_eax && PHYS32(4) == g_eax && PHYS32(8) == g_eax &&
                 PHYS32(12) == 0x0f0f000cu, 1);
        g_df = 0;

        g_sel = S_TOP; g_edi = 0xfffffff8u; g_ecx = 4;
        run_in(r, p_str, ST_STOSL_ES);
        expect_pf(n = nm("a2.%s.rep_stosl.es=top.edi_wraps_into_region", rn), perr(r, 2), SITE, 0xffc00000u);
        str_report(n, g_esi, 0, 2);
        check_eq(nm("%s.stored", n), ID32(F_BELOW, 0xff8) == g_eax && ID32(F_BELOW, 0xffc) == g_eax, 1);

        g_sel = S_TOP; g_esi = 0x100; g_edi = (uint32_t)buf; g_ecx = 8;
        run_in(r, p_str, ST_MOVSB_FS);
        expect_pf(n = nm("a2.%s.rep_movsb.fs=top", rn), perr(r, 0), SITE, 0xffc00100u);
        str_report(n, 0x100, (uint32_t)buf, 8);

        g_sel = 0; g_df = 1; g_edi = 0xffc00004u; g_ecx = 2;
        run_in(r, p_str, ST_STOSL);
        expect_pf(n = nm("a2.%s.rep_stosl.df1.at_ffc00004", rn), perr(r, 2), SITE, 0xffc00004u);
        g_esi = 0xffc00004u; g_edi = (uint32_t)buf + 16; g_ecx = 2;
        run_in(r, p_str, ST_MOVSL);
        expect_pf(n = nm("a2.%s.rep_movsl.df1.from_ffc00004", rn), perr(r, 0), SITE, 0xffc00004u);
        g_df = 0;

        g_sel = S_HIGH; g_esi = 0x7ffffffcu;
        run_in(r, p_str, ST_LODSL_GS);
        expect_pf(n = nm("a2.%s.lodsl.gs=high:0x7ffffffc", rn), perr(r, 0), SITE, 0xfffffffcu);
        g_sel = 0;

        for (int i = 0; i < 16; i++)
            buf[i] = 0;
        ((uint8_t *)buf)[0] = ID8(F_BELOW, 0xffe);
        ((uint8_t *)buf)[1] = ID8(F_BELOW, 0xfff);
        g_esi = 0xffbffffeu; g_edi = (uint32_t)buf; g_ecx = 8;
        run_in(r, p_str, ST_CMPSB);
        expect_pf(n = nm("a2.%s.repe_cmpsb.into_region", rn), perr(r, 0), SITE, 0xffc00000u);
        str_report(n, 0xffc00000u, (uint32_t)buf + 2, 6);

        g_edi = 0xffc00000u; g_ecx = 8;
        run_in(r, p_str, ST_SCASL);
        expect_pf(n = nm("a2.%s.repne_scasl.ffc00000", rn), perr(r, 0), SITE, 0xffc00000u);

        /* xlat through FS */
        g_sel = g_dsel = r == R0 ? SEG_KDATA : SEG_UDATA;
        g_ebx = 0xffc00000u;
        run_in(r, p_xlat, 0x10);
        expect_pf(nm("a2.%s.xlat.ebx=ffc00000.al=10", rn), perr(r, 0), SITE, 0xffc00010u);
        g_sel = g_dsel = r == R0 ? SEG_KDATA : SEG_UDATA;
        g_ebx = 0xffffff00u;
        run_in(r, p_xlat, 0xff);
        expect_pf(nm("a2.%s.xlat.ebx=ffffff00.al=ff", rn), perr(r, 0), SITE, 0xffffffffu);
        g_sel = S_HIGH; g_ebx = PAT(0) + 0x80000000u;
        v = run_in(r, p_xlat, 4);
        expect_val(nm("a2.%s.xlat.fs=high.wraps_to_guest", rn), v & 0xff, ID8(F_PAT, 4));
        g_sel = S_TOP; g_ebx = PAT(0) + 0x400000u;
        v = run_in(r, p_xlat, 5);
        expect_val(nm("a2.%s.xlat.fs=top.wraps_to_guest", rn), v & 0xff, ID8(F_PAT, 5));
        g_sel = S_TOP; g_ebx = 0x3fff00u;
        run_in(r, p_xlat, 0x10);
        expect_pf(nm("a2.%s.xlat.fs=top.ebx=3fff00", rn), perr(r, 0), SITE, 0xffffff10u);
        g_sel = 0;

        /* bt with register bit offsets */
        g_eax = PAT(0);
        g_ecx = (uint32_t)((int32_t)(0xffc00010u - PAT(0)) * 8);
        run_in(r, p_bt, BT_L);
        expect_pf(nm("a2.%s.btl.pat.ecx=%08x", rn, g_ecx), perr(r, 0), SITE, 0xffc00010u);
        /* bts/btr on a not-present page: QEMU reads first and reports a
         * read (W=0); that is the reference here. */
        run_in(r, p_bt, BTS_L);
        expect_pf(nm("a2.%s.btsl.pat.ecx=%08x", rn, g_ecx), perr(r, 0), SITE, 0xffc00010u);
        g_ecx = (uint32_t)((int32_t)(0xfffffffcu - PAT(0)) * 8) + 31;
        run_in(r, p_bt, BTR_L);
        expect_pf(nm("a2.%s.btrl.pat.to_fffffffc", rn), perr(r, 0), SITE, 0xfffffffcu);
        g_eax = 0xffc00000u;
        g_ecx = (PAT(6) + 0x400000u) * 8 + 3;
        ID32(F_PAT, 24) = 0x8;
        v = run_in(r, p_bt, BT_L);
        expect_val(nm("a2.%s.btl.eax=ffc00000.wraps_to_guest.bit_set", rn), v, 1);
        ID32(F_PAT, 24) = 0x0;
        g_ecx = (PAT(6) + 0x400000u) * 8 + 3;
        v = run_in(r, p_bt, BTS_L);
        expect_val(nm("a2.%s.btsl.eax=ffc00000.wraps_to_guest", rn), v | (ID32(F_PAT, 24) << 4), 0x80);
        fill_page0();
        g_eax = 0xfffffff0u; g_ecx = 0x100 + 2;        /* 0x0f0f0010: bit 2 is 0; bit 16 is 1 */
        v = run_in(r, p_bt, BT_L);
        expect_val(nm("a2.%s.btl.eax=fffffff0.to_phys_10.bit2", rn), v, 0);
        g_ecx = 0x100 + 16;
        v = run_in(r, p_bt, BT_L);
        expect_val(nm("a2.%s.btl.eax=fffffff0.to_phys_10.bit16", rn), v, 1);
        g_eax = 0x800; g_ecx = 0x8000;
        run_in(r, p_bt, BT_W);
        expect_pf(nm("a2.%s.btw.eax=800.cx=8000", rn), perr(r, 0), SITE, 0xfffff800u);
    }

    /* ins/outs: ring 0, ring 3 with IOPL 3 (direct and translated), and
     * ring 3 with IOPL 0 (#GP before any memory access). */
    for (int pass = 0; pass < 4; pass++) {
        int r = pass == 0 ? R0 : pass == 1 ? R3 : pass == 2 ? R3T : R3;
        const char *rn = pass == 3 ? "r3iopl0" : rname[r];
        const char *n;
        ring_extra_eflags = pass == 3 ? 0 : EFL_IOPL(3);
        int gp = pass == 3;
        g_sel = 0; g_df = 0;
        g_esi = 0xffc00000u; g_ecx = 1;
        run_in(r, p_str, ST_OUTSB);
        if (gp)
            expect(nm("a2.%s.outsb.from_ffc00000", rn), VEC_GP, 0, SITE, 0);
        else
            expect_pf(nm("a2.%s.outsb.from_ffc00000", rn), perr(r, 0), SITE, 0xffc00000u);
        g_edi = 0xffc00000u; g_ecx = 1;
        run_in(r, p_str, ST_INSB);
        if (gp)
            expect(nm("a2.%s.insb.to_ffc00000", rn), VEC_GP, 0, SITE, 0);
        else
            expect_pf(nm("a2.%s.insb.to_ffc00000", rn), perr(r, 2), SITE, 0xffc00000u);
        if (!gp) {
            g_edi = 0xffbffffeu; g_ecx = 4;
            run_in(r, p_str, ST_INSB);
            expect_pf(n = nm("a2.%s.rep_insb.into_region", rn), perr(r, 2), SITE, 0xffc00000u);
            str_report(n, g_esi, 0xffc00000u, 2);
            g_esi = 0xffbffffeu; g_ecx = 4;
            run_in(r, p_str, ST_OUTSB);
            expect_pf(n = nm("a2.%s.rep_outsb.into_region", rn), perr(r, 0), SITE, 0xffc00000u);
            str_report(n, 0xffc00000u, g_edi, 2);
        }
        ring_extra_eflags = 0;
    }
}

static void a2_stack_nomap(void)
{
    print("a2 stack in the region, no guest mapping (ring 3 only: in ring 0 the\n"
          "   exception frame itself would fault and the CPU would shut down)\n");
    for (int r = R3; r < NRINGS; r++) {
        const char *rn = rname[r];
        g_ss = 0;
        g_esp = 0xffc00004u;
        run_in(r, p_stk, K_PUSHL);
        expect_pf(nm("a2.%s.pushl.esp=ffc00004", rn), 6, SITE, 0xffc00000u);
        printf("a2.%s.pushl.esp=ffc00004: esp after=0x%08x\n", rn, o_esp);
        g_esp = 0xffc00000u;
        run_in(r, p_stk, K_POPL);
        expect_pf(nm("a2.%s.popl.esp=ffc00000", rn), 4, SITE, 0xffc00000u);
        g_esp = 0xffc00004u;
        run_in(r, p_stk, K_CALL);
        expect_pf(nm("a2.%s.call.esp=ffc00004", rn), 6, SITE, 0xffc00000u);
        /* QEMU's far call pushes CS:EIP with supervisor rights even at
         * CPL 3 (U/S clear in the error code): bare QEMU is the reference. */
        run_in(r, p_stk, K_LCALL);
        expect_pf(nm("a2.%s.lcall.esp=ffc00004", rn), 2, SITE, 0xffc00000u);
        run_in(r, p_stk, K_ENTER);
        expect_pf(nm("a2.%s.enter.esp=ffc00004", rn), 6, SITE, 0xffc00000u);
        run_in(r, p_stk, K_PUSHFL);
        expect_pf(nm("a2.%s.pushfl.esp=ffc00004", rn), 6, SITE, 0xffc00000u);
        g_esp = 0xffc00004u;      /* only the EAX slot lies in the region */
        run_in(r, p_stk, K_PUSHAL);
        expect_pf(nm("a2.%s.pushal.esp=ffc00004", rn), 6, SITE, 0xffc00000u);
        g_esp = 2;
        run_in(r, p_stk, K_PUSHL);
        expect_pf(nm("a2.%s.pushl.esp=2", rn), 6, SITE, 0xfffffffeu);
        g_esp = 1;
        run_in(r, p_stk, K_PUSHW);
        expect_pf(nm("a2.%s.pushw.esp=1", rn), 6, SITE, 0xffffffffu);
        g_esp = 0xfffffffeu;
        run_in(r, p_stk, K_POPL);
        expect_pf(nm("a2.%s.popl.esp=fffffffe", rn), 4, SITE, 0xfffffffeu);
        g_ss = S_TOP; g_esp = 0x10;
        run_in(r, p_stk, K_PUSHL);
        expect_pf(nm("a2.%s.pushl.ss=top.esp=10", rn), 6, SITE, 0xffc0000cu);
        g_ss = S_HIGH; g_esp = 0x80000002u;
        run_in(r, p_stk, K_PUSHL);
        expect_pf(nm("a2.%s.pushl.ss=high.esp=80000002", rn), 6, SITE, 0xfffffffeu);
        g_ss = 0;
    }
}

static void a2_stack_mapped(void)
{
    print("a2 stack in the region with guest pages at 0xffc00000 and 0xfffff000\n");
    top_empty();
    for (int r = 0; r < NRINGS; r++) {
        const char *rn = rname[r];
        uint32_t v;
        fill_frames();
        fill_page0();
        top_map(0xffc00000u, FRAME(F_TOP), PG_W | PG_U);
        top_map(0xfffff000u, FRAME(F_LAST), PG_W | PG_U);
        g_ss = 0;
        g_esp = 0xffc00004u;
        run_in(r, p_stk, K_PUSHL);
        expect_val(nm("a2.%s.mapped.pushl.esp=ffc00004", rn), ID32(F_TOP, 0), 0xa1a2a3a4u);
        check_eq(nm("a2.%s.mapped.pushl.esp_after", rn), o_esp, 0xffc00000u);
        g_esp = 0xffc00000u;
        v = run_in(r, p_stk, K_POPL);
        expect_val(nm("a2.%s.mapped.popl.esp=ffc00000", rn), v, 0xa1a2a3a4u);
        g_esp = 0xffc00008u;
        ID32(F_TOP, 4) = 0;
        v = run_in(r, p_stk, K_CALL);
        printf("a2.%s.mapped.call.esp=ffc00008: pushed return address == popped: %u, in frame: %u\n",
               rn, ID32(F_TOP, 4) == v, v != 0 && v != 0xcccccccc);
        check_eq(nm("a2.%s.mapped.call.esp=ffc00008", rn), !c_out.faulted && ID32(F_TOP, 4) == v &&
                 o_esp == 0xffc00004u, 1);
        g_esp = 2;
        uint32_t orig = ID32(F_LAST, 0xffc);
        run_in(r, p_stk, K_PUSHL);
        expect_val(nm("a2.%s.mapped.pushl.esp=2.last_frame_ffc", rn), ID32(F_LAST, 0xffc),
                   (orig & 0xffff) | 0xa3a40000u);
        printf("a2.%s.mapped.pushl.esp=2: phys 0=0x%08x esp after=0x%08x\n", rn, PHYS32(0), o_esp);
        check_eq(nm("a2.%s.mapped.pushl.esp=2.phys0", rn), PHYS32(0) == 0x0f0fa1a2u && o_esp == 0xfffffffeu, 1);
        g_esp = 0xfffffffeu;
        v = run_in(r, p_stk, K_POPL);
        expect_val(nm("a2.%s.mapped.popl.esp=fffffffe", rn), v, 0xa1a2a3a4u);
        check_eq(nm("a2.%s.mapped.popl.esp=fffffffe.esp_after", rn), o_esp, 2);
        g_esp = 1;
        run_in(r, p_stk, K_PUSHW);
        expect_val(nm("a2.%s.mapped.pushw.esp=1.phys0", rn), PHYS32(0), 0x0f0fa1c1u);
        check_eq(nm("a2.%s.mapped.pushw.esp=1.last_byte", rn), ID8(F_LAST, 0xfff), 0xc2);
        g_ss = r == R0 ? S_KSTOP : S_TOP; g_esp = 0x10;
        run_in(r, p_stk, K_PUSHL);
        expect_val(nm("a2.%s.mapped.pushl.ss=top.esp=10", rn), ID32(F_TOP, 0xc), 0xd1d2d3d4u);
        g_ss = r == R0 ? S_KSHI : S_HIGH; g_esp = 0x80000002u;
        run_in(r, p_stk, K_PUSHL);
        expect_val(nm("a2.%s.mapped.pushl.ss=high.esp=80000002.phys0", rn), PHYS32(0), 0x0f0fd1d2u);
        check_eq(nm("a2.%s.mapped.pushl.ss=high.last_word", rn), ID32(F_LAST, 0xffc) >> 16, 0xd3d4);
        g_ss = 0;

        /* rep stosl upward across 0xffffffff -> 0, and rep movsl reading across it */
        g_sel = 0; g_df = 0; g_eax = 0xf00df00du; g_edi = 0xfffffff8u; g_ecx = 4;
        run_in(r, p_str, ST_STOSL);
        expect(nm("a2.%s.mapped.rep_stosl.wraps_up", rn), NOFAULT, 0, 0, 0);
        str_report(nm("a2.%s.mapped.rep_stosl.wraps_up", rn), g_esi, 8, 0);
        check_eq(nm("a2.%s.mapped.rep_stosl.wraps_up.stored", rn), ID32(F_LAST, 0xff8) == g_eax &&
                 ID32(F_LAST, 0xffc) == g_eax && PHYS32(0) == g_eax && PHYS32(4) == g_eax &&
                 PHYS32(8) == 0x0f0f0008u, 1);
        static uint32_t buf[8];
        PHYS32(0) = 0x13579bdfu;
        g_esi = 0xfffffff8u; g_edi = (uint32_t)buf; g_ecx = 4;
        run_in(r, p_str, ST_MOVSL);
        expect(nm("a2.%s.mapped.rep_movsl.source_wraps_up", rn), NOFAULT, 0, 0, 0);
        printf("a2.%s.mapped.rep_movsl.source_wraps_up: 0x%08x 0x%08x 0x%08x 0x%08x\n",
               rn, buf[0], buf[1], buf[2], buf[3]);
        check_eq(nm("a2.%s.mapped.rep_movsl.source_wraps_up.data", rn), buf[0] == g_eax && buf[1] == g_eax &&
                 buf[2] == 0x13579bdfu && buf[3] == g_eax, 1);
        v = run_in(r, p_rd32, 0xfffffffeu);
        expect_val(nm("a2.%s.mapped.read.fffffffe.wraps", rn), v, 0x9bdff00du);
    }
    top_none();
}

static void a2_far(void)
{
    print("a2 far jumps into code segments based at 0xffc00000 and 0x80000000\n");
    for (int r = 0; r < NRINGS; r++) {
        const char *rn = rname[r];
        uint16_t ctop = r == R0 ? S_KCTOP : S_UCTOP, chi = r == R0 ? S_KCHI : S_UCHI;
        uint32_t u = perr(r, 0);

        g_jmpto = 0; g_fjcall = 0;
        fp_go.off = 0x1000; fp_go.sel = ctop;
        run_in(r, fj_run, 0);
        expect_pf(nm("a2.%s.ljmp.top:0x1000", rn), u, 0x1000, 0xffc01000u);
        check_eq(nm("a2.%s.ljmp.top:0x1000.cs", rn), c_out.cs, ctop);
        g_fjcall = 1;
        fp_go.off = 0x7fc01000u; fp_go.sel = chi;
        run_in(r, fj_run, 0);
        expect_pf(nm("a2.%s.lcall.high:0x7fc01000", rn), u, 0x7fc01000u, 0xffc01000u);
        check_eq(nm("a2.%s.lcall.high:0x7fc01000.cs", rn), c_out.cs, chi);
        g_fjcall = 0;

        o_val = o_cs = 0;
        fp_go.off = (uint32_t)fj_body + 0x400000u; fp_go.sel = ctop;
        run_in(r, fj_run, 0);
        printf("a2.%s.ljmp.top:body+0x400000: %s, call pushed 0x%08x cs=0x%04x\n", rn,
               c_out.faulted ? "faulted" : "ran", o_val, o_cs);
        check_eq(nm("a2.%s.ljmp.top.runs_guest_code", rn), !c_out.faulted &&
                 o_val == (uint32_t)fj_ret + 0x400000u && o_cs == ctop, 1);
        o_val = o_cs = 0;
        fp_go.off = (uint32_t)fj_body + 0x80000000u; fp_go.sel = chi;
        run_in(r, fj_run, 0);
        printf("a2.%s.ljmp.high:body+0x80000000: %s, call pushed 0x%08x cs=0x%04x\n", rn,
               c_out.faulted ? "faulted" : "ran", o_val, o_cs);
        check_eq(nm("a2.%s.ljmp.high.runs_guest_code", rn), !c_out.faulted &&
                 o_val == (uint32_t)fj_ret + 0x80000000u && o_cs == chi, 1);
        g_jmpto = 0x7fc02000u;
        run_in(r, fj_run, 0);
        expect_pf(nm("a2.%s.ljmp.high.then_jmp_0x7fc02000", rn), u, 0x7fc02000u, 0xffc02000u);
        check_eq(nm("a2.%s.ljmp.high.then_jmp.cs", rn), c_out.cs, chi);
        g_jmpto = 0x3ff000u;
        fp_go.off = (uint32_t)fj_body + 0x400000u; fp_go.sel = ctop;
        run_in(r, fj_run, 0);
        expect_pf(nm("a2.%s.ljmp.top.then_jmp_0x3ff000", rn), u, 0x3ff000u, 0xfffff000u);
        g_jmpto = 0;
    }
}

static void a2(void)
{
    print("--- a2: segments, string instructions, odd stacks\n");
    a2_gdt();
    gdt_load();
    paging_on();
    a2_segments();
    a2_strings();
    a2_stack_nomap();
    a2_stack_mapped();
    a2_far();
    paging_disable();
    spare_clear();
}

/* ------------------------------------------------------------------------
 * a3: the monitor's selectors.
 * ------------------------------------------------------------------------ */
#define BIG_FIRST 8176
static uint64_t biggdt[8192] ALIGNED(4096);

/* What the guest puts at 8176..8191 (selectors 0xff80..0xfff8). */
static void big_fill(void)
{
    for (int i = 0; i < 8192; i++)
        biggdt[i] = 0;
    for (int i = 0; i < GDT_ENTRIES; i++)
        biggdt[i] = gdt[i];
    uint64_t *t = &biggdt[BIG_FIRST];
    const uint8_t A = ACC_ACCESSED;
    t[0] = make_desc(PAT(0 * 16), 0xfff, ACC_UDATA | A, FLG_16);
    t[1] = make_desc(PAT(1 * 16), 0xfff, ACC_KDATA | A, FLG_16);
    t[2] = make_desc(0, 0xfffff, ACC_KCODE | A, FLG_32);
    t[3] = make_desc(0, 0xfffff, ACC_UCODE | A, FLG_32);
    t[4] = make_desc(PAT(4 * 16), 0xfff, ACC_P | ACC_DPL(3) | ACC_S | ACC_DATA_R | A, FLG_16);
    t[5] = make_desc(0, 0xfffff, ACC_UDATA | A, FLG_32);
    t[6] = make_desc(0, 0xfffff, ACC_KDATA | A, FLG_32);
    t[7] = make_desc(PAT(7 * 16), 0xfff, ACC_P | ACC_DPL(1) | ACC_S | ACC_DATA_W | A, FLG_16);
    t[8] = make_desc(0, 0xfffff, ACC_P | ACC_DPL(3) | ACC_S | 0x08 | A, FLG_32);     /* execute-only */
    t[9] = make_desc(0, 0xfffff, ACC_P | ACC_DPL(0) | ACC_S | ACC_CODE_RC | A, FLG_32);
    t[10] = make_desc(PAT(10 * 16), 0xfff, (ACC_UDATA | A) & ~ACC_P, FLG_16);          /* not present */
    t[11] = make_desc(PAT(11 * 16), 0xfff, ACC_P | ACC_DPL(3) | 0x0, FLG_16);         /* system, reserved type */
    t[12] = make_desc(0xffc00000u, 0xfffff, ACC_UDATA | A, FLG_32);
    t[13] = make_desc(0, 0xfffff, (ACC_KCODE | A) & ~ACC_P, FLG_32);                  /* code DPL0, not present */
    t[14] = make_desc(0, 0, ACC_P | ACC_DPL(3) | ACC_S | ACC_DATA_W | ACC_ED | A, FLG_32);
    t[15] = 0;
}

/* The offset read through each of them once loaded (descriptor k). */
static uint32_t big_off(int k)
{
    switch (k) {
    case 2: case 3: case 5: case 6: case 9: case 14:
        return PAT(k * 16);     /* flat (or expand-down from 0): the absolute address */
    default:
        return 0;
    }
}

enum { OP_DS, OP_ES, OP_FS, OP_GS, OP_SS, OP_JMP, OP_CALL, NOPS };
static const char *const opname[NOPS] = { "ds", "es", "fs", "gs", "ss", "jmp", "call" };
#define OK_VEC 0xffff
struct res {
    uint16_t vec, err;
    uint32_t val;               /* read value, or cs seen (| pushed cs << 16 for call) */
};
#define A3_ROWS 17              /* 16 selectors + a TI=1 row */
static struct res a3r[A3_ROWS][4][NOPS];

NOINL static void a3_load(int op)
{
    uint32_t v = 0xcccccccc, sel = g_sel, off = g_off, dsel = g_dsel;
    switch (op) {
    case OP_DS:
        __asm__ volatile(ARM "1: movw %w1, %%ds\n\tmovl %%ds:(%2), %0\n2:\n\tmovw %w3, %%ds"
                         : "+r"(v) : "r"(sel), "r"(off), "r"(dsel) : "memory");
        break;
    case OP_ES:
        __asm__ volatile(ARM "1: movw %w1, %%es\n\tmovl %%es:(%2), %0\n2:\n\tmovw %w3, %%es"
                         : "+r"(v) : "r"(sel), "r"(off), "r"(dsel) : "memory");
        break;
    case OP_FS:
        __asm__ volatile(ARM "1: movw %w1, %%fs\n\tmovl %%fs:(%2), %0\n2:\n\tmovw %w3, %%fs"
                         : "+r"(v) : "r"(sel), "r"(off), "r"(dsel) : "memory");
        break;
    case OP_GS:
        __asm__ volatile(ARM "1: movw %w1, %%gs\n\tmovl %%gs:(%2), %0\n2:\n\tmovw %w3, %%gs"
                         : "+r"(v) : "r"(sel), "r"(off), "r"(dsel) : "memory");
        break;
    case OP_SS:
        __asm__ volatile(ARM "1: movw %w1, %%ss\n\tmovl %%ss:(%2), %0\n2:\n\tmovw %w3, %%ss"
                         : "+r"(v) : "r"(sel), "r"(off), "r"(dsel) : "memory");
        break;
    }
    o_val = v;
}

/* Far jmp/call to g_sel: the target records CS (and the CS a call pushed). */
extern char a3_body[];
uint32_t a3_far(uint32_t call);
__asm__(".text\n"
        ".globl a3_far, a3_body\n"
        "a3_far:\n\t"
        "pushl %ebx\n\t"
        "movl 8(%esp), %ebx\n\t"
        "movl $a3_body, fp_go\n\t"
        "movw g_sel, %ax\n\t"
        "movw %ax, fp_go+4\n\t"
        "movl $a3_back, fp_back\n\t"
        "movw g_cs, %ax\n\t"
        "movw %ax, fp_back+4\n\t"
        "movl %esp, c_sp\n\t"
        "movl $0, c_out\n\t"
        "movl $a3_back, c_resume\n\t"
        "testl %ebx, %ebx\n\t"
        "jnz 5f\n\t"
        "movl $a3_site1, c_site\n\t"
        "movl $1, c_armed\n"
        "a3_site1: ljmp *fp_go\n"
        "5:\tmovl $a3_site2, c_site\n\t"
        "movl $1, c_armed\n"
        "a3_site2: lcall *fp_go\n"
        "a3_body:\n\t"
        "movw %cs, %ax\n\t"
        "movzwl %ax, %eax\n\t"
        "testl %ebx, %ebx\n\t"
        "jz 6f\n\t"
        "movl 4(%esp), %ecx\n\t"
        "shll $16, %ecx\n\t"
        "orl %ecx, %eax\n"
        "6:\tmovl %eax, o_val\n\t"
        "ljmp *fp_back\n"
        "a3_back:\n\t"
        "movl c_sp, %esp\n\t"
        "popl %ebx\n\t"
        "ret\n");

static uint16_t row_sel(int row, int rpl)
{
    if (row < 16)
        return (uint16_t)(0xff80 + row * 8 + rpl);
    return (uint16_t)(0xff84 | rpl);            /* TI=1 */
}

static uint32_t a3_loop(uint32_t cpl)
{
    g_dsel = cpl ? SEG_UDATA : SEG_KDATA;
    g_cs = cpl ? SEG_UCODE : SEG_KCODE;
    for (int row = 0; row < A3_ROWS; row++)
        for (int rpl = 0; rpl < 4; rpl++)
            for (int op = 0; op < NOPS; op++) {
                g_sel = row_sel(row, rpl);
                g_off = row < 16 ? big_off(row) : 0;
                o_val = 0;
                if (op <= OP_SS)
                    a3_load(op);
                else
                    a3_far(op == OP_CALL);
                c_armed = 0;
                struct res *p = &a3r[row][rpl][op];
                p->vec = c_out.faulted ? (uint16_t)c_out.vec : OK_VEC;
                p->err = !c_out.faulted ? 0 : (uint16_t)(c_out.vec == VEC_PF ? c_out.cr2 : c_out.err);
                p->val = c_out.faulted ? 0 : o_val;
            }
    return 0;
}

/* The architectural answer, from the table the guest loaded. */
static struct res a3_model(const uint64_t *tab, uint32_t limit, uint16_t sel, int cpl, int op, int row)
{
    struct res r = { OK_VEC, 0, 0 };
    uint16_t es = sel & 0xfffc;
    int rpl = sel & 3;
#define FAULT(v, e) do { r.vec = (v); r.err = (e); return r; } while (0)
    if ((sel & 4) || (uint32_t)(sel >> 3) * 8 + 7 > limit)
        FAULT(VEC_GP, es);
    uint64_t d = tab[sel >> 3];
    uint32_t acc = (uint32_t)(d >> 40) & 0xff, dpl = (acc >> 5) & 3;
    int s = acc & 0x10, code = acc & 0x08, p = acc & 0x80;
    int wr = !code && (acc & 2), rd = !code || (acc & 2), conf = code && (acc & 4);
    uint32_t base = desc_base(d);
    if (op <= OP_SS) {
        if (!s)
            FAULT(VEC_GP, es);
        if (op == OP_SS) {
            if (rpl != cpl || (int)dpl != cpl || !wr)
                FAULT(VEC_GP, es);
            if (!p)
                FAULT(VEC_SS, es);
        } else {
            if (!rd)
                FAULT(VEC_GP, es);
            if (!conf && ((int)dpl < cpl || (int)dpl < rpl))
                FAULT(VEC_GP, es);
            if (!p)
                FAULT(VEC_NP, es);
        }
        uint32_t lin = base + big_off(row);
        if (lin >= 0xffc00000u)
            FAULT(VEC_PF, lin);
        r.val = *(volatile uint32_t *)lin;
        return r;
    }
    if (!s || !code)
        FAULT(VEC_GP, es);
    if (conf) {
        if ((int)dpl > cpl)
            FAULT(VEC_GP, es);
    } else {
        if (rpl > cpl || (int)dpl != cpl)
            FAULT(VEC_GP, es);
    }
    if (!p)
        FAULT(VEC_NP, es);
    r.val = es | (uint32_t)cpl;
    if (op == OP_CALL)
        r.val |= (uint32_t)(cpl ? SEG_UCODE : SEG_KCODE) << 16;
    return r;
#undef FAULT
}

static int res_eq(struct res a, struct res b)
{
    return a.vec == b.vec && a.err == b.err && a.val == b.val;
}

static int res_tok(char *b, size_t n, struct res x, int op)
{
    if (x.vec == OK_VEC) {
        if (op == OP_CALL)
            return snprintf(b, n, "cs=%04x,pushed=%04x", x.val & 0xffff, x.val >> 16);
        if (op == OP_JMP)
            return snprintf(b, n, "cs=%04x", x.val & 0xffff);
        return snprintf(b, n, "=%08x", x.val);
    }
    if (x.vec == VEC_PF)
        return snprintf(b, n, "PF@%04x", x.err);
    return snprintf(b, n, "%s%04x", vshort(x.vec), x.err);
}

static void a3_report(const char *cfg, const char *rn, const uint64_t *tab, uint32_t limit, int cpl)
{
    int bad = 0;
    for (int row = 0; row < A3_ROWS; row++) {
        char line[400];
        int n = snprintf(line, sizeof line, "a3.%s.%s 0x%04x:", cfg, rn, row_sel(row, 0));
        int rowbad = 0;
        for (int op = 0; op < NOPS; op++) {
            int same = 1;
            for (int rpl = 1; rpl < 4; rpl++)
                same &= res_eq(a3r[row][rpl][op], a3r[row][0][op]);
            n += snprintf(line + n, sizeof line - n, " %s:", opname[op]);
            for (int rpl = 0; rpl < (same ? 1 : 4); rpl++) {
                if (rpl)
                    n += snprintf(line + n, sizeof line - n, "/");
                n += res_tok(line + n, sizeof line - n, a3r[row][rpl][op], op);
            }
            if (same)
                n += snprintf(line + n, sizeof line - n, "(rpl0-3)");
            for (int rpl = 0; rpl < 4; rpl++) {
                struct res want = a3_model(tab, limit, row_sel(row, rpl), cpl, op, row);
                if (!res_eq(want, a3r[row][rpl][op])) {
                    char t[40];
                    res_tok(t, sizeof t, want, op);
                    if (!rowbad)
                        printf("%s\n", line);   /* the line so far, then what differs */
                    printf("  expected %s rpl%d: %s\n", opname[op], rpl, t);
                    rowbad = 1;
                }
            }
        }
        printf("%s\n", line);
        bad += rowbad;
    }
    if (bad)
        fail(nm("a3.%s.%s", cfg, rn), "%d rows differ from the architectural answer", bad);
    else
        pass(nm("a3.%s.%s", cfg, rn));
}

static void a3_run(const char *cfg, const uint64_t *tab, uint32_t limit)
{
    struct dtr d = { (uint16_t)limit, (uint32_t)tab };
    lgdt(&d);
    reload_segments();
    for (int r = 0; r < NRINGS; r++) {
        memset(a3r, 0, sizeof a3r);
        if (r == R0)
            a3_loop(0);
        else
            run_in(r, a3_loop, 3);
        a3_report(cfg, rname[r], tab, limit, r == R0 ? 0 : 3);
    }
}

/* iret to ring 3 with CS/SS = given selectors; the ring-3 code reads DS
 * and reports with int $0x80 (SYS_A3RET), which longjmps back. */
#define SYS_A3RET 20
static struct kctx a3_ctx;
volatile uint32_t a3_ret_cs, a3_ret_ss, a3_ret_val, a3_ret_ds;
static int a3_syscall(struct trapframe *f)
{
    if (f->eax != SYS_A3RET)
        return 0;
    a3_ret_cs = f->cs;
    a3_ret_ss = f->ss;
    a3_ret_val = f->ebx;
    a3_ret_ds = f->ds;
    tss.esp0 = (uint32_t)kstack_top;
    ctx_restore(&a3_ctx, 1);
}
extern char a3_user_code[];
__asm__(".text\n"
        ".globl a3_user_code\n"
        "a3_user_code:\n\t"
        "movl %ds:(%esi), %ebx\n\t"
        "movl $20, %eax\n\t"
        "int $0x80\n\t"
        "ud2\n");

NOINL static void a3_iret(uint16_t cs, uint16_t ss, uint16_t ds, uint32_t off)
{
    tss.esp0 = (uint32_t)kstack_top;
    a3_ret_cs = a3_ret_ss = a3_ret_val = a3_ret_ds = 0;
    if (ctx_save(&a3_ctx) == 0) {
        __asm__ volatile("movl %%esp, c_sp\n\t"
                         ARM
                         "pushl %k1\n\t"
                         "pushl %2\n\t"
                         "pushl $0x202\n\t"
                         "pushl %k3\n\t"
                         "pushl $a3_user_code\n\t"
                         "movw %w4, %%ds\n"
                         "1: iret\n"
                         "2:\tmovl c_sp, %%esp\n\t"
                         "movw %%ss, %%ax\n\t"
                         "movw %%ax, %%ds"
                         : : "S"(off), "r"((uint32_t)ss), "r"((uint32_t)ustack_top - 64),
                           "r"((uint32_t)cs), "r"((uint32_t)ds)
                         : "memory", "eax");
        c_armed = 0;
    }
    c_armed = 0;
}

static void a3(void)
{
    print("--- a3: the monitor's selectors 0xff80-0xfff8\n");
    paging_on();
    big_fill();
    print("a3 guest GDT limit 0x7f (the selectors lie past it)\n");
    a3_run("lim7f", gdt, GDT_ENTRIES * 8 - 1);
    print("a3 guest GDT limit 0xffff (the guest's own descriptors at 8176-8191)\n");
    a3_run("limffff", biggdt, 0xffff);
    print("a3 guest GDT limit 0xff87 (only 0xff80 inside)\n");
    a3_run("limff87", biggdt, 0xff87);

    print("a3 iret to ring 3 with the monitor's selectors\n");
    syscall_hook = a3_syscall;
    struct dtr d = { 0xffff, (uint32_t)biggdt };
    lgdt(&d);
    reload_segments();
    a3_iret(0xff9b, 0xffab, 0xff83, 0);
    printf("a3.limffff.iret cs=ff9b ss=ffab ds=ff83: %s; ring 3 saw cs=0x%04x ss=0x%04x ds=0x%04x [ds:0]=0x%08x\n",
           c_out.faulted ? "faulted" : "ran", a3_ret_cs & 0xffff, a3_ret_ss & 0xffff, a3_ret_ds & 0xffff, a3_ret_val);
    check_eq("a3.limffff.iret_to_monitor_selectors", !c_out.faulted && (a3_ret_cs & 0xffff) == 0xff9b &&
             (a3_ret_ss & 0xffff) == 0xffab && (a3_ret_ds & 0xffff) == 0xff83 && a3_ret_val == ID32(F_PAT, 0), 1);
    /* A conforming DPL-0 code segment with RPL 3: iret goes to ring 3. */
    a3_iret(0xffcb, 0xffab, 0xffab, PAT(16));
    printf("a3.limffff.iret cs=ffcb ss=ffab ds=ffab: %s; ring 3 saw cs=0x%04x ss=0x%04x ds=0x%04x [ds:pat+0x40]=0x%08x\n",
           c_out.faulted ? "faulted" : "ran", a3_ret_cs & 0xffff, a3_ret_ss & 0xffff, a3_ret_ds & 0xffff, a3_ret_val);
    check_eq("a3.limffff.iret_to_conforming_dpl0", !c_out.faulted && (a3_ret_cs & 0xffff) == 0xffcb &&
             (a3_ret_ss & 0xffff) == 0xffab && (a3_ret_ds & 0xffff) == 0xffab && a3_ret_val == ID32(F_PAT, 0x40), 1);
    gdt_load();
    a3_iret(0xff9b, 0xffab, 0x23, 0);
    expect("a3.lim7f.iret cs=ff9b", VEC_GP, 0xff98, SITE, 0);
    a3_iret(SEG_UCODE, 0xffab, 0x23, 0);
    expect("a3.lim7f.iret cs=1b ss=ffab", VEC_GP, 0xffa8, SITE, 0);
    a3_iret(SEG_UCODE, SEG_UDATA, 0x23, PAT(3));
    printf("a3.lim7f.iret control: ring 3 saw cs=0x%04x ss=0x%04x [ds:pat+0x30]=0x%08x\n",
           a3_ret_cs & 0xffff, a3_ret_ss & 0xffff, a3_ret_val);
    check_eq("a3.lim7f.iret_control", a3_ret_val, ID32(F_PAT, 12));
    syscall_hook = 0;
    gdt_load();
    paging_disable();
}

/* ------------------------------------------------------------------------
 * a4: interrupt vectors the monitor uses.
 * ------------------------------------------------------------------------ */
#define INTV(n) case n: __asm__ volatile(ARM "1: int $" #n "\n2:" ::: "memory"); break;
NOINL static uint32_t p_int(uint32_t v)
{
    switch (v) {
    INTV(0x01) INTV(0x05)
    INTV(0x20) INTV(0x21) INTV(0x22) INTV(0x23) INTV(0x24) INTV(0x25) INTV(0x26) INTV(0x27)
    INTV(0x28) INTV(0x29) INTV(0x2a) INTV(0x2b) INTV(0x2c) INTV(0x2d) INTV(0x2e) INTV(0x2f)
    INTV(0x40) INTV(0x41) INTV(0x81)
    }
    return 0;
}

static const uint8_t a4_vecs[] = { 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
                                   0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x40 };
#define A4_NV ((int)sizeof a4_vecs)
static struct res a4r[A4_NV];

static uint32_t a4_loop(uint32_t arg)
{
    for (int i = 0; i < A4_NV; i++) {
        i_hits = 0;
        i_vec = i_cs = i_hcs = 0;
        p_int(a4_vecs[i]);
        c_armed = 0;
        struct res *p = &a4r[i];
        if (c_out.faulted) {
            p->vec = (uint16_t)c_out.vec;
            p->err = (uint16_t)c_out.err;
            p->val = 0;
        } else {
            p->vec = OK_VEC;
            p->err = 0;
            p->val = i_hits == 1 && i_vec == a4_vecs[i] ? i_hcs : 0xdead;
        }
    }
    if (arg) {          /* int $0x80 is past the IDT limit: leave with a #UD */
        c_kexit = 1;
        p_ud(0);
    }
    return 0;
}

/* want: vec OK_VEC with cs, or a fault with err = vector*8 + 2 (+ given) */
static void a4_check(const char *cfg, int r, uint16_t vec, int err_is_sel, uint16_t err, uint16_t cs_want, int only40)
{
    char line[400];
    int n = snprintf(line, sizeof line, "a4.%s.%s:", cfg, rname[r]);
    int bad = 0;
    for (int i = 0; i < A4_NV; i++) {
        struct res want = { OK_VEC, 0, cs_want };
        if (vec != OK_VEC && (!only40 || a4_vecs[i] == 0x40)) {
            want.vec = vec;
            want.err = err_is_sel ? err : (uint16_t)(a4_vecs[i] * 8 + 2);
            want.val = 0;
        }
        struct res x = a4r[i];
        if (x.vec == OK_VEC)
            n += snprintf(line + n, sizeof line - n, " %02x:cs=%04x", a4_vecs[i], x.val);
        else
            n += snprintf(line + n, sizeof line - n, " %02x:%s%04x", a4_vecs[i], vshort(x.vec), x.err);
        bad += !res_eq(x, want);
    }
    printf("%s\n", line);
    if (bad)
        fail(nm("a4.%s.%s", cfg, rname[r]), "%d vectors differ", bad);
    else
        pass(nm("a4.%s.%s", cfg, rname[r]));
}

static void a4_gates(int dpl, int present, uint16_t sel)
{
    for (int i = 0; i < A4_NV; i++) {
        int v = a4_vecs[i];
        idt_set_gate(v, idt_stub(v), sel, GATE_INTR32, dpl);
        idt_set_present(v, present);
        set_trap_handler(v, int_rec);
    }
}

static void a4_run(const char *cfg, uint16_t vec_r0, uint16_t vec_r3, int err_is_sel, uint16_t err,
                   uint16_t cs0, int only40, int rings)
{
    for (int r = 0; r < rings; r++) {
        memset(a4r, 0, sizeof a4r);
        run_in(r, a4_loop, r != R0 && only40);
        c_kexit = 0;
        a4_check(cfg, r, r == R0 ? vec_r0 : vec_r3, err_is_sel, err, cs0, only40);
    }
}

/* BOUND: lower/upper pair at g_ebx, index eax = arg. */
NOINL static uint32_t p_bound(uint32_t idx)
{
    __asm__ volatile(ARM "1: boundl %0, (%1)\n2:" : : "r"(idx), "r"(g_ebx) : "memory");
    return 0;
}

static void a4(void)
{
    print("--- a4: int $0x20-$0x2f and $0x40 (the monitor's IRQ and callout vectors), #BR, int $1/$5\n");
    paging_on();
    idt_load();
    big_fill();

    a4_gates(3, 1, SEG_KCODE);
    a4_run("dpl3", OK_VEC, OK_VEC, 0, 0, SEG_KCODE, 0, NRINGS);
    a4_gates(0, 1, SEG_KCODE);
    a4_run("dpl0", OK_VEC, VEC_GP, 0, 0, SEG_KCODE, 0, NRINGS);
    a4_gates(3, 0, SEG_KCODE);
    a4_run("notpresent", VEC_NP, VEC_NP, 0, 0, 0, 0, NRINGS);
    a4_gates(0, 0, SEG_KCODE);
    a4_run("notpresent_dpl0", VEC_NP, VEC_GP, 0, 0, 0, 0, NRINGS);
    a4_gates(3, 1, SEG_KCODE);
    {
        struct dtr d = { 0x1ff, (uint32_t)idt };       /* vectors 0..63 */
        lidt(&d);
        a4_run("idtlimit1ff", VEC_GP, VEC_GP, 0, 0, SEG_KCODE, 1, NRINGS);
        idt_load();
    }
    /* Gates whose selector is one of the monitor's. */
    a4_gates(3, 1, 0xff90);
    a4_run("gatesel_ff90.lim7f", VEC_GP, VEC_GP, 1, 0xff90, 0, 0, NRINGS);
    {
        struct dtr d = { 0xffff, (uint32_t)biggdt };
        lgdt(&d);
        reload_segments();
        a4_run("gatesel_ff90.limffff", OK_VEC, OK_VEC, 0, 0, 0xff90, 0, NRINGS);
        a4_gates(3, 1, 0xff98);         /* DPL-3 code: #GP from ring 0 */
        a4_run("gatesel_ff98.limffff", VEC_GP, VEC_GP, 1, 0xff98, 0, 0, 1);
        a4_gates(3, 1, 0xffe8);         /* DPL-0 code, not present */
        a4_run("gatesel_ffe8.limffff", VEC_NP, VEC_NP, 1, 0xffe8, 0, 0, NRINGS);
        gdt_load();
    }
    a4_gates(3, 1, SEG_KCODE);

    /* int $1, int $5 (the monitor uses #DB and #BR) */
    for (int dpl = 3; dpl >= 0; dpl -= 3) {
        idt_set_dpl(1, dpl);
        idt_set_dpl(5, dpl);
        for (int r = 0; r < NRINGS; r++) {
            run_in(r, p_int, 1);
            if (dpl == 3 || r == R0)
                expect(nm("a4.int1.dpl%d.%s", dpl, rname[r]), VEC_DB, 0, c_site + 2, 0);
            else
                expect(nm("a4.int1.dpl%d.%s", dpl, rname[r]), VEC_GP, 0x0a, SITE, 0);
            run_in(r, p_int, 5);
            if (dpl == 3 || r == R0)
                expect(nm("a4.int5.dpl%d.%s", dpl, rname[r]), VEC_BR, 0, c_site + 2, 0);
            else
                expect(nm("a4.int5.dpl%d.%s", dpl, rname[r]), VEC_GP, 0x2a, SITE, 0);
        }
    }
    idt_set_dpl(1, 0);
    idt_set_dpl(5, 0);

    /* BOUND */
    static int32_t bnd[2] = { 10, 20 };
    for (int r = 0; r < NRINGS; r++) {
        g_ebx = (uint32_t)bnd;
        run_in(r, p_bound, 15);
        expect(nm("a4.bound.inside.%s", rname[r]), NOFAULT, 0, 0, 0);
        run_in(r, p_bound, 30);
        expect(nm("a4.bound.above.%s", rname[r]), VEC_BR, 0, SITE, 0);
        run_in(r, p_bound, (uint32_t)-5);
        expect(nm("a4.bound.below.%s", rname[r]), VEC_BR, 0, SITE, 0);
        ID32(F_BELOW, 0xffc) = 0;
        g_ebx = 0xffbffffcu;
        run_in(r, p_bound, 0);
        expect_pf(nm("a4.bound.pair_straddles_ffc00000.%s", rname[r]), perr(r, 0), SITE, 0xffc00000u);
        g_ebx = 0xffc00100u;
        run_in(r, p_bound, 0);
        expect_pf(nm("a4.bound.pair_at_ffc00100.%s", rname[r]), perr(r, 0), SITE, 0xffc00100u);
        g_ebx = 0xfffffffcu;
        run_in(r, p_bound, 0);
        expect_pf(nm("a4.bound.pair_at_fffffffc.%s", rname[r]), perr(r, 0), SITE, 0xfffffffcu);
    }
    for (int i = 0; i < A4_NV; i++)
        idt_set_gate(a4_vecs[i], idt_stub(a4_vecs[i]), SEG_KCODE, GATE_INTR32, 0);
    paging_disable();
}

/* ------------------------------------------------------------------------
 * a5: the guest's IDT, GDT and TSS in the region.
 * ------------------------------------------------------------------------ */
static void int_rec_b(struct trapframe *f)
{
    int_rec(f);
    i_tag = 0xb;
}
static void int_rec_c(struct trapframe *f)
{
    int_rec(f);
    i_tag = 0xc;
}

static uint8_t kstack2[4096] ALIGNED(16);

/* Which table delivered an interrupt shows in the vector the handler sees:
 * the copies point gate 0x41 at the library's stub for 0x42 or 0x43 (each
 * stub pushes its own vector number; handlers tag b and c). */
static void a5_int(const char *name, int vec_in, uint32_t want_vec, uint32_t want_tag, int rings)
{
    for (int r = 0; r < rings; r++) {
        i_hits = 0; i_vec = 0; i_tag = 0;
        run_in(r, p_int, (uint32_t)vec_in);
        printf("%s.%s: %s; handler hits=%u vector=0x%02x tag=%x cs=0x%04x\n", name, rname[r],
               c_out.faulted ? "faulted" : "delivered", i_hits, i_vec, i_tag, i_cs & 0xffff);
        check_eq(nm("%s.%s", name, rname[r]), !c_out.faulted && i_hits == 1 && i_vec == want_vec &&
                 i_tag == want_tag, 1);
    }
}

static uint32_t gdt_copy_from_lib(uint32_t frame_off_dst, int n)
{
    for (int i = 0; i < n; i++)
        *(volatile uint64_t *)(frame_off_dst + (uint32_t)i * 8) = gdt[i];
    return 0;
}

static void tss_restore(void)
{
    gdt[5] = make_desc((uint32_t)&tss, sizeof tss - 1, ACC_P | ACC_TSS32, 0);
    ltr(SEG_TSS);
}

static void a5(void)
{
    print("--- a5: the guest's IDT, GDT and TSS at 0xffc00000 and up\n");
    paging_on();
    top_empty();
    set_trap_handler(0x41, int_rec);
    set_trap_handler(0x42, int_rec_b);
    set_trap_handler(0x43, int_rec_c);
    set_trap_handler(0x21, int_rec);
    for (int v = 0x41; v <= 0x43; v++)
        idt_set_gate(v, idt_stub(v), SEG_KCODE, GATE_INTR32, 3);

    /* 5.1 a full IDT copy at 0xffc00000 (kernel rw mapping of F_IDT);
     * in the copy gate 0x41 leads to stub 0x42. */
    memcpy(frames[F_IDT], idt, sizeof idt);
    ((volatile uint64_t *)frames[F_IDT])[0x41] = idt[0x42];
    top_map(0xffc00000u, FRAME(F_IDT), PG_W);
    {
        struct dtr d = { sizeof idt - 1, 0xffc00000u }, s;
        lidt(&d);
        sidt(&s);
        printf("a5.idt_at_ffc00000: sidt base=0x%08x limit=0x%04x\n", s.base, s.limit);
        check_eq("a5.idt_at_ffc00000.sidt", s.base == 0xffc00000u && s.limit == sizeof idt - 1, 1);
        a5_int("a5.idt_at_ffc00000.int41_through_copy", 0x41, 0x42, 0xb, NRINGS);
        for (int r = 0; r < NRINGS; r++) {
            run_in(r, p_ud, 0);
            expect(nm("a5.idt_at_ffc00000.ud2.%s", rname[r]), VEC_UD, 0, SITE, 0);
            run_in(r, p_rd32, 0x70000000u);
            expect_pf(nm("a5.idt_at_ffc00000.pf.%s", rname[r]), perr(r, 0), SITE, 0x70000000u);
        }
        /* Rewrite gate 0x41 through the region: now stub 0x43. */
        volatile uint64_t *gv = (volatile uint64_t *)0xffc00000u;
        gv[0x41] = idt[0x43];
        a5_int("a5.idt_at_ffc00000.int41_after_rewrite_via_region", 0x41, 0x43, 0xc, NRINGS);
        idt_load();
    }

    /* 5.2 an IDT with entries 0..13 on a mapped page (0xffbfff90..) and 14..
     * on an unmapped region page: int $0x41 -> #PF reading its gate -> #PF
     * reading gate 14 -> #DF through gate 8. */
    top_none();
    {
        volatile uint64_t *lo = (volatile uint64_t *)(FRAME(F_BELOW) + 0xf90);
        for (int v = 0; v < 14; v++)
            lo[v] = idt[v];
        struct dtr d = { sizeof idt - 1, 0xffbfff90u };
        lidt(&d);
        c_kexit = 1;
        for (int r = 0; r < NRINGS; r++) {
            run_in(r, p_ud, 0);
            expect(nm("a5.idt_half_unmapped.ud2.%s", rname[r]), VEC_UD, 0, SITE, 0);
            run_in(r, p_int, 0x41);
            expect(nm("a5.idt_half_unmapped.int41.%s", rname[r]), VEC_DF, 0, ANY, 0xffc00000u);
            run_in(r, p_rd32, 0x70000000u);
            expect(nm("a5.idt_half_unmapped.pf.%s", rname[r]), VEC_DF, 0, ANY, 0xffc00000u);
        }
        c_kexit = 0;
        idt_load();
    }

    /* 5.2b the same IDT base, gates 14..255 now on a kernel mapping of
     * F_IDT at 0xffc00000: the IDT straddles 0xffc00000 and works. */
    top_empty();
    {
        volatile uint64_t *lo = (volatile uint64_t *)(FRAME(F_BELOW) + 0xf90);
        for (int v = 0; v < 14; v++)
            lo[v] = idt[v];
        volatile uint64_t *hi = (volatile uint64_t *)FRAME(F_IDT);
        for (int v = 14; v < 256; v++)
            hi[v - 14] = idt[v];
        hi[0x41 - 14] = idt[0x42];
        top_map(0xffc00000u, FRAME(F_IDT), PG_W);
        struct dtr d = { sizeof idt - 1, 0xffbfff90u };
        lidt(&d);
        a5_int("a5.idt_straddles_ffc00000.int41", 0x41, 0x42, 0xb, NRINGS);
        for (int r = 0; r < NRINGS; r++) {
            run_in(r, p_rd32, 0x70000000u);
            expect_pf(nm("a5.idt_straddles_ffc00000.pf.%s", rname[r]), perr(r, 0), SITE, 0x70000000u);
        }
        idt_load();
    }

    /* 5.2c an IDT at 0xffc00e00: gates 0..63 on the mapped page
     * 0xffc00000, gates 64.. on 0xffc01000, absent.  int $0x41 (65) faults
     * reading its gate: #PF, error code 0 (an implicit supervisor read, even
     * from ring 3), CR2 = the gate's address, delivered through gate 14. */
    top_empty();
    {
        volatile uint64_t *g = (volatile uint64_t *)(FRAME(F_IDT) + 0xe00);
        for (int v = 0; v < 64; v++)
            g[v] = idt[v];
        top_map(0xffc00000u, FRAME(F_IDT), PG_W);
        struct dtr d = { sizeof idt - 1, 0xffc00e00u };
        lidt(&d);
        c_kexit = 1;    /* ring 3 cannot come back with int $0x80 (gate 128 absent) */
        for (int r = 0; r < NRINGS; r++) {
            run_in(r, p_int, 0x41);
            expect_pf(nm("a5.idt_gate41_unmapped.int41.%s", rname[r]), 0, SITE, 0xffc01008u);
            i_hits = 0;
            run_in(r, p_int, 0x21);
            expect(nm("a5.idt_gate41_unmapped.int21_dpl0.%s", rname[r]), r == R0 ? NOFAULT : VEC_GP,
                   0x10a, SITE, 0);
            if (r == R0)
                check_eq(nm("a5.idt_gate41_unmapped.int21_delivered.%s", rname[r]), i_hits, 1);
        }
        c_kexit = 0;
        idt_load();
    }

    /* 5.3 an IDT that wraps: base 0xfffffc00, gates 0..127 on the last page
     * (guest kernel mapping of F_LAST), 128..255 at linear 0x0..0x3ff. */
    top_empty();
    {
        top_map(0xfffff000u, FRAME(F_LAST), PG_W);
        volatile uint64_t *hi = (volatile uint64_t *)(FRAME(F_LAST) + 0xc00);
        volatile uint64_t *lo = (volatile uint64_t *)phys(0);
        uint64_t save[128];
        for (int v = 0; v < 128; v++) {
            hi[v] = idt[v];
            save[v] = lo[v];
            lo[v] = idt[128 + v];
        }
        hi[0x41] = idt[0x42];
        lo[0x81 - 128] = idt[0x43];
        struct dtr d = { sizeof idt - 1, 0xfffffc00u };
        lidt(&d);
        a5_int("a5.idt_wraps.int41_on_last_page", 0x41, 0x42, 0xb, NRINGS);
        a5_int("a5.idt_wraps.int81_at_linear_8", 0x81, 0x43, 0xc, NRINGS);
        for (int r = 0; r < NRINGS; r++) {
            run_in(r, p_ud, 0);
            expect(nm("a5.idt_wraps.ud2.%s", rname[r]), VEC_UD, 0, SITE, 0);
        }
        idt_load();
        for (int v = 0; v < 128; v++)
            lo[v] = save[v];
    }

    /* 5.4 the GDT at 0xffd00000 (a copy; entry 6 differs). */
    top_empty();
    {
        gdt_set(6, PAT(0x10), 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_16);
        gdt_copy_from_lib(FRAME(F_GDT), GDT_ENTRIES);
        volatile uint64_t *cg = (volatile uint64_t *)FRAME(F_GDT);
        cg[6] = make_desc(PAT(0x20), 0xfff, ACC_UDATA, FLG_16);     /* accessed bit clear */
        top_map(0xffd00000u, FRAME(F_GDT), PG_W);
        struct dtr d = { GDT_ENTRIES * 8 - 1, 0xffd00000u }, s;
        lgdt(&d);
        reload_segments();
        sgdt(&s);
        printf("a5.gdt_at_ffd00000: sgdt base=0x%08x limit=0x%04x\n", s.base, s.limit);
        check_eq("a5.gdt_at_ffd00000.sgdt", s.base == 0xffd00000u && s.limit == GDT_ENTRIES * 8 - 1, 1);
        for (int r = 0; r < NRINGS; r++) {
            g_sel = SEL(6, 3);
            uint32_t v = run_in(r, p_rd_es, 0);
            expect_val(nm("a5.gdt_at_ffd00000.es=sel6.%s", rname[r]), v, ID32(F_PAT, 0x80));
        }
        printf("a5.gdt_at_ffd00000: entry 6 high dword after the loads 0x%08x (accessed bit %u)\n",
               (uint32_t)(cg[6] >> 32), (uint32_t)(cg[6] >> 40) & 1);
        check_eq("a5.gdt_at_ffd00000.accessed_bit_set", (uint32_t)(cg[6] >> 40) & 1, 1);
        /* Rewrite entry 6's base through the region. */
        volatile uint64_t *rg = (volatile uint64_t *)0xffd00000u;
        rg[6] = make_desc(PAT(0x30), 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_16);
        for (int r = 0; r < NRINGS; r++) {
            g_sel = SEL(6, 3);
            uint32_t v = run_in(r, p_rd_es, 0);
            expect_val(nm("a5.gdt_at_ffd00000.rewritten_via_region.%s", rname[r]), v, ID32(F_PAT, 0xc0));
        }
        /* Read-only GDT page, descriptor with the accessed bit clear: the
         * CPU's write of the accessed bit faults (#PF err 3, or 3 from ring 3:
         * an implicit supervisor access). */
        cg[7] = make_desc(PAT(0x20), 0xfff, ACC_UDATA, FLG_16);
        top_map(0xffd00000u, FRAME(F_GDT), 0);
        for (int r = 0; r < NRINGS; r++) {
            g_sel = SEL(7, 3);
            run_in(r, p_rd_es, 0);
            expect_pf(nm("a5.gdt_readonly.accessed_bit_write.%s", rname[r]), 3, SITE, 0xffd0003cu);
        }
        top_map(0xffd00000u, FRAME(F_GDT), PG_W);
        gdt_load();
        gdt[6] = 0;
    }

    /* 5.5 a GDT half on an unmapped region page: base 0xffbfffc0, entries
     * 0..7 on F_BELOW, 8..15 at 0xffc00000 (absent). */
    top_none();
    {
        gdt_copy_from_lib(FRAME(F_BELOW) + 0xfc0, 8);
        struct dtr d = { GDT_ENTRIES * 8 - 1, 0xffbfffc0u };
        lgdt(&d);
        reload_segments();
        for (int r = 0; r < NRINGS; r++) {
            g_sel = SEL(9, 3);
            run_in(r, p_rd_es, 0);
            expect_pf(nm("a5.gdt_half_unmapped.load_sel9.%s", rname[r]), 0, SITE, 0xffc00008u);
            g_cs = r == R0 ? SEG_KCODE : SEG_UCODE;
            g_sel = SEL(10, r == R0 ? 0 : 3);
            run_in(r, a3_far, 0);
            expect_pf(nm("a5.gdt_half_unmapped.ljmp_sel10.%s", rname[r]), 0, SITE, 0xffc00010u);
        }
        gdt_load();
    }

    /* 5.6 the TSS in the region: a copy at 0xffe00000 with esp0 = kstack2,
     * then one at 0xfffffffc whose esp0/ss0 wrap to linear 0 and 4, then
     * esp0 inside the region page. */
    top_empty();
    {
        struct tss *t2 = (struct tss *)FRAME(F_TSS);
        memset(t2, 0, sizeof *t2);
        t2->esp0 = (uint32_t)kstack2 + sizeof kstack2;
        t2->ss0 = SEG_KDATA;
        t2->iomap_base = sizeof *t2;
        top_map(0xffe00000u, FRAME(F_TSS), PG_W);
        gdt[7] = make_desc(0xffe00000u, sizeof(struct tss) - 1, ACC_P | ACC_TSS32, 0);
        ltr(SEL(7, 0));
        for (int r = R3; r < NRINGS; r++) {
            i_hits = 0; i_frame = 0;
            run_in(r, p_int, 0x41);
            printf("a5.tss_at_ffe00000.int41.%s: hits=%u frame on kstack2: %u\n", rname[r], i_hits,
                   i_frame >= (uint32_t)kstack2 && i_frame < (uint32_t)kstack2 + sizeof kstack2);
            check_eq(nm("a5.tss_at_ffe00000.int41.%s", rname[r]), i_hits == 1 &&
                     i_frame >= (uint32_t)kstack2 && i_frame < (uint32_t)kstack2 + sizeof kstack2, 1);
            run_in(r, p_rd32, 0x70000000u);
            expect_pf(nm("a5.tss_at_ffe00000.pf.%s", rname[r]), 4, SITE, 0x70000000u);
            printf("a5.tss_at_ffe00000.pf.%s: frame on kstack2: %u\n", rname[r],
                   c_out.frame >= (uint32_t)kstack2 && c_out.frame < (uint32_t)kstack2 + sizeof kstack2);
        }
        /* esp0 inside the region page */
        t2->esp0 = 0xffe00ff0u;
        for (int r = R3; r < NRINGS; r++) {
            i_hits = 0; i_frame = 0;
            run_in(r, p_int, 0x41);
            printf("a5.tss_esp0_ffe00ff0.int41.%s: hits=%u frame=0x%08x ss saved in region frame: 0x%04x\n",
                   rname[r], i_hits, i_frame, ID32(F_TSS, 0xfec) & 0xffff);
            check_eq(nm("a5.tss_esp0_ffe00ff0.int41.%s", rname[r]), i_hits == 1 && i_frame < 0xffe00ff0u &&
                     i_frame > 0xffe00f00u && (ID32(F_TSS, 0xfec) & 0xffff) == SEG_UDATA, 1);
        }
        tss_restore();

        /* The wrapping TSS: its page (0xfffff000) is not even mapped. */
        uint32_t save0 = PHYS32(0), save4 = PHYS32(4);
        PHYS32(0) = (uint32_t)kstack2 + sizeof kstack2 - 64;
        PHYS32(4) = SEG_KDATA;
        gdt[8] = make_desc(0xfffffffcu, sizeof(struct tss) - 1, ACC_P | ACC_TSS32, 0);
        ltr(SEL(8, 0));
        for (int r = R3; r < NRINGS; r++) {
            i_hits = 0; i_frame = 0;
            run_in(r, p_int, 0x41);
            printf("a5.tss_at_fffffffc.int41.%s: hits=%u frame on kstack2: %u\n", rname[r], i_hits,
                   i_frame >= (uint32_t)kstack2 && i_frame < (uint32_t)kstack2 + sizeof kstack2 - 64);
            check_eq(nm("a5.tss_at_fffffffc.esp0_wraps.%s", rname[r]), i_hits == 1 &&
                     i_frame >= (uint32_t)kstack2 && i_frame < (uint32_t)kstack2 + sizeof kstack2 - 64, 1);
        }
        tss_restore();
        PHYS32(0) = save0;
        PHYS32(4) = save4;
        gdt[7] = gdt[8] = 0;
    }
    for (int v = 0x41; v <= 0x43; v++)
        idt_set_gate(v, idt_stub(v), SEG_KCODE, GATE_INTR32, 0);
    top_none();
    paging_disable();
}

/* ------------------------------------------------------------------------
 * a6: guest page tables onto guest-physical 0x400000-0x7fffff and beyond.
 * ------------------------------------------------------------------------ */
static const uint32_t a6_pages[] = { 0x400000u, 0x401000u, 0x402000u, 0x4ff000u, 0x5a5000u, 0x7ff000u };
#define A6_NP ((int)(sizeof a6_pages / sizeof a6_pages[0]))
#define A6_VA 0x20000000u

static uint32_t a6_pat(uint32_t pa, uint32_t off)
{
    return (pa ^ 0x5e000000u) + off;
}

/* Ring 3: call the code at g_eax, return its EAX. */
NOINL static uint32_t p_callv(uint32_t a)
{
    __asm__ volatile("movl %%esp, c_sp\n\t" ARM "1: call *%0\n2:\n\tmovl c_sp, %%esp"
                     : "+a"(a) : : "memory", "ecx", "edx");
    return a;
}

static void a6(void)
{
    print("--- a6: guest page tables onto guest-physical 0x400000-0x7fffff\n");
    paging_on();
    /* The identity map covers 0..8 MiB: fill the sample pages. */
    for (int i = 0; i < A6_NP; i++) {
        volatile uint32_t *p = (volatile uint32_t *)a6_pages[i];
        p[0] = a6_pat(a6_pages[i], 0);
        p[0x3ff] = a6_pat(a6_pages[i], 0xffc);
    }
    /* mov $0x600d600d, %eax; ret at guest-physical 0x402800 */
    static const uint8_t code[] = { 0xb8, 0x0d, 0x60, 0x0d, 0x60, 0xc3 };
    memcpy((void *)0x402800, code, sizeof code);

    /* 4 KiB user pages at 0x20000000.. */
    pd[A6_VA >> 22] = (uint32_t)pt_a6 | PG_P | PG_W | PG_U;
    for (int i = 0; i < A6_NP; i++)
        pt_a6[i] = a6_pages[i] | PG_P | PG_W | PG_U;
    flush();
    for (int r = 0; r < NRINGS; r++)
        for (int i = 0; i < A6_NP; i++) {
            uint32_t v0 = run_in(r, p_rd32, A6_VA + (uint32_t)i * 0x1000);
            int f0 = c_out.faulted;
            uint32_t v1 = run_in(r, p_rd32, A6_VA + (uint32_t)i * 0x1000 + 0xffc);
            printf("a6.4k.%s: va 0x%08x -> pa 0x%08x: +0=0x%08x +0xffc=0x%08x%s\n", rname[r],
                   A6_VA + (uint32_t)i * 0x1000, a6_pages[i], v0, v1, f0 || c_out.faulted ? " (faulted)" : "");
            check_eq(nm("a6.4k.%s.pa_%08x", rname[r], a6_pages[i]), !f0 && !c_out.faulted &&
                     v0 == a6_pat(a6_pages[i], 0) && v1 == a6_pat(a6_pages[i], 0xffc), 1);
        }
    for (int r = 0; r < NRINGS; r++) {
        g_val = 0x3e3e0000u + (uint32_t)r;
        run_in(r, p_wr32, A6_VA + 0x1000 + 0x10);
        expect_val(nm("a6.4k.%s.write_pa_401010", rname[r]), PHYS32(0x401010), g_val);
        uint32_t v = run_in(r, p_callv, A6_VA + 0x2800);
        expect_val(nm("a6.4k.%s.call_code_at_pa_402800", rname[r]), v, 0x600d600du);
    }

    /* 4 MiB pages: PSE. */
    write_cr4(read_cr4() | CR4_PSE);
    pd[0x40000000u >> 22] = 0x400000u | PG_P | PG_W | PG_U | 0x80;
    pd[1023] = 0x400000u | PG_P | PG_W | PG_U | 0x80;
    flush();
    for (int r = 0; r < NRINGS; r++) {
        static const uint32_t bases[] = { 0x40000000u, 0xffc00000u };
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < A6_NP; i++) {
                uint32_t va = bases[b] + a6_pages[i] - 0x400000u;
                uint32_t v0 = run_in(r, p_rd32, va);
                int f0 = c_out.faulted;
                uint32_t v1 = run_in(r, p_rd32, va + 0xffc);
                printf("a6.4m.%s: va 0x%08x -> pa 0x%08x: +0=0x%08x +0xffc=0x%08x%s\n", rname[r], va,
                       a6_pages[i], v0, v1, f0 || c_out.faulted ? " (faulted)" : "");
                check_eq(nm("a6.4m.%s.va_%08x", rname[r], va), !f0 && !c_out.faulted &&
                         v0 == a6_pat(a6_pages[i], 0) && v1 == a6_pat(a6_pages[i], 0xffc), 1);
            }
        g_val = 0x4e4e0000u + (uint32_t)r;
        run_in(r, p_wr32, 0xffc01020u);
        expect_val(nm("a6.4m.%s.write_ffc01020_lands_pa_401020", rname[r]), PHYS32(0x401020), g_val);
        g_val = 0x4f4f0000u + (uint32_t)r;
        run_in(r, p_wr32, 0xfffffffcu);
        expect_val(nm("a6.4m.%s.write_fffffffc_lands_pa_7ffffc", rname[r]), PHYS32(0x7ffffc), g_val);
        PHYS32(0x7ffffc) = a6_pat(0x7ff000u, 0xffc);
        uint32_t v = run_in(r, p_callv, 0xffc02800u);
        expect_val(nm("a6.4m.%s.call_ffc02800", rname[r]), v, 0x600d600du);
    }
    printf("a6.4m pde[1023]=0x%08x pde[256]=0x%08x\n", pd[1023], pd[0x40000000u >> 22]);
    pd[0x40000000u >> 22] = 0;
    pd[1023] = 0;
    flush();
    write_cr4(read_cr4() & ~CR4_PSE);

    /* A recursive page directory in slot 1023: 0xfffff000 is the directory,
     * 0xffc00000 + 4 KiB * n the page table of PDE n. */
    pd[1023] = (uint32_t)pd | PG_P | PG_W | PG_U;
    flush();
    for (int r = 0; r < NRINGS; r++) {
        uint32_t v0 = run_in(r, p_rd32, 0xfffff000u);
        uint32_t v1 = run_in(r, p_rd32, 0xfffffffcu);
        uint32_t v2 = run_in(r, p_rd32, 0xffc00000u + 4 * 0x100);
        uint32_t v3 = run_in(r, p_rd32, 0xffc00000u + (A6_VA >> 22) * 0x1000 + 4);
        printf("a6.selfmap.%s: [0xfffff000]=0x%08x [0xfffffffc]=0x%08x [0xffc00400]=0x%08x [0xffc80004]=0x%08x\n",
               rname[r], v0, v1, v2, v3);
        uint32_t m = ~(uint32_t)(PG_A | PG_D);
        check_eq(nm("a6.selfmap.%s", rname[r]), (v0 & m) == (pd[0] & m) && (v1 & m) == (pd[1023] & m) &&
                 (v2 & m) == ((0x100000u | PG_P | PG_W | PG_U) & m) && (v3 & m) == ((0x401000u | PG_P | PG_W | PG_U) & m), 1);
    }
    /* Retarget PTE 0 of 0x20000000 through the recursive mapping. */
    {
        volatile uint32_t *pte = (volatile uint32_t *)(0xffc00000u + (A6_VA >> 22) * 0x1000);
        *pte = 0x7ff000u | PG_P | PG_W | PG_U;
        invlpg(A6_VA);
        uint32_t v = *(volatile uint32_t *)A6_VA;
        printf("a6.selfmap: pte written through 0xffc80000 -> 0x7ff000; read 0x%08x; pt_a6[0]=0x%08x\n",
               v, pt_a6[0]);
        check_eq("a6.selfmap.retarget", v == a6_pat(0x7ff000u, 0) && (pt_a6[0] & ~0x60u) == (0x7ff000u | 7), 1);
        pt_a6[0] = 0x400000u | PG_P | PG_W | PG_U;
    }
    pd[1023] = 0;
    flush();

    /* Guest-physical pages past the end of RAM (64 MiB), at 0xffc00000,
     * and at 0xfffff000 (the BIOS ROM on a PC: printed only). */
    static const uint32_t absent[] = { 0x04000000u, 0x3ffff000u, 0xffc00000u, 0xffe00000u, 0xfffff000u };
    for (int i = 0; i < 5; i++)
        pt_a6[0x10 + i] = absent[i] | PG_P | PG_W | PG_U;
    flush();
    for (int r = 0; r < NRINGS; r++)
        for (int i = 0; i < 5; i++) {
            uint32_t va = A6_VA + (uint32_t)(0x10 + i) * 0x1000;
            g_val = 0x77777777u;
            run_in(r, p_wr32, va + 0x10);
            int wf = c_out.faulted;
            uint32_t v = run_in(r, p_rd32, va + 0x10);
            uint32_t w = run_in(r, p_rd32, va + 0xff0);
            if (absent[i] == 0xfffff000u) {
                printf("a6.phys.%s: pa 0x%08x: +0x10=0x%08x +0xff0=0x%08x%s (not checked)\n", rname[r],
                       absent[i], v, w, wf ? " (write faulted)" : "");
                continue;
            }
            printf("a6.phys.%s: pa 0x%08x: +0x10=0x%08x +0xff0=0x%08x%s\n", rname[r], absent[i], v, w,
                   wf ? " (write faulted)" : "");
            check_eq(nm("a6.phys.%s.pa_%08x.zeros", rname[r], absent[i]), !wf && !c_out.faulted && v == 0 && w == 0, 1);
        }
    for (int i = 0; i < 0x20; i++)
        pt_a6[i] = 0;
    pd[A6_VA >> 22] = 0;
    flush();
    paging_disable();
}

/* ------------------------------------------------------------------------
 * a7: QEMU's far-transfer stack accesses, and a scan of the region.
 *
 * QEMU's TCG makes the stack accesses of far CALL, far RET and IRET with
 * supervisor rights even at CPL 3 (its seg_helper.c: "add a is_user flag
 * to have proper security support"): a ring-3 lcall whose ESP points at a
 * supervisor page writes it.  Bare QEMU is the reference, so the guest
 * expects what bare QEMU does.  The lret/lcall below aim ESP at the
 * guest's GDT base + 8 * 8176.., its own table (big GDT loaded).
 * ------------------------------------------------------------------------ */
/* The base of the guest's GDT, told to ring 3 by the kernel.  (Ring 3
 * does not ask SGDT: SGDT is one of the sensitive instructions that do
 * not trap at CPL 3, so under any monitor running user code directly on
 * this CPU it shows the monitor's GDTR - the classic hole of x86
 * virtualization, docs/00-overview.md - and the guest would aim at the
 * monitor's table instead of its own.) */
volatile uint32_t a8_gdt_base;
extern char a7_target[];
uint32_t a7_lcall(uint32_t off);
uint32_t a7_lret(uint32_t off);
uint32_t a7_iret_at(uint32_t esp);
__asm__(".text\n"
        ".globl a7_lcall, a7_target, a7_lret, a7_iret_at\n"
        "a7_lcall:\n\t"
        "pushl %ebx\n\t"
        "movl 8(%esp), %ebx\n\t"
        "movl a8_gdt_base, %eax\n\t"
        "addl %ebx, %eax\n\t"
        "movl $a7_target, fp_go\n\t"
        "movw g_cs, %cx\n\t"
        "movw %cx, fp_go+4\n\t"
        "movl %esp, c_sp\n\t"
        "movl $0, c_out\n\t"
        "movl $1f, c_site\n\t"
        "movl $0, c_site2\n\t"
        "movl $2f, c_resume\n\t"
        "movl $1, c_armed\n\t"
        "movl %eax, %esp\n"
        "1:\tlcall *fp_go\n"
        "a7_target:\n\t"
        "movl %esp, o_esp\n"
        "2:\tmovl c_sp, %esp\n\t"
        "popl %ebx\n\t"
        "ret\n"
        "a7_lret:\n\t"
        "pushl %ebx\n\t"
        "movl 8(%esp), %ebx\n\t"
        "movl a8_gdt_base, %eax\n\t"
        "addl %ebx, %eax\n\t"
        "movl %esp, c_sp\n\t"
        "movl $0, c_out\n\t"
        "movl $1f, c_site\n\t"
        "movl $0, c_site2\n\t"
        "movl $2f, c_resume\n\t"
        "movl $1, c_armed\n\t"
        "movl %eax, %esp\n"
        "1:\tlret\n"
        "2:\tmovl c_sp, %esp\n\t"
        "popl %ebx\n\t"
        "ret\n"
        "a7_iret_at:\n\t"
        "pushl %ebx\n\t"
        "movl 8(%esp), %eax\n\t"
        "movl %esp, c_sp\n\t"
        "movl $0, c_out\n\t"
        "movl $1f, c_site\n\t"
        "movl $0, c_site2\n\t"
        "movl $2f, c_resume\n\t"
        "movl $1, c_armed\n\t"
        "movl %eax, %esp\n\t"
        "testl $1, g_val\n\t"
        "jnz 1f\n\t"
        "lret\n"
        "1:\tiret\n"
        "2:\tmovl c_sp, %esp\n\t"
        "popl %ebx\n\t"
        "ret\n");

/* Read (and write back) one dword in every page of the top 4 MiB. */
volatile uint32_t scan_ok, scan_first, scan_faults, scan_badfault;
NOINL static uint32_t p_rmw(uint32_t a)
{
    uint32_t v = 0;
    __asm__ volatile(ARM "1: movl (%1), %0\n\tmovl %0, (%1)\n2:" : "+r"(v) : "r"(a) : "memory");
    return v;
}
NOINL static uint32_t p_rd_only(uint32_t a)
{
    uint32_t v = 0;
    __asm__ volatile(ARM "1: movl (%1), %0\n2:" : "+r"(v) : "r"(a) : "memory");
    return v;
}
static uint32_t a7_scan(uint32_t write)
{
    scan_ok = scan_faults = scan_badfault = 0;
    scan_first = 0;
    uint32_t u = (g_cs & 3) ? 4 : 0;
    for (uint32_t a = 0xffc00000u; a >= 0xffc00000u; a += 0x1000) {
        if (write)
            p_rmw(a + 0x7f8);
        else
            p_rd_only(a + 0x7f8);
        c_armed = 0;
        if (!c_out.faulted) {
            if (!scan_ok++)
                scan_first = a;
        } else {
            scan_faults++;
            if (c_out.vec != VEC_PF || c_out.cr2 != a + 0x7f8 || c_out.err != u)
                scan_badfault++;
        }
    }
    return 0;
}

static void a7(void)
{
    print("--- a7: far call/return stack accesses at CPL 3 (supervisor rights on QEMU), a scan of the region\n");
    paging_on();
    for (int r = 0; r < NRINGS; r++)
        for (int w = 0; w < 2; w++) {
            run_in(r, a7_scan, (uint32_t)w);
            printf("a7.scan.%s.%s: %u pages without a fault (first 0x%08x), %u #PF, %u other faults\n",
                   rname[r], w ? "readwrite" : "read", scan_ok, scan_first, scan_faults, scan_badfault);
            check_eq(nm("a7.scan.%s.%s", rname[r], w ? "readwrite" : "read"),
                     scan_ok == 0 && scan_faults == 1024 && scan_badfault == 0, 1);
        }

    /* lret / iret at CPL 3 with ESP = 0xffc00000, no guest mapping. */
    for (int r = R3; r < NRINGS; r++) {
        g_val = 0;
        run_in(r, a7_iret_at, 0xffc00000u);
        expect_pf(nm("a7.%s.lret.esp=ffc00000", rname[r]), 0, ANY, 0xffc00000u);
        g_val = 1;
        run_in(r, a7_iret_at, 0xffc00000u);
        expect_pf(nm("a7.%s.iret.esp=ffc00000", rname[r]), 0, ANY, 0xffc00000u);
        g_val = 0;
        run_in(r, a7_iret_at, 0xfffffff8u);
        expect_pf(nm("a7.%s.lret.esp=fffffff8", rname[r]), 0, ANY, 0xfffffff8u);
    }

    paging_disable();
}

/* a8: the same far transfers aimed at the guest's GDT entries 8176/8178,
 * the indices of the monitor's own descriptors in its GDT. */
static void a8(void)
{
    print("--- a8: ring-3 lret/lcall with ESP aimed at GDT entries 8176 and 8178\n");
    paging_on();
    /* The GDT: 8192 entries, so GDTR.base + 0xff80.. is the guest's own
     * table on bare QEMU. */
    big_fill();
    struct dtr d = { 0xffff, (uint32_t)biggdt };
    lgdt(&d);
    a8_gdt_base = d.base;
    a8_gdt_base = d.base;
    reload_segments();
    uint64_t e8176 = biggdt[8176];
    uint16_t want_cs = (uint16_t)(e8176 >> 32);
    for (int r = R3T; r >= R3; r--) {
        run_in(r, a7_lret, 0xff80);
        expect(nm("a8.%s.lret.esp=gdtr.base+0xff80", rname[r]), VEC_GP, want_cs & 0xfffc, SITE, 0);
    }
    /* Last: ring-3 far calls whose return CS:EIP lands on GDT entry 8178. */
    uint64_t e8178 = biggdt[8178];
    for (int r = R3T; r >= R3; r--) {
        run_in(r, a7_lcall, 0xff98);
        uint64_t now = biggdt[8178];
        printf("a8.%s.lcall.esp=gdtr.base+0xff98: %s; guest GDT entry 8178 now %08x:%08x (was %08x:%08x)\n",
               rname[r], c_out.faulted ? "faulted" : "no fault", (uint32_t)(now >> 32), (uint32_t)now,
               (uint32_t)(e8178 >> 32), (uint32_t)e8178);
        check_eq(nm("a8.%s.lcall.esp=gdtr.base+0xff98", rname[r]), !c_out.faulted && o_esp == d.base + 0xff90 &&
                 (uint32_t)now == (uint32_t)a7_target && (uint16_t)(now >> 32) == SEG_UCODE, 1);
        biggdt[8178] = e8178;
    }
    gdt_load();
    paging_disable();
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */
static void (*const tests[])(void) = { a1, a2, a3, a4, a5, a6, a7, a8 };
#define NTESTS ((int)(sizeof tests / sizeof tests[0]))

int main(uint32_t magic, struct multiboot_info *mbi)
{
    char arg[16];
    guest_arg(magic, mbi, arg, sizeof arg);
    int only = 0;
    if (arg[0] == 'a' && arg[1] >= '1' && arg[1] <= '0' + NTESTS && arg[2] == 0)
        only = arg[1] - '0';
    print("isolation: a guest attacking the monitor's region, selectors and vectors\n");
    if (only)
        printf("isolation: only a%d\n", only);
    cpu_init();
    for (int v = 0; v < 32; v++)
        set_trap_handler(v, catch_trap);

    pd = pg_new_dir();
    pg_identity(pd, 8u << 20, PG_W | PG_U);
    pt_below = pg_alloc();
    pt_top = pg_alloc();
    pt_a6 = pg_alloc();
    printf("pd=0x%08x pt(1022)=0x%08x pt(1023)=0x%08x frames 0x%08x-0x%08x\n", (uint32_t)pd,
           (uint32_t)pt_below, (uint32_t)pt_top, FRAME(0), FRAME(NF - 1) + 0xfff);

    for (int i = 0; i < NTESTS; i++)
        if (!only || only == i + 1) {
            gdt_load();
            idt_load();
            tests[i]();
        }

    printf("isolation: done, %d failures\n", failures);
    return failures;
}
