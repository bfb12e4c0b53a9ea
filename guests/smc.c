/*
 * smc -- self-modifying code: code that is executed, rewritten, and
 * executed again, in ring 0 and in ring 3, with the results printed.
 *
 * Tests (each run in four passes: ring 0 with paging off, ring 0 with
 *          paging on, ring 3 with IF=1 and paging on, ring 0 again; every
 *          test first resets its code to a pass-dependent value, calls it,
 *          patches it, calls it again):
 *          t1 an immediate patched in a function in another page than the
 *             patcher (C code in .text), then called again;
 *          t2 a store that rewrites the instruction right after it in the
 *             same straight-line block (`movl %ecx, 1f+1; 1: movl $imm,
 *             %eax`): the new instruction must be the one executed;
 *          t3 a patcher that rewrites and calls a function in its own page;
 *          t4 a 4-byte write straddling two pages that changes the end of
 *             one snippet and the start of the next one, then a rep movsb
 *             that rewrites both snippets across the page boundary;
 *          t5 (paging on) the code page mapped a second time at 0x40000000:
 *             written through the alias and executed through the original
 *             mapping, then written through the original and executed
 *             through the alias;
 *          t6 new code copied over old with rep movsb and rep movsl (four
 *             different instruction sequences in turn);
 *          t7 50 rounds of run / patch (immediates and an opcode) / run,
 *             with a checksum of all results;
 *          t8 500 data writes (from the code in the page itself and from
 *             the C caller) into a page whose code keeps running: the
 *             writes touch no instruction byte, the code stays valid.
 * Exercises: translation-cache coherency through write traces on code
 *          pages (docs/07-tracing.md): traced writes from translated ring-0
 *          code and from directly executed ring-3 code, writes that hit the
 *          unit being executed, writes through a linear alias of the
 *          guest-physical page, writes straddling two traced pages, string
 *          writes, and traced writes that change no code (no invalidation);
 *          shadow page tables for the alias (docs/06-memory.md).
 * Monitor exits expected: page faults on writes to traced code pages
 *          (carried out under single-step, units overlapping the changed
 *          bytes invalidated and retranslated); hidden page faults while the
 *          shadows fill; #GP exits for the int $0x80 system calls from
 *          ring 3; COM1 port I/O callouts.
 */
#include "guest.h"

/* ------------------------------------------------------------ the code pages */

/*
 * The code buffers live in a writable and executable data section, one
 * page-aligned area of nine pages.  Every snippet takes its argument in
 * EAX and ECX and may clobber EAX, ECX and EDX only.
 */
