/*
 * memprot -- page protection, Accessed/Dirty bits, a self-mapped page
 * directory, and TLB invalidation after mapping changes.
 *
 * Tests:   (1) protection: ring-0 reads, writes and calls on user and
 *          supervisor pages; ring-0 writes to read-only pages (PTE
 *          read-only, PDE read-only) with CR0.WP=0 (they succeed and set D)
 *          and with WP=1 (#PF err 3); ring-0 not-present read/write (err
 *          0/2); ring-3 (IF=1) reads and writes of a read-only user page
 *          (err 7 on write, also with WP=0), of supervisor pages (err 5/7),
 *          through a supervisor PDE (err 5/7) and a read-only PDE (read ok,
 *          write err 7), not-present pages (err 4/6), and execution of a
 *          user page (runs) and of the same frame mapped supervisor (#PF err
 *          5 on the fetch, CR2 = EIP = the target) -- vector, error code,
 *          EIP and CR2 printed;
 *          (2) Accessed/Dirty: the PDE and PTE of a page cleared, flushed
 *          with INVLPG (ring 0) or a CR3 reload (ring 3), then read,
 *          written, read-then-written, executed, printing PDE and PTE after
 *          each step;
 *          (3) a self-map: PDE 0x300 points at the page directory, so the
 *          page tables appear at 0xc0000000 and the directory at
 *          0xc0300000: PTEs and PDEs read through it and compared with the
 *          identity view, a PTE rewritten through it (then INVLPG and the
 *          new mapping read), a PDE installed through it (then a CR3 reload
 *          and the new page table used), a PTE cleared through it (#PF),
 *          and the A/D bits the self-map accesses leave in the directory
 *          entries that act as PTEs;
 *          (4) mapping changes made visible by INVLPG or a CR3 reload:
 *          retargeting, present -> not present, read-only <-> writable,
 *          supervisor <-> user, a PDE switched to another page table and a
 *          PDE made not present;
 *          (5) a live PTE rewritten 1000 times, alternating between two
 *          frames with an INVLPG each time, read (and sometimes written)
 *          through, with a checksum.
 * Exercises: shadow page tables and their coherency with guest page-table
 *          writes (traced page-table pages, including writes through the
 *          guest's own self-map), A/D-bit emulation, CR0.WP, true versus
 *          hidden page faults and the error codes of reflected #PF
 *          (docs/06-memory.md).
 * Monitor exits expected: hidden page faults filling shadows; traced
 *          writes to the guest page directory and page tables (many: part
 *          5); invlpg and mov-to-CR3 callouts; true #PF reflected to the
 *          guest for each fault test; #GP exits for int $0x80 from ring 3.
 */
#include "guest.h"

enum { FR_URO, FR_SUP, FR_SRO, FR_CODE, FR_U, FR_AD, FR_A, FR_B, FR_L0, FR_L1, NFR };
static uint8_t frames[NFR][4096] ALIGNED(4096);
#define FRAME(i) ((uint32_t)frames[i])

#define VA_URO    0x40000000u   /* user, read-only         -> FR_URO */
#define VA_SUP    0x40001000u   /* supervisor, read/write  -> FR_SUP */
#define VA_SRO    0x40002000u   /* supervisor, read-only   -> FR_SRO */
#define VA_UX     0x40003000u   /* user, read-only, code   -> FR_CODE */
#define VA_SX     0x40004000u   /* supervisor, code        -> FR_CODE */
#define VA_NP     0x40005000u   /* not present */
#define VA_LIVE   0x40006000u   /* part 5 */
#define VA_RT     0x40007000u   /* part 3/4 retargeting    -> FR_A / FR_B */
#define VA_PERM   0x40008000u   /* part 4 permissions      -> FR_B */
#define VA_SUPPDE 0x40400000u   /* PDE supervisor, PTE user   -> FR_U */
#define VA_ROPDE  0x40800000u   /* PDE read-only, PTE writable -> FR_U */
#define VA_AD     0x40c00000u   /* part 2, data            -> FR_AD */
#define VA_ADX    0x40c01000u   /* part 2, code            -> FR_CODE */
#define VA_PDSW   0x41000000u   /* part 3/4: PDE switched between page tables */
#define VA_NOPDE  0x41400000u   /* no PDE */

