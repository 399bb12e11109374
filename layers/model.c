#include "layers/model.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/add.h"
#include "layers/linear.h"
#include "layers/relu.h"
#include "src/alloc.h"

static const struct {
    const char *name, *spec;
} PRESETS[] = {
    {"digitsnet", "in-100r-100r-out"},
    {"digitscnn", "in-c8k5br-m2-c16k5br-m2-out"},
    {"article", "in-100-100-outr"},
    /* MLPerf Tiny's ResNet-8: stride-2 blocks pad 1 on every side (TensorFlow's SAME pads only
     * after; the shapes and the MACs are the same), shortcuts without batch norm, as MLPerf's */
    {"resnet8", "in-c16k3p1br@a-c16k3p1br-c16k3p1b-+a-r@b-c32k3s2p1br-c32k3p1b@c-~b-c32k1s2-+c-r@d-c64k3s2p1br-c64k3p1b@e-~d-"
                "c64k1s2-+e-r-g-out"},
    /* MLPerf Tiny's keyword spotting DS-CNN: a 10x4 convolution (stride 2, padded to keep half the
     * image: TFLite's SAME on even sizes), four depthwise-separable blocks, global average pool */
    {"dscnn", "in-c64k10x4s2p4x1br-d1k3p1br-c64k1br-d1k3p1br-c64k1br-d1k3p1br-c64k1br-d1k3p1br-c64k1br-g-out"},
    /* MobileNet v1 of width 0.25 (MLPerf Tiny's visual wake words network): a 3x3 convolution to 8
     * channels (stride 2), 13 depthwise-separable blocks, ReLU6 after every batch norm */
    {"mobilenet", "in-c8k3s2p1br6-d1k3p1br6-c16k1br6-d1k3s2p1br6-c32k1br6-d1k3p1br6-c32k1br6-d1k3s2p1br6-c64k1br6-d1k3p1br6-"
                  "c64k1br6-d1k3s2p1br6-c128k1br6-d1k3p1br6-c128k1br6-d1k3p1br6-c128k1br6-d1k3p1br6-c128k1br6-d1k3p1br6-c128k1br6-"
                  "d1k3p1br6-c128k1br6-d1k3s2p1br6-c256k1br6-d1k3p1br6-c256k1br6-g-out"},
};

/* A stage token: c or d, then a digit. */
/* The character at p as it is written: its UTF-8 bytes (1 to 4), for messages. */
static int char_len(const char *p) {
    unsigned char c = (unsigned char)*p;
    int n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    for (int i = 1; i < n; i++)
        if (((unsigned char)p[i] & 0xc0) != 0x80) return i; /* a broken sequence: what is there */
    return n;
}

static int is_stage_token(const char *p) { return (p[0] == 'c' || p[0] == 'd') && p[1] >= '0' && p[1] <= '9'; }

/* check_only: `in` and `out` become stand-ins (a 64x64x3 image, 2 classes) so the grammar can be
 * checked before any data is read; nothing is compared with the data. */
static tq_status resolve(const char *spec, const int *in_shape, int classes, char *out, size_t cap, int check_only) {
    if (!spec || !*spec) TQ_FAIL(TQ_E_ARG, "model spec is empty (want a preset such as digitsnet, or e.g. in-100r-100r-out)");
    const char *given = spec;
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (!strcmp(spec, PRESETS[i].name)) spec = PRESETS[i].spec;
    static const int standin[3] = {64, 64, 3};
    if (check_only) in_shape = standin, classes = 2;
    int stages = 0;
    for (const char *p = spec; p; p = strchr(p, '-') ? strchr(p, '-') + 1 : NULL) stages |= is_stage_token(p);
    size_t o = 0;
    const char *first = NULL, *last = NULL;
    for (const char *p = spec; *p;) {
        const char *dash = strchr(p, '-');
        size_t len = dash ? (size_t)(dash - p) : strlen(p);
        if (len == 0) TQ_FAIL(TQ_E_ARG, "model spec '%s': an empty layer (a '-' at the start, or two in a row)", given);
        int is_in = len >= 2 && !strncmp(p, "in", 2), is_out = len >= 3 && !strncmp(p, "out", 3);
        char num[48] = "";
        size_t skip = 0;
        if (is_in || is_out) {
            if (is_in && p != spec) TQ_FAIL(TQ_E_ARG, "model spec '%s': 'in' can only be the first token", given);
            if (is_out && dash) TQ_FAIL(TQ_E_ARG, "model spec '%s': 'out' can only be the last token", given);
            if (is_in && !in_shape) TQ_FAIL(TQ_E_ARG, "model spec '%s' says 'in' but the data's size is not known here", given);
            if (is_out && classes <= 0) TQ_FAIL(TQ_E_ARG, "model spec '%s' says 'out' but the class count is not known here", given);
            if (is_in && stages) snprintf(num, sizeof num, "%dx%dx%d", in_shape[0], in_shape[1], in_shape[2]);
            else snprintf(num, sizeof num, "%d", is_in ? in_shape[0] * in_shape[1] * in_shape[2] : classes);
            skip = is_in ? 2 : 3;
        }
        int n = snprintf(out + o, o < cap ? cap - o : 0, "%s%s%.*s", o ? "-" : "", num, (int)(len - skip), p + skip);
        if (n < 0 || o + (size_t)n >= cap) TQ_FAIL(TQ_E_ARG, "model spec '%s' is too long", given);
        if (!first) first = out + o;
        last = out + o + (o ? 1 : 0);
        o += (size_t)n;
        p += len + (dash ? 1 : 0);
        if (dash && !*p) TQ_FAIL(TQ_E_ARG, "model spec '%s' ends with '-'", given);
    }
    if (check_only) return TQ_OK;
    if (in_shape) {
        int h = 0, w = 0, c = 0, flat = in_shape[0] * in_shape[1] * in_shape[2];
        if (sscanf(first, "%dx%dx%d", &h, &w, &c) == 3) {
            if (h != in_shape[0] || w != in_shape[1] || c != in_shape[2])
                TQ_FAIL(TQ_E_SHAPE, "model %s takes %dx%dx%d images, but the data's are %dx%dx%d (start the spec with 'in')", given, h,
                        w, c, in_shape[0], in_shape[1], in_shape[2]);
        } else if (atoi(first) != flat) {
            TQ_FAIL(TQ_E_SHAPE, "model %s takes %d inputs, but the images have %d values (start the spec with 'in')", given,
                    atoi(first), flat);
        }
    }
    if (classes > 0 && atoi(last) != classes)
        TQ_FAIL(TQ_E_SHAPE, "model %s gives %d outputs, but the data has %d classes (end the spec with 'out')", given, atoi(last),
                classes);
    return TQ_OK;
}

int tq_model_is_graph(const tq_model *m) {
    for (int s = 0; s < m->n_stages; s++)
        if (m->unit[s].kind != TQ_UNIT_CONV || m->unit[s].src[0] != s - 1) return 1;
    return 0;
}

tq_status tq_model_spec_resolve(const char *spec, const int *in_shape, int classes, char *out, size_t cap) {
    return resolve(spec, in_shape, classes, out, cap, 0);
}

static tq_status parse_spec(tq_model *m, const char *spec);

tq_status tq_model_spec_check(const char *spec) {
    char r[TQ_SPEC_MAX];
    tq_model tmp;
    memset(&tmp, 0, sizeof tmp);
    TQ_TRY(resolve(spec, NULL, 0, r, sizeof r, 1));
    tq_status st = parse_spec(&tmp, r);
    tq_model_free(&tmp);
    /* sizes (a kernel too large for the image, ...) depend on the data, which the stand-in is not:
     * those are checked when the model meets the data, still before any training */
    if (st == TQ_E_SHAPE) return TQ_OK;
    if (st != TQ_OK) { /* say it of the spec as given, not of its stand-in numbers */
        const char *why = strstr(tq_last_error(), "': ");
        return tq_error_set_(st, __FILE__, __LINE__, "model spec '%s': %s", spec, why ? why + 3 : tq_last_error());
    }
    return TQ_OK;
}

