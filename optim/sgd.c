#include "optim/sgd.h"

#include <string.h>

#include "src/alloc.h"

tq_status tq_sgd_init(tq_sgd *o, size_t n, float lr, float momentum) {
    memset(o, 0, sizeof *o);
    if (n == 0 || !(lr > 0) || momentum < 0) TQ_FAIL(TQ_E_ARG, "sgd: need parameters, lr > 0, momentum >= 0");
    o->lr = lr;
    o->momentum = momentum;
    o->n = n;
    o->buf = tq_calloc(n, sizeof(float));
    if (!o->buf) TQ_FAIL(TQ_E_NOMEM, "sgd: cannot allocate state for %zu parameters", n);
    return TQ_OK;
}

void tq_sgd_step(tq_sgd *o, float *params, const float *grads) {
    float *restrict p = params, *restrict buf = o->buf;
    const float *restrict gr = grads;
    const uint8_t *restrict mask = o->decay_mask;
    const float mu = o->momentum, wd = o->weight_decay, lr = o->lr;
    const int first = o->t == 0;
    for (size_t i = 0; i < o->n; i++) {
        const int on = !mask || mask[i]; /* a parameter the mask exempts does not decay */
        float d = gr[i] + (on ? wd : 0.0f) * p[i];
        if (mu != 0.0f) {
            buf[i] = first ? d : mu * buf[i] + d;
            d = o->nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
    o->t++;
}

void tq_sgd_free(tq_sgd *o) {
    if (!o) return;
    tq_free(o->buf);
    o->buf = NULL;
}
