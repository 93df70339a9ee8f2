#!/bin/sh
# Rebuilds the committed test ELFs of fivefold.oops from src/ (needs gcc and Debian's
# gcc-arm-linux-gnueabi and gcc-aarch64-linux-gnu), copies the x86_64 pair into the
# package for the demo and regenerates the demo crash log from the new addresses.
# With an argument, only builds the ELFs into that directory (the tests use this to
# check that the committed files are what the sources give).
# The outputs are committed: tests never need a compiler. PYTHON (default: the project's
# .venv) must have the oops extra for make_demo_log.py.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$here}
mkdir -p "$out"
data="$root/src/fivefold/oops/data/elf"
cd "$here/src"

# Kernel-like code: freestanding, no libc, no PIE, linked at a kernel address. DWARF paths
# are mapped to a fixed directory so that rebuilds elsewhere give the same file names.
common="-g -O2 -ffreestanding -fno-pie -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables
        -fdebug-prefix-map=$here/src=/build/fake-kernel -Wall -Werror"
srcs="main.c a.c b.c"

gcc $common -mcmodel=kernel -fcf-protection=none -no-pie -static \
    -Wl,-Ttext-segment=0xffffffff81000000 -Wl,--build-id=sha1 -o "$out/vmlinux-x86_64" $srcs
gcc $common -mcmodel=kernel -fcf-protection=none -c -o "$out/demo_mod.ko" demo_mod.c
arm-linux-gnueabi-gcc $common -marm -march=armv7-a -no-pie -static \
    -Wl,-Ttext-segment=0xc0008000 -Wl,--build-id=sha1 -o "$out/vmlinux-arm" $srcs
arm-linux-gnueabi-gcc $common -mthumb -march=armv7-a -no-pie -static \
    -Wl,-Ttext-segment=0xc0008000 -Wl,--build-id=sha1 -o "$out/vmlinux-thumb" $srcs
aarch64-linux-gnu-gcc $common -no-pie -static \
    -Wl,-Ttext-segment=0xffff800010000000 -Wl,--build-id=sha1 -o "$out/vmlinux-arm64" $srcs

[ "$out" = "$here" ] || exit 0
mkdir -p "$data/src"
cp "$out/vmlinux-x86_64" "$out/demo_mod.ko" "$data/"
cp fake_kernel.h main.c a.c b.c demo_mod.c "$data/src/"
"${PYTHON:-$root/.venv/bin/python}" "$here/make_demo_log.py" "$data/vmlinux-x86_64" "$data/demo_mod.ko" > "$data/demo-x86.log"
ls -l "$here"/vmlinux-* "$here"/*.ko
