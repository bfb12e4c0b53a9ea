/*
 * entry.S -- Multiboot v1 header and the guest's entry point.
 *
 * The boot loader (QEMU's -kernel, or the monitor) enters _start in 32-bit
 * protected mode with EAX = 0x2BADB002 and EBX = the multiboot info.  Before
 * touching anything we store EAX, EBX, the segment selectors, CR0 and EFLAGS
 * in .data (mov does not change flags; the only thing done before pushfl is
 * loading ESP), then clear .bss, set up COM1 and the PICs, and call
 * main(magic, mbi).  main's return value is the exit code.
 */

#define MB_MAGIC  0x1BADB002
#define MB_FLAGS  0x00000003        /* bit 0: page-align modules, bit 1: memory info */

    .section .multiboot, "a"
    .p2align 2
    .globl multiboot_header
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .data
    .p2align 2
    .globl entry_eax, entry_ebx, entry_eflags, entry_cr0, entry_esp
    .globl entry_cs, entry_ds, entry_es, entry_fs, entry_gs, entry_ss
entry_eax:    .long 0
entry_ebx:    .long 0
entry_eflags: .long 0
entry_cr0:    .long 0
entry_esp:    .long 0
entry_cs:     .long 0           /* selectors are stored with movw: upper half stays 0 */
entry_ds:     .long 0
entry_es:     .long 0
entry_fs:     .long 0
entry_gs:     .long 0
entry_ss:     .long 0

    .text
    .globl _start
    .type _start, @function
_start:
    movl %eax, entry_eax
    movl %ebx, entry_ebx
    movl %esp, entry_esp
    movw %cs, entry_cs
    movw %ds, entry_ds
    movw %es, entry_es
    movw %fs, entry_fs
    movw %gs, entry_gs
    movw %ss, entry_ss
    movl %cr0, %eax
    movl %eax, entry_cr0
    movl $boot_stack_top, %esp
    pushfl
    popl entry_eflags

    /* From here on we own the machine.  Clear .bss (stacks included). */
    cld
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    movl $boot_stack_top, %esp
    xorl %ebp, %ebp
    call lib_init

    pushl entry_ebx
    pushl entry_eax
    call main
    addl $8, %esp
    pushl %eax
    call exit
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start

    .bss
    .p2align 12
    .globl boot_stack, boot_stack_top
boot_stack:
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
