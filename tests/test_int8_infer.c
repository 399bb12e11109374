/* The integer runtime: the reference layer against a plain int64 re-derivation, the MLP runner's
 * memory contract, the pixel mapping, and the fast host kernel bit-identical to the reference. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "src/alloc.h"
#include "src/int8_infer.h"
#include "src/qmodel.h"
#include "src/rng.h"

/* requant written again in 64-bit floor arithmetic (see test_requant.c) */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int32_t requant64(int64_t acc, int32_t M0, int32_t shift) {
    int64_t a = acc * ((int64_t)1 << (shift > 0 ? shift : 0));
    a = a > INT32_MAX ? INT32_MAX : a < INT32_MIN ? INT32_MIN : a;
    int64_t h = floor_div(a * M0 + ((int64_t)1 << 30), (int64_t)1 << 31);
    int e = shift < 0 ? -shift : 0;
    if (!e) return (int32_t)h;
    int64_t mag = h < 0 ? -h : h, r = (mag + ((int64_t)1 << (e - 1))) >> e;
    return (int32_t)(h < 0 ? -r : r);
}

typedef struct {
    int8_t w[64 * 100];
    int32_t b[64], m[64], s[64];
} layer_store;

static void random_layer(tq_rng *r, tq_s8_layer *L, layer_store *st, int in, int out, int relu) {
    for (int i = 0; i < in * out; i++) st->w[i] = (int8_t)((int)tq_rng_below(r, 255) - 127);
    for (int o = 0; o < out; o++) {
        st->b[o] = (int32_t)tq_rng_below(r, 20001) - 10000;
        st->m[o] = (1 << 30) + (int32_t)tq_rng_below(r, 1u << 30);
        st->s[o] = (int32_t)tq_rng_below(r, 12) - 11;
    }
    int32_t zy = (int32_t)tq_rng_below(r, 256) - 128;
    *L = (tq_s8_layer){in, out, st->w, st->b, st->m, st->s, (int32_t)tq_rng_below(r, 256) - 128, zy, relu ? zy : -128, 127};
}

static void linear_matches_int64_rederivation(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 41);
    static layer_store st;
    for (int trial = 0; trial < 300; trial++) {
        int in = 1 + (int)tq_rng_below(&r, 100), out = 1 + (int)tq_rng_below(&r, 64);
        tq_s8_layer L;
        random_layer(&r, &L, &st, in, out, trial & 1);
        int8_t x[100], y[64];
        for (int i = 0; i < in; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        tq_linear_s8_ref(&L, x, y);
        for (int o = 0; o < out; o++) {
            int64_t acc = L.bias[o];
            for (int i = 0; i < in; i++) acc += (int64_t)L.w[o * in + i] * ((int64_t)x[i] - L.in_zp);
            int64_t v = (int64_t)requant64(acc, L.mult[o], L.shift[o]) + L.out_zp;
            v = v < L.act_min ? L.act_min : v > L.act_max ? L.act_max : v;
            if (y[o] != (int8_t)v) fail_msg("trial %d output %d: kernel %d, re-derivation %lld", trial, o, y[o], (long long)v);
        }
    }
}

static void mlp_runner_contract(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 42);
    static layer_store a, b;
    tq_int8_mlp m = {2, {{0}}};
    random_layer(&r, &m.layer[0], &a, 20, 30, 1);
    random_layer(&r, &m.layer[1], &b, 30, 5, 0);
    m.layer[1].in_zp = m.layer[0].out_zp;
    assert_int_equal(tq_int8_mlp_scratch_bytes(&m), 60); /* two buffers of the widest (30) */
    int8_t x[20], y[5], y2[5], hidden[30], scratch[60];
    for (int i = 0; i < 20; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
    memset(scratch, 0x55, sizeof scratch); /* no pre-fill is required */
    assert_int_equal(tq_int8_mlp_run(&m, x, y, scratch, sizeof scratch), TQ_INT8_OK);
    tq_linear_s8_ref(&m.layer[0], x, hidden);
    tq_linear_s8_ref(&m.layer[1], hidden, y2);
    assert_memory_equal(y, y2, 5);
    assert_int_equal(tq_int8_mlp_run(&m, x, y, scratch, 59), TQ_INT8_E_ARG);
    /* predict_u8: pixel p becomes q = p - 128 */
    m.layer[0].in_zp = -128;
    uint8_t px[20];
    for (int i = 0; i < 20; i++) {
        px[i] = (uint8_t)tq_rng_below(&r, 256);
        x[i] = (int8_t)(px[i] - 128);
    }
    int8_t logits[5];
    int c = tq_int8_mlp_predict_u8(&m, px, logits, scratch, sizeof scratch);
    tq_int8_mlp_run(&m, x, y2, scratch, sizeof scratch);
    assert_memory_equal(logits, y2, 5);
    int best = 0;
    for (int k = 1; k < 5; k++)
        if (y2[k] > y2[best]) best = k;
    assert_int_equal(c, best);
}

