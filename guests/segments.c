/*
 * segments -- what guest code sees of segmentation, in every engine.
 *
 * Three contexts run the same code: ring 0 (translated), ring 3 with
 * IF=1 (run directly) and ring 3 with IF=0 (translated at CPL 3).
 *
 * Tests:   (a) the sensitive instructions: SGDT, SIDT, SLDT and STR
 *          (memory and 32-bit register forms), SMSW (memory and register),
 *          PUSH of each segment register into a slot holding junk, MOV
 *          from each segment register to a 32-bit register holding junk
 *          and to a 16-bit one, PUSHF; then LAR, LSL, VERR and VERW on
 *          every kind of descriptor: null, flat code and data of both
 *          rings, the busy TSS, an LDT descriptor of DPL 3, call gates of
 *          DPL 3 and 0, conforming code of DPL 0, data with a clear
 *          accessed bit, not present, expand-down, 16-bit, based at a
 *          buffer, execute-only code, a selector past the GDT's limit,
 *          and LDT entries (RPL 0 and 3 variants of some).
 *          (b) CR4.UMIP set by the guest: the five instructions raise
 *          #GP(0) at ring 3 and still work at ring 0.
 *          (c) segment loads into DS, ES (MOV), FS (POP), GS (MOV), SS
 *          (MOV), and through LDS and LSS, for every selector of (a):
 *          each outcome, success or vector and error code; the accessed
 *          bit a load sets, read back from the GDT.
 *          (d) conforming code: ring 3 calls and jumps to DPL-0
 *          conforming code (CPL stays 3, CS's RPL becomes 3), returns
 *          with LRET; ring 0 cannot reach DPL-3 conforming code (#GP);
 *          ring 3 cannot call DPL-0 non-conforming code (#GP).
 *          (e) FS and GS with non-zero bases, from the GDT and the LDT:
 *          loads, stores, a MOVS with an FS override, a scaled index
 *          through GS.
 *          (f) a flat 4 GiB data segment used near its top (linear
 *          0xffbffff0 and up, mapped by the guest's page tables), and a
 *          segment based just below the monitor's region.
 * Exercises: shadow descriptor tables (docs/05-shadow-tables.md: the two
 *          tables, exact copies for direct execution), segment tracking
 *          and the monitor's emulation of segment loads with the CPU's
 *          checks (docs/04-segments.md), UMIP in direct execution
 *          (vmm.c, E:005), the GS/CS prefix rewrite in translated code
 *          (docs/08-translation.md).
 * Monitor exits expected: #GP for SGDT, SIDT, SLDT, STR and SMSW in
 *          direct execution (UMIP), for loads the shadows cannot serve
 *          and for far calls through DPL-3 gates; #PF on direct
 *          execution's GDT copy when a load sets an accessed bit;
 *          callouts for each of them in translated code.
 */
#include "guest.h"

#define LDT_D    6              /* LDT descriptor, DPL 3 */
#define GATE3    7              /* call gate, DPL 3, to ring 0 */
#define GATE0    8              /* call gate, DPL 0 */
#define CONF0    9              /* conforming code, DPL 0 */
#define ABIT     10             /* data, DPL 3, accessed bit clear */
#define NOTP     11             /* data, DPL 3, not present */
#define EXPDN    12             /* expand-down data, DPL 3 */
#define DATA16   13             /* 16-bit data, DPL 3, based at buf16 */
#define BASED    14             /* data, DPL 3, based at based_buf - 0x1000 */
#define XONLY    15             /* execute-only code, DPL 3 */

/* LDT entries. */
#define L_DATA   1              /* data, DPL 3, based at ldt_buf */
#define L_CONF3  2              /* conforming code, DPL 3 */
#define L_KDATA  3              /* data, DPL 0 */
#define L_CODE3  4              /* code, DPL 3 */
#define LSEL(i, rpl) ((uint16_t)(((i) << 3) | 4 | (rpl)))

extern uint64_t gdt[];
static uint64_t ldt[5] ALIGNED(8);
static uint32_t ldt_buf[4] = { 0x1dd70001, 0x1dd70002, 0x1dd70003, 0x1dd70004 };
static uint32_t based_buf[8] = { 0xba5e0000, 0xba5e0001, 0xba5e0002, 0xba5e0003 };
static uint16_t buf16[4] = { 0x1616, 0x2626 };

