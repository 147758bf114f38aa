/* fuzz_gcs_record.c — libFuzzer target for gcs/record.h.
 *
 * The input is one record as the store would receive it.  It is decoded as every table
 * and checked with gcs_record_check().  The codec's promises checked here: at most one
 * table decodes it, and only the one its table byte names; check agrees with that
 * decode; a refusal is one of the documented codes and leaves the output zeroed; a
 * decoded record's text and bytes point into the input; and re-encoding a decoded record
 * gives back the input byte for byte (one byte less room is -ENOSPC).  The target aborts
 * only when one of these breaks; out-of-bounds reads are for the sanitizers to find.
 *
 * Coverage of the library itself needs it built with -fsanitize=fuzzer-no-link, which
 * PRISM_FUZZ=ON adds to the whole build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "gcs/record.h"

/* libFuzzer's entry point; declared here because no header provides it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)              \
	do {                     \
		if (!(cond))     \
			abort(); \
	} while (0)

static int is_documented(int rc)
{
	return rc == PRISM_E_TRUNCATED || rc == PRISM_E_BAD_VERSION || rc == PRISM_E_PROTO ||
	       rc == PRISM_E_TOO_BIG;
}

static int all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static int inside(const void *p, uint32_t n, const uint8_t *data, size_t size)
{
	const uint8_t *b = p;
	return n == 0 || (b >= data && b + n <= data + size);
}

/* The spans of a decoded record must lie in the input.  Only the fields whose pointers
 * the fuzzer can reach in a few bytes are spot-checked; ASan covers the rest. */
static void check_spans(enum gcs_table t, const gcs_record *r, const uint8_t *d, size_t n)
{
	switch (t) {
	case GCS_T_NODE:
		CHECK(inside(r->node.address.p, r->node.address.len, d, n));
		for (uint32_t i = 0; i < r->node.n_resources; i++)
			CHECK(inside(r->node.resources[i].name.p, r->node.resources[i].name.len,
				     d, n));
		break;
	case GCS_T_TASK:
		CHECK(inside(r->task.spec.p, r->task.spec.len, d, n));
		break;
	case GCS_T_ACTOR:
		CHECK(inside(r->actor.name.p, r->actor.name.len, d, n));
		CHECK(inside(r->actor.class_name.p, r->actor.class_name.len, d, n));
		break;
	case GCS_T_FUNCTION:
		CHECK(inside(r->function.name.p, r->function.name.len, d, n));
		CHECK(inside(r->function.code_path.p, r->function.code_path.len, d, n));
		break;
	case GCS_T_JOB:
		CHECK(inside(r->job.driver_address.p, r->job.driver_address.len, d, n));
		break;
	case GCS_T_KV:
		CHECK(inside(r->kv.value.p, r->kv.value.len, d, n));
		break;
	case GCS_T_OBJECT:
		break;
	}
}

/* A decoded record encodes back to exactly the input. */
static void reencode(enum gcs_table t, const gcs_record *r, const uint8_t *data, size_t size)
{
	static uint8_t buf[GCS_RECORD_MAX];
	size_t len = 0, need = 0;
	CHECK(gcs_record_size(t, r, &need) == 0 && need == size);
	CHECK(gcs_record_encode(t, r, buf, size - 1, &len) == -ENOSPC && len == size);
	CHECK(gcs_record_encode(t, r, buf, sizeof(buf), &len) == 0);
	CHECK(len == size && memcmp(buf, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum gcs_table decoded = 0, checked = GCS_T_KV;
	int check_rc = gcs_record_check(data, size, &checked);

	CHECK(check_rc == 0 || is_documented(check_rc));
	CHECK((check_rc == 0) == (checked != 0));
	for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
		gcs_record r;
		memset(&r, 0, sizeof(r));
		int rc = gcs_record_decode(t, data, size, &r);
		if (rc != 0) {
			CHECK(is_documented(rc));
			CHECK(all_zero(&r, sizeof(r)));
			continue;
		}
		CHECK(decoded == 0 && size >= 2 && data[1] == t);
		decoded = t;
		check_spans(t, &r, data, size);
		reencode(t, &r, data, size);
	}
	CHECK(decoded == checked);
	return 0;
}
