/* tinyqat experiment's state, shared by its runs and table (cmd_experiment.c) and its figures
 * (experiment_plots.c): the options, one row of the table per method and width, and seed 0's
 * material for the figures. */
#ifndef TQ_CLI_EXPERIMENT_H
#define TQ_CLI_EXPERIMENT_H

#include <stdint.h>

#include "cli.h"
#include "figures.h"

#define MAX_SEEDS 16
#define MAX_BITS 8
#define MAX_BUDGETS 8

typedef struct {
    const char *method;
    int bits;
    float acc[MAX_SEEDS];
    float int_acc[MAX_SEEDS]; /* the integer-only path's accuracy (quantized rows) */
    double seconds[MAX_SEEDS];
    size_t bytes;
    char layer_bits[48]; /* widths per layer ("2,4,4"; "varies" when the seeds chose differently); "" for one width */
    char bits0[48];      /* seed 0's widths per layer */
} row;

typedef struct {
    /* the options */
    int seeds, json, qat_epochs, calib, act_bits, article, obs_ptq;
    float qat_lr, lsq_lr;
    int bits[MAX_BITS], nb;
    int pm[3], nm;     /* the PTQ methods (0 minmax, 1 mse, 2 gptq), a row each per width */
    int use_lsq[2], nq; /* the QAT methods (0 ste, 1 lsq), likewise */
    uint64_t budgets[MAX_BUDGETS];
    int nbud;
    const char *spec, *recipe, *dataset, *data, *plots, *plot_format, *bits_s;
    char resolved[TQ_SPEC_MAX];
    tq_train_cfg fcfg;
    cli_train_view qview;
    tq_dataset tr, te;
    /* the table: FP32; per width the PTQ rows, then the QAT rows (per_b a width); then the budgets' */
    row rows[1 + 5 * MAX_BITS + MAX_BUDGETS];
    int nr, per_b, first_budget;
    char bmethod[MAX_BUDGETS][48];
    /* seed 0's material for --plots */
    tq_train_result fp_res0, qat_res0;
    fig_rounding_data rounding[MAX_BITS];
    int n_rounding;
    double sqnr0[MAX_BITS][5][TQ_MAX_UNITS]; /* [width][method][unit] */
    int n_sqnr_layers, n_stages0;
    fig_flip_counter flips[MAX_BITS];
    uint8_t *pred0[3];  /* FP32, PTQ and QAT's predictions on the test set */
    int64_t *conf0[3];  /* and confusion matrices */
} experiment;

/* The mean and the sample standard deviation of v[0..n). */
void experiment_mean_std(const float *v, int n, double *mean, double *sd);

/* Seed 0's figures into x->plots: 0, or the CLI's exit code when one could not be written. */
int experiment_plots(const experiment *x);

#endif
