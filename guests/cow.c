/*
 * cow -- many address spaces and copy-on-write, fork style.
 *
 * Tests:   a kernel with paging builds one process (pid 0) whose user
 *          region at 0x40000000 holds a private page, a shared page, a
 *          page written twice, a "magic" page, a not-present page and a
 *          two-page user stack, all in one page table of its own (the
 *          kernel's 4 MiB identity map is one page table shared by every
 *          address space).  The process runs in ring 3 with IF=1 and forks
 *          eight children with an int $0x80 system call: the kernel copies
 *          the page directory and the user page table, marks every writable
 *          user page read-only (and copy-on-write) in parent and child, and
 *          counts references per frame.  The child resumes from a copy of
 *          the parent's trap frame (fork returns 0) on the parent's stack
 *          contents.  Each process prints its pid and what it reads, writes
 *          its private page (a #PF with error code 7 that the kernel
 *          resolves by copying the frame, or by making it writable when the
 *          process is its last user), writes another page twice (one fault),
 *          and two processes write the shared page.  Processes switch only
 *          by yield/exit system calls, the kernel loading the next one's
 *          CR3.  While pid 1 runs, the kernel retargets pid 4's PTE for
 *          the magic page to a new frame and maps the not-present page for
 *          pid 7, writing their page tables through its own identity
 *          mapping; pids 4 and 7 then see the new mappings (a CR3 load
 *          flushes the TLB).  At the end the kernel loads every CR3 in turn
 *          and prints what each address space holds, the per-process COW
 *          fault counts and the frame reference counts.
 * Exercises: shadow page tables across many guest CR3 values and page-table
 *          pages shared between address spaces, tracing of guest page
 *          tables written by the guest kernel while they are not the
 *          current ones, true #PF reflection from directly executed ring-3
 *          code for write-protection faults, shadow invalidation on invlpg
 *          and CR3 writes (docs/06-memory.md, docs/07-tracing.md).
 * Monitor exits expected: #GP exits for the int $0x80 system calls from
 *          ring 3 (direct execution); hidden page faults filling shadows
 *          after each CR3 switch; true #PF (err 7) reflected for every COW
 *          write; traced writes to guest page tables (fork, COW fix-ups,
 *          the remote PTE changes); mov to CR3 and invlpg callouts; COM1
 *          port I/O callouts.
 */
#include "guest.h"

#define NPROC     9             /* pid 0 and eight children */
#define NFRAMES   96
#define UBASE     0x40000000u
#define UPDI      (UBASE >> 22)

/* Pages of the user region, by index from UBASE. */
enum { PG_PRIV, PG_SHARED, PG_TWICE, PG_MAGIC, PG_LATE, PG_STK0, PG_STK1, NUPAGES };
#define UVA(i)    (UBASE + (uint32_t)(i) * PG_SIZE)
#define USTACK_TOP (UVA(PG_STK1) + PG_SIZE - 16)

#define PG_COW    0x200         /* an "available" PTE bit: write means copy */

#define SYS_FORK   16
#define SYS_GETPID 17
#define SYS_YIELD  18
#define SYS_PEXIT  19

static uint32_t pds[NPROC][1024] ALIGNED(4096);
static uint32_t upts[NPROC][1024] ALIGNED(4096);
static uint32_t kpt[1024] ALIGNED(4096);
static uint8_t fpool[NFRAMES][PG_SIZE] ALIGNED(4096);
static uint32_t refcnt[NFRAMES];
static uint32_t nframes_used;

enum { P_FREE, P_RUNNABLE, P_EXITED };
static struct proc {
    int state;
    uint32_t frame[offsetof(struct trapframe, v86_es) / 4];   /* saved trap frame */
    uint32_t cow_faults;
    uint32_t cow_copies;
    uint32_t yields;
    uint32_t result;
} procs[NPROC];
static uint32_t nproc, cur;
static uint32_t magic_frame, late_frame;

