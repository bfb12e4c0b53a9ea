/*
 * isr.S -- the 256 IDT entry stubs, the common trap path, the setjmp-like
 * context switch used to come back from ring 3, and the iret sequences
 * that enter ring 3 and virtual-8086 mode.
 *
 * Trap frame, from low to high addresses (struct trapframe in guest.h):
 *   edi esi ebp esp ebx edx ecx eax   (pushal)
 *   gs fs es ds                       (pushed here)
 *   vector err                        (err = 0 when the CPU pushes none)
 *   eip cs eflags [esp ss [es ds fs gs]]   (pushed by the CPU)
 */

#define KDATA 0x10
#define UDATA 0x23
#define UCODE 0x1b

/* Each stub is 16 bytes long, so idt_stub(v) = isr_stubs + 16*v. */
    .text
    .p2align 4
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .p2align 4
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17)
    nop; nop                /* the CPU pushed an error code */
    .else
    pushl $0
    .endif
    pushl $vec
    jmp trap_common
    .set vec, vec + 1
    .endr
    .p2align 4
isr_stubs_end:

trap_common:
    pushl %ds
    pushl %es
    pushl %fs
    pushl %gs
    pushal
    movw $KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    cld
    pushl %esp
    call trap_dispatch
    addl $4, %esp
    .globl trap_return
trap_return:
    popal
    popl %gs
    popl %fs
    popl %es
    popl %ds
    addl $8, %esp           /* vector, err */
    iret

/*
 * int ctx_save(struct kctx *c): returns 0; ctx_restore(c, v) makes it
 * return v (never 0) a second time.  Saves EFLAGS too, so IOPL/AC/IF come
 * back exactly as they were when the excursion started.
 */
    .globl ctx_save
    .type ctx_save, @function
ctx_save:
    movl 4(%esp), %eax
    movl %ebx, 0(%eax)
    movl %esi, 4(%eax)
    movl %edi, 8(%eax)
    movl %ebp, 12(%eax)
    leal 4(%esp), %ecx      /* esp after our return */
    movl %ecx, 16(%eax)
    movl (%esp), %ecx       /* return address */
    movl %ecx, 20(%eax)
    pushfl
    popl 24(%eax)
    xorl %eax, %eax
    ret
    .size ctx_save, . - ctx_save

    .globl ctx_restore
    .type ctx_restore, @function
ctx_restore:
    movl 4(%esp), %edx
    movl 8(%esp), %eax
    testl %eax, %eax
    jnz 1f
    incl %eax
1:  movl 0(%edx), %ebx
    movl 4(%edx), %esi
    movl 8(%edx), %edi
    movl 12(%edx), %ebp
    movl 16(%edx), %esp
    pushl 24(%edx)
    popfl
    jmp *20(%edx)
    .size ctx_restore, . - ctx_restore

/*
 * void user_iret(uint32_t eip, uint32_t esp, uint32_t eflags): iret to
 * ring 3 with CS=0x1b, SS=DS=ES=FS=GS=0x23 and all general registers 0.
 */
    .globl user_iret
    .type user_iret, @function
user_iret:
    movl 4(%esp), %eax      /* eip */
    movl 8(%esp), %ecx      /* esp */
    movl 12(%esp), %edx     /* eflags */
    pushl $UDATA
    pushl %ecx
    pushl %edx
    pushl $UCODE
    pushl %eax
    movw $UDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    xorl %eax, %eax
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebp, %ebp
    iret
    .size user_iret, . - user_iret

/*
 * void v86_iret(const uint32_t frame[9]): frame = eip cs eflags esp ss es
 * ds fs gs (the order iret pops them); general registers 0.
 */
    .globl v86_iret
    .type v86_iret, @function
v86_iret:
    movl 4(%esp), %esi
    movl $9, %ecx
1:  pushl -4(%esi,%ecx,4)
    loop 1b
    xorl %eax, %eax
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebp, %ebp
    iret
    .size v86_iret, . - v86_iret

/*
 * Ring-3 code: where a function started by run_user() returns to.  Its
 * return value (EAX) becomes the SYS_EXIT value.
 */
    .globl user_exit_trampoline
user_exit_trampoline:
    movl %eax, %ebx
    movl $0, %eax           /* SYS_EXIT */
    int $0x80
    ud2

/* void reload_segments(void): CS=0x08 via far return, data segments 0x10. */
    .globl reload_segments
    .type reload_segments, @function
reload_segments:
    ljmp $0x08, $1f
1:  movw $KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    ret
    .size reload_segments, . - reload_segments

/* Ring-0 stack for traps from ring 3 and v86 (TSS esp0), and the default
 * ring-3 stack used by run_user(). */
    .bss
    .p2align 12
    .globl kstack, kstack_top, ustack, ustack_top
kstack:
    .skip 16384
kstack_top:
ustack:
    .skip 16384
ustack_top:

    .section .note.GNU-stack, "", @progbits
