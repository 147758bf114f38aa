/* sock.c — Unix stream sockets by path; see base/sock.h. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/sock.h"

int prism_unix_connect(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (!path || strlen(path) >= sizeof(addr.sun_path))
		return path ? -ENAMETOOLONG : -EINVAL;
	strcpy(addr.sun_path, path);
	int rc = prism_fault_point();
	if (rc)
		return rc;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		rc = -errno;
		close(s);
		return rc;
	}
	return s;
}
