/* .npy read and write: see data/npy.h. */
#include "data/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/fileio.h"

static const size_t elem_size[4] = {1, 1, 4, 8};

/* The value of key in the header dict: the text just after "'key':" and its spaces, or NULL. */
static const char *dict_value(const char *h, size_t n, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    size_t k = strlen(pat);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(h + i, pat, k)) {
            size_t j = i + k;
            while (j < n && h[j] == ' ') j++;
            if (j >= n || h[j] != ':') return NULL;
            j++;
            while (j < n && h[j] == ' ') j++;
            return j < n ? h + j : NULL;
        }
    return NULL;
}

#define BAD(...) tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, __VA_ARGS__)

static tq_status parse(tq_npy *a, const unsigned char *d, size_t len, const char *path) {
    if (len < 10 || memcmp(d, "\x93NUMPY", 6)) return BAD("%s: not a .npy file (no \\x93NUMPY at its start)", path);
    const int major = d[6];
    if (major < 1 || major > 3) return BAD("%s: .npy format version %d.%d (tinyqat reads 1 to 3)", path, major, d[7]);
    size_t hlen, at;
    if (major == 1) {
        hlen = (size_t)d[8] | (size_t)d[9] << 8, at = 10;
    } else {
        if (len < 12) return BAD("%s: cut short in its header", path);
        hlen = (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24, at = 12;
    }
    if (hlen > len - at) return BAD("%s: cut short in its header", path);
    const char *h = (const char *)d + at, *v;
    const size_t n = hlen, end = (size_t)(h - (const char *)d) + n;
    /* descr: '|i1', '|u1', '<f4', '<f8' (and their '<' or '=' spellings of one byte) */
    if (!(v = dict_value(h, n, "descr")) || (*v != '\'' && *v != '"')) return BAD("%s: the header has no 'descr'", path);
    const char q = *v++;
    const char *ve = memchr(v, q, n - (size_t)(v - h));
    if (!ve) return BAD("%s: the header's 'descr' is not closed", path);
    const size_t dl = (size_t)(ve - v);
    char descr[8] = "";
    if (dl >= sizeof descr) return BAD("%s: data type '%.*s' (tinyqat reads int8, uint8, float32, float64)", path, (int)(dl > 32 ? 32 : dl), v);
    memcpy(descr, v, dl);
    if (!strcmp(descr, "|i1") || !strcmp(descr, "<i1") || !strcmp(descr, "=i1") || !strcmp(descr, "i1")) a->type = TQ_NPY_I8;
    else if (!strcmp(descr, "|u1") || !strcmp(descr, "<u1") || !strcmp(descr, "=u1") || !strcmp(descr, "u1")) a->type = TQ_NPY_U8;
    else if (!strcmp(descr, "<f4")) a->type = TQ_NPY_F32;
    else if (!strcmp(descr, "<f8")) a->type = TQ_NPY_F64;
    else return BAD("%s: data type '%s' (tinyqat reads int8, uint8, and little-endian float32 and float64)", path, descr);
    if (!(v = dict_value(h, n, "fortran_order"))) return BAD("%s: the header has no 'fortran_order'", path);
    const size_t rest = n - (size_t)(v - h); /* what the header holds from v on: a word may be cut at its end */
    if (rest >= 4 && !memcmp(v, "True", 4)) return BAD("%s: a Fortran-ordered array: save it with numpy.ascontiguousarray first", path);
    if (rest < 5 || memcmp(v, "False", 5)) return BAD("%s: the header's 'fortran_order' is neither True nor False", path);
    if (!(v = dict_value(h, n, "shape")) || *v != '(') return BAD("%s: the header has no 'shape'", path);
    v++;
    a->count = 1;
    for (;;) {
        while (v < h + n && (*v == ' ' || *v == ',')) v++;
        if (v >= h + n || *v == '\n') return BAD("%s: the header's 'shape' is not closed", path);
        if (*v == ')') break;
        if (*v < '0' || *v > '9') return BAD("%s: the header's 'shape' holds '%c'", path, *v);
        if (a->ndim == TQ_NPY_MAX_DIMS) return BAD("%s: more than %d dimensions", path, TQ_NPY_MAX_DIMS);
        unsigned long long x = 0;
        while (v < h + n && *v >= '0' && *v <= '9') {
            x = x * 10 + (unsigned long long)(*v++ - '0');
            if (x > ((size_t)1 << 40)) return BAD("%s: a dimension larger than tinyqat reads", path);
        }
        if (x && a->count > ((size_t)1 << 40) / x) return BAD("%s: more values than tinyqat reads", path);
        a->shape[a->ndim++] = (int64_t)x;
        a->count *= (size_t)x;
    }
    const size_t bytes = a->count * elem_size[a->type];
    if (len - end < bytes) return BAD("%s: holds %zu bytes of data, its shape asks for %zu (cut short?)", path, len - end, bytes);
    if (len - end > bytes) return BAD("%s: %zu bytes after the data its shape describes", path, len - end - bytes);
    a->data = tq_malloc(bytes ? bytes : 1);
    if (!a->data) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", path);
    if (bytes) memcpy(a->data, d + end, bytes); /* little-endian on the hosts tinyqat builds for */
    return TQ_OK;
}

tq_status tq_npy_read(tq_npy *a, const char *path) {
    if (!a || !path) TQ_FAIL(TQ_E_ARG, "npy: an array and a path are required");
    memset(a, 0, sizeof *a);
    unsigned char *d = NULL;
    size_t len = 0;
    tq_status st = tq_file_read_all(path, (size_t)1 << 34, &d, &len);
    if (st == TQ_OK) st = parse(a, d, len, path);
    tq_free(d);
    if (st != TQ_OK) tq_npy_free(a), memset(a, 0, sizeof *a);
    return st;
}

void tq_npy_free(tq_npy *a) {
    if (!a) return;
    tq_free(a->data);
    a->data = NULL;
}

tq_status tq_npy_write(const char *path, tq_npy_type type, const int64_t *shape, int ndim, const void *data) {
    if (!path || (!shape && ndim) || ndim < 0 || ndim > TQ_NPY_MAX_DIMS || (type != TQ_NPY_I8 && type != TQ_NPY_F32))
        TQ_FAIL(TQ_E_ARG, "npy: a path, a shape and int8 or float32 data are required");
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", type == TQ_NPY_I8 ? "|i1" : "<f4");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld%s", (long long)shape[i], ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
        count *= (size_t)shape[i];
    }
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    /* spaces, then a newline, so that the data starts at a multiple of 64 */
    size_t total = 10 + (size_t)n + 1, pad = (64 - total % 64) % 64;
    tq_buf b;
    tq_buf_init(&b);
    tq_buf_put(&b, "\x93NUMPY\x01\x00", 8);
    tq_buf_u16(&b, (uint16_t)((size_t)n + pad + 1));
    tq_buf_put(&b, hdr, (size_t)n);
    for (size_t i = 0; i < pad; i++) tq_buf_u8(&b, ' ');
    tq_buf_u8(&b, '\n');
    tq_buf_put(&b, data, count * (type == TQ_NPY_I8 ? 1 : 4));
    tq_status st = b.ok ? tq_file_write_atomic(path, b.p, b.len) : tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "npy: out of memory");
    tq_buf_free(&b);
    return st;
}
