#!/bin/sh
# Rebuilds the committed test ELFs of fivefold.oops from the C sources shipped in the
# package (src/fivefold/oops/data/elf/src; needs gcc and Debian's gcc-arm-linux-gnueabi and
# gcc-aarch64-linux-gnu). The x86_64 pair (vmlinux-x86_64, demo_mod.ko) is the demo's and
# lives in the package next to its sources; the cross-built ELFs only serve the tests and
# live here. Also regenerates the demo crash log from the new addresses.
# With an argument, only builds every ELF into that directory (the tests use this to
# check that the committed files are what the sources give).
# The outputs are committed: tests never need a compiler. PYTHON (default: the project's
# .venv) must have the oops extra for make_demo_log.py.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
data="$root/src/fivefold/oops/data/elf"
out_x86=${1:-$data}
out_cross=${1:-$here}
mkdir -p "$out_x86" "$out_cross"
cd "$data/src"

# Kernel-like code: freestanding, no libc, no PIE, linked at a kernel address. DWARF paths
# are mapped to a fixed directory so that rebuilds elsewhere give the same file names.
common="-g -O2 -ffreestanding -fno-pie -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables
        -fdebug-prefix-map=$data/src=/build/fake-kernel -Wall -Werror"
srcs="main.c a.c b.c"

gcc $common -mcmodel=kernel -fcf-protection=none -no-pie -static \
    -Wl,-Ttext-segment=0xffffffff81000000 -Wl,--build-id=sha1 -o "$out_x86/vmlinux-x86_64" $srcs
gcc $common -mcmodel=kernel -fcf-protection=none -c -o "$out_x86/demo_mod.ko" demo_mod.c
arm-linux-gnueabi-gcc $common -marm -march=armv7-a -no-pie -static \
    -Wl,-Ttext-segment=0xc0008000 -Wl,--build-id=sha1 -o "$out_cross/vmlinux-arm" $srcs
arm-linux-gnueabi-gcc $common -mthumb -march=armv7-a -no-pie -static \
    -Wl,-Ttext-segment=0xc0008000 -Wl,--build-id=sha1 -o "$out_cross/vmlinux-thumb" $srcs
aarch64-linux-gnu-gcc $common -no-pie -static \
    -Wl,-Ttext-segment=0xffff800010000000 -Wl,--build-id=sha1 -o "$out_cross/vmlinux-arm64" $srcs

[ $# -eq 0 ] || exit 0
"${PYTHON:-$root/.venv/bin/python}" "$here/make_demo_log.py" "$data/vmlinux-x86_64" "$data/demo_mod.ko" > "$data/demo-x86.log"
ls -l "$here"/vmlinux-* "$data"/vmlinux-* "$data"/*.ko
