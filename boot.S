/*
 * boot.S -- Multiboot entry, the 256 trap stubs, and the world switch.
 *
 * QEMU loads the monitor at physical 0x400000 and jumps to _start with
 * paging off.  We map the monitor at VMM_BASE (0xffc00000, the top 4 MiB
 * of the linear space, docs/00-overview.md), switch to it and call
 * vmm_main().  From then on the monitor runs only at ring 0 with
 * interrupts off; the guest runs at ring 1 (translated) or ring 3
 * (direct), and every exception or interrupt brings the CPU back here.
 *
 * The world switch (vm_enter) saves the monitor's callee-saved registers,
 * loads the guest's from struct frame and IRETs.  A trap from the guest
 * pushes its frame straight into the same struct frame (the TSS's ESP0
 * points just past it), and then unwinds to vm_enter's caller, so that to
 * C code vm_enter() is an ordinary call that returns on the next exit.
 *
 * Hardware:   SDM Vol. 3A §6.12 (Exception and Interrupt Handling),
 *             §4.3 (32-Bit Paging), §7.2.1 (TSS); Multiboot spec 0.6.96 §3.
 * Runs in:    ring 0.
 * Read after: vmm.h (struct frame).
 */
#include "x86.h"

#define V2P(x) ((x) - VMM_BASE + VMM_PHYS)

/* Offsets into struct frame (vmm.h); vmm.c checks them with static asserts. */
#define F_TRAPNO 48
#define F_EIP    56
#define F_CS     60
#define F_EFLAGS 64

/* ---- Multiboot header: Multiboot spec §3.1.1 ---- */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003     /* page-align modules, give memory info */
        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

/* ---- Entry, paging off, running at physical addresses ---- */
        .text
        .globl _start
_start:
        cli
        cld
        mov %eax, %ebp                  /* Multiboot magic */
        mov %ebx, %esi                  /* physical address of multiboot_info */

        /* Zero .bss (QEMU's ELF loader does too; a reset might not). */
        mov $V2P(__bss_start), %edi
        mov $V2P(__bss_end), %ecx
        sub %edi, %ecx
        shr $2, %ecx
        xor %eax, %eax
        rep stosl

        /* One page table maps the monitor's 4 MiB, supervisor-only, from
         * physical VMM_PHYS.  Installed twice in the page directory: at
         * VMM_BASE, where the monitor lives, and at VMM_PHYS itself, an
         * identity map for the few instructions that run between enabling
         * paging and the jump to VMM_BASE. The last NSLOTS entries are
         * left for temporary mappings (mmu.c). */
        mov $V2P(vmm_pt), %edi
        mov $(VMM_PHYS | PTE_P | PTE_W), %eax
        mov $1024, %ecx
1:      mov %eax, (%edi)
        add $PGSIZE, %eax
        add $4, %edi
        loop 1b
        mov $(V2P(vmm_pt) + PTE_P + PTE_W), %eax
        mov %eax, V2P(boot_pd) + 4 * (VMM_PHYS >> PDXSHIFT)
        mov %eax, V2P(boot_pd) + 4 * (VMM_BASE >> PDXSHIFT)
        mov $V2P(boot_pd), %eax
        mov %eax, %cr3
        mov %cr0, %eax
        or $(CR0_PG | CR0_WP), %eax
        mov %eax, %cr0
        mov $high, %eax
        jmp *%eax

high:   /* Now at VMM_BASE.  Drop the identity map and call C. */
        movl $0, boot_pd + 4 * (VMM_PHYS >> PDXSHIFT)
        mov %cr3, %eax
        mov %eax, %cr3
        mov $vmm_stack_top, %esp
        push %esi
        push %ebp
        call vmm_main
1:      cli
        hlt
        jmp 1b

/* ---- The entry page(s) ----
 * The trap stubs, the common trap path and vm_enter live in .text.entry,
 * which the linker gives pages of its own: with the IDT, the GDT, the TSS
 * and the vCPU's frame page they are all of the monitor that direct
 * execution's restricted view maps (mmu.c, mmu_de_view). */
        .section .text.entry, "ax"

/* ---- The trap stubs ----
 * One per vector.  Each pushes a zero where the CPU pushes no error code
 * (the list is T_HAS_ERRCODE in x86.h), then its vector number. */
        .altmacro
