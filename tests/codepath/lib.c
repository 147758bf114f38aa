/* A remote function that lives in a shared library on the code path, not in the
 * program that calls it. */
#include <stdint.h>
#include <string.h>

#include "prism.h"

static int triple(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	int64_t x;
	(void)nargs;
	if (args[0].len != 8)
		return prism_fail(ctx, "want 8 bytes");
	memcpy(&x, args[0].data, 8);
	x *= 3;
	return prism_return(ctx, 0, &x, 8);
}
PRISM_REMOTE_ARITY(triple, 1);
