/* config.c — typed configuration; see base/config.h.
 *
 * Every load parses into a staging array first and copies into the config only when the
 * whole source parsed, which is what makes loads all-or-nothing: an error anywhere frees
 * the staged strings and leaves the config as it was. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/error.h"
#include "base/log.h"

/* A value shown in a message is cut to this many bytes: enough to recognise it, short
 * enough that the message still fits a terminal line and a small err buffer. */
#define SHOWN_MAX 48
/* Longest environment variable prefix; PRISM_ prefixes are a few bytes. */
#define ENV_PREFIX_MAX 64

union val {
	int64_t i; /* INT, and DURATION in nanoseconds */
	double d;
	bool b;
	char *s; /* owned */
};

struct entry {
	union val v;
	enum prism_cfg_source src;
	bool has_min, has_max;
	union val min, max;
};

struct prism_cfg {
	const prism_cfg_key *schema; /* borrowed */
	size_t n;
	struct entry *e; /* n entries, parallel to schema */
};

/* A value parsed from the source being loaded, not yet in the config. */
struct staged {
	union val v;
	bool seen;
	unsigned line; /* where it was set, for the duplicate-key message */
};

/* Where text being parsed came from, to prefix error messages. */
struct where {
	enum prism_cfg_source src;
	const char *name; /* FILE: the path; ENV: the variable */
	unsigned line;    /* FILE only */
	char *err;
	size_t errlen;
};

struct unit {
	const char *suffix;
	int64_t mult;
};

static const struct unit int_units[] = {
	{"", 1},           {"k", 1000},       {"m", 1000000},    {"g", 1000000000},
	{"ki", 1ll << 10}, {"mi", 1ll << 20}, {"gi", 1ll << 30},
};