#define SELF_IDX  0x300u
#define SELF_BASE (SELF_IDX << 22)                          /* 0xc0000000 */
#define SELF_PTE(va) ((volatile uint32_t *)(SELF_BASE + ((va) >> 12) * 4))
#define SELF_PD   (SELF_BASE + (SELF_IDX << 12))            /* 0xc0300000 */
#define SELF_PDE(va) ((volatile uint32_t *)(SELF_PD + ((va) >> 22) * 4))

static uint32_t *pd;
static uint32_t *pt_sw1, *pt_sw2;       /* page tables for VA_PDSW */

/* The code put in FR_CODE: movl 4(%esp), %eax; xorl $0x5a5a5a5a, %eax; ret */
static const uint8_t code_bytes[] = {
    0x8b, 0x44, 0x24, 0x04, 0x35, 0x5a, 0x5a, 0x5a, 0x5a, 0xc3,
};
typedef uint32_t (*fn1_t)(uint32_t);

static uint32_t rd(uint32_t va) { return *(volatile uint32_t *)va; }
static void wr(uint32_t va, uint32_t v) { *(volatile uint32_t *)va = v; }
static uint32_t *pte_of(uint32_t va) { return pg_pte(pd, va); }
static uint32_t *pde_of(uint32_t va) { return pg_pde(pd, va); }

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void show(const char *what, uint32_t va)
{
    uint32_t *pte = pte_of(va);
    printf("%s: va=0x%08x pde=0x%08x pte=0x%08x\n", what, va, *pde_of(va), pte ? *pte : 0);
}

/* ------------------------------------------------------------ fault probes */

static uint32_t u_plain_read(uint32_t va)
{
    return *(volatile uint32_t *)va;
}

static uint32_t u_plain_write(uint32_t va)
{
    *(volatile uint32_t *)va = 0x5e1u;
    return *(volatile uint32_t *)va;
}

static uint32_t u_read_then_write(uint32_t va)
{
    uint32_t v = *(volatile uint32_t *)va;
    *(volatile uint32_t *)va = v + 1;
    return v;
}

/* Ring 3 starts executing at va (iret straight to it); the fetch faults. */
static void u_exec_fault(uint32_t va)
{
    fault_arm(FAULT_RESUME_KERNEL);
    uint32_t r = enter_user(va, (uint32_t)ustack_top - 16, EFL_IF);
    if (r != USER_FAULTED)
        printf("exec at 0x%08x returned 0x%08x without a fault\n", va, r);
}

/* ------------------------------------------------------------ part 1 */