/* Read a positive number after letter `key` at *p (e.g. "k5"), advancing *p; 0 if absent. */
static int opt_num(const char **p, char key, int *v) {
    if (**p != key || (*p)[1] < '0' || (*p)[1] > '9') return 0;
    char *end;
    long x = strtol(*p + 1, &end, 10);
    if (x < 0 || x > 65536) return -1;
    *v = (int)x;
    *p = end;
    return 1;
}

/* The output shape of stage s (-1: the model's input). */
static void stage_out(const tq_model *m, int s, int *h, int *w, int *c) {
    *h = s < 0 ? m->in_h : m->unit[s].out_h;
    *w = s < 0 ? m->in_w : m->unit[s].out_w;
    *c = s < 0 ? m->in_c : m->unit[s].out_c;
}

/* A stage token: cOkK[xL][sS[xT]][pP[xQ]|same][b][r|r6] or dMkK[...], reading stage `from`'s
 * output; fills the stage. sSxT: stride S down, T across. `same` is TFLite's SAME padding (the
 * output ceil(H / S) x ceil(W / T); an odd padding's extra row and column go below and right). */
static tq_status parse_stage(tq_model *m, const char *spec, const char *tok, int from) {
    if (m->n_stages == TQ_MAX_STAGES) TQ_FAIL(TQ_E_ARG, "model spec '%s': more than %d stages", spec, TQ_MAX_STAGES);
    tq_unit *st = &m->unit[m->n_stages];
    int h, w, c;
    stage_out(m, from, &h, &w, &c);
    st->src[0] = from, st->src[1] = -1;
    int depthwise = tok[0] == 'd', n = 0, k = 0, kw = 0, stride = 1, stride_w = 1, pad = 0, pad_w = 0;
    const char *p = tok + 1;
    char *end;
    n = (int)strtol(p, &end, 10);
    p = end;
    if (n < 1 || n > 4096 || opt_num(&p, 'k', &k) != 1 || k < 1 || (kw = k, opt_num(&p, 'x', &kw) < 0) || kw < 1)
        TQ_FAIL(TQ_E_ARG, "model spec '%s': stage %d '%.*s': want %cNkK or %cNkKxL (N %s, K x L the kernel)", spec, m->n_stages + 1,
                (int)strcspn(tok, "-"), tok, tok[0], tok[0], depthwise ? "channels per input channel" : "output channels");
    int same = 0;
    if (opt_num(&p, 's', &stride) < 0 || stride < 1 || (stride_w = stride, opt_num(&p, 'x', &stride_w) < 0) || stride_w < 1 ||
        (same = !strncmp(p, "same", 4), p += 4 * same, 0) ||
        (!same && (opt_num(&p, 'p', &pad) < 0 || (pad_w = pad, opt_num(&p, 'x', &pad_w) < 0))))
        TQ_FAIL(TQ_E_ARG, "model spec '%s': stage %d: bad stride or padding", spec, m->n_stages + 1);
    if (*p == 'b') st->bn = 1, p++;
    if (*p == 'r') st->relu = p[1] == '6' ? 2 : 1, p += st->relu; /* r6: ReLU6 */
    if (*p && *p != '-') TQ_FAIL(TQ_E_ARG, "model spec '%s': stage %d: unexpected '%.*s'", spec, m->n_stages + 1, char_len(p), p);
    tq_status s = same ? tq_conv_shape_init_same(&st->conv, h, w, c, k, kw, stride, stride_w, depthwise ? c * n : n, depthwise)
                       : tq_conv_shape_init_strides(&st->conv, h, w, c, k, kw, stride, stride_w, pad, pad_w, depthwise ? c * n : n, depthwise);
    if (s != TQ_OK) return tq_error_set_(s, __FILE__, __LINE__, "model spec '%s': stage %d: %s", spec, m->n_stages + 1, tq_last_error());
    st->out_h = st->conv.OH;
    st->out_w = st->conv.OW;
    st->out_c = st->conv.OC;
    m->n_stages++;
    return TQ_OK;
}

/* A pool token mK[sS] or aK[sS], or g (global average), after the last stage. */
static tq_status parse_pool(tq_model *m, const char *spec, const char *tok) {
    tq_unit *st = m->n_stages ? &m->unit[m->n_stages - 1] : NULL;
    if (!st || st->pool) TQ_FAIL(TQ_E_ARG, "model spec '%s': a pool must follow a stage (one pool each)", spec);
    const int h = st->out_h, w = st->out_w, c = st->out_c, global = tok[0] == 'g';
    int k = h, stride = h;
    if (!global) {
        const char *p = tok + 1;
        char *end;
        k = (int)strtol(p, &end, 10);
        p = end;
        stride = k;
        if (k < 1 || k > 64 || opt_num(&p, 's', &stride) < 0 || stride < 1 || *p)
            TQ_FAIL(TQ_E_ARG, "model spec '%s': bad pool '%s' (want m2, a4, m3s2 or g)", spec, tok);
    }
    tq_status s = global ? tq_pool_shape_global(&st->pool_shape, h, w, c) : tq_pool_shape_init(&st->pool_shape, h, w, c, k, stride, tok[0] == 'a');
    if (s != TQ_OK) return tq_error_set_(s, __FILE__, __LINE__, "model spec '%s': stage %d: %s", spec, m->n_stages, tq_last_error());
    st->pool = global || tok[0] == 'a' ? 2 : 1;
    st->out_h = st->pool_shape.OH;
    st->out_w = st->pool_shape.OW;
    return TQ_OK;
}

/* +NAME: a stage adding stage b's output to stage a's (one shape). */
static tq_status parse_add(tq_model *m, const char *spec, int a, int b, const char *name) {
    if (m->n_stages == TQ_MAX_STAGES) TQ_FAIL(TQ_E_ARG, "model spec '%s': more than %d stages", spec, TQ_MAX_STAGES);
    int h[2], w[2], c[2];
    stage_out(m, a, &h[0], &w[0], &c[0]);
    stage_out(m, b, &h[1], &w[1], &c[1]);
    if (h[0] != h[1] || w[0] != w[1] || c[0] != c[1])
        TQ_FAIL(TQ_E_SHAPE, "model spec '%s': +%s adds %dx%dx%d to %dx%dx%d (one shape)", spec, name, h[1], w[1], c[1], h[0], w[0], c[0]);
    tq_unit *st = &m->unit[m->n_stages++];
    st->kind = TQ_UNIT_ADD;
    st->src[0] = a, st->src[1] = b;
    TQ_TRY(tq_conv_shape_init(&st->conv, h[0], w[0], c[0], 1, 1, 0, c[0], 1)); /* the shape only: no weights */
    st->out_h = h[0], st->out_w = w[0], st->out_c = c[0];
    return TQ_OK;
}

/* ^NAME: a stage joining stage b's channels after stage a's (one height and width). */
static tq_status parse_concat(tq_model *m, const char *spec, int a, int b, const char *name) {
    if (m->n_stages == TQ_MAX_STAGES) TQ_FAIL(TQ_E_ARG, "model spec '%s': more than %d stages", spec, TQ_MAX_STAGES);
    int h[2], w[2], c[2];
    stage_out(m, a, &h[0], &w[0], &c[0]);
    stage_out(m, b, &h[1], &w[1], &c[1]);
    if (h[0] != h[1] || w[0] != w[1])
        TQ_FAIL(TQ_E_SHAPE, "model spec '%s': ^%s joins %dx%dx%d to %dx%dx%d (one height and width)", spec, name, h[1], w[1], c[1], h[0],
                w[0], c[0]);
    if (c[0] + c[1] > TQ_FQ_MAX_CH) TQ_FAIL(TQ_E_ARG, "model spec '%s': ^%s: more than %d channels", spec, name, TQ_FQ_MAX_CH);
    tq_unit *st = &m->unit[m->n_stages++];
    st->kind = TQ_UNIT_CONCAT;
    st->src[0] = a, st->src[1] = b;
    st->cat = (tq_concat_shape){{c[0], c[1]}};
    TQ_TRY(tq_conv_shape_init(&st->conv, h[0], w[0], c[0], 1, 1, 0, c[0] + c[1], 0)); /* the shape only: no weights */
    st->out_h = h[0], st->out_w = w[0], st->out_c = c[0] + c[1];
    return TQ_OK;
}