/* ------------------------------------------------------------ frames */

static uint32_t frame_alloc(void)
{
    if (nframes_used >= NFRAMES) {
        print("cow: out of frames\n");
        exit(EXIT_UNEXPECTED_TRAP);
    }
    uint32_t i = nframes_used++;
    refcnt[i] = 1;
    return (uint32_t)fpool[i];
}

static uint32_t frame_index(uint32_t pa)
{
    return (PG_FRAME(pa) - (uint32_t)fpool[0]) / PG_SIZE;
}

/* "f12 PWU C" style description of a PTE: frame index and flags (the
 * Accessed/Dirty bits are left out on purpose). */
static const char *pte_desc(uint32_t pte, char *buf)
{
    if (!(pte & PG_P)) {
        snprintf(buf, 32, "not-present(0x%08x)", pte);
        return buf;
    }
    snprintf(buf, 32, "f%u %c%c%c%s", frame_index(pte), 'P',
             pte & PG_W ? 'W' : '-', pte & PG_U ? 'U' : '-', pte & PG_COW ? " cow" : "");
    return buf;
}

/* ------------------------------------------------------------ kernel side */

static void load_frame(struct trapframe *f, uint32_t pid)
{
    memcpy(f, procs[pid].frame, sizeof procs[pid].frame);
}

static void save_frame(struct trapframe *f, uint32_t pid)
{
    memcpy(procs[pid].frame, f, sizeof procs[pid].frame);
}

/* While pid 1 runs: change the page tables of two processes that are not
 * running, through the kernel's own (identity) mapping of them. */
static void remote_pte_changes(void)
{
    char b0[32], b1[32];
    uint32_t *pte4 = &upts[4][PG_MAGIC];
    uint32_t old4 = *pte4;
    refcnt[frame_index(old4)]--;
    *pte4 = magic_frame | PG_P | PG_U;
    printf("kernel (pid %u running, cr3=pd%u): pid 4 magic pte %s -> %s\n", cur,
           (read_cr3() - (uint32_t)pds[0]) / PG_SIZE, pte_desc(old4, b0), pte_desc(*pte4, b1));
    uint32_t *pte7 = &upts[7][PG_LATE];
    uint32_t old7 = *pte7;
    *pte7 = late_frame | PG_P | PG_W | PG_U;
    printf("kernel (pid %u running): pid 7 late pte %s -> %s\n", cur,
           pte_desc(old7, b0), pte_desc(*pte7, b1));
}

/* Switch to the next runnable process after `from`, or end the excursion
 * when none is left. */
static void schedule(struct trapframe *f, uint32_t from)
{
    for (uint32_t k = 1; k <= nproc; k++) {
        uint32_t n = (from + k) % nproc;
        if (procs[n].state != P_RUNNABLE)
            continue;
        if (n != cur || procs[cur].state != P_RUNNABLE) {
            if (procs[cur].state == P_RUNNABLE)
                save_frame(f, cur);
            cur = n;
            write_cr3((uint32_t)pds[n]);
            load_frame(f, n);
        }
        return;
    }
    printf("kernel: all %u processes exited\n", nproc);
    user_return(f, 0);
}

static int do_fork(struct trapframe *f)
{
    if (nproc >= NPROC) {
        f->eax = (uint32_t)-1;
        return 1;
    }
    uint32_t c = nproc++;
    uint32_t *ppt = upts[cur], *cpt = upts[c];
    memset(pds[c], 0, PG_SIZE);
    memset(cpt, 0, PG_SIZE);
    pds[c][0] = (uint32_t)kpt | PG_P | PG_W | PG_U;
    pds[c][UPDI] = (uint32_t)cpt | PG_P | PG_W | PG_U;
    uint32_t shared = 0, marked = 0;
    for (int i = 0; i < NUPAGES; i++) {
        uint32_t pte = ppt[i];
        if (!(pte & PG_P))
            continue;
        if (pte & PG_W) {
            pte = (pte & ~PG_W) | PG_COW;
            marked++;
        }
        pte &= ~(PG_A | PG_D);
        ppt[i] = (ppt[i] & (PG_A | PG_D)) | pte;
        cpt[i] = pte;
        refcnt[frame_index(pte)]++;
        shared++;
    }
    /* The parent's TLB may hold writable entries: flush them. */
    write_cr3(read_cr3());
    procs[c].state = P_RUNNABLE;
    memcpy(procs[c].frame, f, sizeof procs[c].frame);
    ((struct trapframe *)procs[c].frame)->eax = 0;
    printf("kernel: fork pid %u -> pid %u: %u pages shared, %u newly copy-on-write\n",
           cur, c, shared, marked);
    f->eax = c;
    return 1;
}

