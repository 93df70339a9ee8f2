/* A few kernel-like macros for the fivefold.oops test ELFs (not a kernel). */
#ifndef FAKE_KERNEL_H
#define FAKE_KERNEL_H

#define noinline __attribute__((noinline, noclone))
#define __always_inline inline __attribute__((always_inline))

/* The deliberate trap each architecture's BUG() plants in the code. */
#if defined(__x86_64__) || defined(__i386__)
#define BUG() do { asm volatile("ud2"); __builtin_unreachable(); } while (0)
#elif defined(__aarch64__)
#define BUG() do { asm volatile("brk #0x800"); __builtin_unreachable(); } while (0)
#elif defined(__thumb__)
#define BUG() do { asm volatile(".short 0xde02"); __builtin_unreachable(); } while (0)
#elif defined(__arm__)
#define BUG() do { asm volatile(".word 0xe7f001f2"); __builtin_unreachable(); } while (0)
#endif

struct demo_req {
	int len;
	int kind;
	char buf[32];
};

int drv_a(int x);
int drv_b(int x);
int demo_ioctl(struct demo_req *r);
int demo_dispatch(struct demo_req *r, int cmd);

#endif