static void part1_protection(void)
{
    print("--- part 1: protection\n");
    uint32_t v;

    /* CR0.WP = 0 */
    write_cr0(read_cr0() & ~CR0_WP);
    printf("cr0=0x%08x (WP=0)\n", read_cr0());
    v = rd(VA_URO + 0x10);
    printf("ring0 read user ro page: 0x%08x\n", v);
    check_eq("r0_read_user_ro", v, 0x01000004);
    v = rd(VA_SUP + 0x10);
    printf("ring0 read supervisor page: 0x%08x\n", v);
    check_eq("r0_read_sup", v, 0x02000004);
    wr(VA_SUP + 0x14, 0x5500aa01);
    check_eq("r0_write_sup", rd(FRAME(FR_SUP) + 0x14), 0x5500aa01);
    wr(VA_URO + 0x20, 0x11aa0001);
    v = rd(FRAME(FR_URO) + 0x20);
    printf("ring0 write user ro page, WP=0: frame now 0x%08x\n", v);
    check_eq("r0_write_user_ro_wp0", v, 0x11aa0001);
    show("user ro pte after WP=0 write", VA_URO);
    wr(VA_SRO + 0x20, 0x33aa0003);
    v = rd(FRAME(FR_SRO) + 0x20);
    printf("ring0 write supervisor ro page, WP=0: frame now 0x%08x\n", v);
    check_eq("r0_write_sup_ro_wp0", v, 0x33aa0003);
    show("supervisor ro pte after WP=0 write", VA_SRO);
    wr(VA_ROPDE + 0x20, 0x44aa0004);
    v = rd(FRAME(FR_U) + 0x20);
    printf("ring0 write through ro pde, WP=0: frame now 0x%08x\n", v);
    check_eq("r0_write_ro_pde_wp0", v, 0x44aa0004);
    v = ((fn1_t)VA_UX)(0x12345678);
    printf("ring0 call into user page: 0x%08x\n", v);
    check_eq("r0_exec_user_page", v, 0x12345678 ^ 0x5a5a5a5a);
    v = ((fn1_t)VA_SX)(0x0000ffff);
    printf("ring0 call into supervisor page: 0x%08x\n", v);
    check_eq("r0_exec_sup_page", v, 0x0000ffff ^ 0x5a5a5a5a);
    run_user(probe_user_write, VA_URO + 0x24, EFL_IF);
    check_fault("r3_write_user_ro_wp0", VEC_PF, 7, fault_site, VA_URO + 0x24);

    /* CR0.WP = 1 */
    write_cr0(read_cr0() | CR0_WP);
    printf("cr0=0x%08x (WP=1)\n", read_cr0());
    probe_write(VA_URO + 0x28);
    check_fault("r0_write_user_ro_wp1", VEC_PF, 3, fault_site, VA_URO + 0x28);
    probe_write(VA_SRO + 0x2c);
    check_fault("r0_write_sup_ro_wp1", VEC_PF, 3, fault_site, VA_SRO + 0x2c);
    probe_write(VA_ROPDE + 0x30);
    check_fault("r0_write_ro_pde_wp1", VEC_PF, 3, fault_site, VA_ROPDE + 0x30);
    printf("frames after WP=1 writes: uro+0x28=0x%08x sro+0x2c=0x%08x u+0x30=0x%08x\n",
           rd(FRAME(FR_URO) + 0x28), rd(FRAME(FR_SRO) + 0x2c), rd(FRAME(FR_U) + 0x30));
    v = rd(VA_SRO + 0x20);
    printf("ring0 read supervisor ro page, WP=1: 0x%08x\n", v);
    check_eq("r0_read_sup_ro_wp1", v, 0x33aa0003);
    probe_read(VA_NP + 0x123);
    check_fault("r0_read_not_present", VEC_PF, 0, fault_site, VA_NP + 0x123);
    probe_write(VA_NP + 0x456);
    check_fault("r0_write_not_present", VEC_PF, 2, fault_site, VA_NP + 0x456);
    probe_write(VA_NOPDE + 0x8);
    check_fault("r0_write_no_pde", VEC_PF, 2, fault_site, VA_NOPDE + 0x8);

    /* Ring 3. */
    v = run_user(u_plain_read, VA_URO + 0x20, EFL_IF);
    printf("ring3 read user ro page: 0x%08x\n", v);
    check_eq("r3_read_user_ro", v, 0x11aa0001);
    run_user(probe_user_write, VA_URO + 0x34, EFL_IF);
    check_fault("r3_write_user_ro", VEC_PF, 7, fault_site, VA_URO + 0x34);
    run_user(probe_user_read, VA_SUP + 0x38, EFL_IF);
    check_fault("r3_read_sup", VEC_PF, 5, fault_site, VA_SUP + 0x38);
    run_user(probe_user_write, VA_SUP + 0x3c, EFL_IF);
    check_fault("r3_write_sup", VEC_PF, 7, fault_site, VA_SUP + 0x3c);
    run_user(probe_user_read, VA_SRO + 0x40, EFL_IF);
    check_fault("r3_read_sup_ro", VEC_PF, 5, fault_site, VA_SRO + 0x40);
    run_user(probe_user_read, VA_SUPPDE + 0x44, EFL_IF);
    check_fault("r3_read_sup_pde", VEC_PF, 5, fault_site, VA_SUPPDE + 0x44);
    run_user(probe_user_write, VA_SUPPDE + 0x48, EFL_IF);
    check_fault("r3_write_sup_pde", VEC_PF, 7, fault_site, VA_SUPPDE + 0x48);
    v = run_user(u_plain_read, VA_ROPDE + 0x20, EFL_IF);
    printf("ring3 read through ro pde: 0x%08x\n", v);
    check_eq("r3_read_ro_pde", v, 0x44aa0004);
    run_user(probe_user_write, VA_ROPDE + 0x4c, EFL_IF);
    check_fault("r3_write_ro_pde", VEC_PF, 7, fault_site, VA_ROPDE + 0x4c);
    run_user(probe_user_read, VA_NP + 0x50, EFL_IF);
    check_fault("r3_read_not_present", VEC_PF, 4, fault_site, VA_NP + 0x50);
    run_user(probe_user_write, VA_NP + 0x54, EFL_IF);
    check_fault("r3_write_not_present", VEC_PF, 6, fault_site, VA_NP + 0x54);
    v = run_user((fn1_t)VA_UX, 0x0f0f0f0f, EFL_IF);
    printf("ring3 call into user ro code page: 0x%08x\n", v);
    check_eq("r3_exec_user_page", v, 0x0f0f0f0f ^ 0x5a5a5a5a);
    u_exec_fault(VA_SX);
    check_fault("r3_exec_sup_page", VEC_PF, 5, VA_SX, VA_SX);
    printf("ring3 exec fault frame: cs=0x%04x eflags=0x%08x\n",
           last_fault.cs, last_fault.eflags);
}

