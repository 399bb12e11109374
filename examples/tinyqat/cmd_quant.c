/* tinyqat ptq / qat: post-training quantization and quantization-aware training of one model
 * (the comparison over seeds and widths is cmd_experiment.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "pipeline/budget.h"
#include "src/alloc.h"

/* Options every quantizing command shares. */
typedef struct {
    int bits, per_tensor, calib_batches, no_bias_quant;
    const char *observer, *ste, *layer_bits, *act_bits;
    uint64_t flash_budget;
} quant_opts;

static void quant_opts_defaults(quant_opts *q, const char *observer) {
    q->bits = 8;
    q->per_tensor = 0;
    q->calib_batches = 32;
    q->no_bias_quant = 0;
    q->observer = observer;
    q->ste = "clipped";
    q->layer_bits = NULL;
    q->act_bits = NULL;
    q->flash_budget = 0;
}

/* Unit u of m (a convolution, or a dense layer) in words. */
static void unit_name(const tq_model *m, int u, char *buf, size_t cap) {
    const tq_conv_shape *c = &m->unit[u].conv;
    if (m->unit[u].kind == TQ_UNIT_DENSE) snprintf(buf, cap, "dense %d -> %d", c->C, c->OC);
    else snprintf(buf, cap, "%s %dx%d -> %d", c->depthwise ? "depthwise" : "conv", c->KH, c->KW, c->OC);
}

/* --layer-bits or --flash-budget into cfg->unit_bits for the float model fp (tr: the data a budget
 * is measured on). Prints the widths chosen. Returns 0 or an exit status. */
/* A width per unit with weights of fp, in order, comma-separated (an add has none), into out[unit]:
 * each from lo to hi (16 alone above 8: activations). Returns 0, or 2 after saying what it wants. */
static int per_unit_widths(const char *cmd, const char *opt, const char *text, const tq_model *fp, int lo, int hi, int *out) {
    const int U = fp->n_units;
    int n = 0, want = 0, u = 0;
    char range[16];
    if (hi == 16) snprintf(range, sizeof range, "8 or 16");
    else snprintf(range, sizeof range, "%d..%d", lo, hi);
    for (int k = 0; k < U; k++) want += tq_model_unit_has_weights(fp, k);
    for (const char *p = text; *p;) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < lo || b > hi || (hi == 16 && b != 8 && b != 16) || (*end && *end != ',') || n == want) {
            fprintf(stderr, "tinyqat %s: %s '%s': want %d widths of %s, one per convolution and dense layer of %s, comma-separated\n",
                    cmd, opt, text, want, range, fp->spec);
            return 2;
        }
        while (!tq_model_unit_has_weights(fp, u)) u++;
        out[u++] = (int)b;
        n++;
        p = *end ? end + 1 : end;
    }
    if (n != want) {
        fprintf(stderr, "tinyqat %s: %s '%s' gives %d widths; %s has %d layers with weights\n", cmd, opt, text, n, fp->spec, want);
        return 2;
    }
    return 0;
}

