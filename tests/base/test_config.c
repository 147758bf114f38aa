/* Config: value syntax of every type, file syntax and its error messages, precedence of
 * the sources, all-or-nothing loads, getters, schema checks and allocation failure. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/error.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#endif

static const prism_cfg_key schema[] = {
	{.name = "spin_budget_ns",
	 .type = PRISM_CFG_INT,
	 .def = "2000",
	 .min = "0",
	 .max = "1000000000",
	 .help = "how long to spin before sleeping"},
	{.name = "arena_size",
	 .type = PRISM_CFG_INT,
	 .def = "64Mi",
	 .min = "1Mi",
	 .max = "16Gi"},
	{.name = "offset", .type = PRISM_CFG_INT, .def = "-5"},
	{.name = "workers", .type = PRISM_CFG_INT, .def = "4", .min = "1"},
	{.name = "ratio", .type = PRISM_CFG_DOUBLE, .def = "0.5", .min = "0", .max = "1"},
	{.name = "scale", .type = PRISM_CFG_DOUBLE, .def = "1e3"},
	{.name = "pinned", .type = PRISM_CFG_BOOL, .def = "no"},
	{.name = "address", .type = PRISM_CFG_STRING, .def = "127.0.0.1:6380"},
	{.name = "log_path", .type = PRISM_CFG_STRING, .def = ""},
	{.name = "timeout", .type = PRISM_CFG_DURATION, .def = "2s", .min = "1ms", .max = "1h"},
	{.name = "linger", .type = PRISM_CFG_DURATION, .def = "0"},
};
#define NKEYS PRISM_ARRAY_LEN(schema)

static char err[512];

static prism_cfg *new_cfg(void)
{
	prism_cfg *cfg = NULL;
	cr_assert_eq(prism_cfg_create(schema, NKEYS, &cfg), 0);
	cr_assert_not_null(cfg);
	return cfg;
}

/* A temporary file holding text; the caller unlinks it. */
static void write_tmp(char path[static 32], const char *text, size_t len)
{
	memcpy(path, "/tmp/prism_cfg_XXXXXX", sizeof("/tmp/prism_cfg_XXXXXX"));
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
}

/* Loads text as a file; returns load_file's result, err holds the message. */
static int load_text(prism_cfg *cfg, const char *text, char path[static 32])
{
	write_tmp(path, text, strlen(text));
	int rc = prism_cfg_load_file(cfg, path, err, sizeof(err));
	unlink(path);
	return rc;
}

/* Loads text and asserts the exact message "PATH:LINE: rest". */
static void expect_file_error(prism_cfg *cfg, const char *text, unsigned line, const char *rest)
{
	char path[32], want[600];
	cr_assert_eq(load_text(cfg, text, path), PRISM_E_CONFIG, "loaded:\n%s", text);
	snprintf(want, sizeof(want), "%s:%u: %s", path, line, rest);
	cr_assert_str_eq(err, want);
}

/* Loads len bytes with prism_cfg_load_buffer() under the name "mem", from an exact-size
 * copy so that AddressSanitizer sees any read past the end; err holds the message. */
static int load_buf(prism_cfg *cfg, const char *data, size_t len)
{
	char *copy = malloc(len ? len : 1);
	cr_assert_not_null(copy);
	memcpy(copy, data, len);
	int rc = prism_cfg_load_buffer(cfg, "mem", copy, len, err, sizeof(err));
	free(copy);
	return rc;
}

/* Loads len bytes as a buffer and asserts the exact message "mem:LINE: rest". */
static void expect_buf_error(prism_cfg *cfg, const char *data, size_t len, unsigned line,
			     const char *rest)
{
	char want[600];
	cr_assert_eq(load_buf(cfg, data, len), PRISM_E_CONFIG, "loaded:\n%.*s", (int)len, data);
	snprintf(want, sizeof(want), "mem:%u: %s", line, rest);
	cr_assert_str_eq(err, want);
}

static int64_t get_int(const prism_cfg *cfg, const char *key)
{
	int64_t v = 0;
	cr_assert_eq(prism_cfg_get_int(cfg, key, &v), 0, "%s", key);
	return v;
}

static const char *get_str(const prism_cfg *cfg, const char *key)
{
	const char *s = NULL;
	cr_assert_eq(prism_cfg_get_str(cfg, key, &s), 0, "%s", key);
	return s;
}

static enum prism_cfg_source source(const prism_cfg *cfg, const char *key)
{
	enum prism_cfg_source src;
	cr_assert_eq(prism_cfg_source(cfg, key, &src), 0, "%s", key);
	return src;
}

/* Every key still holds its default. */
static void expect_defaults(const prism_cfg *cfg)
{
	double d = 0;
	bool b = true;
	cr_assert_eq(get_int(cfg, "spin_budget_ns"), 2000);
	cr_assert_eq(get_int(cfg, "arena_size"), 64ll << 20);
	cr_assert_eq(get_int(cfg, "offset"), -5);
	cr_assert_eq(prism_cfg_get_double(cfg, "ratio", &d), 0);
	cr_assert_eq(d, 0.5);
	cr_assert_eq(prism_cfg_get_bool(cfg, "pinned", &b), 0);
	cr_assert_eq(b, false);
	cr_assert_str_eq(get_str(cfg, "address"), "127.0.0.1:6380");
	cr_assert_str_eq(get_str(cfg, "log_path"), "");
	for (size_t i = 0; i < NKEYS; i++)
		cr_assert_eq(source(cfg, schema[i].name), PRISM_CFG_SRC_DEFAULT, "%s",
			     schema[i].name);
}

Test(config, defaults_and_listing)
{
	prism_cfg *cfg = new_cfg();
	int64_t ns = 0;
	double d = 0;
	expect_defaults(cfg);
	cr_assert_eq(prism_cfg_get_duration_ns(cfg, "timeout", &ns), 0);
	cr_assert_eq(ns, 2000000000);
	cr_assert_eq(prism_cfg_get_double(cfg, "scale", &d), 0);
	cr_assert_eq(d, 1000.0);
	cr_assert_eq(prism_cfg_count(cfg), NKEYS);
	cr_assert_eq(prism_cfg_key_at(cfg, 0), &schema[0]);
	cr_assert_str_eq(prism_cfg_key_at(cfg, 0)->help, "how long to spin before sleeping");
	cr_assert_null(prism_cfg_key_at(cfg, NKEYS));
	prism_cfg_destroy(cfg);
	prism_cfg_destroy(NULL);
}

