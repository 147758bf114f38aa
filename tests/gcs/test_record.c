/* GCS records: round trips of every table with typical and limit-sized contents, the
 * byte layout, and every way a decoder must refuse its input.  Everything decoded lives
 * in an exact-size heap block, so that AddressSanitizer sees any read past the input.
 *
 * The valid_* and limits_* fuzz seeds in tests/fuzz/corpus/gcs_record/ are this file's
 * typical and limit-sized records (the err_* ones are copies damaged by hand); to write
 * them again, from the repository root:
 *   PRISM_GCS_SEED_DIR=tests/fuzz/corpus/gcs_record build/tests/test_gcs_record
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/wire.h"
#include "gcs/record.h"

/* Text and bytes for the largest fields; no NUL among them. */
static uint8_t big[GCS_VALUE_MAX + 1];

static void init_big(void)
{
	memset(big, 'x', sizeof(big));
}

static uint8_t *dup_exact(const void *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	cr_assert_not_null(p);
	if (n)
		memcpy(p, src, n);
	return p;
}

static prism_id id_of(enum prism_id_kind kind, uint8_t seed)
{
	prism_id id;
	for (int i = 0; i < PRISM_ID_SIZE; i++)
		id.b[i] = (uint8_t)(seed + i);
	id.b[15] = (uint8_t)kind;
	return id;
}

static gcs_str str(const char *s)
{
	return (gcs_str){s, (uint32_t)strlen(s)};
}

static gcs_str big_str(uint32_t n)
{
	return (gcs_str){(const char *)big, n};
}

static gcs_bytes big_bytes(uint32_t n)
{
	return (gcs_bytes){big, n};
}

static const char *const resource_names[] = {"CPU", "GPU", "camera", "arm"};

/* A record of table t as a running cluster would write it. */
static void fill_typical(enum gcs_table t, gcs_record *r)
{
	memset(r, 0, sizeof(*r));
	switch (t) {
	case GCS_T_NODE:
		r->node.id = id_of(PRISM_ID_NODE, 1);
		r->node.address = str("tcp://10.0.0.7:6380");
		r->node.n_resources = PRISM_ARRAY_LEN(resource_names);
		for (uint32_t i = 0; i < r->node.n_resources; i++) {
			r->node.resources[i].name = str(resource_names[i]);
			r->node.resources[i].amount_milli = 1000 * (i + 1) + 500;
		}
		r->node.heartbeat_ns = 1700000000123456789ull;
		r->node.load = 12;
		r->node.state = GCS_NODE_ALIVE;
		break;
	case GCS_T_OBJECT:
		r->object.id = id_of(PRISM_ID_OBJECT, 2);
		r->object.size = 1u << 20;
		r->object.owner = id_of(PRISM_ID_WORKER, 3);
		r->object.n_locations = 3;
		for (uint8_t i = 0; i < 3; i++)
			r->object.locations[i] = id_of(PRISM_ID_NODE, (uint8_t)(40 + i));
		break;
	case GCS_T_TASK:
		r->task.id = id_of(PRISM_ID_TASK, 4);
		r->task.spec = (gcs_bytes){(const uint8_t *)"\x01spec\0with nul", 14};
		r->task.n_returns = 2;
		r->task.returns[0] = prism_id_derive(r->task.id, PRISM_ID_OBJECT, 1);
		r->task.returns[1] = prism_id_derive(r->task.id, PRISM_ID_OBJECT, 2);
		break;
	case GCS_T_ACTOR:
		r->actor.id = id_of(PRISM_ID_ACTOR, 5);
		r->actor.node = id_of(PRISM_ID_NODE, 1);
		r->actor.state = GCS_ACTOR_RESTARTING;
		r->actor.restarts = 2;
		r->actor.checkpoint = id_of(PRISM_ID_OBJECT, 6);
		r->actor.name = str("counter");
		r->actor.class_name = str("Counter");
		break;
	case GCS_T_FUNCTION:
		r->function.name = str("lib:square");
		r->function.code_path = (gcs_bytes){(const uint8_t *)"/opt/app/libsq.so", 17};
		r->function.hash = 0xcbf29ce484222325ull;
		break;
	case GCS_T_JOB:
		r->job.id = id_of(PRISM_ID_JOB, 7);
		r->job.driver_address = str("unix:/run/prism/driver.sock");
		r->job.start_ns = 1700000000000000000ull;
		r->job.state = GCS_JOB_FINISHED;
		break;
	case GCS_T_KV:
		r->kv.value = (gcs_bytes){(const uint8_t *)"v", 1};
		break;
	}
}

