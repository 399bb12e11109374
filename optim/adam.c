#include "optim/adam.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"
#include "src/simd.h"

tq_status tq_adam_init(tq_adam *o, size_t n, float lr) {
    memset(o, 0, sizeof *o);
    if (n == 0 || !(lr > 0)) TQ_FAIL(TQ_E_ARG, "adam: need parameters and a positive learning rate");
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->n = n;
    o->m = tq_calloc(n, sizeof(float));
    o->v = tq_calloc(n, sizeof(float));
    if (!o->m || !o->v) {
        tq_adam_free(o);
        TQ_FAIL(TQ_E_NOMEM, "adam: cannot allocate state for %zu parameters", n);
    }
    return TQ_OK;
}

/* The update proper: elementwise, so the AVX2 clone computes exactly what the SSE2 one does. */
TQ_SIMD_CLONES static void adam_update(float *restrict p, float *restrict m, float *restrict v, const float *restrict gr,
                                       size_t n, float b1, float b2, float eps, float step, float inv_sqrt_bc2,
                                       float decay, float l2, const uint8_t *restrict mask) {
    for (size_t i = 0; i < n; i++) {
        const int on = !mask || mask[i]; /* a parameter the mask exempts gets neither L2 nor AdamW's decay */
        float g = gr[i] + (on ? l2 : 0.0f) * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        p[i] = p[i] * (on ? decay : 1.0f) - step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
    }
}

void tq_adam_step(tq_adam *o, float *params, const float *grads) {
    o->t++;
    /* Bias corrections in double: b^t for large t underflows gracefully either way, but double
     * keeps step 1's correction exact (1 - 0.9 = 0.1). */
    const float step = (float)(o->lr / (1.0 - pow(o->beta1, (double)o->t)));
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(o->beta2, (double)o->t)));
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = o->weight_decay;
    const float decay = o->decoupled ? 1.0f - o->lr * wd : 1.0f, l2 = o->decoupled ? 0.0f : wd;
    /* restrict (the four arrays never overlap) lets the loop vectorize; it is ~10% of a
     * training step otherwise. */
    adam_update(params, o->m, o->v, grads, o->n, b1, b2, eps, step, inv_sqrt_bc2, decay, l2, o->decay_mask);
}

void tq_adam_free(tq_adam *o) {
    if (!o) return;
    tq_free(o->m);
    tq_free(o->v);
    o->m = o->v = NULL;
}
