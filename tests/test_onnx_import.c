/* The ONNX importer (pipeline/onnx_import.c): tinyqat's own float export read back gives the same
 * model, parameter for parameter (a convolution, batch norm, ReLU, pools, a depthwise stage, dense
 * layers after a flatten, the normalization, and a graph: adds, a branch, a K x L kernel, ReLU6); the normalization a caller states is added to the
 * graph's own; and damaged files (every prefix of a valid one, bytes changed at random, lengths
 * and counts that point past the end) are refused with a message naming the file, never read
 * past (the sanitizer builds run this). PyTorch's models are tests/onnx_import_test.sh. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "layers/model.h"
#include "pipeline/onnx.h"
#include "pipeline/onnx_import.h"
#include "src/alloc.h"
#include "src/fileio.h"
#include "src/rng.h"

#include "tests/tq_test_tmpdir.h"

static void make_model(tq_model *m, const char *spec) {
    assert_int_equal(tq_model_init(m, spec), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 11);
    tq_model_init_params(m, &r);
    for (int s = 0; s < m->n_stages; s++)
        if (m->unit[s].bn)
            for (int c = 0; c < m->unit[s].conv.OC; c++) {
                m->unit[s].running_mean[c] = tq_rng_uniform_in(&r, -0.5f, 0.5f);
                m->unit[s].running_var[c] = tq_rng_uniform_in(&r, 0.5f, 2.0f);
                m->unit[s].gamma[c] = tq_rng_uniform_in(&r, 0.5f, 1.5f);
            }
}

static void export_bytes(const tq_model *m, unsigned char **data, size_t *len) {
    char path[128];
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    assert_int_equal(tq_export_onnx_float(m, path, 0), TQ_OK);
    assert_int_equal(tq_file_read_all(path, 1 << 24, data, len), TQ_OK);
}

static void same_model(const tq_model *a, const tq_model *b) {
    assert_string_equal(a->spec, b->spec);
    assert_int_equal(a->n_params, b->n_params);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_int_equal(a->n_buffers, b->n_buffers);
    if (a->n_buffers) assert_memory_equal(a->buffers, b->buffers, a->n_buffers * sizeof(float));
}

static void export_then_import_is_the_same_model(void **state) {
    (void)state;
    /* the last: a graph with a 3x2 kernel padded by rows only, ReLU6, adds, a branch and a
     * non-square global pool, in the names the importer gives (n and the stage's position) */
    const char *specs[] = {"6x6x2-c3k3p1br-m2-d2k2r-5r-3", "784-20r-10", "9x9x3-c4k3s2-a2-4", "5x5x1-c2k5r-2",
                           "8x6x2-c4k3x2p1x0br6@n1-c4k1b-+n1-r@n3-d1k3p1br-c4k1@n5-~n3-c4k1-+n5-g-3"};
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        tq_model m, back;
        make_model(&m, specs[k]);
        m.in_mean = 0.25f, m.in_std = 0.5f;
        unsigned char *data;
        size_t len;
        export_bytes(&m, &data, &len);
        tq_onnx_info info;
        assert_int_equal(tq_import_onnx_bytes(&back, data, len, "m.onnx", NAN, NAN, &info), TQ_OK);
        same_model(&m, &back);
        assert_true(back.in_mean == 0.25f && back.in_std == 0.5f);
        assert_int_equal(info.softmax_dropped, 0);
        tq_model_free(&back);
        /* a stated normalization comes before the graph's own: (p/255 - 1) / 2, then - 0.25, / 0.5 */
        assert_int_equal(tq_import_onnx_bytes(&back, data, len, "m.onnx", 1.0f, 2.0f, NULL), TQ_OK);
        assert_true(back.in_mean == 1.0f + 0.25f * 2.0f && back.in_std == 1.0f);
        tq_model_free(&back);
        /* with a final softmax: left out, and said */
        char path[128];
        snprintf(path, sizeof path, "%s/s.onnx", dir);
        assert_int_equal(tq_export_onnx_float(&m, path, 1), TQ_OK);
        assert_int_equal(tq_import_onnx(&back, path, NAN, NAN, &info), TQ_OK);
        assert_int_equal(info.softmax_dropped, 1);
        same_model(&m, &back);
        tq_model_free(&back);
        tq_free(data);
        tq_model_free(&m);
    }
}

static void damaged_files_are_refused(void **state) {
    (void)state;
    tq_model m, back;
    make_model(&m, "6x6x2-c3k3p1br-m2-d2k2r-5r-3");
    unsigned char *data;
    size_t len;
    export_bytes(&m, &data, &len);
    /* every prefix: refused (the graph, its nodes, its weights are cut), never read past */
    for (size_t n = 0; n < len; n++) {
        tq_status st = tq_import_onnx_bytes(&back, data, n, "cut.onnx", NAN, NAN, NULL);
        if (st == TQ_OK) {
            tq_model_free(&back);
            continue; /* a cut in the last fields (the model's doc string) can leave a whole graph */
        }
        assert_non_null(strstr(tq_last_error(), "cut.onnx"));
        assert_int_equal(back.n_params, 0); /* nothing half made */
    }
    assert_int_not_equal(tq_import_onnx_bytes(&back, data, len / 2, "cut.onnx", NAN, NAN, NULL), TQ_OK);
    /* bytes changed at random: an answer either way, never a crash */
    unsigned char *bent = tq_malloc(len);
    tq_rng r;
    tq_rng_seed(&r, 5);
    int refused = 0;
    for (int t = 0; t < 400; t++) {
        memcpy(bent, data, len);
        for (int k = 0; k < 4; k++) bent[(size_t)(tq_rng_uniform(&r) * (float)len) % len] = (unsigned char)(tq_rng_uniform(&r) * 256.0f);
        if (tq_import_onnx_bytes(&back, bent, len, "bent.onnx", NAN, NAN, NULL) == TQ_OK) tq_model_free(&back);
        else refused++;
    }
    assert_true(refused > 0);
    /* a length that points past the end; a varint that never ends; nothing */
    const unsigned char past[] = {0x3a, 0xff, 0xff, 0xff, 0x0f, 0x0a}, endless[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(tq_import_onnx_bytes(&back, past, sizeof past, "past.onnx", NAN, NAN, NULL), TQ_E_FORMAT);
    assert_int_equal(tq_import_onnx_bytes(&back, endless, sizeof endless, "endless.onnx", NAN, NAN, NULL), TQ_E_FORMAT);
    assert_int_not_equal(tq_import_onnx_bytes(&back, data, 0, "empty.onnx", NAN, NAN, NULL), TQ_OK);
    assert_int_equal(tq_import_onnx_bytes(&back, data, len, "m.onnx", NAN, -1.0f, NULL), TQ_E_ARG);
    assert_int_equal(tq_import_onnx(&back, "/nonexistent/m.onnx", NAN, NAN, NULL), TQ_E_IO);
    tq_free(bent);
    tq_free(data);
    tq_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(export_then_import_is_the_same_model), cmocka_unit_test(damaged_files_are_refused)};
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