/* A record of table t with every length and count at its limit, every state at its
 * largest and every integer at its maximum. */
static void fill_limits(enum gcs_table t, gcs_record *r)
{
	fill_typical(t, r);
	switch (t) {
	case GCS_T_NODE:
		r->node.address = big_str(GCS_ADDRESS_MAX);
		r->node.n_resources = GCS_NODE_MAX_RESOURCES;
		for (uint32_t i = 0; i < GCS_NODE_MAX_RESOURCES; i++)
			r->node.resources[i] =
				(gcs_resource){big_str(GCS_RESOURCE_NAME_MAX), UINT64_MAX};
		r->node.heartbeat_ns = UINT64_MAX;
		r->node.load = UINT32_MAX;
		r->node.state = GCS_NODE_DEAD;
		break;
	case GCS_T_OBJECT:
		r->object.size = UINT64_MAX;
		r->object.n_locations = GCS_OBJECT_MAX_LOCATIONS;
		for (uint8_t i = 0; i < GCS_OBJECT_MAX_LOCATIONS; i++)
			r->object.locations[i] = id_of(PRISM_ID_NODE, i);
		break;
	case GCS_T_TASK:
		r->task.spec = big_bytes(GCS_VALUE_MAX);
		r->task.n_returns = GCS_TASK_MAX_RETURNS;
		for (uint8_t i = 0; i < GCS_TASK_MAX_RETURNS; i++)
			r->task.returns[i] =
				prism_id_derive(r->task.id, PRISM_ID_OBJECT, i + 1);
		break;
	case GCS_T_ACTOR:
		r->actor.state = GCS_ACTOR_DEAD;
		r->actor.restarts = UINT32_MAX;
		r->actor.name = big_str(GCS_NAME_MAX);
		r->actor.class_name = big_str(GCS_NAME_MAX);
		break;
	case GCS_T_FUNCTION:
		r->function.name = big_str(GCS_NAME_MAX);
		r->function.code_path = big_bytes(GCS_CODE_PATH_MAX);
		r->function.hash = UINT64_MAX;
		break;
	case GCS_T_JOB:
		r->job.driver_address = big_str(GCS_ADDRESS_MAX);
		r->job.start_ns = UINT64_MAX;
		r->job.state = GCS_JOB_FAILED;
		break;
	case GCS_T_KV:
		r->kv.value = big_bytes(GCS_VALUE_MAX);
		break;
	}
}

typedef void (*fill_fn)(enum gcs_table t, gcs_record *r);
static const fill_fn fills[] = {fill_typical, fill_limits};

/* The encoding of *r in an exact-size heap block (caller frees); checks that the size
 * functions agree with it. */
static uint8_t *encode_exact(enum gcs_table t, const gcs_record *r, size_t *len)
{
	size_t size, n;
	cr_assert_eq(gcs_record_size(t, r, &size), 0, "table %d", t);
	cr_assert_eq(gcs_record_encode(t, r, NULL, 0, &n), -ENOSPC);
	cr_assert_eq(n, size);
	uint8_t *buf = malloc(size);
	cr_assert_not_null(buf);
	cr_assert_eq(gcs_record_encode(t, r, buf, size, &n), 0);
	cr_assert_eq(n, size);
	*len = n;
	return buf;
}

static size_t rec_size(enum gcs_table t)
{
	static const size_t sizes[] = {
#define REC_SIZE(NAME, name) [GCS_T_##NAME] = sizeof(gcs_##name##_rec),
		GCS_TABLE_LIST(REC_SIZE)
#undef REC_SIZE
	};
	return sizes[t];
}

/* Decoding buf[0..len) as table t must fail with want, and leave *out zeroed.  So must
 * gcs_record_check(), unless the input names another table: check judges it as that. */
