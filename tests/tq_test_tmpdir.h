/* A fresh temporary folder for the tests that write files: cmocka group setup/teardown; and a
 * check that two files hold the same bytes (include cmocka.h and src/fileio.h first). */
#ifndef TQ_TEST_TMPDIR_H
#define TQ_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];

static int tmpdir_setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/tq_test_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int tmpdir_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

#ifdef TQ_FILEIO_H
/* The files a and b hold the same bytes. */
__attribute__((unused)) static void assert_same_bytes(const char *a, const char *b) {
    unsigned char *d1, *d2;
    size_t n1, n2;
    assert_int_equal(tq_file_read_all(a, 1 << 24, &d1, &n1), TQ_OK);
    assert_int_equal(tq_file_read_all(b, 1 << 24, &d2, &n2), TQ_OK);
    assert_int_equal(n1, n2);
    assert_memory_equal(d1, d2, n1);
    tq_free(d1);
    tq_free(d2);
}
#endif

#endif
