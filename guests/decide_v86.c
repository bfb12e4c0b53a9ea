/*
 * decide_v86 -- excursions into virtual-8086 mode.
 *
 * Tests:   16-bit code (assembled with .code16, copied to 0x8000 and run
 *          with CS=0x0800) entered by iret with EFLAGS.VM=1 through a TSS
 *          whose esp0 gives the ring-0 stack.  It computes with 16-bit
 *          registers and segment arithmetic (DS=0x0900; a store through
 *          ES=0x0880:0x0804 read back through DS:0x0004; a loop; a 16-bit
 *          mul) and stores the results at 0x0900:0000..
 *          Excursion A (IOPL=3): also stores its pushf image, CS, SS and
 *          SP, then int $0x30 goes through the DPL-3 IDT gate 0x30 to the
 *          ring-0 handler (v86 interrupt frame with ES/DS/FS/GS pushed).
 *          Excursion B (IOPL=0): the same computation, then int $0x30 ->
 *          #GP(0) (IOPL < 3 in v86).  Excursion C (IOPL=0): cli -> #GP(0).
 *          Excursion D (IOPL=0): pushf -> #GP(0) (which is why the pushf
 *          image is taken in excursion A).  Each handler prints the v86
 *          register state from the trap frame (eip, cs, eflags, esp, ss,
 *          es, ds, fs, gs, general registers) and ends the excursion; the
 *          kernel then prints the results from memory.
 * Exercises: the execution-mode decision for EFLAGS.VM (docs/02-decision.md)
 *          -- v86 code runs directly (or is emulated) --, the iret into
 *          v86 mode and the v86 trap frame built on the ring-0 stack from
 *          TSS.esp0 (docs/03-direct.md).
 * Monitor exits expected: the iret to v86 (callout); in v86 the #GP
 *          exits for int/cli/pushf (IOPL < 3) reflected to the guest, and
 *          for excursion A the int $0x30 itself (the monitor's IDT gate
 *          0x30 is not the guest's) reflected through the guest IDT.
 */
#include "guest.h"

#define BLOB_ADDR 0x8000u
#define DATA_ADDR 0x9000u

extern char v86_blob[], v86_blob_end[];
extern char V86_OFF_A[], V86_OFF_A_INT[], V86_OFF_B[], V86_OFF_B_INT[];
extern char V86_OFF_C[], V86_OFF_D[];

