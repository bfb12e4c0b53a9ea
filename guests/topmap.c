/*
 * topmap -- the guest's own mappings in the top 4 MiB of the linear address
 * space (0xffc00000 and up), where the monitor lives; Linux keeps its fixmap
 * (and, since 4.15, its cpu_entry_area) there.
 *
 * Tests:   (t1) three kernel pages mapped at 0xffc00000, 0xffe01000 and
 *          0xfffff000 and one at 0xffbff000 (just below): byte, word and
 *          dword movs (register-indirect, absolute disp32 and the A0-A3
 *          moffs forms, the last dword and byte of the address space) read
 *          back through the mapping and through the frames' identity
 *          mapping;
 *          (t2) read-modify-write and other forms on those pages: add, inc,
 *          sub, and, or, cmp (EFLAGS printed), xchg, lock xadd, lock cmpxchg
 *          (success and failure), lock cmpxchg8b, bts/btr with an immediate
 *          and with a register bit offset, movzx/movsx, push/pop of memory
 *          operands, rep movsl low -> region, rep movsb region -> low, rep
 *          stosl, and push/pop (and pushfl) with ESP at 0xfffffff0;
 *          (t3) a dword write straddling 0xffbffffe (two bytes each side of
 *          the region's start), a word at 0xffbfffff, inc of the straddling
 *          dword, a straddling read, rep movsb across 0xffc00000;
 *          (t4) Accessed/Dirty bits of top PTEs and of PDE 1023: cleared,
 *          invlpg, read, write, write-first, RMW, instruction fetch;
 *          (t5) #PF in the region: not-present read/write, an instruction
 *          fetch from a not-present page, a write to a read-only page with
 *          CR0.WP=1 (and with WP=0: allowed, sets D), a dword write
 *          straddling into a not-present page, rep movsb faulting part way
 *          (ECX/ESI/EDI at the fault);
 *          (t6) ring 3 (IF=1): a user-writable top page written and read
 *          (reported by a system call), user code executing in the region,
 *          a user stack in the region across int $0x80, and user accesses
 *          to supervisor and not-present top pages (#PF 5/7/4, fetch 5);
 *          (t7) code in the region: a function copied to 0xfff00000 and
 *          called from ring 0, its immediate patched through the identity
 *          mapping and through a writable alias in the region, a loop, and
 *          an instruction straddling 0xffc00000;
 *          (t8) the page table for PDE 1023 mapped at 0xfffe0000 and the
 *          page directory at 0xfffe1000: PTEs read, retargeted, cleared
 *          with xchg, made writable with orl and read-only with andl through
 *          the region (invlpg after each), the A/D bits of the PTE that maps
 *          the table itself;
 *          (t9) one instruction touching two region pages: rep movsl and
 *          movsl between two region pages, cmpsl, pushl/popl of a region
 *          memory operand with the stack in the region;
 *          (t10) exception and interrupt frames pushed onto a stack in the
 *          region: int $0x81 and a #UD from ring 0 with ESP at 0xfffffff0,
 *          and int $0x80 from ring 3 with TSS.esp0 in the region;
 *          (t11) a data segment based at 0xffc00000: %gs:0x40 written and
 *          read, %gs:0x201004 read (linear 0xffe01004).
 *          Each sub-test sets up its own frames and mappings, so
 *          `-append tN` runs sub-test N alone (no argument: all).
 * Exercises: relocated execution of guest accesses to the monitor's region
 *          (bt.c H:050, direct.c T_RELOC, mmu.c PF_WINDOW), A/D emulation
 *          and #PF reflection for such accesses, traced page-table writes
 *          made through the region.
 * Monitor exits expected: page faults in the monitor's region (relocated
 *          steps: "relocated=N" in the stat line); hidden faults; traced
 *          writes; invlpg and mov-to-CR3 callouts; true #PF reflected;
 *          #GP exits for int $0x80 from ring 3.
 */
#include "guest.h"

enum { F_T0, F_T1, F_T2, F_BELOW, F_RO, F_USER, F_CODE, F_A, F_B, F_LOW, NF };
static uint8_t frames[NF][4096] ALIGNED(4096);
#define FRAME(i) ((uint32_t)frames[i])
#define ID32(f, off) (*(volatile uint32_t *)(FRAME(f) + (off)))
#define ID8(f, off) (*(volatile uint8_t *)(FRAME(f) + (off)))

#define VA_T0     0xffc00000u   /* -> F_T0, kernel rw */
#define VA_T1     0xffe01000u   /* -> F_T1, kernel rw */
#define VA_T2     0xfffff000u   /* -> F_T2, kernel rw (the last page) */
#define VA_BELOW  0xffbff000u   /* -> F_BELOW, kernel rw (PDE 1022) */
#define VA_RO     0xfff80000u   /* -> F_RO, kernel read-only */
#define VA_USER   0xfffdf000u   /* -> F_USER, user rw */
#define VA_CODE   0xfff00000u   /* -> F_CODE, kernel read-only (code) */
#define VA_CODEW  0xfff01000u   /* -> F_CODE, kernel rw alias */
#define VA_RT     0xfffd0000u   /* -> F_A / F_B, retargeted in t8 */
#define VA_PT     0xfffe0000u   /* -> the page table of PDE 1023 */
#define VA_PD     0xfffe1000u   /* -> the page directory */
#define VA_NP     0xffd00000u   /* not present */

#define FL_ARITH (EFL_CF | EFL_PF | EFL_AF | EFL_ZF | EFL_SF | EFL_OF)   /* 0x8d5 */
#define FL_LOGIC (FL_ARITH & ~EFL_AF)   /* AF is undefined after and/or */

#define SYS_REPORT 16           /* user report: record EBX/ECX/EDX/ESP */
#define SYS_ESP0   17           /* ebx: new TSS.esp0 (0: kstack_top) */

static uint32_t *pd, *pt_top, *pt_below;

static uint32_t pte_idx(uint32_t va) { return (va >> 12) & 0x3ff; }
static uint32_t *pte_of(uint32_t va) { return pg_pte(pd, va); }

/* ------------------------------------------------------------ accessors */

static void w8(uint32_t a, uint8_t v) { __asm__ volatile("movb %b1, (%0)" : : "r"(a), "q"(v) : "memory"); }
static void w16(uint32_t a, uint16_t v) { __asm__ volatile("movw %w1, (%0)" : : "r"(a), "r"(v) : "memory"); }
static void w32(uint32_t a, uint32_t v) { __asm__ volatile("movl %1, (%0)" : : "r"(a), "r"(v) : "memory"); }
static uint32_t r8(uint32_t a)
{
    uint8_t v;
    __asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory");
    return v;
}
static uint32_t r16(uint32_t a)
{
    uint16_t v;
    __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory");
    return v;
}
static uint32_t r32(uint32_t a)
{
    uint32_t v;
    __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory");
    return v;
}

static void k_jump(uint32_t va)
{
    __asm__ volatile(FAULT_ARM "1: jmp *%0\n2:" : : "r"(va) : "memory");
}

static void show_pte(const char *what, uint32_t va)
{
    uint32_t *pte = pte_of(va);
    printf("%s: va=0x%08x pde=0x%08x pte=0x%08x\n", what, va, *pg_pde(pd, va), pte ? *pte : 0);
}

/* ------------------------------------------------------------ setup */

/* Code placed in the region (t6, t7). */
static const uint8_t code_ret1234[] = { 0xb8, 0x34, 0x12, 0x00, 0x00, 0xc3 };   /* mov $0x1234,%eax; ret */
/* movl 4(%esp),%ecx; xorl %eax,%eax; 1: addl %ecx,%eax; loop 1b; ret */
static const uint8_t code_sum[] = { 0x8b, 0x4c, 0x24, 0x04, 0x31, 0xc0, 0x01, 0xc8, 0xe2, 0xfc, 0xc3 };
/* movl 4(%esp),%eax; xorl $0x5a5a5a5a,%eax; ret */
static const uint8_t code_xor[] = { 0x8b, 0x44, 0x24, 0x04, 0x35, 0x5a, 0x5a, 0x5a, 0x5a, 0xc3 };
typedef uint32_t (*fn0_t)(void);
typedef uint32_t (*fn1_t)(uint32_t);

