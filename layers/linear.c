#include "layers/linear.h"

#include <math.h>

#include "src/ops.h"

void tq_linear_init(float *W, float *b, int in, int out, tq_rng *rng) {
    float bound = 1.0f / sqrtf((float)in);
    for (int i = 0; i < out * in; i++) W[i] = tq_rng_uniform_in(rng, -bound, bound);
    for (int o = 0; o < out; o++) b[o] = tq_rng_uniform_in(rng, -bound, bound);
}

tq_node *tq_linear(tq_graph *g, tq_node *x, tq_node *W, tq_node *b) {
    return tq_add_bias(g, tq_matmul_bt(g, x, W), b);
}