/* A random integer model through the same conversion the real ones take. */
static void random_qmodel(tq_rng *r, tq_qmodel *q, const int *dims, int n_layers, float out_scale_mul) {
    tq_qlayer_src src[4];
    static float W[4][800 * 120], B[4][120], S[4][120];
    for (int l = 0; l < n_layers; l++) {
        int in = dims[l], out = dims[l + 1];
        for (int i = 0; i < in * out; i++) W[l][i] = tq_rng_uniform_in(r, -0.3f, 0.3f);
        for (int o = 0; o < out; o++) {
            B[l][o] = tq_rng_uniform_in(r, -0.2f, 0.2f);
            S[l][o] = tq_rng_uniform_in(r, 0.001f, 0.003f);
        }
        src[l] = (tq_qlayer_src){in, out, l < n_layers - 1, 8, W[l], B[l], S[l],
                                 l ? 0.05f : 1.0f / 255.0f, 0.05f * out_scale_mul, l ? -128 : -128, l < n_layers - 1 ? -128 : 3};
    }
    assert_int_equal(tq_qmodel_convert(q, "test", src, n_layers), TQ_OK);
}

static void fast_kernel_is_bit_identical(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 43);
    const int shapes[][5] = {{784, 100, 100, 10, 0}, {3, 5, 0, 0, 0}, {17, 33, 1, 0, 0}, {100, 10, 0, 0, 0}, {65, 16, 17, 0, 0}};
    const int nl[] = {3, 1, 2, 1, 2};
    int checked[TQ_KERNEL_VNNI + 1] = {0}, missing[TQ_KERNEL_VNNI + 1] = {0};
    for (int t = 0; t < 5; t++)
        for (int big = 0; big < 2; big++) { /* big: out scale 1000x smaller, so M > 1 and shift > 0 */
            tq_qmodel q;
            random_qmodel(&r, &q, shapes[t], nl[t], big ? 0.001f : 1.0f);
            if (big) {
                int any = 0;
                for (int l = 0; l < q.n_layers; l++)
                    for (int o = 0; o < q.layer[l].out; o++) any |= q.layer[l].shift[o] > 0;
                if (nl[t] > 1) assert_true(any); /* layer 0 (s_in = 1/255) stays below 1 */
            }
            enum { N = 37 }; /* not a multiple of the batch or of 4 */
            int in = q.layer[0].in, out = q.layer[q.n_layers - 1].out;
            uint8_t *px = tq_malloc((size_t)N * in), pf[N], pr[N];
            int8_t *lf = tq_malloc((size_t)N * out), *lr = tq_malloc((size_t)N * out);
            for (int i = 0; i < N * in; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
            tq_qfast *f;
            assert_int_equal(tq_qfast_init(&f, &q), TQ_OK);
            assert_int_equal(tq_qfast_run(f, px, N, lr, pr, TQ_KERNEL_REF), TQ_OK);
            /* every kernel this CPU has, against the reference */
            for (tq_kernel k = TQ_KERNEL_AVX2; k <= TQ_KERNEL_VNNI; k++) {
                if (tq_qfast_run(f, px, N, lf, pf, k) != TQ_OK) {
                    missing[k] = 1;
                    continue;
                }
                checked[k]++;
                for (int i = 0; i < N * out; i++)
                    if (lf[i] != lr[i]) fail_msg("shape %d: logit %d: %s %d, reference %d", t, i, tq_kernel_name(k), lf[i], lr[i]);
                assert_memory_equal(pf, pr, N);
                print_message("shape %d%s: %s kernel matches the reference on %d images\n", t, big ? " (M > 1)" : "",
                              tq_kernel_name(k), N);
            }
            tq_qfast_free(f);
            tq_free(px);
            tq_free(lf);
            tq_free(lr);
            tq_qmodel_free(&q);
        }
    /* A kernel the CPU lacks is a skip, said as one (cmocka counts it), never a silent pass;
     * the reference itself is always there, so at least one fast kernel or a skip is reported. */
    for (tq_kernel k = TQ_KERNEL_AVX2; k <= TQ_KERNEL_VNNI; k++) {
        if (missing[k]) assert_int_equal(checked[k], 0); /* a CPU has a kernel or not, never both */
        else assert_int_equal(checked[k], 10);
    }
}

/* One test per fast kernel, so a CPU without it shows a skipped test instead of a pass. */
static void kernel_available(void **state) {
    tq_kernel k = (tq_kernel)(intptr_t)*state;
    tq_qmodel q;
    tq_rng r;
    tq_rng_seed(&r, 5);
    const int shape[5] = {3, 5, 0, 0, 0};
    random_qmodel(&r, &q, shape, 1, 1.0f);
    tq_qfast *f;
    assert_int_equal(tq_qfast_init(&f, &q), TQ_OK);
    uint8_t px[3] = {1, 2, 3}, pred;
    int8_t logits[5];
    tq_status st = tq_qfast_run(f, px, 1, logits, &pred, k);
    tq_qfast_free(f);
    tq_qmodel_free(&q);
    if (st != TQ_OK) {
        print_message("the %s kernel is not available on this CPU: its bit-identity is not checked here\n", tq_kernel_name(k));
        skip();
    }
}

static int set_avx2(void **state) { *state = (void *)(intptr_t)TQ_KERNEL_AVX2; return 0; }
static int set_vnni(void **state) { *state = (void *)(intptr_t)TQ_KERNEL_VNNI; return 0; }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_matches_int64_rederivation),
        cmocka_unit_test(mlp_runner_contract),
        cmocka_unit_test(fast_kernel_is_bit_identical),
        cmocka_unit_test_setup(kernel_available, set_avx2),
        cmocka_unit_test_setup(kernel_available, set_vnni),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