/* is_drop: tok starts a dropP token. drop_pct: its P (1 to 90), or -1 when it is malformed. */
static int is_drop(const char *p) { return !strncmp(p, "drop", 4); }
static int drop_pct(const char *tok) {
    char *end;
    long v = strtol(tok + 4, &end, 10);
    return isdigit((unsigned char)tok[4]) && (!*end || *end == '-' || *end == '@') && v >= 1 && v <= 90 ? (int)v : -1;
}

/* The tokens of the image part: stages, pools, +NAME, ^NAME, ~NAME, r, dropP, each optionally @NAME. */
static int is_image_token(const char *p) {
    return is_stage_token(p) || ((p[0] == 'm' || p[0] == 'a') && p[1] >= '0' && p[1] <= '9') || p[0] == '+' || p[0] == '^' ||
           p[0] == '~' || is_drop(p) ||
           ((p[0] == 'g' || p[0] == 'r') && (!p[1] || p[1] == '-' || p[1] == '@'));
}

/* A name: a letter, then letters, digits or _, at most 15. */
static int name_ok(const char *n) {
    size_t len = strlen(n);
    if (len < 1 || len > 15 || !islower((unsigned char)n[0])) return 0;
    for (size_t i = 1; i < len; i++)
        if (!islower((unsigned char)n[i]) && !isdigit((unsigned char)n[i]) && n[i] != '_') return 0;
    return 1;
}

/* The image part of a spec, from p (after the input) to the first dense width: the stages, each
 * reading the current tensor (the stage before, or the one ~NAME went back to). Sets *rest. */
static tq_status parse_stages(tq_model *m, const char *spec, const char *p, const char **rest) {
    char names[TQ_MAX_STAGES][16];
    int named[TQ_MAX_STAGES], n_names = 0, cur = -1;
    while (*p && is_image_token(p)) {
        const size_t len = strcspn(p, "-");
        char tok[TQ_SPEC_MAX];
        memcpy(tok, p, len);
        tok[len] = '\0';
        char *at = strchr(tok, '@');
        if (at) *at++ = '\0';
        int ref = -2; /* +NAME's, ^NAME's and ~NAME's stage */
        if (tok[0] == '+' || tok[0] == '^' || tok[0] == '~') {
            for (int i = 0; i < n_names; i++)
                if (!strcmp(names[i], tok + 1)) ref = named[i];
            if (ref == -2) TQ_FAIL(TQ_E_ARG, "model spec '%s': '%s' names no earlier output (name one with @%s)", spec, tok, tok + 1);
        }
        if (tok[0] == '~') {
            if (at) TQ_FAIL(TQ_E_ARG, "model spec '%s': '%s@%s': a ~ goes back to a name, it makes no output to name", spec, tok, at);
            cur = ref;
        } else if (tok[0] == '+') {
            TQ_TRY(parse_add(m, spec, cur, ref, tok + 1));
            cur = m->n_stages - 1;
        } else if (tok[0] == '^') {
            TQ_TRY(parse_concat(m, spec, cur, ref, tok + 1));
            cur = m->n_stages - 1;
        } else if (is_stage_token(tok)) {
            TQ_TRY(parse_stage(m, spec, tok, cur));
            cur = m->n_stages - 1;
        } else if (cur < 0 || cur != m->n_stages - 1) {
            TQ_FAIL(TQ_E_ARG, "model spec '%s': '%s': a %s must follow the stage it acts on (a convolution, an add or a concat)", spec, tok,
                    tok[0] == 'r' ? "ReLU" : is_drop(tok) ? "dropout" : "pool");
        } else if (is_drop(tok)) {
            tq_unit *st = &m->unit[cur];
            if (st->drop || drop_pct(tok) < 0)
                TQ_FAIL(TQ_E_ARG, "model spec '%s': '%s': want dropP, P from 1 to 90 percent, once a stage", spec, tok);
            st->drop = drop_pct(tok);
        } else if (tok[0] == 'r') {
            tq_unit *st = &m->unit[cur];
            if (st->relu || st->pool) TQ_FAIL(TQ_E_ARG, "model spec '%s': 'r' after stage %d, which has its ReLU or pool already", spec, cur + 1);
            if (st->kind == TQ_UNIT_CONCAT)
                TQ_FAIL(TQ_E_ARG, "model spec '%s': 'r' after stage %d, a concat: it copies, put the ReLU on its inputs", spec, cur + 1);
            st->relu = 1;
        } else {
            TQ_TRY(parse_pool(m, spec, tok));
        }
        if (at) {
            if (n_names == TQ_MAX_STAGES) TQ_FAIL(TQ_E_ARG, "model spec '%s': more than %d names", spec, TQ_MAX_STAGES);
            if (!name_ok(at)) TQ_FAIL(TQ_E_ARG, "model spec '%s': bad name '%s' (a letter, then letters, digits or _, at most 15)", spec, at);
            for (int i = 0; i < n_names; i++)
                if (!strcmp(names[i], at)) TQ_FAIL(TQ_E_ARG, "model spec '%s': the name '%s' is given twice", spec, at);
            strcpy(names[n_names], at);
            named[n_names++] = cur;
        }
        p += len;
        if (*p == '-') p++;
    }
    if (m->n_stages && cur != m->n_stages - 1)
        TQ_FAIL(TQ_E_ARG, "model spec '%s': the dense layers read the last stage, but a ~ went back from it", spec);
    for (int s = 0; s + 1 < m->n_stages; s++) { /* every output is read */
        int read = 0;
        for (int t = s + 1; t < m->n_stages; t++) read |= m->unit[t].src[0] == s || m->unit[t].src[1] == s;
        if (!read) TQ_FAIL(TQ_E_ARG, "model spec '%s': stage %d's output is read by nothing", spec, s + 1);
    }
    *rest = p;
    return TQ_OK;
}

/* A dense layer of `in` inputs and `out` outputs after the last unit: its shape the 1 x 1
 * convolution of a 1 x 1 x in image (tq_unit). */
static tq_unit *add_dense(tq_model *m, int in, int out) {
    tq_unit *L = &m->unit[m->n_units];
    *L = (tq_unit){.kind = TQ_UNIT_DENSE, .src = {m->n_units - 1, -1}, .out_h = 1, .out_w = 1, .out_c = out};
    L->conv = (tq_conv_shape){.H = 1, .W = 1, .C = in, .KH = 1, .KW = 1, .stride = 1, .stride_w = 1, .OC = out, .OH = 1, .OW = 1};
    m->n_units++, m->n_layers++;
    return L;
}

