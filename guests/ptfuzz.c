/*
 * ptfuzz -- a differential fuzzer of the guest's page tables.  Each round
 * fills two page directories' test slots and ten frames of page tables
 * and data with random entries (present, R/W, U/S, PS, A, D, PWT/PCD;
 * page tables that are data pages, page directories mapped as page tables
 * - self-maps and cross-maps - 4 MiB pages over the page tables
 * themselves, the top 4 MiB where the monitor lives, frames past the end
 * of RAM), then makes eight random steps: a read, write or instruction
 * fetch at ring 0 or ring 3 (some split across two pages), an edit of a
 * page-table or page-directory entry followed by INVLPG of what it
 * changes or a CR3 reload, INVLPG alone, a switch to the other directory,
 * a flip of CR0.WP.  One line per round: a digest of what every step saw
 * (the value read, or the #PF's error code and CR2) and of every entry
 * afterwards (the accessed and dirty bits the CPU set).  Nothing is
 * checked here: bare QEMU and the monitor must print the same lines
 * (tests/fuzz.sh with FUZZ_GUEST=ptfuzz, `make fuzz`).
 *
 * Only what the architecture defines is asked: after an entry changes,
 * every address it translates is invalidated before it is used again (a
 * TLB may hold the old translation until then, SDM Vol. 3A §4.10.4, and
 * QEMU's and the monitor's differ); writes go only where the next round
 * rewrites (so each round depends on (seed, round) alone: `first=N
 * count=1 verbose` shows round N as it ran); code is fetched only from
 * bytes that hold RET.  A software walk of the tables decides that.
 *
 * Layout (guest-physical = linear below 12 MiB, identity-mapped, user
 * and writable, by three page tables at 0x500000): the pool at 0x600000,
 * frame 0 and 1 the directories A and B, 2-9 frames F0-F7 that serve as
 * page tables and as data.  Test addresses: directory slots 8-13 and
 * 1023, pages 0-7, 512-521, 1022 and 1023 of each (a 4 MiB page at
 * 0x400000 puts pages 512-521 on the pool), offsets 0-31 and 0xffe
 * (split), and 0xc00-0xc3f for fetches (RET bytes in F0-F7).
 *
 * Tests:   present/not present at both levels, R/W with CR0.WP 0 and 1,
 *          U/S at ring 0 and ring 3 (direct and translated), 4 MiB pages,
 *          accessed and dirty bits at both levels, a directory mapped as
 *          a page table (recursive and crossed), a page table mapped as
 *          data and written through, data pages used as page tables,
 *          mappings of the monitor's top 4 MiB, frames past RAM, split
 *          accesses, INVLPG, CR3 reloads and switches.
 * Exercises: the shadow page tables (mmu.c: hidden and true page faults,
 *          A/D emulation, CR3 switches, INVLPG), memory tracing of page
 *          tables (trace.c: traced writes, the page-table owner), relocated
 *          accesses in the top 4 MiB (bt.c), pages past RAM.
 * Monitor exits expected: traced writes to page tables, hidden #PF for
 *          every shadow fill, true #PF reflected, INVLPG and MOV CR3
 *          callouts, one ring switch per ring-3 step.
 *
 * Arguments: seed=N count=N first=N verbose.
 */
#include "guest.h"

#define POOL       0x00600000u
#define NFRAME     10
#define PD_A       (POOL + 0x0000)
#define PD_B       (POOL + 0x1000)
#define FR(i)      (POOL + 0x2000 + 0x1000u * (i))      /* F0-F7 */
#define NF         8
#define HPT        0x00500000u          /* the harness's three page tables */
#define PAST       0x04000000u          /* just past the 64 MiB of RAM */
#define FETCH_OFF  0xc00u
#define NSTEP      8
#define VEC_DONE   0x81

static const uint16_t slots[] = { 8, 9, 10, 11, 12, 13, 1023 };
#define NSLOTS (sizeof slots / sizeof slots[0])
static const uint16_t pages[] = { 0, 1, 2, 3, 4, 5, 6, 7, 512, 513, 514, 515, 516,
                                  517, 518, 519, 520, 521, 1022, 1023 };
