#include "src/observer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/parallel.h"
#include "src/simd.h"

void tq_observer_init(tq_observer *o, tq_obs_kind kind) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->momentum = 0.01f;
    o->percentile = 99.99f;
}

void tq_observer_free(tq_observer *o) {
    if (!o) return;
    tq_free(o->scratch);
    o->scratch = NULL;
    o->scratch_cap = 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between order statistics (numpy's default "linear" method). */
static float quantile_sorted(const float *v, size_t n, double q) {
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n) return v[n - 1];
    double f = pos - (double)i;
    return (float)((1.0 - f) * v[i] + f * v[i + 1]);
}

/* The range of x[0..n) and whether a NaN or Inf is among them (exponent bits all ones), without
 * branches so that it vectorizes: for finite values the compare-and-select is exactly min / max. */
TQ_SIMD_CLONES static void range_of(const float *restrict x, size_t n, float *mn, float *mx, uint32_t *bad) {
    float lo = x[0], hi = x[0];
    uint32_t b = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        b |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    *mn = lo, *mx = hi, *bad = b;
}

/* Large tensors (a convolution's activations) in slices on the thread pool; min and max are
 * exact in any order, so the result is the same. */
typedef struct {
    const float *x;
    size_t n;
    float mn[TQ_SLICES], mx[TQ_SLICES];
    uint32_t bad[TQ_SLICES];
} range_job;

static void range_chunk(void *ctx, int t) {
    range_job *j = ctx;
    size_t a, b;
    tq_slice(j->n, t, TQ_SLICES, &a, &b);
    if (b > a) range_of(j->x + a, b - a, &j->mn[t], &j->mx[t], &j->bad[t]);
    else j->mn[t] = j->mx[t] = j->x[0], j->bad[t] = 0;
}

tq_status tq_observer_observe(tq_observer *o, const float *x, size_t n) {
    if (o->frozen || n == 0) return TQ_OK;
    float bmin, bmax;
    uint32_t bad;
    if (n >= TQ_SLICE_MIN) {
        range_job j = {.x = x, .n = n};
        tq_parallel_for(TQ_SLICES, range_chunk, &j);
        bmin = j.mn[0], bmax = j.mx[0], bad = j.bad[0];
        for (int t = 1; t < TQ_SLICES; t++) {
            bmin = j.mn[t] < bmin ? j.mn[t] : bmin;
            bmax = j.mx[t] > bmax ? j.mx[t] : bmax;
            bad |= j.bad[t];
        }
    } else {
        range_of(x, n, &bmin, &bmax, &bad);
    }
    if (bad) TQ_FAIL(TQ_E_NUMERIC, "observer: a NaN or Inf among the values observed");
    if (o->kind == TQ_OBS_PERCENTILE) {
        if (n > o->scratch_cap) {
            float *p = tq_realloc(o->scratch, n * sizeof(float));
            if (!p) TQ_FAIL(TQ_E_NOMEM, "observer: cannot allocate %zu floats", n);
            o->scratch = p;
            o->scratch_cap = n;
        }
        memcpy(o->scratch, x, n * sizeof(float));
        qsort(o->scratch, n, sizeof(float), cmp_float);
        double q = o->percentile / 100.0;
        bmin = quantile_sorted(o->scratch, n, 1.0 - q);
        bmax = quantile_sorted(o->scratch, n, q);
    }
    if (o->n_seen == 0) {
        o->min = bmin;
        o->max = bmax;
    } else if (o->kind == TQ_OBS_MINMAX) {
        o->min = fminf(o->min, bmin);
        o->max = fmaxf(o->max, bmax);
    } else if (o->kind == TQ_OBS_EMA) {
        o->min += o->momentum * (bmin - o->min);
        o->max += o->momentum * (bmax - o->max);
    } else { /* percentile: running mean of the per-batch quantiles */
        double k = (double)o->n_seen;
        o->min = (float)((o->min * k + bmin) / (k + 1));
        o->max = (float)((o->max * k + bmax) / (k + 1));
    }
    o->n_seen++;
    return TQ_OK;
}

tq_status tq_observer_qparams(const tq_observer *o, int32_t qmin, int32_t qmax, tq_qparams *out) {
    if (o->n_seen == 0) TQ_FAIL(TQ_E_ARG, "observer: asked for qparams before seeing any data (calibrate first)");
    return tq_qparams_affine(o->min, o->max, qmin, qmax, out);
}

int tq_obs_kind_parse(const char *name) {
    if (!strcmp(name, "minmax")) return TQ_OBS_MINMAX;
    if (!strcmp(name, "ema")) return TQ_OBS_EMA;
    if (!strcmp(name, "percentile")) return TQ_OBS_PERCENTILE;
    return -1;
}

const char *tq_obs_kind_name(tq_obs_kind k) {
    return k == TQ_OBS_MINMAX ? "minmax" : k == TQ_OBS_EMA ? "ema" : "percentile";
}
