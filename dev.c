/*
 * dev.c -- the virtual devices, and the monitor's own serial log.
 *
 * The guest sees an ISA PC (docs/00-overview.md).  Every port access it
 * makes - a callout from translated code, or a #GP from direct execution
 * - lands in dev_in() or dev_out().  COM1 belongs to the guest: its
 * virtual 16550 forwards transmitted bytes to the host's COM1, so the
 * guest's console under the monitor is byte-for-byte comparable with the
 * same guest on bare QEMU.  COM2 is the monitor's log.  The
 * isa-debug-exit port passes straight through, so QEMU's exit status is
 * the guest's.
 *
 * Deviation: first form.  The 16550 transmits only (polled, no
 * interrupts, no receive); the 8259A pair records its initialization and
 * mask but delivers no interrupts; there is no PIT or CMOS yet, and of
 * the 8042 only the A20 gate and the reset line (V:050).
 * Ports nobody claims read as all ones, as on an empty ISA bus.
 *
 * Hardware:   National Semiconductor PC16550D data sheet (registers);
 *             Intel 8259A data sheet (ICW1-4, OCW1-3).
 * Runs in:    VMM, ring 0, interrupts off.
 */
#include "vmm.h"

#define COM1 0x3f8
#define COM2 0x2f8
#define EXIT_PORT 0xf4

/* ---- The monitor's log on the host's COM2 ---- */

void
log_putc(char c)
{
    for (int i = 0; i < 100000 && !(inb(COM2 + 5) & 0x20); i++)
        ;
    outb(COM2, c);
}

static void
host_com1_putc(u8 c)
{
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
        ;
    outb(COM1, c);
}

/* ---- 16550A UART (COM1) ---- */

static struct uart {
    u8 ier, lcr, mcr, scr, dll, dlm, fcr;
} com1 = { .dll = 0x0c };       /* 9600 baud after reset */

static u8
uart_read(struct uart *u, int reg)
{
    int dlab = u->lcr & 0x80;
    switch (reg) {
    case 0: return dlab ? u->dll : 0;                  /* RBR: nothing received */
    case 1: return dlab ? u->dlm : u->ier;
    case 2: return 0x01 | ((u->fcr & 1) ? 0xc0 : 0);   /* IIR: no interrupt pending */
    case 3: return u->lcr;
    case 4: return u->mcr;
    case 5: return 0x60;                                /* LSR: THR and shifter empty */
    case 6: return (u->mcr & 0x10) ? ((u->mcr & 0x0c) << 4) | ((u->mcr & 0x01) << 5) |
                                     ((u->mcr & 0x02) << 3) : 0xb0;    /* MSR */
    default: return u->scr;
    }
}

static void
uart_write(struct uart *u, int reg, u8 val)
{
    int dlab = u->lcr & 0x80;
    switch (reg) {
    case 0:
        if (dlab)
            u->dll = val;
        else if (!(u->mcr & 0x10))      /* not in loopback */
            host_com1_putc(val);
        break;
    case 1:
        if (dlab)
            u->dlm = val;
        else
            u->ier = val & 0x0f;
        break;
    case 2: u->fcr = val & 0xc9; break;
    case 3: u->lcr = val; break;
    case 4: u->mcr = val & 0x1f; break;
    case 7: u->scr = val; break;
    }
}

/* ---- 8259A PIC pair ---- */

static struct pic {
    u8 imr, vector, icw_step, icw4, read_isr;
} pic[2];

static u8
pic_read(struct pic *p, int a0)
{
    if (a0)
        return p->imr;
    return 0;                   /* IRR and ISR: nothing pending or in service */
}

static void
pic_write(struct pic *p, int a0, u8 val)
{
    if (!a0 && (val & 0x10)) {          /* ICW1 */
        p->icw_step = 2;
        p->icw4 = val & 1;
        p->imr = 0;
    } else if (a0 && p->icw_step == 2) { /* ICW2: vector base */
        p->vector = val & 0xf8;
        p->icw_step = 3;
    } else if (a0 && p->icw_step == 3) { /* ICW3: cascade */
        p->icw_step = p->icw4 ? 4 : 0;
    } else if (a0 && p->icw_step == 4) { /* ICW4 */
        p->icw_step = 0;
    } else if (a0) {                    /* OCW1: the mask */
        p->imr = val;
    } else if (val & 0x08) {            /* OCW3 */
        if (val & 0x02)
            p->read_isr = val & 1;
    }
    /* OCW2 (EOI): nothing is ever in service yet. */
}

/*V:050 System control: the A20 gate and the reset line.  Two ISA-era
 * devices hold them.  Port 0x92, "system control port A": bit 1 gates
 * address line 20, and writing 1 to bit 0 resets the machine.  And the
 * 8042 keyboard controller's output port: bit 0 is the reset line (active
 * low), bit 1 the A20 gate; command 0xd1 writes it, 0xd0 reads it,
 * 0xdd and 0xdf clear and set A20, and commands 0xf0-0xff pulse the lines
 * their low four bits name - 0xfe, reset, being the one every PC
 * operating system knows.  Both drive the same A20 line, and the last
 * write wins, as on QEMU's PC.  A20 gates every physical address (mmu.c,
 * T:005); a reset ends the run as on bare QEMU with -no-reboot (vmm.c,
 * vm_reset).  Only this much of the 8042 exists for now. :*/
