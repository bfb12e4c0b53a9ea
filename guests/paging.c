/*
 * paging -- 4 KiB paging: aliases, two address spaces, PTE changes with
 * invlpg and CR3 reloads, Accessed/Dirty bits, and #PF details.
 *
 * Tests:   identity map of the first 4 MiB (the image) plus alias mappings
 *          of one frame at three linear addresses (two in one page table,
 *          one in another): reads through each alias, a write through one
 *          alias read back through the others; two page directories mapping
 *          one linear address to different frames (switch CR3 and read);
 *          a PTE retargeted then invlpg, and retargeted then a CR3 reload;
 *          Accessed/Dirty bits of PTEs (and the Accessed bit of a PDE)
 *          observed after a read and after a write (values printed whole);
 *          ring-0 write to a read-only page with CR0.WP=0 (allowed, sets D)
 *          and with WP=1 (#PF); #PF error codes and CR2 for: not-present
 *          read (PTE missing) and write (PDE missing) from ring 0, ring-3
 *          read/write of a supervisor page, ring-3 write of a read-only user
 *          page, ring-3 read through a supervisor PDE with a user PTE,
 *          ring-3 and ring-0 (WP=1) writes through a read-only PDE, ring-3
 *          read of a not-present page.
 * Exercises: shadow page tables, tracing of guest page tables, A/D-bit
 *          emulation, TLB-flush semantics of invlpg and mov to CR3, CR0.WP,
 *          the distinction between hidden (shadow-fill) and true guest page
 *          faults (docs/06-memory.md, docs/07-tracing.md); #PF reflection with
 *          CR2 (docs/03-direct.md).
 * Monitor exits expected: hidden page faults filling shadow entries;
 *          writes to traced guest page-table pages; mov to CR3 and invlpg
 *          callouts; true #PF reflected to the guest (one per #PF test);
 *          #GP exits for the int $0x80 system calls from ring 3.
 */
#include "guest.h"

enum { FA, FB, FC, FD, FE, FF, FG, NFRAMES };
static uint8_t frames[NFRAMES][4096] ALIGNED(4096);

#define VA_ALIAS1 0x40000000u   /* -> A (pd1), -> B (pd2) */
#define VA_ALIAS2 0x40001000u   /* -> A */
#define VA_ALIAS3 0x80000000u   /* -> A, another page table */
#define VA_AD     0x40010000u   /* -> D, A/D bits observed */
#define VA_AD2    0x40011000u   /* -> G, written first */
#define VA_FRESH  0xc0000000u   /* fresh page table: PDE A bit */
#define VA_NP     0x40020000u   /* not present (PT exists) */
#define VA_NOPDE  0x90000000u   /* no PDE */
#define VA_RO     0x40030000u   /* -> E, user read-only */
#define VA_SUP    0x40040000u   /* -> F, supervisor read/write */
#define VA_SUPPDE 0x48000000u   /* PDE supervisor, PTE user -> C */
#define VA_ROPDE  0x4c000000u   /* PDE read-only, PTE writable -> C */

static uint32_t *pd1, *pd2;

static uint32_t rd(uint32_t va) { return *(volatile uint32_t *)va; }
static void wr(uint32_t va, uint32_t v) { *(volatile uint32_t *)va = v; }

static void show_pte(const char *what, uint32_t *pd, uint32_t va)
{
    uint32_t *pte = pg_pte(pd, va);
    printf("%s: va=0x%08x pde=0x%08x pte=0x%08x\n", what, va, *pg_pde(pd, va), pte ? *pte : 0);
}

static uint32_t pte_flags(uint32_t *pd, uint32_t va)
{
    return *pg_pte(pd, va) & 0xfff;
}