Test(config, integers)
{
	static const struct {
		const char *text;
		int64_t want;
	} ok[] = {
		{"0", 0},
		{"-17", -17},
		{"+7", 7},
		{"2k", 2000},
		{"2K", 2000},
		{"3m", 3000000},
		{"3M", 3000000},
		{"1g", 1000000000},
		{"1Ki", 1024},
		{"64ki", 65536},
		{"2Mi", 2 << 20},
		{"-3Gi", -(3ll << 30)},
		{"9223372036854775807", INT64_MAX},
		{"-9223372036854775808", INT64_MIN},
	};
	static const char *const bad[] = {"",    "abc", "12x", "1.5", "0x10", " 5", "5 ",
					  "1e3", "k",   "-",   "5 k", "1KiB", "0b1"};
	prism_cfg *cfg = new_cfg();
	for (size_t i = 0; i < PRISM_ARRAY_LEN(ok); i++) {
		cr_assert_eq(prism_cfg_set(cfg, "offset", ok[i].text, err, sizeof(err)), 0,
			     "'%s': %s", ok[i].text, err);
		cr_assert_str_eq(err, "");
		cr_assert_eq(get_int(cfg, "offset"), ok[i].want, "'%s'", ok[i].text);
	}
	prism_cfg_set(cfg, "offset", "42", err, sizeof(err));
	for (size_t i = 0; i < PRISM_ARRAY_LEN(bad); i++) {
		char want[128];
		snprintf(want, sizeof(want), "key 'offset': expected an integer, got '%s'",
			 bad[i]);
		cr_assert_eq(prism_cfg_set(cfg, "offset", bad[i], err, sizeof(err)),
			     PRISM_E_CONFIG, "'%s'", bad[i]);
		cr_assert_str_eq(err, want);
		cr_assert_eq(get_int(cfg, "offset"), 42, "a failed set changes nothing");
	}
	cr_assert_eq(prism_cfg_set(cfg, "offset", "99999999999999999999", err, sizeof(err)),
		     PRISM_E_CONFIG);
	cr_assert_str_eq(err, "key 'offset': '99999999999999999999' is out of range for a "
			      "64-bit integer");
	cr_assert_eq(prism_cfg_set(cfg, "offset", "9223372036854775807k", err, sizeof(err)),
		     PRISM_E_CONFIG, "the suffix overflows");
	cr_assert(strstr(err, "out of range"), "%s", err);

	expect_file_error(cfg, "# budget\n\nspin_budget_ns = 100\noffset = abc\n", 4,
			  "key 'offset': expected an integer, got 'abc'");
	prism_cfg_destroy(cfg);
}

Test(config, doubles)
{
	static const struct {
		const char *text;
		double want;
	} ok[] = {{"0.25", 0.25}, {"1", 1.0},   {".5", 0.5}, {"-1e-3", -0.001},
		  {"+2.5", 2.5},  {"1E6", 1e6}, {"3.", 3.0}, {"1e308", 1e308}};
	static const char *const bad[] = {"",      "abc", "nan", "inf", "-inf", "0x1p3",
					  "1.5.2", " 1",  "1 ",  "1,5", "e5",   "."};
	prism_cfg *cfg = new_cfg();
	double d = 0;
	for (size_t i = 0; i < PRISM_ARRAY_LEN(ok); i++) {
		cr_assert_eq(prism_cfg_set(cfg, "scale", ok[i].text, err, sizeof(err)), 0,
			     "'%s': %s", ok[i].text, err);
		cr_assert_eq(prism_cfg_get_double(cfg, "scale", &d), 0);
		cr_assert_eq(d, ok[i].want, "'%s'", ok[i].text);
	}
	for (size_t i = 0; i < PRISM_ARRAY_LEN(bad); i++) {
		char want[128];
		snprintf(want, sizeof(want), "key 'scale': expected a number, got '%s'",
			 bad[i]);
		cr_assert_eq(prism_cfg_set(cfg, "scale", bad[i], err, sizeof(err)),
			     PRISM_E_CONFIG, "'%s'", bad[i]);
		cr_assert_str_eq(err, want);
	}
	cr_assert_eq(prism_cfg_set(cfg, "scale", "1e999", err, sizeof(err)), PRISM_E_CONFIG);
	cr_assert_str_eq(err, "key 'scale': '1e999' is out of range for a double");
	expect_file_error(cfg, "ratio = 0.1\n\n\nscale = 2,5\n", 4,
			  "key 'scale': expected a number, got '2,5'");
	prism_cfg_destroy(cfg);
}

Test(config, booleans)
{
	static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "on", "ON", "1"};
	static const char *const no[] = {"false", "False", "no", "NO", "off", "Off", "0"};
	static const char *const bad[] = {"", "maybe", "2", "tru", "y", "n", " true", "01"};
	prism_cfg *cfg = new_cfg();
	bool b;
	for (size_t i = 0; i < PRISM_ARRAY_LEN(yes); i++) {
		cr_assert_eq(prism_cfg_set(cfg, "pinned", yes[i], err, sizeof(err)), 0, "%s",
			     yes[i]);
		cr_assert_eq(prism_cfg_get_bool(cfg, "pinned", &b), 0);
		cr_assert(b, "%s", yes[i]);
		cr_assert_eq(prism_cfg_set(cfg, "pinned", no[i], err, sizeof(err)), 0, "%s",
			     no[i]);
		cr_assert_eq(prism_cfg_get_bool(cfg, "pinned", &b), 0);
		cr_assert_not(b, "%s", no[i]);
	}
	for (size_t i = 0; i < PRISM_ARRAY_LEN(bad); i++) {
		char want[128];
		snprintf(want, sizeof(want),
			 "key 'pinned': expected true/false, yes/no, on/off or 1/0, got '%s'",
			 bad[i]);
		cr_assert_eq(prism_cfg_set(cfg, "pinned", bad[i], err, sizeof(err)),
			     PRISM_E_CONFIG, "'%s'", bad[i]);
		cr_assert_str_eq(err, want);
	}
	expect_file_error(
		cfg, "pinned = sure\n", 1,
		"key 'pinned': expected true/false, yes/no, on/off or 1/0, got 'sure'");
	prism_cfg_destroy(cfg);
}

