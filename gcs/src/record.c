/* record.c — the GCS record codec (gcs/record.h), driven by tables.
 *
 * Each record struct is described once, as a list of fields: what kind of value, where
 * it sits in the struct, and its limit.  One walk over such a list serves every operation;
 * what it does at each field is a "leaf" function: size_leaf() validates a record and
 * counts its bytes, put_leaf() writes them, get_leaf() reads and checks them.  An array
 * is a field too: its leaf handles the count, and the walk then descends into each of
 * the first `count` elements with the element's own list.  A new table is a field list
 * and a line in GCS_TABLE_LIST; a new kind of field is one case in each leaf.
 *
 * Encoding validates and sizes the record first, so the writer cannot run out of room and
 * nothing is written when the record is refused. */
#include <stddef.h>
#include <string.h>

#include "base/error.h"
#include "base/wire.h"
#include "gcs/record.h"

enum kind {
	K_STATE, /* uint8_t holding an enum; max is its largest value */
	K_U32,
	K_U64,
	K_ID,
	K_STR,   /* gcs_str; max is the longest length */
	K_BYTES, /* gcs_bytes; max is the longest length */
	K_ARRAY, /* a u32 count at count_off, then that many elements at off */
};

struct layout;

struct field {
	enum kind kind;
	uint32_t off; /* of the value in the record struct */
	uint32_t max;
	uint32_t count_off;        /* K_ARRAY only */
	const struct layout *elem; /* K_ARRAY only: what each element holds */
};

struct layout {
	const struct field *fields;
	size_t n;
	size_t size; /* sizeof the struct, the stride of an array of them */
};

/* Left unformatted: clang-format would spread each initialiser over four lines. */
/* clang-format off */
#define LAYOUT(type, list) {list, PRISM_ARRAY_LEN(list), sizeof(type)}
#define FIELD(kind, type, member, max) {kind, offsetof(type, member), max, 0, NULL}
/* The limit of an array is the length of the struct's array, so a decoder can never
 * store past it. */
#define ARRAY(type, member, count, elem) \
	{K_ARRAY, offsetof(type, member), PRISM_ARRAY_LEN(((type *)0)->member), \
	 offsetof(type, count), &(elem)}
/* clang-format on */

/* ---- The records ---- */

static const struct field id_fields[] = {{K_ID, 0, 0, 0, NULL}};
static const struct layout id_layout = LAYOUT(prism_id, id_fields);

static const struct field resource_fields[] = {
	FIELD(K_STR, gcs_resource, name, GCS_RESOURCE_NAME_MAX),
	FIELD(K_U64, gcs_resource, amount_milli, 0),
};
static const struct layout resource_layout = LAYOUT(gcs_resource, resource_fields);

static const struct field node_fields[] = {
	FIELD(K_ID, gcs_node_rec, id, 0),
	FIELD(K_STR, gcs_node_rec, address, GCS_ADDRESS_MAX),
	ARRAY(gcs_node_rec, resources, n_resources, resource_layout),
	FIELD(K_U64, gcs_node_rec, heartbeat_ns, 0),
	FIELD(K_U32, gcs_node_rec, load, 0),
	FIELD(K_STATE, gcs_node_rec, state, GCS_NODE_DEAD),
	ARRAY(gcs_node_rec, available, n_available, resource_layout),
	FIELD(K_U64, gcs_node_rec, store_used, 0),
	FIELD(K_U64, gcs_node_rec, store_capacity, 0),
};

static const struct field object_fields[] = {
	FIELD(K_ID, gcs_object_rec, id, 0),
	FIELD(K_U64, gcs_object_rec, size, 0),
	FIELD(K_ID, gcs_object_rec, owner, 0),
	ARRAY(gcs_object_rec, locations, n_locations, id_layout),
};

static const struct field task_fields[] = {
	FIELD(K_ID, gcs_task_rec, id, 0),
	FIELD(K_BYTES, gcs_task_rec, spec, GCS_VALUE_MAX),
	ARRAY(gcs_task_rec, returns, n_returns, id_layout),
};

