/* tinyqat experiment --plots: seed 0's figures (figures.h draws each), written as .png, .svg or both. */
#include <stdio.h>
#include <string.h>

#include "experiment.h"
#include "plot/plot.h"
#include "src/alloc.h"

/* Seed 0's figures (--plots), written as .png, .svg or both. */
static int write_plots(const char *dir, const char *formats, const char *const *names, const int *which, int n,
                       tq_status (*draw)(const char *path, int which, void *ctx), void *ctx) {
    char path[1024];
    for (int f = 0; f < n; f++)
        for (int e = 0; e < 2; e++) {
            const char *ext = e ? "svg" : "png";
            if (strcmp(formats, "both") && strcmp(formats, ext)) continue;
            snprintf(path, sizeof path, "%s/%s.%s", dir, names[f], ext);
            if (draw(path, which[f], ctx) != TQ_OK) return cli_fail("experiment --plots");
        }
    return 0;
}

typedef struct {
    const char *title;
    double fp_mean, fp_std;
    fig_series series[5];
    int n_series;
    const fig_rounding_data *rounding;
    int n_rounding;
    const tq_train_result *fp_res, *qat_res;
    const char *qat_label;
    const int64_t *conf[3];
    const char *conf_titles[3];
    int classes;
    const tq_dataset *te;
    const uint32_t *idx[3];
    int cnt[3];
    const uint8_t *pred[3];
    const char *mis_titles[3];
    const int *bits;
    int nb, n_layers;
    const char *const *layer_names;
    const double *sqnr; /* [nb][n_series][n_layers] */
    const fig_bytes_series *bytes_series;
    int n_bytes_series, n_budgets;
    const double *budgets;
    const char *bytes_title;
    int act_bits;
} plot_material;

static tq_status draw_plot(const char *path, int which, void *ctx) {
    const plot_material *m = ctx;
    switch (which) {
    case 0: return fig_bits(path, m->title, m->fp_mean, m->fp_std, m->series, m->n_series, m->act_bits);
    case 1: return fig_staircase(path);
    case 2: return fig_rounding(path, m->rounding, m->n_rounding);
    case 3: return fig_curves(path, m->fp_res, m->qat_res, m->qat_label);
    case 4: return fig_confusion(path, m->conf, m->conf_titles, 3, m->classes);
    case 5: return fig_digits(path, m->te, m->idx, m->cnt, m->pred, m->mis_titles, 3);
    case 6: return fig_sqnr(path, m->bits, m->nb, m->layer_names, m->n_layers, m->series, m->n_series, m->sqnr);
    default: return fig_bytes(path, m->bytes_title, m->fp_mean, m->fp_std, m->bytes_series, m->n_bytes_series, m->budgets, m->n_budgets);
    }
}

