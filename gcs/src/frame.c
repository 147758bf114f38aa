/* frame.c — sending the chain protocol's frames. */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/wire.h"
#include "gcs_int.h"

int gcs__send(transport_conn *c, uint16_t type, uint64_t req_id, const void *p, size_t n)
{
	if (n > GCS_FRAME_MAX)
		return PRISM_E_TOO_BIG;
	prism_wire_hdr h = {.type = type, .len = (uint32_t)n, .req_id = req_id};
	size_t len = PRISM_WIRE_HDR_SIZE + n;
	uint8_t small[TRANSPORT_INLINE_MAX];
	bool big = len > sizeof(small);
	uint8_t *buf = big ? prism_malloc(len) : small;
	if (!buf)
		return -ENOMEM;
	int rc = prism_wire_encode(buf, len, &h, p, NULL);
	if (rc == 0)
		rc = transport_send(c, buf, len, big ? (uint64_t)(uintptr_t)buf : 0,
				    big ? TRANSPORT_SIGNALED : 0);
	if (rc && big)
		prism_free(buf);
	return rc;
}

void gcs__sent(const transport_event *ev)
{
	if (ev->wr_id)
		prism_free((void *)(uintptr_t)ev->wr_id);
}
