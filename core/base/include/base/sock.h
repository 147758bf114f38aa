/* base/sock.h — Unix stream sockets by path, as every prism process opens them.
 *
 * prism_unix_connect() checks the path's length (sockaddr_un holds 107 bytes), opens a
 * close-on-exec stream socket and connects it.  It returns the fd, owned by the caller,
 * or a negative code: -ENAMETOOLONG, or connect's -errno (-ENOENT: no socket there,
 * -ECONNREFUSED: nobody listens, -EACCES: not ours to open).  Thread-safe.
 */
#ifndef PRISM_BASE_SOCK_H
#define PRISM_BASE_SOCK_H

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

int prism_unix_connect(const char *path);

#ifdef __cplusplus
}
#endif
#endif
