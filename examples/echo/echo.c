/* echo — the first example of the Ray walk-through (seeds/), in prism: two remote
 * functions, `echo` (returns its argument) and `ohce` (returns it reversed), called
 * with futures and chained so one task's result feeds the next without the driver
 * touching it.
 *
 *   build/bin/echo "hello prism"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism.h"

static int echo(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	return prism_return(ctx, 0, args[0].data, args[0].len);
}
PRISM_REMOTE_ARITY(echo, 1);

static int ohce(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	char buf[4096];
	size_t n = args[0].len < sizeof(buf) ? args[0].len : sizeof(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = ((const char *)args[0].data)[n - 1 - i];
	return prism_return(ctx, 0, buf, n);
}
PRISM_REMOTE_ARITY(ohce, 1);

static int check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "echo: %s: %s (%s)\n", what, prism_strerror(rc),
			prism_last_error());
		exit(1);
	}
	return rc;
}

int main(int argc, char **argv)
{
	const char *text = argc > 1 ? argv[1] : "hello prism";
	check(prism_init(NULL), "prism_init");

	/* Both calls return at once with futures; the tasks run in worker processes. */
	prism_ref a, b, c;
	prism_value arg = prism_bytes(text, strlen(text));
	check(prism_submit("echo", &arg, 1, NULL, &a), "submit echo");
	check(prism_submit("ohce", &arg, 1, NULL, &b), "submit ohce");
	/* A future as an argument: ohce(echo(text)) runs once echo's result exists. */
	prism_value chained = prism_refval(a);
	check(prism_submit("ohce", &chained, 1, NULL, &c), "submit ohce(echo)");

	const void *v;
	size_t n;
	check(prism_get(a, -1, &v, &n), "get echo");
	printf("echo(\"%s\")       = \"%.*s\"\n", text, (int)n, (const char *)v);
	check(prism_get(b, -1, &v, &n), "get ohce");
	printf("ohce(\"%s\")       = \"%.*s\"\n", text, (int)n, (const char *)v);
	check(prism_get(c, -1, &v, &n), "get ohce(echo)");
	printf("ohce(echo(\"%s\")) = \"%.*s\"\n", text, (int)n, (const char *)v);

	prism_ref_release(a);
	prism_ref_release(b);
	prism_ref_release(c);
	prism_shutdown();
	return 0;
}
