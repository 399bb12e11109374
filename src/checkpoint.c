#include "src/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/fileio.h"

static const char MAGIC[4] = {'T', 'Q', 'C', 'K'};

void tq_ckpt_init(tq_ckpt *c) { memset(c, 0, sizeof *c); }

tq_status tq_ckpt_set_meta(tq_ckpt *c, const char *key, const char *val) {
    if (strlen(key) >= sizeof c->key[0] || strlen(val) >= sizeof c->val[0])
        TQ_FAIL(TQ_E_ARG, "checkpoint: metadata %s too long", key);
    for (int i = 0; i < c->n_meta; i++)
        if (!strcmp(c->key[i], key)) {
            strcpy(c->val[i], val);
            return TQ_OK;
        }
    if (c->n_meta == TQ_CKPT_MAX_META) TQ_FAIL(TQ_E_ARG, "checkpoint: too many metadata entries");
    strcpy(c->key[c->n_meta], key);
    strcpy(c->val[c->n_meta++], val);
    return TQ_OK;
}

tq_status tq_ckpt_add(tq_ckpt *c, const char *name, uint32_t rows, uint32_t cols, float *data) {
    if (c->n_tensors == TQ_CKPT_MAX_TENSORS) TQ_FAIL(TQ_E_ARG, "checkpoint: too many tensors");
    if (strlen(name) >= sizeof c->t[0].name) TQ_FAIL(TQ_E_ARG, "checkpoint: tensor name %s too long", name);
    if (rows == 0 || cols == 0 || (uint64_t)rows * cols > TQ_CKPT_MAX_ELEMS)
        TQ_FAIL(TQ_E_ARG, "checkpoint: tensor %s has bad shape [%u][%u]", name, rows, cols);
    tq_ckpt_tensor *t = &c->t[c->n_tensors++];
    strcpy(t->name, name);
    t->rows = rows;
    t->cols = cols;
    t->data = data;
    t->owned = 0;
    return TQ_OK;
}

tq_status tq_ckpt_add_copy(tq_ckpt *c, const char *name, uint32_t rows, uint32_t cols, const float *data) {
    if (rows == 0 || cols == 0 || (uint64_t)rows * cols > TQ_CKPT_MAX_ELEMS)
        TQ_FAIL(TQ_E_ARG, "checkpoint: tensor %s has bad shape [%u][%u]", name, rows, cols);
    size_t bytes = (size_t)rows * cols * sizeof(float);
    float *copy = tq_malloc(bytes);
    if (!copy) TQ_FAIL(TQ_E_NOMEM, "checkpoint: cannot copy tensor %s", name);
    memcpy(copy, data, bytes);
    tq_status st = tq_ckpt_add(c, name, rows, cols, copy);
    if (st != TQ_OK) {
        tq_free(copy);
        return st;
    }
    c->t[c->n_tensors - 1].owned = 1;
    return TQ_OK;
}

tq_status tq_ckpt_save(const tq_ckpt *c, const char *path) {
    tq_buf b;
    tq_buf_frame_begin(&b, MAGIC, TQ_CKPT_VERSION);
    tq_buf_u32(&b, (uint32_t)c->n_meta);
    for (int i = 0; i < c->n_meta; i++) {
        tq_buf_u16(&b, (uint16_t)strlen(c->key[i]));
        tq_buf_put(&b, c->key[i], strlen(c->key[i]));
        tq_buf_u16(&b, (uint16_t)strlen(c->val[i]));
        tq_buf_put(&b, c->val[i], strlen(c->val[i]));
    }
    tq_buf_u32(&b, (uint32_t)c->n_tensors);
    for (int i = 0; i < c->n_tensors; i++) {
        const tq_ckpt_tensor *t = &c->t[i];
        tq_buf_u16(&b, (uint16_t)strlen(t->name));
        tq_buf_put(&b, t->name, strlen(t->name));
        tq_buf_u32(&b, t->rows);
        tq_buf_u32(&b, t->cols);
        for (size_t k = 0; k < (size_t)t->rows * t->cols; k++) tq_buf_f32(&b, t->data[k]);
    }
    return tq_buf_frame_save(&b, path);
}

