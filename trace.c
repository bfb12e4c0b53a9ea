/*
 * trace.c -- memory tracing.
 *
 * A trace on a guest-physical page makes every shadow mapping of it
 * read-only, so that a guest write to it faults; the monitor lets the
 * write happen and tells the trace's owner which bytes changed, with
 * their old and new values (US 6,397,242, abstract: "memory tracing";
 * docs/00-overview.md).  Owners:
 *   TR_CODE  the translator: pages it has translated code from (bt.c);
 *   TR_PT    the shadow page tables: the guest's page tables (mmu.c);
 *   TR_DESC  the shadow descriptor tables: the guest's GDT (shadow.c).
 * The monitor's own writes to guest memory (emulated instructions,
 * Accessed and Dirty bits) fire the same callbacks (gpa_write in mmu.c).
 *
 * How the traced write is carried out.  The original (as Bugnion et al.,
 * TOCS 2012, and Adams and Agesen, ASPLOS 2006, describe it) decodes and
 * emulates the faulting instruction.
 * Here the CPU carries it out itself: the faulting page is made writable
 * for exactly one instruction (EFLAGS.TF set, so a debug trap follows
 * it), its bytes are saved before and compared after.
 * Deviation: "execute under trace" instead of a software emulation of
 * the write.  It handles every instruction that can write memory - mov,
 * push, rep movs, read-modify-write, xchg, cmpxchg8b, a write that
 * straddles two pages - with the CPU's own results, flags included, and
 * the owner still sees offset, old and new value.  Only a window of the
 * page around the faulting address is compared (see WINDOW_BELOW).
 *
 * Hardware:   SDM Vol. 3A §4.6 (Access Rights), §4.7 (Page-Fault
 *             Exceptions), §17.3.1.4 (Single-Step Exception Condition).
 * Runs in:    VMM, ring 0, interrupts off.
 * Read after: mmu.c.
 */
#include "vmm.h"

#define MAX_FRAMES (MAX_GUEST_MB * 256)
static u8 owners[MAX_FRAMES];           /* TR_* bits per guest frame; written only here */
static trace_fn callbacks[8];

/* The write in flight: at most two pages (a write that straddles). */
static struct pending {
    gpa_t page;
    u32 *spte;                          /* the shadow PTE made writable */
    u32 lo, hi;                         /* the watched window of the page */
    u32 saved_pte;                      /* absent memory: the zero-page PTE to put back */
    u8 old[PGSIZE] __attribute__((aligned(4)));
} pend[2];

/* One instruction writes at most a few bytes near the address that
 * faulted: PUSHA and ENTER 32 to 160 below it, FNSAVE 108 above it.
 * Only that window of the page is saved and compared. */
#define WINDOW_BELOW 160
#define WINDOW_ABOVE 128
static int npend;

void
trace_init(void)
{
    memset(owners, 0, sizeof owners);
    npend = 0;
}

void
trace_register(int owner, trace_fn fn)
{
    for (int b = 0; b < 8; b++)
        if (owner == 1 << b)
            callbacks[b] = fn;
}

int
trace_owners(gpa_t pa)
{
    u32 fn = pa >> PGSHIFT;
    return fn < MAX_FRAMES ? owners[fn] : 0;
}

int
trace_is_traced(gpa_t pa)
{
    return trace_owners(pa) != 0;
}

/*T:030 Placing a trace.  The first owner of a page makes every existing
 * writable shadow mapping of it read-only, found through mmu.c's reverse
 * map; mappings made later are read-only from the start (mmu.c). :*/
void
trace_add(struct vcpu *v, gpa_t pa, int owner)
{
    u32 fn = pa >> PGSHIFT;
    if (fn >= MAX_FRAMES)
        return;
    if (!owners[fn])
        mmu_write_protect(v, pa & PTE_FRAME);
    if (!(owners[fn] & owner))
        v->st.traces_added++;
    owners[fn] |= owner;
}

/* How many guest frames carry a trace now (the statistics). */
u32
trace_usage(void)
{
    u32 n = 0;
    for (u32 fn = 0; fn < MAX_FRAMES; fn++)
        n += owners[fn] != 0;
    return n;
}