/* ------------------------------------------------------------ part 2 */

static void ad_clear(uint32_t va)
{
    *pde_of(va) &= ~(PG_A | PG_D);
    *pte_of(va) &= ~(PG_A | PG_D);
}

static void ad_check(const char *name, uint32_t va, uint32_t pde_want, uint32_t pte_want)
{
    uint32_t pde = *pde_of(va) & (PG_A | PG_D), pte = *pte_of(va) & (PG_A | PG_D);
    char n[48];
    snprintf(n, sizeof n, "%s_pde", name);
    check_eq(n, pde, pde_want);
    snprintf(n, sizeof n, "%s_pte", name);
    check_eq(n, pte, pte_want);
}

static void part2_accessed_dirty(void)
{
    print("--- part 2: accessed and dirty bits\n");
    uint32_t v;

    /* Ring 0, INVLPG after each clear. */
    ad_clear(VA_AD);
    invlpg(VA_AD);
    show("ad r0 cleared", VA_AD);
    ad_check("ad_r0_cleared", VA_AD, 0, 0);
    v = rd(VA_AD + 0x100);
    show("ad r0 after read", VA_AD);
    printf("ad r0 read value 0x%08x\n", v);
    ad_check("ad_r0_read", VA_AD, PG_A, PG_A);

    ad_clear(VA_AD);
    invlpg(VA_AD);
    wr(VA_AD + 0x104, 0xd1d1d1d1);
    show("ad r0 after write", VA_AD);
    ad_check("ad_r0_write", VA_AD, PG_A, PG_A | PG_D);

    ad_clear(VA_AD);
    invlpg(VA_AD);
    v = rd(VA_AD + 0x108);
    show("ad r0 after read (before write)", VA_AD);
    ad_check("ad_r0_read_before_write", VA_AD, PG_A, PG_A);
    wr(VA_AD + 0x108, v + 1);
    show("ad r0 after write following read", VA_AD);
    ad_check("ad_r0_write_after_read", VA_AD, PG_A, PG_A | PG_D);

    ad_clear(VA_ADX);
    invlpg(VA_ADX);
    show("adx r0 cleared", VA_ADX);
    v = ((fn1_t)VA_ADX)(0x00c0ffee);
    show("adx r0 after call", VA_ADX);
    printf("adx r0 call returned 0x%08x\n", v);
    ad_check("ad_r0_exec", VA_ADX, PG_A, PG_A);

    /* Ring 3, CR3 reload after each clear. */
    ad_clear(VA_AD);
    write_cr3(read_cr3());
    v = run_user(u_plain_read, VA_AD + 0x10c, EFL_IF);
    show("ad r3 after read", VA_AD);
    printf("ad r3 read value 0x%08x\n", v);
    ad_check("ad_r3_read", VA_AD, PG_A, PG_A);

    ad_clear(VA_AD);
    write_cr3(read_cr3());
    v = run_user(u_plain_write, VA_AD + 0x110, EFL_IF);
    show("ad r3 after write", VA_AD);
    printf("ad r3 write read back 0x%08x\n", v);
    ad_check("ad_r3_write", VA_AD, PG_A, PG_A | PG_D);

    ad_clear(VA_AD);
    write_cr3(read_cr3());
    v = run_user(u_read_then_write, VA_AD + 0x114, EFL_IF);
    show("ad r3 after read then write", VA_AD);
    printf("ad r3 read-then-write old value 0x%08x, now 0x%08x\n", v, rd(FRAME(FR_AD) + 0x114));
    ad_check("ad_r3_read_then_write", VA_AD, PG_A, PG_A | PG_D);

    ad_clear(VA_ADX);
    write_cr3(read_cr3());
    v = run_user((fn1_t)VA_ADX, 0x00beef00, EFL_IF);
    show("adx r3 after call", VA_ADX);
    printf("adx r3 call returned 0x%08x\n", v);
    ad_check("ad_r3_exec", VA_ADX, PG_A, PG_A);

}

