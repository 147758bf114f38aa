/* error.c — messages for prism's error codes; see base/error.h. */
#include <string.h>

#include "base/error.h"

const char *prism_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
#define PRISM__ERR_CASE(name, value, msg) \
	case -(value):                    \
		return msg;
		PRISM_ERROR_LIST(PRISM__ERR_CASE)
#undef PRISM__ERR_CASE
	default:
		break;
	}
	/* Any other negated errno: glibc's static description, which unlike strerror()
	 * is safe from every thread. */
	if (code < 0 && code > -1000) {
		const char *s = strerrordesc_np(-code);
		if (s)
			return s;
	}
	return "unknown error";
}

const char *prism_errname(int code)
{
	switch (code) {
	case 0:
		return "OK";
#define PRISM__ERR_NAME(name, value, msg) \
	case -(value):                    \
		return #name;
		PRISM_ERROR_LIST(PRISM__ERR_NAME)
#undef PRISM__ERR_NAME
	default:
		break;
	}
	if (code < 0 && code > -1000) {
		const char *s = strerrorname_np(-code);
		if (s)
			return s;
	}
	return "UNKNOWN";
}
