/* The float model loader (checkpoint format + model checks), then a forward pass on what loaded. */
#include "tests/fuzz/fuzz_common.h"

#include "layers/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write(data, size, ".tqf");
    tq_model m;
    if (tq_model_load(&m, p) == TQ_OK) {
        if (TQ_DENSE(&m, 0).conv.C <= 4096) {
            tq_net net;
            if (tq_net_init(&net, &m, 2) == TQ_OK) {
                static uint8_t px[2 * 4096];
                if (tq_net_set_batch(&net, &m, px, NULL, 2) == TQ_OK) (void)tq_graph_forward(net.g, 0);
                tq_net_free(&net);
            }
        }
        tq_model_free(&m);
    }
    return 0;
}
