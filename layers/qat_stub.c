/* Placeholder hooks until layers/qat.c lands: a model without quantization state. */
#include "layers/model.h"
#include "src/checkpoint.h"

void tq_qat_free(struct tq_qat *q) { (void)q; }
tq_status tq_qat_save_state(const tq_model *m, tq_ckpt *c) { (void)m; (void)c; return TQ_OK; }
tq_status tq_qat_load_state(tq_model *m, const tq_ckpt *c, const char *path) {
    (void)m; (void)c;
    TQ_FAIL(TQ_E_FORMAT, "%s: quantized models are not supported by this build", path);
}
tq_node *tq_qat_apply_layer(tq_graph *g, tq_model *m, int l, tq_node *x, tq_node *W, tq_node *b) {
    (void)g; (void)m; (void)l; (void)x; (void)W; (void)b;
    return NULL;
}
tq_node *tq_qat_apply_input(tq_graph *g, tq_model *m, tq_node *x) { (void)g; (void)m; return x; }
void tq_qat_set_frozen(tq_model *m, int frozen);
void tq_qat_set_frozen(tq_model *m, int frozen) { (void)m; (void)frozen; }
