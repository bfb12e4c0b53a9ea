/*
 * dev.c -- the virtual devices, virtual time, and the monitor's own log.
 *
 * The guest sees an ISA PC (docs/10-devices.md).  Every port access it
 * makes - a callout from translated code, or a #GP from direct execution
 * - lands in dev_in() or dev_out(), and each device answers as the
 * guest's driver expects the chip to:
 *   - the 8259A pair (V:010): IRR, ISR, IMR, the initialization and
 *     operation command words, EOIs, the cascade on IR2;
 *   - the 8254 timer (V:020), whose time is the host's: the monitor
 *     reads the TSC, calibrated against the host's own 8254 at boot, and
 *     asks the host's channel 0 for an interrupt when the guest's next
 *     tick is due;
 *   - a 16550A on COM1 (V:030), whose transmitter forwards to the host's
 *     COM1 (so the guest's console under the monitor is byte-for-byte
 *     comparable with the same guest on bare QEMU) and whose receiver is
 *     fed by the host's COM1 interrupt;
 *   - the CMOS RAM and real-time clock (V:040), its clock the host's;
 *   - the 8042 keyboard controller and port 0x92 (V:050): A20, reset,
 *     and enough of a keyboard for a driver's probe;
 *   - port 0x80 and every port nobody claims, which read as all ones.
 * COM2 is the monitor's log.  The isa-debug-exit port passes straight
 * through, so QEMU's exit status is the guest's.
 *
 * Virtual interrupts: a device raises an IRQ on the virtual PIC
 * (pic_raise); the main loop (vmm.c, D:020) asks dev_irq_pending and,
 * when the guest's IF and interrupt shadow allow, takes the vector from
 * dev_irq_ack and delivers it through the guest's IDT.  Host interrupts
 * (the timer deadline, COM1 input) reach the monitor in every guest mode,
 * because the real IF is 1 whenever the guest runs (direct.c, bt.c); each
 * is an exit, after which dev_poll brings the devices up to date.
 *
 * Hardware:   Intel 8259A and 8254 data sheets; National Semiconductor
 *             PC16550D data sheet; Motorola MC146818A data sheet; the IBM
 *             PC AT technical reference (8042, port 0x61, port 0x92).
 * Runs in:    VMM, ring 0, interrupts off (on only in dev_idle's HLT).
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

/* ---- The host's PICs ----
 * Remapped to T_IRQ0 at boot (dev_init); only the lines the monitor uses
 * are unmasked: IRQ0 (the host timer, armed for the guest's next timer
 * deadline) while the guest can take timer interrupts, and IRQ4 (input
 * on the host's COM1) always. */
#define HOST_IRQ_TIMER 0
#define HOST_IRQ_COM1  4
static u8 host_imr = 0xff;

static void
host_unmask(int irq, int on)
{
    u8 m = on ? host_imr & ~(1u << irq) : host_imr | (1u << irq);
    if (m != host_imr)
        outb(0x21, host_imr = m);
}

/* ==================================================================== */
/*V:010 The 8259A pair.  Eight request lines each; the slave's output is
 * the master's IR2.  A rising edge on a line sets its bit in the interrupt
 * request register (IRR); the highest-priority request whose mask bit
 * (IMR) is clear and that outranks everything in service (ISR) is the
 * one the CPU gets: acknowledging it moves the bit from IRR to ISR, and
 * the handler's EOI clears it again.  Priority is fixed, IR0 highest, and
 * the slave's eight lines rank where IR2 does.  Programming follows the
 * data sheet: ICW1 (bit 4 set, written to the even port) starts the
 * sequence and clears IMR and ISR; ICW2 is the vector base; ICW3 the
 * cascade wiring; ICW4 (if ICW1 asked for one) auto-EOI among others.
 * After that the odd port is OCW1, the mask; on the even port OCW2 ends
 * an interrupt (non-specific EOI: the highest bit in service; specific:
 * the one named) and OCW3 chooses whether reads of the even port show
 * IRR or ISR.  Linux acknowledges with a specific EOI to the slave and
 * one for IR2 to the master, and reads ISR to tell spurious interrupts
 * from real ones, so all of that matters.
 * Deviation: the priority rotation commands and special mask and poll
 * modes act only as the EOIs they include; no spurious IR7/IR15 is ever
 * produced, since a request is acknowledged only while it is pending. :*/
static struct pic {
    u8 irr, isr, imr;
    u8 vector;                  /* ICW2: the vector of IR0 */
    u8 icw_step;                /* 0: operating; 2-4: the next ICW expected */
    u8 icw4_needed, auto_eoi;
    u8 read_isr;                /* OCW3: even-port reads show ISR, not IRR */
    u8 elcr;                    /* edge/level control (port 0x4d0/0x4d1), kept as written */
} pic[2];
#define MAX_OWED 64
static u32 ticks_owed;           /* IRQ0 ticks due, not yet delivered (V:020) */

/* The highest-priority line of p that may interrupt now, or -1. */
static int
pic_best(struct pic *p, u8 extra)
{
    u8 req = (p->irr | extra) & ~p->imr;
    for (int i = 0; i < 8; i++) {
        if (p->isr & (1u << i))
            return -1;          /* in service: it and everything below it wait */
        if (req & (1u << i))
            return i;
    }
    return -1;
}

/* Is the slave asking for its line on the master? */
static u8
slave_line(void)
{
    return pic_best(&pic[1], 0) >= 0 ? 0x04 : 0;
}

void
pic_raise(int irq)
{
    pic[irq >> 3].irr |= 1u << (irq & 7);
}

