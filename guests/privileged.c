/*
 * privileged -- privileged and sensitive instructions in kernel mode, with
 * the values they produce printed.
 *
 * Tests:   cli/sti/pushf/popf (EFLAGS images; popf changing IOPL, AC, ID
 *          and an all-ones image showing which bits ring 0 can write),
 *          lgdt/sgdt, lidt/sidt (and a fault delivered through the new
 *          IDT), ltr/str (busy bit, ltr of a busy TSS -> #GP), lldt 0/sldt,
 *          smsw (16-bit forms), lmsw, mov to/from CR0 (TS via mov and clts,
 *          MP, EM, NE), CR2, CR3 and CR4 write/read-back, DR0/DR6/DR7, lar/lsl/verr/verw on our GDT,
 *          in/out on COM1 (scratch register, LCR, IER), cpuid leaves 0, 1, 2
 *          and 0x80000000, wbinvd, invlpg with paging off.
 * Exercises: binary translation of ring-0 code with callouts/emulation of
 *          the privileged instructions against the virtual CPU state
 *          (docs/08-translation.md, docs/03-direct.md), the virtual EFLAGS (IF,
 *          IOPL, AC, ID), virtual GDTR/IDTR/TR/LDTR/CRn/DRn, cpuid
 *          pass-through or emulation, the 16550 emulation.
 * Monitor exits expected: none from direct execution (everything runs in
 *          ring 0); each instruction above is a callout or an in-TC
 *          emulation; one #UD and one #GP reflected to the guest (fault
 *          through the new IDT, ltr of a busy TSS).
 *
 * lar results are printed with the accessed bit and the undefined bits
 * 19:16 masked.
 */
#include "guest.h"

#define LAR_MASK 0x00f0fe00u

static uint64_t gdt2[GDT_ENTRIES] ALIGNED(8);
static uint64_t idt2[256] ALIGNED(8);
static struct tss tss2 ALIGNED(16);

/* popf of `v` then pushf, restoring the old EFLAGS right after. */
static uint32_t popf_pushf(uint32_t v)
{
    uint32_t r;
    __asm__ volatile("pushfl\n\t"
                     "pushl %1\n\t"
                     "popfl\n\t"
                     "pushfl\n\t"
                     "popl %0\n\t"
                     "popfl"
                     : "=&r"(r) : "r"(v) : "memory", "cc");
    return r;
}

static void show_flags(const char *what, uint32_t want)
{
    uint32_t f = read_eflags();
    printf("%s: eflags=0x%08x\n", what, f);
    check_eq(what, f & (EFL_IF | EFL_IOPL_MASK | EFL_AC | EFL_ID), want);
}

static void test_flags(void)
{
    uint32_t base = read_eflags() & ~(EFL_IF | EFL_IOPL_MASK | EFL_AC | EFL_ID);
    printf("start: eflags=0x%08x\n", read_eflags());
    cli();
    show_flags("cli", 0);
    sti();
    show_flags("sti", EFL_IF);
    cli();
    show_flags("cli_again", 0);
    write_eflags(base | EFL_IOPL(3));
    show_flags("popf_iopl3", EFL_IOPL(3));
    write_eflags(base | EFL_IOPL(1));
    show_flags("popf_iopl1", EFL_IOPL(1));
    write_eflags(base | EFL_AC);
    show_flags("popf_ac", EFL_AC);
    write_eflags(base | EFL_ID);
    show_flags("popf_id", EFL_ID);
    write_eflags(base | EFL_IF | EFL_IOPL(2) | EFL_AC | EFL_ID);
    show_flags("popf_if_iopl2_ac_id", EFL_IF | EFL_IOPL(2) | EFL_AC | EFL_ID);
    write_eflags(base);
    show_flags("popf_clear", 0);

    /* Everything but TF: which bits does popf at CPL 0 write? */
    uint32_t r = popf_pushf(~EFL_TF);
    printf("popf(0x%08x) -> pushf 0x%08x\n", ~EFL_TF, r);
    check_eq("popf_all_ones", r, 0x00247ed7);
    r = popf_pushf(0);
    printf("popf(0x00000000) -> pushf 0x%08x\n", r);
    check_eq("popf_zero", r, 0x00000002);
    r = popf_pushf(EFL_RF | EFL_VM | EFL_VIF | EFL_VIP);
    printf("popf(RF|VM|VIF|VIP) -> pushf 0x%08x\n", r);
    check_eq("popf_rf_vm_vif_vip", r, 0x00000002);

    /* 16-bit popf/pushf: only the low half. */
    uint32_t r16;
    __asm__ volatile("pushfl\n\t"
                     "movl $0xffff0000, %0\n\t"
                     "pushw $0x0ed5\n\t"
                     "popfw\n\t"
                     "pushfw\n\t"
                     "popw %w0\n\t"
                     "popfl"
                     : "=&r"(r16) : : "memory", "cc");
    printf("popfw(0x0ed5) -> pushfw 0x%08x\n", r16);
    check_eq("popfw_pushfw", r16, 0xffff0ed7);
}