/* Ring-0 and ring-3 accessors that expect a fault. */
static uint32_t u_plain_read(uint32_t va)
{
    return *(volatile uint32_t *)va;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("paging: 4 KiB paging, aliases, A/D bits, #PF\n");
    cpu_init();

    for (int f = 0; f < NFRAMES; f++)
        for (int i = 0; i < 1024; i++)
            ((uint32_t *)frames[f])[i] = 0x10000000u * (uint32_t)(f + 1) + (uint32_t)i;

    pd1 = pg_new_dir();
    pg_identity(pd1, 4u << 20, PG_W | PG_U);
    pg_map(pd1, VA_ALIAS1, (uint32_t)frames[FA], PG_W | PG_U);
    pg_map(pd1, VA_ALIAS2, (uint32_t)frames[FA], PG_W | PG_U);
    pg_map(pd1, VA_ALIAS3, (uint32_t)frames[FA], PG_W | PG_U);
    pg_map(pd1, VA_AD, (uint32_t)frames[FD], PG_W | PG_U);
    pg_map(pd1, VA_AD2, (uint32_t)frames[FG], PG_W | PG_U);
    pg_map(pd1, VA_RO, (uint32_t)frames[FE], PG_U);
    pg_map(pd1, VA_SUP, (uint32_t)frames[FF], PG_W);
    pg_map(pd1, VA_SUPPDE, (uint32_t)frames[FC], PG_W | PG_U);
    *pg_pde(pd1, VA_SUPPDE) &= ~PG_U;
    pg_map(pd1, VA_ROPDE, (uint32_t)frames[FC], PG_W | PG_U);
    *pg_pde(pd1, VA_ROPDE) &= ~PG_W;

    pd2 = pg_new_dir();
    pd2[0] = pd1[0];            /* share the identity page table */
    pg_map(pd2, VA_ALIAS1, (uint32_t)frames[FB], PG_W | PG_U);

    printf("frames: A=0x%08x B=0x%08x C=0x%08x pd1=0x%08x pd2=0x%08x\n",
           (uint32_t)frames[FA], (uint32_t)frames[FB], (uint32_t)frames[FC], (uint32_t)pd1, (uint32_t)pd2);
    show_pte("alias1 before", pd1, VA_ALIAS1);

    paging_enable(pd1, 0);
    printf("paging on: cr0=0x%08x cr3=0x%08x\n", read_cr0(), read_cr3());
    check_eq("cr0_pg", read_cr0() & (CR0_PG | CR0_WP), CR0_PG);

    /* Aliases. */
    uint32_t a1 = rd(VA_ALIAS1 + 8), a2 = rd(VA_ALIAS2 + 8), a3 = rd(VA_ALIAS3 + 8);
    uint32_t id = rd((uint32_t)frames[FA] + 8);
    printf("read +8: alias1=0x%08x alias2=0x%08x alias3=0x%08x identity=0x%08x\n", a1, a2, a3, id);
    check_eq("alias_read", a1 == 0x10000002 && a2 == a1 && a3 == a1 && id == a1, 1);
    wr(VA_ALIAS1 + 0x10, 0xcafebabe);
    a2 = rd(VA_ALIAS2 + 0x10);
    a3 = rd(VA_ALIAS3 + 0x10);
    id = rd((uint32_t)frames[FA] + 0x10);
    printf("write alias1+0x10=0xcafebabe: alias2=0x%08x alias3=0x%08x identity=0x%08x\n", a2, a3, id);
    check_eq("alias_write", a2 == 0xcafebabe && a3 == a2 && id == a2, 1);
    show_pte("alias1 after write", pd1, VA_ALIAS1);
    show_pte("alias2 after read", pd1, VA_ALIAS2);
    show_pte("alias3 after read", pd1, VA_ALIAS3);

    /* Two address spaces. */
    write_cr3((uint32_t)pd2);
    uint32_t b = rd(VA_ALIAS1 + 0x10);
    printf("cr3=pd2: alias1+0x10=0x%08x\n", b);
    check_eq("pd2_sees_frame_b", b, 0x20000004);
    write_cr3((uint32_t)pd1);
    uint32_t a = rd(VA_ALIAS1 + 0x10);
    printf("cr3=pd1: alias1+0x10=0x%08x\n", a);
    check_eq("pd1_sees_frame_a", a, 0xcafebabe);
    show_pte("pd2 alias1", pd2, VA_ALIAS1);

    /* Retarget a PTE: invlpg, then a CR3 reload. */
    uint32_t *pte = pg_pte(pd1, VA_ALIAS1);
    *pte = (uint32_t)frames[FC] | PG_P | PG_W | PG_U;
    invlpg(VA_ALIAS1);
    uint32_t c = rd(VA_ALIAS1 + 4);
    printf("pte -> C, invlpg: alias1+4=0x%08x\n", c);
    check_eq("invlpg_retarget", c, 0x30000001);
    *pte = (uint32_t)frames[FA] | PG_P | PG_W | PG_U;
    write_cr3(read_cr3());
    a = rd(VA_ALIAS1 + 4);
    printf("pte -> A, cr3 reload: alias1+4=0x%08x\n", a);
    check_eq("cr3_reload_retarget", a, 0x10000001);

    /* Accessed / Dirty. */
    show_pte("ad: fresh", pd1, VA_AD);
    check_eq("ad_fresh", pte_flags(pd1, VA_AD), PG_P | PG_W | PG_U);
    uint32_t v = rd(VA_AD + 0x20);
    show_pte("ad: after read", pd1, VA_AD);
    printf("ad: read value 0x%08x\n", v);
    check_eq("ad_after_read", pte_flags(pd1, VA_AD), PG_P | PG_W | PG_U | PG_A);
    wr(VA_AD + 0x24, 0x12345678);
    show_pte("ad: after write", pd1, VA_AD);
    check_eq("ad_after_write", pte_flags(pd1, VA_AD), PG_P | PG_W | PG_U | PG_A | PG_D);
    *pg_pte(pd1, VA_AD) &= ~(PG_A | PG_D);
    invlpg(VA_AD);
    show_pte("ad: cleared", pd1, VA_AD);
    v = rd(VA_AD + 0x24);
    show_pte("ad: read after clear", pd1, VA_AD);
    check_eq("ad_read_after_clear", pte_flags(pd1, VA_AD), PG_P | PG_W | PG_U | PG_A);
    printf("ad: read value 0x%08x\n", v);
    show_pte("ad2: fresh", pd1, VA_AD2);
    wr(VA_AD2, 0x87654321);
    show_pte("ad2: after first write", pd1, VA_AD2);
    check_eq("ad2_write_first", pte_flags(pd1, VA_AD2), PG_P | PG_W | PG_U | PG_A | PG_D);

    pg_map(pd1, VA_FRESH, (uint32_t)frames[FG], PG_W | PG_U);
    show_pte("fresh pt: before", pd1, VA_FRESH);
    check_eq("fresh_pde_not_accessed", *pg_pde(pd1, VA_FRESH) & PG_A, 0);
    v = rd(VA_FRESH);
    show_pte("fresh pt: after read", pd1, VA_FRESH);
    printf("fresh pt: read value 0x%08x\n", v);
    check_eq("fresh_pde_accessed", *pg_pde(pd1, VA_FRESH) & (PG_A | PG_D), PG_A);

    /* Read-only page, ring 0: WP=0 allows the write, WP=1 faults. */
    show_pte("ro: before", pd1, VA_RO);
    wr(VA_RO + 0x40, 0x0000beef);
    v = rd((uint32_t)frames[FE] + 0x40);
    show_pte("ro: after ring-0 write with WP=0", pd1, VA_RO);
    printf("ro: frame E +0x40 = 0x%08x\n", v);
    check_eq("ro_write_wp0", v, 0x0000beef);
    write_cr0(read_cr0() | CR0_WP);
    printf("cr0 with WP=0x%08x\n", read_cr0());
    probe_write(VA_RO + 0x44);
    check_fault("pf_ring0_write_ro_wp1", VEC_PF, 0x3, fault_site, VA_RO + 0x44);
    probe_write(VA_ROPDE + 0x8);
    check_fault("pf_ring0_write_ro_pde_wp1", VEC_PF, 0x3, fault_site, VA_ROPDE + 0x8);

    /* Not present, ring 0. */
    probe_read(VA_NP + 0xabc);
    check_fault("pf_ring0_read_not_present", VEC_PF, 0x0, fault_site, VA_NP + 0xabc);
    probe_write(VA_NOPDE + 0x10);
    check_fault("pf_ring0_write_no_pde", VEC_PF, 0x2, fault_site, VA_NOPDE + 0x10);

    /* Ring 3. */
    v = run_user(u_plain_read, VA_RO + 0x40, EFL_IF);
    printf("ring3 read of user ro page: 0x%08x\n", v);
    check_eq("ring3_read_ro", v, 0x0000beef);
    run_user(probe_user_write, VA_RO + 0x48, EFL_IF);
    check_fault("pf_ring3_write_ro", VEC_PF, 0x7, fault_site, VA_RO + 0x48);
    run_user(probe_user_read, VA_SUP + 0x100, EFL_IF);
    check_fault("pf_ring3_read_supervisor", VEC_PF, 0x5, fault_site, VA_SUP + 0x100);
    run_user(probe_user_write, VA_SUP + 0x104, EFL_IF);
    check_fault("pf_ring3_write_supervisor", VEC_PF, 0x7, fault_site, VA_SUP + 0x104);
    run_user(probe_user_read, VA_SUPPDE + 0x200, EFL_IF);
    check_fault("pf_ring3_read_supervisor_pde", VEC_PF, 0x5, fault_site, VA_SUPPDE + 0x200);
    v = run_user(probe_user_read, VA_ROPDE + 0x4, EFL_IF);
    printf("ring3 read through ro pde: 0x%08x\n", v);
    check_eq("ring3_read_ro_pde", v, 0x30000001);
    run_user(probe_user_write, VA_ROPDE + 0x8, EFL_IF);
    check_fault("pf_ring3_write_ro_pde", VEC_PF, 0x7, fault_site, VA_ROPDE + 0x8);
    run_user(probe_user_read, VA_NP + 0x300, EFL_IF);
    check_fault("pf_ring3_read_not_present", VEC_PF, 0x4, fault_site, VA_NP + 0x300);
    run_user(probe_user_write, VA_NOPDE, EFL_IF);
    check_fault("pf_ring3_write_no_pde", VEC_PF, 0x6, fault_site, VA_NOPDE);

    show_pte("final alias1", pd1, VA_ALIAS1);
    show_pte("final ad", pd1, VA_AD);
    /* (Entries involved in faulting walks are not printed: whether a
     * faulting access sets Accessed bits is implementation-specific.) */

    paging_disable();
    printf("paging off: cr0=0x%08x\n", read_cr0());
    printf("paging: done, %d failures\n", failures);
    return failures;
}
