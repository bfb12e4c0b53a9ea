/*
 * devices -- the PC's own chips as a guest's drivers program them, and the
 * interrupts they raise: the 8259A pair, the 8254 timer (with port 0x61),
 * the 16550A on COM1, the CMOS RAM and clock, the 8042 keyboard controller
 * and ports nobody answers; IRQs taken at ring 0, at ring 3, in HLT, and
 * at the edges of the STI and MOV SS interrupt shadows.
 *
 * Tests:   the state firmware left (COM1's MCR, the 8254's modes, port
 *          0x61); 8259A: ICW1-ICW4 to vectors 0x20/0x28, IMR, IRR and ISR
 *          through OCW3, a request latched in IRR while masked, an
 *          interrupt in service until its EOI (specific, non-specific),
 *          nesting, fixed priority (IRQ0 before IRQ4, IRQ4 held until
 *          IRQ0's EOI), the cascade (IRQ12 through the slave); 8254:
 *          channel 0 in modes 0, 2 and 3 with IRQ0 counted by a handler,
 *          the counter latch (and a second latch ignored), the read-back
 *          command (status, count and status together, two channels at
 *          once, a second status latch ignored), channel 2 gated by port
 *          0x61 with OUT2 in bit 5, LSB-only and MSB-only access, a latch
 *          before a channel's first count; CPU: STI;HLT woken by IRQ0, the
 *          STI shadow (the next instruction runs first), POPF and IRET
 *          (no shadow), a storm of timer interrupts over CLI/STI,
 *          PUSHF/POPF, MOV SS and CALL/RET (no interrupt where IF=0 or in a
 *          shadow, every register intact), IRQ0 during a ring-3 loop;
 *          16550A: scratch, IER, the divisor latch, FCR and IIR, the THRE
 *          interrupt (IIR, IRQ4 through the PIC), loopback (RBR, LSR, the
 *          received-data and character-timeout interrupts, MSR mirroring
 *          MCR); CMOS: status registers, the clock's ranges, the memory
 *          and equipment bytes, a RAM byte; 8042: the command byte,
 *          self-tests, keyboard echo and identify, IRQ1 and IRQ12 from
 *          bytes the controller is told to queue; empty ports read as ones.
 * Output:  only what is the same on every run: values the chips are
 *          defined to show, and relations ("within [a,b]", "decreased")
 *          for anything that depends on when it was read.  Never a raw
 *          count of a running timer.
 * Exercises: the virtual devices (dev.c, V:010-V:050) and the delivery of
 *          virtual interrupts at instruction boundaries (vmm.c, D:020): in
 *          translated code (ring 0, docs/08-translation.md), in direct
 *          execution (ring 3, docs/03-direct.md), in HLT (dev_idle); host
 *          interrupts that arrive inside translated code's inline
 *          sequences and dispatch stubs (bt.c, B:052, C:030).
 * Monitor exits expected: port I/O callouts from translated code (the
 *          ring-3 loop does no I/O); host timer interrupts while the
 *          guest's IRQ0 is unmasked, each followed by a virtual IRQ0
 *          ("stat interrupts ... delivered irq0=N irq1=1 irq4=N
 *          irq12=1"); single steps ending STI and MOV SS shadows; IRET
 *          callouts; HLT idling; the #GP exit of ring 3's int $0x80.
 *
 * Unlike the other guests, this one unmasks IRQs and touches ports beyond
 * COM1 and the PICs: that is what it tests.  Each test starts from freshly
 * initialized PICs with every line masked, so that what one test left
 * latched in IRR cannot leak into the next.
 *
 * What the guest deliberately does not print, because QEMU's chips (what
 * bare QEMU runs on) do not model it while the data sheets define it: the
 * 8254's NULL COUNT status bit (QEMU never sets it), OUT in mode 2
 * (QEMU's is inverted) and in mode 3 (it depends on when it is read),
 * OUT and the count between a control word and the count (QEMU goes on
 * with the old count), a mode-0 count with the gate low (QEMU counts on),
 * the 8042's command/data status bit (QEMU leaves it set), and ports of
 * QEMU's own devices (fw_cfg, DMA page registers).
 *
 * Hardware: Intel 8259A data sheet (order 231468), Intel 8254 data sheet
 *          (order 231164), National Semiconductor PC16550D data sheet,
 *          Motorola MC146818A data sheet, IBM PC AT Technical Reference
 *          (the 8042, port 0x61, the CMOS layout); SDM Vol. 3A §6.8.1
 *          (Masking Maskable Hardware Interrupts), §6.8.3 (Masking
 *          Exceptions and Interrupts When Switching Stacks); SDM Vol. 2A,
 *          HLT; SDM Vol. 2B, STI and POPF.
 */
#include "guest.h"

/* ------------------------------------------------------------ ports */

#define PIC_M       0x20        /* master: A0 = 0 (ICW1, OCW2, OCW3; IRR/ISR) */
#define PIC_S       0xa0        /* slave */
#define PIC_DATA(p) ((p) + 1)   /* A0 = 1 (ICW2-4, OCW1 = IMR) */
#define ELCR_M      0x4d0       /* edge/level control (PIIX), kept by firmware */
#define ELCR_S      0x4d1
#define PIT_CH(n)   (0x40 + (n))
#define PIT_CTRL    0x43
#define PORT_B      0x61        /* bit 0 gate 2, bit 1 speaker, bit 5 OUT2 */
#define PORT_A      0x92        /* bit 1: A20 */
#define CMOS_INDEX  0x70
#define CMOS_DATA   0x71
#define KBC_DATA    0x60
#define KBC_CMD     0x64        /* reads: status */
#define POST_PORT   0x80

/* 16550A registers (PC16550D data sheet, Table II). */
#define U_RBR 0                 /* receive buffer (read, DLAB=0) / THR (write) */
#define U_THR 0
#define U_DLL 0                 /* divisor latch, DLAB=1 */
#define U_IER 1
#define U_DLM 1
#define U_IIR 2                 /* read */
#define U_FCR 2                 /* write */
#define U_LCR 3
#define U_MCR 4
#define U_LSR 5
#define U_MSR 6
#define U_SCR 7
#define UART(r) (COM1 + (r))

#define VEC_IRQ(n)  (0x20 + (n))        /* as our ICW2s put them */
#define PIT_HZ      1193182u            /* the 8254's input clock */
#define MS(n)       ((PIT_HZ * (n) + 500) / 1000)   /* 8254 clocks in n ms (n <= 54) */
_Static_assert(MS(54) <= 0xffff, "an 8254 count is 16 bits");

/* Loop bounds.  Every wait ends as soon as what it waits for happens; the
 * bounds only keep a broken device from hanging the run.  SPIN counts
 * iterations of a loop that reads memory; SPIN_IO polls of a port, each of
 * which is an exit under the monitor, so it is smaller. */
#define SPIN    100000000u
#define SPIN_IO 3000000u

/* Inline port access of other widths (guest.h has bytes only). */
static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static const char *yn(int b) { return b ? "yes" : "no"; }

/* ------------------------------------------------------------ notes */

/* While COM1 is reconfigured (divisor latch, loopback) nothing may be
 * printed: a byte written with DLAB=1 lands in the divisor, one written in
 * loopback comes back as input.  Such tests note their lines here and
 * print them when COM1 is itself again. */
static char notes[2048];
static size_t nnotes;

static void PRINTF(1, 2) note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(notes + nnotes, sizeof notes - nnotes, fmt, ap);
    va_end(ap);
    if (n > 0)
        nnotes += (size_t)n < sizeof notes - nnotes ? (size_t)n : sizeof notes - nnotes - 1;
}

static void print_notes(void)
{
    print(notes);
    nnotes = 0;
    notes[0] = 0;
}

/* ------------------------------------------------------------ 8259A */

/* Initialize both chips (8259A data sheet, "Initialization Command
 * Words"): ICW1 on the even port starts the sequence and clears IMR and
 * ISR (QEMU's chip and the monitor's clear IRR too: the edge-sense latches
 * are reset, so only a new rising edge makes a request); ICW2 is the
 * vector of IR0; ICW3 the cascade (a slave on the master's IR2, the slave
 * told it is number 2); ICW4 8086 mode with normal (not automatic) EOI.
 * Then OCW1, the masks.  Interrupts are off throughout. */
