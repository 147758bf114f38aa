/* resources.c — the node's resource table: parsing "name=amount,..." specs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "sched/node.h"

static int set_err(char *err, size_t errlen, int rc, const char *fmt, const char *a,
		   size_t alen)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, (int)alen, a);
	return rc;
}

int sched_res_find(const struct sched_res *res, uint32_t nres, const char *name, size_t len)
{
	for (uint32_t i = 0; i < nres; i++)
		if (strlen(res[i].name) == len && memcmp(res[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

int sched_res_amount_milli(double amount, uint64_t *milli)
{
	if (!(amount >= 0 && amount <= SCHED_RES_MAX_AMOUNT)) /* NaN fails both */
		return -ERANGE;
	*milli = (uint64_t)(amount * 1000.0 + 0.5);
	return 0;
}

void sched_res_defaults(struct sched_res *res, uint32_t *nres, uint32_t ncpus, uint32_t ngpus)
{
	memset(res, 0, SCHED_MAX_RES * sizeof(*res));
	strcpy(res[SCHED_RES_CPU].name, "CPU");
	res[SCHED_RES_CPU].total_milli = (uint64_t)ncpus * 1000;
	strcpy(res[SCHED_RES_GPU].name, "GPU");
	res[SCHED_RES_GPU].total_milli = (uint64_t)ngpus * 1000;
	*nres = 2;
}

int sched_res_parse(const char *spec, struct sched_res *res, uint32_t *nres, char *err,
		    size_t errlen)
{
	const char *p = spec;
	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		if (!eq || eq == p)
			return set_err(err, errlen, -EINVAL,
				       "resource '%.*s': expected name=amount", p, len);
		size_t nlen = (size_t)(eq - p);
		if (nlen >= SCHED_RES_NAME)
			return set_err(
				err, errlen, -ENAMETOOLONG,
				"resource name '%.*s' is too long (at most 31 characters)", p,
				nlen);
		for (size_t i = 0; i < nlen; i++) {
			char c = p[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
			      c == ':'))
				return set_err(
					err, errlen, -EINVAL,
					"resource name '%.*s': use letters, digits and _-.:", p,
					nlen);
		}
		char num[64];
		size_t vlen = len - nlen - 1;
		if (vlen == 0 || vlen >= sizeof(num))
			return set_err(err, errlen, -EINVAL, "resource '%.*s': bad amount", p,
				       len);
		memcpy(num, eq + 1, vlen);
		num[vlen] = '\0';
		char *stop;
		errno = 0;
		double v = strtod(num, &stop);
		uint64_t milli;
		if (*stop || errno || sched_res_amount_milli(v, &milli) != 0)
			return set_err(err, errlen, -ERANGE,
				       "resource '%.*s': the amount must be a number from 0 to "
				       "1000000",
				       p, len);
		int i = sched_res_find(res, *nres, p, nlen);
		if (i < 0) {
			if (*nres == SCHED_MAX_RES)
				return set_err(
					err, errlen, -ENOSPC,
					"resource '%.*s': at most 6 custom resources per "
					"node",
					p, nlen);
			i = (int)(*nres)++;
			memcpy(res[i].name, p, nlen);
			res[i].name[nlen] = '\0';
		}
		res[i].total_milli = milli;
		p = end ? end + 1 : NULL;
	}
	return 0;
}
