/* libFuzzer targets read files through the real loaders: the input is written to a per-process
 * temporary file first (the loaders take paths, as users do). */
#ifndef TQ_FUZZ_COMMON_H
#define TQ_FUZZ_COMMON_H
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((unused)) static const char *fuzz_write(const uint8_t *data, size_t size, const char *suffix) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/tq_fuzz_%ld%s", (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}

#ifdef TQ_QMODEL_H
#include "src/alloc.h"
/* An imported integer model through the runtime once, on zeros (what its checks let through must
 * run); models too large for a fuzzer's memory are left out. */
__attribute__((unused)) static void fuzz_run_int8(const tq_qmodel *q) {
    size_t sb = tq_int8_net_scratch_bytes(&q->net), in = (size_t)q->layer[0].in, out = (size_t)q->layer[q->n_layers - 1].out;
    if (sb > ((size_t)1 << 24) || in > ((size_t)1 << 20)) return;
    void *scratch = tq_malloc(sb ? sb : 1);
    int8_t *x = tq_calloc(in, 1), *y = tq_malloc(out ? out : 1);
    if (scratch && x && y) (void)tq_int8_net_run(&q->net, x, y, scratch, sb);
    tq_free(scratch), tq_free(x), tq_free(y);
}
#endif
#endif
