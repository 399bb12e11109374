/* A layer on the best kernel the build has, the checks a network must pass, the arena plan and
 * the runners (a chain's two-ended arena, a graph's greedy plan, the pixel path). */
#include "runtime/internal.h"

/* The linear kernel the build has: SMLAD on a Cortex-M with DSP, the plain loop elsewhere. */
static void linear_best(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *scratch) {
#ifdef TQ_DSP
    if (PACKED(L)) tq_linear_packed_dsp_(L, (const uint8_t *)x, 0, -L->in_zp, y, (uint8_t *)scratch);
    else tq_linear_dsp_(L, (const uint8_t *)x, 0, -L->in_zp, y);
#else
    (void)scratch;
    tq_linear_s8_ref(L, x, y);
#endif
}

size_t tq_s8_layer_scratch_bytes(const tq_s8_layer *L) {
    if (ACT16(L)) /* a convolution's window of the input's type (tq_layer_s16_ref) */
        return L->kind == TQ_S8_CONV && !PACKED(L) ? ((size_t)L->k * (size_t)KW(L) * (size_t)L->in_c) << IN16(L) : 0;
    size_t K = (size_t)L->k * (size_t)KW(L) * (size_t)L->in_c;
    if (TQ_INT8_PACKED && L->kind == TQ_S8_LINEAR && (L->w_bits == 4 || L->w_bits == 2)) /* the input as int16 (DSP) */
        return 2 * ((size_t)L->in - (size_t)L->in % (size_t)(32 / L->w_bits));
    if (L->kind != TQ_S8_CONV) return 0;
    if (POINTWISE(L) && !PACKED(L)) /* no window; the DSP's two positions' int16 pairs, or none (PW_PAIRS_IN_OUTPUT) */
        return PW_PAIRS_IN_OUTPUT(L) ? 0 : 4 * (K - K % 4);
    /* channels in fours: two windows gathered straight into int16 pairs (DSP), where the int8
     * window of the reference kernel fits too */
    if (!PACKED(L) && L->in_c % 4 == 0) return 4 * K;
    /* the int8 window, two windows' int16 pairs (DSP); rows of packed weights that start
     * mid-byte: the weights unpacked (tq_conv_midbyte_dsp_) */
    size_t midbyte = TQ_INT8_PACKED && (L->w_bits == 4 || L->w_bits == 2) && K * (size_t)L->w_bits % 8 ? K * (size_t)L->out_c : 0;
    return K + 4 * (K - K % 4) + midbyte;
}

void tq_s8_layer_run(const tq_s8_layer *L, const int8_t *x, const int8_t *x2, int8_t *y, int8_t *patch) {
#if TQ_INT8_ACT16
    if (ACT16(L)) tq_layer_s16_ref(L, x, y, patch);
    else
#endif
    if (L->kind == TQ_S8_LINEAR && HAS(TQ_S8_LINEAR)) linear_best(L, x, y, patch);
#ifdef TQ_DSP
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV) && !PACKED(L) && POINTWISE(L)) tq_pointwise_dsp_(L, x, y, patch);
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV) && !PACKED(L)) tq_conv_dsp_(L, x, y, patch);
    else if (L->kind == TQ_S8_DEPTHWISE && HAS(TQ_S8_DEPTHWISE) && !PACKED(L) && L->out_c == L->in_c) tq_depthwise_dsp_(L, x, y);
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV) && (L->k * KW(L) * L->in_c * L->w_bits) % 8) tq_conv_midbyte_dsp_(L, x, y, patch);
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV)) tq_conv_packed_dsp_(L, x, y, patch);
    else if (L->kind == TQ_S8_MAXPOOL && HAS(TQ_S8_MAXPOOL) && L->in_c % 4 == 0) tq_maxpool_dsp_(L, x, y);
