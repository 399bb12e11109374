/* libFuzzer targets read files through the real loaders: the input is written to a per-process
 * temporary file first (the loaders take paths, as users do). */
#ifndef TQ_FUZZ_COMMON_H
#define TQ_FUZZ_COMMON_H
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fuzz_write(const uint8_t *data, size_t size, const char *suffix) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/tq_fuzz_%ld%s", (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}
#endif