static void expect_refused(enum gcs_table t, const uint8_t *buf, size_t len, int want,
			   const char *what)
{
	uint8_t *in = dup_exact(buf, len);
	gcs_record out, zero;
	memset(&out, 0x5a, sizeof(out));
	memset(&zero, 0, sizeof(zero));
	int rc = gcs_record_decode(t, in, len, &out);
	cr_assert_eq(rc, want, "%s (table %s, %zu bytes): %s", what, gcs_table_name(t), len,
		     prism_errname(rc));
	cr_assert_eq(memcmp(&out, &zero, rec_size(t)), 0);
	if (len < 2 || in[0] != GCS_RECORD_VERSION || in[1] == t) {
		enum gcs_table got = GCS_T_KV;
		rc = gcs_record_check(in, len, &got);
		cr_assert_eq(rc, want, "%s: check gave %s", what, prism_errname(rc));
		cr_assert_eq(got, 0);
	}
	free(in);
}

/* ---- Round trips ---- */

Test(record, every_table_round_trips_typical_and_limit_sized_records)
{
	init_big();
	for (size_t f = 0; f < PRISM_ARRAY_LEN(fills); f++) {
		for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
			gcs_record r, back;
			size_t len, len2;
			fills[f](t, &r);
			uint8_t *buf = encode_exact(t, &r, &len);
			cr_assert_leq(len, GCS_RECORD_MAX);
			cr_assert_eq(buf[0], GCS_RECORD_VERSION);
			cr_assert_eq(buf[1], t);
			uint8_t *in = dup_exact(buf, len);
			cr_assert_eq(gcs_record_decode(t, in, len, &back), 0, "%s",
				     gcs_table_name(t));
			enum gcs_table got = 0;
			cr_assert_eq(gcs_record_check(in, len, &got), 0);
			cr_assert_eq(got, t);
			/* The encoding is injective: the same bytes mean the same fields. */
			uint8_t *again = encode_exact(t, &back, &len2);
			cr_assert_eq(len2, len);
			cr_assert_arr_eq(again, buf, len);
			free(again);
			free(in);
			free(buf);
		}
	}
}

Test(record, decoded_fields_equal_the_originals_and_point_into_the_input)
{
	gcs_record r;
	gcs_node_rec node;
	size_t len;
	fill_typical(GCS_T_NODE, &r);
	uint8_t *buf = encode_exact(GCS_T_NODE, &r, &len);
	cr_assert_eq(gcs_node_decode(buf, len, &node), 0);
	cr_assert(prism_id_eq(node.id, r.node.id));
	cr_assert_eq(node.address.len, r.node.address.len);
	cr_assert_eq(memcmp(node.address.p, r.node.address.p, node.address.len), 0);
	cr_assert((const uint8_t *)node.address.p > buf);
	cr_assert((const uint8_t *)node.address.p + node.address.len <= buf + len);
	cr_assert_eq(node.n_resources, 4);
	for (uint32_t i = 0; i < 4; i++) {
		cr_assert_eq(node.resources[i].name.len, strlen(resource_names[i]));
		cr_assert_eq(memcmp(node.resources[i].name.p, resource_names[i],
				    node.resources[i].name.len),
			     0);
		cr_assert_eq(node.resources[i].amount_milli, r.node.resources[i].amount_milli);
	}
	cr_assert_eq(node.resources[4].name.p, NULL, "elements past the count stay zero");
	cr_assert_eq(node.heartbeat_ns, r.node.heartbeat_ns);
	cr_assert_eq(node.load, 12);
	cr_assert_eq(node.state, GCS_NODE_ALIVE);
	free(buf);

	gcs_task_rec task;
	fill_typical(GCS_T_TASK, &r);
	buf = encode_exact(GCS_T_TASK, &r, &len);
	cr_assert_eq(gcs_task_decode(buf, len, &task), 0);
	cr_assert_eq(task.spec.len, 14, "bytes may hold NULs");
	cr_assert_eq(memcmp(task.spec.p, r.task.spec.p, 14), 0);
	cr_assert_eq(task.n_returns, 2);
	cr_assert(prism_id_eq(task.returns[1], r.task.returns[1]));
	free(buf);
}

