/*
 * vmm.c -- setup, the main loop, and the execution decision.
 *
 * The patent's virtual machine monitor runs a guest by choosing, before
 * every entry, between two engines: direct execution (direct.c), where
 * the guest's own instructions run deprivileged on the CPU, and binary
 * translation (bt.c), where they run from a translation cache after the
 * monitor has rewritten the ones that would misbehave.  The choice is the
 * "execution decision sub-system" of US 6,397,242, claim 1; vmm_decide()
 * below is it.  Everything else here is plumbing: the monitor's own
 * descriptor tables, its log on COM2, panics and the statistics report.
 *
 * Hardware:   SDM Vol. 3A §2.2 (Modes of Operation), §5.5 (Privilege
 *             Levels), §6.10 (Interrupt Descriptor Table).
 * Runs in:    VMM, ring 0, interrupts off.
 * Read after: docs/00-overview.md; then direct.c and bt.c.
 */
#include "vmm.h"
#include "multiboot.h"

struct vcpu vcpu0 __attribute__((aligned(PGSIZE)));
int bt_ring = 3;
int limits_enforced;
int bt_checks;
int host_umip;
int far_sets_accessed;
static int opt_checks = -1;     /* checks=0 or checks=1 on the command line */
static int opt_ring;            /* ring=1 or ring=3 on the command line; 0: decide */
u32 opt_mem_mb = 64;
int opt_boot = BOOT_AUTO;
int opt_chain = 1, opt_inline = 1, opt_adapt = 1, opt_count, opt_direct = 1, opt_tcdump, opt_naive;
u32 opt_log;

/* The monitor's descriptor tables.  vmm_gdt's low part is the shadow GDT
 * (shadow.c), its last sixteen entries the monitor's own. */
struct desc vmm_gdt[NGDT] __attribute__((aligned(4096)));
/* The IDT and the TSS each have a page to themselves: they are among the
 * few pages of the monitor that direct execution's view keeps (mmu.c). */
static struct {
    struct desc g[256];
    u8 pad[PGSIZE - 256 * sizeof(struct desc)];
} idt_page __attribute__((aligned(PGSIZE)));
#define vmm_idt (idt_page.g)

void *
vmm_idt_addr(void)
{
    return &idt_page;
}
struct tss_page tss_page __attribute__((aligned(PGSIZE)));
extern u32 trap_vectors[256];

_Static_assert(offsetof(struct frame, trapno) == 48, "boot.S F_TRAPNO");
_Static_assert(offsetof(struct frame, eip) == 56, "boot.S F_EIP");
_Static_assert(offsetof(struct frame, cs) == 60, "boot.S F_CS");
_Static_assert(offsetof(struct frame, eflags) == 64, "boot.S F_EFLAGS");
_Static_assert(offsetof(struct vcpu, f) == 256, "the frame sits in the vCPU's first page, above the guard");
_Static_assert(offsetof(struct vcpu, frame_page_pad) + sizeof(vcpu0.frame_page_pad) == PGSIZE, "frame page");

/* ------------------------------------------------------------------ */
/* Small library: the freestanding monitor has no libc.               */

void *
memset(void *d, int c, unsigned n)
{
    u8 *p = d;
    if (((u32)p & 3) == 0) {
        u32 w = (u8)c * 0x01010101u;
        for (; n >= 4; n -= 4, p += 4)
            *(u32 *)p = w;
    }
    while (n--)
        *p++ = c;
    return d;
}

void *
memcpy(void *d, const void *s, unsigned n)
{
    u8 *p = d;
    const u8 *q = s;
    if ((((u32)p | (u32)q) & 3) == 0) {
        for (; n >= 4; n -= 4, p += 4, q += 4)
            *(u32 *)p = *(const u32 *)q;
    }
    while (n--)
        *p++ = *q++;
    return d;
}

int
memcmp(const void *a, const void *b, unsigned n)
{
    const u8 *p = a, *q = b;
    if ((((u32)p | (u32)q) & 3) == 0)           /* equal words can be skipped a word at a time */
        for (; n >= 4 && *(const u32 *)p == *(const u32 *)q; n -= 4, p += 4, q += 4)
            ;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p - *q;
    return 0;
}

unsigned
strlen(const char *s)
{
    unsigned n = 0;
    while (s[n])
        n++;
    return n;
}

/* A small vsnprintf: %s %c %d %u %x, with width and 0-padding. */
int
vsnprintf_(char *buf, int n, const char *fmt, __builtin_va_list ap)
{
    int o = 0;
#define PUT(c) do { if (o < n - 1) buf[o] = (c); o++; } while (0)
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            PUT(*fmt);
            continue;
        }
        fmt++;
        int zero = 0, width = 0;
        if (*fmt == '0') {
            zero = 1;
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        char tmp[16];
        int t = 0;
        u32 x;
        switch (*fmt) {
        case 's': {
            const char *s = __builtin_va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int len = strlen(s);
            for (; len < width; width--)
                PUT(' ');
            while (*s)
                PUT(*s++);
            continue;
        }
        case 'c':
            PUT((char)__builtin_va_arg(ap, int));
            continue;
        case 'd': {
            int d = __builtin_va_arg(ap, int);
            if (d < 0) {
                PUT('-');
                x = -d;
            } else
                x = d;
            do tmp[t++] = '0' + x % 10; while (x /= 10);
            break;
        }
        case 'u':
            x = __builtin_va_arg(ap, u32);
            do tmp[t++] = '0' + x % 10; while (x /= 10);
            break;
        case 'x':
            x = __builtin_va_arg(ap, u32);
            do tmp[t++] = "0123456789abcdef"[x & 15]; while (x >>= 4);
            break;
        case '%':
            PUT('%');
            continue;
        default:
            PUT('%');
            PUT(*fmt);
            continue;
        }
        for (; t < width; width--)
            PUT(zero ? '0' : ' ');
        while (t)
            PUT(tmp[--t]);
    }
    if (n > 0)
        buf[o < n ? o : n - 1] = 0;
    return o;
