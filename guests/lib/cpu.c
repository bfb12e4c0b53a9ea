/*
 * cpu.c -- GDT, TSS, IDT, the C trap dispatcher, the expect-a-fault
 * facility, system calls, and entering ring 3 / v86 mode.
 */
#include "guest.h"

uint64_t gdt[GDT_ENTRIES] ALIGNED(8);
uint64_t idt[256] ALIGNED(8);
struct tss tss ALIGNED(16);

extern char isr_stubs[];
extern char user_exit_trampoline[];
void user_iret(uint32_t eip, uint32_t esp, uint32_t eflags) NORETURN;
void v86_iret(const uint32_t *frame) NORETURN;

static trap_handler_t handlers[256];
int (*syscall_hook)(struct trapframe *f);

volatile struct fault_record last_fault;
volatile uint32_t fault_armed, fault_site, fault_resume;

struct trapframe user_exit_frame;
volatile int in_user;
static struct kctx user_ctx;
static volatile uint32_t user_retval;

/* ---------------------------------------------------------------- GDT */

uint64_t make_desc(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
    uint64_t d = 0;
    d |= limit & 0xffff;
    d |= (uint64_t)(base & 0xffffff) << 16;
    d |= (uint64_t)access << 40;
    d |= (uint64_t)((limit >> 16) & 0xf) << 48;
    d |= (uint64_t)(flags & 0xf) << 52;
    d |= (uint64_t)(base >> 24) << 56;
    return d;
}

void gdt_set(int index, uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
    gdt[index] = make_desc(base, limit, access, flags);
}

uint32_t desc_base(uint64_t d)
{
    return (uint32_t)((d >> 16) & 0xffffff) | (uint32_t)((d >> 56) & 0xff) << 24;
}

void gdt_load(void)
{
    struct dtr d = { GDT_ENTRIES * 8 - 1, (uint32_t)gdt };
    lgdt(&d);
    reload_segments();
}

/* ---------------------------------------------------------------- IDT */

uint32_t idt_stub(int vec)
{
    return (uint32_t)isr_stubs + 16u * (uint32_t)vec;
}

void idt_set_gate(int vec, uint32_t handler, uint16_t sel, int type, int dpl)
{
    uint64_t g = 0;
    g |= handler & 0xffff;
    g |= (uint64_t)sel << 16;
    g |= (uint64_t)(0x80 | ((dpl & 3) << 5) | (type & 0xf)) << 40;
    g |= (uint64_t)(handler >> 16) << 48;
    idt[vec] = g;
}

void idt_set_dpl(int vec, int dpl)
{
    idt[vec] = (idt[vec] & ~(3ull << 45)) | ((uint64_t)(dpl & 3) << 45);
}

void idt_set_type(int vec, int type)
{
    idt[vec] = (idt[vec] & ~(0xfull << 40)) | ((uint64_t)(type & 0xf) << 40);
}

void idt_set_present(int vec, int present)
{
    if (present)
        idt[vec] |= 1ull << 47;
    else
        idt[vec] &= ~(1ull << 47);
}

void idt_load(void)
{
    struct dtr d = { sizeof idt - 1, (uint32_t)idt };
    lidt(&d);
}

/* ---------------------------------------------------------------- traps */

static void syscall_handler(struct trapframe *f);

void set_trap_handler(int vec, trap_handler_t h)
{
    handlers[vec & 0xff] = h;
}

void cpu_init(void)
{
    gdt[0] = 0;
    gdt_set(1, 0, 0xfffff, ACC_KCODE, FLG_32);
    gdt_set(2, 0, 0xfffff, ACC_KDATA, FLG_32);
    gdt_set(3, 0, 0xfffff, ACC_UCODE, FLG_32);
    gdt_set(4, 0, 0xfffff, ACC_UDATA, FLG_32);
    memset(&tss, 0, sizeof tss);
    tss.esp0 = (uint32_t)kstack_top;
    tss.ss0 = SEG_KDATA;
    tss.iomap_base = sizeof tss;    /* = limit + 1: no I/O bitmap */
    gdt_set(5, (uint32_t)&tss, sizeof tss - 1, ACC_P | ACC_TSS32, 0);
    for (int i = GDT_FIRST_SPARE; i < GDT_ENTRIES; i++)
        gdt[i] = 0;
    gdt_load();
    lldt(0);
    ltr(SEG_TSS);

    for (int v = 0; v < 256; v++)
        idt_set_gate(v, idt_stub(v), SEG_KCODE, GATE_INTR32, 0);
    idt_set_dpl(VEC_SYSCALL, 3);
    idt_load();
    set_trap_handler(VEC_SYSCALL, syscall_handler);
}

static const char *const vec_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
    "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "r15",
    "#MF", "#AC", "#MC", "#XM", "r20", "r21", "r22", "r23",
    "r24", "r25", "r26", "r27", "r28", "r29", "r30", "r31",
};

void print_trapframe(const char *what, const struct trapframe *f)
{
    printf("%s: vector=%u (%s) err=0x%04x eip=0x%08x cs=0x%04x eflags=0x%08x\n",
           what, f->vector, f->vector < 32 ? vec_names[f->vector] : "int",
           f->err, f->eip, f->cs, f->eflags);
    printf("%s: eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x\n",
           what, f->eax, f->ebx, f->ecx, f->edx);
    printf("%s: esi=0x%08x edi=0x%08x ebp=0x%08x ds=0x%04x es=0x%04x fs=0x%04x gs=0x%04x\n",
           what, f->esi, f->edi, f->ebp, f->ds, f->es, f->fs, f->gs);
    if (tf_from_user(f))
        printf("%s: esp=0x%08x ss=0x%04x\n", what, f->esp, f->ss);
    if (f->eflags & EFL_VM)
        printf("%s: v86 es=0x%04x ds=0x%04x fs=0x%04x gs=0x%04x\n",
               what, f->v86_es, f->v86_ds, f->v86_fs, f->v86_gs);
}