Test(record, empty_strings_and_nil_ids_round_trip)
{
	gcs_actor_rec a = {.class_name = {NULL, 0}}, back;
	uint8_t buf[128];
	size_t len;
	cr_assert_eq(gcs_actor_encode(&a, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, 2 + 3 * PRISM_ID_SIZE + 1 + 4 + 4 + 4);
	cr_assert_eq(gcs_actor_decode(buf, len, &back), 0);
	cr_assert(prism_id_is_nil(back.checkpoint));
	cr_assert_not_null(back.name.p, "a decoded empty string still points into the input");
	cr_assert_eq(back.name.len, 0);
}

/* The format, byte for byte: a change here breaks every log and replica on disk. */
Test(record, job_encoding_is_byte_exact)
{
	gcs_job_rec job = {.id = id_of(PRISM_ID_JOB, 0x10),
			   .driver_address = str("h:1"),
			   .start_ns = 0x0102030405060708ull,
			   .state = GCS_JOB_FAILED};
	static const uint8_t want[] = {
		1,
		GCS_T_JOB, /* version, table */
		0x10,
		0x11,
		0x12,
		0x13,
		0x14,
		0x15,
		0x16,
		0x17,
		0x18,
		0x19,
		0x1a,
		0x1b,
		0x1c,
		0x1d,
		0x1e,
		PRISM_ID_JOB, /* id */
		3,
		0,
		0,
		0,
		'h',
		':',
		'1', /* driver_address */
		8,
		7,
		6,
		5,
		4,
		3,
		2,
		1, /* start_ns */
		GCS_JOB_FAILED,
	};
	uint8_t buf[64];
	size_t len, size;
	cr_assert_eq(gcs_job_encoded_size(&job, &size), 0);
	cr_assert_eq(size, sizeof(want));
	cr_assert_eq(gcs_job_encode(&job, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, sizeof(want));
	cr_assert_arr_eq(buf, want, sizeof(want));
}

/* ---- Refusals ---- */

/* Every strict prefix of a valid record is TRUNCATED.  Records up to 8 KiB are cut at
 * every offset; the 1 MiB ones at a stride and around both ends. */
Test(record, every_truncation_is_refused)
{
	init_big();
	for (size_t f = 0; f < PRISM_ARRAY_LEN(fills); f++) {
		for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
			gcs_record r;
			size_t len;
			fills[f](t, &r);
			uint8_t *buf = encode_exact(t, &r, &len);
			size_t stride = len <= 8192 ? 1 : 4093;
			for (size_t cut = 0; cut < len;
			     cut += cut < 64 || len - cut < 64 ? 1 : stride)
				expect_refused(t, buf, cut, PRISM_E_TRUNCATED, "truncated");
			free(buf);
		}
	}
}

Test(record, another_version_is_refused)
{
	static const uint8_t versions[] = {0, 2, 0x81, 0xff};
	for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
		gcs_record r;
		size_t len;
		fill_typical(t, &r);
		uint8_t *buf = encode_exact(t, &r, &len);
		for (size_t v = 0; v < sizeof(versions); v++) {
			buf[0] = versions[v];
			expect_refused(t, buf, len, PRISM_E_BAD_VERSION, "version");
			/* The version is judged as soon as its byte is there. */
			expect_refused(t, buf, 1, PRISM_E_BAD_VERSION, "version alone");
		}
		free(buf);
	}
}

Test(record, another_table_is_refused)
{
	for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
		gcs_record r;
		size_t len;
		fill_typical(t, &r);
		uint8_t *buf = encode_exact(t, &r, &len);
		for (unsigned u = GCS_T_NODE; u <= GCS_T_MAX; u++) {
			if (u != t)
				expect_refused(u, buf, len, PRISM_E_PROTO, "other table");
		}
		/* A table byte that names no table: check cannot pick a decoder. */
		static const uint8_t unknown[] = {0, GCS_T_MAX + 1, 0x80, 0xff};
		for (size_t i = 0; i < sizeof(unknown); i++) {
			enum gcs_table got = GCS_T_KV;
			buf[1] = unknown[i];
			cr_assert_eq(gcs_record_check(buf, len, &got), PRISM_E_PROTO);
			cr_assert_eq(got, 0);
			cr_assert_eq(gcs_record_decode(t, buf, len, &r), PRISM_E_PROTO);
		}
		free(buf);
	}
}

