# qemu-cpu.sh -- the CPU model every run uses, natively and under the
# monitor (sourced by scripts/vmm, tests/qemu.sh and guests/run_native.sh).
#
# A Pentium II whose CPUID shows only what the monitor virtualizes (fpu
# tsc cx8 cmov), plus UMIP: with it the monitor makes SGDT, SIDT, SLDT,
# STR and SMSW trap in direct execution and answers with the guest's
# values (docs/04-segments.md); without it (`-umip`) they show the
# monitor's tables, the one hole the 1998 design could not close.
QEMU_CPU="pentium2,+umip,-vme,-de,-pse,-msr,-pae,-mce,-apic,-sep,-mtrr,-pge,-mca,-pat,-pse36,-mmx,-fxsr"