void
trace_remove(gpa_t pa, int owner)
{
    u32 fn = pa >> PGSHIFT;
    if (fn < MAX_FRAMES)
        owners[fn] &= ~owner;
}

/* Tell the owners of the page at pa about a change of n bytes there. */
void
trace_notify(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new)
{
    int o = trace_owners(pa);
    v->st.trace_hits++;
    if (opt_log & LOG_TRACE)
        cprintf("trace: %u bytes at guest-physical %08x, owners%s%s%s%s, at %04x:%08x\n", n, pa,
                o & TR_CODE ? " code" : "", o & TR_PT ? " pt" : "", o & TR_DESC ? " desc" : "",
                o & TR_CMAP ? " cmap" : "", v->seg[SEG_CS].sel, v->eip);
    for (int b = 0; b < 8; b++)
        if ((o & (1 << b)) && callbacks[b]) {
            v->st.trace_by_owner[b]++;
            callbacks[b](v, pa, n, old, new);
        }
}

/*T:040 A guest write hit a traced page (mmu_page_fault found the guest
 * allows it).  Save the page, make this one shadow entry writable, and
 * ask the engine to resume the guest for exactly one instruction with
 * TF set. :*/
int
trace_begin_write(struct vcpu *v, gpa_t pa, u32 *spte, gva_t la)
{
    if (npend == 2)
        panic("a single instruction wrote three traced pages");
    struct pending *p = &pend[npend++];
    p->page = pa & PTE_FRAME;
    p->spte = spte;
    u32 off = pa & 0xfff;
    p->lo = off > WINDOW_BELOW ? (off - WINDOW_BELOW) & ~3u : 0;
    p->hi = off + WINDOW_ABOVE < PGSIZE ? (off + WINDOW_ABOVE + 3) & ~3u : PGSIZE;
    gpa_read(p->page + p->lo, p->old + p->lo, p->hi - p->lo);
    *spte |= PTE_W;
    invlpg(la);
    return 1;
}

/* A write to absent guest-physical memory (mmu.c): let it land in the
 * sink page for one instruction, then clear the sink and map the zero
 * page again, so the write vanishes as on bare hardware. */
int
trace_begin_absent(struct vcpu *v, u32 *spte, gva_t la, hpa_t sink)
{
    if (npend == 2)
        panic("a single instruction wrote three traced pages");
    struct pending *p = &pend[npend++];
    p->page = ~0u;
    p->spte = spte;
    p->saved_pte = *spte;
    *spte = (sink & PTE_FRAME) | PTE_P | PTE_W | (*spte & PTE_U);
    invlpg(la);
    return 1;
}

int
trace_in_flight(void)
{
    return npend;
}

/*T:050 The instruction has run (or faulted).  Put the protection back,
 * then report every run of changed bytes to the page's owners. :*/
void
trace_end_write(struct vcpu *v)
{
    int n = npend;
    npend = 0;
    extern u8 absent_sink[];
    for (int i = 0; i < n; i++) {
        if (pend[i].page == ~0u) {
            *pend[i].spte = pend[i].saved_pte;
            memset(absent_sink, 0, PGSIZE);
        } else {
            *pend[i].spte &= ~PTE_W;
        }
    }
    lcr3(rcr3());
    for (int i = 0; i < n; i++) {
        if (pend[i].page == ~0u)
            continue;
        static u32 now[PGSIZE / 4];
        struct pending *p = &pend[i];
        const u32 *was = (const u32 *)p->old;
        gpa_read(p->page + p->lo, (u8 *)now + p->lo, p->hi - p->lo);
        /* Compare a word at a time; report each run of changed bytes. */
        for (u32 w = p->lo / 4; w < p->hi / 4; w++) {
            if (now[w] == was[w])
                continue;
            u32 end = w + 1;
            while (end < p->hi / 4 && now[end] != was[end])
                end++;
            const u8 *a = (const u8 *)&was[w], *b = (const u8 *)&now[w];
            u32 first = 0, last = (end - w) * 4;
            while (a[first] == b[first])
                first++;
            while (a[last - 1] == b[last - 1])
                last--;
            trace_notify(v, p->page + w * 4 + first, last - first, a + first, b + first);
            w = end - 1;
        }
    }
}
