/* A fresh temporary folder for the tests that write files: cmocka group setup/teardown. */
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

#endif
