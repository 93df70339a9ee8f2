#!/bin/sh
# Rebuilds the committed test ELFs of fivefold.oops from src/ (needs gcc and Debian's
# gcc-arm-linux-gnueabi and gcc-aarch64-linux-gnu), copies the x86_64 pair into the
# package for the demo and regenerates the demo crash log from the new addresses.
# The outputs are committed: tests never need a compiler.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
data="$root/src/fivefold/oops/data/elf"
cd "$here/src"

# Kernel-like code: freestanding, no libc, no PIE, linked at a kernel address. DWARF paths
# are mapped to a fixed directory so that rebuilds elsewhere give the same file names.
common="-g -O2 -ffreestanding -fno-pie -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables
        -fdebug-prefix-map=$here/src=/build/fake-kernel -Wall -Werror"
srcs="main.c a.c b.c"

gcc $common -mcmodel=kernel -fcf-protection=none -no-pie -static \
    -Wl,-Ttext-segment=0xffffffff81000000 -Wl,--build-id=sha1 -o "$here/vmlinux-x86_64" $srcs
gcc $common -mcmodel=kernel -fcf-protection=none -c -o "$here/demo_mod.ko" demo_mod.c
arm-linux-gnueabi-gcc $common -marm -march=armv7-a -no-pie -static \
    -Wl,-Ttext-segment=0xc0008000 -Wl,--build-id=sha1 -o "$here/vmlinux-arm" $srcs
arm-linux-gnueabi-gcc $common -mthumb -march=armv7-a -no-pie -static \
    -Wl,-Ttext-segment=0xc0008000 -Wl,--build-id=sha1 -o "$here/vmlinux-thumb" $srcs
aarch64-linux-gnu-gcc $common -no-pie -static \
    -Wl,-Ttext-segment=0xffff800010000000 -Wl,--build-id=sha1 -o "$here/vmlinux-arm64" $srcs

mkdir -p "$data/src"
cp "$here/vmlinux-x86_64" "$here/demo_mod.ko" "$data/"
cp fake_kernel.h main.c a.c b.c demo_mod.c "$data/src/"
echo skip-log
ls -l "$here"/vmlinux-* "$here"/*.ko
