#include "src/alloc.h"

#include <stdlib.h>
#include <string.h>

/* Each block carries its size in a 16-byte header (keeps 16-byte alignment for SIMD loads). */
#define TQ_HDR 16

static size_t live_, peak_;
static uint64_t count_;

void *tq_malloc(size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX - TQ_HDR) return NULL;
    unsigned char *p = malloc(bytes + TQ_HDR);
    if (!p) return NULL;
    memcpy(p, &bytes, sizeof bytes);
    live_ += bytes;
    if (live_ > peak_) peak_ = live_;
    count_++;
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
    if (bytes == 0 || bytes > SIZE_MAX - TQ_HDR) return NULL;
    unsigned char *h = (unsigned char *)p - TQ_HDR;
    size_t old;
    memcpy(&old, h, sizeof old);
    unsigned char *n = realloc(h, bytes + TQ_HDR);
    if (!n) return NULL;
    memcpy(n, &bytes, sizeof bytes);
    live_ = live_ - old + bytes;
    if (live_ > peak_) peak_ = live_;
    count_++;
    return n + TQ_HDR;
}

void tq_free(void *p) {
    if (!p) return;
    unsigned char *h = (unsigned char *)p - TQ_HDR;
    size_t bytes;
    memcpy(&bytes, h, sizeof bytes);
    live_ -= bytes;
    free(h);
}

size_t tq_alloc_live_bytes(void) { return live_; }
uint64_t tq_alloc_count(void) { return count_; }
size_t tq_alloc_peak_bytes(void) { return peak_; }
