/*
 * segtrans -- the segment-tracking transitions decide_seg leaves out:
 * how a segment register becomes non-reversible other than by a GDT
 * write, and how it becomes reversible again.
 *
 * Tests:   (1) LGDT to another table while DS is loaded: the new table's
 *          entry for DS's selector has another base; DS keeps reading the
 *          old base until it is reloaded.  At ring 0, and at ring 3, where
 *          a DPL-3 gate's handler does the LGDT (and touches no data
 *          segment register on the way back).
 *          (2) An LDT entry rewritten while FS is loaded from it, at
 *          ring 0 and ring 3.
 *          (3) LLDT of another LDT while FS is loaded from the first, at
 *          ring 0 and ring 3.
 *          (4) Protected -> real mode: DS loaded in 16-bit protected mode
 *          with a base of 0x20000 keeps it in real mode until reloaded
 *          (then 0x0900 * 16); FS loaded with the flat 4 GiB data segment
 *          keeps base 0 and its 4 GiB limit through the switch and a
 *          real-mode reload ("unreal mode"), so 32-bit offsets reach past
 *          1 MiB.
 *          In real mode also INT $0x80 and a divide error through the
 *          real-mode IVT, the #DE handler stepping over the DIV.
 *          (5) Real -> protected mode: GS loaded in real mode (0x2000, base
 *          0x20000) keeps that base after CR0.PE is set, in the 16-bit
 *          code before the far jump and in 32-bit code after it, until
 *          GS is reloaded from the GDT.
 * Exercises: segment tracking (docs/04-segments.md): each transition
 *          makes a register non-reversible; translated code then runs on
 *          its cached descriptor, the decision refuses direct execution
 *          at ring 3 ("non-reversible segment") until the reload, and
 *          real mode is always translated ("CR0.PE=0").
 * Monitor exits expected: callouts for LGDT, LLDT, the segment loads,
 *          MOV to CR0 and the far jumps; traced writes to the LDT; the
 *          int $0x81-$0x84 from ring 3 (#GP in direct execution).
 */
#include "guest.h"

#define X_IDX     6             /* DS's entry: base buf_a in gdt, buf_b in gdt_b */
#define LDT1_IDX  7             /* descriptor of ldt1 */
#define LDT2_IDX  8             /* descriptor of ldt2 */
#define CODE16    9             /* 16-bit code, base 0 */
#define DATA16_2  10            /* 16-bit data, base 0x20000 */
#define X_SEL     SEL(X_IDX, 3)
#define LDT_FS    ((1 << 3) | 4 | 3)    /* LDT entry 1, RPL 3 */

#define BLOB_ADDR 0x8000u
#define DATA_ADDR 0x9000u
#define HIGH_ADDR 0x20000u

extern uint64_t gdt[];
static uint64_t gdt_b[GDT_ENTRIES] ALIGNED(8);
static uint64_t ldt1[2] ALIGNED(8), ldt2[2] ALIGNED(8);
static uint32_t buf_a[4] = { 0xaaaa0000, 0xaaaa0001, 0xaaaa0002, 0xaaaa0003 };
static uint32_t buf_b[4] = { 0xbbbb0000, 0xbbbb0001, 0xbbbb0002, 0xbbbb0003 };
static uint32_t buf_c[4] = { 0xcccc0000, 0xcccc0001, 0xcccc0002, 0xcccc0003 };

struct dtr gdtr_a, gdtr_b;
uint32_t ldt_new_lo, ldt_new_hi;

/* DPL-3 gates' handlers: SS-relative only, so no data segment register
 * is touched between the user's read before and after. */
