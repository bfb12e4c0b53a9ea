/*
 * mmu.c -- guest memory and the shadow page tables.
 *
 * The guest believes CR3 points at its page directory; the hardware CR3
 * always points at a shadow page directory owned by this file, which maps
 * guest-linear addresses straight to host-physical ones (docs/00-overview.md).  Shadows are a cache: they start empty, and a page fault on a
 * missing entry (a "hidden" fault) makes us walk the guest's tables and
 * fill it in.  A fault the guest's own tables would also have raised is a
 * "true" fault and is reflected to the guest with the CR2 and error code
 * the CPU would have given.
 *
 * There are two shadows, one for guest CPL 3 and one for CPL 0-2.  The
 * second is needed because translated kernel code runs at ring 1, which
 * the MMU treats as supervisor: guest user code translated at ring 1
 * (when IOPL or IF forbid direct execution) must still fault on guest
 * supervisor pages, so the CPL-3 shadow never maps them at all.
 *
 * The monitor itself never touches guest memory through guest mappings:
 * it reaches guest-physical pages through a few temporary mapping slots
 * at the top of its own 4 MiB (hpa_map).
 *
 * The shadows are a cache kept across guest CR3 switches, made coherent
 * with the guest's page tables by write traces (trace.c); 4 MiB pages are
 * shadowed by tables of 4 KiB entries.  Guest-physical addresses beyond
 * RAM read as zeros and swallow writes, as on bare QEMU, except the BIOS
 * ROM at the top of the physical space, which reads as the host's.
 *
 * Hardware:   SDM Vol. 3A §4.3 (32-Bit Paging), §4.7 (Page-Fault
 *             Exceptions), §4.8 (Accessed and Dirty Flags), §4.10.4
 *             (Invalidation of TLBs and Paging-Structure Caches).
 * Runs in:    VMM, ring 0, interrupts off.
 * Read after: direct.c.
 */
#include "vmm.h"

hpa_t ram_base;
u32 ram_size;

extern u32 vmm_pt[1024];        /* boot.S: maps the monitor's 4 MiB */
extern u32 boot_pd[1024];

#define V2P(x) ((u32)(x) - VMM_BASE + VMM_PHYS)
#define SLOT_VA(i) (0xffffffffu - (NSLOTS - (i)) * PGSIZE + 1)

u8 absent_zero[PGSIZE] __attribute__((aligned(PGSIZE)));    /* stays zero */
u8 absent_sink[PGSIZE] __attribute__((aligned(PGSIZE)));    /* takes absent writes */

/* ---- Temporary mappings ---- */

static u32 slot_frame[NSLOTS];

/* Map the host-physical page holding pa into slot `slot` and return a
 * pointer to pa.  The pointer is valid until the slot is reused. */
void *
hpa_map(hpa_t pa, int slot)
{
    u32 frame = pa & PTE_FRAME;
    if (slot_frame[slot] != (frame | 1)) {
        vmm_pt[1024 - NSLOTS + slot] = frame | PTE_P | PTE_W;
        invlpg(SLOT_VA(slot));
        slot_frame[slot] = frame | 1;
    }
    return (void *)(SLOT_VA(slot) + (pa & 0xfff));
}

/*T:003 The mapping cache.  Emulating one guest instruction touches a
 * handful of guest pages again and again: the page directory and a page
 * table for each walk, the IDT, the GDT, the kernel stack.  Remapping a
 * single slot for each access costs a page-table write and an INVLPG
 * every time the page changes, so the monitor keeps sixteen slots below
 * the temporary ones as a direct-mapped cache of host frames, indexed by
 * the low bits of the frame number.  Host frames never move, so an entry
 * stays right until another frame needs its slot. :*/
#define NMAPC 16
#define MAPC_VA(i) (0xfffe0000u + (i) * PGSIZE)
static u32 mapc_frame[NMAPC];

static inline u8 *
hpa_cached(hpa_t pa)
{
    u32 frame = pa & PTE_FRAME, i = (frame >> PGSHIFT) & (NMAPC - 1);
    if (mapc_frame[i] != (frame | 1)) {
        vmm_pt[(MAPC_VA(i) - VMM_BASE) >> PGSHIFT] = frame | PTE_P | PTE_W;
        invlpg(MAPC_VA(i));
        mapc_frame[i] = frame | 1;
    }
    return (u8 *)MAPC_VA(i) + (pa & 0xfff);
}

/* Copy n bytes within one page.  Most of the monitor's accesses to guest
 * memory are of 1, 2, 4 or 8 bytes; those are single moves. */
static inline void
copy_small(void *d, const void *s, u32 n)
{
    switch (n) {
    case 1: *(u8 *)d = *(const u8 *)s; break;
    case 2: *(u16 *)d = *(const u16 *)s; break;
    case 4: *(u32 *)d = *(const u32 *)s; break;
    case 8: ((u32 *)d)[0] = ((const u32 *)s)[0]; ((u32 *)d)[1] = ((const u32 *)s)[1]; break;
    default: memcpy(d, s, n);
    }
}

