/* The pictures tinyqat draws (PNG through plot/png_view.c): each returns TQ_E_ARG with a
 * message when the build has no libpng. */
#ifndef TQ_FIGURES_H
#define TQ_FIGURES_H

#include "data/dataset.h"
#include "pipeline/train.h"

/* The fake-quant staircase of a 3-bit quantizer (s = 0.5, z = 0) against the identity, and below it
 * the gradient each STE passes. */
tq_status fig_staircase(const char *path);

/* Histograms of one output channel's weights (row `row` of layer 0) with the quantization grid
 * drawn over them: for each bit width, the float model's weights and the QAT model's. */
tq_status fig_weights(const char *path, const float *w_fp, const float *const *w_qat, const int *bits, int n_bits, int n);

/* Training loss and test accuracy per epoch: the float run, then the QAT fine-tuning after it. */
tq_status fig_curves(const char *path, const tq_train_result *fp, const tq_train_result *qat, const char *qat_label);

/* A grid of digits (n indices into ds) labelled with the truth, or "pred/true" when pred is given;
 * several panels side by side (one per model), each with its own title. */
tq_status fig_digits(const char *path, const tq_dataset *ds, const uint32_t *const *idx, const int *n,
                     const uint8_t *const *pred, const char *const *titles, int panels);

#endif