extern char h_lgdt_b[], h_lgdt_a[], h_ldt_write[], h_lldt2[];
__asm__(".text\n"
        "h_lgdt_b:\n\tlgdt %ss:gdtr_b\n\tiret\n"
        "h_lgdt_a:\n\tlgdt %ss:gdtr_a\n\tiret\n"
        "h_ldt_write:\n\t"
        "pushl %eax\n\t"
        "movl %ss:ldt_new_lo, %eax\n\tmovl %eax, %ss:ldt1+8\n\t"
        "movl %ss:ldt_new_hi, %eax\n\tmovl %eax, %ss:ldt1+12\n\t"
        "popl %eax\n\tiret\n"
        "h_lldt2:\n\t"
        "pushl %eax\n\tmovw $0x40, %ax\n\tlldt %ax\n\tpopl %eax\n\tiret\n");

/* Read seg:0 before, after `int $vec`, and after reloading the register;
 * restore it.  `cmd` is the gate vector (ring 3) or a callback (ring 0). */
static volatile uint32_t r_before, r_after, r_reload;

#define TRANSITION(SR, VEC)                                                   \
    static uint32_t user_##SR##_##VEC(uint32_t sel)                           \
    {                                                                         \
        uint32_t a, b, c;                                                     \
        __asm__ volatile("movl %%" #SR ", %%edx\n\t"                          \
                         "movw %w3, %%" #SR "\n\t"                            \
                         "movl %%" #SR ":0, %0\n\t"                           \
                         "int $" #VEC "\n\t"                                  \
                         "movl %%" #SR ":0, %1\n\t"                           \
                         "movw %%" #SR ", %%cx\n\t"                           \
                         "movw %%cx, %%" #SR "\n\t"                           \
                         "movl %%" #SR ":0, %2\n\t"                           \
                         "movl %%edx, %%" #SR                                 \
                         : "=&r"(a), "=&r"(b), "=&r"(c) : "r"(sel) : "ecx", "edx", "memory"); \
        r_before = a, r_after = b, r_reload = c;                              \
        return 0;                                                             \
    }
TRANSITION(ds, 0x81)
TRANSITION(fs, 0x83)
TRANSITION(fs, 0x84)

static void report(const char *name, uint32_t want_old, uint32_t want_new)
{
    printf("%s: before=%08x after=%08x after-reload=%08x\n", name, r_before, r_after, r_reload);
    char n[64];
    snprintf(n, sizeof n, "%s_kept_old", name);
    check_eq(n, r_before == want_old && r_after == want_old, 1);
    snprintf(n, sizeof n, "%s_reload_new", name);
    check_eq(n, r_reload, want_new);
}

/* The same at ring 0, with the change made in between by `change`. */
static void kernel_transition(int fs, uint16_t sel, void (*change)(void))
{
    uint32_t save;
    if (fs) {
        __asm__ volatile("movl %%fs, %0\n\tmovw %w1, %%fs" : "=&r"(save) : "r"(sel));
        __asm__ volatile("movl %%fs:0, %0" : "=r"(r_before));
        change();
        __asm__ volatile("movl %%fs:0, %0" : "=r"(r_after));
        __asm__ volatile("movw %%fs, %%ax\n\tmovw %%ax, %%fs\n\tmovl %%fs:0, %0\n\tmovl %1, %%fs"
                         : "=&r"(r_reload) : "r"(save) : "eax");
    } else {
        __asm__ volatile("movl %%es, %0\n\tmovw %w1, %%es" : "=&r"(save) : "r"(sel));
        __asm__ volatile("movl %%es:0, %0" : "=r"(r_before));
        change();
        __asm__ volatile("movl %%es:0, %0" : "=r"(r_after));
        __asm__ volatile("movw %%es, %%ax\n\tmovw %%ax, %%es\n\tmovl %%es:0, %0\n\tmovl %1, %%es"
                         : "=&r"(r_reload) : "r"(save) : "eax");
    }
}
static void k_lgdt_b(void) { lgdt(&gdtr_b); }
static void k_ldt_write(void)
{
    ldt1[1] = (uint64_t)ldt_new_hi << 32 | ldt_new_lo;
}
static void k_lldt2(void) { lldt(SEL(LDT2_IDX, 0)); }

