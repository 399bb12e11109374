/* The IDX reader and the dataset on small synthetic files, raw and gzip: good files load byte for
 * byte (3-D and 4-D images, any size), every kind of damage is refused with the right status and a
 * message naming the file, test sets are checked against their training set, the normalization is
 * the hand-computed one. The real MNIST set is read when $MNIST_DIR is set. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "data/dataset.h"
#include "src/alloc.h"

#include "tests/tq_test_tmpdir.h"

/* An IDX byte image: magic, dims (big-endian), then `data_len` payload bytes (i*7 mod 256, or
 * i mod 10 for labels). */
static size_t make_idx(unsigned char *out, uint32_t magic, const uint32_t *dims, int nd, size_t data_len, int labels) {
    size_t p = 0;
    uint32_t words[5] = {magic, 0, 0, 0, 0};
    for (int i = 0; i < nd; i++) words[1 + i] = dims[i];
    for (int i = 0; i <= nd; i++)
        for (int b = 3; b >= 0; b--) out[p++] = (unsigned char)(words[i] >> (8 * b));
    for (size_t i = 0; i < data_len; i++) out[p++] = (unsigned char)(labels ? i % 10 : (i * 7) % 256);
    return p;
}

static void write_file(const char *name, const unsigned char *d, size_t n, int gz) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, d, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(d, 1, n, f), n);
        fclose(f);
    }
}

static void remove_file(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(remove(path), 0);
}

static void clear_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -f %s/*", dir);
    assert_int_equal(system(cmd), 0);
}

static unsigned char buf[24 + 6 * 360 + 5 * 784 + 64];

/* A 5-image test split; `gz` selects gzip for both files. */
static void write_good(int gz) {
    uint32_t idim[3] = {5, 28, 28}, ldim[1] = {5};
    size_t n = make_idx(buf, 0x803, idim, 3, 5 * 784, 0);
    write_file(gz ? "t10k-images-idx3-ubyte.gz" : "t10k-images-idx3-ubyte", buf, n, gz);
    n = make_idx(buf, 0x801, ldim, 1, 5, 1);
    write_file(gz ? "t10k-labels-idx1-ubyte.gz" : "t10k-labels-idx1-ubyte", buf, n, gz);
}

static void expect_fail(tq_status want, const char *needle) {
    tq_dataset ds;
    tq_status st = tq_dataset_load(&ds, dir, TQ_SPLIT_TEST);
    if (st != want || !strstr(tq_last_error(), needle)) print_message("got %d: %s\n", st, tq_last_error());
    assert_int_equal(st, want);
    assert_non_null(strstr(tq_last_error(), needle));
    assert_null(ds.images);
}

static void good_files_load(void **state) {
    (void)state;
    for (int gz = 0; gz < 2; gz++) {
        clear_dir();
        write_good(gz);
        tq_dataset ds;
        assert_int_equal(tq_dataset_load(&ds, dir, TQ_SPLIT_TEST), TQ_OK);
        assert_int_equal(ds.n, 5);
        assert_int_equal(ds.h, 28);
        assert_int_equal(ds.w, 28);
        assert_int_equal(ds.c, 1);
        assert_int_equal(ds.classes, 5); /* labels 0..4 */
        assert_non_null(strstr(ds.source, "t10k-labels"));
        for (size_t i = 0; i < 5 * 784; i++) assert_int_equal(ds.images[i], (i * 7) % 256);
        for (int i = 0; i < 5; i++) assert_int_equal(ds.labels[i], i);
        tq_dataset_free(&ds);
        tq_dataset_free(&ds); /* idempotent */
    }
}