#define NPAGES (sizeof pages / sizeof pages[0])

static struct { uint32_t seed, count, first, verbose; } opt = { 1, 1000, 0, 0 };

static uint32_t
parse_u32(const char *s, int *ok)
{
    uint32_t v = 0;
    *ok = *s != 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            *ok = 0;
            return 0;
        }
        v = v * 10 + (uint32_t)(*s - '0');
    }
    return v;
}

static void
parse_args(uint32_t magic, const struct multiboot_info *mbi)
{
    char buf[256];
    uint32_t n = 0;
    if (magic == MULTIBOOT_BOOT_MAGIC && (mbi->flags & MBI_FLAG_CMDLINE) && mbi->cmdline) {
        const char *p = (const char *)mbi->cmdline;
        while (*p && n + 1 < sizeof buf)
            buf[n++] = *p++;
    }
    buf[n] = 0;
    char *p = buf;
    while (*p && *p != ' ')
        p++;
    while (*p) {
        while (*p == ' ')
            *p++ = 0;
        if (!*p)
            break;
        char *w = p;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = 0;
        int ok = 1;
        if (!strcmp(w, "verbose"))
            opt.verbose = 1;
        else if (!memcmp(w, "seed=", 5))
            opt.seed = parse_u32(w + 5, &ok);
        else if (!memcmp(w, "count=", 6))
            opt.count = parse_u32(w + 6, &ok);
        else if (!memcmp(w, "first=", 6))
            opt.first = parse_u32(w + 6, &ok);
        else
            ok = 0;
        if (!ok) {
            printf("ptfuzz: bad argument \"%s\"\n", w);
            exit(0x7e);
        }
    }
}

static uint32_t rs;
static uint32_t
rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 17;
    rs ^= rs << 5;
    return rs;
}
static uint32_t rn(uint32_t n) { return rnd() % n; }

static uint32_t *phys(uint32_t pa) { return (uint32_t *)pa; }  /* identity below 12 MiB */

/* ------------------------------------------------------------ entries */

/* Flags: P mostly, the rest at random (PWT, PCD, A, D, G as they come). */
static uint32_t
rflags(void)
{
    uint32_t f = rnd() & (PG_PWT | PG_PCD | PG_A | PG_D | 0x100 | 0xe00);
    if (rn(8))
        f |= PG_P;
    if (rn(4))
        f |= PG_W;
    if (rn(4))
        f |= PG_U;
    return f;
}

/* A random page-table entry: a pool frame, a frame past RAM. */
static uint32_t
rpte(void)
{
    uint32_t r = rn(16), frame;
    if (r < 11)
        frame = POOL + 0x1000 * rn(NFRAME);
    else if (r < 14)
        frame = PAST + 0x1000 * rn(4);
    else
        frame = HPT + 0x1000 * rn(3);   /* the harness's tables: read only (see may_write) */
    return frame | rflags();
}

/* A random directory entry: a page table (any pool frame: F0-F7, or a
 * directory, which makes a self-map or a cross-map), a frame past RAM,
 * or with CR4.PSE a 4 MiB page (over the pool, or past RAM). */
static uint32_t
rpde(void)
{
    uint32_t r = rn(16);
    if (r < 3) {
        static const uint32_t big[3] = { 0x00400000, PAST, 0x08000000 };
        return big[rn(3)] | rflags() | 0x80;
    }
    if (r < 4)
        return (PAST + 0x1000 * rn(4)) | rflags();
    uint32_t f = rflags() & ~0x80u;
    return (POOL + 0x1000 * rn(NFRAME)) | f;
}

/* ------------------------------------------------------------ the walk */

static uint32_t cur_pd;     /* the directory CR3 holds */
static int pse;             /* CR4.PSE */

/* The physical address va translates to, ignoring rights (the CPU checks
 * those; this only decides what is safe to ask).  ~0: not present. */
#define UNSAFE 0xfffffffeu
static uint32_t walk_pdea, walk_ptea;      /* the entries the last walk read */