#undef PUT
}

void
vcprintf(const char *fmt, __builtin_va_list ap)
{
    char buf[512];
    vsnprintf_(buf, sizeof buf, fmt, ap);
    for (char *p = buf; *p; p++)
        log_putc(*p);
}

/* The monitor's log goes to COM2 (dev.c); COM1 belongs to the guest. */
void
cprintf(const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    vcprintf(fmt, ap);
    __builtin_va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Stopping: the three kinds of failure of STYLE.md §7.               */


void
vmm_exit(int status)
{
    outb(0xf4, status);         /* isa-debug-exit: QEMU ends here */
    for (;;) {
        cli();
        hlt();
    }
}

void
vcpu_dump(struct vcpu *v)
{
    struct frame *f = &v->f;
    cprintf("vcpu: eip=%08x eflags=%08x cpl=%d cr0=%08x cr2=%08x cr3=%08x cr4=%08x\n",
            v->eip, v->eflags, vcpu_cpl(v), v->cr0, v->cr2, v->cr3, v->cr4);
    cprintf("      eax=%08x ebx=%08x ecx=%08x edx=%08x esi=%08x edi=%08x ebp=%08x esp=%08x\n",
            f->eax, f->ebx, f->ecx, f->edx, f->esi, f->edi, f->ebp, f->esp);
    static const char *names[NSEG] = { "es", "cs", "ss", "ds", "fs", "gs" };
    for (int s = 0; s < NSEG; s++)
        cprintf("      %s=%04x base=%08x limit=%08x attr=%03x%s\n", names[s],
                v->seg[s].sel, v->seg[s].base, v->seg[s].limit, v->seg[s].attr,
                v->seg[s].mode == SM_REAL ? " (loaded in real mode)" :
                v->seg[s].mode == SM_V86 ? " (v86)" : "");
    cprintf("      gdtr=%08x/%04x idtr=%08x/%04x tr=%04x ldtr=%04x\n",
            v->gdtr.base, v->gdtr.limit, v->idtr.base, v->idtr.limit, v->tr.sel, v->ldtr.sel);
    cprintf("      last exit: vector=%d err=%x hw eip=%08x cs=%04x eflags=%08x\n",
            f->trapno, f->err, f->eip, f->cs, f->eflags);
}

void
panic_at(const char *file, int line, const char *fmt, ...)
{
    __builtin_va_list ap;
    cprintf("\nvmm: PANIC at %s:%d: ", file, line);
    __builtin_va_start(ap, fmt);
    vcprintf(fmt, ap);
    __builtin_va_end(ap);
    cprintf("\n");
    vcpu_dump(&vcpu0);
    vmm_exit(EXIT_PANIC);
    for (;;)
        ;
}

/* The guest did something the monitor does not support (STYLE.md §7,
 * kind 2).  Record why; the main loop never resumes it. */
void
vm_stop(struct vcpu *v, const char *fmt, ...)
{
    static char reason[256];
    __builtin_va_list ap;
    if (v->stop_reason)
        return;
    __builtin_va_start(ap, fmt);
    vsnprintf_(reason, sizeof reason, fmt, ap);
    __builtin_va_end(ap);
    v->stop_reason = reason;
    if (!v->stop_status)
        v->stop_status = EXIT_STOP;
}

/* The guest reset the machine (dev.c), or triple-faulted.  On bare QEMU
 * with -no-reboot either ends the run with status 0, so the monitor, after
 * its report, resets the machine it runs on, which QEMU turns into the
 * same exit. */
void
vm_reset(struct vcpu *v, const char *why)
{
    vm_stop(v, "the guest reset the machine: %s", why);
    v->stop_status = EXIT_RESET;
}

static void
host_reset(void)
{
    outb(0x64, 0xfe);                           /* the keyboard controller's reset pulse */
    struct pseudo_desc none = { 0, 0 };         /* and if that did nothing, a triple fault */
    lidt(&none);
    __asm__ volatile("int $3");
    for (;;)
        hlt();
}

/* A trap taken at ring 0.  Two are expected: the boot-time limit probe
 * (below), which is resumed, and a fault inside vm_enter, while loading
 * the guest's segment registers or IRETing: the guest's state cannot be
 * entered, which is reported to vm_enter's caller as a pseudo-vector.
 * Returns 1 to unwind to vm_enter's caller, 0 to resume.  Anything else
 * is a monitor bug. */
extern char probe_start[], probe_end[], probe_icebp_at[], probe_icebp_end[];
static int probe_faulted;

int
vmm_monitor_trap(struct frame *tf)
{
    if ((tf->eip == (u32)probe_icebp_at && tf->trapno == T_UD) ||
        (tf->eip == (u32)probe_icebp_end && tf->trapno == T_DB)) {
        host_icebp_ud = tf->trapno == T_UD;
        tf->eip = (u32)probe_icebp_end;
        return 0;
    }
    if (tf->eip == (u32)probe_start && tf->trapno == T_GP) {
        probe_faulted = 1;
        tf->eip = (u32)probe_end;
        return 0;
    }
    if (tf->trapno >= T_IRQ0 && tf->trapno < T_IRQ0 + 16) {
        dev_host_irq(&vcpu0, tf->trapno);       /* in dev_idle's HLT */
        return 0;
    }
    if (tf->eip >= (u32)vm_enter_start && tf->eip < (u32)vm_enter_end) {
        vcpu0.f.trapno = T_ENTRYFAIL;
        vcpu0.f.err = (tf->trapno << 16) | (tf->err & 0xffff);
        return 1;
    }
    cprintf("\nvmm: trap %d err=%x at monitor eip=%08x cr2=%08x\n",
            tf->trapno, tf->err, tf->eip, rcr2());
    panic("unexpected trap in the monitor");
}

/*H:005 Does this CPU check segment limits?  Real x86 CPUs (and Bochs)
 * do on every access; QEMU's TCG does not ("the x86 segment limits and
 * access rights are not tested at every memory access", QEMU's
 * documentation).  Load a 4 KiB segment and read past its end: a #GP
 * means limits are enforced.  (The segment is based at the monitor, so
 * that the read, if allowed, touches a mapped page.) :*/
static int
probe_limits(void)
{
    vmm_gdt[GDT_PROBE] = desc_make(VMM_BASE, 0xfff, SEG_S | SEG_P | SEG_DB | STA_W | STA_A);
    probe_faulted = 0;
    __asm__ volatile("mov %0, %%fs\n"
                     ".globl probe_start, probe_end\n"
                     "probe_start: movl %%fs:0x2000, %%eax\n"
                     "probe_end:\n"
                     "mov %1, %%fs\n"
                     : : "r"(SEL(GDT_PROBE, 0)), "r"(0) : "eax", "memory");
    vmm_gdt[GDT_PROBE].lo = vmm_gdt[GDT_PROBE].hi = 0;
    return probe_faulted;
}

/* What does ICEBP (opcode F1) do on this CPU?  The SDM: a #DB trap, as
 * INT1.  QEMU's TCG, with the CPU model the tests use, raises #UD.  The
 * emulator does what the CPU does (emu_int1), so execute one and see. */
int host_icebp_ud;
static void
probe_icebp(void)
{
    __asm__ volatile(".globl probe_icebp_at, probe_icebp_end\n"
                     "probe_icebp_at: .byte 0xf1\n"
                     "probe_icebp_end:\n" : : : "memory");
    ldr6(0);
}

/* Does a far jump set the accessed bit of the code descriptor it loads?
 * The SDM says so for every segment load; QEMU's TCG sets it only for
 * loads of DS, ES, FS, GS and SS by MOV, POP and LDS-like instructions.
 * Jump to a code descriptor with the bit clear and look. */
static int
probe_far_accessed(void)
{
    vmm_gdt[GDT_PROBE] = desc_make(0, 0xffffffff, SEG_S | SEG_P | SEG_DB | STA_X | STA_R);
    __asm__ volatile("ljmp %0, $1f\n1:\n"
                     "ljmp %1, $2f\n2:\n"
                     : : "i"(SEL(GDT_PROBE, 0)), "i"(KCS) : "memory");
    int set = (vmm_gdt[GDT_PROBE].hi >> 8) & STA_A;
    vmm_gdt[GDT_PROBE].lo = vmm_gdt[GDT_PROBE].hi = 0;
    return set;
}

/*E:005 User-mode instruction prevention.  SGDT, SIDT, SLDT, STR and
 * SMSW are sensitive but not privileged (SDM Vol. 2B, SGDT): at CPL 3
 * they run without trapping and would show guest user code in direct
 * execution the monitor's tables (its GDT in the top 4 MiB, its TR and
 * LDTR selectors, its CR0) - the hole Robin and Irvine found in the
 * Pentium (USENIX Security 2000), and the one the 1998 design could not
 * close.  CPUs since have CR4.UMIP (SDM Vol. 3A §2.5, Control
 * Registers), which makes them fault at CPL > 0; QEMU emulates it.  When
 * the CPU has it, the monitor keeps it on: translated code never runs
 * these instructions natively anyway (they are emulated), and in direct
 * execution each now raises #GP and is emulated with the guest's values
 * (direct.c, emulate.c).  The guest's own CR4.UMIP is virtual.
 * Deviation: on a CPU without UMIP these five instructions, run directly
 * at guest CPL 3, show the monitor's values, as in the original. :*/
static void
probe_umip(void)
{
    u32 a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    if (a < 7)
        return;
    cpuid(7, &a, &b, &c, &d);
    if (c & (1u << 2)) {
        host_umip = 1;
        lcr4(rcr4() | CR4_UMIP);
    }
}

/* ------------------------------------------------------------------ */
/* The monitor's own descriptor tables.                                */

static void
set_gate(int vec, u32 off, int dpl)
{
    vmm_idt[vec].lo = (off & 0xffff) | (KCS << 16);
    vmm_idt[vec].hi = (off & 0xffff0000) | 0x8000 | (dpl << 13) | (STS_IG32 << 8);
}

static void
tables_init(void)
{
    /* Flat ring-0 code and data for the monitor itself. */
    vmm_gdt[GDT_VMM_CS] = desc_make(0, 0xffffffff, SEG_S | SEG_P | SEG_DB | STA_X | STA_R | STA_A);
    vmm_gdt[GDT_VMM_DS] = desc_make(0, 0xffffffff, SEG_S | SEG_P | SEG_DB | STA_W | STA_A);
    /* The TSS: only SS0:ESP0 matter, the stack the CPU switches to on a
     * trap from the guest.  No I/O bitmap (iomap past the limit), so every
     * port access from ring 1 or 3 with IOPL 0 raises #GP. */
    vmm_tss.ss0 = KDS;
    vmm_tss.iomap = sizeof(vmm_tss);
    vmm_gdt[GDT_VMM_TSS] = desc_make((u32)&vmm_tss, sizeof(vmm_tss) - 1, SEG_P | STS_T32A);

    struct pseudo_desc gd = { NGDT * 8 - 1, (u32)vmm_gdt };
    lgdt(&gd);
    __asm__ volatile("ljmp %0, $1f\n1:\n"
                     "mov %1, %%ds\n mov %1, %%es\n mov %1, %%ss\n"
                     "mov %2, %%fs\n mov %2, %%gs\n"
                     : : "i"(KCS), "r"(KDS), "r"(0));
    ltr(KTSS);

    /* Every vector enters the monitor at ring 0.  DPL 0 everywhere, so a
     * guest `int n` in direct execution raises #GP and the monitor
     * emulates it against the guest's IDT; only the callout vector is open
     * to the ring translated code runs at (set_bt_ring). */
    for (int i = 0; i < 256; i++)
        set_gate(i, trap_vectors[i], 0);
    struct pseudo_desc id = { 256 * sizeof(struct desc) - 1, (u32)vmm_idt };
    lidt(&id);
}

/*H:006 The ring translated code runs at: ring 1, the patent's, with
 * every guest segment truncated below the monitor.  On a CPU that checks
 * limits, truncation is what keeps ring-1 code (which the MMU counts as
 * supervisor) out of the monitor's pages.  Where limits are not checked
 * (QEMU's TCG), the translator adds a software check to every memory
 * access instead (bt.c, "software truncation").  `ring=3` runs
 * translated code at ring 3 without checks, protected by paging alone -
 * the monitor's pages are supervisor-only, and the shadow translated
 * kernel code runs on maps the guest's pages user-accessible - at the
 * price of exposing the translation cache to reads.  Deviation: with
 * `ring=3` (an ablation for comparison) translated code does not run at
 * the patent's ring 1. :*/
static void
set_bt_ring(int ring)
{
    bt_ring = ring;
    vmm_gdt[GDT_BT_CS32] = desc_make(0, 0xffffffff,
                                     SEG_S | SEG_P | SEG_DB | (ring << 5) | STA_X | STA_R | STA_A);
    set_gate(T_CALLOUT, trap_vectors[T_CALLOUT], ring);
}

/* ------------------------------------------------------------------ */
/* The execution decision.                                             */

/*D:010 The execution decision.
 *
 * The patent's "execution decision sub-system" (US 6,397,242, claim 1)
 * chooses direct execution (direct.c) or binary translation (bt.c) before
 * each entry to the guest.  Direct execution is safe only if everything
 * the guest can do behaves the same at the real CPL 3, or traps to us:
 *  - CR0.PE = 1: real mode has no protection at all (SDM Vol. 3A §2.2,
 *    Modes of Operation), so it is always translated.
 *  - EFLAGS.VM = 1: virtual-8086 mode runs directly; the CPU already traps
 *    every sensitive instruction there as long as IOPL < 3.  With IOPL 3,
 *    CLI and STI would reach the real IF.  Deviation: that case is
 *    translated rather than run directly.
 *  - CPL = 3: guest kernels (CPL 0-2) always run translated.
 *  - IOPL < CPL: otherwise CLI, STI, IN and OUT would execute on the real
 *    hardware instead of raising #GP (SDM Vol. 2A, CLI).
 *  - IF = 1: the real IF is 1 while the guest runs, and POPF at CPL 3
 *    silently ignores IF rather than trapping (SDM Vol. 2B, POPF).
 *  - NT = 0: an IRET with NT set would follow the back link of the
 *    monitor's own TSS.  (Not in the patent's list; a state direct
 *    execution cannot reproduce.)
 *  - every segment register reversible (segtrack.c) and shadowed
 *    (shadow.c): the hardware will reload each from the shadow GDT when
 *    the guest next changes privilege or when IRET enters the guest, so
 *    what the shadow holds must be what the guest has loaded.
 :*/
enum mode
vmm_decide(struct vcpu *v)
{
    enum why_bt why = WHY_DIRECT;
    int cpl = vcpu_cpl(v), which = -1;

    if (bt_window_pending() || (v->seg[SEG_CS].base + v->eip) >= VMM_BASE - PGSIZE)
        why = WHY_WINDOW;       /* the instruction runs relocated (bt.c), or the code lies there */
    else if (!(v->cr0 & CR0_PE))
        why = WHY_REAL;
    else if (!opt_direct)
        why = WHY_OFF;
    else if (v->eflags & EFLAGS_VM)
        why = vcpu_iopl(v) == 3 ? WHY_V86_IOPL : WHY_DIRECT;
    else if (cpl != 3)
        why = WHY_CPL;
    else if (vcpu_iopl(v) >= cpl)
        why = WHY_IOPL;
    else if (!(v->eflags & EFLAGS_IF))
        why = WHY_IF;
    else if (v->eflags & EFLAGS_NT)
        why = WHY_NT;
    else {
        /* About to run directly: bring the shadow GDT up to date first,
         * so "shadowed" means "the hardware will load what the guest's
         * table says". */
        shadow_sync_gdt(v);
        shadow_sync_ldt(v);
        /* The answer for the segment registers cannot have changed while
         * neither they nor the shadow tables (their generation) have: a
         * return to the same user code skips the six checks. */
        int same = v->de_sgen == shadow_generation();
        for (int s = 0; s < NSEG && same; s++)
            same = seg_equal(&v->de_seg[s], &v->seg[s]);
        if (!same) {
            for (int s = 0; s < NSEG && why == WHY_DIRECT; s++) {
                if (!segtrack_reversible(v, s))
                    why = WHY_SEG;
                else if (!shadow_has(v, s))
                    why = WHY_UNSHADOWED;
                which = s;
            }
            if (why == WHY_DIRECT) {
                memcpy(v->de_seg, v->seg, sizeof v->seg);
                v->de_sgen = shadow_generation();
            }
        }
    }
    if ((v->cr4 & (CR4_VME | CR4_PVI)) && (v->eflags & EFLAGS_VM || cpl == 3) && (v->cr0 & CR0_PE))
        vm_stop(v, "CR4.VME/PVI in use: virtual-mode extensions are not virtualized");
    enum mode m = why == WHY_DIRECT ? MODE_DIRECT : MODE_BT;
    v->st.why[why]++;
    if (m != v->mode) {
        if (m == MODE_DIRECT)
            v->st.to_direct++;
        else
            v->st.to_bt++;
    }
    /* The log shows every change of engine or of reason, and names the
     * segment register a segment condition is about. */
    if ((opt_log & LOG_DECIDE) && (m != v->mode || why != v->why)) {
        static const char *sreg_names[NSEG] = { "es", "cs", "ss", "ds", "fs", "gs" };
        int seg = why == WHY_SEG || why == WHY_UNSHADOWED;
        cprintf("decide: %s at %04x:%08x (%s%s%s)\n", m == MODE_DIRECT ? "direct" : "translate",
                v->seg[SEG_CS].sel, v->eip, why_names[why], seg ? ": " : "", seg ? sreg_names[which] : "");
    }
    v->mode = m;
    v->why = why;
    return m;
}

const char *why_names[WHY_COUNT] = {
    [WHY_DIRECT] = "direct",
    [WHY_REAL] = "CR0.PE=0",
    [WHY_V86_IOPL] = "v86 with IOPL=3",
    [WHY_CPL] = "CPL!=3",
    [WHY_IOPL] = "IOPL>=CPL",
    [WHY_IF] = "IF=0",
    [WHY_NT] = "NT=1",
    [WHY_SEG] = "non-reversible segment",
    [WHY_UNSHADOWED] = "unshadowed segment",
    [WHY_WINDOW] = "access to the monitor's region",
    [WHY_OFF] = "direct execution off (direct=0)",
};

/* ------------------------------------------------------------------ */
/* Self-protection check.                                              */

/* A checksum of what no guest may change: the monitor's code, its
 * read-only data and its own sixteen GDT entries.  Taken at boot and
 * compared at exit (Popek and Goldberg's resource control, checked). */
static u32
integrity_sum(void)
{
    extern char __rodata_end[];
    u32 h = 2166136261u;                        /* FNV-1a */
    for (const u8 *p = (const u8 *)VMM_BASE; p < (const u8 *)__rodata_end; p++)
        h = (h ^ *p) * 16777619u;
    for (int i = GDT_VMM_FIRST; i < GDT_CACHED; i++)
        h = (h ^ vmm_gdt[i].lo ^ (vmm_gdt[i].hi << 1)) * 16777619u;
    return shadow_integrity(h);
}
static u32 integrity_at_boot;

void
vmm_integrity(void)
{
    u32 now = integrity_sum();
    cprintf("vmm: integrity %s: code, read-only data and monitor descriptors %08x (at boot %08x)\n",
            now == integrity_at_boot ? "ok" : "VIOLATED", now, integrity_at_boot);
}

/* ------------------------------------------------------------------ */
/* Statistics.                                                         */

static const char *vector_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "09", "#TS", "#NP",
    "#SS", "#GP", "#PF", "15", "#MF", "#AC", "#MC", "#XM",
};
extern const char *emu_names[E_COUNT];

