/* A GCS replica's store: operations' wire form, applying in order, deduplication of a
 * client's retried requests, typed tables refusing malformed records, and the map
 * against a plain model through many puts and deletes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/id.h"
#include "gcs/record.h"
#include "gcs/store.h"

static gcs_op kv(const char *key, const char *val)
{
	return (gcs_op){.kind = val ? GCS_OP_PUT : GCS_OP_DEL,
			.table = GCS_T_KV,
			.key = (const uint8_t *)key,
			.key_len = (uint32_t)strlen(key),
			.value = (const uint8_t *)val,
			.value_len = val ? (uint32_t)strlen(val) : 0};
}

Test(store, op_wire_form_round_trips_and_refuses_damage)
{
	gcs_op op = kv("alpha", "one"), back;
	op.client = (prism_id){{9, 9, 9}};
	op.req_id = 42;
	uint8_t buf[256];
	size_t n;
	cr_assert_eq(gcs_op_encode(&op, buf, sizeof(buf), &n), 0);
	cr_assert_eq(n, gcs_op_size(&op));
	cr_assert_eq(gcs_op_decode(buf, n, &back), 0);
	cr_assert_eq(back.kind, GCS_OP_PUT);
	cr_assert_eq(back.req_id, 42);
	cr_assert_eq(back.key_len, 5);
	cr_assert(memcmp(back.key, "alpha", 5) == 0);
	cr_assert(memcmp(back.value, "one", 3) == 0);
	cr_assert(memcmp(&back.client, &op.client, sizeof(op.client)) == 0);
	for (size_t cut = 0; cut < n; cut++)
		cr_assert_neq(gcs_op_decode(buf, cut, &back), 0, "cut at %zu", cut);
	cr_assert_eq(gcs_op_encode(&op, buf, n - 1, &n), -ENOSPC);
	cr_assert_eq(gcs_op_encode(&op, buf, sizeof(buf), &n), 0);
	buf[0] = 2;
	cr_assert_eq(gcs_op_decode(buf, n, &back), PRISM_E_BAD_VERSION);
	buf[0] = 1;
	buf[1] = 9;
	cr_assert_eq(gcs_op_decode(buf, n, &back), PRISM_E_PROTO, "unknown kind");
	buf[1] = GCS_OP_PUT;
	buf[2] = 77;
	cr_assert_eq(gcs_op_decode(buf, n, &back), PRISM_E_PROTO, "unknown table");
	buf[2] = GCS_T_KV;
	uint8_t longer[300];
	memcpy(longer, buf, n);
	longer[n] = 0;
	cr_assert_eq(gcs_op_decode(longer, n + 1, &back), PRISM_E_PROTO, "trailing bytes");
}

Test(store, applies_in_order_and_deduplicates_retries)
{
	gcs_store *s;
	cr_assert_eq(gcs_store_create(&s), 0);
	gcs_op a = kv("k", "v1");
	cr_assert_eq(gcs_store_apply(s, 2, &a), -EINVAL, "seq must follow");
	cr_assert_eq(gcs_store_apply(s, 1, &a), GCS_APPLIED);
	const uint8_t *v;
	size_t vl;
	uint64_t ver;
	cr_assert_eq(gcs_store_get(s, GCS_T_KV, "k", 1, &v, &vl, &ver), 0);
	cr_assert_eq(vl, 2);
	cr_assert_eq(ver, 1);
	/* A client's request 7 applied once, its retry (after a reconfiguration) not again. */
	gcs_op b = kv("k", "v2");
	b.client = (prism_id){{1}};
	b.req_id = 7;
	cr_assert_eq(gcs_store_apply(s, 2, &b), GCS_APPLIED);
	gcs_op c = kv("k", "v3");
	cr_assert_eq(gcs_store_apply(s, 3, &c), GCS_APPLIED);
	cr_assert_eq(gcs_store_apply(s, 4, &b), GCS_DUPLICATE);
	cr_assert_eq(gcs_store_get(s, GCS_T_KV, "k", 1, &v, &vl, &ver), 0);
	cr_assert(memcmp(v, "v3", 2) == 0, "the retry did not overwrite a later write");
	cr_assert_eq(gcs_store_seq(s), 4);
	/* Deletes; a key in another table is another key. */
	gcs_op d = kv("k", NULL);
	cr_assert_eq(gcs_store_apply(s, 5, &d), GCS_APPLIED);
	cr_assert_eq(gcs_store_get(s, GCS_T_KV, "k", 1, &v, &vl, &ver), -ENOENT);
	cr_assert_eq(gcs_store_count(s), 0);
	/* A typed table takes only a valid record of its own table. */
	gcs_op bad = kv("node-1", "not a record");
	bad.table = GCS_T_NODE;
	cr_assert_lt(gcs_store_apply(s, 6, &bad), 0);
	cr_assert_eq(gcs_store_seq(s), 6, "an invalid operation still consumes its seq");
	cr_assert_eq(gcs_store_get(s, GCS_T_NODE, "node-1", 6, &v, &vl, &ver), -ENOENT);
	gcs_store_destroy(s);
}

/* 20,000 random puts and deletes over 3,000 keys against an array model. */
Test(store, map_matches_a_model_through_puts_and_deletes)
{
	enum { KEYS = 3000, OPS = 20000 };
	static int model[KEYS]; /* 0: absent, else the value */
	gcs_store *s;
	cr_assert_eq(gcs_store_create(&s), 0);
	uint64_t x = 88172645463325252ull;
	for (uint64_t seq = 1; seq <= OPS; seq++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int k = (int)(x % KEYS);
		char key[16], val[16];
		snprintf(key, sizeof(key), "k%d", k);
		bool put = (x >> 20) % 3 != 0;
		snprintf(val, sizeof(val), "%llu", (unsigned long long)seq);
		gcs_op op = kv(key, put ? val : NULL);
		cr_assert_eq(gcs_store_apply(s, seq, &op), GCS_APPLIED);
		model[k] = put ? (int)seq : 0;
	}
	size_t present = 0;
	for (int k = 0; k < KEYS; k++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", k);
		const uint8_t *v;
		size_t vl;
		uint64_t ver;
		int rc = gcs_store_get(s, GCS_T_KV, key, strlen(key), &v, &vl, &ver);
		if (!model[k]) {
			cr_assert_eq(rc, -ENOENT, "key %d deleted", k);
			continue;
		}
		present++;
		cr_assert_eq(rc, 0, "key %d present", k);
		cr_assert_eq(ver, (uint64_t)model[k]);
	}
	cr_assert_eq(gcs_store_count(s), present);
	gcs_store_destroy(s);
}