#else
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV)) tq_conv_s8_ref(L, x, y, patch);
#endif
    else if (L->kind == TQ_S8_DEPTHWISE && HAS(TQ_S8_DEPTHWISE)) tq_depthwise_s8_ref(L, x, y);
    else if ((L->kind == TQ_S8_MAXPOOL || L->kind == TQ_S8_AVGPOOL) && (HAS(TQ_S8_MAXPOOL) || HAS(TQ_S8_AVGPOOL)))
        tq_pool_(L, x, y, L->kind == TQ_S8_AVGPOOL);
    else if (L->kind == TQ_S8_FLATTEN && HAS(TQ_S8_FLATTEN)) tq_copy_bytes_(y, x, L->out);
    else if (L->kind == TQ_S8_ADD && HAS(TQ_S8_ADD)) tq_add_s8_ref(L, x, x2, y);
    else if (L->kind == TQ_S8_CONCAT && HAS(TQ_S8_CONCAT)) tq_concat_s8_ref(L, x, x2, y);
    else if (L->kind == TQ_S8_MEAN && HAS(TQ_S8_MEAN)) tq_mean_s8_ref(L, x, y);
    else if (L->kind == TQ_S8_SOFTMAX && HAS(TQ_S8_SOFTMAX)) tq_softmax_s8_ref(L, x, y);
}

/* ---- the network runner ---- */

/* A flatten moves nothing: the runners pass its input on. */
static int is_flatten(const tq_s8_layer *L) { return HAS(TQ_S8_FLATTEN) && L->kind == TQ_S8_FLATTEN; }

/* One layer's sizes against its kind (the loader's checks, in the runtime's own terms). */
static int layer_ok(const tq_s8_layer *L) {
#define DIM(v) ((v) >= 1 && (v) <= 65536)
    if (!DIM(L->in_h) || !DIM(L->in_w) || !DIM(L->in_c) || !DIM(L->out_h) || !DIM(L->out_w) || !DIM(L->out_c)) return 0;
#undef DIM
    if ((int64_t)L->in_h * L->in_w * L->in_c != L->in || (int64_t)L->out_h * L->out_w * L->out_c != L->out) return 0;
    /* an int16 side is symmetric (zero point 0); its clamp is int16's */
    const int32_t lo = OUT16(L) ? -32768 : -128, hi = OUT16(L) ? 32767 : 127;
    if ((IN16(L) ? L->in_zp != 0 : L->in_zp < -128 || L->in_zp > 127) || (OUT16(L) ? L->out_zp != 0 : L->out_zp < -128 || L->out_zp > 127) ||
        L->act_min < lo || L->act_max > hi || L->act_min > L->act_max)
        return 0;
    if (L->w_bits != 0 && L->w_bits != 8 && L->w_bits != 4 && L->w_bits != 2) return 0;
    if (!TWO_INPUTS(L) && SRC(L, 1) != 0) return 0;
    int weights = TQ_S8_IN(TQ_S8_WEIGHTED, L->kind);
#if TQ_INT8_ACT16
    if (ACT16(L) & ~3) return 0;
    if (ACT16(L) && (TQ_S8_IN(TQ_S8_INT8_ONLY, L->kind) || (!weights && IN16(L) != OUT16(L))))
        return 0; /* int8 only: adds, concats, means, softmax; pools and flatten keep their type */
    if (ACT16(L) && weights && (!L->w || !L->bias64 || !L->mult || !L->shift)) return 0;
    if (!ACT16(L) && weights && !L->bias) return 0;
    if (weights && (!L->w || !L->mult || !L->shift)) return 0;
#else
    if (weights && (!L->w || !L->bias || !L->mult || !L->shift)) return 0;
#endif
    if (!TQ_S8_IN(TQ_S8_WINDOWED, L->kind) && (L->k != 1 || L->stride != 1 || L->pad != 0 || KW(L) != 1)) return 0;
    /* (a kind this build leaves out is refused; an MLP's module keeps only the first case) */
    if (L->kind == TQ_S8_LINEAR && HAS(TQ_S8_LINEAR)) return L->in_h == 1 && L->in_w == 1 && L->out_h == 1 && L->out_w == 1;
    if (ONLY_LINEAR) return 0;
    switch (L->kind) {
    case TQ_S8_FLATTEN: return L->out_h == 1 && L->out_w == 1 && L->out == L->in && L->in_zp == L->out_zp;
    case TQ_S8_ADD:
        return L->mult && L->shift && IN2_ZP(L) >= -128 && IN2_ZP(L) <= 127 && L->out == L->in && L->out_h == L->in_h &&
               L->out_w == L->in_w;
    case TQ_S8_CONCAT: /* copies: one zero point */
        return IN2_C(L) >= 1 && IN2_C(L) <= 65536 && L->out_c == L->in_c + IN2_C(L) && L->out_h == L->in_h && L->out_w == L->in_w &&
               L->in_zp == L->out_zp && IN2_ZP(L) == L->out_zp;
    case TQ_S8_MEAN: /* the sum of n values of |x - z| <= 255 inside int32 */
        return L->mult && L->shift && L->mult[1] >= 0 && L->mult[1] <= 2 && L->shift[1] == 0 && L->out_h == 1 && L->out_w == 1 &&
               L->out_c == L->in_c && (int64_t)L->in_h * L->in_w <= (1 << 23) && (L->mult[1] != 2 || L->in_zp == L->out_zp);
    case TQ_S8_SOFTMAX: /* a row's sum of exponentials below 2^28; the output fixed at 1/256 and -128 */
        return L->mult && L->shift && L->mult[0] >= (1 << 30) && L->shift[0] >= 0 && L->shift[0] <= 31 && L->in_c <= 511 &&
               L->out_h == L->in_h && L->out_w == L->in_w && L->out_c == L->in_c && L->out_zp == -128 && L->act_min == -128 &&
               L->act_max == 127;
    case TQ_S8_CONV:
    case TQ_S8_DEPTHWISE:
    case TQ_S8_MAXPOOL:
    case TQ_S8_AVGPOOL: {
        /* per axis: kernel, stride, padding before, and the padding after that the output implies,
         * at most one more than before and less than a window (none for pools) */
        const int32_t geo[2][4] = {{L->k, L->stride, L->pad, L->in_h}, {KW(L), SW(L), PW(L), L->in_w}};
        const int32_t outs[2] = {L->out_h, L->out_w};
        for (int a = 0; a < 2; a++) {
            int32_t k = geo[a][0], st = geo[a][1], p = geo[a][2], n = geo[a][3];
            if (k < 1 || k > 64 || st < 1 || st > 64 || p < 0 || p > (weights ? k - 1 : 0)) return 0;
            int64_t after = (int64_t)(outs[a] - 1) * st + k - n - p;
            if (after > p + 1 || after > (weights ? k - 1 : 0) || after <= p - st) return 0;
        }
        if (L->kind == TQ_S8_CONV) return (int64_t)L->k * KW(L) * L->in_c <= (1 << 20);
        if (L->kind == TQ_S8_DEPTHWISE) return L->out_c % L->in_c == 0;
        return L->out_c == L->in_c && L->in_zp == L->out_zp;
    }
    default: return 0;
    }
}