static tq_status parse_spec(tq_model *m, const char *spec) {
    if (!spec || !*spec) TQ_FAIL(TQ_E_ARG, "model spec is empty (want e.g. 784-100r-100r-10)");
    if (strlen(spec) >= sizeof m->spec) TQ_FAIL(TQ_E_ARG, "model spec '%s' is too long", spec);
    /* the input: N, or HxWxC */
    int h = 1, w = 1, c = 0, used = 0;
    if (sscanf(spec, "%dx%dx%d%n", &h, &w, &c, &used) == 3 && (spec[used] == '-' || !spec[used])) {
        const long most = 1L << 24; /* values an image may hold; checked factor by factor, so no product overflows */
        if (h < 1 || w < 1 || c < 1 || h > most || w > most / h || c > most / ((long)h * w))
            TQ_FAIL(TQ_E_ARG, "model spec '%s': bad input image %dx%dx%d", spec, h, w, c);
        m->in_h = h, m->in_w = w, m->in_c = c;
    } else {
        h = w = 1;
        used = 0;
    }
    const char *p = spec + used;
    if (used && *p == '-') p++;
    int n = used ? 1 : 0, width = 0; /* widths seen (an image input counts as the first); the next dense layer's input */
    if (used) {
        /* stages, then the dense layers' input is the last stage's output */
        TQ_TRY(parse_stages(m, spec, p, &p));
        if (!*p) TQ_FAIL(TQ_E_ARG, "model spec '%s': needs at least one dense layer after the input (the classifier)", spec);
        if (m->n_stages) stage_out(m, m->n_stages - 1, &h, &w, &c);
        width = h * w * c;
    }
    m->n_units = m->n_stages;
    for (;;) {
        if (is_stage_token(p)) TQ_FAIL(TQ_E_ARG, "model spec '%s': a convolution needs an image input (HxWxC) and comes before the dense layers", spec);
        if ((p[0] == 'm' || p[0] == 'a') && isdigit((unsigned char)p[1]))
            TQ_FAIL(TQ_E_ARG, "model spec '%s': a pool must follow a convolution stage (with an image input)", spec);
        if (!isdigit((unsigned char)*p)) TQ_FAIL(TQ_E_ARG, "model spec '%s': expected a width at '%s'", spec, p);
        char *end;
        long wd = strtol(p, &end, 10);
        if (wd < 1 || wd > 65536) TQ_FAIL(TQ_E_ARG, "model spec '%s': width %ld out of range 1..65536", spec, wd);
        if (n > TQ_MAX_LAYERS) TQ_FAIL(TQ_E_ARG, "model spec '%s': more than %d layers", spec, TQ_MAX_LAYERS);
        tq_unit *L = n ? add_dense(m, width, (int)wd) : NULL; /* (a dense-only model's first width is its input) */
        width = (int)wd;
        p = end;
        if (*p == 'r') {
            if (!L) TQ_FAIL(TQ_E_ARG, "model spec '%s': a ReLU needs a layer before it", spec);
            L->relu = 1;
            p++;
        }
        if (!strncmp(p, "-drop", 5)) {
            if (!L || drop_pct(p + 1) < 0)
                TQ_FAIL(TQ_E_ARG, "model spec '%s': '%.*s': want dropP (P from 1 to 90 percent) after a dense layer", spec,
                        (int)strcspn(p + 1, "-"), p + 1);
            L->drop = drop_pct(p + 1);
            p += 1 + strcspn(p + 1, "-");
        }
        n++;
        if (*p == '\0') break;
        if (*p != '-') TQ_FAIL(TQ_E_ARG, "model spec '%s': unexpected '%.*s'", spec, char_len(p), p);
        p++;
    }
    if (n < 2) TQ_FAIL(TQ_E_ARG, "model spec '%s': needs an input and at least one layer", spec);
    if (m->unit[m->n_units - 1].drop) TQ_FAIL(TQ_E_ARG, "model spec '%s': a dropout after the last layer (the logits)", spec);
    if (!used) m->in_h = m->in_w = 1, m->in_c = m->unit[m->n_stages].conv.C;
    strcpy(m->spec, spec);
    return TQ_OK;
}

/* Floats of unit u's weights, of its parameters (W, then b or gamma and beta) and of its buffers
 * (the running statistics). An add or a concat has none. */
size_t tq_unit_weights(const tq_unit *u) {
    if (u->kind != TQ_UNIT_CONV && u->kind != TQ_UNIT_DENSE) return 0;
    return (size_t)u->conv.OC * u->conv.KH * u->conv.KW * (u->conv.depthwise ? 1 : u->conv.C);
}
static size_t unit_params(const tq_unit *u) { return tq_unit_weights(u) ? tq_unit_weights(u) + (size_t)u->conv.OC * (u->bn ? 2 : 1) : 0; }
static size_t unit_buffers(const tq_unit *u) { return u->bn ? 2 * (size_t)u->conv.OC : 0; }

tq_status tq_model_init(tq_model *m, const char *spec) {
    memset(m, 0, sizeof *m);
    TQ_TRY(parse_spec(m, spec));
    m->in_mean = 0.0f;
    m->in_std = 1.0f;
    size_t n = 0, nb = 0;
    for (int u = 0; u < m->n_units; u++) n += unit_params(&m->unit[u]), nb += unit_buffers(&m->unit[u]);
    if (n > ((size_t)1 << 26)) TQ_FAIL(TQ_E_ARG, "model spec '%s': %zu parameters, more than the 67,108,864 tinyqat allows", spec, n);
    m->n_params = n;
    m->n_buffers = nb;
    m->params = tq_calloc(n, sizeof(float));
    m->grads = tq_calloc(n, sizeof(float));
    m->buffers = nb ? tq_calloc(nb, sizeof(float)) : NULL;
    if (!m->params || !m->grads || (nb && !m->buffers)) {
        tq_model_free(m);
        TQ_FAIL(TQ_E_NOMEM, "model %s: cannot allocate %zu parameters", spec, n);
    }
    /* Carve the views in unit order, W then b (or gamma, beta), in both blocks at the same offsets:
     * the stages' first, then W0 b0 W1 b1 ... (a dense-only model's block is what it was before
     * stages existed). */
    size_t off = 0, boff = 0;
    for (int i = 0; i < m->n_units; i++) {
        tq_unit *u = &m->unit[i];
        size_t OC = (size_t)u->conv.OC;
        if (!tq_unit_weights(u)) continue;
        u->W = m->params + off, u->dW = m->grads + off;
        off += tq_unit_weights(u);
        if (u->bn) {
            u->gamma = m->params + off, u->dgamma = m->grads + off;
            u->beta = m->params + off + OC, u->dbeta = m->grads + off + OC;
            off += 2 * OC;
            u->running_mean = m->buffers + boff, u->running_var = m->buffers + boff + OC;
            boff += 2 * OC;
            tq_bn_init(&u->bn_state, (int)OC, u->running_mean, u->running_var);
        } else {
            u->b = m->params + off, u->db = m->grads + off;
            off += OC;
        }
    }
    return TQ_OK;
}

void tq_model_init_params(tq_model *m, tq_rng *rng) {
    for (int u = 0; u < m->n_units; u++) { /* PyTorch's Conv2d, Linear and BatchNorm2d defaults (a dense layer's are its 1 x 1 conv's) */
        tq_unit *st = &m->unit[u];
        if (!st->W) continue;
        tq_conv_init(st->W, st->b, &st->conv, rng);
        for (int c = 0; st->bn && c < st->conv.OC; c++) st->gamma[c] = 1.0f, st->beta[c] = 0.0f;
        if (st->bn) tq_bn_init(&st->bn_state, st->conv.OC, st->running_mean, st->running_var);
    }
}

void tq_model_decay_mask(const tq_model *m, uint8_t *mask) {
    memset(mask, 0, m->n_params);
    for (int u = 0; u < m->n_units; u++)
        if (m->unit[u].W) memset(mask + (m->unit[u].W - m->params), 1, tq_unit_weights(&m->unit[u]));
}

void tq_model_free(tq_model *m) {
    if (!m) return;
    tq_free(m->params);
    tq_free(m->grads);
    tq_free(m->buffers);
    tq_qat_free(m->qat);
    memset(m, 0, sizeof *m);
}

tq_status tq_model_clone(tq_model *dst, const tq_model *src) {
    TQ_TRY(tq_model_init(dst, src->spec));
    memcpy(dst->params, src->params, dst->n_params * sizeof(float)); /* not src's learned scales (LSQ) */
    if (src->n_buffers) memcpy(dst->buffers, src->buffers, src->n_buffers * sizeof(float));
    dst->in_mean = src->in_mean;
    dst->in_std = src->in_std;
    return TQ_OK;
}

void tq_model_freeze_bn(tq_model *m, int frozen) {
    for (int s = 0; s < m->n_stages; s++) m->unit[s].bn_state.frozen = frozen;
}