Test(config, durations)
{
	static const struct {
		const char *text;
		int64_t want;
	} ok[] = {
		{"0", 0},
		{"000", 0},
		{"1500ns", 1500},
		{"500us", 500000},
		{"20ms", 20000000},
		{"2s", 2000000000},
		{"3min", 180000000000},
		{"1h", 3600000000000},
		{"5MS", 5000000},
		{"0ms", 0},
	};
	static const char *const bad[] = {"",   "5", "-1s", "1.5s", "5 ms",
					  "5d", "s", "+5s", "5m",   "ms5"};
	prism_cfg *cfg = new_cfg();
	int64_t ns;
	for (size_t i = 0; i < PRISM_ARRAY_LEN(ok); i++) {
		cr_assert_eq(prism_cfg_set(cfg, "linger", ok[i].text, err, sizeof(err)), 0,
			     "'%s': %s", ok[i].text, err);
		cr_assert_eq(prism_cfg_get_duration_ns(cfg, "linger", &ns), 0);
		cr_assert_eq(ns, ok[i].want, "'%s'", ok[i].text);
	}
	for (size_t i = 0; i < PRISM_ARRAY_LEN(bad); i++) {
		char want[128];
		snprintf(
			want, sizeof(want),
			"key 'linger': expected a duration such as 500us, 20ms or 2s, got '%s'",
			bad[i]);
		cr_assert_eq(prism_cfg_set(cfg, "linger", bad[i], err, sizeof(err)),
			     PRISM_E_CONFIG, "'%s'", bad[i]);
		cr_assert_str_eq(err, want);
	}
	cr_assert_eq(prism_cfg_set(cfg, "linger", "9999999999999h", err, sizeof(err)),
		     PRISM_E_CONFIG);
	cr_assert_str_eq(err, "key 'linger': '9999999999999h' is out of range for a 64-bit "
			      "integer");
	/* A duration is not an integer, and the getters keep the types apart. */
	cr_assert_eq(prism_cfg_get_int(cfg, "linger", &ns), -EINVAL);
	expect_file_error(cfg, "timeout = 10\n", 1,
			  "key 'timeout': expected a duration such as 500us, 20ms or 2s, got "
			  "'10'");
	prism_cfg_destroy(cfg);
}

