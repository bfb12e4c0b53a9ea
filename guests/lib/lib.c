/*
 * lib.c -- COM1 output, a small printf, exit, PASS/FAIL bookkeeping, the
 * 8259 PIC setup and the mem/str routines.
 *
 * The formatter is pure (no I/O), so ring-3 code can use it through
 * uprintf(), which hands the formatted buffer to the SYS_WRITE system call.
 */
#include "guest.h"

int failures;

/* ---------------------------------------------------------------- serial */

#define COM_THR 0   /* transmit holding (DLAB=0) */
#define COM_DLL 0   /* divisor low (DLAB=1) */
#define COM_IER 1   /* interrupt enable (DLAB=0) */
#define COM_DLM 1   /* divisor high (DLAB=1) */
#define COM_FCR 2   /* FIFO control (write) */
#define COM_LCR 3   /* line control */
#define COM_LSR 5   /* line status */
#define LSR_THRE 0x20

void serial_init(void)
{
    outb(COM1 + COM_IER, 0x00);     /* no interrupts */
    outb(COM1 + COM_LCR, 0x80);     /* DLAB on */
    outb(COM1 + COM_DLL, 0x01);     /* 115200 baud */
    outb(COM1 + COM_DLM, 0x00);
    outb(COM1 + COM_LCR, 0x03);     /* 8N1, DLAB off */
    outb(COM1 + COM_FCR, 0x07);     /* FIFOs on, both cleared */
}

void serial_putc(char c)
{
    while (!(inb(COM1 + COM_LSR) & LSR_THRE))
        ;
    outb(COM1 + COM_THR, (uint8_t)c);
}

void print(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

/* ---------------------------------------------------------------- PIC */

void pic_init(void)
{
    outb(0x20, 0x11);       /* ICW1: edge, cascade, ICW4 follows */
    outb(0xa0, 0x11);
    outb(0x21, 0x20);       /* ICW2: master vectors 0x20-0x27 */
    outb(0xa1, 0x28);       /*       slave vectors 0x28-0x2f */
    outb(0x21, 0x04);       /* ICW3: slave on IR2 */
    outb(0xa1, 0x02);       /*       slave identity 2 */
    outb(0x21, 0x01);       /* ICW4: 8086 mode */
    outb(0xa1, 0x01);
    outb(0x21, 0xff);       /* OCW1: mask everything */
    outb(0xa1, 0xff);
}

void lib_init(void)
{
    pic_init();
    serial_init();
}

/* ---------------------------------------------------------------- exit */

void exit(int code)
{
    outb(0xf4, (uint8_t)code);
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* ---------------------------------------------------------------- format */

struct sink {
    void (*put)(struct sink *, char);
    char *buf;
    size_t size, len;
};

static void sink_serial(struct sink *s, char c)
{
    serial_putc(c);
    s->len++;
}

static void sink_buf(struct sink *s, char c)
{
    if (s->len + 1 < s->size)
        s->buf[s->len] = c;
    s->len++;
}

static void emit_str(struct sink *s, const char *p, int len, int width, int left)
{
    int pad = width > len ? width - len : 0;
    if (!left)
        while (pad-- > 0)
            s->put(s, ' ');
    while (len-- > 0)
        s->put(s, *p++);
    if (left)
        while (pad-- > 0)
            s->put(s, ' ');
}

/* Supports %% %c %s %d %i %u %x %X %p with flags '-' '0', a width, and
 * ignores 'l'/'h' length modifiers (everything is 32-bit). */
static void vformat(struct sink *s, const char *fmt, va_list ap)
{
    char tmp[16];
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            s->put(s, *fmt);
            continue;
        }
        fmt++;
        int left = 0, zero = 0, width = 0;
        for (;; fmt++) {
            if (*fmt == '-')
                left = 1;
            else if (*fmt == '0')
                zero = 1;
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'h')
            fmt++;
        char conv = *fmt;
        if (conv == 0)
            break;
        switch (conv) {
        case '%':
            s->put(s, '%');
            break;
        case 'c':
            tmp[0] = (char)va_arg(ap, int);
            emit_str(s, tmp, 1, width, left);
            break;
        case 's': {
            const char *p = va_arg(ap, const char *);
            if (!p)
                p = "(null)";
            emit_str(s, p, (int)strlen(p), width, left);
            break;
        }
        case 'd': case 'i': case 'u': case 'x': case 'X': case 'p': {
            uint32_t v = va_arg(ap, uint32_t);
            int neg = 0, n = 0;
            unsigned base = (conv == 'd' || conv == 'i' || conv == 'u') ? 10 : 16;
            const char *digits = conv == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
            if (conv == 'p') {
                s->put(s, '0');
                s->put(s, 'x');
                width = 8;
                zero = 1;
            }
            if ((conv == 'd' || conv == 'i') && (int32_t)v < 0) {
                neg = 1;
                v = -v;
            }
            do {
                tmp[n++] = digits[v % base];
                v /= base;
            } while (v);
            int len = n + neg;
            int pad = width > len ? width - len : 0;
            if (!left && !zero)
                while (pad-- > 0)
                    s->put(s, ' ');
            if (neg)
                s->put(s, '-');
            if (!left && zero)
                while (pad-- > 0)
                    s->put(s, '0');
            while (n > 0)
                s->put(s, tmp[--n]);
            if (left)
                while (pad-- > 0)
                    s->put(s, ' ');
            break;
        }
        default:
            s->put(s, '%');
            s->put(s, conv);
            break;
        }
    }
}