/* n/1e6 with one decimal, for the time line. */
static void
print_millions(const char *name, u64 n)
{
    u32 tenths = (u32)(n / 100000);
    cprintf(" %s=%u.%uM", name, tenths / 10, tenths % 10);
}

void
vmm_stats(struct vcpu *v)
{
    struct stats *s = &v->st;
    cprintf("vmm: statistics\n");
    if (s->tsc_start) {
        u64 all = rdtsc() - s->tsc_start, other = all - s->tsc_direct - s->tsc_bt;
        cprintf("stat time (TSC; instructions under -icount)");
        print_millions("direct", s->tsc_direct);
        print_millions("translated", s->tsc_bt);
        print_millions("other", other);
        cprintf(" direct_share=%u%%\n", all ? (u32)(s->tsc_direct * 100 / all) : 0);
    }
    cprintf("stat entries direct=%u bt=%u switches to_direct=%u to_bt=%u\n",
            s->de_entries, s->bt_entries, s->to_direct, s->to_bt);
    cprintf("stat translations blocks=%u flushes=%u invalidated=%u chained=%u callout_exits=%u\n",
            s->blocks, s->tc_flushes, s->tc_invalidated, s->chained, s->callout_exits);
    u32 bu[4], mu[4];
    bt_usage(bu);
    mmu_usage(mu);
    cprintf("stat resources units=%u/%u cache_bytes=%u/%u shadow_pages=%u/%u rmap=%u/%u traced_frames=%u\n",
            bu[0], bu[1], bu[2], bu[3], mu[0], mu[1], mu[2], mu[3], trace_usage());
    cprintf("stat traces added=%u hits=%u code=%u pt=%u desc=%u cmap=%u\n", s->traces_added, s->trace_hits,
            s->trace_by_owner[0], s->trace_by_owner[1], s->trace_by_owner[2], s->trace_by_owner[3]);
    cprintf("stat pagefaults hidden=%u true=%u shadow_flushes=%u\n",
            s->hidden_pf, s->true_pf, s->shadow_flushes);
    cprintf("stat reflected=%u io_exits=%u gdt_syncs=%u\n", s->reflected, s->io_exits, s->gdt_syncs);
    cprintf("stat segments translated code loaded from shadow=%u cached=%u\n", s->seg_shadow, s->seg_cached);
    cprintf("stat checks inline=%u callout=%u tripped=%u relocated=%u elided=%u reg=%u reguessed=%u\n",
            s->checks_inline, s->checks_callout, s->checks_tripped, s->relocated, s->checks_elided,
            s->checks_reg, s->checks_reguessed);
    cprintf("stat inline emitted=%u io=%u indirect=%u dispatch_filled=%u dispatch_miss=%u\n",
            s->inline_emitted, s->io_inline, s->indirect_emitted, s->dispatch_filled, s->dispatch_miss);
    cprintf("stat links chained_xpage=%u xlinks_undone=%u adapted=%u unadapted=%u continued=%u\n",
            s->chained_xpage, s->xlinks_undone, s->adapted, s->unadapted, s->bt_continued);
    cprintf("stat interrupts host=%u rolled_forward=%u idle_halts=%u shadow_steps=%u delivered", s->host_irqs,
            s->rolled, s->idle_halts, s->shadow_steps);
    for (int i = 0; i < 16; i++)
        if (s->irqs[i])
            cprintf(" irq%d=%u", i, s->irqs[i]);
    cprintf("\n");
    bt_print_top(5);
    for (int i = 0; i < 256; i++)
        if (s->traps[i])
            cprintf("stat trap %d %s %u\n", i,
                    i < 32 && vector_names[i] ? vector_names[i] : i == T_CALLOUT ? "callout" : "irq",
                    s->traps[i]);
    for (int i = 0; i < E_COUNT; i++)
        if (s->callouts[i])
            cprintf("stat callout %s %u\n", emu_names[i], s->callouts[i]);
    for (int i = 0; i < WHY_COUNT; i++)
        if (s->why[i])
            cprintf("stat decide %s %u\n", why_names[i], s->why[i]);
    if (opt_tcdump)
        bt_dump(opt_tcdump);
}

