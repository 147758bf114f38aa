/* token.c — the cluster token in a file (see transport/transport.h): how every host and
 * tool holds the secret that authenticates links. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "transport/transport.h"

#define LOGM "transport"

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int fail(int rc, char *why, size_t why_len, const char *fmt, const char *path,
		const char *detail)
{
	if (why && why_len)
		snprintf(why, why_len, fmt, path, detail);
	return rc;
}

int transport_token_load(const char *path, uint8_t token[TRANSPORT_TOKEN_BYTES], char *why,
			 size_t why_len)
{
	uint8_t buf[2 * TRANSPORT_TOKEN_BYTES + 3];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(-errno, why, why_len, "token file %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077))
		PRISM_LOG(PRISM_LOG_WARN, LOGM,
			  "token file %s is readable by others (mode %03o): chmod 600 it", path,
			  (unsigned)(st.st_mode & 0777));
	size_t n = 0;
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return fail(-e, why, why_len, "token file %s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n == TRANSPORT_TOKEN_BYTES) {
		memcpy(token, buf, n);
	} else if (n == 2 * TRANSPORT_TOKEN_BYTES ||
		   (n == 2 * TRANSPORT_TOKEN_BYTES + 1 && buf[n - 1] == '\n')) {
		for (size_t i = 0; i < TRANSPORT_TOKEN_BYTES; i++) {
			int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return fail(PRISM_E_CONFIG, why, why_len,
					    "token file %s: 64 characters but not hex digits%s",
					    path, "");
			token[i] = (uint8_t)(hi << 4 | lo);
		}
	} else {
		return fail(
			PRISM_E_CONFIG, why, why_len,
			"token file %s: expected exactly 32 raw bytes or 64 hex digits (and a "
			"newline), found %s bytes",
			path, n == sizeof(buf) ? "more" : "other");
	}
	static const uint8_t zero[TRANSPORT_TOKEN_BYTES];
	if (memcmp(token, zero, sizeof(zero)) == 0)
		return fail(PRISM_E_CONFIG, why, why_len,
			    "token file %s: an all-zero token is refused%s", path, "");
	return 0;
}

int transport_token_create(const char *path, char *why, size_t why_len)
{
	uint8_t token[TRANSPORT_TOKEN_BYTES];
	if (getrandom(token, sizeof(token), 0) != (ssize_t)sizeof(token))
		return fail(-errno, why, why_len, "%s: getrandom: %s", path, strerror(errno));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		explicit_bzero(token, sizeof(token));
		return fail(-e, why, why_len, "%s: %s", path,
			    e == EEXIST ? "exists (refusing to overwrite a token)"
					: strerror(e));
	}
	ssize_t w = write(fd, token, sizeof(token));
	int rc = w == (ssize_t)sizeof(token) && fsync(fd) == 0 ? 0 : (errno ? -errno : -EIO);
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	explicit_bzero(token, sizeof(token));
	if (rc) {
		unlink(path);
		return fail(rc, why, why_len, "writing %s: %s", path,
			    w >= 0 && w < (ssize_t)sizeof(token) ? "short write"
								 : strerror(-rc));
	}
	return 0;
}