__asm__(".section .rodata.v86blob, \"a\"\n"
        ".code16\n"
        ".globl v86_blob, v86_blob_end\n"
        "v86_blob:\n"
        /* compute: results at DS:0 (DS = 0x0900) */
        "v86_compute:\n\t"
        "movw $0x0900, %ax\n\t"
        "movw %ax, %ds\n\t"
        "xorw %ax, %ax\n\t"
        "movw $1, %cx\n"
        "1:\taddw %cx, %ax\n\t"
        "incw %cx\n\t"
        "cmpw $101, %cx\n\t"
        "jne 1b\n\t"
        "movw %ax, 0x00\n\t"                /* 5050 */
        "movw $0x0880, %ax\n\t"
        "movw %ax, %es\n\t"
        "movw $0xbeef, %es:0x0804\n\t"      /* linear 0x9004 */
        "movw 0x04, %ax\n\t"
        "xorw $0x1234, %ax\n\t"
        "movw %ax, 0x06\n\t"                /* 0xacdb */
        "movw $300, %ax\n\t"
        "movw $250, %bx\n\t"
        "mulw %bx\n\t"                      /* dx:ax = 75000 */
        "movw %ax, 0x08\n\t"
        "movw %dx, 0x0a\n\t"
        "cmpw $0x24f8, %ax\n\t"           /* leave defined flags (mul's are not) */
        "ret\n"
        /* A: IOPL=3 */
        "v86_a:\n\t"
        "call v86_compute\n\t"
        "movw $3, %ax\n\t"
        "cmpw $5, %ax\n\t"                  /* defined flags: CF SF AF */
        "pushfw\n\t"
        "popw %ax\n\t"
        "movw %ax, 0x0c\n\t"
        "movw %cs, 0x0e\n\t"
        "movw %ss, 0x10\n\t"
        "movw %sp, 0x12\n\t"
        "movw $0x1111, %si\n\t"
        "movw $0x2222, %di\n"
        "v86_a_int:\n\t"
        "int $0x30\n\t"
        "hlt\n"
        /* B: IOPL=0, int -> #GP */
        "v86_b:\n\t"
        "call v86_compute\n\t"
        "movw $0x3333, %si\n"
        "v86_b_int:\n\t"
        "int $0x30\n\t"
        "hlt\n"
        /* C: IOPL=0, cli -> #GP */
        "v86_c:\n\t"
        "movw $0x4444, %si\n\t"
        "cli\n\t"
        "hlt\n"
        /* D: IOPL=0, pushf -> #GP */
        "v86_d:\n\t"
        "movw $0x5555, %si\n\t"
        "pushfw\n\t"
        "hlt\n"
        "v86_blob_end:\n"
        ".globl V86_OFF_A, V86_OFF_A_INT, V86_OFF_B, V86_OFF_B_INT, V86_OFF_C, V86_OFF_D\n"
        ".set V86_OFF_A, v86_a - v86_blob\n"
        ".set V86_OFF_A_INT, v86_a_int - v86_blob\n"
        ".set V86_OFF_B, v86_b - v86_blob\n"
        ".set V86_OFF_B_INT, v86_b_int - v86_blob\n"
        ".set V86_OFF_C, v86_c - v86_blob\n"
        ".set V86_OFF_D, v86_d - v86_blob\n"
        ".code32\n"
        ".text\n");

#define OFF(sym) ((uint32_t)(sym))

static struct trapframe last;

static void print_v86(const char *name, const struct trapframe *f)
{
    printf("%s: vector=%u err=0x%04x eip=0x%08x cs=0x%04x eflags=0x%08x esp=0x%08x ss=0x%04x\n",
           name, f->vector, f->err, f->eip, f->cs, f->eflags, f->esp, f->ss);
    printf("%s: v86 es=0x%04x ds=0x%04x fs=0x%04x gs=0x%04x; on entry to the handler ds=0x%04x es=0x%04x fs=0x%04x gs=0x%04x\n",
           name, f->v86_es, f->v86_ds, f->v86_fs, f->v86_gs, f->ds, f->es, f->fs, f->gs);
    printf("%s: eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x esi=0x%08x edi=0x%08x ebp=0x%08x\n",
           name, f->eax, f->ebx, f->ecx, f->edx, f->esi, f->edi, f->ebp);
}

static void v86_trap(struct trapframe *f)
{
    if (!(f->eflags & EFL_VM)) {
        print_trapframe("UNEXPECTED non-v86 trap", f);
        exit(EXIT_UNEXPECTED_TRAP);
    }
    last = *f;
    user_return(f, f->vector);
}

static uint16_t rd16(uint32_t a) { return *(volatile uint16_t *)a; }

static uint32_t excursion(const char *name, uint32_t ip, uint32_t iopl)
{
    struct v86_regs r = {
        .cs = BLOB_ADDR >> 4, .ip = (uint16_t)ip, .ss = 0x0700, .sp = 0x1000,
        .ds = 0x0456, .es = 0x0123, .fs = 0x0789, .gs = 0x0abc,
        .eflags = EFL_IOPL(iopl),
    };
    memset((void *)DATA_ADDR, 0, 0x20);
    uint32_t v = enter_v86(&r);
    print_v86(name, &last);
    printf("%s: back in ring 0, cs=0x%04x ds=0x%04x ss=0x%04x eflags=0x%08x\n",
           name, READ_SEG(cs), READ_SEG(ds), READ_SEG(ss), read_eflags());
    return v;
}

