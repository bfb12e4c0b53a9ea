/*
 * paging.c -- two-level 4 KiB paging helpers.  Page directories and page
 * tables come from a static pool in .bss (cleared by entry.S), so their
 * addresses -- and therefore every PDE/PTE value a guest prints -- are the
 * same on every run.
 */
#include "guest.h"

#define PG_POOL_PAGES 24

static uint8_t pg_pool[PG_POOL_PAGES][PG_SIZE] ALIGNED(4096);
static int pg_used;

uint32_t *pg_alloc(void)
{
    if (pg_used >= PG_POOL_PAGES) {
        print("pg_alloc: page-table pool exhausted\n");
        exit(EXIT_UNEXPECTED_TRAP);
    }
    uint32_t *p = (uint32_t *)pg_pool[pg_used++];
    memset(p, 0, PG_SIZE);
    return p;
}

uint32_t *pg_new_dir(void)
{
    return pg_alloc();
}

uint32_t *pg_pde(uint32_t *pd, uint32_t va)
{
    return &pd[va >> 22];
}

uint32_t *pg_pte(uint32_t *pd, uint32_t va)
{
    uint32_t pde = pd[va >> 22];
    if (!(pde & PG_P))
        return 0;
    uint32_t *pt = (uint32_t *)PG_FRAME(pde);
    return &pt[(va >> 12) & 0x3ff];
}

void pg_map(uint32_t *pd, uint32_t va, uint32_t pa, uint32_t flags)
{
    uint32_t *pde = &pd[va >> 22];
    if (!(*pde & PG_P))
        *pde = (uint32_t)pg_alloc() | PG_P | PG_W | PG_U;
    uint32_t *pt = (uint32_t *)PG_FRAME(*pde);
    pt[(va >> 12) & 0x3ff] = PG_FRAME(pa) | (flags & 0xfff) | PG_P;
}

void pg_map_range(uint32_t *pd, uint32_t va, uint32_t pa, uint32_t bytes, uint32_t flags)
{
    for (uint32_t off = 0; off < bytes; off += PG_SIZE)
        pg_map(pd, va + off, pa + off, flags);
}

void pg_identity(uint32_t *pd, uint32_t bytes, uint32_t flags)
{
    pg_map_range(pd, 0, 0, bytes, flags);
}

void pg_unmap(uint32_t *pd, uint32_t va)
{
    uint32_t *pte = pg_pte(pd, va);
    if (pte)
        *pte = 0;
    invlpg(va);
}

void paging_enable(uint32_t *pd, int wp)
{
    write_cr3((uint32_t)pd);
    uint32_t cr0 = read_cr0() | CR0_PG;
    if (wp)
        cr0 |= CR0_WP;
    else
        cr0 &= ~CR0_WP;
    write_cr0(cr0);
}

void paging_disable(void)
{
    write_cr0(read_cr0() & ~(CR0_PG | CR0_WP));
}
