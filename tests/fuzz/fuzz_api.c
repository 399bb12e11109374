/* The library's calls with arguments a fuzzer chooses: a program calling tinyqat with sizes,
 * names and counts it got wrong must get an error code, never a crash or undefined behaviour.
 *
 * The input is read as a script of small numbers (0..255). Part 1 builds a network of one to
 * three integer layers whose fields are all fuzzed except the values the runtime's header leaves
 * to the caller (weights, biases and multipliers within their stated ranges), with every buffer
 * the size its own layer's fields say; the runner must refuse a network whose layers do not fit
 * together before it touches the arena. Part 2 makes a dataset from memory with fuzzed sizes and
 * labels, a model from a fuzzed spec, and trains, evaluates, calibrates and converts it with
 * fuzzed configurations. */
#include "tests/fuzz/fuzz_common.h"

#include <string.h>

#include "pipeline/int8.h"
#include "pipeline/train.h"
#include "src/alloc.h"
#include "runtime/int8_infer.h"
#include "src/qmodel.h"

typedef struct {
    const uint8_t *p;
    size_t n, i;
} script;

static int next(script *s) { return s->i < s->n ? s->p[s->i++] : 0; }
static int pick(script *s, int lo, int hi) { return lo + next(s) % (hi - lo + 1); }

/* ---- part 1: the integer runner ---- */

static void runner(script *s) {
    tq_s8_layer L[3];
    int8_t *w[3] = {0}, *x = NULL, *y = NULL, *scratch = NULL;
    int32_t *bmw[3] = {0};
    const int n = pick(s, 1, 3);
    memset(L, 0, sizeof L);
    for (int l = 0; l < n; l++) {
        tq_s8_layer *a = &L[l];
        a->kind = pick(s, 0, 8); /* 8: no such kind */
        a->in_h = pick(s, 0, 6), a->in_w = pick(s, 0, 6), a->in_c = pick(s, 0, 5);
        a->out_h = pick(s, 0, 6), a->out_w = pick(s, 0, 6), a->out_c = pick(s, 0, 5);
        /* in and out: what the shape says, or (now and then) anything */
        a->in = next(s) < 230 ? a->in_h * a->in_w * a->in_c : pick(s, 0, 255);
        a->out = next(s) < 230 ? a->out_h * a->out_w * a->out_c : pick(s, 0, 255);
        a->k = pick(s, 0, 4), a->stride = pick(s, 0, 3), a->pad = pick(s, 0, 3);
        /* a graph's fields now and then: inputs from any layer (later ones included), a second
         * zero point, kernels k x kw with their own stride and padding across */
        if (next(s) < 64) a->src[0] = pick(s, 0, 3), a->src[1] = pick(s, 0, 3), a->in2_zp = pick(s, 0, 255) - 128, a->in2_c = pick(s, 0, 5);
        if (next(s) < 64) a->kw = pick(s, 0, 4), a->stride_w = pick(s, 0, 3), a->pad_w = pick(s, 0, 3);
        a->in_zp = pick(s, 0, 255) - 128, a->out_zp = pick(s, 0, 255) - 128;
        a->act_min = pick(s, 0, 255) - 128, a->act_max = pick(s, 0, 255) - 128;
        const int bits[4] = {0, 8, 4, 2};
        a->w_bits = bits[pick(s, 0, 3)];
        /* weights for what the fields describe (their count from the fields, never more than 4096) */
        const size_t kw = (size_t)(a->kw ? a->kw : a->k);
        size_t nw = a->kind == TQ_S8_DEPTHWISE ? (size_t)a->k * kw * a->out_c
                    : a->kind == TQ_S8_CONV      ? (size_t)a->out_c * a->k * kw * a->in_c
                                                 : (size_t)(a->out > 0 ? a->out : 0) * (size_t)(a->in > 0 ? a->in : 0);
        /* (an add's multipliers are three) */
        size_t nc = (size_t)(a->out_c > 3 ? a->out_c : 3) + (size_t)(a->out > 0 ? a->out : 0);
        if (nw <= 4096 && next(s) < 240) {
            w[l] = tq_calloc(nw + 1, 1);
            bmw[l] = tq_calloc(3 * nc, sizeof(int32_t));
            /* the caller's part of the contract: small weights, biases within the bound, valid multipliers */
            for (size_t i = 0; w[l] && i < nw; i++) w[l][i] = (int8_t)(pick(s, 0, 2) - 1);
            for (size_t i = 0; bmw[l] && i < nc; i++) {
                bmw[l][i] = pick(s, 0, 255) - 128;
                bmw[l][nc + i] = (1 << 30) + pick(s, 0, 255) * (1 << 21);
                bmw[l][2 * nc + i] = pick(s, 0, 40) - 31 + (next(s) == 255 ? 0 : 0); /* -31..9 */
                if (a->kind == TQ_S8_ADD && i < 2 && bmw[l][2 * nc + i] > 0) bmw[l][2 * nc + i] = 0; /* an add's inputs: M < 1 */
            }
            a->w = w[l];
            if (bmw[l]) a->bias = bmw[l], a->mult = bmw[l] + nc, a->shift = bmw[l] + 2 * nc;
        }
    }
    tq_int8_net net = {n, L};
    if (tq_int8_net_check(&net) == TQ_INT8_OK) {
        size_t sb = tq_int8_net_scratch_bytes(&net), pb = tq_int8_net_predict_scratch_bytes(&net);
        x = tq_calloc((size_t)L[0].in, 1), y = tq_calloc((size_t)L[n - 1].out, 1);
        scratch = tq_calloc((sb > pb ? sb : pb) + 1, 1);
        if (x && y && scratch) {
            if (tq_int8_net_run(&net, x, y, scratch, sb) != TQ_INT8_OK) abort(); /* checked, with room: it must run */
            (void)tq_int8_net_predict_u8(&net, (const uint8_t *)x, y, scratch, pb);
        }
    } else {
        /* refused: the runners refuse it too, whatever scratch they are given */
        static int8_t big[1 << 16];
        if (tq_int8_net_run(&net, big, big, big, sizeof big) != TQ_INT8_E_ARG) abort();
        if (tq_int8_net_predict_u8(&net, (const uint8_t *)big, big, big, sizeof big) != TQ_INT8_E_ARG) abort();
    }
    for (int l = 0; l < 3; l++) tq_free(w[l]), tq_free(bmw[l]);
    tq_free(x), tq_free(y), tq_free(scratch);
}