Test(config, ranges)
{
	prism_cfg *cfg = new_cfg();
	static const struct {
		const char *key, *text, *msg;
	} cases[] = {
		{"spin_budget_ns", "-1",
		 "'-1' is out of range: must be between 0 and 1000000000"},
		{"spin_budget_ns", "2g",
		 "'2g' is out of range: must be between 0 and 1000000000"},
		{"arena_size", "512Ki",
		 "'512Ki' is out of range: must be between 1Mi and 16Gi"},
		{"workers", "0", "'0' is out of range: must be at least 1"},
		{"ratio", "1.5", "'1.5' is out of range: must be between 0 and 1"},
		{"ratio", "-0.01", "'-0.01' is out of range: must be between 0 and 1"},
		{"timeout", "999us", "'999us' is out of range: must be between 1ms and 1h"},
		{"timeout", "61min", "'61min' is out of range: must be between 1ms and 1h"},
		{"timeout", "0", "'0' is out of range: must be between 1ms and 1h"},
	};
	for (size_t i = 0; i < PRISM_ARRAY_LEN(cases); i++) {
		char want[160];
		snprintf(want, sizeof(want), "key '%s': %s", cases[i].key, cases[i].msg);
		cr_assert_eq(prism_cfg_set(cfg, cases[i].key, cases[i].text, err, sizeof(err)),
			     PRISM_E_CONFIG, "%s = %s", cases[i].key, cases[i].text);
		cr_assert_str_eq(err, want);
	}
	/* The bounds themselves are inside. */
	cr_assert_eq(prism_cfg_set(cfg, "spin_budget_ns", "1g", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_set(cfg, "arena_size", "1Mi", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_set(cfg, "arena_size", "16Gi", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_set(cfg, "workers", "1000000", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_set(cfg, "timeout", "1h", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_set(cfg, "ratio", "1", err, sizeof(err)), 0);
	expect_file_error(cfg, "workers = 8\nratio = 2\n", 2,
			  "key 'ratio': '2' is out of range: must be between 0 and 1");
	prism_cfg_destroy(cfg);
}

Test(config, strings_quotes_and_comments)
{
	prism_cfg *cfg = new_cfg();
	char path[32];
	const char *text = "# a comment line\n"
			   "   # an indented comment = with an equals sign\n"
			   "\n"
			   "  \t\n"
			   "address = \"  10.0.0.1:7000 # kept \\\"quoted\\\" \\\\ \"  \n"
			   "log_path=/var/log/prism#1.log\r\n"
			   "  pinned\t=\tyes  \n"
			   "workers = \"16\"\n";
	cr_assert_eq(load_text(cfg, text, path), 0, "%s", err);
	cr_assert_str_eq(err, "");
	cr_assert_str_eq(get_str(cfg, "address"), "  10.0.0.1:7000 # kept \"quoted\" \\ ");
	cr_assert_str_eq(get_str(cfg, "log_path"), "/var/log/prism#1.log");
	cr_assert_eq(get_int(cfg, "workers"), 16, "quotes work for every type");
	bool b = false;
	cr_assert_eq(prism_cfg_get_bool(cfg, "pinned", &b), 0);
	cr_assert(b);

	/* Empty values: "" for a string, in either spelling. */
	cr_assert_eq(load_text(cfg, "address =\nlog_path = \"\"\n", path), 0, "%s", err);
	cr_assert_str_eq(get_str(cfg, "address"), "");
	cr_assert_str_eq(get_str(cfg, "log_path"), "");

	expect_file_error(cfg, "address = \"unterminated\n", 1,
			  "key 'address': missing closing '\"'");
	expect_file_error(
		cfg, "\n\naddress = \"a\\nb\"\n", 3,
		"key 'address': only \\\" and \\\\ may follow '\\' in a quoted value");
	expect_file_error(cfg, "address = \"a\\\"\n", 1, "key 'address': missing closing '\"'");
	expect_file_error(cfg, "address = \"a\" b\n", 1,
			  "key 'address': unexpected text after the closing '\"'");
	expect_file_error(cfg, "address = \"a\" # comment\n", 1,
			  "key 'address': unexpected text after the closing '\"'");
	prism_cfg_destroy(cfg);
}

Test(config, malformed_lines)
{
	prism_cfg *cfg = new_cfg();
	expect_file_error(cfg, "pinned = yes\nspinn_budget_ns = 5\n", 2,
			  "unknown key 'spinn_budget_ns'");
	expect_file_error(cfg, "Pinned = yes\n", 1, "unknown key 'Pinned'");
	expect_file_error(cfg, "pinned = yes\nworkers = 3\npinned = no\n", 3,
			  "key 'pinned': set twice in this file (first on line 1)");
	expect_file_error(cfg, "\npinned yes\n", 2,
			  "expected 'key = value', got 'pinned yes' (no '=')");
	expect_file_error(cfg, "  = 5\n", 1, "missing key before '='");
	/* Long text in a message is cut. */
	char text[200], want[200];
	memset(text, 'x', 100);
	memcpy(text + 100, "\n", 2);
	snprintf(want, sizeof(want), "expected 'key = value', got '%.48s...' (no '=')", text);
	expect_file_error(cfg, text, 1, want);
	expect_defaults(cfg);
	prism_cfg_destroy(cfg);
}

Test(config, line_and_value_length_limits)
{
	prism_cfg *cfg = new_cfg();
	char path[32], *text = malloc(3 * (size_t)PRISM_CFG_LINE_MAX);
	const char *head = "address = ";
	size_t hl = strlen(head);

	/* A line of exactly PRISM_CFG_LINE_MAX bytes is accepted... */
	memcpy(text, "pinned = on\n", 13);
	size_t at = strlen(text);
	memcpy(text + at, head, hl);
	memset(text + at + hl, 'a', PRISM_CFG_LINE_MAX - hl);
	memcpy(text + at + PRISM_CFG_LINE_MAX, "\n", 2);
	cr_assert_eq(load_text(cfg, text, path), 0, "%s", err);
	cr_assert_eq(strlen(get_str(cfg, "address")), PRISM_CFG_LINE_MAX - hl);

	/* ...one byte more is an error, with or without a final newline. */
	memset(text + at + hl, 'b', PRISM_CFG_LINE_MAX - hl + 1);
	memcpy(text + at + PRISM_CFG_LINE_MAX + 1, "\n", 2);
	expect_file_error(cfg, text, 2, "line too long (more than 4096 bytes)");
	text[at + PRISM_CFG_LINE_MAX + 1] = '\0';
	expect_file_error(cfg, text, 2, "line too long (more than 4096 bytes)");
	cr_assert_eq(get_str(cfg, "address")[0], 'a', "the failed loads changed nothing");

	/* Values from flags and variables have the same limit. */
	memset(text, 'c', PRISM_CFG_VALUE_MAX);
	text[PRISM_CFG_VALUE_MAX] = '\0';
	cr_assert_eq(prism_cfg_set(cfg, "log_path", text, err, sizeof(err)), 0);
	cr_assert_eq(strlen(get_str(cfg, "log_path")), PRISM_CFG_VALUE_MAX);
	memcpy(text + PRISM_CFG_VALUE_MAX, "c", 2);
	cr_assert_eq(prism_cfg_set(cfg, "log_path", text, err, sizeof(err)), PRISM_E_CONFIG);
	cr_assert_str_eq(err, "key 'log_path': value too long (more than 4095 bytes)");
	cr_assert_eq(setenv("PRISMTEST_LOG_PATH", text, 1), 0);
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), PRISM_E_CONFIG);
	cr_assert_str_eq(err, "PRISMTEST_LOG_PATH: key 'log_path': value too long (more than "
			      "4095 bytes)");
	cr_assert_eq(source(cfg, "log_path"), PRISM_CFG_SRC_SET);

	/* A NUL byte would silently cut the line, so it is refused. */
	write_tmp(path, "pinned = on\nlog_path = a\0b\n", 27);
	cr_assert_eq(prism_cfg_load_file(cfg, path, err, sizeof(err)), PRISM_E_CONFIG);
	unlink(path);
	cr_assert(strstr(err, ":2: NUL byte in line"), "%s", err);
	free(text);
	prism_cfg_destroy(cfg);
}

Test(config, load_is_all_or_nothing)
{
	prism_cfg *cfg = new_cfg();
	expect_file_error(cfg,
			  "spin_budget_ns = 10\n"
			  "address = \"10.1.1.1:9\"\n"
			  "log_path = /tmp/x\n"
			  "pinned = yes\n"
			  "ratio = 0.9\n"
			  "workers = -1\n",
			  6, "key 'workers': '-1' is out of range: must be at least 1");
	expect_defaults(cfg);

	cr_assert_eq(setenv("PRISMTEST_ADDRESS", "10.2.2.2:9", 1), 0);
	cr_assert_eq(setenv("PRISMTEST_RATIO", "0.1", 1), 0);
	cr_assert_eq(setenv("PRISMTEST_WORKERS", "many", 1), 0);
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), PRISM_E_CONFIG);
	cr_assert_str_eq(err, "PRISMTEST_WORKERS: key 'workers': expected an integer, got "
			      "'many'");
	expect_defaults(cfg);
	prism_cfg_destroy(cfg);
}

Test(config, precedence_default_file_env_set)
{
	prism_cfg *cfg = new_cfg();
	char path[32];
	const char *file = "spin_budget_ns = 100\nworkers = 8\naddress = from-file\n";

	cr_assert_eq(setenv("PRISMTEST_SPIN_BUDGET_NS", "200", 1), 0);
	cr_assert_eq(setenv("PRISMTEST_ADDRESS", "from-env", 1), 0);
	cr_assert_eq(setenv("PRISMTEST_PINNED", "on", 1), 0);
	cr_assert_eq(setenv("PRISM_OTHER_WORKERS", "99", 1), 0); /* another prefix */

	cr_assert_eq(load_text(cfg, file, path), 0, "%s", err);
	cr_assert_eq(get_int(cfg, "spin_budget_ns"), 100);
	cr_assert_eq(source(cfg, "spin_budget_ns"), PRISM_CFG_SRC_FILE);
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(err, "");
	cr_assert_eq(get_int(cfg, "spin_budget_ns"), 200);
	cr_assert_eq(get_int(cfg, "workers"), 8);
	cr_assert_eq(get_int(cfg, "offset"), -5);
	cr_assert_str_eq(get_str(cfg, "address"), "from-env");
	cr_assert_eq(source(cfg, "spin_budget_ns"), PRISM_CFG_SRC_ENV);
	cr_assert_eq(source(cfg, "workers"), PRISM_CFG_SRC_FILE);
	cr_assert_eq(source(cfg, "pinned"), PRISM_CFG_SRC_ENV);
	cr_assert_eq(source(cfg, "offset"), PRISM_CFG_SRC_DEFAULT);

	/* Loading the file again (a reload) does not override the environment... */
	cr_assert_eq(load_text(cfg, "spin_budget_ns = 300\nworkers = 9\n", path), 0);
	cr_assert_eq(get_int(cfg, "spin_budget_ns"), 200);
	cr_assert_eq(get_int(cfg, "workers"), 9, "a later file replaces an earlier one");
	/* ...and a set overrides everything, and stays. */
	cr_assert_eq(prism_cfg_set(cfg, "spin_budget_ns", "400", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), 0);
	cr_assert_eq(get_int(cfg, "spin_budget_ns"), 400);
	cr_assert_eq(source(cfg, "spin_budget_ns"), PRISM_CFG_SRC_SET);
	cr_assert_str_eq(prism_cfg_source_name(PRISM_CFG_SRC_SET), "set");
	cr_assert_str_eq(prism_cfg_source_name(PRISM_CFG_SRC_ENV), "env");
	cr_assert_str_eq(prism_cfg_source_name(PRISM_CFG_SRC_FILE), "file");
	cr_assert_str_eq(prism_cfg_source_name(PRISM_CFG_SRC_DEFAULT), "default");
	prism_cfg_destroy(cfg);

	/* The order of the calls does not matter: env first, then the file. */
	cfg = new_cfg();
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), 0);
	cr_assert_eq(load_text(cfg, file, path), 0);
	cr_assert_eq(get_int(cfg, "spin_budget_ns"), 200);
	cr_assert_str_eq(get_str(cfg, "address"), "from-env");
	cr_assert_eq(get_int(cfg, "workers"), 8);
	/* A bad value is reported even where a higher source hides it. */
	expect_file_error(cfg, "spin_budget_ns = lots\n", 1,
			  "key 'spin_budget_ns': expected an integer, got 'lots'");
	prism_cfg_destroy(cfg);
}

