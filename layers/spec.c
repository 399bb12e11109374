/* The model spec: presets, `in`/`out` resolved against the data, and the grammar read into a
 * model's list of units (layers/model.h has the grammar). Shapes are checked here, as each token
 * is read, so that a spec whose layers do not meet is refused naming the token before anything
 * is allocated. */
#include "layers/model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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

tq_status tq_model_spec_resolve(const char *spec, const int *in_shape, int classes, char *out, size_t cap) {
    return resolve(spec, in_shape, classes, out, cap, 0);
}

tq_status tq_model_spec_check(const char *spec) {
    char r[TQ_SPEC_MAX];
    tq_model tmp;
    memset(&tmp, 0, sizeof tmp);
    TQ_TRY(resolve(spec, NULL, 0, r, sizeof r, 1));
    tq_status st = tq_model_parse_spec(&tmp, r);
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

tq_status tq_model_parse_spec(tq_model *m, const char *spec) {
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
