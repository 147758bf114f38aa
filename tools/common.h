/* common.h — what prismd and the prism CLI share: one request to a node's socket. */
#ifndef PRISM_TOOLS_COMMON_H
#define PRISM_TOOLS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Send a request of `type` with no payload to the node at `path` and read one reply frame
 * into buf (NUL-terminated).  Returns the reply's type, or a negative code. */
int tool_request(const char *path, uint16_t type, char *buf, size_t len);
/* --address, else PRISM_ADDRESS, else the default socket; into path. */
int tool_address(const char *given, char *path, size_t len);

#endif
