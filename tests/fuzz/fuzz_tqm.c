/* The integer model loader, then the reference kernels on what loaded. */
#include "tests/fuzz/fuzz_common.h"

#include "src/alloc.h"
#include "src/qmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".tqm");
    tq_qmodel q;
    if (tq_qmodel_load(&q, p) != TQ_OK) return 0;
    /* a valid file can describe billions of multiply-adds: such a model is loaded, not run */
    if (tq_qmodel_macs(&q) <= ((uint64_t)1 << 24)) {
        size_t sb = tq_int8_net_predict_scratch_bytes(&q.net) + 1;
        uint8_t *px = tq_calloc((size_t)q.layer[0].in, 1);
        int8_t *scratch = tq_malloc(sb), *logits = tq_malloc((size_t)q.layer[q.n_layers - 1].out);
        if (px && scratch && logits) (void)tq_int8_net_predict_u8(&q.net, px, logits, scratch, sb);
        tq_free(px);
        tq_free(scratch);
        tq_free(logits);
    }
    tq_qmodel_free(&q);
    return 0;
}
