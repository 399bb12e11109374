/* tinyqat convert / infer: the integer model file and the integer-only path on the host. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "data/npy.h"
#include "pipeline/int8.h"
#include "src/quant.h"
#include "src/alloc.h"
#include "src/fileio.h"
#include "src/parallel.h"

int cmd_convert(int argc, char **argv) {
    const char *out = NULL;
    int json = 0;
    cli_opt opts[] = {
        {"--out", CLI_STR, &out, "where to write the integer model (.tqm)", 0, 0, NULL, "MODEL without -qat/-ptq, .tqm"},
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"convert", "MODEL [options]",
                                "Convert a PTQ or QAT model into int8 weights, int32 biases (int64 beside 16-bit activations) and requantization multipliers.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    char out_buf[1024];
    if (!out) out = cli_derived_out(pos[0], ".tqm", out_buf, sizeof out_buf);
    tq_model m;
    if (tq_model_load(&m, pos[0]) != TQ_OK) return cli_fail(NULL);
    tq_qmodel q;
    rc = 0;
    if (tq_model_to_int8(&m, &q) != TQ_OK) rc = cli_fail(pos[0]);
    else {
        if (tq_qmodel_save(&q, out) != TQ_OK) rc = cli_fail("convert");
        else {
            size_t bytes = 0;
            int bits = 8;
            for (int l = 0; l < q.n_layers; l++) {
                bytes += tq_qlayer_weight_bytes(&q.layer[l]) + (q.layer[l].act16 ? 8 : 4) * (size_t)tq_qlayer_channels(&q.layer[l]);
                if (tq_qlayer_channels(&q.layer[l])) bits = q.layer[l].w_bits;
            }
            char what[64];
            int sb = tq_qlayer_storage_bits(bits);
            if (bits == 8) snprintf(what, sizeof what, "int8 weights");
            else if (sb == 8) snprintf(what, sizeof what, "%d-bit weights (one to a byte)", bits);
            else snprintf(what, sizeof what, "%d-bit weights (%d to a byte)", bits, 8 / sb);
            printf("converted %s (%s, %d layers) -> %s: %zu bytes of %s and %s biases, %llu multiply-adds per image\n", pos[0],
                   q.spec, q.n_layers, out, bytes, what, tq_qmodel_has_act16(&q) ? "int32 / int64 (16-bit activations)" : "int32",
                   (unsigned long long)tq_qmodel_macs(&q));
            printf("\n%5s %-12s %-19s %10s %5s %10s %5s %10s | channel 0: %11s %11s %5s\n", "layer", "kind", "shape", "s_in",
                   "z_in", "s_out", "z_out", "clamp", "M", "M0", "shift");
            for (int l = 0; l < q.n_layers; l++) {
                const tq_qlayer *L = &q.layer[l];
                char kind[24], shape[48], clamp[24];
                if (L->kind == TQ_S8_LINEAR || L->kind == TQ_S8_FLATTEN) snprintf(kind, sizeof kind, "%s", tq_qlayer_kind_name(L->kind));
                else snprintf(kind, sizeof kind, "%s %d/%d", tq_qlayer_kind_name(L->kind), L->k, L->stride);
                if (L->kind == TQ_S8_LINEAR) snprintf(shape, sizeof shape, "%d->%d", L->in, L->out);
                else snprintf(shape, sizeof shape, "%dx%dx%d->%dx%dx%d", L->in_h, L->in_w, L->in_c, L->out_h, L->out_w, L->out_c);
                snprintf(clamp, sizeof clamp, "[%d,%d]", L->act_min, L->act_max);
                printf("%5d %-12s %-19s %10.5g %5d %10.5g %5d %10s |", l, kind, shape, (double)L->in_scale, L->in_zp,
                       (double)L->out_scale, L->out_zp, clamp);
                if (tq_qlayer_channels(L))
                    printf(" %22.9f %11d %5d\n", (double)L->in_scale * L->w_scale[0] / L->out_scale, L->mult[0], L->shift[0]);
                else if (L->kind == TQ_S8_ADD) /* the sum's multiplier; each input's is s_j / (2 max s) */
                    printf(" %22.9f %11d %5d  (sum; reads %d and %d)\n",
                           2.0 * fmax((double)L->in_scale, (double)L->in2_scale) / (1048576.0 * (double)L->out_scale), L->mult[2],
                           L->shift[2], tq_qmodel_producer(&q, l, 0), tq_qmodel_producer(&q, l, 1));
                else
                    printf(" %22s\n", "(keeps the scale)");
            }
            if (json) {
                cJSON *j = cli_json_new();
                cli_json_str(j, "model", out);
                cli_json_str(j, "from", pos[0]);
                cli_json_str(j, "spec", q.spec);
                cli_json_num(j, "layers", q.n_layers, 0);
                cli_json_num(j, "weight_and_bias_bytes", (double)bytes, 0);
                cli_json_print(j);
            }
        }
        tq_qmodel_free(&q);
    }
    tq_model_free(&m);
    return rc;
}

