/*
 * bt.c -- the binary translation sub-system.
 *
 * Guest code that cannot run directly - the guest kernel (CPL 0-2), real
 * mode, user code with IOPL or IF set in ways the hardware would act on -
 * is translated into a translation cache (TC) and run from there at ring
 * 1 (docs/00-overview.md; US 6,397,242, claim 1: "binary translation
 * sub-system").  A translation unit is a run of up to a dozen guest
 * instructions (AA §3.2); most are copied unchanged ("IDENT"), because
 * the registers, the status flags and DS, ES, SS and FS are all the
 * guest's while translated code runs: the segment registers hold cached
 * descriptors (shadow.c) with the guest's bases.  The unit ends at the
 * first instruction that is not IDENT - a control transfer, a privileged
 * or sensitive instruction - which becomes a callout: `int $T_CALLOUT`,
 * after which the monitor emulates that one instruction (emulate.c) and
 * translation continues at wherever it left EIP.
 *
 * Two instructions are almost IDENT: one with a GS or CS prefix.  %gs
 * belongs to the monitor in translated code, and %cs is the translation
 * cache's, so the instruction runs with the prefix changed to FS, and FS
 * briefly loaded with the cached descriptor of the segment it named.
 *
 * Direct control transfers (JMP, Jcc, CALL with a relative target) are
 * translated, not emulated: each exit of a unit first goes through an
 * execute-once continuation, a callout that translates the target and
 * patches the unit's jump to lead straight to the target's translation
 * ("chaining", AA §3.2).  Chaining stays within one guest page, where a
 * linear address names the same physical byte for both units whatever
 * the guest's page tables say.
 *
 * A fault in translated code is turned back into guest state at a guest
 * instruction boundary by the unit's map from TC offsets to guest
 * offsets ("precise" state, AA §5).  Every page a unit comes from is
 * traced (trace.c): a write to its code drops the unit and unchains
 * every jump into it.
 *
 * Deviation: first form.  Indirect control transfers (RET, JMP and CALL
 * through a register or memory), and every privileged or sensitive
 * instruction, still call out to the emulator; none is emulated inline.
 *
 * Hardware:   SDM Vol. 3A §5.5 (Privilege Levels), §6.12; SDM Vol. 2
 *             §2.1.1 (Instruction Prefixes).
 * Runs in:    VMM, ring 0, interrupts off; translated code at ring 1.
 * Read after: vmm.c (vmm_decide), direct.c.
 */
#include "vmm.h"

#define MAXI      12            /* guest instructions per unit (AA §3.2) */
#define TC_SIZE   (1 << 20)
#define TC16_SIZE 0x10000
#define MAXBLOCKS 4096
#define NHASH     4096
#define TC_SLACK  1024          /* room one unit can need, at most */

enum term { TERM_EMULATE = 1, TERM_CONTINUE, TERM_BRANCH };

/* An exit of a unit: a jump whose target is another guest address.  It
 * first leads to its continuation stub (a callout); once chained, to the
 * target's translation. */
struct exit {
    u32 target;         /* guest EIP */
    u32 site;           /* TC offset of the jump's rel32 (rel16 in tc16); 0: no exit */
    u32 stub;           /* TC offset of the continuation */
    s16 chained;        /* the unit it now jumps to, or -1 */
    s16 in_next;        /* next exit chained to the same unit (id = unit * 2 + exit) */
};

/* The callout record: four bytes after `int $T_CALLOUT` say which unit
 * and why.  Kind 0: emulate the unit's terminator; 1, 2: exit 0 or 1. */
#define REC(unit, kind) (((u32)(unit) << 2) | (kind))

/* A translation unit, as translated.  Written only here. */
struct block {
    gpa_t pa;           /* guest-physical address of its first byte */
    u32 eip;            /* the key: (pa, eip, CS base, code size) */
    u32 cs_base;
    u8 code32;
    u8 ninsn;           /* IDENT instructions before the terminator */
    u8 term;            /* enum term */
    u8 glen;            /* guest bytes covered, terminator included */
    u32 tc;             /* offset of its code in tc[] or tc16[] */
    u32 tclen;
    u8 goff[MAXI + 1];  /* guest offset of instruction i; [ninsn]: the terminator or next */
    u16 tend[MAXI];     /* TC offset just past guest instruction i itself */
    s16 next;           /* hash chain */
    u8 valid;           /* cleared when the guest writes its code (trace.c) */
    gpa_t pa2;          /* the second page, for a lone instruction that straddles; else ~0 */
    struct exit exit[2];
    s16 in_head;        /* exits of other units chained to this one */
    u16 istart[MAXI];   /* TC offset where guest instruction i's own bytes start */
    u16 cend[MAXI];     /* TC offset just after instruction i's truncation check */
    u16 bcend;          /* ... and after the check of a CALL's return-address push */
};

static void code_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new);

static u8 tc[TC_SIZE] __attribute__((aligned(PGSIZE)));
static u8 tc16[TC16_SIZE] __attribute__((aligned(PGSIZE)));

/* The one page of monitor data translated code may touch, through %gs:
 * scratch words for the GS/CS prefix rewrite and the truncation checks.
 * At ring 1 only translated code's own instructions reach it; at ring 3
 * (no checks) the guest could write it too, so it holds nothing else the
 * monitor relies on. */
static struct tcdata {
    u32 save_fs;        /* FS while an instruction runs with FS borrowed */
    u32 sel_gs;         /* the cached descriptor for the guest's GS */
    u32 sel_cs;         /* ... and for its CS */
    u32 save_eax, save_ecx;     /* registers a truncation check borrows */
    u32 bias[NSEG];     /* segment base + 2^31, for the checks */
    s32 bnd[2];         /* BOUND's pair: [INT_MIN, INT_MIN + VMM_BASE - MARGIN - 1] */
} tcdata __attribute__((aligned(PGSIZE)));
static u8 tcdata_pad[PGSIZE - sizeof(struct tcdata)] __attribute__((used));

/* The translation cache is read-only to translated code; the monitor
 * writes it with CR0.WP cleared for the moment (SDM Vol. 3A §4.6). */
static int tc_open_depth;
static void
tc_open(void)
{
    if (tc_open_depth++ == 0)
        lcr0(rcr0() & ~CR0_WP);
}
static void
tc_close(void)
{
    if (--tc_open_depth == 0)
        lcr0(rcr0() | CR0_WP);
}
static u32 tc_used, tc16_used;
static struct block blocks[MAXBLOCKS + 1];     /* the last one: single-step scratch */
static int nblocks;
static s16 hash[NHASH];
static u16 order[2][MAXBLOCKS];         /* units in TC order: [0] tc16, [1] tc */
static int norder[2];
static u32 tc_generation;               /* bumped by every flush */
#define STEP_BLOCK MAXBLOCKS

void
bt_flush(const char *why)
{
    if (opt_log & LOG_TRANSLATE)
        cprintf("translate: flush (%s)\n", why);
    vcpu0.st.tc_flushes++;
    tc_used = tc16_used = 0;
    for (int i = 0; i <= MAXBLOCKS; i++)
        blocks[i].valid = 0;
    nblocks = 0;
    norder[0] = norder[1] = 0;
    tc_generation++;
    for (u32 pa = 0; pa < ram_size; pa += PGSIZE)
        trace_remove(pa, TR_CODE);
    for (int i = 0; i < NHASH; i++)
        hash[i] = -1;
}