static void bad_headers(void **state) {
    (void)state;
    uint32_t ldim[1] = {5};
    struct {
        uint32_t magic, d0, d1, d2;
        const char *needle;
    } cases[] = {
        {0x802, 5, 28, 28, "bad IDX magic"},          /* 2 dimensions: not images */
        {0xd03, 5, 28, 28, "bad IDX magic"},          /* 0x0d: floats, not bytes */
        {0x803, 0, 28, 28, "dimension 0 is 0"},
        {0x803, 5, 0, 28, "dimension 1 is 0"},
        {0x803, 0x80000000u, 28, 28, "absurd"},        /* 2^31 images */
        {0x803, 0xffffffffu, 28, 28, "absurd"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        clear_dir();
        uint32_t idim[3] = {cases[c].d0, cases[c].d1, cases[c].d2};
        size_t plen = (uint64_t)idim[0] * idim[1] * idim[2] <= 5 * 784 ? (size_t)idim[0] * idim[1] * idim[2] : 0;
        size_t n = make_idx(buf, cases[c].magic, idim, 3, plen, 0);
        write_file("t10k-images-idx3-ubyte", buf, n, 0);
        n = make_idx(buf, 0x801, ldim, 1, 5, 1);
        write_file("t10k-labels-idx1-ubyte", buf, n, 0);
        expect_fail(TQ_E_FORMAT, cases[c].needle);
        assert_non_null(strstr(tq_last_error(), "t10k-images"));
    }
}

static void truncated_and_trailing(void **state) {
    (void)state;
    uint32_t idim[3] = {5, 28, 28}, ldim[1] = {5};
    size_t full = make_idx(buf, 0x803, idim, 3, 5 * 784, 0);
    size_t cuts[] = {0, 2, 6, 14, 16, 100, full - 1};
    for (int gz = 0; gz < 2; gz++)
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            clear_dir();
            make_idx(buf, 0x803, idim, 3, 5 * 784, 0);
            write_file("t10k-images-idx3-ubyte", buf, cuts[c], gz);
            size_t n = make_idx(buf, 0x801, ldim, 1, 5, 1);
            write_file("t10k-labels-idx1-ubyte", buf, n, 0);
            expect_fail(TQ_E_FORMAT, "truncated");
        }
    clear_dir();
    make_idx(buf, 0x803, idim, 3, 5 * 784 + 3, 0); /* 3 bytes too many */
    write_file("t10k-images-idx3-ubyte", buf, full + 3, 0);
    size_t n = make_idx(buf, 0x801, ldim, 1, 5, 1);
    write_file("t10k-labels-idx1-ubyte", buf, n, 0);
    expect_fail(TQ_E_FORMAT, "unexpected bytes");
}

static void corrupted_gzip(void **state) {
    (void)state;
    clear_dir();
    write_good(1);
    char path[256];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    /* flip bytes in the middle of the deflate stream (past the 10-byte gzip header) */
    for (long pos = 12; pos < len - 8; pos += 5) {
        fseek(f, pos, SEEK_SET);
        int c = fgetc(f);
        fseek(f, pos, SEEK_SET);
        fputc(c ^ 0x5a, f);
    }
    fclose(f);
    expect_fail(TQ_E_FORMAT, "t10k-images-idx3-ubyte.gz");
}

static void inconsistent_pair(void **state) {
    (void)state;
    uint32_t idim[3] = {5, 28, 28}, ldim[1] = {4};
    clear_dir();
    size_t n = make_idx(buf, 0x803, idim, 3, 5 * 784, 0);
    write_file("t10k-images-idx3-ubyte", buf, n, 0);
    n = make_idx(buf, 0x801, ldim, 1, 4, 1);
    write_file("t10k-labels-idx1-ubyte", buf, n, 0);
    expect_fail(TQ_E_FORMAT, "4 labels");
    /* labels file with the images' magic */
    n = make_idx(buf, 0x803, idim, 3, 5 * 784, 0);
    write_file("t10k-labels-idx1-ubyte", buf, n, 0);
    expect_fail(TQ_E_FORMAT, "t10k-labels");
}

static void missing_files(void **state) {
    (void)state;
    clear_dir();
    expect_fail(TQ_E_IO, "not found");
    assert_non_null(strstr(tq_last_error(), dir));
}

static void dataset_dir_order(void **state) {
    (void)state;
    char d[256];
    unsetenv("MNIST_DIR");
    assert_int_equal(tq_dataset_dir(NULL, NULL, d, sizeof d), TQ_OK);
    assert_string_equal(d, "data/mnist");
    setenv("MNIST_DIR", "/x/y", 1);
    assert_int_equal(tq_dataset_dir("mnist", NULL, d, sizeof d), TQ_OK);
    assert_string_equal(d, "/x/y");
    assert_int_equal(tq_dataset_dir("mnist", "/cli", d, sizeof d), TQ_OK);
    assert_string_equal(d, "/cli");
    setenv("FASHION_MNIST_DIR", "/f", 1);
    assert_int_equal(tq_dataset_dir("fashion-mnist", NULL, d, sizeof d), TQ_OK);
    assert_string_equal(d, "/f");
    unsetenv("FASHION_MNIST_DIR");
    assert_int_equal(tq_dataset_dir("fashion-mnist", NULL, d, sizeof d), TQ_OK); /* the test runs in the build folder */
    assert_string_equal(d, TQ_FASHION_MNIST_SYSTEM_DIR);
    assert_int_equal(tq_dataset_dir("cifar", NULL, d, sizeof d), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "unknown dataset 'cifar'"));
}