static int cow_syscall(struct trapframe *f)
{
    switch (f->eax) {
    case SYS_FORK:
        return do_fork(f);
    case SYS_GETPID:
        f->eax = cur;
        return 1;
    case SYS_YIELD:
        procs[cur].yields++;
        if (cur == 1 && procs[cur].yields == 2)
            remote_pte_changes();
        f->eax = 0;
        schedule(f, cur);
        return 1;
    case SYS_PEXIT:
        procs[cur].result = f->ebx;
        procs[cur].state = P_EXITED;
        printf("kernel: pid %u exits with 0x%08x after %u COW faults (%u copies)\n",
               cur, f->ebx, procs[cur].cow_faults, procs[cur].cow_copies);
        schedule(f, cur);
        return 1;
    }
    return 0;
}

static void cow_fault(struct trapframe *f)
{
    uint32_t cr2 = read_cr2();
    uint32_t *pte = (cr2 >> 22) == UPDI && ((cr2 - UBASE) >> 12) < NUPAGES
                    ? &upts[cur][(cr2 - UBASE) >> 12] : 0;
    if (!tf_from_user(f) || f->err != (PG_P | PG_W | PG_U) || !pte ||
        (*pte & (PG_P | PG_W | PG_COW)) != (PG_P | PG_COW)) {
        print_trapframe("UNEXPECTED #PF", f);
        printf("UNEXPECTED #PF: cr2=0x%08x pid=%u pte=0x%08x\n", cr2, cur, pte ? *pte : 0);
        exit(EXIT_UNEXPECTED_TRAP);
    }
    char b0[32], b1[32];
    uint32_t old = *pte, fi = frame_index(old);
    procs[cur].cow_faults++;
    if (refcnt[fi] == 1) {
        *pte = (old & ~PG_COW) | PG_W;
        printf("cow: pid %u write va=0x%08x err=%u eip=0x%08x: last user, %s -> %s\n",
               cur, cr2, f->err, f->eip, pte_desc(old, b0), pte_desc(*pte, b1));
    } else {
        uint32_t nf = frame_alloc();
        memcpy((void *)nf, (void *)PG_FRAME(old), PG_SIZE);
        refcnt[fi]--;
        *pte = nf | PG_P | PG_W | PG_U;
        procs[cur].cow_copies++;
        printf("cow: pid %u write va=0x%08x err=%u eip=0x%08x: copy, %s -> %s (f%u refs now %u)\n",
               cur, cr2, f->err, f->eip, pte_desc(old, b0), pte_desc(*pte, b1), fi, refcnt[fi]);
    }
    invlpg(cr2);
}

/* ------------------------------------------------------------ ring 3 */

static inline uint32_t sys0(uint32_t n) { return syscall3(n, 0, 0, 0); }

#define UW(i, w) (((volatile uint32_t *)UVA(i))[w])