.macro stub n
        .align 8
vector\n:
        .if T_HAS_ERRCODE(\n) == 0
        pushl $0
        .endif
        pushl $\n
        jmp alltraps
.endm
        .set i, 0
        .rept 256
        stub %i
        .set i, i + 1
        .endr

/*
 * Common trap path.  Build the rest of struct frame: the four data
 * segment registers, then PUSHAD.  If the trap came from the guest (ring
 * 1, ring 3 or virtual-8086 mode), ESP now points at the start of the
 * vCPU's frame; unwind to vm_enter's caller.  If it came from the monitor
 * itself (ring 0), the frame is on the monitor's stack and C decides:
 * a fault inside vm_enter is a guest entry failure, anything else a bug.
 */
alltraps:
        cld                             /* the guest's DF must not reach C code */
        pushl %ds
        pushl %es
        pushl %fs
        pushl %gs
        pushal
        /* Back to the monitor's full view.  Translated code at ring 1
         * runs in it already: its shadow directory maps the monitor's
         * 4 MiB through vmm_pt, as every directory the monitor builds
         * does, so the trap needs no CR3 load - which would discard the
         * whole TLB at every callout (SDM Vol. 3A §4.10.4.1).  The patent
         * puts the monitor in every address space for this reason.  From
         * anything else (directly executed guest code, whose view lacks
         * the monitor's data, or the monitor itself): boot.S's own page
         * directory, which maps the monitor's 4 MiB and nothing else. */
        testl $EFLAGS_VM, F_EFLAGS(%esp)
        jnz 1f
        movzbl F_CS(%esp), %eax
        and $3, %eax
        cmp $1, %eax
        je 2f
1:      mov $V2P(boot_pd), %eax
        mov %eax, %cr3
2:      mov $KDS, %eax
        mov %eax, %ds
        mov %eax, %es
        testl $EFLAGS_VM, F_EFLAGS(%esp)
        jnz from_guest
        testl $3, F_CS(%esp)
        jnz from_guest
        /* From ring 0: C says whether to resume (the boot-time limit
         * probe) or to unwind (a fault inside vm_enter). */
        push %esp
        call vmm_monitor_trap
        add $4, %esp
        test %eax, %eax
        jnz from_guest
        popal
        popl %gs
        popl %fs
        popl %es
        popl %ds
        add $8, %esp
        iret
from_guest:
        mov host_esp, %esp
        pop %edi
        pop %esi
        pop %ebx
        pop %ebp
        ret

/*
 * void vm_enter(struct frame *f, u32 cr3)
 * Switch to the page directory the guest runs on (unless it is the one
 * in use: whoever changes a directory in use flushes the TLB itself),
 * load the guest's registers from *f and IRET into it.  Returns (through from_guest above)
 * when the guest next traps, with *f filled in.  Everything after the
 * CR3 load is in pages every view maps: this code and the frame.
 */
        .globl vm_enter, vm_enter_start, vm_enter_iret, vm_enter_end
vm_enter:
        push %ebp
        push %ebx
        push %esi
        push %edi
        mov %esp, host_esp
        mov 24(%esp), %edx              /* cr3 */
        mov 20(%esp), %esp              /* the frame */
        mov %cr3, %eax                  /* the same directory: keep the TLB */
        cmp %eax, %edx
        je vm_enter_start
        mov %edx, %cr3
vm_enter_start:
        popal
        popl %gs
        popl %fs
        popl %es
        popl %ds
        add $8, %esp                    /* trapno and err */
vm_enter_iret:
        iret
vm_enter_end:
        .text

/* The table of stub addresses, for vmm.c's IDT. */
        .section .rodata
        .globl trap_vectors
        .align 4
trap_vectors:
.macro vecaddr n
        .long vector\n
.endm
        .set i, 0
        .rept 256
        vecaddr %i
        .set i, i + 1
        .endr

        .data
        .globl host_esp
host_esp:
        .long 0

        .bss
        .align PGSIZE
        .globl boot_pd, vmm_pt
boot_pd:
        .space PGSIZE
vmm_pt:
        .space PGSIZE
        .align 16
        .globl vmm_stack_top
vmm_stack:
        .space 65536
vmm_stack_top:
