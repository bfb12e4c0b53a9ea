# guests.mk -- build the test guests (bare-metal Multiboot kernels).
#
# Included by the top-level Makefile, or standalone from the project root:
#     make -f guests/guests.mk guests
# Products: build/guests/NAME.elf, library objects in build/guests/lib/.
# Each guest is guests/NAME.c (or guests/NAME.S) linked with the library.
# guests/run_native.sh NAME runs one on bare QEMU.

# Remember the includer's default goal; restored at the end so that
# including this file does not make `guests` the default target.
_GUESTS_SAVED_GOAL := $(.DEFAULT_GOAL)
_GUESTS_INCLUDED := $(filter-out $(lastword $(MAKEFILE_LIST)),$(MAKEFILE_LIST))

GUEST_TESTS := hello usermode exceptions privileged paging memprot cow smc absent bigpage topmap isolation \
               decide_cpl decide_if decide_iopl decide_seg decide_v86 decide_pe decide_nt callgate segments segtrans tasks v86 devices attack naive
GUEST_ALL := $(GUEST_TESTS) demo bench fuzz descfuzz ptfuzz ends
# Guests that are not Multiboot kernels: raw images, each linked at the
# address the firmware starts it at.  The suffix says how: .img a disk
# whose first sector is a boot sector (at 0x7c00), .rom a ROM image
# (the reset vector; linked at 0xf0000).
GUEST_RAW := bootsect.img rom.rom

GUEST_CC ?= gcc
GUEST_LD ?= ld
GUEST_SRCDIR ?= guests
GUEST_BUILD ?= build/guests

GUEST_CFLAGS ?= -m32 -march=i686 -ffreestanding -fno-pic -fno-pie \
        -fno-stack-protector -fno-builtin -nostdlib -O2 -Wall -Wextra \
        -fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns \
        -fno-omit-frame-pointer -I$(GUEST_SRCDIR)/lib
GUEST_ASFLAGS ?= -m32 -march=i686 -fno-pic -fno-pie -I$(GUEST_SRCDIR)/lib
GUEST_LDFLAGS ?= -m elf_i386 -T $(GUEST_SRCDIR)/lib/guest.ld -nostdlib -static \
        -z max-page-size=0x1000 -z noexecstack --no-warn-rwx-segments --build-id=none

GUEST_LIB_SRCS := entry.S isr.S lib.c cpu.c paging.c
GUEST_LIB_OBJS := $(addprefix $(GUEST_BUILD)/lib/,$(addsuffix .o,$(basename $(GUEST_LIB_SRCS))))
GUEST_ELFS := $(GUEST_ALL:%=$(GUEST_BUILD)/%.elf)
GUEST_BINS := $(GUEST_RAW:%=$(GUEST_BUILD)/%)

.PHONY: guests guests-clean
guests: $(GUEST_ELFS) $(GUEST_BINS)

$(GUEST_BUILD)/bootsect.img: $(GUEST_BUILD)/bootsect.o
	$(GUEST_LD) -m elf_i386 -Ttext 0x7c00 -e _start --oformat binary -o $@ $<
	@test $$(stat -c %s $@) -eq 512 || { echo "$@ is not 512 bytes"; rm -f $@; exit 1; }

$(GUEST_BUILD)/rom.rom: $(GUEST_BUILD)/rom.o
	$(GUEST_LD) -m elf_i386 -Ttext 0xf0000 -e _start --oformat binary -o $@ $<
	@test $$(stat -c %s $@) -eq 65536 || { echo "$@ is not 64 KiB"; rm -f $@; exit 1; }

$(GUEST_BUILD)/lib/%.o: $(GUEST_SRCDIR)/lib/%.c $(GUEST_SRCDIR)/lib/guest.h
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_BUILD)/lib/%.o: $(GUEST_SRCDIR)/lib/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_ASFLAGS) -c $< -o $@

$(GUEST_BUILD)/%.o: $(GUEST_SRCDIR)/%.c $(GUEST_SRCDIR)/lib/guest.h
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_BUILD)/%.o: $(GUEST_SRCDIR)/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_ASFLAGS) -c $< -o $@

$(GUEST_BUILD)/%.elf: $(GUEST_BUILD)/%.o $(GUEST_LIB_OBJS) $(GUEST_SRCDIR)/lib/guest.ld
	$(GUEST_LD) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB_OBJS) $<

# Keep the per-guest objects (they are intermediate files otherwise).
.SECONDARY: $(GUEST_ALL:%=$(GUEST_BUILD)/%.o) $(GUEST_BUILD)/bootsect.o $(GUEST_BUILD)/rom.o $(GUEST_LIB_OBJS)

guests-clean:
	rm -rf $(GUEST_BUILD)

ifneq ($(_GUESTS_INCLUDED),)
.DEFAULT_GOAL := $(_GUESTS_SAVED_GOAL)
endif