static void pic_program(uint8_t imr_m, uint8_t imr_s, uint8_t *imr_after_icw)
{
    outb(PIC_M, 0x11);          /* ICW1: edge triggered, cascade, ICW4 follows */
    outb(PIC_S, 0x11);
    outb(PIC_DATA(PIC_M), VEC_IRQ(0));  /* ICW2 */
    outb(PIC_DATA(PIC_S), VEC_IRQ(8));
    outb(PIC_DATA(PIC_M), 0x04);        /* ICW3: a slave on IR2 */
    outb(PIC_DATA(PIC_S), 0x02);        /*       slave identity 2 */
    outb(PIC_DATA(PIC_M), 0x01);        /* ICW4: 8086 mode */
    outb(PIC_DATA(PIC_S), 0x01);
    if (imr_after_icw) {
        imr_after_icw[0] = inb(PIC_DATA(PIC_M));
        imr_after_icw[1] = inb(PIC_DATA(PIC_S));
    }
    outb(PIC_DATA(PIC_M), imr_m);       /* OCW1 */
    outb(PIC_DATA(PIC_S), imr_s);
}

static void pic_fresh(void) { pic_program(0xff, 0xff, 0); }

static void pic_mask(uint8_t imr_m, uint8_t imr_s)
{
    outb(PIC_DATA(PIC_M), imr_m);
    outb(PIC_DATA(PIC_S), imr_s);
}

/* OCW3 (bit 3 set, bits 1-0 = 1x): the next even-port read shows IRR
 * (x=0) or ISR (x=1), until another OCW3 says otherwise. */
static uint8_t pic_irr(int port)
{
    outb(port, 0x0a);
    return inb(port);
}

static uint8_t pic_isr(int port)
{
    outb(port, 0x0b);
    uint8_t v = inb(port);
    outb(port, 0x0a);
    return v;
}

/* OCW2: bits 7-5 are R, SL, EOI.  001 non-specific EOI (clears the
 * highest-priority bit in service), 011 specific EOI of level L (bits
 * 2-0). */
#define OCW2_EOI        0x20
#define OCW2_SEOI(l)    (0x60 | (l))

/* ------------------------------------------------------------ IRQ handling */

enum eoi { EOI_NONE, EOI_NONSPECIFIC, EOI_SPECIFIC };

static volatile uint32_t irq_count[16];
static volatile uint8_t irq_order[16];
static volatile uint32_t norder;
static volatile uint8_t eoi_mode[16];
static volatile uint16_t isr_at_entry[16];      /* master | slave << 8 */
static volatile uint32_t irq_eip[16];
static volatile uint8_t last_iir, last_kbc_byte;
static volatile uint32_t stray;         /* IRQs on lines no test raises (never reset) */
static void (*volatile irq_hook)(struct trapframe *f);

static void irq_reset(void)
{
    for (int i = 0; i < 16; i++) {
        irq_count[i] = 0;
        eoi_mode[i] = EOI_NONSPECIFIC;
        isr_at_entry[i] = 0;
    }
    norder = 0;
    irq_hook = 0;
}

/* Every IRQ vector.  The gate is an interrupt gate, so IF = 0 here. */
static void irq_handler(struct trapframe *f)
{
    int irq = (int)f->vector - VEC_IRQ(0);
    irq_count[irq]++;
    if (irq != 0 && irq != 1 && irq != 4 && irq != 12)
        stray++;
    if (norder < 16)
        irq_order[norder++] = (uint8_t)irq;
    irq_eip[irq] = f->eip;
    isr_at_entry[irq] = pic_isr(PIC_M) | pic_isr(PIC_S) << 8;
    if (irq == 4)
        last_iir = inb(UART(U_IIR));    /* THRE: reading IIR clears it */
    if (irq == 1 || irq == 12)
        last_kbc_byte = inb(KBC_DATA);  /* empties the output buffer */
    if (irq_hook)
        irq_hook(f);
    switch (eoi_mode[irq]) {
    case EOI_NONSPECIFIC:
        if (irq >= 8)
            outb(PIC_S, OCW2_EOI);
        outb(PIC_M, OCW2_EOI);
        break;
    case EOI_SPECIFIC:
        if (irq >= 8) {
            outb(PIC_S, OCW2_SEOI(irq & 7));
            outb(PIC_M, OCW2_SEOI(2));  /* the cascade line */
        } else {
            outb(PIC_M, OCW2_SEOI(irq));
        }
        break;
    }
}

/* Wait, with interrupts as they are, until IRQ `irq` has arrived n times. */
static int wait_irqs(int irq, uint32_t n)
{
    for (uint32_t i = 0; i < SPIN && irq_count[irq] < n; i++)
        __asm__ volatile("" : : : "memory");
    return irq_count[irq] >= n;
}

/* Wait with IF = 0 until IRR shows all of `bits` (polling the PIC). */
static uint8_t wait_irr(uint8_t bits)
{
    uint8_t irr = 0;
    for (uint32_t i = 0; i < SPIN_IO && (irr & bits) != bits; i++)
        irr = pic_irr(PIC_M);
    return irr;
}

/* ------------------------------------------------------------ 8254 */

/* Control word (8254 data sheet, "Control Word Format"): SC1-SC0 the
 * channel (3: read-back), RW1-RW0 the access (0 latch, 1 LSB, 2 MSB, 3 LSB
 * then MSB), M2-M0 the mode, BCD. */
#define PIT_CW(ch, rw, mode) (((ch) << 6) | ((rw) << 4) | ((mode) << 1))
#define RW_LATCH 0
#define RW_LSB   1
#define RW_MSB   2
#define RW_WORD  3
/* Read-back: 11, COUNT# (0: latch the count), STATUS# (0: latch the
 * status), then one bit per channel (CNT2 CNT1 CNT0) and a 0. */
#define PIT_RB_STATUS(chbits) (0xe0 | (chbits))
#define PIT_RB_BOTH(chbits)   (0xc0 | (chbits))
#define RB_CH(n)              (2u << (n))
/* Status byte: OUT, NULL COUNT, RW1 RW0, M2 M1 M0, BCD.  Bits 5-0 are the
 * programming; see the header for why OUT and NULL COUNT are printed only
 * where they are deterministic on QEMU too. */
#define ST_PROG  0x3f

static void pit_start(int ch, int mode, uint32_t count)
{
    outb(PIT_CTRL, PIT_CW(ch, RW_WORD, mode));
    outb(PIT_CH(ch), count & 0xff);
    outb(PIT_CH(ch), (count >> 8) & 0xff);
}

static uint16_t pit_latch(int ch)
{
    outb(PIT_CTRL, PIT_CW(ch, RW_LATCH, 0));
    uint16_t lo = inb(PIT_CH(ch));
    return lo | (uint16_t)inb(PIT_CH(ch)) << 8;
}

static uint8_t pit_status(int ch)
{
    outb(PIT_CTRL, PIT_RB_STATUS(RB_CH(ch)));
    return inb(PIT_CH(ch));
}

/* Port 0x61 (PC AT Technical Reference, "System Control Port B"): bit 0
 * is channel 2's gate, bit 1 the speaker's data enable (kept off), bits
 * 2-3 parity and channel check enables (kept as they are); bit 5 reads
 * channel 2's OUT, bit 4 the refresh toggle. */
static void gate2(int on)
{
    outb(PORT_B, (inb(PORT_B) & 0x0c) | (on ? 1 : 0));
}

static int out2(void) { return (inb(PORT_B) & 0x20) != 0; }

static int wait_out2(void)
{
    for (uint32_t i = 0; i < SPIN_IO; i++)
        if (out2())
            return 1;
    return 0;
}

/* A stopwatch: channel 2 in mode 0 counts `clocks` down with its gate
 * high; OUT2 rises at the terminal count.  Returns 1 once it has. */
static int ch2_wait(uint32_t clocks)
{
    gate2(1);
    pit_start(2, 0, clocks);
    return wait_out2();
}

/* The start of each test: interrupts off, channel 0 stopped, the PICs
 * initialized afresh, the IRQ bookkeeping zero.  Stopping channel 0 takes
 * care: a timer the last test left running may latch a tick in IRR after
 * the PICs' initialization, and on bare QEMU the 8254's output reaches
 * the PIC from a QEMU timer that can run late, after the status byte
 * already shows OUT high.  So channel 0 is given one more edge, in mode 0
 * 10 ms ahead (none after it), the PICs forget everything before, and the
 * guest waits - at most 50 ms - for that edge to reach IRR before it
 * initializes the PICs once more. */