static int unit_widths(const char *cmd, const quant_opts *q, const tq_model *fp, const tq_dataset *tr, uint64_t seed, tq_qat_cfg *cfg) {
    const int U = fp->n_units;
    char name[64];
    int rc;
    if (q->act_bits && !strchr(q->act_bits, ',')) /* one width: every layer's output but the logits (quant_cfg checked it) */
        cfg->act_bits = (int)strtol(q->act_bits, NULL, 10);
    else if (q->act_bits && (rc = per_unit_widths(cmd, "--act-bits", q->act_bits, fp, 8, 16, cfg->unit_act_bits)))
        return rc;
    if (q->layer_bits && q->flash_budget) {
        fprintf(stderr, "tinyqat %s: --layer-bits and --flash-budget both choose the widths: give one\n", cmd);
        return 2;
    }
    if (q->layer_bits) return per_unit_widths(cmd, "--layer-bits", q->layer_bits, fp, 2, 8, cfg->unit_bits);
    if (!q->flash_budget) return 0;
    tq_budget r;
    if (tq_budget_choose(fp, cfg, tr, (size_t)q->flash_budget, q->calib_batches, seed, &r) != TQ_OK) return cli_fail(cmd);
    printf("weight widths for %llu bytes (every layer at 2 bits: %zu bytes; ", (unsigned long long)q->flash_budget, r.smallest);
    if (r.uniform_bits) printf("one width for all: %d bits, %zu bytes):\n", r.uniform_bits, r.uniform_bytes);
    else printf("no single width fits):\n");
    printf("  %-26s %8s   %-40s %4s\n", "layer", "weights", "loss increase at 2 / 3 / 4 / 6 bits", "bits");
    for (int u = 0; u < U; u++) {
        char inc[64];
        if (!tq_model_unit_has_weights(fp, u)) continue;
        unit_name(fp, u, name, sizeof name);
        snprintf(inc, sizeof inc, "%.4f / %.4f / %.4f / %.4f", r.delta[u][0], r.delta[u][1], r.delta[u][2], r.delta[u][3]);
        printf("  %d %-24s %8zu   %-40s %4d\n", u + 1, name, tq_unit_weights(&fp->unit[u]), inc, r.bits[u]);
        cfg->unit_bits[u] = r.bits[u];
    }
    printf("  integer model: %zu bytes (the loss with every layer at 8 bits: %.4f)\n", r.bytes, r.loss8);
    return 0;
}

/* ", 16-bit activations" (all but the logits), ", activations 16,16,8" (per layer with weights), or "" */
static void act_text(const tq_model *m, char *buf, size_t cap) {
    const tq_qat_cfg *c = &m->qat->cfg;
    const int U = m->n_units;
    int all = 1, any = 0, n = 0;
    for (int u = 0; u < U; u++) {
        int b = tq_qat_cfg_act_bits(c, u, U);
        any |= b == 16;
        all &= b == (u == U - 1 ? 8 : 16) || !tq_model_unit_has_weights(m, u);
    }
    buf[0] = '\0';
    if (!any) return;
    if (all) {
        snprintf(buf, cap, ", 16-bit activations");
        return;
    }
    n = snprintf(buf, cap, ", activations ");
    for (int u = 0, k = 0; u < U && n < (int)cap; u++)
        if (tq_model_unit_has_weights(m, u)) n += snprintf(buf + n, cap - (size_t)n, "%s%d", k++ ? "," : "", tq_qat_cfg_act_bits(c, u, U));
}

/* "8,4,2" (every unit's width) or "8" (one width) */
static void widths_text(const tq_model *m, char *buf, size_t cap) {
    const tq_qat_cfg *c = &m->qat->cfg;
    int n = 0, mixed = 0;
    for (int u = 0; u < m->n_units; u++) mixed |= tq_qat_cfg_bits(c, u) != tq_qat_cfg_bits(c, 0);
    if (!mixed) {
        snprintf(buf, cap, "%d", tq_qat_cfg_bits(c, 0));
        return;
    }
    buf[0] = '\0';
    for (int u = 0; u < m->n_units && n < (int)cap; u++)
        if (tq_model_unit_has_weights(m, u)) n += snprintf(buf + n, cap - (size_t)n, "%s%d", n ? "," : "", tq_qat_cfg_bits(c, u));
}