int cmd_infer(int argc, char **argv) {
    const char *dataset = NULL, *data = NULL, *compare = NULL, *logits_out = NULL;
    int json = 0, repeats = 5, threads = 1;
    const char *kernel_s = "auto";
    cli_opt opts[] = {
        {"--compare", CLI_STR, &compare, "the simulated (fake-quant) model to compare predictions and logits with", 0, 0},
        {"--kernel", CLI_STR, &kernel_s, "auto, ref (portable), avx2 or vnni: all give the same integers", 0, 0},
        {"--repeats", CLI_INT, &repeats, "timed passes over the test set (the best is reported)", 1, 1000},
        {"--threads", CLI_INT, &threads, "threads for a convolutional model's images (the same logits for any count)", 1, 64},
        {"--logits", CLI_STR, &logits_out, "write the int8 logits of every test image to this file (raw, [images][outputs])", 0, 0},
        CLI_DATA_OPTIONS(dataset, data),
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"infer", "MODEL.tqm [options]",
                                "Run the test images through the integer-only path: accuracy, images/s, agreement.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    int kparsed = tq_kernel_parse(kernel_s);
    if (kparsed < 0) {
        fprintf(stderr, "tinyqat infer: --kernel must be auto, ref, avx2 or vnni, not '%s'\n", kernel_s);
        return 2;
    }
    tq_kernel kernel = (tq_kernel)kparsed;
    tq_parallel_set_threads(threads);
    tq_qmodel q;
    if (tq_qmodel_load(&q, pos[0]) != TQ_OK) return cli_fail(NULL);
    tq_dataset te;
    if ((rc = cli_load_data(dataset, data, NULL, &te))) {
        tq_qmodel_free(&q);
        return rc;
    }
    /* accuracy (checks the shapes and labels too), then the kernel alone timed: the best of
     * `repeats` passes over the test set, the model prepared once */
    float acc = 0;
    double best = 1e30;
    int nout = q.layer[q.n_layers - 1].out;
    int8_t *logits = tq_malloc((size_t)te.n * (size_t)nout);
    uint8_t *pred = tq_malloc(te.n);
    tq_qfast *f = NULL;
    if (!logits || !pred || tq_int8_evaluate(&q, &te, kernel, &acc, NULL, NULL) != TQ_OK || tq_qfast_init(&f, &q) != TQ_OK)
        rc = cli_fail("infer");
    for (int r = 0; r < repeats && rc == 0; r++) {
        double t0 = cli_now();
        if (tq_qfast_run(f, te.images, te.n, logits, pred, kernel) != TQ_OK) rc = cli_fail("infer");
        double dt = cli_now() - t0;
        if (dt < best) best = dt;
    }
    if (rc == 0 && kernel == TQ_KERNEL_AUTO) kernel = tq_qfast_best(f);
    if (rc == 0 && logits_out && tq_file_write_atomic(logits_out, logits, (size_t)te.n * (size_t)nout) != TQ_OK) rc = cli_fail("infer");
    tq_qfast_free(f);
    tq_free(logits);
    tq_free(pred);
    if (rc) goto out;
    char thr[24] = "";
    if (threads > 1) snprintf(thr, sizeof thr, ", %d threads", threads);
    printf("%s (%s): integer-only test accuracy %.2f%% on %u images; %.2f ms, %.0f images/s (%s kernel%s, best of %d)\n",
           pos[0], q.spec, (double)acc, te.n, best * 1e3, te.n / best, tq_kernel_name(kernel), thr, repeats);
    tq_agreement ag;
    if (compare) {
        tq_model m;
        if (tq_model_load(&m, compare) != TQ_OK) {
            rc = cli_fail(NULL);
            goto out;
        }
        if (tq_int8_agreement(&m, &q, &te, &ag) != TQ_OK) rc = cli_fail("infer --compare");
        tq_model_free(&m);
        if (rc) goto out;
        printf("vs the simulated model %s: %.2f%% there; %ld of %u predictions differ (%.3f%% identical); largest logit difference %d output step(s)\n",
               compare, (double)ag.sim_acc, ag.disagreements, te.n, 100.0 * (double)(te.n - (uint32_t)ag.disagreements) / te.n,
               ag.max_logit_diff);
    }
    if (json) {
        cJSON *j = cli_json_new();
        cli_json_num(j, "test_accuracy", acc, 2);
        cli_json_num(j, "images_per_second", te.n / best, 0);
        cli_json_num(j, "milliseconds", best * 1e3, 3);
        cli_json_str(j, "kernel", tq_kernel_name(kernel));
        cli_json_str(j, "model", pos[0]);
        if (compare) {
            cli_json_num(j, "disagreements", (double)ag.disagreements, 0);
            cli_json_num(j, "max_logit_diff", ag.max_logit_diff, 0);
            cli_json_num(j, "simulated_test_accuracy", ag.sim_acc, 2);
            cli_json_str(j, "compared_with", compare);
        }
        cli_json_print(j);
    }
out:
    tq_dataset_free(&te);
    tq_qmodel_free(&q);
    return rc;
}

/* tinyqat run: any integer model on inputs from a .npy file, its outputs to another. */
int cmd_run(int argc, char **argv) {
    const char *in_path = NULL, *out_path = NULL;
    int dequant = 0, json = 0;
    cli_opt opts[] = {
        {"--input", CLI_STR, &in_path, "a .npy of inputs, [N][values] or [N][H][W][C] (NHWC), or one input: int8 (the integer "
         "input itself), uint8 (pixels p, read as p/255) or float32/float64 (quantized with the model's input scale and zero point)",
         0, 0},
        {"--output", CLI_STR, &out_path, "the .npy to write, [N][outputs]", 0, 0, NULL, "INPUT's name with -out.npy"},
        {"--dequantize", CLI_FLAG, &dequant, "write float32 (q - z) s instead of the int8 outputs", 0, 0},
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"run", "MODEL.tqm --input X.npy [--output Y.npy] [options]",
                                "Run an integer model on inputs from a NumPy file and write its outputs to another.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    if (!in_path) {
        fprintf(stderr, "tinyqat run: --input X.npy is required (see 'tinyqat run --help')\n");
        return 2;
    }
    char derived[1024];
    if (!out_path) out_path = cli_derived_out(in_path, "-out.npy", derived, sizeof derived);
    tq_qmodel q;
    if (tq_qmodel_load(&q, pos[0]) != TQ_OK) return cli_fail(NULL);
    tq_npy a;
    if (tq_npy_read(&a, in_path) != TQ_OK) {
        tq_qmodel_free(&q);
        return cli_fail(NULL);
    }
    const tq_qlayer *L0 = &q.layer[0], *Ln = &q.layer[q.n_layers - 1];
    const size_t D = (size_t)L0->in, O = (size_t)Ln->out;
    size_t N = a.ndim == 1 && a.count == D ? 1 : a.ndim >= 2 ? (size_t)a.shape[0] : 0;
    static const char *types[4] = {"int8", "uint8", "float32", "float64"};
    int8_t *x = NULL, *y = NULL;
    void *scratch = NULL, *out = NULL;
    if (!N || a.count != N * D) {
        char img[64] = "";
        if (L0->kind != TQ_S8_LINEAR) snprintf(img, sizeof img, ", or [N][%d][%d][%d]", L0->in_h, L0->in_w, L0->in_c);
        if (N) fprintf(stderr, "tinyqat run: %s: %zu rows of %zu values; model %s takes %zu values an input ([N][%zu]%s)\n", in_path, N,
                       a.count / N, q.spec, D, D, img);
        else fprintf(stderr, "tinyqat run: %s: %zu values, not rows of inputs; model %s takes %zu values an input ([N][%zu])\n", in_path,
                     a.count, q.spec, D, D);
        rc = 1;
        goto done;
    }
    const size_t sb = tq_int8_net_scratch_bytes(&q.net);
    x = tq_malloc(N * D), y = tq_malloc(N * O), scratch = tq_malloc(sb ? sb : 1);
    out = dequant ? tq_malloc(N * O * sizeof(float)) : NULL;
    if (!x || !y || !scratch || (dequant && !out)) {
        fprintf(stderr, "tinyqat run: out of memory for %zu inputs\n", N);
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < N * D; i++) { /* the integer input, as docs/QUANTIZATION.md §6 and §2 define it */
        switch (a.type) {
        case TQ_NPY_I8: x[i] = ((const int8_t *)a.data)[i]; break;
        case TQ_NPY_U8: x[i] = (int8_t)tq_quantize_ref((float)((const uint8_t *)a.data)[i] / 255.0f, L0->in_scale, L0->in_zp, -128, 127); break;
        case TQ_NPY_F32: x[i] = (int8_t)tq_quantize_ref(((const float *)a.data)[i], L0->in_scale, L0->in_zp, -128, 127); break;
        default: x[i] = (int8_t)tq_quantize_ref((float)((const double *)a.data)[i], L0->in_scale, L0->in_zp, -128, 127); break;
        }
    }
    for (size_t n = 0; n < N; n++)
        if (tq_int8_net_run(&q.net, x + n * D, y + n * O, scratch, sb) != TQ_INT8_OK) {
            fprintf(stderr, "tinyqat run: %s: the integer model does not run (a malformed network)\n", pos[0]);
            rc = 1;
            goto done;
        }
    const int64_t shape[2] = {(int64_t)N, (int64_t)O};
    const int ndim = a.ndim == 1 ? 1 : 2;
    if (dequant)
        for (size_t i = 0; i < N * O; i++) ((float *)out)[i] = (float)((int32_t)y[i] - Ln->out_zp) * Ln->out_scale;
    if (tq_npy_write(out_path, dequant ? TQ_NPY_F32 : TQ_NPY_I8, ndim == 1 ? shape + 1 : shape, ndim, dequant ? out : (void *)y) != TQ_OK) {
        rc = cli_fail("run");
        goto done;
    }
    char dims[48];
    if (ndim == 1) snprintf(dims, sizeof dims, "[%zu]", O);
    else snprintf(dims, sizeof dims, "[%zu][%zu]", N, O);
    printf("ran %s (%s) on %zu input%s of %zu values (%s%s): wrote %s, %s %s\n", pos[0], q.spec, N, N == 1 ? "" : "s", D, types[a.type],
           a.type == TQ_NPY_I8 ? ", the integer input itself" : ", quantized with the model's input scale and zero point", out_path, dims,
           dequant ? "float32, dequantized" : "int8");
    if (json) {
        cJSON *j = cli_json_new();
        cli_json_str(j, "model", pos[0]);
        cli_json_str(j, "input", in_path);
        cli_json_str(j, "output", out_path);
        cli_json_num(j, "inputs", (double)N, 0);
        cli_json_num(j, "outputs_each", (double)O, 0);
        cli_json_print(j);
    }
done:
    tq_free(x), tq_free(y), tq_free(scratch), tq_free(out);
    tq_npy_free(&a);
    tq_qmodel_free(&q);
    return rc;
}
