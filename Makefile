# Makefile -- build the monitor, its guests, and run, test and measure them.
#
#   make          build build/vmm.elf and every guest
#   make run      boot the demo guest under the monitor (installs what it lacks)
#   make test     the equivalence tests and the decoder unit tests
#   make bench    nanobenchmarks, native and under the monitor, with -icount
#   make fuzz     the differential fuzzers (FUZZ_GUEST=fuzz, descfuzz or
#                 ptfuzz), native vs the monitor
#   make soak     Linux under the monitor for a long workload, checked
#   make debug    the monitor under gdb (GUEST=NAME), docs/observing.md
#   make labs     every lab's commands (docs/labs/), LAB=N for one
#   make deps     install the tools (qemu-system-x86, gcc-multilib, binutils)

CC      := gcc
LD      := ld
CFLAGS  := -m32 -march=i686 -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
           -fno-builtin -nostdlib -O2 -g -Wall -Wextra -Wno-unused-parameter \
           -mgeneral-regs-only -fno-asynchronous-unwind-tables \
           -fno-tree-loop-distribute-patterns -std=gnu11
ASFLAGS := -m32 -march=i686 -fno-pic -fno-pie
LDFLAGS := -m elf_i386 -T vmm.ld -nostdlib -static -z max-page-size=0x1000 \
           -z noexecstack --no-warn-rwx-segments --build-id=none

VMM_OBJS := boot.o vmm.o load.o mmu.o segtrack.o shadow.o trace.o decode.o \
            emulate.o bt.o direct.o dev.o
VMM_OBJS := $(addprefix build/,$(VMM_OBJS))
HEADERS  := vmm.h x86.h decode.h multiboot.h

.PHONY: all run test bench fuzz soak tcdump debug labs deps clean guest-list walkthrough deviations
all: deps-check build/vmm.elf guests

build/%.o: %.c $(HEADERS)
	@mkdir -p build
	$(CC) $(CFLAGS) -c $< -o $@

build/%.o: %.S x86.h
	@mkdir -p build
	$(CC) $(ASFLAGS) -c $< -o $@

build/vmm.elf: $(VMM_OBJS) vmm.ld
	$(LD) $(LDFLAGS) -o $@ $(VMM_OBJS) $(shell $(CC) -m32 -print-libgcc-file-name)

include guests/guests.mk

# Install whatever is missing (Debian/Ubuntu).  Nothing if all is there.
GUEST ?= demo
deps deps-check:
	@scripts/deps.sh

# make run GUEST=NAME boots another guest of guests/ (GUEST=linux: Debian's
# kernel to an interactive busybox shell, fetched once; Ctrl-A X leaves).
run: all
	@# QEMU exits with (code << 1) | 1: status 1 is the guest's exit(0)
	@if [ "$(GUEST)" = linux ]; then sh tests/linux.sh shell vmm || [ $$? -eq 1 ]; \
	else scripts/vmm build/guests/$(GUEST).elf $(ARGS) || [ $$? -eq 1 ]; fi

test: all
	tests/run.sh

bench: all
	tests/bench.sh

# Random instruction sequences on bare QEMU and under the monitor, their
# digests compared; the first difference explained (tests/fuzz.sh):
# make fuzz SEED=7 COUNT=20000 FUZZ_ARGS=paging
# The descriptor-table and page-table fuzzers the same way (COUNT is
# operations for descfuzz, rounds of eight steps for ptfuzz):
# make fuzz FUZZ_GUEST=descfuzz SEED=3 COUNT=200000
# make fuzz FUZZ_GUEST=ptfuzz SEED=3 COUNT=50000
SEED ?= 1
COUNT ?= 100000
FUZZ_ARGS ?=
FUZZ_GUEST ?= fuzz
fuzz: all
	FUZZ_GUEST=$(FUZZ_GUEST) sh tests/fuzz.sh $(SEED) $(COUNT) $(FUZZ_ARGS)

# Debian's Linux under the monitor running a long busybox workload for
# SOAK_SECONDS (default 660) of its uptime, of which at least ten minutes
# must pass; every round's results and the monitor's pools are checked
# (tests/linux.sh soak; about 17 minutes here).
soak: all
	sh tests/linux.sh soak

# The hottest translation units of a guest, guest and translated code side
# by side: make tcdump GUEST=bench ARGS=kernel_loop N=4
N ?= 8
tcdump: all
	sh tests/tcdump.sh $(GUEST) $(N) $(ARGS)

# The monitor under gdb, stopped at vmm_main, the guest's symbols loaded
# too (scripts/debug; docs/observing.md): make debug GUEST=hello
debug: all
	scripts/debug build/guests/$(or $(GUEST),demo).elf $(ARGS)

# Every lab's measuring commands (docs/labs/; tests/labs.sh): make labs,
# or make labs LAB=3 for one.
labs: all
	sh tests/labs.sh $(LAB)

# docs/walkthrough.md and docs/deviations.md are generated from the code.
walkthrough:
	sh docs/walkthrough.sh

deviations:
	sh docs/deviations.sh

clean:
	rm -rf build

# For the scripts in tests/: the test guests' images, in order.
guest-list:
	@echo $(GUEST_TESTS:%=$(GUEST_BUILD)/%.elf) $(GUEST_RAW:%=$(GUEST_BUILD)/%)

# Debian's i386 Linux booting to a busybox shell (tests/linux.sh): fetched
# once into ~/.cache/vmm-linux, booted natively and checked.
# ARGS=vmm, both, shell or "shell vmm" for the other ways.
.PHONY: linux
linux: deps-check
	sh tests/linux.sh $(ARGS)