/* Every sub-test starts from here: frames filled with their patterns, the
 * top mappings in their initial state with Accessed/Dirty clear, TLB
 * flushed, CR0.WP=1. */
static void reset(void)
{
    for (int f = 0; f < NF; f++)
        for (int i = 0; i < 1024; i++)
            ((uint32_t *)frames[f])[i] = 0x10000000u * (uint32_t)(f + 1) + (uint32_t)i * 4;
    memcpy(frames[F_CODE], code_ret1234, sizeof code_ret1234);
    memcpy(frames[F_CODE] + 0x10, code_sum, sizeof code_sum);
    memcpy(frames[F_USER] + 0x800, code_xor, sizeof code_xor);

    for (int i = 0; i < 1024; i++)
        pt_top[i] = 0;
    pt_top[pte_idx(VA_T0)] = FRAME(F_T0) | PG_P | PG_W;
    pt_top[pte_idx(VA_T1)] = FRAME(F_T1) | PG_P | PG_W;
    pt_top[pte_idx(VA_T2)] = FRAME(F_T2) | PG_P | PG_W;
    pt_top[pte_idx(VA_RO)] = FRAME(F_RO) | PG_P;
    pt_top[pte_idx(VA_USER)] = FRAME(F_USER) | PG_P | PG_W | PG_U;
    pt_top[pte_idx(VA_CODE)] = FRAME(F_CODE) | PG_P;
    pt_top[pte_idx(VA_CODEW)] = FRAME(F_CODE) | PG_P | PG_W;
    pt_top[pte_idx(VA_RT)] = FRAME(F_A) | PG_P | PG_W;
    pt_top[pte_idx(VA_PT)] = (uint32_t)pt_top | PG_P | PG_W;
    pt_top[pte_idx(VA_PD)] = (uint32_t)pd | PG_P | PG_W;
    pt_below[pte_idx(VA_BELOW)] = FRAME(F_BELOW) | PG_P | PG_W;
    pd[1023] = (uint32_t)pt_top | PG_P | PG_W | PG_U;
    pd[1022] = (uint32_t)pt_below | PG_P | PG_W | PG_U;
    write_cr0(read_cr0() | CR0_WP);
    write_cr3(read_cr3());
}

/* ------------------------------------------------------------ t1 */

static void t1_plain(void)
{
    print("--- t1: plain moves through the top mappings\n");
    reset();
    uint32_t v, b, w, d;

    w8(VA_T0 + 0x10, 0x5a);
    w16(VA_T0 + 0x12, 0xbeef);
    w32(VA_T0 + 0x14, 0x11223344);
    b = r8(VA_T0 + 0x10); w = r16(VA_T0 + 0x12); d = r32(VA_T0 + 0x14);
    printf("0xffc00000: byte +0x10=0x%02x word +0x12=0x%04x dword +0x14=0x%08x\n", b, w, d);
    check_eq("t1_t0_rw", b == 0x5a && w == 0xbeef && d == 0x11223344, 1);
    printf("identity F_T0: +0x10=0x%08x +0x14=0x%08x\n", ID32(F_T0, 0x10), ID32(F_T0, 0x14));
    check_eq("t1_t0_identity_10", ID32(F_T0, 0x10), 0xbeef005a);
    check_eq("t1_t0_identity_14", ID32(F_T0, 0x14), 0x11223344);

    w8(VA_T1 + 0x21, 0xa5);
    w16(VA_T1 + 0x22, 0xc0de);
    w32(VA_T1 + 0x24, 0x55667788);
    b = r8(VA_T1 + 0x21); w = r16(VA_T1 + 0x22); d = r32(VA_T1 + 0x24);
    printf("0xffe01000: byte +0x21=0x%02x word +0x22=0x%04x dword +0x24=0x%08x\n", b, w, d);
    check_eq("t1_t1_rw", b == 0xa5 && w == 0xc0de && d == 0x55667788, 1);
    printf("identity F_T1: +0x20=0x%08x +0x24=0x%08x\n", ID32(F_T1, 0x20), ID32(F_T1, 0x24));
    check_eq("t1_t1_identity_20", ID32(F_T1, 0x20), 0xc0dea520);
    check_eq("t1_t1_identity_24", ID32(F_T1, 0x24), 0x55667788);

    /* The very end of the address space. */
    w32(0xfffffff8, 0x99aabbcc);
    w16(0xfffffffc, 0x1357);
    w8(0xfffffffe, 0x24);
    w8(0xffffffff, 0x68);
    d = r32(0xfffffff8); w = r16(0xfffffffc); b = r8(0xffffffff);
    v = r32(0xfffffffc);
    printf("0xfffff000: dword +0xff8=0x%08x word +0xffc=0x%04x byte +0xfff=0x%02x dword +0xffc=0x%08x\n",
           d, w, b, v);
    check_eq("t1_t2_rw", d == 0x99aabbcc && w == 0x1357 && b == 0x68 && v == 0x68241357, 1);
    printf("identity F_T2: +0xff8=0x%08x +0xffc=0x%08x +0xff4=0x%08x\n",
           ID32(F_T2, 0xff8), ID32(F_T2, 0xffc), ID32(F_T2, 0xff4));
    check_eq("t1_t2_identity", ID32(F_T2, 0xff8) == 0x99aabbcc && ID32(F_T2, 0xffc) == 0x68241357 &&
             ID32(F_T2, 0xff4) == 0x30000ff4, 1);

    /* Just below the region. */
    w32(VA_BELOW + 0xffc, 0xdeadbeef);
    w8(VA_BELOW + 0xff8, 0x42);
    d = r32(VA_BELOW + 0xffc); b = r8(VA_BELOW + 0xff8);
    printf("0xffbff000: dword +0xffc=0x%08x byte +0xff8=0x%02x; identity +0xffc=0x%08x +0xff8=0x%08x\n",
           d, b, ID32(F_BELOW, 0xffc), ID32(F_BELOW, 0xff8));
    check_eq("t1_below", d == 0xdeadbeef && b == 0x42 && ID32(F_BELOW, 0xffc) == 0xdeadbeef &&
             ID32(F_BELOW, 0xff8) == 0x40000f42, 1);

    /* Absolute forms: disp32 modrm, and the A0-A3 moffs encodings. */
    __asm__ volatile("movl $0x0a0b0c0d, 0xffe01030" : : : "memory");
    __asm__ volatile("movl %0, 0xffe01034" : : "a"(0xf1f2f3f4u) : "memory");     /* A3 */
    __asm__ volatile("movb %b0, 0xffe01038" : : "a"(0x77u) : "memory");          /* A2 */
    uint32_t m1, m2, m3;
    __asm__ volatile("movl 0xffe01030, %0" : "=a"(m1) : : "memory");             /* A1 */
    __asm__ volatile("movl 0xffe01034, %0" : "=r"(m2) : : "memory");             /* 8B modrm disp32 */
    __asm__ volatile("xorl %0, %0; movb 0xffe01038, %b0" : "=a"(m3) : : "memory"); /* A0 */
    printf("absolute: 0xffe01030=0x%08x 0xffe01034=0x%08x byte 0xffe01038=0x%02x; identity 0x%08x 0x%08x 0x%08x\n",
           m1, m2, m3, ID32(F_T1, 0x30), ID32(F_T1, 0x34), ID32(F_T1, 0x38));
    check_eq("t1_absolute", m1 == 0x0a0b0c0d && m2 == 0xf1f2f3f4 && m3 == 0x77 &&
             ID32(F_T1, 0x38) == 0x20000077, 1);
}