/* conv((p/255 - mean) / std) = conv_{W/std}(p/255) - shift, shift[o] = (mean/std) sum W[o]: the
 * shift moves into the bias (b - shift) or, ahead of a batch norm, into its running mean
 * (rm + shift), exact wherever no padding is read. */
static void fold_into_unit(tq_unit *st, float mean, float std) {
    size_t K = tq_unit_weights(st) / (size_t)st->conv.OC;
    float inv = 1.0f / std, k = mean / std;
    for (int o = 0; o < st->conv.OC; o++) {
        float *w = st->W + (size_t)o * K;
        double sum = 0;
        for (size_t i = 0; i < K; i++) sum += w[i];
        if (st->bn) st->running_mean[o] += (float)(k * sum);
        else st->b[o] -= (float)(k * sum);
        for (size_t i = 0; i < K; i++) w[i] *= inv;
    }
}

void tq_model_fold_input_norm(tq_model *m) {
    fold_into_unit(&m->unit[0], m->in_mean, m->in_std);
    m->in_mean = 0.0f;
    m->in_std = 1.0f;
}

void tq_model_input(const tq_model *m, const uint8_t *pixels, size_t n, float *x) {
    /* 256 possible inputs: a table makes the per-batch conversion one lookup per pixel.
     * p / 255.0f is the exact value the integer path's (q + 128) * (1/255) stands for. */
    float lut[256];
    for (int p = 0; p < 256; p++) lut[p] = ((float)p / 255.0f - m->in_mean) / m->in_std;
    size_t total = n * (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    for (size_t i = 0; i < total; i++) x[i] = lut[pixels[i]];
}

/* ---- quantization ---- */

static tq_status add_lsq_params(tq_model *m);

tq_status tq_model_quantize(tq_model *m, const tq_qat_cfg *cfg) {
    if (m->qat) TQ_FAIL(TQ_E_ARG, "model %s is already quantized", m->spec);
    if (m->n_stages && m->unit[0].conv.pad && (m->in_mean != 0.0f || m->in_std != 1.0f))
        TQ_FAIL(TQ_E_ARG, "model %s: the first convolution pads its input, so the input normalization cannot be folded into it "
                          "exactly; train it with --no-norm to quantize it", m->spec);
    const int units = m->n_units;
    int oc[TQ_MAX_UNITS], src[TQ_MAX_UNITS];
    for (int u = 0; u < units; u++) oc[u] = m->unit[u].conv.OC, src[u] = m->unit[u].src[0];
    for (int s = 0; s < m->n_stages; s++) { /* the int16 ADD is not TFLite's int8 one: not there yet */
        const tq_unit *S = &m->unit[s];
        const int two = S->kind != TQ_UNIT_CONV;
        int wide = two && tq_qat_cfg_act_bits(cfg, s, units) == 16;
        for (int j = 0; j < 2 && two; j++) wide |= S->src[j] >= 0 && tq_qat_cfg_act_bits(cfg, S->src[j], units) == 16;
        if (wide)
            TQ_FAIL(TQ_E_ARG, "model %s: stage %d is %s: 16-bit activations are for convolutions, pools and dense layers; keep the "
                              "%s and the stages it reads at 8 bits (--act-bits per layer)", m->spec, s + 1,
                    S->kind == TQ_UNIT_ADD ? "an add" : "a concat", S->kind == TQ_UNIT_ADD ? "add" : "concat");
    }
    /* LSQ's set-up can fail after the fold: the parameters are kept to put back, so that a failure
     * leaves the float model as it was (and a retry is possible) */
    const float mean = m->in_mean, sd = m->in_std;
    float *saved = cfg->ste == TQ_STE_LSQ ? tq_malloc(m->n_params * sizeof(float)) : NULL;
    if (cfg->ste == TQ_STE_LSQ && !saved) TQ_FAIL(TQ_E_NOMEM, "model %s: out of memory", m->spec);
    if (saved) memcpy(saved, m->params, m->n_params * sizeof(float));
    tq_status st = tq_qat_new(&m->qat, cfg, units, m->n_stages, oc, src);
    for (int s = 0; s < m->n_stages && st == TQ_OK; s++)
        if (m->unit[s].kind == TQ_UNIT_CONCAT && (st = tq_qat_share_concat(m->qat, s, m->unit[s].src[0], m->unit[s].src[1])) != TQ_OK) {
            tq_error_set_(st, __FILE__, __LINE__, "model %s: %s", m->spec, tq_last_error());
            tq_qat_free(m->qat);
            m->qat = NULL;
        }
    if (st == TQ_OK && (m->in_mean != 0.0f || m->in_std != 1.0f)) tq_model_fold_input_norm(m);
    if (st == TQ_OK && saved && (st = add_lsq_params(m)) != TQ_OK) {
        memcpy(m->params, saved, m->n_params * sizeof(float)); /* add_lsq_params fails before it grows the block */
        m->in_mean = mean, m->in_std = sd;
        tq_qat_free(m->qat);
        m->qat = NULL;
    }
    tq_free(saved);
    return st;
}

/* A unit's weights and bias as the integer model holds them: with batch norm, folded exactly as
 * the fake quant saw them (layers/batchnorm.c's float expressions: s = gamma * (1 / sqrtf(var + eps))),
 * and the bias the evaluation's batch norm adds, beta - s mean. W: [OC][K], b: [OC]. */
static void unit_folded(const tq_unit *st, float *W, float *b) {
    size_t OC = (size_t)st->conv.OC, K = tq_unit_weights(st) / OC;
    for (size_t c = 0; c < OC; c++) {
        float sc = 1.0f, bias = st->b ? st->b[c] : 0.0f;
        if (st->bn) {
            sc = tq_bn_fold_scale(st->gamma[c], st->running_var[c], st->bn_state.eps);
            bias = st->beta[c] - sc * st->running_mean[c];
        }
        for (size_t k = 0; k < K; k++) W[c * K + k] = st->W[c * K + k] * sc;
        b[c] = bias;
    }
}

/* LSQ (docs/QUANTIZATION.md §3): every unit's weight scales and its output's activation scale
 * become parameters, appended to the parameter block as log s so that the optimizer, the
 * gradient checks and checkpoints treat them as any other parameter. The weight scales start
 * where PTQ's rule puts them (max|w|, or the MSE clip); an activation scale where its observer
 * puts it on the first training batch (the fake quant sets it then). The blocks are reallocated
 * and every view moved with them. Order: per unit with weights, the weight scales then the
 * activation scale. A residual add learns none: its output's scale stays its observer's; nor
 * do a concat and its inputs: their one scale follows their observers (tq_qat_share_concat). */
static tq_status add_lsq_params(tq_model *m) {
    tq_qat *Q = m->qat;
    size_t n = 0, wmax = 1, ocmax = 1;
    for (int u = 0; u < m->n_units; u++) /* (an add learns nothing: its output scale is its observer's) */
        if (m->unit[u].W) {
            n += (size_t)Q->wfq[u].n_ch + !Q->afq[u].ring;
            wmax = tq_unit_weights(&m->unit[u]) > wmax ? tq_unit_weights(&m->unit[u]) : wmax;
            ocmax = (size_t)m->unit[u].conv.OC > ocmax ? (size_t)m->unit[u].conv.OC : ocmax;
        }
    float *p = tq_calloc(m->n_params + n, sizeof(float)), *gr = tq_calloc(m->n_params + n, sizeof(float));
    float *wf = tq_malloc(wmax * sizeof(float)), *bf = tq_malloc(ocmax * sizeof(float));
    if (!p || !gr || !wf || !bf) {
        tq_free(p), tq_free(gr), tq_free(wf), tq_free(bf);
        TQ_FAIL(TQ_E_NOMEM, "model %s: cannot allocate the learned scales", m->spec);
    }
    memcpy(p, m->params, m->n_params * sizeof(float));
#define MOVE(v, from, to) ((v) = (v) ? (to) + ((v) - (from)) : NULL)
    for (int u = 0; u < m->n_units; u++) {
        tq_unit *st = &m->unit[u];
        MOVE(st->W, m->params, p), MOVE(st->b, m->params, p), MOVE(st->gamma, m->params, p), MOVE(st->beta, m->params, p);
        MOVE(st->dW, m->grads, gr), MOVE(st->db, m->grads, gr), MOVE(st->dgamma, m->grads, gr), MOVE(st->dbeta, m->grads, gr);
    }
#undef MOVE
    tq_free(m->params);
    tq_free(m->grads);
    m->params = p, m->grads = gr;
    m->lsq = p + m->n_params, m->n_lsq = n;
    m->n_params += n;
    float *v = m->lsq;
    for (int u = 0; u < m->n_units; u++) {
        size_t OC = (size_t)m->unit[u].conv.OC;
        if (!m->unit[u].W) continue;
        unit_folded(&m->unit[u], wf, bf);
        (void)tq_fq_update(&Q->wfq[u], wf, (int)OC, (int)(tq_unit_weights(&m->unit[u]) / OC), 0);
        for (int c = 0; c < Q->wfq[u].n_ch; c++) v[c] = logf(Q->wfq[u].scale[c]);
        Q->wfq[u].learned = v, Q->wfq[u].learned_grad = gr + (v - p), Q->wfq[u].lsq_log = 1;
        v += Q->wfq[u].n_ch;
        if (Q->afq[u].ring) continue; /* a concat's input: the scale it shares is its observers' */
        Q->afq[u].learned = v, Q->afq[u].learned_grad = gr + (v - p), Q->afq[u].lsq_log = 1;
        v += 1;
    }
    tq_free(wf);
    tq_free(bf);
    return TQ_OK;
}

tq_status tq_model_to_int8(tq_model *m, tq_qmodel *q) {
    if (!m || !q) TQ_FAIL(TQ_E_ARG, "to_int8: a model and an output are required");
    tq_qat *Q = m->qat;
    if (!Q) TQ_FAIL(TQ_E_ARG, "model %s is not quantized: run ptq or qat first", m->spec);
    if (!Q->cfg.quant_bias)
        TQ_FAIL(TQ_E_ARG, "model %s keeps a float bias (--no-bias-quant): the integer path needs an int32 bias", m->spec);
    for (int u = 0; u < m->n_units; u++) /* (a concat's quantizer reads its inputs' observers) */
        if (Q->afq[u].obs->n_seen == 0) TQ_FAIL(TQ_E_ARG, "unit %d's activation range was never observed: calibrate first", u + 1);
    size_t n_ch = 0, n_w = 0;
    for (int u = 0; u < m->n_units; u++) n_ch += 2 * (size_t)m->unit[u].conv.OC, n_w += tq_unit_weights(&m->unit[u]);
    /* every unit's per-channel weight scales and folded biases, the folded weights */
    float *chan = tq_malloc(n_ch * sizeof(float)), *wf = tq_malloc((n_w ? n_w : 1) * sizeof(float));
    if (!chan || !wf) {
        tq_free(chan);
        tq_free(wf);
        TQ_FAIL(TQ_E_NOMEM, "convert: out of memory");
    }
    tq_qlayer_src src[TQ_INT8_MAX_LAYERS];
    int n = 0, last[TQ_MAX_UNITS]; /* the integer layer that holds unit u's output */
    tq_status st = TQ_OK;
    float *ch = chan, *w = wf;
    for (int u = 0; u < m->n_units && st == TQ_OK; u++) {
        const tq_unit *S = &m->unit[u];
        const tq_conv_shape *cs = &S->conv;
        int need = 1 + (S->pool != 0) + (u == m->n_stages - 1);
        if (n + need > TQ_INT8_MAX_LAYERS) {
            st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "convert: more than %d integer layers", TQ_INT8_MAX_LAYERS);
            break;
        }
        /* each input: the integer layer of the unit it reads (src = layer + 1), its scale and zero point */
        int from[2] = {0, 0};
        float s_in[2] = {TQ_INPUT_SCALE, TQ_INPUT_SCALE};
        int32_t z_in[2] = {TQ_INPUT_ZERO_POINT, TQ_INPUT_ZERO_POINT};
        for (int j = 0; j < (S->kind == TQ_UNIT_ADD || S->kind == TQ_UNIT_CONCAT ? 2 : 1); j++) {
            int r = S->src[j];
            if (r < 0 && n > 0) {
                st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__,
                                   "convert: unit %d reads the model's input, which the integer runtime gives only its first layer", u + 1);
                break;
            }
            if (r >= 0) from[j] = last[r] + 1, s_in[j] = Q->afq[r].scale[0], z_in[j] = Q->afq[r].zero_point[0];
        }
        if (st != TQ_OK || (st = tq_fq_update(&Q->afq[u], NULL, 0, 0, 0)) != TQ_OK) break;
        float out_scale = Q->afq[u].scale[0];
        int32_t out_zp = Q->afq[u].zero_point[0];
        if (S->kind == TQ_UNIT_CONCAT) { /* its inputs are on its grid already (tq_qat_share_concat) */
            src[n++] = (tq_qlayer_src){.in_scale = out_scale, .in2_scale = out_scale, .out_scale = out_scale, .in_zp = out_zp,
                                       .in2_zp = out_zp, .out_zp = out_zp, .kind = TQ_S8_CONCAT, .in_h = cs->H, .in_w = cs->W,
                                       .in_c = S->cat.c[0], .in2_c = S->cat.c[1], .out_h = cs->H, .out_w = cs->W, .out_c = cs->OC,
                                       .k = 1, .stride = 1, .src = {from[0], from[1]}};
        } else if (S->kind == TQ_UNIT_ADD) {
            src[n++] = (tq_qlayer_src){.relu = S->relu, .in_scale = s_in[0], .in2_scale = s_in[1], .out_scale = out_scale,
                                       .in_zp = z_in[0], .in2_zp = z_in[1], .out_zp = out_zp, .kind = TQ_S8_ADD, .in_h = cs->H,
                                       .in_w = cs->W, .in_c = cs->C, .out_h = cs->H, .out_w = cs->W, .out_c = cs->C, .k = 1,
                                       .stride = 1, .src = {from[0], from[1]}};
        } else { /* weights: a convolution's, or a dense layer's (the layer after it, or the flatten, its input) */
            int OC = cs->OC, K = (int)(tq_unit_weights(S) / (size_t)OC);
            float *bias = ch + OC;
            unit_folded(S, w, bias);
            if ((st = tq_fq_update(&Q->wfq[u], w, OC, K, 0)) != TQ_OK) break;
            for (int o = 0; o < OC; o++) ch[o] = Q->wfq[u].scale[Q->wfq[u].per_channel ? o : 0];
            tq_qlayer_src L = {.in = cs->H * cs->W * cs->C, .out = cs->OH * cs->OW * OC, .relu = S->relu,
                               .w_bits = tq_qat_cfg_bits(&Q->cfg, u), .W = w, .b = bias, .w_scale = ch, .in_scale = s_in[0],
                               .out_scale = out_scale, .in_zp = z_in[0], .out_zp = out_zp, .out_bits = Q->afq[u].bits};
            if (S->kind == TQ_UNIT_CONV) {
                L.kind = cs->depthwise ? TQ_S8_DEPTHWISE : TQ_S8_CONV;
                L.in_h = cs->H, L.in_w = cs->W, L.in_c = cs->C, L.out_h = cs->OH, L.out_w = cs->OW, L.out_c = OC;
                L.k = cs->KH, L.stride = cs->stride, L.pad = cs->pad, L.kw = cs->KW, L.stride_w = cs->stride_w, L.pad_w = cs->pad_w;
                L.src[0] = from[0];
            }
            src[n++] = L;
            ch += 2 * OC;
            w += tq_unit_weights(S);
        }
        if (S->pool) { /* on the unit's quantized output: the same scale and zero point */
            const tq_pool_shape *ps = &S->pool_shape;
            src[n++] = (tq_qlayer_src){.in_scale = out_scale, .out_scale = out_scale, .in_zp = out_zp, .out_zp = out_zp,
                                       .kind = ps->avg ? TQ_S8_AVGPOOL : TQ_S8_MAXPOOL, .in_h = ps->H, .in_w = ps->W,
                                       .in_c = ps->C, .out_h = ps->OH, .out_w = ps->OW, .out_c = ps->C, .k = ps->K, .kw = ps->KW, .stride_w = ps->stride,
                                       .stride = ps->stride};
        }
        last[u] = n - 1;
        if (u == m->n_stages - 1) /* NHWC flattens to the dense layers' input order as it is */
            src[n++] = (tq_qlayer_src){.in_scale = out_scale, .out_scale = out_scale, .in_zp = out_zp, .out_zp = out_zp,
                                       .kind = TQ_S8_FLATTEN, .in_h = S->out_h, .in_w = S->out_w, .in_c = S->out_c,
                                       .out_h = 1, .out_w = 1, .out_c = S->out_h * S->out_w * S->out_c, .k = 1, .stride = 1};
    }
    if (st == TQ_OK) st = tq_qmodel_convert(q, m->spec, src, n);
    tq_free(chan);
    tq_free(wf);
    return st;
}

