/* An integer model as a self-contained C module for microcontrollers (docs/QUANTIZATION.md §8).
 *
 *   DIR/int8_infer.{h,c}   the runtime: runtime/int8_infer.h, and its three parts (reference and
 *                          DSP kernels, runner) joined into one file, byte for byte the host's but
 *                          for the include lines and the lines naming the model's layer kinds,
 *                          packed widths and export
 *   DIR/tq_model.{h,c}     the model as const arrays (they stay in flash), the input's and output's
 *                          scale and zero point as macros, and the calls:
 *                          int tq_model_run(const int8_t *input, int8_t *output)   any model
 *                          int tq_model_classify(const uint8_t *pixels, int8_t *logits)
 *                          (the second for a model that takes pixels, q = p - 128 at 1/255, as
 *                          every model tinyqat trains does; an imported one may take other inputs)
 *   DIR/tq_test_data.h     with test images (a model that takes pixels): their pixels, labels and
 *                          the host's int8 logits
 * Freestanding: nothing beyond <stdint.h> and <stddef.h>, no malloc, no float. Each file is
 * written atomically, and all of them carry the export's id (a CRC of its content): tq_model.c
 * and int8_infer.c do not compile beside a file of another export, so an export interrupted
 * half way is caught at the firmware's build, never run mixed. Everything that can be refused
 * (the model, the test images' shape) is refused before the first file is written. */
#ifndef TQ_EXPORT_H
#define TQ_EXPORT_H

#include "../data/dataset.h"
#include "../src/qmodel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write the module into dir (created, with the folders above it). `source` names the model file in the
 * provenance line. test: the first n_test images of it go into tq_test_data.h (NULL or 0: none). */
tq_status tq_export_c(const tq_qmodel *q, const char *dir, const char *source, const tq_dataset *test, int n_test);

/* The same with every name of the module (functions, types, macros, the test data's arrays)
 * starting with prefix instead of tq_ (and its upper case instead of TQ_): with "kws_", the call
 * is kws_model_classify and the runtime's kws_int8_net_run, so two models' modules, each in its
 * folder, build into one firmware. The build switches keep their names (TQ_PORTABLE,
 * TQ_TEST_DATA_ATTR). prefix: lower-case letters, digits and _; NULL is tq_export_c. */
tq_status tq_export_c_prefixed(const tq_qmodel *q, const char *dir, const char *source, const tq_dataset *test, int n_test,
                               const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
