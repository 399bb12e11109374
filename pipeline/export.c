/* tinyqat export: see pipeline/export.h. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/export.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "src/alloc.h"
#include "src/fileio.h"
#include "tq_runtime_src.h"

static int ident_char(unsigned char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

/* b with every name that starts with tq_ / TQ_ starting with prefix / PREFIX instead (kws_:
 * tq_model_classify -> kws_model_classify, tq_s8_layer -> kws_s8_layer, TQ_MODEL_INPUTS ->
 * KWS_MODEL_INPUTS), except the build's own switches (TQ_PORTABLE, TQ_TEST_DATA_ATTR). Into out. */
static void put_prefixed(tq_buf *out, const tq_buf *b, const char *prefix) {
    char upper[64];
    size_t pl = strlen(prefix);
    for (size_t i = 0; i <= pl && i < sizeof upper; i++) upper[i] = (char)(prefix[i] >= 'a' && prefix[i] <= 'z' ? prefix[i] - 32 : prefix[i]);
    const unsigned char *s = b->p;
    for (size_t i = 0; i < b->len;) {
        int start = i == 0 || !ident_char(s[i - 1]);
        int lower = start && i + 3 <= b->len && !memcmp(s + i, "tq_", 3), up = start && i + 3 <= b->len && !memcmp(s + i, "TQ_", 3);
        if (up && ((i + 11 <= b->len && !memcmp(s + i, "TQ_PORTABLE", 11)) || (i + 17 <= b->len && !memcmp(s + i, "TQ_TEST_DATA_ATTR", 17))))
            up = 0;
        if (lower) { /* a file name (tq_model.h) keeps its name: the files do not change names */
            size_t e = i;
            while (e < b->len && ident_char(s[e])) e++;
            if (e + 1 < b->len && s[e] == '.' && (s[e + 1] == 'h' || s[e + 1] == 'c') && (e + 2 == b->len || !ident_char(s[e + 2]))) lower = 0;
        }
        if (lower || up) {
            tq_buf_put(out, lower ? prefix : upper, pl);
            i += 3;
        } else {
            tq_buf_u8(out, s[i++]);
        }
    }
    if (!b->ok) out->ok = 0;
}

static tq_status write_buf(const char *dir, const char *name, tq_buf *b, const char *prefix) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!b->ok) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", path);
    if (!prefix) return tq_file_write_atomic(path, b->p, b->len);
    tq_buf p;
    tq_buf_init(&p);
    put_prefixed(&p, b, prefix);
    tq_status st = p.ok ? tq_file_write_atomic(path, p.p, p.len) : tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "%s: out of memory", path);
    tq_buf_free(&p);
    return st;
}

static void put_str(tq_buf *b, const char *s) { tq_buf_put(b, s, strlen(s)); }

/* mkdir -p: dir and the folders above it that are missing */
static tq_status make_dirs(const char *dir) {
    char p[1024];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) TQ_FAIL(TQ_E_IO, "%s: the path is too long", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) TQ_FAIL(TQ_E_IO, "%s: cannot create the folder: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) TQ_FAIL(TQ_E_IO, "%s: cannot create the folder: %s", dir, strerror(errno));
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) TQ_FAIL(TQ_E_IO, "%s: not a folder", dir);
    return TQ_OK;
}

static void putf(tq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* printf into the buffer, whatever the length (a fixed stack buffer would cut long text off). */
static void putf(tq_buf *b, const char *fmt, ...) {
    char tmp[512], *p = tmp;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof tmp && (p = tq_malloc((size_t)n + 1)) != NULL) vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    if (n < 0 || !p) b->ok = 0;
    else tq_buf_put(b, p, (size_t)n);
    if (p != tmp) tq_free(p);
}

