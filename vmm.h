/*
 * vmm.h -- the virtual CPU and every function one file offers another.
 *
 * struct vcpu is the patent's "virtual processor": the guest's registers
 * and the privileged state the guest believes it has loaded.  Prototypes
 * are grouped by the file that defines them; the file that owns a piece
 * of state is named where the state is declared.
 *
 * Runs in:    VMM, ring 0, interrupts off.
 */
#ifndef VMM_H
#define VMM_H

#include "x86.h"
#include "decode.h"

#define NULL ((void *)0)
#define offsetof(t, m) __builtin_offsetof(t, m)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

typedef u32 gpa_t;      /* guest-physical address */
typedef u32 gva_t;      /* guest-linear address */
typedef u32 hpa_t;      /* host-physical address */

/*
 * The trap frame.  boot.S and the CPU build it in place, inside struct
 * vcpu, on every exit from the guest: the monitor's TSS points ESP0 just
 * past it, so the CPU's pushes land in the last fields and boot.S pushes
 * the rest.  Do not reorder: boot.S depends on it.
 *
 *     pushed by boot.S:  edi .. eax (PUSHAD order), gs fs es ds, trapno, err
 *     pushed by the CPU: [err], eip cs eflags esp ss (SDM Vol. 3A §6.12.1,
 *                        Exception- or Interrupt-Handler Procedures),
 *                        then es ds fs gs when leaving virtual-8086 mode.
 */
struct frame {
    u32 edi, esi, ebp, esp_pushad, ebx, edx, ecx, eax;
    u32 gs, fs, es, ds;
    u32 trapno, err;
    u32 eip, cs, eflags, esp, ss;
    u32 v86_es, v86_ds, v86_fs, v86_gs;
};

/* A segment register as the guest sees it: the visible selector and the
 * hidden part the CPU caches at load time (SDM Vol. 3A §3.4.3, Segment
 * Registers).  Written only by segtrack.c. */
enum segmode { SM_PROT = 0, SM_REAL, SM_V86 };
struct seg {
    u16 sel;
    u8 mode;            /* enum segmode: the CPU mode it was loaded in */
    u8 pad;
    u32 base, limit;    /* limit is byte-granular */
    u32 attr;           /* see x86.h: type, S, DPL, P, AVL, D/B, G */
};

_Static_assert(sizeof(struct seg) == 16, "seg_equal compares four words");
static inline int
seg_equal(const struct seg *a, const struct seg *b)
{
    const u32 *p = (const u32 *)a, *q = (const u32 *)b;
    return p[0] == q[0] && p[1] == q[1] && p[2] == q[2] && p[3] == q[3];
}

/* GDTR/IDTR as the guest loaded them. */
struct dtr {
    u32 base;
    u16 limit;
};

/* Why the execution decision chose binary translation (vmm.c). */
enum why_bt {
    WHY_DIRECT = 0,     /* it did not: direct execution */
    WHY_REAL,           /* CR0.PE = 0 */
    WHY_V86_IOPL,       /* virtual-8086 with IOPL 3 */
    WHY_CPL,            /* CPL != 3 */
    WHY_IOPL,           /* IOPL >= CPL */
    WHY_IF,             /* IF = 0 */
    WHY_NT,             /* NT = 1: IRET would use the monitor's TSS */
    WHY_SEG,            /* a segment register is non-reversible */
    WHY_UNSHADOWED,     /* a segment register has no shadow descriptor */
    WHY_WINDOW,         /* the next instruction touches the monitor's region */
    WHY_OFF,            /* direct execution switched off (an ablation) */
    WHY_COUNT
};

enum mode { MODE_BT = 0, MODE_DIRECT = 1 };