void
hpa_read(hpa_t pa, void *buf, u32 n)
{
    u8 *b = buf;
    while (n) {
        u32 chunk = PGSIZE - (pa & 0xfff);
        if (chunk > n)
            chunk = n;
        copy_small(b, hpa_cached(pa), chunk);
        pa += chunk, b += chunk, n -= chunk;
    }
}

void
hpa_write(hpa_t pa, const void *buf, u32 n)
{
    const u8 *b = buf;
    while (n) {
        u32 chunk = PGSIZE - (pa & 0xfff);
        if (chunk > n)
            chunk = n;
        copy_small(hpa_cached(pa), b, chunk);
        pa += chunk, b += chunk, n -= chunk;
    }
}

/*T:005 Guest-physical memory.  RAM is [0, ram_size) at host ram_base.
 * Beyond it nothing answers on bare QEMU's PC: reads see zeros and
 * writes vanish.  The BIOS ROM sits at the top of the physical space: a
 * Multiboot or Linux guest sees the host's, read-only; a guest booted
 * from a ROM image of its own (load.c) sees that image instead, at the
 * top and, for its last 128 KiB, just below 1 MiB, where the PC decodes
 * the ROM too (its RAM there is hidden).  Writes to ROM vanish.  And
 * address line 20 may be masked, as the A20 gate of the PC's keyboard
 * controller and port 0x92 can make it (dev.c): every physical address
 * the CPU forms - page-table entries included - has bit 20 cleared. :*/
#define ROM_BASE 0xfffc0000u
#define ISA_ROM_TOP 0x100000u
static hpa_t rom_hpa;           /* a ROM guest's image, in host memory (load.c) */
static u32 rom_size;
static u32 a20_mask = ~0u;

void
mmu_set_rom(hpa_t hpa, u32 size)
{
    rom_hpa = hpa;
    rom_size = size;
}

/* The host-physical address behind guest-physical pa if pa is ROM; 0 if
 * it is not. */
static hpa_t
rom_at(gpa_t pa)
{
    if (!rom_size)
        return pa >= ROM_BASE ? pa : 0;
    if (pa >= 0u - rom_size)
        return rom_hpa + (pa - (0u - rom_size));
    u32 alias = rom_size < 0x20000 ? rom_size : 0x20000;
    if (pa >= ISA_ROM_TOP - alias && pa < ISA_ROM_TOP)
        return rom_hpa + rom_size - (ISA_ROM_TOP - pa);
    return 0;
}

/* What to map, read-only, for guest-physical page pa if it is not
 * ordinary RAM: the ROM's frame, or the zero page for nothing at all.
 * 0 for RAM. */
hpa_t
mmu_not_ram(gpa_t pa)
{
    hpa_t rom = rom_at(pa);
    if (rom)
        return rom & PTE_FRAME;
    return pa >= ram_size ? V2P(absent_zero) : 0;
}

void
mmu_set_a20(struct vcpu *v, int on)
{
    u32 m = on ? ~0u : ~(1u << 20);
    if (m == a20_mask)
        return;
    a20_mask = m;
    mmu_flush(v);               /* every shadow mapping may have changed */
    mmu_code_mappings_changed();
}

/*T:075 The mappings of translated code.  The translator links units
 * across pages and caches where guest code lives, which holds only while
 * the guest maps those code pages as it did (bt.c, C:020).  So the frames
 * of the page directory and page tables behind code the translator uses
 * are traced like any shadowed page table (TR_PT), and this generation
 * number moves whenever such an entry may have changed: a write to one of
 * those frames, INVLPG, a new CR3, a change of paging mode or of A20.
 * The monitor's own TLB (T:077) rests on the same traces, with a
 * generation of its own for the entries behind the data it touches. :*/
static u32 code_gen = 1, data_gen = 1;
#define NCODE_PT 64
static struct code_pt {
    gpa_t frame;                        /* a page directory or page table */
    u32 used[2][1024 / 32];             /* which of its entries map code [0], data [1] */
} code_pt[NCODE_PT];
static int ncode_pt;

void
mmu_code_mappings_changed(void)
{
    code_gen++;
    data_gen++;
}

u32
mmu_code_generation(void)
{
    return code_gen;
}

/* Entry `e` (an address in guest-physical memory) maps translated code
 * (kind 0) or data the monitor's TLB remembers (kind 1): trace its frame,
 * with an owner of its own (TR_CMAP), and remember it. */
