/*
 * decide_pe -- a round trip from protected mode to real mode and back.
 *
 * Tests:   from 32-bit protected mode: far jump to a 16-bit code segment
 *          (GDT 0x30: base 0, limit 0xffff), load 16-bit data segments
 *          (GDT 0x38), load a real-mode IDTR (base 0, limit 0x3ff), clear
 *          CR0.PE, far jump to 0x0800:xxxx; in real mode (IF=0, no BIOS
 *          calls): set up SS:SP, store CS, CR0 and FLAGS, store a word at
 *          0x1234:0x0010 and read it back through the alias 0x1235:0x0000,
 *          a loop of 8-bit multiplications, 32-bit arithmetic with operand
 *          size prefixes, a far call and far return within real mode, a
 *          write through FS/GS; then set CR0.PE, far jump to 0x08:pe_back
 *          (32-bit), reload the segment registers and IDTR, and print what
 *          the real-mode code computed (stored at 0x0900:0000).  Done twice.
 * Exercises: the execution-mode decision on CR0.PE (docs/02-decision.md):
 *          real mode and the 16-bit protected-mode transition code cannot
 *          run directly; mov to CR0 and the far jumps that reload CS
 *          (docs/08-translation.md, docs/03-direct.md).
 * Monitor exits expected: callouts for mov to CR0 (PE off / on), lidt,
 *          the far jumps changing CS (mode changes), segment loads in real
 *          mode; no faults.
 */
#include "guest.h"

#define BLOB_ADDR 0x8000u
#define DATA_ADDR 0x9000u
#define SEL_CODE16 SEL(6, 0)
#define SEL_DATA16 SEL(7, 0)

extern char rm_blob[], rm_blob_end[];
uint32_t pe_roundtrip(void);

uint32_t pe_saved_esp;
struct dtr pe_saved_idtr;
struct dtr pe_rm_idtr = { 0x3ff, 0 };

/* The 32-bit side. */
__asm__(".text\n"
        ".globl pe_roundtrip\n"
        "pe_roundtrip:\n\t"
        "pushl %ebx\n\t"
        "pushl %esi\n\t"
        "pushl %edi\n\t"
        "pushl %ebp\n\t"
        "pushfl\n\t"
        "cli\n\t"
        "movl %esp, pe_saved_esp\n\t"
        "sidt pe_saved_idtr\n\t"
        "lidt pe_rm_idtr\n\t"           /* real-mode IVT; no interrupts from here on */
        "ljmp $0x30, $0x8000\n"         /* SEL_CODE16 : BLOB_ADDR */
        ".globl pe_back\n"
        "pe_back:\n\t"
        "movw $0x10, %ax\n\t"
        "movw %ax, %ds\n\t"
        "movw %ax, %es\n\t"
        "movw %ax, %fs\n\t"
        "movw %ax, %gs\n\t"
        "movw %ax, %ss\n\t"
        "movl pe_saved_esp, %esp\n\t"
        "lidt pe_saved_idtr\n\t"
        "movl %cr0, %eax\n\t"
        "popfl\n\t"
        "popl %ebp\n\t"
        "popl %edi\n\t"
        "popl %esi\n\t"
        "popl %ebx\n\t"
        "ret\n");

/* The 16-bit side, copied to BLOB_ADDR; runs first as 16-bit protected-
 * mode code (CS=0x30 base 0, so IP = 0x8000 + offset), then as real-mode
 * code with CS=0x0800 (IP = offset). */
__asm__(".section .rodata.rmblob, \"a\"\n"
        ".code16\n"
        ".globl rm_blob, rm_blob_end\n"
        "rm_blob:\n\t"
        "movw $0x38, %ax\n\t"           /* SEL_DATA16 */
        "movw %ax, %ds\n\t"
        "movw %ax, %es\n\t"
        "movw %ax, %fs\n\t"
        "movw %ax, %gs\n\t"
        "movw %ax, %ss\n\t"
        "movl %cr0, %eax\n\t"
        "andl $0xfffffffe, %eax\n\t"
        "movl %eax, %cr0\n\t"
        "ljmp $0x0800, $(rm_real - rm_blob)\n"
        "rm_real:\n\t"
        "movw $0x0700, %ax\n\t"
        "movw %ax, %ss\n\t"
        "movw $0x1000, %sp\n\t"
        "movw $0x0900, %ax\n\t"
        "movw %ax, %ds\n\t"
        "movw %cs, 0x00\n\t"            /* 0x0800 */
        "movl %cr0, %eax\n\t"
        "movl %eax, 0x02\n\t"           /* CR0 with PE=0 */
        "movw $3, %ax\n\t"
        "cmpw $5, %ax\n\t"              /* defined flags */
        "pushfw\n\t"
        "popw %ax\n\t"
        "movw %ax, 0x06\n\t"
        /* alias: 0x1234:0x0010 == 0x1235:0x0000 == linear 0x12350 */
        "movw $0x1234, %ax\n\t"
        "movw %ax, %es\n\t"
        "movw $0xa55a, %es:0x0010\n\t"
        "movw $0x1235, %ax\n\t"
        "movw %ax, %fs\n\t"
        "movw %fs:0x0000, %ax\n\t"
        "movw %ax, 0x08\n\t"
        /* sum of i*i for i = 1..20 with 8-bit mul */
        "xorw %bx, %bx\n\t"
        "movw $1, %cx\n"
        "1:\tmovb %cl, %al\n\t"
        "mulb %cl\n\t"
        "addw %ax, %bx\n\t"
        "incw %cx\n\t"
        "cmpw $21, %cx\n\t"
        "jne 1b\n\t"
        "movw %bx, 0x0a\n\t"            /* 2870 */
        /* 32-bit arithmetic with operand-size prefixes */
        "movl $100000, %eax\n\t"
        "movl $3, %ecx\n\t"
        "mull %ecx\n\t"
        "movl %eax, 0x0c\n\t"           /* 300000 */
        /* far call / far return */
        "lcall $0x0800, $(rm_sub - rm_blob)\n\t"
        "movw %ax, 0x10\n\t"            /* 0x7777 */
        "movw %dx, 0x12\n\t"            /* CS seen by the subroutine */
        /* GS write */
        "movw $0x0901, %ax\n\t"
        "movw %ax, %gs\n\t"
        "movw $0x5aa5, %gs:0x0004\n\t"  /* linear 0x9014 */
        "movw %ss, 0x16\n\t"
        "movw %sp, 0x18\n\t"
        /* back to protected mode */
        "movl %cr0, %eax\n\t"
        "orl $1, %eax\n\t"
        "movl %eax, %cr0\n\t"
        "ljmpl $0x08, $pe_back\n"
        "rm_sub:\n\t"
        "movw $0x7777, %ax\n\t"
        "movw %cs, %dx\n\t"
        "lret\n"
        "rm_blob_end:\n"
        ".code32\n"
        ".text\n");