static void fresh_start(void)
{
    cli();
    pit_start(0, 0, MS(10));
    pic_fresh();
    gate2(1);
    pit_start(2, 0, MS(50));            /* (a count is 16 bits: 54.9 ms at most) */
    for (uint32_t i = 0; i < SPIN_IO && !(pic_irr(PIC_M) & 1) && !out2(); i++)
        ;
    pic_fresh();
    irq_reset();
}

/* ------------------------------------------------------------ firmware */

static void test_firmware(void)
{
    uint8_t mcr = inb(UART(U_MCR));
    uint8_t s0 = pit_status(0), s1 = pit_status(1), s2 = pit_status(2);
    printf("firmware: COM1 MCR=0x%02x\n", mcr);
    printf("firmware: 8254 programming (status bits 5-0) ch0=0x%02x ch1=0x%02x ch2=0x%02x\n",
           s0 & ST_PROG, s1 & ST_PROG, s2 & ST_PROG);
    printf("firmware: port 0x61 gate/speaker=0x%02x, port 0x92=0x%02x, ELCR=0x%02x 0x%02x\n",
           inb(PORT_B) & 0x03, inb(PORT_A), inb(ELCR_M), inb(ELCR_S));
    /* The BIOS's tick: channel 0, LSB then MSB, mode 2 or 3. */
    int m = (s0 >> 1) & 7;
    check_true("firmware_tick", (s0 & 0x30) == 0x30 && (m == 2 || m == 3 || m == 6 || m == 7),
               "channel 0 is not a periodic timer");
}

/* ------------------------------------------------------------ 8259A tests */

static void test_pic_init(void)
{
    uint8_t imr[2];
    fresh_start();
    pic_program(0xff, 0xff, imr);
    uint8_t irr_m = pic_irr(PIC_M), irr_s = pic_irr(PIC_S);
    uint8_t isr_m = pic_isr(PIC_M), isr_s = pic_isr(PIC_S);
    printf("pic: after ICW1-ICW4 IMR=0x%02x 0x%02x IRR=0x%02x 0x%02x ISR=0x%02x 0x%02x\n",
           imr[0], imr[1], irr_m, irr_s, isr_m, isr_s);
    check_true("pic_init", imr[0] == 0 && imr[1] == 0 && !irr_m && !irr_s && !isr_m && !isr_s,
               "ICW1 did not clear IMR, or a request or service bit survived it");

    pic_mask(0xa5, 0x5a);
    uint8_t m = inb(PIC_DATA(PIC_M)), s = inb(PIC_DATA(PIC_S));
    pic_mask(0x3c, 0xc3);
    uint8_t m2 = inb(PIC_DATA(PIC_M)), s2 = inb(PIC_DATA(PIC_S));
    pic_mask(0xff, 0xff);
    printf("pic: IMR wrote 0xa5 0x5a read 0x%02x 0x%02x; wrote 0x3c 0xc3 read 0x%02x 0x%02x\n", m, s, m2, s2);
    check_true("pic_imr", m == 0xa5 && s == 0x5a && m2 == 0x3c && s2 == 0xc3, "IMR readback differs");
}

/* A request is latched in IRR whether or not its line is masked: the mask
 * only keeps it from the priority resolver (8259A data sheet, "Interrupt
 * Mask Register").  Then, unmasked, it is delivered, and stays in service
 * (ISR) until an EOI names it. */
static void test_pic_service(void)
{
    fresh_start();
    pit_start(0, 0, MS(1));             /* one IRQ0 edge, 1 ms from now */
    uint8_t irr = wait_irr(0x01);
    uint8_t isr = pic_isr(PIC_M);
    printf("pic: IRQ0 masked: IRR=0x%02x ISR=0x%02x\n", irr, isr);
    check_true("pic_irr_masked", irr == 0x01 && isr == 0, "IRR does not show the masked request");

    eoi_mode[0] = EOI_NONE;
    pic_mask(0xfe, 0xff);
    sti();
    int got = wait_irqs(0, 1);
    cli();
    uint8_t isr_h = isr_at_entry[0] & 0xff;
    uint8_t isr_after = pic_isr(PIC_M), irr_after = pic_irr(PIC_M);
    outb(PIC_M, OCW2_SEOI(1));          /* names a level not in service: nothing */
    uint8_t isr_wrong = pic_isr(PIC_M);
    outb(PIC_M, OCW2_SEOI(0));
    uint8_t isr_end = pic_isr(PIC_M);
    printf("pic: unmasked: delivered=%u vector=0x%02x ISR in handler=0x%02x after IRET=0x%02x IRR=0x%02x\n",
           irq_count[0], got ? VEC_IRQ(0) : 0, isr_h, isr_after, irr_after);
    printf("pic: specific EOI of IR1: ISR=0x%02x; of IR0: ISR=0x%02x\n", isr_wrong, isr_end);
    check_true("pic_in_service", got && irq_count[0] == 1 && isr_h == 1 && isr_after == 1 && irr_after == 0,
               "IRQ0 not delivered once, or not in service until its EOI");
    check_true("pic_specific_eoi", isr_wrong == 1 && isr_end == 0, "specific EOI cleared the wrong level");
    pic_mask(0xff, 0xff);
}

/* Fully nested mode: a request of higher priority than everything in
 * service interrupts its handler; a non-specific EOI then clears the
 * highest-priority bit in service, which is the nested one. */
static void test_pic_nested(void)
{
    fresh_start();
    eoi_mode[0] = eoi_mode[4] = EOI_NONE;
    outb(UART(U_IER), 0);
    outb(UART(U_MCR), 0x08);            /* OUT2: the PC routes the UART's INTR to IRQ4 */
    pic_mask(0xef, 0xff);
    outb(UART(U_IER), 0x02);            /* THR empty interrupt: pending at once */
    sti();
    int got4 = wait_irqs(4, 1);
    cli();
    outb(UART(U_IER), 0);
    uint8_t isr4 = pic_isr(PIC_M);
    pit_start(0, 0, MS(1));
    pic_mask(0xee, 0xff);
    sti();
    int got0 = wait_irqs(0, 1);
    cli();
    uint8_t isr_in0 = isr_at_entry[0] & 0xff;
    uint8_t isr_both = pic_isr(PIC_M);
    outb(PIC_M, OCW2_EOI);
    uint8_t isr_one = pic_isr(PIC_M);
    outb(PIC_M, OCW2_EOI);
    uint8_t isr_none = pic_isr(PIC_M);
    pic_mask(0xff, 0xff);
    printf("pic: IRQ4 in service: ISR=0x%02x (IIR in its handler 0x%02x); IRQ0 nested: ISR in handler=0x%02x after=0x%02x\n",
           isr4, last_iir, isr_in0, isr_both);
    printf("pic: non-specific EOI: ISR=0x%02x, again: ISR=0x%02x\n", isr_one, isr_none);
    check_true("pic_nested", got4 && got0 && isr4 == 0x10 && isr_in0 == 0x11 && isr_both == 0x11,
               "IRQ0 did not nest over IRQ4 in service");
    check_true("pic_nonspecific_eoi", isr_one == 0x10 && isr_none == 0, "non-specific EOI cleared the wrong level");
}

/* Two requests pending while IF = 0: the higher-priority one (IR0) is
 * taken first; the other (IR4) waits while IR0 is in service even with IF
 * = 1, and is taken after IR0's EOI. */
static void test_pic_priority(void)
{
    fresh_start();
    eoi_mode[0] = EOI_NONE;
    eoi_mode[4] = EOI_SPECIFIC;
    outb(UART(U_MCR), 0x08);
    pic_mask(0xee, 0xff);
    pit_start(0, 0, MS(1));
    outb(UART(U_IER), 0x02);
    uint8_t irr = wait_irr(0x11);
    sti();
    int got0 = wait_irqs(0, 1);
    ch2_wait(MS(2));                    /* IRQ4 must not come meanwhile */
    int held = irq_count[4] == 0;
    outb(PIC_M, OCW2_EOI);              /* with IF = 1: IRQ4 now */
    int got4 = wait_irqs(4, 1);
    cli();
    outb(UART(U_IER), 0);
    uint8_t isr = pic_isr(PIC_M);
    pic_mask(0xff, 0xff);
    printf("pic: pending together IRR=0x%02x; order:", irr);
    for (uint32_t i = 0; i < norder; i++)
        printf(" IRQ%u", irq_order[i]);
    printf("; IRQ4 held while IRQ0 in service: %s; ISR in IRQ4's handler=0x%02x, at the end=0x%02x\n",
           yn(held), isr_at_entry[4] & 0xff, isr);
    check_true("pic_priority", irr == 0x11 && got0 && got4 && held && norder == 2 && irq_order[0] == 0 &&
               irq_order[1] == 4 && (isr_at_entry[4] & 0xff) == 0x10 && isr == 0,
               "not IRQ0 then IRQ4, or IRQ4 not held while IRQ0 was in service");
}