/* Event counters, printed at exit (vmm_stats) and read by `make bench`. */
struct stats {
    u64 tsc_start, tsc_direct, tsc_bt;  /* the run's start; time in each engine (vmm.c, run) */
    u32 traps[256];         /* exits by vector, from either engine */
    u32 callouts[E_COUNT];  /* emulated instructions, by emulation routine */
    u32 blocks;             /* translations made */
    u32 tc_flushes;         /* translation-cache flushes */
    u32 bt_entries;         /* entries into the translation cache */
    u32 de_entries;         /* entries into direct execution */
    u32 to_direct, to_bt;   /* switches between the engines */
    u32 why[WHY_COUNT];     /* decisions, by reason */
    u32 hidden_pf, true_pf; /* page faults filled silently / reflected */
    u32 shadow_flushes;     /* shadow page tables discarded */
    u32 reflected;          /* exceptions and interrupts delivered to the guest */
    u32 io_exits;           /* port accesses emulated */
    u32 gdt_syncs;          /* shadow GDT refreshes */
    u32 seg_shadow;         /* translated code's segment registers loaded from a shadow ... */
    u32 seg_cached;         /* ... and from a cached descriptor (shadow.c, H:025) */
    u32 traces_added;       /* pages newly traced (trace.c) */
    u32 trace_hits;         /* traced writes reported to owners */
    u32 trace_by_owner[8];  /* ... by owner bit */
    u32 tc_invalidated;     /* translations dropped because their code was written */
    u32 chained;            /* jumps patched to lead straight to their target */
    u32 callout_exits;      /* exits from translated code through a callout */
    u32 checks_inline;      /* software truncation checks emitted inline */
    u32 checks_callout;     /* ... and as callouts to the monitor */
    u32 checks_tripped;     /* checks that fired: an access at or near the monitor */
    u32 relocated;          /* instructions run relocated or unchecked, one step each */
    u32 checks_elided;      /* memory accesses proven clear of the monitor: no check */
    u32 checks_reg;         /* ... checked by one BOUND on their base register */
    u32 checks_reguessed;   /* ... of which the guess of the register's sign was wrong */
    u32 inline_emitted;     /* privileged or sensitive instructions emulated in the TC */
    u32 io_inline;          /* ... of them, accesses to ports with nothing behind them */
    u32 indirect_emitted;   /* indirect branches dispatched in the TC */
    u32 dispatch_filled;    /* dispatch entries made */
    u32 dispatch_miss;      /* dispatches that found no entry */
    u32 chained_xpage;      /* chains made across pages (included in chained) */
    u32 xlinks_undone;      /* link-target pages whose mapping changed */
    u32 adapted;            /* instructions retranslated as emulating callouts */
    u32 unadapted;          /* ... and made IDENT again */
    u32 bt_continued;       /* exits after which translated code went on at once */
    u32 irqs[16];           /* virtual interrupts delivered, by IRQ line */
    u32 host_irqs;          /* host interrupts taken (timer deadline, COM1 input) */
    u32 idle_halts;         /* host HLTs while the guest was halted */
    u32 shadow_steps;       /* instructions stepped to end an interrupt shadow */
    u32 rolled;             /* host interrupts inside an inline sequence, rolled forward (bt.c) */
};

struct vcpu {
    /* The first page holds the trap frame and nothing else (with room
     * below it for a fault inside vm_enter): it is the one page of the
     * monitor that stays writable in the restricted view direct execution
     * runs on (mmu.c, mmu_de_view). */
    u8 guard[256];
    struct frame f;     /* GPRs (always the guest's) and the last exit's frame */
    u8 frame_page_pad[PGSIZE - 256 - sizeof(struct frame)];

    /* The guest's architectural state that the hardware does not hold
     * while the monitor runs.  EIP and EFLAGS are the guest's own values;
     * in translated code the hardware EIP is a translation-cache address. */
    u32 eip;
    u32 eflags;
    struct seg seg[NSEG];           /* written only by segtrack.c */
    struct seg ldtr, tr;            /* written only by segtrack.c */
    int cpl;                        /* current privilege level; segtrack.c */
    u32 seg_gen;                    /* bumped by segtrack.c on every change to seg[] */
    struct seg de_seg[NSEG];        /* the registers when last found fit to run directly, */
    u32 de_sgen;                    /* and the shadow tables' generation then */
    struct dtr gdtr, idtr;
    u32 cr0, cr2, cr3, cr4;
    u32 dr[8];
    u64 efer_unused;

    /* Monitor bookkeeping. */
    enum mode mode;                 /* the last decision (vmm.c) */
    enum why_bt why;                /* its reason */
    int delivering;                 /* nesting of exception delivery: #DF, triple fault */
    int intr_shadow;                /* the instruction after STI (or MOV SS) runs before any interrupt:
                                     * 1 just set, 2 noted at shadow_eip (vmm.c, D:020) */
    u32 shadow_eip;
    int halted;
    int irq_seen;                   /* a host interrupt since the main loop last looked (dev.c) */
    const char *stop_reason;        /* set once by vm_stop(); the guest never runs again */
    int stop_status;

    struct stats st;
};

