/*
 * decide_seg -- non-reversible segments: a segment register whose hidden
 * descriptor no longer matches its GDT entry.
 *
 * Tests:   (a) ring 3: GDT entry X (index 6) is a DPL-3 data segment with
 *          base A; user code loads DS=X and reads DS:0 (A's contents); it
 *          makes a system call (int $0x81, a DPL-3 gate whose handler uses
 *          only SS-relative addressing and never touches DS) in which the
 *          kernel rewrites entry X to base B; iret does not reload DS, so
 *          the user still reads A through DS; after reloading DS (mov %ds,
 *          %ax; mov %ax, %ds) it reads B.  The same for GS with entry 7.
 *          (b) ring 0: ES loaded from DPL-0 entry Y (index 8, base A), Y's
 *          base rewritten to B in the GDT, ES still reads A, after an ES
 *          reload it reads B; the same for FS with entry 9.
 *          (c) ring 0: DS=Y with Y rewritten, then an exception (int3)
 *          whose handler path saves and reloads DS from the GDT: after the
 *          iret DS reads B (the reload made the segment reversible again).
 *          (d) ring 3: DS loaded with the null selector 0003, then two
 *          first touches of fresh pages through ES, DS read back after
 *          each: still 0003 (under the monitor each touch is a hidden
 *          page fault, and re-entering by IRET would have made DS 0000).
 * Exercises: segment tracking and the "non-reversible segment" rule of
 *          the execution-mode decision (docs/02-decision.md,
 *          docs/08-translation.md):
 *          while a segment register's hidden state differs from the GDT,
 *          the monitor must keep using the cached descriptor (it cannot
 *          reload it from the guest GDT), e.g. by binary-translating or by
 *          keeping a copy of the old descriptor in its shadow GDT.
 * Monitor exits expected: writes to the guest GDT (traced page) while the
 *          segment is loaded; #GP exits for int $0x81 and int $0x80 from
 *          ring 3; the iret back to ring 3 with a non-reversible DS/GS;
 *          COM1 port I/O callouts.
 */
#include "guest.h"

#define X_IDX 6
#define XG_IDX 7
#define Y_IDX 8
#define YF_IDX 9
#define X_SEL SEL(X_IDX, 3)
#define XG_SEL SEL(XG_IDX, 3)
#define Y_SEL SEL(Y_IDX, 0)
#define YF_SEL SEL(YF_IDX, 0)
#define VEC_REWRITE 0x81

static uint32_t buf_a[4] ALIGNED(16) = { 0xaaaa0001, 0xaaaa0002, 0xaaaa0003, 0xaaaa0004 };
static uint32_t buf_b[4] ALIGNED(16) = { 0xbbbb0001, 0xbbbb0002, 0xbbbb0003, 0xbbbb0004 };

/* The descriptor that int $0x81 writes into GDT entry rewrite_index. */
uint32_t rewrite_lo, rewrite_hi, rewrite_index, rewrite_count;

/* int $0x81 handler: SS-relative only (SS = 0x10 after the ring switch),
 * so DS/ES/FS/GS keep their hidden state across the call. */
extern char rewrite_gate[];
__asm__(".text\n"
        "rewrite_gate:\n\t"
        "pushl %eax\n\t"
        "pushl %ebx\n\t"
        "movl %ss:rewrite_index, %ebx\n\t"
        "movl %ss:rewrite_lo, %eax\n\t"
        "movl %eax, %ss:gdt(,%ebx,8)\n\t"
        "movl %ss:rewrite_hi, %eax\n\t"
        "movl %eax, %ss:gdt+4(,%ebx,8)\n\t"
        "incl %ss:rewrite_count\n\t"
        "popl %ebx\n\t"
        "popl %eax\n\t"
        "iret\n");

/* Ring-3 test, entered with enter_user; results in EBX, ECX, EDX of the
 * SYS_EXIT frame, and ESI/EDI = the selectors read before/after. */
