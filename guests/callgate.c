/*
 * callgate -- far CALL and JMP through call gates.
 *
 * Tests:   (1) ring 3 calls a DPL-3 32-bit call gate to ring-0 code with two
 *          parameters: the CPU switches to the ring-0 stack from the TSS and
 *          copies the parameters; the handler records its stack (EIP, CS,
 *          the two parameters, the old ESP and SS), returns a value and
 *          `lret $8` back to ring 3; (2) ring 0 calls a DPL-0 gate to ring-0
 *          code (no stack switch) and jumps through it; (3) faults: ring 3
 *          through a DPL-0 gate (#GP with the gate's selector), a
 *          not-present gate (#NP), a gate to a not-present code segment
 *          (#NP with the code selector).
 * Exercises: far transfers through gates, emulated (emulate.c,
 *          through_call_gate; docs/03-direct.md): in direct execution the
 *          shadow GDT has no system descriptors, so the far call faults and
 *          the monitor carries it out against the guest's GDT.
 * Monitor exits expected: #GP from the ring-3 lcall (emulated), callouts
 *          for lcall/lret/ljmp in translated code.
 */
#include "guest.h"

#define G_USER   7              /* DPL-3 gate to ring 0, 2 parameters */
#define G_KERN   8              /* DPL-0 gate to ring 0 */
#define G_NP     9              /* not-present gate */
#define G_BADCS  10             /* gate to a not-present code segment */
#define C_NP     11             /* the not-present code segment */

extern uint64_t gdt[];
volatile uint32_t seen[8];
volatile uint32_t gate_result;

extern char gate_handler[], kgate_handler[], kjmp_target[];
uint32_t user_call(uint32_t a, uint32_t b);
uint32_t kcall(void);
uint32_t kjmp(void);
__asm__(".text\n"
        /* Ring 0, entered through the user gate: the ring-0 stack holds
         * EIP, CS, param1, param0 (copied), ESP, SS. */
        "gate_handler:\n\t"
        "pushl %ebx\n\t"
        "movl 4(%esp), %ebx\n\tmovl %ebx, seen\n\t"
        "movl 8(%esp), %ebx\n\tmovl %ebx, seen+4\n\t"
        "movl 12(%esp), %ebx\n\tmovl %ebx, seen+8\n\t"
        "movl 16(%esp), %ebx\n\tmovl %ebx, seen+12\n\t"
        "movl 20(%esp), %ebx\n\tmovl %ebx, seen+16\n\t"
        "movl 24(%esp), %ebx\n\tmovl %ebx, seen+20\n\t"
        "movl %cs, %ebx\n\tmovl %ebx, seen+24\n\t"
        "movl 12(%esp), %eax\n\t"
        "imull 16(%esp), %eax\n\t"
        "addl $0x1000, %eax\n\t"
        "popl %ebx\n\t"
        "lret $8\n"
        /* Ring 3: two parameters, then the far call; the result is in EAX. */
        "user_call:\n\t"
        "pushl 8(%esp)\n\t"
        "pushl 8(%esp)\n\t"
        "lcall $0x3b, $0\n\t"          /* gate 7, RPL 3 */
        "ret\n"
        "kgate_handler:\n\t"
        "movl %cs, %eax\n\t"
        "shll $16, %eax\n\t"
        "movw $0x4242, %ax\n\t"
        "lret\n"
        "kcall:\n\t"
        "lcall $0x40, $0\n\t"          /* gate 8 */
        "ret\n"
        "kjmp:\n\t"
        "pushl %ebp\n\t"
        "movl %esp, %ebp\n\t"
        "ljmp $0x40, $0\n"
        "kjmp_target:\n\t"
        "movl $0x77, %eax\n\t"
        "popl %ebp\n\t"
        "ret\n");

static void set_gate(int index, uint32_t target, uint16_t sel, int dpl, int present, int params)
{
    gdt[index] = (uint64_t)(target & 0xffff) | (uint64_t)sel << 16 |
                 (uint64_t)((present ? 0x80 : 0) | (dpl << 5) | 0x0c) << 40 | (uint64_t)(params & 0x1f) << 32 |
                 (uint64_t)(target >> 16) << 48;
}

static uint32_t user_part(uint32_t arg)
{
    (void)arg;
    uint32_t r = user_call(6, 7);
    gate_result = r;
    return r;
}

static uint32_t user_fault(uint32_t sel)
{
    uint32_t r;
    __asm__ volatile("movl %1, fp+4\n\t"
                     "movl $0, fp\n\t"
                     FAULT_ARM
                     "1: lcall *fp\n"
                     "2:\n\tmovl $0, %0" : "=r"(r) : "r"(sel) : "memory");
    return r;
}
volatile struct { uint32_t off; uint32_t sel; } fp __asm__("fp");

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("callgate: far transfers through call gates\n");
    cpu_init();
    set_gate(G_USER, (uint32_t)gate_handler, SEG_KCODE, 3, 1, 2);
    set_gate(G_KERN, (uint32_t)kgate_handler, SEG_KCODE, 0, 1, 0);
    set_gate(G_NP, (uint32_t)gate_handler, SEG_KCODE, 3, 0, 0);
    gdt_set(C_NP, 0, 0xfffff, 0x1a | 0x60, 0xc);    /* DPL-3 code, not present */
    set_gate(G_BADCS, 0, C_NP << 3, 3, 1, 0);

    uint32_t r = run_user(user_part, 0, EFL_IF);
    printf("user call through gate: result 0x%08x\n", r);
    printf("ring-0 stack: eip=%08x cs=%04x p1=%08x p0=%08x esp=%08x ss=%04x; handler cs=%04x\n",
           seen[0], seen[1] & 0xffff, seen[2], seen[3], seen[4], seen[5] & 0xffff, seen[6] & 0xffff);
    check_eq("gate_result", r, 6 * 7 + 0x1000);
    check_eq("gate_params", seen[2] ^ seen[3], 6 ^ 7);
    check_eq("gate_old_cs", seen[1] & 0xffff, SEG_UCODE);

    uint32_t k = kcall();
    printf("kernel call through gate: 0x%08x\n", k);
    check_eq("kgate", k, (SEG_KCODE << 16) | 0x4242);
    set_gate(G_KERN, (uint32_t)kjmp_target, SEG_KCODE, 0, 1, 0);
    printf("kernel jmp through gate: 0x%08x\n", kjmp());

    set_gate(G_KERN, (uint32_t)kgate_handler, SEG_KCODE, 0, 1, 0);
    fault_resume = FAULT_RESUME_KERNEL;
    uint32_t sels[3] = { (G_KERN << 3) | 3, (G_NP << 3) | 3, (G_BADCS << 3) | 3 };
    const char *names[3] = { "user_through_dpl0_gate", "not_present_gate", "gate_to_absent_code" };
    for (int i = 0; i < 3; i++) {
        run_user(user_fault, sels[i], EFL_IF);
        print_fault(names[i]);
    }
    printf("callgate: done, %d failures\n", failures);
    return failures;
}
