/* The "vmlinux" of the test ELFs: an entry point, a dispatcher and an ioctl with two
 * always_inline levels, so that one return address expands to an inline chain. */
#include "fake_kernel.h"

static __always_inline int check_len(const struct demo_req *r)
{
	if (r->len > (int)sizeof(r->buf))
		BUG(); /* MARK:check_len_bug */
	return r->len;
}

static __always_inline int parse_hdr(const struct demo_req *r)
{
	return check_len(r) * 2 + r->kind; /* MARK:parse_hdr_call */
}

noinline int demo_ioctl(struct demo_req *r)
{
	int n = parse_hdr(r); /* MARK:demo_ioctl_parse */

	n += drv_a(n); /* MARK:demo_ioctl_call_a */
	n += drv_b(n); /* MARK:demo_ioctl_call_b */
	return n;
}

noinline int demo_dispatch(struct demo_req *r, int cmd)
{
	int ret = 0;

	if (cmd == 1)
		ret = demo_ioctl(r); /* MARK:demo_dispatch_call */
	return ret + cmd;
}

static struct demo_req the_req;

void _start(void)
{
	volatile int cmd = 1;

	the_req.len = 8;
	the_req.kind = 3;
	demo_dispatch(&the_req, cmd); /* MARK:start_call */
	for (;;)
		;
}
