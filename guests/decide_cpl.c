/*
 * decide_cpl -- the same computation in ring 0 and in ring 3.
 *
 * Tests:   a mixed integer workload (an LCG-filled buffer, its sum/xor/
 *          rotate checksum, 32x32->64 multiplications, divisions, a
 *          bubble sort, a string hash, flags from adc/sbb chains) run once
 *          at CPL 0 and once at CPL 3; both results printed and compared
 *          with each other and with the known answer.
 * Exercises: the execution-mode decision on CPL (docs/02-decision.md):
 *          the CPL-0 run goes through the binary translator
 *          (docs/08-translation.md),
 *          the CPL-3 run through direct execution (docs/03-direct.md); the
 *          results must be the same.
 * Monitor exits expected: none during either computation; the iret to
 *          ring 3 (switch to direct execution) and the int $0x80 SYS_EXIT
 *          (#GP exit reflected to the guest) around the ring-3 run; COM1
 *          port I/O callouts.
 */
#include "guest.h"

struct result {
    uint32_t sum, xr, rot, mulhi, mullo, div, sorted, hash, carry;
};

static uint32_t work[512];
static struct result res[2];

static uint32_t compute(uint32_t which)
{
    struct result *r = &res[which];
    uint32_t x = 0x2545f491;
    for (int i = 0; i < 512; i++) {
        x = x * 1664525u + 1013904223u;
        work[i] = x;
    }
    uint32_t sum = 0, xr = 0, rot = 0;
    for (int i = 0; i < 512; i++) {
        sum += work[i];
        xr ^= work[i];
        rot = ((rot << 5) | (rot >> 27)) ^ work[i];
    }
    r->sum = sum;
    r->xr = xr;
    r->rot = rot;

    uint64_t acc = 1;
    for (int i = 0; i < 16; i++)
        acc = acc * (work[i] | 1) + work[i + 16];
    r->mulhi = (uint32_t)(acc >> 32);
    r->mullo = (uint32_t)acc;

    uint32_t d = 0;
    for (int i = 0; i < 64; i++)
        d += work[i] / ((work[i + 64] >> 20) | 1) + work[i] % 1000003u;
    r->div = d;

    /* Bubble sort 64 elements by their top byte; result: a positional hash. */
    uint32_t s[64];
    for (int i = 0; i < 64; i++)
        s[i] = work[i] >> 24;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j + 1 < 64 - i; j++)
            if (s[j] > s[j + 1]) {
                uint32_t t = s[j];
                s[j] = s[j + 1];
                s[j + 1] = t;
            }
    uint32_t sh = 0;
    for (int i = 0; i < 64; i++)
        sh = sh * 31 + s[i] * (uint32_t)(i + 1);
    r->sorted = sh;

    static const char text[] = "Direct execution of user code, binary translation of kernel code.";
    uint32_t h = 2166136261u;
    for (const char *p = text; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    r->hash = h;

    /* 96-bit addition chain with adc, then an sbb chain: carry-flag use. */
    uint32_t lo = 0, mid = 0, hi = 0;
    for (int i = 0; i < 256; i++) {
        __asm__("addl %3, %0\n\t"
                "adcl %4, %1\n\t"
                "adcl $0, %2"
                : "+r"(lo), "+r"(mid), "+r"(hi)
                : "r"(work[i]), "r"(work[511 - i])
                : "cc");
    }
    uint32_t borrow;
    __asm__("subl %3, %0\n\t"
            "sbbl %4, %1\n\t"
            "sbbl %2, %2"
            : "+r"(lo), "+r"(mid), "=&r"(borrow)
            : "r"(hi), "r"(x)
            : "cc");
    r->carry = lo ^ mid ^ hi ^ borrow;

    return sum ^ xr ^ rot ^ r->mulhi ^ r->mullo ^ d ^ sh ^ h ^ r->carry;
}

static uint32_t user_compute(uint32_t which)
{
    uint32_t cs = READ_SEG(cs);
    uint32_t v = compute(which);
    return v ^ (cs & 3) ^ 3;    /* == v when running at CPL 3 */
}

static void show(const char *ring, const struct result *r, uint32_t v)
{
    printf("%s: sum=0x%08x xor=0x%08x rot=0x%08x mul=0x%08x%08x div=0x%08x sorted=0x%08x hash=0x%08x carry=0x%08x -> 0x%08x\n",
           ring, r->sum, r->xr, r->rot, r->mulhi, r->mullo, r->div, r->sorted, r->hash, r->carry, v);
}

int main(uint32_t magic, struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    print("decide_cpl: the same computation at CPL 0 and CPL 3\n");
    cpu_init();

    uint32_t k = compute(0);
    show("ring0", &res[0], k);
    /* IF=1, IOPL=0: the ordinary user-mode state, so ring 3 can run
     * directly (IF=0 would force translation for a different reason). */
    uint32_t u = run_user(user_compute, 1, EFL_IF);
    show("ring3", &res[1], u);

    check_eq("same_result", u, k);
    check_true("same_details", memcmp(&res[0], &res[1], sizeof res[0]) == 0, "intermediate results differ");
    check_eq("hash_known", res[0].hash, 0xfea3560a);
    printf("decide_cpl: done, %d failures\n", failures);
    return failures;
}