static int quant_cfg(const char *cmd, const quant_opts *q, tq_qat_cfg *cfg) {
    tq_qat_cfg_defaults(cfg);
    int obs = tq_obs_kind_parse(q->observer);
    if (obs < 0) {
        fprintf(stderr, "tinyqat %s: --observer must be minmax, ema or percentile, not '%s'\n", cmd, q->observer);
        return 2;
    }
    int lsq_ok = !strcmp(cmd, "qat");
    if (strcmp(q->ste, "clipped") && strcmp(q->ste, "plain") && (!lsq_ok || strcmp(q->ste, "lsq"))) {
        fprintf(stderr, "tinyqat %s: --ste must be clipped%s or plain, not '%s'\n", cmd, lsq_ok ? ", lsq" : "", q->ste);
        return 2;
    }
    for (const char *p = q->act_bits; p && *p;) { /* the syntax now, before any data is read; the count against the model later */
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || (b != 8 && b != 16) || (*end && *end != ',')) {
            fprintf(stderr, "tinyqat %s: --act-bits '%s': 8 or 16, or one of those per layer with weights (16,16,8)\n", cmd, q->act_bits);
            return 2;
        }
        p = *end ? end + 1 : end;
    }
    if (q->act_bits && !*q->act_bits) {
        fprintf(stderr, "tinyqat %s: --act-bits '': 8 or 16, or one of those per layer with weights (16,16,8)\n", cmd);
        return 2;
    }
    cfg->w_bits = q->bits;
    cfg->per_channel = !q->per_tensor;
    cfg->quant_bias = !q->no_bias_quant;
    cfg->obs = (tq_obs_kind)obs;
    cfg->ste = !strcmp(q->ste, "plain") ? TQ_STE_PLAIN : !strcmp(q->ste, "lsq") ? TQ_STE_LSQ : TQ_STE_CLIPPED;
    cfg->w_mse = cfg->ste == TQ_STE_LSQ; /* LSQ's scales start at the MSE clip (then they are learned) */
    return 0;
}

/* (qat has no --calib-batches: its observers calibrate on every training batch) */
#define QUANT_OPTIONS(q)                                                                                       \
    {"--bits", CLI_INT, &(q).bits, "weight bits: 2..8", 2, 8},                                                    \
    {"--act-bits", CLI_STR, &(q).act_bits, "activation bits: 8, or 16 (every layer's output but the logits, int16 as "     \
     "TFLite's 16x8 mode); or one per layer with weights, in order (16,16,8)", 0, 0},                            \
    {"--layer-bits", CLI_STR, &(q).layer_bits, "weight bits per layer with weights, in order, comma-separated (8,4,2): "      \
     "overrides --bits", 0, 0},                                                                                 \
    {"--per-tensor", CLI_FLAG, &(q).per_tensor, "one weight scale per layer instead of per output channel", 0, 0}, \
    {"--observer", CLI_STR, &(q).observer, "activation observer: minmax, ema or percentile", 0, 0},             \
    {"--no-bias-quant", CLI_FLAG, &(q).no_bias_quant, "keep the bias in float (default: int32 at s_in*s_w)", 0, 0}
#define CALIB_OPTION(q) {"--calib-batches", CLI_INT, &(q).calib_batches, "training batches of 64 that calibrate the observers", 1, 10000}
#define BUDGET_OPTION(q)                                                                                                     \
    {"--flash-budget", CLI_U64, &(q).flash_budget, "choose each layer's weight bits (2, 3, 4, 6, 8) so the integer model fits "  \
     "in this many bytes with the least loss (measured per layer by PTQ on training data)", 1, 1e12}