Test(config, env_errors_name_the_variable)
{
	prism_cfg *cfg = new_cfg();
	cr_assert_eq(setenv("PRISMTEST_SPIN_BUDGET_NS", "abc", 1), 0);
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), PRISM_E_CONFIG);
	cr_assert_str_eq(err, "PRISMTEST_SPIN_BUDGET_NS: key 'spin_budget_ns': expected an "
			      "integer, got 'abc'");
	cr_assert_eq(setenv("PRISMTEST_SPIN_BUDGET_NS", "", 1), 0);
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), PRISM_E_CONFIG,
		     "an empty variable is a value, and not an integer");
	cr_assert_eq(unsetenv("PRISMTEST_SPIN_BUDGET_NS"), 0);
	cr_assert_eq(setenv("PRISMTEST_LOG_PATH", "", 1), 0);
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), 0);
	cr_assert_eq(source(cfg, "log_path"), PRISM_CFG_SRC_ENV);
	/* An over-long prefix is a programming error. */
	char prefix[80];
	memset(prefix, 'P', sizeof(prefix) - 1);
	prefix[sizeof(prefix) - 1] = '\0';
	cr_assert_eq(prism_cfg_load_env(cfg, prefix, err, sizeof(err)), -EINVAL);
	prism_cfg_destroy(cfg);
}

Test(config, unopenable_files)
{
	prism_cfg *cfg = new_cfg();
	cr_assert_eq(prism_cfg_load_file(cfg, "/nonexistent/prism.conf", err, sizeof(err)),
		     -ENOENT);
	cr_assert(strstr(err, "/nonexistent/prism.conf"), "%s", err);
	cr_assert_eq(prism_cfg_load_file(cfg, "/tmp", err, sizeof(err)), -EISDIR);
	cr_assert(strstr(err, "/tmp"), "%s", err);
	if (geteuid() != 0) { /* root reads everything */
		char path[32];
		write_tmp(path, "pinned = yes\n", 13);
		chmod(path, 0);
		cr_assert_eq(prism_cfg_load_file(cfg, path, err, sizeof(err)), -EACCES);
		cr_assert(strstr(err, path), "%s", err);
		unlink(path);
	}
	/* err is optional, and a small one gets a cut, terminated message. */
	cr_assert_eq(prism_cfg_load_file(cfg, "/nonexistent/prism.conf", NULL, 0), -ENOENT);
	char small[8];
	cr_assert_eq(prism_cfg_load_file(cfg, "/nonexistent/prism.conf", small, sizeof(small)),
		     -ENOENT);
	cr_assert_str_eq(small, "/nonexi");
	expect_defaults(cfg);
	prism_cfg_destroy(cfg);
}

Test(config, getters_check_key_and_type)
{
	prism_cfg *cfg = new_cfg();
	int64_t i = 77;
	double d = 7.0;
	bool b = true;
	const char *s = "untouched";
	enum prism_cfg_source src = PRISM_CFG_SRC_SET;
	cr_assert_eq(prism_cfg_get_int(cfg, "nope", &i), -ENOENT);
	cr_assert_eq(prism_cfg_get_double(cfg, "nope", &d), -ENOENT);
	cr_assert_eq(prism_cfg_get_bool(cfg, "nope", &b), -ENOENT);
	cr_assert_eq(prism_cfg_get_str(cfg, "nope", &s), -ENOENT);
	cr_assert_eq(prism_cfg_get_duration_ns(cfg, "nope", &i), -ENOENT);
	cr_assert_eq(prism_cfg_source(cfg, "nope", &src), -ENOENT);
	cr_assert_eq(prism_cfg_get_int(cfg, "address", &i), -EINVAL);
	cr_assert_eq(prism_cfg_get_double(cfg, "workers", &d), -EINVAL);
	cr_assert_eq(prism_cfg_get_bool(cfg, "ratio", &b), -EINVAL);
	cr_assert_eq(prism_cfg_get_str(cfg, "pinned", &s), -EINVAL);
	cr_assert_eq(prism_cfg_get_duration_ns(cfg, "workers", &i), -EINVAL);
	cr_assert_eq(i, 77);
	cr_assert_eq(d, 7.0);
	cr_assert(b);
	cr_assert_str_eq(s, "untouched");
	cr_assert_eq(src, PRISM_CFG_SRC_SET);
	cr_assert_eq(prism_cfg_get_int(NULL, "workers", &i), -EINVAL);
	cr_assert_eq(prism_cfg_get_int(cfg, NULL, &i), -EINVAL);
	cr_assert_eq(prism_cfg_get_int(cfg, "workers", NULL), -EINVAL);
	cr_assert_eq(prism_cfg_set(cfg, "nope", "1", err, sizeof(err)), PRISM_E_CONFIG);
	cr_assert_str_eq(err, "unknown key 'nope'");
	cr_assert_eq(prism_cfg_set(cfg, NULL, "1", err, sizeof(err)), -EINVAL);
	cr_assert_eq(prism_cfg_load_file(NULL, "/tmp/x", err, sizeof(err)), -EINVAL);
	prism_cfg_destroy(cfg);
}

