/*
 * v86 -- virtual-8086 mode and the I/O permission bitmap.
 *
 * Tests:   a v86 task (16-bit code at 0800:0000, stack 0600:1000) runs the
 *          same probes with IOPL 0 and with IOPL 3: CLI, STI, PUSHF,
 *          PUSHFD, POPF, IRET (to the next instruction), INT $0x31 (a
 *          DPL-3 gate whose handler returns), INT3, HLT, and port I/O
 *          through DX to the COM1 scratch register 0x3ff (granted by the
 *          TSS's I/O bitmap), to 0x3fe (refused), and a word access to
 *          0x3fe-0x3ff (half refused).  Every #GP comes to the guest's own
 *          handler, which records the instruction and its error code and
 *          moves IP past it; the code stores the flags it sees.  Then
 *          ring 3 in protected mode, IOPL 0, makes the same port accesses.
 * Exercises: virtual-8086 mode (docs/03-direct.md): with IOPL 0 it runs
 *          directly and every IOPL-sensitive instruction traps to the
 *          monitor, which reflects #GP to the guest exactly where the CPU
 *          would; with IOPL 3 it is translated ("v86 with IOPL=3").  The
 *          I/O permission bitmap (emulate.c, E:065) in v86 and at ring 3.
 * Monitor exits expected: #GP for each IOPL-sensitive instruction and
 *          each port access in direct execution; callouts under
 *          translation.
 */
#include "guest.h"

#define BLOB_ADDR 0x8000u
#define DATA_ADDR 0x9000u
#define BIG_TSS   6             /* GDT slot of the TSS with an I/O bitmap */
#define VEC_V86INT 0x31

/* A TSS followed by its I/O bitmap: ports 0-0x3ff, only 0x3ff granted. */
static struct {
    struct tss t;
    uint8_t map[0x400 / 8];
    uint8_t end;                /* the CPU reads two bytes: this one must be 0xff */
} __attribute__((packed)) btss ALIGNED(16);

extern char v86_code[], v86_code_end[], V86_DONE[];
__asm__(".section .rodata.v86code, \"a\"\n"
        ".code16\n"
        ".globl v86_code, v86_code_end, V86_DONE\n"
        "v86_code:\n\t"
        "movw $0x0900, %ax\n\tmovw %ax, %ds\n\t"
        "pushf\n\tpopw 0x00\n\t"                /* flags at entry */
        "cli\n\t"
        "pushf\n\tpopw 0x02\n\t"
        "sti\n\t"
        "pushf\n\tpopw 0x04\n\t"
        "pushfl\n\tpopl 0x06\n\t"
        "pushw $0x3ed5\n\tpopf\n\t"             /* status flags, IF, DF, IOPL 3 (kept as it is) */
        "pushf\n\tpopw 0x0a\n\t"
        "pushw $0x0202\n\tpopf\n\t"
        "pushf\n\tpushw %cs\n\tpushw $(1f - v86_code)\n\t"
        "iret\n"
        "1:\tmovw $0x1111, 0x0c\n\t"
        "int $0x31\n\t"
        "movw %ax, 0x0e\n\t"                    /* the handler's answer, if it ran */
        "int3\n\t"
        "movw $0x3ff, %dx\n\t"
        "movb $0x5a, %al\n\t"
        "outb %al, %dx\n\t"
        "movb $0, %al\n\t"
        "inb %dx, %al\n\t"
        "movb %al, 0x10\n\t"
        "movw $0x3fe, %dx\n\t"
        "inb %dx, %al\n\t"
        "movw $0xa55a, %ax\n\t"
        "outw %ax, %dx\n\t"
        "pushf\n\tpopw 0x12\n\t"
        ".globl V86_DONE\n"
        "V86_DONE = . - v86_code\n\t"
        "hlt\n"
        "v86_code_end:\n"
        ".code32\n"
        ".text\n");

static struct { uint16_t ip; uint8_t op; uint32_t err; } gp_log[32];
static volatile int ngp, nint31;

/* #GP in v86 (or ring 3): note it, step over the instruction. */
static void on_gp(struct trapframe *f)
{
    if (!tf_from_user(f)) {
        print_trapframe("unexpected kernel #GP", f);
        exit(EXIT_UNEXPECTED_TRAP);
    }
    if (!(f->eflags & EFL_VM)) {
        /* Ring 3 in protected mode: user_io's faulting accesses. */
        const uint8_t *p = (const uint8_t *)f->eip;
        int len = p[0] == 0x66 ? 2 : 1;
        if (ngp < 32) {
            gp_log[ngp].ip = (uint16_t)f->eip;
            gp_log[ngp].op = p[len - 1];
            gp_log[ngp].err = f->err;
            ngp++;
        }
        f->eip += len;
        return;
    }
    if (f->eip == (uint32_t)V86_DONE)
        user_return(f, 0x86);
    const uint8_t *p = (const uint8_t *)(f->cs * 16 + f->eip);
    int len = 0;
    while (p[len] == 0x66)
        len++;
    uint8_t op = p[len];
    len += op == 0xcd ? 2 : 1;
    if (ngp < 32) {
        gp_log[ngp].ip = (uint16_t)f->eip;
        gp_log[ngp].op = op;
        gp_log[ngp].err = f->err;
        ngp++;
    }
    f->eip += len;
}

