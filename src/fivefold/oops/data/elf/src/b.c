/* The other static helper(): bigger, with an inlined validate() that BUG()s. */
#include "fake_kernel.h"

static volatile int table[16];

static __always_inline void validate(int x)
{
	if (x > 1000)
		BUG(); /* MARK:validate_bug */
}

static noinline int helper(int x)
{
	int i, sum = 0;

	validate(x); /* MARK:helper_b_validate */
	for (i = 0; i < 16; i++)
		sum += table[i] * (x + i);
	return sum; /* MARK:helper_b_ret */
}

noinline int drv_b(int x)
{
	return helper(x) + 7; /* MARK:drv_b_call */
}