static const struct field actor_fields[] = {
	FIELD(K_ID, gcs_actor_rec, id, 0),
	FIELD(K_ID, gcs_actor_rec, node, 0),
	FIELD(K_STATE, gcs_actor_rec, state, GCS_ACTOR_DEAD),
	FIELD(K_U32, gcs_actor_rec, restarts, 0),
	FIELD(K_ID, gcs_actor_rec, checkpoint, 0),
	FIELD(K_STR, gcs_actor_rec, name, GCS_NAME_MAX),
	FIELD(K_STR, gcs_actor_rec, class_name, GCS_NAME_MAX),
};

static const struct field function_fields[] = {
	FIELD(K_STR, gcs_function_rec, name, GCS_NAME_MAX),
	FIELD(K_BYTES, gcs_function_rec, code_path, GCS_CODE_PATH_MAX),
	FIELD(K_U64, gcs_function_rec, hash, 0),
};

static const struct field job_fields[] = {
	FIELD(K_ID, gcs_job_rec, id, 0),
	FIELD(K_STR, gcs_job_rec, driver_address, GCS_ADDRESS_MAX),
	FIELD(K_U64, gcs_job_rec, start_ns, 0),
	FIELD(K_STATE, gcs_job_rec, state, GCS_JOB_FAILED),
};

static const struct field kv_fields[] = {
	FIELD(K_BYTES, gcs_kv_rec, value, GCS_VALUE_MAX),
};

static const struct {
	const char *name;
	struct layout layout;
} tables[] = {
#define TABLE(NAME, name) [GCS_T_##NAME] = {#name, LAYOUT(gcs_##name##_rec, name##_fields)},
	GCS_TABLE_LIST(TABLE)
#undef TABLE
};

static const struct layout *layout_of(unsigned table)
{
	if (table < GCS_T_NODE || table > GCS_T_MAX)
		return NULL;
	return &tables[table].layout;
}

/* ---- The walk ---- */

struct codec;
typedef int (*leaf_fn)(struct codec *c, const struct field *f, uint8_t *rec);

struct codec {
	leaf_fn leaf;
	size_t size;         /* size_leaf: bytes so far */
	prism_wire_writer w; /* put_leaf */
	prism_wire_reader r; /* get_leaf */
};

/* Apply c->leaf to every field of the record at rec, and to every element of its arrays.
 * The size and put walks never write through rec; they share this walk with the get. */