int
dev_irq_pending(struct vcpu *v)
{
    (void)v;
    if (!(pic[0].irr | pic[1].irr))
        return 0;               /* the common case, asked at every entry to translated code */
    return pic_best(&pic[0], slave_line()) >= 0;
}

/* The CPU's interrupt acknowledge: the vector of the best request, with
 * its ISR bit set (unless the chip is in auto-EOI mode). */
int
dev_irq_ack(struct vcpu *v)
{
    (void)v;
    int m = pic_best(&pic[0], slave_line());
    if (m < 0)
        return -1;
    struct pic *p = &pic[0];
    int line = m;
    if (m == 2 && slave_line()) {
        if (!pic[0].auto_eoi)
            pic[0].isr |= 0x04;
        pic[0].irr &= ~0x04;
        p = &pic[1];
        line = pic_best(p, 0);
    }
    p->irr &= ~(1u << line);
    if (!p->auto_eoi)
        p->isr |= 1u << line;
    if (p == &pic[0] && line == 0 && ticks_owed && --ticks_owed)
        p->irr |= 1;            /* the next tick owed, delivered after this one's EOI */
    v->st.irqs[(p == &pic[1]) * 8 + line]++;
    return p->vector + line;
}

static u8
pic_read(struct pic *p, int a0)
{
    if (a0)
        return p->imr;
    return p->read_isr ? p->isr : p->irr | (p == &pic[0] ? slave_line() : 0);
}

static void
pic_write(struct pic *p, int a0, u8 val)
{
    if (!a0 && (val & 0x10)) {                  /* ICW1 */
        p->icw_step = 2;
        p->icw4_needed = val & 1;
        p->imr = p->isr = p->irr = 0;
        p->auto_eoi = 0;
        p->read_isr = 0;
    } else if (a0 && p->icw_step == 2) {        /* ICW2: vector base */
        p->vector = val & 0xf8;
        p->icw_step = 3;
    } else if (a0 && p->icw_step == 3) {        /* ICW3: the cascade (always IR2 here) */
        p->icw_step = p->icw4_needed ? 4 : 0;
    } else if (a0 && p->icw_step == 4) {        /* ICW4 */
        p->auto_eoi = (val >> 1) & 1;
        p->icw_step = 0;
    } else if (a0) {                            /* OCW1: the mask */
        p->imr = val;
    } else if (val & 0x08) {                    /* OCW3 */
        if (val & 0x02)
            p->read_isr = val & 1;
    } else {                                    /* OCW2 */
        int eoi = (val >> 5) & 7;               /* R, SL, EOI */
        if (eoi == 1 || eoi == 5) {             /* non-specific EOI (with rotation: 5) */
            for (int i = 0; i < 8; i++)
                if (p->isr & (1u << i)) {
                    p->isr &= ~(1u << i);
                    break;
                }
        } else if (eoi == 3 || eoi == 7) {      /* specific EOI */
            p->isr &= ~(1u << (val & 7));
        }
    }
}

/* ==================================================================== */
/*V:020 Virtual time and the 8254.  The guest's timer must run at the
 * rate of the clock on the wall (or, under -icount, of QEMU's virtual
 * clock), whatever the monitor does meanwhile.  Its source is the TSC:
 * at boot the monitor counts TSC ticks over 10 ms of the host's own 8254
 * (channel 2, whose gate port 0x61 controls: the way PC firmware and
 * Linux calibrate), and from then on the virtual 8254's input clock,
 * 1.193182 MHz, is the TSC divided by that ratio.  Nothing is counted
 * while the monitor runs: a counter's value is computed from the time
 * its count was written, when the guest reads it.
 *
 * Each of the three channels has a mode, an access mode (low byte, high
 * byte, or both through a flip-flop), a reload value and the time it was
 * loaded; the counter latch command and the read-back command freeze a
 * value or the status byte for the next read.  Modes 0 (interrupt on
 * terminal count), 2 (rate generator) and 3 (square wave) are modelled
 * exactly, 1, 4 and 5 as near relatives of 0.  Channel 0's output is
 * IRQ0: in modes 2 and 3 one tick per period, in mode 0 one at the
 * terminal count.  Channel 2's gate and output are bits 0 and 5 of port
 * 0x61, and bit 4 there toggles with the DRAM refresh, every 15 us.
 *
 * A tick is due at a known time, so the monitor arms the host's channel
 * 0 (one-shot, mode 0) for that time and unmasks host IRQ0 - only while
 * the guest's own IRQ0 is unmasked.  The host interrupt is an exit from
 * the guest in any mode; dev_poll then raises the guest's IRQ0.  While
 * IRQ0 is masked nothing is armed, but its ticks still reach IRR, as the
 * 8259A latches a masked request: every access to the PIC brings the
 * timer up to date first, and that is the only way the guest can see
 * IRR.  Ticks the guest was too busy (or too long in the monitor) to
 * take coalesce into one request, as they do on the hardware when IRR is
 * already set.
 * Deviation: BCD counting is treated as binary. :*/
#define PIT_HZ 1193182u
u32 opt_hostirq;                /* hostirq=HZ (vmm.c) */
static u64 tsc_boot;            /* the TSC at calibration: virtual time 0 */
static u32 tsc_per_pit256;      /* TSC ticks per 8254 clock, times 256 */

/* Virtual time: 8254 input clocks since boot. */
static u64
pit_now(void)
{
    return ((rdtsc() - tsc_boot) << 8) / tsc_per_pit256;
}