Test(record, trailing_bytes_are_refused)
{
	for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
		gcs_record r;
		size_t len;
		fill_typical(t, &r);
		uint8_t *buf = encode_exact(t, &r, &len);
		uint8_t *longer = malloc(len + 1);
		cr_assert_not_null(longer);
		memcpy(longer, buf, len);
		longer[len] = 0;
		expect_refused(t, longer, len + 1, PRISM_E_PROTO, "trailing byte");
		free(longer);
		free(buf);
	}
}

/* Each state one past its largest value; the state byte is found as the byte that
 * differs from the encoding with the largest value. */
Test(record, states_out_of_range_are_refused)
{
	static const struct {
		enum gcs_table table;
		size_t off; /* of the uint8_t state in the record */
		uint8_t max;
	} cases[] = {
		{GCS_T_NODE, offsetof(gcs_node_rec, state), GCS_NODE_DEAD},
		{GCS_T_ACTOR, offsetof(gcs_actor_rec, state), GCS_ACTOR_DEAD},
		{GCS_T_JOB, offsetof(gcs_job_rec, state), GCS_JOB_FAILED},
	};
	for (size_t i = 0; i < PRISM_ARRAY_LEN(cases); i++) {
		enum gcs_table t = cases[i].table;
		gcs_record r;
		size_t len, at, size;
		fill_typical(t, &r);
		uint8_t *state = (uint8_t *)&r + cases[i].off;
		*state = cases[i].max;
		uint8_t *buf = encode_exact(t, &r, &len);
		*state = 0;
		uint8_t *zero = encode_exact(t, &r, &len);
		for (at = 0; buf[at] == zero[at]; at++)
			;
		cr_assert_eq(buf[at], cases[i].max);
		for (unsigned v = cases[i].max + 1u; v <= 0xff; v += 0x3f) {
			buf[at] = (uint8_t)v;
			expect_refused(t, buf, len, PRISM_E_PROTO, "state");
			*state = (uint8_t)v;
			cr_assert_eq(gcs_record_size(t, &r, &size), -EINVAL);
			cr_assert_eq(gcs_record_encode(t, &r, buf, len, &size), -EINVAL);
			cr_assert_eq(size, 0);
		}
		free(zero);
		free(buf);
	}
}

/* Every limited length and count, one past its limit.  The prefix is found as the first
 * byte where the encodings with the limit and with one less differ: the fields before it
 * are the same, and n and n - 1 always differ in their low byte. */