/* ------------------------------------------------------------ 8254 tests */

static void test_pit_periodic(int mode, uint32_t count)
{
    char name[24];
    fresh_start();
    pit_start(0, mode, count);
    uint8_t st = pit_status(0) & ST_PROG;
    pic_mask(0xfe, 0xff);
    sti();
    int got = wait_irqs(0, 5);
    cli();
    uint16_t v = pit_latch(0);
    /* The rate: ticks during 65535 clocks of channel 2 (54.9 ms) can be at
     * most 65535 / count + 1; a few more for a tick already pending, a
     * slow look at OUT2, or QEMU's timer catching up after a stall.  No
     * lower bound: on a loaded host bare QEMU's timer callbacks, which
     * raise IRQ0, can fall behind the clock OUT2 is computed from. */
    irq_reset();
    sti();
    int timed = ch2_wait(0xffff);
    cli();
    uint32_t n = irq_count[0], most = 0xffff / count + 4;
    pic_mask(0xff, 0xff);
    int in_range = v >= 1 && v <= count && (mode != 3 || (v & 1) == 0);
    printf("pit: mode %d count %u: status 0x%02x, 5 IRQ0s: %s, latched count within [1,%u]%s: %s, "
           "IRQ0s in 65535 clocks at most %u: %s\n",
           mode, count, st, yn(got), count, mode == 3 ? " and even" : "", yn(in_range), most,
           yn(timed && n <= most));
    snprintf(name, sizeof name, "pit_mode%d", mode);
    check_true(name, st == (0x30 | mode << 1) && got && in_range && timed && n <= most,
               "wrong status, no ticks, a count out of range, or too fast");
}

/* Mode 0, interrupt on terminal count: OUT low from the count's load to
 * the terminal count, then high; one IRQ0, never a second. */
static void test_pit_mode0(void)
{
    fresh_start();
    pic_mask(0xfe, 0xff);
    pit_start(0, 0, MS(50));
    uint8_t st0 = pit_status(0);            /* within 50 ms: OUT still low */
    sti();
    int got = wait_irqs(0, 1);
    uint8_t st1 = pit_status(0);
    ch2_wait(0xffff);
    cli();
    uint32_t n = irq_count[0];
    pic_mask(0xff, 0xff);
    printf("pit: mode 0 count %u: status 0x%02x, IRQ0: %s, then status 0x%02x, IRQ0s 55 ms later: %u\n",
           MS(50), st0, yn(got), st1, n);
    check_true("pit_mode0", st0 == 0x30 && got && st1 == 0xb0 && n == 1,
               "OUT not low then high, or not exactly one IRQ0");
}

/* The counter latch command freezes the count for the next read; a second
 * latch before it is read is ignored (8254 data sheet, "Counter Latch
 * Command").  Channel 0 in mode 2 with count 65536 counts modulo 65536, so
 * the difference of two readings (mod 65536) is the clocks between them,
 * however the counter reloaded in between. */
static void test_pit_latch(void)
{
    fresh_start();
    pit_start(0, 2, 0);
    int decreased = 0, kept = 0;
    for (int t = 0; t < 3 && !decreased; t++) {
        uint16_t a = pit_latch(0);
        for (volatile int i = 0; i < 2000; i++)
            ;
        uint16_t b = pit_latch(0);
        uint16_t d = a - b;
        decreased = d >= 1 && d < 30000;
    }
    for (int t = 0; t < 3 && !kept; t++) {
        outb(PIT_CTRL, PIT_CW(0, RW_LATCH, 0));
        ch2_wait(MS(2));
        outb(PIT_CTRL, PIT_CW(0, RW_LATCH, 0));         /* ignored: a latch is pending */
        uint16_t a = inb(PIT_CH(0));
        a |= (uint16_t)inb(PIT_CH(0)) << 8;
        uint16_t b = pit_latch(0);
        uint16_t d = a - b;
        kept = d >= MS(2) - 100 && d < 40000;
    }
    printf("pit: latched counts decreased across a loop: %s; a second latch before reading was ignored: %s\n",
           yn(decreased), yn(kept));
    check_true("pit_latch", decreased, "the count did not decrease");
    check_true("pit_latch_twice", kept, "the second latch replaced the first");
}

/* The read-back command (8254 data sheet, "Read-Back Command"). */
static void test_pit_readback(void)
{
    cli();
    pit_start(0, 2, 0);
    gate2(1);
    uint8_t st = 0, hi = 0;
    for (int t = 0; t < 3 && !(st == 0x30 && hi >= 0x80); t++) {
        pit_start(2, 0, 0xffff);                /* 54.9 ms; read within 27 ms: high byte >= 0x80 */
        outb(PIT_CTRL, PIT_RB_BOTH(RB_CH(2)));  /* count and status: status reads first */
        st = inb(PIT_CH(2));
        (void)inb(PIT_CH(2));
        hi = inb(PIT_CH(2));
    }
    outb(PIT_CTRL, PIT_RB_STATUS(RB_CH(2)));
    int went = wait_out2();
    outb(PIT_CTRL, PIT_RB_STATUS(RB_CH(2)));    /* ignored: a status is latched */
    uint8_t st_kept = inb(PIT_CH(2));
    outb(PIT_CTRL, PIT_RB_STATUS(RB_CH(0) | RB_CH(2)));
    uint8_t st0 = inb(PIT_CH(0)), st2 = inb(PIT_CH(2));
    printf("pit: read-back of count and status: status 0x%02x then a count with high byte >= 0x80: %s\n",
           st, yn(hi >= 0x80));
    printf("pit: status latched before OUT2 rose, read after: 0x%02x; both channels: ch0 0x%02x ch2 0x%02x\n",
           st_kept, st0 & ST_PROG, st2);
    check_true("pit_readback", st == 0x30 && hi >= 0x80 && went && st_kept == 0x30 &&
               (st0 & ST_PROG) == 0x34 && st2 == 0xb0, "read-back status or count wrong");
}

/* Channel 2: its gate and OUT are port 0x61's bits 0 and 5.  And the
 * single-byte access modes: RW = 1 loads (and reads) the low byte only, RW
 * = 2 the high byte only, the other byte being 0. */
static void test_pit_ch2(void)
{
    cli();
    gate2(1);
    uint8_t b1 = inb(PORT_B) & 0x03;
    pit_start(2, 0, MS(50));
    int low = !out2();
    int high = wait_out2();
    gate2(0);
    uint8_t b0 = inb(PORT_B) & 0x03;
    printf("pit: port 0x61 gate on: 0x%02x; OUT2 low after the count: %s, high after 50 ms: %s; gate off: 0x%02x\n",
           b1, yn(low), yn(high), b0);
    check_true("pit_ch2_gate", b1 == 1 && low && high && b0 == 0, "port 0x61 or OUT2 wrong");

    gate2(1);
    outb(PIT_CTRL, PIT_CW(2, RW_LSB, 0));
    outb(PIT_CH(2), 200);                       /* the whole count: 200 clocks */
    int lsb_high = wait_out2();
    uint8_t st_lsb = pit_status(2);
    int hi_ok = 0;
    uint8_t st_msb = 0;
    for (int t = 0; t < 3 && !(hi_ok && st_msb == 0x20); t++) {
        outb(PIT_CTRL, PIT_CW(2, RW_MSB, 0));
        outb(PIT_CH(2), 0xff);                  /* count 0xff00: 54.8 ms */
        uint8_t h = inb(PIT_CH(2));             /* reads the high byte */
        st_msb = pit_status(2);
        hi_ok = h >= 0x80;
    }
    int msb_high = wait_out2();
    uint8_t st_msb2 = pit_status(2);
    gate2(0);
    printf("pit: LSB only: OUT2 high after 200 clocks: %s, status 0x%02x; MSB only: high byte >= 0x80: %s, "
           "status 0x%02x, then 0x%02x\n", yn(lsb_high), st_lsb, yn(hi_ok), st_msb, st_msb2);
    check_true("pit_lsb_msb", lsb_high && st_lsb == 0x90 && hi_ok && st_msb == 0x20 && msb_high && st_msb2 == 0xa0,
               "single-byte access wrong");

    /* Channel 1, the PC's refresh timer: its control word, then a latch
     * before any count was written (the data sheet leaves the value
     * undefined: it is read and dropped), then the classic count of 18. */
    outb(PIT_CTRL, PIT_CW(1, RW_LSB, 2));
    outb(PIT_CTRL, PIT_CW(1, RW_LATCH, 0));
    (void)inb(PIT_CH(1));
    outb(PIT_CH(1), 18);
    uint8_t st1 = pit_status(1) & ST_PROG;
    printf("pit: channel 1 latched before its first count, then 18 in mode 2: status 0x%02x\n", st1);
    check_eq("pit_ch1", st1, 0x14);
}