static uint32_t
walk(uint32_t va)
{
    walk_pdea = cur_pd + 4 * (va >> 22);
    walk_ptea = ~0u;
    uint32_t pde = phys(cur_pd)[va >> 22];
    if (!(pde & PG_P))
        return ~0u;
    if ((pde & 0x80) && pse)
        return (pde & 0xffc00000) + (va & 0x3fffff);
    uint32_t pt = pde & ~0xfffu;
    if (pt >= PAST)
        return ~0u;                     /* reads as zeros: not present */
    if (pt >= 0x00c00000)
        return UNSAFE;                  /* not where the tables can point */
    walk_ptea = pt + 4 * ((va >> 12) & 1023);
    uint32_t pte = phys(pt)[(va >> 12) & 1023];
    if (!(pte & PG_P))
        return ~0u;
    return (pte & ~0xfffu) + (va & 0xfff);
}

/* Do the four bytes at pa and the entry at e share a byte? */
static int overlaps(uint32_t pa, uint32_t e) { return e != ~0u && pa < e + 4 && e < pa + 4; }

static int in_pool(uint32_t pa) { return pa >= POOL && pa < POOL + NFRAME * 0x1000; }

/* Entry indices the round rewrites, in a pool frame used as a table. */
static int
rewritten(uint32_t pa)
{
    uint32_t e = (pa & 0xfff) >> 2;
    if (pa < FR(0)) {                   /* a directory: its test slots */
        for (unsigned i = 0; i < NSLOTS; i++)
            if (slots[i] == e)
                return 1;
        return 0;
    }
    for (unsigned i = 0; i < NPAGES; i++)
        if (pages[i] == e)
            return 1;
    return 0;
}

/* A write of n bytes at pa may happen: past RAM, or entries the next
 * round rewrites anyway. */
static int
may_write(uint32_t pa, uint32_t n)
{
    if (pa == ~0u)
        return 1;                       /* faults */
    if (pa >= PAST)
        return 1;
    return in_pool(pa) && rewritten(pa & ~3u) && rewritten((pa + n - 1) & ~3u);
}

/* ------------------------------------------------------------ invalidation */

static uint32_t test_va(int slot, int page, uint32_t off)
{
    return ((uint32_t)slot << 22) | ((uint32_t)page << 12) | off;
}

/* After entry pa (4 bytes) of a table changed: invalidate each test
 * address whose translation reads it - every slot of the current
 * directory whose page table is that frame; if the frame is the current
 * directory, every page of that slot - or reload CR3 instead. */
static void
invalidate(uint32_t pa, int use_cr3)
{
    if (use_cr3) {
        write_cr3(cur_pd);
        return;
    }
    uint32_t frame = pa & ~0xfffu, e = (pa & 0xfff) >> 2;
    for (unsigned s = 0; s < NSLOTS; s++) {
        uint32_t pde = phys(cur_pd)[slots[s]];
        if ((pde & PG_P) && !((pde & 0x80) && pse) && (pde & ~0xfffu) == frame)
            invlpg(test_va(slots[s], e, 0));
    }
    if (frame == cur_pd)
        for (unsigned p = 0; p < NPAGES; p++)
            invlpg(test_va(e, pages[p], 0));
}

/* ------------------------------------------------------------ the harness */

struct dregs {
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t eflags, eip, ring;
};

struct outcome {
    uint32_t vector, err, cr2, val, eip;
};

static struct dregs in;
static struct outcome R;
static struct kctx hctx;
static volatile uint32_t active;
uint32_t pf_target;
static uint8_t ustk[4096] ALIGNED(16);