void
bt_init(void)
{
    /* The 16-bit translation cache gets a code segment of its own based
     * at tc16, so its offsets fit in IP. */
    vmm_gdt[GDT_BT_CS16] = desc_make((u32)tc16, TC16_SIZE - 1,
                                     SEG_S | SEG_P | (bt_ring << 5) | STA_X | STA_R | STA_A);
    vmm_gdt[GDT_BT_GS] = desc_make((u32)&tcdata, PGSIZE - 1,
                                   SEG_S | SEG_P | SEG_DB | (bt_ring << 5) | STA_W | STA_A);
    if (bt_ring == 3) {
        /* Translated code at ring 3 must reach its own code and %gs page
         * through user-accessible pages; at ring 1 they stay
         * supervisor-only, and the truncation checks keep the guest's
         * own accesses away from them. */
        mmu_expose((u32)tc, TC_SIZE, 0);
        mmu_expose((u32)tc16, TC16_SIZE, 0);
        mmu_expose((u32)&tcdata, PGSIZE, 1);
    }
    bt_flush("init");
    vcpu0.st.tc_flushes = 0;
    trace_register(TR_CODE, code_written);
}

static u32
hash_of(gpa_t pa, u32 eip)
{
    return (pa ^ (eip * 2654435761u) ^ (pa >> 12)) % NHASH;
}

/* ---- Emitting ---- */

static u8 *emit_p;
static void emit1(u8 b) { *emit_p++ = b; }
static void emit2(u32 w) { emit1(w); emit1(w >> 8); }
static void emit4(u32 w) { for (int i = 0; i < 4; i++) emit1(w >> (8 * i)); }

static u8 *
cache_of(int code32)
{
    return code32 ? tc : tc16;
}

/* Point the jump of exit x of unit b at TC offset `to`. */
static void
patch_exit(struct block *b, int x, u32 to)
{
    tc_open();
    u8 *p = cache_of(b->code32) + b->exit[x].site;
    if (b->code32) {
        u32 rel = to - (b->exit[x].site + 4);
        p[0] = rel, p[1] = rel >> 8, p[2] = rel >> 16, p[3] = rel >> 24;
    } else {
        u32 rel = to - (b->exit[x].site + 2);
        p[0] = rel, p[1] = rel >> 8;
    }
    tc_close();
}

/* Emit a jump (opcode bytes already emitted) to a new continuation stub
 * for exit x; the stubs themselves follow the unit (emit_stubs). */
static void
emit_exit_jump(struct block *b, int x, u32 target)
{
    u8 *base = cache_of(b->code32);
    b->exit[x].target = target;
    b->exit[x].site = emit_p - base;
    b->exit[x].chained = -1;
    if (b->code32)
        emit4(0);
    else
        emit2(0);
}

static void
emit_stubs(struct block *b, int idx)
{
    u8 *base = cache_of(b->code32);
    for (int x = 0; x < 2; x++) {
        if (!b->exit[x].site)
            continue;
        b->exit[x].stub = emit_p - base;
        patch_exit(b, x, b->exit[x].stub);
        emit1(0xcd);
        emit1(T_CALLOUT);
        emit4(REC(idx, x + 1));
    }
}

/* mov %fs, %gs:off  /  mov %gs:off, %fs, with 32-bit addressing even in
 * 16-bit code (67h prefix). */
static void
emit_fs_gs(int code32, int load, u32 off)
{
    if (!code32)
        emit1(0x67);
    emit1(0x65);
    emit1(load ? 0x8e : 0x8c);
    emit1(0x25);        /* ModRM: mod 00, reg 4 (FS), r/m 101: disp32 */
    emit4(off);
}

/* ---- Software truncation ---- */

/*H:030 Software truncation.  Where the CPU does not check segment
 * limits, a truncated segment keeps nothing out of the monitor, so the
 * translator checks every memory access itself before the instruction
 * runs: the access's linear address must lie below VMM_BASE - MARGIN.
 * The check may not touch EFLAGS (the guest's status flags are live), so
 * it is built from LEA and BOUND:
 *     mov  %eax, %gs:save_eax;  mov %ecx, %gs:save_ecx
 *     lea  <the instruction's own address>, %eax
 *     mov  %gs:bias[seg], %ecx         ; segment base + 2^31
 *     lea  (%eax,%ecx), %eax           ; linear address + 2^31
 *     bound %eax, %gs:bnd              ; #BR unless below VMM_BASE - MARGIN
 *     mov  %gs:save_ecx, %ecx;  mov %gs:save_eax, %eax
 * Adding 2^31 turns "unsigned below VMM_BASE - MARGIN" into the signed
 * range BOUND tests.  Accesses whose footprint LEA cannot express - string
 * instructions, XLAT, BT with a register bit offset, ENTER with nesting,
 * 32-bit addressing in 16-bit code - call out instead, and the monitor
 * checks their exact footprint (footprint_ok) before letting them run. :*/
#define MARGIN 256              /* the largest access checked by its first byte */

enum { MC_NONE, MC_INLINE, MC_CALLOUT };

/* The LEAs an inline check needs: up to two (PUSH or POP of memory). */
struct check {
    int n;
    struct { u8 bytes[12]; int len; int seg; } lea[2];
};

static void
check_lea(struct check *c, const u8 *b, int len, int seg)
{
    memcpy(c->lea[c->n].bytes, b, len);
    c->lea[c->n].len = len;
    c->lea[c->n].seg = seg;
    c->n++;
}

/* lea disp8(%esp or %ebp), %eax */
static void
check_stack(struct check *c, int base_reg, s8 disp)
{
    u8 b[3] = { 0x8d, (u8)(0x40 | base_reg), (u8)disp };
    u8 bs[4] = { 0x8d, 0x44, 0x24, (u8)disp };     /* ESP needs a SIB byte */
    if (base_reg == 4)
        check_lea(c, bs, 4, SEG_SS);
    else
        check_lea(c, b, 3, SEG_SS);
}

/* How does instruction `in` (bytes `b`) touch memory, and what check
 * does it need?  Fills `c` for MC_INLINE. */