/* ------------------------------------------------------------ part 3 */

static void part3_selfmap(void)
{
    print("--- part 3: self-mapped page directory at 0xc0000000\n");
    pd[SELF_IDX] = (uint32_t)pd | PG_P | PG_W;
    pd[VA_RT >> 22] &= ~(PG_A | PG_D);
    write_cr3(read_cr3());
    printf("self-map pde[0x%x]=0x%08x pde[0x%x]=0x%08x\n", SELF_IDX, pd[SELF_IDX],
           VA_RT >> 22, pd[VA_RT >> 22]);

    /* Reads through the self-map. */
    uint32_t s_uro = *SELF_PTE(VA_URO), s_sup = *SELF_PTE(VA_SUP), s_rt = *SELF_PTE(VA_RT);
    uint32_t s_pde = *SELF_PDE(VA_URO), s_pde0 = *SELF_PDE(0);
    printf("via self-map: pte(uro)=0x%08x pte(sup)=0x%08x pte(rt)=0x%08x pde(0x40000000)=0x%08x\n",
           s_uro, s_sup, s_rt, s_pde);
    check_eq("self_pte_uro", s_uro, *pte_of(VA_URO));
    check_eq("self_pte_sup", s_sup, *pte_of(VA_SUP));
    check_eq("self_pte_rt", s_rt, *pte_of(VA_RT));
    check_eq("self_pde", s_pde, *pde_of(VA_URO));
    check_eq("self_pde0", s_pde0, pd[0]);
    /* pd[0x100] was the leaf ("PTE") of those reads: Accessed, not Dirty;
     * pd[0x300] was their PDE. */
    printf("after reads: pde[0x100]=0x%08x pde[0x300]=0x%08x\n", pd[VA_RT >> 22], pd[SELF_IDX]);
    check_eq("self_read_leaf_ad", pd[VA_RT >> 22] & (PG_A | PG_D), PG_A);
    check_eq("self_read_dir_ad", pd[SELF_IDX] & (PG_A | PG_D), PG_A);

    /* Retarget a PTE through the self-map. */
    uint32_t before = rd(VA_RT + 0x40);
    *SELF_PTE(VA_RT) = FRAME(FR_B) | PG_P | PG_W | PG_U;
    invlpg(VA_RT);
    uint32_t after = rd(VA_RT + 0x40);
    printf("pte(rt) via self-map: A -> B; read +0x40 before=0x%08x after=0x%08x; identity view pte=0x%08x\n",
           before, after, *pte_of(VA_RT));
    check_eq("self_retarget_before", before, 0x07000010);
    check_eq("self_retarget_after", after, 0x08000010);
    /* That write made pd[0x100], its leaf, Dirty. */
    printf("after write: pde[0x100]=0x%08x pde[0x300]=0x%08x pte(rt)=0x%08x\n",
           pd[VA_RT >> 22], pd[SELF_IDX], *SELF_PTE(VA_RT));
    check_eq("self_write_leaf_ad", pd[VA_RT >> 22] & (PG_A | PG_D), PG_A | PG_D);

    /* The self-map entry read through itself. */
    uint32_t me = *SELF_PDE(SELF_BASE);
    printf("pde[0x300] read through itself: 0x%08x\n", me);
    check_eq("self_self", me, pd[SELF_IDX]);

    /* Install a PDE through the self-map (write to 0xc0300000+), CR3 reload. */
    pd[SELF_IDX] &= ~(PG_A | PG_D);
    write_cr3(read_cr3());
    *SELF_PDE(VA_PDSW) = (uint32_t)pt_sw1 | PG_P | PG_W | PG_U;
    write_cr3(read_cr3());
    uint32_t sw = rd(VA_PDSW + 0x80);
    printf("pde(0x%08x) installed via self-map = 0x%08x; read +0x80 = 0x%08x; pde[0x300]=0x%08x\n",
           VA_PDSW, pd[VA_PDSW >> 22], sw, pd[SELF_IDX]);
    check_eq("self_install_pde", sw, 0x07000020);
    check_eq("self_write_dir_ad", pd[SELF_IDX] & (PG_A | PG_D), PG_A | PG_D);

    /* Clear a PTE through the self-map: the next access faults. */
    *SELF_PTE(VA_RT) = 0;
    invlpg(VA_RT);
    probe_read(VA_RT + 0x44);
    check_fault("self_cleared_pte", VEC_PF, 0, fault_site, VA_RT + 0x44);
    *SELF_PTE(VA_RT) = FRAME(FR_A) | PG_P | PG_W | PG_U;
    invlpg(VA_RT);
    check_eq("self_restored_pte", rd(VA_RT + 0x44), 0x07000011);
}