static void
note_entry(struct vcpu *v, gpa_t e, int kind)
{
    gpa_t frame = e & PTE_FRAME;
    u32 idx = (e & 0xfff) / 4;
    struct code_pt *c = NULL;
    for (int i = 0; i < ncode_pt && !c; i++)
        if (code_pt[i].frame == frame)
            c = &code_pt[i];
    if (!c) {
        if (ncode_pt == NCODE_PT) {
            for (int i = 0; i < ncode_pt; i++)
                trace_remove(code_pt[i].frame, TR_CMAP);
            ncode_pt = 0;
            mmu_code_mappings_changed();        /* forgotten: every link is checked again */
        }
        c = &code_pt[ncode_pt++];
        memset(c, 0, sizeof *c);
        c->frame = frame;
        trace_add(v, frame, TR_CMAP);
    }
    c->used[kind][idx / 32] |= 1u << (idx % 32);
}

/* A write to a page directory or page table behind translated code or
 * remembered data: the mappings moved only if one of the entries that
 * map them changed. */
static void
cmap_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new)
{
    gpa_t frame = pa & PTE_FRAME;
    u32 first = (pa & 0xfff) / 4, last = ((pa & 0xfff) + n - 1) / 4;
    for (int i = 0; i < ncode_pt; i++)
        if (code_pt[i].frame == frame)
            for (u32 e = first; e <= last && e < 1024; e++) {
                if (code_pt[i].used[0][e / 32] & (1u << (e % 32)))
                    code_gen++;
                if (code_pt[i].used[1][e / 32] & (1u << (e % 32)))
                    data_gen++;
            }
}

int
mmu_a20(void)
{
    return a20_mask == ~0u;
}

int
gpa_read(gpa_t pa, void *buf, u32 n)
{
    u8 *b = buf;
    if (!rom_size && pa < ram_size && n <= PGSIZE - (pa & 0xfff) && pa + n <= ram_size) {
        copy_small(b, hpa_cached(ram_base + pa), n);      /* RAM, one page */
        return OK;
    }
    while (n) {
        u32 chunk = PGSIZE - (pa & 0xfff);
        if (chunk > n)
            chunk = n;
        hpa_t rom = rom_at(pa);
        if (rom)
            hpa_read(rom, b, chunk);
        else if (pa >= ram_size)
            memset(b, 0, chunk);
        else
            hpa_read(ram_base + pa, b, chunk);
        pa += chunk, b += chunk, n -= chunk;
    }
    return OK;
}

/* The monitor's own writes fire traces too (trace.c): an emulated PUSH
 * onto a traced page, an Accessed bit set in a traced page table. */
int
gpa_write(gpa_t pa, const void *buf, u32 n)
{
    const u8 *b = buf;
    while (n) {
        u32 chunk = PGSIZE - (pa & 0xfff);
        if (chunk > n)
            chunk = n;
        if (rom_at(pa) || pa >= ram_size) {
            ;                   /* nothing takes the write */
        } else if (trace_is_traced(pa)) {
            u8 old[PGSIZE];
            hpa_read(ram_base + pa, old, chunk);
            hpa_write(ram_base + pa, b, chunk);
            if (memcmp(old, b, chunk))
                trace_notify(&vcpu0, pa, chunk, old, b);
        } else {
            hpa_write(ram_base + pa, b, chunk);
        }
        pa += chunk, b += chunk, n -= chunk;
    }
    return OK;
}

/* A page-directory or page-table entry: aligned, so within one page. */
static u32
gpa_read32(gpa_t pa)
{
    if (pa < ram_size && pa < ROM_BASE && (!rom_size || !rom_at(pa)))
        return *(u32 *)hpa_cached(ram_base + pa);
    u32 v;
    gpa_read(pa, &v, 4);
    return v;
}

static void
gpa_write32(gpa_t pa, u32 v)
{
    gpa_write(pa, &v, 4);
}

/* ---- The guest's page tables ---- */

struct walk {
    gpa_t pdea, ptea;   /* the entries used (ptea 0 for a 4 MiB page or no paging) */
    gpa_t pa;
    int writable;       /* may this access's privilege write the page? */
    int dirty;          /* the guest's D bit, after this access */
    u32 pde;            /* the guest PDE used (after A/D updates) */
    int big;            /* a 4 MiB page (CR4.PSE and PDE.PS) */
};

/*T:010 Walking the guest's page tables, as the CPU would: the same
 * checks in the same order, and the same Accessed and Dirty updates in
 * the guest's own entries, so that a guest reading its PTEs sees what it
 * would see on bare hardware.  SDM Vol. 3A §4.3 and §4.8.  A failed walk
 * leaves a #PF pending with the exact error code. :*/