static int
classify(struct insn *in, const u8 *b, int code32, u32 cs_base, struct check *c)
{
    c->n = 0;
    if (!bt_checks)
        return MC_NONE;
    u32 op = in->map == 0 ? in->op : 0x100 | in->op;
    int mem = in->has_modrm && in->mod != 3;
    if (in->flags & D_STRING)
        return MC_CALLOUT;
    if (op == 0xd7 || (op == 0xc8 && (in->imm2 & 0x1f)))
        return MC_CALLOUT;                              /* xlat; enter with nesting */
    if (mem && (op == 0x1a3 || op == 0x1ab || op == 0x1b3 || op == 0x1bb))
        return MC_CALLOUT;                              /* bt* with a register bit offset */
    if (!code32) {
        /* 16-bit code has no inline checks: run_block refuses to run it
         * with a data segment within 64 KiB of the monitor.  CS is part
         * of the unit's key, so a CS-prefixed access through a CS based
         * there (the reset vector's F000 based at FFFF0000) is known here
         * and checked by a callout. */
        int cs_near = in->seg == SEG_CS && (u64)cs_base + 0x10000 + MARGIN > VMM_BASE;
        return (mem || (op >= 0xa0 && op <= 0xa3)) && (in->adsize == 4 || cs_near) ? MC_CALLOUT : MC_NONE;
    }
    if (mem && op != 0x8d && !(op >= 0x118 && op <= 0x11f)) {
        /* The instruction's own ModRM, SIB and displacement, with reg = EAX. */
        u8 l[12];
        int n = 0, opl = in->map == 0 ? 1 : in->map == 1 ? 2 : 3;
        int m = in->nprefix + opl;
        if (in->adsize == 2)
            l[n++] = 0x67;
        l[n++] = 0x8d;
        l[n++] = b[m] & 0xc7;
        for (int k = m + 1; k < m + 1 + in->has_sib + in->disp_len; k++)
            l[n++] = b[k];
        check_lea(c, l, n, emulate_ea_seg(in));
    }
    if (op >= 0xa0 && op <= 0xa3) {                     /* mov with a moffs */
        u8 l[7] = { 0x8d, 0x05 };
        memcpy(l + 2, b + in->imm_off, 4);
        if (in->adsize == 2) {
            u8 l16[5] = { 0x67, 0x8d, 0x06, b[in->imm_off], b[in->imm_off + 1] };
            check_lea(c, l16, 5, in->seg >= 0 ? in->seg : SEG_DS);
        } else {
            check_lea(c, l, 6, in->seg >= 0 ? in->seg : SEG_DS);
        }
    }
    if (in->flags & D_STACK) {
        if (op == 0x60)
            check_stack(c, 4, -32);                     /* pusha */
        else if (op == 0xc9)
            check_stack(c, 5, 0);                       /* leave: reads (%ebp) */
        else if ((op >= 0x58 && op <= 0x5f) || op == 0x61 || op == 0x8f)
            check_stack(c, 4, 0);                       /* pop, popa, pop r/m */
        else
            check_stack(c, 4, -4);                      /* push, enter $n,$0 */
    }
    return c->n ? MC_INLINE : MC_NONE;
}

static void
emit_check(struct check *c)
{
    for (int k = 0; k < c->n; k++) {
        emit1(0x65); emit1(0xa3); emit4(offsetof(struct tcdata, save_eax));
        emit1(0x65); emit1(0x89); emit1(0x0d); emit4(offsetof(struct tcdata, save_ecx));
        for (int j = 0; j < c->lea[k].len; j++)
            emit1(c->lea[k].bytes[j]);
        emit1(0x65); emit1(0x8b); emit1(0x0d); emit4(offsetof(struct tcdata, bias[c->lea[k].seg]));
        emit1(0x8d); emit1(0x04); emit1(0x08);
        emit1(0x65); emit1(0x62); emit1(0x05); emit4(offsetof(struct tcdata, bnd));
        emit1(0x65); emit1(0x8b); emit1(0x0d); emit4(offsetof(struct tcdata, save_ecx));
        emit1(0x65); emit1(0xa1); emit4(offsetof(struct tcdata, save_eax));
    }
}

/*B:020 An IDENT instruction is copied byte for byte, after its software
 * truncation check if it needs one.  If it has a GS or CS segment prefix
 * it is wrapped: save FS, load FS with the cached descriptor of the named
 * segment (its selector is kept in tcdata, which %gs addresses), run the
 * instruction with an FS prefix instead, restore FS. :*/
static void
emit_ident(struct block *b, int i, const u8 *bytes, struct insn *in, int code32)
{
    u8 *base = code32 ? tc + b->tc : tc16 + b->tc;
    int wrap = in->seg == SEG_GS || in->seg == SEG_CS;
    struct check c;
    int mc = classify(in, bytes, code32, b->cs_base, &c);
    if (mc == MC_INLINE) {
        emit_check(&c);
        vcpu0.st.checks_inline++;
    } else if (mc == MC_CALLOUT) {
        emit1(0xcd);
        emit1(T_CALLOUT);
        emit4(REC(b - blocks, 3));
        emit1(i);
        vcpu0.st.checks_callout++;
    }
    b->cend[i] = emit_p - base;
    if (wrap) {
        emit_fs_gs(code32, 0, offsetof(struct tcdata, save_fs));
        emit_fs_gs(code32, 1, in->seg == SEG_GS ? offsetof(struct tcdata, sel_gs) : offsetof(struct tcdata, sel_cs));
    }
    b->istart[i] = emit_p - base;
    for (int k = 0; k < in->len; k++) {
        u8 c = bytes[k];
        if (wrap && k < in->nprefix && (c == 0x65 || c == 0x2e))
            c = 0x64;
        emit1(c);
    }
    b->tend[i] = emit_p - base;
    if (wrap)
        emit_fs_gs(code32, 1, offsetof(struct tcdata, save_fs));
}

/* Does an access of n bytes at sreg:off stay clear of the monitor?  If
 * not, the access is remembered for relocated execution: up to two, in
 * different segment registers. */
#define NRELOC 2
static int nwin;
static struct { int seg; u32 la; } win[NRELOC];
static int win_unrelocatable;   /* an offending access that cannot be relocated */

static int
clear_of_monitor(struct vcpu *v, int sreg, u32 off, u32 n, u32 amask)
{
    u32 la = v->seg[sreg].base + (off & amask);
    if ((u64)la + n <= VMM_BASE - MARGIN)
        return 1;
    for (int j = 0; j < nwin; j++)
        if (win[j].seg == sreg)
            return 0;
    if (nwin < NRELOC) {
        win[nwin].seg = sreg;
        win[nwin].la = la;
        nwin++;
    } else {
        win_unrelocatable = 1;
    }
    return 0;
}

/* The exact memory footprint of the instruction a check guards, tested
 * against the monitor's region.  1: clear, the instruction may run as it
 * is; 0: it reaches the monitor's region. */