static void ldt_setup(void)
{
    ldt1[1] = make_desc((uint32_t)buf_a, 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_D);
    ldt2[1] = make_desc((uint32_t)buf_c, 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_D);
    uint64_t n = make_desc((uint32_t)buf_b, 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_D);
    ldt_new_lo = (uint32_t)n;
    ldt_new_hi = (uint32_t)(n >> 32);
    lldt(SEL(LDT1_IDX, 0));
}

/* ---- Real mode, at BLOB_ADDR. ---- */

uint32_t rm_saved_esp;
struct dtr rm_saved_idtr, rm_ivt = { 0x3ff, 0 };
extern char tr_blob[], tr_blob_end[];
uint32_t tr_run(void);

__asm__(".text\n"
        ".globl tr_run\n"
        "tr_run:\n\t"
        "pushl %ebx\n\tpushl %esi\n\tpushl %edi\n\tpushl %ebp\n\t"
        "pushfl\n\tcli\n\t"
        "movl %esp, rm_saved_esp\n\t"
        "sidt rm_saved_idtr\n\t"
        "lidt rm_ivt\n\t"
        "ljmp $0x48, $0x8000\n"         /* CODE16 : BLOB_ADDR */
        ".globl tr_back32\n"
        "tr_back32:\n\t"
        /* 32-bit protected mode; GS still holds its real-mode base. */
        "movl %gs:12, %eax\n\t"
        "movw $0x10, %cx\n\tmovw %cx, %ds\n\tmovw %cx, %es\n\tmovw %cx, %ss\n\t"
        "movl %eax, 0x9000+0x20\n\t"    /* after the far jump */
        "movw %cx, %gs\n\t"
        "movl %gs:0x20010, %eax\n\t"           /* base 0 now */
        "movl %eax, 0x9000+0x24\n\t"    /* after reloading GS from the GDT */
        "movw %cx, %fs\n\t"
        "movl rm_saved_esp, %esp\n\t"
        "lidt rm_saved_idtr\n\t"
        "popfl\n\tpopl %ebp\n\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\t"
        "ret\n");

__asm__(".section .rodata.trblob, \"a\"\n"
        ".code16\n"
        ".globl tr_blob, tr_blob_end\n"
        "tr_blob:\n\t"
        /* 16-bit protected mode: DS with base 0x20000, FS flat 4 GiB. */
        "movw $0x50, %ax\n\tmovw %ax, %ds\n\t"
        "movw $0x10, %ax\n\tmovw %ax, %fs\n\t"
        "movl %cr0, %eax\n\tandl $0xfffffffe, %eax\n\tmovl %eax, %cr0\n\t"
        "ljmp $0x0800, $(tr_real - tr_blob)\n"
        "tr_real:\n\t"
        "movw $0x0900, %ax\n\tmovw %ax, %es\n\t"   /* ES: results at 0x9000 */
        "movw $0x0700, %ax\n\tmovw %ax, %ss\n\tmovw $0x1000, %sp\n\t"
        "movl 0, %eax\n\t"                          /* DS still based at 0x20000 */
        "movl %eax, %es:0x00\n\t"
        "movw $0x0900, %ax\n\tmovw %ax, %ds\n\t"
        "movl 0x10, %eax\n\t"                       /* now 0x9010 */
        "movl %eax, %es:0x04\n\t"
        "movl $0x20004, %esi\n\t"
        "addr32 movl %fs:(%esi), %eax\n\t"          /* FS base 0, 4 GiB */
        "movl %eax, %es:0x08\n\t"
        "xorw %ax, %ax\n\tmovw %ax, %fs\n\t"        /* real-mode reload: limit kept */
        "movl $0x20008, %esi\n\t"
        "addr32 movl %fs:(%esi), %eax\n\t"
        "movl %eax, %es:0x0c\n\t"
        /* INT n and an exception through the real-mode IVT (at 0). */
        "movw $(tr_int80 - tr_blob), %fs:0x200\n\t"
        "movw $0x0800, %fs:0x202\n\t"
        "movw $(tr_de - tr_blob), %fs:0x000\n\t"
        "movw $0x0800, %fs:0x002\n\t"
        "movw $0x1234, %ax\n\t"
        "int $0x80\n\t"
        "movw %ax, %es:0x28\n\t"             /* 0x1234 + 0x8000 */
        "movw $100, %ax\n\t"
        "xorb %cl, %cl\n\t"
        "divb %cl\n\t"                       /* #DE: vector 0 */
        "movw %dx, %es:0x2a\n\t"
        /* Real -> protected: GS loaded here, in real mode. */
        "movw $0x2000, %ax\n\tmovw %ax, %gs\n\t"
        "movl %cr0, %eax\n\torl $1, %eax\n\tmovl %eax, %cr0\n\t"
        "movl %gs:8, %eax\n\t"                      /* PE=1, before the far jump */
        "movl %eax, %es:0x18\n\t"
        "movw %cs, %es:0x1c\n\t"
        "ljmpl $0x08, $tr_back32\n"
        "tr_int80:\n\t"
        "addw $0x8000, %ax\n\t"
        "pushf\n\tpopw %es:0x2c\n\t"           /* FLAGS inside the handler: IF, TF clear */
        "iret\n"
        "tr_de:\n\t"                          /* the pushed IP is the DIV's: step over it */
        "pushw %bp\n\tmovw %sp, %bp\n\t"
        "addw $2, 2(%bp)\n\t"
        "movw 6(%bp), %dx\n\t"                 /* the FLAGS it pushed */
        "popw %bp\n\t"
        "iret\n"
        "tr_blob_end:\n"
        ".code32\n"
        ".text\n");

