/* The pool: workers sleep on a condition variable until a job is posted; each takes the next index
 * under the mutex until none is left; the caller takes indices too and then waits for the stragglers.
 * A training step posts a dozen small jobs, so both sides first spin briefly on the job counter
 * before sleeping: a futex round trip per job would cost as much as the job (in a VM, more).
 * The caller returns as soon as every index has finished (`pending` reaches 0), without waiting
 * for the workers to leave the job: a worker still on its way out only looks at the shared
 * counters under the mutex, and if the next job is posted by then it simply takes part in it. */
#include "src/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define TQ_SPIN 200000

#define TQ_MAX_THREADS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Held for the whole of a job: a second caller (another thread of the program using the library,
 * or a nested call) finds it taken and runs its indices inline instead: same results, no sharing. */
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_posted = PTHREAD_COND_INITIALIZER, job_done = PTHREAD_COND_INITIALIZER;
static pthread_t workers[TQ_MAX_THREADS];
static int n_workers;        /* threads besides the caller */
static atomic_uint generation; /* bumped for every job, and to stop the workers */
static atomic_int pending;      /* indices not finished yet in the current job */
static int stopping;
static void (*job_fn)(void *, int);
static void *job_ctx;
static int job_n, job_next; /* indices, the next to take */

static void run_indices(void) { /* called with mu held; returns with it held */
    while (job_next < job_n) {
        int i = job_next++;
        void (*fn)(void *, int) = job_fn;
        void *ctx = job_ctx;
        pthread_mutex_unlock(&mu);
        fn(ctx, i);
        int last = atomic_fetch_sub(&pending, 1) == 1;
        pthread_mutex_lock(&mu);
        if (last) pthread_cond_broadcast(&job_done); /* the caller may be asleep waiting for it */
    }
}

/* arg: the generation when the worker was created. Reading the counter when the thread first runs
 * instead would be wrong: a stop posted before that would then never be seen. */
static void *worker(void *arg) {
    pthread_mutex_lock(&mu);
    unsigned seen = (unsigned)(uintptr_t)arg;
    for (;;) {
        if (atomic_load(&generation) == seen) { /* spin a while outside the lock, then sleep */
            pthread_mutex_unlock(&mu);
            for (int k = 0; k < TQ_SPIN && atomic_load(&generation) == seen; k++) {
            }
            pthread_mutex_lock(&mu);
        }
        while (atomic_load(&generation) == seen) pthread_cond_wait(&job_posted, &mu);
        seen = atomic_load(&generation);
        if (stopping) break;
        run_indices();
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

void tq_parallel_set_threads(int n) {
    n = n < 1 ? 1 : n > TQ_MAX_THREADS ? TQ_MAX_THREADS : n;
    pthread_mutex_lock(&job_lock); /* no job runs while the pool changes */
    if (n - 1 == n_workers) {
        pthread_mutex_unlock(&job_lock);
        return;
    }
    pthread_mutex_lock(&mu); /* stop the old workers */
    stopping = 1;
    atomic_fetch_add(&generation, 1);
    pthread_cond_broadcast(&job_posted);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n_workers; i++) pthread_join(workers[i], NULL);
    stopping = 0;
    n_workers = 0;
    for (int i = 0; i < n - 1; i++) {
        void *born = (void *)(uintptr_t)atomic_load(&generation);
        if (pthread_create(&workers[i], NULL, worker, born) != 0) break; /* fewer threads: slower, same results */
        n_workers++;
    }
    pthread_mutex_unlock(&job_lock);
}

int tq_parallel_threads(void) { return n_workers + 1; }

void tq_parallel_for(int n, void (*fn)(void *ctx, int i), void *ctx) {
    if (n_workers == 0 || n <= 1 || pthread_mutex_trylock(&job_lock) != 0) {
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&mu);
    job_fn = fn;
    job_ctx = ctx;
    job_n = n;
    job_next = 0;
    atomic_store(&pending, n);
    atomic_fetch_add(&generation, 1);
    pthread_cond_broadcast(&job_posted);
    run_indices();
    pthread_mutex_unlock(&mu);
    for (int k = 0; k < TQ_SPIN && atomic_load(&pending) > 0; k++) {
    }
    pthread_mutex_lock(&mu);
    while (atomic_load(&pending) > 0) pthread_cond_wait(&job_done, &mu);
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&job_lock);
}
