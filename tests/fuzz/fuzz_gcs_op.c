/* Fuzz the GCS operation decoder (the payload of every log entry and replication
 * message): a decoded operation re-encodes to the same bytes, and applying it to a store
 * either works or is refused without harm. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gcs_op op;
	if (gcs_op_decode(data, size, &op) != 0)
		return 0;
	uint8_t *back = malloc(size ? size : 1);
	size_t n;
	if (!back || gcs_op_encode(&op, back, size, &n) != 0 || n != size ||
	    memcmp(back, data, size) != 0)
		abort();
	free(back);
	gcs_store *s;
	if (gcs_store_create(&s) != 0)
		abort();
	int rc = gcs_store_apply(s, 1, &op);
	if (rc == GCS_APPLIED && op.kind == GCS_OP_PUT) {
		const uint8_t *v;
		size_t vl;
		uint64_t ver;
		if (gcs_store_get(s, op.table, op.key, op.key_len, &v, &vl, &ver) != 0 ||
		    vl != op.value_len || ver != 1)
			abort();
	}
	gcs_store_destroy(s);
	return 0;
}
