/* The IDX reader, raw and gzip (gzread detects the format from the content). */
#include "tests/fuzz/fuzz_common.h"

#include "data/dataset.h"
#include "src/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".idx");
    uint32_t dims[4];
    int nd;
    uint8_t *out = NULL;
    if (tq_idx_read_u8(p, 1, 4, dims, &nd, &out) == TQ_OK) { /* labels and images from one corpus */
        uint64_t n = 1;
        for (int i = 0; i < nd; i++) n *= dims[i];
        volatile uint8_t sink = n ? out[n - 1] : 0; /* the whole buffer is readable */
        (void)sink;
    }
    tq_free(out);
    return 0;
}
