/* tinyqat experiment: FP32 vs PTQ vs QAT over seeds, weight widths and methods, in one table
 * (and its figure), each row's model also run integer-only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "pipeline/budget.h"
#include "pipeline/int8.h"
#include "plot/plot.h"
#include "src/alloc.h"
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

static void mean_std(const float *v, int n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0.0;
}

/* Accuracy of the integer-only path: convert, then run the test set through the int8 kernels. */
static tq_status int_path_accuracy(tq_model *m, const tq_dataset *te, float *acc) {
    tq_qmodel q;
    TQ_TRY(tq_model_to_int8(m, &q));
    tq_status st = tq_int8_evaluate(&q, te, TQ_KERNEL_AUTO, acc, NULL, NULL);
    tq_qmodel_free(&q);
    return st;
}

static int parse_bits(const char *s, int *bits, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < 2 || b > 8 || *n == MAX_BITS) return 0;
        bits[(*n)++] = (int)b;
        p = end;
        if (*p == ',') p++;
        else if (*p) return 0;
    }
    return *n > 0;
}

/* A comma-separated list of names[0..n) into their indices, each at most once: how many, or -1. */
static int parse_methods(const char *s, const char *const *names, int n, int *out) {
    int count = 0, named = 0;
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        int k = 0;
        while (k < n && (strlen(names[k]) != len || strncmp(p, names[k], len))) k++;
        if (k == n || (named >> k & 1)) return -1;
        out[count++] = k, named |= 1 << k;
        p += len + (p[len] == ',');
    }
    return count;
}

/* QAT's progress bar, and with --plots the weight flips of each step. */
typedef struct {
    cli_train_view *view;
    fig_flip_counter *flips;
} qat_watch;

static int qat_watch_callback(const tq_train_event *ev, void *user) {
    qat_watch *w = user;
    if (ev->kind == TQ_EVENT_STEP && w->flips) fig_flips_step(w->flips);
    return cli_train_callback(ev, w->view);
}

/* The rounding figure's widths: 4 and 2 bits when swept, else the lowest width swept. */
static int rounding_width(int b, const int *bits, int nb) {
    int has42 = 0, lowest = 8;
    for (int i = 0; i < nb; i++) has42 |= bits[i] == 4 || bits[i] == 2, lowest = bits[i] < lowest ? bits[i] : lowest;
    return has42 ? bits[b] == 4 || bits[b] == 2 : bits[b] == lowest;
}

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
    fig_rounding_data *rounding;
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

