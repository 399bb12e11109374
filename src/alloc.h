/* Allocation wrappers with a live-byte counter.
 *
 * Training code allocates only through these, so a test can check that a training step
 * allocates nothing after the first one (tq_alloc_count) and that everything is freed
 * (tq_alloc_live_bytes() back to its starting value). The integer runtime never allocates.
 * tq_free(NULL) is a no-op. Thread-safe: the counters are atomic and count every thread's
 * allocations (a test that reads them wants the other threads quiet). */
#ifndef TQ_ALLOC_H
#define TQ_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *tq_malloc(size_t bytes);             /* NULL on failure or bytes == 0 */
void *tq_calloc(size_t n, size_t size);    /* zeroed; NULL on failure or overflow of n*size */
void *tq_realloc(void *p, size_t bytes);
void tq_free(void *p);

size_t tq_alloc_live_bytes(void);    /* bytes currently allocated through tq_* */
uint64_t tq_alloc_count(void);       /* number of successful allocations so far */
size_t tq_alloc_peak_bytes(void);

/* For tests of the error paths: from now on the allocation after `n` more succeed fails (0: the
 * next one); -1 (the start) never. Process-wide. */
void tq_alloc_fail_after(int64_t n);

#endif