Test(config, format_round_trips)
{
	prism_cfg *cfg = new_cfg();
	prism_cfg *copy = new_cfg();
	char buf[64];
	cr_assert_eq(prism_cfg_set(cfg, "ratio", "0.1", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_set(cfg, "scale", "-1.2345678901234567e-200", err, sizeof(err)),
		     0);
	cr_assert_eq(prism_cfg_set(cfg, "linger", "90min", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_set(cfg, "timeout", "1500us", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_set(cfg, "pinned", "on", err, sizeof(err)), 0);
	cr_assert_eq(prism_cfg_format(cfg, "ratio", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "0.1");
	cr_assert_eq(prism_cfg_format(cfg, "linger", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "90min");
	cr_assert_eq(prism_cfg_format(cfg, "timeout", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "1500us");
	cr_assert_eq(prism_cfg_format(cfg, "pinned", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "true");
	cr_assert_eq(prism_cfg_format(cfg, "arena_size", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "67108864");
	/* Every formatted value parses back to the same value. */
	for (size_t i = 0; i < NKEYS; i++) {
		const char *k = schema[i].name;
		char again[64];
		cr_assert_eq(prism_cfg_format(cfg, k, buf, sizeof(buf)), 0, "%s", k);
		cr_assert_eq(prism_cfg_set(copy, k, buf, err, sizeof(err)), 0, "%s: %s", k,
			     err);
		cr_assert_eq(prism_cfg_format(copy, k, again, sizeof(again)), 0);
		cr_assert_str_eq(again, buf, "%s", k);
	}
	double a = 0, b = 1;
	prism_cfg_get_double(cfg, "scale", &a);
	prism_cfg_get_double(copy, "scale", &b);
	cr_assert_eq(a, b);
	cr_assert_eq(prism_cfg_format(cfg, "address", buf, 5), -ENOSPC);
	cr_assert_str_eq(buf, "127.");
	cr_assert_eq(prism_cfg_format(cfg, "nope", buf, sizeof(buf)), -ENOENT);
	prism_cfg_destroy(cfg);
	prism_cfg_destroy(copy);
}

Test(config, schema_is_validated)
{
	static const prism_cfg_key bad[][2] = {
		{{.name = "Upper", .type = PRISM_CFG_INT, .def = "1"}},
		{{.name = "9lives", .type = PRISM_CFG_INT, .def = "1"}},
		{{.name = "has-dash", .type = PRISM_CFG_INT, .def = "1"}},
		{{.name = "", .type = PRISM_CFG_INT, .def = "1"}},
		{{.name = NULL, .type = PRISM_CFG_INT, .def = "1"}},
		{{.name = "a", .type = PRISM_CFG_INT, .def = "1"},
		 {.name = "a", .type = PRISM_CFG_BOOL, .def = "on"}},
		{{.name = "t", .type = (enum prism_cfg_type)42, .def = "1"}},
		{{.name = "nodef", .type = PRISM_CFG_INT}},
		{{.name = "i", .type = PRISM_CFG_INT, .def = "x"}},
		{{.name = "i", .type = PRISM_CFG_INT, .def = "10", .max = "5"}},
		{{.name = "i", .type = PRISM_CFG_INT, .def = "3", .min = "5", .max = "1"}},
		{{.name = "i", .type = PRISM_CFG_INT, .def = "3", .min = "five"}},
		{{.name = "b", .type = PRISM_CFG_BOOL, .def = "on", .max = "1"}},
		{{.name = "s", .type = PRISM_CFG_STRING, .def = "x", .min = "a"}},
		{{.name = "d", .type = PRISM_CFG_DURATION, .def = "5"}},
	};
	char longname[80];
	memset(longname, 'k', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	prism_cfg_key toolong = {.name = longname, .type = PRISM_CFG_INT, .def = "1"};

	for (size_t i = 0; i < PRISM_ARRAY_LEN(bad); i++) {
		prism_cfg *cfg = NULL;
		size_t n = bad[i][1].def ? 2 : 1;
		cr_assert_eq(prism_cfg_create(bad[i], n, &cfg), -EINVAL, "schema %zu", i);
		cr_assert_null(cfg);
	}
	prism_cfg *cfg = NULL;
	cr_assert_eq(prism_cfg_create(&toolong, 1, &cfg), -EINVAL);
	cr_assert_eq(prism_cfg_create(schema, NKEYS, NULL), -EINVAL);
	cr_assert_eq(prism_cfg_create(NULL, 1, &cfg), -EINVAL);
	/* An empty schema is legal: every file line is then an unknown key. */
	cr_assert_eq(prism_cfg_create(NULL, 0, &cfg), 0);
	expect_file_error(cfg, "x = 1\n", 1, "unknown key 'x'");
	prism_cfg_destroy(cfg);
}

Test(config, allocation_failures_fail_cleanly)
{
	char path[32];
	const char *text = "address = \"10.0.0.1:1\"\nlog_path = /tmp/p.log\nworkers = 3\n";
	long n;
	write_tmp(path, text, strlen(text));
	for (n = 1;; n++) {
		prism_cfg *cfg = NULL;
		prism_fault_arm(n);
		int rc = prism_cfg_create(schema, NKEYS, &cfg);
		if (rc == 0)
			rc = prism_cfg_load_file(cfg, path, err, sizeof(err));
		bool fired = prism_fault_fired();
		prism_fault_arm(0);
		if (!fired) {
			cr_assert_eq(rc, 0, "n=%ld: %s", n, prism_strerror(rc));
			cr_assert_str_eq(get_str(cfg, "address"), "10.0.0.1:1");
			cr_assert_str_eq(get_str(cfg, "log_path"), "/tmp/p.log");
			cr_assert_eq(get_int(cfg, "workers"), 3);
			prism_cfg_destroy(cfg);
			break;
		}
		cr_assert_eq(rc, -ENOMEM, "n=%ld: %s", n, prism_strerror(rc));
		if (cfg) {
			/* The load failed, and changed nothing. */
			cr_assert_str_eq(err, "out of memory");
			expect_defaults(cfg);
			prism_cfg_destroy(cfg);
		}
		cr_assert_lt(n, 100, "the loop must end");
	}
	unlink(path);
	/* create: config, entries, 2 default strings; load: staging, 2 strings. */
	cr_assert_eq(n, 8, "fault points counted: %ld", n - 1);
#ifdef HAVE_LSAN
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "a failure path leaked");
#endif
}

/* ---- prism_cfg_load_buffer ---- */

Test(config, buffer_errors_match_file_errors)
{
	static const struct {
		const char *text;
		size_t len; /* 0: strlen(text) */
		unsigned line;
		const char *rest;
	} cases[] = {
		{"pinned = yes\nspinn_budget_ns = 5\n", 0, 2, "unknown key 'spinn_budget_ns'"},
		{"\npinned yes\n", 0, 2, "expected 'key = value', got 'pinned yes' (no '=')"},
		{"  = 5\n", 0, 1, "missing key before '='"},
		{"pinned = yes\nworkers = 3\npinned = no\n", 0, 3,
		 "key 'pinned': set twice in this file (first on line 1)"},
		{"# budget\n\noffset = abc\n", 0, 3,
		 "key 'offset': expected an integer, got 'abc'"},
		{"offset = 99999999999999999999", 0, 1,
		 "key 'offset': '99999999999999999999' is out of range for a 64-bit integer"},
		{"workers = 8\nratio = 2\n", 0, 2,
		 "key 'ratio': '2' is out of range: must be between 0 and 1"},
		{"timeout = 10\n", 0, 1,
		 "key 'timeout': expected a duration such as 500us, 20ms or 2s, got '10'"},
		{"pinned = sure", 0, 1,
		 "key 'pinned': expected true/false, yes/no, on/off or 1/0, got 'sure'"},
		{"address = \"unterminated\n", 0, 1, "key 'address': missing closing '\"'"},
		{"address = \"a\\nb\"\n", 0, 1,
		 "key 'address': only \\\" and \\\\ may follow '\\' in a quoted value"},
		{"address = \"a\" b\n", 0, 1,
		 "key 'address': unexpected text after the closing '\"'"},
		{"pinned = on\nlog_path = a\0b\n", 27, 2, "NUL byte in line"},
	};
	for (size_t i = 0; i < PRISM_ARRAY_LEN(cases); i++) {
		prism_cfg *cfg = new_cfg();
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		char path[32], want[600];

		write_tmp(path, cases[i].text, len);
		cr_assert_eq(prism_cfg_load_file(cfg, path, err, sizeof(err)), PRISM_E_CONFIG,
			     "case %zu", i);
		unlink(path);
		snprintf(want, sizeof(want), "%s:%u: %s", path, cases[i].line, cases[i].rest);
		cr_assert_str_eq(err, want, "case %zu", i);
		expect_buf_error(cfg, cases[i].text, len, cases[i].line, cases[i].rest);
		expect_defaults(cfg);
		prism_cfg_destroy(cfg);
	}
}

Test(config, buffer_loads_like_a_file)
{
	/* The buffer ends inside "2.5junk": only len bytes are read, and no NUL is needed. */
	static const char text[] = "# from memory\n"
				   "workers = 12\n"
				   "address = \"a b\"\n"
				   "pinned = on\n"
				   "scale = 2.5junk";
	prism_cfg *cfg = new_cfg();
	double d = 0;
	bool b = false;

	cr_assert_eq(load_buf(cfg, text, sizeof(text) - 1 - 4), 0, "%s", err);
	cr_assert_str_eq(err, "");
	cr_assert_eq(get_int(cfg, "workers"), 12);
	cr_assert_str_eq(get_str(cfg, "address"), "a b");
	cr_assert_eq(prism_cfg_get_bool(cfg, "pinned", &b), 0);
	cr_assert(b);
	cr_assert_eq(prism_cfg_get_double(cfg, "scale", &d), 0);
	cr_assert_eq(d, 2.5, "the last line needs no newline");
	cr_assert_eq(source(cfg, "workers"), PRISM_CFG_SRC_FILE);
	cr_assert_eq(source(cfg, "offset"), PRISM_CFG_SRC_DEFAULT);

	/* A buffer is a FILE source: it replaces a file, and the environment beats it. */
	char path[32];
	cr_assert_eq(load_text(cfg, "workers = 5\nratio = 0.25\n", path), 0, "%s", err);
	cr_assert_eq(get_int(cfg, "workers"), 5);
	cr_assert_eq(load_buf(cfg, "workers = 6\n", 12), 0, "%s", err);
	cr_assert_eq(get_int(cfg, "workers"), 6);
	cr_assert_eq(prism_cfg_get_double(cfg, "ratio", &d), 0);
	cr_assert_eq(d, 0.25, "a load leaves the keys it does not name alone");
	cr_assert_eq(setenv("PRISMTEST_WORKERS", "99", 1), 0);
	cr_assert_eq(prism_cfg_load_env(cfg, "PRISMTEST_", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(load_buf(cfg, "workers = 7\n", 12), 0, "%s", err);
	cr_assert_eq(get_int(cfg, "workers"), 99);
	cr_assert_eq(source(cfg, "workers"), PRISM_CFG_SRC_ENV);
	/* ...but its values are still checked. */
	expect_buf_error(cfg, "workers = 0\n", 12, 1,
			 "key 'workers': '0' is out of range: must be at least 1");
	prism_cfg_destroy(cfg);

	/* Empty, blank and comment-only buffers load nothing, successfully. */
	cfg = new_cfg();
	cr_assert_eq(prism_cfg_load_buffer(cfg, "mem", NULL, 0, err, sizeof(err)), 0);
	cr_assert_eq(load_buf(cfg, "", 0), 0);
	cr_assert_eq(load_buf(cfg, "\n\n  \t\n# x = 1\n", 14), 0, "%s", err);
	expect_defaults(cfg);

	/* NULL arguments are programming errors; err is optional. */
	cr_assert_eq(prism_cfg_load_buffer(NULL, "mem", "a", 1, err, sizeof(err)), -EINVAL);
	cr_assert_eq(prism_cfg_load_buffer(cfg, NULL, "a", 1, err, sizeof(err)), -EINVAL);
	cr_assert_eq(prism_cfg_load_buffer(cfg, "mem", NULL, 1, err, sizeof(err)), -EINVAL);
	cr_assert_eq(prism_cfg_load_buffer(cfg, "mem", "x", 1, NULL, 0), PRISM_E_CONFIG);
	char small[8];
	cr_assert_eq(prism_cfg_load_buffer(cfg, "mem", "x", 1, small, sizeof(small)),
		     PRISM_E_CONFIG);
	cr_assert_str_eq(small, "mem:1: ");
	expect_defaults(cfg);
	prism_cfg_destroy(cfg);
}

Test(config, buffer_with_crlf_line_ends)
{
	/* '\r' is a blank: the '\r' of every CRLF line end is trimmed, in any kind of line. */
	static const char text[] = "# a comment\r\n"
				   "\r\n"
				   "workers = 3\r\n"
				   "address = \"  x \"\r\n"
				   "pinned = yes \r\n"
				   "log_path = /a b\r\n"
				   "linger = 20ms\r";
	prism_cfg *cfg = new_cfg();
	int64_t ns = 0;
	bool b = false;
	cr_assert_eq(load_buf(cfg, text, sizeof(text) - 1), 0, "%s", err);
	cr_assert_eq(get_int(cfg, "workers"), 3);
	cr_assert_str_eq(get_str(cfg, "address"), "  x ");
	cr_assert_str_eq(get_str(cfg, "log_path"), "/a b");
	cr_assert_eq(prism_cfg_get_bool(cfg, "pinned", &b), 0);
	cr_assert(b);
	cr_assert_eq(prism_cfg_get_duration_ns(cfg, "linger", &ns), 0);
	cr_assert_eq(ns, 20000000);

	/* A '\r' inside quotes is kept; a lone '\r' does not end a line. */
	cr_assert_eq(load_buf(cfg, "address = \"a\rb\"\r\n", 17), 0, "%s", err);
	cr_assert_str_eq(get_str(cfg, "address"), "a\rb");
	expect_buf_error(cfg, "pinned = no\rworkers = 4\n", 24, 1,
			 "key 'pinned': expected true/false, yes/no, on/off or 1/0, got "
			 "'no\rworkers = 4'");
	/* Errors count CRLF lines like any others. */
	expect_buf_error(cfg, "workers = 3\r\nworkers = 4\r\n", 26, 2,
			 "key 'workers': set twice in this file (first on line 1)");

	/* The '\r' counts toward the line length. */
	char *line = malloc(PRISM_CFG_LINE_MAX + 2);
	snprintf(line, PRISM_CFG_LINE_MAX, "log_path="); /* its NUL is overwritten next */
	memset(line + 9, 'p', PRISM_CFG_LINE_MAX - 10);
	line[PRISM_CFG_LINE_MAX - 1] = '\r';
	line[PRISM_CFG_LINE_MAX] = '\n';
	cr_assert_eq(load_buf(cfg, line, PRISM_CFG_LINE_MAX + 1), 0, "%s", err);
	cr_assert_eq(strlen(get_str(cfg, "log_path")), PRISM_CFG_LINE_MAX - 10);
	memset(line + 9, 'q', PRISM_CFG_LINE_MAX - 9);
	line[PRISM_CFG_LINE_MAX] = '\r';
	line[PRISM_CFG_LINE_MAX + 1] = '\n';
	expect_buf_error(cfg, line, PRISM_CFG_LINE_MAX + 2, 1,
			 "line too long (more than 4096 bytes)");
	free(line);
	prism_cfg_destroy(cfg);
}

Test(config, buffer_nul_bytes_are_errors)
{
	static const struct {
		const char *text;
		size_t len;
		unsigned line;
	} cases[] = {
		{"\0", 1, 1},
		{"\0\n", 2, 1},
		{"workers = 3\0", 12, 1},
		{"pinned = on\nworkers = 3\0", 24, 2}, /* the last byte, no newline */
		{"# a comment\0\n", 13, 1},            /* even in a comment */
		{"\n\naddress = \"a\0b\"\n", 18, 3},   /* even inside quotes */
		{"pinned = on\n\n\n\0\n", 16, 4},      /* alone on its line */
	};
	prism_cfg *cfg = new_cfg();
	for (size_t i = 0; i < PRISM_ARRAY_LEN(cases); i++)
		expect_buf_error(cfg, cases[i].text, cases[i].len, cases[i].line,
				 "NUL byte in line");
	expect_defaults(cfg);
	prism_cfg_destroy(cfg);
}

Test(config, buffer_line_length_limit)
{
	char *text = malloc(PRISM_CFG_LINE_MAX + 2);
	prism_cfg *cfg = new_cfg();

	/* Exactly PRISM_CFG_LINE_MAX bytes as the last line, without a newline (the NUL
	 * that snprintf() writes is overwritten)... */
	size_t hl = (size_t)snprintf(text, PRISM_CFG_LINE_MAX, "address = ");
	memset(text + hl, 'a', PRISM_CFG_LINE_MAX - hl);
	cr_assert_eq(load_buf(cfg, text, PRISM_CFG_LINE_MAX), 0, "%s", err);
	cr_assert_eq(strlen(get_str(cfg, "address")), PRISM_CFG_LINE_MAX - hl);
	/* ...and one more byte, with or without a newline, is too long. */
	memset(text + hl, 'b', PRISM_CFG_LINE_MAX + 1 - hl);
	expect_buf_error(cfg, text, PRISM_CFG_LINE_MAX + 1, 1,
			 "line too long (more than 4096 bytes)");
	text[PRISM_CFG_LINE_MAX + 1] = '\n';
	expect_buf_error(cfg, text, PRISM_CFG_LINE_MAX + 2, 1,
			 "line too long (more than 4096 bytes)");
	cr_assert_eq(get_str(cfg, "address")[0], 'a', "the failed loads changed nothing");
	free(text);
	prism_cfg_destroy(cfg);
}

Test(config, buffer_allocation_failures_fail_cleanly)
{
	const char *text = "address = \"10.0.0.1:1\"\nlog_path = /tmp/p.log\nworkers = 3\n";
	prism_cfg *cfg = new_cfg();
	long n;
	for (n = 1;; n++) {
		prism_fault_arm(n);
		int rc =
			prism_cfg_load_buffer(cfg, "mem", text, strlen(text), err, sizeof(err));
		bool fired = prism_fault_fired();
		prism_fault_arm(0);
		if (!fired) {
			cr_assert_eq(rc, 0, "n=%ld: %s", n, prism_strerror(rc));
			cr_assert_str_eq(get_str(cfg, "address"), "10.0.0.1:1");
			cr_assert_str_eq(get_str(cfg, "log_path"), "/tmp/p.log");
			break;
		}
		cr_assert_eq(rc, -ENOMEM, "n=%ld: %s", n, prism_strerror(rc));
		cr_assert_str_eq(err, "out of memory");
		expect_defaults(cfg);
		cr_assert_lt(n, 100, "the loop must end");
	}
	/* The staging array and the 2 strings: nothing else, and no buffer of the text. */
	cr_assert_eq(n, 4, "fault points counted: %ld", n - 1);
	prism_cfg_destroy(cfg);
#ifdef HAVE_LSAN
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "a failure path leaked");
#endif
}
