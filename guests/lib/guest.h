/*
 * guest.h -- the test-guest library: everything a bare-metal Multiboot test
 * kernel needs to run on bare QEMU and, byte for byte identically, under the
 * monitor.
 *
 * What is here:
 *   - port I/O, control-register, EFLAGS and descriptor-table inline wrappers
 *   - polled COM1 output, a tiny printf, exit through QEMU's isa-debug-exit
 *   - PASS/FAIL bookkeeping (main returns `failures`)
 *   - a GDT (null, kernel code 0x08, kernel data 0x10, user code 0x1b,
 *     user data 0x23, TSS 0x28, spare slots), a TSS, and an IDT whose 256
 *     vectors all lead to one C dispatcher with a full trap frame
 *   - ring switching: enter_user()/run_user() iret to ring 3; a ring-3
 *     program comes back with the SYS_EXIT system call (int $0x80)
 *   - v86 entry (enter_v86) using the same "come back" mechanism
 *   - an "expect a fault" facility (FAULT_ARM / check_fault)
 *   - 4 KiB paging helpers
 *
 * Everything is deterministic: nothing here reads the TSC or depends on where
 * the boot loader put its data.
 *
 * Rules guests follow (see the guests' header comments): port I/O only to
 * COM1 0x3f8-0x3ff, the PICs 0x20/0x21/0xa0/0xa1 and the exit port 0xf4; no
 * linear addresses >= 0xffc00000; no task switches, no LDT, no 4 MiB pages.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>

#define NORETURN  __attribute__((noreturn))
#define ALIGNED(n) __attribute__((aligned(n)))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ------------------------------------------------------------------------
 * Multiboot (v1) information structure, as handed over in EBX.
 * ------------------------------------------------------------------------ */
#define MULTIBOOT_BOOT_MAGIC  0x2BADB002u

#define MBI_FLAG_MEM      (1u << 0)
#define MBI_FLAG_BOOTDEV  (1u << 1)
#define MBI_FLAG_CMDLINE  (1u << 2)
#define MBI_FLAG_MODS     (1u << 3)
#define MBI_FLAG_MMAP     (1u << 6)
#define MBI_FLAG_LOADER   (1u << 9)

struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower;         /* KiB below 1 MiB */
    uint32_t mem_upper;         /* KiB above 1 MiB */
    uint32_t boot_device;
    uint32_t cmdline;           /* physical address of a C string */
    uint32_t mods_count;
    uint32_t mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length;       /* bytes */
    uint32_t mmap_addr;
    uint32_t drives_length;
    uint32_t drives_addr;
    uint32_t config_table;
    uint32_t boot_loader_name;
    uint32_t apm_table;
};

/* A memory-map entry; `size` does not count itself. */
struct multiboot_mmap_entry {
    uint32_t size;
    uint32_t base_lo, base_hi;
    uint32_t len_lo, len_hi;
    uint32_t type;
} __attribute__((packed));

struct multiboot_module {
    uint32_t mod_start, mod_end, string, reserved;
};

/* Machine state at _start, captured by entry.S before anything changes. */
extern uint32_t entry_eax, entry_ebx, entry_eflags, entry_cr0;
extern uint32_t entry_cs, entry_ds, entry_es, entry_fs, entry_gs, entry_ss;
extern uint32_t entry_esp;      /* loader-dependent: do not print */

/* The guest's entry point, called by entry.S; its return value is exit()ed. */
int main(uint32_t magic, struct multiboot_info *mbi);

/* Linker-script symbols. */
extern char __image_start[], __text_end[], __data_start[], __bss_start[], __bss_end[], __image_end[];

/* ------------------------------------------------------------------------
 * Port I/O (only COM1 0x3f8-0x3ff, PIC 0x20/0x21/0xa0/0xa1, exit 0xf4).
 * ------------------------------------------------------------------------ */
static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* ------------------------------------------------------------------------
 * EFLAGS, control and debug registers.
 * ------------------------------------------------------------------------ */
#define EFL_CF    (1u << 0)
#define EFL_1     (1u << 1)     /* reserved, always 1 */
#define EFL_PF    (1u << 2)
#define EFL_AF    (1u << 4)
#define EFL_ZF    (1u << 6)
#define EFL_SF    (1u << 7)
#define EFL_TF    (1u << 8)
#define EFL_IF    (1u << 9)
#define EFL_DF    (1u << 10)
#define EFL_OF    (1u << 11)
#define EFL_IOPL(n) ((uint32_t)(n) << 12)
#define EFL_IOPL_MASK (3u << 12)
#define EFL_NT    (1u << 14)
#define EFL_RF    (1u << 16)
#define EFL_VM    (1u << 17)
#define EFL_AC    (1u << 18)
#define EFL_VIF   (1u << 19)
#define EFL_VIP   (1u << 20)
#define EFL_ID    (1u << 21)