/* ------------------------------------------------------------------ */
/* Setup and the main loop.                                            */

static u32 opt_stats_every, next_stats;     /* statsevery=S */

/* A monitor option that makes no sense: one line, and its own status,
 * before anything of the guest is loaded. */
void
bad_option(const char *fmt, ...)
{
    __builtin_va_list ap;
    cprintf("vmm: bad option: ");
    __builtin_va_start(ap, fmt);
    vcprintf(fmt, ap);
    __builtin_va_end(ap);
    cprintf("\n");
    vmm_exit(EXIT_BADARGS);
}

/* The decimal number an option's value starts with; anything else there
 * (an empty value, a letter, more than 9 digits) is a bad option. */
static u32
option_number(const char *c, const char *name)
{
    u32 n = 0;
    int digits = 0;
    for (; *c >= '0' && *c <= '9'; c++, digits++)
        n = n * 10 + (*c - '0');
    if (!digits || digits > 9 || (*c && *c != ' '))
        bad_option("%s wants a number", name);
    return n;
}

static void
parse_cmdline(const char *c)
{
    /* Options: mem=MiB, log=decide,translate,fault,callout,trace.  The first
     * word is the monitor's own file name, as every Multiboot loader
     * gives it. */
    while (c && *c && *c != ' ')
        c++;
    while (c && *c) {
        while (*c == ' ')
            c++;
        if (!*c)
            break;
        if (!memcmp(c, "mem=", 4)) {
            opt_mem_mb = option_number(c + 4, "mem=");
        } else if (!memcmp(c, "boot=", 5)) {
            opt_boot = !memcmp(c + 5, "sector", 6) ? BOOT_SECTOR : !memcmp(c + 5, "rom", 3) ? BOOT_ROM :
                       !memcmp(c + 5, "multiboot", 9) ? BOOT_MULTIBOOT : BOOT_AUTO;
        } else if (!memcmp(c, "chain=", 6)) {
            opt_chain = c[6] == '1';
        } else if (!memcmp(c, "inline=", 7)) {
            opt_inline = c[7] == '1';
        } else if (!memcmp(c, "adapt=", 6)) {
            opt_adapt = c[6] == '1';
        } else if (!memcmp(c, "direct=", 7)) {
            opt_direct = c[7] == '1';
        } else if (!memcmp(c, "naive=", 6)) {
            opt_naive = c[6] == '1';
        } else if (!memcmp(c, "tcdump=", 7)) {
            u32 n = 0;
            for (const char *d = c + 7; *d >= '0' && *d <= '9'; d++)
                n = n * 10 + (*d - '0');
            opt_tcdump = n;
            opt_count = n > 0;
        } else if (!memcmp(c, "hostirq=", 8)) {
            u32 n = 0;
            for (const char *d = c + 8; *d >= '0' && *d <= '9'; d++)
                n = n * 10 + (*d - '0');
            opt_hostirq = n > 100000 ? 100000 : n;
        } else if (!memcmp(c, "statsevery=", 11)) {
            u32 n = 0;
            for (const char *d = c + 11; *d >= '0' && *d <= '9'; d++)
                n = n * 10 + (*d - '0');
            opt_stats_every = n;
        } else if (!memcmp(c, "checks=", 7)) {
            opt_checks = c[7] == '1';
        } else if (!memcmp(c, "ring=", 5)) {
            opt_ring = c[5] == '1' ? 1 : c[5] == '3' ? 3 : 0;
        } else if (!memcmp(c, "log=", 4)) {
            for (c += 4; *c && *c != ' ';) {
                if (!memcmp(c, "decide", 6)) opt_log |= LOG_DECIDE;
                else if (!memcmp(c, "translate", 9)) opt_log |= LOG_TRANSLATE;
                else if (!memcmp(c, "fault", 5)) opt_log |= LOG_FAULT;
                else if (!memcmp(c, "callout", 7)) opt_log |= LOG_CALLOUT;
                else if (!memcmp(c, "trace", 5)) opt_log |= LOG_TRACE;
                else if (!memcmp(c, "all", 3)) opt_log = ~0u;
                else bad_option("log= takes kinds among decide, translate, fault, callout, trace and all, "
                                "separated by commas");
                while (*c && *c != ',' && *c != ' ')
                    c++;
                if (*c == ',')
                    c++;
            }
        } else {
            char word[32];
            int n = 0;
            while (c[n] && c[n] != ' ' && n < (int)sizeof word - 1) {
                word[n] = c[n];
                n++;
            }
            word[n] = 0;
            bad_option("\"%s\" is not an option (mem= boot= chain= inline= adapt= direct= "
                       "naive= tcdump= hostirq= statsevery= checks= ring= log=)", word);
        }
        while (*c && *c != ' ')
            c++;
    }
}