int cmd_ptq(int argc, char **argv) {
    quant_opts q;
    quant_opts_defaults(&q, "minmax");
    const char *out = NULL, *dataset = NULL, *data = NULL, *method = "minmax";
    uint64_t seed = 0;
    int json = 0;
    cli_opt opts[] = {
        QUANT_OPTIONS(q),
        CALIB_OPTION(q),
        BUDGET_OPTION(q),
        {"--method", CLI_STR, &method,
         "weights: minmax (max|w| per channel, each weight rounded to nearest), mse (the clip of least squared error) or gptq "
         "(minmax scales, weights rounded by GPTQ on the calibration batches)", 0, 0},
        {"--seed", CLI_U64, &seed, "which calibration batches are drawn", 0, 1.8e19},
        {"--out", CLI_STR, &out, "where to save the quantized model", 0, 0, NULL, "FP32_MODEL's name with -ptq.tqf"},
        CLI_DATA_OPTIONS(dataset, data),
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"ptq", "FP32_MODEL [options]",
                                "Post-training quantization: calibrate activation ranges on training batches, quantize weights.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    tq_qat_cfg cfg;
    if ((rc = quant_cfg("ptq", &q, &cfg))) return rc;
    if (strcmp(method, "minmax") && strcmp(method, "mse") && strcmp(method, "gptq")) {
        fprintf(stderr, "tinyqat ptq: --method must be minmax, mse or gptq, not '%s'\n", method);
        return 2;
    }
    cfg.w_mse = !strcmp(method, "mse");
    char out_buf[1024];
    if (!out) out = cli_derived_out(pos[0], "-ptq.tqf", out_buf, sizeof out_buf);
    tq_model fp, m;
    if (tq_model_load(&fp, pos[0]) != TQ_OK) return cli_fail(NULL);
    if (fp.qat) {
        fprintf(stderr, "tinyqat ptq: %s is already quantized; give a float model\n", pos[0]);
        tq_model_free(&fp);
        return 1;
    }
    tq_dataset tr, te;
    if ((rc = cli_load_data(dataset, data, &tr, &te))) {
        tq_model_free(&fp);
        return rc;
    }
    float acc_fp = 0, acc_q = 0;
    char widths[64], acts[128];
    if ((rc = unit_widths("ptq", &q, &fp, &tr, seed, &cfg))) {
        tq_dataset_free(&tr);
        tq_dataset_free(&te);
        tq_model_free(&fp);
        return rc;
    }
    if (tq_evaluate(&fp, &te, &acc_fp, NULL, NULL) != TQ_OK || tq_ptq(&m, &fp, &cfg, &tr, q.calib_batches, seed) != TQ_OK)
        rc = cli_fail("ptq");
    else if (!strcmp(method, "gptq") && tq_gptq(&m, &tr, q.calib_batches, seed) != TQ_OK) {
        rc = cli_fail("ptq");
        tq_model_free(&m);
    } else {
        if (tq_evaluate(&m, &te, &acc_q, NULL, NULL) != TQ_OK) rc = cli_fail("ptq");
        else if (tq_model_save(&m, out) != TQ_OK) rc = cli_fail("save");
        else {
            widths_text(&m, widths, sizeof widths);
            act_text(&m, acts, sizeof acts);
            printf("PTQ int%s weights%s (%s, %s ranges, %s observer, %d calibration batches): test accuracy %.2f%% (FP32 %.2f%%, "
                   "%+.2f), %zu model bytes; saved %s\n",
                   widths, acts, q.per_tensor ? "per tensor" : "per channel", method, q.observer, q.calib_batches, (double)acc_q,
                   (double)acc_fp, (double)(acc_q - acc_fp), tq_model_int8_bytes(&m), out);
            if (json) {
                cJSON *j = cli_json_new();
                cli_json_num(j, "test_accuracy", acc_q, 2);
                cli_json_num(j, "fp32_test_accuracy", acc_fp, 2);
                cli_json_num(j, "bits", q.bits, 0);
                cli_json_str(j, "layer_bits", widths);
                cli_json_num(j, "model_bytes", (double)tq_model_int8_bytes(&m), 0);
                cli_json_str(j, "method", method);
                cli_json_str(j, "model", out);
                cli_json_print(j);
            }
        }
        tq_model_free(&m);
    }
    tq_dataset_free(&tr);
    tq_dataset_free(&te);
    tq_model_free(&fp);
    return rc;
}

int cmd_qat(int argc, char **argv) {
    quant_opts q;
    quant_opts_defaults(&q, "ema");
    tq_train_cfg cfg;
    /* the library's recipe (tq_train_cfg_qat); LSQ's learns faster (3e-3), --lr still rules. The
     * STE is found before parsing, in either spelling, so --help shows the right default. */
    tq_qat_cfg lsq = {.ste = TQ_STE_LSQ};
    int is_lsq = 0;
    for (int i = 1; i < argc; i++)
        if ((!strcmp(argv[i], "--ste") && i + 1 < argc && !strcmp(argv[i + 1], "lsq")) || !strcmp(argv[i], "--ste=lsq")) is_lsq = 1;
    tq_train_cfg_qat(&cfg, is_lsq ? &lsq : NULL, 3, 0);
    const char *from = NULL, *out = NULL, *dataset = NULL, *data = NULL, *spec = "digitsnet", *ckpt = NULL,
               *resume = NULL;
    int json = 0, freeze = -2, freeze_bn = -2;
    cli_opt opts[] = {
        QUANT_OPTIONS(q),
        BUDGET_OPTION(q),
        {"--calib-batches", CLI_INT, &q.calib_batches, "with --flash-budget: the training batches of 64 each layer's measurement "
         "calibrates on (training itself calibrates on every batch)", 1, 10000},
        {"--from", CLI_STR, &from, "fine-tune this float model (else train from scratch)", 0, 0},
        {"--model", CLI_STR, &spec, "preset or layer spec when training from scratch (see train --help)", 0, 0},
        {"--epochs", CLI_INT, &cfg.epochs, "QAT epochs", 1, TQ_MAX_EPOCHS},
        {"--lr", CLI_FLOAT, &cfg.lr, "learning rate", 1e-7, 10},
        {"--schedule", CLI_STR, &cfg.schedule, "const or cosine", 0, 0},
        {"--batch", CLI_INT, &cfg.batch, "batch size", 1, 1 << 20},
        {"--freeze-epoch", CLI_INT, &freeze, "freeze observers from this epoch (1-based; 0 never)", 0, TQ_MAX_EPOCHS, NULL, "the last"},
        {"--freeze-bn-epoch", CLI_INT, &freeze_bn, "freeze batch-norm statistics from this epoch (1-based; 0 never)", 0, TQ_MAX_EPOCHS,
         NULL, "the last"},
        {"--ste", CLI_STR, &q.ste, "straight-through estimator: clipped, plain, or lsq (clipped, the weight scales learned; --lr then defaults to 3e-3)", 0, 0},
        {"--seed", CLI_U64, &cfg.seed, "random seed", 0, 1.8e19},
        {"--shift", CLI_INT, &cfg.shift, "augment: move each training image by up to N pixels each way (zeros come in)", 0, 64},
        {"--flip", CLI_FLAG, &cfg.flip, "augment: mirror half the training images left-right (clothes, not digits)", 0, 0},
        {"--threads", CLI_INT, &cfg.threads, "BLAS threads", 1, 256},
        {"--out", CLI_STR, &out, "where to save the quantized model", 0, 0, NULL, "--from's name with -qat.tqf, else digitsnet-qat.tqf"},
        {"--checkpoint-every", CLI_INT, &cfg.checkpoint_every, "write a checkpoint every N epochs (0 = never)", 0, TQ_MAX_EPOCHS},
        {"--checkpoint", CLI_STR, &ckpt, "checkpoint file", 0, 0, NULL, "OUT.ckpt"},
        {"--resume", CLI_STR, &resume, "continue from this checkpoint (same options as the run that wrote it)", 0, 0},
        CLI_DATA_OPTIONS(dataset, data),
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"qat", "[--from FP32_MODEL] [options]",
                                "Quantization-aware training: fine-tune a float model (--from) or train from scratch with fake quant.", 0, 0};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    tq_qat_cfg qcfg;
    if ((rc = quant_cfg("qat", &q, &qcfg))) return rc;
    if ((q.flash_budget || q.layer_bits || q.act_bits) && resume) {
        fprintf(stderr, "tinyqat qat: --resume goes on with the checkpoint's widths: drop --layer-bits, --act-bits and --flash-budget\n");
        return 2;
    }
    if (q.flash_budget && !from) {
        fprintf(stderr, "tinyqat qat: --flash-budget measures each layer on a trained float model: give it with --from\n");
        return 2;
    }
    char out_buf[1024];
    if (!out) out = from ? cli_derived_out(from, "-qat.tqf", out_buf, sizeof out_buf) : "digitsnet-qat.tqf";
    if (strcmp(cfg.schedule, "const") && strcmp(cfg.schedule, "cosine")) {
        fprintf(stderr, "tinyqat qat: --schedule must be const or cosine, not '%s'\n", cfg.schedule);
        return 2;
    }
    cfg.freeze_observers_epoch = freeze == -2 ? (cfg.epochs > 1 ? cfg.epochs - 1 : -1) : freeze == 0 ? -1 : freeze - 1;
    cfg.freeze_bn_epoch = freeze_bn == -2 ? (cfg.epochs > 1 ? cfg.epochs - 1 : -1) : freeze_bn == 0 ? -1 : freeze_bn - 1;
    if (!from && !resume && tq_model_spec_check(spec) != TQ_OK) {
        fprintf(stderr, "tinyqat qat: %s\n", tq_last_error());
        return 2;
    }
    char ckpt_buf[1024];
    cli_checkpoint_path(&cfg, out, ckpt, ckpt_buf, sizeof ckpt_buf);
    tq_dataset tr, te;
    if ((rc = cli_load_data(dataset, data, &tr, &te))) return rc;
    tq_model m;
    memset(&m, 0, sizeof m);
    tq_ckpt resume_ck;
    tq_ckpt_init(&resume_ck);
    if (resume) { /* the checkpoint holds the quantized model, observers included */
        if (tq_ckpt_load(&resume_ck, resume) != TQ_OK || tq_model_from_ckpt(&m, &resume_ck, resume) != TQ_OK) {
            rc = cli_fail(NULL);
            goto out;
        }
        if (!m.qat) {
            fprintf(stderr, "tinyqat qat: %s is not a QAT checkpoint\n", resume);
            rc = 1;
            goto out;
        }
        if (from) { /* the checkpoint's model is the one trained: a --from naming another is refused */
            tq_model f;
            if (tq_model_load(&f, from) != TQ_OK) {
                rc = cli_fail(NULL);
                goto out;
            }
            int same = !strcmp(f.spec, m.spec);
            if (!same)
                fprintf(stderr, "tinyqat qat: %s holds model %s, but --from %s is %s: drop --from to go on with the checkpoint\n",
                        resume, m.spec, from, f.spec);
            tq_model_free(&f);
            if (!same) {
                rc = 2;
                goto out;
            }
        }
        cfg.resume = &resume_ck;
    } else if (from) {
        if (tq_model_load(&m, from) != TQ_OK) {
            rc = cli_fail(NULL);
            goto out;
        }
        if (m.qat) {
            fprintf(stderr, "tinyqat qat: %s is already quantized; give a float model\n", from);
            rc = 1;
            goto out;
        }
    } else if (tq_model_for_data(&m, spec, &tr, cfg.seed) != TQ_OK) {
        rc = cli_fail(NULL);
        goto out;
    }
    tq_train_result res;
    if (!resume && (rc = unit_widths("qat", &q, &m, &tr, cfg.seed, &qcfg))) goto out;
    rc = 0;
    if (!resume && tq_model_quantize(&m, &qcfg) != TQ_OK) rc = cli_fail("qat");
    else {
        cli_train_view view = {.label = "qat"};
        cfg.callback = cli_train_callback;
        cfg.user = &view;
        cfg.stop = cli_catch_sigint();
        tq_status st = tq_train(&m, &tr, &te, &cfg, &res);
        cli_release_sigint();
        rc = cli_train_finish(st, "qat", &m, out, cfg.checkpoint_path);
    }
    if (rc == 0) {
        char widths[64], acts[128];
        widths_text(&m, widths, sizeof widths);
        act_text(&m, acts, sizeof acts);
        printf("QAT int%s weights%s (%s): test accuracy %.2f%%, %.3f s/epoch, %zu model bytes; saved %s\n", widths, acts,
               from ? "fine-tuned" : "from scratch", (double)res.final_test_acc, res.seconds_per_epoch, tq_model_int8_bytes(&m), out);
        if (json) {
            cJSON *j = cli_json_new();
            cli_json_num(j, "test_accuracy", res.final_test_acc, 2);
            cli_json_num(j, "seconds_per_epoch", res.seconds_per_epoch, 4);
            cli_json_num(j, "epochs", cfg.epochs, 0);
            cli_json_num(j, "bits", q.bits, 0);
            cli_json_str(j, "layer_bits", widths);
            cli_json_num(j, "model_bytes", (double)tq_model_int8_bytes(&m), 0);
            cli_json_str(j, "model", out);
            cli_json_print(j);
        }
    }
out:
    tq_dataset_free(&tr);
    tq_dataset_free(&te);
    tq_model_free(&m);
    tq_ckpt_free(&resume_ck);
    return rc;
}
