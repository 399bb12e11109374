/* tinyqat from C, through the installed library alone: train DigitsNet for 2 epochs, fine-tune it
 * with QAT for 1, convert it to integers, run the integer-only path on the test set and print how
 * well it agrees with the fake-quant simulation.
 *
 *   cc main.c $(pkg-config --cflags --libs tinyqat) -o demo && ./demo [DATA_DIR]
 *
 * DATA_DIR holds MNIST's four IDX files (else $MNIST_DIR, else data/mnist). Exit status 0 when the
 * integer path agrees with the simulation on at least 99.9% of the test images. */
#include <stdio.h>

#include <tinyqat.h>

/* tq_train's progress callback: one line per epoch. Returning non-zero would stop the run. */
static int on_event(const tq_train_event *ev, void *user) {
    if (ev->kind == TQ_EVENT_EPOCH)
        printf("  %s epoch %d/%d: loss %.4f, test accuracy %.2f%% (%.2f s)\n", (const char *)user, ev->epoch, ev->epochs,
               ev->loss, (double)ev->test_acc, ev->seconds);
    return 0;
}

static int fail(const char *what) {
    fprintf(stderr, "demo: %s: %s\n", what, tq_last_error());
    return 1;
}

int main(int argc, char **argv) {
    printf("tinyqat %s (compiled against %s)\n", tq_version(), TQ_VERSION_STRING);
    char dir[1024];
    tq_dataset train, test;
    if (tq_dataset_dir("mnist", argc > 1 ? argv[1] : NULL, dir, sizeof dir) != TQ_OK) return fail("data");
    if (tq_dataset_load(&train, dir, TQ_SPLIT_TRAIN) != TQ_OK) return fail("training set");
    if (tq_dataset_load(&test, dir, TQ_SPLIT_TEST) != TQ_OK || tq_dataset_check_pair(&train, &test) != TQ_OK) {
        tq_dataset_free(&train);
        return fail("test set");
    }
    printf("data: %u training and %u test images of %ux%ux%u, %u classes\n", train.n, test.n, train.h, train.w, train.c,
           train.classes);

    /* 1. FP32: DigitsNet sized to the data, 2 epochs of Adam with a cosine schedule */
    tq_model model;
    tq_qmodel qmodel = {0};
    tq_agreement ag = {0};
    int rc = 1;
    if (tq_model_for_data(&model, "digitsnet", &train, 0) != TQ_OK) {
        rc = fail("model");
        goto done_data;
    }
    tq_train_cfg cfg;
    tq_train_cfg_defaults(&cfg);
    cfg.epochs = 2;
    cfg.callback = on_event;
    cfg.user = "fp32";
    tq_train_result res;
    printf("training %s\n", model.spec);
    if (tq_train(&model, &train, &test, &cfg, &res) != TQ_OK) {
        rc = fail("train");
        goto done;
    }

    /* 2. QAT: int8 weights per channel, int8 activations; fine-tune 1 epoch with fake quant */
    tq_qat_cfg qcfg;
    tq_qat_cfg_defaults(&qcfg);
    if (tq_model_quantize(&model, &qcfg) != TQ_OK) {
        rc = fail("quantize");
        goto done;
    }
    tq_train_cfg_qat(&cfg, &qcfg, 1, 0); /* the README's QAT recipe: Adam 1e-3, cosine, observers frozen last */
    cfg.callback = on_event;
    cfg.user = "qat";
    if (tq_train(&model, &train, &test, &cfg, &res) != TQ_OK) {
        rc = fail("qat");
        goto done;
    }

    /* 3. integers: int8 weights, int32 biases, M0/shift; then the integer-only path on the test set */
    if (tq_model_to_int8(&model, &qmodel) != TQ_OK) {
        rc = fail("convert");
        goto done;
    }
    if (tq_int8_agreement(&model, &qmodel, &test, &ag) != TQ_OK) {
        rc = fail("integer inference");
        goto done;
    }
    double same = 100.0 * (double)(ag.images - (uint32_t)ag.disagreements) / (double)ag.images;
    printf("integer path %.2f%%, simulation %.2f%%: the same prediction on %.2f%% of %u images, "
           "largest logit difference %d step(s)\n",
           (double)ag.int_acc, (double)ag.sim_acc, same, ag.images, ag.max_logit_diff);
    rc = same >= 99.9 ? 0 : 1;

done:
    tq_qmodel_free(&qmodel);
    tq_model_free(&model);
done_data:
    tq_dataset_free(&train);
    tq_dataset_free(&test);
    return rc;
}