#define CR0_PE (1u << 0)
#define CR0_MP (1u << 1)
#define CR0_EM (1u << 2)
#define CR0_TS (1u << 3)
#define CR0_ET (1u << 4)
#define CR0_NE (1u << 5)
#define CR0_WP (1u << 16)
#define CR0_AM (1u << 18)
#define CR0_NW (1u << 29)
#define CR0_CD (1u << 30)
#define CR0_PG (1u << 31)

#define CR4_TSD (1u << 2)
#define CR4_PSE (1u << 4)

static inline uint32_t read_eflags(void)
{
    uint32_t v;
    __asm__ volatile("pushfl; popl %0" : "=r"(v) : : "memory");
    return v;
}

static inline void write_eflags(uint32_t v)
{
    __asm__ volatile("pushl %0; popfl" : : "r"(v) : "memory", "cc");
}

static inline void cli(void) { __asm__ volatile("cli" : : : "memory"); }
static inline void sti(void) { __asm__ volatile("sti" : : : "memory"); }

#define DEFINE_CR(n)                                                        \
    static inline uint32_t read_cr##n(void)                                 \
    {                                                                       \
        uint32_t v;                                                         \
        __asm__ volatile("movl %%cr" #n ", %0" : "=r"(v));                  \
        return v;                                                           \
    }                                                                       \
    static inline void write_cr##n(uint32_t v)                              \
    {                                                                       \
        __asm__ volatile("movl %0, %%cr" #n : : "r"(v) : "memory");         \
    }
DEFINE_CR(0)
DEFINE_CR(2)
DEFINE_CR(3)
DEFINE_CR(4)
#undef DEFINE_CR

#define DEFINE_DR(n)                                                        \
    static inline uint32_t read_dr##n(void)                                 \
    {                                                                       \
        uint32_t v;                                                         \
        __asm__ volatile("movl %%dr" #n ", %0" : "=r"(v));                  \
        return v;                                                           \
    }                                                                       \
    static inline void write_dr##n(uint32_t v)                              \
    {                                                                       \
        __asm__ volatile("movl %0, %%dr" #n : : "r"(v) : "memory");         \
    }
DEFINE_DR(0)
DEFINE_DR(6)
DEFINE_DR(7)
#undef DEFINE_DR

static inline void clts(void) { __asm__ volatile("clts" : : : "memory"); }

static inline void invlpg(uint32_t va)
{
    __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* Segment selector reads (zero-extended). */
#define READ_SEG(seg)                                                       \
    ({ uint32_t _v; __asm__ volatile("movl %%" #seg ", %0" : "=r"(_v)); _v & 0xffff; })
#define LOAD_SEG(seg, sel)                                                  \
    __asm__ volatile("movw %w0, %%" #seg : : "r"((uint32_t)(sel)) : "memory")

/* Descriptor-table register images, as stored by sgdt/sidt. */
struct dtr {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed));

static inline void lgdt(const struct dtr *d) { __asm__ volatile("lgdt %0" : : "m"(*d) : "memory"); }
static inline void sgdt(struct dtr *d) { __asm__ volatile("sgdt %0" : "=m"(*d)); }
static inline void lidt(const struct dtr *d) { __asm__ volatile("lidt %0" : : "m"(*d) : "memory"); }
static inline void sidt(struct dtr *d) { __asm__ volatile("sidt %0" : "=m"(*d)); }
static inline void ltr(uint16_t sel) { __asm__ volatile("ltr %0" : : "r"(sel) : "memory"); }
static inline uint16_t str(void)
{
    uint16_t v;
    __asm__ volatile("str %0" : "=m"(v));
    return v;
}
/* Only ever with selector 0 (no LDTs in these guests). */
static inline void lldt(uint16_t sel) { __asm__ volatile("lldt %0" : : "r"(sel) : "memory"); }
static inline uint16_t sldt(void)
{
    uint16_t v;
    __asm__ volatile("sldt %0" : "=m"(v));
    return v;
}

/* ------------------------------------------------------------------------
 * Output (COM1, polled) and exit.
 * ------------------------------------------------------------------------ */
#define COM1 0x3f8

void serial_init(void);
void serial_putc(char c);
void print(const char *s);
int printf(const char *fmt, ...) PRINTF(1, 2);
int vprintf(const char *fmt, va_list ap);
/* Format into a buffer (ring-3 safe: no I/O).  Always NUL-terminates. */
int snprintf(char *buf, size_t size, const char *fmt, ...) PRINTF(3, 4);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* Exit QEMU with status (code << 1) | 1 via isa-debug-exit at 0xf4. */
NORETURN void exit(int code);

/* Exit code used when a trap arrives that nobody expected. */
#define EXIT_UNEXPECTED_TRAP 0x55

/* Test bookkeeping: pass() prints "PASS name", fail() prints
 * "FAIL name: ..." and counts.  check_eq() does either. */
extern int failures;
void pass(const char *name);
void fail(const char *name, const char *fmt, ...) PRINTF(2, 3);
int check_eq(const char *name, uint32_t got, uint32_t want);
int check_true(const char *name, int cond, const char *what);

/* Minimal string/memory routines (gcc may emit calls to the mem* ones). */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

/* Called by entry.S before main: COM1 and the 8259 PICs (all IRQs masked). */
void lib_init(void);
void pic_init(void);

/* ------------------------------------------------------------------------
 * GDT, TSS, IDT.
 * ------------------------------------------------------------------------ */
#define SEG_KCODE  0x08
#define SEG_KDATA  0x10
#define SEG_UCODE  0x1b         /* index 3, RPL 3 */
#define SEG_UDATA  0x23         /* index 4, RPL 3 */
#define SEG_TSS    0x28
#define GDT_FIRST_SPARE 6       /* indices 6 .. GDT_ENTRIES-1 are free for guests */
#define GDT_ENTRIES 16          /* GDTR limit is GDT_ENTRIES*8-1 = 0x7f */
#define SEL(index, rpl) ((uint16_t)(((index) << 3) | (rpl)))

/* Access bytes (P, DPL, S, type). */
#define ACC_P        0x80
#define ACC_DPL(n)   ((n) << 5)
#define ACC_S        0x10       /* code/data (not system) */
#define ACC_CODE_R   0x0a       /* execute/read */
#define ACC_CODE_RC  0x0e       /* execute/read, conforming */
#define ACC_DATA_W   0x02       /* read/write */
#define ACC_DATA_R   0x00       /* read-only */
#define ACC_ACCESSED 0x01
#define ACC_TSS32    0x09       /* available 32-bit TSS */
#define ACC_TSS32_BUSY 0x0b
#define ACC_KCODE    (ACC_P | ACC_DPL(0) | ACC_S | ACC_CODE_R)     /* 0x9a */
#define ACC_KDATA    (ACC_P | ACC_DPL(0) | ACC_S | ACC_DATA_W)     /* 0x92 */
#define ACC_UCODE    (ACC_P | ACC_DPL(3) | ACC_S | ACC_CODE_R)     /* 0xfa */
#define ACC_UDATA    (ACC_P | ACC_DPL(3) | ACC_S | ACC_DATA_W)     /* 0xf2 */
/* Flags nibble (G, D/B, L, AVL). */
#define FLG_G   0x8
#define FLG_D   0x4
#define FLG_32  (FLG_G | FLG_D)  /* 4 KiB granular, 32-bit */
#define FLG_16  0x0              /* byte granular, 16-bit */

struct tss {
    uint32_t link;
    uint32_t esp0, ss0, esp1, ss1, esp2, ss2;
    uint32_t cr3, eip, eflags;
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t es, cs, ss, ds, fs, gs, ldt;
    uint16_t trap, iomap_base;
} __attribute__((packed));

extern uint64_t gdt[GDT_ENTRIES];
extern uint64_t idt[256];
extern struct tss tss;
#define KSTACK_SIZE 16384
#define USTACK_SIZE 16384
extern uint8_t kstack[KSTACK_SIZE], kstack_top[];  /* TSS esp0: traps from ring 3 / v86 */
extern uint8_t ustack[USTACK_SIZE], ustack_top[];  /* ring-3 stack used by run_user() */

uint64_t make_desc(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags);
void gdt_set(int index, uint32_t base, uint32_t limit, uint8_t access, uint8_t flags);
uint32_t desc_base(uint64_t d);
/* lgdt our table, far-jump to reload CS=0x08, DS/ES/FS/GS/SS=0x10. */
void gdt_load(void);
void reload_segments(void);     /* CS=0x08 by far jump, data segments 0x10 */

/* Gate types. */
#define GATE_INTR32 0xe
#define GATE_TRAP32 0xf
void idt_set_gate(int vec, uint32_t handler, uint16_t sel, int type, int dpl);
void idt_set_dpl(int vec, int dpl);
void idt_set_type(int vec, int type);
void idt_set_present(int vec, int present);
uint32_t idt_stub(int vec);     /* address of the library stub for vec */
void idt_load(void);

/* Builds the GDT, TSS (esp0 = kstack_top, no I/O bitmap) and IDT (all 256
 * vectors to the library stubs, interrupt gates, DPL 0 except 0x80 which is
 * DPL 3), loads them (lgdt, segment reload, lldt 0, ltr 0x28, lidt). */
void cpu_init(void);

/* ------------------------------------------------------------------------
 * Traps.
 * ------------------------------------------------------------------------ */
struct trapframe {
    /* pushal */
    uint32_t edi, esi, ebp, esp_pusha, ebx, edx, ecx, eax;
    /* pushed by the common stub; low 16 bits significant (normalized) */
    uint32_t gs, fs, es, ds;
    uint32_t vector;
    uint32_t err;               /* 0 when the CPU pushes none */
    /* pushed by the CPU */
    uint32_t eip, cs, eflags;
    /* only when coming from ring 3 or v86 */
    uint32_t esp, ss;
    /* only when coming from v86 */
    uint32_t v86_es, v86_ds, v86_fs, v86_gs;
};

static inline int tf_from_user(const struct trapframe *f)
{
    return (f->cs & 3) != 0 || (f->eflags & EFL_VM) != 0;
}

typedef void (*trap_handler_t)(struct trapframe *f);
void set_trap_handler(int vec, trap_handler_t h);
void trap_dispatch(struct trapframe *f);   /* called by the stubs */
void print_trapframe(const char *what, const struct trapframe *f);

/* ------------------------------------------------------------------------
 * Expect-a-fault facility.
 *
 * Usage (ring 0 or ring 3, in one asm statement):
 *     asm volatile(FAULT_ARM "1: ud2\n2:" ::: "memory");
 *     check_fault("ud_ring0", 6, 0, fault_site, 0);
 * FAULT_ARM records label 1 (the instruction expected to fault) in
 * fault_site and label 2 (where to resume) in fault_resume, and arms.  When an
 * exception (vector < 32) arrives while armed, the library records it in
 * last_fault, disarms, and resumes at fault_resume in the ring that faulted.
 * Set fault_resume = FAULT_RESUME_KERNEL to end the current ring-3/v86
 * excursion instead (enter_user/run_user/enter_v86 return USER_FAULTED).
 * ------------------------------------------------------------------------ */
#define FAULT_ARM                                                           \
    "movl $1f, fault_site\n\t"                                              \
    "movl $2f, fault_resume\n\t"                                            \
    "movl $1, fault_armed\n\t"
#define FAULT_RESUME_KERNEL 1u
#define USER_FAULTED 0xfa017edu

struct fault_record {
    uint32_t vector, err, eip, cs, eflags, cr2, esp, ss;
    uint32_t count;             /* faults recorded so far */
};
extern volatile struct fault_record last_fault;
extern volatile uint32_t fault_armed, fault_site, fault_resume;

void fault_arm(uint32_t resume);   /* C-side arming (site unknown) */
void fault_disarm(void);
/* Prints "name: vector=V err=0xEEEE eip=0xIIIIIIII[ cr2=0xCCCCCCCC]" (cr2
 * for #PF only) and PASS/FAIL against the expected values.  Returns 1 if all
 * matched.  If no fault happened prints "name: no fault" and FAILs. */
int check_fault(const char *name, uint32_t vec, uint32_t err, uint32_t eip, uint32_t cr2);
void print_fault(const char *name);

/* Exception vectors. */
#define VEC_DE 0
#define VEC_DB 1
#define VEC_BP 3
#define VEC_OF 4
#define VEC_UD 6
#define VEC_NM 7
#define VEC_DF 8
#define VEC_TS 10
#define VEC_NP 11
#define VEC_SS 12
#define VEC_GP 13
#define VEC_PF 14
#define VEC_SYSCALL 0x80

/* ------------------------------------------------------------------------
 * Ring 3 and v86.
 *
 * enter_user irets to ring 3 at eip/esp with DS=ES=FS=GS=SS=0x23, CS=0x1b,
 * EFLAGS = (eflags | 2) (so IF, IOPL, TF, AC... per argument), all general
 * registers zero.  It returns when ring 3 makes SYS_EXIT (value = EBX), or a
 * trap handler calls user_return(), or an armed fault has
 * fault_resume == FAULT_RESUME_KERNEL (value USER_FAULTED).
 * run_user calls fn(arg) in ring 3 on the default user stack; fn's return
 * value comes back (a trampoline makes the SYS_EXIT call).
 * ------------------------------------------------------------------------ */
uint32_t enter_user(uint32_t eip, uint32_t esp, uint32_t eflags);
uint32_t run_user(uint32_t (*fn)(uint32_t), uint32_t arg, uint32_t eflags);

struct v86_regs {
    uint16_t cs, ip, ss, sp, ds, es, fs, gs;
    uint32_t eflags;            /* EFL_VM is added */
};
uint32_t enter_v86(const struct v86_regs *r);

/* End the current ring-3/v86 excursion from a trap handler: the matching
 * enter_user/run_user/enter_v86 returns `value`.  The frame is copied to
 * user_exit_frame. */
NORETURN void user_return(struct trapframe *f, uint32_t value);
extern struct trapframe user_exit_frame;
extern volatile int in_user;     /* 1 while an excursion is active */

/* Low-level context switch (setjmp-like), used by enter_user. */
struct kctx {
    uint32_t ebx, esi, edi, ebp, esp, eip, eflags;
};
int ctx_save(struct kctx *c) __attribute__((returns_twice));
NORETURN void ctx_restore(struct kctx *c, int value);

/* System calls: int $0x80, number in EAX, arguments EBX, ECX, EDX, result
 * in EAX.  Numbers below 16 are the library's; others go to syscall_hook. */
#define SYS_EXIT   0            /* return to kernel, value EBX */
#define SYS_PUTC   1            /* EBX = char */
#define SYS_WRITE  2            /* EBX = buffer, ECX = length */
#define SYS_PUTS   3            /* EBX = NUL-terminated string */
#define SYS_PUTHEX 4            /* EBX = value, printed as 0x%08x */
/* Return 1 if handled (set f->eax), 0 for "unknown syscall". */
extern int (*syscall_hook)(struct trapframe *f);

static inline uint32_t syscall3(uint32_t n, uint32_t a, uint32_t b, uint32_t c)
{
    uint32_t r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
static inline uint32_t syscall1(uint32_t n, uint32_t a)
{
    return syscall3(n, a, 0, 0);
}
static inline void sys_putc(char c) { syscall1(SYS_PUTC, (uint8_t)c); }
static inline void sys_puts(const char *s) { syscall1(SYS_PUTS, (uint32_t)s); }
static inline NORETURN void sys_exit(uint32_t v)
{
    syscall1(SYS_EXIT, v);
    __builtin_unreachable();
}
/* printf for ring 3: formats into a buffer, writes it with SYS_WRITE. */
int uprintf(const char *fmt, ...) PRINTF(1, 2);

/* ------------------------------------------------------------------------
 * Paging (4 KiB pages only; page tables come from a static pool).
 * ------------------------------------------------------------------------ */
#define PG_P   0x001
#define PG_W   0x002
#define PG_U   0x004
#define PG_PWT 0x008
#define PG_PCD 0x010
#define PG_A   0x020
#define PG_D   0x040
#define PG_SIZE 4096u
#define PG_FRAME(x) ((uint32_t)(x) & ~0xfffu)

uint32_t *pg_alloc(void);                       /* a zeroed 4 KiB page */
uint32_t *pg_new_dir(void);
/* Map va -> pa with PTE flags (PG_P added); creates the page table with PDE
 * flags P|W|U if needed. */
void pg_map(uint32_t *pd, uint32_t va, uint32_t pa, uint32_t flags);
void pg_map_range(uint32_t *pd, uint32_t va, uint32_t pa, uint32_t bytes, uint32_t flags);
void pg_identity(uint32_t *pd, uint32_t bytes, uint32_t flags);
void pg_unmap(uint32_t *pd, uint32_t va);       /* PTE = 0 and invlpg */
uint32_t *pg_pde(uint32_t *pd, uint32_t va);
uint32_t *pg_pte(uint32_t *pd, uint32_t va);    /* 0 if no page table */
void paging_enable(uint32_t *pd, int wp);       /* CR3 = pd, CR0.PG (| WP) */
void paging_disable(void);

/* One dword read or written at va where a fault is expected (armed with
 * FAULT_ARM; fault_site names the access).  The user forms are for
 * run_user(). */
void probe_read(uint32_t va);
void probe_write(uint32_t va);
uint32_t probe_user_read(uint32_t va);
uint32_t probe_user_write(uint32_t va);

/* The first word after the file name on the Multiboot command line. */
void guest_arg(uint32_t magic, const struct multiboot_info *mbi, char *buf, size_t size);

#endif /* GUEST_H */
