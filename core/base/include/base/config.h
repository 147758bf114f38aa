/* base/config.h — typed configuration from defaults, a file, the environment and flags.
 *
 * The caller describes every key it knows in a static schema table (prism_cfg_key); a
 * config holds one typed value per key.  Values come from four sources, in rising
 * precedence: the schema default, a file (prism_cfg_load_file, or the same text held in
 * memory: prism_cfg_load_buffer), the environment (prism_cfg_load_env) and explicit
 * sets such as command-line flags (prism_cfg_set).
 * Precedence is by source, not by call order: a value is never replaced by one from a
 * lower source, so a program may load in any order; a later value from the same source
 * replaces an earlier one.  Every value is still parsed and checked, even one that a
 * higher source hides, so a typo in a file is reported whatever the environment says.
 *
 * Value syntax, the same in files, variables, flags and schema defaults:
 *   INT       decimal int64 with an optional sign and an optional suffix, case-
 *             insensitive: k, m, g (10^3, 10^6, 10^9) or ki, mi, gi (2^10, 2^20, 2^30).
 *             "64Ki" is 65536, "2m" is 2000000.  No spaces, no hex, no fractions.
 *   DOUBLE    a finite decimal floating-point number ("0.25", "-1e-3"); no hex, inf, nan.
 *   BOOL      true/false, yes/no, on/off, 1/0, case-insensitive.
 *   STRING    any text up to PRISM_CFG_VALUE_MAX bytes.
 *   DURATION  a non-negative integer and a unit, case-insensitive: ns, us, ms, s, min, h
 *             ("500us", "2s"); "0" alone is accepted.  Stored as int64 nanoseconds.
 *
 * File syntax: one "key = value" a line; blank lines and lines whose first non-blank
 * character is '#' are ignored; blanks around key and value are trimmed.  A '#' anywhere
 * else is part of the value.  A value may be wrapped in double quotes, inside which \"
 * and \\ are the only escapes and blanks are kept; only blanks may follow the closing
 * quote.  Lines are at most PRISM_CFG_LINE_MAX bytes, not counting the '\n'.  Only '\n'
 * ends a line, and the last line needs none.  '\r' is a blank, so the '\r' of a CRLF line
 * end is trimmed like any trailing blank (it still counts toward the line length); a lone
 * '\r' does not end a line.  A NUL byte anywhere is an error naming its line.
 *
 * Errors: functions return 0 or a negative code (base/error.h).  Bad input from a user
 * (unknown key, bad value, out of range, duplicate key, malformed or over-long line)
 * gives PRISM_E_CONFIG and a one-line message in err: "path:LINE: key 'k': expected an
 * integer, got 'abc'" for files ("name:LINE: ..." for buffers), "PRISM_K: key 'k': ..."
 * for variables, "key 'k': ..." for sets.  err may be NULL; a message longer than
 * errlen is cut, and on success err holds "".  A failed load or set changes nothing: it
 * is all-or-nothing.  Programming errors (NULL arguments, a bad schema) give -EINVAL;
 * allocation failure gives -ENOMEM.
 *
 * Ownership: the config borrows the schema, which must outlive it (normally a static
 * table); strings returned by the getters are borrowed from the config.  Thread safety:
 * none; load and set from one thread before readers start, or lock around them.
 * prism_cfg_load_env() reads the environment with getenv(), which must not race setenv().
 */
#ifndef PRISM_BASE_CONFIG_H
#define PRISM_BASE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 4 KiB: far more than any sensible path or address list, small enough for the stack. */
#define PRISM_CFG_LINE_MAX 4096
/* Longest value, in bytes without the NUL, accepted from any source. */
#define PRISM_CFG_VALUE_MAX (PRISM_CFG_LINE_MAX - 1)
/* Longest key name; with a prefix it must still make a short environment variable. */
#define PRISM_CFG_KEY_MAX 63

enum prism_cfg_type {
	PRISM_CFG_INT = 1,
	PRISM_CFG_DOUBLE,
	PRISM_CFG_BOOL,
	PRISM_CFG_STRING,
	PRISM_CFG_DURATION,
};

/* Where a value came from, in rising precedence. */
enum prism_cfg_source {
	PRISM_CFG_SRC_DEFAULT = 0,
	PRISM_CFG_SRC_FILE,
	PRISM_CFG_SRC_ENV,
	PRISM_CFG_SRC_SET,
};

