/* The pictures tinyqat draws, each written as PNG or SVG by the path's extension (plot/canvas.h);
 * TQ_E_ARG with a message when the build has no cairo. */
#ifndef TQ_FIGURES_H
#define TQ_FIGURES_H

#include "data/dataset.h"
#include "pipeline/train.h"

/* One method's accuracy at each weight bit width: mean and std over seeds. */
typedef struct {
    const char *label;
    uint32_t color;
    int n;
    const int *bits;
    const double *mean, *std;
} fig_series;

/* Test accuracy against weight bit width, a line per method with error bars (std over seeds),
 * FP32 as a dashed line; a point below the axis is drawn at its bottom with its value; act_bits (8
 * or 16) names the activations' width on the axis. */
tq_status fig_bits(const char *path, const char *title, double fp_mean, double fp_std, const fig_series *s, int n_series, int act_bits);

/* Points of accuracy against model bytes: mean and std over seeds, a label beside each ("4 bits",
 * "2,4,4"). */
typedef struct {
    const char *label;
    uint32_t color;
    int n;
    const double *bytes, *mean, *std;
    const char *const *notes;
} fig_bytes_series;

/* Test accuracy against the integer model's bytes: a line per series (uniform widths; widths for
 * a budget) with error bars, FP32 as a dashed line, the budgets as dotted verticals. */
tq_status fig_bytes(const char *path, const char *title, double fp_mean, double fp_std, const fig_bytes_series *s, int n_series,
                    const double *budgets, int n_budgets);

/* The fake-quant staircase of a 3-bit quantizer (s = 0.5, z = 0) against the identity, its
 * clipping range marked, then the gradients the STEs pass: d/dx (plain, clipped) and LSQ's d/ds. */
tq_status fig_staircase(const char *path);

/* Where weights sit between grid points (w/s - round(w/s), in FIG_FRAC_BINS bins over [-0.5, 0.5))
 * before and after QAT, and the weights whose integer value changed at each QAT step. */
#define FIG_FRAC_BINS 40
typedef struct {
    int bits;
    double before[FIG_FRAC_BINS], after[FIG_FRAC_BINS]; /* fractions of the weights, per bin */
    const float *flips;                                 /* [steps]: fraction of the weights changed */
    int steps;
} fig_rounding_data;
tq_status fig_rounding(const char *path, const fig_rounding_data *d, int n);

/* The histogram of w/s - round(w/s) over a model's dense-layer weights, s = max|w| / qmax per
 * output channel (the default quantizer's grid). */
void fig_frac_hist(const tq_model *m, int bits, double *hist);

/* Counting weight flips during QAT: set up on a model, call after each optimizer step. */
typedef struct {
    const tq_model *m;
    int bits;
    int8_t *codes; /* every dense weight's current integer value */
    size_t n;
    float *flips;  /* [cap] */
    int steps, cap;
} fig_flip_counter;
tq_status fig_flips_init(fig_flip_counter *f, const tq_model *m, int bits, int max_steps);
void fig_flips_step(fig_flip_counter *f);
void fig_flips_free(fig_flip_counter *f);

/* Quantization error per layer (tq_layer_sqnr against the FP32 model), a panel per weight width, a
 * bar per method (the series' labels and colors): db[(b * n_series + k) * n_layers + l]. */
tq_status fig_sqnr(const char *path, const int *bits, int nb, const char *const *layer_names, int n_layers,
                   const fig_series *s, int n_series, const double *db);

/* Training loss and test accuracy per epoch: the float run, then the QAT fine-tuning after it. */
tq_status fig_curves(const char *path, const tq_train_result *fp, const tq_train_result *qat, const char *qat_label);

/* Confusion matrices side by side (counts [true][pred], classes x classes), cells shaded by the
 * share of their row (the diagonal blue, mistakes red), the mistakes' counts written. */
tq_status fig_confusion(const char *path, const int64_t *const *conf, const char *const *titles, int panels, int classes);

/* A grid of digits (n indices into ds) labelled with the truth, or "pred/true" when pred is given;
 * several panels side by side (one per model), each with its own title. */
tq_status fig_digits(const char *path, const tq_dataset *ds, const uint32_t *const *idx, const int *n,
                     const uint8_t *const *pred, const char *const *titles, int panels);

#endif