static int
walk(struct vcpu *v, gva_t la, int acc, struct walk *w)
{
    int user = (acc & ACC_U) && !(acc & ACC_SYS);
    int write = acc & ACC_W;
    u32 err = (write ? PFE_W : 0) | (user ? PFE_U : 0);

    w->big = 0;
    w->pdea = w->ptea = 0;
    if (!(v->cr0 & CR0_PG)) {
        w->pa = la & a20_mask;
        w->writable = 1;
        w->dirty = 1;
        w->pde = PTE_P | PTE_W | PTE_U;
        return OK;
    }
    gpa_t pdea = ((v->cr3 & PTE_FRAME) + (la >> PDXSHIFT) * 4) & a20_mask;
    w->pdea = pdea;
    u32 pde = gpa_read32(pdea);
    if (!(pde & PTE_P))
        return raise_pf(v, la, err);
    if ((pde & PTE_PS) && (v->cr4 & CR4_PSE)) {
        /* A 4 MiB page: the PDE alone decides, and holds A and D.  Bits
         * 13-21 are reserved on a CPU without PSE-36, as the guest's is
         * (SDM Vol. 3A §4.3, Table 4-4; §4.7: the fault has P and RSVD
         * set.  QEMU 7.2 leaves P clear.) */
        if (pde & 0x003fe000)
            return raise_pf(v, la, err | PFE_P | PFE_RSVD);
        int may_write = user ? (pde & PTE_W) : ((pde & PTE_W) || !(v->cr0 & CR0_WP));
        if ((user && !(pde & PTE_U)) || (write && !may_write))
            return raise_pf(v, la, err | PFE_P);
        u32 npde = pde | PTE_A | (write ? PTE_D : 0);
        if (npde != pde && !(acc & ACC_PEEK))
            gpa_write32(pdea, npde);
        w->pa = ((pde & 0xffc00000) | (la & 0x3fffff)) & a20_mask;
        w->writable = may_write;
        w->dirty = !!(npde & PTE_D);
        w->pde = npde;
        w->big = 1;
        return OK;
    }
    if (!(pde & PTE_A) && !(acc & ACC_PEEK))
        gpa_write32(pdea, pde |= PTE_A);
    gpa_t ptea = ((pde & PTE_FRAME) + ((la >> PGSHIFT) & 0x3ff) * 4) & a20_mask;
    w->ptea = ptea;
    u32 pte = gpa_read32(ptea);
    if (!(pte & PTE_P))
        return raise_pf(v, la, err);
    u32 both = pde & pte;
    int may_write = user ? (both & PTE_W) : ((both & PTE_W) || !(v->cr0 & CR0_WP));
    if ((user && !(both & PTE_U)) || (write && !may_write))
        return raise_pf(v, la, err | PFE_P);
    u32 npte = pte | PTE_A | (write ? PTE_D : 0);
    if (npte != pte && !(acc & ACC_PEEK))
        gpa_write32(ptea, npte);
    w->pa = ((pte & PTE_FRAME) | (la & 0xfff)) & a20_mask;
    w->writable = may_write;
    w->dirty = !!(npte & PTE_D);
    w->pde = pde;
    return OK;
}

/*T:077 The monitor's own TLB.  Emulating an instruction reads and
 * writes guest-linear memory a dozen times - the IDT, the GDT, the TSS,
 * the kernel stack - and each access would walk the guest's page tables
 * again.  So the monitor caches translations as the CPU does, per
 * privilege class, direct-mapped by page number.  Unlike the CPU's TLB
 * it is kept exact: the page-table entries behind each cached
 * translation are traced (T:075), and every change to one of them, every
 * INVLPG, new CR3 or change of paging mode moves data_gen, which empties
 * the cache.  Only translations whose Accessed bits are set are kept, and
 * a write hits only if the page is writable and already Dirty, so the
 * guest's A and D bits read as the walks would have left them. :*/
#define NDTLB 32
static struct dtlb {
    u32 tag;                    /* linear page | 1 (valid) | 2 (writes hit) */
    gpa_t pa;                   /* guest-physical page */
    u32 gen;                    /* data_gen when filled */
} dtlb[2][NDTLB];

int
mmu_translate(struct vcpu *v, gva_t la, int acc, gpa_t *pa)
{
    struct walk w;
    int user = (acc & ACC_U) && !(acc & ACC_SYS);
    int paging = v->cr0 & CR0_PG;
    struct dtlb *e = &dtlb[user][(la >> PGSHIFT) % NDTLB];
    if (paging && e->gen == data_gen && (e->tag & ~0xfffu) == (la & ~0xfffu) &&
        (e->tag & ((acc & ACC_W) ? 3 : 1)) == ((acc & ACC_W) ? 3u : 1u)) {
        *pa = e->pa | (la & 0xfff);
        return OK;
    }
    if (walk(v, la, acc, &w) != OK)
        return FAULT;
    *pa = w.pa;
    if (paging && !(acc & ACC_PEEK)) {
        note_entry(v, w.pdea, 1);
        if (w.ptea)
            note_entry(v, w.ptea, 1);
        e->tag = (la & ~0xfffu) | 1 | (w.writable && w.dirty ? 2 : 0);
        e->pa = w.pa & ~0xfffu;
        e->gen = data_gen;
    }
    return OK;
}