size_t tq_model_float_bytes(const tq_model *m) { return m->n_params * sizeof(float); }

size_t tq_model_int8_bytes(const tq_model *m) {
    int bits[TQ_QAT_MAX_UNITS];
    for (int u = 0; u < m->n_units; u++) bits[u] = m->qat ? tq_qat_cfg_bits(&m->qat->cfg, u) : 8;
    size_t n = tq_model_int8_bytes_with(m, bits);
    /* a layer with a 16-bit side keeps int64 biases: 4 more bytes a channel */
    for (int u = 0; m->qat && u < m->n_units; u++)
        if (m->unit[u].W && m->qat->bq[u].wide) n += 4 * (size_t)m->unit[u].conv.OC;
    return n;
}

size_t tq_model_int8_bytes_with(const tq_model *m, const int *unit_bits) {
    size_t n = 0;
    for (int u = 0; u < m->n_units; u++) {
        const tq_unit *U = &m->unit[u];
        if (U->kind == TQ_UNIT_ADD) {
            n += 3 * 8 + 4 * 4; /* three M0/shift pairs, zero points */
        } else if (U->kind == TQ_UNIT_CONCAT) {
            n += 4 * 4; /* zero points and the second input's channels */
        } else { /* the weights packed (BN folded: src/qmodel.h), int32 bias, M0/shift, zero points and clamp */
            size_t OC = (size_t)U->conv.OC, sb = (size_t)tq_qlayer_storage_bits(unit_bits[u]);
            n += (tq_unit_weights(U) * sb + 7) / 8 + OC * 4 + OC * 8 + 4 * 4;
        }
    }
    return n;
}

