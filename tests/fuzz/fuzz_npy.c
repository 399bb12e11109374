/* The .npy reader (data/npy.c) on arbitrary bytes. */
#include "tests/fuzz/fuzz_common.h"

#include "data/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".npy");
    tq_npy a;
    if (tq_npy_read(&a, p) == TQ_OK) {
        volatile uint8_t sink = 0; /* every byte of the data is there to read */
        const size_t elem = a.type == TQ_NPY_F64 ? 8 : a.type == TQ_NPY_F32 ? 4 : 1;
        for (size_t i = 0; i < a.count * elem; i++) sink ^= ((const uint8_t *)a.data)[i];
        (void)sink;
        tq_npy_free(&a);
    }
    return 0;
}
