/*
 * rom -- a 64 KiB ROM image started at the reset vector.
 *
 * Tests:   the CPU's state at reset: EDX (the CPUID signature), CR0,
 *          EFLAGS, port 0x92; a byte read through CS before the first far
 *          jump (CS F000 based at FFFF0000: the ROM at the top of the
 *          address space) and after it (F000 based at F0000: the ROM's
 *          copy below 1 MiB); a write to the ROM, which changes nothing;
 *          RAM at 0x500 and the A20 wrap as reset leaves it; then a GDT
 *          loaded from the ROM, protected mode, and from 32-bit code the
 *          last 16 bytes of the address space (the reset vector's far
 *          jump) and of the 1 MiB copy; exit through port 0xf4.
 * Exercises: the ROM loader and the reset state (load.c, D:006); the ROM
 *          mapped in guest-physical memory (mmu.c, T:005); a CS segment
 *          that is non-reversible in real mode from the first instruction
 *          (docs/04-segments.md); CS-prefixed accesses near the monitor's
 *          region in 16-bit translated code (bt.c, software truncation);
 *          code fetched from the monitor's top 4 MiB (the decision's
 *          "access to the monitor's region").
 * Monitor exits expected: callouts for port I/O, the far jumps, LGDT and
 *          MOV to CR0; a truncation check on the first CS-prefixed read,
 *          run relocated.
 *
 * Bare QEMU runs it with -bios rom.bin; the monitor with boot=rom.
 */
#define COM1 0x3f8

        .code16
        .text
        .globl _start
_start:                                 /* offset 0: linear f0000 and ffff0000 */
        .ascii "ROM!"
start16:
        movl %edx, %ebp                 /* the CPU signature, before anything */
        movl %eax, %esi
        movw $0x0000, %ax
        movw %ax, %ss
        movw $0x7000, %sp
        movl %ebp, 0x600                /* results, at 0000:0600 */
        movl %esi, 0x604
        movl %cr0, %eax
        movl %eax, 0x608
        pushfl
        popl %eax
        movl %eax, 0x60c
        inb $0x92, %al
        movb %al, 0x610
        movb %cs:0, %al                 /* 'R' from f0000 */
        movb %al, 0x612
        movw $0xf000, %ax
        movw %ax, %ds
        movb %ds:1, %bl
        movb $'x', %ds:1                /* ROM: the write vanishes */
        movb %ds:1, %al
        xorw %cx, %cx
        movw %cx, %ds
        movb %al, 0x613
        movb %bl, 0x615
        xorw %ax, %ax
        movw %ax, %ds
        movw $0xffff, %ax
        movw %ax, %es
        movb $0x11, 0x500
        movb $0x22, %es:0x510
        movb 0x500, %al                 /* 0x22 if A20 is masked */
        movb %al, 0x614

        lgdtl %cs:(gdtr - _start)
        movl %cr0, %eax
        orb $1, %al
        movl %eax, %cr0
        ljmpl $0x08, $pm32

        .code32
pm32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl $0x7000, %esp
        movl 0xfffffff0, %eax           /* the reset vector's bytes, at the top */
        movl %eax, 0x618
        movl 0x000ffff0, %eax           /* and below 1 MiB */
        movl %eax, 0x61c
        movl $msg, %esi
        call puts
        movl $0x600, %edi
        movl $8, %ecx
1:      movl (%edi), %ebx
        call puthex32
        movb $' ', %al
        call putc
        addl $4, %edi
        loop 1b
        movb $'\n', %al
        call putc
        movb $0, %al
        outb %al, $0xf4

puts:   lodsb
        testb %al, %al
        jz 2f
        call putc
        jmp puts
2:      ret

puthex32:
        pushl %ecx
        movl $8, %ecx
3:      roll $4, %ebx
        movb %bl, %al
        andb $0x0f, %al
        addb $'0', %al
        cmpb $'9', %al
        jbe 4f
        addb $'a' - '0' - 10, %al
4:      call putc
        loop 3b
        popl %ecx
        ret

putc:   movw $COM1, %dx
        outb %al, %dx
        ret

msg:    .asciz "rom: edx eax cr0 eflags p92/cs/cs/rom a20 top low: "

        .p2align 3
gdt:    .quad 0
        .quad 0x00cf9a000000ffff        /* 0x08 code */
        .quad 0x00cf92000000ffff        /* 0x10 data */
gdt_end:
gdtr:   .word gdt_end - gdt - 1
        .long gdt

        .code16
        .org 0xfff0
reset:                                  /* the CPU starts here: ffff fff0 */
        movb %cs:3, %al                 /* '!' from ffff0003: CS is based at ffff0000 */
        movb %al, 0x611
        ljmp $0xf000, $(start16 - _start)
        .org 0x10000
