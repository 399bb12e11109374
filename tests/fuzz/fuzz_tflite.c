/* The .tflite importer (pipeline/tflite_import.c) on arbitrary bytes, then the integer runtime
 * on what it made of them. */
#include "pipeline/tflite_import.h"
#include "tests/fuzz/fuzz_common.h" /* after src/qmodel.h: fuzz_run_int8 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tq_qmodel q;
    if (tq_import_tflite_bytes(&q, data, size, "fuzz.tflite", NULL) == TQ_OK) {
        fuzz_run_int8(&q);
        tq_qmodel_free(&q);
    }
    return 0;
}
