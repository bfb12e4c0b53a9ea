/*
 * trace.c -- memory tracing.
 *
 * A trace on a guest-physical page makes every shadow mapping of it
 * read-only, so that a guest write faults and the monitor can emulate it
 * and tell the trace's owner (the shadow descriptor tables, the
 * translator, the shadow page tables) which bytes changed (US 6,397,242,
 * abstract: "memory tracing"; ARCHITECTURE.md §7).
 *
 * Deviation: first form.  Nothing places traces yet; this file holds the
 * registry of traced frames that mmu.c will consult.  Until then the
 * three clients use the first forms their files describe: shadow.c
 * refreshes the shadow GDT before direct execution, bt.c compares a
 * unit's guest bytes on entry, mmu.c discards shadows on CR3 writes.
 *
 * Hardware:   SDM Vol. 3A §4.6 (Access Rights), §4.7 (Page-Fault
 *             Exceptions).
 * Runs in:    VMM, ring 0, interrupts off.
 * Read after: mmu.c.
 */
#include "vmm.h"

#define MAX_GUEST_FRAMES (256 * 1024)       /* 1 GiB of 4 KiB frames, one bit each */
static u32 traced[MAX_GUEST_FRAMES / 32];          /* written only here */

void
trace_init(void)
{
    memset(traced, 0, sizeof traced);
}

int
trace_is_traced(gpa_t pa)
{
    u32 fn = pa >> PGSHIFT;
    if (fn >= MAX_GUEST_FRAMES)
        return 0;
    return (traced[fn / 32] >> (fn % 32)) & 1;
}