static void check_results(const char *name)
{
    printf("%s: results sum=%u [0x9004]=0x%04x xor=0x%04x mul=0x%04x%04x\n",
           name, rd16(DATA_ADDR), rd16(DATA_ADDR + 4), rd16(DATA_ADDR + 6), rd16(DATA_ADDR + 0xa), rd16(DATA_ADDR + 8));
    char n[40];
    snprintf(n, sizeof n, "%s_results", name);
    check_eq(n, rd16(DATA_ADDR) == 5050 && rd16(DATA_ADDR + 4) == 0xbeef && rd16(DATA_ADDR + 6) == 0xacdb &&
                rd16(DATA_ADDR + 8) == 0x24f8 && rd16(DATA_ADDR + 0xa) == 1, 1);
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("decide_v86: virtual-8086 excursions\n");
    cpu_init();
    idt_set_dpl(0x30, 3);
    set_trap_handler(0x30, v86_trap);
    set_trap_handler(VEC_GP, v86_trap);

    uint32_t len = (uint32_t)(v86_blob_end - v86_blob);
    memcpy((void *)BLOB_ADDR, v86_blob, len);
    printf("blob: %u bytes at 0x%05x; entries A=0x%04x B=0x%04x C=0x%04x D=0x%04x\n",
           len, BLOB_ADDR, OFF(V86_OFF_A), OFF(V86_OFF_B), OFF(V86_OFF_C), OFF(V86_OFF_D));

    /* A: IOPL=3, int $0x30 through the IDT. */
    uint32_t v = excursion("v86_a", OFF(V86_OFF_A), 3);
    check_results("v86_a");
    printf("v86_a: pushf image=0x%04x cs=0x%04x ss=0x%04x sp=0x%04x\n",
           rd16(DATA_ADDR + 0xc), rd16(DATA_ADDR + 0xe), rd16(DATA_ADDR + 0x10), rd16(DATA_ADDR + 0x12));
    check_eq("v86_a_vector", v, 0x30);
    check_eq("v86_a_eip_after_int", last.eip, OFF(V86_OFF_A_INT) + 2);
    check_eq("v86_a_frame", last.cs == 0x0800 && last.ss == 0x0700 && last.esp == 0x1000 &&
                                last.v86_ds == 0x0900 && last.v86_es == 0x0880 &&
                                last.v86_fs == 0x0789 && last.v86_gs == 0x0abc, 1);
    check_eq("v86_a_null_segs_in_handler", last.ds | last.es | last.fs | last.gs, 0);
    check_eq("v86_a_eflags", last.eflags & (EFL_VM | EFL_IOPL_MASK | EFL_IF), EFL_VM | EFL_IOPL(3));
    check_eq("v86_a_pushf", rd16(DATA_ADDR + 0xc), 0x3093);
    check_eq("v86_a_cs_ss_sp", rd16(DATA_ADDR + 0xe) == 0x0800 && rd16(DATA_ADDR + 0x10) == 0x0700 &&
                                   rd16(DATA_ADDR + 0x12) == 0x1000, 1);

    /* B: IOPL=0, int $0x30 -> #GP(0). */
    v = excursion("v86_b", OFF(V86_OFF_B), 0);
    check_results("v86_b");
    check_eq("v86_b_gp", v == VEC_GP && last.err == 0 && last.eip == OFF(V86_OFF_B_INT), 1);
    check_eq("v86_b_si", last.esi & 0xffff, 0x3333);

    /* C: cli -> #GP(0). */
    v = excursion("v86_c", OFF(V86_OFF_C), 0);
    check_eq("v86_c_cli_gp", v == VEC_GP && last.err == 0 && last.eip == OFF(V86_OFF_C) + 3, 1);

    /* D: pushf -> #GP(0). */
    v = excursion("v86_d", OFF(V86_OFF_D), 0);
    check_eq("v86_d_pushf_gp", v == VEC_GP && last.err == 0 && last.eip == OFF(V86_OFF_D) + 3 &&
                                   last.esp == 0x1000, 1);

    printf("decide_v86: done, %d failures\n", failures);
    return failures;
}