__asm__(
    ".pushsection .data.smc, \"aw\", @progbits\n"
    ".p2align 12\n"
    ".globl smc_area\n"
    "smc_area:\n"

    /* page 0: t1 */
    "smc_t1_fn:\n"
    "   .byte 0xb8\n"                   /* movl $imm32, %eax */
    "   .long 0x11111111\n"
    "   ret\n"

    /* page 1: t2 and t3 */
    ".p2align 12\n"
    "smc_t2_fn:\n"                      /* ecx = new immediate */
    "   movl %ecx, 1f+1\n"
    "1: .byte 0xb8\n"
    "   .long 0x22222222\n"
    "   ret\n"
    ".p2align 5, 0xcc\n"
    "smc_t3_patcher:\n"                 /* ecx = new immediate */
    "   movl %ecx, smc_t3_fn+1\n"
    "   call smc_t3_fn\n"
    "   ret\n"
    ".p2align 5, 0xcc\n"
    "smc_t3_fn:\n"
    "   .byte 0xb8\n"
    "   .long 0x33333333\n"
    "   ret\n"

    /* pages 2 and 3: t4, two snippets meeting at the page boundary */
    ".p2align 12\n"
    "   .skip 4096 - 6, 0xcc\n"
    "smc_t4_a:\n"
    "   .byte 0xb8\n"
    "   .long 0x44444444\n"
    "   ret\n"
    "smc_t4_b:\n"                       /* page 3 starts here */
    "   .byte 0xb8\n"
    "   .long 0x55555555\n"
    "   ret\n"

    /* page 4: t5 (aliased) */
    ".p2align 12\n"
    "smc_t5_fn:\n"
    "   .byte 0xb8\n"
    "   .long 0x66666666\n"
    "   addl %ecx, %eax\n"
    "   ret\n"

    /* page 5: t6 target (64 bytes) and the templates copied over it */
    ".p2align 12\n"
    "smc_t6_fn:\n"
    "   leal 1(%eax), %eax\n"
    "   ret\n"
    "   .fill 64 - 4, 1, 0xcc\n"
    ".p2align 6, 0xcc\n"
    "smc_t6_tA:\n"                      /* 3a + 5 */
    "   leal 5(%eax,%eax,2), %eax\n"
    "   ret\n"
    "smc_t6_tA_end:\n"
    ".p2align 4, 0xcc\n"
    "smc_t6_tB:\n"                      /* (7a) ^ 0x55 */
    "   imull $7, %eax, %eax\n"
    "   xorl $0x55, %eax\n"
    "   ret\n"
    ".p2align 4, 0xcc\n"
    "smc_t6_tB_end:\n"
    "smc_t6_tC:\n"                      /* 15a + 0x1000 */
    "   movl %eax, %ecx\n"
    "   shll $4, %eax\n"
    "   subl %ecx, %eax\n"
    "   addl $0x1000, %eax\n"
    "   ret\n"
    "smc_t6_tC_end:\n"
    ".p2align 4, 0xcc\n"
    "smc_t6_tD:\n"                      /* ror(~a, 8) */
    "   notl %eax\n"
    "   rorl $8, %eax\n"
    "   ret\n"
    ".p2align 4, 0xcc\n"
    "smc_t6_tD_end:\n"

    /* page 6: t7 -- movl $imm1, %eax; <op> $imm2, %eax; ret */
    ".p2align 12\n"
    "smc_t7_fn:\n"
    "   .byte 0xb8\n"
    "   .long 0\n"
    "   .byte 0x05\n"                   /* addl $imm32, %eax */
    "   .long 0\n"
    "   ret\n"

    /* page 7: t8 -- code and data in one page */
    ".p2align 12\n"
    "smc_t8_count:\n"                   /* ++counter, returns it */
    "   movl smc_t8_data, %eax\n"
    "   incl %eax\n"
    "   movl %eax, smc_t8_data\n"
    "   ret\n"
    ".p2align 4, 0xcc\n"
    "smc_t8_pure:\n"                    /* a * 5 + 0x77 */
    "   leal 0x77(%eax,%eax,4), %eax\n"
    "   ret\n"
    ".p2align 11, 0xcc\n"
    "smc_t8_data:\n"
    "   .long 0\n"
    ".p2align 8, 0\n"
    "smc_t8_buf:\n"
    "   .fill 256, 4, 0\n"
    ".p2align 12, 0\n"
    "smc_area_end:\n"
    ".popsection\n");

extern uint8_t smc_area[], smc_area_end[];
extern uint8_t smc_t1_fn[], smc_t2_fn[], smc_t3_patcher[], smc_t3_fn[];
extern uint8_t smc_t4_a[], smc_t4_b[], smc_t5_fn[];
extern uint8_t smc_t6_fn[], smc_t6_tA[], smc_t6_tA_end[], smc_t6_tB[], smc_t6_tB_end[];
extern uint8_t smc_t6_tC[], smc_t6_tC_end[], smc_t6_tD[], smc_t6_tD_end[];
extern uint8_t smc_t7_fn[], smc_t8_count[], smc_t8_pure[];
extern uint32_t smc_t8_data, smc_t8_buf[256];

#define VA_ALIAS 0x40000000u

/* ------------------------------------------------------------ helpers */

static int cur_user;            /* 1 while the tests run in ring 3 */
static int cur_paging;
static const char *pass_name;

/* printf that works in both rings. */
#define P(...) (cur_user ? uprintf(__VA_ARGS__) : printf(__VA_ARGS__))

static void ck(const char *name, uint32_t got, uint32_t want)
{
    if (got == want) {
        P("PASS %s[%s]\n", name, pass_name);
    } else {
        failures++;
        P("FAIL %s[%s]: got 0x%08x, expected 0x%08x\n", name, pass_name, got, want);
    }
}

/* Call a snippet with EAX = a, ECX = c; returns EAX. */
static uint32_t call2(const void *fn, uint32_t a, uint32_t c)
{
    uint32_t r, c2, d;
    __asm__ volatile("call *%3"
                     : "=a"(r), "=c"(c2), "=d"(d)
                     : "r"(fn), "0"(a), "1"(c)
                     : "memory", "cc");
    return r;
}

