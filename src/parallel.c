/* The pool: workers sleep on a condition variable until a job is posted. Each participant (the
 * caller is participant 0, worker i is i + 1) first runs the indices of its home range, then takes
 * whatever is left of the others'. Home ranges are the same for every job of the same size, so a
 * batch slice is handled by the same core op after op and its data stays in that core's cache;
 * taking what is left keeps a late worker from holding the job up. An index is claimed by writing
 * the job's sequence number into its tag (compare and swap): it runs exactly once, and a worker
 * still holding an older job's description claims nothing (every tag it looks at is already at
 * least that job's number).
 *
 * A training step posts a dozen small jobs, so both sides first spin briefly before sleeping: a
 * futex round trip per job would cost as much as the job (in a VM, more). The caller returns as
 * soon as every index has finished (`pending` reaches 0). */
#include "src/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define TQ_SPIN 200000
#define TQ_MAX_THREADS 64
#define TQ_MAX_JOB 64 /* indices per posted job; a larger n is posted in parts */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Held for the whole of a job: a second caller (another thread of the program using the library,
 * or a nested call) finds it taken and runs its indices inline instead: same results, no sharing. */
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_posted = PTHREAD_COND_INITIALIZER, job_done = PTHREAD_COND_INITIALIZER;
static pthread_t workers[TQ_MAX_THREADS];
static atomic_int n_workers;                  /* threads besides the caller (read without a lock) */
static atomic_ullong generation;              /* bumped for every job, and to stop the workers */
static atomic_int pending;                    /* indices not finished yet in the current job */
static atomic_ullong tag[TQ_MAX_JOB];         /* the sequence number of the job that claimed index i */
static int stopping;
/* the current job, written under mu */
static void (*job_fn)(void *, int);
static void *job_ctx;
static int job_n, job_base;
static unsigned long long job_seq;

typedef struct {
    void (*fn)(void *, int);
    void *ctx;
    int n, base, me, parts;
    unsigned long long seq;
} job_view;

static int claim(int i, unsigned long long seq) {
    unsigned long long old = atomic_load(&tag[i]);
    while (old < seq)
        if (atomic_compare_exchange_weak(&tag[i], &old, seq)) return 1;
    return 0;
}

static void run_index(const job_view *v, int i) {
    v->fn(v->ctx, v->base + i);
    if (atomic_fetch_sub(&pending, 1) == 1) { /* the last one: the caller may be asleep waiting */
        pthread_mutex_lock(&mu);
        pthread_cond_broadcast(&job_done);
        pthread_mutex_unlock(&mu);
    }
}

/* participant v->me: its home range [n me / parts, n (me + 1) / parts), then the rest */
static void take(const job_view *v) {
    size_t lo, hi;
    tq_slice((size_t)v->n, v->me, v->parts, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        if (claim((int)i, v->seq)) run_index(v, (int)i);
    for (int i = 0; i < v->n; i++)
        if (claim(i, v->seq)) run_index(v, i);
}

typedef struct {
    unsigned long long born; /* the generation when the worker was created */
    int me;
} worker_arg;
static worker_arg worker_args[TQ_MAX_THREADS];

/* Reading the generation when the thread first runs instead of at its creation would be wrong: a
 * stop posted before that would then never be seen. */
static void *worker(void *arg) {
    const worker_arg *a = arg;
    unsigned long long seen = a->born;
    pthread_mutex_lock(&mu);
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
        job_view v = {job_fn, job_ctx, job_n, job_base, a->me, atomic_load(&n_workers) + 1, job_seq};
        pthread_mutex_unlock(&mu);
        take(&v);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

void tq_parallel_set_threads(int n) {
    n = n < 1 ? 1 : n > TQ_MAX_THREADS ? TQ_MAX_THREADS : n;
    pthread_mutex_lock(&job_lock); /* no job runs while the pool changes */
    if (n - 1 == atomic_load(&n_workers)) {
        pthread_mutex_unlock(&job_lock);
        return;
    }
    pthread_mutex_lock(&mu); /* stop the old workers */
    stopping = 1;
    atomic_fetch_add(&generation, 1);
    pthread_cond_broadcast(&job_posted);
    pthread_mutex_unlock(&mu);
    for (int i = 0, w = atomic_load(&n_workers); i < w; i++) pthread_join(workers[i], NULL);
    stopping = 0;
    atomic_store(&n_workers, 0);
    for (int i = 0; i < n - 1; i++) {
        worker_args[i] = (worker_arg){atomic_load(&generation), i + 1};
        if (pthread_create(&workers[i], NULL, worker, &worker_args[i]) != 0) break; /* fewer threads: slower, same results */
        atomic_fetch_add(&n_workers, 1);
    }
    pthread_mutex_unlock(&job_lock);
}

int tq_parallel_threads(void) { return atomic_load(&n_workers) + 1; }

/* one posted job of n <= TQ_MAX_JOB indices base .. base + n - 1; called with job_lock held */
static void post(int base, int n, void (*fn)(void *ctx, int i), void *ctx) {
    pthread_mutex_lock(&mu);
    job_fn = fn;
    job_ctx = ctx;
    job_n = n;
    job_base = base;
    atomic_store(&pending, n);
    job_seq = atomic_fetch_add(&generation, 1) + 1;
    job_view v = {fn, ctx, n, base, 0, atomic_load(&n_workers) + 1, job_seq};
    pthread_cond_broadcast(&job_posted);
    pthread_mutex_unlock(&mu);
    take(&v);
    for (int k = 0; k < TQ_SPIN && atomic_load(&pending) > 0; k++) {
    }
    pthread_mutex_lock(&mu);
    while (atomic_load(&pending) > 0) pthread_cond_wait(&job_done, &mu);
    pthread_mutex_unlock(&mu);
}

void tq_parallel_for(int n, void (*fn)(void *ctx, int i), void *ctx) {
    if (atomic_load(&n_workers) == 0 || n <= 1 || pthread_mutex_trylock(&job_lock) != 0) {
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    for (int base = 0; base < n; base += TQ_MAX_JOB) post(base, n - base < TQ_MAX_JOB ? n - base : TQ_MAX_JOB, fn, ctx);
    pthread_mutex_unlock(&job_lock);
}
