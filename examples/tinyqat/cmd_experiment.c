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
#include "plot/canvas.h"
#include "src/alloc.h"
#include "experiment.h"

void experiment_mean_std(const float *v, int n, double *mean, double *sd) {
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

/* Seed s's PTQ rows at width b, from its float model fp: each method's model and its accuracy in
 * the simulation and on the integer path; with --plots, seed 0's predictions and SQNR. */
static int run_ptq(experiment *x, tq_model *fp, int s, int b, tq_qat_cfg qc) {
    const int keep = x->plots && s == 0;
    int rc = 0;
    tq_model pq;
    float acc;
    for (int k = 0; k < x->nm && rc == 0; k++) {
        row *rp = &x->rows[1 + x->per_b * b + k];
        double t0 = cli_now();
        qc.w_mse = x->pm[k] == 1;
        if (tq_ptq(&pq, fp, &qc, &x->tr, x->calib, (uint64_t)s) != TQ_OK ||
            (x->pm[k] == 2 && tq_gptq(&pq, &x->tr, x->calib, (uint64_t)s) != TQ_OK) || tq_evaluate(&pq, &x->te, &acc, NULL, NULL) != TQ_OK ||
            int_path_accuracy(&pq, &x->te, &rp->int_acc[s]) != TQ_OK) {
            rc = cli_fail("experiment: ptq");
            tq_model_free(&pq); /* (safe after a failed tq_ptq: it leaves *q zeroed) */
            break;
        }
        rp->acc[s] = acc;
        rp->seconds[s] = cli_now() - t0;
        rp->bytes = tq_model_int8_bytes(&pq);
        if (keep && b == 0 && k == 0) (void)tq_evaluate(&pq, &x->te, &acc, x->conf0[1], x->pred0[1]);
        if (keep && tq_layer_sqnr(&pq, fp, &x->te, 2000, x->sqnr0[b][k]) != TQ_OK) rc = cli_fail("experiment: layer SQNR");
        tq_model_free(&pq);
        printf(", int%d %s %.2f%%", x->bits[b], rp->method, (double)acc);
    }
    return rc;
}

/* Seed s's QAT rows at width b: fine-tuned from fp (or, the article's way, trained from scratch);
 * with --plots, seed 0's curves, predictions, SQNR and the rounding figure's weight flips. */
static int run_qat(experiment *x, tq_model *fp, int s, int b, tq_qat_cfg qc) {
    const int keep = x->plots && s == 0;
    int rc = 0;
    tq_model qq;
    tq_train_result res;
    /* QAT: fine-tuned from the float model (digitsnet), or from scratch (the article's way); the
     * weight scales from max|w| at every step (ste), or learned from the MSE clip on (lsq) */
    for (int k = 0; k < x->nq && rc == 0; k++) {
        row *rq = &x->rows[1 + x->per_b * b + x->nm + k];
        tq_train_cfg qcfg;
        qc.obs = x->article ? TQ_OBS_MINMAX : TQ_OBS_EMA;
        qc.ste = x->use_lsq[k] ? TQ_STE_LSQ : TQ_STE_CLIPPED;
        qc.w_mse = x->use_lsq[k]; /* QAT with max|w|: a search at every step would cost more than training */
        if (x->article) {
            qcfg = x->fcfg;
            if (tq_model_for_data(&qq, x->spec, &x->tr, (uint64_t)s) != TQ_OK) {
                rc = cli_fail("experiment: qat");
                break;
            }
        } else {
            tq_train_cfg_qat(&qcfg, &qc, x->qat_epochs, (uint64_t)s);
            qcfg.lr = x->use_lsq[k] ? x->lsq_lr : x->qat_lr;
            qcfg.threads = x->fcfg.threads;
            tq_model_clone(&qq, fp);
        }
        /* the rounding figure: seed 0, plain STE, at the widths it shows */
        fig_flip_counter *fc = keep && !x->use_lsq[k] && rounding_width(b, x->bits, x->nb) ? &x->flips[x->n_rounding] : NULL;
        qat_watch watch = {&x->qview, NULL};
        qcfg.callback = qat_watch_callback;
        qcfg.user = &watch;
        if (tq_model_quantize(&qq, &qc) != TQ_OK ||
            (fc && fig_flips_init(fc, &qq, x->bits[b], qcfg.epochs * (int)((x->tr.n + (size_t)qcfg.batch - 1) / (size_t)qcfg.batch)) != TQ_OK)) {
            tq_model_free(&qq);
            rc = cli_fail("experiment: qat");
            break;
        }
        if (fc) { /* before: the float weights as QAT starts from them (normalization folded in) */
            watch.flips = fc;
            x->rounding[x->n_rounding].bits = x->bits[b];
            fig_frac_hist(&qq, x->bits[b], x->rounding[x->n_rounding].before);
        }
        if (tq_train(&qq, &x->tr, &x->te, &qcfg, &res) != TQ_OK || int_path_accuracy(&qq, &x->te, &rq->int_acc[s]) != TQ_OK) {
            tq_model_free(&qq);
            rc = cli_fail("experiment: qat");
            break;
        }
        if (fc) {
            fig_frac_hist(&qq, x->bits[b], x->rounding[x->n_rounding].after);
            x->rounding[x->n_rounding].flips = fc->flips;
            x->rounding[x->n_rounding].steps = fc->steps;
            x->n_rounding++;
        }
        rq->acc[s] = res.final_test_acc;
        rq->seconds[s] = res.seconds_total;
        rq->bytes = tq_model_int8_bytes(&qq);
        if (keep && tq_layer_sqnr(&qq, fp, &x->te, 2000, x->sqnr0[b][x->nm + k]) != TQ_OK) rc = cli_fail("experiment: layer SQNR");
        x->n_sqnr_layers = qq.n_units;
        if (keep && k == 0 && b == 0) {
            float a1;
            x->qat_res0 = res;
            (void)tq_evaluate(&qq, &x->te, &a1, x->conf0[2], x->pred0[2]);
        }
        tq_model_free(&qq);
        printf(", int%d %s %.2f%%", x->bits[b], rq->method, (double)rq->acc[s]);
    }
    return rc;
}

/* Seed s's --flash-budget rows: the widths chosen for each budget on fp, then QAT with them. */
static int run_budgets(experiment *x, tq_model *fp, int s) {
    int rc = 0;
    tq_train_result res;
    for (int kb = 0; kb < x->nbud && rc == 0; kb++) { /* the widths measured on this seed's float model, then QAT as the rows above */
        row *rb = &x->rows[x->first_budget + kb];
        const uint64_t budget = x->budgets[kb];
        tq_budget br;
        tq_qat_cfg qc;
        tq_qat_cfg_defaults(&qc);
        qc.obs = (tq_obs_kind)x->obs_ptq;
        qc.act_bits = x->act_bits;
        tq_model qq;
        tq_train_cfg qcfg;
        char w[48] = "";
        if (tq_budget_choose(fp, &qc, &x->tr, (size_t)budget, x->calib, (uint64_t)s, &br) != TQ_OK) {
            rc = cli_fail("experiment: --flash-budget");
        } else {
            for (int u = 0, n = 0; u < br.units; u++) n += snprintf(w + n, sizeof w - (size_t)n, "%s%d", u ? "," : "", br.bits[u]);
            memcpy(qc.unit_bits, br.bits, sizeof br.bits);
            qc.obs = TQ_OBS_EMA;
            qc.ste = x->use_lsq[0] ? TQ_STE_LSQ : TQ_STE_CLIPPED; /* the first QAT method's, as the bytes figure draws it */
            qc.w_mse = x->use_lsq[0];
            tq_train_cfg_qat(&qcfg, &qc, x->qat_epochs, (uint64_t)s);
            qcfg.lr = x->use_lsq[0] ? x->lsq_lr : x->qat_lr;
            qcfg.threads = x->fcfg.threads;
            qat_watch watch = {&x->qview, NULL};
            qcfg.callback = qat_watch_callback;
            qcfg.user = &watch;
            if (tq_model_clone(&qq, fp) != TQ_OK || tq_model_quantize(&qq, &qc) != TQ_OK || tq_train(&qq, &x->tr, &x->te, &qcfg, &res) != TQ_OK ||
                int_path_accuracy(&qq, &x->te, &rb->int_acc[s]) != TQ_OK) {
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
    return rc;
}

static void print_table(const experiment *x, double t_start) {
    double fm, fs;
    experiment_mean_std(x->rows[0].acc, x->seeds, &fm, &fs);
    if (x->act_bits == 16) printf("\nPTQ and QAT with 16-bit activations (int16 outputs but the logits, int64 biases)");
    printf("\n| method | weight bits | test accuracy (mean ± std, %d seeds) | vs FP32 | integer path | model bytes | train seconds |\n",
           x->seeds);
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < x->nr; i++) {
        double m, sd, t = 0, im = 0, isd;
        experiment_mean_std(x->rows[i].acc, x->seeds, &m, &sd);
        if (i) experiment_mean_std(x->rows[i].int_acc, x->seeds, &im, &isd);
        for (int s = 0; s < x->seeds; s++) t += x->rows[i].seconds[s];
        char ip[32] = "-";
        if (i && !isnan(im)) snprintf(ip, sizeof ip, "%.2f%%", im);
        char wb[48];
        if (x->rows[i].layer_bits[0]) snprintf(wb, sizeof wb, "%s", x->rows[i].layer_bits);
        else snprintf(wb, sizeof wb, "%d", x->rows[i].bits);
        printf("| %s | %s | %.2f%% ± %.2f | %+.2f | %s | %zu | %.1f |\n", x->rows[i].method, wb, m, sd, m - fm, ip, x->rows[i].bytes,
               t / x->seeds);
    }
    printf("\n(train seconds: FP32 training, PTQ calibration, QAT training; per seed. Total wall time %.1f s.)\n",
           cli_now() - t_start);
    if (x->json) {
        cJSON *j = cli_json_new(), *arr = cJSON_AddArrayToObject(j, "rows");
        cli_json_num(j, "seeds", x->seeds, 0);
        cli_json_str(j, "recipe", x->recipe);
        for (int i = 0; i < x->nr; i++) {
            double m, sd, t = 0;
            experiment_mean_std(x->rows[i].acc, x->seeds, &m, &sd);
            for (int s = 0; s < x->seeds; s++) t += x->rows[i].seconds[s];
            cJSON *r = cJSON_CreateObject();
            cli_json_str(r, "method", x->rows[i].method);
            cli_json_num(r, "bits", x->rows[i].bits, 0);
            if (x->rows[i].layer_bits[0]) cli_json_str(r, "layer_bits", x->rows[i].layer_bits);
            cli_json_num(r, "test_accuracy", m, 2);
            cli_json_num(r, "test_accuracy_std", sd, 3);
            cli_json_num(r, "model_bytes", (double)x->rows[i].bytes, 0);
            cli_json_num(r, "train_seconds", t / x->seeds, 2);
            if (i) {
                double im, isd;
                experiment_mean_std(x->rows[i].int_acc, x->seeds, &im, &isd);
                cli_json_num(r, "int_path_accuracy", im, 2);
            }
            cJSON *per = cJSON_AddArrayToObject(r, "per_seed"); /* seed s's figures, s = 0.. */
            for (int s = 0; per && s < x->seeds; s++) {
                cJSON *o = cJSON_CreateObject();
                cli_json_num(o, "seed", s, 0);
                cli_json_num(o, "test_accuracy", x->rows[i].acc[s], 2);
                if (i) cli_json_num(o, "int_path_accuracy", x->rows[i].int_acc[s], 2);
                cli_json_num(o, "train_seconds", x->rows[i].seconds[s], 2);
                cJSON_AddItemToArray(per, o);
            }
            cJSON_AddItemToArray(arr, r);
        }
        cli_json_print(j);
    }
}

/* The whole experiment on x's options and data: the rows, every seed, the figures and the table. */
static int run(experiment *x) {
    if (x->plots)
        for (int k = 0; k < 3; k++) {
            x->pred0[k] = tq_malloc(x->te.n);
            x->conf0[k] = tq_calloc((size_t)x->te.classes * x->te.classes, sizeof(int64_t));
        }
    /* the methods' rows' names: PTQ 0 minmax, 1 mse, 2 gptq; QAT 0 ste, 1 lsq */
    static const char *ptq_rows[3] = {"ptq", "ptq mse", "ptq gptq"};
    x->per_b = x->nm + x->nq, x->nr = 1 + x->per_b * x->nb; /* per bit width: the PTQ rows, then the QAT rows; then the budget's */
    x->first_budget = x->nr;
    for (int k = 0; k < x->nbud; k++) {
        snprintf(x->bmethod[k], sizeof x->bmethod[k], "qat%s, widths for %llu bytes", x->use_lsq[0] ? " lsq" : "",
                 (unsigned long long)x->budgets[k]);
        x->rows[x->nr++] = (row){.method = x->bmethod[k], .bits = 0};
    }
    x->rows[0].method = "fp32";
    x->rows[0].bits = 32;
    for (int b = 0; b < x->nb; b++) {
        for (int k = 0; k < x->nm; k++) x->rows[1 + x->per_b * b + k] = (row){.method = ptq_rows[x->pm[k]], .bits = x->bits[b]};
        for (int k = 0; k < x->nq; k++) x->rows[1 + x->per_b * b + x->nm + k] = (row){.method = x->use_lsq[k] ? "qat lsq" : "qat", .bits = x->bits[b]};
    }
    const int shape[3] = {(int)x->tr.h, (int)x->tr.w, (int)x->tr.c};
    if (tq_model_spec_resolve(x->spec, shape, (int)x->tr.classes, x->resolved, sizeof x->resolved) != TQ_OK) return cli_fail("experiment");
    printf("experiment: %s recipe, model %s on %s, seeds 0..%d, weight bits %s\n", x->recipe, x->resolved, x->tr.source, x->seeds - 1,
           x->bits_s);
    cli_train_view fview = {.label = "fp32", .quiet = 1};
    x->qview = (cli_train_view){.label = "qat", .quiet = 1};
    x->fcfg.callback = cli_train_callback;
    x->fcfg.user = &fview;
    double t_start = cli_now();
    int rc = 0;
    for (int s = 0; s < x->seeds && rc == 0; s++) {
        tq_model fp;
        tq_train_result res;
        if (tq_model_for_data(&fp, x->spec, &x->tr, (uint64_t)s) != TQ_OK) return cli_fail("experiment");
        x->fcfg.seed = (uint64_t)s;
        if (tq_train(&fp, &x->tr, &x->te, &x->fcfg, &res) != TQ_OK) {
            tq_model_free(&fp);
            return cli_fail("experiment");
        }
        x->rows[0].acc[s] = res.final_test_acc;
        x->rows[0].seconds[s] = res.seconds_total;
        x->rows[0].bytes = tq_model_float_bytes(&fp);
        if (x->plots && s == 0) {
            float a0;
            x->fp_res0 = res;
            x->n_stages0 = fp.n_stages;
            (void)tq_evaluate(&fp, &x->te, &a0, x->conf0[0], x->pred0[0]);
        }
        printf("seed %d: fp32 %.2f%%", s, (double)res.final_test_acc);
        for (int b = 0; b < x->nb && rc == 0; b++) {
            tq_qat_cfg qc;
            tq_qat_cfg_defaults(&qc);
            qc.w_bits = x->bits[b];
            qc.act_bits = x->act_bits;
            qc.obs = (tq_obs_kind)x->obs_ptq;
            if (x->article) qc.per_channel = 0;
            rc = run_ptq(x, &fp, s, b, qc);
            if (rc == 0) rc = run_qat(x, &fp, s, b, qc);
        }
        if (rc == 0) rc = run_budgets(x, &fp, s);
        printf("\n");
        fflush(stdout);
        tq_model_free(&fp);
    }
    if (rc) return rc;
    int plot_rc = x->plots ? experiment_plots(x) : 0;
    print_table(x, t_start);
    return plot_rc; /* a figure that could not be written does not cost the table */
}

int cmd_experiment(int argc, char **argv) {
    static experiment X; /* (large: the rows and seed 0's figures' material) */
    experiment *x = &X;
    memset(x, 0, sizeof *x);
    x->seeds = 3, x->qat_epochs = 3, x->calib = 32, x->act_bits = 8;
    x->qat_lr = 1e-3f, x->lsq_lr = 3e-3f;
    x->recipe = "digitsnet", x->plot_format = "both", x->bits_s = "8";
    const char *budget_s = NULL, *methods_s = "minmax", *qmethods_s = "ste", *observer = NULL, *model = NULL;
    tq_train_cfg *fcfg = &x->fcfg;
    tq_train_cfg_defaults(fcfg);
    /* The recipe sets the defaults the other options then override (and --help shows): found
     * before parsing, in either spelling. */
    for (int i = 1; i < argc; i++) {
        const char *v = !strcmp(argv[i], "--recipe") && i + 1 < argc ? argv[i + 1] : !strncmp(argv[i], "--recipe=", 9) ? argv[i] + 9 : NULL;
        if (v && !strcmp(v, "digitscnn")) {
            /* DigitsCNN: 30 epochs of SGD (momentum 0.9) at 0.05, cosine to 0, weight decay 2e-3 on the
             * weights only: README, DigitsCNN, has the figures and the recipes it beat; two threads */
            fcfg->epochs = 30;
            fcfg->optim = "sgd";
            fcfg->lr = 0.05f;
            fcfg->weight_decay = 2e-3f;
            fcfg->threads = 2;
            /* QAT: a gentler fine-tune than the dense recipe's 3 epochs at 1e-3; 5 epochs at 1e-4 (MNIST
             * 99.34%, Fashion 90.61%, seeds 0-2) over 3 (99.33%, 90.59%) or 3 at 2e-4 or 3e-4 */
            x->qat_epochs = 5;
            x->qat_lr = 1e-4f;
        }
    }
    cli_opt opts[] = {
        {"--seeds", CLI_INT, &x->seeds, "seeds 0..N-1; the table shows mean and std", 1, MAX_SEEDS},
        {"--bits", CLI_STR, &x->bits_s, "weight bit widths, e.g. 8,4,2: a PTQ and a QAT row each", 0, 0},
        {"--ptq-methods", CLI_STR, &methods_s, "PTQ methods, a row each: minmax, mse, gptq (e.g. minmax,mse,gptq)", 0, 0},
        {"--qat-methods", CLI_STR, &qmethods_s, "QAT weight scales, a row each: ste (from max|w|), lsq (learned) or both (ste,lsq)", 0, 0},
        {"--recipe", CLI_STR, &x->recipe, "digitsnet (in-100r-100r-out), digitscnn (in-c8k5br-m2-c16k5br-m2-out, its own recipe) or article", 0,
         0, "digitsnet,digitscnn,article"},
        {"--model", CLI_STR, &model, "another model for the digitsnet recipe: a preset (digitscnn) or a spec", 0, 0},
        {"--epochs", CLI_INT, &fcfg->epochs, "FP32 training epochs (digitsnet recipe)", 1, TQ_MAX_EPOCHS},
        {"--qat-epochs", CLI_INT, &x->qat_epochs, "QAT fine-tuning epochs (digitsnet recipe)", 1, TQ_MAX_EPOCHS},
        {"--qat-lr", CLI_FLOAT, &x->qat_lr, "QAT fine-tuning learning rate (cosine to 0)", 1e-7, 10},
        {"--lsq-lr", CLI_FLOAT, &x->lsq_lr, "the same for the LSQ rows (--qat-methods)", 1e-7, 10},
        {"--act-bits", CLI_INT, &x->act_bits, "activation bits of the PTQ and QAT rows: 8, or 16 (every output but the logits, int16 as "
         "TFLite's 16x8 mode)", 8, 16},
        {"--calib-batches", CLI_INT, &x->calib, "PTQ calibration batches of 64 training images", 1, 10000},
        {"--flash-budget", CLI_STR, &budget_s, "add a row per budget (comma-separated, bytes): QAT (the first --qat-methods) with "
         "each layer's width chosen to fit it (as qat --flash-budget), beside the uniform widths of --bits", 0, 0},
        {"--observer", CLI_STR, &observer, "PTQ activation observer (QAT uses ema)", 0, 0, NULL, "minmax"},
        {"--threads", CLI_INT, &fcfg->threads, "threads (the same results for any count with convolutions)", 1, 256},
        CLI_DATA_OPTIONS(x->dataset, x->data),
        {"--plots", CLI_STR, &x->plots, "write the figures into this folder: accuracy against bits; of seed 0 the STE, rounding, curves, confusion, mistakes", 0, 0},
        {"--plot-format", CLI_STR, &x->plot_format, "the figures as png, svg or both", 0, 0, "png,svg,both"},
        {"--json", CLI_FLAG, &x->json, "end with one JSON line: {\"seeds\", \"rows\": [...]}", 0, 0},
    };
    static const cli_cmd cmd = {"experiment", "[options]",
                                "Train FP32, then PTQ and QAT per bit width, over several seeds; print one table.", 0, 0};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    if (x->act_bits != 8 && x->act_bits != 16) {
        fprintf(stderr, "tinyqat experiment: --act-bits %d: 8 or 16\n", x->act_bits);
        return 2;
    }
    for (const char *p = budget_s; p && *p;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v < 1 || v > 1000000000000ull || (*end && *end != ',') || x->nbud == MAX_BUDGETS || *p == '-') {
            fprintf(stderr, "tinyqat experiment: --flash-budget '%s': want up to %d byte counts, comma-separated (30000 or 20000,30000)\n",
                    budget_s, MAX_BUDGETS);
            return 2;
        }
        x->budgets[x->nbud++] = v;
        p = *end ? end + 1 : end;
    }
    if (!parse_bits(x->bits_s, x->bits, &x->nb)) {
        fprintf(stderr, "tinyqat experiment: --bits '%s': want a comma-separated list of 2..8\n", x->bits_s);
        return 2;
    }
    /* the methods, a row each per bit width: PTQ 0 minmax, 1 mse, 2 gptq; QAT 0 ste, 1 lsq */
    static const char *ptq_names[3] = {"minmax", "mse", "gptq"};
    static const char *qat_names[2] = {"ste", "lsq"};
    x->nm = parse_methods(methods_s, ptq_names, 3, x->pm), x->nq = parse_methods(qmethods_s, qat_names, 2, x->use_lsq);
    if (x->nm <= 0) {
        fprintf(stderr, "tinyqat experiment: --ptq-methods '%s': want a list of minmax, mse and gptq, each once\n", methods_s);
        return 2;
    }
    if (x->nq <= 0) {
        fprintf(stderr, "tinyqat experiment: --qat-methods '%s': want ste, lsq or ste,lsq\n", qmethods_s);
        return 2;
    }
    const int cnn = !strcmp(x->recipe, "digitscnn");
    x->article = !strcmp(x->recipe, "article");
    x->obs_ptq = tq_obs_kind_parse(observer ? observer : "minmax");
    if (x->obs_ptq < 0) {
        fprintf(stderr, "tinyqat experiment: --observer must be minmax, ema or percentile, not '%s'\n", observer);
        return 2;
    }
    if (model && x->article) {
        fprintf(stderr, "tinyqat experiment: --model goes with the digitsnet recipe, not the article's\n");
        return 2;
    }
    if (model && tq_model_spec_check(model) != TQ_OK) {
        fprintf(stderr, "tinyqat experiment: %s\n", tq_last_error());
        return 2;
    }
    x->spec = x->article ? "article" : model ? model : cnn ? "digitscnn" : "digitsnet";
    if (x->article) { /* the article: ReLU only after the last layer, batch 10, 1 epoch, Adam 1e-3, min-max, per tensor */
        fcfg->epochs = 1;
        fcfg->batch = 10;
        fcfg->schedule = "const";
    }
    struct stat pst;
    if (x->plots && (stat(x->plots, &pst) != 0 || !S_ISDIR(pst.st_mode))) { /* before the training, not after it */
        fprintf(stderr, "tinyqat experiment: --plots %s: not a folder (create it first)\n", x->plots);
        return 1;
    }
    if (x->nbud && x->article) {
        fprintf(stderr, "tinyqat experiment: --flash-budget goes with the digitsnet and digitscnn recipes (QAT fine-tuned)\n");
        return 2;
    }
    if (x->plots && !tq_canvas_supported()) {
        fprintf(stderr, "tinyqat experiment: --plots: this tinyqat was built without cairo and cannot draw: install "
                        "libcairo2-dev and rebuild\n");
        return 1;
    }
    if ((rc = cli_load_data(x->dataset, x->data, &x->tr, &x->te))) return rc;
    rc = run(x);
    for (int i = 0; i < MAX_BITS; i++) fig_flips_free(&x->flips[i]);
    for (int k = 0; k < 3; k++) tq_free(x->conf0[k]), tq_free(x->pred0[k]);
    tq_dataset_free(&x->tr);
    tq_dataset_free(&x->te);
    return rc;
}
