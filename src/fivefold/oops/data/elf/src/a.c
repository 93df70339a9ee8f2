/* One of two files with a static function named helper(): this one is small. */
#include "fake_kernel.h"

static noinline int helper(int x)
{
	return x * 3 + 1; /* MARK:helper_a_body */
}

noinline int drv_a(int x)
{
	return helper(x) ^ 5; /* MARK:drv_a_call */
}
