/*
 * x86.h -- hardware facts: bit names, descriptor layouts, vectors, and
 * wrappers for the privileged instructions the monitor itself executes.
 *
 * Nothing here knows about the monitor; every name is the SDM's.  The
 * parts that are not C are usable from boot.S.
 *
 * Hardware:   SDM Vol. 3A §2.5 (Control Registers), §3.4.5 (Segment
 *             Descriptors), §4.3 (32-bit Paging), §6.12 (Exception and
 *             Interrupt Handling), Task-State Segment (TSS) in the Task
 *             Management chapter.
 * Runs in:    VMM and boot.S.
 */
#ifndef X86_H
#define X86_H

/* EFLAGS: SDM Vol. 1 §3.4.3 (EFLAGS Register). */
#define EFLAGS_CF   0x00000001
#define EFLAGS_FIXED 0x00000002   /* bit 1 always reads 1 */
#define EFLAGS_PF   0x00000004
#define EFLAGS_AF   0x00000010
#define EFLAGS_ZF   0x00000040
#define EFLAGS_SF   0x00000080
#define EFLAGS_TF   0x00000100
#define EFLAGS_IF   0x00000200
#define EFLAGS_DF   0x00000400
#define EFLAGS_OF   0x00000800
#define EFLAGS_IOPL 0x00003000
#define EFLAGS_IOPL_SHIFT 12
#define EFLAGS_NT   0x00004000
#define EFLAGS_RF   0x00010000
#define EFLAGS_VM   0x00020000
#define EFLAGS_AC   0x00040000
#define EFLAGS_VIF  0x00080000
#define EFLAGS_VIP  0x00100000
#define EFLAGS_ID   0x00200000
/* The status flags: the ones ordinary instructions compute. */
#define EFLAGS_STATUS (EFLAGS_CF | EFLAGS_PF | EFLAGS_AF | EFLAGS_ZF | EFLAGS_SF | EFLAGS_OF)

/* CR0 and CR4: SDM Vol. 3A §2.5 (Control Registers). */
#define CR0_PE 0x00000001
#define CR0_MP 0x00000002
#define CR0_EM 0x00000004
#define CR0_TS 0x00000008
#define CR0_ET 0x00000010
#define CR0_NE 0x00000020
#define CR0_WP 0x00010000
#define CR0_AM 0x00040000
#define CR0_NW 0x20000000
#define CR0_CD 0x40000000
#define CR0_PG 0x80000000

#define CR4_VME 0x0001
#define CR4_PVI 0x0002
#define CR4_TSD 0x0004
#define CR4_DE  0x0008
#define CR4_PSE 0x0010
#define CR4_PAE 0x0020
#define CR4_MCE 0x0040
#define CR4_PGE 0x0080
#define CR4_PCE 0x0100
#define CR4_OSFXSR 0x0200
#define CR4_OSXMMEXCPT 0x0400
#define CR4_UMIP 0x0800      /* SGDT, SIDT, SLDT, SMSW, STR fault at CPL > 0 */

/* Page-table entries: SDM Vol. 3A §4.3 (32-Bit Paging), Table 4-6. */
#define PTE_P   0x001
#define PTE_W   0x002
#define PTE_U   0x004
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_A   0x020
#define PTE_D   0x040
#define PTE_PS  0x080
#define PTE_G   0x100
#define PTE_FRAME 0xfffff000
#define PGSIZE  4096
#define PGSHIFT 12
#define PDXSHIFT 22

/* Page-fault error code: SDM Vol. 3A §4.7 (Page-Fault Exceptions). */
#define PFE_P 0x1   /* 0: not present; 1: protection violation */
#define PFE_W 0x2   /* the access was a write */
#define PFE_U 0x4   /* the access was made at CPL 3 */
#define PFE_RSVD 0x8 /* a reserved bit was set in an entry (always with P) */

/* Exception vectors: SDM Vol. 3A §6.3.1 (External Interrupts... Table 6-1, Protected-Mode Exceptions and Interrupts). */
#define T_DE   0
#define T_DB   1
#define T_NMI  2
#define T_BP   3
#define T_OF   4
#define T_BR   5
#define T_UD   6
#define T_NM   7
#define T_DF   8
#define T_TS   10
#define T_NP   11
#define T_SS   12
#define T_GP   13
#define T_PF   14
#define T_MF   16
#define T_AC   17
#define T_MC   18
#define T_XM   19