/* The layer whose output is layer l's input j: src[j] - 1, or l - 1; -1 is the network's input. */
static int32_t producer(const tq_int8_net *m, int32_t l, int j) {
    int32_t s = SRC(&m->layer[l], j);
    return s ? s - 1 : l - 1;
}

/* The layer whose buffer holds that output: a flatten's is its input's (it moves nothing). */
static int32_t holder(const tq_int8_net *m, int32_t p) {
    while (p >= 0 && is_flatten(&m->layer[p])) p = producer(m, p, 0);
    return p;
}

int tq_int8_net_check(const tq_int8_net *m) {
    if (!m || !m->layer || m->n_layers < 1 || m->n_layers > TQ_INT8_MAX_LAYERS || is_flatten(&m->layer[m->n_layers - 1]) ||
        OUT16(&m->layer[m->n_layers - 1]))
        return TQ_INT8_E_ARG;
    uint8_t read[TQ_INT8_MAX_LAYERS] = {0};
    for (int32_t l = 0; l < m->n_layers; l++) {
        const tq_s8_layer *L = &m->layer[l];
        if (!layer_ok(L)) return TQ_INT8_E_ARG;
        for (int j = 0; j < (TWO_INPUTS(L) ? 2 : 1); j++) {
            if (SRC(L, j) < 0 || SRC(L, j) > l) return TQ_INT8_E_ARG; /* earlier layers only: no cycle */
            int32_t p = producer(m, l, j);
            /* the tensor read must be the one written: a layer's output, or the network's input,
             * whose shape and zero point are layer 0's input's */
            const tq_s8_layer *F = &m->layer[0];
            int32_t h = F->in_h, w = F->in_w, c = F->in_c, zp = F->in_zp, wide = 0;
            if (p >= 0) {
                const tq_s8_layer *P = &m->layer[p];
                read[p] = 1, h = P->out_h, w = P->out_w, c = P->out_c, zp = P->out_zp, wide = OUT16(P);
            }
            int32_t want_c = j && L->kind == TQ_S8_CONCAT ? IN2_C(L) : L->in_c;
            if (L->in_h != h || L->in_w != w || want_c != c || (j ? IN2_ZP(L) : L->in_zp) != zp || IN16(L) != wide) return TQ_INT8_E_ARG;
        }
    }
    for (int32_t l = 0; l + 1 < m->n_layers; l++)
        if (!read[l]) return TQ_INT8_E_ARG; /* an output nobody reads */
    return TQ_INT8_OK;
}