static u8 port92;               /* bit 1: A20 */
static struct i8042 {
    u8 status;                  /* bit 0: output full; 2: self-test passed; 3: last write was a command */
    u8 out;                     /* the output buffer */
    u8 pending;                 /* a command waiting for its data byte, or 0 */
    u8 outport;                 /* bit 0: not in reset; bit 1: A20 */
} kbc = { .status = 0x1c, .outport = 0x03 };

/* The state firmware leaves: SeaBIOS has opened A20 through port 0x92
 * before it starts a boot sector or Multiboot kernel; at reset (a ROM
 * guest) port 0x92 reads 0 and A20 is open all the same. */
void
dev_reset_state(int from_reset)
{
    port92 = from_reset ? 0 : 2;
}

static u8
kbc_read(struct vcpu *v, int cmdport)
{
    if (cmdport)
        return kbc.status;
    kbc.status &= ~1;
    return kbc.out;
}

static void
kbc_reply(u8 val)
{
    kbc.out = val;
    kbc.status |= 1;
}

static void
kbc_write(struct vcpu *v, int cmdport, u8 val)
{
    if (!cmdport) {
        kbc.status &= ~0x08;
        if (kbc.pending == 0xd1) {
            kbc.outport = val;
            mmu_set_a20(v, val & 2);
            if (!(val & 1))
                vm_reset(v, "the keyboard controller's reset line (output port bit 0 cleared)");
        }
        kbc.pending = 0;
        return;
    }
    kbc.status |= 0x08;
    kbc.pending = 0;
    if (val == 0xd0) {
        kbc_reply(kbc.outport);
    } else if (val == 0xd1) {
        kbc.pending = val;
    } else if (val == 0xdd || val == 0xdf) {
        kbc.outport = (kbc.outport & ~2) | (val == 0xdf ? 2 : 0);
        mmu_set_a20(v, val == 0xdf);
    } else if (val >= 0xf0 && !(val & 1)) {
        vm_reset(v, "the keyboard controller's reset pulse (command 0xfe)");
    }
}

/* Is a virtual interrupt waiting for the guest to set IF?  (Translated
 * STI and POPF check, bt.c.)  No device raises one yet. */
int
dev_irq_pending(struct vcpu *v)
{
    (void)v;
    return 0;
}

/* A port no device answers: reads give all ones, writes vanish, as on an
 * empty ISA bus.  Translated code emulates such accesses inline (bt.c). */
int
dev_port_is_empty(u16 port)
{
    return port == 0x80;
}

/* ---- Dispatch ---- */

static u8
port_read8(struct vcpu *v, u16 port)
{
    if (port == 0x92)
        return port92;
    if (port == 0x60 || port == 0x64)
        return kbc_read(v, port == 0x64);
    if (port >= COM1 && port < COM1 + 8)
        return uart_read(&com1, port - COM1);
    if (port == 0x20 || port == 0x21)
        return pic_read(&pic[0], port & 1);
    if (port == 0xa0 || port == 0xa1)
        return pic_read(&pic[1], port & 1);
    return 0xff;
}

static void
port_write8(struct vcpu *v, u16 port, u8 val)
{
    if (port == 0x92) {
        port92 = val & ~1;
        mmu_set_a20(v, val & 2);
        if (val & 1)
            vm_reset(v, "port 0x92 bit 0 (fast reset)");
    } else if (port == 0x60 || port == 0x64)
        kbc_write(v, port == 0x64, val);
    else if (port >= COM1 && port < COM1 + 8)
        uart_write(&com1, port - COM1, val);
    else if (port == 0x20 || port == 0x21)
        pic_write(&pic[0], port & 1, val);
    else if (port == 0xa0 || port == 0xa1)
        pic_write(&pic[1], port & 1, val);
}

/* A word or dword access to byte-wide devices is split into byte
 * accesses at consecutive ports, as the ISA bus does. */
int
dev_in(struct vcpu *v, u16 port, int size, u32 *val)
{
    v->st.io_exits++;
    *val = 0;
    for (int i = 0; i < size; i++)
        *val |= (u32)port_read8(v, port + i) << (8 * i);
    return OK;
}

int
dev_out(struct vcpu *v, u16 port, int size, u32 val)
{
    v->st.io_exits++;
    if (port == EXIT_PORT) {
        /* The guest ends the run: report, then pass the write through so
         * QEMU exits with the guest's own status. */
        cprintf("vmm: guest wrote %x to the exit port\n", val);
        vmm_stats(v);
        vmm_integrity();
        if (size == 1)
            outb(EXIT_PORT, val);
        else if (size == 2)
            outw(EXIT_PORT, val);
        else
            outl(EXIT_PORT, val);
        vm_stop(v, "the exit port did not end the run");
        return STOP;
    }
    for (int i = 0; i < size; i++)
        port_write8(v, port + i, val >> (8 * i));
    return OK;
}

void
dev_init(void)
{
    /* COM2 for the log: 115200 8N1, FIFO on. */
    outb(COM2 + 1, 0);
    outb(COM2 + 3, 0x80);
    outb(COM2 + 0, 1);
    outb(COM2 + 1, 0);
    outb(COM2 + 3, 0x03);
    outb(COM2 + 2, 0x07);
    /* The host PIC: remap to T_IRQ0 and mask everything. */
    outb(0x20, 0x11); outb(0x21, T_IRQ0); outb(0x21, 4); outb(0x21, 1);
    outb(0xa0, 0x11); outb(0xa1, T_IRQ0 + 8); outb(0xa1, 2); outb(0xa1, 1);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}