/* ------------------------------------------------------------ CPU: HLT and shadows */

void hlt_once(void);
extern char hlt_after[];
void sti_probe(void);
extern char sti_after[];
void popf_probe(void);
extern char popf_after[];
void iret_probe(void);
extern char iret_after[];
static volatile uint32_t probe_flag, flag_at_irq;

__asm__(".text\n"
        /* STI's shadow covers HLT: an interrupt arriving between the two
         * still finds the CPU halted, and wakes it (SDM Vol. 2B, STI). */
        "hlt_once:\n\t"
        "sti\n\t"
        "hlt\n"
        "hlt_after:\n\t"
        "cli\n\t"
        "ret\n"
        /* With IF = 0 and a request pending: STI, then one instruction,
         * then the interrupt. */
        "sti_probe:\n\t"
        "movl $0, probe_flag\n\t"
        "sti\n\t"
        "movl $1, probe_flag\n"
        "sti_after:\n\t"
        "nop\n\t"
        "cli\n\t"
        "ret\n"
        /* POPF setting IF has no shadow: the interrupt comes before the
         * next instruction. */
        "popf_probe:\n\t"
        "movl $0, probe_flag\n\t"
        "pushl $0x202\n\t"
        "popfl\n"
        "popf_after:\n\t"
        "movl $1, probe_flag\n\t"
        "cli\n\t"
        "ret\n"
        /* Neither has IRET. */
        "iret_probe:\n\t"
        "movl $0, probe_flag\n\t"
        "pushfl\n\t"
        "orl $0x200, (%esp)\n\t"
        "pushl %cs\n\t"
        "pushl $iret_after\n\t"
        "iret\n"
        "iret_after:\n\t"
        "movl $1, probe_flag\n\t"
        "cli\n\t"
        "ret\n");

static void hook_flag(struct trapframe *f)
{
    (void)f;
    flag_at_irq = probe_flag;
}

static void test_hlt(void)
{
    fresh_start();
    pit_start(0, 2, MS(4));
    pic_mask(0xfe, 0xff);
    int woke = 0, at_next = 0;
    for (int i = 0; i < 3; i++) {
        uint32_t before = irq_count[0];
        hlt_once();
        woke += irq_count[0] > before;
        at_next += irq_eip[0] == (uint32_t)hlt_after;
    }
    pic_mask(0xff, 0xff);
    printf("hlt: sti;hlt woken by IRQ0 %d of 3 times, returning to the instruction after HLT %d times\n",
           woke, at_next);
    check_true("hlt_wake", woke == 3 && at_next == 3, "HLT not woken by IRQ0, or the wrong return address");
}

/* Run one probe with IRQ0 pending and IF = 0. */
static void shadow_probe(void (*probe)(void))
{
    fresh_start();
    irq_hook = hook_flag;
    flag_at_irq = 0xff;
    pit_start(0, 0, MS(1));
    pic_mask(0xfe, 0xff);
    wait_irr(0x01);
    probe();
    pic_mask(0xff, 0xff);
}

static void test_shadows(void)
{
    shadow_probe(sti_probe);
    uint32_t n1 = irq_count[0], f1 = flag_at_irq, e1 = irq_eip[0] == (uint32_t)sti_after;
    shadow_probe(popf_probe);
    uint32_t n2 = irq_count[0], f2 = flag_at_irq, e2 = irq_eip[0] == (uint32_t)popf_after;
    shadow_probe(iret_probe);
    uint32_t n3 = irq_count[0], f3 = flag_at_irq, e3 = irq_eip[0] == (uint32_t)iret_after;
    printf("shadow: sti: IRQ0 %u, the next instruction ran first: %s, returned after it: %s\n", n1, yn(f1 == 1), yn(e1));
    printf("shadow: popf: IRQ0 %u, the next instruction ran first: %s, returned before it: %s\n", n2, yn(f2 == 1), yn(e2));
    printf("shadow: iret: IRQ0 %u, the next instruction ran first: %s, returned before it: %s\n", n3, yn(f3 == 1), yn(e3));
    check_true("shadow_sti", n1 == 1 && f1 == 1 && e1, "the interrupt came inside STI's shadow");
    check_true("shadow_popf", n2 == 1 && f2 == 0 && e2, "POPF delayed the interrupt");
    check_true("shadow_iret", n3 == 1 && f3 == 0 && e3, "IRET delayed the interrupt");
}

/* The storm: a fast timer interrupts ring-0 loops built from everything
 * that changes IF or makes a shadow, plus a CALL/RET.  Wherever an
 * interrupt lands, IF must have been 1 there and no shadow in force
 * (SDM Vol. 3A §6.8.1, §6.8.3), and every register must come back: the
 * handler checks each landing site and the registers in the frame, the
 * loops check the registers after each round.  Two loops: the first also
 * loads SS and reads port 0x61 (exits under the monitor: most ticks are
 * then found between exits) and ends when OUT2 rises, a 54.9 ms window;
 * the second has nothing that exits, so the ticks come as host
 * interrupts in the middle of translated code, and ends after a number
 * of ticks.  Either ends early if a register is wrong. */
uint32_t storm_io(uint32_t bound);
uint32_t storm_quiet(uint32_t bound);
extern char storm_cli1[], storm_after_sti[], storm_cli2[], storm_popf[], storm_movss[], storm_after_ss[],
    storm_end[];
extern char quiet_cli1[], quiet_after_sti[], quiet_cli2[], quiet_popf[], quiet_end[];
volatile uint32_t storm_esp, storm_ticks, storm_target;
static volatile uint32_t storm_bad_site, storm_bad_regs;

#define STORM_ENTRY                                                         \
    "pushl %ebp\n\t"                                                        \
    "pushl %ebx\n\t"                                                        \
    "pushl %esi\n\t"                                                        \
    "pushl %edi\n\t"                                                        \
    "movl 20(%esp), %edi\n\t"           /* bound */                         \
    "movl %esp, storm_esp\n\t"                                              \
    "movl $0x11111111, %ebx\n\t"                                            \
    "movl $0x22222222, %ecx\n\t"                                            \
    "movl $0x33333333, %edx\n\t"                                            \
    "movl $0x44444444, %esi\n\t"                                            \
    "movl $0x55555555, %ebp\n\t"                                            \
    "movl $0x66666666, %eax\n"
#define STORM_CHECK                     /* registers wrong: to 8f */        \
    "call storm_leaf\n\t"                                                   \
    "cmpl $0x11111111, %ebx\n\t"                                            \
    "jne 8f\n\t"                                                            \
    "cmpl $0x22222222, %ecx\n\t"                                            \
    "jne 8f\n\t"                                                            \
    "cmpl $0x33333333, %edx\n\t"                                            \
    "jne 8f\n\t"                                                            \
    "cmpl $0x44444444, %esi\n\t"                                            \
    "jne 8f\n\t"                                                            \
    "cmpl $0x55555555, %ebp\n\t"                                            \
    "jne 8f\n\t"                                                            \
    "cmpl $0x66666666, %eax\n\t"                                            \
    "jne 8f\n\t"                                                            \
    "cmpl storm_esp, %esp\n\t"                                              \
    "jne 8f\n\t"
