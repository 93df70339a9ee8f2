/* A tiny out-of-tree "module": a relocatable object like a .ko, calling into the kernel. */
#include "fake_kernel.h"

static __always_inline int mod_check(int v)
{
	if (v < 0)
		BUG(); /* MARK:mod_check_bug */
	return v + 1;
}

noinline int demo_mod_work(int v)
{
	return mod_check(v) * 5; /* MARK:mod_work_check */
}

noinline int demo_mod_ioctl(struct demo_req *r)
{
	int n = demo_mod_work(r->len); /* MARK:mod_ioctl_work */

	return n + demo_ioctl(r); /* MARK:mod_ioctl_call */
}

/* Like a module's __init function: in .init.text, which, like .text, starts at 0 in the .ko. */
__attribute__((section(".init.text"), used)) int demo_mod_init(void)
{
	return demo_mod_work(1); /* MARK:mod_init_work */
}