enum { R0, R3, R3B, NCTX };
static const char *const ctx_name[NCTX] = { "ring0", "ring3", "ring3.if0" };

static uint32_t run_in(int ctx, uint32_t (*fn)(uint32_t), uint32_t arg)
{
    if (ctx == R0)
        return fn(arg);
    return run_user(fn, arg, ctx == R3 ? EFL_IF : 0);
}

static void set_gate(int index, uint32_t target, uint16_t sel, int dpl, int params)
{
    gdt[index] = (uint64_t)(target & 0xffff) | (uint64_t)sel << 16 |
                 (uint64_t)(0x80 | (dpl << 5) | 0x0c) << 40 | (uint64_t)(params & 0x1f) << 32 |
                 (uint64_t)(target >> 16) << 48;
}

/* ---- (a) the sensitive instructions ---- */

struct sens {
    uint8_t gdtr[6], idtr[6];
    uint16_t ldtr_m, tr_m, msw_m;
    uint32_t ldtr_r, tr_r, msw_r;
    uint32_t push[6], movr[6], mov16[6];
    uint32_t flags;
};
static volatile struct sens sn;

#define PUSH_SREG(i, sr)                                                    \
    __asm__ volatile("pushl $0xdeadbeef\n\t"                                \
                     "addl $4, %%esp\n\t"                                   \
                     "pushl %%" #sr "\n\t"                                  \
                     "popl %0" : "=r"(sn.push[i]) : : "memory")