static int
footprint_ok(struct vcpu *v, u32 geip)
{
    u8 bytes[16];
    int avail;
    struct insn in;
    nwin = 0;
    win_unrelocatable = 0;
    if (emulate_fetch(v, geip, bytes, &avail) != OK || decode(bytes, avail, vcpu_code32(v), &in) < 0) {
        vfault.pending = 0;
        win_unrelocatable = 1;
        return 0;
    }
    struct frame *f = &v->f;
    u32 amask = in.adsize == 2 ? 0xffff : 0xffffffff;
    u32 op = in.map == 0 ? in.op : 0x100 | in.op;
    int seg, ok = 1;
    u32 off;
    if (in.flags & D_STRING) {
        /* The current element of each operand: one in the monitor's
         * region is relocated.  If only later elements are, this
         * iteration may simply run, single-stepped (nwin 0). */
        int size = (in.op & 1) ? in.opsize : 1;
        u32 count = in.rep ? f->ecx & amask : 1;
        int down = (v->eflags & EFLAGS_DF) != 0;
        int src = in.op == 0xa4 || in.op == 0xa5 || in.op == 0xa6 || in.op == 0xa7 || in.op == 0xac || in.op == 0xad;
        int dst = in.op != 0xac && in.op != 0xad;
        if (!count)
            return 1;
        if (src)
            ok &= clear_of_monitor(v, in.seg >= 0 ? in.seg : SEG_DS, f->esi, size, amask);
        if (dst)
            ok &= clear_of_monitor(v, SEG_ES, f->edi, size, amask);
        if (!ok)
            return 0;
        u64 span = (u64)count * size;
        for (int k = 0; k < 2; k++) {
            if (!(k == 0 ? src : dst))
                continue;
            int s = k == 0 ? (in.seg >= 0 ? in.seg : SEG_DS) : SEG_ES;
            u32 start = (k == 0 ? f->esi : f->edi) & amask;
            u32 lo = down ? start + size - (u32)span : start;
            int clear;
            if (span > 0xffffffffull)
                clear = 0;
            else if (amask == 0xffff)
                clear = (u64)v->seg[s].base + 0x10000 <= VMM_BASE - MARGIN;
            else
                clear = !((down && (u64)start + size < span) || (!down && (u64)start + span > 0x100000000ull)) &&
                        (u64)(u32)(v->seg[s].base + lo) + span <= VMM_BASE - MARGIN;
            if (!clear) {
                nwin = 0;       /* a later element: step this one as it is */
                return 0;
            }
        }
        return 1;
    }
    if (op == 0xd7)                                             /* xlat */
        ok &= clear_of_monitor(v, in.seg >= 0 ? in.seg : SEG_DS, f->ebx + (f->eax & 0xff), 1, amask);
    if (op == 0xc8) {                                           /* enter with nesting */
        u32 level = in.imm2 & 0x1f;
        ok &= clear_of_monitor(v, SEG_SS, f->esp - 4 * (level + 2), 4 * (level + 2), 0xffffffff);
        ok &= clear_of_monitor(v, SEG_SS, f->ebp - 4 * level, 4 * level + 4, 0xffffffff);
    }
    if (in.has_modrm && in.mod != 3 && op != 0x8d) {
        emulate_ea(v, &in, &seg, &off);
        if (op == 0x1a3 || op == 0x1ab || op == 0x1b3 || op == 0x1bb) {
            s32 bit = in.opsize == 2 ? (s16)*gpr(v, in.reg) : (s32)*gpr(v, in.reg);
            off += (u32)((bit >> 3) & ~(in.opsize - 1));
        }
        ok &= clear_of_monitor(v, seg, off, 16, amask);
    }
    if (op >= 0xa0 && op <= 0xa3)
        ok &= clear_of_monitor(v, in.seg >= 0 ? in.seg : SEG_DS, in.imm, 16, amask);
    if (in.flags & D_STACK) {
        int before = nwin;
        if (!clear_of_monitor(v, SEG_SS, f->esp - 32, 64, 0xffffffff)) {
            ok = 0;
            if (nwin > before)        /* the aliases start at the lowest byte PUSHA may write */
                win[nwin - 1].la = v->seg[SEG_SS].base + f->esp - 32;
        }
    }
    return ok;
}

/* ---- Relocated execution ---- */

/*H:050 Relocated execution: a guest instruction whose access falls in
 * the monitor's top 4 MiB, where the guest may have mappings of its own
 * (Linux keeps its fixmap there).  The guest's pages cannot be mapped at
 * their own addresses, so the instruction runs once, alone and
 * single-stepped, with each segment register whose access falls there
 * re-based so that the access lands in two alias pages of the monitor's
 * (temporary slots 4 and 5, and 6 and 7 for a second register).
 * The aliases start empty: each first access faults, and the monitor
 * walks the guest's tables for it with the access's own rights - which
 * sets the guest's Accessed and Dirty bits and raises the guest's own #PF
 * exactly as the CPU would - and maps the guest frame there.  Traced
 * frames are compared before and after, like any traced write.
 * Deviation: at most two segment registers are relocated per
 * instruction, each over the two pages from its access onwards; the
 * step keeps its truncation checks, so an access outside those pages
 * that would reach the monitor stops the guest instead. :*/
#define ALIAS_SLOT 4             /* slots 4, 5: first segment; 6, 7: second */
static struct reloc {
    int pending;        /* the next BT step relocates (or just steps unchecked) */
    int active;         /* a relocated step is running */
    int n;              /* relocated segment registers: 0 to NRELOC */
    struct {
        int seg;
        u32 la_page;    /* guest-linear page behind this pair's first alias */
        gpa_t pa[2];
        u8 *old[2];     /* saved contents of a traced frame mapped writable */
    } r[NRELOC];
    u32 geip;
    int absent;         /* the sink page took a write */
} rl;
static u8 rl_old[NRELOC][2][PGSIZE] __attribute__((aligned(4)));

static u32
alias_va(int j, int k)
{
    return 0xffffffffu - (NSLOTS - (ALIAS_SLOT + 2 * j + k)) * PGSIZE + 1;
}

int
bt_window_pending(void)
{
    return rl.pending;
}

/* Ask for the instruction at v->eip to run relocated: the accesses
 * footprint_ok found in the monitor's region (win[]). */
static void
window_access(struct vcpu *v)
{
    rl.pending = 1;
    rl.n = nwin;
    for (int j = 0; j < nwin; j++) {
        rl.r[j].seg = win[j].seg;
        rl.r[j].la_page = win[j].la & PTE_FRAME;
    }
    rl.geip = v->eip;
}

/* A page fault at linear `la`, in the monitor's region, by the guest
 * instruction at v->eip (direct execution, or translated code without
 * checks): find the access and ask for it to run relocated. */
void
bt_window_fault(struct vcpu *v, u32 la)
{
    if (footprint_ok(v, v->eip) || win_unrelocatable || !nwin) {
        vm_stop(v, "the instruction at %04x:%08x touched linear %x in the monitor's region "
                "through an access the monitor cannot relocate", v->seg[SEG_CS].sel, v->eip, la);
        return;
    }
    window_access(v);
}

/* A fault on an alias page during a relocated step. */
static int
reloc_fault(struct vcpu *v, u32 cr2, u32 err)
{
    int idx = (cr2 - alias_va(0, 0)) >> PGSHIFT, j = idx / 2, k = idx % 2;
    if (j >= rl.n)
        return 0;
    u32 la = rl.r[j].la_page + k * PGSIZE + (cr2 & 0xfff);
    gpa_t pa;
    int acc = ((err & PFE_W) ? ACC_W : 0) | (v->cpl == 3 ? ACC_U : 0);
    if (mmu_translate(v, la, acc, &pa) != OK)
        return 0;               /* the guest's own #PF, with its CR2 */
    int w = (err & PFE_W) != 0;
    hpa_t not_ram = mmu_not_ram(pa);
    if (not_ram) {
        /* Absent memory or ROM: read-only; writes land in the sink, cleared after. */
        extern u8 absent_sink[];
        mmu_alias(ALIAS_SLOT + idx, w ? (u32)absent_sink - VMM_BASE + VMM_PHYS : not_ram, w);
        rl.absent |= w;
        return 1;
    }
    pa &= PTE_FRAME;
    if (w && trace_is_traced(pa) && !rl.r[j].old[k]) {
        rl.r[j].old[k] = rl_old[j][k];
        gpa_read(pa, rl.r[j].old[k], PGSIZE);
    }
    rl.r[j].pa[k] = pa;
    mmu_alias(ALIAS_SLOT + idx, ram_base + pa, w);
    return 1;
}

