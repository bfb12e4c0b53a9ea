/*
 * load.c -- the guest's boot loader: the monitor as a Multiboot loader,
 * a PC's firmware starting a boot sector, and the reset vector of a ROM.
 *
 * QEMU hands the monitor its guest as the first Multiboot module (the
 * module string is the guest's file name and command line).  We load it
 * into guest RAM the way QEMU's own Multiboot loader would load it on
 * bare hardware - ELF segments by physical address, or the a.out
 * "kludge" addresses of its Multiboot header - and build the Multiboot
 * information structure it would build, so the guest cannot tell the
 * difference (docs/00-overview.md, boot method 1).  Anything wrong with
 * the image ends the run with one clear line on COM2 and EXIT_BADIMAGE.
 *
 * Hardware:   Multiboot Specification 0.6.96 §3 (OS image format, machine
 *             state, boot information format); System V ABI (ELF) ch. 4-5.
 * Runs in:    VMM, ring 0, interrupts off, once at start.
 * Read after: vmm.c (vmm_main).
 */
#include "vmm.h"
#include "multiboot.h"

/* ELF32 (System V ABI, Figure 4-3 and 5-1). */
struct elf_hdr {
    u8 ident[16];
    u16 type, machine;
    u32 version, entry, phoff, shoff, flags;
    u16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct elf_phdr {
    u32 type, offset, vaddr, paddr, filesz, memsz, flags, align;
};
#define PT_LOAD 1

/* Where the Multiboot information goes in guest memory: conventional
 * memory below the EBDA, which a Multiboot kernel does not load into. */
#define MBI_GPA     0x9000
#define MBI_CMDLINE 0x9100
#define MBI_NAME    0x9500
#define MBI_MMAP    0x9600
#define MBI_MODS    0x9800
#define MBI_STRINGS 0x9a00

static void
bad_image(const char *fmt, ...)
{
    __builtin_va_list ap;
    cprintf("vmm: bad guest image: ");
    __builtin_va_start(ap, fmt);
    vcprintf(fmt, ap);
    __builtin_va_end(ap);
    cprintf("\n");
    vmm_exit(EXIT_BADIMAGE);
}

/* Copy from the module (host memory) into guest RAM, zero-filling the
 * rest of [gpa, gpa + memsz). */
static gpa_t image_end;          /* the highest guest-physical byte loaded, plus one */

static void
load_segment(hpa_t src, u32 filesz, gpa_t gpa, u32 memsz)
{
    static u8 buf[PGSIZE];
    if (gpa + memsz > image_end)
        image_end = gpa + memsz;
    if (gpa >= ram_size || memsz > ram_size - gpa)
        bad_image("segment at guest-physical %x+%x does not fit in %u MiB of RAM",
                  gpa, memsz, ram_size >> 20);
    for (u32 done = 0; done < memsz;) {
        u32 n = memsz - done < PGSIZE ? memsz - done : PGSIZE;
        memset(buf, 0, n);
        if (done < filesz)
            hpa_read(src + done, buf, filesz - done < n ? filesz - done : n);
        gpa_write(gpa + done, buf, n);
        done += n;
    }
}

static u32
load_elf(hpa_t img, u32 size)
{
    struct elf_hdr eh;
    if (size < sizeof eh)
        bad_image("%u bytes is too short for an ELF header", size);
    hpa_read(img, &eh, sizeof eh);
    if (memcmp(eh.ident, "\177ELF", 4))
        bad_image("no ELF magic, and no a.out kludge in the Multiboot header");
    if (eh.ident[4] != 1 || eh.ident[5] != 1 || eh.machine != 3)
        bad_image("not a 32-bit little-endian i386 ELF (class %d, data %d, machine %d)",
                  eh.ident[4], eh.ident[5], eh.machine);
    if (eh.type != 2)
        bad_image("ELF type %d is not an executable", eh.type);
    if (eh.phentsize != sizeof(struct elf_phdr) || eh.phnum == 0 ||
        eh.phoff > size || (u32)eh.phnum * sizeof(struct elf_phdr) > size - eh.phoff)
        bad_image("program headers (%u at offset %x) lie outside the %u-byte file",
                  eh.phnum, eh.phoff, size);
    int loaded = 0;
    struct { u32 at, end; int i; } seen[16];   /* segments loaded so far */
    for (int i = 0; i < eh.phnum; i++) {
        struct elf_phdr ph;
        hpa_read(img + eh.phoff + i * sizeof ph, &ph, sizeof ph);
        if (ph.type != PT_LOAD || ph.memsz == 0)
            continue;
        if (ph.filesz > ph.memsz || ph.offset > size || ph.filesz > size - ph.offset)
            bad_image("segment %d (offset %x, %x bytes) lies outside the %u-byte file",
                      i, ph.offset, ph.filesz, size);
        if (ph.paddr + ph.memsz < ph.paddr)
            bad_image("segment %d (%x+%x) wraps past 4 GiB", i, ph.paddr, ph.memsz);
        /* Two segments over the same memory: which one wins is no
         * loader's to decide (QEMU refuses such a file too). */
        for (int k = 0; k < loaded && k < 16; k++)
            if (ph.paddr < seen[k].end && seen[k].at < ph.paddr + ph.memsz)
                bad_image("segments %d and %d overlap at guest-physical %x", seen[k].i, i,
                          ph.paddr > seen[k].at ? ph.paddr : seen[k].at);
        load_segment(img + ph.offset, ph.filesz, ph.paddr, ph.memsz);
        if (loaded < 16)
            seen[loaded].at = ph.paddr, seen[loaded].end = ph.paddr + ph.memsz, seen[loaded].i = i;
        loaded++;
    }
    if (!loaded)
        bad_image("no loadable segment");
    return eh.entry;
}

/* The physical address of an ELF file's entry point: its virtual address
 * moved as the segment holding it is (a vmlinux links at 0xc1000000 and
 * loads at 0x1000000). */
static u32
elf_entry_phys(hpa_t img)
{
    struct elf_hdr eh;
    hpa_read(img, &eh, sizeof eh);
    for (int i = 0; i < eh.phnum; i++) {
        struct elf_phdr ph;
        hpa_read(img + eh.phoff + i * sizeof ph, &ph, sizeof ph);
        if (ph.type == PT_LOAD && eh.entry - ph.vaddr < ph.memsz)
            return eh.entry - ph.vaddr + ph.paddr;
    }
    bad_image("the entry point %x lies in no loadable segment", eh.entry);
    return 0;
}

/* The a.out kludge (Multiboot §3.1.3): the header gives the addresses. */
static u32
load_aout(hpa_t img, u32 size, u32 hoff, struct mb_header *h)
{
    if (h->header_addr < h->load_addr || h->header_addr - h->load_addr > hoff)
        bad_image("a.out kludge: header_addr %x below load_addr %x", h->header_addr, h->load_addr);
    u32 off = hoff - (h->header_addr - h->load_addr);
    u32 end = h->load_end_addr ? h->load_end_addr : h->load_addr + (size - off);
    if (end < h->load_addr || end - h->load_addr > size - off)
        bad_image("a.out kludge: load_end_addr %x lies past the end of the file", end);
    u32 bss = h->bss_end_addr > end ? h->bss_end_addr : end;
    load_segment(img + off, end - h->load_addr, h->load_addr, bss - h->load_addr);
    return h->entry_addr;
}

static u32
put_string(gpa_t *at, const char *s)
{
    u32 where = *at;
    u32 n = strlen(s) + 1;
    gpa_write(where, s, n);
    *at += (n + 3) & ~3u;
    return where;
}

/*D:006 Booting from real mode (docs/01-boot-and-switch.md).  Two ways
 * a PC starts a program in real mode, both run translated from their
 * first instruction (CR0.PE = 0):
 *  - a boot sector: 512 bytes ending in 55 AA, which the firmware loads
 *    at 0x7c00 and enters at 0000:7C00 with DL = 0x80, the first hard
 *    disk.  That is all SeaBIOS promises (and all a boot sector run under
 *    the monitor may rely on; there are no BIOS services here: the IVT
 *    and BIOS data area are zero).  SeaBIOS enters it with interrupts
 *    enabled, A20 open and CR0 = ET.  Bare QEMU: -drive
 *    file=IMAGE,format=raw.
 *  - a ROM image, whose size is a multiple of 64 KiB: the PC maps it at
 *    the top of the physical space and its last 128 KiB again below
 *    1 MiB, and the CPU starts at the reset vector, CS:IP F000:FFF0 with
 *    the CS base FFFF0000 - a segment register that is not reversible
 *    from the first instruction, since reloading F000 would give base
 *    F0000.  The state is the CPU's at reset (SDM Vol. 3A §9.1.1,
 *    Processor State After Reset), EDX the CPUID signature.  Bare QEMU:
 *    -bios IMAGE.
 * The monitor takes either as its first module, the boot sector by its
 * signature or with `boot=sector`, the ROM with `boot=rom`. :*/
static int
is_boot_sector(hpa_t img, u32 size)
{
    u8 sig[2];
    if (size != 512)
        return 0;
    hpa_read(img + 510, sig, 2);
    return sig[0] == 0x55 && sig[1] == 0xaa;
}

static void
real_mode_state(struct vcpu *v, u16 cs, u32 cs_base, u32 ip)
{
    memset(&v->f, 0, sizeof v->f);
    segtrack_reset_real(v, cs, cs_base);
    v->eip = ip;
    v->eflags = EFLAGS_FIXED;
    v->cr0 = 0x60000010;        /* CD, NW, ET */
    v->cr2 = v->cr3 = v->cr4 = 0;
    v->gdtr.base = 0;
    v->gdtr.limit = 0xffff;
    v->idtr.base = 0;
    v->idtr.limit = 0x3ff;
    v->dr[6] = 0xffff0ff0;
    v->dr[7] = 0x400;
    v->mode = MODE_BT;
}

static void
load_boot_sector(struct vcpu *v, hpa_t img, u32 size, const char *name)
{
    if (!is_boot_sector(img, size))
        bad_image("\"%s\": a boot sector is 512 bytes ending in 55 AA (this is %u bytes)", name, size);
    load_segment(img, 512, 0x7c00, 512);
    real_mode_state(v, 0, 0, 0x7c00);
    v->cr0 = CR0_ET;            /* SeaBIOS turned the caches on */
    v->f.edx = 0x80;
    v->eflags |= EFLAGS_IF;
    dev_reset_state(0);
    cprintf("vmm: loaded \"%s\" as a boot sector at 0000:7c00\n", name);
}

static void
load_rom(struct vcpu *v, hpa_t img, u32 size, const char *name)
{
    if (size % 0x10000 || size > 0x1000000)
        bad_image("\"%s\": a ROM image is a multiple of 64 KiB, at most 16 MiB (this is %u bytes)", name, size);
    if (img & 0xfff)
        bad_image("\"%s\": the ROM module is not page-aligned in memory", name);
    mmu_set_rom(img, size);
    real_mode_state(v, 0xf000, 0xffff0000, 0xfff0);
    u32 a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    v->f.edx = a;               /* the CPU signature, as after reset */
    dev_reset_state(1);
    cprintf("vmm: loaded \"%s\" as a %u KiB ROM at %08x, starting at f000:fff0\n", name, size >> 10, 0u - size);
}

/*D:007 Booting Linux (docs/11-linux.md).  A bzImage is recognized by
 * the boot protocol's signature, "HdrS" at offset 0x202 with 55 AA at
 * 0x1fe; the monitor then loads it as a boot loader following the
 * kernel's "32-bit boot protocol" does (the kernel's
 * Documentation/arch/x86/boot.rst, which is the specification here):
 *  - the real-mode setup code, (setup_sects + 1) sectors, is skipped;
 *    the protected-mode part is loaded at 0x100000 (code32_start);
 *  - a "zero page" (struct boot_params) is built: the image's own setup
 *    header copied in (offset 0x1f1, for 0x202 + [0x201] - 0x1f1 bytes),
 *    type_of_loader 0xff ("undefined"), the command line's address, the
 *    initial ramdisk's address and size, and the e820 memory map, the
 *    same table the Multiboot path reports (D:005);
 *  - the initial ramdisk (the second module) goes at the top of RAM below
 *    the reserved top 128 KiB and below the header's initrd_addr_max;
 *  - the CPU state: protected mode, paging off, interrupts off, CS 0x10
 *    and DS = ES = SS = 0x18 from a GDT whose entries 2 and 3 are flat
 *    4 GiB code and data, ESI the zero page, EBX = EBP = EDI = 0.
 * The kernel's command line is the module string after the file name,
 * as for a Multiboot guest.  The kernel's own decompressor then runs,
 * translated, at CPL 0 like the rest of the kernel.  An uncompressed
 * vmlinux (an ELF file without a Multiboot header) is loaded by its
 * segments' physical addresses and entered the same way, at the
 * physical address of its entry point. :*/
/* The PC memory map QEMU's firmware reports (e820) for a guest of
 * ram_size bytes, as both the Multiboot information (D:005) and Linux's
 * zero page (D:007) give it: entry i in *base, *len, *type. */
#define NE820 6
static void
e820_entry(int i, u64 *base, u64 *len, u32 *type)
{
    static const struct { u64 base, len; u32 type; } e820[NE820] = {
        { 0x00000000, 0x9fc00, 1 },
        { 0x0009fc00, 0x00400, 2 },
        { 0x000f0000, 0x10000, 2 },
        { 0x00100000, 0, 1 },           /* length: RAM above 1 MiB, less 128 KiB */
        { 0, 0x20000, 2 },              /* base: the top 128 KiB of RAM */
        { 0xfffc0000, 0x40000, 2 },     /* the BIOS ROM */
    };
    *base = i == 4 ? ram_size - 0x20000 : e820[i].base;
    *len = i == 3 ? ram_size - 0x100000 - 0x20000 : e820[i].len;
    *type = e820[i].type;
}

#define LINUX_GDT     0x5000
#define LINUX_ZEROPG  0x6000
#define LINUX_CMDLINE 0x7000
#define LINUX_CMDMAX  0x800

static void
linux_state(struct vcpu *v, u32 entry)
{
    u64 gdt[4] = { 0, 0,
                   0x00cf9b000000ffffull,       /* 0x10: code, base 0, 4 GiB, accessed */
                   0x00cf93000000ffffull };     /* 0x18: data */
    gpa_write(LINUX_GDT, gdt, sizeof gdt);
    memset(&v->f, 0, sizeof v->f);
    v->f.esi = LINUX_ZEROPG;
    v->eip = entry;
    v->eflags = EFLAGS_FIXED;
    v->cr0 = CR0_PE | CR0_ET;
    v->cr2 = v->cr3 = v->cr4 = 0;
    v->gdtr.base = LINUX_GDT;
    v->gdtr.limit = sizeof gdt - 1;
    v->idtr.base = 0;
    v->idtr.limit = 0;
    v->dr[6] = 0xffff0ff0;
    v->dr[7] = 0x400;
    segtrack_reset(v);
    struct desc code = { (u32)gdt[2], (u32)(gdt[2] >> 32) }, data = { (u32)gdt[3], (u32)(gdt[3] >> 32) };
    for (int s = 0; s < NSEG; s++)
        segtrack_set(v, s, 0x18, data, SM_PROT);
    segtrack_set(v, SEG_CS, 0x10, code, SM_PROT);
    v->mode = MODE_BT;
    dev_reset_state(0);
}

/* The zero page: header, command line, ramdisk, e820.  `hdr` is the
 * image's setup header (from 0x1f1), hlen bytes, or NULL for a vmlinux. */
static void
linux_zero_page(const u8 *hdr, u32 hlen, const char *cmdline, gpa_t initrd, u32 initrd_size)
{
    static u8 zp[PGSIZE];
    memset(zp, 0, sizeof zp);
    if (hdr)
        memcpy(zp + 0x1f1, hdr, hlen);
    zp[0x210] = 0xff;                           /* type_of_loader: undefined */
    zp[0x211] |= 0x01;                          /* loadflags: LOADED_HIGH */
    u32 cl = LINUX_CMDLINE, am = (ram_size - 0x100000 - 0x20000) >> 10;
    memcpy(zp + 0x228, &cl, 4);                 /* cmd_line_ptr */
    memcpy(zp + 0x218, &initrd, 4);             /* ramdisk_image */
    memcpy(zp + 0x21c, &initrd_size, 4);        /* ramdisk_size */
    memcpy(zp + 0x1e0, &am, 4);                 /* alt_mem_k */
    for (int i = 0; i < NE820; i++) {
        u64 base, len;
        u32 type;
        e820_entry(i, &base, &len, &type);
        u8 *e = zp + 0x2d0 + 20 * i;            /* e820_table: base, size, type */
        memcpy(e, &base, 8);
        memcpy(e + 8, &len, 8);
        memcpy(e + 16, &type, 4);
    }
    zp[0x1e8] = NE820;                          /* e820_entries */
    gpa_write(LINUX_ZEROPG, zp, sizeof zp);
    u32 n = strlen(cmdline);
    if (n > LINUX_CMDMAX - 1)
        n = LINUX_CMDMAX - 1;
    gpa_write(LINUX_CMDLINE, cmdline, n);
    gpa_write(LINUX_CMDLINE + n, "", 1);
}

/* The second module, if any, as the initial ramdisk: where it went. */
static gpa_t
linux_initrd(struct mb_module *mods, u32 nmods, u32 max, u32 *size)
{
    *size = 0;
    if (nmods < 2)
        return 0;
    u32 n = mods[1].mod_end - mods[1].mod_start;
    u32 top = ram_size - 0x20000;
    if (max && top > max + 1)
        top = max + 1;
    if (n > top - image_end)
        bad_image("the initial ramdisk (%u bytes) does not fit in %u MiB of RAM with the kernel", n, ram_size >> 20);
    gpa_t at = (top - n) & ~(PGSIZE - 1);
    load_segment(mods[1].mod_start, n, at, n);
    *size = n;
    return at;
}

static const char *
args_of(const char *name)
{
    while (*name && *name != ' ')
        name++;
    while (*name == ' ')
        name++;
    return name;
}

static void
load_bzimage(struct vcpu *v, hpa_t img, u32 size, const char *name, struct mb_module *mods, u32 nmods)
{
    u8 hdr[0x280 - 0x1f1];
    if (size < 0x1000)
        bad_image("\"%s\": a bzImage of %u bytes is too short", name, size);
    hpa_read(img + 0x1f1, hdr, sizeof hdr);
    u16 version = hdr[0x206 - 0x1f1] | hdr[0x207 - 0x1f1] << 8;
    u32 setup_sects = hdr[0] ? hdr[0] : 4;
    u32 hlen = 0x202 + hdr[0x201 - 0x1f1] - 0x1f1;
    u32 pm_off = (setup_sects + 1) * 512, initrd_max;
    memcpy(&initrd_max, hdr + 0x22c - 0x1f1, 4);
    if (version < 0x0204)
        bad_image("\"%s\": boot protocol %x.%02x; this loader needs 2.04 or later", name, version >> 8, version & 0xff);
    if (!(hdr[0x211 - 0x1f1] & 1))
        bad_image("\"%s\": a zImage (loaded low); only a bzImage is supported", name);
    if (hlen > sizeof hdr || hlen < 0x236 - 0x1f1)
        bad_image("\"%s\": a setup header of %u bytes makes no sense", name, hlen);
    if (pm_off >= size)
        bad_image("\"%s\": %u setup sectors, but the file has %u bytes", name, setup_sects, size);
    load_segment(img + pm_off, size - pm_off, 0x100000, size - pm_off);
    u32 initrd_size;
    gpa_t initrd = linux_initrd(mods, nmods, initrd_max, &initrd_size);
    linux_zero_page(hdr, hlen, args_of(name), initrd, initrd_size);
    linux_state(v, 0x100000);
    cprintf("vmm: loaded \"%s\" as a Linux bzImage (boot protocol %x.%02x), %u KiB at 0x100000%s\n",
            name, version >> 8, version & 0xff, (size - pm_off) >> 10, initrd_size ? ", with an initrd" : "");
    if (initrd_size)
        cprintf("vmm: initial ramdisk: %u KiB at %x\n", initrd_size >> 10, initrd);
}

static int
is_bzimage(hpa_t img, u32 size)
{
    u8 b[8];
    if (size < 0x210)
        return 0;
    hpa_read(img + 0x1fe, b, 8);
    return b[0] == 0x55 && b[1] == 0xaa && !memcmp(b + 4, "HdrS", 4);
}

void
load_guest(struct vcpu *v, struct mb_info *mbi)
{
    static struct mb_module mods[16];
    static char name[256];

    if (!(mbi->flags & MB_INFO_MODS) || mbi->mods_count == 0)
        bad_image("no guest: give it as the first module (-initrd \"guest.elf ARGS\")");
    u32 nmods = mbi->mods_count < 16 ? mbi->mods_count : 16;
    hpa_read(mbi->mods_addr, mods, nmods * sizeof mods[0]);

    /* Guest RAM: a contiguous host block above the monitor and every
     * module, 4 MiB aligned. */
    u32 top = VMM_PHYS + VMM_SIZE;
    for (u32 i = 0; i < nmods; i++)
        if (mods[i].mod_end > top)
            top = mods[i].mod_end;
    ram_base = (top + 0x3fffff) & ~0x3fffffu;
    ram_size = opt_mem_mb << 20;
    u32 host_end = 0x100000 + mbi->mem_upper * 1024;
    if (opt_mem_mb < 2 || opt_mem_mb > MAX_GUEST_MB || ram_base + ram_size > host_end || ram_base + ram_size < ram_base)
        bad_option("mem=%u MiB: between 2 and %u MiB fit (at most %u, and this host's memory)",
                  opt_mem_mb, host_end > ram_base ? (host_end - ram_base) >> 20 : 0, MAX_GUEST_MB);
    cprintf("vmm: guest RAM %u MiB at host-physical %x\n", opt_mem_mb, ram_base);

    /* The image, and its Multiboot header in the first 8 KiB. */
    hpa_t img = mods[0].mod_start;
    u32 size = mods[0].mod_end - mods[0].mod_start;
    hpa_read(mods[0].string, name, sizeof name - 2);
    name[sizeof name - 2] = 0;
    if (size == 0)
        bad_image("the module \"%s\" is empty", name);
    if (opt_boot == BOOT_ROM) {
        load_rom(v, img, size, name);
        return;
    }
    if (opt_boot == BOOT_SECTOR || (opt_boot == BOOT_AUTO && is_boot_sector(img, size))) {
        load_boot_sector(v, img, size, name);
        return;
    }
    if (is_bzimage(img, size)) {
        load_bzimage(v, img, size, name, mods, nmods);
        return;
    }
    struct mb_header h;
    u32 hoff = 0;
    int found = 0;
    for (; hoff + 12 <= size && hoff < 8192; hoff += 4) {
        hpa_read(img + hoff, &h, sizeof h);
        if (h.magic == MB_HEADER_MAGIC && h.magic + h.flags + h.checksum == 0) {
            found = 1;
            break;
        }
    }
    if (!found && size >= 4) {
        /* An ELF file without a Multiboot header: an uncompressed Linux
         * kernel, entered by the 32-bit boot protocol (D:007). */
        u8 magic[4];
        hpa_read(img, magic, 4);
        if (!memcmp(magic, "\177ELF", 4)) {
            /* Linux links its kernel where it is not loaded (virtual
             * PAGE_OFFSET + physical); a file whose first segment is
             * linked where it loads is no Linux kernel, and without a
             * Multiboot header no kernel this loader knows. */
            struct elf_hdr eh;
            struct elf_phdr ph;
            hpa_read(img, &eh, sizeof eh);
            for (u32 i = 0; size >= sizeof eh && i < eh.phnum && eh.phoff < size &&
                            (size - eh.phoff) / sizeof ph > i; i++) {
                hpa_read(img + eh.phoff + i * sizeof ph, &ph, sizeof ph);
                if (ph.type != PT_LOAD)
                    continue;
                if (ph.vaddr == ph.paddr)
                    bad_image("\"%s\": no Multiboot header in its first 8 KiB, and an ELF linked where "
                              "it loads (%x) is not a Linux kernel either", name, ph.paddr);
                break;
            }
            load_elf(img, size);
            u32 entry = elf_entry_phys(img), initrd_size;
            gpa_t initrd = linux_initrd(mods, nmods, 0x37ffffff, &initrd_size);
            linux_zero_page(NULL, 0, args_of(name), initrd, initrd_size);
            linux_state(v, entry);
            cprintf("vmm: loaded \"%s\" as an uncompressed Linux kernel (ELF without a Multiboot header), entry %x\n",
                    name, entry);
            return;
        }
    }
    if (!found)
        bad_image("\"%s\": no Multiboot header in its first 8 KiB", name);
    /* Bits 0-15 are requirements (Multiboot spec §3.1.2): a loader that
     * cannot meet one must refuse.  Page alignment (0) and the memory
     * fields (1) are met; a video mode (2) is not, there being no
     * display, nor anything in bits 3-15. */
    if (h.flags & 0x0000fffc)
        bad_image("\"%s\": Multiboot header asks for features %x this loader lacks (bit 2: a video mode)",
                  name, h.flags & 0xfffc);
    u32 entry = (h.flags & MB_HDR_AOUT_KLUDGE) ? load_aout(img, size, hoff, &h) : load_elf(img, size);

    /* Further modules go to guest RAM after the image, page aligned, as
     * QEMU places them. */
    gpa_t next = image_end;
    struct mb_module gmods[16];
    gpa_t strings = MBI_STRINGS;
    for (u32 i = 1; i < nmods; i++) {
        u32 msize = mods[i].mod_end - mods[i].mod_start;
        next = (next + PGSIZE - 1) & ~(PGSIZE - 1);
        load_segment(mods[i].mod_start, msize, next, msize);
        static char s[256];
        hpa_read(mods[i].string, s, sizeof s - 1);
        gmods[i - 1].mod_start = next;
        gmods[i - 1].mod_end = next + msize;
        gmods[i - 1].string = put_string(&strings, s);
        gmods[i - 1].reserved = 0;
        next += msize;
    }

    /* The Multiboot information, field for field what QEMU's loader
     * gives a guest with this much RAM.  The command line is the module
     * string with a space after the file name, as QEMU joins
     * "kernel append". */
    struct mb_info g;
    memset(&g, 0, sizeof g);
    g.flags = MB_INFO_MEMORY | MB_INFO_BOOTDEV | MB_INFO_CMDLINE | MB_INFO_MODS | MB_INFO_MMAP | 0x200;
    g.mem_lower = 639;
    g.mem_upper = (ram_size - 0x100000 - 0x20000) / 1024;
    g.boot_device = 0x8000ffff;
    int has_space = 0;
    for (char *p = name; *p; p++)
        has_space |= *p == ' ';
    if (!has_space) {
        u32 n = strlen(name);
        name[n] = ' ';
        name[n + 1] = 0;
    }
    g.cmdline = MBI_CMDLINE;
    gpa_write(MBI_CMDLINE, name, strlen(name) + 1);
    g.boot_loader_name = MBI_NAME;
    gpa_write(MBI_NAME, "qemu", 5);
    g.mods_count = nmods - 1;
    g.mods_addr = MBI_MODS;
    gpa_write(MBI_MODS, gmods, (nmods - 1) * sizeof gmods[0]);

    /* The PC memory map (e820_entry), in Multiboot form. */
    struct mb_mmap mm[NE820];
    for (int i = 0; i < NE820; i++) {
        u64 base, len;
        u32 type;
        e820_entry(i, &base, &len, &type);
        mm[i].size = sizeof mm[i] - 4;
        mm[i].addr = base;
        mm[i].len = len;
        mm[i].type = type;
    }
    g.mmap_addr = MBI_MMAP;
    g.mmap_length = sizeof mm;
    gpa_write(MBI_MMAP, mm, sizeof mm);
    gpa_write(MBI_GPA, &g, sizeof g);

    /*D:005 The machine state Multiboot promises (§3.2): EAX the loader's
     * magic, EBX the information's address, flat protected-mode segments,
     * paging off, interrupts off.  The rest is what QEMU's Multiboot
     * option ROM happens to leave (CR0 = PE|ET, EFLAGS = 6, selectors
     * 0x08 and 0x10), so the same guest starts in the same state both
     * ways.  The guest starts at CPL 0 in protected mode: the decision
     * will translate it. :*/
    memset(&v->f, 0, sizeof v->f);
    v->f.eax = MB_LOADER_MAGIC;
    v->f.ebx = MBI_GPA;
    v->eip = entry;
    v->eflags = 0x00000006;
    v->cr0 = CR0_PE | CR0_ET;
    v->cr2 = v->cr3 = v->cr4 = 0;
    v->gdtr.base = 0;
    v->gdtr.limit = 0;
    v->idtr.base = 0;
    v->idtr.limit = 0x3ff;
    v->dr[6] = 0xffff0ff0;
    v->dr[7] = 0x400;
    segtrack_reset(v);
    v->mode = MODE_BT;
    dev_reset_state(0);
    cprintf("vmm: loaded \"%s\", entry %x\n", name, entry);
}