static void on_int31(struct trapframe *f)
{
    nint31++;
    f->eax = 0x3131;
}

static void on_bp(struct trapframe *f)
{
    printf("  int3 reached its handler from %s\n", (f->eflags & EFL_VM) ? "v86" : "ring 3");
}

static uint16_t rd16(uint32_t a) { return *(volatile uint16_t *)a; }

static void run_v86(int iopl)
{
    memset((void *)DATA_ADDR, 0, 0x20);
    memset((void *)0x6000, 0, 0x2000);          /* the stack, and what lies above it */
    memcpy((void *)BLOB_ADDR, v86_code, (uint32_t)(v86_code_end - v86_code));
    ngp = nint31 = 0;
    struct v86_regs r = { .cs = 0x0800, .ip = 0, .ss = 0x0600, .sp = 0x1000,
                          .ds = 0x0900, .es = 0x0900, .fs = 0, .gs = 0,
                          .eflags = EFL_IF | EFL_IOPL(iopl) };
    uint32_t ret = enter_v86(&r);
    printf("v86 iopl=%d: ended with %x\n", iopl, ret);
    printf("v86 iopl=%d: flags entry=%04x after cli=%04x after sti=%04x pushfd=%08x after popf=%04x final=%04x\n",
           iopl, rd16(DATA_ADDR), rd16(DATA_ADDR + 2), rd16(DATA_ADDR + 4),
           rd16(DATA_ADDR + 6) | (uint32_t)rd16(DATA_ADDR + 8) << 16, rd16(DATA_ADDR + 0xa),
           rd16(DATA_ADDR + 0x12));
    printf("v86 iopl=%d: iret reached=%04x int $0x31 answered %04x (handler ran %d times) in 0x3ff=%02x\n", iopl,
           rd16(DATA_ADDR + 0xc), rd16(DATA_ADDR + 0xe), nint31, rd16(DATA_ADDR + 0x10) & 0xff);
    for (int i = 0; i < ngp; i++)
        printf("v86 iopl=%d: #GP(%x) at ip=%04x opcode %02x\n", iopl, gp_log[i].err, gp_log[i].ip, gp_log[i].op);
    printf("v86 iopl=%d: user frame at exit: eflags=%08x cs=%04x ss=%04x sp=%04x ds=%04x es=%04x\n", iopl,
           user_exit_frame.eflags, user_exit_frame.cs, user_exit_frame.ss, user_exit_frame.esp & 0xffff,
           user_exit_frame.v86_ds, user_exit_frame.v86_es);
}

volatile uint32_t io_in_scratch, io_in_msr;
static uint32_t user_io(uint32_t arg)
{
    (void)arg;
    uint32_t a;
    __asm__ volatile("movw $0x3ff, %%dx\n\tmovb $0xa5, %%al\n\toutb %%al, %%dx\n\t"
                     "movb $0, %%al\n\tinb %%dx, %%al\n\tmovzbl %%al, %0" : "=r"(a) : : "edx");
    io_in_scratch = a;
    __asm__ volatile("movw $0x3fe, %%dx\n\tmovl $0x77, %%eax\n\tinb %%dx, %%al\n\tmovzbl %%al, %0"
                     : "=r"(a) : : "edx");
    io_in_msr = a;
    __asm__ volatile("movw $0x3fe, %%dx\n\tmovw $0x1234, %%ax\n\toutw %%ax, %%dx" : : : "eax", "edx");
    return 0;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("v86: virtual-8086 mode and the I/O bitmap\n");
    cpu_init();
    btss.t = tss;
    btss.t.iomap_base = sizeof btss.t;
    memset(btss.map, 0xff, sizeof btss.map);
    btss.map[0x3ff / 8] &= (uint8_t)~(1u << (0x3ff & 7));
    btss.end = 0xff;
    gdt_set(BIG_TSS, (uint32_t)&btss, sizeof btss - 1, ACC_P | ACC_TSS32, 0);
    ltr(SEL(BIG_TSS, 0));
    set_trap_handler(VEC_GP, on_gp);
    set_trap_handler(VEC_BP, on_bp);
    set_trap_handler(VEC_V86INT, on_int31);
    idt_set_dpl(VEC_V86INT, 3);
    idt_set_dpl(VEC_BP, 3);

    /* enter_v86 sets the library TSS's esp0; this TSS needs the same. */
    btss.t.esp0 = (uint32_t)kstack_top;
    run_v86(0);
    run_v86(3);
    check_eq("v86_iopl3_int31", nint31, 1);

    ngp = 0;
    run_user(user_io, 0, EFL_IF);
    printf("ring 3 iopl=0: in 0x3ff=%02x, in 0x3fe=%02x\n", io_in_scratch, io_in_msr);
    for (int i = 0; i < ngp; i++)
        printf("ring 3: #GP(%x) on opcode %02x\n", gp_log[i].err, gp_log[i].op);
    check_eq("ring3_scratch", io_in_scratch, 0xa5);
    check_eq("ring3_refused", ngp, 2);
    printf("v86: done, %d failures\n", failures);
    return failures;
}
