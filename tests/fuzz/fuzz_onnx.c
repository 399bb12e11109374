/* The ONNX importer (pipeline/onnx_import.c) on arbitrary bytes, then a forward pass on what it
 * made of them. */
#include "tests/fuzz/fuzz_common.h"

#include <math.h>

#include "layers/model.h"
#include "pipeline/onnx_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tq_model m;
    if (tq_import_onnx_bytes(&m, data, size, "fuzz.onnx", NAN, NAN, NULL) == TQ_OK) {
        if (m.dims[0] <= 4096 && m.n_params <= ((size_t)1 << 22)) {
            tq_net net;
            if (tq_net_init(&net, &m, 1) == TQ_OK) {
                static uint8_t px[4096];
                if (tq_net_set_batch(&net, &m, px, NULL, 1) == TQ_OK) (void)tq_graph_forward(net.g, 0);
                tq_net_free(&net);
            }
        }
        tq_model_free(&m);
    }
    return 0;
}
