#include "src/rng.h"

#include <math.h>

void tq_rng_seed(tq_rng *r, uint64_t seed) { r->s = seed ^ 0x9E3779B97F4A7C15ull; }

/* splitmix64 (Steele, Lea, Flood 2014): a Weyl sequence through a 64-bit mixer. */
uint64_t tq_rng_u64(tq_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Lemire's multiply-and-reject: no modulo bias. */
uint32_t tq_rng_below(tq_rng *r, uint32_t n) {
    uint64_t m = (uint64_t)(uint32_t)(tq_rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (lo < t) {
            m = (uint64_t)(uint32_t)(tq_rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float tq_rng_uniform(tq_rng *r) { return (float)(tq_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float tq_rng_uniform_in(tq_rng *r, float lo, float hi) { return lo + (hi - lo) * tq_rng_uniform(r); }

float tq_rng_normal(tq_rng *r) {
    /* 1 - u keeps the log argument in (0, 1]. */
    double u1 = 1.0 - (double)(tq_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    double u2 = (double)(tq_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void tq_rng_shuffle_u32(tq_rng *r, uint32_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = tq_rng_below(r, (uint32_t)i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
