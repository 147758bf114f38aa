/* policy.c — MLP policy, its file format and observation statistics; see policy.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc.h"
#include "base/error.h"
#include "policy.h"
#include "rng.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the policy file format is written in the host's order, which must be little-endian"
#endif

#define FILE_MAGIC "PRISMESP"
#define FILE_VERSION 1u
#define HEADER_LEN 64
#define HEADER_CRC_AT 60 /* the header's own CRC covers the 60 bytes before it */

/* The gain of each layer's initial weights (Salimans' normc_initializer). */
#define INIT_HIDDEN_NORM 1.0
#define INIT_OUTPUT_NORM 0.01
#define OBSTAT_PRIOR 1e-2 /* RunningStat's eps: prior count and sum of squares */
#define OBSTAT_VAR_FLOOR 1e-2

struct es_policy {
	struct es_policy_arch a;
	uint32_t nlayers;                      /* nhidden + 1 */
	uint32_t in[ES_POLICY_MAX_HIDDEN + 1]; /* per layer */
	uint32_t out[ES_POLICY_MAX_HIDDEN + 1];
	size_t off[ES_POLICY_MAX_HIDDEN + 1]; /* of W in theta; b follows W */
	size_t nparams;
	float *lo, *hi;    /* act_dim */
	float *mean, *std; /* obs_dim */
	float *buf[2];     /* scratch activations, max width */
};

struct es_obstat {
	uint32_t dim;
	double *v; /* [count, sum[dim], sumsq[dim]] */
};

