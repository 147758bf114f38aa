/* A driver whose remote functions all come from a library on the code path: it has no
 * PRISM_REMOTE of its own, so its workers enter worker mode from prism_init() and find
 * `triple` by loading the same library.  Usage: codepath_main LIBRARY */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "prism.h"

int main(int argc, char **argv)
{
	int pass = 0, fail = 0;
#define CHECK(cond, ...)                              \
	do {                                          \
		if (cond) {                           \
			pass++;                       \
		} else {                              \
			fail++;                       \
			printf("FAIL: " __VA_ARGS__); \
			printf("\n");                 \
		}                                     \
	} while (0)
	if (argc != 2) {
		fprintf(stderr, "usage: %s LIBRARY\n", argv[0]);
		return 2;
	}
	prism_ref r;
	int64_t x = 14;
	prism_value a = prism_bytes(&x, 8);

	/* A code path that does not load is refused up front with its reason. */
	prism_opts bad = {.code_path = "/nonexistent/libnothing.so", .num_workers = 1};
	int rc = prism_init(&bad);
	CHECK(rc == -ENOENT, "bad code path: %s", prism_strerror(rc));
	CHECK(strstr(prism_last_error(), "libnothing") != NULL, "names the library: %s",
	      prism_last_error());

	prism_opts o = {.code_path = argv[1], .num_workers = 1};
	rc = prism_init(&o);
	CHECK(rc == 0, "prism_init: %s", prism_last_error());
	if (rc == 0) {
		rc = prism_submit("triple", &a, 1, NULL, &r);
		CHECK(rc == 0, "submit: %s", prism_last_error());
		const void *v = NULL;
		size_t n = 0;
		if (rc == 0)
			rc = prism_get(r, 30 * 1000000000ll, &v, &n);
		CHECK(rc == 0 && n == 8 && *(const int64_t *)v == 42,
		      "triple(14) = 42 (rc %d: %.*s)", rc,
		      rc == PRISM_E_TASK_FAILED ? (int)n : 0, rc ? (const char *)v : "");
		prism_shutdown();
	}
	printf("%d passed, %d failed\n", pass, fail);
	return fail ? 1 : 0;
}