/* Segment helpers. */
static inline int vcpu_cpl(struct vcpu *v)
{
    return v->cpl;
}
static inline int vcpu_iopl(struct vcpu *v) { return (v->eflags >> EFLAGS_IOPL_SHIFT) & 3; }
static inline int vcpu_code32(struct vcpu *v)
{
    return !(v->eflags & EFLAGS_VM) && (v->seg[SEG_CS].attr & SEG_DB);
}

/* Results of guest-memory and emulation helpers. */
#define OK     0
#define FAULT  (-1)     /* a guest exception is pending in v->fault */
#define STOP   (-2)     /* vm_stop() was called */
#define NOT_EMULATED 1  /* emulate_one: an ordinary instruction, to be run as it is */

/* ---- vmm.c: setup, main loop, the execution decision ---- */
extern struct vcpu vcpu0;
extern int bt_ring;             /* the ring translated code runs at: 1 or 3 (vmm.c) */
extern int limits_enforced;     /* does the CPU check segment limits? (vmm.c) */
extern int bt_checks;           /* software truncation checks in translated code (vmm.c) */
extern int far_sets_accessed;   /* does a far transfer set a code descriptor's accessed bit? (vmm.c) */
extern int host_umip;
extern int host_icebp_ud;       /* ICEBP (F1) raises #UD on this CPU (vmm.c) */           /* the CPU has UMIP, and the monitor keeps it on (vmm.c) */
enum mode vmm_decide(struct vcpu *v);
void vm_stop(struct vcpu *v, const char *fmt, ...);
void vm_reset(struct vcpu *v, const char *why);
extern const char *why_names[WHY_COUNT];
/* Exit statuses the monitor itself chooses.  QEMU's isa-debug-exit turns
 * a write of v into the process status (v << 1) | 1; guests use small
 * values, so these stand apart. */
#define EXIT_STOP     0x70      /* vm_stop: the guest did something we don't support */
#define EXIT_TRIPLE   0x71      /* the guest triple-faulted: reset, as bare QEMU does */
#define EXIT_RESET    0x75      /* the guest reset the machine: reset (vm_reset) */
#define EXIT_BADARGS  0x76      /* the monitor's own command line makes no sense */
#define EXIT_BADIMAGE 0x72      /* no guest, or a malformed one */
#define EXIT_PANIC    0x73      /* the monitor is wrong */
#define EXIT_HALT     0x74      /* hlt with nothing that could ever wake it */
void vmm_exit(int status);
void bad_option(const char *fmt, ...);
void vmm_stats(struct vcpu *v);
void vmm_integrity(void);
void *vmm_idt_addr(void);
extern u32 opt_mem_mb;
extern int opt_boot;
enum { BOOT_AUTO = 0, BOOT_MULTIBOOT, BOOT_SECTOR, BOOT_ROM };
extern u32 opt_log;
extern int opt_chain, opt_inline, opt_adapt, opt_count, opt_direct, opt_tcdump, opt_naive;
#define LOG_DECIDE 0x1
#define LOG_TRANSLATE 0x2
#define LOG_FAULT 0x4
#define LOG_CALLOUT 0x8
#define LOG_TRACE 0x10

/* ---- boot.S: the world switch ---- */
void vm_enter(struct frame *f, u32 cr3); /* enters the guest on cr3; returns when it exits */
struct tss_page {
    struct tss t;
    u8 pad[PGSIZE - sizeof(struct tss)];
};
extern struct tss_page tss_page;
#define vmm_tss (tss_page.t)
extern struct desc vmm_gdt[NGDT];
extern char vm_enter_iret[], vm_enter_start[], vm_enter_end[];

/* ---- console.c-ish helpers live in vmm.c: the log on COM2 ---- */
void cprintf(const char *fmt, ...);
void vcprintf(const char *fmt, __builtin_va_list ap);
int vsnprintf_(char *buf, int n, const char *fmt, __builtin_va_list ap);
void panic_at(const char *file, int line, const char *fmt, ...) __attribute__((noreturn));
#define panic(...) panic_at(__FILE__, __LINE__, __VA_ARGS__)
#define assert(c) do { if (!(c)) panic("assertion failed: %s", #c); } while (0)
void vcpu_dump(struct vcpu *v);
void *memset(void *d, int c, unsigned n);
void *memcpy(void *d, const void *s, unsigned n);
int memcmp(const void *a, const void *b, unsigned n);
unsigned strlen(const char *s);