Test(record, lengths_and_counts_over_their_limits_are_refused)
{
	static const struct {
		enum gcs_table table;
		size_t off; /* of the gcs_str, gcs_bytes or count in the record */
		uint32_t limit;
		bool count;
	} cases[] = {
		{GCS_T_NODE, offsetof(gcs_node_rec, address), GCS_ADDRESS_MAX, false},
		{GCS_T_NODE, offsetof(gcs_node_rec, n_resources), GCS_NODE_MAX_RESOURCES, true},
		{GCS_T_NODE, offsetof(gcs_node_rec, resources[3].name), GCS_RESOURCE_NAME_MAX,
		 false},
		{GCS_T_OBJECT, offsetof(gcs_object_rec, n_locations), GCS_OBJECT_MAX_LOCATIONS,
		 true},
		{GCS_T_TASK, offsetof(gcs_task_rec, spec), GCS_VALUE_MAX, false},
		{GCS_T_TASK, offsetof(gcs_task_rec, n_returns), GCS_TASK_MAX_RETURNS, true},
		{GCS_T_ACTOR, offsetof(gcs_actor_rec, name), GCS_NAME_MAX, false},
		{GCS_T_ACTOR, offsetof(gcs_actor_rec, class_name), GCS_NAME_MAX, false},
		{GCS_T_FUNCTION, offsetof(gcs_function_rec, name), GCS_NAME_MAX, false},
		{GCS_T_FUNCTION, offsetof(gcs_function_rec, code_path), GCS_CODE_PATH_MAX,
		 false},
		{GCS_T_JOB, offsetof(gcs_job_rec, driver_address), GCS_ADDRESS_MAX, false},
		{GCS_T_KV, offsetof(gcs_kv_rec, value), GCS_VALUE_MAX, false},
	};
	init_big();
	for (size_t i = 0; i < PRISM_ARRAY_LEN(cases); i++) {
		enum gcs_table t = cases[i].table;
		uint32_t limit = cases[i].limit;
		gcs_record r;
		size_t len, len1, at, size;
		uint8_t *field = (uint8_t *)&r + cases[i].off;
		/* gcs_str and gcs_bytes share a layout; the length is set through memcpy. */
		size_t len_off = cases[i].count ? 0 : offsetof(gcs_bytes, len);
		const void *p = big;

		fill_typical(t, &r);
		if (!cases[i].count)
			memcpy(field + offsetof(gcs_bytes, p), &p, sizeof(p));
		memcpy(field + len_off, &limit, sizeof(limit));
		uint8_t *buf = encode_exact(t, &r, &len);
		limit--;
		memcpy(field + len_off, &limit, sizeof(limit));
		uint8_t *less = encode_exact(t, &r, &len1);
		for (at = 0; buf[at] == less[at]; at++)
			;
		cr_assert_eq(prism_le32_load(buf + at), cases[i].limit, "case %zu", i);

		prism_le32_store(buf + at, cases[i].limit + 1);
		expect_refused(t, buf, len, PRISM_E_TOO_BIG, "over the limit");
		/* Judged before the bytes it announces are looked for. */
		expect_refused(t, buf, at + 4, PRISM_E_TOO_BIG, "over the limit, cut short");
		prism_le32_store(buf + at, UINT32_MAX);
		expect_refused(t, buf, len, PRISM_E_TOO_BIG, "length 0xffffffff");

		limit = cases[i].limit + 1;
		memcpy(field + len_off, &limit, sizeof(limit));
		cr_assert_eq(gcs_record_size(t, &r, &size), PRISM_E_TOO_BIG, "case %zu", i);
		cr_assert_eq(gcs_record_encode(t, &r, buf, len, &size), PRISM_E_TOO_BIG);
		cr_assert_eq(size, 0);
		free(less);
		free(buf);
	}
}

Test(record, bad_ids_and_nul_in_text_are_refused)
{
	gcs_record r;
	size_t len, size;
	fill_typical(GCS_T_NODE, &r);
	uint8_t *buf = encode_exact(GCS_T_NODE, &r, &len);
	/* The id's kind byte (offset 2 + 15) above PRISM_ID_KIND_MAX. */
	buf[17] = PRISM_ID_KIND_MAX + 1;
	expect_refused(GCS_T_NODE, buf, len, PRISM_E_PROTO, "id kind");
	buf[17] = PRISM_ID_NODE;
	/* A NUL inside the address (its bytes start after the id and the length). */
	buf[2 + PRISM_ID_SIZE + 4 + 3] = 0;
	expect_refused(GCS_T_NODE, buf, len, PRISM_E_PROTO, "NUL in text");
	free(buf);

	r.node.id.b[15] = PRISM_ID_KIND_MAX + 1;
	cr_assert_eq(gcs_record_size(GCS_T_NODE, &r, &size), -EINVAL);
	r.node.id.b[15] = PRISM_ID_NODE;
	r.node.address = (gcs_str){"a\0b", 3};
	cr_assert_eq(gcs_record_size(GCS_T_NODE, &r, &size), -EINVAL);
	r.node.address = (gcs_str){NULL, 1};
	cr_assert_eq(gcs_record_size(GCS_T_NODE, &r, &size), -EINVAL);
	r.node.address = (gcs_str){NULL, 0};
	cr_assert_eq(gcs_record_size(GCS_T_NODE, &r, &size), 0);
	/* Bytes may hold NULs, text may not. */
	gcs_kv_rec kv = {.value = {(const uint8_t *)"\0\0", 2}};
	cr_assert_eq(gcs_kv_encoded_size(&kv, &size), 0);
	cr_assert_eq(size, 2 + 4 + 2);
}

