/*
 * hello -- ring-0 hello world.
 *
 * Tests:   the Multiboot hand-over (EAX magic, the info structure: flags,
 *          mem_lower/upper, the memory map, the command line, modules) and
 *          the machine state at entry (CR0, EFLAGS, CS DS ES FS GS SS, as
 *          saved by entry.S before anything changed), then a small pure
 *          computation (CRC-32, factorials, 64-bit products, a sieve).
 *          Does not touch GDT/IDT: runs with the loader's descriptor tables.
 * Exercises: the monitor's loader/boot path and guest memory layout
 *          (docs/00-overview.md, docs/01-boot-and-switch.md), binary
 *          translation of straight-line ring-0 code (docs/08-translation.md),
 *          the 16550 emulation (polled COM1 output) and the 8259 PIC
 *          emulation (lib_init).
 * Monitor exits expected: port I/O callouts for COM1 (LSR polling, THR
 *          writes), the PIC programming, and the final out to 0xf4.  No
 *          faults.
 *
 * Note: the command line QEMU passes is "<kernel path> <-append string>",
 * so its first word is the path given to -kernel.
 */
#include "guest.h"

static uint32_t crc32(const uint8_t *p, uint32_t n)
{
    uint32_t c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & -(c & 1));
    }
    return ~c;
}

static uint8_t buf[4096];
static uint8_t sieve[1000];

int main(uint32_t magic, struct multiboot_info *mbi)
{
    print("hello: ring-0 hello world\n");

    printf("entry eax=0x%08x\n", entry_eax);
    check_eq("multiboot_magic", magic, MULTIBOOT_BOOT_MAGIC);

    printf("mbi flags=0x%08x\n", mbi->flags);
    if (mbi->flags & MBI_FLAG_MEM) {
        printf("mem_lower=%u KiB\n", mbi->mem_lower);
        printf("mem_upper=%u KiB\n", mbi->mem_upper);
        check_true("mem_upper_64mib", mbi->mem_upper >= 60 * 1024 && mbi->mem_upper <= 64 * 1024,
                   "mem_upper not about 63 MiB");
    } else {
        print("mem: not provided\n");
    }

    if (mbi->flags & MBI_FLAG_MMAP) {
        uint32_t addr = mbi->mmap_addr, end = mbi->mmap_addr + mbi->mmap_length;
        int i = 0;
        uint32_t avail_kib = 0;
        while (addr < end) {
            const struct multiboot_mmap_entry *e = (const void *)addr;
            printf("mmap[%d]: base=0x%08x%08x len=0x%08x%08x type=%u\n",
                   i, e->base_hi, e->base_lo, e->len_hi, e->len_lo, e->type);
            if (e->type == 1 && e->base_hi == 0 && e->len_hi == 0)
                avail_kib += e->len_lo >> 10;
            addr += e->size + 4;
            i++;
        }
        printf("mmap: %d entries, %u KiB available\n", i, avail_kib);
    } else {
        print("mmap: not provided\n");
    }

    if (mbi->flags & MBI_FLAG_CMDLINE)
        printf("cmdline=\"%s\"\n", (const char *)mbi->cmdline);
    else
        print("cmdline: not provided\n");

    if (mbi->flags & MBI_FLAG_MODS)
        printf("mods_count=%u\n", mbi->mods_count);
    else
        print("mods: not provided\n");

    printf("entry cr0=0x%08x\n", entry_cr0);
    printf("entry eflags=0x%08x\n", entry_eflags);
    printf("entry cs=0x%04x ds=0x%04x es=0x%04x fs=0x%04x gs=0x%04x ss=0x%04x\n",
           entry_cs, entry_ds, entry_es, entry_fs, entry_gs, entry_ss);
    check_eq("entry_cr0_pe", entry_cr0 & (CR0_PE | CR0_PG), CR0_PE);
    check_eq("entry_eflags_if_vm", entry_eflags & (EFL_IF | EFL_VM), 0);

    /* A small computation. */
    static const char fox[] = "The quick brown fox jumps over the lazy dog";
    uint32_t c = crc32((const uint8_t *)fox, sizeof fox - 1);
    printf("crc32(fox)=0x%08x\n", c);
    check_eq("crc32_fox", c, 0x414fa339);

    uint32_t x = 12345;
    for (uint32_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    uint32_t sum = 0, xr = 0;
    for (uint32_t i = 0; i < sizeof buf; i++) {
        sum += buf[i];
        xr ^= (uint32_t)buf[i] << ((i & 3) * 8);
    }
    uint32_t cb = crc32(buf, sizeof buf);
    printf("buf: sum=%u xor=0x%08x crc32=0x%08x\n", sum, xr, cb);

    uint32_t fact = 1;
    for (uint32_t i = 1; i <= 12; i++)
        fact *= i;
    printf("12!=%u\n", fact);
    check_eq("factorial_12", fact, 479001600);

    uint64_t p = (uint64_t)0x12345678u * 0x9abcdef0u;
    printf("0x12345678*0x9abcdef0=0x%08x%08x\n", (uint32_t)(p >> 32), (uint32_t)p);
    check_eq("mul64_hi", (uint32_t)(p >> 32), 0x0b00ea4e);
    check_eq("mul64_lo", (uint32_t)p, 0x242d2080);

    int32_t sq = -46341;
    printf("(-46341)*(-46341)=%u (-7)*6=%d 1000000/7=%u rem %u\n",
           (uint32_t)(sq * sq), -7 * 6, 1000000u / 7, 1000000u % 7);

    uint32_t primes = 0, last = 0;
    for (uint32_t i = 2; i < sizeof sieve; i++) {
        if (sieve[i])
            continue;
        primes++;
        last = i;
        for (uint32_t j = i * i; j < sizeof sieve; j += i)
            sieve[j] = 1;
    }
    printf("primes below 1000: %u, largest %u\n", primes, last);
    check_eq("primes_below_1000", primes, 168);

    printf("hello: done, %d failures\n", failures);
    return failures;
}
