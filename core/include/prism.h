/* prism.h — the public API of libprism.
 *
 * prism is a distributed execution engine in the family of Ray: programs submit tasks
 * and create actors, get futures back at once, and build dynamic task graphs.  This
 * header is the whole user-facing surface; everything it does not declare is internal.
 *
 * Conventions: functions return 0 or a negative error code (base/error.h lists them and
 * prism_strerror() explains them); results come back through out-parameters.
 *
 * Status: the foundation layer.  The task, future and object API of DESIGN.md section 4
 * arrives with the single-node runtime (issue 3).
 */
#ifndef PRISM_H
#define PRISM_H

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PRISM_VERSION_MAJOR 0
#define PRISM_VERSION_MINOR 1
#define PRISM_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH"; a static string. */
PRISM_API const char *prism_version(void);

#ifdef __cplusplus
}
#endif
#endif