static uint32_t call1(const void *fn, uint32_t a)
{
    return call2(fn, a, 0);
}

/* Stores the compiler cannot merge or drop. */
static void put32(void *p, uint32_t v)
{
    __asm__ volatile("movl %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

static void put8(void *p, uint8_t v)
{
    __asm__ volatile("movb %1, (%0)" : : "r"(p), "q"(v) : "memory");
}

static void copy_movsb(void *d, const void *s, uint32_t n)
{
    __asm__ volatile("cld; rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

static void copy_movsl(void *d, const void *s, uint32_t nwords)
{
    __asm__ volatile("cld; rep movsl" : "+D"(d), "+S"(s), "+c"(nwords) : : "memory");
}

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

/* ------------------------------------------------------------ the tests */

static void t1(uint32_t salt)
{
    uint32_t v0 = 0x10000000u + salt, v1 = 0x1abc0000u + salt * 3;
    put32(smc_t1_fn + 1, v0);
    uint32_t r0 = call1(smc_t1_fn, 0);
    put32(smc_t1_fn + 1, v1);
    uint32_t r1 = call1(smc_t1_fn, 0);
    P("t1 other page: before=0x%08x after=0x%08x\n", r0, r1);
    ck("t1_other_page", r0 == v0 && r1 == v1, 1);
}

static void t2(uint32_t salt)
{
    uint32_t v0 = 0x20000000u + salt, v1 = 0x2def0000u + salt * 5;
    /* Every call stores ECX over the immediate it then executes. */
    uint32_t r0 = call2(smc_t2_fn, 0, v0);
    uint32_t r1 = call2(smc_t2_fn, 0, v1);
    uint32_t r2 = call2(smc_t2_fn, 0, v1 ^ 0xffff);
    P("t2 next instruction: 0x%08x 0x%08x 0x%08x\n", r0, r1, r2);
    ck("t2_next_insn", r0 == v0 && r1 == v1 && r2 == (v1 ^ 0xffff), 1);
}

static void t3(uint32_t salt)
{
    uint32_t v0 = 0x30000000u + salt, v1 = 0x3bad0000u + salt * 7;
    uint32_t r0 = call2(smc_t3_patcher, 0, v0);
    uint32_t r1 = call1(smc_t3_fn, 0);
    uint32_t r2 = call2(smc_t3_patcher, 0, v1);
    uint32_t r3 = call1(smc_t3_fn, 0);
    P("t3 same page: patch+call=0x%08x call=0x%08x patch+call=0x%08x call=0x%08x\n",
      r0, r1, r2, r3);
    ck("t3_same_page", r0 == v0 && r1 == v0 && r2 == v1 && r3 == v1, 1);
}

static void t4(uint32_t salt)
{
    uint32_t baddr = (uint32_t)smc_t4_b;
    __asm__("" : "+r"(baddr));  /* b - 6 .. b - 1 is smc_t4_a, not outside */
    uint8_t *b = (uint8_t *)baddr;      /* page-aligned */
    uint32_t va = 0x40000000u + salt * 0x10101, vb = 0x50000000u + salt * 0x20202;
    put32(smc_t4_a + 1, va);
    put32(smc_t4_b + 1, vb);
    uint32_t ra0 = call1(smc_t4_a, 0), rb0 = call1(smc_t4_b, 0);
    /* bytes b-2 .. b+1: imm_a[3], ret, movl opcode, imm_b[0] */
    uint8_t ha = (uint8_t)(0xa0 + salt), lb = (uint8_t)(0x0b + salt);
    put32(b - 2, (uint32_t)ha | 0xc3u << 8 | 0xb8u << 16 | (uint32_t)lb << 24);
    uint32_t ra1 = call1(smc_t4_a, 0), rb1 = call1(smc_t4_b, 0);
    uint32_t wa1 = (va & 0x00ffffffu) | (uint32_t)ha << 24, wb1 = (vb & 0xffffff00u) | lb;
    P("t4 straddle movl at 0x%08x: a 0x%08x->0x%08x b 0x%08x->0x%08x\n",
      (uint32_t)(b - 2), ra0, ra1, rb0, rb1);
    ck("t4_straddle_movl", ra0 == va && rb0 == vb && ra1 == wa1 && rb1 == wb1, 1);

    /* Both snippets rewritten whole by one rep movsb across the boundary;
     * the second one becomes a different instruction sequence. */
    uint8_t img[12] = {
        0xb8, 0x78, 0x56, 0x34, (uint8_t)(0x12 + salt), 0xc3,     /* movl $..., %eax; ret */
        0x8d, 0x44, 0x00, 0x09,                                   /* leal 9(%eax,%eax), %eax */
        0xc3, 0xcc,                                               /* ret; int3 */
    };
    copy_movsb(b - 6, img, sizeof img);
    uint32_t ra2 = call1(smc_t4_a, 0), rb2 = call1(smc_t4_b, 0x100 + salt);
    P("t4 straddle rep movsb: a=0x%08x b(0x%x)=0x%08x\n", ra2, 0x100 + salt, rb2);
    ck("t4_straddle_movsb", ra2 == (0x00345678u | (uint32_t)(0x12 + salt) << 24) &&
       rb2 == 2 * (0x100 + salt) + 9, 1);
    /* Put the original shape back (movl $..., %eax; ret) for the next pass. */
    uint8_t orig[6] = { 0xb8, 0, 0, 0, 0, 0xc3 };
    copy_movsb(b, orig, sizeof orig);
}

static void t5(uint32_t salt)
{
    if (!cur_paging) {
        P("t5 alias: skipped (paging off)\n");
        return;
    }
    uint8_t *alias = (uint8_t *)(VA_ALIAS + ((uint32_t)smc_t5_fn & 0xfff));
    uint32_t v0 = 0x60000000u + salt, v1 = 0x6eee0000u + salt, v2 = 0x6fff0000u + salt;
    put32(smc_t5_fn + 1, v0);
    uint32_t r0 = call2(smc_t5_fn, 0, 1);
    uint32_t ra0 = call2(alias, 0, 2);
    put32(alias + 1, v1);                       /* write through the alias */
    uint32_t r1 = call2(smc_t5_fn, 0, 1);       /* run the original */
    uint32_t rd1 = *(volatile uint32_t *)(smc_t5_fn + 1);
    put32(smc_t5_fn + 1, v2);                   /* write the original */
    uint32_t ra2 = call2(alias, 0, 2);          /* run the alias */
    uint32_t r2 = call2(smc_t5_fn, 0, 3);
    P("t5 alias: orig=0x%08x alias=0x%08x | write alias: orig=0x%08x (imm read 0x%08x) | "
      "write orig: alias=0x%08x orig=0x%08x\n", r0, ra0, r1, rd1, ra2, r2);
    ck("t5_alias", r0 == v0 + 1 && ra0 == v0 + 2 && r1 == v1 + 1 && rd1 == v1 &&
       ra2 == v2 + 2 && r2 == v2 + 3, 1);
}

static void t6(uint32_t salt)
{
    static const uint8_t reset[4] = { 0x8d, 0x40, 0x01, 0xc3 };  /* leal 1(%eax),%eax; ret */
    copy_movsb(smc_t6_fn, reset, sizeof reset);
    uint32_t a = 10 + salt;
    uint32_t r0 = call1(smc_t6_fn, a);
    copy_movsb(smc_t6_fn, smc_t6_tA, (uint32_t)(smc_t6_tA_end - smc_t6_tA));
    uint32_t r1 = call1(smc_t6_fn, a);
    copy_movsl(smc_t6_fn, smc_t6_tB, (uint32_t)(smc_t6_tB_end - smc_t6_tB) / 4);
    uint32_t r2 = call1(smc_t6_fn, a);
    copy_movsb(smc_t6_fn, smc_t6_tC, (uint32_t)(smc_t6_tC_end - smc_t6_tC));
    uint32_t r3 = call1(smc_t6_fn, a);
    copy_movsl(smc_t6_fn, smc_t6_tD, (uint32_t)(smc_t6_tD_end - smc_t6_tD) / 4);
    uint32_t r4 = call1(smc_t6_fn, a);
    P("t6 rep movs (a=%u): orig=0x%08x movsb A=0x%08x movsl B=0x%08x movsb C=0x%08x movsl D=0x%08x\n",
      a, r0, r1, r2, r3, r4);
    ck("t6_rep_movs", r0 == a + 1 && r1 == 3 * a + 5 && r2 == ((7 * a) ^ 0x55) &&
       r3 == 15 * a + 0x1000 && r4 == rol(~a, 24), 1);
}

static void t7(uint32_t salt)
{
    static const uint8_t ops[3] = { 0x05, 0x2d, 0x35 };     /* add, sub, xor $imm32, %eax */
    uint32_t sum = 0, want = 0;
    uint32_t i1 = 0x7000 + salt, i2 = 0x700, op = 0, prev = i1 + i2;
    put32(smc_t7_fn + 1, i1);
    put8(smc_t7_fn + 5, ops[0]);
    put32(smc_t7_fn + 6, i2);
    for (uint32_t i = 0; i < 50; i++) {
        uint32_t r0 = call1(smc_t7_fn, 0);
        i1 = i * 0x9e3779b9u + salt;
        i2 = i * 0x01010101u + 0x10;
        op = (i + salt) % 3;
        put32(smc_t7_fn + 1, i1);
        put8(smc_t7_fn + 5, ops[op]);
        put32(smc_t7_fn + 6, i2);
        uint32_t r1 = call1(smc_t7_fn, 0);
        sum = rol(sum, 5) ^ r0;
        sum = rol(sum, 7) + r1;
        uint32_t w1 = op == 0 ? i1 + i2 : op == 1 ? i1 - i2 : i1 ^ i2;
        /* r0 ran the previous round's code. */
        want = rol(want, 5) ^ prev;
        want = rol(want, 7) + w1;
        prev = w1;
    }
    uint32_t last = call1(smc_t7_fn, 0);
    P("t7 50 rounds: checksum=0x%08x last=0x%08x\n", sum, last);
    ck("t7_loop", sum, want);
}

static void t8(uint32_t salt)
{
    put32(&smc_t8_data, 0);
    uint32_t cnt = 0, pure = 0, bufsum = 0;
    for (uint32_t i = 0; i < 500; i++) {
        cnt = call1(smc_t8_count, 0);
        put32(&smc_t8_buf[i & 255], i * 0x01000193u + salt);
        pure += call1(smc_t8_pure, i);
    }
    for (int i = 0; i < 256; i++)
        bufsum += smc_t8_buf[i];
    uint32_t wsum = 0, wpure = 0;
    for (uint32_t i = 244; i < 500; i++)
        wsum += i * 0x01000193u + salt;
    for (uint32_t i = 0; i < 500; i++)
        wpure += i * 5 + 0x77;
    P("t8 data in code page: counter=%u pure sum=0x%08x buffer sum=0x%08x\n", cnt, pure, bufsum);
    ck("t8_data_writes", cnt == 500 && pure == wpure && bufsum == wsum &&
       smc_t8_data == 500, 1);
}

static void run_tests(uint32_t salt)
{
    P("--- pass %s (cpl=%u, paging %s)\n", pass_name, READ_SEG(cs) & 3,
      cur_paging ? "on" : "off");
    t1(salt);
    t2(salt);
    t3(salt);
    t4(salt);
    t5(salt);
    t6(salt);
    t7(salt);
    t8(salt);
}

static uint32_t user_tests(uint32_t salt)
{
    run_tests(salt);
    return 0x5e1f;
}

/* ------------------------------------------------------------ main */

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("smc: self-modifying code in ring 0 and ring 3\n");
    cpu_init();
    printf("code area: 0x%08x-0x%08x t4 boundary at 0x%08x\n",
           (uint32_t)smc_area, (uint32_t)smc_area_end, (uint32_t)smc_t4_b);

    pass_name = "k-nopg";
    run_tests(1);

    uint32_t *pd = pg_new_dir();
    pg_identity(pd, 4u << 20, PG_W | PG_U);
    pg_map(pd, VA_ALIAS, PG_FRAME(smc_t5_fn), PG_W | PG_U);
    paging_enable(pd, 1);
    cur_paging = 1;
    pass_name = "k-pg";
    run_tests(2);

    pass_name = "user";
    cur_user = 1;
    uint32_t r = run_user(user_tests, 3, EFL_IF);
    cur_user = 0;
    printf("ring 3 pass returned 0x%x\n", r);
    check_eq("user_pass_returned", r, 0x5e1f);

    pass_name = "k-again";
    run_tests(4);

    paging_disable();
    printf("smc: done, %d failures\n", failures);
    return failures;
}