Test(record, encode_needs_room_and_writes_nothing_when_refused)
{
	gcs_record r;
	size_t size, len;
	uint8_t buf[256];
	fill_typical(GCS_T_ACTOR, &r);
	cr_assert_eq(gcs_actor_encoded_size(&r.actor, &size), 0);
	memset(buf, 0xee, sizeof(buf));
	cr_assert_eq(gcs_actor_encode(&r.actor, buf, size - 1, &len), -ENOSPC);
	cr_assert_eq(len, size, "-ENOSPC says how much is needed");
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0xee);
	cr_assert_eq(gcs_actor_encode(&r.actor, buf, size, NULL), 0);
	cr_assert_eq(gcs_record_encode(GCS_T_ACTOR, &r, NULL, 1, &len), -EINVAL);
}

Test(record, bad_arguments_are_refused)
{
	gcs_record r;
	size_t size;
	uint8_t buf[8] = {1, GCS_T_KV, 0, 0, 0, 0};
	fill_typical(GCS_T_KV, &r);
	cr_assert_eq(gcs_record_size(0, &r, &size), -EINVAL);
	cr_assert_eq(gcs_record_size(GCS_T_MAX + 1, &r, &size), -EINVAL);
	cr_assert_eq(gcs_record_size(GCS_T_KV, NULL, &size), -EINVAL);
	cr_assert_eq(gcs_record_size(GCS_T_KV, &r, NULL), -EINVAL);
	cr_assert_eq(gcs_record_decode(0, buf, 6, &r), -EINVAL);
	cr_assert_eq(gcs_record_decode(GCS_T_KV, buf, 6, NULL), -EINVAL);
	cr_assert_eq(gcs_record_decode(GCS_T_KV, NULL, 6, &r), -EINVAL);
	cr_assert_eq(gcs_record_decode(GCS_T_KV, buf, 6, &r), 0);
	cr_assert_eq(gcs_record_check(NULL, 1, NULL), -EINVAL);
	cr_assert_eq(gcs_record_check(NULL, 0, NULL), PRISM_E_TRUNCATED);
	cr_assert_eq(gcs_record_check(buf, 6, NULL), 0);
}

Test(record, table_names_parse_back)
{
	for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
		enum gcs_table back = 0;
		const char *name = gcs_table_name(t);
		cr_assert_not_null(name);
		cr_assert_eq(gcs_table_parse(name, &back), 0);
		cr_assert_eq(back, t);
	}
	cr_assert_str_eq(gcs_table_name(GCS_T_NODE), "node");
	cr_assert_str_eq(gcs_table_name(GCS_T_KV), "kv");
	cr_assert_null(gcs_table_name(0));
	cr_assert_null(gcs_table_name(GCS_T_MAX + 1));
	enum gcs_table out = GCS_T_JOB;
	cr_assert_eq(gcs_table_parse("nodes", &out), -EINVAL);
	cr_assert_eq(gcs_table_parse("", &out), -EINVAL);
	cr_assert_eq(gcs_table_parse(NULL, &out), -EINVAL);
	cr_assert_eq(out, GCS_T_JOB);
}

/* Writes the fuzz seeds when PRISM_GCS_SEED_DIR names a directory (see the top). */
Test(record, fuzz_seeds)
{
	const char *dir = getenv("PRISM_GCS_SEED_DIR");
	if (!dir)
		return;
	init_big();
	static const char *const kinds[] = {"valid", "limits"};
	for (size_t f = 0; f < PRISM_ARRAY_LEN(fills); f++) {
		for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
			gcs_record r;
			size_t len;
			char path[4096];
			fills[f](t, &r);
			uint8_t *buf = encode_exact(t, &r, &len);
			/* The 1 MiB limit records would only slow the fuzzer down. */
			if (len <= 8192) {
				snprintf(path, sizeof(path), "%s/%s_%s", dir, kinds[f],
					 gcs_table_name(t));
				FILE *fp = fopen(path, "wb");
				cr_assert_not_null(fp, "%s", path);
				cr_assert_eq(fwrite(buf, 1, len, fp), len);
				cr_assert_eq(fclose(fp), 0);
			}
			free(buf);
		}
	}
}