static int net_ok(const tq_int8_net *m) {
    if (TQ_INT8_PRECHECKED) return m && m->n_layers >= 1 && m->n_layers <= TQ_INT8_MAX_LAYERS;
    return tq_int8_net_check(m) == TQ_INT8_OK;
}

/* A chain: each layer reads the one before it. */
static int is_chain(const tq_int8_net *m) {
    if (!TQ_INT8_GRAPHS) return 1;
    for (int32_t l = 0; l < m->n_layers; l++)
        if (SRC(&m->layer[l], 0) > 0 && SRC(&m->layer[l], 0) != l) return 0;
        else if (TWO_INPUTS(&m->layer[l])) return 0;
    return 1;
}

/* A layer's scratch (its patch) as the chain places it: a whole number of words; none in a
 * module whose kernels need none. */
static size_t chain_patch(const tq_s8_layer *L) {
    if (!HAS(TQ_S8_CONV) && !TQ_INT8_PACKED) return 0;
    return (tq_s8_layer_scratch_bytes(L) + 3) / 4 * 4;
}

/* A chain's arena for layers first.. when the input of layer `first` is at its start (in_bytes)
 * or the caller's (0): each layer's input and output at the arena's two ends (each output at the
 * end its input left free; the last layer writes into the caller's buffer), its patch between
 * them, from the first word after the one at the start. A layer needs the three at once. */
static size_t chain_arena_bytes(const tq_int8_net *m, int32_t first, size_t in_bytes) {
    size_t need = in_bytes, cur = in_bytes;
    int at = in_bytes ? 1 : 0, wide = 0; /* where the input is: the caller's (0), the start (1), the end (2) */
    for (int32_t l = first; l < m->n_layers; l++) {
        if (is_flatten(&m->layer[l])) continue;
        size_t out = l == m->n_layers - 1 ? 0 : OUT_BYTES(&m->layer[l]), patch = chain_patch(&m->layer[l]);
        size_t here = cur + out;
        if (patch) here = ((at == 1 ? cur : out) + 3) / 4 * 4 + patch + (at == 1 ? out : cur);
        need = here > need ? here : need;
        cur = out;
        at = at == 1 ? 2 : 1;
        wide |= ACT16(&m->layer[l]);
    }
    /* int16 outputs go at the arena's end too: a whole number of words keeps them aligned */
    return wide ? (need + 3) / 4 * 4 : need;
}

/* A graph's plan, over 2n + 1 buffers: off[l] is layer l's output's place in the arena, off[n]
 * the network's input's (when in_bytes > 0 puts it there), off[n + 1 + l] layer l's scratch (its
 * patch), each rounded up to a word; returns the arena's size. A buffer lives from the layer
 * writing it to the last layer reading it (a scratch: its layer); two that live at once do not
 * share bytes. Largest first, each at the lowest offset that fits (O(n^3) for n <= 64 layers, a
 * vanishing part of an inference). */