static void put_i8(tq_buf *b, const char *name, const int8_t *v, size_t n) {
    putf(b, "static const int8_t %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++) putf(b, "%s%d", i == 0 ? "\n    " : i % 32 ? "," : ",\n    ", v[i]);
    put_str(b, "\n};\n");
}

static void put_i32(tq_buf *b, const char *name, const int32_t *v, size_t n) {
    putf(b, "static const int32_t %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++) putf(b, "%s%ld", i == 0 ? "\n    " : i % 8 ? ", " : ",\n    ", (long)v[i]);
    put_str(b, "\n};\n");
}

/* INT64_C: a literal below -2^63 + 1 cannot be written, but |bias64| <= 2^46 */
static void put_i64(tq_buf *b, const char *name, const int64_t *v, size_t n) {
    putf(b, "static const int64_t %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++) putf(b, "%sINT64_C(%lld)", i == 0 ? "\n    " : i % 4 ? ", " : ",\n    ", (long long)v[i]);
    put_str(b, "\n};\n");
}

/* The runtime source with its repo-relative include made local, the export's id in its id lines,
 * TQ_INT8_PRECHECKED set (the exporter checked the network), and, in the header, the layer kinds
 * and packed widths limited to the model's (one bit per tq_s8_kind, per width). */
static void put_runtime(tq_buf *b, const unsigned char *src, size_t len, unsigned kinds, unsigned widths, uint32_t id, int graph,
                        int act16) {
    char k[48], w[48], ih[48], ic[48], g[48], a[48];
    snprintf(g, sizeof g, "#define TQ_INT8_GRAPHS %d", graph);
    snprintf(a, sizeof a, "#define TQ_INT8_ACT16 %d", act16);
    snprintf(k, sizeof k, "#define TQ_INT8_KINDS 0x%02x", kinds);
    snprintf(w, sizeof w, "#define TQ_INT8_PACKED 0x%02x", widths);
    snprintf(ih, sizeof ih, "#define TQ_INT8_EXPORT_ID 0x%08xu", (unsigned)id);
    snprintf(ic, sizeof ic, "#define TQ_INT8_C_EXPORT_ID 0x%08xu", (unsigned)id);
    const char *subst[][2] = {{"#include \"runtime/int8_infer.h\"", "#include \"int8_infer.h\""},
                              {"#define TQ_INT8_KINDS 0x3ff", k},
                              {"#define TQ_INT8_PACKED 0x14", w},
                              {"#define TQ_INT8_PRECHECKED 0", "#define TQ_INT8_PRECHECKED 1"},
                              {"#define TQ_INT8_GRAPHS 1", g},
                              {"#define TQ_INT8_ACT16 1", a},
                              {"#define TQ_INT8_EXPORT_ID 0x0u", ih},
                              {"#define TQ_INT8_C_EXPORT_ID 0x0u", ic}};
    for (size_t i = 0; i < len;) {
        size_t s = 0, n = 0;
        for (; s < sizeof subst / sizeof subst[0]; s++)
            if (i + (n = strlen(subst[s][0])) <= len && !memcmp(src + i, subst[s][0], n)) break;
        if (s < sizeof subst / sizeof subst[0]) {
            put_str(b, subst[s][1]);
            i += n;
        } else {
            tq_buf_u8(b, src[i++]);
        }
    }
}

tq_status tq_export_c(const tq_qmodel *qm, const char *cdir, const char *source, const tq_dataset *test, int n_test) {
    return tq_export_c_prefixed(qm, cdir, source, test, n_test, NULL);
}

tq_status tq_export_c_prefixed(const tq_qmodel *qm, const char *cdir, const char *source, const tq_dataset *test, int n_test,
                               const char *prefix) {
    if (!qm || !cdir) TQ_FAIL(TQ_E_ARG, "export: a model and a folder are required");
    /* a model that takes pixels gets tq_model_classify and test images; any model tq_model_run */
    const int pixels = tq_qmodel_takes_pixels(qm);
    if (!pixels && test && n_test > 0)
        TQ_FAIL(TQ_E_ARG, "export: model %s takes int8 inputs at scale %g and zero point %d, not pixels: its module has tq_model_run "
                          "but no classify, and no test images", qm->spec, (double)qm->layer[0].in_scale, qm->layer[0].in_zp);
    if (prefix) { /* a C identifier's start, lower case (its upper case names the macros) */
        size_t n = strlen(prefix);
        int ok = n >= 1 && n <= 32 && (prefix[0] == '_' || (prefix[0] >= 'a' && prefix[0] <= 'z'));
        for (size_t i = 0; ok && i < n; i++) ok = prefix[i] == '_' || (prefix[i] >= 'a' && prefix[i] <= 'z') || (prefix[i] >= '0' && prefix[i] <= '9');
        if (!ok) TQ_FAIL(TQ_E_ARG, "export: prefix '%s': lower-case letters, digits and _ (1 to 32, not starting with a digit)", prefix);
    }
    if (tq_int8_net_check(&qm->net) != TQ_INT8_OK) TQ_FAIL(TQ_E_ARG, "export: the integer model is not a valid network");
    const tq_qmodel q = *qm; /* a shallow copy: the code below reads q.x */
    tq_status st = TQ_OK;
    const tq_qlayer *first = &q.layer[0], *last = &q.layer[q.n_layers - 1];
    /* everything that can be refused is refused before the first file is written */
    if (test && n_test > 0 && tq_dataset_pixels(test) != (size_t)first->in)
        TQ_FAIL(TQ_E_SHAPE, "export: the model takes %d inputs, the test images of %s have %zu values", first->in, test->source,
                tq_dataset_pixels(test));
    TQ_TRY(make_dirs(cdir));
    /* the scratch one classification needs; an array of at least one byte (ISO C has no empty ones) */
    size_t scratch_bytes = tq_int8_net_predict_scratch_bytes(&q.net), run_bytes = tq_int8_net_scratch_bytes(&q.net);
    if (!scratch_bytes) scratch_bytes = 1;
    if (!run_bytes) run_bytes = 1;
    char prov[TQ_SPEC_MAX + 1024];
    const int chain = tq_qmodel_is_chain(&q), act16 = tq_qmodel_has_act16(&q);
    const int version = act16 ? 5 : chain ? 3 : 4; /* the .tqm format version that holds it */
    snprintf(prov, sizeof prov, "/* generated by tinyqat export (integer model format %d) from %s, model %s -- do not edit */\n",
             version, source ? source : "memory", q.spec);
    tq_buf h, c, rt_h, rt_c;
    tq_buf_init(&h);
    tq_buf_init(&c);
    tq_buf_init(&rt_h);
    tq_buf_init(&rt_c);
    /* tq_model.h */
    put_str(&h, prov);
    putf(&h, "#ifndef TQ_EXPORTED_MODEL_H\n#define TQ_EXPORTED_MODEL_H\n\n#include <stdint.h>\n\n#include \"int8_infer.h\"\n\n"
             "#define TQ_MODEL_FORMAT_VERSION %d\n#define TQ_MODEL_INPUTS %d\n#define TQ_MODEL_OUTPUTS %d\n"
             "#define TQ_MODEL_SCRATCH_BYTES %zu\n#define TQ_MODEL_RUN_SCRATCH_BYTES %zu\n"
             "/* the input's quantization: x = TQ_MODEL_INPUT_SCALE (q - TQ_MODEL_INPUT_ZERO_POINT); the output's */\n"
             "#define TQ_MODEL_INPUT_SCALE %.9gf\n#define TQ_MODEL_INPUT_ZERO_POINT %d\n"
             "#define TQ_MODEL_OUTPUT_SCALE %.9gf\n#define TQ_MODEL_OUTPUT_ZERO_POINT %d\n\n"
             "/* the network; named so it never clashes with the library's tq_model type */\nextern const tq_int8_net tq_model_net;\n\n"
             "/* TQ_MODEL_INPUTS int8 values in (quantized as above), TQ_MODEL_OUTPUTS int8 values out. Returns 0,\n"
             " * or a negative code for a malformed network. Uses TQ_MODEL_RUN_SCRATCH_BYTES of stack. */\n"
             "int tq_model_run(const int8_t *input, int8_t *output);\n",
         version, first->in, last->out, scratch_bytes, run_bytes, (double)first->in_scale, first->in_zp, (double)last->out_scale,
         last->out_zp);
    if (pixels) /* (a model ending in a softmax gives its probabilities, in 256ths - 128, in their place) */
        putf(&h, "\n/* TQ_MODEL_INPUTS raw pixels (0..255) in; TQ_MODEL_OUTPUTS int8 %s out; returns the class.\n"
                 " * Uses TQ_MODEL_SCRATCH_BYTES of stack: the activations and the convolution's window. */\n"
                 "int tq_model_classify(const uint8_t *pixels, int8_t *logits);\n",
             last->kind == TQ_S8_SOFTMAX ? "probabilities (p 256 - 128: its softmax's)" : "logits");
    put_str(&h, "\n#endif\n");
    /* tq_model.c */
    put_str(&c, prov);
    put_str(&c, "#include \"tq_model.h\"\n\n");
    static const char *kind_names[] = {"TQ_S8_LINEAR",  "TQ_S8_CONV",    "TQ_S8_DEPTHWISE", "TQ_S8_MAXPOOL",
                                       "TQ_S8_AVGPOOL", "TQ_S8_FLATTEN", "TQ_S8_ADD",     "TQ_S8_CONCAT", "TQ_S8_MEAN", "TQ_S8_SOFTMAX"};
    for (int l = 0; l < q.n_layers; l++) {
        const tq_qlayer *L = &q.layer[l];
        putf(&c, "/* layer %d: %s %dx%dx%d -> %dx%dx%d", l, kind_names[L->kind] + 6, L->in_h, L->in_w, L->in_c, L->out_h, L->out_w,
             L->out_c);
        const int two = TQ_S8_IN(TQ_S8_BINARY, L->kind);
        if (L->kind != TQ_S8_LINEAR && L->kind != TQ_S8_FLATTEN && L->kind != TQ_S8_MEAN && L->kind != TQ_S8_SOFTMAX && !two) {
            if (L->kw)
                putf(&c, ", kernel %dx%d stride %dx%d pad %dx%d", L->k, L->kw, L->stride, L->stride_w, L->pad, L->pad_w);
            else
                putf(&c, ", kernel %d stride %d pad %d", L->k, L->stride, L->pad);
        }
        for (int j = 0; j < (two ? 2 : 1); j++)
            if (L->src[j] || two) putf(&c, ", input %d from layer %d", j, tq_qmodel_producer(&q, l, j));
        putf(&c, "%s; s_in %.9g z_in %d, s_out %.9g z_out %d */\n", L->relu == 2 ? ", ReLU6" : L->relu ? ", ReLU" : "", (double)L->in_scale, L->in_zp,
             (double)L->out_scale, L->out_zp);
        char name[32];
        if (!tq_qlayer_channels(L) && tq_qlayer_requants(L)) { /* an add, a mean (its second pair: its form), a softmax */
            snprintf(name, sizeof name, "l%d_mult", l);
            put_i32(&c, name, L->mult, (size_t)tq_qlayer_requants(L));
            snprintf(name, sizeof name, "l%d_shift", l);
            put_i32(&c, name, L->shift, (size_t)tq_qlayer_requants(L));
            put_str(&c, "\n");
        }
        if (!tq_qlayer_channels(L)) continue;
        snprintf(name, sizeof name, "l%d_w", l);
        if (q.view[l].w_bits != 8)
            putf(&c, "/* %zu weights of %d bits, %d to a byte, the first in the lowest bits */\n", tq_qlayer_weights(L), L->w_bits,
                 8 / q.view[l].w_bits);
        put_i8(&c, name, L->w, tq_qlayer_weight_bytes(L));
        snprintf(name, sizeof name, "l%d_bias", l);
        if (L->act16) put_i64(&c, name, L->bias64, (size_t)L->out_c);
        else put_i32(&c, name, L->bias, (size_t)L->out_c);
        snprintf(name, sizeof name, "l%d_mult", l);
        put_i32(&c, name, L->mult, (size_t)L->out_c);
        snprintf(name, sizeof name, "l%d_shift", l);
        put_i32(&c, name, L->shift, (size_t)L->out_c);
        put_str(&c, "\n");
    }
    putf(&c, "static const tq_s8_layer layers[%d] = {\n", q.n_layers);
    for (int l = 0; l < q.n_layers; l++) {
        const tq_qlayer *L = &q.layer[l];
        if (tq_qlayer_channels(L) && L->act16)
            putf(&c, "    {%d, %d, l%d_w, 0, l%d_mult, l%d_shift, ", L->in, L->out, l, l, l);
        else if (tq_qlayer_channels(L))
            putf(&c, "    {%d, %d, l%d_w, l%d_bias, l%d_mult, l%d_shift, ", L->in, L->out, l, l, l, l);
        else if (tq_qlayer_requants(L))
            putf(&c, "    {%d, %d, 0, 0, l%d_mult, l%d_shift, ", L->in, L->out, l, l);
        else
            putf(&c, "    {%d, %d, 0, 0, 0, 0, ", L->in, L->out);
        putf(&c, "%d, %d, %d, %d, %s, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d", L->in_zp, L->out_zp, L->act_min, L->act_max,
             kind_names[L->kind], L->in_h, L->in_w, L->in_c, L->out_h, L->out_w, L->out_c, L->k, L->stride, L->pad,
             q.view[l].w_bits);
        /* a graph's fields (a chain of square kernels' module has none: TQ_INT8_GRAPHS 0) */
        if (!chain) putf(&c, ", {%d, %d}, %d, %d, %d, %d, %d", L->src[0], L->src[1], L->in2_zp, L->kw, L->stride_w, L->pad_w, L->in2_c);
        /* 16-bit activations' fields (a module of int8 ones has none: TQ_INT8_ACT16 0) */
        if (act16) {
            if (L->act16 && tq_qlayer_channels(L)) putf(&c, ", %d, l%d_bias", L->act16, l);
            else putf(&c, ", %d, 0", L->act16);
        }
        put_str(&c, "},\n");
    }
    putf(&c, "};\n\nconst tq_int8_net tq_model_net = {%d, layers};\n\n", q.n_layers);
    /* int16 activations are read as int16_t: their scratch is words, so aligned */
    const char *scr = act16 ? "int32_t scratch[(%s + 3) / 4]" : "int8_t scratch[%s]";
    put_str(&c, "int tq_model_run(const int8_t *input, int8_t *output) {\n    ");
    putf(&c, scr, "TQ_MODEL_RUN_SCRATCH_BYTES");
    put_str(&c, ";\n    return tq_int8_net_run(&tq_model_net, input, output, scratch, sizeof scratch);\n}\n");
    if (pixels) {
        put_str(&c, "\nint tq_model_classify(const uint8_t *pixels, int8_t *logits) {\n    ");
        putf(&c, scr, "TQ_MODEL_SCRATCH_BYTES");
        put_str(&c, ";\n    return tq_int8_net_predict_u8(&tq_model_net, pixels, logits, scratch, sizeof scratch);\n}\n");
    }
    unsigned kinds = 0, widths = 0;
    for (int l = 0; l < q.n_layers; l++) {
        kinds |= 1u << q.layer[l].kind;
        if (tq_qlayer_channels(&q.layer[l]) && q.view[l].w_bits != 8) widths |= 1u << q.view[l].w_bits;
    }
    /* The export's id: a CRC of what it writes (the model, the runtime, the kinds), so every file of
     * one export names it and a set mixed from two exports of different content does not compile. */
    uLong id = crc32(0L, Z_NULL, 0);
    if (c.ok) id = crc32(id, c.p, (uInt)c.len);
    id = crc32(id, tq_src_int8_infer_h, (uInt)tq_src_int8_infer_h_len);
    id = crc32(id, tq_src_int8_infer_c, (uInt)tq_src_int8_infer_c_len);
    const unsigned char kw[2] = {(unsigned char)kinds, (unsigned char)widths};
    id = crc32(id, kw, 2);
    putf(&c, "\n#if TQ_MODEL_EXPORT_ID != 0x%08xu || TQ_INT8_EXPORT_ID != 0x%08xu\n"
             "#error \"tq_model.c, tq_model.h and int8_infer.h come from different exports (an interrupted export?): export the model again\"\n"
             "#endif\n", (unsigned)id, (unsigned)id);
    putf(&h, "#define TQ_MODEL_EXPORT_ID 0x%08xu /* every file of this export carries it */\n", (unsigned)id);
    put_runtime(&rt_h, tq_src_int8_infer_h, tq_src_int8_infer_h_len, kinds, widths, (uint32_t)id, !chain, act16);
    put_runtime(&rt_c, tq_src_int8_infer_c, tq_src_int8_infer_c_len, kinds, widths, (uint32_t)id, !chain, act16);
    if (st == TQ_OK) st = write_buf(cdir, "tq_model.h", &h, prefix);
    if (st == TQ_OK) st = write_buf(cdir, "tq_model.c", &c, prefix);
    if (st == TQ_OK) st = write_buf(cdir, "int8_infer.h", &rt_h, prefix);
    if (st == TQ_OK) st = write_buf(cdir, "int8_infer.c", &rt_c, prefix);
    tq_buf_free(&h);
    tq_buf_free(&c);
    tq_buf_free(&rt_h);
    tq_buf_free(&rt_c);
    if (st == TQ_OK && test && n_test > 0) {
        if ((uint32_t)n_test > test->n) n_test = (int)test->n;
        size_t sb = scratch_bytes;
        int8_t *logits = tq_malloc((size_t)n_test * last->out), *scratch = tq_malloc(sb);
        tq_buf t;
        tq_buf_init(&t);
        put_str(&t, prov);
        putf(&t, "/* %d test images, their labels, and the logits the host's reference kernels give */\n"
                 "#include <stdint.h>\n#ifndef TQ_TEST_DATA_ATTR\n#define TQ_TEST_DATA_ATTR\n#endif\n"
                 "#if defined(TQ_MODEL_EXPORT_ID) && TQ_MODEL_EXPORT_ID != 0x%08xu\n"
                 "#error \"tq_test_data.h comes from another export than tq_model.h: export the model again\"\n#endif\n"
                 "#define TQ_TEST_N %d\n", n_test, (unsigned)id, n_test);
        putf(&t, "static const uint8_t tq_test_pixels[%d][%d] TQ_TEST_DATA_ATTR = {\n", n_test, first->in);
        for (int i = 0; i < n_test; i++) {
            put_str(&t, "  {");
            for (int k = 0; k < first->in; k++) putf(&t, "%s%u", k ? "," : "", test->images[(size_t)i * first->in + k]);
            put_str(&t, "},\n");
        }
        put_str(&t, "};\nstatic const uint8_t tq_test_labels[] TQ_TEST_DATA_ATTR = {");
        for (int i = 0; i < n_test; i++) putf(&t, "%s%u", i ? "," : "", test->labels[i]);
        putf(&t, "};\nstatic const int8_t tq_test_logits[%d][%d] TQ_TEST_DATA_ATTR = {\n", n_test, last->out);
        for (int i = 0; i < n_test && logits && scratch && t.ok; i++) {
            if (tq_int8_net_predict_u8(&q.net, test->images + (size_t)i * first->in, logits + (size_t)i * last->out, scratch, sb) < 0) {
                st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "export: the integer model refused test image %d", i);
                t.ok = 0;
                break;
            }
            put_str(&t, "  {");
            for (int k = 0; k < last->out; k++) putf(&t, "%s%d", k ? "," : "", logits[(size_t)i * last->out + k]);
            put_str(&t, "},\n");
        }
        put_str(&t, "};\n");
        if (st == TQ_OK && (!logits || !scratch)) t.ok = 0;
        if (st == TQ_OK) st = write_buf(cdir, "tq_test_data.h", &t, prefix);
        tq_buf_free(&t);
        tq_free(logits);
        tq_free(scratch);
    }
    return st;
}