/* End of a relocated step: report traced writes, remove the aliases. */
static void
reloc_finish(struct vcpu *v)
{
    for (int j = 0; j < NRELOC; j++)
        for (int k = 0; k < 2; k++) {
            mmu_alias(ALIAS_SLOT + 2 * j + k, 0, 0);
            u8 *old = rl.r[j].old[k];
            if (!old)
                continue;
            static u8 now[PGSIZE];
            gpa_read(rl.r[j].pa[k], now, PGSIZE);
            for (u32 off = 0; off < PGSIZE; off++) {
                if (now[off] == old[off])
                    continue;
                u32 end = off;
                while (end < PGSIZE && now[end] != old[end])
                    end++;
                trace_notify(v, rl.r[j].pa[k] + off, end - off, old + off, now + off);
                off = end;
            }
            rl.r[j].old[k] = NULL;
        }
    if (rl.absent) {
        extern u8 absent_sink[];
        memset(absent_sink, 0, PGSIZE);
        rl.absent = 0;
    }
    rl.active = 0;
    v->seg_gen++;               /* the cached descriptors are rebuilt on the next entry */
}

/* Does this instruction have to leave translated code? */
/* A direct branch the translator can lay out as jumps: JMP, Jcc or CALL
 * with a relative target, at the code's own operand size. */
static int
is_direct_branch(struct insn *in, int code32)
{
    int k = in->info->emu;
    return (k == E_JCC || k == E_JMP || k == E_CALL) && in->opsize == (code32 ? 4 : 2);
}

static int
is_ident(struct insn *in)
{
    if (in->flags & D_INVALID)
        return 1;   /* the host CPU is the guest's CPU model: it faults the same way */
    return in->info->emu == E_NONE || in->info->emu == E_RDTSC;
}

/*B:010 Translate the unit at the guest's CS:EIP, whose first byte is at
 * guest-physical `pa`.  `max` is MAXI, or 1 for single-stepping.  The
 * unit stops before the first instruction that is not IDENT (which
 * becomes the callout), after `max` instructions, at the end of a page
 * (so the unit depends on one physical page only), or before an
 * instruction whose bytes cannot be fetched (the fault is raised when the
 * guest gets there).  Returns NULL with a fault pending if not even the
 * first instruction can be fetched. :*/
static struct block *
translate(struct vcpu *v, gpa_t pa, struct block *b, int max)
{
    int code32 = vcpu_code32(v);
    u32 eip = v->eip, geip = eip;
    u32 cs_base = v->seg[SEG_CS].base;
    u32 glen = 0;
    u32 mask = code32 ? 0xffffffff : 0xffff;
    struct insn in;
    int idx = b - blocks;

    b->pa = pa;
    b->eip = eip;
    b->cs_base = cs_base;
    b->code32 = code32;
    b->tc = code32 ? tc_used : tc16_used;
    b->exit[0].site = b->exit[1].site = 0;
    b->in_head = -1;
    u8 *base = cache_of(code32);
    emit_p = base + b->tc;
    b->term = TERM_CONTINUE;
    int i = 0;
    const char *what = "continue";
    for (;;) {
        u8 bytes[16];
        int avail;
        u32 la = cs_base + geip;
        if (emulate_fetch(v, geip, bytes, &avail) != OK) {
            if (i == 0)
                return NULL;
            vfault.pending = 0;
            break;
        }
        int n = decode(bytes, avail, code32, &in);
        if (n < 0) {
            if (i > 0)
                break;
            if (n == DECODE_TOOLONG) {
                raise_gp(v, 0);
                return NULL;
            }
            /* The instruction runs into a page that cannot be fetched. */
            vmem_read(v, la + avail, bytes, 1, ACC_X | (v->cpl == 3 ? ACC_U : 0));
            return NULL;
        }
        if (i > 0 && (la & 0xfff) + n > PGSIZE)
            break;                              /* would straddle a page */
        if (i == max)
            break;
        b->goff[i] = geip - eip;
        if (!is_ident(&in)) {
            glen += n;
            what = in.info->name;
            if (max > 1 && is_direct_branch(&in, code32)) {
                /*B:040 A direct branch becomes jumps to continuations:
                 * Jcc to the taken exit, then JMP to the fall-through
                 * exit; a CALL first pushes the guest's return address
                 * (a fault there restarts the CALL). :*/
                u32 next = (geip + n) & mask, target = (next + in.imm) & mask;
                b->term = TERM_BRANCH;
                            if (in.info->emu == E_CALL) {
                    struct check c = { 0 };
                    if (bt_checks && code32) {
                        check_stack(&c, 4, -4);             /* the return address push */
                        emit_check(&c);
                    }
                    b->bcend = emit_p - base;
                    emit1(0x68);
                    if (code32)
                        emit4(next);
                    else
                        emit2(next);
                }
                if (in.info->emu == E_JCC) {
                    emit1(0x0f);
                    emit1(0x80 | (in.op & 0xf));
                    emit_exit_jump(b, 0, target);
                    emit1(0xe9);
                    emit_exit_jump(b, 1, next);
                } else {
                    emit1(0xe9);
                    emit_exit_jump(b, 0, target);
                }
            } else {
                b->term = TERM_EMULATE;
            }
            break;
        }
        emit_ident(b, i, bytes, &in, code32);
        glen += n;
        i++;
        geip = (geip + n) & mask;
        if ((in.flags & D_ENDS) || ((cs_base + geip) & 0xfff) == 0)
            break;
    }
    b->ninsn = i;
    if (b->term != TERM_BRANCH)
        b->goff[i] = geip - eip;
    if (b->term == TERM_EMULATE) {
            emit1(0xcd);                    /* int $T_CALLOUT */
        emit1(T_CALLOUT);
        emit4(REC(idx, 0));
    } else if (b->term == TERM_CONTINUE) {
            emit1(0xe9);
        emit_exit_jump(b, 0, geip);
    }
    emit_stubs(b, idx);
    b->tclen = emit_p - (base + b->tc);
    if (code32)
        tc_used = emit_p - tc;
    else
        tc16_used = emit_p - tc16;
    b->glen = glen;
    b->valid = 1;
    b->pa2 = ~0u;
    trace_add(v, pa, TR_CODE);
    if ((pa & 0xfff) + glen > PGSIZE) {
        gpa_t pa2;
        if (mmu_translate(v, cs_base + eip + (PGSIZE - (pa & 0xfff)), ACC_X | (v->cpl == 3 ? ACC_U : 0), &pa2) == OK) {
            b->pa2 = pa2 & PTE_FRAME;
            trace_add(v, pa2, TR_CODE);
        }
        vfault.pending = 0;
    }
    v->st.blocks++;
    if (opt_log & LOG_TRANSLATE)
        cprintf("translate: %04x:%08x pa %08x, %d IDENT + %s, %d bytes -> %s+%x\n",
                v->seg[SEG_CS].sel, eip, pa, i, what, glen, code32 ? "tc32" : "tc16", b->tc);
    return b;
}

static void
hash_remove(struct block *b)
{
    int idx = b - blocks;
    s16 *p = &hash[hash_of(b->pa, b->eip)];
    while (*p >= 0 && *p != idx)
        p = &blocks[*p].next;
    if (*p == idx)
        *p = b->next;
}

/* Find or make the unit for the guest's CS:EIP.  NULL with a fault
 * pending if the code cannot be fetched. */