/* Whole seconds of virtual time since boot (for statsevery=). */
u32
dev_seconds(void)
{
    return (u32)(pit_now() / PIT_HZ);
}

static u64
pit_to_tsc(u64 t)
{
    return tsc_boot + ((t * tsc_per_pit256) >> 8);
}

static struct pitch {
    u8 mode, rw, bcd;
    u8 wmsb, rmsb;              /* flip-flops: the next write / read is the high byte */
    u8 latched, status_latched;
    u16 latch;
    u8 status;
    u8 wlow;                    /* the low byte written, waiting for the high one */
    u8 loaded;                  /* a count has been written since the mode */
    u8 gate;
    u32 reload;                 /* 1..65536 */
    u64 start;                  /* when counting began (8254 clocks) */
    u64 ticks_done;             /* channel 0: periods already turned into IRQ0 */
} pit[3];
static u8 port61;               /* bits 0-3 as written */

/* Elapsed clocks since the channel started, 0 if it is not counting. */
static u64
pit_elapsed(struct pitch *c, u64 now)
{
    if (!c->loaded || !c->gate || now < c->start)
        return 0;
    return now - c->start;
}

static u16
pit_count(struct pitch *c, u64 now)
{
    u64 e = pit_elapsed(c, now);
    u32 n = c->reload;
    switch (c->mode) {
    case 2:
        return n - (u32)(e % n);
    case 3: {
        u32 ph = (u32)(e % n), half = (n + 1) / 2;
        return (ph < half ? n - 2 * ph : n - 2 * (ph - half)) & ~1u;
    }
    default:                    /* 0, 1, 4, 5: count down through zero and wrap */
        return (u16)(n - (u32)e);
    }
}

static int
pit_out(struct pitch *c, u64 now)
{
    if (!c->loaded)
        return c->mode != 0;
    u64 e = pit_elapsed(c, now);
    u32 n = c->reload;
    switch (c->mode) {
    case 0: case 1:
        return e >= n;
    case 2:
        return e % n != n - 1;
    case 3:
        return e % n < (n + 1) / 2;
    default:
        return e != n;
    }
}

/* The next time channel 0 raises IRQ0, or 0 if it never will. */
static u64
pit0_deadline(void)
{
    struct pitch *c = &pit[0];
    if (!c->loaded)
        return 0;
    if (c->mode == 2 || c->mode == 3)
        return c->start + (c->ticks_done + 1) * c->reload;
    return c->ticks_done ? 0 : c->start + c->reload;
}

/* The host's channel 0 is armed for this deadline (TSC), or 0. */
static u64 armed_tsc, armed_for;

static void
host_arm(u64 deadline)
{
    if (deadline == armed_for)
        return;
    armed_for = deadline;
    if (!deadline) {
        armed_tsc = 0;
        host_unmask(HOST_IRQ_TIMER, 0);
        return;
    }
    armed_tsc = pit_to_tsc(deadline);
    u64 now = pit_now();
    u32 d = deadline > now + 1 ? (deadline - now > 0xffff ? 0xffff : (u32)(deadline - now)) : 1;
    outb(0x43, 0x30);                           /* channel 0, low then high byte, mode 0 */
    outb(0x40, d & 0xff);
    outb(0x40, d >> 8);
    host_unmask(HOST_IRQ_TIMER, 1);
}

/* Ticks due but not yet delivered.  Each acknowledged IRQ0 pays one
 * back and raises the next at once (dev_irq_ack), so that a guest that
 * spent a while with interrupts off, or in the monitor, still counts
 * every tick - a kernel that checks its tick count against the TSC (Linux's
 * clocksource watchdog) would otherwise find its clock running slow.  At
 * most MAX_OWED (a quarter of a second at Linux's 250 Hz) are kept. */

/* Raise IRQ0 for every tick due by now, and arm the host timer for the
 * next one while the guest can take it. */
static void
pit_update(u64 now)
{
    struct pitch *c = &pit[0];
    if (c->loaded) {
        if (c->mode == 2 || c->mode == 3) {
            u64 k = (now - c->start) / c->reload;
            if (now >= c->start && k > c->ticks_done) {
                ticks_owed += k - c->ticks_done;
                if (ticks_owed > MAX_OWED)
                    ticks_owed = MAX_OWED;
                c->ticks_done = k;
                pic_raise(0);
            }
        } else if (!c->ticks_done && now >= c->start + c->reload) {
            c->ticks_done = 1;
            pic_raise(0);
        }
    }
    u64 d = pic[0].imr & 1 ? 0 : pit0_deadline();
    if (opt_hostirq) {
        /* hostirq=HZ: host interrupts at least this often, which the guest
         * never sees - a stress test of precise state at every point of
         * translated code (B:075), for any guest. */
        u64 s = now + PIT_HZ / opt_hostirq;
        if (!d || s < d)
            d = s;
    }
    host_arm(d);
}

static u8
pit_read(int ch)
{
    struct pitch *c = &pit[ch];
    if (c->status_latched) {
        c->status_latched = 0;
        return c->status;
    }
    u16 val = c->latched ? c->latch : pit_count(c, pit_now());
    u8 r;
    if (c->rw == 1)
        r = val & 0xff, c->latched = 0;
    else if (c->rw == 2)
        r = val >> 8, c->latched = 0;
    else {
        r = c->rmsb ? val >> 8 : val & 0xff;
        if (c->rmsb)
            c->latched = 0;
        c->rmsb ^= 1;
    }
    return r;
}