/* ---- mmu.c: guest memory, shadow page tables ---- */
extern hpa_t ram_base;          /* host-physical start of guest RAM */
extern u32 ram_size;            /* bytes */
void mmu_init(void);
void mmu_usage(u32 u[4]);
void *hpa_map(hpa_t pa, int slot);
#define SLOT_TC    0    /* bt.c: the writable view of the translation cache */
#define SLOT_COPY  1
#define SLOT_WALK  2
#define SLOT_WALK2 3
#define SLOT_LOAD  4
#define NSLOTS     9    /* 5..8: bt.c's relocation aliases, the top four pages */
void hpa_read(hpa_t pa, void *buf, u32 n);
void hpa_write(hpa_t pa, const void *buf, u32 n);
int gpa_read(gpa_t pa, void *buf, u32 n);
int mmu_translate_watched(struct vcpu *v, gva_t la, int acc, gpa_t *pa);
u32 mmu_data_generation(void);
int gpa_write(gpa_t pa, const void *buf, u32 n);
#define ACC_W 1         /* write */
#define ACC_U 2         /* the access is made at CPL 3 */
#define ACC_X 4         /* instruction fetch */
#define ACC_SYS 8       /* implicit supervisor access (descriptor tables, TSS) */
#define ACC_PEEK 16     /* the monitor looking: no Accessed or Dirty updates */
int mmu_translate(struct vcpu *v, gva_t la, int acc, gpa_t *pa);
int mmu_translate_code(struct vcpu *v, gva_t la, int acc, gpa_t *pa);
void mmu_code_mappings_changed(void);
u32 mmu_code_generation(void);
int vmem_read(struct vcpu *v, gva_t la, void *buf, u32 n, int acc);
int vmem_write(struct vcpu *v, gva_t la, const void *buf, u32 n, int acc);
int mmu_page_fault(struct vcpu *v, u32 cr2, u32 err);
#define PF_HIDDEN 1     /* mmu_page_fault: filled; resume the guest */
#define PF_TRACED 2     /* ... a traced write: resume for one instruction with TF set */
#define PF_WINDOW 3     /* ... an access to the monitor's region: run the instruction relocated */
void mmu_write_protect(struct vcpu *v, gpa_t page);
void mmu_set_rom(hpa_t hpa, u32 size);
hpa_t mmu_not_ram(gpa_t pa);
void mmu_set_a20(struct vcpu *v, int on);
int mmu_a20(void);
void mmu_expose(u32 va, u32 len, int writable);
void mmu_alias(int slot, hpa_t pa, int writable);
void mmu_de_view(int on);
void mmu_flush(struct vcpu *v);
void mmu_invlpg(struct vcpu *v, gva_t la);
u32 mmu_hw_cr3(struct vcpu *v);

/* ---- segtrack.c: the guest's segment registers and their reversibility ---- */
void segtrack_reset(struct vcpu *v);
void segtrack_reset_real(struct vcpu *v, u16 cs, u32 cs_base);
int segtrack_read_desc(struct vcpu *v, u16 sel, struct desc *d, u32 *dla);
int segtrack_load(struct vcpu *v, int sreg, u16 sel);
void segtrack_load_real(struct vcpu *v, int sreg, u16 sel);
int segtrack_load_cs(struct vcpu *v, u16 sel, struct desc d, int cpl);
int segtrack_load_task(struct vcpu *v, int sreg, u16 sel, int cpl);
void segtrack_set(struct vcpu *v, int sreg, u16 sel, struct desc d, int mode);
void segtrack_null(struct vcpu *v, int sreg, u16 sel);
int segtrack_reversible(struct vcpu *v, int sreg);
void segtrack_after_direct(struct vcpu *v);
int segtrack_set_accessed(struct vcpu *v, u16 sel);
int segtrack_set_accessed_far(struct vcpu *v, u16 sel);

/* ---- shadow.c: shadow descriptor tables ---- */
void shadow_init(void);
void shadow_sync_gdt(struct vcpu *v);
void shadow_sync_ldt(struct vcpu *v);
void shadow_sync_for_bt(struct vcpu *v);
void shadow_engine(int direct);
void shadow_de_tables(u32 *gdt, u32 *gdt_len, u32 *ldt, u32 *ldt_len);
int shadow_de_table_write(u32 la);
int shadow_has(struct vcpu *v, int sreg);
int shadow_iret_nulls(u16 sel);
int shadow_guest_desc(u16 sel, struct desc *d, int loadable);
int shadow_copy_desc(struct vcpu *v, u16 sel, struct desc *d);
u16 shadow_hw_selector(struct vcpu *v, int sreg, int *from_shadow);
u32 shadow_generation(void);
void shadow_gdt_changed(struct vcpu *v);
struct desc shadow_truncate(struct desc d, int ring, int stack);
u32 shadow_integrity(u32 h);