static const struct unit duration_units[] = {
	{"h", 3600 * 1000000000ll},
	{"min", 60 * 1000000000ll},
	{"s", 1000000000},
	{"ms", 1000000},
	{"us", 1000},
	{"ns", 1},
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* s cut to SHOWN_MAX bytes with "..." appended, in buf (SHOWN_MAX + 4 bytes). */
static const char *shown(const char *s, char *buf)
{
	size_t n = strnlen(s, SHOWN_MAX + 1);
	if (n <= SHOWN_MAX)
		return s;
	memcpy(buf, s, SHOWN_MAX);
	memcpy(buf + SHOWN_MAX, "...", 4);
	return buf;
}

/* Formats "<where>: key 'k': <message>" into w->err; returns PRISM_E_CONFIG. */
static int fail(const struct where *w, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(const struct where *w, const char *key, const char *fmt, ...)
{
	char msg[256], keypart[PRISM_CFG_KEY_MAX + 16] = "", at[PRISM_CFG_LINE_MAX + 32] = "";
	va_list ap;

	if (!w->err || !w->errlen)
		return PRISM_E_CONFIG;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key)
		snprintf(keypart, sizeof(keypart), "key '%s': ", key);
	if (w->src == PRISM_CFG_SRC_FILE)
		snprintf(at, sizeof(at), "%s:%u: ", w->name, w->line);
	else if (w->src == PRISM_CFG_SRC_ENV)
		snprintf(at, sizeof(at), "%s: ", w->name);
	else if (w->src == PRISM_CFG_SRC_DEFAULT)
		snprintf(at, sizeof(at), "schema: ");
	set_err(w->err, w->errlen, "%s%s%s", at, keypart, msg);
	return PRISM_E_CONFIG;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Cuts trailing blanks in place and returns s past its leading blanks. */
static char *trim(char *s)
{
	size_t n;
	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Parsers: 0, -EINVAL for text that is not of the type, -ERANGE for text that is but
 * whose value does not fit. */

static int parse_scaled(const char *s, const struct unit *units, size_t nunits, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	bool overflow = errno == ERANGE;
	for (size_t i = 0; i < nunits; i++) {
		if (strcasecmp(end, units[i].suffix) != 0)
			continue;
		if (overflow || __builtin_mul_overflow((int64_t)v, units[i].mult, out))
			return -ERANGE;
		return 0;
	}
	return -EINVAL;
}

static int parse_int(const char *s, int64_t *out)
{
	const char *p = s + (*s == '+' || *s == '-');
	/* strtoll() would also skip blanks and take "0x"; the digit check refuses both. */
	if (!is_digit(*p))
		return -EINVAL;
	return parse_scaled(s, int_units, PRISM_ARRAY_LEN(int_units), out);
}

static int parse_duration(const char *s, int64_t *out)
{
	if (!is_digit(*s))
		return -EINVAL; /* no sign: a duration is never negative */
	/* "0" is the one value whose unit does not matter. */
	if (strspn(s, "0") == strlen(s)) {
		*out = 0;
		return 0;
	}
	return parse_scaled(s, duration_units, PRISM_ARRAY_LEN(duration_units), out);
}

static int parse_double(const char *s, double *out)
{
	const char *p = s + (*s == '+' || *s == '-');
	char *end;
	/* The leading-digit check refuses blanks, "inf" and "nan"; the next one hex floats.
	 * strtod() follows LC_NUMERIC, which prism never changes from "C". */
	if (!is_digit(*p) && !(*p == '.' && is_digit(p[1])))
		return -EINVAL;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		return -EINVAL;
	double d = strtod(s, &end);
	if (*end != '\0')
		return -EINVAL;
	if (!isfinite(d))
		return -ERANGE;
	*out = d;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < PRISM_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *expected(enum prism_cfg_type type)
{
	switch (type) {
	case PRISM_CFG_INT:
		return "an integer";
	case PRISM_CFG_DOUBLE:
		return "a number";
	case PRISM_CFG_BOOL:
		return "true/false, yes/no, on/off or 1/0";
	case PRISM_CFG_DURATION:
		return "a duration such as 500us, 20ms or 2s";
	default:
		return "a string";
	}
}

/* Parses text as a value of the key's type, without the range check.  Strings are
 * duplicated, so *out owns its string on success. */
static int parse_value(const prism_cfg_key *k, const char *text, union val *out,
		       const struct where *w)
{
	char buf[SHOWN_MAX + 4];
	int rc = -EINVAL;

	size_t len = strnlen(text, PRISM_CFG_VALUE_MAX + 1);
	if (len > PRISM_CFG_VALUE_MAX)
		return fail(w, k->name, "value too long (more than %d bytes)",
			    PRISM_CFG_VALUE_MAX);
	switch (k->type) {
	case PRISM_CFG_INT:
		rc = parse_int(text, &out->i);
		break;
	case PRISM_CFG_DOUBLE:
		rc = parse_double(text, &out->d);
		break;
	case PRISM_CFG_BOOL:
		rc = parse_bool(text, &out->b);
		break;
	case PRISM_CFG_DURATION:
		rc = parse_duration(text, &out->i);
		break;
	case PRISM_CFG_STRING:
		out->s = prism_strdup(text);
		if (!out->s) {
			set_err(w->err, w->errlen, "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	if (rc == -ERANGE)
		return fail(w, k->name, "'%s' is out of range for %s", shown(text, buf),
			    k->type == PRISM_CFG_DOUBLE ? "a double" : "a 64-bit integer");
	if (rc)
		return fail(w, k->name, "expected %s, got '%s'", expected(k->type),
			    shown(text, buf));
	return 0;
}

static bool below(enum prism_cfg_type type, union val a, union val b)
{
	return type == PRISM_CFG_DOUBLE ? a.d < b.d : a.i < b.i;
}

static int check_range(const prism_cfg_key *k, const struct entry *e, union val v,
		       const char *text, const struct where *w)
{
	char buf[SHOWN_MAX + 4];
	bool low = e->has_min && below(k->type, v, e->min);
	bool high = e->has_max && below(k->type, e->max, v);

	if (!low && !high)
		return 0;
	if (e->has_min && e->has_max)
		return fail(w, k->name, "'%s' is out of range: must be between %s and %s",
			    shown(text, buf), k->min, k->max);
	return fail(w, k->name, "'%s' is out of range: must be %s %s", shown(text, buf),
		    low ? "at least" : "at most", low ? k->min : k->max);
}

static void free_val(const prism_cfg_key *k, union val *v)
{
	if (k->type == PRISM_CFG_STRING) {
		prism_free(v->s);
		v->s = NULL;
	}
}

/* parse_value() and check_range() together: what every source goes through. */
static int parse_checked(const prism_cfg *cfg, size_t idx, const char *text, union val *out,
			 const struct where *w)
{
	const prism_cfg_key *k = &cfg->schema[idx];
	union val v = {0};
	int rc = parse_value(k, text, &v, w);
	if (rc)
		return rc;
	rc = check_range(k, &cfg->e[idx], v, text, w);
	if (rc) {
		free_val(k, &v);
		return rc;
	}
	*out = v;
	return 0;
}

static long find(const prism_cfg *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (strcmp(cfg->schema[i].name, key) == 0)
			return (long)i;
	return -1;
}

/* ---- creation ---- */

static bool valid_name(const char *s)
{
	size_t n = s ? strnlen(s, PRISM_CFG_KEY_MAX + 1) : 0;
	if (n == 0 || n > PRISM_CFG_KEY_MAX || s[0] < 'a' || s[0] > 'z')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Schema mistakes are the programmer's; they are logged, as create has no err buffer. */
static int check_key(const prism_cfg_key *schema, size_t i)
{
	const prism_cfg_key *k = &schema[i];
	if (!valid_name(k->name)) {
		PRISM_LOG_E("config",
			    "schema: key %zu: name '%s' is not lower_snake_case of 1-%d "
			    "bytes",
			    i, k->name ? k->name : "(null)", PRISM_CFG_KEY_MAX);
		return -EINVAL;
	}
	for (size_t j = 0; j < i; j++) {
		if (strcmp(schema[j].name, k->name) == 0) {
			PRISM_LOG_E("config", "schema: key '%s' is listed twice", k->name);
			return -EINVAL;
		}
	}
	if (k->type < PRISM_CFG_INT || k->type > PRISM_CFG_DURATION) {
		PRISM_LOG_E("config", "schema: key '%s': unknown type %d", k->name,
			    (int)k->type);
		return -EINVAL;
	}
	if (!k->def) {
		PRISM_LOG_E("config", "schema: key '%s': no default", k->name);
		return -EINVAL;
	}
	if ((k->type == PRISM_CFG_BOOL || k->type == PRISM_CFG_STRING) && (k->min || k->max)) {
		PRISM_LOG_E("config", "schema: key '%s': a %s has no min or max", k->name,
			    k->type == PRISM_CFG_BOOL ? "boolean" : "string");
		return -EINVAL;
	}
	return 0;
}

/* Parses the key's bounds and default into cfg->e[i]. */
static int init_entry(prism_cfg *cfg, size_t i)
{
	const prism_cfg_key *k = &cfg->schema[i];
	struct entry *e = &cfg->e[i];
	char err[512];
	struct where w = {.src = PRISM_CFG_SRC_DEFAULT, .err = err, .errlen = sizeof(err)};
	int rc = check_key(cfg->schema, i);

	if (rc)
		return rc;
	if (k->min && (rc = parse_value(k, k->min, &e->min, &w)) != 0)
		goto bad;
	e->has_min = k->min != NULL;
	if (k->max && (rc = parse_value(k, k->max, &e->max, &w)) != 0)
		goto bad;
	e->has_max = k->max != NULL;
	if (e->has_min && e->has_max && below(k->type, e->max, e->min)) {
		rc = fail(&w, k->name, "min %s is above max %s", k->min, k->max);
		goto bad;
	}
	rc = parse_checked(cfg, i, k->def, &e->v, &w);
	if (rc)
		goto bad;
	e->src = PRISM_CFG_SRC_DEFAULT;
	return 0;
bad:
	if (rc == -ENOMEM)
		return rc;
	PRISM_LOG_E("config", "%s", err);
	return -EINVAL;
}

static void free_entries(prism_cfg *cfg)
{
	for (size_t i = 0; i < cfg->n; i++)
		free_val(&cfg->schema[i], &cfg->e[i].v);
}

int prism_cfg_create(const prism_cfg_key *schema, size_t n, prism_cfg **out)
{
	prism_cfg *cfg;
	int rc;

	if (!out || (!schema && n))
		return -EINVAL;
	cfg = prism_calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	cfg->schema = schema;
	cfg->n = n;
	cfg->e = prism_calloc(n, sizeof(*cfg->e));
	if (!cfg->e) {
		rc = -ENOMEM;
		goto err_entries;
	}
	for (size_t i = 0; i < n; i++) {
		rc = init_entry(cfg, i);
		if (rc)
			goto err_values;
	}
	*out = cfg;
	return 0;

err_values:
	free_entries(cfg); /* entries not reached are zeroed, and free(NULL) is a no-op */
	prism_free(cfg->e);
err_entries:
	prism_free(cfg);
	return rc;
}

void prism_cfg_destroy(prism_cfg *cfg)
{
	if (!cfg)
		return;
	free_entries(cfg);
	prism_free(cfg->e);
	prism_free(cfg);
}

/* ---- loading ---- */

/* Moves staged values into cfg unless a higher source already set them. */
static void commit(prism_cfg *cfg, struct staged *st, enum prism_cfg_source src)
{
	for (size_t i = 0; i < cfg->n; i++) {
		struct entry *e = &cfg->e[i];
		if (!st[i].seen || e->src > src)
			continue;
		free_val(&cfg->schema[i], &e->v);
		e->v = st[i].v;
		e->src = src;
		st[i].seen = false; /* the config owns the string now */
	}
}

/* Frees what commit() did not take, or everything after a failed load. */
static void discard(const prism_cfg *cfg, struct staged *st)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (st[i].seen)
			free_val(&cfg->schema[i], &st[i].v);
}

/* The bytes of a FILE source: an open file, or len bytes of memory that need not end in a
 * NUL.  parse_text() reads both byte by byte through next_byte(), so a file and a buffer
 * holding the same bytes give the same result and the same message, and a file is still
 * read as a stream: a huge or endless one fails at its first bad line instead of first
 * filling memory. */
struct text {
	FILE *f; /* NULL for memory */
	const char *p;
	size_t len, off;
};

/* The next byte as an unsigned char, or EOF. */
static int next_byte(struct text *t)
{
	if (t->f)
		return getc_unlocked(t->f);
	return t->off < t->len ? (unsigned char)t->p[t->off++] : EOF;
}

/* Reads one line without its '\n' into buf (PRISM_CFG_LINE_MAX + 1 bytes).  1 for a
 * line, 0 at the end of the text, -E2BIG for a line that is too long, -EILSEQ for a NUL
 * byte (which would silently cut the line), -errno for a read error. */
static int read_line(struct text *t, char *buf)
{
	size_t n = 0;
	int c;
	errno = 0;
	while ((c = next_byte(t)) != EOF && c != '\n') {
		if (n == PRISM_CFG_LINE_MAX)
			return -E2BIG;
		if (c == '\0')
			return -EILSEQ;
		buf[n++] = (char)c;
	}
	if (c == EOF && t->f && ferror(t->f))
		return errno ? -errno : -EIO;
	buf[n] = '\0';
	return c == EOF && n == 0 ? 0 : 1;
}

/* Undoes the quoting of s (which starts with '"') in place. */
static int unquote(char *s, const struct where *w, const char *key)
{
	char *r = s + 1, *o = s;
	for (; *r != '"'; r++) {
		if (*r == '\0')
			return fail(w, key, "missing closing '\"'");
		if (*r == '\\') {
			r++;
			if (*r != '"' && *r != '\\')
				return fail(w, key,
					    "only \\\" and \\\\ may follow '\\' in "
					    "a quoted value");
		}
		*o++ = *r;
	}
	/* The line is trimmed, so anything after the quote is text, not blanks. */
	if (r[1] != '\0')
		return fail(w, key, "unexpected text after the closing '\"'");
	*o = '\0';
	return 0;
}

static int parse_line(prism_cfg *cfg, char *line, struct staged *st, const struct where *w)
{
	char buf[SHOWN_MAX + 4];
	char *s = trim(line), *eq, *key, *value;
	long idx;
	int rc;

	if (*s == '\0' || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq)
		return fail(w, NULL, "expected 'key = value', got '%s' (no '=')",
			    shown(s, buf));
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (*key == '\0')
		return fail(w, NULL, "missing key before '='");
	idx = find(cfg, key);
	if (idx < 0)
		return fail(w, NULL, "unknown key '%s'", shown(key, buf));
	if (st[idx].seen)
		return fail(w, key, "set twice in this file (first on line %u)", st[idx].line);
	if (*value == '"' && (rc = unquote(value, w, key)) != 0)
		return rc;
	rc = parse_checked(cfg, (size_t)idx, value, &st[idx].v, w);
	if (rc)
		return rc;
	st[idx].seen = true;
	st[idx].line = w->line;
	return 0;
}

/* The one parser of FILE sources, for load_file and load_buffer alike. */
static int parse_text(prism_cfg *cfg, struct text *t, struct staged *st, struct where *w)
{
	/* Zeroed once per load, not per line: read_line() always ends the line with a NUL, but
	 * clang-analyzer cannot see it and reports trim() reading uninitialised bytes. */
	char line[PRISM_CFG_LINE_MAX + 1] = "";
	int rc;

	for (w->line = 1;; w->line++) {
		rc = read_line(t, line);
		if (rc == 0)
			return 0;
		if (rc == -E2BIG)
			return fail(w, NULL, "line too long (more than %d bytes)",
				    PRISM_CFG_LINE_MAX);
		if (rc == -EILSEQ)
			return fail(w, NULL, "NUL byte in line");
		if (rc < 0) {
			set_err(w->err, w->errlen, "%s: %s", w->name, prism_strerror(rc));
			return rc;
		}
		rc = parse_line(cfg, line, st, w);
		if (rc)
			return rc;
	}
}

/* Parses t as the FILE source called name (for messages) and commits all of it or, on
 * any error, nothing. */
static int load_text(prism_cfg *cfg, struct text *t, const char *name, char *err, size_t errlen)
{
	struct where w = {
		.src = PRISM_CFG_SRC_FILE, .name = name, .err = err, .errlen = errlen};
	struct staged *st;
	int rc;

	st = prism_calloc(cfg->n, sizeof(*st));
	if (!st) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = parse_text(cfg, t, st, &w);
	if (rc == 0)
		commit(cfg, st, PRISM_CFG_SRC_FILE);
	discard(cfg, st);
	prism_free(st);
	return rc;
}

int prism_cfg_load_file(prism_cfg *cfg, const char *path, char *err, size_t errlen)
{
	struct text t = {0};
	int rc;

	set_err(err, errlen, "%s", "");
	if (!cfg || !path)
		return -EINVAL;
	t.f = fopen(path, "re");
	if (!t.f) {
		rc = errno ? -errno : -EIO;
		set_err(err, errlen, "%s: %s", path, prism_strerror(rc));
		return rc;
	}
	rc = load_text(cfg, &t, path, err, errlen);
	fclose(t.f);
	return rc;
}

int prism_cfg_load_buffer(prism_cfg *cfg, const char *name, const char *data, size_t len,
			  char *err, size_t errlen)
{
	struct text t = {.p = data, .len = len};

	set_err(err, errlen, "%s", "");
	if (!cfg || !name || (!data && len))
		return -EINVAL;
	return load_text(cfg, &t, name, err, errlen);
}

int prism_cfg_load_env(prism_cfg *cfg, const char *prefix, char *err, size_t errlen)
{
	char var[ENV_PREFIX_MAX + PRISM_CFG_KEY_MAX + 1];
	struct where w = {.src = PRISM_CFG_SRC_ENV, .name = var, .err = err, .errlen = errlen};
	struct staged *st;
	int rc = 0;

	set_err(err, errlen, "%s", "");
	if (!cfg || !prefix || strnlen(prefix, ENV_PREFIX_MAX + 1) > ENV_PREFIX_MAX)
		return -EINVAL;
	st = prism_calloc(cfg->n, sizeof(*st));
	if (!st) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	size_t plen = strlen(prefix);
	for (size_t i = 0; i < cfg->n; i++) {
		const char *name = cfg->schema[i].name, *text;
		size_t j = 0;
		memcpy(var, prefix, plen);
		for (; name[j]; j++) /* names are [a-z0-9_], checked at create */
			var[plen + j] = (name[j] >= 'a' && name[j] <= 'z') ? name[j] - 'a' + 'A'
									   : name[j];
		var[plen + j] = '\0';
		text = getenv(var);
		if (!text)
			continue;
		rc = parse_checked(cfg, i, text, &st[i].v, &w);
		if (rc)
			goto out;
		st[i].seen = true;
	}
	commit(cfg, st, PRISM_CFG_SRC_ENV);
out:
	discard(cfg, st);
	prism_free(st);
	return rc;
}

int prism_cfg_set(prism_cfg *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	struct where w = {.src = PRISM_CFG_SRC_SET, .err = err, .errlen = errlen};
	char buf[SHOWN_MAX + 4];
	union val v = {0};
	long idx;
	int rc;

	set_err(err, errlen, "%s", "");
	if (!cfg || !key || !value)
		return -EINVAL;
	idx = find(cfg, key);
	if (idx < 0)
		return fail(&w, NULL, "unknown key '%s'", shown(key, buf));
	rc = parse_checked(cfg, (size_t)idx, value, &v, &w);
	if (rc)
		return rc;
	/* SET is the highest source: it always replaces. */
	free_val(&cfg->schema[idx], &cfg->e[idx].v);
	cfg->e[idx].v = v;
	cfg->e[idx].src = PRISM_CFG_SRC_SET;
	return 0;
}

/* ---- reading ---- */

/* The entry for key if it exists and has the type; -ENOENT or -EINVAL otherwise. */
static int lookup(const prism_cfg *cfg, const char *key, enum prism_cfg_type type,
		  const struct entry **out)
{
	long idx;
	if (!cfg || !key)
		return -EINVAL;
	idx = find(cfg, key);
	if (idx < 0)
		return -ENOENT;
	if (type && cfg->schema[idx].type != type)
		return -EINVAL;
	*out = &cfg->e[idx];
	return 0;
}

int prism_cfg_get_int(const prism_cfg *cfg, const char *key, int64_t *out)
{
	const struct entry *e;
	int rc = lookup(cfg, key, PRISM_CFG_INT, &e);
	if (rc == 0 && !out)
		rc = -EINVAL;
	if (rc == 0)
		*out = e->v.i;
	return rc;
}

int prism_cfg_get_duration_ns(const prism_cfg *cfg, const char *key, int64_t *out)
{
	const struct entry *e;
	int rc = lookup(cfg, key, PRISM_CFG_DURATION, &e);
	if (rc == 0 && !out)
		rc = -EINVAL;
	if (rc == 0)
		*out = e->v.i;
	return rc;
}

int prism_cfg_get_double(const prism_cfg *cfg, const char *key, double *out)
{
	const struct entry *e;
	int rc = lookup(cfg, key, PRISM_CFG_DOUBLE, &e);
	if (rc == 0 && !out)
		rc = -EINVAL;
	if (rc == 0)
		*out = e->v.d;
	return rc;
}

int prism_cfg_get_bool(const prism_cfg *cfg, const char *key, bool *out)
{
	const struct entry *e;
	int rc = lookup(cfg, key, PRISM_CFG_BOOL, &e);
	if (rc == 0 && !out)
		rc = -EINVAL;
	if (rc == 0)
		*out = e->v.b;
	return rc;
}

int prism_cfg_get_str(const prism_cfg *cfg, const char *key, const char **out)
{
	const struct entry *e;
	int rc = lookup(cfg, key, PRISM_CFG_STRING, &e);
	if (rc == 0 && !out)
		rc = -EINVAL;
	if (rc == 0)
		*out = e->v.s;
	return rc;
}

int prism_cfg_source(const prism_cfg *cfg, const char *key, enum prism_cfg_source *out)
{
	const struct entry *e;
	int rc = lookup(cfg, key, 0, &e);
	if (rc == 0 && !out)
		rc = -EINVAL;
	if (rc == 0)
		*out = e->src;
	return rc;
}

const char *prism_cfg_source_name(enum prism_cfg_source src)
{
	switch (src) {
	case PRISM_CFG_SRC_DEFAULT:
		return "default";
	case PRISM_CFG_SRC_FILE:
		return "file";
	case PRISM_CFG_SRC_ENV:
		return "env";
	case PRISM_CFG_SRC_SET:
		return "set";
	}
	return "?";
}

size_t prism_cfg_count(const prism_cfg *cfg)
{
	return cfg ? cfg->n : 0;
}

const prism_cfg_key *prism_cfg_key_at(const prism_cfg *cfg, size_t i)
{
	return cfg && i < cfg->n ? &cfg->schema[i] : NULL;
}

/* The shortest of %.15g and %.17g that reads back as d: "0.1", not
 * "0.10000000000000001". */
static int format_double(double d, char *buf, size_t len)
{
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "%.15g", d);
	if (strtod(tmp, NULL) != d)
		snprintf(tmp, sizeof(tmp), "%.17g", d);
	return snprintf(buf, len, "%s", tmp);
}

static int format_duration(int64_t ns, char *buf, size_t len)
{
	if (ns == 0)
		return snprintf(buf, len, "0");
	for (size_t i = 0; i < PRISM_ARRAY_LEN(duration_units); i++) {
		const struct unit *u = &duration_units[i];
		if (ns % u->mult == 0)
			return snprintf(buf, len, "%lld%s", (long long)(ns / u->mult),
					u->suffix);
	}
	return snprintf(buf, len, "%lldns", (long long)ns); /* not reached: ns divides */
}

int prism_cfg_format(const prism_cfg *cfg, const char *key, char *buf, size_t len)
{
	const struct entry *e;
	int n = 0, rc = lookup(cfg, key, 0, &e);

	if (rc == 0 && !buf)
		rc = -EINVAL;
	if (rc)
		return rc;
	switch (cfg->schema[e - cfg->e].type) {
	case PRISM_CFG_INT:
		n = snprintf(buf, len, "%lld", (long long)e->v.i);
		break;
	case PRISM_CFG_DOUBLE:
		n = format_double(e->v.d, buf, len);
		break;
	case PRISM_CFG_BOOL:
		n = snprintf(buf, len, "%s", e->v.b ? "true" : "false");
		break;
	case PRISM_CFG_STRING:
		n = snprintf(buf, len, "%s", e->v.s);
		break;
	case PRISM_CFG_DURATION:
		n = format_duration(e->v.i, buf, len);
		break;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