#define STORM_EXIT                      /* 0: done, 1: registers wrong */   \
    "xorl %eax, %eax\n\t"                                                   \
    "jmp 9f\n"                                                              \
    "8:\n\t"                                                                \
    "movl $1, %eax\n"                                                       \
    "9:\n\t"                                                                \
    "movl storm_esp, %esp\n\t"                                              \
    "popl %edi\n\t"                                                         \
    "popl %esi\n\t"                                                         \
    "popl %ebx\n\t"                                                         \
    "popl %ebp\n\t"                                                         \
    "ret\n"

__asm__(".text\n"
        "storm_io:\n\t"
        STORM_ENTRY
        "1:\n"
        "storm_cli1:\n\t"
        "cli\n\t"
        "nop\n\t"
        "sti\n"
        "storm_after_sti:\n\t"
        "nop\n\t"                       /* in STI's shadow */
        "pushfl\n"
        "storm_cli2:\n\t"
        "cli\n\t"
        "nop\n"
        "storm_popf:\n\t"
        "popfl\n\t"                     /* IF = 1 again */
        "movl %ss, %eax\n"
        "storm_movss:\n\t"
        "movw %ax, %ss\n"
        "storm_after_ss:\n\t"
        "nop\n\t"                       /* in MOV SS's shadow */
        "movl $0x66666666, %eax\n\t"
        STORM_CHECK
        "inb $0x61, %al\n\t"
        "testb $0x20, %al\n\t"          /* OUT2: the window is over */
        "movl $0x66666666, %eax\n\t"
        "jnz 7f\n\t"
        "decl %edi\n\t"
        "jnz 1b\n"
        "storm_end:\n"
        "7:\n\t"
        STORM_EXIT
        "storm_quiet:\n\t"
        STORM_ENTRY
        "1:\n"
        "quiet_cli1:\n\t"
        "cli\n\t"
        "nop\n\t"
        "sti\n"
        "quiet_after_sti:\n\t"
        "nop\n\t"
        "pushfl\n"
        "quiet_cli2:\n\t"
        "cli\n\t"
        "nop\n"
        "quiet_popf:\n\t"
        "popfl\n\t"
        STORM_CHECK
        "movl storm_ticks, %eax\n\t"
        "cmpl storm_target, %eax\n\t"
        "movl $0x66666666, %eax\n\t"
        "jae 7f\n\t"
        "decl %edi\n\t"
        "jnz 1b\n"
        "quiet_end:\n"
        "7:\n\t"
        STORM_EXIT
        "storm_leaf:\n\t"
        "ret\n");

/* Where no interrupt may be taken: (after, upto] - IF = 0, or the
 * instruction after STI or MOV SS. */
static const struct { const char *after, *upto; } storm_forbidden[] = {
    { storm_cli1, storm_after_sti }, { storm_cli2, storm_popf }, { storm_movss, storm_after_ss },
    { quiet_cli1, quiet_after_sti }, { quiet_cli2, quiet_popf },
};

static int in_range(uint32_t eip, const char *lo, const char *hi)
{
    return eip >= (uint32_t)lo && eip < (uint32_t)hi;
}

static void hook_storm(struct trapframe *f)
{
    uint32_t eip = f->eip, esp = (uint32_t)&f->esp;     /* ring 0: the CPU pushed no ESP */
    storm_ticks++;
    for (unsigned i = 0; i < sizeof storm_forbidden / sizeof storm_forbidden[0]; i++)
        if (eip > (uint32_t)storm_forbidden[i].after && eip <= (uint32_t)storm_forbidden[i].upto)
            storm_bad_site++;
    /* In the loops' bodies EBX, ECX, EDX, ESI and EBP are constant, and
     * ESP is storm_esp or (after PUSHF) 4 below it. */
    if ((in_range(eip, storm_cli1, storm_end) || in_range(eip, quiet_cli1, quiet_end)) &&
        (f->ebx != 0x11111111 || f->ecx != 0x22222222 || f->edx != 0x33333333 || f->esi != 0x44444444 ||
         f->ebp != 0x55555555 || (esp != storm_esp && esp != storm_esp - 4) || !(f->eflags & EFL_IF)))
        storm_bad_regs++;
}

static void test_storm(void)
{
    fresh_start();
    irq_hook = hook_storm;
    storm_bad_site = storm_bad_regs = storm_ticks = 0;
    pit_start(0, 2, MS(1) / 2);         /* 2 kHz */
    pic_mask(0xfe, 0xff);
    uint32_t broken = 0;
    for (int w = 0; w < 4 && !broken; w++) {
        gate2(1);
        pit_start(2, 0, 0xffff);
        broken = storm_io(10000000);
    }
    uint32_t io_ticks = storm_ticks;
    storm_ticks = 0;
    storm_target = 200;
    if (!broken)
        broken = 2 * storm_quiet(SPIN);
    cli();
    uint32_t quiet_ticks = storm_ticks;
    pic_mask(0xff, 0xff);
    irq_hook = 0;
    printf("storm: IRQ0s in 4 windows of 65535 clocks at least 10: %s; then %u IRQ0s without exits: %s\n",
           yn(io_ticks >= 10), storm_target, yn(quiet_ticks >= storm_target));
    printf("storm: taken where IF=0 or in a shadow: %u; registers wrong in a frame: %u, after a round: %s\n",
           storm_bad_site, storm_bad_regs, broken == 1 ? "yes, with exits" : broken ? "yes, without" : "no");
    check_true("storm", io_ticks >= 10 && quiet_ticks >= storm_target && !storm_bad_site && !storm_bad_regs &&
               !broken, "an interrupt at a boundary where none may be taken, or registers changed");
}

/* ------------------------------------------------------------ ring 3 */

static volatile uint32_t ticks_user, ticks_kernel;

static void hook_ring(struct trapframe *f)
{
    if (f->cs & 3)
        ticks_user++;
    else
        ticks_kernel++;
}

/* Ring 3, IF = 1, IOPL = 0: runs directly under the monitor, so the
 * timer's interrupts arrive during direct execution. */
static uint32_t user_spin(uint32_t target)
{
    uint32_t t = 0;
    for (uint32_t i = 0; i < SPIN && (t = irq_count[0]) < target; i++)
        ;
    return t;
}

static void test_ring3(void)
{
    fresh_start();
    irq_hook = hook_ring;
    ticks_user = ticks_kernel = 0;
    pit_start(0, 2, MS(2));
    pic_mask(0xfe, 0xff);
    uint32_t r = run_user(user_spin, 10, EFL_IF);
    pic_mask(0xff, 0xff);
    irq_hook = 0;
    /* Two ticks may come between two looks of the loop, and one more
     * between its last look and its system call: all at ring 3. */
    printf("ring3: the user loop saw IRQ0 count reach 10: %s; all of them interrupted CPL 3: %s\n",
           yn(r >= 10), yn(ticks_user >= r && ticks_kernel == 0));
    check_true("ring3_irq", r >= 10 && ticks_user >= r && ticks_kernel == 0,
               "ticks did not all arrive in ring 3");
}

/* ------------------------------------------------------------ 16550A */

