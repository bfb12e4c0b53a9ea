/*
 * multiboot.h -- the Multiboot (version 0.6.96) structures.
 *
 * The monitor reads them twice over: as a Multiboot kernel itself (what
 * QEMU hands it), and as the Multiboot loader of its guest (what it
 * builds in guest memory, load.c).
 *
 * Hardware:   none; Multiboot Specification 0.6.96, §3.1 (OS image
 *             format) and §3.3 (Boot information format).
 */
#ifndef MULTIBOOT_H
#define MULTIBOOT_H

#define MB_HEADER_MAGIC 0x1BADB002
#define MB_LOADER_MAGIC 0x2BADB002

/* Header flags (§3.1.2). */
#define MB_HDR_PAGE_ALIGN 0x00001
#define MB_HDR_MEMINFO    0x00002
#define MB_HDR_VIDEO      0x00004
#define MB_HDR_AOUT_KLUDGE 0x10000

struct mb_header {
    u32 magic, flags, checksum;
    u32 header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

/* Info flags (§3.3). */
#define MB_INFO_MEMORY  0x001
#define MB_INFO_BOOTDEV 0x002
#define MB_INFO_CMDLINE 0x004
#define MB_INFO_MODS    0x008
#define MB_INFO_MMAP    0x040

struct mb_info {
    u32 flags;
    u32 mem_lower, mem_upper;
    u32 boot_device;
    u32 cmdline;
    u32 mods_count, mods_addr;
    u32 syms[4];
    u32 mmap_length, mmap_addr;
    u32 drives_length, drives_addr;
    u32 config_table;
    u32 boot_loader_name;
    u32 apm_table;
    u32 vbe[6];
};

struct mb_module {
    u32 mod_start, mod_end;
    u32 string;
    u32 reserved;
};

/* A memory-map entry: `size` does not count itself (§3.3). */
struct __attribute__((packed)) mb_mmap {
    u32 size;
    u64 addr, len;
    u32 type;
};

#endif