__asm__(
    ".text\n"
    ".globl pf_enter\n"
    "pf_enter:\n"
    "    movl 4(%esp), %ebp\n"
    "    movl 36(%ebp), %eax\n"
    "    movl %eax, pf_target\n"
    "    cmpl $0, 40(%ebp)\n"
    "    jne 1f\n"
    "    movl 0(%ebp), %eax\n"
    "    movl 4(%ebp), %ecx\n"
    "    movl 12(%ebp), %ebx\n"
    "    movl 16(%ebp), %esp\n"
    "    jmp *pf_target\n"
    "1:  pushl $0x23\n"
    "    pushl 16(%ebp)\n"
    "    pushl 32(%ebp)\n"
    "    pushl $0x1b\n"
    "    pushl 36(%ebp)\n"
    "    movl 0(%ebp), %eax\n"
    "    movl 4(%ebp), %ecx\n"
    "    movl 12(%ebp), %ebx\n"
    "    movw $0x23, %dx\n"
    "    movw %dx, %ds\n"
    "    movw %dx, %es\n"
    "    iret\n"
    /* EAX the address, ECX the value to write; EBX out. */
    ".globl pf_rd4, pf_rd1, pf_wr4, pf_wr1, pf_rmw, pf_exec\n"
    "pf_rd4:  movl (%eax), %ebx\n    int $0x81\n"
    "pf_rd1:  movzbl (%eax), %ebx\n    int $0x81\n"
    "pf_wr4:  movl %ecx, (%eax)\n    int $0x81\n"
    "pf_wr1:  movb %cl, (%eax)\n    int $0x81\n"
    "pf_rmw:  lock xaddl %ecx, (%eax)\n    movl %ecx, %ebx\n    int $0x81\n"
    "pf_exec: call *%eax\n    movl $0xc3c3, %ebx\n    int $0x81\n"
);
extern char pf_rd4[], pf_rd1[], pf_wr4[], pf_wr1[], pf_rmw[], pf_exec[];
void pf_enter(struct dregs *r);

static void
pf_trap(struct trapframe *f)
{
    if (!active) {
        print_trapframe("ptfuzz: trap outside a step", f);
        exit(EXIT_UNEXPECTED_TRAP);
    }
    active = 0;
    R.vector = f->vector;
    R.err = f->err;
    R.cr2 = f->vector == VEC_PF ? read_cr2() : 0;
    R.val = f->ebx;
    R.eip = f->eip;
    ctx_restore(&hctx, 1);
}

/* One access at ring 0 or 3. */
static void
access(char *fn, uint32_t va, uint32_t val, int ring, int if3)
{
    memset(&in, 0, sizeof in);
    in.eax = va;
    in.ecx = val;
    in.ebx = 0x5a5a5a5a;
    in.eip = (uint32_t)fn;
    in.ring = ring;
    in.esp = ring ? (uint32_t)ustk + sizeof ustk - 16 : 0x00580000;
    in.eflags = EFL_1 | (if3 ? EFL_IF : 0);
    memset(&R, 0, sizeof R);
    if (ctx_save(&hctx) == 0) {
        active = 1;
        pf_enter(&in);
    }
}

/* ------------------------------------------------------------ a round */

static uint32_t
fnv(uint32_t h, const void *p, uint32_t n)
{
    const uint8_t *b = p;
    while (n--)
        h = (h ^ *b++) * 16777619u;
    return h;
}

static char line[160];
static uint32_t lpos;

static void
out_flush(void)
{
    const char *s = line;
    uint32_t n = lpos;
    while (n) {
        while (!(inb(COM1 + 5) & 0x20))
            ;
        uint32_t k = n < 16 ? n : 16;
        for (uint32_t i = 0; i < k; i++)
            outb(COM1, (uint8_t)s[i]);
        s += k;
        n -= k;
    }
    lpos = 0;
}

static uint32_t
rand_va(int fetch)
{
    int s = slots[rn(NSLOTS)], p = pages[rn(NPAGES)];
    uint32_t off;
    if (fetch)
        off = FETCH_OFF + rn(64);
    else if (rn(8) == 0)
        off = 0xffe;                    /* split across two pages */
    else
        off = rn(32);
    return test_va(s, p, off);
}