/* ------------------------------------------------------------ part 4 */

static void part4_invalidation(void)
{
    print("--- part 4: invlpg and CR3 reloads after mapping changes\n");
    uint32_t *pte = pte_of(VA_RT), v;

    *pte = FRAME(FR_B) | PG_P | PG_W | PG_U;
    invlpg(VA_RT);
    v = rd(VA_RT + 0x4);
    printf("retarget A->B, invlpg: 0x%08x\n", v);
    check_eq("inv_retarget_invlpg", v, 0x08000001);
    *pte = FRAME(FR_A) | PG_P | PG_W | PG_U;
    write_cr3(read_cr3());
    v = rd(VA_RT + 0x4);
    printf("retarget B->A, cr3 reload: 0x%08x\n", v);
    check_eq("inv_retarget_cr3", v, 0x07000001);

    *pte = 0;
    invlpg(VA_RT);
    probe_read(VA_RT + 0x8);
    check_fault("inv_unmapped_read", VEC_PF, 0, fault_site, VA_RT + 0x8);
    *pte = FRAME(FR_A) | PG_P | PG_W | PG_U;
    write_cr3(read_cr3());
    v = rd(VA_RT + 0x8);
    printf("remapped after cr3 reload: 0x%08x\n", v);
    check_eq("inv_remapped", v, 0x07000002);

    /* Permissions (CR0.WP is 1). */
    uint32_t *pp = pte_of(VA_PERM);
    printf("perm pte=0x%08x cr0.wp=%u\n", *pp, (read_cr0() >> 16) & 1);
    probe_write(VA_PERM + 0x10);
    check_fault("inv_ro_write", VEC_PF, 3, fault_site, VA_PERM + 0x10);
    *pp |= PG_W;
    invlpg(VA_PERM);
    wr(VA_PERM + 0x10, 0x9e7a0001);
    v = rd(FRAME(FR_B) + 0x10);
    printf("made writable, invlpg: write landed 0x%08x\n", v);
    check_eq("inv_rw_write", v, 0x9e7a0001);
    *pp &= ~PG_W;
    invlpg(VA_PERM);
    probe_write(VA_PERM + 0x14);
    check_fault("inv_back_to_ro", VEC_PF, 3, fault_site, VA_PERM + 0x14);

    v = run_user(u_plain_read, VA_PERM + 0x10, EFL_IF);
    printf("ring3 read of user perm page: 0x%08x\n", v);
    check_eq("inv_user_read", v, 0x9e7a0001);
    *pp &= ~PG_U;
    invlpg(VA_PERM);
    run_user(probe_user_read, VA_PERM + 0x18, EFL_IF);
    check_fault("inv_made_supervisor", VEC_PF, 5, fault_site, VA_PERM + 0x18);
    *pp |= PG_U | PG_W;
    write_cr3(read_cr3());
    v = run_user(u_plain_write, VA_PERM + 0x1c, EFL_IF);
    printf("made user+writable, cr3 reload: ring3 write/read 0x%08x\n", v);
    check_eq("inv_made_user_rw", v, 0x5e1);

    /* A PDE switched to another page table; then made not present. */
    uint32_t *pde = pde_of(VA_PDSW);
    v = rd(VA_PDSW + 0x80);
    printf("pdsw via page table 1: 0x%08x\n", v);
    check_eq("inv_pde_pt1", v, 0x07000020);
    *pde = (uint32_t)pt_sw2 | PG_P | PG_W | PG_U;
    write_cr3(read_cr3());
    v = rd(VA_PDSW + 0x80);
    printf("pde -> page table 2, cr3 reload: 0x%08x\n", v);
    check_eq("inv_pde_pt2", v, 0x08000020);
    *pde = 0;
    write_cr3(read_cr3());
    probe_read(VA_PDSW + 0x84);
    check_fault("inv_pde_not_present", VEC_PF, 0, fault_site, VA_PDSW + 0x84);
    *pde = (uint32_t)pt_sw1 | PG_P | PG_W | PG_U;
    invlpg(VA_PDSW);
    v = rd(VA_PDSW + 0x84);
    printf("pde -> page table 1 again, invlpg: 0x%08x\n", v);
    check_eq("inv_pde_back", v, 0x07000021);
}