static uint32_t proc_body(uint32_t pid)
{
    uprintf("pid %u: start priv=0x%08x shared=0x%08x magic=0x%08x twice=0x%08x\n",
            pid, UW(PG_PRIV, 0), UW(PG_SHARED, 0), UW(PG_MAGIC, 0), UW(PG_TWICE, 0));
    sys0(SYS_YIELD);

    UW(PG_PRIV, 0) = 0xc0de0000u | pid;        /* COW fault */
    UW(PG_PRIV, 1) += pid;                      /* now writable */
    uprintf("pid %u: wrote priv=0x%08x priv[1]=0x%08x priv[2]=0x%08x\n",
            pid, UW(PG_PRIV, 0), UW(PG_PRIV, 1), UW(PG_PRIV, 2));
    sys0(SYS_YIELD);

    UW(PG_TWICE, 0) = 2 * pid;                  /* COW fault */
    UW(PG_TWICE, 0) += 1;                       /* no fault */
    if (pid == 3 || pid == 6)
        UW(PG_SHARED, 0) = 0x5eed0000u | pid;   /* COW fault */
    uprintf("pid %u: twice=0x%08x shared=0x%08x\n", pid, UW(PG_TWICE, 0), UW(PG_SHARED, 0));
    sys0(SYS_YIELD);

    uint32_t late = 0;
    if (pid == 7)
        late = UW(PG_LATE, 0);
    uprintf("pid %u: after remote change: magic=0x%08x late=0x%08x priv=0x%08x shared=0x%08x\n",
            pid, UW(PG_MAGIC, 0), late, UW(PG_PRIV, 0), UW(PG_SHARED, 0));
    sys0(SYS_YIELD);

    return UW(PG_PRIV, 0) ^ UW(PG_TWICE, 0) ^ UW(PG_SHARED, 0) ^ UW(PG_MAGIC, 0) ^ late;
}

static NORETURN void user_entry(void)
{
    uint32_t pid = 0;
    UW(PG_PRIV, 2) = 0xbeef;                    /* before any fork: no fault */
    for (uint32_t i = 1; i < NPROC; i++) {
        uint32_t r = sys0(SYS_FORK);
        if (r == 0) {
            pid = sys0(SYS_GETPID);
            uprintf("pid %u: fork returned 0 in the child (loop i=%u)\n", pid, i);
            break;
        }
        if (r != i)
            uprintf("pid 0: fork returned %u, expected %u\n", r, i);
    }
    if (pid == 0)
        uprintf("pid 0: forked %u children\n", (uint32_t)NPROC - 1);
    uint32_t res = proc_body(pid);
    syscall3(SYS_PEXIT, res, 0, 0);
    for (;;)
        ;
}

/* ------------------------------------------------------------ main */

