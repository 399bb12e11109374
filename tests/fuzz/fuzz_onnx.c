/* The ONNX importers (pipeline/onnx_import.c) on arbitrary bytes: the float one, then a forward
 * pass on what it made of them; the QDQ one, then the integer runtime on its model. */
#include <math.h>

#include "layers/model.h"
#include "pipeline/onnx_import.h"
#include "tests/fuzz/fuzz_common.h" /* after src/qmodel.h: fuzz_run_int8 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tq_model m;
    if (tq_import_onnx_bytes(&m, data, size, "fuzz.onnx", NAN, NAN, NULL) == TQ_OK) {
        if (TQ_DENSE(&m, 0).conv.C <= 4096 && m.n_params <= ((size_t)1 << 22)) {
            tq_net net;
            if (tq_net_init(&net, &m, 1) == TQ_OK) {
                static uint8_t px[4096];
                if (tq_net_set_batch(&net, &m, px, NULL, 1) == TQ_OK) (void)tq_graph_forward(net.g, 0);
                tq_net_free(&net);
            }
        }
        tq_model_free(&m);
    }
    tq_qmodel q;
    if (tq_import_onnx_int8_bytes(&q, data, size, "fuzz.onnx", NULL) == TQ_OK) {
        fuzz_run_int8(&q);
        tq_qmodel_free(&q);
    }
    return 0;
}