static void
pit_load(int ch, u32 count)
{
    struct pitch *c = &pit[ch];
    c->reload = count ? count : 0x10000;
    c->start = pit_now();
    c->loaded = 1;
    c->ticks_done = 0;
    if (ch == 0)
        ticks_owed = 0;
    if (ch == 0)
        pit_update(c->start);
}

static void
pit_write(int ch, u8 val)
{
    struct pitch *c = &pit[ch];
    if (c->rw == 1)
        pit_load(ch, val);
    else if (c->rw == 2)
        pit_load(ch, (u32)val << 8);
    else if (!c->wmsb) {
        c->wlow = val;
        c->wmsb = 1;
    } else {
        c->wmsb = 0;
        pit_load(ch, c->wlow | (u32)val << 8);
    }
}

static void
pit_latch_status(struct pitch *c, u64 now)
{
    c->status = (pit_out(c, now) << 7) | (!c->loaded << 6) | (c->rw << 4) | (c->mode << 1) | c->bcd;
    c->status_latched = 1;
}

static void
pit_control(u8 val)
{
    int ch = val >> 6;
    u64 now = pit_now();
    if (ch == 3) {                              /* read-back */
        for (int i = 0; i < 3; i++) {
            if (!(val & (2u << i)))
                continue;
            if (!(val & 0x20) && !pit[i].latched) {
                pit[i].latch = pit_count(&pit[i], now);
                pit[i].latched = 1;
                pit[i].rmsb = 0;
            }
            if (!(val & 0x10) && !pit[i].status_latched)
                pit_latch_status(&pit[i], now);
        }
        return;
    }
    struct pitch *c = &pit[ch];
    int rw = (val >> 4) & 3;
    if (rw == 0) {                              /* counter latch */
        if (!c->latched) {
            c->latch = pit_count(c, now);
            c->latched = 1;
            c->rmsb = 0;
        }
        return;
    }
    c->rw = rw;
    c->mode = (val >> 1) & 7;
    if (c->mode > 5)
        c->mode -= 4;                           /* 6 and 7 are 2 and 3 */
    c->bcd = val & 1;
    c->wmsb = c->rmsb = 0;
    c->latched = c->status_latched = 0;
    c->loaded = 0;                              /* counting stops until a count is written */
    if (ch == 0)
        pit_update(now);
}

/* Port 0x61: channel 2's gate (bit 0) and speaker (bit 1) as written;
 * the refresh toggle (bit 4) and channel 2's output (bit 5). */
static u8
port61_read(void)
{
    u64 now = pit_now();
    return (port61 & 0x0f) | ((now / 18) & 1) << 4 | pit_out(&pit[2], now) << 5;
}

static void
port61_write(u8 val)
{
    int gate = val & 1;
    struct pitch *c = &pit[2];
    u64 now = pit_now();
    if (gate && !c->gate) {
        /* A rising gate restarts modes 1, 2, 3 and 5; mode 0 resumes
         * where it stopped (approximated: restarts, as Linux only ever
         * raises the gate before loading the count). */
        c->start = now;
    }
    c->gate = gate;
    port61 = val & 0x0f;
}

/* Calibrate the TSC against the host's 8254 channel 2, 10 ms. */
static void
time_init(void)
{
    u8 saved61 = inb(0x61);
    outb(0x61, (saved61 & ~0x02) | 0x01);       /* gate on, speaker off */
    outb(0x43, 0xb0);                           /* channel 2, both bytes, mode 0 */
    outb(0x42, 0xff);
    outb(0x42, 0xff);
    u32 first = 0, last;
    u64 t0 = 0, t1;
    for (int i = 0;; i++) {
        outb(0x43, 0x80);                       /* latch channel 2 */
        u32 lo = inb(0x42), hi = inb(0x42);
        u64 t = rdtsc();
        last = lo | hi << 8;
        if (i == 0) {
            first = last;
            t0 = t;
        }
        if (first - last >= PIT_HZ / 100 || i > 10000000) {
            t1 = t;
            break;
        }
    }
    outb(0x61, saved61);
    u32 clocks = first - last;
    if (!clocks)
        clocks = 1;
    u64 r = ((t1 - t0) << 8) / clocks;
    tsc_per_pit256 = r ? (u32)r : 1;
    tsc_boot = rdtsc();
    cprintf("vmm: virtual time: %u.%02u TSC ticks per 8254 clock (%u MHz)\n", tsc_per_pit256 >> 8,
            (tsc_per_pit256 & 0xff) * 100 / 256, (u32)((u64)tsc_per_pit256 * PIT_HZ / 256 / 1000000));
}

/* ==================================================================== */
/*V:030 The 16550A on COM1.  Transmitting is instant: a byte written to
 * THR goes to the host's COM1 at once, so the line status always shows
 * THR and the shifter empty.  Received bytes come from the host's COM1
 * (its receive interrupt, dev_host_irq) into a 16-byte FIFO.  The
 * interrupt identification register reports, by priority, received data
 * (at or above the FIFO trigger level: IIR 4; below it: the character
 * timeout, IIR 12), THR empty (IIR 2), or nothing (IIR 1), each only if
 * enabled in IER; the THR-empty interrupt is set when THR empties or when
 * the driver enables it with THR already empty, and cleared by reading
 * IIR while it is the one shown, or by writing THR.  The chip's interrupt
 * output reaches IRQ4 through MCR's OUT2, as on every PC; the PIC sees
 * its rising edges.  In loopback (MCR bit 4) transmitted bytes come back
 * as received ones and MSR mirrors MCR, which is how drivers test for the
 * chip.  The scratch register, the divisor latch and FCR are kept as
 * written; FCR bits 6-7 make IIR show the FIFO as enabled.
 * Deviation: no line-status interrupt, no modem-status changes; baud
 * rate and framing are ignored. :*/
