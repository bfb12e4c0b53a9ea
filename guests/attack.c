/*
 * attack -- a guest that tries to wear the monitor out or catch it in a
 * race: code that rewrites the very block it is running at every offset,
 * more distinct code than the translation cache holds, more address
 * spaces than the shadow page-table pool holds, and an LDT placed in the
 * monitor's top 4 MiB (mapped by the guest, and not mapped).  Each test
 * prints what it computed; under the monitor the output must be the same
 * and the monitor's integrity line must say "ok".
 *
 * Tests:   (s1) a straight-line block of 32 `add $n, %eax` with one
 *          `movb $v, target` inserted before instruction p that rewrites
 *          the immediate or the ModRM byte (add -> sub) of instruction q,
 *          for every p and q (a write to an instruction already run, to
 *          the next one, to one further on): a modern CPU (and QEMU) runs
 *          the new bytes of every instruction after the store.  Ring 0
 *          and ring 3, the sums printed per p.
 *          (s2) 3,000 code pages, each four functions returning their
 *          numbers, called in turn twice (the translation cache fills and is
 *          flushed again and again), then 1,000 of them rewritten and
 *          called again; the sums printed.
 *          (s3) 320 address spaces (page directories), each mapping its
 *          own page at 0x40000000 and its own page table, entered in
 *          turn by MOV CR3 three times with a read and a write in each,
 *          at ring 0 and ring 3 (the shadow pool holds far fewer); then
 *          each space's mapping changed while it is not current, and
 *          read again; the sums printed.
 *          (s4) the LDT at 0xffc01000: mapped by the guest to its own
 *          page (LLDT, loads of LDT selectors, a descriptor rewritten
 *          through the mapping, LAR), then the mapping removed (#PF on
 *          the descriptor read, with CR2 in the monitor's region).
 * Exercises: code traces and the current unit's end after a write to it
 *          (trace.c, bt.c), translation-cache flushes (bt.c), the shadow
 *          page-table cache and its flushes (mmu.c), traced page tables
 *          that are not current, descriptor reads through the guest's
 *          mappings of the top 4 MiB (segtrack.c, mmu.c).
 * Monitor exits expected: traced writes to code pages, cache flushes,
 *          hidden #PF after every shadow flush, MOV CR3 callouts, a #GP
 *          exit per ring-3 system call, relocated descriptor reads.
 */
#include "guest.h"

#define NOINL __attribute__((noinline, noclone))

/* ------------------------------------------------------------ s1: racing rewrites */

#define NADD 32
static uint8_t blk[4096] ALIGNED(4096) __attribute__((section(".data.attack_code")));

/* Build the block: NADD adds of n+1 to EAX, a store before add p that
 * writes v to byte `which` (1 ModRM, 2 immediate) of add q, then ret. */
static void
build_block(int p, int q, int which, uint8_t v)
{
    uint8_t *c = blk;
    uint8_t *at[NADD];
    uint8_t *store_addr_field = 0;
    for (int i = 0; i < NADD; i++) {
        if (i == p) {
            c[0] = 0xc6;                /* movb $v, abs32 */
            c[1] = 0x05;
            store_addr_field = c + 2;
            c[6] = v;
            c += 7;
        }
        at[i] = c;
        c[0] = 0x83;                    /* add $imm8, %eax */
        c[1] = 0xc0;
        c[2] = (uint8_t)(i + 1);
        c += 3;
    }
    *c = 0xc3;
    uint32_t target = (uint32_t)(at[q] + which);
    memcpy(store_addr_field, &target, 4);
}

static NOINL uint32_t
run_block(void)
{
    uint32_t r;
    __asm__ volatile("xorl %%eax, %%eax; call *%1" : "=&a"(r) : "r"(blk) : "memory", "cc");
    return r;
}

static uint32_t user_block(uint32_t arg) { (void)arg; return run_block(); }

static void
s1(void)
{
    printf("s1: a store into the block being run, at every offset\n");
    for (int ring = 0; ring < 2; ring++)
        for (int which = 1; which <= 2; which++)
            for (int p = 0; p < NADD; p++) {
                uint32_t h = 0, first = 0;
                for (int q = 0; q < NADD; q++) {
                    build_block(p, q, which, which == 1 ? 0xe8 : 0x40);
                    uint32_t r = ring ? run_user(user_block, 0, EFL_IF) : run_block();
                    if (q == p)
                        first = r;
                    h = h * 31 + r;
                }
                printf("s1 ring %d %s p=%2d: sum at q=p %08x, all q %08x\n", ring ? 3 : 0,
                       which == 1 ? "modrm" : "imm  ", p, first, h);
            }
}