static void test_tables(void)
{
    struct dtr d, d2;

    sgdt(&d);
    printf("sgdt: base=0x%08x limit=0x%04x\n", d.base, d.limit);
    check_eq("sgdt_initial", d.base, (uint32_t)gdt);
    memcpy(gdt2, gdt, sizeof gdt2);
    d2.base = (uint32_t)gdt2;
    d2.limit = 8 * 8 - 1;
    lgdt(&d2);
    reload_segments();
    sgdt(&d);
    printf("lgdt(0x%08x, 0x%04x) -> sgdt base=0x%08x limit=0x%04x\n", d2.base, d2.limit, d.base, d.limit);
    check_eq("sgdt_after_lgdt", d.base == d2.base && d.limit == d2.limit, 1);
    printf("segments after reload: cs=0x%04x ds=0x%04x ss=0x%04x\n", READ_SEG(cs), READ_SEG(ds), READ_SEG(ss));
    gdt_load();
    sgdt(&d);
    printf("sgdt restored: base=0x%08x limit=0x%04x\n", d.base, d.limit);

    sidt(&d);
    printf("sidt: base=0x%08x limit=0x%04x\n", d.base, d.limit);
    check_eq("sidt_initial", d.base == (uint32_t)idt && d.limit == 0x7ff, 1);
    memcpy(idt2, idt, sizeof idt2);
    d2.base = (uint32_t)idt2;
    d2.limit = 0x1ff;           /* vectors 0..63 */
    lidt(&d2);
    sidt(&d);
    printf("lidt(0x%08x, 0x%04x) -> sidt base=0x%08x limit=0x%04x\n", d2.base, d2.limit, d.base, d.limit);
    check_eq("sidt_after_lidt", d.base == d2.base && d.limit == d2.limit, 1);
    __asm__ volatile(FAULT_ARM "1: ud2\n2:" ::: "memory");
    check_fault("ud_through_new_idt", VEC_UD, 0, fault_site, 0);
    idt_load();
    sidt(&d);
    printf("sidt restored: base=0x%08x limit=0x%04x\n", d.base, d.limit);

    /* Task register. */
    printf("str=0x%04x tss descriptor access=0x%02x\n", str(), (uint32_t)(gdt[5] >> 40) & 0xff);
    check_eq("str_initial", str(), SEG_TSS);
    memset(&tss2, 0, sizeof tss2);
    tss2.ss0 = SEG_KDATA;
    tss2.iomap_base = sizeof tss2;
    gdt_set(6, (uint32_t)&tss2, sizeof tss2 - 1, ACC_P | ACC_TSS32, 0);
    printf("tss2 descriptor before ltr: 0x%08x%08x\n", (uint32_t)(gdt[6] >> 32), (uint32_t)gdt[6]);
    ltr(SEL(6, 0));
    printf("ltr 0x30 -> str=0x%04x, descriptor 0x%08x%08x\n", str(), (uint32_t)(gdt[6] >> 32), (uint32_t)gdt[6]);
    check_eq("str_after_ltr", str(), SEL(6, 0));
    check_eq("ltr_sets_busy", (uint32_t)(gdt[6] >> 40) & 0xf, ACC_TSS32_BUSY);
    __asm__ volatile("movw $0x28, %%ax\n\t" FAULT_ARM "1: ltr %%ax\n2:" ::: "eax", "memory");
    check_fault("ltr_busy_tss", VEC_GP, SEG_TSS, fault_site, 0);
    gdt[5] &= ~(2ull << 40);    /* clear busy */
    ltr(SEG_TSS);
    printf("ltr 0x28 again -> str=0x%04x\n", str());
    check_eq("str_restored", str(), SEG_TSS);
    gdt[6] = 0;

    lldt(0);
    printf("sldt=0x%04x\n", sldt());
    check_eq("sldt", sldt(), 0);

    /* lar/lsl/verr/verw.  lar's result is printed masked with 0x00f0fe00:
     * without the accessed bit and without bits 19:16 (undefined in the
     * SDM's 00FxFF00H). */
    uint32_t ar, lim, zf;
    __asm__ volatile("larl %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "=r"(ar), "=q"(zf) : "r"((uint32_t)SEG_KCODE) : "cc");
    printf("lar 0x08 -> 0x%08x zf=%u\n", ar & LAR_MASK, zf);
    check_eq("lar_kcode", ar & LAR_MASK, 0x00c09a00);
    __asm__ volatile("larl %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "=r"(ar), "=q"(zf) : "r"((uint32_t)SEG_UDATA) : "cc");
    printf("lar 0x23 -> 0x%08x zf=%u\n", ar & LAR_MASK, zf);
    check_eq("lar_udata", ar & LAR_MASK, 0x00c0f200);
    __asm__ volatile("lsll %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "=r"(lim), "=q"(zf) : "r"((uint32_t)SEG_KDATA) : "cc");
    printf("lsl 0x10 -> 0x%08x zf=%u\n", lim, zf);
    check_eq("lsl_kdata", lim, 0xffffffff);
    __asm__ volatile("lsll %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "=r"(lim), "=q"(zf) : "r"((uint32_t)SEG_TSS) : "cc");
    printf("lsl 0x28 -> 0x%08x zf=%u\n", lim, zf);
    check_eq("lsl_tss", lim, sizeof(struct tss) - 1);
    lim = 0x1234;
    __asm__ volatile("lsll %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "+r"(lim), "=q"(zf) : "r"((uint32_t)SEL(GDT_ENTRIES + 1, 0)) : "cc");
    printf("lsl 0x88 (past limit) -> 0x%08x zf=%u\n", lim, zf);
    check_eq("lsl_past_limit_zf", zf, 0);
    __asm__ volatile("verr %w1\n\tsetz %b0\n\tmovzbl %b0, %0" : "=q"(zf) : "r"((uint32_t)SEG_KCODE) : "cc");
    printf("verr 0x08 -> zf=%u\n", zf);
    check_eq("verr_kcode", zf, 1);
    __asm__ volatile("verw %w1\n\tsetz %b0\n\tmovzbl %b0, %0" : "=q"(zf) : "r"((uint32_t)SEG_KCODE) : "cc");
    printf("verw 0x08 -> zf=%u\n", zf);
    check_eq("verw_kcode", zf, 0);
    __asm__ volatile("verw %w1\n\tsetz %b0\n\tmovzbl %b0, %0" : "=q"(zf) : "r"((uint32_t)SEG_UDATA) : "cc");
    printf("verw 0x23 -> zf=%u\n", zf);
    check_eq("verw_udata", zf, 1);
}

static void test_crs(void)
{
    uint32_t cr0 = read_cr0();
    printf("cr0=0x%08x\n", cr0);

    uint32_t msw = 0xdead0000;
    __asm__ volatile("smsw %w0" : "+r"(msw));
    printf("smsw %%ax (eax preset 0xdead0000) -> 0x%08x\n", msw);
    check_eq("smsw_reg16", msw, 0xdead0000 | (cr0 & 0xffff));
    uint16_t m16 = 0;
    __asm__ volatile("smsw %0" : "=m"(m16));
    printf("smsw m16 -> 0x%04x\n", m16);
    check_eq("smsw_mem", m16, cr0 & 0xffff);

    write_cr0(cr0 | CR0_TS);
    uint32_t v = read_cr0();
    printf("mov cr0 |= TS -> cr0=0x%08x\n", v);
    check_eq("cr0_set_ts", v, cr0 | CR0_TS);
    clts();
    v = read_cr0();
    printf("clts -> cr0=0x%08x\n", v);
    check_eq("cr0_clts", v, cr0 & ~CR0_TS);
    write_cr0(cr0 | CR0_MP);
    v = read_cr0();
    printf("mov cr0 |= MP -> cr0=0x%08x\n", v);
    check_eq("cr0_set_mp", v, cr0 | CR0_MP);
    write_cr0(cr0 | CR0_EM | CR0_NE);
    v = read_cr0();
    printf("mov cr0 |= EM|NE -> cr0=0x%08x\n", v);
    check_eq("cr0_set_em_ne", v, cr0 | CR0_EM | CR0_NE);
    write_cr0(cr0 & ~CR0_ET);
    v = read_cr0();
    printf("mov cr0 &= ~ET -> cr0=0x%08x\n", v);
    write_cr0(cr0);

    uint16_t lm = CR0_TS | CR0_MP | CR0_PE;
    __asm__ volatile("lmsw %0" : : "r"(lm) : "memory");
    v = read_cr0();
    printf("lmsw 0x%04x -> cr0=0x%08x\n", lm, v);
    check_eq("lmsw_ts_mp", v, cr0 | CR0_TS | CR0_MP);
    lm = 0;
    __asm__ volatile("lmsw %0" : : "r"(lm) : "memory");
    v = read_cr0();
    printf("lmsw 0x0000 -> cr0=0x%08x (PE stays set)\n", v);
    check_eq("lmsw_cannot_clear_pe", v, (cr0 & ~(CR0_TS | CR0_MP | CR0_EM)) | CR0_PE);
    write_cr0(cr0);
    printf("cr0 restored=0x%08x\n", read_cr0());

    printf("cr2=0x%08x\n", read_cr2());
    write_cr2(0x12345678);
    v = read_cr2();
    printf("mov cr2, 0x12345678 -> 0x%08x\n", v);
    check_eq("cr2_rw", v, 0x12345678);
    write_cr2(0x87654000);
    v = read_cr2();
    printf("mov cr2, 0x87654000 -> 0x%08x\n", v);
    check_eq("cr2_rw2", v, 0x87654000);
    write_cr2(0);

    printf("cr3=0x%08x\n", read_cr3());
    write_cr3(0x00abc000);
    v = read_cr3();
    printf("mov cr3, 0x00abc000 -> 0x%08x\n", v);
    check_eq("cr3_rw", v, 0x00abc000);
    write_cr3(0x00def018);
    v = read_cr3();
    printf("mov cr3, 0x00def018 -> 0x%08x\n", v);
    check_eq("cr3_rw_pwt_pcd", v, 0x00def018);
    write_cr3(0);

    printf("cr4=0x%08x\n", read_cr4());
    write_cr4(0);
    v = read_cr4();
    printf("mov cr4, 0 -> 0x%08x\n", v);
    check_eq("cr4_zero", v, 0);
    write_cr4(CR4_TSD);
    v = read_cr4();
    printf("mov cr4, TSD -> 0x%08x\n", v);
    check_eq("cr4_tsd", v, CR4_TSD);
    write_cr4(0);

    printf("dr6=0x%08x dr7=0x%08x\n", read_dr6(), read_dr7());
    write_dr0(0x00102030);
    v = read_dr0();
    printf("mov dr0, 0x00102030 -> 0x%08x\n", v);
    check_eq("dr0_rw", v, 0x00102030);
    write_dr0(0);
    write_dr6(0);
    v = read_dr6();
    printf("mov dr6, 0 -> 0x%08x\n", v);
    check_eq("dr6_fixed_ones", v, 0xffff0ff0);
    write_dr7(0);
    v = read_dr7();
    printf("mov dr7, 0 -> 0x%08x\n", v);
    check_eq("dr7_fixed_one", v, 0x00000400);

    __asm__ volatile("wbinvd" ::: "memory");
    invlpg(0x00100000);
    print("wbinvd, invlpg: executed\n");
}

static void test_io(void)
{
    outb(0x3ff, 0x5a);
    uint8_t v = inb(0x3ff);
    printf("out 0x3ff,0x5a; in 0x3ff -> 0x%02x\n", v);
    check_eq("scratch_5a", v, 0x5a);
    outb(0x3ff, 0xa5);
    v = inb(0x3ff);
    printf("out 0x3ff,0xa5; in 0x3ff -> 0x%02x\n", v);
    check_eq("scratch_a5", v, 0xa5);

    v = inb(0x3fb);
    printf("in 0x3fb (LCR) -> 0x%02x\n", v);
    check_eq("lcr_initial", v, 0x03);
    outb(0x3fb, 0x1b);
    v = inb(0x3fb);
    outb(0x3fb, 0x03);
    printf("out 0x3fb,0x1b; in 0x3fb -> 0x%02x\n", v);
    check_eq("lcr_rw", v, 0x1b);
    v = inb(0x3fb);
    printf("LCR restored -> 0x%02x\n", v);

    v = inb(0x3f9);
    printf("in 0x3f9 (IER) -> 0x%02x\n", v);
    check_eq("ier", v, 0x00);

    /* Divisor latch round trip. */
    outb(0x3fb, 0x83);
    uint8_t dll = inb(0x3f8), dlm = inb(0x3f9);
    outb(0x3fb, 0x03);
    printf("divisor latch: dll=0x%02x dlm=0x%02x\n", dll, dlm);
    check_eq("divisor", (uint32_t)dlm << 8 | dll, 1);

    /* PIC masks. */
    uint8_t m1 = inb(0x21), m2 = inb(0xa1);
    printf("pic masks: 0x%02x 0x%02x\n", m1, m2);
    check_eq("pic_masks", (uint32_t)m1 << 8 | m2, 0xffff);
}

static void test_cpuid(void)
{
    static const uint32_t leaves[] = { 0, 1, 2, 0x80000000u };
    uint32_t a, b, c, d;
    for (unsigned i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        cpuid(leaves[i], &a, &b, &c, &d);
        printf("cpuid 0x%08x: eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x\n", leaves[i], a, b, c, d);
    }
    cpuid(0, &a, &b, &c, &d);
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    printf("cpuid vendor=\"%s\" max leaf=%u\n", vendor, a);
    cpuid(1, &a, &b, &c, &d);
    printf("cpuid 1: family=%u model=%u stepping=%u tsc=%u cmov=%u pse=%u vme=%u mmx=%u\n",
           (a >> 8) & 0xf, (a >> 4) & 0xf, a & 0xf, (d >> 4) & 1, (d >> 15) & 1, (d >> 3) & 1, (d >> 1) & 1, (d >> 23) & 1);
    check_eq("cpuid_no_pse_vme", d & ((1u << 3) | (1u << 1)), 0);
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("privileged: privileged and sensitive instructions at CPL 0\n");
    cpu_init();
    test_flags();
    test_tables();
    test_crs();
    test_io();
    test_cpuid();
    printf("privileged: done, %d failures\n", failures);
    return failures;
}
