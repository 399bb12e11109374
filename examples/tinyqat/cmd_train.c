/* tinyqat train / tinyqat eval */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "src/alloc.h"
#include "src/fileio.h"

int cmd_train(int argc, char **argv) {
    tq_train_cfg cfg;
    tq_train_cfg_defaults(&cfg);
    const char *spec = NULL, *out = "digitsnet.tqf", *dataset = NULL, *data = NULL, *ckpt = NULL, *resume = NULL, *from = NULL;
    int json = 0, no_norm = 0, limit = 0;
    cli_opt opts[] = {
        {"--epochs", CLI_INT, &cfg.epochs, "training epochs", 1, TQ_MAX_EPOCHS, NULL,
         "10, or on a smaller dataset as many as see 600,000 images (10 epochs of MNIST)"},
        {"--batch", CLI_INT, &cfg.batch, "batch size", 1, 1 << 20},
        {"--lr", CLI_FLOAT, &cfg.lr, "learning rate", 1e-7, 10},
        {"--schedule", CLI_STR, &cfg.schedule, "learning-rate schedule: const or cosine (to 0 at the end)", 0, 0},
        {"--optim", CLI_STR, &cfg.optim, "optimizer: adam or sgd (momentum 0.9)", 0, 0},
        {"--weight-decay", CLI_FLOAT, &cfg.weight_decay, "L2 weight decay (kernels and weight matrices; not biases or batch norm)", 0, 1},
        {"--seed", CLI_U64, &cfg.seed, "random seed (init and shuffling)", 0, 1.8e19},
        {"--shift", CLI_INT, &cfg.shift, "augment: move each training image by up to N pixels each way (zeros come in)", 0, 64},
        {"--flip", CLI_FLAG, &cfg.flip, "augment: mirror half the training images left-right (clothes, not digits)", 0, 0},
        {"--threads", CLI_INT, &cfg.threads, "BLAS threads (same seed + threads = same model)", 1, 256},
        {"--model", CLI_STR, &spec, "a preset (digitsnet, digitscnn, resnet8, dscnn, mobilenet, article) or a spec: in-100r-100r-out, in-c8k5br-m2-out (README: Models)", 0, 0,
         NULL, "digitsnet"},
        {"--from", CLI_STR, &from, "go on training this float model (.tqf) instead of a new one (a fresh optimizer)", 0, 0},
        {"--no-norm", CLI_FLAG, &no_norm, "feed p/255 without the training set's mean/std normalization", 0, 0},
        {"--out", CLI_STR, &out, "where to save the model", 0, 0},
        CLI_DATA_OPTIONS(dataset, data),
        {"--limit", CLI_INT, &limit, "train on the first N training images only (0 = all)", 0, 2147483647},
        {"--checkpoint-every", CLI_INT, &cfg.checkpoint_every, "write a checkpoint every N epochs (0 = never)", 0, TQ_MAX_EPOCHS},
        {"--checkpoint", CLI_STR, &ckpt, "checkpoint file", 0, 0, NULL, "OUT.ckpt"},
        {"--resume", CLI_STR, &resume, "continue from this checkpoint (same options as the run that wrote it)", 0, 0},
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"train", "[options]", "Train a float model (Adam, batch 64, PyTorch init); MNIST unless told otherwise.", 0, 0};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    if (strcmp(cfg.schedule, "const") && strcmp(cfg.schedule, "cosine")) {
        fprintf(stderr, "tinyqat train: --schedule must be const or cosine, not '%s'\n", cfg.schedule);
        return 2;
    }
    if (strcmp(cfg.optim, "adam") && strcmp(cfg.optim, "sgd")) {
        fprintf(stderr, "tinyqat train: --optim must be adam or sgd, not '%s'\n", cfg.optim);
        return 2;
    }
    const char *asked = spec; /* --model as given (NULL: not given) */
    if (!spec) spec = "digitsnet";
    if (resume && from) {
        fprintf(stderr, "tinyqat train: --resume and --from both name the model to train: give one\n");
        return 2;
    }
    if ((asked || (!resume && !from)) && tq_model_spec_check(spec) != TQ_OK) {
        fprintf(stderr, "tinyqat train: %s\n", tq_last_error()); /* a malformed spec: a usage error, before any data */
        return 2;
    }
    char ckpt_buf[1024];
    cli_checkpoint_path(&cfg, out, ckpt, ckpt_buf, sizeof ckpt_buf);
    tq_dataset tr, te;
    if ((rc = cli_load_data(dataset, data, &tr, &te))) return rc;
    if (limit > 0 && (uint32_t)limit < tr.n) tr.n = (uint32_t)limit;
    /* The default is counted in images seen, not epochs: 10 epochs of a 1,437-image set are 230
     * Adam steps, which underfit; any set sees at least the 600,000 images of 10 epochs of MNIST
     * (--limit, a quick run on purpose, keeps 10 epochs). */
    int epochs_given = 0;
    for (int i = 1; i < argc; i++) epochs_given |= !strncmp(argv[i], "--epochs", 8);
    if (!epochs_given && !resume && limit == 0) {
        long want = (600000L + (long)tr.n - 1) / (long)tr.n;
        cfg.epochs = want < 10 ? 10 : want > TQ_MAX_EPOCHS ? TQ_MAX_EPOCHS : (int)want;
    }
    tq_model m;
    tq_ckpt resume_ck;
    tq_ckpt_init(&resume_ck);
    tq_status st = TQ_OK;
    memset(&m, 0, sizeof m);
    if (resume) {
        st = tq_ckpt_load(&resume_ck, resume);
        if (st == TQ_OK) st = tq_model_from_ckpt(&m, &resume_ck, resume);
        cfg.resume = &resume_ck;
    } else if (from) {
        st = tq_model_load(&m, from);
        if (st == TQ_OK && m.qat) st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s is quantized: go on with qat --from its float model", from);
    } else {
        st = tq_model_for_data(&m, spec, &tr, cfg.seed);
        if (st == TQ_OK && no_norm) m.in_mean = 0.0f, m.in_std = 1.0f;
    }
    if (st != TQ_OK) {
        rc = cli_fail(NULL);
        goto out_model;
    }
    /* the model of a checkpoint or a file is that one: a --model that names another is refused,
     * not silently ignored */
    char want[TQ_SPEC_MAX];
    if (asked && (resume || from)) {
        if (tq_model_spec_resolve(asked, (const int[3]){(int)tr.h, (int)tr.w, (int)tr.c}, (int)tr.classes, want, sizeof want) != TQ_OK) {
            rc = cli_fail(NULL);
            goto out_model;
        }
        if (strcmp(want, m.spec)) {
            fprintf(stderr, "tinyqat train: %s holds model %s, not %s (--model): drop --model to go on with it\n", resume ? resume : from,
                    m.spec, want);
            rc = 2;
            goto out_model;
        }
    }
    if (m.n_stages && m.unit[0].conv.pad && (m.in_mean != 0.0f || m.in_std != 1.0f))
        fprintf(stderr, "tinyqat train: note: the first convolution pads its input, so with the input normalization (mean %.4f, std "
                        "%.4f) this model can be trained and evaluated but not quantized (ptq and qat refuse it); a new model of its "
                        "spec (--model) takes p/255 as it is and quantizes\n", (double)m.in_mean, (double)m.in_std);
    cli_train_view view = {.label = "train"};
    cfg.callback = cli_train_callback;
    cfg.user = &view;
    cfg.stop = cli_catch_sigint(); /* Ctrl-C: stop after the current step, the last checkpoint intact */
    char aug[96] = "";
    if (cfg.shift || cfg.flip)
        snprintf(aug, sizeof aug, "; augmented: %s%.0d%s%s", cfg.shift ? "moved up to " : "", cfg.shift, cfg.shift ? " pixels" : "",
                 cfg.flip ? (cfg.shift ? ", mirrored" : "mirrored") : "");
    printf("training %s on %s (%u images of %ux%ux%u, %u classes; input mean %.4f, std %.4f)\n"
           "  %d epochs, batch %d, %s lr %g (%s), seed %llu, %d thread(s)%s\n",
           m.spec, tr.source, tr.n, tr.h, tr.w, tr.c, tr.classes, (double)m.in_mean, (double)m.in_std, cfg.epochs, cfg.batch,
           cfg.optim, (double)cfg.lr, cfg.schedule, (unsigned long long)cfg.seed, cfg.threads, aug);
    tq_train_result res;
    st = tq_train(&m, &tr, &te, &cfg, &res);
    cli_release_sigint();
    rc = cli_train_finish(st, "train", &m, out, cfg.checkpoint_path);
    if (rc == 0) {
        printf("test accuracy %.2f%%, %.3f s/epoch, %.0f samples/s; saved %s\n", (double)res.final_test_acc,
               res.seconds_per_epoch, res.samples_per_second, out);
        if (json) {
            cJSON *j = cli_json_new();
            cli_json_num(j, "test_accuracy", res.final_test_acc, 2);
            cli_json_num(j, "seconds_per_epoch", res.seconds_per_epoch, 4);
            cli_json_num(j, "samples_per_second", res.samples_per_second, 0);
            cli_json_num(j, "epochs", cfg.epochs, 0);
            cli_json_num(j, "peak_rss_mb", cli_peak_rss_mb(), 1);
            cli_json_str(j, "model", out);
            cli_json_str(j, "spec", m.spec);
            cli_json_num(j, "seed", (double)cfg.seed, 0);
            cJSON *curve = cJSON_AddArrayToObject(j, "epochs_curve"); /* per epoch: loss and test accuracy */
            for (int e = 0; curve && e < res.epochs; e++) {
                cJSON *pt = cJSON_CreateObject();
                cli_json_num(pt, "epoch", e + 1, 0);
                cli_json_num(pt, "train_loss", res.train_loss[e], 5);
                cli_json_num(pt, "test_accuracy", res.test_acc[e], 2);
                cJSON_AddItemToArray(curve, pt);
            }
            cli_json_print(j);
        }
    }
out_model:
    tq_model_free(&m);
    tq_dataset_free(&tr);
    tq_dataset_free(&te);
    tq_ckpt_free(&resume_ck);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *dataset = NULL, *data = NULL, *logits_out = NULL;
    int json = 0;
    cli_opt opts[] = {
        CLI_DATA_OPTIONS(dataset, data),
        {"--logits", CLI_STR, &logits_out, "write the logits of every test image to this file (raw float32, little-endian, "
         "[images][outputs])", 0, 0},
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"eval", "MODEL [options]", "Evaluate a model on the test images: accuracy, confusion matrix, errors per class.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    tq_model m;
    if (tq_model_load(&m, pos[0]) != TQ_OK) return cli_fail(NULL);
    tq_dataset te;
    if ((rc = cli_load_data(dataset, data, NULL, &te))) {
        tq_model_free(&m);
        return rc;
    }
    const int K = tq_model_classes(&m);
    float acc;
    int64_t *conf = tq_calloc((size_t)K * (size_t)K, sizeof *conf);
    if (!conf) rc = cli_fail("eval");
    else if (tq_evaluate(&m, &te, &acc, conf, NULL) != TQ_OK) rc = cli_fail("eval");
    else {
        printf("%s (%s): test accuracy %.2f%% on %u images\n", pos[0], m.spec, (double)acc, te.n);
        if (K <= 20) {
            printf("\nconfusion matrix (rows: true class, columns: predicted)\n      ");
            for (int c = 0; c < K; c++) printf("%6d", c);
            printf("\n");
            for (int t = 0; t < K; t++) {
                printf("%6d", t);
                for (int c = 0; c < K; c++) printf("%6lld", (long long)conf[t * K + c]);
                printf("\n");
            }
        }
        printf("\nerrors per class\n");
        for (int t = 0; t < K; t++) {
            long total = 0;
            for (int c = 0; c < K; c++) total += (long)conf[t * K + c];
            long wrong = total - (long)conf[t * K + t];
            printf("  class %d: %4ld of %4ld wrong (%.2f%%)\n", t, wrong, total, total ? 100.0 * wrong / total : 0.0);
        }
        if (logits_out) {
            float *lg = tq_malloc((size_t)te.n * (size_t)K * sizeof(float));
            if (!lg || tq_predict_logits(&m, &te, lg) != TQ_OK || tq_file_write_atomic(logits_out, lg, (size_t)te.n * (size_t)K * sizeof(float)) != TQ_OK)
                rc = cli_fail("eval");
            tq_free(lg);
        }
        if (rc == 0 && json) {
            cJSON *j = cli_json_new();
            cli_json_num(j, "test_accuracy", acc, 2);
            cli_json_num(j, "images", te.n, 0);
            cli_json_str(j, "model", pos[0]);
            cJSON *rows = cJSON_AddArrayToObject(j, "confusion"); /* [true class][predicted] */
            for (int t = 0; rows && t < K; t++) {
                cJSON *row = cJSON_CreateArray();
                for (int c = 0; c < K; c++) cJSON_AddItemToArray(row, cJSON_CreateNumber((double)conf[t * K + c]));
                cJSON_AddItemToArray(rows, row);
            }
            cli_json_print(j);
        }
    }
    tq_free(conf);
    tq_dataset_free(&te);
    tq_model_free(&m);
    return rc;
}