/* ---- part 2: the training pipeline ---- */

static void pipeline(script *s) {
    /* sizes of 0 now and then (refused), else 1.. */
    const uint32_t n = (uint32_t)(next(s) == 200 ? 0 : pick(s, 1, 40)), h = (uint32_t)pick(s, 1, 9), w = (uint32_t)pick(s, 1, 9),
                   c = (uint32_t)(next(s) == 200 ? 0 : pick(s, 1, 2));
    uint8_t img[40 * 9 * 9 * 2], lab[40];
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)next(s);
    for (size_t i = 0; i < sizeof lab; i++) lab[i] = (uint8_t)pick(s, 0, 4);
    tq_dataset ds;
    if (tq_dataset_from_memory(&ds, img, lab, n, h, w, c, (uint32_t)pick(s, 0, 6), "fuzz") != TQ_OK) return;
    static const char *specs[] = {"in-out", "in-4r-out", "in-c2k3r-m2-out", "in-c2k3p1br-out", "in-d2k2-a2-out", "in-3-3r-out",
                                  "in-c2k9-out", "digitsnet", "in-c1k1s2-out", "-in-out", "in-0-out"};
    tq_model m;
    if (tq_model_for_data(&m, specs[pick(s, 0, (int)(sizeof specs / sizeof specs[0]) - 1)], &ds, (uint64_t)next(s)) == TQ_OK) {
        tq_train_cfg cfg;
        tq_train_cfg_defaults(&cfg);
        static const char *optims[] = {"adam", "adamw", "sgd", "nadam"}, *scheds[] = {"cosine", "const", "Cosine"};
        cfg.epochs = pick(s, 0, 2);
        cfg.batch = pick(s, 0, 9);
        cfg.threads = pick(s, 0, 2);
        cfg.optim = optims[pick(s, 0, 3)];
        cfg.schedule = scheds[pick(s, 0, 2)];
        cfg.lr = (float)pick(s, 0, 3) * 1e-3f;
        cfg.weight_decay = (float)pick(s, 0, 2) * 1e-3f;
        (void)tq_train(&m, &ds, next(s) & 1 ? &ds : NULL, &cfg, next(s) & 1 ? NULL : &(tq_train_result){0});
        float acc;
        (void)tq_evaluate(&m, &ds, &acc, NULL, NULL);
        tq_qat_cfg qc;
        tq_qat_cfg_defaults(&qc);
        qc.w_bits = pick(s, 1, 9);
        tq_model q;
        if (tq_ptq(&q, &m, &qc, &ds, pick(s, 0, 2), 0) == TQ_OK) {
            (void)tq_evaluate(&q, &ds, &acc, NULL, NULL);
            if (next(s) & 1) (void)tq_gptq(&q, &ds, pick(s, 0, 2), 0);
            tq_qmodel qm;
            if (tq_model_to_int8(&q, &qm) == TQ_OK) {
                (void)tq_int8_evaluate(&qm, &ds, TQ_KERNEL_AUTO, &acc, NULL, NULL);
                tq_qmodel_free(&qm);
            }
            tq_model_free(&q);
        }
        tq_model_free(&m);
    }
    tq_dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    script s = {data, size, 0};
    if (size && data[0] & 1) pipeline(&s);
    else runner(&s);
    return 0;
}