static void test_uart(void)
{
    fresh_start();
    uint8_t mcr0 = inb(UART(U_MCR)), lcr0 = inb(UART(U_LCR));

    outb(UART(U_SCR), 0x5a);
    uint8_t s1 = inb(UART(U_SCR));
    outb(UART(U_SCR), 0xa5);
    uint8_t s2 = inb(UART(U_SCR));
    outb(UART(U_SCR), 0);
    outb(UART(U_IER), 0x05);            /* received data and line status: neither pending */
    uint8_t i1 = inb(UART(U_IER));
    outb(UART(U_IER), 0xf0);            /* bits 7-4 are always 0 */
    uint8_t i2 = inb(UART(U_IER));
    outb(UART(U_IER), 0);

    /* DLAB (LCR bit 7) maps the divisor latch over RBR/THR and IER. */
    outb(UART(U_LCR), 0x80 | lcr0);
    uint8_t dll = inb(UART(U_DLL)), dlm = inb(UART(U_DLM)), lcr_d = inb(UART(U_LCR));
    outb(UART(U_DLL), 0x0c);
    outb(UART(U_DLM), 0x00);
    uint8_t dll2 = inb(UART(U_DLL)), dlm2 = inb(UART(U_DLM));
    outb(UART(U_DLL), dll);
    outb(UART(U_DLM), dlm);
    outb(UART(U_LCR), lcr0);
    uint8_t ier_back = inb(UART(U_IER));
    note("uart: scratch 0x%02x 0x%02x; IER wrote 0x05 read 0x%02x, wrote 0xf0 read 0x%02x\n", s1, s2, i1, i2);
    note("uart: DLAB: LCR=0x%02x divisor 0x%02x%02x, wrote 0x000c read 0x%02x%02x; after DLAB IER=0x%02x\n",
         lcr_d, dlm, dll, dlm2, dll2, ier_back);
    int ok_regs = s1 == 0x5a && s2 == 0xa5 && i1 == 0x05 && i2 == 0 && lcr_d == (0x80 | lcr0) &&
                  dll2 == 0x0c && dlm2 == 0 && ier_back == 0;

    /* FCR bit 0 enables the FIFOs; IIR bits 7-6 then read 11.  IIR bit 0
     * set: no interrupt pending. */
    outb(UART(U_FCR), 0x00);
    uint8_t iir_nofifo = inb(UART(U_IIR));
    outb(UART(U_FCR), 0x07);            /* on, both cleared, trigger level 1 */
    uint8_t iir_fifo = inb(UART(U_IIR));

    /* THR empty (IIR 0x02, lowest priority): set when enabled with THR
     * empty; cleared by reading IIR while it is the one shown. */
    outb(UART(U_MCR), 0x08);
    outb(UART(U_IER), 0x02);
    uint8_t iir_thre = inb(UART(U_IIR)), iir_read = inb(UART(U_IIR));
    outb(UART(U_IER), 0);
    /* That request is still latched in IRR (edge triggered, masked): start
     * from a fresh PIC so that only the next edge counts. */
    pic_fresh();
    irq_reset();
    eoi_mode[4] = EOI_SPECIFIC;
    pic_mask(0xef, 0xff);
    sti();
    outb(UART(U_IER), 0x02);            /* with IF = 1: IRQ4 right away */
    int got = wait_irqs(4, 1);
    cli();
    uint8_t iir_after = inb(UART(U_IIR));
    outb(UART(U_IER), 0);
    pic_mask(0xff, 0xff);
    note("uart: IIR without FIFO 0x%02x, with 0x%02x; THRE enabled: 0x%02x, read again: 0x%02x\n",
         iir_nofifo, iir_fifo, iir_thre, iir_read);
    note("uart: THRE through IRQ4: delivered %u, IIR in the handler 0x%02x, after 0x%02x\n",
         irq_count[4], last_iir, iir_after);
    int ok_iir = iir_nofifo == 0x01 && iir_fifo == 0xc1 && iir_thre == 0xc2 && iir_read == 0xc1;
    int ok_thre = got && irq_count[4] == 1 && last_iir == 0xc2 && iir_after == 0xc1;

    /* Loopback (MCR bit 4): the transmitter feeds the receiver, and the
     * modem inputs mirror the outputs: DTR->DSR, RTS->CTS, OUT1->RI,
     * OUT2->DCD (PC16550D data sheet, "MCR" bit 4). */
    static const uint8_t mcrs[5] = { 0x11, 0x12, 0x14, 0x18, 0x1f };
    uint8_t msr[5];
    for (int i = 0; i < 5; i++) {
        outb(UART(U_MCR), mcrs[i]);
        msr[i] = inb(UART(U_MSR));
    }
    outb(UART(U_MCR), 0x10);
    outb(UART(U_IER), 0x01);            /* received data available */
    uint8_t lsr0 = inb(UART(U_LSR));
    outb(UART(U_THR), 'L');
    uint8_t lsr1 = inb(UART(U_LSR)), iir_rx = inb(UART(U_IIR));
    uint8_t rbr = inb(UART(U_RBR));
    uint8_t lsr2 = inb(UART(U_LSR)), iir_rx2 = inb(UART(U_IIR));
    outb(UART(U_THR), 'a');
    outb(UART(U_THR), 'b');
    outb(UART(U_THR), 'c');
    char three[4];
    for (int i = 0; i < 3; i++)
        three[i] = (char)inb(UART(U_RBR));
    three[3] = 0;
    uint8_t lsr3 = inb(UART(U_LSR));
    /* Trigger level 4, one byte: no "data available" interrupt, but after
     * four character times without activity the character timeout
     * indication (IIR 0x0c).  At the 9600 baud of reset four characters
     * take 4.2 ms; the wait is 20 ms, so that a loaded host, on which
     * bare QEMU's timer for it runs late, does not fail the test. */
    outb(UART(U_FCR), 0x47);
    outb(UART(U_THR), 'T');
    ch2_wait(MS(20));
    uint8_t iir_to = inb(UART(U_IIR));
    uint8_t rbr_to = inb(UART(U_RBR));
    uint8_t iir_to2 = inb(UART(U_IIR));
    outb(UART(U_IER), 0);
    outb(UART(U_FCR), 0x07);
    outb(UART(U_MCR), mcr0);
    note("uart: loopback MSR for MCR 0x11 0x12 0x14 0x18 0x1f: 0x%02x 0x%02x 0x%02x 0x%02x 0x%02x\n",
         msr[0], msr[1], msr[2], msr[3], msr[4]);
    note("uart: loopback LSR=0x%02x, a byte sent: LSR=0x%02x IIR is received data: %s, RBR=0x%02x, then LSR=0x%02x IIR=0x%02x\n",
         lsr0, lsr1, yn(iir_rx == 0xc4 || iir_rx == 0xcc), rbr, lsr2, iir_rx2);
    note("uart: three bytes back \"%s\", LSR=0x%02x; trigger 4, one byte, 20 ms later IIR=0x%02x, RBR=0x%02x, IIR=0x%02x\n",
         three, lsr3, iir_to, rbr_to, iir_to2);
    int ok_loop = msr[0] == 0x20 && msr[1] == 0x10 && msr[2] == 0x40 && msr[3] == 0x80 && msr[4] == 0xf0 &&
                  lsr0 == 0x60 && lsr1 == 0x61 && (iir_rx == 0xc4 || iir_rx == 0xcc) && rbr == 'L' &&
                  lsr2 == 0x60 && iir_rx2 == 0xc1 && !strcmp(three, "abc") && lsr3 == 0x60 &&
                  iir_to == 0xcc && rbr_to == 'T' && iir_to2 == 0xc1;

    print_notes();
    check_true("uart_regs", ok_regs, "scratch, IER or divisor latch readback wrong");
    check_true("uart_iir", ok_iir, "IIR wrong");
    check_true("uart_thre_irq", ok_thre, "the THRE interrupt did not arrive through IRQ4");
    check_true("uart_loopback", ok_loop, "loopback wrong");
}

/* ------------------------------------------------------------ CMOS */

static uint8_t cmos(uint8_t reg)
{
    outb(CMOS_INDEX, reg);              /* bit 7 clear: NMI stays enabled */
    return inb(CMOS_DATA);
}

static int bcd_ok(uint8_t v) { return (v & 0x0f) <= 9 && (v >> 4) <= 9; }

/* A clock register in range [lo, hi], read in the format status B names. */
static int clock_ok(uint8_t v, int binary, int lo, int hi)
{
    if (!binary) {
        if (!bcd_ok(v))
            return 0;
        v = (v >> 4) * 10 + (v & 0x0f);
    }
    return v >= lo && v <= hi;
}