int vprintf(const char *fmt, va_list ap)
{
    struct sink s = { sink_serial, 0, 0, 0 };
    vformat(&s, fmt, ap);
    return (int)s.len;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct sink s = { sink_buf, buf, size, 0 };
    vformat(&s, fmt, ap);
    if (size)
        buf[s.len < size ? s.len : size - 1] = 0;
    return (int)s.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int uprintf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = sizeof buf - 1;
    syscall3(SYS_WRITE, (uint32_t)buf, (uint32_t)n, 0);
    return n;
}

/* ---------------------------------------------------------------- tests */

void pass(const char *name)
{
    printf("PASS %s\n", name);
}

void fail(const char *name, const char *fmt, ...)
{
    va_list ap;
    failures++;
    printf("FAIL %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    print("\n");
}

int check_eq(const char *name, uint32_t got, uint32_t want)
{
    if (got == want) {
        pass(name);
        return 1;
    }
    fail(name, "got 0x%08x, expected 0x%08x", got, want);
    return 0;
}

int check_true(const char *name, int cond, const char *what)
{
    if (cond) {
        pass(name);
        return 1;
    }
    fail(name, "%s", what);
    return 0;
}

/* ---------------------------------------------------------------- mem/str */

void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    if (p < q) {
        while (n--)
            *p++ = *q++;
    } else {
        p += n;
        q += n;
        while (n--)
            *--p = *--q;
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p - *q;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (uint8_t)*a - (uint8_t)*b;
}

/* The first word of the guest's arguments: the Multiboot command line is
 * "PATH ARGS" (QEMU joins the kernel's path and -append). */
void
guest_arg(uint32_t magic, const struct multiboot_info *mbi, char *buf, size_t size)
{
    size_t n = 0;
    if (magic == MULTIBOOT_BOOT_MAGIC && (mbi->flags & MBI_FLAG_CMDLINE) && mbi->cmdline) {
        const char *p = (const char *)mbi->cmdline;
        while (*p && *p != ' ')
            p++;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ' && n + 1 < size)
            buf[n++] = *p++;
    }
    buf[n] = 0;
}

/* Accesses that expect a fault (FAULT_ARM): a read or a write of one
 * dword at va, from the ring the caller runs in.  The user forms have the
 * signature run_user() takes. */
void
probe_read(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: movl (%0), %0\n2:" : "+r"(va) : : "memory");
}

void
probe_write(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: movl $0x0badf00d, (%0)\n2:" : : "r"(va) : "memory");
}

uint32_t
probe_user_read(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: movl (%0), %0\n2:" : "+r"(va) : : "memory");
    return va;
}

uint32_t
probe_user_write(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: movl $0x0badf00d, (%0)\n2:" : : "r"(va) : "memory");
    return 0;
}
