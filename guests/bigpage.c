/*
 * bigpage.c -- 4 MiB pages (CR4.PSE).
 *
 * A page-directory entry with PS set maps 4 MiB directly, and holds the
 * Accessed and Dirty bits itself (SDM Vol. 3A §4.3, 32-Bit Paging).
 * QEMU honours CR4.PSE on this CPU model whatever CPUID says, and so does
 * the monitor: its shadow of a 4 MiB page is a table of 4 KiB entries
 * (mmu.c, SP_BIG).  Mixed 4 MiB and 4 KiB mappings of the same frames,
 * A/D bits in the PDE, a read-only and a supervisor 4 MiB page from ring
 * 0 (WP=1) and ring 3, and a PDE switched between two 4 MiB frames.
 *
 * Docs: docs/06-memory.md.
 * Expected monitor exits: hidden #PF filling SP_BIG shadows; traced
 * writes to the page directory.
 */
#include "guest.h"

#define BIG 0x400000u
#define PDE_PS 0x080u

static uint32_t *pd;

static uint32_t user_read(uint32_t addr)
{
    return *(volatile uint32_t *)addr;
}

static uint32_t user_write(uint32_t addr)
{
    *(volatile uint32_t *)addr = 0x55aa55aa;
    return 0;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic; (void)mbi;
    printf("bigpage: 4 MiB pages\n");
    cpu_init();
    pd = pg_new_dir();
    pg_identity(pd, 0x400000, PG_W | PG_U);            /* the kernel, 4 KiB pages */
    /* Frames 8-12 MiB and 12-16 MiB, written first through 4 KiB maps. */
    pg_map_range(pd, 0x00800000, 0x00800000, 2 * BIG, PG_W);
    pd[0x100] = 0x00800000 | PDE_PS | PG_P | PG_W | PG_U;   /* 0x40000000: frame 8 MiB, user */
    pd[0x101] = 0x00c00000 | PDE_PS | PG_P;                 /* 0x40400000: read-only, supervisor */
    write_cr4(read_cr4() | 0x10);                           /* CR4.PSE */
    paging_enable(pd, 1);

    for (uint32_t i = 0; i < 8; i++) {
        *(volatile uint32_t *)(0x00800000 + i * 0x80000) = 0x1000 + i;
        *(volatile uint32_t *)(0x00c00000 + i * 0x80000) = 0x2000 + i;
    }
    uint32_t sum = 0;
    for (uint32_t i = 0; i < 8; i++)
        sum += *(volatile uint32_t *)(0x40000000 + i * 0x80000) * (i + 1);
    printf("reads through the 4 MiB page: sum=%08x\n", sum);
    check_eq("big_read_sum", sum, 0x1000 * 36 + 168);

    /* Accessed and Dirty live in the PDE. */
    pd[0x100] &= ~(PG_A | PG_D);
    invlpg(0x40000000);
    printf("pde after clear: %08x\n", pd[0x100]);
    (void)*(volatile uint32_t *)0x40123450;
    printf("pde after read:  %08x\n", pd[0x100]);
    *(volatile uint32_t *)0x40123450 = 0xabcdef01;
    printf("pde after write: %08x, 4 KiB view %08x\n", pd[0x100], *(volatile uint32_t *)0x00923450);

    /* Read-only with WP=1 from ring 0. */
    __asm__ volatile(FAULT_ARM "1: movl $1, 0x40400010\n2:" ::: "memory");
    check_fault("big_ro_write_ring0", 14, 3, fault_site, 0x40400010);

    /* Ring 3: the user page, and the supervisor one. */
    uint32_t r = run_user(user_read, 0x40000000, EFL_IF);
    printf("user read of the user 4 MiB page: %08x\n", r);
    run_user(user_write, 0x40000100, EFL_IF);
    printf("user write landed: %08x\n", *(volatile uint32_t *)0x00800100);
    fault_resume = FAULT_RESUME_KERNEL;
    fault_arm(FAULT_RESUME_KERNEL);
    r = run_user(user_read, 0x40400000, EFL_IF);
    printf("user read of the supervisor 4 MiB page: %s\n", r == USER_FAULTED ? "faulted" : "read");
    check_fault("big_super_read_ring3", 14, 5, last_fault.eip, 0x40400000);

    /* Retarget the PDE to the other frame. */
    pd[0x100] = 0x00c00000 | PDE_PS | PG_P | PG_W;
    invlpg(0x40000000);
    printf("after retarget: %08x %08x\n", *(volatile uint32_t *)0x40000000, *(volatile uint32_t *)0x40080000);
    check_eq("big_retarget", *(volatile uint32_t *)0x40080000, 0x2001);

    /* Both sizes of mapping of one frame agree. */
    *(volatile uint32_t *)0x40000abc = 0x600df00d;
    printf("4 KiB view of the 4 MiB write: %08x\n", *(volatile uint32_t *)0x00c00abc);
    check_eq("big_alias", *(volatile uint32_t *)0x00c00abc, 0x600df00d);
    printf("bigpage: done, %d failures\n", failures);
    return failures;
}