/* The same for a fetch the translator will remember (T:075): the frames
 * of the entries used are traced from now on. */
/* The same for a table the monitor keeps a copy of (shadow.c): the
 * entries used are traced, so that mmu_data_generation() moves when one
 * of them changes. */
int
mmu_translate_watched(struct vcpu *v, gva_t la, int acc, gpa_t *pa)
{
    struct walk w;
    if (walk(v, la, acc, &w) != OK)
        return FAULT;
    if (v->cr0 & CR0_PG) {
        note_entry(v, w.pdea, 1);
        if (w.ptea)
            note_entry(v, w.ptea, 1);
    }
    *pa = w.pa;
    return OK;
}

u32
mmu_data_generation(void)
{
    return data_gen;
}

int
mmu_translate_code(struct vcpu *v, gva_t la, int acc, gpa_t *pa)
{
    struct walk w;
    if (walk(v, la, acc, &w) != OK)
        return FAULT;
    if (w.pdea)
        note_entry(v, w.pdea, 0);
    if (w.ptea)
        note_entry(v, w.ptea, 0);
    *pa = w.pa;
    return OK;
}

/* Read or write n bytes at a guest-linear address with the access rights
 * `acc`.  Every page is translated before anything is written, so an
 * access that faults on its second page changes nothing (SDM Vol. 3A
 * §6.5, faults are restartable). */
int
vmem_read(struct vcpu *v, gva_t la, void *buf, u32 n, int acc)
{
    u8 *b = buf;
    while (n) {
        u32 chunk = PGSIZE - (la & 0xfff);
        if (chunk > n)
            chunk = n;
        gpa_t pa;
        if (mmu_translate(v, la, acc & ~ACC_W, &pa) != OK)
            return FAULT;
        gpa_read(pa, b, chunk);
        la += chunk, b += chunk, n -= chunk;
    }
    return OK;
}

int
vmem_write(struct vcpu *v, gva_t la, const void *buf, u32 n, int acc)
{
    gpa_t pa[2];
    u32 first = PGSIZE - (la & 0xfff);
    assert(n <= PGSIZE);
    if (mmu_translate(v, la, acc | ACC_W, &pa[0]) != OK)
        return FAULT;
    if (n > first && mmu_translate(v, la + first, acc | ACC_W, &pa[1]) != OK)
        return FAULT;
    if (n <= first) {
        gpa_write(pa[0], buf, n);
    } else {
        gpa_write(pa[0], buf, first);
        gpa_write(pa[1], (const u8 *)buf + first, n - first);
    }
    return OK;
}

/* ---- Shadow page tables ---- */

static void de_view_init(void);


/*T:060 The shadow page tables are a cache, kept across guest CR3
 * switches (docs/00-overview.md).  Each pool page shadows one thing:
 *   SP_PD   a guest page directory (keyed by its frame), one per flavour;
 *   SP_PT   a guest page table (keyed by its frame and the permission
 *           bits of the PDE that leads to it), shared by every shadow
 *           directory whose guest PDE points at it;
 *   SP_BIG  a 4 MiB guest page, or a 4 MiB stretch with paging off.
 * Every guest page that a SP_PD or SP_PT shadows carries a TR_PT trace:
 * a guest write to a PDE or PTE zaps the shadow entries made from it,
 * and the next access refills them (the hidden fault). :*/
#define POOL_PAGES 192
static u32 pool[POOL_PAGES][1024] __attribute__((aligned(PGSIZE)));
enum { SP_FREE = 0, SP_PD, SP_PT, SP_BIG };
static struct spage {
    u32 key;            /* guest frame (| PDE U/W bits for SP_PT and SP_BIG) */
    u8 kind, flavour;
    s16 hnext;
} sp[POOL_PAGES];
#define SP_NHASH 128
static s16 sp_hash[SP_NHASH];
static s16 sp_free[POOL_PAGES];
static int nsp_free;

enum { SH_KERNEL = 0, SH_USER = 1 };
#define KEY_NOPAGING 0xfffff000     /* SP_PD key when the guest has paging off */
static s16 cur_pd[2] = { -1, -1 };  /* shadow directory for the guest's CR3, by flavour */
static u32 cur_key[2];

/* Hashed by the guest frame alone, so that every shadow made from one
 * guest page - as a directory or a table, of either flavour, with any
 * U/W bits - shares a chain, and a write to that page finds them all in
 * one walk (pt_written). */
static u32
sp_hashof(u32 key, int kind, int flavour)
{
    return (key >> 12) % SP_NHASH;
}

/* The reverse map: for each guest frame, the shadow PTEs that map it
 * writable, so a new trace can make them read-only (trace.c).  Entries go
 * stale when a shadow PTE is overwritten; they are checked when used and
 * all dropped with the pool. */
