/* Error codes: one list, negative values, a message and a name for each. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/error.h"

Test(error, codes_are_negative_and_distinct)
{
	static const int codes[] = {
#define X(name, value, msg) PRISM_E_##name,
		PRISM_ERROR_LIST(X)
#undef X
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		cr_assert_lt(codes[i], 0);
		for (size_t j = i + 1; j < sizeof(codes) / sizeof(codes[0]); j++)
			cr_assert_neq(codes[i], codes[j], "duplicate code at %zu and %zu", i,
				      j);
	}
}

Test(error, errno_aliases_match_errno)
{
	cr_assert_eq(PRISM_E_NOMEM, -ENOMEM);
	cr_assert_eq(PRISM_E_INVAL, -EINVAL);
	cr_assert_lt(PRISM_E_TIMEOUT, -999);
}

Test(error, strerror_covers_prism_errno_and_unknown)
{
	cr_assert_str_eq(prism_strerror(0), "success");
	cr_assert_str_eq(prism_strerror(PRISM_E_TIMEOUT), "timed out");
	cr_assert(strstr(prism_strerror(PRISM_E_STORE_FULL), "store is full"));
	/* A negated errno that is not in the list still gets the system's text. */
	cr_assert_str_eq(prism_strerror(-ECONNREFUSED), "Connection refused");
	cr_assert_str_eq(prism_strerror(-123456), "unknown error");
	cr_assert_str_eq(prism_strerror(5), "unknown error");
}

Test(error, names)
{
	cr_assert_str_eq(prism_errname(PRISM_E_TASK_FAILED), "TASK_FAILED");
	cr_assert_str_eq(prism_errname(-ECONNRESET), "ECONNRESET");
	cr_assert_str_eq(prism_errname(0), "OK");
	cr_assert_str_eq(prism_errname(-99999), "UNKNOWN");
}