/* ---- files ---- */

/* The name of unit u's record `what` in a model file: stages.S.what for a feature unit,
 * layers.L.what for dense layer L (the names files have always used). */
typedef struct {
    char s[48];
} record_name;
static record_name record(const tq_model *m, int u, const char *what) {
    record_name r;
    if (u < m->n_stages) snprintf(r.s, sizeof r.s, "stages.%d.%s", u, what);
    else snprintf(r.s, sizeof r.s, "layers.%d.%s", u - m->n_stages, what);
    return r;
}

/* Unit u's parameter and buffer records, in file order, with their sizes and where they live. */
typedef struct {
    const char *what;
    float *data;
    uint32_t rows, cols;
} unit_record;
static int unit_records(const tq_unit *U, unit_record *r) {
    uint32_t OC = (uint32_t)U->conv.OC, K = (uint32_t)(tq_unit_weights(U) / OC);
    int n = 0;
    if (!U->W) return 0; /* an add or a concat: no parameters */
    r[n++] = (unit_record){"weight", U->W, OC, K};
    if (U->b) r[n++] = (unit_record){"bias", U->b, 1, OC};
    if (U->bn) {
        r[n++] = (unit_record){"bn_weight", U->gamma, 1, OC};
        r[n++] = (unit_record){"bn_bias", U->beta, 1, OC};
        r[n++] = (unit_record){"running_mean", U->running_mean, 1, OC};
        r[n++] = (unit_record){"running_var", U->running_var, 1, OC};
    }
    return n;
}

tq_status tq_model_to_ckpt(const tq_model *m, tq_ckpt *c) {
    const float norm[2] = {m->in_mean, m->in_std};
    TQ_TRY(tq_ckpt_set_meta(c, "format", "tinyqat-model"));
    TQ_TRY(tq_ckpt_set_meta(c, "spec", m->spec));
    TQ_TRY(tq_ckpt_set_meta(c, "kind", m->qat ? "quantized" : "fp32"));
    TQ_TRY(tq_ckpt_add_copy(c, "input_norm", 1, 2, norm));
    for (int u = 0; u < m->n_units; u++) {
        unit_record r[6];
        for (int k = 0, n = unit_records(&m->unit[u], r); k < n; k++) TQ_TRY(tq_ckpt_add(c, record(m, u, r[k].what).s, r[k].rows, r[k].cols, r[k].data));
    }
    if (m->qat) TQ_TRY(tq_qat_save_state(m->qat, c));
    float *v = m->lsq;
    for (int u = 0; v && u < m->n_units; u++) { /* add_lsq_params's order */
        if (!m->unit[u].W) continue;
        int nw = m->qat->wfq[u].n_ch;
        TQ_TRY(tq_ckpt_add(c, record(m, u, "w_log_scale").s, 1, (uint32_t)nw, v));
        v += nw;
        if (m->qat->afq[u].ring) continue; /* a concat's input: no learned activation scale */
        TQ_TRY(tq_ckpt_add(c, record(m, u, "a_log_scale").s, 1, 1, v));
        v += 1;
    }
    return TQ_OK;
}

tq_status tq_model_save(const tq_model *m, const char *path) {
    tq_ckpt c;
    tq_ckpt_init(&c);
    tq_status st = tq_model_to_ckpt(m, &c);
    if (st == TQ_OK) st = tq_ckpt_save(&c, path);
    tq_ckpt_free(&c);
    return st;
}

tq_status tq_model_load(tq_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    tq_ckpt c;
    TQ_TRY(tq_ckpt_load(&c, path));
    tq_status st = tq_model_from_ckpt(m, &c, path);
    tq_ckpt_free(&c);
    return st;
}

static tq_status load_quant_state(tq_model *m, const tq_ckpt *c, const char *path) {
    tq_qat_cfg cfg;
    TQ_TRY(tq_qat_cfg_load(&cfg, c, path));
    if (m->in_mean != 0.0f || m->in_std != 1.0f)
        TQ_FAIL(TQ_E_FORMAT, "%s: quantized model whose input normalization is not folded", path);
    tq_status s = tq_model_quantize(m, &cfg);
    if (s != TQ_OK) return tq_error_set_(s, __FILE__, __LINE__, "%s: %s", path, tq_last_error());
    TQ_TRY(tq_qat_load_observers(m->qat, c, path));
    float *v = m->lsq; /* LSQ: the learned scales replace the ones quantize started from */
    for (int u = 0; v && u < m->n_units; u++) {
        if (!m->unit[u].W) continue;
        for (int a = 0; a < 2 - (m->qat->afq[u].ring != NULL); a++) { /* the weight scales, then the activation's */
            int n = a ? 1 : m->qat->wfq[u].n_ch;
            record_name name = record(m, u, a ? "a_log_scale" : "w_log_scale");
            const tq_ckpt_tensor *t = tq_ckpt_find(c, name.s);
            if (!t || t->rows != 1 || t->cols != (uint32_t)n) TQ_FAIL(TQ_E_FORMAT, "%s: missing or bad %s (an LSQ model)", path, name.s);
            for (int i = 0; i < n; i++)
                if (!(t->data[i] > -80.0f && t->data[i] < 80.0f)) TQ_FAIL(TQ_E_FORMAT, "%s: %s[%d] is no log scale", path, name.s, i);
            memcpy(v, t->data, (size_t)n * sizeof(float));
            v += n;
        }
        TQ_TRY(tq_fq_update(&m->qat->afq[u], NULL, 0, 0, 0)); /* its scale: the learned one */
    }
    for (int u = m->n_stages; u < m->n_units; u++) /* the dense layers' weight scales from the loaded weights (or learned) */
        TQ_TRY(tq_fq_update(&m->qat->wfq[u], m->unit[u].W, m->unit[u].conv.OC, m->unit[u].conv.C, 0));
    return TQ_OK;
}

