/* The thread pool (src/parallel.c): every index runs exactly once whatever the thread count; a
 * nested call and two threads of the program calling at the same time both complete, correctly
 * (the second runs inline); resizing the pool works between jobs. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "src/parallel.h"

enum { N = 997 };

typedef struct {
    int hits[N];
    int nested;   /* 1: each index also runs a small nested job */
    int inner[N];
} job;

static void inner_fn(void *ctx, int i) { ((int *)ctx)[i]++; }

static void fn(void *ctx, int i) {
    job *j = ctx;
    __atomic_add_fetch(&j->hits[i], 1, __ATOMIC_RELAXED);
    if (j->nested) {
        int local[3] = {0, 0, 0};
        tq_parallel_for(3, inner_fn, local); /* must not deadlock: runs inline */
        j->inner[i] = local[0] + local[1] + local[2];
    }
}

static void every_index_once(void **state) {
    (void)state;
    static job j;
    const int counts[] = {1, 2, 4, 2, 1};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        tq_parallel_set_threads(counts[c]);
        assert_int_equal(tq_parallel_threads(), counts[c]);
        for (int rep = 0; rep < 50; rep++) {
            memset(&j, 0, sizeof j);
            j.nested = rep % 2;
            tq_parallel_for(N, fn, &j);
            for (int i = 0; i < N; i++) {
                assert_int_equal(j.hits[i], 1);
                if (j.nested) assert_int_equal(j.inner[i], 3);
            }
        }
    }
}

/* Many small jobs back to back, as a training step posts them: a worker that wakes late still
 * holds the previous job's description and must claim nothing of the next one. */
static void small_jobs_back_to_back(void **state) {
    (void)state;
    static job j;
    const int counts[] = {2, 3, 4};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        tq_parallel_set_threads(counts[c]);
        for (int rep = 0; rep < 20000; rep++) {
            int n = 1 + rep % 5;
            for (int i = 0; i < n; i++) j.hits[i] = 0;
            tq_parallel_for(n, fn, &j);
            for (int i = 0; i < n; i++)
                if (j.hits[i] != 1) fail_msg("%d threads, job %d of %d indices: index %d ran %d times", counts[c], rep, n, i, j.hits[i]);
        }
    }
    tq_parallel_set_threads(1);
}

static void *caller(void *arg) {
    job *j = arg;
    for (int rep = 0; rep < 200; rep++) {
        memset(j->hits, 0, sizeof j->hits);
        tq_parallel_for(N, fn, j);
        for (int i = 0; i < N; i++)
            if (j->hits[i] != 1) return (void *)1;
    }
    return NULL;
}

static void two_callers_at_once(void **state) {
    (void)state;
    tq_parallel_set_threads(2);
    static job a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, caller, &a), 0);
    void *mine = caller(&b), *theirs = NULL;
    pthread_join(t, &theirs);
    assert_null(mine);
    assert_null(theirs);
    tq_parallel_set_threads(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_index_once), cmocka_unit_test(small_jobs_back_to_back),
        cmocka_unit_test(two_callers_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