/*D:000 The main loop.  Decide, run one engine until it hands control
 * back, repeat.  Each engine returns after it has handled one exit from
 * the guest (direct.c) or when the guest's state may call for the other
 * engine (bt.c); then the decision is taken again (docs/00-overview.md). :*/
/*D:020 Virtual interrupts.  Before each decision the devices are
 * brought up to date (dev.c, dev_poll); then, if the virtual PIC has a
 * request and the guest's IF is 1, the interrupt is delivered through the
 * guest's IDT (or, in real mode, its IVT) at the instruction boundary the
 * guest is stopped at, exactly as emulate_interrupt delivers an
 * exception, with EXT set in any error code on the way.  The guest's
 * state here is always precise: direct execution stops only at
 * instruction boundaries, and translated code is put back at one by
 * exit_block (bt.c, after B:070).  Two details of the CPU matter:
 *  - after an STI that set IF, and after a load of SS, one more
 *    instruction runs before an interrupt is recognized (SDM Vol. 3A
 *    §6.8.3); the emulator notes it in v->intr_shadow, and the main loop
 *    runs that instruction alone (bt_step_one) before anything else,
 *    even with nothing pending yet, since a request may come while it
 *    runs;
 *  - a guest in HLT waits for an interrupt: dev_idle halts the host CPU
 *    until a host interrupt brings one, instead of spinning.
 * Every host interrupt is an exit from the guest (the real IF is 1
 * whenever the guest runs, whatever the guest's own IF), so a guest in a
 * tight chained loop of translated code still reaches here within one
 * host timer period of its next tick. :*/