extern char user_ds_test[], user_gs_test[];
__asm__(".text\n"
        "user_ds_test:\n\t"
        "movw $0x33, %ax\n\t"           /* X_SEL */
        "movw %ax, %ds\n\t"
        "movl 0, %ebx\n\t"              /* DS:0 -> A */
        "int $0x81\n\t"                 /* kernel rewrites X's base to B */
        "movl 0, %ecx\n\t"              /* still A: DS was not reloaded */
        "movw %ds, %si\n\t"
        "movw %si, %ds\n\t"             /* reload */
        "movl 0, %edx\n\t"              /* now B */
        "movzwl %si, %esi\n\t"
        "movw $0x23, %ax\n\t"
        "movw %ax, %ds\n\t"
        "movl $0, %eax\n\t"             /* SYS_EXIT */
        "int $0x80\n\t"
        "ud2\n"
        "user_gs_test:\n\t"
        "movw $0x3b, %ax\n\t"           /* XG_SEL */
        "movw %ax, %gs\n\t"
        "movl %gs:4, %ebx\n\t"
        "int $0x81\n\t"
        "movl %gs:4, %ecx\n\t"
        "movw %gs, %si\n\t"
        "movw %si, %gs\n\t"
        "movl %gs:4, %edx\n\t"
        "movzwl %si, %esi\n\t"
        "movw $0x23, %ax\n\t"
        "movw %ax, %gs\n\t"
        "movl $0, %eax\n\t"
        "int $0x80\n\t"
        "ud2\n"
        /* A null selector with RPL 3 in DS, then the first touch of a
         * fresh page through ES (under the monitor: a hidden page fault
         * in direct execution), then DS read back: 0x0003 on bare
         * hardware, where nothing IRETs in between. */
        "user_null_test:\n\t"
        "movw $3, %ax\n\t"
        "movw %ax, %ds\n\t"
        "movl %es:fresh_page+0x100, %ebx\n\t"
        "movw %ds, %si\n\t"
        "movl %es:fresh_page+0x1100, %ecx\n\t"
        "movw %ds, %di\n\t"
        "movzwl %si, %esi\n\t"
        "movzwl %di, %edi\n\t"
        "movw $0x23, %ax\n\t"
        "movw %ax, %ds\n\t"
        "movl $0, %eax\n\t"
        "int $0x80\n\t"
        "ud2\n");
extern char user_null_test[];
/* Two pages nothing else touches (user_null_test). */
uint8_t fresh_page[2 * 4096] __attribute__((aligned(4096)));

static void set_rewrite(int index, uint32_t base, uint8_t access)
{
    uint64_t d = make_desc(base, 0xfff, access, FLG_D);
    rewrite_index = (uint32_t)index;
    rewrite_lo = (uint32_t)d;
    rewrite_hi = (uint32_t)(d >> 32);
}

