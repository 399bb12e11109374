/* Channel concat: y = [a, b] along the channels of two NHWC images of one height and width (a's
 * C1 channels first, then b's C2), the join an Inception block or a U-Net's skip makes.
 * backward: da += dy's first C1 channels of every position, db += its last C2. */
#ifndef TQ_CONCAT_H
#define TQ_CONCAT_H

#include "../src/autograd.h"

typedef struct {
    int c[2]; /* channels of a and of b; the positions follow from the tensors' columns */
} tq_concat_shape;

/* a: [batch][P * c[0]], b: [batch][P * c[1]] -> [batch][P * (c[0] + c[1])]. The shape must outlive
 * the graph (a model's stage holds it). A P that differs is TQ_E_SHAPE in the graph's status. */
tq_node *tq_concat(tq_graph *g, tq_node *a, tq_node *b, const tq_concat_shape *cs);

#endif