/* ---- trace.c: memory tracing ---- */
#define MAX_GUEST_MB 240        /* guest RAM limit: trace and reverse-map tables are sized for it */
#define TR_CODE 0x1             /* owner: the translator (bt.c) */
#define TR_PT   0x2             /* owner: the shadow page tables (mmu.c) */
#define TR_DESC 0x4             /* owner: the shadow descriptor tables (shadow.c) */
#define TR_CMAP 0x8             /* owner: the guest's mappings of translated code (mmu.c) */
typedef void (*trace_fn)(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new);
void trace_init(void);
u32 trace_usage(void);
void trace_register(int owner, trace_fn fn);
int trace_is_traced(gpa_t pa);
int trace_owners(gpa_t pa);
void trace_add(struct vcpu *v, gpa_t pa, int owner);
void trace_remove(gpa_t pa, int owner);
void trace_notify(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new);
int trace_begin_write(struct vcpu *v, gpa_t pa, u32 *spte, gva_t la);
int trace_in_flight(void);
int trace_begin_absent(struct vcpu *v, u32 *spte, gva_t la, hpa_t sink);
void trace_end_write(struct vcpu *v);

/* ---- emulate.c: the instruction emulator and the virtual CPU's events ---- */
struct fault {
    int pending;
    u8 vector;
    u8 has_err;
    u32 err;
    u32 cr2;
};
extern struct fault vfault;
int raise_fault(struct vcpu *v, int vector, u32 err);
int raise_pf(struct vcpu *v, u32 cr2, u32 err);
int raise_gp(struct vcpu *v, u32 err);
int emulate_one(struct vcpu *v);
int emulate_insn(struct vcpu *v, struct insn *in);
int emulate_data(struct vcpu *v, struct insn *in, int *special);
int emulate_deliver_pending(struct vcpu *v);
int emulate_interrupt(struct vcpu *v, int vector, int soft, int has_err, u32 err, u32 next_eip);
int emulate_fetch(struct vcpu *v, u32 eip, u8 *buf, int *avail);
int stack_push(struct vcpu *v, u32 val, int size);
int seg_read(struct vcpu *v, int sreg, u32 off, void *buf, u32 n);
int seg_write(struct vcpu *v, int sreg, u32 off, const void *buf, u32 n);
u32 *gpr(struct vcpu *v, int n);
void emulate_deliver_debug(struct vcpu *v, u32 dr6_bits);
void emulate_ea(struct vcpu *v, struct insn *in, int *seg, u32 *off);
int emulate_ea_seg(struct insn *in);

/* ---- direct.c: the direct execution sub-system ---- */
void direct_run(struct vcpu *v);

/* ---- bt.c: the binary translation sub-system ---- */
void bt_init(void);
void bt_run(struct vcpu *v);
void bt_step_one(struct vcpu *v);
void bt_flush(const char *why);
int bt_window_pending(void);
void bt_window_fault(struct vcpu *v, u32 la);
void bt_dump(int n);
void bt_usage(u32 u[4]);
void bt_print_top(int n);

/* ---- dev.c: virtual devices ---- */
void dev_init(void);
int dev_in(struct vcpu *v, u16 port, int size, u32 *val);
int dev_out(struct vcpu *v, u16 port, int size, u32 val);
void log_putc(char c);
int dev_irq_pending(struct vcpu *v);
int dev_irq_ack(struct vcpu *v);
void dev_host_irq(struct vcpu *v, int vec);
void dev_poll(struct vcpu *v);
int dev_idle(struct vcpu *v);
void pic_raise(int irq);
u32 dev_seconds(void);
extern u32 opt_hostirq;
void dev_start(void);
int dev_port_is_empty(u16 port);
void dev_reset_state(int from_reset);

/* ---- load.c: the guest loaders (Multiboot ELF) ---- */
struct mb_info;
void load_guest(struct vcpu *v, struct mb_info *mbi);

#endif /* VMM_H */