static void report3(const char *name, const char *seg)
{
    const struct trapframe *f = &user_exit_frame;
    printf("%s: %s before=0x%08x after-syscall=0x%08x after-reload=0x%08x (selector 0x%04x) gdt base now 0x%08x\n",
           name, seg, f->ebx, f->ecx, f->edx, f->esi, desc_base(gdt[rewrite_index]));
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("decide_seg: non-reversible segments\n");
    cpu_init();
    idt_set_gate(VEC_REWRITE, (uint32_t)rewrite_gate, SEG_KCODE, GATE_INTR32, 3);
    printf("buf_a=0x%08x buf_b=0x%08x\n", (uint32_t)buf_a, (uint32_t)buf_b);

    /* (a) ring 3, DS. */
    gdt_set(X_IDX, (uint32_t)buf_a, 0xfff, ACC_UDATA, FLG_D);
    set_rewrite(X_IDX, (uint32_t)buf_b, ACC_UDATA);
    enter_user((uint32_t)user_ds_test, (uint32_t)ustack_top, EFL_IF);
    report3("user_ds", "ds:0");
    check_eq("user_ds_before", user_exit_frame.ebx, buf_a[0]);
    check_eq("user_ds_after_syscall_cached", user_exit_frame.ecx, buf_a[0]);
    check_eq("user_ds_after_reload", user_exit_frame.edx, buf_b[0]);

    /* (a') ring 3, GS, with IF=0 in ring 3. */
    gdt_set(XG_IDX, (uint32_t)buf_a, 0xfff, ACC_UDATA, FLG_D);
    set_rewrite(XG_IDX, (uint32_t)buf_b, ACC_UDATA);
    enter_user((uint32_t)user_gs_test, (uint32_t)ustack_top, 0);
    report3("user_gs", "gs:4");
    check_eq("user_gs_before", user_exit_frame.ebx, buf_a[1]);
    check_eq("user_gs_after_syscall_cached", user_exit_frame.ecx, buf_a[1]);
    check_eq("user_gs_after_reload", user_exit_frame.edx, buf_b[1]);
    printf("rewrite gate called %u times\n", rewrite_count);

    /* (b) ring 0, ES then FS. */
    uint32_t r0, r1, r2, sel;
    gdt_set(Y_IDX, (uint32_t)buf_a, 0xfff, ACC_KDATA, FLG_D);
    uint64_t newy = make_desc((uint32_t)buf_b, 0xfff, ACC_KDATA, FLG_D);
    sel = Y_SEL;
    __asm__ volatile("movw %w[sel], %%es\n\t"
                     "movl %%es:8, %[r0]\n\t"
                     "movl %[lo], gdt+8*8\n\t"
                     "movl %[hi], gdt+8*8+4\n\t"
                     "movl %%es:8, %[r1]\n\t"
                     "movw %%es, %w[sel]\n\t"
                     "movw %w[sel], %%es\n\t"
                     "movl %%es:8, %[r2]\n\t"
                     "movw $0x10, %w[sel]\n\t"
                     "movw %w[sel], %%es"
                     : [r0] "=&r"(r0), [r1] "=&r"(r1), [r2] "=&r"(r2), [sel] "+r"(sel)
                     : [lo] "r"((uint32_t)newy), [hi] "r"((uint32_t)(newy >> 32))
                     : "memory");
    printf("kernel_es: es:8 before=0x%08x after-rewrite=0x%08x after-reload=0x%08x\n", r0, r1, r2);
    check_eq("kernel_es_before", r0, buf_a[2]);
    check_eq("kernel_es_cached", r1, buf_a[2]);
    check_eq("kernel_es_after_reload", r2, buf_b[2]);

    gdt_set(YF_IDX, (uint32_t)buf_a, 0xfff, ACC_KDATA, FLG_D);
    newy = make_desc((uint32_t)buf_b, 0xfff, ACC_KDATA, FLG_D);
    sel = YF_SEL;
    __asm__ volatile("movw %w[sel], %%fs\n\t"
                     "movl %%fs:12, %[r0]\n\t"
                     "movl %[lo], gdt+9*8\n\t"
                     "movl %[hi], gdt+9*8+4\n\t"
                     "movl %%fs:12, %[r1]\n\t"
                     "pushl %%fs\n\t"
                     "popl %%fs\n\t"
                     "movl %%fs:12, %[r2]\n\t"
                     "movw $0x10, %w[sel]\n\t"
                     "movw %w[sel], %%fs"
                     : [r0] "=&r"(r0), [r1] "=&r"(r1), [r2] "=&r"(r2), [sel] "+r"(sel)
                     : [lo] "r"((uint32_t)newy), [hi] "r"((uint32_t)(newy >> 32))
                     : "memory");
    printf("kernel_fs: fs:12 before=0x%08x after-rewrite=0x%08x after-push/pop=0x%08x\n", r0, r1, r2);
    check_eq("kernel_fs_before", r0, buf_a[3]);
    check_eq("kernel_fs_cached", r1, buf_a[3]);
    check_eq("kernel_fs_after_reload", r2, buf_b[3]);

    /* (c) ring 0: DS=Y rewritten, then int3: the trap stub saves DS and
     * reloads it from the GDT on the way out. */
    idt_set_dpl(VEC_BP, 0);
    gdt_set(Y_IDX, (uint32_t)buf_a, 0xfff, ACC_KDATA, FLG_D);
    newy = make_desc((uint32_t)buf_b, 0xfff, ACC_KDATA, FLG_D);
    fault_arm(0);
    sel = Y_SEL;
    __asm__ volatile("movw %w[sel], %%ds\n\t"
                     "movl 0, %[r0]\n\t"
                     "movl %[lo], %%ss:gdt+8*8\n\t"
                     "movl %[hi], %%ss:gdt+8*8+4\n\t"
                     "movl 0, %[r1]\n\t"
                     "movl $1f, %%ss:fault_resume\n\t"
                     "int3\n"
                     "1:\tmovl 0, %[r2]\n\t"
                     "movw $0x10, %w[sel]\n\t"
                     "movw %w[sel], %%ds"
                     : [r0] "=&r"(r0), [r1] "=&r"(r1), [r2] "=&r"(r2), [sel] "+r"(sel)
                     : [lo] "r"((uint32_t)newy), [hi] "r"((uint32_t)(newy >> 32))
                     : "memory");
    printf("kernel_ds_trap: ds:0 before=0x%08x after-rewrite=0x%08x after-int3=0x%08x (trap vector %u)\n",
           r0, r1, r2, last_fault.vector);
    check_eq("kernel_ds_before", r0, buf_a[0]);
    check_eq("kernel_ds_cached", r1, buf_a[0]);
    check_eq("kernel_ds_reloaded_by_trap_path", r2, buf_b[0]);

    /* (d) ring 3, a null selector with RPL 3 across a hidden page fault
     * (IRET to ring 3 would make it 0000: SDM Vol. 2A, IRET). */
    enter_user((uint32_t)user_null_test, (uint32_t)ustack_top, EFL_IF);
    printf("user_null: ds after mov 0003: 0x%04x, after a second fresh page: 0x%04x\n",
           user_exit_frame.esi, user_exit_frame.edi);
    check_eq("user_null_rpl_kept", user_exit_frame.esi, 3);
    check_eq("user_null_rpl_kept_again", user_exit_frame.edi, 3);

    printf("decide_seg: done, %d failures\n", failures);
    return failures;
}