static void say(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errsz, const char *fmt, ...)
{
	if (!err || errsz == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

static bool arch_ok(const struct es_policy_arch *a)
{
	if (a->obs_dim < 1 || a->obs_dim > ES_POLICY_MAX_WIDTH || a->act_dim < 1 ||
	    a->act_dim > ES_POLICY_MAX_WIDTH || a->nhidden > ES_POLICY_MAX_HIDDEN)
		return false;
	for (uint32_t i = 0; i < a->nhidden; i++)
		if (a->hidden[i] < 1 || a->hidden[i] > ES_POLICY_MAX_WIDTH)
			return false;
	return true;
}

/* A file's architecture also has its unused widths 0. */
static bool file_arch_ok(const struct es_policy_arch *a)
{
	if (!arch_ok(a))
		return false;
	for (uint32_t i = a->nhidden; i < ES_POLICY_MAX_HIDDEN; i++)
		if (a->hidden[i] != 0)
			return false;
	return true;
}

/* Layer shapes and parameter offsets; the sizes are bounded by arch_ok(), so nparams is
 * at most 5 * 4097 * 4096 and cannot overflow. */
static void layout(es_policy *p)
{
	uint32_t in = p->a.obs_dim;
	size_t off = 0;
	p->nlayers = p->a.nhidden + 1;
	for (uint32_t l = 0; l < p->nlayers; l++) {
		uint32_t out = l < p->a.nhidden ? p->a.hidden[l] : p->a.act_dim;
		p->in[l] = in;
		p->out[l] = out;
		p->off[l] = off;
		off += (size_t)in * out + out;
		in = out;
	}
	p->nparams = off;
}

static uint32_t max_width(const struct es_policy_arch *a)
{
	uint32_t w = a->obs_dim > a->act_dim ? a->obs_dim : a->act_dim;
	for (uint32_t i = 0; i < a->nhidden; i++)
		w = a->hidden[i] > w ? a->hidden[i] : w;
	return w;
}

int es_policy_create(const struct es_policy_arch *a, const float *lo, const float *hi,
		     es_policy **out)
{
	*out = NULL;
	if (!arch_ok(a))
		return -EINVAL;
	for (uint32_t i = 0; i < a->act_dim; i++)
		if (!(lo[i] <= hi[i]) || (isfinite(lo[i]) != isfinite(hi[i])))
			return -EINVAL;
	es_policy *p = prism_calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->a = *a;
	for (uint32_t i = a->nhidden; i < ES_POLICY_MAX_HIDDEN; i++)
		p->a.hidden[i] = 0; /* unused widths are 0, in memory and in files */
	layout(p);
	uint32_t w = max_width(a);
	p->lo = prism_malloc(2 * (size_t)a->act_dim * sizeof(float));
	p->mean = prism_malloc(2 * (size_t)a->obs_dim * sizeof(float));
	p->buf[0] = prism_malloc(2 * (size_t)w * sizeof(float));
	if (!p->lo || !p->mean || !p->buf[0]) {
		es_policy_destroy(p);
		return -ENOMEM;
	}
	p->hi = p->lo + a->act_dim;
	p->std = p->mean + a->obs_dim;
	p->buf[1] = p->buf[0] + w;
	memcpy(p->lo, lo, a->act_dim * sizeof(float));
	memcpy(p->hi, hi, a->act_dim * sizeof(float));
	for (uint32_t i = 0; i < a->obs_dim; i++) {
		p->mean[i] = 0.0f;
		p->std[i] = 1.0f;
	}
	*out = p;
	return 0;
}

void es_policy_destroy(es_policy *p)
{
	if (!p)
		return;
	prism_free(p->lo);
	prism_free(p->mean);
	prism_free(p->buf[0]);
	prism_free(p);
}

const struct es_policy_arch *es_policy_get_arch(const es_policy *p)
{
	return &p->a;
}

size_t es_policy_nparams(const es_policy *p)
{
	return p->nparams;
}

void es_policy_init_params(const es_policy *p, uint64_t seed, float *theta)
{
	struct es_rng r;
	es_rng_seed(&r, seed);
	for (uint32_t l = 0; l < p->nlayers; l++) {
		uint32_t in = p->in[l], out = p->out[l];
		float *w = theta + p->off[l];
		double gain = l + 1 == p->nlayers ? INIT_OUTPUT_NORM : INIT_HIDDEN_NORM;
		for (uint32_t j = 0; j < out; j++) {
			double ss = 0, a, b;
			for (uint32_t i = 0; i < in; i += 2) {
				es_rng_normal2(&r, &a, &b);
				w[(size_t)i * out + j] = (float)a;
				if (i + 1 < in)
					w[(size_t)(i + 1) * out + j] = (float)b;
			}
			for (uint32_t i = 0; i < in; i++)
				ss += (double)w[(size_t)i * out + j] * w[(size_t)i * out + j];
			double f = ss > 0 ? gain / sqrt(ss) : 0.0;
			for (uint32_t i = 0; i < in; i++)
				w[(size_t)i * out + j] = (float)(w[(size_t)i * out + j] * f);
		}
		memset(w + (size_t)in * out, 0, out * sizeof(float));
	}
}

int es_policy_set_obnorm(es_policy *p, const float *mean, const float *std)
{
	for (uint32_t i = 0; i < p->a.obs_dim; i++)
		if (!isfinite(mean[i]) || !(std[i] > 0) || !isfinite(std[i]))
			return -EINVAL;
	memcpy(p->mean, mean, p->a.obs_dim * sizeof(float));
	memcpy(p->std, std, p->a.obs_dim * sizeof(float));
	return 0;
}

const float *es_policy_obmean(const es_policy *p)
{
	return p->mean;
}

const float *es_policy_obstd(const es_policy *p)
{
	return p->std;
}

/* y[out] = b + x[in] . W, W input-major. */
static void dense(const float *restrict w, uint32_t in, uint32_t out, const float *restrict x,
		  float *restrict y)
{
	const float *b = w + (size_t)in * out;
	memcpy(y, b, out * sizeof(float));
	for (uint32_t i = 0; i < in; i++) {
		float xi = x[i];
		const float *row = w + (size_t)i * out;
		for (uint32_t j = 0; j < out; j++)
			y[j] += xi * row[j];
	}
}

void es_policy_act(es_policy *p, const float *theta, const float *obs, float *act)
{
	float *x = p->buf[0], *y = p->buf[1];
	for (uint32_t i = 0; i < p->a.obs_dim; i++) {
		float v = (obs[i] - p->mean[i]) / p->std[i];
		x[i] = fminf(fmaxf(v, -ES_OBS_CLIP), ES_OBS_CLIP);
	}
	for (uint32_t l = 0; l < p->nlayers; l++) {
		dense(theta + p->off[l], p->in[l], p->out[l], x, y);
		for (uint32_t j = 0; j < p->out[l]; j++)
			y[j] = tanhf(y[j]);
		float *t = x;
		x = y;
		y = t;
	}
	for (uint32_t j = 0; j < p->a.act_dim; j++) {
		float lo = p->lo[j], hi = p->hi[j];
		act[j] = isfinite(lo) ? lo + 0.5f * (x[j] + 1.0f) * (hi - lo) : x[j];
	}
}

/* ---- file format ------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static size_t payload_floats(const struct es_policy_arch *a, size_t nparams)
{
	return 2 * (size_t)a->act_dim + 2 * (size_t)a->obs_dim + nparams;
}

/* Header fields, in order, after the magic. */
static void header_encode(uint8_t *h, const es_policy *p, uint64_t plen, uint32_t pcrc)
{
	memset(h, 0, HEADER_LEN);
	memcpy(h, FILE_MAGIC, 8);
	put32(h + 8, FILE_VERSION);
	put32(h + 12, p->a.obs_dim);
	put32(h + 16, p->a.act_dim);
	put32(h + 20, p->a.nhidden);
	for (int i = 0; i < ES_POLICY_MAX_HIDDEN; i++)
		put32(h + 24 + 4 * i, p->a.hidden[i]);
	put64(h + 40, p->nparams);
	put64(h + 48, plen);
	put32(h + 56, pcrc);
	put32(h + HEADER_CRC_AT, prism_crc32c(0, h, HEADER_CRC_AT));
}

static int write_all(FILE *f, const void *p, size_t n)
{
	return fwrite(p, 1, n, f) == n ? 0 : -EIO;
}

int es_policy_save(const es_policy *p, const float *theta, const char *path, char *err,
		   size_t errsz)
{
	const struct es_policy_arch *a = &p->a;
	size_t nf = payload_floats(a, p->nparams);
	uint64_t plen = nf * sizeof(float);
	uint32_t crc = prism_crc32c(0, p->lo, a->act_dim * sizeof(float));
	crc = prism_crc32c(crc, p->hi, a->act_dim * sizeof(float));
	crc = prism_crc32c(crc, p->mean, a->obs_dim * sizeof(float));
	crc = prism_crc32c(crc, p->std, a->obs_dim * sizeof(float));
	crc = prism_crc32c(crc, theta, p->nparams * sizeof(float));
	uint8_t h[HEADER_LEN];
	header_encode(h, p, plen, crc);

	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		say(err, errsz, "policy path too long: %s", path);
		return -ENAMETOOLONG;
	}
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		int rc = -errno;
		say(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
		return rc;
	}
	int rc = write_all(f, h, sizeof(h));
	if (!rc)
		rc = write_all(f, p->lo, a->act_dim * sizeof(float));
	if (!rc)
		rc = write_all(f, p->hi, a->act_dim * sizeof(float));
	if (!rc)
		rc = write_all(f, p->mean, a->obs_dim * sizeof(float));
	if (!rc)
		rc = write_all(f, p->std, a->obs_dim * sizeof(float));
	if (!rc)
		rc = write_all(f, theta, p->nparams * sizeof(float));
	if (fclose(f) != 0 && !rc)
		rc = -EIO;
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		say(err, errsz, "cannot write the policy to %s: %s", path, prism_strerror(rc));
		unlink(tmp);
	}
	return rc;
}