/* ------------------------------------------------------------ s2: cache thrash */

#define CODE_PAGES 3000
#define CODE_BASE  0x01000000u

static NOINL uint32_t call_at(uint32_t a) { return ((uint32_t (*)(void))a)(); }

/* Four functions per page, at every 1 KiB: 12,000 in all, more units
 * than the translation cache has room for. */
static void
write_fn(uint32_t page, uint32_t value)
{
    for (uint32_t k = 0; k < 4; k++) {
        uint8_t *c = (uint8_t *)(CODE_BASE + page * 4096u + k * 1024u);
        uint32_t v = value + k;
        c[0] = 0xb8;                    /* mov $v, %eax */
        memcpy(c + 1, &v, 4);
        c[5] = 0x05;                    /* add $page, %eax */
        memcpy(c + 6, &page, 4);
        c[10] = 0xc3;
    }
}

static uint32_t
call_page(uint32_t i)
{
    uint32_t s = 0;
    for (uint32_t k = 0; k < 4; k++)
        s = s * 7 + call_at(CODE_BASE + i * 4096u + k * 1024u);
    return s;
}

static void
s2(void)
{
    printf("s2: %u code pages, more than the translation cache holds\n", CODE_PAGES);
    for (uint32_t i = 0; i < CODE_PAGES; i++)
        write_fn(i, i * 7);
    for (int round = 0; round < 2; round++) {
        uint32_t s = 0;
        for (uint32_t i = 0; i < CODE_PAGES; i++)
            s = s * 3 + call_page(i);
        printf("s2 round %d: %08x\n", round, s);
    }
    for (uint32_t i = 0; i < CODE_PAGES; i += 3)
        write_fn(i, i * 11 + 5);
    uint32_t s = 0;
    for (uint32_t i = 0; i < CODE_PAGES; i++)
        s = s * 3 + call_page(i);
    printf("s2 after rewriting every third: %08x\n", s);
}

/* ------------------------------------------------------------ s3: address-space thrash */

#define NSPACES  320
#define SPACES   0x02000000u            /* per space: directory, page table, data page */
#define VA_PRIV  0x40000000u

static uint32_t *space_pd(int i) { return (uint32_t *)(SPACES + i * 0x3000u); }
static uint32_t *space_pt(int i) { return (uint32_t *)(SPACES + i * 0x3000u + 0x1000); }
static uint32_t space_data(int i) { return SPACES + i * 0x3000u + 0x2000; }

static uint32_t user_rw(uint32_t arg)
{
    volatile uint32_t *p = (volatile uint32_t *)VA_PRIV;
    uint32_t v = p[1];
    p[1] = v + arg;
    return v;
}

static void
s3(void)
{
    printf("s3: %d address spaces, more than the shadow pool holds\n", NSPACES);
    uint32_t *idpd = pg_new_dir();
    pg_identity(idpd, 0x04000000, PG_W | PG_U);     /* the first 64 MiB */
    for (int i = 0; i < NSPACES; i++) {
        uint32_t *pd = space_pd(i), *pt = space_pt(i);
        memset(pd, 0, 4096);
        memset(pt, 0, 4096);
        for (int k = 0; k < 16; k++)                /* the harness, shared */
            pd[k] = idpd[k];
        pd[VA_PRIV >> 22] = (uint32_t)pt | PG_P | PG_W | PG_U;
        pt[0] = space_data(i) | PG_P | PG_W | PG_U;
        *(uint32_t *)space_data(i) = 0x1000 + i;
        ((uint32_t *)space_data(i))[1] = 0;
    }
    paging_enable(idpd, 1);
    for (int round = 0; round < 3; round++) {
        uint32_t s = 0;
        for (int i = 0; i < NSPACES; i++) {
            write_cr3((uint32_t)space_pd(i));
            volatile uint32_t *p = (volatile uint32_t *)VA_PRIV;
            s = s * 5 + p[0];
            p[0] += round + 1;
            if ((i & 7) == round)
                s = s * 5 + run_user(user_rw, i, EFL_IF);
        }
        write_cr3((uint32_t)idpd);
        printf("s3 round %d: %08x\n", round, s);
    }
    /* Each space's page table changed while another space is current:
     * the traced page tables must notice (the next CR3 load of the space
     * sees the new mapping, no INVLPG needed since it was not current). */
    for (int i = 0; i < NSPACES; i++)
        space_pt(i)[0] = space_data((i + 1) % NSPACES) | PG_P | PG_W | PG_U;
    uint32_t s = 0;
    for (int i = 0; i < NSPACES; i++) {
        write_cr3((uint32_t)space_pd(i));
        s = s * 5 + *(volatile uint32_t *)VA_PRIV;
    }
    write_cr3((uint32_t)idpd);
    printf("s3 after remapping every space: %08x\n", s);
    paging_disable();
}

