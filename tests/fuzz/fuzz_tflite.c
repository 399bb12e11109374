/* The .tflite importer (pipeline/tflite_import.c) on arbitrary bytes, then the integer runtime
 * on what it made of them. */
#include "tests/fuzz/fuzz_common.h"

#include "pipeline/tflite_import.h"
#include "src/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tq_qmodel q;
    if (tq_import_tflite_bytes(&q, data, size, "fuzz.tflite", NULL) == TQ_OK) {
        size_t sb = tq_int8_net_scratch_bytes(&q.net), in = (size_t)q.layer[0].in, out = (size_t)q.layer[q.n_layers - 1].out;
        if (sb <= ((size_t)1 << 24) && in <= ((size_t)1 << 20)) {
            void *scratch = tq_malloc(sb ? sb : 1);
            int8_t *x = tq_calloc(in, 1), *y = tq_malloc(out ? out : 1);
            if (scratch && x && y) (void)tq_int8_net_run(&q.net, x, y, scratch, sb);
            tq_free(scratch), tq_free(x), tq_free(y);
        }
        tq_qmodel_free(&q);
    }
    return 0;
}
