/* The IDX reader, raw and gzip (gzread detects the format from the content). */
#include "tests/fuzz/fuzz_common.h"

#include "data/mnist.h"
#include "src/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".idx");
    uint32_t dims[3];
    int nd;
    uint8_t *out = NULL;
    const uint32_t magic = size && (data[0] & 1) ? 0x801 : 0x803; /* both kinds from one corpus */
    if (tq_idx_read_u8(p, magic, dims, 3, &nd, &out) == TQ_OK) {
        uint64_t n = 1;
        for (int i = 0; i < nd; i++) n *= dims[i];
        volatile uint8_t sink = n ? out[n - 1] : 0; /* the whole buffer is readable */
        (void)sink;
    }
    tq_free(out);
    return 0;
}