/* 4-D images (N x H x W x C) of another size, and a test set checked against its training set. */
static void other_shapes_and_pairs(void **state) {
    (void)state;
    clear_dir();
    uint32_t idim[4] = {6, 12, 10, 3}, ldim[1] = {6};
    size_t n = make_idx(buf, 0x804, idim, 4, 6 * 360, 0);
    write_file("train-images-idx4-ubyte.gz", buf, n, 1);
    n = make_idx(buf, 0x801, ldim, 1, 6, 0);
    for (int i = 0; i < 6; i++) buf[8 + i] = (unsigned char)(i % 3); /* 3 classes */
    write_file("train-labels-idx1-ubyte", buf, n, 0);
    tq_dataset tr, te;
    assert_int_equal(tq_dataset_load(&tr, dir, TQ_SPLIT_TRAIN), TQ_OK);
    assert_int_equal(tr.h, 12);
    assert_int_equal(tr.w, 10);
    assert_int_equal(tr.c, 3);
    assert_int_equal(tq_dataset_pixels(&tr), 360);
    assert_int_equal(tr.classes, 3);
    assert_int_equal(tr.images[359], (359 * 7) % 256);
    /* a test set of another shape is refused, naming both shapes */
    uint32_t tdim[3] = {2, 12, 10};
    n = make_idx(buf, 0x803, tdim, 3, 2 * 120, 0);
    write_file("t10k-images-idx3-ubyte", buf, n, 0);
    ldim[0] = 2;
    n = make_idx(buf, 0x801, ldim, 1, 2, 1);
    write_file("t10k-labels-idx1-ubyte", buf, n, 0);
    assert_int_equal(tq_dataset_load(&te, dir, TQ_SPLIT_TEST), TQ_OK);
    assert_int_equal(tq_dataset_check_pair(&tr, &te), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "12x10x1 but training images are 12x10x3"));
    tq_dataset_free(&te);
    /* the right shape, but a label the training set never had */
    uint32_t t4[4] = {2, 12, 10, 3};
    n = make_idx(buf, 0x804, t4, 4, 2 * 360, 0);
    write_file("t10k-images-idx4-ubyte", buf, n, 0);
    remove_file("t10k-images-idx3-ubyte");
    n = make_idx(buf, 0x801, ldim, 1, 2, 0);
    buf[8] = 1;
    buf[9] = 3;
    write_file("t10k-labels-idx1-ubyte", buf, n, 0);
    assert_int_equal(tq_dataset_load(&te, dir, TQ_SPLIT_TEST), TQ_OK);
    assert_int_equal(tq_dataset_check_pair(&tr, &te), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "label 3 at index 1, but the training labels are 0..2"));
    assert_non_null(strstr(tq_last_error(), "t10k-labels"));
    /* and against a model's outputs */
    assert_int_equal(tq_dataset_check_labels(&tr, 2), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "label 2 at index 2, but the model has 2 outputs"));
    assert_int_equal(tq_dataset_check_labels(&tr, 3), TQ_OK);
    tq_dataset_free(&te);
    tq_dataset_free(&tr);
}

/* mean and std of p/255 over every pixel, by hand: pixels {0, 255, 255, 0, 51, 102}
 * x = {0, 1, 1, 0, 0.2, 0.4}: mean 2.6/6 = 0.433333, E[x^2] = 2.2/6 = 0.366667,
 * var = 0.366667 - 0.187778 = 0.178889, std = 0.422953 -> 0.4333, 0.423 (four decimals) */
static void normalization_by_hand(void **state) {
    (void)state;
    uint8_t px[6] = {0, 255, 255, 0, 51, 102}, lab[2] = {0, 1};
    tq_dataset ds = {.n = 2, .h = 1, .w = 3, .c = 1, .classes = 2, .images = px, .labels = lab};
    float mean, sd;
    tq_dataset_norm(&ds, &mean, &sd);
    assert_float_equal(mean, 0.4333f, 1e-7f);
    assert_float_equal(sd, 0.4230f, 1e-7f);
}

/* A dataset from the caller's buffers: copied, its class count from the labels or given, bad
 * sizes refused; written as IDX (idx3, and idx4 with channels) and read back byte for byte. */
