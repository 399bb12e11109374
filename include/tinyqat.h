/* tinyqat: quantization-aware training in C. The one header a program includes.
 *
 * What it gives, in the order a run uses it:
 *
 *   datasets      tq_dataset_load (IDX files: any N x H x W [x C] uint8 images, labels 0..K-1),
 *                 tq_dataset_dir ("mnist", "fashion-mnist" or a folder)        data/dataset.h
 *   models        tq_model_for_data (a spec such as "in-100r-100r-out", or a preset name),
 *                 tq_model_save / tq_model_load (.tqf)                         layers/model.h
 *   training      tq_train (options struct, progress callback, checkpoints and resume),
 *                 tq_evaluate, tq_predict_logits                               pipeline/train.h
 *   quantization  tq_ptq (calibrate on training data; then tq_gptq for GPTQ's rounding),
 *                 tq_model_quantize + tq_train (QAT, fine-tuned or from scratch; LSQ with
 *                 tq_qat_cfg.ste = TQ_STE_LSQ), tq_qat_cfg                       pipeline/train.h
 *                 a width per layer (tq_qat_cfg.unit_bits), chosen for a flash budget by
 *                 tq_budget_choose                                              pipeline/budget.h
 *                 16-bit activations (tq_qat_cfg.act_bits, unit_act_bits: TFLite's 16x8)
 *   integers      tq_model_to_int8 -> tq_qmodel (.tqm), tq_int8_evaluate, tq_int8_agreement
 *                                                                               pipeline/int8.h
 *                 tq_npy_read / tq_npy_write: NumPy arrays (tinyqat run's inputs) data/npy.h
 *   export        tq_export_c: the model as a freestanding C module for a microcontroller
 *                                                                               pipeline/export.h
 *                 tq_export_tflite: the model as a TensorFlow Lite flatbuffer   pipeline/tflite.h
 *                 tq_export_onnx (QDQ), tq_export_onnx_float: the model as ONNX pipeline/onnx.h
 *   import        tq_import_onnx: a float ONNX model (PyTorch's) as a float model
 *                                                                               pipeline/onnx_import.h
 *                 tq_import_tflite: an int8 .tflite as an integer model         pipeline/tflite_import.h
 *
 * Conventions (every header follows them): functions that can fail return a tq_status (TQ_OK is
 * 0, errors negative) and leave a one-line message naming the file and the problem in
 * tq_last_error(); the library never prints and never exits. Objects come as init/free pairs on
 * caller storage (tq_model, tq_dataset, tq_qmodel); free functions accept NULL and zeroed
 * objects. A call that makes an object (the _init, _load, _clone and _for_data calls, tq_ptq's
 * q, tq_model_to_int8's q, tq_qmodel_convert) initializes its output: pass storage that holds
 * none (an object already there is not freed, it leaks). On failure such an output holds nothing
 * (freeing it is safe), and every other argument is as it was: tq_model_quantize, for one,
 * leaves the float model, its normalization and parameters, untouched. The same seed and thread count give the same bytes. The numbers are specified in
 * docs/QUANTIZATION.md.
 *
 * Threads: every call is safe to make from several threads at once on different objects (each
 * model, dataset, integer model and graph used by one thread at a time; a dataset only read may
 * be shared). tq_last_error() is per thread. Process-wide, and safe to change from any thread:
 * the thread counts (tq_set_threads for BLAS, tq_parallel_set_threads for tinyqat's pool; tq_train
 * sets both unless cfg.threads is 0) and the allocation counters (src/alloc.h). A pool job meets
 * another thread's running job and runs inline: results never depend on the thread count or on
 * other threads, only a dense model's BLAS products do on the BLAS count. The integer runtime
 * (runtime/int8_infer.h) keeps no state at all.
 *
 *     #include <tinyqat.h>
 *
 *     tq_dataset train, test;
 *     tq_model fp, q;
 *     if (tq_dataset_load(&train, dir, TQ_SPLIT_TRAIN) || tq_dataset_load(&test, dir, TQ_SPLIT_TEST) ||
 *         tq_dataset_check_pair(&train, &test) || tq_model_for_data(&fp, "digitsnet", &train, 0)) {
 *         fprintf(stderr, "%s\n", tq_last_error());
 *         return 1;
 *     }
 *     tq_train_cfg cfg;
 *     tq_train_cfg_defaults(&cfg);
 *     tq_train_result res;
 *     tq_train(&fp, &train, &test, &cfg, &res);                  // FP32
 *     tq_qat_cfg qc;
 *     tq_qat_cfg_defaults(&qc);                                   // int8, per channel
 *     tq_ptq(&q, &fp, &qc, &train, 32, 0);                        // PTQ: calibrated copy
 *
 * examples/library/main.c is a complete program (train, QAT, convert, integer inference).
 * Build against the installed library with `pkg-config --cflags --libs tinyqat` or CMake's
 * `find_package(tinyqat)` and the target `tinyqat::tinyqat`. */
#ifndef TINYQAT_H
#define TINYQAT_H

/* The version, written here and nowhere else (CMake reads it from this file). */
#define TQ_VERSION_MAJOR 0
#define TQ_VERSION_MINOR 2
#define TQ_VERSION_PATCH 0
#define TQ_VERSION_STRING "0.2.0"

/* The module headers are C; from C++ they are all seen as extern "C". */
#ifdef __cplusplus
extern "C" {
#endif
/* every public call: the pipeline, and the engine and layers it is built from */
#include "data/dataset.h"
#include "data/npy.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/model.h"
#include "layers/qat.h"
#include "layers/relu.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "pipeline/budget.h"
#include "pipeline/export.h"
#include "pipeline/int8.h"
#include "pipeline/onnx.h"
#include "pipeline/onnx_import.h"
#include "pipeline/tflite.h"
#include "pipeline/tflite_import.h"
#include "pipeline/train.h"
#include "src/alloc.h"
#include "src/autograd.h"
#include "src/checkpoint.h"
#include "src/fake_quant.h"
#include "runtime/int8_infer.h"
#include "src/observer.h"
#include "src/ops.h"
#include "src/parallel.h"
#include "src/qmodel.h"
#include "src/quant.h"
#include "src/rng.h"
#include "src/status.h"

/* "0.2.0": the version of the library the program runs with (TQ_VERSION_STRING is the one it
 * was compiled against). */
const char *tq_version(void);

#ifdef __cplusplus
}
#endif
#endif
