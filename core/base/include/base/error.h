/* base/error.h — prism's one error convention.
 *
 * Every function that can fail returns int: 0 on success, a negative code on failure.
 * Where an errno value says it, the code is -errno (-ENOMEM, -EINVAL, ...); prism's own
 * conditions have codes from -1000 down (PRISM_E_TIMEOUT, PRISM_E_TASK_FAILED, ...).
 * Results come back through out-parameters.  The list below is the single source of both
 * the enum and prism_strerror(): add a code here and nowhere else.
 *
 * Thread safety: prism_strerror() returns static strings and is safe from any thread.
 */
#ifndef PRISM_BASE_ERROR_H
#define PRISM_BASE_ERROR_H

#include <errno.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, positive value, message).  The first group aliases errno values that prism
 * returns often, so callers can test PRISM_E_NOMEM without including errno.h; the second
 * group is prism's own, numbered from 1000 so they never meet an errno. */
#define PRISM_ERROR_LIST(X)                                                                \
	X(NOMEM, ENOMEM, "out of memory")                                                  \
	X(INVAL, EINVAL, "invalid argument")                                               \
	X(AGAIN, EAGAIN, "resource temporarily unavailable")                               \
	X(NOENT, ENOENT, "no such entry")                                                  \
	X(EXIST, EEXIST, "already exists")                                                 \
	X(NOSPC, ENOSPC, "no space left")                                                  \
	X(PERM, EPERM, "operation not permitted")                                          \
	X(ACCES, EACCES, "permission denied")                                              \
	X(BADF, EBADF, "bad file descriptor")                                              \
	X(PIPE, EPIPE, "connection closed by peer")                                        \
	X(NOSYS, ENOSYS, "not supported by this kernel")                                   \
	X(RANGE, ERANGE, "value out of range")                                             \
	X(MSGSIZE, EMSGSIZE, "message too large")                                          \
	X(PROTO, EPROTO, "protocol error")                                                 \
	X(TIMEOUT, 1000, "timed out")                                                      \
	X(TRUNCATED, 1001, "truncated input: more bytes are needed")                       \
	X(BAD_MAGIC, 1002, "bad magic number: not a prism frame or record")                \
	X(BAD_VERSION, 1003, "unsupported protocol or format version")                     \
	X(TOO_BIG, 1004, "length exceeds the allowed maximum")                             \
	X(CORRUPT, 1005, "corrupt data: a checksum or an internal length does not match")  \
	X(CONFIG, 1006, "bad configuration")                                               \
	X(CLOSED, 1007, "the object was closed or shut down")                              \
	X(FULL, 1008, "queue or ring is full")                                             \
	X(TASK_FAILED, 1100, "the task failed; its error object holds the message")        \
	X(OBJECT_LOST, 1101, "the object was lost: no copy remains")                       \
	X(STORE_FULL, 1102, "the object store is full and nothing can be evicted")         \
	X(INFEASIBLE, 1103, "no node has the resources this task requires")                \
	X(ACTOR_DIED, 1104, "the actor died")                                              \
	X(UNKNOWN_FUNCTION, 1105, "no function is registered under that name")             \
	X(RELEASED, 1106, "the reference was already released")                            \
	X(NO_SPINNER, 1107, "no CPU is left for another real-time (spinning) worker")      \
	X(UNKNOWN_METHOD, 1108, "the actor's class has no method of that name")            \
	X(DEADLINE, 1109, "dropped: the call had not started by its deadline")             \
	X(AUTH, 1200, "authentication failed")                                             \
	X(BAD_KEY, 1300, "remote access refused: no region is registered under that key")  \
	X(OUT_OF_BOUNDS, 1301, "remote access falls outside the registered region")        \
	X(PEER_GONE, 1302, "the peer went away or the link broke")                         \
	X(FLUSHED, 1303, "cancelled: its connection failed or closed before it completed") \
	X(NO_DEVICE, 1304, "no RDMA device found")                                         \
	X(NOT_HEAD, 1400, "this GCS replica is not the head of its chain")                 \
	X(NOT_TAIL, 1401, "this GCS replica does not serve reads (not the chain's tail)")

enum prism_error {
	PRISM_OK = 0,
#define PRISM__ERR_ENUM(name, value, msg) PRISM_E_##name = -(value),
	PRISM_ERROR_LIST(PRISM__ERR_ENUM)
#undef PRISM__ERR_ENUM
};

/* A human-readable message for any code this project returns: a prism code, a negated
 * errno, or 0.  Never returns NULL; unknown codes give "unknown error". */
PRISM_API const char *prism_strerror(int code);

/* The enumerator's name without the prefix ("TIMEOUT", "ENOMEM"...), for logs and tests.
 * Never returns NULL. */
PRISM_API const char *prism_errname(int code);

#ifdef __cplusplus
}
#endif
#endif