static uint32_t rd32(uint32_t a) { return *(volatile uint32_t *)a; }
/* Address 0, the real-mode IVT, kept from the compiler, which would take
 * a constant 0 for a null pointer. */
static volatile uint32_t ivt_base = 0;

static void part_real(void)
{
    gdt_set(CODE16, 0, 0xffff, ACC_KCODE, FLG_16);
    gdt_set(DATA16_2, HIGH_ADDR, 0xffff, ACC_KDATA, FLG_16);
    memcpy((void *)BLOB_ADDR, tr_blob, (uint32_t)(tr_blob_end - tr_blob));
    for (int i = 0; i < 8; i++)
        *(volatile uint32_t *)(HIGH_ADDR + 4 * i) = 0x20000000 + i;
    for (int round = 1; round <= 2; round++) {
        for (int i = 0; i < 0x30; i += 4)
            *(volatile uint32_t *)(DATA_ADDR + i) = 0;
        uint32_t ivt[2] = { rd32(ivt_base), rd32(ivt_base + 0x200) };
        *(volatile uint32_t *)(DATA_ADDR + 0x10) = 0x09010000;
        tr_run();
        printf("round %d: real mode, DS from protected mode: %08x; reloaded: %08x\n", round,
               rd32(DATA_ADDR), rd32(DATA_ADDR + 4));
        printf("round %d: unreal FS: %08x; after a real-mode reload: %08x\n", round,
               rd32(DATA_ADDR + 8), rd32(DATA_ADDR + 0xc));
        printf("round %d: GS from real mode, PE=1 (cs=%04x): %08x; after the far jump: %08x; reloaded: %08x\n",
               round, rd32(DATA_ADDR + 0x1c) & 0xffff, rd32(DATA_ADDR + 0x18), rd32(DATA_ADDR + 0x20),
               rd32(DATA_ADDR + 0x24));
        printf("round %d: real-mode int $0x80 returned %04x (handler flags %04x); #DE handler saw flags %04x\n",
               round, rd32(DATA_ADDR + 0x28) & 0xffff, rd32(DATA_ADDR + 0x2c) & 0xffff,
               rd32(DATA_ADDR + 0x2a) & 0xffff);
        *(volatile uint32_t *)ivt_base = ivt[0];       /* the IVT as it was */
        *(volatile uint32_t *)(ivt_base + 0x200) = ivt[1];
        check_eq("real_int80", rd32(DATA_ADDR + 0x28) & 0xffff, 0x9234);
        check_eq("pm_to_real_ds_kept", rd32(DATA_ADDR), 0x20000000);
        check_eq("pm_to_real_ds_reloaded", rd32(DATA_ADDR + 4), 0x09010000);
        check_eq("unreal_fs", rd32(DATA_ADDR + 8), 0x20000001);
        check_eq("unreal_fs_reloaded", rd32(DATA_ADDR + 0xc), 0x20000002);
        check_eq("real_to_pm_gs_kept", rd32(DATA_ADDR + 0x18), 0x20000002);
        check_eq("real_to_pm_gs_after_jump", rd32(DATA_ADDR + 0x20), 0x20000003);
        check_eq("real_to_pm_gs_reloaded", rd32(DATA_ADDR + 0x24), 0x20000004);
    }
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("segtrans: segment-tracking transitions\n");
    cpu_init();
    gdt_set(X_IDX, (uint32_t)buf_a, 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_D);
    gdt_set(LDT1_IDX, (uint32_t)ldt1, sizeof ldt1 - 1, ACC_P | 0x02, 0);
    gdt_set(LDT2_IDX, (uint32_t)ldt2, sizeof ldt2 - 1, ACC_P | 0x02, 0);
    memcpy(gdt_b, gdt, sizeof gdt_b);
    gdt_b[X_IDX] = make_desc((uint32_t)buf_b, 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_D);
    gdtr_a.limit = gdtr_b.limit = GDT_ENTRIES * 8 - 1;
    gdtr_a.base = (uint32_t)gdt;
    gdtr_b.base = (uint32_t)gdt_b;
    idt_set_gate(0x81, (uint32_t)h_lgdt_b, SEG_KCODE, GATE_INTR32, 3);
    idt_set_gate(0x82, (uint32_t)h_lgdt_a, SEG_KCODE, GATE_INTR32, 3);
    idt_set_gate(0x83, (uint32_t)h_ldt_write, SEG_KCODE, GATE_INTR32, 3);
    idt_set_gate(0x84, (uint32_t)h_lldt2, SEG_KCODE, GATE_INTR32, 3);

    /* (1) LGDT while loaded. */
    kernel_transition(0, X_SEL, k_lgdt_b);
    lgdt(&gdtr_a);
    report("ring0_lgdt_es", buf_a[0], buf_b[0]);
    for (int ifl = 1; ifl >= 0; ifl--) {
        run_user(user_ds_0x81, X_SEL, ifl ? EFL_IF : 0);
        lgdt(&gdtr_a);
        report(ifl ? "ring3_lgdt_ds" : "ring3.if0_lgdt_ds", buf_a[0], buf_b[0]);
    }

    /* (2) LDT entry rewritten while loaded. */
    ldt_setup();
    kernel_transition(1, LDT_FS, k_ldt_write);
    report("ring0_ldt_write_fs", buf_a[0], buf_b[0]);
    for (int ifl = 1; ifl >= 0; ifl--) {
        ldt_setup();
        run_user(user_fs_0x83, LDT_FS, ifl ? EFL_IF : 0);
        report(ifl ? "ring3_ldt_write_fs" : "ring3.if0_ldt_write_fs", buf_a[0], buf_b[0]);
    }

    /* (3) LLDT of another table while loaded. */
    ldt_setup();
    kernel_transition(1, LDT_FS, k_lldt2);
    report("ring0_lldt_fs", buf_a[0], buf_c[0]);
    for (int ifl = 1; ifl >= 0; ifl--) {
        ldt_setup();
        run_user(user_fs_0x84, LDT_FS, ifl ? EFL_IF : 0);
        report(ifl ? "ring3_lldt_fs" : "ring3.if0_lldt_fs", buf_a[0], buf_c[0]);
    }
    lldt(0);

    /* (4), (5) Between real and protected mode. */
    part_real();

    printf("segtrans: done, %d failures\n", failures);
    return failures;
}