static void
interrupt_window(struct vcpu *v)
{
    v->irq_seen = 0;
    dev_poll(v);
    if (opt_stats_every && dev_seconds() >= next_stats) {
        /* statsevery=S: the statistics every S seconds of virtual time,
         * for watching a long run (a Linux boot) phase by phase. */
        next_stats = dev_seconds() + opt_stats_every;
        cprintf("vmm: statistics at %u s, guest at %04x:%08x\n", dev_seconds(), v->seg[SEG_CS].sel, v->eip);
        vmm_stats(v);
    }
    if (v->halted) {
        if (!dev_idle(v))
            return;
        v->halted = 0;
    }
    if (v->intr_shadow && (v->eflags & EFLAGS_IF)) {
        /* The shadow lasts until the next instruction has run.  The
         * first time here, note where that instruction is; once the
         * guest has moved on from it, the shadow is over.  If a request
         * is waiting while it has not run yet (an exit before it: a host
         * interrupt as translated code was entered), run it alone now.
         * Nothing is stepped while nothing is waiting. */
        if (v->intr_shadow == 1) {
            v->intr_shadow = 2;
            v->shadow_eip = v->eip;
        } else if (v->eip != v->shadow_eip) {
            v->intr_shadow = 0;
        }
        if (v->intr_shadow && dev_irq_pending(v)) {
            v->intr_shadow = 0;
            v->st.shadow_steps++;
            bt_step_one(v);
            if (v->stop_reason || v->halted)
                return;
            dev_poll(v);
        }
        if (v->intr_shadow)
            return;
    }
    v->intr_shadow = 0;
    if (!(v->eflags & EFLAGS_IF) || !dev_irq_pending(v))
        return;
    int vec = dev_irq_ack(v);
    if (vec < 0)
        return;
    if (opt_log & LOG_FAULT)
        cprintf("irq: vector %02x at %04x:%08x\n", vec, v->seg[SEG_CS].sel, v->eip);
    if (emulate_interrupt(v, vec, 0, 0, 0, v->eip) != OK)
        emulate_deliver_pending(v);
}