/* ------------------------------------------------------------ s4: an LDT in the monitor's region */

#define LDT_VA 0xffc01000u
static uint64_t ldt_page[512] ALIGNED(4096);

static void
s4(void)
{
    printf("s4: the LDT at %08x, in the top 4 MiB\n", LDT_VA);
    uint32_t *pd = pg_new_dir();
    pg_identity(pd, 0x00400000, PG_W);
    pg_map(pd, LDT_VA, (uint32_t)ldt_page, PG_W);
    ldt_page[0] = make_desc(0, 0xfffff, ACC_KDATA, FLG_32);
    ldt_page[1] = make_desc(0x1000, 0xfff, ACC_P | ACC_S | ACC_DATA_R | ACC_DPL(0), 0);
    ldt_page[2] = make_desc(0, 0xfffff, ACC_UDATA, FLG_32);
    gdt_set(GDT_FIRST_SPARE, LDT_VA, 8 * 8 - 1, ACC_P | 0x02, 0);
    paging_enable(pd, 1);
    lldt(SEL(GDT_FIRST_SPARE, 0));
    LOAD_SEG(fs, SEL(0, 0) | 4);
    LOAD_SEG(gs, SEL(1, 0) | 4);
    uint32_t ar = 0, lim = 0;
    __asm__ volatile("lar %2, %0; lsl %2, %1" : "=r"(ar), "=r"(lim) : "r"((uint32_t)(SEL(1, 0) | 4)));
    printf("s4 mapped: fs %04x gs %04x, lar %08x lsl %08x, accessed bits %08x %08x\n",
           READ_SEG(fs), READ_SEG(gs), ar, lim, (uint32_t)(ldt_page[0] >> 32) & 0x100,
           (uint32_t)(ldt_page[1] >> 32) & 0x100);
    /* Rewritten through the region, then loaded again. */
    volatile uint64_t *ldt_va = (volatile uint64_t *)LDT_VA;
    ldt_va[1] = make_desc(0x2000, 0xfff, ACC_P | ACC_S | ACC_DATA_R | ACC_DPL(0), 0);
    LOAD_SEG(gs, SEL(1, 0) | 4);
    __asm__ volatile("lsl %1, %0" : "=r"(lim) : "r"((uint32_t)(SEL(1, 0) | 4)));
    printf("s4 rewritten through %08x: lsl %08x, entry %08x:%08x\n", LDT_VA, lim,
           (uint32_t)(ldt_page[1] >> 32), (uint32_t)ldt_page[1]);
    LOAD_SEG(fs, SEG_KDATA);
    LOAD_SEG(gs, SEG_KDATA);
    /* The mapping gone: the descriptor read faults. */
    pg_unmap(pd, LDT_VA);
    __asm__ volatile(FAULT_ARM "1: movw %w0, %%fs\n2:" : : "r"((uint32_t)(SEL(2, 0) | 4)) : "memory");
    check_fault("s4 unmapped LDT: mov fs", VEC_PF, 0, fault_site, LDT_VA + 16);
    __asm__ volatile(FAULT_ARM "1: lar %1, %0\n2:" : "=r"(ar) : "r"((uint32_t)(SEL(2, 0) | 4)) : "memory");
    check_fault("s4 unmapped LDT: lar", VEC_PF, 0, fault_site, LDT_VA + 16);
    LOAD_SEG(fs, SEG_KDATA);
    lldt(0);
    paging_disable();
}

int
main(uint32_t magic, struct multiboot_info *mbi)
{
    char arg[16];
    guest_arg(magic, mbi, arg, sizeof arg);
    printf("attack: racing rewrites, cache thrash, the LDT in the monitor's region\n");
    cpu_init();
    if (!arg[0] || !strcmp(arg, "s1"))
        s1();
    if (!arg[0] || !strcmp(arg, "s2"))
        s2();
    if (!arg[0] || !strcmp(arg, "s3"))
        s3();
    if (!arg[0] || !strcmp(arg, "s4"))
        s4();
    printf("attack: done, %d failures\n", failures);
    return failures;
}
