/* common.c — one request to a node's socket; see common.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/error.h"
#include "base/sock.h"
#include "base/wire.h"
#include "common.h"
#include "sched/node.h"
#include "sched/proto.h"

int tool_address(const char *given, char *path, size_t len)
{
	const char *env = getenv("PRISM_ADDRESS");
	if (!given && env && *env && strcmp(env, "auto") != 0)
		given = env;
	if (given) {
		if (strlen(given) >= len)
			return -ENAMETOOLONG;
		strcpy(path, given);
		return 0;
	}
	return sched_default_socket(path, len);
}

int tool_request(const char *path, uint16_t type, char *buf, size_t len)
{
	uint8_t frame[PRISM_WIRE_HDR_SIZE + SCHED_WIRE_MAX_PAYLOAD];
	int s = prism_unix_connect(path);
	if (s < 0)
		return s;
	struct timeval tv = {10, 0};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int rc = 0;
	size_t flen = 0;
	prism_wire_hdr h = {.type = type};
	rc = prism_wire_encode(frame, sizeof(frame), &h, NULL, &flen);
	if (rc == 0 && send(s, frame, flen, MSG_NOSIGNAL) != (ssize_t)flen)
		rc = PRISM_E_PIPE;
	size_t have = 0;
	const uint8_t *payload = NULL;
	while (rc == 0) {
		ssize_t got = recv(s, frame + have, sizeof(frame) - have, 0);
		if (got <= 0) {
			rc = got == 0 ? PRISM_E_PIPE : -errno;
			break;
		}
		have += (size_t)got;
		rc = prism_wire_decode(frame, have, SCHED_WIRE_MAX_PAYLOAD, &h, &payload);
		if (rc == PRISM_E_TRUNCATED)
			rc = 0;
		else
			break;
	}
	close(s);
	if (rc)
		return rc;
	size_t n = h.len < len - 1 ? h.len : len - 1;
	if (h.type == SCHED_W_ERROR && h.len >= 8) {
		/* {u32 code, str message}: show the message. */
		prism_wire_reader r;
		uint32_t code, mlen;
		const char *msg;
		prism_wire_reader_init(&r, payload, h.len);
		prism_wire_get_u32(&r, &code);
		prism_wire_get_str(&r, SCHED_WIRE_MAX_PAYLOAD, &msg, &mlen);
		n = mlen < len - 1 ? mlen : len - 1;
		memcpy(buf, msg, n);
	} else {
		memcpy(buf, payload, n);
	}
	buf[n] = '\0';
	return h.type;
}
