#include "src/qmodel.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/fileio.h"
#include "src/quant.h"

void tq_quantize_multiplier(double M, int32_t *M0, int32_t *shift) {
    if (!(M > 0)) {
        *M0 = 0;
        *shift = 0;
        return;
    }
    int e;
    double q = frexp(M, &e); /* M = q 2^e, q in [0.5, 1) */
    int64_t m = (int64_t)round(q * 2147483648.0); /* round() is half away from zero */
    if (m == ((int64_t)1 << 31)) {
        m /= 2;
        e++;
    }
    if (e < -31) {
        m = 0;
        e = 0;
    }
    *M0 = (int32_t)m;
    *shift = e;
}

void tq_qmodel_free(tq_qmodel *q) {
    if (!q) return;
    for (int l = 0; l < TQ_INT8_MAX_LAYERS; l++) {
        tq_qlayer *L = &q->layer[l];
        tq_free(L->w_scale);
        tq_free(L->w);
        tq_free(L->bias);
        tq_free(L->mult);
        tq_free(L->shift);
    }
    memset(q, 0, sizeof *q);
}

static tq_status alloc_layer(tq_qlayer *L) {
    size_t out = (size_t)L->out;
    L->w_scale = tq_malloc(out * sizeof(float));
    L->w = tq_malloc(out * (size_t)L->in);
    L->bias = tq_malloc(out * sizeof(int32_t));
    L->mult = tq_malloc(out * sizeof(int32_t));
    L->shift = tq_malloc(out * sizeof(int32_t));
    if (!L->w_scale || !L->w || !L->bias || !L->mult || !L->shift)
        TQ_FAIL(TQ_E_NOMEM, "integer model: out of memory for a %dx%d layer", L->out, L->in);
    return TQ_OK;
}

static void bind_view(tq_qmodel *q) {
    q->mlp.n_layers = q->n_layers;
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *L = &q->layer[l];
        q->mlp.layer[l] = (tq_s8_layer){L->in, L->out, L->w, L->bias, L->mult, L->shift,
                                        L->in_zp, L->out_zp, L->act_min, L->act_max};
    }
}

tq_status tq_qmodel_convert(tq_qmodel *q, const char *spec, const tq_qlayer_src *src, int n_layers) {
    memset(q, 0, sizeof *q);
    if (n_layers < 1 || n_layers > TQ_INT8_MAX_LAYERS) TQ_FAIL(TQ_E_ARG, "convert: %d layers", n_layers);
    snprintf(q->spec, sizeof q->spec, "%s", spec);
    q->n_layers = n_layers;
    tq_status st = TQ_OK;
    for (int l = 0; l < n_layers && st == TQ_OK; l++) {
        const tq_qlayer_src *s = &src[l];
        tq_qlayer *L = &q->layer[l];
        int32_t qmin, qmax;
        if ((st = tq_qrange(s->w_bits, 1, &qmin, &qmax)) != TQ_OK) break;
        *L = (tq_qlayer){.in = s->in, .out = s->out, .relu = s->relu, .in_zp = s->in_zp, .out_zp = s->out_zp,
                         .act_min = s->relu ? s->out_zp : -128, .act_max = 127, .in_scale = s->in_scale,
                         .out_scale = s->out_scale};
        if ((st = alloc_layer(L)) != TQ_OK) break;
        for (int o = 0; o < s->out; o++) {
            float sw = s->w_scale[o];
            L->w_scale[o] = sw;
            for (int i = 0; i < s->in; i++)
                L->w[(size_t)o * s->in + i] = (int8_t)tq_quantize_ref(s->W[(size_t)o * s->in + i], sw, 0, qmin, qmax);
            /* the same expression as the bias fake quant (layers/qat.c), so both see one integer */
            float sb = s->in_scale * sw;
            double bq = nearbyint((double)s->b[o] / (double)sb);
            if (bq > 2147483647.0 || bq < -2147483648.0) {
                st = tq_error_set_(TQ_E_NUMERIC, __FILE__, __LINE__, "convert: layer %d bias %d overflows int32", l, o);
                break;
            }
            L->bias[o] = (int32_t)bq;
            tq_quantize_multiplier((double)s->in_scale * (double)sw / (double)s->out_scale, &L->mult[o], &L->shift[o]);
        }
    }
    if (st != TQ_OK) {
        tq_qmodel_free(q);
        return st;
    }
    bind_view(q);
    return TQ_OK;
}

static const char MAGIC[4] = {'T', 'Q', 'I', '8'};

tq_status tq_qmodel_save(const tq_qmodel *q, const char *path) {
    tq_buf b;
    tq_buf_frame_begin(&b, MAGIC, TQ_TQM_FORMAT_VERSION);
    tq_buf_u16(&b, (uint16_t)strlen(q->spec));
    tq_buf_put(&b, q->spec, strlen(q->spec));
    tq_buf_u32(&b, (uint32_t)q->n_layers);
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *L = &q->layer[l];
        tq_buf_u32(&b, (uint32_t)L->in);
        tq_buf_u32(&b, (uint32_t)L->out);
        tq_buf_u32(&b, (uint32_t)L->relu);
        tq_buf_u32(&b, (uint32_t)L->in_zp);
        tq_buf_u32(&b, (uint32_t)L->out_zp);
        tq_buf_u32(&b, (uint32_t)L->act_min);
        tq_buf_u32(&b, (uint32_t)L->act_max);
        tq_buf_f32(&b, L->in_scale);
        tq_buf_f32(&b, L->out_scale);
        for (int o = 0; o < L->out; o++) tq_buf_f32(&b, L->w_scale[o]);
        tq_buf_put(&b, L->w, (size_t)L->out * (size_t)L->in);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->bias[o]);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->mult[o]);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->shift[o]);
    }
    return tq_buf_frame_save(&b, path);
}