/* ------------------------------------------------------------ part 5 */

static void part5_live_pte(void)
{
    print("--- part 5: a live PTE rewritten 1000 times\n");
    uint32_t *pte = pte_of(VA_LIVE);
    uint32_t sum = 0, want = 0, bad = 0, writes = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t fr = (i & 1) ? FRAME(FR_L1) : FRAME(FR_L0);
        *pte = fr | PG_P | PG_W;
        invlpg(VA_LIVE);
        uint32_t idx = (i * 37) & 1023;
        uint32_t v = rd(VA_LIVE + idx * 4);
        uint32_t w = rd(fr + idx * 4);
        if (v != w)
            bad++;
        if (i % 10 == 0) {
            wr(VA_LIVE + ((idx + 1) & 1023) * 4, 0xa0000000u + i);
            writes++;
        }
        sum = rol(sum, 3) ^ v;
        want = rol(want, 3) ^ w;
    }
    uint32_t wsum = 0;
    for (int i = 0; i < 1024; i++)
        wsum += ((uint32_t *)frames[FR_L0])[i] ^ ((uint32_t *)frames[FR_L1])[i];
    printf("live pte: checksum=0x%08x mismatches=%u writes=%u frames sum=0x%08x final pte=0x%08x\n",
           sum, bad, writes, wsum, *pte);
    check_eq("live_pte_checksum", sum, want);
    check_eq("live_pte_mismatches", bad, 0);
}

/* ------------------------------------------------------------ main */

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("memprot: protection, A/D bits, self-map, invalidation\n");
    cpu_init();

    for (int f = 0; f < NFR; f++)
        for (int i = 0; i < 1024; i++)
            ((uint32_t *)frames[f])[i] = 0x01000000u * (uint32_t)(f + 1) + (uint32_t)i;
    memcpy(frames[FR_CODE], code_bytes, sizeof code_bytes);

    pd = pg_new_dir();
    pg_identity(pd, 4u << 20, PG_W | PG_U);
    pg_map(pd, VA_URO, FRAME(FR_URO), PG_U);
    pg_map(pd, VA_SUP, FRAME(FR_SUP), PG_W);
    pg_map(pd, VA_SRO, FRAME(FR_SRO), 0);
    pg_map(pd, VA_UX, FRAME(FR_CODE), PG_U);
    pg_map(pd, VA_SX, FRAME(FR_CODE), PG_W);
    pg_map(pd, VA_LIVE, FRAME(FR_L0), PG_W);
    pg_map(pd, VA_RT, FRAME(FR_A), PG_W | PG_U);
    pg_map(pd, VA_PERM, FRAME(FR_B), PG_U);
    pg_map(pd, VA_SUPPDE, FRAME(FR_U), PG_W | PG_U);
    *pde_of(VA_SUPPDE) &= ~PG_U;
    pg_map(pd, VA_ROPDE, FRAME(FR_U), PG_W | PG_U);
    *pde_of(VA_ROPDE) &= ~PG_W;
    pg_map(pd, VA_AD, FRAME(FR_AD), PG_W | PG_U);
    pg_map(pd, VA_ADX, FRAME(FR_CODE), PG_W | PG_U);
    pt_sw1 = pg_alloc();
    pt_sw2 = pg_alloc();
    pt_sw1[(VA_PDSW >> 12) & 0x3ff] = FRAME(FR_A) | PG_P | PG_W | PG_U;
    pt_sw2[(VA_PDSW >> 12) & 0x3ff] = FRAME(FR_B) | PG_P | PG_W | PG_U;

    printf("pd=0x%08x frames 0x%08x-0x%08x pt(sw1)=0x%08x pt(sw2)=0x%08x\n", (uint32_t)pd,
           FRAME(0), FRAME(NFR - 1) + 0xfff, (uint32_t)pt_sw1, (uint32_t)pt_sw2);
    paging_enable(pd, 0);
    printf("paging on: cr0=0x%08x cr3=0x%08x\n", read_cr0(), read_cr3());

    part1_protection();
    part2_accessed_dirty();
    part3_selfmap();
    part4_invalidation();
    part5_live_pte();

    paging_disable();
    printf("memprot: done, %d failures\n", failures);
    return failures;
}
