/* cli.h — the command line that the two ES drivers share.  es_humanoid (the prism version,
 * main.c) and its OpenMPI peer es_mpi (bench/peers/es_mpi.c) run the same algorithm and
 * must take the same options with the same ranges, defaults and messages, or `prism-bench
 * es` would compare two different runs.  The options of the run itself live here; each
 * driver keeps only what is its own (es_humanoid's --workers and --pairs-per-call) and
 * its loop over argv: it offers every argument to its own options first, then to
 * es_cli_parse().
 *
 * Whole numbers are decimal, within the option's range, with no sign, no leading space
 * and nothing after the digits (strtoull alone would take "+5", " 5" and "-1").
 *
 * Ownership: the strings an option takes (--model, --save) are borrowed from argv and
 * must outlive the struct.  Threads: nothing here keeps state.  Errors: es_cli_parse()
 * returns -ENOENT for an option that is not one of these and -EINVAL for a missing or bad
 * value; es_cli_print_error() turns either into the drivers' one-line reason.
 */
#ifndef PRISM_ES_CLI_H
#define PRISM_ES_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "es.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The shared options; es_cli_defaults() fills every field. */
struct es_cli_opts {
	uint64_t timesteps;  /* --timesteps: budget of environment steps */
	struct es_config es; /* --pairs-per-gen, --sigma, --lr, --l2, --seed, ... */
	size_t noise_floats; /* --noise-floats: the noise table's length */
	uint32_t layers;     /* --layers: hidden layers of the MLP */
	uint32_t width;      /* --width: units in each */
	unsigned obs;        /* --obs: ES_OBS_* flags */
	const char *model;   /* --model, borrowed; NULL: es_env_default_model_path() */
	const char *save;    /* --save, borrowed; NULL: the policy is not saved */
	bool json;           /* --json: JSON lines instead of a table */
};

/* 1,000,000 timesteps, a 25M-float table, a 2 x 64 MLP, ES_OBS_DEFAULT, no model or save
 * path, a table rather than JSON, and es_config_default() for the algorithm. */
void es_cli_defaults(struct es_cli_opts *o);

/* Reads option opt of the shared list into o, with val the argument after it (NULL when
 * opt is the last).  Returns 0 for a flag (val untouched), 1 when the option took val
 * (the caller steps over it), -ENOENT when opt is none of the shared options and
 * -EINVAL when val is missing or out of the option's range; o is unchanged on failure.
 * val is borrowed (kept in o for --model and --save). */
int es_cli_parse(struct es_cli_opts *o, const char *opt, const char *val);

/* s as a strict decimal in [lo, hi] into *out: 0, or -EINVAL (out untouched).  For the
 * drivers' own numeric options, so that they read numbers as the shared ones do. */
int es_cli_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);

/* The reason for a failed es_cli_parse() (or a driver's own option failing the same way),
 * one line on f: "TAG: unknown option 'OPT'" for -ENOENT, else "TAG: bad value for OPT:
 * 'VAL'" ('(missing)' when val is NULL). */
void es_cli_print_error(FILE *f, const char *tag, int rc, const char *opt, const char *val);

/* A driver's own line (or lines, each ending in '\n') of the usage, printed right after
 * the shared option named by after. */
struct es_cli_usage_line {
	const char *after; /* a shared option, e.g. "--timesteps" */
	const char *text;
};

/* The shared options' lines of the usage, in their order, with the driver's own lines
 * own[0..nown) placed after the ones they name.  The driver prints its first line
 * ("usage: ...") before and any closing note after. */
void es_cli_usage(FILE *f, const struct es_cli_usage_line *own, size_t nown);

#ifdef __cplusplus
}
#endif
#endif