int experiment_plots(const experiment *x) {
    static const uint32_t ptq_colors[3] = {TQ_ORANGE, TQ_RED, 0x8C564Bu}, qat_colors[2] = {TQ_BLUE, TQ_GREEN};
    static const char *ptq_labels[3] = {"PTQ, min-max ranges", "PTQ, MSE ranges", "PTQ, GPTQ"};
    static const char *qat_labels[2] = {"QAT, STE", "QAT, LSQ (learned scales)"};
    plot_material pm_ = {0};
    static double means[5][MAX_BITS], stds[5][MAX_BITS];
    char title[TQ_SPEC_MAX + 1024], lab[32], tbuf[3][48];
    experiment_mean_std(x->rows[0].acc, x->seeds, &pm_.fp_mean, &pm_.fp_std);
    for (int k = 0; k < x->per_b; k++) {
        for (int b = 0; b < x->nb; b++) experiment_mean_std(x->rows[1 + x->per_b * b + k].acc, x->seeds, &means[k][b], &stds[k][b]);
        pm_.series[k] = (fig_series){k < x->nm ? ptq_labels[x->pm[k]] : qat_labels[x->use_lsq[k - x->nm]],
                                     k < x->nm ? ptq_colors[x->pm[k]] : qat_colors[x->use_lsq[k - x->nm]], x->nb, x->bits, means[k], stds[k]};
    }
    pm_.n_series = x->per_b;
    /* the data by name: the preset's, or the folder's */
    const char *dname = x->dataset ? (!strcmp(x->dataset, "fashion-mnist") ? "Fashion-MNIST" : "MNIST") : "MNIST";
    if (x->data) dname = strrchr(x->data, '/') && strrchr(x->data, '/')[1] ? strrchr(x->data, '/') + 1 : x->data;
    snprintf(title, sizeof title, "%s on %s: test accuracy against weight bits (%d seed%s)", x->resolved, dname, x->seeds,
             x->seeds > 1 ? "s" : "");
    pm_.title = title;
    pm_.rounding = x->rounding, pm_.n_rounding = x->n_rounding;
    snprintf(lab, sizeof lab, "QAT int%d", x->bits[0]);
    pm_.fp_res = &x->fp_res0, pm_.qat_res = &x->qat_res0, pm_.qat_label = lab;
    pm_.classes = (int)x->te.classes, pm_.te = &x->te;
    uint32_t *idx[3];
    static const char *who[3] = {"FP32", "PTQ", "QAT"};
    for (int k = 0; k < 3; k++) {
        idx[k] = tq_malloc(24 * sizeof(uint32_t));
        for (uint32_t i = 0; idx[k] && x->pred0[k] && i < x->te.n && pm_.cnt[k] < 24; i++)
            if (x->pred0[k][i] != x->te.labels[i]) idx[k][pm_.cnt[k]++] = i;
        snprintf(tbuf[k], sizeof tbuf[k], k ? "%s int%d" : "%s", who[k], x->bits[0]);
        pm_.idx[k] = idx[k], pm_.pred[k] = x->pred0[k], pm_.conf[k] = x->conf0[k], pm_.conf_titles[k] = tbuf[k];
    }
    char mt[3][160]; /* room for any title tbuf holds, and ": mistakes" */
    for (int k = 0; k < 3; k++) snprintf(mt[k], sizeof mt[k], "%s: mistakes", tbuf[k]), pm_.mis_titles[k] = mt[k];
    /* the SQNR figure's values in its order, and the layers' names */
    static double sqnr_flat[MAX_BITS * 5 * TQ_MAX_UNITS];
    static char lnames[TQ_MAX_UNITS][24];
    const char *lname_p[TQ_MAX_UNITS];
    for (int l = 0; l < x->n_sqnr_layers; l++)
        for (int k = 0; k < x->per_b; k++)
            for (int b = 0; b < x->nb; b++) sqnr_flat[((size_t)b * x->per_b + k) * x->n_sqnr_layers + l] = x->sqnr0[b][k][l];
    for (int l = 0; l < x->n_sqnr_layers; l++) {
        if (l < x->n_stages0) snprintf(lnames[l], sizeof lnames[l], "conv %d", l + 1);
        else snprintf(lnames[l], sizeof lnames[l], "dense %d", l - x->n_stages0 + 1);
        lname_p[l] = lnames[l];
    }
    pm_.bits = x->bits, pm_.nb = x->nb, pm_.n_layers = x->n_sqnr_layers, pm_.layer_names = lname_p, pm_.sqnr = sqnr_flat;
    /* accuracy against bytes: QAT at each uniform width (the first QAT method), and each budget's widths */
    static double ub[MAX_BITS], um[MAX_BITS], us[MAX_BITS], bb[MAX_BUDGETS], bm[MAX_BUDGETS], bs[MAX_BUDGETS], bud[MAX_BUDGETS];
    static char unote[MAX_BITS][16], bnote[MAX_BUDGETS][64];
    const char *unotes[MAX_BITS], *bnotes[MAX_BUDGETS];
    fig_bytes_series bser[2];
    for (int b = 0; b < x->nb; b++) {
        const row *rq = &x->rows[1 + x->per_b * b + x->nm];
        ub[b] = (double)rq->bytes, um[b] = means[x->nm][b], us[b] = stds[x->nm][b];
        snprintf(unote[b], sizeof unote[b], "%d bits", x->bits[b]);
        unotes[b] = unote[b];
    }
    for (int k = 0; k < x->nbud; k++) {
        const row *rb = &x->rows[x->first_budget + k];
        experiment_mean_std(rb->acc, x->seeds, &bm[k], &bs[k]);
        bb[k] = (double)rb->bytes, bud[k] = (double)x->budgets[k], bnotes[k] = rb->layer_bits;
        if (!strcmp(rb->layer_bits, "varies")) /* seed 0's, marked: the others chose differently */
            snprintf(bnote[k], sizeof bnote[k], "%s (seed 0)", rb->bits0), bnotes[k] = bnote[k];
    }
    bser[0] = (fig_bytes_series){x->nq && x->use_lsq[0] ? "QAT (LSQ), one width for all layers" : "QAT, one width for all layers", TQ_BLUE, x->nb,
                                 ub, um, us, unotes};
    bser[1] = (fig_bytes_series){x->nq && x->use_lsq[0] ? "QAT (LSQ), widths per layer chosen for the budget" : "QAT, widths per layer chosen for the budget",
                                 TQ_ORANGE, x->nbud, bb, bm, bs, bnotes};
    static char btitle[TQ_SPEC_MAX + 1024];
    snprintf(btitle, sizeof btitle, "%s on %s: test accuracy against model bytes (%d seed%s)", x->resolved, dname, x->seeds,
             x->seeds > 1 ? "s" : "");
    pm_.act_bits = x->act_bits;
    pm_.bytes_series = bser, pm_.n_bytes_series = x->nbud ? 2 : 1, pm_.budgets = bud, pm_.n_budgets = x->nbud, pm_.bytes_title = btitle;
    /* figures that need a sweep or seed 0's runs only when they exist */
    const char *names[8] = {"bits", "staircase", "rounding", "curves", "confusion", "misclassified", "sqnr", "bytes"};
    int which[8], n = 0;
    for (int f = 0; f < 8; f++)
        if ((f != 2 || x->n_rounding) && (f != 4 || x->te.classes <= 100) && (f != 7 || x->nbud || x->nb > 1)) which[n] = f, n++;
    const char *nm_[8];
    for (int i = 0; i < n; i++) nm_[i] = names[which[i]];
    int rc = write_plots(x->plots, x->plot_format, nm_, which, n, draw_plot, &pm_);
    if (rc == 0) {
        printf("wrote into %s/ (%s):", x->plots, x->plot_format);
        for (int i = 0; i < n; i++) printf(" %s", nm_[i]);
        printf("\n");
    }
    for (int k = 0; k < 3; k++) tq_free(idx[k]);
    return rc;
}