void trap_dispatch(struct trapframe *f)
{
    /* Segment pushes may leave junk in the upper halves: keep 16 bits. */
    f->gs &= 0xffff;
    f->fs &= 0xffff;
    f->es &= 0xffff;
    f->ds &= 0xffff;
    f->cs &= 0xffff;
    if (tf_from_user(f))
        f->ss &= 0xffff;
    if (f->eflags & EFL_VM) {
        f->v86_es &= 0xffff;
        f->v86_ds &= 0xffff;
        f->v86_fs &= 0xffff;
        f->v86_gs &= 0xffff;
    }

    if (fault_armed && f->vector < 32) {
        last_fault.vector = f->vector;
        last_fault.err = f->err;
        last_fault.eip = f->eip;
        last_fault.cs = f->cs;
        last_fault.eflags = f->eflags;
        last_fault.cr2 = f->vector == VEC_PF ? read_cr2() : 0;
        last_fault.esp = tf_from_user(f) ? f->esp : (uint32_t)&f->esp;
        last_fault.ss = tf_from_user(f) ? f->ss : READ_SEG(ss);
        last_fault.count++;
        fault_armed = 0;
        if (fault_resume == FAULT_RESUME_KERNEL)
            user_return(f, USER_FAULTED);
        f->eip = fault_resume;
        return;
    }
    if (handlers[f->vector]) {
        handlers[f->vector](f);
        return;
    }
    print_trapframe("UNEXPECTED trap", f);
    if (f->vector == VEC_PF)
        printf("UNEXPECTED trap: cr2=0x%08x\n", read_cr2());
    exit(EXIT_UNEXPECTED_TRAP);
}

/* ---------------------------------------------------------------- faults */

void fault_arm(uint32_t resume)
{
    fault_site = 0;
    fault_resume = resume;
    fault_armed = 1;
}

void fault_disarm(void)
{
    fault_armed = 0;
}

void print_fault(const char *name)
{
    printf("%s: vector=%u err=0x%04x eip=0x%08x", name,
           last_fault.vector, last_fault.err, last_fault.eip);
    if (last_fault.vector == VEC_PF)
        printf(" cr2=0x%08x", last_fault.cr2);
    print("\n");
}

int check_fault(const char *name, uint32_t vec, uint32_t err, uint32_t eip, uint32_t cr2)
{
    if (fault_armed) {
        fault_armed = 0;
        printf("%s: no fault\n", name);
        fail(name, "expected vector %u, no fault happened", vec);
        return 0;
    }
    print_fault(name);
    if (last_fault.vector != vec) {
        fail(name, "vector %u, expected %u", last_fault.vector, vec);
        return 0;
    }
    if (last_fault.err != err) {
        fail(name, "err 0x%04x, expected 0x%04x", last_fault.err, err);
        return 0;
    }
    if (last_fault.eip != eip) {
        fail(name, "eip 0x%08x, expected 0x%08x", last_fault.eip, eip);
        return 0;
    }
    if (vec == VEC_PF && last_fault.cr2 != cr2) {
        fail(name, "cr2 0x%08x, expected 0x%08x", last_fault.cr2, cr2);
        return 0;
    }
    pass(name);
    return 1;
}

/* ---------------------------------------------------------------- ring 3 */

void user_return(struct trapframe *f, uint32_t value)
{
    user_exit_frame = *f;
    user_retval = value;
    in_user = 0;
    ctx_restore(&user_ctx, 1);
}

uint32_t enter_user(uint32_t eip, uint32_t esp, uint32_t eflags)
{
    tss.esp0 = (uint32_t)kstack_top;
    if (ctx_save(&user_ctx) == 0) {
        in_user = 1;
        user_iret(eip, esp, (eflags | EFL_1) & ~EFL_VM);
    }
    return user_retval;
}

uint32_t run_user(uint32_t (*fn)(uint32_t), uint32_t arg, uint32_t eflags)
{
    uint32_t *sp = (uint32_t *)&ustack[USTACK_SIZE - 8];
    sp[0] = (uint32_t)user_exit_trampoline;
    sp[1] = arg;
    return enter_user((uint32_t)fn, (uint32_t)sp, eflags);
}

uint32_t enter_v86(const struct v86_regs *r)
{
    uint32_t frame[9] = {
        r->ip, r->cs, r->eflags | EFL_VM | EFL_1, r->sp, r->ss,
        r->es, r->ds, r->fs, r->gs,
    };
    tss.esp0 = (uint32_t)kstack_top;
    if (ctx_save(&user_ctx) == 0) {
        in_user = 1;
        v86_iret(frame);
    }
    return user_retval;
}

/* ---------------------------------------------------------------- syscalls */

static void syscall_handler(struct trapframe *f)
{
    switch (f->eax) {
    case SYS_EXIT:
        user_return(f, f->ebx);
    case SYS_PUTC:
        serial_putc((char)f->ebx);
        f->eax = 0;
        break;
    case SYS_WRITE: {
        const char *p = (const char *)f->ebx;
        for (uint32_t i = 0; i < f->ecx; i++)
            serial_putc(p[i]);
        f->eax = f->ecx;
        break;
    }
    case SYS_PUTS:
        print((const char *)f->ebx);
        f->eax = 0;
        break;
    case SYS_PUTHEX:
        printf("0x%08x", f->ebx);
        f->eax = 0;
        break;
    default:
        if (syscall_hook && syscall_hook(f))
            break;
        printf("unknown syscall %u from eip=0x%08x\n", f->eax, f->eip);
        f->eax = (uint32_t)-1;
        break;
    }
}