#define PLAN_SLOTS (2 * TQ_INT8_MAX_LAYERS + 1)
static size_t plan_graph(const tq_int8_net *m, size_t in_bytes, int32_t *off) {
    const int32_t n = m->n_layers, slots = 2 * n + 1;
    int32_t first[PLAN_SLOTS], last[PLAN_SLOTS];
    size_t size[PLAN_SLOTS];
    uint8_t placed[PLAN_SLOTS];
    for (int32_t t = 0; t < slots; t++) {
        size_t bytes = 0;
        if (t == n) bytes = in_bytes;
        else if (t > n) bytes = tq_s8_layer_scratch_bytes(&m->layer[t - n - 1]);
        else if (t < n - 1 && !is_flatten(&m->layer[t])) bytes = OUT_BYTES(&m->layer[t]); /* the last's is the caller's */
        size[t] = (bytes + 3) / 4 * 4;
        first[t] = t == n ? 0 : t > n ? t - n - 1 : t;
        last[t] = first[t];
        placed[t] = 0;
        off[t] = 0;
    }
    for (int32_t l = 0; l < n; l++)
        for (int j = 0; j < (TWO_INPUTS(&m->layer[l]) ? 2 : 1); j++) {
            int32_t h = holder(m, producer(m, l, j));
            int32_t t = h < 0 ? n : h;
            last[t] = l > last[t] ? l : last[t];
        }
    size_t arena = 0;
    for (;;) {
        int32_t t = -1; /* the largest not yet placed */
        for (int32_t u = 0; u < slots; u++)
            if (!placed[u] && size[u] && (t < 0 || size[u] > size[t])) t = u;
        if (t < 0) break;
        size_t at = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int32_t u = 0; u < slots; u++)
                if (placed[u] && first[u] <= last[t] && first[t] <= last[u] && at < (size_t)off[u] + size[u] &&
                    (size_t)off[u] < at + size[t]) {
                    at = (size_t)off[u] + size[u];
                    moved = 1;
                }
        }
        off[t] = (int32_t)at;
        placed[t] = 1;
        arena = at + size[t] > arena ? at + size[t] : arena;
    }
    return arena;
}

/* Chain layers first.. on x, which is the caller's (at = 0) or at the arena's start (1) or end (2);
 * each output goes to the end its input leaves free, the patch between the two. */
static inline __attribute__((always_inline)) void run_chain(const tq_int8_net *m, int32_t first, const int8_t *x, int at, int8_t *out, int8_t *arena, size_t arena_size) {
    for (int32_t l = first; l < m->n_layers; l++) {
        const tq_s8_layer *L = &m->layer[l];
        if (is_flatten(L)) continue;
        const int last = l == m->n_layers - 1;
        int8_t *y = last ? out : at == 1 ? arena + arena_size - OUT_BYTES(L) : arena;
        size_t start = !HAS(TQ_S8_CONV) && !TQ_INT8_PACKED ? 0 : at == 1 ? (size_t)L->in << IN16(L) : last ? 0 : OUT_BYTES(L);
        tq_s8_layer_run(L, x, 0, y, arena + (start + 3) / 4 * 4);
        x = y;
        at = at == 1 ? 2 : 1;
    }
}

/* Graph layers first.. as planned; the network's input is at `in`. */
static void run_graph(const tq_int8_net *m, int32_t first, const int8_t *in, int8_t *out, int8_t *arena, const int32_t *off) {
    for (int32_t l = first; l < m->n_layers; l++) {
        const tq_s8_layer *L = &m->layer[l];
        if (is_flatten(L)) continue;
        int32_t h0 = holder(m, producer(m, l, 0)), h1 = TWO_INPUTS(L) ? holder(m, producer(m, l, 1)) : h0;
        const int8_t *x = h0 < 0 ? in : arena + off[h0], *x2 = h1 < 0 ? in : arena + off[h1];
        tq_s8_layer_run(L, x, x2, l == m->n_layers - 1 ? out : arena + off[l], arena + off[m->n_layers + 1 + l]);
    }
}

/* The scratch of a run (in_bytes: the network's input's bytes when it goes into the arena): the
 * arena, patches included. */
static size_t scratch_for(const tq_int8_net *m, int chain, size_t in_bytes, int32_t *off) {
    return chain ? chain_arena_bytes(m, 0, in_bytes) : plan_graph(m, in_bytes, off);
}

size_t tq_int8_net_scratch_bytes(const tq_int8_net *m) {
    int32_t off[PLAN_SLOTS];
    return net_ok(m) ? scratch_for(m, is_chain(m), 0, off) : 0;
}