static int walk(struct codec *c, const struct layout *l, uint8_t *rec)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct field *f = &l->fields[i];
		int rc = c->leaf(c, f, rec);
		if (rc)
			return rc;
		if (f->kind != K_ARRAY)
			continue;
		/* The leaf has checked the count against the limit. */
		uint32_t n = *(const uint32_t *)(rec + f->count_off);
		for (uint32_t j = 0; j < n; j++) {
			rc = walk(c, f->elem, rec + f->off + (size_t)j * f->elem->size);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* The bytes and length of the gcs_str or gcs_bytes at v. */
static const void *span(const struct field *f, const uint8_t *v, uint32_t *len)
{
	if (f->kind == K_STR) {
		*len = ((const gcs_str *)v)->len;
		return ((const gcs_str *)v)->p;
	}
	*len = ((const gcs_bytes *)v)->len;
	return ((const gcs_bytes *)v)->p;
}

/* A gcs_str or gcs_bytes that may be encoded: within its limit, bytes behind a nonzero
 * length, and no NUL in text (the decoder refuses one). */
static int span_size(const struct field *f, const uint8_t *v, size_t *size)
{
	uint32_t len;
	const void *p = span(f, v, &len);
	if (len > f->max)
		return PRISM_E_TOO_BIG;
	if (len > 0 && (!p || (f->kind == K_STR && memchr(p, 0, len))))
		return -EINVAL;
	*size += 4 + (size_t)len;
	return 0;
}

static int size_leaf(struct codec *c, const struct field *f, uint8_t *rec)
{
	const uint8_t *v = rec + f->off;

	switch (f->kind) {
	case K_STATE:
		c->size += 1;
		return *v <= f->max ? 0 : -EINVAL;
	case K_U32:
		c->size += 4;
		return 0;
	case K_U64:
		c->size += 8;
		return 0;
	case K_ID:
		c->size += PRISM_ID_SIZE;
		return v[PRISM_ID_SIZE - 1] <= PRISM_ID_KIND_MAX ? 0 : -EINVAL;
	case K_STR:
	case K_BYTES:
		return span_size(f, v, &c->size);
	case K_ARRAY:
		c->size += 4;
		return *(const uint32_t *)(rec + f->count_off) <= f->max ? 0 : PRISM_E_TOO_BIG;
	}
	return -EINVAL;
}

/* The record was validated and sized first, so the puts cannot fail. */
static int put_leaf(struct codec *c, const struct field *f, uint8_t *rec)
{
	const uint8_t *v = rec + f->off;
	const void *p;
	uint32_t len;

	switch (f->kind) {
	case K_STATE:
		return prism_wire_put_u8(&c->w, *v);
	case K_U32:
		return prism_wire_put_u32(&c->w, *(const uint32_t *)v);
	case K_U64:
		return prism_wire_put_u64(&c->w, *(const uint64_t *)v);
	case K_ID:
		return prism_wire_put_id(&c->w, *(const prism_id *)v);
	case K_STR:
	case K_BYTES:
		p = span(f, v, &len);
		return prism_wire_put_bytes(&c->w, p, len);
	case K_ARRAY:
		return prism_wire_put_u32(&c->w, *(const uint32_t *)(rec + f->count_off));
	}
	return -EINVAL;
}

/* The reader refuses short input and oversized lengths itself; states and counts are
 * checked here, after their bytes are read. */
static int get_leaf(struct codec *c, const struct field *f, uint8_t *rec)
{
	uint8_t *v = rec + f->off;
	uint32_t *count;
	int rc;

	switch (f->kind) {
	case K_STATE:
		if ((rc = prism_wire_get_u8(&c->r, v)) != 0)
			return rc;
		return *v <= f->max ? 0 : PRISM_E_PROTO;
	case K_U32:
		return prism_wire_get_u32(&c->r, (uint32_t *)v);
	case K_U64:
		return prism_wire_get_u64(&c->r, (uint64_t *)v);
	case K_ID:
		return prism_wire_get_id(&c->r, (prism_id *)v);
	case K_STR:
		return prism_wire_get_str(&c->r, f->max, &((gcs_str *)v)->p,
					  &((gcs_str *)v)->len);
	case K_BYTES:
		return prism_wire_get_bytes(&c->r, f->max, &((gcs_bytes *)v)->p,
					    &((gcs_bytes *)v)->len);
	case K_ARRAY:
		count = (uint32_t *)(rec + f->count_off);
		if ((rc = prism_wire_get_u32(&c->r, count)) != 0)
			return rc;
		return *count <= f->max ? 0 : PRISM_E_TOO_BIG;
	}
	return -EINVAL;
}

/* The version and table bytes; the version is judged before the table is read. */
static int get_header(prism_wire_reader *r, uint8_t *table)
{
	uint8_t version;
	int rc = prism_wire_get_u8(r, &version);
	if (rc)
		return rc;
	if (version != GCS_RECORD_VERSION)
		return PRISM_E_BAD_VERSION;
	return prism_wire_get_u8(r, table);
}

/* ---- Public functions ---- */

const char *gcs_table_name(enum gcs_table table)
{
	return layout_of(table) ? tables[table].name : NULL;
}

int gcs_table_parse(const char *name, enum gcs_table *out)
{
	if (!name || !out)
		return -EINVAL;
	for (unsigned t = GCS_T_NODE; t <= GCS_T_MAX; t++) {
		if (strcmp(name, tables[t].name) == 0) {
			*out = (enum gcs_table)t;
			return 0;
		}
	}
	return -EINVAL;
}

int gcs_record_size(enum gcs_table table, const void *rec, size_t *size)
{
	if (!size)
		return -EINVAL;
	*size = 0;
	const struct layout *l = layout_of(table);
	if (!l || !rec)
		return -EINVAL;
	struct codec c = {.leaf = size_leaf, .size = 2};
	int rc = walk(&c, l, (uint8_t *)rec);
	if (rc == 0)
		*size = c.size;
	return rc;
}

int gcs_record_encode(enum gcs_table table, const void *rec, uint8_t *buf, size_t cap,
		      size_t *len)
{
	size_t need, got;
	if (len)
		*len = 0;
	if (!buf && cap > 0)
		return -EINVAL;
	int rc = gcs_record_size(table, rec, &need);
	if (rc)
		return rc;
	if (len)
		*len = need;
	if (need > cap)
		return -ENOSPC;

	struct codec c = {.leaf = put_leaf};
	prism_wire_writer_init(&c.w, buf, cap);
	prism_wire_put_u8(&c.w, GCS_RECORD_VERSION);
	prism_wire_put_u8(&c.w, (uint8_t)table);
	walk(&c, layout_of(table), (uint8_t *)rec);
	rc = prism_wire_writer_finish(&c.w, &got);
	if (PRISM_NEVER(rc != 0 || got != need)) {
		if (len)
			*len = 0;
		return rc ? rc : PRISM_E_PROTO;
	}
	return 0;
}

int gcs_record_decode(enum gcs_table table, const uint8_t *buf, size_t len, void *out)
{
	const struct layout *l = layout_of(table);
	if (!l || !out || (!buf && len > 0))
		return -EINVAL;
	memset(out, 0, l->size);

	struct codec c = {.leaf = get_leaf};
	uint8_t t;
	prism_wire_reader_init(&c.r, buf, len);
	int rc = get_header(&c.r, &t);
	if (rc == 0 && t != table)
		rc = PRISM_E_PROTO;
	if (rc == 0)
		rc = walk(&c, l, out);
	if (rc == 0)
		rc = prism_wire_reader_finish(&c.r);
	if (rc)
		memset(out, 0, l->size);
	return rc;
}

int gcs_record_check(const uint8_t *buf, size_t len, enum gcs_table *table)
{
	prism_wire_reader r;
	gcs_record rec;
	uint8_t t;

	if (table)
		*table = 0;
	if (!buf && len > 0)
		return -EINVAL;
	prism_wire_reader_init(&r, buf, len);
	int rc = get_header(&r, &t);
	if (rc)
		return rc;
	if (!layout_of(t))
		return PRISM_E_PROTO;
	rc = gcs_record_decode(t, buf, len, &rec);
	if (rc == 0 && table)
		*table = (enum gcs_table)t;
	return rc;
}

/* The typed functions: the generic ones with the table filled in. */
#define DEFINE_TYPED(NAME, name)                                                       \
	int gcs_##name##_encoded_size(const gcs_##name##_rec *rec, size_t *size)       \
	{                                                                              \
		return gcs_record_size(GCS_T_##NAME, rec, size);                       \
	}                                                                              \
	int gcs_##name##_encode(const gcs_##name##_rec *rec, uint8_t *buf, size_t cap, \
				size_t *len)                                           \
	{                                                                              \
		return gcs_record_encode(GCS_T_##NAME, rec, buf, cap, len);            \
	}                                                                              \
	int gcs_##name##_decode(const uint8_t *buf, size_t len, gcs_##name##_rec *out) \
	{                                                                              \
		return gcs_record_decode(GCS_T_##NAME, buf, len, out);                 \
	}
GCS_TABLE_LIST(DEFINE_TYPED)