#define RMAP_NODES 16384
#define RMAP_NONE 0xffff
static struct rnode {
    u32 *spte;
    u16 next;
} rnodes[RMAP_NODES];
static int nrnodes;
static u16 rhead[MAX_GUEST_MB * 256];

static void
rmap_reset(void)
{
    memset(rhead, 0xff, sizeof rhead);
    nrnodes = 0;
}

/* Returns 0 if the map is full (the caller then flushes). */
static int
rmap_add(gpa_t pa, u32 *spte)
{
    if (nrnodes == RMAP_NODES)
        return 0;
    u32 fn = pa >> PGSHIFT;
    rnodes[nrnodes].spte = spte;
    rnodes[nrnodes].next = rhead[fn];
    rhead[fn] = nrnodes++;
    return 1;
}

void
mmu_write_protect(struct vcpu *v, gpa_t page)
{
    u32 fn = page >> PGSHIFT;
    int changed = 0;
    for (u16 i = rhead[fn]; i != RMAP_NONE; i = rnodes[i].next) {
        u32 *e = rnodes[i].spte;
        if ((*e & PTE_P) && (*e & PTE_FRAME) == ram_base + page && (*e & PTE_W)) {
            *e &= ~PTE_W;
            changed = 1;
        }
    }
    rhead[fn] = RMAP_NONE;
    if (changed)
        lcr3(rcr3());
}

static void
pool_reset(void)
{
    rmap_reset();
    for (int i = 0; i < SP_NHASH; i++)
        sp_hash[i] = -1;
    nsp_free = 0;
    for (int i = POOL_PAGES - 1; i >= 0; i--) {
        sp[i].kind = SP_FREE;
        sp_free[nsp_free++] = i;
    }
    cur_pd[0] = cur_pd[1] = -1;
}

/* Find the shadow of (key, kind, flavour), or make an empty one.  -1 if
 * the pool is exhausted. */
static int
sp_get(struct vcpu *v, u32 key, int kind, int flavour)
{
    u32 h = sp_hashof(key, kind, flavour);
    for (s16 i = sp_hash[h]; i >= 0; i = sp[i].hnext)
        if (sp[i].key == key && sp[i].kind == kind && sp[i].flavour == flavour)
            return i;
    if (!nsp_free)
        return -1;
    int i = sp_free[--nsp_free];
    sp[i].key = key;
    sp[i].kind = kind;
    sp[i].flavour = flavour;
    sp[i].hnext = sp_hash[h];
    sp_hash[h] = i;
    memset(pool[i], 0, PGSIZE);
    if (kind == SP_PD)
        /* The monitor's 4 MiB: the same page table in every address
         * space the hardware ever uses.  Its PTEs are supervisor-only,
         * but for the translation cache and its scratch page (bt.c). */
        pool[i][VMM_BASE >> PDXSHIFT] = V2P(vmm_pt) | PTE_P | PTE_W | PTE_U;
    if ((kind == SP_PD && key != KEY_NOPAGING) || kind == SP_PT)
        trace_add(v, key & PTE_FRAME, TR_PT);
    return i;
}


/* A guest write to a page the shadows are made from: zap the shadow
 * entries made from the entries it changed. */
static void
pt_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new)
{
    gpa_t page = pa & PTE_FRAME;
    u32 first = (pa & 0xfff) / 4, last = ((pa & 0xfff) + n - 1) / 4;
    int zapped = 0;
    /* The shadows made from this page: as a directory (either flavour),
     * or as a page table reached through PDEs with any U/W bits. */
    for (s16 i = sp_hash[sp_hashof(page, 0, 0)]; i >= 0; i = sp[i].hnext) {
        int kind = sp[i].kind;
        if ((sp[i].key & PTE_FRAME) != page || (kind != SP_PD && kind != SP_PT) ||
            (kind == SP_PD && sp[i].key == KEY_NOPAGING))
            continue;
        for (u32 e = first; e <= last; e++)
            if (!(kind == SP_PD && e == (VMM_BASE >> PDXSHIFT)) && pool[i][e]) {
                pool[i][e] = 0;
                zapped = 1;
            }
    }
    if (zapped)
        lcr3(rcr3());
}

void
mmu_init(void)
{
    /* Text and read-only data are read-only to the monitor itself too
     * (CR0.WP is set), so a stray write faults instead of corrupting. */
    extern char __rodata_end[];
    for (u32 va = VMM_BASE; va < (u32)__rodata_end; va += PGSIZE)
        vmm_pt[(va - VMM_BASE) >> PGSHIFT] &= ~PTE_W;
    /* The temporary slots start empty. */
    for (int i = 0; i < NSLOTS; i++)
        vmm_pt[1024 - NSLOTS + i] = 0;
    for (int i = 0; i < NMAPC; i++)
        vmm_pt[(MAPC_VA(i) - VMM_BASE) >> PGSHIFT] = 0;
    pool_reset();
    de_view_init();
    trace_register(TR_PT, pt_written);
    trace_register(TR_CMAP, cmap_written);
}

