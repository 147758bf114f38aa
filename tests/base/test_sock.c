/* Unix socket connect by path: success, and each way it can fail. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/sock.h"

Test(sock, connects_to_a_listener_and_reports_failures)
{
	char dir[] = "/tmp/prism-sock-XXXXXX", path[128];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	cr_assert_eq(prism_unix_connect(path), -ENOENT, "no socket there yet");
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strcpy(a.sun_path, path);
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(prism_unix_connect(path), -ECONNREFUSED, "bound but not listening");
	cr_assert_eq(listen(l, 4), 0);
	int s = prism_unix_connect(path);
	cr_assert_geq(s, 0);
	cr_assert(fcntl(s, F_GETFD) & FD_CLOEXEC, "close-on-exec");
	close(s);
	char longp[200];
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	cr_assert_eq(prism_unix_connect(longp), -ENAMETOOLONG);
	cr_assert_eq(prism_unix_connect(NULL), -EINVAL);
	close(l);
	unlink(path);
	rmdir(dir);
}
