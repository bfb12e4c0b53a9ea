/*
 * ends -- the ways a guest can end the machine, one per argument:
 *   triple   an empty IDT and an INT3: #BP, #GP and #DF cannot be
 *            delivered, so the CPU shuts down (a triple fault; SDM Vol.
 *            3A §6.15, Interrupt 8); QEMU with -no-reboot then exits;
 *   reset    the keyboard controller's reset pulse (command 0xfe to port
 *            0x64), which resets the PC;
 *   port92   the fast reset bit of system control port A (0x92 bit 0);
 *   hlt      CLI; HLT: nothing can ever wake the CPU (bare QEMU waits
 *            forever; the monitor ends the run and says why);
 *   masked   STI; HLT with every line masked at the PICs: the same.
 * It prints what it is about to do, then does it.  tests/run.sh checks
 * that COM1 matches bare QEMU's and that the monitor names the end on
 * COM2 with its own exit status.
 */
#include "guest.h"

int
main(uint32_t magic, struct multiboot_info *mbi)
{
    char arg[16];
    guest_arg(magic, mbi, arg, sizeof arg);
    printf("ends: %s\n", arg);
    cpu_init();
    if (!strcmp(arg, "triple")) {
        struct dtr none = { 0, 0 };
        lidt(&none);
        __asm__ volatile("int3");
    } else if (!strcmp(arg, "reset")) {
        outb(0x64, 0xfe);
    } else if (!strcmp(arg, "port92")) {
        outb(0x92, inb(0x92) | 1);
    } else if (!strcmp(arg, "hlt")) {
        __asm__ volatile("cli; hlt");
    } else if (!strcmp(arg, "masked")) {
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
        __asm__ volatile("sti; hlt");
    }
    printf("ends: still running after \"%s\"\n", arg);
    return 1;
}