/* Checks the header and fills *a and *nparams; the payload length must be plen. */
static int header_decode(const uint8_t *h, struct es_policy_arch *a, size_t *nparams,
			 uint64_t *plen, uint32_t *pcrc, char *err, size_t errsz)
{
	if (memcmp(h, FILE_MAGIC, 8) != 0) {
		say(err, errsz, "not a prism ES policy file (bad magic)");
		return PRISM_E_BAD_MAGIC;
	}
	if (get32(h + 8) != FILE_VERSION) {
		say(err, errsz, "policy file version %u, this program reads version %u",
		    get32(h + 8), FILE_VERSION);
		return PRISM_E_BAD_VERSION;
	}
	if (get32(h + HEADER_CRC_AT) != prism_crc32c(0, h, HEADER_CRC_AT)) {
		say(err, errsz, "policy file header is corrupt (checksum mismatch)");
		return PRISM_E_CORRUPT;
	}
	*a = (struct es_policy_arch){
		.obs_dim = get32(h + 12), .act_dim = get32(h + 16), .nhidden = get32(h + 20)};
	for (int i = 0; i < ES_POLICY_MAX_HIDDEN; i++)
		a->hidden[i] = get32(h + 24 + 4 * i);
	*nparams = get64(h + 40);
	*plen = get64(h + 48);
	*pcrc = get32(h + 56);
	if (!file_arch_ok(a)) {
		say(err, errsz, "policy file has an impossible architecture");
		return PRISM_E_CORRUPT;
	}
	return 0;
}

static int read_exact(FILE *f, void *p, size_t n)
{
	return fread(p, 1, n, f) == n ? 0 : PRISM_E_TRUNCATED;
}