static void test_cmos(void)
{
    uint8_t a = cmos(0x0a), b = cmos(0x0b), d = cmos(0x0d);
    /* Wait out an update (register A bit 7: update in progress). */
    for (uint32_t i = 0; i < SPIN_IO && (cmos(0x0a) & 0x80); i++)
        ;
    int bin = b & 0x04, h24 = b & 0x02;
    uint8_t sec = cmos(0x00), min = cmos(0x02), hour = cmos(0x04);
    uint8_t wday = cmos(0x06), mday = cmos(0x07), mon = cmos(0x08), year = cmos(0x09);
    int hour_ok = h24 ? clock_ok(hour, bin, 0, 23) : clock_ok(hour & 0x7f, bin, 1, 12);
    int ok = clock_ok(sec, bin, 0, 59) && clock_ok(min, bin, 0, 59) && hour_ok && clock_ok(wday, bin, 1, 7) &&
             clock_ok(mday, bin, 1, 31) && clock_ok(mon, bin, 1, 12) && clock_ok(year, bin, 0, 99);
    printf("cmos: A bits 6-0=0x%02x B=0x%02x D=0x%02x; clock (sec min hour wday mday mon year) in range: %s\n",
           a & 0x7f, b, d, yn(ok));
    /* The AT's configuration bytes: floppy types, equipment, base memory
     * (KiB), memory above 1 MiB (KiB, twice), above 16 MiB (64 KiB). */
    static const uint8_t regs[] = { 0x10, 0x14, 0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x32 };
    printf("cmos: 0x10 0x14 0x15 0x16 0x17 0x18 0x30 0x31 0x34 0x35 0x32 =");
    for (unsigned i = 0; i < sizeof regs; i++)
        printf(" %02x", cmos(regs[i]));
    printf("\n");
    uint8_t old = cmos(0x7e);
    outb(CMOS_INDEX, 0x7e);
    outb(CMOS_DATA, 0xc3);
    uint8_t back = cmos(0x7e);
    outb(CMOS_INDEX, 0x7e);
    outb(CMOS_DATA, old);
    printf("cmos: RAM byte 0x7e wrote 0xc3 read 0x%02x\n", back);
    check_true("cmos_status", d == 0x80 && (a & 0x7f) != 0, "register D is not 0x80 (valid RAM and time)");
    check_true("cmos_clock", ok, "a clock register out of range");
    check_eq("cmos_ram", back, 0xc3);
}

/* ------------------------------------------------------------ 8042 */

/* Status register (port 0x64): bit 0 output buffer full, bit 1 input
 * buffer full (the controller has not taken the last byte yet). */
static int kbc_get(uint8_t *v)
{
    for (uint32_t i = 0; i < SPIN_IO / 10; i++)
        if (inb(KBC_CMD) & 1) {
            *v = inb(KBC_DATA);
            return 1;
        }
    return 0;
}

static void kbc_put(uint16_t port, uint8_t v)
{
    for (uint32_t i = 0; i < SPIN_IO / 10 && (inb(KBC_CMD) & 2); i++)
        ;
    outb(port, v);
}

/* A command (and its data byte, if data >= 0) and up to n replies:
 * returns the replies as a little-endian number, 0xee.. if one is missing. */
static uint32_t kbc_ask(int cmd, int data, int n)
{
    uint32_t r = 0;
    if (cmd >= 0)
        kbc_put(KBC_CMD, (uint8_t)cmd);
    if (data >= 0)
        kbc_put(KBC_DATA, (uint8_t)data);
    for (int i = 0; i < n; i++) {
        uint8_t v;
        if (!kbc_get(&v))
            return 0xeeeeeeee;
        r = r << 8 | v;
    }
    return r;
}

static void test_kbc(void)
{
    fresh_start();
    uint8_t junk;
    for (int i = 0; i < 16 && (inb(KBC_CMD) & 1); i++)
        junk = inb(KBC_DATA);
    (void)junk;
    uint32_t ctr0 = kbc_ask(0x20, -1, 1);
    kbc_ask(0x60, 0x44, 0);             /* no interrupts; system flag; translation */
    uint32_t ctr1 = kbc_ask(0x20, -1, 1);
    uint32_t self = kbc_ask(0xaa, -1, 1);
    uint32_t kbd_if = kbc_ask(0xab, -1, 1);
    uint32_t aux_if = kbc_ask(0xa9, -1, 1);
    uint32_t echo = kbc_ask(-1, 0xee, 1);
    uint32_t id_xlat = kbc_ask(-1, 0xf2, 3);
    kbc_ask(0x60, 0x04, 0);
    uint32_t id_raw = kbc_ask(-1, 0xf2, 3);
    printf("kbc: command byte 0x%02x, wrote 0x44 read 0x%02x; self-test 0x%02x, keyboard interface 0x%02x, aux 0x%02x\n",
           ctr0, ctr1, self, kbd_if, aux_if);
    printf("kbc: keyboard echo 0x%02x; identify, translated 0x%06x, untranslated 0x%06x\n", echo, id_xlat, id_raw);
    check_true("kbc_probe", ctr1 == 0x44 && self == 0x55 && kbd_if == 0 && aux_if == 0 && echo == 0xee &&
               id_xlat == 0xfaab41 && id_raw == 0xfaab83, "a wrong reply");

    /* Bytes the controller is told to queue as if from the keyboard
     * (0xd2) or the mouse (0xd3) raise IRQ1 or IRQ12 when the command
     * byte enables them (bits 0 and 1).  IRQ12 is the slave's IR4: the
     * handler gives a specific EOI to the slave and one for IR2 to the
     * master, as Linux does. */
    kbc_ask(0x60, 0x47, 0);
    pic_fresh();                        /* the replies above latched IRQ1 while it was enabled */
    irq_reset();
    eoi_mode[1] = eoi_mode[12] = EOI_SPECIFIC;
    pic_mask(0xf9, 0xef);               /* IRQ1, the cascade, IRQ12 */
    sti();
    kbc_put(KBC_CMD, 0xd2);
    kbc_put(KBC_DATA, 0x99);
    int got1 = wait_irqs(1, 1);
    uint8_t b1 = last_kbc_byte;
    kbc_put(KBC_CMD, 0xd3);
    kbc_put(KBC_DATA, 0x5a);
    int got12 = wait_irqs(12, 1);
    cli();
    uint8_t b12 = last_kbc_byte;
    uint8_t isr_m = pic_isr(PIC_M), isr_s = pic_isr(PIC_S);
    pic_mask(0xff, 0xff);
    kbc_ask(0x60, (int)(ctr0 & 0xff), 0);
    printf("kbc: 0xd2 0x99: IRQ1 %u byte 0x%02x ISR in handler 0x%04x; 0xd3 0x5a: IRQ12 %u byte 0x%02x ISR in handler "
           "(master | slave << 8) 0x%04x; ISR after 0x%02x 0x%02x\n",
           irq_count[1], b1, isr_at_entry[1], irq_count[12], b12, isr_at_entry[12], isr_m, isr_s);
    check_true("kbc_irq1", got1 && irq_count[1] == 1 && b1 == 0x99 && isr_at_entry[1] == 0x0002,
               "IRQ1 not delivered with the byte");
    check_true("kbc_irq12_cascade", got12 && irq_count[12] == 1 && b12 == 0x5a && isr_at_entry[12] == 0x1004 &&
               isr_m == 0 && isr_s == 0, "IRQ12 not delivered through the slave");
}

/* ------------------------------------------------------------ empty ports */

static void test_empty_ports(void)
{
    static const uint16_t ports[] = { POST_PORT, 0x84, 0x100, 0x200, 0x278, 0x2e8, 0x3e8, 0xe0 };
    int all = 1;
    printf("ports:");
    for (unsigned i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        uint8_t v = inb(ports[i]);
        printf(" 0x%x=0x%02x", ports[i], v);
        all &= v == 0xff;
    }
    outb(POST_PORT, 0x42);              /* a POST code: goes nowhere */
    uint16_t w = inw(0x2e8);
    uint32_t l = inl(0x100);
    printf("; inw 0x2e8=0x%04x inl 0x100=0x%08x\n", w, l);
    check_true("empty_ports", all && w == 0xffff && l == 0xffffffff, "an empty port did not read as all ones");
}

/* ------------------------------------------------------------ main */

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("devices: the PIC, PIT, UART, CMOS, 8042 and interrupts\n");
    test_firmware();                    /* before anything is reprogrammed */
    cpu_init();
    for (int i = 0; i < 16; i++)
        set_trap_handler(VEC_IRQ(i), irq_handler);
    irq_reset();

    test_pic_init();
    test_pic_service();
    test_pic_nested();
    test_pic_priority();

    test_pit_periodic(2, MS(4));
    test_pit_periodic(3, MS(4) - 1);    /* even: mode 3 counts down by twos */
    test_pit_mode0();
    test_pit_latch();
    test_pit_readback();
    test_pit_ch2();

    test_hlt();
    test_shadows();
    test_storm();
    test_ring3();

    test_uart();
    test_cmos();
    test_kbc();
    test_empty_ports();

    fresh_start();
    printf("devices: interrupts on lines no test raised (spurious IR7/IR15 among them): %u\n", stray);
    check_eq("no_stray_irqs", stray, 0);
    printf("devices: done, %d failures\n", failures);
    return failures;
}