/* Read a u16-length-prefixed string into dst (cap bytes incl. NUL). */
static int rd_str(tq_reader *r, char *dst, size_t cap) {
    uint16_t n = tq_rd_u16(r);
    const unsigned char *p = tq_rd_bytes(r, n);
    if (!p || n >= cap || memchr(p, 0, n)) return 0;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 1;
}

tq_status tq_ckpt_load(tq_ckpt *c, const char *path) {
    tq_ckpt_init(c);
    unsigned char *data = NULL;
    tq_reader r;
    tq_status st = tq_file_read_frame(path, (size_t)1 << 30, MAGIC, TQ_CKPT_VERSION, TQ_CKPT_VERSION, "model file", &data, &r, NULL);
    if (st != TQ_OK) goto done;
#define BAD(code, ...)                                                     \
    do {                                                                   \
        st = tq_error_set_((code), __FILE__, __LINE__, __VA_ARGS__);       \
        goto done;                                                         \
    } while (0)
    uint32_t n_meta = tq_rd_u32(&r);
    if (n_meta > TQ_CKPT_MAX_META) BAD(TQ_E_FORMAT, "%s: %u metadata entries (at most %d)", path, n_meta, TQ_CKPT_MAX_META);
    for (uint32_t i = 0; i < n_meta; i++) {
        if (!rd_str(&r, c->key[i], sizeof c->key[i]) || !rd_str(&r, c->val[i], sizeof c->val[i]))
            BAD(TQ_E_FORMAT, "%s: metadata entry %u is malformed or truncated", path, i);
        c->n_meta++;
    }
    uint32_t n_t = tq_rd_u32(&r);
    if (!r.ok || n_t > TQ_CKPT_MAX_TENSORS) BAD(TQ_E_FORMAT, "%s: bad tensor count %u", path, n_t);
    for (uint32_t i = 0; i < n_t; i++) {
        tq_ckpt_tensor *t = &c->t[i];
        if (!rd_str(&r, t->name, sizeof t->name)) BAD(TQ_E_FORMAT, "%s: tensor %u: malformed name", path, i);
        t->rows = tq_rd_u32(&r);
        t->cols = tq_rd_u32(&r);
        uint64_t n = (uint64_t)t->rows * t->cols;
        if (!r.ok || n == 0 || n > TQ_CKPT_MAX_ELEMS || n * 4 > r.len - r.pos)
            BAD(TQ_E_FORMAT, "%s: tensor %s: shape [%u][%u] does not fit the file", path, t->name, t->rows, t->cols);
        t->data = tq_malloc((size_t)n * sizeof(float));
        if (!t->data) BAD(TQ_E_NOMEM, "%s: tensor %s: out of memory", path, t->name);
        t->owned = 1;
        c->n_tensors++;
        for (uint64_t k = 0; k < n; k++) {
            float v = tq_rd_f32(&r);
            if (!isfinite(v)) BAD(TQ_E_NUMERIC, "%s: tensor %s holds a NaN or Inf at index %llu", path, t->name,
                                  (unsigned long long)k);
            t->data[k] = v;
        }
    }
    if (r.pos != r.len) BAD(TQ_E_FORMAT, "%s: %zu unexpected bytes after the last tensor", path, r.len - r.pos);
#undef BAD
done:
    tq_free(data);
    if (st != TQ_OK) tq_ckpt_free(c);
    return st;
}

void tq_ckpt_free(tq_ckpt *c) {
    for (int i = 0; i < c->n_tensors; i++)
        if (c->t[i].owned) tq_free(c->t[i].data);
    tq_ckpt_init(c);
}

const char *tq_ckpt_meta(const tq_ckpt *c, const char *key) {
    for (int i = 0; i < c->n_meta; i++)
        if (!strcmp(c->key[i], key)) return c->val[i];
    return NULL;
}

const tq_ckpt_tensor *tq_ckpt_find(const tq_ckpt *c, const char *name) {
    for (int i = 0; i < c->n_tensors; i++)
        if (!strcmp(c->t[i].name, name)) return &c->t[i];
    return NULL;
}