static void
run_round(uint32_t index)
{
    rs = (opt.seed * 0x9e3779b9u) ^ (index * 0x85ebca6bu) ^ 0x3c6ef372u;
    if (!rs)
        rs = 1;
    rnd();
    /* Back to the harness's own directory while the tables are made. */
    write_cr3(PD_A);
    cur_pd = PD_A;
    pse = rn(4) != 0;
    write_cr4(pse ? read_cr4() | CR4_PSE : read_cr4() & ~CR4_PSE);
    int wp = rn(2);
    write_cr0(wp ? read_cr0() | CR0_WP : read_cr0() & ~CR0_WP);
    for (int f = 0; f < NF; f++)
        for (unsigned p = 0; p < NPAGES; p++)
            phys(FR(f))[pages[p]] = rpte();
    for (unsigned s = 0; s < NSLOTS; s++) {
        phys(PD_A)[slots[s]] = rpde();
        phys(PD_B)[slots[s]] = rpde();
    }
    cur_pd = rn(2) ? PD_B : PD_A;
    write_cr3(cur_pd);

    char kinds[NSTEP + 1];
    uint32_t h = 2166136261u;
    if (opt.verbose)
        printf("round %u: pse %d wp %d cr3 %s\n", index, pse, wp, cur_pd == PD_A ? "A" : "B");
    for (int st = 0; st < NSTEP; st++) {
        uint32_t r = rn(100), va = 0, pa = 0, val = 0, ring = rn(2) ? 3 : 0;
        int if3 = rn(2);
        char k;
        memset(&R, 0, sizeof R);
        R.vector = VEC_DONE;
        if (r < 60) {                   /* an access */
            static const char kc[6] = { 'r', 'b', 'w', 'y', 'm', 'x' };
            int a = rn(6);
            va = rand_va(a == 5);
            if (a == 3 || a == 4 || (a == 2 && (va & 0xfff) != 0xffe))
                va &= ~3u;              /* whole entries, or a flags byte */
            pa = walk(va);
            uint32_t pdea = walk_pdea, ptea = walk_ptea;
            /* The bytes a write covers, page by page (a split access
             * covers two); each part must be somewhere it may go. */
            uint32_t n = a == 1 || a == 3 ? 1 : 4;
            uint32_t n1 = 0x1000 - (va & 0xfff) < n ? 0x1000 - (va & 0xfff) : n;
            uint32_t va2 = va + n1, pa2 = n1 < n ? walk(va2) : ~0u;
            if (a >= 2 && a <= 4 && (!may_write(pa, n1) || (n1 < n && !may_write(pa2, n - n1))))
                a = 0;                  /* not a place to write: read instead */
            /* A read-modify-write of the very entry that maps it: QEMU
             * (one CPU, no atomics) reads the operand before its walk
             * for the write sets D there, where the CPU walks first (SDM
             * Vol. 3A §4.8); a plain write instead. */
            if (a == 4 && pa != ~0u && (overlaps(pa, pdea) || overlaps(pa, ptea)))
                a = 2;
            if (a == 5 && !(pa != ~0u && in_pool(pa) && pa >= FR(0)))
                a = 0;                  /* no RET there: read instead */
            /* What a write puts there keeps every entry pointing where
             * entries may point: a whole entry (aligned), a flags byte, a
             * small addend, or, split across two pages, a frame's upper
             * half and the next entry's flags. */
            if (a == 2 && n1 == n)
                val = rn(2) ? rpte() : rpde();
            else if (a == 2)            /* 4 MiB-aligned: no reserved bits in a big PDE */
                val = (rn(2) ? 0x0040u : 0x0400u) | ((rflags() | rn(10) << 12) << 16);
            else if (a == 3)
                val = rflags();
            else                        /* flag bits that are clear: no carry */
                val = rnd() & 0x1e & ~(pa < 0x00c00000 ? *phys(pa) : 0);
            if (pa == UNSAFE || pa2 == UNSAFE)
                a = 6;                  /* nothing to do */
            static char *const fn[6] = { pf_rd4, pf_rd1, pf_wr4, pf_wr1, pf_rmw, pf_exec };
            if (a == 6) {
                kinds[st] = '-';
                continue;
            }
            access(fn[a], va, val, ring, if3);
            k = kc[a];
            if (R.vector == VEC_PF)
                k = '#';
            if (R.vector == VEC_DONE && a >= 2 && a <= 4) {
                /* The write may have changed entries of a table in use. */
                int c = rn(4) == 0;
                if (pa != ~0u && pa < PAST) {
                    invalidate(pa & ~3u, c);
                    invalidate((pa + n1 - 1) & ~3u, c);
                }
                if (n1 < n && pa2 != ~0u && pa2 < PAST)
                    invalidate(pa2 & ~3u, c);
            }
        } else if (r < 78) {            /* edit an entry */
            ring = 0;
            if (rn(3)) {
                int f = rn(NF), p = pages[rn(NPAGES)];
                pa = FR(f) + 4 * p;
                val = rpte();
                k = 'E';
            } else {
                pa = (rn(2) ? PD_A : PD_B) + 4 * slots[rn(NSLOTS)];
                val = rpde();
                k = 'D';
            }
            *phys(pa) = val;
            invalidate(pa, rn(4) == 0);
        } else if (r < 88) {
            ring = 0;
            va = rand_va(0);
            invlpg(va);
            k = 'I';
        } else if (r < 95) {
            ring = 0;
            cur_pd = cur_pd == PD_A ? PD_B : PD_A;
            write_cr3(cur_pd);
            k = 'C';
        } else {
            ring = 0;
            wp = !wp;
            write_cr0(wp ? read_cr0() | CR0_WP : read_cr0() & ~CR0_WP);
            k = 'W';
        }
        kinds[st] = k;
        if (opt.verbose)
            printf("  %c ring %u va %08x pa %08x val %08x -> vector %u err %x cr2 %08x got %08x\n",
                   k, ring, va, pa, val, R.vector, R.err, R.cr2, R.val);
        h = fnv(h, &R, sizeof R);
    }
    kinds[NSTEP] = 0;
    write_cr3(PD_A);
    for (int f = 0; f < NF; f++)
        for (unsigned p = 0; p < NPAGES; p++)
            h = fnv(h, &phys(FR(f))[pages[p]], 4);
    for (unsigned s = 0; s < NSLOTS; s++) {
        h = fnv(h, &phys(PD_A)[slots[s]], 4);
        h = fnv(h, &phys(PD_B)[slots[s]], 4);
    }
    if (opt.verbose) {
        for (int f = 0; f < NF; f++) {
            printf("  F%d", f);
            for (unsigned p = 0; p < NPAGES; p++)
                printf(" %08x", phys(FR(f))[pages[p]]);
            printf("\n");
        }
        printf("  A");
        for (unsigned s = 0; s < NSLOTS; s++)
            printf(" %08x", phys(PD_A)[slots[s]]);
        printf("\n  B");
        for (unsigned s = 0; s < NSLOTS; s++)
            printf(" %08x", phys(PD_B)[slots[s]]);
        printf("\n");
    }
    lpos = snprintf(line, sizeof line, "%u %08x %s\n", index, h, kinds);
    out_flush();
}