int cmd_experiment(int argc, char **argv) {
    int seeds = 3, json = 0, qat_epochs = 3, calib = 32, act_bits = 8;
    const char *budget_s = NULL;
    uint64_t budgets[MAX_BUDGETS];
    int nbud = 0;
    float qat_lr = 1e-3f, lsq_lr = 3e-3f;
    const char *bits_s = "8", *methods_s = "minmax", *qmethods_s = "ste", *recipe = "digitsnet", *dataset = NULL, *data = NULL, *observer = NULL, *plots = NULL, *model = NULL, *plot_format = "both";
    tq_train_cfg fcfg;
    tq_train_cfg_defaults(&fcfg);
    /* The recipe sets the defaults the other options then override (and --help shows): found
     * before parsing, in either spelling. */
    for (int i = 1; i < argc; i++) {
        const char *v = !strcmp(argv[i], "--recipe") && i + 1 < argc ? argv[i + 1] : !strncmp(argv[i], "--recipe=", 9) ? argv[i] + 9 : NULL;
        if (v && !strcmp(v, "digitscnn")) {
            /* DigitsCNN: 30 epochs of SGD (momentum 0.9) at 0.05, cosine to 0, weight decay 2e-3 on the
             * weights only: README, DigitsCNN, has the figures and the recipes it beat; two threads */
            fcfg.epochs = 30;
            fcfg.optim = "sgd";
            fcfg.lr = 0.05f;
            fcfg.weight_decay = 2e-3f;
            fcfg.threads = 2;
            /* QAT: a gentler fine-tune than the dense recipe's 3 epochs at 1e-3; 5 epochs at 1e-4 (MNIST
             * 99.34%, Fashion 90.61%, seeds 0-2) over 3 (99.33%, 90.59%) or 3 at 2e-4 or 3e-4 */
            qat_epochs = 5;
            qat_lr = 1e-4f;
        }
    }
    cli_opt opts[] = {
        {"--seeds", CLI_INT, &seeds, "seeds 0..N-1; the table shows mean and std", 1, MAX_SEEDS},
        {"--bits", CLI_STR, &bits_s, "weight bit widths, e.g. 8,4,2: a PTQ and a QAT row each", 0, 0},
        {"--ptq-methods", CLI_STR, &methods_s, "PTQ methods, a row each: minmax, mse, gptq (e.g. minmax,mse,gptq)", 0, 0},
        {"--qat-methods", CLI_STR, &qmethods_s, "QAT weight scales, a row each: ste (from max|w|), lsq (learned) or both (ste,lsq)", 0, 0},
        {"--recipe", CLI_STR, &recipe, "digitsnet (in-100r-100r-out), digitscnn (in-c8k5br-m2-c16k5br-m2-out, its own recipe) or article", 0,
         0, "digitsnet,digitscnn,article"},
        {"--model", CLI_STR, &model, "another model for the digitsnet recipe: a preset (digitscnn) or a spec", 0, 0},
        {"--epochs", CLI_INT, &fcfg.epochs, "FP32 training epochs (digitsnet recipe)", 1, TQ_MAX_EPOCHS},
        {"--qat-epochs", CLI_INT, &qat_epochs, "QAT fine-tuning epochs (digitsnet recipe)", 1, TQ_MAX_EPOCHS},
        {"--qat-lr", CLI_FLOAT, &qat_lr, "QAT fine-tuning learning rate (cosine to 0)", 1e-7, 10},
        {"--lsq-lr", CLI_FLOAT, &lsq_lr, "the same for the LSQ rows (--qat-methods)", 1e-7, 10},
        {"--act-bits", CLI_INT, &act_bits, "activation bits of the PTQ and QAT rows: 8, or 16 (every output but the logits, int16 as "
         "TFLite's 16x8 mode)", 8, 16},
        {"--calib-batches", CLI_INT, &calib, "PTQ calibration batches of 64 training images", 1, 10000},
        {"--flash-budget", CLI_STR, &budget_s, "add a row per budget (comma-separated, bytes): QAT (the first --qat-methods) with "
         "each layer's width chosen to fit it (as qat --flash-budget), beside the uniform widths of --bits", 0, 0},
        {"--observer", CLI_STR, &observer, "PTQ activation observer (QAT uses ema)", 0, 0, NULL, "minmax"},
        {"--threads", CLI_INT, &fcfg.threads, "threads (the same results for any count with convolutions)", 1, 256},
        CLI_DATA_OPTIONS(dataset, data),
        {"--plots", CLI_STR, &plots, "write the figures into this folder: accuracy against bits; of seed 0 the STE, rounding, curves, confusion, mistakes", 0, 0},
        {"--plot-format", CLI_STR, &plot_format, "the figures as png, svg or both", 0, 0, "png,svg,both"},
        {"--json", CLI_FLAG, &json, "end with one JSON line: {\"seeds\", \"rows\": [...]}", 0, 0},
    };
    static const cli_cmd cmd = {"experiment", "[options]",
                                "Train FP32, then PTQ and QAT per bit width, over several seeds; print one table.", 0, 0};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    if (act_bits != 8 && act_bits != 16) {
        fprintf(stderr, "tinyqat experiment: --act-bits %d: 8 or 16\n", act_bits);
        return 2;
    }
    for (const char *p = budget_s; p && *p;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v < 1 || v > 1000000000000ull || (*end && *end != ',') || nbud == MAX_BUDGETS || *p == '-') {
            fprintf(stderr, "tinyqat experiment: --flash-budget '%s': want up to %d byte counts, comma-separated (30000 or 20000,30000)\n",
                    budget_s, MAX_BUDGETS);
            return 2;
        }
        budgets[nbud++] = v;
        p = *end ? end + 1 : end;
    }
    int bits[MAX_BITS], nb;
    if (!parse_bits(bits_s, bits, &nb)) {
        fprintf(stderr, "tinyqat experiment: --bits '%s': want a comma-separated list of 2..8\n", bits_s);
        return 2;
    }
    /* the methods, a row each per bit width: PTQ 0 minmax, 1 mse, 2 gptq; QAT 0 ste, 1 lsq */
    static const char *ptq_names[3] = {"minmax", "mse", "gptq"}, *ptq_rows[3] = {"ptq", "ptq mse", "ptq gptq"};
    static const char *qat_names[2] = {"ste", "lsq"};
    int pm[3], use_lsq[2], nm = parse_methods(methods_s, ptq_names, 3, pm), nq = parse_methods(qmethods_s, qat_names, 2, use_lsq);
    if (nm <= 0) {
        fprintf(stderr, "tinyqat experiment: --ptq-methods '%s': want a list of minmax, mse and gptq, each once\n", methods_s);
        return 2;
    }
    if (nq <= 0) {
        fprintf(stderr, "tinyqat experiment: --qat-methods '%s': want ste, lsq or ste,lsq\n", qmethods_s);
        return 2;
    }
    int article = !strcmp(recipe, "article"), cnn = !strcmp(recipe, "digitscnn");
    int obs_ptq = tq_obs_kind_parse(observer ? observer : "minmax");
    if (obs_ptq < 0) {
        fprintf(stderr, "tinyqat experiment: --observer must be minmax, ema or percentile, not '%s'\n", observer);
        return 2;
    }
    if (model && article) {
        fprintf(stderr, "tinyqat experiment: --model goes with the digitsnet recipe, not the article's\n");
        return 2;
    }
    if (model && tq_model_spec_check(model) != TQ_OK) {
        fprintf(stderr, "tinyqat experiment: %s\n", tq_last_error());
        return 2;
    }
    const char *spec = article ? "article" : model ? model : cnn ? "digitscnn" : "digitsnet";
    if (article) { /* the article: ReLU only after the last layer, batch 10, 1 epoch, Adam 1e-3, min-max, per tensor */
        fcfg.epochs = 1;
        fcfg.batch = 10;
        fcfg.schedule = "const";
    }
    struct stat pst;
    if (plots && (stat(plots, &pst) != 0 || !S_ISDIR(pst.st_mode))) { /* before the training, not after it */
        fprintf(stderr, "tinyqat experiment: --plots %s: not a folder (create it first)\n", plots);
        return 1;
    }
    tq_dataset tr, te;
    if ((rc = cli_load_data(dataset, data, &tr, &te))) return rc;
    row rows[1 + 5 * MAX_BITS + MAX_BUDGETS]; /* FP32, the methods at each width, the budgets' */
    char bmethod[MAX_BUDGETS][48];
    memset(rows, 0, sizeof rows);
    /* seed 0's material for --plots */
    static tq_train_result fp_res0, qat_res0;
    static fig_rounding_data rounding[MAX_BITS];
    int plot_rc = 0;
    static double sqnr0[MAX_BITS][5][TQ_MAX_UNITS]; /* [width][method][layer], seed 0 */
    int n_sqnr_layers = 0, n_stages0 = 0;
    fig_flip_counter flips[MAX_BITS];
    memset(flips, 0, sizeof flips);
    int n_rounding = 0;
    uint8_t *pred0[3] = {NULL, NULL, NULL};
    int64_t *conf0[3] = {NULL, NULL, NULL};
    if (plots) {
        if (!tq_canvas_supported()) {
            fprintf(stderr, "tinyqat experiment: --plots: this tinyqat was built without cairo and cannot draw: install "
                            "libcairo2-dev and rebuild\n");
            tq_dataset_free(&tr);
            tq_dataset_free(&te);
            return 1;
        }
        for (int k = 0; k < 3; k++) {
            pred0[k] = tq_malloc(te.n);
            conf0[k] = tq_calloc((size_t)te.classes * te.classes, sizeof(int64_t));
        }
    }
    int per_b = nm + nq, nr = 1 + per_b * nb; /* per bit width: the PTQ rows, then the QAT rows; then the budget's */
    if (nbud && article) {
        fprintf(stderr, "tinyqat experiment: --flash-budget goes with the digitsnet and digitscnn recipes (QAT fine-tuned)\n");
        tq_dataset_free(&tr);
        tq_dataset_free(&te);
        return 2;
    }
    const int first_budget = nr;
    for (int k = 0; k < nbud; k++) {
        snprintf(bmethod[k], sizeof bmethod[k], "qat%s, widths for %llu bytes", use_lsq[0] ? " lsq" : "", (unsigned long long)budgets[k]);
        rows[nr++] = (row){.method = bmethod[k], .bits = 0};
    }
    rows[0].method = "fp32";
    rows[0].bits = 32;
    for (int b = 0; b < nb; b++) {
        for (int k = 0; k < nm; k++) rows[1 + per_b * b + k] = (row){.method = ptq_rows[pm[k]], .bits = bits[b]};
        for (int k = 0; k < nq; k++) rows[1 + per_b * b + nm + k] = (row){.method = use_lsq[k] ? "qat lsq" : "qat", .bits = bits[b]};
    }
    char resolved[TQ_SPEC_MAX];
    const int shape[3] = {(int)tr.h, (int)tr.w, (int)tr.c};
    if (tq_model_spec_resolve(spec, shape, (int)tr.classes, resolved, sizeof resolved) != TQ_OK) {
        tq_dataset_free(&tr);
        tq_dataset_free(&te);
        return cli_fail("experiment");
    }
    printf("experiment: %s recipe, model %s on %s, seeds 0..%d, weight bits %s\n", recipe, resolved, tr.source, seeds - 1, bits_s);
    cli_train_view fview = {.label = "fp32", .quiet = 1}, qview = {.label = "qat", .quiet = 1};
    fcfg.callback = cli_train_callback;
    fcfg.user = &fview;
    double t_start = cli_now();
    rc = 0;
    for (int s = 0; s < seeds && rc == 0; s++) {
        tq_model fp;
        tq_train_result res;
        if (tq_model_for_data(&fp, spec, &tr, (uint64_t)s) != TQ_OK) {
            rc = cli_fail("experiment");
            break;
        }
        fcfg.seed = (uint64_t)s;
        if (tq_train(&fp, &tr, &te, &fcfg, &res) != TQ_OK) {
            tq_model_free(&fp);
            rc = cli_fail("experiment");
            break;
        }
        rows[0].acc[s] = res.final_test_acc;
        rows[0].seconds[s] = res.seconds_total;
        rows[0].bytes = tq_model_float_bytes(&fp);
        int keep = plots && s == 0;
        if (keep) {
            float a0;
            fp_res0 = res;
            n_stages0 = fp.n_stages;
            (void)tq_evaluate(&fp, &te, &a0, conf0[0], pred0[0]);
        }
        printf("seed %d: fp32 %.2f%%", s, (double)res.final_test_acc);
        for (int b = 0; b < nb && rc == 0; b++) {
            tq_qat_cfg qc;
            tq_qat_cfg_defaults(&qc);
            qc.w_bits = bits[b];
            qc.act_bits = act_bits;
            qc.obs = (tq_obs_kind)obs_ptq;
            if (article) qc.per_channel = 0;
            tq_model pq, qq;
            float acc;
            for (int k = 0; k < nm && rc == 0; k++) {
                row *rp = &rows[1 + per_b * b + k];
                double t0 = cli_now();
                qc.w_mse = pm[k] == 1;
                if (tq_ptq(&pq, &fp, &qc, &tr, calib, (uint64_t)s) != TQ_OK ||
                    (pm[k] == 2 && tq_gptq(&pq, &tr, calib, (uint64_t)s) != TQ_OK) || tq_evaluate(&pq, &te, &acc, NULL, NULL) != TQ_OK ||
                    int_path_accuracy(&pq, &te, &rp->int_acc[s]) != TQ_OK) {
                    rc = cli_fail("experiment: ptq");
                    tq_model_free(&pq); /* (safe after a failed tq_ptq: it leaves *q zeroed) */
                    break;
                }
                rp->acc[s] = acc;
                rp->seconds[s] = cli_now() - t0;
                rp->bytes = tq_model_int8_bytes(&pq);
                if (keep && b == 0 && k == 0) (void)tq_evaluate(&pq, &te, &acc, conf0[1], pred0[1]);
                if (keep && tq_layer_sqnr(&pq, &fp, &te, 2000, sqnr0[b][k]) != TQ_OK) rc = cli_fail("experiment: layer SQNR");
                tq_model_free(&pq);
                printf(", int%d %s %.2f%%", bits[b], rp->method, (double)acc);
            }
            if (rc) break;
            /* QAT: fine-tuned from the float model (digitsnet), or from scratch (the article's way); the
             * weight scales from max|w| at every step (ste), or learned from the MSE clip on (lsq) */
            for (int k = 0; k < nq && rc == 0; k++) {
                row *rq = &rows[1 + per_b * b + nm + k];
                tq_train_cfg qcfg;
                qc.obs = article ? TQ_OBS_MINMAX : TQ_OBS_EMA;
                qc.ste = use_lsq[k] ? TQ_STE_LSQ : TQ_STE_CLIPPED;
                qc.w_mse = use_lsq[k]; /* QAT with max|w|: a search at every step would cost more than training */
                if (article) {
                    qcfg = fcfg;
                    if (tq_model_for_data(&qq, spec, &tr, (uint64_t)s) != TQ_OK) {
                        rc = cli_fail("experiment: qat");
                        break;
                    }
                } else {
                    tq_train_cfg_qat(&qcfg, &qc, qat_epochs, (uint64_t)s);
                    qcfg.lr = use_lsq[k] ? lsq_lr : qat_lr;
                    qcfg.threads = fcfg.threads;
                    tq_model_clone(&qq, &fp);
                }
                /* the rounding figure: seed 0, plain STE, at the widths it shows */
                fig_flip_counter *fc = keep && !use_lsq[k] && rounding_width(b, bits, nb) ? &flips[n_rounding] : NULL;
                qat_watch watch = {&qview, NULL};
                qcfg.callback = qat_watch_callback;
                qcfg.user = &watch;
                if (tq_model_quantize(&qq, &qc) != TQ_OK ||
                    (fc && fig_flips_init(fc, &qq, bits[b], qcfg.epochs * (int)((tr.n + (size_t)qcfg.batch - 1) / (size_t)qcfg.batch)) != TQ_OK)) {
                    tq_model_free(&qq);
                    rc = cli_fail("experiment: qat");
                    break;
                }
                if (fc) { /* before: the float weights as QAT starts from them (normalization folded in) */
                    watch.flips = fc;
                    rounding[n_rounding].bits = bits[b];
                    fig_frac_hist(&qq, bits[b], rounding[n_rounding].before);
                }
                if (tq_train(&qq, &tr, &te, &qcfg, &res) != TQ_OK || int_path_accuracy(&qq, &te, &rq->int_acc[s]) != TQ_OK) {
                    tq_model_free(&qq);
                    rc = cli_fail("experiment: qat");
                    break;
                }
                if (fc) {
                    fig_frac_hist(&qq, bits[b], rounding[n_rounding].after);
                    rounding[n_rounding].flips = fc->flips;
                    rounding[n_rounding].steps = fc->steps;
                    n_rounding++;
                }
                rq->acc[s] = res.final_test_acc;
                rq->seconds[s] = res.seconds_total;
                rq->bytes = tq_model_int8_bytes(&qq);
                if (keep && tq_layer_sqnr(&qq, &fp, &te, 2000, sqnr0[b][nm + k]) != TQ_OK) rc = cli_fail("experiment: layer SQNR");
                n_sqnr_layers = qq.n_units;
                if (keep && k == 0 && b == 0) {
                    float a1;
                    qat_res0 = res;
                    (void)tq_evaluate(&qq, &te, &a1, conf0[2], pred0[2]);
                }
                tq_model_free(&qq);
                printf(", int%d %s %.2f%%", bits[b], rq->method, (double)rq->acc[s]);
            }
        }
        for (int kb = 0; kb < nbud && rc == 0; kb++) { /* the widths measured on this seed's float model, then QAT as the rows above */
            row *rb = &rows[first_budget + kb];
            const uint64_t budget = budgets[kb];
            tq_budget br;
            tq_qat_cfg qc;
            tq_qat_cfg_defaults(&qc);
            qc.obs = (tq_obs_kind)obs_ptq;
            qc.act_bits = act_bits;
            tq_model qq;
            tq_train_cfg qcfg;
            char w[48] = "";
            if (tq_budget_choose(&fp, &qc, &tr, (size_t)budget, calib, (uint64_t)s, &br) != TQ_OK) {
                rc = cli_fail("experiment: --flash-budget");
            } else {
                for (int u = 0, n = 0; u < br.units; u++) n += snprintf(w + n, sizeof w - (size_t)n, "%s%d", u ? "," : "", br.bits[u]);
                memcpy(qc.unit_bits, br.bits, sizeof br.bits);
                qc.obs = TQ_OBS_EMA;
                qc.ste = use_lsq[0] ? TQ_STE_LSQ : TQ_STE_CLIPPED; /* the first QAT method's, as the bytes figure draws it */
                qc.w_mse = use_lsq[0];
                tq_train_cfg_qat(&qcfg, &qc, qat_epochs, (uint64_t)s);
                qcfg.lr = use_lsq[0] ? lsq_lr : qat_lr;
                qcfg.threads = fcfg.threads;
                qat_watch watch = {&qview, NULL};
                qcfg.callback = qat_watch_callback;
                qcfg.user = &watch;
                if (tq_model_clone(&qq, &fp) != TQ_OK || tq_model_quantize(&qq, &qc) != TQ_OK || tq_train(&qq, &tr, &te, &qcfg, &res) != TQ_OK ||
                    int_path_accuracy(&qq, &te, &rb->int_acc[s]) != TQ_OK) {
                    rc = cli_fail("experiment: qat with the budget's widths");
                } else {
                    rb->acc[s] = res.final_test_acc;
                    rb->seconds[s] = res.seconds_total;
                    size_t by = tq_model_int8_bytes(&qq);
                    rb->bytes = by > rb->bytes ? by : rb->bytes; /* the largest the seeds chose: all fit */
                    if (s == 0) snprintf(rb->layer_bits, sizeof rb->layer_bits, "%s", w), snprintf(rb->bits0, sizeof rb->bits0, "%s", w);
                    else if (strcmp(rb->layer_bits, w)) snprintf(rb->layer_bits, sizeof rb->layer_bits, "varies");
                    printf(", int%s for %llu bytes %.2f%%", w, (unsigned long long)budget, (double)rb->acc[s]);
                }
                tq_model_free(&qq);
            }
        }
        printf("\n");
        fflush(stdout);
        tq_model_free(&fp);
    }
    if (rc == 0 && plots) {
        static const uint32_t ptq_colors[3] = {TQ_ORANGE, TQ_RED, 0x8C564Bu}, qat_colors[2] = {TQ_BLUE, TQ_GREEN};
        static const char *ptq_labels[3] = {"PTQ, min-max ranges", "PTQ, MSE ranges", "PTQ, GPTQ"};
        static const char *qat_labels[2] = {"QAT, STE", "QAT, LSQ (learned scales)"};
        plot_material pm_ = {0};
        static double means[5][MAX_BITS], stds[5][MAX_BITS];
        char title[TQ_SPEC_MAX + 1024], lab[32], tbuf[3][48];
        mean_std(rows[0].acc, seeds, &pm_.fp_mean, &pm_.fp_std);
        for (int k = 0; k < per_b; k++) {
            for (int b = 0; b < nb; b++) mean_std(rows[1 + per_b * b + k].acc, seeds, &means[k][b], &stds[k][b]);
            pm_.series[k] = (fig_series){k < nm ? ptq_labels[pm[k]] : qat_labels[use_lsq[k - nm]],
                                         k < nm ? ptq_colors[pm[k]] : qat_colors[use_lsq[k - nm]], nb, bits, means[k], stds[k]};
        }
        pm_.n_series = per_b;
        /* the data by name: the preset's, or the folder's */
        const char *dname = dataset ? (!strcmp(dataset, "fashion-mnist") ? "Fashion-MNIST" : "MNIST") : "MNIST";
        if (data) dname = strrchr(data, '/') && strrchr(data, '/')[1] ? strrchr(data, '/') + 1 : data;
        snprintf(title, sizeof title, "%s on %s: test accuracy against weight bits (%d seed%s)", resolved, dname, seeds,
                 seeds > 1 ? "s" : "");
        pm_.title = title;
        pm_.rounding = rounding, pm_.n_rounding = n_rounding;
        snprintf(lab, sizeof lab, "QAT int%d", bits[0]);
        pm_.fp_res = &fp_res0, pm_.qat_res = &qat_res0, pm_.qat_label = lab;
        pm_.classes = (int)te.classes, pm_.te = &te;
        uint32_t *idx[3];
        static const char *who[3] = {"FP32", "PTQ", "QAT"};
        for (int k = 0; k < 3; k++) {
            idx[k] = tq_malloc(24 * sizeof(uint32_t));
            for (uint32_t i = 0; idx[k] && pred0[k] && i < te.n && pm_.cnt[k] < 24; i++)
                if (pred0[k][i] != te.labels[i]) idx[k][pm_.cnt[k]++] = i;
            snprintf(tbuf[k], sizeof tbuf[k], k ? "%s int%d" : "%s", who[k], bits[0]);
            pm_.idx[k] = idx[k], pm_.pred[k] = pred0[k], pm_.conf[k] = conf0[k], pm_.conf_titles[k] = tbuf[k];
        }
        char mt[3][160]; /* room for any title tbuf holds, and ": mistakes" */
        for (int k = 0; k < 3; k++) snprintf(mt[k], sizeof mt[k], "%s: mistakes", tbuf[k]), pm_.mis_titles[k] = mt[k];
        /* the SQNR figure's values in its order, and the layers' names */
        static double sqnr_flat[MAX_BITS * 5 * TQ_MAX_UNITS];
        static char lnames[TQ_MAX_UNITS][24];
        const char *lname_p[TQ_MAX_UNITS];
        for (int l = 0; l < n_sqnr_layers; l++)
            for (int k = 0; k < per_b; k++)
                for (int b = 0; b < nb; b++) sqnr_flat[((size_t)b * per_b + k) * n_sqnr_layers + l] = sqnr0[b][k][l];
        for (int l = 0; l < n_sqnr_layers; l++) {
            if (l < n_stages0) snprintf(lnames[l], sizeof lnames[l], "conv %d", l + 1);
            else snprintf(lnames[l], sizeof lnames[l], "dense %d", l - n_stages0 + 1);
            lname_p[l] = lnames[l];
        }
        pm_.bits = bits, pm_.nb = nb, pm_.n_layers = n_sqnr_layers, pm_.layer_names = lname_p, pm_.sqnr = sqnr_flat;
        /* accuracy against bytes: QAT at each uniform width (the first QAT method), and each budget's widths */
        static double ub[MAX_BITS], um[MAX_BITS], us[MAX_BITS], bb[MAX_BUDGETS], bm[MAX_BUDGETS], bs[MAX_BUDGETS], bud[MAX_BUDGETS];
        static char unote[MAX_BITS][16], bnote[MAX_BUDGETS][64];
        const char *unotes[MAX_BITS], *bnotes[MAX_BUDGETS];
        fig_bytes_series bser[2];
        for (int b = 0; b < nb; b++) {
            const row *rq = &rows[1 + per_b * b + nm];
            ub[b] = (double)rq->bytes, um[b] = means[nm][b], us[b] = stds[nm][b];
            snprintf(unote[b], sizeof unote[b], "%d bits", bits[b]);
            unotes[b] = unote[b];
        }
        for (int k = 0; k < nbud; k++) {
            const row *rb = &rows[first_budget + k];
            mean_std(rb->acc, seeds, &bm[k], &bs[k]);
            bb[k] = (double)rb->bytes, bud[k] = (double)budgets[k], bnotes[k] = rb->layer_bits;
            if (!strcmp(rb->layer_bits, "varies")) /* seed 0's, marked: the others chose differently */
                snprintf(bnote[k], sizeof bnote[k], "%s (seed 0)", rb->bits0), bnotes[k] = bnote[k];
        }
        bser[0] = (fig_bytes_series){nq && use_lsq[0] ? "QAT (LSQ), one width for all layers" : "QAT, one width for all layers", TQ_BLUE, nb,
                                     ub, um, us, unotes};
        bser[1] = (fig_bytes_series){nq && use_lsq[0] ? "QAT (LSQ), widths per layer chosen for the budget" : "QAT, widths per layer chosen for the budget",
                                     TQ_ORANGE, nbud, bb, bm, bs, bnotes};
        static char btitle[TQ_SPEC_MAX + 1024];
        snprintf(btitle, sizeof btitle, "%s on %s: test accuracy against model bytes (%d seed%s)", resolved, dname, seeds,
                 seeds > 1 ? "s" : "");
        pm_.act_bits = act_bits;
        pm_.bytes_series = bser, pm_.n_bytes_series = nbud ? 2 : 1, pm_.budgets = bud, pm_.n_budgets = nbud, pm_.bytes_title = btitle;
        /* figures that need a sweep or seed 0's runs only when they exist */
        const char *names[8] = {"bits", "staircase", "rounding", "curves", "confusion", "misclassified", "sqnr", "bytes"};
        int which[8], n = 0;
        for (int f = 0; f < 8; f++)
            if ((f != 2 || n_rounding) && (f != 4 || te.classes <= 100) && (f != 7 || nbud || nb > 1)) which[n] = f, n++;
        const char *nm_[8];
        for (int i = 0; i < n; i++) nm_[i] = names[which[i]];
        plot_rc = write_plots(plots, plot_format, nm_, which, n, draw_plot, &pm_);
        if (plot_rc == 0) {
            printf("wrote into %s/ (%s):", plots, plot_format);
            for (int i = 0; i < n; i++) printf(" %s", nm_[i]);
            printf("\n");
        }
        for (int k = 0; k < 3; k++) tq_free(idx[k]);
    }
    for (int i = 0; i < MAX_BITS; i++) fig_flips_free(&flips[i]);
    for (int k = 0; k < 3; k++) tq_free(conf0[k]);
    for (int k = 0; k < 3; k++) tq_free(pred0[k]);
    if (rc == 0) {
        double fm, fs;
        mean_std(rows[0].acc, seeds, &fm, &fs);
        if (act_bits == 16) printf("\nPTQ and QAT with 16-bit activations (int16 outputs but the logits, int64 biases)");
        printf("\n| method | weight bits | test accuracy (mean ± std, %d seeds) | vs FP32 | integer path | model bytes | train seconds |\n",
               seeds);
        printf("|---|---:|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < nr; i++) {
            double m, sd, t = 0, im = 0, isd;
            mean_std(rows[i].acc, seeds, &m, &sd);
            if (i) mean_std(rows[i].int_acc, seeds, &im, &isd);
            for (int s = 0; s < seeds; s++) t += rows[i].seconds[s];
            char ip[32] = "-";
            if (i && !isnan(im)) snprintf(ip, sizeof ip, "%.2f%%", im);
            char wb[48];
            if (rows[i].layer_bits[0]) snprintf(wb, sizeof wb, "%s", rows[i].layer_bits);
            else snprintf(wb, sizeof wb, "%d", rows[i].bits);
            printf("| %s | %s | %.2f%% ± %.2f | %+.2f | %s | %zu | %.1f |\n", rows[i].method, wb, m, sd, m - fm, ip, rows[i].bytes,
                   t / seeds);
        }
        printf("\n(train seconds: FP32 training, PTQ calibration, QAT training; per seed. Total wall time %.1f s.)\n",
               cli_now() - t_start);
        if (json) {
            cJSON *j = cli_json_new(), *arr = cJSON_AddArrayToObject(j, "rows");
            cli_json_num(j, "seeds", seeds, 0);
            cli_json_str(j, "recipe", recipe);
            for (int i = 0; i < nr; i++) {
                double m, sd, t = 0;
                mean_std(rows[i].acc, seeds, &m, &sd);
                for (int s = 0; s < seeds; s++) t += rows[i].seconds[s];
                cJSON *r = cJSON_CreateObject();
                cli_json_str(r, "method", rows[i].method);
                cli_json_num(r, "bits", rows[i].bits, 0);
                if (rows[i].layer_bits[0]) cli_json_str(r, "layer_bits", rows[i].layer_bits);
                cli_json_num(r, "test_accuracy", m, 2);
                cli_json_num(r, "test_accuracy_std", sd, 3);
                cli_json_num(r, "model_bytes", (double)rows[i].bytes, 0);
                cli_json_num(r, "train_seconds", t / seeds, 2);
                if (i) {
                    double im, isd;
                    mean_std(rows[i].int_acc, seeds, &im, &isd);
                    cli_json_num(r, "int_path_accuracy", im, 2);
                }
                cJSON *per = cJSON_AddArrayToObject(r, "per_seed"); /* seed s's figures, s = 0.. */
                for (int s = 0; per && s < seeds; s++) {
                    cJSON *o = cJSON_CreateObject();
                    cli_json_num(o, "seed", s, 0);
                    cli_json_num(o, "test_accuracy", rows[i].acc[s], 2);
                    if (i) cli_json_num(o, "int_path_accuracy", rows[i].int_acc[s], 2);
                    cli_json_num(o, "train_seconds", rows[i].seconds[s], 2);
                    cJSON_AddItemToArray(per, o);
                }
                cJSON_AddItemToArray(arr, r);
            }
            cli_json_print(j);
        }
    }
    tq_dataset_free(&tr);
    tq_dataset_free(&te);
    return rc ? rc : plot_rc; /* a figure that could not be written does not cost the table */
}