/* ------------------------------------------------------------ t2 */

static uint32_t saved_esp, stk_mid, stk_end;

static void print_flags(const char *name, uint32_t val, uint32_t fl, uint32_t want_val, uint32_t want_fl)
{
    printf("%s: result=0x%08x eflags&status=0x%03x\n", name, val, fl);
    check_eq(name, val == want_val && fl == want_fl, 1);
}

static void t2_rmw(void)
{
    print("--- t2: read-modify-write and other forms\n");
    reset();
    uint32_t a = VA_T1, fl, v;

    /* add: 0xf0000000 + 0x10000001 = 1, CF */
    w32(a + 0x40, 0xf0000000);
    __asm__ volatile("addl %2, (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(a + 0x40), "r"(0x10000001u) : "memory", "cc");
    print_flags("t2_addl", r32(a + 0x40), fl & FL_ARITH, 1, 0x001);

    /* inc: 0x7fffffff -> 0x80000000, OF SF AF PF, CF kept (stc) */
    w32(a + 0x44, 0x7fffffff);
    __asm__ volatile("stc\n\tincl (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(a + 0x44) : "memory", "cc");
    print_flags("t2_incl", r32(a + 0x44), fl & FL_ARITH, 0x80000000, 0x895);

    /* sub: 0 - 1 */
    w32(a + 0x48, 0);
    __asm__ volatile("subl $1, (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(a + 0x48) : "memory", "cc");
    print_flags("t2_subl", r32(a + 0x48), fl & FL_ARITH, 0xffffffff, 0x095);

    /* and (word), or (byte), cmp */
    w32(a + 0x4c, 0x1234abcd);
    __asm__ volatile("andw $0x0ff0, (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(a + 0x4c) : "memory", "cc");
    print_flags("t2_andw", r32(a + 0x4c), fl & FL_LOGIC, 0x12340bc0, 0x004);
    __asm__ volatile("orb $0x80, 3(%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(a + 0x4c) : "memory", "cc");
    print_flags("t2_orb", r32(a + 0x4c), fl & FL_LOGIC, 0x92340bc0, 0x080);
    __asm__ volatile("cmpl $0x92340bc0, (%1)\n\tpushfl\n\tpopl %0" : "=r"(fl) : "r"(a + 0x4c) : "memory", "cc");
    print_flags("t2_cmpl", r32(a + 0x4c), fl & FL_ARITH, 0x92340bc0, 0x044);

    /* xchg */
    w32(a + 0x50, 0x48484848);
    v = 0xa5a5a5a5;
    __asm__ volatile("xchgl %0, (%1)" : "+r"(v) : "r"(a + 0x50) : "memory");
    printf("t2 xchg: old=0x%08x mem=0x%08x identity=0x%08x\n", v, r32(a + 0x50), ID32(F_T1, 0x50));
    check_eq("t2_xchg", v == 0x48484848 && ID32(F_T1, 0x50) == 0xa5a5a5a5, 1);

    /* lock xadd */
    w32(a + 0x54, 1000);
    v = 234;
    __asm__ volatile("lock xaddl %0, (%1)" : "+r"(v) : "r"(a + 0x54) : "memory", "cc");
    printf("t2 xadd: old=%u mem=%u\n", v, r32(a + 0x54));
    check_eq("t2_xadd", v == 1000 && ID32(F_T1, 0x54) == 1234, 1);

    /* lock cmpxchg: success, then failure */
    w32(a + 0x58, 0x0000abcd);
    v = 0x0000abcd;
    __asm__ volatile("lock cmpxchgl %2, (%3)\n\tpushfl\n\tpopl %1"
                     : "+a"(v), "=r"(fl) : "r"(0x00001111u), "r"(a + 0x58) : "memory", "cc");
    printf("t2 cmpxchg (equal): eax=0x%08x zf=%u mem=0x%08x\n", v, (fl >> 6) & 1, r32(a + 0x58));
    check_eq("t2_cmpxchg_ok", v == 0xabcd && (fl & EFL_ZF) && ID32(F_T1, 0x58) == 0x1111, 1);
    v = 0x0000abcd;
    __asm__ volatile("lock cmpxchgl %2, (%3)\n\tpushfl\n\tpopl %1"
                     : "+a"(v), "=r"(fl) : "r"(0x00002222u), "r"(a + 0x58) : "memory", "cc");
    printf("t2 cmpxchg (differs): eax=0x%08x zf=%u mem=0x%08x\n", v, (fl >> 6) & 1, r32(a + 0x58));
    check_eq("t2_cmpxchg_fail", v == 0x1111 && !(fl & EFL_ZF) && ID32(F_T1, 0x58) == 0x1111, 1);

    /* lock cmpxchg8b: success, then failure */
    w32(a + 0x60, 0x89abcdef);
    w32(a + 0x64, 0x01234567);
    {
        uint32_t lo = 0x89abcdef, hi = 0x01234567, f8;
        __asm__ volatile("lock cmpxchg8b (%%esi)\n\tpushfl\n\tpopl %%edi"
                         : "+a"(lo), "+d"(hi), "=D"(f8)
                         : "b"(0x76543210u), "c"(0xfedcba98u), "S"(a + 0x60) : "memory", "cc");
        printf("t2 cmpxchg8b (equal): edx:eax=0x%08x:%08x zf=%u mem=0x%08x:%08x\n",
               hi, lo, (f8 >> 6) & 1, r32(a + 0x64), r32(a + 0x60));
        check_eq("t2_cmpxchg8b_ok", (f8 & EFL_ZF) && ID32(F_T1, 0x60) == 0x76543210 &&
                 ID32(F_T1, 0x64) == 0xfedcba98, 1);
        lo = 0; hi = 0;
        __asm__ volatile("lock cmpxchg8b (%%esi)\n\tpushfl\n\tpopl %%edi"
                         : "+a"(lo), "+d"(hi), "=D"(f8)
                         : "b"(0x11111111u), "c"(0x22222222u), "S"(a + 0x60) : "memory", "cc");
        printf("t2 cmpxchg8b (differs): edx:eax=0x%08x:%08x zf=%u mem=0x%08x:%08x\n",
               hi, lo, (f8 >> 6) & 1, r32(a + 0x64), r32(a + 0x60));
        check_eq("t2_cmpxchg8b_fail", !(f8 & EFL_ZF) && lo == 0x76543210 && hi == 0xfedcba98 &&
                 ID32(F_T1, 0x60) == 0x76543210, 1);
    }

    /* bts/btr: immediate, and a register bit offset reaching +8 */
    w32(a + 0x68, 0x00000001);
    w32(a + 0x6c, 0);
    w32(a + 0x70, 0xffffffff);
    {
        uint32_t c1, c2, c3;
        __asm__ volatile("btsl $5, (%1)\n\tsetc %b0" : "=q"(c1) : "r"(a + 0x68) : "memory", "cc");
        __asm__ volatile("btsl $5, (%1)\n\tsetc %b0" : "=q"(c2) : "r"(a + 0x68) : "memory", "cc");
        __asm__ volatile("btsl $31, (%1)\n\tsetc %b0" : "=q"(c3) : "r"(a + 0x68) : "memory", "cc");
        v = r32(a + 0x68);
        printf("t2 bts: cf=%u,%u,%u mem=0x%08x\n", c1 & 1, c2 & 1, c3 & 1, v);
        check_eq("t2_bts_imm", (c1 & 1) == 0 && (c2 & 1) == 1 && (c3 & 1) == 0 && v == 0x80000021, 1);
        __asm__ volatile("btrl %2, (%1)\n\tsetc %b0" : "=q"(c1) : "r"(a + 0x68), "r"(0x45u) : "memory", "cc");
        __asm__ volatile("btsl %2, (%1)\n\tsetc %b0" : "=q"(c2) : "r"(a + 0x68), "r"(0x21u) : "memory", "cc");
        printf("t2 btr/bts reg: cf=%u,%u +0x70=0x%08x +0x6c=0x%08x\n", c1 & 1, c2 & 1,
               ID32(F_T1, 0x70), ID32(F_T1, 0x6c));
        check_eq("t2_bt_reg", (c1 & 1) == 1 && (c2 & 1) == 0 && ID32(F_T1, 0x70) == 0xffffffdf &&
                 ID32(F_T1, 0x6c) == 0x00000002, 1);
    }

    /* movzx / movsx */
    w32(a + 0x74, 0x8001f0e1);
    {
        uint32_t z8, z16, s8, s16;
        __asm__ volatile("movzbl (%1), %0" : "=r"(z8) : "r"(a + 0x74) : "memory");
        __asm__ volatile("movzwl 2(%1), %0" : "=r"(z16) : "r"(a + 0x74) : "memory");
        __asm__ volatile("movsbl 1(%1), %0" : "=r"(s8) : "r"(a + 0x74) : "memory");
        __asm__ volatile("movswl 2(%1), %0" : "=r"(s16) : "r"(a + 0x74) : "memory");
        printf("t2 movzx/movsx: zb=0x%08x zw=0x%08x sb=0x%08x sw=0x%08x\n", z8, z16, s8, s16);
        check_eq("t2_movx", z8 == 0xe1 && z16 == 0x8001 && s8 == 0xfffffff0 && s16 == 0xffff8001, 1);
    }

    /* push/pop of a memory operand (stack low, operand in the region) */
    w32(a + 0x78, 0x13572468);
    __asm__ volatile("pushl (%0)\n\tpopl 4(%0)" : : "r"(a + 0x78) : "memory");
    printf("t2 pushl/popl mem: +0x7c=0x%08x\n", ID32(F_T1, 0x7c));
    check_eq("t2_push_pop_mem", ID32(F_T1, 0x7c), 0x13572468);

    /* rep movsl low -> region, rep movsb region -> low, rep stosl */
    {
        static uint32_t src[16], dst[16];
        uint32_t sum = 0, bad = 0;
        for (int i = 0; i < 16; i++) {
            src[i] = 0x51000000u + (uint32_t)i * 0x01010101u;
            dst[i] = 0;
        }
        uint32_t d0 = a + 0x100, s0 = (uint32_t)src, c0 = 16;
        __asm__ volatile("cld\n\trep movsl" : "+D"(d0), "+S"(s0), "+c"(c0) : : "memory");
        printf("t2 rep movsl: edi=0x%08x ecx=%u region[0]=0x%08x region[15]=0x%08x\n",
               d0, c0, r32(a + 0x100), r32(a + 0x13c));
        for (int i = 0; i < 16; i++)
            if (ID32(F_T1, 0x100 + i * 4) != src[i])
                bad++;
        check_eq("t2_rep_movsl", bad == 0 && d0 == a + 0x140 && c0 == 0, 1);
        d0 = (uint32_t)dst; s0 = a + 0x100; c0 = 64;
        __asm__ volatile("cld\n\trep movsb" : "+D"(d0), "+S"(s0), "+c"(c0) : : "memory");
        bad = 0;
        for (int i = 0; i < 16; i++) {
            sum = sum * 31 + dst[i];
            if (dst[i] != src[i])
                bad++;
        }
        printf("t2 rep movsb back: esi=0x%08x ecx=%u sum=0x%08x mismatches=%u\n", s0, c0, sum, bad);
        check_eq("t2_rep_movsb", bad == 0 && s0 == a + 0x140 && c0 == 0, 1);

        d0 = a + 0x200; c0 = 8;
        __asm__ volatile("cld\n\trep stosl" : "+D"(d0), "+c"(c0) : "a"(0xc0ffee00u) : "memory");
        bad = 0;
        for (int i = 0; i < 8; i++)
            if (ID32(F_T1, 0x200 + i * 4) != 0xc0ffee00u)
                bad++;
        printf("t2 rep stosl: edi=0x%08x +0x21c=0x%08x +0x220=0x%08x mismatches=%u\n",
               d0, ID32(F_T1, 0x21c), ID32(F_T1, 0x220), bad);
        check_eq("t2_rep_stosl", bad == 0 && d0 == a + 0x220 && ID32(F_T1, 0x220) == 0x20000220, 1);
    }

    /* A stack in the region: ESP = 0xfffffff0, interrupts off. */
    {
        uint32_t p1 = 0, p2, p3, pf;
        __asm__ volatile("pushfl\n\t"
                         "cli\n\t"
                         "movl %%esp, %[sv]\n\t"
                         "movl $0xfffffff0, %%esp\n\t"
                         "pushl $0x11112222\n\t"
                         "pushl %%ebx\n\t"
                         "pushw $0x5566\n\t"
                         "pushfl\n\t"
                         "movl %%esp, %[mid]\n\t"
                         "popl %%edi\n\t"
                         "popw %%cx\n\t"
                         "popl %%edx\n\t"
                         "popl %%esi\n\t"
                         "movl %%esp, %[end]\n\t"
                         "movl %[sv], %%esp\n\t"
                         "popfl"
                         : "=D"(pf), "+c"(p1), "=d"(p2), "=S"(p3),
                           [sv] "=m"(saved_esp), [mid] "=m"(stk_mid), [end] "=m"(stk_end)
                         : "b"(0x33334444u)
                         : "memory");
        printf("t2 region stack: esp mid=0x%08x end=0x%08x popped eflags&~status=0x%08x word=0x%04x 0x%08x 0x%08x\n",
               stk_mid, stk_end, pf & ~FL_ARITH, p1 & 0xffff, p2, p3);
        printf("t2 region stack (identity F_T2): +0xfe4=0x%08x +0xfe8=0x%08x +0xfec=0x%08x +0xff0=0x%08x\n",
               ID32(F_T2, 0xfe4), ID32(F_T2, 0xfe8), ID32(F_T2, 0xfec), ID32(F_T2, 0xff0));
        check_eq("t2_stack_esp", stk_mid == 0xffffffe2 && stk_end == 0xfffffff0, 1);
        check_eq("t2_stack_values", (p1 & 0xffff) == 0x5566 && p2 == 0x33334444 && p3 == 0x11112222, 1);
        check_eq("t2_stack_eflags", pf & ~FL_ARITH, EFL_1);
        check_eq("t2_stack_identity", ID32(F_T2, 0xfec) == 0x11112222 && ID32(F_T2, 0xfe8) == 0x33334444 &&
                 (ID32(F_T2, 0xfe4) >> 16) == 0x5566, 1);
    }
}

/* ------------------------------------------------------------ t3 */

static void t3_straddle(void)
{
    print("--- t3: accesses straddling 0xffc00000\n");
    reset();
    uint32_t v;
    ID32(F_BELOW, 0xffc) = 0x11111111;
    ID32(F_T0, 0) = 0x22222222;

    __asm__ volatile("movl %0, 0xffbffffe" : : "r"(0xa1b2c3d4u) : "memory");
    v = r32(0xffbffffe);
    printf("t3 dword at 0xffbffffe: read=0x%08x below+0xffc=0x%08x top+0=0x%08x (via maps 0x%08x 0x%08x)\n",
           v, ID32(F_BELOW, 0xffc), ID32(F_T0, 0), r32(VA_BELOW + 0xffc), r32(VA_T0));
    check_eq("t3_straddle_dword", v == 0xa1b2c3d4 && ID32(F_BELOW, 0xffc) == 0xc3d41111 &&
             ID32(F_T0, 0) == 0x2222a1b2 && r32(VA_BELOW + 0xffc) == 0xc3d41111 &&
             r32(VA_T0) == 0x2222a1b2, 1);

    __asm__ volatile("incl 0xffbffffe" : : : "memory", "cc");
    v = r32(0xffbffffe);
    printf("t3 incl at 0xffbffffe: 0x%08x\n", v);
    check_eq("t3_straddle_incl", v, 0xa1b2c3d5);

    __asm__ volatile("movw %w0, 0xffbfffff" : : "r"(0x9876u) : "memory");
    v = r16(0xffbfffff);
    printf("t3 word at 0xffbfffff: read=0x%04x below+0xffc=0x%08x top+0=0x%08x\n",
           v, ID32(F_BELOW, 0xffc), ID32(F_T0, 0));
    check_eq("t3_straddle_word", v == 0x9876 && ID32(F_BELOW, 0xffc) == 0x76d51111 &&
             ID32(F_T0, 0) == 0x2222a198, 1);

    {
        static uint8_t buf[32];
        uint32_t d0 = (uint32_t)buf, s0 = 0xffbffff0, c0 = 32, bad = 0;
        __asm__ volatile("cld\n\trep movsb" : "+D"(d0), "+S"(s0), "+c"(c0) : : "memory");
        for (int i = 0; i < 32; i++)
            if (buf[i] != (i < 16 ? ID8(F_BELOW, 0xff0 + i) : ID8(F_T0, i - 16)))
                bad++;
        printf("t3 rep movsb from 0xffbffff0: esi=0x%08x buf[12..19]=%02x %02x %02x %02x %02x %02x %02x %02x mismatches=%u\n",
               s0, buf[12], buf[13], buf[14], buf[15], buf[16], buf[17], buf[18], buf[19], bad);
        check_eq("t3_rep_movsb_across", bad == 0 && s0 == 0xffc00010 && c0 == 0, 1);
    }
}

/* ------------------------------------------------------------ t4 */

static void ad_clear(uint32_t va)
{
    *pg_pde(pd, va) &= ~(PG_A | PG_D);
    *pte_of(va) &= ~(PG_A | PG_D);
    invlpg(va);
}

static void ad_check(const char *name, uint32_t va, uint32_t pde_ad, uint32_t pte_ad)
{
    show_pte(name, va);
    check_eq(name, (*pg_pde(pd, va) & (PG_A | PG_D)) == pde_ad && (*pte_of(va) & (PG_A | PG_D)) == pte_ad, 1);
}

static void t4_accessed_dirty(void)
{
    print("--- t4: accessed and dirty bits of top PTEs\n");
    reset();
    uint32_t v;

    ad_clear(VA_T1);
    ad_check("t4_t1_cleared", VA_T1, 0, 0);
    v = r32(VA_T1 + 0x80);
    printf("t4 read 0xffe01080: 0x%08x\n", v);
    ad_check("t4_t1_after_read", VA_T1, PG_A, PG_A);
    w32(VA_T1 + 0x84, 0x0d0d0d0d);
    ad_check("t4_t1_after_write", VA_T1, PG_A, PG_A | PG_D);

    ad_clear(VA_T2);
    w32(VA_T2 + 0x10, 0x0e0e0e0e);
    ad_check("t4_t2_write_first", VA_T2, PG_A, PG_A | PG_D);

    ad_clear(VA_T0);
    __asm__ volatile("incl (%0)" : : "r"(VA_T0 + 0x20) : "memory", "cc");
    ad_check("t4_t0_after_incl", VA_T0, PG_A, PG_A | PG_D);

    ad_clear(VA_BELOW);
    v = r32(VA_BELOW + 0x30);
    ad_check("t4_below_after_read", VA_BELOW, PG_A, PG_A);

    ad_clear(VA_CODE);
    v = ((fn0_t)VA_CODE)();
    printf("t4 call 0xfff00000: 0x%08x\n", v);
    ad_check("t4_code_after_fetch", VA_CODE, PG_A, PG_A);

    /* The PTE for 0xffe01000 cleared again, without a flush: whether
     * the TLB still holds it is not architectural; not tested. */
    printf("t4 final pde[1023]=0x%08x\n", pd[1023]);
}

/* ------------------------------------------------------------ t5 */

static void t5_faults(void)
{
    print("--- t5: page faults in the region\n");
    reset();

    probe_read(VA_NP + 0x10);
    check_fault("t5_read_not_present", VEC_PF, 0, fault_site, VA_NP + 0x10);
    probe_write(VA_NP + 0x14);
    check_fault("t5_write_not_present", VEC_PF, 2, fault_site, VA_NP + 0x14);
    k_jump(VA_NP + 0x100);
    check_fault("t5_fetch_not_present", VEC_PF, 0, VA_NP + 0x100, VA_NP + 0x100);

    uint32_t v = r32(VA_RO + 0x18);
    printf("t5 read of read-only page: 0x%08x\n", v);
    check_eq("t5_read_ro", v, 0x50000018);
    printf("t5 cr0.wp=%u\n", (read_cr0() >> 16) & 1);
    probe_write(VA_RO + 0x1c);
    check_fault("t5_write_ro_wp1", VEC_PF, 3, fault_site, VA_RO + 0x1c);
    printf("t5 ro frame +0x1c after faulting write: 0x%08x\n", ID32(F_RO, 0x1c));
    check_eq("t5_write_ro_unchanged", ID32(F_RO, 0x1c), 0x5000001c);
    show_pte("t5 ro pte after faulting write", VA_RO);

    write_cr0(read_cr0() & ~CR0_WP);
    w32(VA_RO + 0x20, 0x70707070);
    printf("t5 wp=0 write to read-only page: frame +0x20=0x%08x\n", ID32(F_RO, 0x20));
    check_eq("t5_write_ro_wp0", ID32(F_RO, 0x20), 0x70707070);
    show_pte("t5 ro pte after wp=0 write", VA_RO);
    check_eq("t5_write_ro_wp0_dirty", *pte_of(VA_RO) & (PG_A | PG_D | PG_W), PG_A | PG_D);
    write_cr0(read_cr0() | CR0_WP);

    /* A dword write at 0xffc00ffe: 0xffc01000 is not present. */
    ID32(F_T0, 0xffc) = 0x33333333;
    __asm__ volatile(FAULT_ARM "1: movl $0xabcdef01, 0xffc00ffe\n2:" : : : "memory");
    check_fault("t5_straddle_into_not_present", VEC_PF, 2, fault_site, 0xffc01000);
    printf("t5 F_T0+0xffc after the faulting straddling write: 0x%08x\n", ID32(F_T0, 0xffc));
    check_eq("t5_straddle_no_partial_write", ID32(F_T0, 0xffc), 0x33333333);

    /* rep movsb from a low buffer to 0xffc00ff0, 32 bytes: faults after 16. */
    {
        static uint8_t src[32];
        for (int i = 0; i < 32; i++)
            src[i] = (uint8_t)(0xa0 + i);
        uint32_t d0 = 0xffc00ff0, s0 = (uint32_t)src, c0 = 32;
        __asm__ volatile("cld\n\t" FAULT_ARM "1: rep movsb\n2:" : "+D"(d0), "+S"(s0), "+c"(c0) : : "memory");
        check_fault("t5_rep_movsb_fault", VEC_PF, 2, fault_site, 0xffc01000);
        printf("t5 rep movsb at fault: ecx=%u edi=0x%08x esi-src=%u F_T0+0xff0=0x%08x +0xffc=0x%08x\n",
               c0, d0, s0 - (uint32_t)src, ID32(F_T0, 0xff0), ID32(F_T0, 0xffc));
        check_eq("t5_rep_movsb_regs", c0 == 16 && d0 == 0xffc01000 && s0 - (uint32_t)src == 16 &&
                 ID32(F_T0, 0xff0) == 0xa3a2a1a0 && ID32(F_T0, 0xffc) == 0xafaeadac, 1);
    }
}

/* ------------------------------------------------------------ t6 */

static volatile uint32_t rep_ebx, rep_ecx, rep_edx, rep_esp, rep_cs, rep_count;

static int topmap_syscall(struct trapframe *f)
{
    if (f->eax == SYS_REPORT) {
        rep_ebx = f->ebx;
        rep_ecx = f->ecx;
        rep_edx = f->edx;
        rep_esp = tf_from_user(f) ? f->esp : 0;
        rep_cs = f->cs;
        rep_count++;
        f->eax = f->ebx ^ 0xffff0000u;
        return 1;
    }
    if (f->eax == SYS_ESP0) {
        /* The frame we are on was pushed at the old esp0; the next trap
         * from ring 3 uses the new one. */
        tss.esp0 = f->ebx ? f->ebx : (uint32_t)kstack_top;
        f->eax = 0;
        return 1;
    }
    return 0;
}

static uint32_t u_top_rw(uint32_t arg)
{
    volatile uint32_t *p = (volatile uint32_t *)(VA_USER + 0x10);
    volatile uint8_t *b = (volatile uint8_t *)(VA_USER + 0x14);
    p[0] = arg;
    __asm__ volatile("incl (%0)" : : "r"(VA_USER + 0x10) : "memory", "cc");
    *b = 0x77;
    uint32_t v = p[0], bv = *b;
    uint32_t r = syscall3(SYS_REPORT, v, bv, p[1]);
    return r;
}

static uint32_t u_stack_top(uint32_t arg)
{
    uint32_t r, t1, t2, t3;
    __asm__ volatile("movl %%esp, %%edi\n\t"
                     "movl $0xfffdfff0, %%esp\n\t"
                     "pushl %[arg]\n\t"
                     "pushl $0x12340000\n\t"
                     "movl (%%esp), %%ebx\n\t"
                     "movl 4(%%esp), %%ecx\n\t"
                     "movl %%esp, %%edx\n\t"
                     "movl $16, %%eax\n\t"
                     "int $0x80\n\t"
                     "popl %%ecx\n\t"
                     "popl %%edx\n\t"
                     "movl %%esp, %%ebx\n\t"
                     "movl %%edi, %%esp"
                     : "=a"(r), "=&b"(t1), "=&c"(t2), "=&d"(t3)
                     : [arg] "S"(arg)
                     : "edi", "memory", "cc");
    /* r = 0x12340000 ^ 0xffff0000; t2 = 0x12340000, t3 = arg, t1 = 0xfffdfff0 */
    return r == 0xedcb0000u && t2 == 0x12340000u && t3 == arg && t1 == 0xfffdfff0u;
}

static void t6_ring3(void)
{
    print("--- t6: ring 3 and a user page in the region\n");
    reset();
    uint32_t v;

    rep_count = 0;
    v = run_user(u_top_rw, 0x0000abc0, EFL_IF);
    printf("t6 user rw: returned 0x%08x report ebx=0x%08x ecx=0x%02x edx=0x%08x cs=0x%04x; identity +0x10=0x%08x +0x14=0x%08x\n",
           v, rep_ebx, rep_ecx, rep_edx, rep_cs, ID32(F_USER, 0x10), ID32(F_USER, 0x14));
    check_eq("t6_user_rw", v == 0xffffabc1 && rep_ebx == 0xabc1 && rep_ecx == 0x77 && rep_edx == 0x60000077 &&
             rep_cs == SEG_UCODE && ID32(F_USER, 0x14) == 0x60000077, 1);
    show_pte("t6 user page pte", VA_USER);

    v = run_user((fn1_t)(VA_USER + 0x800), 0x0f0f0f0f, EFL_IF);
    printf("t6 user call into 0xfffdf800: 0x%08x\n", v);
    check_eq("t6_user_exec_region", v, 0x0f0f0f0f ^ 0x5a5a5a5a);

    v = run_user(u_stack_top, 0x00c0ffee, EFL_IF);
    printf("t6 user stack at 0xfffdfff0: ok=%u syscall esp=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x; identity +0xfe8=0x%08x +0xfec=0x%08x\n",
           v, rep_esp, rep_ebx, rep_ecx, rep_edx, ID32(F_USER, 0xfe8), ID32(F_USER, 0xfec));
    check_eq("t6_user_stack_region", v == 1 && rep_esp == 0xfffdffe8 && rep_edx == 0xfffdffe8 &&
             rep_ecx == 0x00c0ffee && ID32(F_USER, 0xfe8) == 0x12340000, 1);

    run_user(probe_user_read, VA_T0 + 0x20, EFL_IF);
    check_fault("t6_user_read_supervisor", VEC_PF, 5, fault_site, VA_T0 + 0x20);
    run_user(probe_user_write, VA_T1 + 0x24, EFL_IF);
    check_fault("t6_user_write_supervisor", VEC_PF, 7, fault_site, VA_T1 + 0x24);
    run_user(probe_user_write, VA_RO + 0x28, EFL_IF);
    check_fault("t6_user_write_supervisor_ro", VEC_PF, 7, fault_site, VA_RO + 0x28);
    run_user(probe_user_read, VA_NP + 0x2c, EFL_IF);
    check_fault("t6_user_read_not_present", VEC_PF, 4, fault_site, VA_NP + 0x2c);
    printf("t6 frames unchanged: T1+0x24=0x%08x RO+0x28=0x%08x\n", ID32(F_T1, 0x24), ID32(F_RO, 0x28));
    check_eq("t6_frames_unchanged", ID32(F_T1, 0x24) == 0x20000024 && ID32(F_RO, 0x28) == 0x50000028, 1);

    fault_arm(FAULT_RESUME_KERNEL);
    v = enter_user(VA_CODE, (uint32_t)ustack_top - 16, EFL_IF);
    if (v != USER_FAULTED)
        printf("t6 user exec of supervisor page returned 0x%08x\n", v);
    check_fault("t6_user_exec_supervisor", VEC_PF, 5, VA_CODE, VA_CODE);
}

/* ------------------------------------------------------------ t7 */

static void t7_code(void)
{
    print("--- t7: code in the region\n");
    reset();
    uint32_t v;

    v = ((fn0_t)VA_CODE)();
    printf("t7 call 0xfff00000: 0x%08x\n", v);
    check_eq("t7_call", v, 0x1234);

    ID32(F_CODE, 1) = 0x5678;           /* the immediate, through the identity map */
    v = ((fn0_t)VA_CODE)();
    printf("t7 patched through identity, call: 0x%08x\n", v);
    check_eq("t7_patch_identity", v, 0x5678);

    w32(VA_CODEW + 1, 0x9abc);          /* through the writable alias in the region */
    v = ((fn0_t)VA_CODE)();
    printf("t7 patched through 0xfff01001, call: 0x%08x\n", v);
    check_eq("t7_patch_region_alias", v, 0x9abc);

    v = ((fn1_t)(VA_CODE + 0x10))(10);
    printf("t7 loop at 0xfff00010, n=10: %u\n", v);
    check_eq("t7_loop", v, 55);
    v = ((fn1_t)(VA_CODE + 0x10))(100);
    printf("t7 loop at 0xfff00010, n=100: %u\n", v);
    check_eq("t7_loop100", v, 5050);

    /* mov $0x12345678,%eax; ret at 0xffbffffd: three bytes below the
     * region, three in it. */
    ID8(F_BELOW, 0xffd) = 0xb8;
    ID8(F_BELOW, 0xffe) = 0x78;
    ID8(F_BELOW, 0xfff) = 0x56;
    ID8(F_T0, 0) = 0x34;
    ID8(F_T0, 1) = 0x12;
    ID8(F_T0, 2) = 0xc3;
    v = ((fn0_t)(VA_BELOW + 0xffd))();
    printf("t7 call 0xffbffffd (straddling): 0x%08x\n", v);
    check_eq("t7_straddling_insn", v, 0x12345678);
}

/* ------------------------------------------------------------ t8 */

static void t8_pagetable(void)
{
    print("--- t8: the top page table mapped in the region\n");
    reset();
    volatile uint32_t *ptv = (volatile uint32_t *)VA_PT;
    volatile uint32_t *pdv = (volatile uint32_t *)VA_PD;
    uint32_t v, w;

    v = ptv[pte_idx(VA_T0)];
    w = ptv[pte_idx(VA_USER)];
    printf("t8 via 0xfffe0000: pte(0xffc00000)=0x%08x pte(0xfffdf000)=0x%08x; identity 0x%08x 0x%08x\n",
           v, w, pt_top[pte_idx(VA_T0)], pt_top[pte_idx(VA_USER)]);
    check_eq("t8_read_pte", v == (FRAME(F_T0) | PG_P | PG_W) && w == pt_top[pte_idx(VA_USER)], 1);
    v = pdv[1023];
    w = pdv[1022];
    printf("t8 via 0xfffe1000: pde[1023]=0x%08x pde[1022]=0x%08x\n", v, w);
    check_eq("t8_read_pde", v == pd[1023] && w == pd[1022], 1);

    v = r32(VA_RT + 0x40);
    ptv[pte_idx(VA_RT)] = FRAME(F_B) | PG_P | PG_W;
    invlpg(VA_RT);
    w = r32(VA_RT + 0x40);
    printf("t8 retarget 0xfffd0000 A->B through the region: before=0x%08x after=0x%08x identity pte=0x%08x\n",
           v, w, pt_top[pte_idx(VA_RT)]);
    check_eq("t8_retarget", v == 0x80000040 && w == 0x90000040 &&
             (pt_top[pte_idx(VA_RT)] & ~(PG_A | PG_D)) == (FRAME(F_B) | PG_P | PG_W), 1);

    /* Clear it with xchg (as Linux's ptep_get_and_clear). */
    uint32_t old = 0;
    __asm__ volatile("xchgl %0, (%1)" : "+r"(old) : "r"(VA_PT + pte_idx(VA_RT) * 4) : "memory");
    invlpg(VA_RT);
    printf("t8 xchg cleared pte(0xfffd0000): old=0x%08x now=0x%08x\n", old, pt_top[pte_idx(VA_RT)]);
    check_eq("t8_xchg_old", old, FRAME(F_B) | PG_P | PG_W | PG_A);
    probe_read(VA_RT + 0x44);
    check_fault("t8_cleared_read", VEC_PF, 0, fault_site, VA_RT + 0x44);
    ptv[pte_idx(VA_RT)] = FRAME(F_A) | PG_P | PG_W;
    invlpg(VA_RT);
    v = r32(VA_RT + 0x44);
    printf("t8 restored through the region: 0x%08x\n", v);
    check_eq("t8_restored", v, 0x80000044);

    /* orl/andl on the read-only page's PTE through the region. */
    __asm__ volatile("orl $2, (%0)" : : "r"(VA_PT + pte_idx(VA_RO) * 4) : "memory", "cc");
    invlpg(VA_RO);
    w32(VA_RO + 0x30, 0x31313131);
    printf("t8 made writable with orl: write landed 0x%08x pte=0x%08x\n", ID32(F_RO, 0x30), pt_top[pte_idx(VA_RO)]);
    check_eq("t8_orl_writable", ID32(F_RO, 0x30), 0x31313131);
    __asm__ volatile("andl $~2, (%0)" : : "r"(VA_PT + pte_idx(VA_RO) * 4) : "memory", "cc");
    invlpg(VA_RO);
    probe_write(VA_RO + 0x34);
    check_fault("t8_andl_readonly", VEC_PF, 3, fault_site, VA_RO + 0x34);

    /* The PTE that maps the page table itself: read and written through it. */
    v = ptv[pte_idx(VA_PT)];
    printf("t8 pte(0xfffe0000) read through itself: 0x%08x\n", v);
    check_eq("t8_self_pte", v, (uint32_t)pt_top | PG_P | PG_W | PG_A | PG_D);
    printf("t8 pte(0xfffe1000)=0x%08x pde[1023]=0x%08x\n", pt_top[pte_idx(VA_PD)], pd[1023]);
    check_eq("t8_pd_pte", pt_top[pte_idx(VA_PD)], (uint32_t)pd | PG_P | PG_W | PG_A);
}

/* ------------------------------------------------------------ t9 */

static void t9_two_pages(void)
{
    print("--- t9: one instruction, two region pages\n");
    reset();
    uint32_t d0, s0, c0, bad = 0;

    d0 = VA_T1 + 0x300; s0 = VA_T0 + 0x100; c0 = 16;
    __asm__ volatile("cld\n\trep movsl" : "+D"(d0), "+S"(s0), "+c"(c0) : : "memory");
    for (int i = 0; i < 16; i++)
        if (ID32(F_T1, 0x300 + i * 4) != ID32(F_T0, 0x100 + i * 4))
            bad++;
    printf("t9 rep movsl 0xffc00100 -> 0xffe01300: edi=0x%08x esi=0x%08x ecx=%u +0x300=0x%08x +0x33c=0x%08x mismatches=%u\n",
           d0, s0, c0, ID32(F_T1, 0x300), ID32(F_T1, 0x33c), bad);
    check_eq("t9_rep_movsl", bad == 0 && c0 == 0 && d0 == VA_T1 + 0x340 && ID32(F_T1, 0x300) == 0x10000100, 1);

    d0 = VA_T0 + 0x200; s0 = VA_T2 + 0x10;
    __asm__ volatile("cld\n\tmovsl" : "+D"(d0), "+S"(s0) : : "memory");
    printf("t9 movsl 0xfffff010 -> 0xffc00200: 0x%08x\n", ID32(F_T0, 0x200));
    check_eq("t9_movsl", ID32(F_T0, 0x200), 0x30000010);

    uint32_t fl;
    d0 = VA_T0 + 0x200; s0 = VA_T2 + 0x10;
    __asm__ volatile("cld\n\tcmpsl\n\tpushfl\n\tpopl %2" : "+D"(d0), "+S"(s0), "=r"(fl) : : "memory", "cc");
    printf("t9 cmpsl equal: zf=%u\n", (fl >> 6) & 1);
    check_eq("t9_cmpsl", fl & FL_ARITH, EFL_ZF | EFL_PF);

    /* pushl/popl of a region operand with the stack in the region. */
    uint32_t endesp;
    __asm__ volatile("pushfl\n\t"
                     "cli\n\t"
                     "movl %%esp, %[sv]\n\t"
                     "movl $0xfffffff0, %%esp\n\t"
                     "pushl 0xffe01060\n\t"
                     "popl 0xffc00300\n\t"
                     "movl %%esp, %[end]\n\t"
                     "movl %[sv], %%esp\n\t"
                     "popfl"
                     : [sv] "=m"(saved_esp), [end] "=m"(stk_end) : : "memory");
    endesp = stk_end;
    printf("t9 pushl 0xffe01060 / popl 0xffc00300 on the region stack: +0x300=0x%08x stack slot=0x%08x esp=0x%08x\n",
           ID32(F_T0, 0x300), ID32(F_T2, 0xfec), endesp);
    check_eq("t9_push_pop_region", ID32(F_T0, 0x300) == 0x20000060 && ID32(F_T2, 0xfec) == 0x20000060 &&
             endesp == 0xfffffff0, 1);
}

/* ------------------------------------------------------------ t10 */

volatile uint32_t i81_eip, i81_cs, i81_efl, i81_esp;
void topmap_int81(void);
__asm__(".text\n"
        ".globl topmap_int81\n"
        "topmap_int81:\n\t"
        "movl %eax, i81_save\n\t"
        "movl (%esp), %eax\n\t"
        "movl %eax, i81_eip\n\t"
        "movl 4(%esp), %eax\n\t"
        "movl %eax, i81_cs\n\t"
        "movl 8(%esp), %eax\n\t"
        "movl %eax, i81_efl\n\t"
        "movl %esp, i81_esp\n\t"
        "movl i81_save, %eax\n\t"
        "iret\n"
        ".data\n"
        "i81_save: .long 0\n"
        ".text\n");

static uint32_t u_syscall_esp0(uint32_t arg)
{
    syscall3(SYS_ESP0, 0xffffff00u, 0, 0);
    uint32_t r = syscall3(SYS_REPORT, arg, 0x5a, 0xa5);
    syscall3(SYS_ESP0, 0, 0, 0);
    return r;
}

static void t10_frames(void)
{
    print("--- t10: exception and interrupt frames on a stack in the region\n");
    reset();
    idt_set_gate(0x81, (uint32_t)topmap_int81, SEG_KCODE, GATE_INTR32, 0);

    uint32_t ret_eip;
    __asm__ volatile("pushfl\n\t"
                     "cli\n\t"
                     "movl %%esp, %[sv]\n\t"
                     "movl $0xfffffff0, %%esp\n\t"
                     "int $0x81\n\t"
                     "1: movl %%esp, %[end]\n\t"
                     "movl %[sv], %%esp\n\t"
                     "popfl\n\t"
                     "movl $1b, %0"
                     : "=r"(ret_eip), [sv] "=m"(saved_esp), [end] "=m"(stk_end) : : "memory");
    printf("t10 int $0x81 at esp 0xfffffff0: frame esp=0x%08x cs=0x%04x eflags&~status=0x%08x eip ok=%u; after iret esp=0x%08x\n",
           i81_esp, i81_cs & 0xffff, i81_efl & ~FL_ARITH, i81_eip == ret_eip, stk_end);
    printf("t10 frame through identity F_T2: cs +0xfe8=0x%04x eflags&~status +0xfec=0x%08x eip ok=%u\n",
           ID32(F_T2, 0xfe8) & 0xffff, ID32(F_T2, 0xfec) & ~FL_ARITH, ID32(F_T2, 0xfe4) == ret_eip);
    check_eq("t10_int81_frame", i81_esp == 0xffffffe4 && (i81_cs & 0xffff) == SEG_KCODE &&
             (i81_efl & ~FL_ARITH) == EFL_1 && i81_eip == ret_eip && stk_end == 0xfffffff0 &&
             ID32(F_T2, 0xfe4) == ret_eip, 1);

    /* #UD with ESP in the region: the library's handler runs on that stack. */
    __asm__ volatile("pushfl\n\t"
                     "cli\n\t"
                     "movl %%esp, %[sv]\n\t"
                     "movl $0xfffffff0, %%esp\n\t"
                     FAULT_ARM
                     "1: ud2\n"
                     "2: movl %%esp, %[end]\n\t"
                     "movl %[sv], %%esp\n\t"
                     "popfl"
                     : [sv] "=m"(saved_esp), [end] "=m"(stk_end) : : "memory");
    check_fault("t10_ud_on_region_stack", VEC_UD, 0, fault_site, 0);
    printf("t10 #UD: handler saw esp=0x%08x ss=0x%04x; esp after=0x%08x\n", last_fault.esp, last_fault.ss, stk_end);
    check_eq("t10_ud_esp", last_fault.esp == 0xfffffff0 && stk_end == 0xfffffff0, 1);

    /* Ring 3 -> ring 0 with TSS.esp0 = 0xffffff00. */
    rep_count = 0;
    uint32_t v = run_user(u_syscall_esp0, 0x5eed, EFL_IF);
    printf("t10 syscall with esp0 in the region: returned 0x%08x ebx=0x%08x ecx=0x%02x edx=0x%02x count=%u\n",
           v, rep_ebx, rep_ecx, rep_edx, rep_count);
    printf("t10 ring-3 frame through identity F_T2: ss=0x%04x esp=0x%08x eflags&~status=0x%08x cs=0x%04x\n",
           ID32(F_T2, 0xefc) & 0xffff, ID32(F_T2, 0xef8), ID32(F_T2, 0xef4) & ~FL_ARITH,
           ID32(F_T2, 0xef0) & 0xffff);
    check_eq("t10_syscall_esp0_region", v == 0xffff5eed && rep_ebx == 0x5eed && rep_count == 1 &&
             (ID32(F_T2, 0xefc) & 0xffff) == SEG_UDATA && (ID32(F_T2, 0xef0) & 0xffff) == SEG_UCODE &&
             (ID32(F_T2, 0xef4) & ~FL_ARITH) == (EFL_1 | EFL_IF), 1);
    printf("t10 tss.esp0 restored: %u\n", tss.esp0 == (uint32_t)kstack_top);
}

/* ------------------------------------------------------------ t11 */

static void t11_segment_base(void)
{
    print("--- t11: a data segment based at 0xffc00000\n");
    reset();
    /* A segment based at 0xffc00000: %gs:0x40 is linear 0xffc00040. */
    gdt_set(GDT_FIRST_SPARE, 0xffc00000u, 0xfffff, ACC_KDATA, FLG_32);
    uint32_t g1, g2;
    __asm__ volatile("movw %w2, %%gs\n\t"
                     "movl $0x6a6b6c6d, %%gs:0x40\n\t"
                     "movl %%gs:0x40, %0\n\t"
                     "movl %%gs:0x201004, %1\n\t"
                     "movw %w3, %%gs"
                     : "=&r"(g1), "=&r"(g2)
                     : "r"((uint32_t)SEL(GDT_FIRST_SPARE, 0)), "r"((uint32_t)SEG_KDATA)
                     : "memory");
    printf("t11 gs base 0xffc00000: gs:0x40=0x%08x gs:0x201004=0x%08x; identity F_T0+0x40=0x%08x\n",
           g1, g2, ID32(F_T0, 0x40));
    check_eq("t11_gs_based", g1 == 0x6a6b6c6d && ID32(F_T0, 0x40) == 0x6a6b6c6d && g2 == 0x20000004, 1);
}

/* ------------------------------------------------------------ main */

static void (*const tests[])(void) = {
    t1_plain, t2_rmw, t3_straddle, t4_accessed_dirty, t5_faults,
    t6_ring3, t7_code, t8_pagetable, t9_two_pages, t10_frames,
    t11_segment_base,
};
#define NTESTS ((int)(sizeof tests / sizeof tests[0]))

int main(uint32_t magic, struct multiboot_info *mbi)
{
    char arg[16];
    guest_arg(magic, mbi, arg, sizeof arg);
    int only = 0;
    if (arg[0] == 't' && arg[1] >= '1' && arg[1] <= '9') {
        only = arg[1] - '0';
        if (arg[2] >= '0' && arg[2] <= '9')
            only = only * 10 + (arg[2] - '0');
    }
    print("topmap: guest mappings in the top 4 MiB (0xffc00000 and up)\n");
    if (only)
        printf("topmap: only t%d\n", only);
    cpu_init();
    syscall_hook = topmap_syscall;

    pd = pg_new_dir();
    pg_identity(pd, 4u << 20, PG_W | PG_U);
    pt_top = pg_alloc();
    pt_below = pg_alloc();
    reset();
    printf("pd=0x%08x pt(1023)=0x%08x pt(1022)=0x%08x frames 0x%08x-0x%08x\n", (uint32_t)pd,
           (uint32_t)pt_top, (uint32_t)pt_below, FRAME(0), FRAME(NF - 1) + 0xfff);
    paging_enable(pd, 1);
    printf("paging on: cr0=0x%08x\n", read_cr0());

    for (int i = 0; i < NTESTS; i++)
        if (!only || only == i + 1)
            tests[i]();

    paging_disable();
    printf("topmap: done, %d failures\n", failures);
    return failures;
}