tq_status tq_model_from_ckpt(tq_model *m, const tq_ckpt *cp, const char *path) {
    memset(m, 0, sizeof *m);
    tq_status st = TQ_OK;
    const char *fmt = tq_ckpt_meta(cp, "format"), *spec = tq_ckpt_meta(cp, "spec");
    const tq_ckpt_tensor *norm = tq_ckpt_find(cp, "input_norm");
    if (!fmt || strcmp(fmt, "tinyqat-model") || !spec) {
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: not a tinyqat model (no format/spec)", path);
        goto done;
    }
    if ((st = tq_model_init(m, spec)) != TQ_OK) {
        st = tq_error_set_(st, __FILE__, __LINE__, "%s: %s", path, tq_last_error());
        goto done;
    }
    if (!norm || norm->rows != 1 || norm->cols != 2 || !(norm->data[1] > 0)) {
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: missing or bad input_norm", path);
        goto done;
    }
    m->in_mean = norm->data[0];
    m->in_std = norm->data[1];
    for (int u = 0; u < m->n_units; u++) {
        unit_record r[6];
        for (int k = 0, n = unit_records(&m->unit[u], r); k < n; k++) {
            record_name name = record(m, u, r[k].what);
            const tq_ckpt_tensor *t = tq_ckpt_find(cp, name.s);
            if (!t || t->rows != r[k].rows || t->cols != r[k].cols) {
                st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: %s is missing or does not match spec %s", path, name.s, spec);
                goto done;
            }
            memcpy(r[k].data, t->data, (size_t)r[k].rows * r[k].cols * sizeof(float));
        }
        for (int c = 0; m->unit[u].bn && c < m->unit[u].conv.OC; c++)
            if (!(m->unit[u].running_var[c] >= 0.0f)) {
                st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: %s has a negative running variance", path, record(m, u, "running_var").s);
                goto done;
            }
    }
    const char *kind = tq_ckpt_meta(cp, "kind");
    if (kind && !strcmp(kind, "quantized")) st = load_quant_state(m, cp, path);
done:
    if (st != TQ_OK) tq_model_free(m);
    return st;
}

/* ---- the graph ---- */

/* Unit u's weighted op on h: a convolution with its batch norm and ReLU, or a dense layer and its
 * ReLU; float, or as QAT simulates it. */
static tq_node *weighted_unit(tq_graph *g, tq_model *m, int u, tq_node *h) {
    tq_unit *st = &m->unit[u];
    int OC = st->conv.OC, K = (int)(tq_unit_weights(st) / (size_t)OC);
    tq_node *W = tq_leaf(g, "W", OC, K, st->W, st->dW);
    tq_node *b = st->b ? tq_leaf(g, "b", 1, OC, st->b, st->db) : NULL;
    if (st->kind == TQ_UNIT_DENSE) {
        if (m->qat) return tq_qat_layer(g, m->qat, u, h, W, b, st->relu); /* fake-quant W (and b), linear, ReLU, fake-quant output */
        h = tq_linear(g, h, W, b);
        return st->relu ? tq_relu(g, h) : h;
    }
    tq_node *gm = st->bn ? tq_leaf(g, "gamma", 1, OC, st->gamma, st->dgamma) : NULL;
    tq_node *bt = st->bn ? tq_leaf(g, "beta", 1, OC, st->beta, st->dbeta) : NULL;
    if (m->qat) return tq_qat_stage(g, m->qat, u, h, W, b, gm, bt, st->bn ? &st->bn_state : NULL, st->relu, &st->conv);
    h = tq_conv2d(g, h, W, b, &st->conv);
    if (st->bn && st->relu == 1) return tq_batchnorm_relu(g, h, gm, bt, &st->bn_state);
    if (st->bn) h = tq_batchnorm(g, h, gm, bt, &st->bn_state);
    return tq_activation(g, h, st->relu);
}

/* Unit u's dropout of pct percent after h (evaluation passes h through). */
static tq_node *net_dropout(tq_net *net, tq_node *h, int u, int pct) {
    net->drop[u] = (tq_dropout_cfg){.rate = (float)pct / 100.0f, .unit = (uint32_t)u, .run = net->run};
    return tq_dropout(net->g, h, &net->drop[u]);
}

tq_status tq_net_init(tq_net *net, tq_model *m, int max_batch) {
    memset(net, 0, sizeof *net);
    if (max_batch < 1) TQ_FAIL(TQ_E_ARG, "batch size %d: must be at least 1", max_batch);
    net->max_batch = max_batch;
    net->xbuf = tq_calloc((size_t)max_batch * (size_t)(m->in_h * m->in_w * m->in_c), sizeof(float));
    net->no_labels = tq_calloc((size_t)max_batch, sizeof(uint8_t));
    net->labels.y = net->no_labels;
    net->g = tq_graph_new();
    if (!net->xbuf || !net->no_labels || !net->g) {
        tq_net_free(net);
        TQ_FAIL(TQ_E_NOMEM, "cannot allocate the graph for batch %d", max_batch);
    }
    tq_graph *g = net->g;
    tq_node *h = net->x = tq_leaf(g, "x", max_batch, m->in_h * m->in_w * m->in_c, net->xbuf, NULL);
    for (int u = 0; u < m->n_units; u++) {
        tq_unit *st = &m->unit[u];
        h = st->src[0] < 0 ? net->x : net->out[st->src[0]];
        if (st->kind == TQ_UNIT_CONCAT) { /* quantized: its inputs share its grid, the join is exact */
            h = tq_concat(g, h, st->src[1] < 0 ? net->x : net->out[st->src[1]], &st->cat);
        } else if (st->kind == TQ_UNIT_ADD) { /* a residual add; quantized: the int8 ADD's (layers/qat.h) */
            tq_node *b = st->src[1] < 0 ? net->x : net->out[st->src[1]];
            if (m->qat) {
                h = tq_qat_add(g, m->qat, u, h, b, st->src[1], st->relu);
            } else {
                h = tq_activation(g, tq_add(g, h, b), st->relu);
            }
        } else {
            h = weighted_unit(g, m, u, h);
        }
        if (st->pool) h = m->qat ? tq_qat_avgpool(g, m->qat, u, h, &st->pool_shape) : tq_pool2d(g, h, &st->pool_shape);
        if (st->drop) h = net_dropout(net, h, u, st->drop);
        net->out[u] = h;
    }
    net->logits = h;
    net->loss = tq_softmax_xent(g, h, &net->labels);
    tq_status st = tq_graph_status(g);
    if (st != TQ_OK) tq_net_free(net);
    return st;
}

void tq_net_free(tq_net *net) {
    if (!net) return;
    tq_graph_free(net->g);
    tq_free(net->xbuf);
    tq_free(net->no_labels);
    memset(net, 0, sizeof *net);
}

tq_status tq_net_set_batch(tq_net *net, const tq_model *m, const uint8_t *pixels, const uint8_t *labels, int n) {
    if (n < 1 || n > net->max_batch) TQ_FAIL(TQ_E_ARG, "batch of %d images: the net was built for 1..%d", n, net->max_batch);
    tq_model_input(m, pixels, (size_t)n, net->xbuf);
    TQ_TRY(tq_leaf_set_rows(net->x, n, net->xbuf));
    net->labels.y = labels ? labels : net->no_labels;
    return TQ_OK;
}