/* One row of the schema.  Every string is borrowed for the config's lifetime. */
typedef struct prism_cfg_key {
	const char *name; /* lower_snake_case: [a-z][a-z0-9_]*, unique */
	enum prism_cfg_type type;
	const char *def;       /* the default, in the value syntax above; required */
	const char *min, *max; /* numeric bounds in the same syntax, inclusive; NULL = none;
				  must be NULL for BOOL and STRING */
	const char *help;      /* one line for --help and `prism status`; may be NULL */
} prism_cfg_key;

typedef struct prism_cfg prism_cfg;

/* A config of n keys holding their defaults.  -EINVAL (with the reason logged) for a
 * schema error: a bad or duplicate name, an unknown type, a default that does not parse
 * or lies outside [min, max], bounds on a BOOL or STRING, min > max.  -ENOMEM. */
int prism_cfg_create(const prism_cfg_key *schema, size_t n, prism_cfg **out);
/* Frees cfg and its strings; NULL is a no-op. */
void prism_cfg_destroy(prism_cfg *cfg);

/* Loads "key = value" lines from path.  PRISM_E_CONFIG for bad content; -ENOENT,
 * -EACCES or another -errno when the file cannot be opened or read, with the path in
 * err.  A key may appear once per file. */
int prism_cfg_load_file(prism_cfg *cfg, const char *path, char *err, size_t errlen);
/* Loads the same "key = value" text from len bytes at data, for a config that does not
 * come from a file (a message, a test, a fuzzer): one parser serves both, so the syntax,
 * limits, messages, all-or-nothing rule and precedence (a FILE source) are those of
 * prism_cfg_load_file(), with name in place of the path ("name:LINE: ...").  data need
 * not end in a NUL or a newline; a NUL byte in it is PRISM_E_CONFIG ("name:LINE: NUL byte
 * in line").  data (NULL only when len is 0) and name are borrowed for the call; -EINVAL
 * when cfg or name is NULL. */
int prism_cfg_load_buffer(prism_cfg *cfg, const char *name, const char *data, size_t len,
			  char *err, size_t errlen);
/* For each key, reads the variable prefix + KEY (upper-cased key, e.g. "PRISM_" and
 * spin_budget_ns give PRISM_SPIN_BUDGET_NS).  Unset variables are skipped; a set but
 * empty one is a value like any other ("" for a STRING, an error for the other types).
 * The prefix is at most 64 bytes. */
int prism_cfg_load_env(prism_cfg *cfg, const char *prefix, char *err, size_t errlen);
/* Sets one key from text (a --key=value flag).  An unknown key is PRISM_E_CONFIG. */
int prism_cfg_set(prism_cfg *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Typed getters: -ENOENT for an unknown key, -EINVAL for NULL arguments or a key of
 * another type; *out is written only on success.  Lookup is a linear scan of the
 * schema: read values once at start-up, not on a hot path. */
int prism_cfg_get_int(const prism_cfg *cfg, const char *key, int64_t *out);
int prism_cfg_get_double(const prism_cfg *cfg, const char *key, double *out);
int prism_cfg_get_bool(const prism_cfg *cfg, const char *key, bool *out);
/* The string stays valid until the next successful load or set of cfg, or its destroy. */
int prism_cfg_get_str(const prism_cfg *cfg, const char *key, const char **out);
int prism_cfg_get_duration_ns(const prism_cfg *cfg, const char *key, int64_t *out);

/* Which source the key's current value came from; -ENOENT for an unknown key. */
int prism_cfg_source(const prism_cfg *cfg, const char *key, enum prism_cfg_source *out);
/* "default", "file", "env" or "set"; "?" for anything else. */
const char *prism_cfg_source_name(enum prism_cfg_source src);

/* For listings (`prism status`, --help): the number of keys and the i-th schema row
 * (NULL when i >= count). */
size_t prism_cfg_count(const prism_cfg *cfg);
const prism_cfg_key *prism_cfg_key_at(const prism_cfg *cfg, size_t i);
/* The key's value as text that parses back to the same value: integers plain, doubles
 * with 17 significant digits, bools as true/false, durations in their largest exact
 * unit, strings raw.  -ENOENT for an unknown key; -ENOSPC when it does not fit in len
 * bytes (buf then holds a cut, NUL-terminated copy when len > 0). */
int prism_cfg_format(const prism_cfg *cfg, const char *key, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