static struct block *
lookup(struct vcpu *v)
{
    gpa_t pa;
    int code32 = vcpu_code32(v);
    u32 cs_base = v->seg[SEG_CS].base;
    if (mmu_translate(v, cs_base + v->eip, ACC_X | (v->cpl == 3 ? ACC_U : 0), &pa) != OK)
        return NULL;
    u32 h = hash_of(pa, v->eip);
    for (s16 i = hash[h]; i >= 0; i = blocks[i].next) {
        struct block *b = &blocks[i];
        if (b->pa == pa && b->eip == v->eip && b->cs_base == cs_base && b->code32 == code32)
            return b;
    }
    if (nblocks >= MAXBLOCKS || tc_used + TC_SLACK > TC_SIZE || tc16_used + TC_SLACK > TC16_SIZE)
        bt_flush("full");
    tc_open();
    struct block *b = translate(v, pa, &blocks[nblocks], MAXI);
    tc_close();
    if (!b)
        return NULL;
    nblocks++;
    b->next = hash[h];
    hash[h] = b - blocks;
    order[b->code32][norder[b->code32]++] = b - blocks;
    return b;
}

/* The unit whose translation holds TC offset `off` of cache `code32`. */
static struct block *
find_block(int code32, u32 off)
{
    struct block *s = &blocks[STEP_BLOCK];
    if (s->valid && s->code32 == code32 && off >= s->tc && off < s->tc + s->tclen)
        return s;
    int lo = 0, hi = norder[code32] - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (blocks[order[code32][mid]].tc <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (hi < 0)
        return NULL;
    struct block *b = &blocks[order[code32][lo]];
    return off >= b->tc && off < b->tc + b->tclen ? b : NULL;
}

/* Undo every chained jump into unit b: each goes back to its stub. */
static void
unchain_into(struct block *b)
{
    int idx = b - blocks;
    for (s16 e = b->in_head; e >= 0;) {
        struct block *src = &blocks[e >> 1];
        int x = e & 1;
        s16 next = src->exit[x].in_next;
        if (src->exit[x].chained == idx) {
            patch_exit(src, x, src->exit[x].stub);
            src->exit[x].chained = -1;
        }
        e = next;
    }
    b->in_head = -1;
}

/*C:010 Chaining.  Exit x of unit src has just run its continuation:
 * v->eip is its target.  If the target lies in the same guest page as
 * src, translate it (if need be) and patch src's jump to go straight
 * there next time.  Across pages the continuation stays: the guest's page
 * tables may map the next page elsewhere by the time the jump runs again
 * (the reason QEMU's tb_find will not chain across pages either). :*/
static void
chain(struct vcpu *v, struct block *src, int x)
{
    u32 gen = tc_generation;
    if (src == &blocks[STEP_BLOCK] || src->pa2 != ~0u ||
        ((src->cs_base + src->eip) >> PGSHIFT) != ((v->seg[SEG_CS].base + v->eip) >> PGSHIFT) ||
        src->cs_base != v->seg[SEG_CS].base || src->code32 != vcpu_code32(v))
        return;
    struct block *t = lookup(v);
    if (!t) {
        vfault.pending = 0;     /* the main loop looks it up again and delivers it */
        return;
    }
    if (gen != tc_generation || !src->valid || t->pa2 != ~0u || t->code32 != src->code32)
        return;
    patch_exit(src, x, t->tc);
    src->exit[x].chained = t - blocks;
    src->exit[x].in_next = t->in_head;
    t->in_head = (src - blocks) * 2 + x;
    v->st.chained++;
}

/*B:030 Translation-cache coherency.  Every page a unit was translated
 * from carries a TR_CODE trace (trace.c); a write that changes any of a
 * unit's guest bytes - through any linear alias, from either engine or
 * from the monitor itself - drops exactly the units it overlaps
 * (US 6,704,925: trace-based conflict detection). :*/
static int
overlaps(gpa_t a, u32 alen, gpa_t b, u32 blen)
{
    return a < b + blen && b < a + alen;
}

static void
code_written(struct vcpu *v, gpa_t pa, u32 n, const u8 *old, const u8 *new)
{
    for (int i = 0; i <= MAXBLOCKS; i++) {
        if (i == nblocks)
            i = STEP_BLOCK;
        struct block *b = &blocks[i];
        u32 len1 = PGSIZE - (b->pa & 0xfff);
        if (len1 > b->glen)
            len1 = b->glen;
        if (!b->valid || !(overlaps(b->pa, len1, pa, n) ||
                           (b->pa2 != ~0u && overlaps(b->pa2, b->glen - len1, pa, n))))
            continue;
        b->valid = 0;
        if (i != STEP_BLOCK)
            hash_remove(b);
        unchain_into(b);
        v->st.tc_invalidated++;
        if (opt_log & LOG_TRANSLATE)
            cprintf("translate: unit at %08x invalidated by a write to %08x\n", b->eip, pa);
    }
}

/* The guest offset of a TC offset inside unit b: instruction i if its
 * guest instruction has not completed, the next one if it has. */
static u32
tc_to_guest(struct block *b, u32 off)
{
    for (int i = 0; i < b->ninsn; i++)
        if (off < b->tend[i])
            return b->goff[i];
    return b->goff[b->ninsn];
}

/* The status flags and DF live in the hardware EFLAGS while translated
 * code runs; IF, IOPL, TF and the rest stay virtual. */
#define HW_FLAGS (EFLAGS_STATUS | EFLAGS_DF)

static void
host_cr0(struct vcpu *v)
{
    u32 want = (rcr0() & ~(CR0_TS | CR0_EM | CR0_MP | CR0_AM)) |
               (v->cr0 & (CR0_TS | CR0_EM | CR0_MP | CR0_AM));
    if (want != rcr0())
        lcr0(want);
}

/*H:040 A check fired: a checking callout, or #BR at one of our BOUNDs
 * (not the guest's own BOUND instruction).  Work out the instruction's
 * exact footprint; if it stays clear of the monitor, let it run as it is
 * (with EAX and ECX as the guest had them) and return 1.  An access that
 * really reaches the monitor's region leaves translated code (T_RELOC)
 * to be run relocated (H:050). :*/
static int
check_fired(struct vcpu *v, int code32)
{
    struct frame *f = &v->f;
    u32 off = code32 ? f->eip - (u32)tc : f->eip;
    u32 geip;
    struct block *b;
    int i;
    if (f->trapno == T_CALLOUT) {
        u8 *r = cache_of(code32) + off;
        u32 rec = r[0] | (r[1] << 8) | (r[2] << 16) | ((u32)r[3] << 24);
        if ((rec & 3) != 3)
            return 0;
        b = &blocks[rec >> 2];
        i = r[4];
        if ((rec >> 2) > MAXBLOCKS || i > b->ninsn)
            panic("check callout with a bad record %x", rec);
    } else {
        b = find_block(code32, off);
        if (!b)
            return 0;
        for (i = 0; i < b->ninsn && off - b->tc >= b->tend[i]; i++)
            ;
        if (i == b->ninsn && !(b->term == TERM_BRANCH && off - b->tc < b->bcend))
            return 0;
        if (i < b->ninsn && off - b->tc >= b->istart[i])
            return 0;                   /* the guest's own BOUND: its #BR */
        f->eax = tcdata.save_eax;
        f->ecx = tcdata.save_ecx;
    }
    geip = (b->eip + b->goff[i]) & (code32 ? ~0u : 0xffff);
    v->st.checks_tripped++;
    u32 save_eip = v->eip;
    v->eip = geip;
    int ok = footprint_ok(v, geip);
    if (!ok) {
        if (win_unrelocatable) {
            vm_stop(v, "the instruction at %04x:%08x reaches the monitor's region through more "
                    "than two segment registers: not supported", v->seg[SEG_CS].sel, geip);
            return 0;
        }
        /* Leave translated code; the next step runs it relocated. */
        window_access(v);
        f->trapno = T_RELOC;
        return 0;
    }
    v->eip = save_eip;
    f->eip = (code32 ? (u32)tc : 0) + b->tc + (i == b->ninsn ? b->bcend : b->cend[i]);
    return 1;
}

/* A check fired inside a relocated step.  Its footprint was verified
 * before the step (every access in the monitor's region is relocated),
 * so a checking callout just lets the instruction run; a #BR from one of
 * our BOUNDs means an access the footprint did not foresee: stop. */
static int
relocated_check(struct vcpu *v, struct block *b)
{
    struct frame *f = &v->f;
    u32 off = (b->code32 ? f->eip - (u32)tc : f->eip) - b->tc;
    if (f->trapno == T_CALLOUT) {
        u8 *r = cache_of(b->code32) + b->tc + off;
        if ((r[0] & 3) != 3)
            return 0;
        f->eip += 5;
        return 1;
    }
    if (b->ninsn && off < b->istart[0]) {
        vm_stop(v, "relocated instruction at %08x made an access the monitor did not foresee", v->eip);
        return 0;
    }
    return 0;                   /* the guest's own BOUND */
}

/* Enter unit b and run until the guest exits for something the monitor
 * must see; hidden page faults are filled and the unit resumed. */
static void
run_block(struct vcpu *v, struct block *b, int step)
{
    struct frame *f = &v->f;
    f->eip = b->code32 ? (u32)tc + b->tc : b->tc;
    f->cs = SEL(b->code32 ? GDT_BT_CS32 : GDT_BT_CS16, bt_ring);
    f->eflags = (v->eflags & HW_FLAGS) | EFLAGS_IF | EFLAGS_FIXED | (step ? EFLAGS_TF : 0);
    /* Alignment checks and CR4.TSD apply at CPL 3 only: with translated
     * code at ring 3 they can be the guest's own for guest user code, and
     * must be off for guest kernel code. */
    int user3 = bt_ring == 3 && v->cpl == 3;
    if (user3 && (v->cr0 & CR0_AM))
        f->eflags |= v->eflags & EFLAGS_AC;
    u32 cr4 = (rcr4() & ~CR4_TSD) | (user3 ? v->cr4 & CR4_TSD : 0);
    if (cr4 != rcr4())
        lcr4(cr4);
    shadow_sync_for_bt(v);
    shadow_engine(0);
    /* The hardware selectors change only when a segment register or the
     * shadows do (shadow.c, H:025). */
    static u32 hw_gen = ~0u, hw_sgen = ~0u;
    static u16 hw_sel[NSEG];
    if (hw_gen != v->seg_gen || hw_sgen != shadow_generation() || !hw_sel[SEG_CS]) {
        for (int s = 0; s < NSEG; s++) {
            int from_shadow;
            hw_sel[s] = shadow_hw_selector(v, s, &from_shadow);
            if (from_shadow)
                v->st.seg_shadow++;
            else if (hw_sel[s])
                v->st.seg_cached++;
        }
        hw_gen = v->seg_gen;
        hw_sgen = shadow_generation();
    }
    if (rl.active) {
        /* Re-base each relocated segment so its access lands on its
         * aliases, and let its checks pass there (H:050). */
        for (int j = 0; j < rl.n; j++) {
            int sr = rl.r[j].seg;
            struct seg *sg = &v->seg[sr];
            u32 attr = (sg->attr | SEG_S | SEG_P | STA_A) & ~(3u << 5);
            if (sr == SEG_CS)
                attr |= STA_R;
            else if (sr == SEG_SS || sg->mode != SM_PROT)
                attr = (attr & ~(STA_X | STA_E)) | STA_W;
            vmm_gdt[GDT_CACHED + sr] = desc_make(sg->base + alias_va(j, 0) - rl.r[j].la_page, 0xffffffff,
                                                 attr | (bt_ring << 5));
            hw_sel[sr] = SEL(GDT_CACHED + sr, bt_ring);
        }
        hw_gen = ~0u;
    }
    f->ss = hw_sel[SEG_SS];
    f->ds = hw_sel[SEG_DS];
    f->es = hw_sel[SEG_ES];
    f->fs = hw_sel[SEG_FS];
    f->gs = SEL(GDT_BT_GS, bt_ring);
    tcdata.sel_gs = hw_sel[SEG_GS];
    tcdata.sel_cs = hw_sel[SEG_CS];
    for (int s = 0; s < NSEG; s++)
        tcdata.bias[s] = v->seg[s].base + 0x80000000u;
    if (rl.active)
        for (int j = 0; j < rl.n; j++)
            tcdata.bias[rl.r[j].seg] = v->seg[rl.r[j].seg].base + 0x80000000u - rl.r[j].la_page;
    tcdata.bnd[0] = (s32)0x80000000;
    tcdata.bnd[1] = (s32)(0x80000000u + VMM_BASE - MARGIN - 1);
    if (bt_checks && !b->code32)
        for (int s = 0; s < NSEG; s++)
            if (s != SEG_CS && (v->seg[s].attr & SEG_P) && (u64)v->seg[s].base + 0x10000 + MARGIN > VMM_BASE) {
                vm_stop(v, "16-bit code at %04x:%04x with %s based at %08x, within reach of the "
                        "monitor: not supported", v->seg[SEG_CS].sel, v->eip,
                        "a segment", v->seg[s].base);
                return;
            }
    vmm_tss.esp0 = (u32)&f->v86_es;
    host_cr0(v);
    mmu_de_view(0);
    v->st.bt_entries++;
    u32 esp_hi = f->esp & 0xffff0000;
    int at_insn = 0;
    for (;;) {
        vm_enter(f, mmu_hw_cr3(v));    /* asked each time: a fault may replace it */
        v->st.traps[f->trapno & 0xff]++;
        if (step && f->trapno == T_DB && !trace_in_flight() && b->ninsn == 1) {
            /* Single-stepping one guest instruction: traps after the
             * check and the FS swap that precede it are not the guest's.
             * The instruction is done once EIP has passed it - or, for a
             * REP string instruction, has come back to it once more. */
            u32 off = (b->code32 ? f->eip - (u32)tc : f->eip) - b->tc;
            if (off < b->istart[0] || (off == b->istart[0] && !at_insn)) {
                at_insn = off == b->istart[0];
                ldr6(0);
                continue;
            }
        }
        if (rl.active && f->trapno == T_PF && rcr2() - alias_va(0, 0) < 2 * NRELOC * PGSIZE) {
            if (reloc_fault(v, rcr2(), f->err))
                continue;
            break;              /* the guest's #PF is pending */
        }
        if (rl.active && (f->trapno == T_CALLOUT || f->trapno == T_BR) && relocated_check(v, b))
            continue;
        if (v->stop_reason)
            return;
        if (!rl.active && (f->trapno == T_CALLOUT || f->trapno == T_BR) && check_fired(v, b->code32))
            continue;
        if (v->stop_reason)
            return;
        if (f->trapno == T_PF) {
            int r = mmu_page_fault(v, rcr2(), f->err);
            if (r == PF_HIDDEN)
                continue;       /* hidden: resume the unit where it faulted */
            if (r == PF_TRACED) {
                f->eflags |= EFLAGS_TF;
                continue;       /* (a write that straddles two traced pages comes here twice) */
            }
            if (r == STOP)
                return;
            if (r == PF_WINDOW) {
                struct block *cur = find_block(b->code32, b->code32 ? f->eip - (u32)tc : f->eip);
                u32 save = v->eip;
                if (cur)
                    v->eip = (cur->eip + tc_to_guest(cur, (b->code32 ? f->eip - (u32)tc : f->eip) - cur->tc)) &
                             (b->code32 ? ~0u : 0xffff);
                v->eflags = (v->eflags & ~HW_FLAGS) | (f->eflags & HW_FLAGS);
                bt_window_fault(v, rcr2());
                v->eip = save;
                f->trapno = T_RELOC;
                break;
            }
            /* true: walk() left the guest's #PF pending for exit_block */
        }
        if (trace_in_flight()) {
            /* A traced write has been carried out (trace.c).  If the
             * single-step trap was only ours, carry on in this unit -
             * unless the write changed the unit's own code. */
            trace_end_write(v);
            if (f->trapno == T_DB && !step && (rdr6() & 0x4000)) {
                ldr6(0);
                f->eflags &= ~EFLAGS_TF;
                struct block *cur = find_block(b->code32, b->code32 ? f->eip - (u32)tc : f->eip);
                if (cur && cur->valid)
                    continue;
                f->trapno = T_TRACED;
                break;
            }
            if (!step)
                f->eflags &= ~EFLAGS_TF;
        }
        break;
    }
    if (rl.active)
        reloc_finish(v);
    if (rcr4() & CR4_TSD)
        lcr4(rcr4() & ~CR4_TSD);
    v->eflags = (v->eflags & ~HW_FLAGS) | (f->eflags & HW_FLAGS);
    /* With a 16-bit stack segment, IRET into the guest loads only SP;
     * the upper half of ESP keeps the monitor's (SDM Vol. 2A, IRET; the
     * reason for Linux's "espfix").  The guest's upper half is its own. */
    if (!(v->seg[SEG_SS].attr & SEG_DB))
        f->esp = esp_hi | (f->esp & 0xffff);
}

/* After an exit from translated code that was entered at unit b (and
 * may have run on through chained units): put the guest state back at an
 * instruction boundary and handle what made it exit. */
static void
exit_block(struct vcpu *v, struct block *entered)
{
    struct frame *f = &v->f;
    int code32 = entered->code32;
    u32 off = code32 ? f->eip - (u32)tc : f->eip;
    u32 trap = f->trapno;

    if (trap == T_ENTRYFAIL) {
        vm_stop(v, "could not enter translated code (vector %d, error %x)", f->err >> 16, f->err & 0xffff);
        return;
    }
    if (trap == T_CALLOUT) {
        u8 *r = cache_of(code32) + off;
        u32 rec = r[0] | (r[1] << 8) | (r[2] << 16) | ((u32)r[3] << 24);
        int kind = rec & 3;
        if (off + 4 > (code32 ? TC_SIZE : TC16_SIZE) ||
            ((rec >> 2) >= (u32)nblocks && (rec >> 2) != STEP_BLOCK) || kind == 3)
            panic("callout from TC offset %x with a bad record %x", off, rec);
        struct block *b = &blocks[rec >> 2];
        v->st.callout_exits++;
        if (kind == 0) {
            v->eip = (b->eip + b->goff[b->ninsn]) & (code32 ? ~0u : 0xffff);
            emulate_one(v);     /* NOT_EMULATED: rewritten since; retranslated next */
        } else {
            v->eip = b->exit[kind - 1].target;
            chain(v, b, kind - 1);
        }
        return;
    }
    struct block *b = find_block(code32, off);
    if (!b)
        panic("exit %d at TC offset %x belongs to no unit", trap, off);
    v->eip = (b->eip + tc_to_guest(b, off - b->tc)) & (code32 ? ~0u : 0xffff);
    if (trap == T_TRACED)
        return;                 /* the unit's code changed: retranslate from v->eip */
    if (trap == T_RELOC) {
        v->eip = rl.geip;       /* the next step runs it relocated */
        return;
    }
    if (trap == T_DB) {
        /* Single-stepping (bt_step): TF was set only for this unit. */
        u32 dr6 = rdr6();
        ldr6(0);
        emulate_deliver_debug(v, dr6 & 0x400f ? dr6 & 0x400f : 0x4000);
        return;
    }
    if (trap < 32) {
        /* A fault in an IDENT instruction: the guest's own.  A true #PF
         * is already pending, with the guest's error code (mmu.c). */
        if (trap != T_PF)
            raise_fault(v, trap, f->err);
        emulate_deliver_pending(v);
        return;
    }
    /* A host interrupt: nothing to do for the guest yet. */
}

/* Translate the one instruction at the guest's CS:EIP into the
 * single-step unit; NULL (with the fault delivered) if it cannot be
 * fetched. */
static struct block *
translate_step(struct vcpu *v)
{
    gpa_t pa;
    if (mmu_translate(v, v->seg[SEG_CS].base + v->eip, ACC_X | (v->cpl == 3 ? ACC_U : 0), &pa) != OK) {
        emulate_deliver_pending(v);
        return NULL;
    }
    if (tc_used + TC_SLACK > TC_SIZE || tc16_used + TC_SLACK > TC16_SIZE)
        bt_flush("full");
    tc_open();
    struct block *b = translate(v, pa, &blocks[STEP_BLOCK], 1);
    tc_close();
    if (!b)
        emulate_deliver_pending(v);
    return b;
}

/* TF is set: run exactly one guest instruction, then deliver #DB. */
static void
bt_step(struct vcpu *v)
{
    int r = emulate_one(v);
    if (r != NOT_EMULATED)
        return;
    struct block *b = translate_step(v);
    if (!b)
        return;
    run_block(v, b, 1);
    if (!v->stop_reason)
        exit_block(v, b);
}

/* Run the instruction at v->eip once, alone, single-stepped, with the
 * segments in rl.r[] relocated (none: just this one step, for a string
 * instruction whose later elements reach the monitor's region). */
static void
relocated_step(struct vcpu *v)
{
    rl.pending = 0;
    v->st.relocated++;
    struct block *b = translate_step(v);
    if (!b)
        return;
    if (b->ninsn != 1) {
        /* Not an IDENT instruction: the emulator reaches any address
         * through the guest's own tables. */
        emulate_one(v);
        return;
    }
    u32 tf = v->eflags & EFLAGS_TF;
    rl.active = 1;
    run_block(v, b, 1);
    if (v->stop_reason)
        return;
    if (v->f.trapno == T_DB) {
        struct frame *f = &v->f;
        u32 off = (b->code32 ? f->eip - (u32)tc : f->eip) - b->tc;
        ldr6(0);
        v->eip = (b->eip + tc_to_guest(b, off)) & (b->code32 ? ~0u : 0xffff);
        if (tf)
            emulate_deliver_debug(v, 0x4000);
        return;
    }
    exit_block(v, b);
}

/*B:000 Run the guest by translation until it needs the monitor: one
 * unit, then its callout or fault. :*/
void
bt_run(struct vcpu *v)
{
    if (rl.pending) {
        relocated_step(v);
        return;
    }
    if (v->eflags & EFLAGS_TF) {
        bt_step(v);
        return;
    }
    struct block *b = lookup(v);
    if (!b) {
        emulate_deliver_pending(v);
        return;
    }
    run_block(v, b, 0);
    if (!v->stop_reason)
        exit_block(v, b);
}