/* Map (or, with pa 0, unmap) a temporary slot for relocated execution
 * (bt.c): supervisor, writable or not. */
void
mmu_alias(int slot, hpa_t pa, int writable)
{
    vmm_pt[1024 - NSLOTS + slot] = pa ? (pa & PTE_FRAME) | PTE_P | (writable ? PTE_W : 0) |
                                        (bt_ring == 3 ? PTE_U : 0) : 0;
    slot_frame[slot] = 0;
    invlpg(SLOT_VA(slot));
}

/* Make [va, va+len) of the monitor's region reachable from ring 3: the
 * translation cache (read-only) and translated code's scratch page. */
void
mmu_expose(u32 va, u32 len, int writable)
{
    for (u32 a = va; a < va + len; a += PGSIZE) {
        u32 *e = &vmm_pt[(a - VMM_BASE) >> PGSHIFT];
        *e = (*e & ~PTE_W) | PTE_U | (writable ? PTE_W : 0);
    }
    lcr3(rcr3());
}

/* Discard every shadow.  The hardware first moves to boot.S's directory,
 * which maps only the monitor, so no live directory is reused. */
void
mmu_flush(struct vcpu *v)
{
    v->st.shadow_flushes++;
    lcr3(V2P(boot_pd));
    for (int i = 0; i < POOL_PAGES; i++)
        if (sp[i].kind == SP_PD || sp[i].kind == SP_PT)
            trace_remove(sp[i].key & PTE_FRAME, TR_PT);
    pool_reset();
}

/* The shadow directory for the guest's current CR3 and privilege. */
static int
current_pd(struct vcpu *v, int flavour)
{
    u32 key = (v->cr0 & CR0_PG) ? v->cr3 & PTE_FRAME : KEY_NOPAGING;
    if (cur_pd[flavour] >= 0 && cur_key[flavour] == key)
        return cur_pd[flavour];
    int i = sp_get(v, key, SP_PD, flavour);
    if (i < 0) {
        mmu_flush(v);
        i = sp_get(v, key, SP_PD, flavour);
    }
    cur_pd[flavour] = i;
    cur_key[flavour] = key;
    return i;
}

/*T:070 The view direct execution runs on.  On QEMU, IRET, far RET and
 * far CALL make their stack accesses with supervisor rights even at CPL
 * 3, so paging alone would not keep directly executed guest code out of
 * the monitor's supervisor pages: a ring-3 IRET with ESP pointing into
 * them would read the monitor, a far CALL write it.  So while the guest
 * runs directly, its shadow directory maps of the monitor only what the
 * CPU itself needs to take a trap - the IDT, the GDT, the TSS and the
 * entry code, read-only, and the page holding the trap frame - and the
 * trap path switches to the monitor's full view first thing (boot.S).
 * Such a guest access then faults like any other in the top 4 MiB and
 * runs relocated against the guest's own mapping. :*/
static u32 de_pt[1024] __attribute__((aligned(PGSIZE)));

static void
de_view_init(void)
{
    extern char __entry_start[], __entry_end[];
    u32 ro[5][2] = {
        { 0, 0 },
        { (u32)vmm_idt_addr(), PGSIZE },
        { (u32)&tss_page, PGSIZE },
        { (u32)__entry_start, (u32)(__entry_end - __entry_start) },
        { 0, 0 },
    };
    shadow_de_tables(&ro[0][0], &ro[0][1], &ro[4][0], &ro[4][1]);
    memset(de_pt, 0, sizeof de_pt);
    for (int r = 0; r < 5; r++)
        for (u32 a = ro[r][0]; a < ro[r][0] + ro[r][1]; a += PGSIZE)
            de_pt[(a - VMM_BASE) >> PGSHIFT] = vmm_pt[(a - VMM_BASE) >> PGSHIFT] & ~(PTE_W | PTE_U);
    u32 fp = (u32)&vcpu0 & PTE_FRAME;
    de_pt[(fp - VMM_BASE) >> PGSHIFT] = (vmm_pt[(fp - VMM_BASE) >> PGSHIFT] & ~PTE_U) | PTE_W;
}

static int de_view;

/* Select the view the next entry uses: direct execution's, or the full one. */
void
mmu_de_view(int on)
{
    de_view = on;
}

u32
mmu_hw_cr3(struct vcpu *v)
{
    u32 *pd = pool[current_pd(v, vcpu_cpl(v) == 3 ? SH_USER : SH_KERNEL)];
    u32 want = (de_view ? V2P(de_pt) : V2P(vmm_pt)) | PTE_P | PTE_W | PTE_U;
    if ((pd[VMM_BASE >> PDXSHIFT] & ~PTE_A) != want) {     /* the CPU sets A */
        pd[VMM_BASE >> PDXSHIFT] = want;
        /* vm_enter keeps the TLB when CR3 does not change: a directory
         * whose view of the monitor changed must not be the one in use. */
        if (rcr3() == V2P(pd))
            lcr3(V2P(boot_pd));
    }
    return V2P(pd);
}