#define FAIL_AT(...)                                                   \
    do {                                                               \
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, __VA_ARGS__); \
        goto done;                                                     \
    } while (0)

tq_status tq_qmodel_load(tq_qmodel *q, const char *path) {
    memset(q, 0, sizeof *q);
    unsigned char *data = NULL;
    tq_reader r;
    tq_status st = tq_file_read_frame(path, (size_t)1 << 28, MAGIC, TQ_TQM_FORMAT_VERSION, "integer model", &data, &r);
    if (st != TQ_OK) goto done;
    uint16_t sl = tq_rd_u16(&r);
    const unsigned char *sp = tq_rd_bytes(&r, sl);
    if (!sp || sl >= sizeof q->spec) FAIL_AT("%s: bad model spec field", path);
    memcpy(q->spec, sp, sl);
    q->spec[sl] = '\0';
    uint32_t nl = tq_rd_u32(&r);
    if (!r.ok || nl < 1 || nl > TQ_INT8_MAX_LAYERS) FAIL_AT("%s: %u layers (1..%d)", path, nl, TQ_INT8_MAX_LAYERS);
    for (uint32_t l = 0; l < nl; l++) {
        tq_qlayer *L = &q->layer[l];
        uint32_t in = tq_rd_u32(&r), out = tq_rd_u32(&r), relu = tq_rd_u32(&r);
        L->in_zp = (int32_t)tq_rd_u32(&r);
        L->out_zp = (int32_t)tq_rd_u32(&r);
        L->act_min = (int32_t)tq_rd_u32(&r);
        L->act_max = (int32_t)tq_rd_u32(&r);
        L->in_scale = tq_rd_f32(&r);
        L->out_scale = tq_rd_f32(&r);
        if (!r.ok) FAIL_AT("%s: layer %u: truncated header", path, l);
        if (in < 1 || in > 65536 || out < 1 || out > 65536 || relu > 1)
            FAIL_AT("%s: layer %u: bad shape %ux%u or relu flag %u", path, l, out, in, relu);
        if ((uint64_t)out * (in + 16) > r.len - r.pos) FAIL_AT("%s: layer %u: %ux%u weights do not fit the file", path, l, out, in);
        if (l > 0 && (in != (uint32_t)q->layer[l - 1].out || L->in_zp != q->layer[l - 1].out_zp))
            FAIL_AT("%s: layer %u does not follow layer %u (inputs %u vs outputs %d, or zero points differ)", path, l, l - 1,
                    in, q->layer[l - 1].out);
        if (L->in_zp < -128 || L->in_zp > 127 || L->out_zp < -128 || L->out_zp > 127)
            FAIL_AT("%s: layer %u: zero point outside int8", path, l);
        if (L->act_min < -128 || L->act_max > 127 || L->act_min > L->act_max)
            FAIL_AT("%s: layer %u: bad activation clamp [%d, %d]", path, l, L->act_min, L->act_max);
        if (!(L->in_scale > 0) || !(L->out_scale > 0) || !isfinite(L->in_scale) || !isfinite(L->out_scale))
            FAIL_AT("%s: layer %u: bad scales", path, l);
        L->in = (int32_t)in;
        L->out = (int32_t)out;
        L->relu = (int32_t)relu;
        q->n_layers = (int32_t)l + 1;
        if ((st = alloc_layer(L)) != TQ_OK) goto done;
        for (uint32_t o = 0; o < out; o++) L->w_scale[o] = tq_rd_f32(&r);
        const unsigned char *w = tq_rd_bytes(&r, (size_t)out * in);
        if (!w) FAIL_AT("%s: layer %u: truncated weights", path, l);
        memcpy(L->w, w, (size_t)out * in);
        for (size_t k = 0; k < (size_t)out * in; k++)
            if (L->w[k] == -128) FAIL_AT("%s: layer %u: weight -128 outside the narrow range [-127, 127]", path, l);
        for (uint32_t o = 0; o < out; o++) L->bias[o] = (int32_t)tq_rd_u32(&r);
        for (uint32_t o = 0; o < out; o++) L->mult[o] = (int32_t)tq_rd_u32(&r);
        for (uint32_t o = 0; o < out; o++) L->shift[o] = (int32_t)tq_rd_u32(&r);
        if (!r.ok) FAIL_AT("%s: layer %u: truncated", path, l);
        for (uint32_t o = 0; o < out; o++) {
            int32_t m = L->mult[o], s = L->shift[o];
            if (!(m == 0 && s == 0) && (m < (1 << 30) || s < -31 || s > 30))
                FAIL_AT("%s: layer %u channel %u: multiplier %d / shift %d out of range", path, l, o, m, s);
            if (!(L->w_scale[o] > 0) || !isfinite(L->w_scale[o])) FAIL_AT("%s: layer %u channel %u: bad weight scale", path, l, o);
        }
    }
    if (r.pos != r.len) FAIL_AT("%s: %zu unexpected bytes after the last layer", path, r.len - r.pos);
    bind_view(q);
done:
    tq_free(data);
    if (st != TQ_OK) tq_qmodel_free(q);
    return st;
}