static uint16_t rd16(uint32_t a) { return *(volatile uint16_t *)a; }
static uint32_t rd32(uint32_t a) { return *(volatile uint32_t *)a; }

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("decide_pe: protected mode -> real mode -> protected mode\n");
    cpu_init();
    gdt_set(6, 0, 0xffff, ACC_KCODE, FLG_16);
    gdt_set(7, 0, 0xffff, ACC_KDATA, FLG_16);

    uint32_t len = (uint32_t)(rm_blob_end - rm_blob);
    memcpy((void *)BLOB_ADDR, rm_blob, len);
    printf("blob: %u bytes at 0x%05x\n", len, BLOB_ADDR);

    for (int round = 1; round <= 2; round++) {
        memset((void *)DATA_ADDR, 0, 0x20);
        *(volatile uint16_t *)0x12350 = 0;
        uint32_t cr0 = pe_roundtrip();
        printf("round %d: back in protected mode: cr0=0x%08x cs=0x%04x ds=0x%04x ss=0x%04x eflags=0x%08x\n",
               round, cr0, READ_SEG(cs), READ_SEG(ds), READ_SEG(ss), read_eflags());
        struct dtr d;
        sidt(&d);
        printf("round %d: idtr base=0x%08x limit=0x%04x\n", round, d.base, d.limit);
        printf("round %d: real mode saw cs=0x%04x cr0=0x%08x flags=0x%04x ss=0x%04x sp=0x%04x\n",
               round, rd16(DATA_ADDR), rd32(DATA_ADDR + 2), rd16(DATA_ADDR + 6), rd16(DATA_ADDR + 0x16),
               rd16(DATA_ADDR + 0x18));
        printf("round %d: alias read=0x%04x (linear 0x12350=0x%04x) squares=%u mul32=%u far-call=0x%04x sub-cs=0x%04x gs-write=0x%04x\n",
               round, rd16(DATA_ADDR + 8), rd16(0x12350), rd16(DATA_ADDR + 0xa), rd32(DATA_ADDR + 0xc),
               rd16(DATA_ADDR + 0x10), rd16(DATA_ADDR + 0x12), rd16(DATA_ADDR + 0x14));
        check_eq("rm_cs", rd16(DATA_ADDR), 0x0800);
        check_eq("rm_cr0_pe_clear", rd32(DATA_ADDR + 2) & CR0_PE, 0);
        check_eq("rm_flags", rd16(DATA_ADDR + 6), 0x0093);
        check_eq("rm_alias", rd16(DATA_ADDR + 8), 0xa55a);
        check_eq("rm_alias_linear", rd16(0x12350), 0xa55a);
        check_eq("rm_squares", rd16(DATA_ADDR + 0xa), 2870);
        check_eq("rm_mul32", rd32(DATA_ADDR + 0xc), 300000);
        check_eq("rm_far_call", rd16(DATA_ADDR + 0x10) == 0x7777 && rd16(DATA_ADDR + 0x12) == 0x0800, 1);
        check_eq("rm_gs_write", rd16(DATA_ADDR + 0x14), 0x5aa5);
        check_eq("rm_ss_sp", rd16(DATA_ADDR + 0x16) == 0x0700 && rd16(DATA_ADDR + 0x18) == 0x1000, 1);
        check_eq("pm_cr0_pe", cr0 & CR0_PE, CR0_PE);
        check_eq("pm_idtr", d.base == (uint32_t)idt && d.limit == 0x7ff, 1);
    }
    printf("decide_pe: done, %d failures\n", failures);
    return failures;
}