/* The exceptions that push an error code (SDM Vol. 3A Table 6-1):
 * 8, 10-14 and 17.  This one list drives both the stubs in boot.S and
 * the delivery code in emulate.c. */
#define T_HAS_ERRCODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17)

/* Vectors the monitor uses for itself. */
#define T_IRQ0     0x20     /* host PIC remapped here (dev.c) */
#define T_CALLOUT  0x40     /* translated code calls the monitor (bt.c) */
#define T_ENTRYFAIL 0x100   /* pseudo-vector: the world switch into the guest faulted */
#define T_TRACED    0x101   /* pseudo-vector: a traced write was carried out */
#define T_RELOC     0x102   /* pseudo-vector: an access to the monitor's region, to relocate */
#define T_EMULATE   0x103   /* pseudo-vector: emulate the instruction at the guest's EIP */
#define T_DECIDE    0x104   /* pseudo-vector: nothing to do; decide again (direct.c) */

/* Error-code bits for selector faults: SDM Vol. 3A §6.13 (Error Code). */
#define ERR_EXT 0x1
#define ERR_IDT 0x2
#define ERR_TI  0x4

/* Segment descriptor fields: SDM Vol. 3A §3.4.5, Figure 3-8.  We keep a
 * descriptor unpacked as base, byte-granular limit and "attr": bits 8-15
 * of the high dword (type, S, DPL, P) in attr[7:0] and bits 20-23 (AVL, L,
 * D/B, G) in attr[11:8]. */
#define SEG_TYPE(a)   ((a) & 0xf)
#define SEG_S         0x010     /* 1 = code/data, 0 = system */
#define SEG_DPL(a)    (((a) >> 5) & 3)
#define SEG_P         0x080
#define SEG_AVL       0x100
#define SEG_DB        0x400     /* D (code) or B (stack): 32-bit */
#define SEG_G         0x800     /* limit in 4 KiB units */

/* Code/data type bits (S = 1): SDM Vol. 3A Table 3-1. */
#define STA_A   0x1     /* accessed */
#define STA_W   0x2     /* data: writable */
#define STA_R   0x2     /* code: readable */
#define STA_E   0x4     /* data: expand-down */
#define STA_C   0x4     /* code: conforming */
#define STA_X   0x8     /* code */

/* System descriptor types (S = 0): SDM Vol. 3A Table 3-2. */
#define STS_T16A 0x1    /* 16-bit TSS, available */
#define STS_LDT  0x2
#define STS_T16B 0x3
#define STS_CG16 0x4
#define STS_TG   0x5    /* task gate */
#define STS_IG16 0x6
#define STS_TRG16 0x7
#define STS_T32A 0x9
#define STS_T32B 0xb
#define STS_CG32 0xc
#define STS_IG32 0xe
#define STS_TRG32 0xf

/* The monitor's place in every address space (docs/00-overview.md). */
#define VMM_BASE   0xffc00000   /* top 4 MiB of the linear space */
#define VMM_PHYS   0x00400000   /* where boot.S is loaded and mapped from */
#define VMM_SIZE   0x00400000

/* The monitor's GDT: the shadow descriptors occupy the low indices
 * (one-to-one with the guest's), the monitor's own descriptors the last
 * sixteen.  Indices: */
#define NGDT          8192
#define GDT_VMM_FIRST 8176
#define GDT_VMM_CS    8176      /* ring 0 code, flat */
#define GDT_VMM_DS    8177      /* ring 0 data, flat */
#define GDT_VMM_TSS   8178      /* the monitor's TSS */
#define GDT_BT_CS32   8179      /* translated code's CS, 32-bit: the translation cache */
#define GDT_BT_CS16   8180      /* translated code's CS, 16-bit: the 16-bit translation cache */
#define GDT_BT_GS     8181      /* translated code's %gs: its scratch page (bt.c, tcdata) */
#define GDT_CACHED    8182      /* 8182..8187: cached descriptors ES..GS */
#define GDT_PROBE     8188      /* the boot-time limit self-test (vmm.c) */
#define GDT_SHADOW_LDT 8189     /* the shadow LDT (shadow.c) */

#define SEL(idx, rpl) (((idx) << 3) | (rpl))
#define KCS  SEL(GDT_VMM_CS, 0)
#define KDS  SEL(GDT_VMM_DS, 0)
#define KTSS SEL(GDT_VMM_TSS, 0)

#ifndef __ASSEMBLER__

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;

/* A segment descriptor as the CPU reads it: two dwords. */
struct desc {
    u32 lo, hi;
};