int
main(uint32_t magic, struct multiboot_info *mbi)
{
    parse_args(magic, mbi);
    cpu_init();
    for (int v = 0; v < 32; v++)
        set_trap_handler(v, pf_trap);
    set_trap_handler(VEC_DONE, pf_trap);
    idt_set_dpl(VEC_DONE, 3);
    /* The harness: 0-12 MiB identity, user, writable, in both directories. */
    memset((void *)POOL, 0, NFRAME * 0x1000);
    for (uint32_t a = 0; a < 0x00c00000; a += 0x1000)
        phys(HPT)[a >> 12] = a | PG_P | PG_W | PG_U;
    /* The first MiB absent: firmware and the loader leave different
     * things there natively and under the monitor; and an access that
     * wraps at 4 GiB goes to page 0. */
    for (uint32_t a = 0; a < 0x00100000; a += 0x1000)
        phys(HPT)[a >> 12] = 0;
    for (int i = 0; i < 3; i++) {
        phys(PD_A)[i] = (HPT + 0x1000 * i) | PG_P | PG_W | PG_U;
        phys(PD_B)[i] = (HPT + 0x1000 * i) | PG_P | PG_W | PG_U;
    }
    for (int f = 0; f < NF; f++)
        memset((uint8_t *)FR(f) + FETCH_OFF, 0xc3, 64);
    write_cr3(PD_A);
    write_cr0(read_cr0() | CR0_PG);
    printf("ptfuzz: seed=%u first=%u count=%u\n", opt.seed, opt.first, opt.count);
    for (uint32_t i = opt.first; i < opt.first + opt.count; i++)
        run_round(i);
    printf("ptfuzz: %u rounds, %u steps\n", opt.count, opt.count * NSTEP);
    return 0;
}