#define MOV_SREG(i, sr)                                                     \
    __asm__ volatile("movl $0xdeadbeef, %0\n\t"                             \
                     "movl %%" #sr ", %0" : "=r"(sn.movr[i]));              \
    __asm__ volatile("movl $0xdeadbeef, %0\n\t"                             \
                     "movw %%" #sr ", %w0" : "=r"(sn.mov16[i]))

static uint32_t do_sens(uint32_t arg)
{
    (void)arg;
    __asm__ volatile("sgdt %0" : "=m"(sn.gdtr));
    __asm__ volatile("sidt %0" : "=m"(sn.idtr));
    __asm__ volatile("sldt %0" : "=m"(sn.ldtr_m));
    __asm__ volatile("str %0" : "=m"(sn.tr_m));
    __asm__ volatile("smsw %0" : "=m"(sn.msw_m));
    __asm__ volatile("movl $0xdeadbeef, %0\n\tsldt %0" : "=r"(sn.ldtr_r));
    __asm__ volatile("movl $0xdeadbeef, %0\n\tstr %0" : "=r"(sn.tr_r));
    __asm__ volatile("movl $0xdeadbeef, %0\n\tsmsw %0" : "=r"(sn.msw_r));
    PUSH_SREG(0, es); PUSH_SREG(1, cs); PUSH_SREG(2, ss);
    PUSH_SREG(3, ds); PUSH_SREG(4, fs); PUSH_SREG(5, gs);
    MOV_SREG(0, es); MOV_SREG(1, cs); MOV_SREG(2, ss);
    MOV_SREG(3, ds); MOV_SREG(4, fs); MOV_SREG(5, gs);
    sn.flags = read_eflags();
    return 0;
}

static const uint16_t probe_sels[] = {
    0x0000, 0x0008, 0x000b, 0x0010, 0x001b, 0x0023, 0x0020, 0x0028, 0x002b,
    SEL(LDT_D, 3), SEL(GATE3, 3), SEL(GATE0, 3), SEL(GATE0, 0), SEL(CONF0, 3),
    SEL(ABIT, 3), SEL(NOTP, 3), SEL(EXPDN, 3), SEL(DATA16, 3), SEL(BASED, 3),
    SEL(XONLY, 3), SEL(16, 3), SEL(40, 0),
    LSEL(0, 3), LSEL(L_DATA, 3), LSEL(L_DATA, 0), LSEL(L_CONF3, 3), LSEL(L_KDATA, 3),
    LSEL(L_KDATA, 0), LSEL(L_CODE3, 3), LSEL(5, 3),
};
#define NPROBE (sizeof probe_sels / sizeof probe_sels[0])

struct access_rights {
    uint32_t lar, lar_zf, lsl, lsl_zf, verr, verw;
};
static volatile struct access_rights ar[NPROBE];

static uint32_t do_access_rights(uint32_t arg)
{
    (void)arg;
    for (unsigned i = 0; i < NPROBE; i++) {
        uint32_t sel = probe_sels[i], v, zf;
        __asm__ volatile("movl $0xdeadbeef, %0\n\t"
                         "larl %2, %0\n\t"
                         "setz %b1\n\t"
                         "movzbl %b1, %1" : "=&r"(v), "=&q"(zf) : "r"(sel) : "cc");
        ar[i].lar = v;
        ar[i].lar_zf = zf;
        __asm__ volatile("movl $0xdeadbeef, %0\n\t"
                         "lsll %2, %0\n\t"
                         "setz %b1\n\t"
                         "movzbl %b1, %1" : "=&r"(v), "=&q"(zf) : "r"(sel) : "cc");
        ar[i].lsl = v;
        ar[i].lsl_zf = zf;
        __asm__ volatile("verr %w1\n\tsetz %b0\n\tmovzbl %b0, %0" : "=q"(zf) : "r"(sel) : "cc");
        ar[i].verr = zf;
        __asm__ volatile("verw %w1\n\tsetz %b0\n\tmovzbl %b0, %0" : "=q"(zf) : "r"(sel) : "cc");
        ar[i].verw = zf;
    }
    return 0;
}

static void part_a(int ctx)
{
    const char *c = ctx_name[ctx];
    gdt[ABIT] &= ~(1ull << 40);
    run_in(ctx, do_sens, 0);
    printf("%s: sgdt limit=%04x base=%08x; sidt limit=%04x base=%08x\n", c,
           sn.gdtr[0] | sn.gdtr[1] << 8, sn.gdtr[2] | sn.gdtr[3] << 8 | sn.gdtr[4] << 16 | (uint32_t)sn.gdtr[5] << 24,
           sn.idtr[0] | sn.idtr[1] << 8, sn.idtr[2] | sn.idtr[3] << 8 | sn.idtr[4] << 16 | (uint32_t)sn.idtr[5] << 24);
    printf("%s: sldt m16=%04x r32=%08x; str m16=%04x r32=%08x; smsw m16=%04x r32=%08x\n", c,
           sn.ldtr_m, sn.ldtr_r, sn.tr_m, sn.tr_r, sn.msw_m, sn.msw_r);
    printf("%s: push es..gs =", c);
    for (int i = 0; i < 6; i++)
        printf(" %08x", sn.push[i]);
    printf("\n%s: mov r32 es..gs =", c);
    for (int i = 0; i < 6; i++)
        printf(" %08x", sn.movr[i]);
    printf("\n%s: mov r16 es..gs =", c);
    for (int i = 0; i < 6; i++)
        printf(" %08x", sn.mov16[i]);
    printf("\n%s: pushf=%08x\n", c, sn.flags);

    run_in(ctx, do_access_rights, 0);
    for (unsigned i = 0; i < NPROBE; i++)
        printf("%s: sel %04x: lar %s %08x, lsl %s %08x, verr %u verw %u\n", c, probe_sels[i],
               ar[i].lar_zf ? "ok" : "--", ar[i].lar, ar[i].lsl_zf ? "ok" : "--", ar[i].lsl,
               ar[i].verr, ar[i].verw);
    printf("%s: abit descriptor's accessed bit after lar/lsl/verr/verw: %u\n", c,
           (unsigned)(gdt[ABIT] >> 40) & 1);
}

/* ---- (b) UMIP ---- */

#define CR4_UMIP (1u << 11)
static volatile struct { uint32_t vec, err, count; } um[5];

static uint32_t do_umip(uint32_t arg)
{
    (void)arg;
    struct dtr d;
    uint16_t w;
    uint32_t base = last_fault.count;
    __asm__ volatile(FAULT_ARM "1: sgdt %0\n2:" : "=m"(d) : : "memory");
    um[0].count = last_fault.count - base, um[0].vec = last_fault.vector, um[0].err = last_fault.err;
    base = last_fault.count;
    __asm__ volatile(FAULT_ARM "1: sidt %0\n2:" : "=m"(d) : : "memory");
    um[1].count = last_fault.count - base, um[1].vec = last_fault.vector, um[1].err = last_fault.err;
    base = last_fault.count;
    __asm__ volatile(FAULT_ARM "1: sldt %0\n2:" : "=m"(w) : : "memory");
    um[2].count = last_fault.count - base, um[2].vec = last_fault.vector, um[2].err = last_fault.err;
    base = last_fault.count;
    __asm__ volatile(FAULT_ARM "1: str %0\n2:" : "=m"(w) : : "memory");
    um[3].count = last_fault.count - base, um[3].vec = last_fault.vector, um[3].err = last_fault.err;
    base = last_fault.count;
    __asm__ volatile(FAULT_ARM "1: smsw %0\n2:" : "=m"(w) : : "memory");
    um[4].count = last_fault.count - base, um[4].vec = last_fault.vector, um[4].err = last_fault.err;
    fault_armed = 0;
    return 0;
}

static void part_b(void)
{
    uint32_t a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    uint32_t umip = 0;
    if (a >= 7) {
        cpuid(7, &a, &b, &c, &d);
        umip = (c >> 2) & 1;
        printf("cpuid 7: ebx=%08x ecx=%08x edx=%08x\n", b, c, d);
    }
    printf("umip: cpu has it: %u\n", umip);
    if (!umip)
        return;
    write_cr4(read_cr4() | CR4_UMIP);
    printf("umip: cr4=%08x\n", read_cr4());
    static const char *const names[5] = { "sgdt", "sidt", "sldt", "str", "smsw" };
    for (int ctx = 0; ctx < NCTX; ctx++) {
        run_in(ctx, do_umip, 0);
        for (int i = 0; i < 5; i++)
            printf("umip %s %s: faults=%u vector=%u err=%04x\n", ctx_name[ctx], names[i], um[i].count,
                   um[i].count ? um[i].vec : 0, um[i].count ? um[i].err : 0);
        check_eq(ctx == R0 ? "umip_ring0_no_fault" : "umip_ring3_faults",
                 um[0].count + um[1].count + um[2].count + um[3].count + um[4].count, ctx == R0 ? 0 : 5);
    }
    write_cr4(read_cr4() & ~CR4_UMIP);
}

/* ---- (c) segment loads ---- */

enum { L_MOVDS, L_MOVES, L_POPFS, L_MOVGS, L_MOVSS, L_LDS, L_LSS, NLOADS };
static const char *const load_name[NLOADS] = { "mov ds", "mov es", "pop fs", "mov gs", "mov ss", "lds", "lss" };
static volatile struct { uint32_t faulted, vec, err, abit; } lr[NPROBE][NLOADS];
volatile uint32_t l_saved_esp, l_sel;
volatile struct { uint32_t off; uint16_t sel; } __attribute__((packed)) l_far;

static void one_load(int kind)
{
    uint32_t r = 0;
    switch (kind) {
    case L_MOVDS:
        __asm__ volatile("movl %%ds, %%ecx\n\t" FAULT_ARM
                         "1: movw l_sel, %%ds\n\tmovl %%ecx, %%ds\n2:" : : : "ecx", "memory");
        break;
    case L_MOVES:
        __asm__ volatile("movl %%es, %%ecx\n\t" FAULT_ARM
                         "1: movw l_sel, %%es\n\tmovl %%ecx, %%es\n2:" : : : "ecx", "memory");
        break;
    case L_POPFS:
        __asm__ volatile("movl %%fs, %%ecx\n\tmovl %%esp, l_saved_esp\n\tpushl l_sel\n\t" FAULT_ARM
                         "1: popl %%fs\n\tmovl %%ecx, %%fs\n2:\tmovl l_saved_esp, %%esp" : : : "ecx", "memory");
        break;
    case L_MOVGS:
        __asm__ volatile("movl %%gs, %%ecx\n\t" FAULT_ARM
                         "1: movw l_sel, %%gs\n\tmovl %%ecx, %%gs\n2:" : : : "ecx", "memory");
        break;
    case L_MOVSS:
        __asm__ volatile("movl %%ss, %%ecx\n\t" FAULT_ARM
                         "1: movw l_sel, %%ss\n\tmovl %%ecx, %%ss\n2:" : : : "ecx", "memory");
        break;
    case L_LDS:
        __asm__ volatile("movl %%ds, %%ecx\n\t" FAULT_ARM
                         "1: ldsl l_far, %0\n\tmovl %%ecx, %%ds\n2:" : "+r"(r) : : "ecx", "memory");
        break;
    case L_LSS:
        __asm__ volatile("movl %%ss, %%ecx\n\tmovl %%esp, l_saved_esp\n\t" FAULT_ARM
                         "1: lssl l_far, %%esp\n\tmovl %%ecx, %%ss\n2:\tmovl l_saved_esp, %%esp"
                         : : : "ecx", "memory");
        break;
    }
    (void)r;
}

static uint32_t do_loads(uint32_t arg)
{
    (void)arg;
    for (unsigned i = 0; i < NPROBE; i++)
        for (int k = 0; k < NLOADS; k++) {
            gdt[ABIT] &= ~(1ull << 40);         /* the GDT is in memory ring 3 may write */
            l_sel = probe_sels[i];
            l_far.sel = probe_sels[i];
            l_far.off = 0x1000;
            uint32_t before = last_fault.count;
            one_load(k);
            fault_armed = 0;
            lr[i][k].faulted = last_fault.count != before;
            lr[i][k].vec = last_fault.vector;
            lr[i][k].err = last_fault.err;
            lr[i][k].abit = (uint32_t)(gdt[ABIT] >> 40) & 1;
        }
    return 0;
}

static void part_c(int ctx)
{
    run_in(ctx, do_loads, 0);
    for (unsigned i = 0; i < NPROBE; i++) {
        printf("%s: load %04x:", ctx_name[ctx], probe_sels[i]);
        for (int k = 0; k < NLOADS; k++) {
            if (lr[i][k].faulted)
                printf(" %s=#%u(%04x)", load_name[k], lr[i][k].vec, lr[i][k].err);
            else
                printf(" %s=ok", load_name[k]);
        }
        if (probe_sels[i] == SEL(ABIT, 3))
            printf(" accessed bit after each:%u%u%u%u%u%u%u", lr[i][0].abit, lr[i][1].abit,
                   lr[i][2].abit, lr[i][3].abit, lr[i][4].abit, lr[i][5].abit, lr[i][6].abit);
        print("\n");
    }
}

/* ---- (d) conforming code ---- */

volatile uint32_t conf_cs, conf_ss, conf_val;
volatile struct { uint32_t off; uint16_t sel; } __attribute__((packed)) conf_fp, back_fp;
extern char conf_fn[], conf_jmp[], conf_back[];
__asm__(".text\n"
        "conf_fn:\n\t"
        "movl %cs, %eax\n\tmovl %eax, conf_cs\n\t"
        "movl %ss, %eax\n\tmovl %eax, conf_ss\n\t"
        "movl $0xc0f0, conf_val\n\t"
        "lret\n"
        "conf_jmp:\n\t"
        "movl %cs, %eax\n\tmovl %eax, conf_cs\n\t"
        "addl $1, conf_val\n\t"
        "ljmp *back_fp\n");

static uint32_t do_conf_call(uint32_t sel)
{
    conf_fp.off = (uint32_t)conf_fn;
    conf_fp.sel = (uint16_t)sel;
    __asm__ volatile(FAULT_ARM "1: lcall *conf_fp\n2:" : : : "eax", "memory");
    fault_armed = 0;
    return 0;
}

static uint32_t do_conf_jmp(uint32_t sel)
{
    uint32_t cs;
    __asm__ volatile("movl %%cs, %0" : "=r"(cs));
    conf_fp.off = (uint32_t)conf_jmp;
    conf_fp.sel = (uint16_t)sel;
    back_fp.off = (uint32_t)conf_back;
    back_fp.sel = (uint16_t)cs;
    __asm__ volatile(FAULT_ARM "1: ljmp *conf_fp\n.globl conf_back\nconf_back:\n2:" : : : "eax", "memory");
    fault_armed = 0;
    return 0;
}

static void conf_case(int ctx, const char *what, uint32_t (*fn)(uint32_t), uint16_t sel)
{
    conf_cs = conf_ss = conf_val = 0;
    uint32_t before = last_fault.count;
    run_in(ctx, fn, sel);
    if (last_fault.count != before)
        printf("%s: %s %04x: vector=%u err=%04x\n", ctx_name[ctx], what, sel, last_fault.vector, last_fault.err);
    else
        printf("%s: %s %04x: cs=%04x ss=%04x val=%04x\n", ctx_name[ctx], what, sel, conf_cs & 0xffff,
               conf_ss & 0xffff, conf_val);
}

static void part_d(int ctx)
{
    conf_case(ctx, "lcall conforming dpl0", do_conf_call, SEL(CONF0, 3));
    conf_case(ctx, "lcall conforming dpl0 rpl0", do_conf_call, SEL(CONF0, 0));
    conf_case(ctx, "ljmp conforming dpl0", do_conf_jmp, SEL(CONF0, 3));
    conf_case(ctx, "lcall conforming dpl3", do_conf_call, LSEL(L_CONF3, 3));
    conf_case(ctx, "lcall kernel code", do_conf_call, 0x0b);
    conf_case(ctx, "lcall user code", do_conf_call, 0x1b);
    conf_case(ctx, "lcall ldt code", do_conf_call, LSEL(L_CODE3, 3));
}

/* ---- (e) FS and GS with non-zero bases ---- */

volatile uint32_t e_out[8];
static uint32_t e_dst[4];

static uint32_t do_bases(uint32_t sel)
{
    __asm__ volatile("movl %%fs, %%ecx\n\tmovl %%gs, %%edx\n\t"
                     "movw %w0, %%fs\n\t"
                     "movw %w0, %%gs\n\t"
                     "movl %%fs:0x1000, %%eax\n\tmovl %%eax, e_out\n\t"
                     "movl %%gs:0x1004, %%eax\n\tmovl %%eax, e_out+4\n\t"
                     "movl $0x12345678, %%gs:0x1010\n\t"
                     "movl $2, %%eax\n\t"
                     "movl %%gs:0x1000(,%%eax,4), %%eax\n\tmovl %%eax, e_out+8\n\t"
                     "movl %%fs:0x1010, %%eax\n\tmovl %%eax, e_out+12\n\t"
                     "movl %%ecx, %%fs\n\tmovl %%edx, %%gs\n\t"
                     : : "r"(sel) : "eax", "ecx", "edx", "memory");
    /* A string move with an FS override: FS:ESI -> ES:EDI. */
    __asm__ volatile("movl %%fs, %%edx\n\t"
                     "movw %w0, %%fs\n\t"
                     "movl $0x1000, %%esi\n\t"
                     "movl %1, %%edi\n\t"
                     "movl $3, %%ecx\n\t"
                     "cld\n\t"
                     "rep movsl %%fs:(%%esi), %%es:(%%edi)\n\t"
                     "movl %%edx, %%fs" : : "r"(sel), "r"(e_dst) : "ecx", "edx", "esi", "edi", "memory");
    e_out[4] = e_dst[0], e_out[5] = e_dst[1], e_out[6] = e_dst[2];
    return 0;
}

static uint32_t do_ldt_fs(uint32_t arg)
{
    (void)arg;
    uint32_t a, b;
    __asm__ volatile("movl %%fs, %%ecx\n\t"
                     "movw %w2, %%fs\n\t"
                     "movl %%fs:4, %0\n\t"
                     "movl %%fs:12, %1\n\t"
                     "movl $0x77777777, %%fs:8\n\t"
                     "movl %%ecx, %%fs" : "=&r"(a), "=&r"(b) : "r"(LSEL(L_DATA, 3)) : "ecx", "memory");
    e_out[0] = a, e_out[1] = b;
    return 0;
}

static void part_e(int ctx)
{
    memset(e_dst, 0, sizeof e_dst);
    based_buf[4] = 0;
    run_in(ctx, do_bases, SEL(BASED, 3));
    printf("%s: based fs/gs: %08x %08x %08x %08x; movs: %08x %08x %08x; buf[4]=%08x\n", ctx_name[ctx],
           e_out[0], e_out[1], e_out[2], e_out[3], e_out[4], e_out[5], e_out[6], based_buf[4]);
    check_eq("based_fs_read", e_out[0], 0xba5e0000);
    run_in(ctx, do_ldt_fs, 0);
    printf("%s: ldt fs: %08x %08x; ldt_buf[2]=%08x\n", ctx_name[ctx], e_out[0], e_out[1], ldt_buf[2]);
    ldt_buf[2] = 0x1dd70003;
}

/* ---- (f) the top of the address space ---- */

#define TOP_PAGE 0xffbff000u
static uint8_t top_frame[4096] ALIGNED(4096);
static volatile uint32_t f_out[6];

static uint32_t do_top(uint32_t sel)
{
    volatile uint32_t *p = (volatile uint32_t *)(TOP_PAGE + 0xff0);
    f_out[0] = p[0];
    p[3] = 0x70b70b00;                          /* the last dword below the monitor */
    f_out[1] = p[3];
    uint32_t v;
    __asm__ volatile("movl %%ds, %%ecx\n\t"
                     "movw %w1, %%ds\n\t"
                     "movl 0xff8, %0\n\t"
                     "incl 0xff4\n\t"
                     "movl %%ecx, %%ds" : "=&r"(v) : "r"(sel) : "ecx", "memory");
    f_out[2] = v;
    f_out[3] = p[1];
    return 0;
}

static void part_f(uint32_t *pd)
{
    for (int i = 0; i < 1024; i++)
        ((uint32_t *)top_frame)[i] = 0x70900000 + i;
    pg_map(pd, TOP_PAGE, (uint32_t)top_frame, PG_W | PG_U);
    /* BASED re-pointed just below the monitor's region: offsets 0-0xfff. */
    uint64_t saved = gdt[BASED];
    gdt_set(BASED, TOP_PAGE, 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_16);
    for (int ctx = 0; ctx < NCTX; ctx++) {
        run_in(ctx, do_top, SEL(BASED, 3));
        printf("%s: top of the address space: %08x %08x %08x %08x\n", ctx_name[ctx], f_out[0], f_out[1],
               f_out[2], f_out[3]);
    }
    gdt[BASED] = saved;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("segments: what guest code sees of segmentation\n");
    cpu_init();
    ldt[0] = 0;
    ldt[L_DATA] = make_desc((uint32_t)ldt_buf, 0xfff, ACC_UDATA | ACC_ACCESSED, FLG_16);
    ldt[L_CONF3] = make_desc(0, 0xfffff, ACC_P | ACC_DPL(3) | ACC_S | ACC_CODE_RC, FLG_32);
    ldt[L_KDATA] = make_desc(0, 0xfffff, ACC_KDATA | ACC_ACCESSED, FLG_32);
    ldt[L_CODE3] = make_desc(0, 0xfffff, ACC_UCODE, FLG_32);
    gdt_set(LDT_D, (uint32_t)ldt, sizeof ldt - 1, ACC_P | ACC_DPL(3) | 0x02, 0);
    set_gate(GATE3, 0x12345678, SEG_KCODE, 3, 2);
    set_gate(GATE0, 0x0badcafe, SEG_KCODE, 0, 0);
    gdt_set(CONF0, 0, 0xfffff, ACC_P | ACC_DPL(0) | ACC_S | ACC_CODE_RC, FLG_32);
    gdt_set(ABIT, 0, 0xfffff, ACC_UDATA, FLG_32);
    gdt_set(NOTP, 0, 0xfffff, ACC_DPL(3) | ACC_S | ACC_DATA_W | ACC_ACCESSED, FLG_32);
    gdt_set(EXPDN, 0x00200000, 0x0fff, ACC_P | ACC_DPL(3) | ACC_S | 0x06 | ACC_ACCESSED, FLG_D);
    gdt_set(DATA16, (uint32_t)buf16, 0xffff, ACC_UDATA | ACC_ACCESSED, FLG_16);
    gdt_set(BASED, (uint32_t)based_buf - 0x1000, 0xffff, ACC_UDATA | ACC_ACCESSED, FLG_16);
    gdt_set(XONLY, 0, 0xfffff, ACC_P | ACC_DPL(3) | ACC_S | 0x08 | ACC_ACCESSED, FLG_32);
    lldt(SEL(LDT_D, 0));

    for (int ctx = 0; ctx < NCTX; ctx++)
        part_a(ctx);
    part_b();
    for (int ctx = 0; ctx < NCTX; ctx++)
        part_c(ctx);
    for (int ctx = 0; ctx < NCTX; ctx++)
        part_d(ctx);
    for (int ctx = 0; ctx < NCTX; ctx++)
        part_e(ctx);

    uint32_t *pd = pg_new_dir();
    pg_identity(pd, 8u << 20, PG_W | PG_U);
    paging_enable(pd, 1);
    part_f(pd);
    paging_disable();

    printf("segments: done, %d failures\n", failures);
    return failures;
}
