/* prism.c — libprism entry points; see prism.h. */
#include "prism.h"

#define PRISM__STR2(x) #x
#define PRISM__STR(x) PRISM__STR2(x)

const char *prism_version(void)
{
	return PRISM__STR(PRISM_VERSION_MAJOR) "." PRISM__STR(
		PRISM_VERSION_MINOR) "." PRISM__STR(PRISM_VERSION_PATCH);
}