static void from_memory_and_idx_round_trip(void **state) {
    (void)state;
    uint8_t img[3 * 2 * 2 * 3], lab[3] = {0, 4, 2};
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 7);
    tq_dataset ds, back;
    assert_int_equal(tq_dataset_from_memory(&ds, img, lab, 3, 2, 2, 3, 0, "mine"), TQ_OK);
    assert_int_equal(ds.classes, 5);
    assert_string_equal(ds.source, "mine");
    img[0] = 99, lab[0] = 1; /* the dataset holds its own copy */
    assert_int_equal(ds.images[0], 0);
    assert_int_equal(ds.labels[0], 0);
    char ip[256], lp[256];
    snprintf(ip, sizeof ip, "%s/mem-images-idx4-ubyte", dir);
    snprintf(lp, sizeof lp, "%s/mem-labels-idx1-ubyte", dir);
    assert_int_equal(tq_dataset_save_idx(&ds, ip, lp), TQ_OK);
    assert_int_equal(tq_dataset_load_files(&back, ip, lp), TQ_OK);
    assert_true(back.n == 3 && back.h == 2 && back.w == 2 && back.c == 3 && back.classes == 5);
    assert_memory_equal(back.images, ds.images, sizeof img);
    assert_memory_equal(back.labels, ds.labels, 3);
    tq_dataset_free(&back);
    tq_dataset_free(&ds);
    /* one channel: idx3, which a folder of MNIST's names loads */
    assert_int_equal(tq_dataset_from_memory(&ds, img, lab, 3, 4, 3, 1, 10, NULL), TQ_OK);
    assert_int_equal(ds.classes, 10);
    snprintf(ip, sizeof ip, "%s/one-images-idx3-ubyte", dir);
    snprintf(lp, sizeof lp, "%s/one-labels-idx1-ubyte", dir);
    assert_int_equal(tq_dataset_save_idx(&ds, ip, lp), TQ_OK);
    FILE *f = fopen(ip, "rb");
    unsigned char head[4];
    assert_int_equal(fread(head, 1, 4, f), 4);
    fclose(f);
    assert_int_equal(head[3], 3);
    assert_int_equal(tq_dataset_load_files(&back, ip, lp), TQ_OK);
    assert_memory_equal(back.images, ds.images, 36);
    tq_dataset_free(&back);
    tq_dataset_free(&ds);
    /* refused: a size of 0, labels beyond the class count given, NULL buffers */
    assert_int_equal(tq_dataset_from_memory(&ds, img, lab, 0, 2, 2, 1, 0, NULL), TQ_E_ARG);
    assert_int_equal(tq_dataset_from_memory(&ds, img, lab, 3, 2, 0, 1, 0, NULL), TQ_E_ARG);
    assert_int_equal(tq_dataset_from_memory(&ds, img, lab, 3, 2, 2, 1, 3, "small"), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "small: label 4, but 3 classes"));
    assert_int_equal(tq_dataset_from_memory(&ds, NULL, lab, 3, 2, 2, 1, 0, NULL), TQ_E_ARG);
    assert_int_equal(tq_dataset_from_memory(&ds, img, lab, 3, 70000, 70000, 1, 0, NULL), TQ_E_ARG);
    assert_int_equal(tq_dataset_save_idx(&ds, ip, lp), TQ_E_ARG); /* an empty dataset */
}

static void real_mnist(void **state) {
    (void)state;
    const char *d = getenv("TQ_REAL_MNIST");
    if (!d || !*d) skip();
    tq_dataset tr, te;
    assert_int_equal(tq_dataset_load(&tr, d, TQ_SPLIT_TRAIN), TQ_OK);
    assert_int_equal(tq_dataset_load(&te, d, TQ_SPLIT_TEST), TQ_OK);
    assert_int_equal(tq_dataset_check_pair(&tr, &te), TQ_OK);
    assert_int_equal(tr.n, 60000);
    assert_int_equal(te.n, 10000);
    assert_int_equal(tr.classes, 10);
    assert_int_equal(tr.labels[0], 5); /* the famous first training digit */
    assert_int_equal(te.labels[0], 7);
    float mean, sd;
    tq_dataset_norm(&tr, &mean, &sd); /* the values everyone quotes for MNIST */
    assert_float_equal(mean, 0.1307f, 1e-7f);
    assert_float_equal(sd, 0.3081f, 1e-7f);
    tq_dataset_free(&tr);
    tq_dataset_free(&te);
}

int main(void) {
    /* dataset_dir_order changes MNIST_DIR: remember the real one first */
    const char *real = getenv("MNIST_DIR");
    if (real) setenv("TQ_REAL_MNIST", real, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_files_load),   cmocka_unit_test(bad_headers),     cmocka_unit_test(truncated_and_trailing),
        cmocka_unit_test(corrupted_gzip),    cmocka_unit_test(inconsistent_pair), cmocka_unit_test(missing_files),
        cmocka_unit_test(dataset_dir_order), cmocka_unit_test(other_shapes_and_pairs), cmocka_unit_test(normalization_by_hand),
        cmocka_unit_test(real_mnist),        cmocka_unit_test(from_memory_and_idx_round_trip),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
