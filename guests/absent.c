/*
 * absent.c -- guest-physical addresses beyond the end of RAM.
 *
 * A guest may map a page at a physical address where the PC has no RAM.
 * On bare QEMU such reads give zeros and writes vanish.  Under the
 * monitor the shadow page table maps a page of zeros there, read-only,
 * and a write goes for one instruction to a sink page that is cleared
 * again (mmu.c, trace.c).  Direct execution and translated code both.
 *
 * Docs: docs/06-memory.md.
 * Expected monitor exits: #PF (hidden) for the zero page, #PF + #DB for
 * each write.
 */
#include "guest.h"

static uint32_t rmw(volatile uint32_t *p, uint32_t v, uint32_t *flags)
{
    uint32_t fl;
    __asm__ volatile("addl %2, %1\n\tpushf\n\tpop %0" : "=r"(fl), "+m"(*p) : "r"(v) : "cc");
    *flags = fl & 0x8d5;
    return *p;
}

static uint32_t user_part(uint32_t arg)
{
    (void)arg;
    volatile uint32_t *p = (volatile uint32_t *)0x50002000;
    uint32_t a = p[0];
    p[1] = 0xdeadbeef;
    uprintf("user: absent read %08x, after write %08x\n", a, p[1]);
    return 0;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic; (void)mbi;
    printf("absent: memory beyond the end of RAM\n");
    cpu_init();
    uint32_t *pd = pg_new_dir();
    pg_identity(pd, 0x400000, PG_W | PG_U);
    pg_map(pd, 0x50000000, 0x10000000, PG_W);          /* 256 MiB: nothing there */
    pg_map(pd, 0x50001000, 0x04000000, PG_W);          /* just past 64 MiB */
    pg_map(pd, 0x50002000, 0x08000000, PG_W | PG_U);
    paging_enable(pd, 1);

    volatile uint32_t *p = (volatile uint32_t *)0x50000000;
    volatile uint8_t *q = (volatile uint8_t *)0x50001000;
    uint32_t a = p[0];
    uint32_t b = q[3];
    printf("kernel: read %08x %02x\n", a, b);
    p[0] = 0x12345678;
    q[3] = 0x5a;
    a = p[0];
    b = q[3];
    printf("kernel: after writes %08x %02x\n", a, b);
    check_eq("absent_reads_zero", a | b, 0);
    uint32_t fl;
    uint32_t r = rmw(p + 5, 7, &fl);
    printf("kernel: add to absent: result %08x flags %03x\n", r, fl);
    __asm__ volatile("movl %0, %%edi\n\tmovl $16, %%ecx\n\tmovl $0x77777777, %%eax\n\tcld\n\trep stosl"
                     : : "r"(0x50000100) : "edi", "ecx", "eax", "memory");
    printf("kernel: after rep stosl: %08x %08x\n", p[0x40], p[0x4f]);
    check_eq("absent_after_stos", p[0x40] | p[0x4f], 0);
    run_user(user_part, 0, EFL_IF);
    uint32_t pte = *pg_pte(pd, 0x50000000);
    printf("kernel: pte for the absent page %08x\n", pte);
    printf("absent: done, %d failures\n", failures);
    return failures;
}