/* The payload into a fresh policy and theta; the header has been checked. */
static int load_payload(FILE *f, const struct es_policy_arch *a, uint32_t pcrc, es_policy **out,
			float **theta_out, char *err, size_t errsz)
{
	size_t nf = 2 * (size_t)a->act_dim + 2 * (size_t)a->obs_dim;
	float *bounds = prism_malloc(nf * sizeof(float));
	es_policy *p = NULL;
	float *theta = NULL;
	int rc = bounds ? read_exact(f, bounds, nf * sizeof(float)) : -ENOMEM;
	if (rc)
		goto fail_bounds;
	float *lo = bounds, *hi = lo + a->act_dim, *mean = hi + a->act_dim,
	      *std = mean + a->obs_dim;
	if ((rc = es_policy_create(a, lo, hi, &p)) < 0) {
		rc = rc == -ENOMEM ? rc : PRISM_E_CORRUPT;
		goto fail_bounds;
	}
	theta = prism_malloc(p->nparams * sizeof(float));
	rc = theta ? read_exact(f, theta, p->nparams * sizeof(float)) : -ENOMEM;
	if (rc)
		goto fail_theta;
	uint32_t crc = prism_crc32c(0, bounds, nf * sizeof(float));
	crc = prism_crc32c(crc, theta, p->nparams * sizeof(float));
	if (crc != pcrc || es_policy_set_obnorm(p, mean, std) < 0) {
		rc = PRISM_E_CORRUPT;
		goto fail_theta;
	}
	prism_free(bounds);
	*out = p;
	*theta_out = theta;
	return 0;

fail_theta:
	prism_free(theta);
	es_policy_destroy(p);
fail_bounds:
	prism_free(bounds);
	if (rc == PRISM_E_CORRUPT)
		say(err, errsz, "policy file is corrupt (payload checksum or values)");
	else if (rc == PRISM_E_TRUNCATED)
		say(err, errsz, "policy file is truncated");
	return rc;
}

int es_policy_load(const char *path, es_policy **out, float **theta_out, char *err,
		   size_t errsz)
{
	uint8_t h[HEADER_LEN];
	struct es_policy_arch a;
	size_t nparams;
	uint64_t plen;
	uint32_t pcrc;
	*out = NULL;
	*theta_out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int rc = -errno;
		say(err, errsz, "cannot open the policy file %s: %s", path, strerror(errno));
		return rc;
	}
	int rc = read_exact(f, h, sizeof(h));
	if (rc) {
		say(err, errsz, "policy file %s is truncated (no full header)", path);
		goto out;
	}
	if ((rc = header_decode(h, &a, &nparams, &plen, &pcrc, err, errsz)) < 0)
		goto out;
	/* The header's sizes must agree with each other and with the file's length. */
	struct es_policy tmp = {.a = a};
	layout(&tmp);
	long here = ftell(f);
	if (tmp.nparams != nparams || plen != payload_floats(&a, nparams) * sizeof(float) ||
	    fseek(f, 0, SEEK_END) != 0 || ftell(f) - here != (long)plen ||
	    fseek(f, here, SEEK_SET) != 0) {
		say(err, errsz, "policy file %s is corrupt: its sizes do not match its length",
		    path);
		rc = PRISM_E_CORRUPT;
		goto out;
	}
	rc = load_payload(f, &a, pcrc, out, theta_out, err, errsz);
out:
	fclose(f);
	return rc;
}

/* ---- observation statistics -------------------------------------------------------- */

int es_obstat_create(uint32_t dim, es_obstat **out)
{
	*out = NULL;
	if (dim < 1 || dim > ES_POLICY_MAX_WIDTH)
		return -EINVAL;
	es_obstat *s = prism_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dim = dim;
	s->v = prism_calloc(1 + 2 * (size_t)dim, sizeof(double));
	if (!s->v) {
		prism_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void es_obstat_destroy(es_obstat *s)
{
	if (!s)
		return;
	prism_free(s->v);
	prism_free(s);
}

uint32_t es_obstat_dim(const es_obstat *s)
{
	return s->dim;
}

void es_obstat_clear(es_obstat *s)
{
	memset(s->v, 0, (1 + 2 * (size_t)s->dim) * sizeof(double));
}

void es_obstat_add(es_obstat *s, const float *obs)
{
	double *sum = s->v + 1, *sq = sum + s->dim;
	s->v[0] += 1.0;
	for (uint32_t i = 0; i < s->dim; i++) {
		double x = obs[i];
		sum[i] += x;
		sq[i] += x * x;
	}
}

int es_obstat_merge(es_obstat *dst, const es_obstat *src)
{
	if (dst->dim != src->dim)
		return -EINVAL;
	for (size_t i = 0; i < 1 + 2 * (size_t)dst->dim; i++)
		dst->v[i] += src->v[i];
	return 0;
}

double *es_obstat_raw(es_obstat *s, size_t *len)
{
	*len = 1 + 2 * (size_t)s->dim;
	return s->v;
}

void es_obstat_norm(const es_obstat *s, float *mean, float *std)
{
	const double *sum = s->v + 1, *sq = sum + s->dim;
	double n = s->v[0] + OBSTAT_PRIOR;
	for (uint32_t i = 0; i < s->dim; i++) {
		double m = sum[i] / n;
		double var = (sq[i] + OBSTAT_PRIOR) / n - m * m;
		mean[i] = (float)m;
		std[i] = (float)sqrt(var > OBSTAT_VAR_FLOOR ? var : OBSTAT_VAR_FLOOR);
	}
}