#define RXQ 16
static struct uart {
    u8 ier, lcr, mcr, scr, dll, dlm, fcr;
    u8 thre_int;                /* the THR-empty interrupt is pending */
    u8 line;                    /* the interrupt output, as the PIC last saw it */
    u8 lsr_oe;                  /* an overrun since LSR was last read */
    u8 rx[RXQ], rx_head, rx_count;
} com1 = { .dll = 0x0c };       /* 9600 baud after reset */

static int
uart_trigger(struct uart *u)
{
    static const u8 levels[4] = { 1, 4, 8, 14 };
    return (u->fcr & 1) ? levels[u->fcr >> 6] : 1;
}

/* IIR's low four bits: the highest-priority interrupt pending, or 1. */
static u8
uart_iir(struct uart *u)
{
    if ((u->ier & 1) && u->rx_count)
        return u->rx_count >= uart_trigger(u) ? 0x04 : 0x0c;
    if ((u->ier & 2) && u->thre_int)
        return 0x02;
    return 0x01;
}

static void
uart_update(struct uart *u)
{
    u8 line = (u->mcr & 0x08) && uart_iir(u) != 0x01;
    if (line && !u->line)
        pic_raise(4);
    u->line = line;
}

static void
uart_rx_push(struct uart *u, u8 c)
{
    if (u->rx_count == RXQ) {
        u->lsr_oe = 1;
        return;
    }
    u->rx[(u->rx_head + u->rx_count++) % RXQ] = c;
}

/* Take what the host's COM1 has received, while there is room. */
static void
host_com1_receive(void)
{
    while (com1.rx_count < RXQ && (inb(COM1 + 5) & 1))
        uart_rx_push(&com1, inb(COM1));
    uart_update(&com1);
}

static u8
uart_read(struct uart *u, int reg)
{
    int dlab = u->lcr & 0x80;
    u8 r;
    switch (reg) {
    case 0:
        if (dlab)
            return u->dll;
        r = 0;
        if (u->rx_count) {
            r = u->rx[u->rx_head];
            u->rx_head = (u->rx_head + 1) % RXQ;
            u->rx_count--;
        }
        if (!u->rx_count && !(u->mcr & 0x10))
            host_com1_receive();
        uart_update(u);
        return r;
    case 1:
        return dlab ? u->dlm : u->ier;
    case 2:
        r = uart_iir(u);
        if (r == 0x02)
            u->thre_int = 0;
        uart_update(u);
        return r | ((u->fcr & 1) ? 0xc0 : 0);
    case 3: return u->lcr;
    case 4: return u->mcr;
    case 5:
        r = 0x60 | (u->rx_count ? 1 : 0) | (u->lsr_oe << 1);
        u->lsr_oe = 0;
        return r;
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
        if (dlab) {
            u->dll = val;
            break;
        }
        if (u->mcr & 0x10)
            uart_rx_push(u, val);       /* loopback */
        else
            host_com1_putc(val);
        u->thre_int = 1;                /* sent at once: THR is empty again */
        break;
    case 1:
        if (dlab) {
            u->dlm = val;
            break;
        }
        if ((val & 2) && !(u->ier & 2))
            u->thre_int = 1;            /* enabled with THR empty */
        u->ier = val & 0x0f;
        break;
    case 2:
        if (val & 0x02) {               /* clear the receive FIFO */
            u->rx_count = 0;
            u->rx_head = 0;
        }
        u->fcr = val & 0xc9;
        break;
    case 3: u->lcr = val; break;
    case 4: u->mcr = val & 0x1f; break;
    case 7: u->scr = val; break;
    }
    uart_update(u);
}

/* ==================================================================== */
/*V:040 CMOS RAM and the real-time clock (MC146818A).  Port 0x70 selects
 * one of 128 bytes - its bit 7 masks NMI, remembered and otherwise
 * without effect, since nothing raises an NMI here - and port 0x71 reads
 * or writes it.  The guest's CMOS RAM is a copy of the host's, taken at
 * boot (the memory sizes and equipment bytes firmware left there); the
 * clock registers 0-9 and status registers A, C and D are read from the
 * host's clock when the guest reads them, so the guest sees the host's
 * time, and the update-in-progress bit of A as the host's clock shows
 * it.  Status B (binary or BCD, 12 or 24 hours) is the guest's own; the
 * host's values are converted to its format.
 * Deviation: the guest cannot set the clock (writes to registers 0-9 are
 * ignored) and the RTC raises no interrupts (periodic, alarm, update). :*/
static u8 cmos[128];
static u8 cmos_index;
static u8 host_cmos_b;

