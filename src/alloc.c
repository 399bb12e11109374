#include "src/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Each block carries its size in a 16-byte header (keeps 16-byte alignment for SIMD loads). */
#define TQ_HDR 16

/* atomic: threads of a program may train models side by side */
static atomic_size_t live_, peak_;
static atomic_uint_fast64_t count_;

static atomic_int_fast64_t fail_after_ = -1;

void tq_alloc_fail_after(int64_t n) { atomic_store(&fail_after_, n); }

/* the failure tq_alloc_fail_after asked for: counts successes down to it, then fails once */
static int injected_failure(void) {
    int_fast64_t k = atomic_load(&fail_after_);
    while (k >= 0) {
        if (atomic_compare_exchange_weak(&fail_after_, &k, k - 1)) return k == 0;
    }
    return 0;
}

static void grew(size_t now) {
    size_t p = atomic_load(&peak_);
    while (now > p && !atomic_compare_exchange_weak(&peak_, &p, now)) {
    }
}

void *tq_malloc(size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX - TQ_HDR || injected_failure()) return NULL;
    unsigned char *p = malloc(bytes + TQ_HDR);
    if (!p) return NULL;
    memcpy(p, &bytes, sizeof bytes);
    grew(atomic_fetch_add(&live_, bytes) + bytes);
    atomic_fetch_add(&count_, 1);
    return p + TQ_HDR;
}

void *tq_calloc(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    void *p = tq_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *tq_realloc(void *p, size_t bytes) {
    if (!p) return tq_malloc(bytes);
    if (bytes == 0 || bytes > SIZE_MAX - TQ_HDR || injected_failure()) return NULL;
    unsigned char *h = (unsigned char *)p - TQ_HDR;
    size_t old;
    memcpy(&old, h, sizeof old);
    unsigned char *n = realloc(h, bytes + TQ_HDR);
    if (!n) return NULL;
    memcpy(n, &bytes, sizeof bytes);
    atomic_fetch_sub(&live_, old);
    grew(atomic_fetch_add(&live_, bytes) + bytes);
    atomic_fetch_add(&count_, 1);
    return n + TQ_HDR;
}

void tq_free(void *p) {
    if (!p) return;
    unsigned char *h = (unsigned char *)p - TQ_HDR;
    size_t bytes;
    memcpy(&bytes, h, sizeof bytes);
    atomic_fetch_sub(&live_, bytes);
    free(h);
}

size_t tq_alloc_live_bytes(void) { return atomic_load(&live_); }
uint64_t tq_alloc_count(void) { return (uint64_t)atomic_load(&count_); }
size_t tq_alloc_peak_bytes(void) { return atomic_load(&peak_); }
