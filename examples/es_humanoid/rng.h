/* rng.h — the deterministic random numbers of the ES application.
 *
 * xoshiro256** (Blackman and Vigna, 2018) seeded through splitmix64, so that any 64-bit
 * seed, 0 included, gives a well-mixed state.  Everything random in ES goes through it:
 * the noise table, the reset noise of the environment, the policy's initial weights and
 * the noise offsets of each generation.  The same seed gives the same numbers on every
 * process and every run of the same binary, which is what lets each MPI rank build the
 * same noise table and the prism version reproduce the MPI peer's curve.
 *
 * struct es_rng is a small value the caller owns (32 bytes, on the stack or inside a
 * larger object); no allocation, no global state.  One generator must not be used by two
 * threads at once; distinct generators are independent.
 */
#ifndef PRISM_ES_RNG_H
#define PRISM_ES_RNG_H

#include <math.h>
#include <stdint.h>

struct es_rng {
	uint64_t s[4]; /* private: the xoshiro256** state */
};

static inline uint64_t es_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A seed derived from two numbers (a base seed and a stream index), so that streams such
 * as "episode k of generation g" get unrelated generators. */
static inline uint64_t es_seed_mix(uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
	es_splitmix64(&x);
	return es_splitmix64(&x);
}

static inline void es_rng_seed(struct es_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = es_splitmix64(&seed);
}

static inline uint64_t es_rng_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t es_rng_next(struct es_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = es_rng_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = es_rng_rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1), 53 random bits. */
static inline double es_rng_uniform(struct es_rng *r)
{
	return (double)(es_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n) for n >= 1, by Lemire's multiply-shift (the bias is below 2^-32 for
 * any n that fits in 32 bits, and n here is at most a noise table's length). */
static inline uint64_t es_rng_below(struct es_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)es_rng_next(r) * n) >> 64);
}

/* Two independent N(0, 1) samples by Marsaglia's polar method: no trigonometry, and the
 * rejection loop accepts pi/4 of the candidates. */
static inline void es_rng_normal2(struct es_rng *r, double *a, double *b)
{
	double u, v, s;
	do {
		u = 2.0 * es_rng_uniform(r) - 1.0;
		v = 2.0 * es_rng_uniform(r) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	double f = sqrt(-2.0 * log(s) / s);
	*a = u * f;
	*b = v * f;
}

#endif
