/*
 * bootsect -- a boot sector that takes the machine from real mode to a
 * ring-3 program under paging, in 510 bytes.
 *
 * Tests:   started at 0000:7C00 by the firmware with DL = 0x80; notes DL
 *          and port 0x92; tests the A20 wrap (a byte at 0000:0500 against
 *          FFFF:0510, linear 0x100500) as the firmware left A20, after
 *          closing it through port 0x92, and after opening it through
 *          the keyboard controller (command 0xd1, output port 0xdf).  It
 *          prints these from protected mode as two words, bytes from the
 *          lowest: DL, port 0x92, A20 open as left, after closing; after
 *          opening again.  Then it
 *          loads a GDT, sets CR0.PE and far-jumps to 32-bit code; builds
 *          a page directory and table mapping the first 4 MiB, turns
 *          paging on, loads a TSS and an IDT whose vector 0x80 is a DPL-3
 *          gate; IRETs to ring 3, where a loop sums 1..100 and INT $0x80
 *          hands the result to the kernel, which prints it and CR0 and
 *          exits through port 0xf4.
 * Exercises: booting from real mode (load.c, D:006), real mode under
 *          translation, the A20 gate (dev.c, V:050; mmu.c, T:005), the
 *          switch to protected mode with segments loaded in real mode
 *          (docs/04-segments.md), then paging and direct execution of the
 *          ring-3 loop (docs/02-decision.md).
 * Monitor exits expected: callouts for the port I/O, LGDT, LIDT, LTR,
 *          MOV to CR0 and CR3, the far jump and IRET; #GP for INT $0x80
 *          from direct execution.
 *
 * Bare QEMU boots it with -drive file=bootsect.bin,format=raw; the
 * monitor takes it as its module (it recognizes the 55 AA signature).
 */
#define COM1 0x3f8
#define PD   0x10000
#define PT   0x11000

        .code16
        .text
        .globl _start
_start:
        cli
        xorw %ax, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw $0x7c00, %sp
        movw $0x600, %di                /* what real mode saw, printed later */
        movb %dl, %al                   /* DL from the firmware */
        stosb
        inb $0x92, %al
        stosb
        call a20_test                   /* as the firmware left it */
        inb $0x92, %al                  /* close A20 through port 0x92 */
        andb $0xfc, %al
        outb %al, $0x92
        call a20_test
        movb $0xd1, %al                 /* open it through the 8042 */
        outb %al, $0x64
        movb $0xdf, %al
        outb %al, $0x60
        call a20_test
        movb $0xff, %al                 /* mask every IRQ: the firmware left its */
        outb %al, $0x21                 /* 18.2 Hz timer on, and ring 3 runs with IF=1 */
        xorb %al, %al
        stosb
        stosb
        stosb

        lgdt gdtr
        movl %cr0, %eax
        orb $1, %al
        movl %eax, %cr0
        ljmpl $0x08, $pm32

/* Store 1 if 0000:0500 and FFFF:0510 (linear 0x100500) differ, 0 if the
 * write to the second landed on the first: A20 masked. */
a20_test:
        movw $0xffff, %ax
        movw %ax, %fs
        movb $0x11, 0x500
        movb $0x22, %fs:0x510
        cmpb $0x11, 0x500
        sete %al
        stosb
        ret

        .code32
pm32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw %ax, %fs
        movw %ax, %gs
        movl $0x9000, %esp
        /* Paging: the first 4 MiB, identity, user-accessible; the rest
         * of the page directory starts zeroed. */
        movl $PD, %edi
        xorl %eax, %eax
        movl $1024, %ecx
        rep stosl
        movl $PT, %edi
        movl $0x007, %eax
        movl $1024, %ecx
3:      stosl
        addl $0x1000, %eax
        loop 3b
        movl $(PT | 7), PD
        movl $PD, %eax
        movl %eax, %cr3
        movl %cr0, %eax
        orl $0x80010000, %eax           /* PG, WP */
        movl %eax, %cr0
        movw $0x28, %ax
        ltr %ax
        lidt idtr
        pushl $0x23                     /* SS */
        pushl $0x8000                   /* ESP */
        pushl $0x202                    /* EFLAGS: IF */
        pushl $0x1b                     /* CS */
        pushl $user
        iret

user:   xorl %eax, %eax
        movl $100, %ecx
4:      addl %ecx, %eax
        loop 4b
        int $0x80

syscall_80:
        pushl %eax
        movw $msg_boot, %si
        call puts32
        movl 0x600, %ebx
        call puthex32
        movb $' ', %al
        call putc32
        movl 0x604, %ebx
        call puthex32
        movw $msg_sum, %si
        call puts32
        popl %ebx
        call puthex32
        movw $msg_cr0, %si
        call puts32
        movl %cr0, %ebx
        call puthex32
        movb $'\n', %al
        call putc32
        movb $0, %al
        outb %al, $0xf4

puts32: movzwl %si, %esi
5:      lodsb
        testb %al, %al
        jz 6f
        call putc32
        jmp 5b
6:      ret

puthex32:
        movl $8, %ecx
7:      roll $4, %ebx
        movb %bl, %al
        andb $0x0f, %al
        addb $'0', %al
        cmpb $'9', %al
        jbe 8f
        addb $'a' - '0' - 10, %al
8:      call putc32
        loop 7b
        ret

putc32: movw $COM1, %dx
        outb %al, %dx
        ret

msg_boot: .asciz "bootsect: real mode saw "
msg_sum: .asciz "\nbootsect: ring 3 sum="
msg_cr0: .asciz " cr0="

        .p2align 3
gdt:    .quad 0
        .quad 0x00cf9a000000ffff        /* 0x08 code, ring 0 */
        .quad 0x00cf92000000ffff        /* 0x10 data, ring 0 */
        .quad 0x00cffa000000ffff        /* 0x1b code, ring 3 */
        .quad 0x00cff2000000ffff        /* 0x23 data, ring 3 */
        .word 0x67, tss                 /* 0x28 TSS, limit 0x67 (this sector is below 64 KiB) */
        .byte 0, 0x89, 0, 0
gdt_end:
gdtr:   .word gdt_end - gdt - 1
        .long gdt
/* The IDT: only vector 0x80 is ever used, so the table starts 0x80
 * entries before it, over whatever bytes precede it here. */
idtr:   .word 0x80 * 8 + 7
        .long idt_80 - 0x80 * 8
idt_80: .word syscall_80, 0x08, 0xee00, 0       /* P, DPL 3, 32-bit interrupt gate */
/* The TSS: the CPU reads only ESP0 and SS0 (offsets 4 and 8) when a
 * trap from ring 3 enters ring 0, so it starts 4 bytes before them. */
tss = . - 4
        .long 0x9000, 0x10

        .org 510
        .byte 0x55, 0xaa