/* The time each engine takes is measured with the TSC around its call:
 * under QEMU's -icount shift=0 that counts instructions retired (make
 * bench), otherwise host time.  An engine's share includes the exits it
 * handles and the instructions it emulates (hidden page faults, traced
 * writes, callouts, what direct execution traps on); "other" is the
 * decision and the delivery of virtual interrupts. */
static void
run(struct vcpu *v)
{
    v->st.tsc_start = rdtsc();
    while (!v->stop_reason) {
        interrupt_window(v);
        if (v->stop_reason || v->halted)
            continue;
        enum mode m = vmm_decide(v);
        u64 t0 = rdtsc();
        if (m == MODE_DIRECT) {
            direct_run(v);
            v->st.tsc_direct += rdtsc() - t0;
        } else {
            bt_run(v);
            v->st.tsc_bt += rdtsc() - t0;
        }
    }
}

void
vmm_main(u32 magic, u32 mbi_pa)
{
    struct vcpu *v = &vcpu0;
    dev_init();
    cprintf("vmm: a teaching VMM after US 6,397,242\n");
    if (magic != 0x2BADB002)
        panic("not started by a Multiboot loader (eax=%x)", magic);
    tables_init();
    mmu_init();

    struct mb_info *mbi = hpa_map(mbi_pa, SLOT_LOAD);
    static struct mb_info mbcopy;
    memcpy(&mbcopy, mbi, sizeof mbcopy);
    static char cmdline[256];
    if (mbcopy.flags & MB_INFO_CMDLINE) {
        hpa_read(mbcopy.cmdline, cmdline, sizeof cmdline - 1);
        parse_cmdline(cmdline);
    }
    cprintf("vmm: command line \"%s\", guest memory %u MiB\n", cmdline, opt_mem_mb);
    dev_start();

    limits_enforced = probe_limits();
    probe_umip();
    far_sets_accessed = probe_far_accessed();
    probe_icebp();
    set_bt_ring(opt_ring ? opt_ring : 1);
    bt_checks = opt_checks >= 0 ? opt_checks : (bt_ring == 1 && !limits_enforced);
    cprintf("vmm: this CPU %s segment limits; translated code runs at ring %d%s\n",
            limits_enforced ? "checks" : "does not check", bt_ring,
            bt_checks ? " with software truncation checks" : "");
    cprintf("vmm: far transfers %s the accessed bit of the code segment they load; ICEBP raises %s\n",
            far_sets_accessed ? "set" : "do not set", host_icebp_ud ? "#UD" : "#DB");
    cprintf("vmm: %s\n", host_umip ? "UMIP: SGDT, SIDT, SLDT, STR and SMSW trap in direct execution"
                                   : "no UMIP: SGDT, SIDT, SLDT, STR and SMSW in direct execution show the monitor's values");
    shadow_init();
    trace_init();
    bt_init();
    integrity_at_boot = integrity_sum();
    load_guest(v, &mbcopy);
    if (!v->stop_reason)
        run(v);

    cprintf("vmm: guest stopped: %s\n", v->stop_reason);
    /* The instruction it stopped at, as bytes, for the report. */
    u8 bytes[16];
    int avail;
    if (emulate_fetch(v, v->eip, bytes, &avail) == OK) {
        cprintf("vmm: at %04x:%08x:", v->seg[SEG_CS].sel, v->eip);
        for (int i = 0; i < avail && i < 15; i++)
            cprintf(" %02x", bytes[i]);
        cprintf("\n");
    }
    vfault.pending = 0;
    vcpu_dump(v);
    vmm_stats(v);
    vmm_integrity();
    if (v->stop_status == EXIT_RESET || v->stop_status == EXIT_TRIPLE)
        host_reset();
    vmm_exit(v->stop_status ? v->stop_status : EXIT_STOP);
}
