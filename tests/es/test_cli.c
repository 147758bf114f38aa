/* The options es_humanoid and es_mpi share (cli.h): the defaults, what each answer of
 * es_cli_parse() means, the edges of the ranges, strict numbers, and the reasons printed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

Test(cli, defaults)
{
	struct es_cli_opts o;
	struct es_config es;
	es_cli_defaults(&o);
	es_config_default(&es);
	cr_assert_eq(o.timesteps, 1000000);
	cr_assert_eq(o.noise_floats, ES_NOISE_DEFAULT_FLOATS);
	cr_assert_eq(o.layers, 2);
	cr_assert_eq(o.width, 64);
	cr_assert_eq(o.obs, ES_OBS_DEFAULT);
	cr_assert_null(o.model);
	cr_assert_null(o.save);
	cr_assert(!o.json);
	cr_assert_eq(o.es.pairs_per_gen, es.pairs_per_gen);
	cr_assert_eq(o.es.seed, es.seed);
	cr_assert(o.es.obnorm);
}

Test(cli, flags_values_and_unknown_options)
{
	struct es_cli_opts o;
	es_cli_defaults(&o);
	cr_assert_eq(es_cli_parse(&o, "--json", "--timesteps"), 0, "a flag takes no value");
	cr_assert(o.json);
	cr_assert_eq(es_cli_parse(&o, "--no-obnorm", NULL), 0);
	cr_assert(!o.es.obnorm);
	cr_assert_eq(es_cli_parse(&o, "--timesteps", "5000"), 1);
	cr_assert_eq(o.timesteps, 5000);
	cr_assert_eq(es_cli_parse(&o, "--obs", "all"), 1);
	cr_assert_eq(o.obs, ES_OBS_ALL);
	cr_assert_eq(es_cli_parse(&o, "--obs", "basic"), 1);
	cr_assert_eq(o.obs, 0);
	cr_assert_eq(es_cli_parse(&o, "--sigma", "0.5"), 1);
	cr_assert_float_eq(o.es.sigma, 0.5f, 1e-9);
	cr_assert_eq(es_cli_parse(&o, "--model", "/m.xml"), 1);
	cr_assert_str_eq(o.model, "/m.xml");
	cr_assert_eq(es_cli_parse(&o, "--workers", "2"), -ENOENT, "a driver's own option");
	cr_assert_eq(es_cli_parse(&o, "--frobnicate", NULL), -ENOENT);
	cr_assert_eq(es_cli_parse(&o, "timesteps", "1"), -ENOENT);
}

/* Every valued option refuses a missing value and leaves o as it was. */
Test(cli, missing_or_bad_values_change_nothing)
{
	static const char *valued[] = {
		"--timesteps",
		"--pairs-per-gen",
		"--sigma",
		"--lr",
		"--l2",
		"--seed",
		"--noise-floats",
		"--layers",
		"--width",
		"--obs",
		"--max-episode-steps",
		"--model",
		"--save",
	};
	struct es_cli_opts o, before;
	es_cli_defaults(&o);
	before = o;
	for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++) {
		cr_assert_eq(es_cli_parse(&o, valued[i], NULL), -EINVAL, "%s", valued[i]);
		cr_assert_eq(es_cli_parse(&o, valued[i], ""), -EINVAL, "%s ''", valued[i]);
		cr_assert_eq(memcmp(&o, &before, sizeof(o)), 0, "%s changed o", valued[i]);
	}
	cr_assert_eq(es_cli_parse(&o, "--obs", "nope"), -EINVAL);
	cr_assert_eq(es_cli_parse(&o, "--sigma", "nan"), -EINVAL);
	cr_assert_eq(es_cli_parse(&o, "--sigma", "0.02x"), -EINVAL);
	cr_assert_eq(memcmp(&o, &before, sizeof(o)), 0);
}

Test(cli, range_edges)
{
	static const struct {
		const char *opt, *in, *out; /* the last value inside, the first outside */
	} edges[] = {
		{"--timesteps", "1", "0"},
		{"--timesteps", "9223372036854775807", "9223372036854775808"},
		{"--pairs-per-gen", "1048576", "1048577"},
		{"--pairs-per-gen", "1", "0"},
		{"--sigma", "10", "10.5"},
		{"--sigma", "1e-6", "1e-7"},
		{"--lr", "1e-9", "0"},
		{"--l2", "0", "-0.1"},
		{"--seed", "18446744073709551615", "18446744073709551616"},
		{"--noise-floats", "17179869184", "17179869185"},
		{"--noise-floats", "1", "0"},
		{"--max-episode-steps", "16777216", "16777217"},
		{"--layers", "0", "5"},
		{"--width", "4096", "4097"},
		{"--width", "1", "0"},
	};
	struct es_cli_opts o;
	es_cli_defaults(&o);
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		cr_assert_eq(es_cli_parse(&o, edges[i].opt, edges[i].in), 1, "%s %s",
			     edges[i].opt, edges[i].in);
		cr_assert_eq(es_cli_parse(&o, edges[i].opt, edges[i].out), -EINVAL, "%s %s",
			     edges[i].opt, edges[i].out);
	}
	cr_assert_eq(o.noise_floats, (size_t)1);
}

/* strtoull would take these; a number here is digits only. */
Test(cli, numbers_are_strict)
{
	static const char *bad[] = {"-1", "+5", " 5", "5 ", "0x10", "1e3", "5k", "-0"};
	uint32_t v = 7;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(es_cli_parse_u32(bad[i], 0, 1000, &v), -EINVAL, "'%s'", bad[i]);
	cr_assert_eq(v, 7);
	cr_assert_eq(es_cli_parse_u32("010", 0, 1000, &v), 0, "decimal, not octal");
	cr_assert_eq(v, 10);
	cr_assert_eq(es_cli_parse_u32("4294967295", 0, UINT32_MAX, &v), 0);
	cr_assert_eq(v, UINT32_MAX);
}

static char *printed(int rc, const char *opt, const char *val)
{
	static char buf[256];
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	cr_assert_not_null(f);
	es_cli_print_error(f, "tag", rc, opt, val);
	fclose(f);
	return buf;
}

Test(cli, reasons)
{
	cr_assert_str_eq(printed(-ENOENT, "--frob", "x"), "tag: unknown option '--frob'\n");
	cr_assert_str_eq(printed(-EINVAL, "--obs", "nope"),
			 "tag: bad value for --obs: 'nope'\n");
	cr_assert_str_eq(printed(-EINVAL, "--obs", NULL),
			 "tag: bad value for --obs: '(missing)'\n");
}

/* A driver's own lines come right after the shared option they name. */
Test(cli, usage_places_own_lines)
{
	static const struct es_cli_usage_line own[] = {{"--timesteps", "  --own A\n"},
						       {"--json", "  --own B\n"}};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	es_cli_usage(f, own, 2);
	fclose(f);
	cr_assert(strstr(buf, "(default 1000000)\n  --own A\n  --pairs-per-gen N"), "%s", buf);
	cr_assert(strstr(buf, "instead of a table\n  --own B\n"), "%s", buf);
	cr_assert(strstr(buf, es_env_default_model_path()), "%s", buf);
	free(buf);
}
