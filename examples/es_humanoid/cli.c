/* cli.c — the options es_humanoid and es_mpi share (cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void es_cli_defaults(struct es_cli_opts *o)
{
	*o = (struct es_cli_opts){.timesteps = 1000000,
				  .noise_floats = ES_NOISE_DEFAULT_FLOATS,
				  .layers = 2,
				  .width = 64,
				  .obs = ES_OBS_DEFAULT};
	es_config_default(&o->es);
}

/* An unsigned decimal in [lo, hi].  strtoull skips leading spaces and takes a sign
 * (reading "-1" as UINT64_MAX), so a value starting with '-', '+' or ' ' is refused. */
static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool parse_u32(const char *s, uint64_t lo, uint64_t hi, uint32_t *out)
{
	uint64_t u;
	if (!parse_u64(s, lo, hi, &u))
		return false;
	*out = (uint32_t)u;
	return true;
}

static bool parse_size(const char *s, uint64_t lo, uint64_t hi, size_t *out)
{
	uint64_t u;
	if (!parse_u64(s, lo, hi, &u))
		return false;
	*out = (size_t)u;
	return true;
}

/* A number in [lo, hi]; NaN fails the range test. */
static bool parse_f(const char *s, double lo, double hi, float *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !(v >= lo && v <= hi))
		return false;
	*out = (float)v;
	return true;
}

static bool parse_obs(const char *s, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned flags;
	} kinds[] = {{"basic", 0}, {"default", ES_OBS_DEFAULT}, {"all", ES_OBS_ALL}};
	for (size_t i = 0; s && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(s, kinds[i].name) == 0) {
			*out = kinds[i].flags;
			return true;
		}
	return false;
}

/* A path: present and not empty. */
static bool parse_path(const char *s, const char **out)
{
	if (!s || !*s)
		return false;
	*out = s;
	return true;
}

/* The options that take a value: 1 when val fits, -EINVAL when not, -ENOENT for none. */
static int parse_valued(struct es_cli_opts *o, const char *opt, const char *val)
{
	bool ok;
	if (strcmp(opt, "--timesteps") == 0)
		ok = parse_u64(val, 1, UINT64_MAX / 2, &o->timesteps);
	else if (strcmp(opt, "--pairs-per-gen") == 0)
		ok = parse_u32(val, 1, 1u << 20, &o->es.pairs_per_gen);
	else if (strcmp(opt, "--sigma") == 0)
		ok = parse_f(val, 1e-6, 10, &o->es.sigma);
	else if (strcmp(opt, "--lr") == 0)
		ok = parse_f(val, 1e-9, 10, &o->es.lr);
	else if (strcmp(opt, "--l2") == 0)
		ok = parse_f(val, 0, 10, &o->es.l2);
	else if (strcmp(opt, "--seed") == 0)
		ok = parse_u64(val, 0, UINT64_MAX, &o->es.seed);
	else if (strcmp(opt, "--noise-floats") == 0)
		ok = parse_size(val, 1, (uint64_t)1 << 34, &o->noise_floats);
	else if (strcmp(opt, "--max-episode-steps") == 0)
		ok = parse_u32(val, 1, 1u << 24, &o->es.max_steps);
	else if (strcmp(opt, "--layers") == 0)
		ok = parse_u32(val, 0, ES_POLICY_MAX_HIDDEN, &o->layers);
	else if (strcmp(opt, "--width") == 0)
		ok = parse_u32(val, 1, ES_POLICY_MAX_WIDTH, &o->width);
	else if (strcmp(opt, "--obs") == 0)
		ok = parse_obs(val, &o->obs);
	else if (strcmp(opt, "--model") == 0)
		ok = parse_path(val, &o->model);
	else if (strcmp(opt, "--save") == 0)
		ok = parse_path(val, &o->save);
	else
		return -ENOENT;
	return ok ? 1 : -EINVAL;
}

int es_cli_parse(struct es_cli_opts *o, const char *opt, const char *val)
{
	if (strcmp(opt, "--json") == 0) {
		o->json = true;
		return 0;
	}
	if (strcmp(opt, "--no-obnorm") == 0) {
		o->es.obnorm = false;
		return 0;
	}
	return parse_valued(o, opt, val);
}

int es_cli_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	return parse_u32(s, lo, hi, out) ? 0 : -EINVAL;
}

void es_cli_print_error(FILE *f, const char *tag, int rc, const char *opt, const char *val)
{
	if (rc == -ENOENT)
		fprintf(f, "%s: unknown option '%s'\n", tag, opt);
	else
		fprintf(f, "%s: bad value for %s: '%s'\n", tag, opt, val ? val : "(missing)");
}

/* The shared lines of the usage, each under the option it describes; the defaults it
 * names are es_cli_defaults()'s and es_config_default()'s.  --model's line is NULL here:
 * its default path is known only at run time. */
static const struct {
	const char *opt;
	const char *text;
} usage_lines[] = {
	{"--timesteps",
	 "  --timesteps N          budget of environment steps (default 1000000)\n"},
	{"--pairs-per-gen",
	 "  --pairs-per-gen N      antithetic pairs per generation (default 64)\n"},
	{"--sigma", "  --sigma X              perturbation scale (default 0.02)\n"},
	{"--lr", "  --lr X                 Adam step size (default 0.01)\n"},
	{"--l2", "  --l2 X                 weight decay (default 0.005)\n"},
	{"--seed", "  --seed N               seed of everything random (default 1)\n"},
	{"--noise-floats", "  --noise-floats N       noise table length (default 25000000)\n"},
	{"--max-episode-steps",
	 "  --max-episode-steps N  episode length limit (default 1000)\n"},
	{"--layers", "  --layers N --width N   hidden layers of the MLP (default 2 x 64)\n"},
	{"--obs", "  --obs basic|default|all  observation (53, 336 or 432 floats)\n"},
	{"--no-obnorm", "  --no-obnorm            no observation normalisation\n"},
	{"--model", NULL},
	{"--save", "  --save PATH            write the final policy there\n"},
	{"--json", "  --json                 JSON lines instead of a table\n"},
};

void es_cli_usage(FILE *f, const struct es_cli_usage_line *own, size_t nown)
{
	for (size_t i = 0; i < sizeof(usage_lines) / sizeof(usage_lines[0]); i++) {
		if (usage_lines[i].text)
			fputs(usage_lines[i].text, f);
		else
			fprintf(f, "  --model PATH           humanoid.xml (default: %s)\n",
				es_env_default_model_path());
		for (size_t k = 0; k < nown; k++)
			if (strcmp(own[k].after, usage_lines[i].opt) == 0)
				fputs(own[k].text, f);
	}
}
