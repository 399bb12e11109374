/* An explicit-state random generator: the state is a value the caller owns, never global,
 * so the same seed gives the same stream on every machine (rand() does not).
 * splitmix64 seeds the state; xoshiro128+ is not used: one 64-bit splitmix step per draw
 * is simple, fast and passes BigCrush -- plenty for init and shuffling. */
#ifndef TQ_RNG_H
#define TQ_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t s; } tq_rng;

void tq_rng_seed(tq_rng *r, uint64_t seed);
uint64_t tq_rng_u64(tq_rng *r);
uint32_t tq_rng_below(tq_rng *r, uint32_t n);   /* uniform in [0, n), unbiased; n > 0 */
float tq_rng_uniform(tq_rng *r);                /* uniform in [0, 1), 24 random bits */
float tq_rng_uniform_in(tq_rng *r, float lo, float hi);
float tq_rng_normal(tq_rng *r);                 /* N(0, 1), Box-Muller */
void tq_rng_shuffle_u32(tq_rng *r, uint32_t *a, size_t n);   /* Fisher-Yates */

/* splitmix64's finalizer: a 64-bit value mixed into one that looks random, for draws made from a
 * position (augmentation, dropout masks) rather than a stream. */
static inline uint64_t tq_hash64(uint64_t h) {
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

#endif
