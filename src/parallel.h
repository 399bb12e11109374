/* A small thread pool for the ops' batch slices.
 *
 * tq_parallel_for(n, fn, ctx) runs fn(ctx, 0..n-1), each index once, on the pool's threads and the
 * caller's, and returns when all are done. Which thread runs which index is up to timing, so the
 * work of index i must not depend on it: ops give every index its own output (a slice of the
 * batch, or a partial sum that is added up afterwards in index order). That way the results are
 * the same bytes for any thread count; the count only changes the speed.
 *
 * One pool serves the process, and every call here is thread-safe. A call made while another
 * thread's job (or an enclosing one) is running does not wait for it: it runs its own indices
 * inline, on its own thread. The thread count is the process's: tq_parallel_set_threads from one
 * thread changes the speed of every other's work, never its results. */
#ifndef TQ_PARALLEL_H
#define TQ_PARALLEL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The fixed slicing the ops use: a batch (or a tensor of at least TQ_SLICE_MIN values) is cut
 * into TQ_SLICES parts, whatever the thread count, so results never depend on it. */
#define TQ_SLICES 4
#define TQ_SLICE_MIN ((size_t)1 << 16)

/* Part t of k of n items: [*begin, *end), n*t/k to n*(t+1)/k (possibly empty). */
static inline void tq_slice(size_t n, int t, int k, size_t *begin, size_t *end) {
    *begin = n * (size_t)t / (size_t)k;
    *end = n * (size_t)(t + 1) / (size_t)k;
}

/* Threads that run tq_parallel_for (1..64; 1 runs everything on the caller). Waits for a running
 * job to finish first. */
void tq_parallel_set_threads(int n);
int tq_parallel_threads(void);

void tq_parallel_for(int n, void (*fn)(void *ctx, int i), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
