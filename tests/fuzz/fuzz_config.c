/* fuzz_config.c — libFuzzer target for the config file parser (base/config.h).
 *
 * The input is the text of a config file, loaded with prism_cfg_load_buffer() into a
 * config whose fixed schema has a key of every type, bounded and unbounded.  The target
 * aborts only when the parser breaks one of its documented promises:
 *  * the result is 0 or PRISM_E_CONFIG, and a NUL byte anywhere is never accepted;
 *  * on success err is "", and every key reads back through its typed getter and formats
 *    to text that sets another config to the same value (the format round trip);
 *  * on failure err is "fuzz:LINE: ..." with a line that exists, and the config still
 *    holds its defaults (all-or-nothing);
 *  * loading again with a small err or none gives the same result, and the small err
 *    holds a cut of the same message.
 * Leaks and out-of-bounds reads are for the sanitizers to find.
 *
 * Coverage of the library itself needs it built with -fsanitize=fuzzer-no-link (e.g.
 * CMAKE_C_FLAGS); otherwise only this file guides the fuzzer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/error.h"

/* libFuzzer's entry point; declared here because no header provides it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)              \
	do {                     \
		if (!(cond))     \
			abort(); \
	} while (0)

#define NAME "fuzz"

static const prism_cfg_key schema[] = {
	{.name = "size", .type = PRISM_CFG_INT, .def = "64Ki", .min = "-1Mi", .max = "16Gi"},
	{.name = "offset", .type = PRISM_CFG_INT, .def = "-5"},
	{.name = "workers", .type = PRISM_CFG_INT, .def = "4", .min = "1"},
	{.name = "ratio", .type = PRISM_CFG_DOUBLE, .def = "0.5", .min = "0", .max = "1"},
	{.name = "scale", .type = PRISM_CFG_DOUBLE, .def = "1e3"},
	{.name = "pinned", .type = PRISM_CFG_BOOL, .def = "no"},
	{.name = "address", .type = PRISM_CFG_STRING, .def = "127.0.0.1:6380"},
	{.name = "timeout", .type = PRISM_CFG_DURATION, .def = "2s", .min = "1ms", .max = "1h"},
	{.name = "linger", .type = PRISM_CFG_DURATION, .def = "0"},
};
#define NKEYS (sizeof(schema) / sizeof(schema[0]))

/* A formatted value: a string value of PRISM_CFG_VALUE_MAX bytes and its NUL. */
static char text[PRISM_CFG_VALUE_MAX + 1], again[PRISM_CFG_VALUE_MAX + 1];

static prism_cfg *new_cfg(void)
{
	prism_cfg *cfg = NULL;
	CHECK(prism_cfg_create(schema, NKEYS, &cfg) == 0);
	return cfg;
}

/* The typed getter of key i succeeds, and only the getter of its type. */
static void check_getters(const prism_cfg *cfg, size_t i)
{
	const char *k = schema[i].name, *s = NULL;
	enum prism_cfg_type t = schema[i].type;
	int64_t v = 0;
	double d = 0;
	bool b = false;
	CHECK((prism_cfg_get_int(cfg, k, &v) == 0) == (t == PRISM_CFG_INT));
	CHECK((prism_cfg_get_double(cfg, k, &d) == 0) == (t == PRISM_CFG_DOUBLE));
	CHECK((prism_cfg_get_bool(cfg, k, &b) == 0) == (t == PRISM_CFG_BOOL));
	CHECK((prism_cfg_get_str(cfg, k, &s) == 0) == (t == PRISM_CFG_STRING));
	CHECK((prism_cfg_get_duration_ns(cfg, k, &v) == 0) == (t == PRISM_CFG_DURATION));
	if (t == PRISM_CFG_STRING)
		CHECK(s != NULL && strlen(s) <= PRISM_CFG_VALUE_MAX);
	if (t == PRISM_CFG_DURATION)
		CHECK(v >= 0);
}

/* Every key formats to text that sets copy to a value formatting the same way. */
static void check_round_trip(const prism_cfg *cfg, prism_cfg *copy)
{
	char err[256];
	for (size_t i = 0; i < NKEYS; i++) {
		const char *k = schema[i].name;
		enum prism_cfg_source src;
		check_getters(cfg, i);
		CHECK(prism_cfg_source(cfg, k, &src) == 0);
		CHECK(src == PRISM_CFG_SRC_DEFAULT || src == PRISM_CFG_SRC_FILE);
		CHECK(prism_cfg_format(cfg, k, text, sizeof(text)) == 0);
		CHECK(prism_cfg_set(copy, k, text, err, sizeof(err)) == 0);
		CHECK(prism_cfg_format(copy, k, again, sizeof(again)) == 0);
		CHECK(strcmp(text, again) == 0);
	}
}

/* cfg holds exactly what ref, a fresh config, holds. */
static void check_defaults(const prism_cfg *cfg, const prism_cfg *ref)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const char *k = schema[i].name;
		enum prism_cfg_source src;
		CHECK(prism_cfg_source(cfg, k, &src) == 0 && src == PRISM_CFG_SRC_DEFAULT);
		CHECK(prism_cfg_format(cfg, k, text, sizeof(text)) == 0);
		CHECK(prism_cfg_format(ref, k, again, sizeof(again)) == 0);
		CHECK(strcmp(text, again) == 0);
	}
}

/* err is "fuzz:LINE: message" with 1 <= LINE <= the number of lines in the input. */
static void check_message(const char *err, const uint8_t *data, size_t size)
{
	size_t lines = 1;
	char *end;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	CHECK(strncmp(err, NAME ":", sizeof(NAME)) == 0);
	unsigned long line = strtoul(err + sizeof(NAME), &end, 10);
	CHECK(line >= 1 && line <= lines);
	CHECK(end[0] == ':' && end[1] == ' ' && end[2] != '\0');
	CHECK(strchr(err, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	prism_cfg *cfg = new_cfg(), *ref = new_cfg(), *copy = new_cfg();
	const char *p = (const char *)data;
	char err[512], small[8];

	int rc = prism_cfg_load_buffer(cfg, NAME, p, size, err, sizeof(err));
	CHECK(rc == 0 || rc == PRISM_E_CONFIG);
	if (rc == 0) {
		CHECK(err[0] == '\0');
		CHECK(memchr(data, 0, size) == NULL);
		check_round_trip(cfg, copy);
	} else {
		check_message(err, data, size);
		check_defaults(cfg, ref);
	}
	/* Again, with a small buffer and with none: the same result, the message cut. */
	CHECK(prism_cfg_load_buffer(cfg, NAME, p, size, small, sizeof(small)) == rc);
	CHECK(strlen(small) < sizeof(small) && strncmp(small, err, strlen(small)) == 0);
	CHECK(strlen(small) == strlen(err) || strlen(small) == sizeof(small) - 1);
	CHECK(prism_cfg_load_buffer(cfg, NAME, p, size, NULL, 0) == rc);

	prism_cfg_destroy(copy);
	prism_cfg_destroy(ref);
	prism_cfg_destroy(cfg);
	return 0;
}