/* Pack/unpack a code or data descriptor (SDM Vol. 3A Figure 3-8). */
static inline u32 desc_base(struct desc d)
{
    return (d.lo >> 16) | ((d.hi & 0xff) << 16) | (d.hi & 0xff000000);
}
static inline u32 desc_limit(struct desc d)
{
    u32 l = (d.lo & 0xffff) | (d.hi & 0x000f0000);
    if (d.hi & (1u << 23))      /* G: 4 KiB granularity */
        l = (l << 12) | 0xfff;
    return l;
}
static inline u32 desc_attr(struct desc d)
{
    return ((d.hi >> 8) & 0xff) | ((d.hi >> 12) & 0xf00);
}
static inline struct desc desc_make(u32 base, u32 limit, u32 attr)
{
    struct desc d;
    if (limit > 0xfffff) {      /* needs 4 KiB granularity */
        limit >>= 12;
        attr |= SEG_G;
    } else {
        attr &= ~SEG_G;
    }
    d.lo = (limit & 0xffff) | (base << 16);
    d.hi = ((base >> 16) & 0xff) | ((attr & 0xff) << 8) | (limit & 0xf0000)
         | ((attr & 0xf00) << 12) | (base & 0xff000000);
    return d;
}

/* A gate descriptor (SDM Vol. 3A Figure 6-2). */
static inline u32 gate_offset(struct desc d) { return (d.lo & 0xffff) | (d.hi & 0xffff0000); }
static inline u32 gate_sel(struct desc d) { return d.lo >> 16; }
static inline u32 gate_type(struct desc d) { return (d.hi >> 8) & 0x1f; } /* type + S */
static inline u32 gate_dpl(struct desc d) { return (d.hi >> 13) & 3; }
static inline u32 gate_present(struct desc d) { return (d.hi >> 15) & 1; }

/* The 32-bit TSS (SDM Vol. 3A Figure 7-2): only the fields we use. */
struct tss {
    u32 link, esp0, ss0, esp1, ss1, esp2, ss2;
    u32 cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
    u32 es, cs, ss, ds, fs, gs, ldt;
    u16 trap, iomap;
};

/* Pseudo-descriptor for LGDT/LIDT. */
struct __attribute__((packed)) pseudo_desc {
    u16 limit;
    u32 base;
};

/* Wrappers for the instructions the monitor itself executes. */
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1,%0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1,%0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1,%0" : "=a"(v) : "Nd"(port)); return v; }
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0,%1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0,%1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0,%1" : : "a"(v), "Nd"(port)); }
static inline u32 rcr0(void) { u32 v; __asm__ volatile("mov %%cr0,%0" : "=r"(v)); return v; }
static inline void lcr0(u32 v) { __asm__ volatile("mov %0,%%cr0" : : "r"(v) : "memory"); }
static inline u32 rcr2(void) { u32 v; __asm__ volatile("mov %%cr2,%0" : "=r"(v)); return v; }
static inline u32 rcr3(void) { u32 v; __asm__ volatile("mov %%cr3,%0" : "=r"(v)); return v; }
static inline void lcr3(u32 v) { __asm__ volatile("mov %0,%%cr3" : : "r"(v) : "memory"); }
static inline u32 rcr4(void) { u32 v; __asm__ volatile("mov %%cr4,%0" : "=r"(v)); return v; }
static inline void lcr4(u32 v) { __asm__ volatile("mov %0,%%cr4" : : "r"(v) : "memory"); }
static inline u32 rdr6(void) { u32 v; __asm__ volatile("mov %%dr6,%0" : "=r"(v)); return v; }
static inline void ldr6(u32 v) { __asm__ volatile("mov %0,%%dr6" : : "r"(v)); }
static inline void invlpg(u32 va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }
static inline void lgdt(void *p) { __asm__ volatile("lgdt (%0)" : : "r"(p) : "memory"); }
static inline void lidt(void *p) { __asm__ volatile("lidt (%0)" : : "r"(p) : "memory"); }
static inline void ltr(u16 sel) { __asm__ volatile("ltr %0" : : "r"(sel)); }
static inline u64 rdtsc(void) { u64 v; __asm__ volatile("rdtsc" : "=A"(v)); return v; }
static inline void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}
/* With a subleaf in ECX (leaves 4, 7, 0xb, 0xd enumerate by it). */
static inline void cpuid2(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline void hlt(void) { __asm__ volatile("hlt"); }
static inline void cli(void) { __asm__ volatile("cli"); }

#endif /* __ASSEMBLER__ */
#endif /* X86_H */