static uint32_t expect_result(uint32_t p)
{
    uint32_t priv = 0xc0de0000u | p, twice = 2 * p + 1;
    uint32_t shared = (p == 3 || p == 6) ? 0x5eed0000u | p : 0x5a5a0000u;
    uint32_t magic = p == 4 ? 0x3a61f00du : 0x3a610000u;
    uint32_t late = p == 7 ? 0x1a7e0007u : 0;
    return priv ^ twice ^ shared ^ magic ^ late;
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("cow: fork, copy-on-write, nine address spaces\n");
    cpu_init();
    if ((uint32_t)__image_end > (4u << 20)) {
        print("cow: image too large\n");
        return 1;
    }

    for (uint32_t i = 0; i < 1024; i++)
        kpt[i] = (i << 12) | PG_P | PG_W | PG_U;

    /* pid 0: user region pages, all writable before the first fork. */
    uint32_t *pd0 = pds[0], *pt0 = upts[0];
    memset(pd0, 0, PG_SIZE);
    memset(pt0, 0, PG_SIZE);
    pd0[0] = (uint32_t)kpt | PG_P | PG_W | PG_U;
    pd0[UPDI] = (uint32_t)pt0 | PG_P | PG_W | PG_U;
    for (int i = 0; i < NUPAGES; i++) {
        if (i == PG_LATE)
            continue;
        uint32_t fr = frame_alloc();
        memset((void *)fr, 0, PG_SIZE);
        pt0[i] = fr | PG_P | PG_W | PG_U;
    }
    magic_frame = frame_alloc();
    late_frame = frame_alloc();
    ((uint32_t *)magic_frame)[0] = 0x3a61f00du;
    ((uint32_t *)late_frame)[0] = 0x1a7e0007u;
    ((uint32_t *)PG_FRAME(pt0[PG_PRIV]))[0] = 0x0a0a0000u;
    ((uint32_t *)PG_FRAME(pt0[PG_PRIV]))[1] = 0x100u;
    ((uint32_t *)PG_FRAME(pt0[PG_SHARED]))[0] = 0x5a5a0000u;
    ((uint32_t *)PG_FRAME(pt0[PG_MAGIC]))[0] = 0x3a610000u;

    set_trap_handler(VEC_PF, cow_fault);
    syscall_hook = cow_syscall;
    nproc = 1;
    cur = 0;
    procs[0].state = P_RUNNABLE;

    paging_enable(pd0, 1);
    printf("paging on, cr0=0x%08x, cr3=pd0; %u frames in use\n", read_cr0(), nframes_used);

    uint32_t r = enter_user((uint32_t)user_entry, USTACK_TOP, EFL_IF);
    printf("back in the kernel: 0x%x, cr3=pd%u\n", r, (read_cr3() - (uint32_t)pds[0]) / PG_SIZE);
    check_eq("all_processes_ran", nproc, NPROC);

    /* What every address space holds now, read by the kernel with each
     * CR3 loaded in turn. */
    for (uint32_t p = 0; p < nproc; p++) {
        write_cr3((uint32_t)pds[p]);
        uint32_t priv = UW(PG_PRIV, 0), priv1 = UW(PG_PRIV, 1), priv2 = UW(PG_PRIV, 2);
        uint32_t shared = UW(PG_SHARED, 0), twice = UW(PG_TWICE, 0), mg = UW(PG_MAGIC, 0);
        char b0[32], b1[32];
        printf("as %u: priv=0x%08x/0x%08x/0x%08x shared=0x%08x twice=0x%08x magic=0x%08x "
               "cow=%u copies=%u result=0x%08x\n",
               p, priv, priv1, priv2, shared, twice, mg, procs[p].cow_faults, procs[p].cow_copies,
               procs[p].result);
        printf("as %u: priv pte %s, shared pte %s\n", p,
               pte_desc(upts[p][PG_PRIV], b0), pte_desc(upts[p][PG_SHARED], b1));
        int ok = priv == (0xc0de0000u | p) && priv1 == 0x100u + p && priv2 == 0xbeef &&
                 shared == ((p == 3 || p == 6) ? 0x5eed0000u | p : 0x5a5a0000u) &&
                 twice == 2 * p + 1 && mg == (p == 4 ? 0x3a61f00du : 0x3a610000u) &&
                 procs[p].result == expect_result(p) && procs[p].cow_faults >= 2 &&
                 procs[p].state == P_EXITED;
        char name[24];
        snprintf(name, sizeof name, "as%u_contents", p);
        check_true(name, ok, "unexpected contents");
    }
    write_cr3((uint32_t)pd0);

    /* The shared page's frame is still the parent's original for all but
     * the two writers (and whoever ended up with the last reference). */
    uint32_t orig_shared = frame_index(upts[0][PG_SHARED]);
    uint32_t same = 0;
    for (uint32_t p = 0; p < nproc; p++)
        same += frame_index(upts[p][PG_SHARED]) == orig_shared;
    printf("shared page: %u address spaces still map frame f%u (refs %u)\n",
           same, orig_shared, refcnt[orig_shared]);
    check_eq("shared_frame_users", same, refcnt[orig_shared]);
    printf("frames: %u used; refs:", nframes_used);
    for (uint32_t i = 0; i < nframes_used; i++)
        printf(" %u", refcnt[i]);
    print("\n");

    paging_disable();
    printf("cow: done, %d failures\n", failures);
    return failures;
}