void
mmu_invlpg(struct vcpu *v, gva_t la)
{
    mmu_code_mappings_changed();
    if (la < VMM_BASE)
        for (int f = 0; f < 2; f++) {
            if (cur_pd[f] < 0)
                continue;
            u32 pde = pool[cur_pd[f]][la >> PDXSHIFT];
            if (pde & PTE_P) {
                u32 *pt = (u32 *)((pde & PTE_FRAME) - VMM_PHYS + VMM_BASE);
                pt[(la >> PGSHIFT) & 0x3ff] = 0;
            }
        }
    invlpg(la);
}

/*T:020 A page fault from the guest.  Either the shadow simply lacks the
 * entry (a hidden fault: walk the guest's tables, fill the shadow, resume
 * the guest as if nothing happened) or the guest's own tables forbid the
 * access (a true fault: reflect it).  Returns PF_HIDDEN, PF_TRACED (a
 * write to a traced page: trace.c carries it out), 0 for a true fault
 * (the #PF pending in vfault), or STOP. :*/
int
mmu_page_fault(struct vcpu *v, u32 la, u32 hwerr)
{
    int flavour = vcpu_cpl(v) == 3 ? SH_USER : SH_KERNEL;
    int acc = ((hwerr & PFE_W) ? ACC_W : 0) | (flavour == SH_USER ? ACC_U : 0);
    struct walk w;

    if (la >= VMM_BASE)
        return PF_WINDOW;       /* the engine has it run relocated (bt.c) */
    if (walk(v, la, acc, &w) != OK) {
        v->st.true_pf++;
        return 0;
    }
    u32 *pd = pool[current_pd(v, flavour)];
    u32 pdi = la >> PDXSHIFT;
    if (!(pd[pdi] & PTE_P)) {
        u32 perm = w.pde & (PTE_U | PTE_W);
        int i;
        if (!(v->cr0 & CR0_PG))
            i = sp_get(v, (la & 0xffc00000) | perm | 0x800, SP_BIG, flavour);  /* 0x800: paging off */
        else if (w.big)
            i = sp_get(v, (w.pde & 0xffc00000) | perm, SP_BIG, flavour);
        else
            i = sp_get(v, (w.pde & PTE_FRAME) | perm, SP_PT, flavour);
        if (i < 0) {
            mmu_flush(v);       /* out of shadow pages: start again from empty */
            return PF_HIDDEN;
        }
        pd[pdi] = V2P(pool[i]) | PTE_P | PTE_W | PTE_U;
    }
    u32 *pt = (u32 *)((pd[pdi] & PTE_FRAME) - VMM_PHYS + VMM_BASE);
    u32 *spte = &pt[(la >> PGSHIFT) & 0x3ff];
    hpa_t not_ram = mmu_not_ram(w.pa);
    if (not_ram) {
        /* Absent memory or ROM (T:005): read-only; a write goes, for one
         * instruction, to a sink page that is cleared afterwards. */
        *spte = not_ram | PTE_P | PTE_U;
        invlpg(la);
        v->st.hidden_pf++;
        if (acc & ACC_W)
            return trace_begin_absent(v, spte, la, V2P(absent_sink)) ? PF_TRACED : PF_HIDDEN;
        return PF_HIDDEN;
    }
    /* Writable in the shadow only once the guest's D bit is set, so the
     * first write faults and sets it (SDM Vol. 3A §4.8); never writable
     * while the page is traced (trace.c). */
    int traced = trace_is_traced(w.pa);
    u32 flags = PTE_P | PTE_U;     /* user: translated code may run at ring 3 */
    if (w.writable && w.dirty && !traced)
        flags |= PTE_W;
    *spte = (ram_base + (w.pa & PTE_FRAME)) | flags;
    if ((flags & PTE_W) && !rmap_add(w.pa, spte)) {
        mmu_flush(v);           /* reverse map full: start again */
        return PF_HIDDEN;
    }
    invlpg(la);
    if (traced && (acc & ACC_W))
        return trace_begin_write(v, w.pa, spte, la) ? PF_TRACED : PF_HIDDEN;
    v->st.hidden_pf++;
    return PF_HIDDEN;
}

/* What is in use of the fixed pools, for the statistics (a long run's
 * report shows none of them growing without bound): shadow pages and
 * reverse-map nodes. */
void
mmu_usage(u32 u[4])
{
    u[0] = POOL_PAGES - nsp_free;
    u[1] = POOL_PAGES;
    u[2] = nrnodes;
    u[3] = RMAP_NODES;
}