int tq_int8_net_run(const tq_int8_net *m, const int8_t *in, int8_t *out, void *scratch, size_t scratch_bytes) {
    if (!net_ok(m) || !scratch) return TQ_INT8_E_ARG;
    int32_t off[PLAN_SLOTS];
    int chain = is_chain(m);
    size_t need = scratch_for(m, chain, 0, off);
    if (scratch_bytes < need) return TQ_INT8_E_ARG;
    if (chain) run_chain(m, 0, in, 0, out, (int8_t *)scratch, need);
    else run_graph(m, 0, in, out, (int8_t *)scratch, off);
    return TQ_INT8_OK;
}

/* A first linear layer reads the pixels where they are; any other gets them in the arena. */
static int reads_pixels_in_place(const tq_int8_net *m) { return (ONLY_LINEAR || m->layer[0].kind == TQ_S8_LINEAR) && !ACT16(&m->layer[0]); }

size_t tq_int8_net_predict_scratch_bytes(const tq_int8_net *m) {
    if (!net_ok(m)) return 0;
    int32_t off[PLAN_SLOTS];
    return scratch_for(m, is_chain(m), reads_pixels_in_place(m) ? 0 : (size_t)m->layer[0].in, off);
}

/* Layer 0 on raw pixels: x[i] - z_x = (p[i] - 128) - z_x, read in place. */
static void linear_u8_input(const tq_s8_layer *L, const uint8_t *p, int8_t *y, int8_t *scratch) {
    if (PACKED(L)) {
#ifdef TQ_DSP
        tq_linear_packed_dsp_(L, p, 1, -128 - L->in_zp, y, (uint8_t *)scratch);
#else
        for (int32_t o = 0; o < L->out; o++) y[o] = output(L, o, L->bias[o] + tq_packed_row_(L, o, p, 1, -128 - L->in_zp, 0));
#endif
        return;
    }
    (void)scratch;
#ifdef TQ_DSP
    /* tinyqat's input zero point is -128, so the pixels need no offset; anything else (a hand-made
     * model) takes the plain loop rather than a third copy of the DSP loop in flash */
    if (L->in_zp == -128) {
        tq_linear_dsp_(L, p, 1, 0, y);
        return;
    }
#endif
    int32_t off = 128 + L->in_zp;
    for (int32_t o = 0; o < L->out; o++) {
        const int8_t *w = L->w + (size_t)o * (size_t)L->in;
        int32_t acc = L->bias[o];
        for (int32_t i = 0; i < L->in; i++) acc += (int32_t)w[i] * ((int32_t)p[i] - off);
        y[o] = output(L, o, acc);
    }
}

int tq_int8_net_predict_u8(const tq_int8_net *m, const uint8_t *pixels, int8_t *logits, void *scratch,
                           size_t scratch_bytes) {
    if (!net_ok(m) || !scratch) return TQ_INT8_E_ARG;
    const tq_s8_layer *L0 = &m->layer[0];
    int in_place = reads_pixels_in_place(m), chain = is_chain(m);
    int32_t off[PLAN_SLOTS];
    size_t need = scratch_for(m, chain, in_place ? 0 : (size_t)L0->in, off);
    if (scratch_bytes < need) return TQ_INT8_E_ARG;
    int8_t *arena = (int8_t *)scratch;
    if (in_place) { /* (a chain's layer 0: its output at the start, its patch after it) */
        int8_t *y = m->n_layers == 1 ? logits : chain ? arena : arena + off[0];
        linear_u8_input(L0, pixels, y, !chain ? arena + off[m->n_layers + 1] : !TQ_INT8_PACKED || m->n_layers == 1 ? arena : arena + (OUT_BYTES(L0) + 3) / 4 * 4);
        if (chain) run_chain(m, 1, y, 1, logits, arena, need);
        else run_graph(m, 1, 0, logits, arena, off);
    } else {
        int8_t *x = chain ? arena : arena + off[m->n_layers];
        for (int32_t i = 0; i < L0->in; i++) x[i] = (int8_t)(pixels[i] ^ 0x80u); /* p - 128 */
        if (chain) run_chain(m, 0, x, 1, logits, arena, need);
        else run_graph(m, 0, x, logits, arena, off);
    }
    const tq_s8_layer *last = &m->layer[m->n_layers - 1];
    int32_t best = 0;
    for (int32_t c = 1; c < last->out; c++)
        if (logits[c] > logits[best]) best = c;
    return (int)best;
}