static u8
host_cmos(u8 reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

static u8 bcd_to_bin(u8 v) { return (v >> 4) * 10 + (v & 15); }
static u8 bin_to_bcd(u8 v) { return (v / 10) << 4 | v % 10; }

static u8
cmos_read(void)
{
    u8 reg = cmos_index & 0x7f;
    if (reg == 0x0a || reg == 0x0c || reg == 0x0d)
        return host_cmos(reg);
    if (reg > 9)
        return cmos[reg];
    u8 v = host_cmos(reg), b = cmos[0x0b];
    int pm = 0;
    if (reg == 4 && !(host_cmos_b & 2)) {       /* the host's clock in 12-hour form */
        pm = v & 0x80;
        v &= 0x7f;
    }
    if (!(host_cmos_b & 4))
        v = bcd_to_bin(v);
    if (reg == 4 && !(host_cmos_b & 2))
        v = (v % 12) + (pm ? 12 : 0);           /* now 0-23 */
    if (reg == 4 && !(b & 2)) {                 /* the guest wants 12-hour form */
        pm = v >= 12;
        v = v % 12 ? v % 12 : 12;
    } else {
        pm = 0;
    }
    if (!(b & 4))
        v = bin_to_bcd(v);
    return v | (pm ? 0x80 : 0);
}

static void
cmos_write(u8 val)
{
    u8 reg = cmos_index & 0x7f;
    if (reg > 9 && reg != 0x0a && reg != 0x0c && reg != 0x0d)
        cmos[reg] = val;
}

/* ==================================================================== */
/*V:050 System control: the A20 gate and the reset line, and the 8042.
 * Two ISA-era devices hold the first two.  Port 0x92, "system control
 * port A": bit 1 gates address line 20, and writing 1 to bit 0 resets
 * the machine.  And the 8042 keyboard controller's output port: bit 0 is
 * the reset line (active low), bit 1 the A20 gate; command 0xd1 writes
 * it, 0xd0 reads it, 0xdd and 0xdf clear and set A20, and commands
 * 0xf0-0xff pulse the lines their low four bits name - 0xfe, reset, being
 * the one every PC operating system knows.  Both drive the same A20 line,
 * and the last write wins, as on QEMU's PC.  A20 gates every physical
 * address (mmu.c, T:005); a reset ends the run as on bare QEMU with
 * -no-reboot (vmm.c, vm_reset).
 *
 * For a driver's probe the 8042 also keeps its command byte (0x20 reads
 * it, 0x60 writes it: interrupt enables for the keyboard and auxiliary
 * ports, and their disable bits), answers its self-tests (0xaa: 0x55;
 * 0xab, 0xa9: 0, the interface is fine) and passes bytes to the keyboard
 * behind it, which acknowledges each (0xfa), answers reset with 0xaa and
 * identify with 0xab 0x83 (0xab 0x41 when the controller translates
 * scan codes).  No mouse answers on the auxiliary port (0xd4
 * gets 0xfe, "resend").  Bytes for the CPU queue in the output buffer,
 * with IRQ1 (keyboard) or IRQ12 (auxiliary) raised as each reaches it if
 * the command byte enables that interrupt.
 * Deviation: no keystrokes ever arrive (the console is COM1). :*/
static u8 port92;               /* bit 1: A20 */
#define KBQ 8
static struct i8042 {
    u8 status;                  /* bit 0: output full; 2: self-test passed; 3: last write was a command; 5: aux data */
    u8 ctr;                     /* the command byte */
    u8 pending;                 /* a command waiting for its data byte, or 0 */
    u8 outport;                 /* bit 0: not in reset; bit 1: A20 */
    u8 q[KBQ], qaux[KBQ], qhead, qn;
} kbc = { .status = 0x1c, .ctr = 0x61, .outport = 0x03 };

static void
kbc_fill(void)
{
    if ((kbc.status & 1) || !kbc.qn)
        return;
    kbc.status = (kbc.status & ~0x20) | 1 | (kbc.qaux[kbc.qhead] ? 0x20 : 0);
    if (kbc.qaux[kbc.qhead] ? (kbc.ctr & 2) : (kbc.ctr & 1))
        pic_raise(kbc.qaux[kbc.qhead] ? 12 : 1);
}

static void
kbc_reply(u8 val, int aux)
{
    if (kbc.qn < KBQ) {
        int i = (kbc.qhead + kbc.qn++) % KBQ;
        kbc.q[i] = val;
        kbc.qaux[i] = aux;
    }
    kbc_fill();
}

/* The CMOS bytes that give the memory size (IBM PC AT Technical
 * Reference, the CMOS map; QEMU's pc_cmos_init fills them the same way)
 * must describe the guest's RAM, not the host's they were copied from:
 * base memory in KiB (0x15-0x16), KiB above 1 MiB (0x17-0x18, again at
 * 0x30-0x31), 64 KiB blocks above 16 MiB (0x34-0x35), none above 4 GiB
 * (0x5b-0x5d).  If the host's checksum over 0x10-0x2d (at 0x2e-0x2f,
 * high byte first) was valid, it stays valid. */
static void
cmos_set_memory(u32 bytes)
{
    u32 sum = 0;
    for (int r = 0x10; r <= 0x2d; r++)
        sum += cmos[r];
    int valid = sum == ((u32)cmos[0x2e] << 8 | cmos[0x2f]);
    u32 base = bytes >> 10 < 640 ? bytes >> 10 : 640;
    u32 ext = bytes > 0x100000 ? (bytes - 0x100000) >> 10 : 0;
    u32 high = bytes > 0x1000000 ? (bytes - 0x1000000) >> 16 : 0;
    if (ext > 0xffff)
        ext = 0xffff;
    if (high > 0xffff)
        high = 0xffff;
    cmos[0x15] = base, cmos[0x16] = base >> 8;
    cmos[0x17] = cmos[0x30] = ext, cmos[0x18] = cmos[0x31] = ext >> 8;
    cmos[0x34] = high, cmos[0x35] = high >> 8;
    cmos[0x5b] = cmos[0x5c] = cmos[0x5d] = 0;
    if (valid) {
        sum = 0;
        for (int r = 0x10; r <= 0x2d; r++)
            sum += cmos[r];
        cmos[0x2e] = sum >> 8, cmos[0x2f] = sum;
    }
}

/* The state firmware leaves: SeaBIOS has opened A20 through port 0x92
 * before it starts a boot sector or Multiboot kernel; at reset (a ROM
 * guest) port 0x92 reads 0 and A20 is open all the same.  Called once
 * the guest's memory is known. */
void
dev_reset_state(int from_reset)
{
    port92 = from_reset ? 0 : 2;
    cmos_set_memory(ram_size);
}

static u8
kbc_read(struct vcpu *v, int cmdport)
{
    (void)v;
    if (cmdport)
        return kbc.status;
    u8 r = kbc.q[kbc.qhead];
    if (kbc.qn) {
        kbc.qhead = (kbc.qhead + 1) % KBQ;
        kbc.qn--;
    }
    kbc.status &= ~0x21;
    kbc_fill();
    return r;
}

/* A byte for the keyboard itself. */
static void
keyboard_write(u8 val)
{
    static u8 arg;              /* a command waiting for its argument byte */
    if (arg) {
        arg = 0;
        kbc_reply(0xfa, 0);
        return;
    }
    switch (val) {
    case 0xff:                  /* reset: ack, then the self-test passed */
        kbc_reply(0xfa, 0);
        kbc_reply(0xaa, 0);
        break;
    case 0xf2:                  /* identify: an MF2 keyboard, ab 83, whose 83 the 8042 */
        kbc_reply(0xfa, 0);     /* turns into 41 when it translates (command byte bit 6), */
        kbc_reply(0xab, 0);     /* as Linux's atkbd expects and QEMU does */
        kbc_reply(kbc.ctr & 0x40 ? 0x41 : 0x83, 0);
        break;
    case 0xee:                  /* echo */
        kbc_reply(0xee, 0);
        break;
    case 0xed: case 0xf0: case 0xf3:    /* LEDs, scan code set, typematic: an argument follows */
        arg = 1;
        kbc_reply(0xfa, 0);
        break;
    default:
        kbc_reply(0xfa, 0);
    }
}

static void
kbc_write(struct vcpu *v, int cmdport, u8 val)
{
    if (!cmdport) {
        kbc.status &= ~0x08;
        u8 cmd = kbc.pending;
        kbc.pending = 0;
        switch (cmd) {
        case 0xd1:
            kbc.outport = val;
            mmu_set_a20(v, val & 2);
            if (!(val & 1))
                vm_reset(v, "the keyboard controller's reset line (output port bit 0 cleared)");
            break;
        case 0x60: kbc.ctr = val; kbc.status = (kbc.status & ~4) | (val & 4); break;
        case 0xd2: kbc_reply(val, 0); break;
        case 0xd3: kbc_reply(val, 1); break;
        case 0xd4: kbc_reply(0xfe, 1); break;   /* no mouse: "resend" */
        default: keyboard_write(val); break;
        }
        return;
    }
    kbc.status |= 0x08;
    kbc.pending = 0;
    switch (val) {
    case 0x20: kbc_reply(kbc.ctr, 0); break;
    case 0x60: case 0xd1: case 0xd2: case 0xd3: case 0xd4: kbc.pending = val; break;
    case 0xa7: kbc.ctr |= 0x20; break;
    case 0xa8: kbc.ctr &= ~0x20; break;
    case 0xa9: case 0xab: kbc_reply(0x00, 0); break;
    case 0xaa: kbc_reply(0x55, 0); break;
    case 0xad: kbc.ctr |= 0x10; break;
    case 0xae: kbc.ctr &= ~0x10; break;
    case 0xd0: kbc_reply(kbc.outport, 0); break;
    case 0xdd: case 0xdf:
        kbc.outport = (kbc.outport & ~2) | (val == 0xdf ? 2 : 0);
        mmu_set_a20(v, val == 0xdf);
        break;
    default:
        if (val >= 0xf0 && !(val & 1))
            vm_reset(v, "the keyboard controller's reset pulse (command 0xfe)");
    }
}

/* ==================================================================== */
/* Host interrupts, polling, idling. */

/* A host interrupt arrived (from the guest, or in dev_idle's HLT):
 * acknowledge it at the host's PIC and take what it brought. */
void
dev_host_irq(struct vcpu *v, int vec)
{
    int irq = vec - T_IRQ0;
    if (irq < 0 || irq >= 16)
        return;
    v->st.host_irqs++;
    v->irq_seen = 1;
    if (irq >= 8)
        outb(0xa0, 0x20);
    outb(0x20, 0x20);
    if (irq == HOST_IRQ_TIMER) {
        /* Fired (perhaps early: the host's count is at most 0xffff):
         * raise what is due and arm the host timer again at once, so
         * that the next deadline interrupts the guest wherever it is. */
        armed_for = 0;
        pit_update(pit_now());
    }
    if (irq == HOST_IRQ_COM1)
        host_com1_receive();
}

/* After the command line: arm the host timer as the options say. */
void
dev_start(void)
{
    armed_for = 0;
    pit_update(pit_now());
}

/* Bring the devices up to time: called by the main loop before each
 * decision, so cheap when nothing is due (one RDTSC and a compare). */
void
dev_poll(struct vcpu *v)
{
    (void)v;
    if (armed_tsc && rdtsc() >= armed_tsc)
        pit_update(pit_now());
}

/* Could any interrupt ever wake a guest halted with IF = 1?  Not if the
 * PIC masks every line a device here can raise. */
static int
can_wake(void)
{
    u16 masked = pic[0].imr | (pic[0].imr & 4 ? 0xff00 : pic[1].imr << 8);
    u16 sources = 0x1013;       /* IRQ0 timer, 1 keyboard, 4 COM1, 12 aux */
    return (sources & ~masked) != 0 || pic[0].irr || pic[1].irr;
}

/* The guest executed HLT with IF = 1: wait, with the host CPU halted,
 * until a virtual interrupt can be delivered.  Returns 0 if none ever
 * can (the run is stopped with the reason). */
int
dev_idle(struct vcpu *v)
{
    if (!(v->eflags & EFLAGS_IF)) {
        v->stop_status = EXIT_HALT;
        vm_stop(v, "hlt with interrupts disabled (IF=0): nothing can wake the guest");
        return 0;
    }
    for (;;) {
        pit_update(pit_now());
        if (dev_irq_pending(v))
            return 1;
        if (!can_wake()) {
            v->stop_status = EXIT_HALT;
            vm_stop(v, "hlt with every interrupt line masked at the PIC: nothing can wake the guest");
            return 0;
        }
        v->st.idle_halts++;
        /* STI's shadow covers HLT: an interrupt between the two still
         * wakes it.  The handler is vmm_monitor_trap -> dev_host_irq. */
        __asm__ volatile("sti; hlt; cli" : : : "memory");
    }
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
    if (port == 0x20 || port == 0x21 || port == 0xa0 || port == 0xa1) {
        pit_update(pit_now());          /* IRR shows the ticks due, masked or not */
        return pic_read(&pic[port >> 7], port & 1);
    }
    if (port == 0x4d0 || port == 0x4d1)
        return pic[port & 1].elcr;
    if (port >= 0x40 && port <= 0x42)
        return pit_read(port - 0x40);
    if (port == 0x61)
        return port61_read();
    if (port == 0x70)
        return 0xff;            /* the index register is write-only */
    if (port == 0x71)
        return cmos_read();
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
    else if (port == 0x20 || port == 0x21 || port == 0xa0 || port == 0xa1) {
        pit_update(pit_now());          /* edges before this write happened before it (ICW1 clears them) */
        pic_write(&pic[port >> 7], port & 1, val);
        if (port == 0x21)
            pit_update(pit_now());      /* IRQ0 masked or not: arm the host timer accordingly */
    } else if (port == 0x4d0 || port == 0x4d1)
        pic[port & 1].elcr = val;
    else if (port >= 0x40 && port <= 0x42)
        pit_write(port - 0x40, val);
    else if (port == 0x43)
        pit_control(val);
    else if (port == 0x61)
        port61_write(val);
    else if (port == 0x70)
        cmos_index = val;
    else if (port == 0x71)
        cmos_write(val);
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

/* The devices as firmware leaves them: the PICs at the BIOS's vectors
 * (8 and 0x70) with the masks the host's firmware left, the 8254's
 * channels in the host's modes and channel 0 at the BIOS's 18.2 Hz
 * (count 65536), COM1's MCR and the CMOS copied. */
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
    /* The virtual PICs start as the firmware left the host's. */
    pic[0].imr = inb(0x21);
    pic[1].imr = inb(0xa1);
    pic[0].vector = 0x08;
    pic[1].vector = 0x70;
    pic[0].elcr = inb(0x4d0);
    pic[1].elcr = inb(0x4d1);
    /* The host PIC: remap to T_IRQ0 and mask everything but COM1 input. */
    outb(0x20, 0x11); outb(0x21, T_IRQ0); outb(0x21, 4); outb(0x21, 1);
    outb(0xa0, 0x11); outb(0xa1, T_IRQ0 + 8); outb(0xa1, 2); outb(0xa1, 1);
    outb(0xa1, 0xff);
    host_imr = 0xff;
    outb(0x21, host_imr);
    /* The guest's 16550 starts with the modem control register firmware
     * left in the host's (QEMU's resets to OUT2, 0x08, and SeaBIOS keeps
     * it), which a driver may read before it writes. */
    com1.mcr = inb(COM1 + 4) & 0x1f;
    /* The host's COM1: receive interrupts on (OUT2 routes them). */
    outb(COM1 + 1, 0x01);
    outb(COM1 + 4, 0x0b);
    host_unmask(HOST_IRQ_COM1, 1);
    for (int i = 0; i < 128; i++)
        cmos[i] = host_cmos(i);
    host_cmos_b = cmos[0x0b];
    outb(0x70, 0x0d);                           /* leave the index on D, NMI enabled */
    /* The virtual 8254's channels start in the modes firmware left the
     * host's in (SeaBIOS: channel 0 in mode 2; QEMU's reset: mode 3 with
     * no access mode for the others), read back before time_init and
     * the timer deadlines reprogram channels 2 and 0: the read-back
     * command, status only, all three channels (8254 data sheet,
     * "Read-Back Command"). */
    u8 status[3];
    outb(0x43, 0xee);
    for (int i = 0; i < 3; i++)
        status[i] = inb(0x40 + i);
    time_init();
    for (int i = 0; i < 3; i++) {
        pit[i].rw = (status[i] >> 4) & 3;
        pit[i].mode = (status[i] >> 1) & 7;
        if (pit[i].mode > 5)
            pit[i].mode -= 4;                   /* 6 and 7 are 2 and 3 */
        pit[i].bcd = status[i] & 1;
        pit[i].gate = i != 2;
        /* A channel's reload is never 0: pit_count divides by it, and a
         * guest may latch or read a channel whose mode it has set but
         * whose count it has not yet written (the 8254 data sheet leaves
         * that value undefined; QEMU's reset count is 65536 too). */
        pit[i].reload = 0x10000;
    }
    pit_load(0, 0);                             /* the BIOS's count (not readable): 18.2 Hz */
}
