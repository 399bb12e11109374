/* .npy read and write (data/npy.c): what tinyqat writes reads back (int8, float32, 1-D and 2-D),
 * headers as NumPy writes them in versions 1 and 2 (uint8, float64, a scalar), and every way a
 * file can be wrong refused naming it: not .npy, a version, another type, big-endian, Fortran
 * order, a shape that does not meet the data (short or long), a header cut short. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "data/npy.h"
#include "src/alloc.h"
#include "src/fileio.h"

#include "tests/tq_test_tmpdir.h"

static char path[256];

/* a .npy with this header dict and data (version major, the header padded as NumPy pads it) */
static void write_raw(int major, const char *dict, const void *data, size_t n) {
    char hdr[512];
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict) + 1;
    size_t pad = (64 - (pre + len) % 64) % 64;
    snprintf(hdr, sizeof hdr, "%s%*s\n", dict, (int)pad, "");
    size_t hl = strlen(hdr);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("\x93NUMPY", 1, 6, f);
    fputc(major, f), fputc(0, f);
    fputc((int)(hl & 0xff), f), fputc((int)(hl >> 8), f);
    if (major > 1) fputc(0, f), fputc(0, f);
    fwrite(hdr, 1, hl, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void written_arrays_read_back(void **state) {
    (void)state;
    snprintf(path, sizeof path, "%s/a.npy", dir);
    const int8_t q[6] = {-128, -1, 0, 1, 2, 127};
    const int64_t s23[2] = {2, 3}, s6[1] = {6};
    tq_npy a;
    assert_int_equal(tq_npy_write(path, TQ_NPY_I8, s23, 2, q), TQ_OK);
    assert_int_equal(tq_npy_read(&a, path), TQ_OK);
    assert_true(a.type == TQ_NPY_I8 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.count == 6);
    assert_memory_equal(a.data, q, 6);
    tq_npy_free(&a);
    unsigned char *raw;
    size_t len;
    assert_int_equal(tq_file_read_all(path, 1 << 20, &raw, &len), TQ_OK);
    assert_int_equal((len - 6) % 64, 0); /* the data 64-byte aligned, as NumPy aligns it */
    assert_int_equal(raw[len - 7], '\n');
    tq_free(raw);
    const float v[6] = {0.5f, -1.25f, 3e-8f, 1e30f, 0.0f, -0.0f};
    assert_int_equal(tq_npy_write(path, TQ_NPY_F32, s6, 1, v), TQ_OK);
    assert_int_equal(tq_npy_read(&a, path), TQ_OK);
    assert_true(a.type == TQ_NPY_F32 && a.ndim == 1 && a.shape[0] == 6);
    assert_memory_equal(a.data, v, sizeof v);
    tq_npy_free(&a);
    /* NumPy's own headers: version 2, uint8 in three dimensions; float64; a scalar */
    const uint8_t px[8] = {0, 1, 2, 3, 252, 253, 254, 255};
    write_raw(2, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2), }", px, 8);
    assert_int_equal(tq_npy_read(&a, path), TQ_OK);
    assert_true(a.type == TQ_NPY_U8 && a.ndim == 3 && a.count == 8);
    assert_memory_equal(a.data, px, 8);
    tq_npy_free(&a);
    const double d[2] = {0.25, -4.0};
    write_raw(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", d, sizeof d);
    assert_int_equal(tq_npy_read(&a, path), TQ_OK);
    assert_true(a.type == TQ_NPY_F64 && a.count == 2 && ((double *)a.data)[1] == -4.0);
    tq_npy_free(&a);
    write_raw(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", v, 4);
    assert_int_equal(tq_npy_read(&a, path), TQ_OK);
    assert_true(a.ndim == 0 && a.count == 1);
    tq_npy_free(&a);
}

static void bad_files_are_refused(void **state) {
    (void)state;
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    const float v[4] = {1, 2, 3, 4};
    struct {
        int major;
        const char *dict;
        size_t n;
        const char *want;
    } cases[] = {
        {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", 16, "data type '>f4'"},
        {1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", 8, "data type '<f2'"},
        {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "Fortran"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 16, "cut short"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 16, "after the data"},
        {1, "{'descr': '<f4', 'fortran_order': False, }", 16, "no 'shape'"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,", 16, "not closed"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 99999999999), }", 16, "larger than"},
        {1, "{'fortran_order': False, 'shape': (4,), }", 16, "no 'descr'"},
        {7, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 16, "version 7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw(cases[i].major, cases[i].dict, v, cases[i].n);
        tq_npy a;
        assert_int_equal(tq_npy_read(&a, path), TQ_E_FORMAT);
        assert_null(a.data);
        if (!strstr(tq_last_error(), cases[i].want) || !strstr(tq_last_error(), "bad.npy"))
            fail_msg("case %zu: '%s' does not say '%s'", i, tq_last_error(), cases[i].want);
    }
    /* not .npy at all; a header longer than the file */
    FILE *f = fopen(path, "wb");
    fputs("just some text that is long enough", f);
    fclose(f);
    tq_npy a;
    assert_int_equal(tq_npy_read(&a, path), TQ_E_FORMAT);
    f = fopen(path, "wb");
    fwrite("\x93NUMPY\x01\x00\xff\x7f{'descr'", 1, 17, f);
    fclose(f);
    assert_int_equal(tq_npy_read(&a, path), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "cut short in its header"));
    /* a header, and the file, that end inside 'fortran_order''s value (the fuzzer's find: the
     * reader compared past the end of the file's buffer) */
    {
        static const char h[] = "{'descr': '<f4', 'fortran_order': Tr";
        unsigned char *buf = tq_malloc(10 + sizeof h - 1);
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (unsigned char)(sizeof h - 1), buf[9] = 0;
        memcpy(buf + 10, h, sizeof h - 1);
        f = fopen(path, "wb");
        fwrite(buf, 1, 10 + sizeof h - 1, f);
        fclose(f);
        tq_free(buf);
        assert_int_equal(tq_npy_read(&a, path), TQ_E_FORMAT);
        assert_non_null(strstr(tq_last_error(), "neither True nor False"));
    }
    snprintf(path, sizeof path, "%s/none.npy", dir);
    assert_int_equal(tq_npy_read(&a, path), TQ_E_IO);
    const int64_t s[1] = {1};
    assert_int_equal(tq_npy_write(path, TQ_NPY_U8, s, 1, v), TQ_E_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(written_arrays_read_back), cmocka_unit_test(bad_files_are_refused)};
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
